// Retry timing shared by the HTTP backends (stm, csc): capped exponential backoff with full jitter
// (AWS architecture blog, "Exponential Backoff And Jitter"), Retry-After honoured, and no wait
// ever runs past the call's deadline. Which failures are retryable is each backend's own rule
// (stm/retry.ts, csc/retry.ts). Pure functions: the clock and the random source are parameters.

export interface RetryPolicy {
  /** First backoff ceiling (ms); attempt n waits up to baseMs·2ⁿ. */
  baseMs: number;
  /** Cap of one wait (ms). */
  capMs: number;
  /** At most this many attempts in all (the deadline may stop earlier). */
  maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 100, capMs: 4000, maxAttempts: 8 };

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns milliseconds from `now`
 * (0 for a date in the past), or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Full jitter: uniform in [0, min(cap, base·2^attempt)]; attempt counts from 0. */
export function backoffMs(attempt: number, p: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(p.capMs, p.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export type RetryDecision = { retry: true; waitMs: number } | { retry: false; reason: 'not-retryable' | 'attempts' | 'deadline' };

/**
 * After attempt number `attempt` (0-based) failed: retry, and after how long? `retryAfterMs` (from
 * the server) wins over the jittered backoff when it is longer. A wait that would end past the
 * deadline is not started: the caller fails at once instead of sleeping into a sure timeout.
 */
export function decideRetry(o: {
  attempt: number;
  retryable: boolean;
  retryAfterMs?: number | undefined;
  now: number;
  deadline: number;
  policy?: RetryPolicy;
  random?: () => number;
}): RetryDecision {
  const p = o.policy ?? DEFAULT_RETRY;
  if (!o.retryable) return { retry: false, reason: 'not-retryable' };
  if (o.attempt + 1 >= p.maxAttempts) return { retry: false, reason: 'attempts' };
  const jitter = backoffMs(o.attempt, p, o.random);
  const waitMs = o.retryAfterMs !== undefined ? Math.max(o.retryAfterMs, jitter) : jitter;
  if (o.now + waitMs >= o.deadline) return { retry: false, reason: 'deadline' };
  return { retry: true, waitMs };
}
