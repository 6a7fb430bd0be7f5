// What the HTTP backends (stm, csc) share: ONE undici Agent per service (keep-alive, TLS session
// reuse) and the attempt loop of one request under an absolute deadline. Each backend keeps its
// own rules (which failure is retryable, which error code a failure becomes) and passes them in,
// so both run the same loop without importing each other.
import type { Logger } from 'pino';
import { Agent } from 'undici';
import { decideRetry, parseRetryAfter, type RetryPolicy } from './http-retry.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The pooled agent. undici keeps TLS sessions per origin (maxCachedSessions): a reconnect after
 * the server's keep-alive ran out resumes the session instead of a full (m)TLS handshake.
 */
export function pooledAgent(connect: Record<string, unknown>, connections: number): Agent {
  return new Agent({
    connect: { ...connect, maxCachedSessions: 100 },
    connections,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 10 * 60_000,
    pipelining: 1,
  });
}

export interface HttpRequest {
  origin: string;
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string | undefined;
}

/** One backend's rules for the attempt loop. */
export interface AttemptRules {
  policy: RetryPolicy;
  /** Is a thrown network error worth another attempt? */
  retryableError(e: unknown): boolean;
  /** For an HTTP answer: undefined hands it back to the caller; a string retries it, described so. */
  retryableAnswer(status: number, text: string): string | undefined;
  /** A TLS failure no retry can fix, as the backend's error; undefined for other errors. */
  tlsError(e: unknown): Error | undefined;
  /** What `last` says when the deadline passed while attempt `attempt` (0-based) waited for its answer. */
  noAnswer(attempt: number, last: string): string;
  deadlineError(last: string, cause?: unknown): Error;
  unavailableError(attempts: number, last: string, opts: { cause?: unknown; status?: number }): Error;
  /** Counters and the log line of a retry. */
  stats: { attempts: number; retries: number };
  logger?: Logger | undefined;
  retryMessage: string;
  what: string;
}

/** Send `req` until an answer the rules hand back, retrying by them; never past `deadline`. */
export async function sendWithRetries(agent: Agent, req: HttpRequest, deadline: number, rules: AttemptRules): Promise<{ status: number; text: string }> {
  let last = '';
  const retry = async (attempt: number, waitMs: number): Promise<void> => {
    rules.stats.retries++;
    rules.logger?.info({ what: rules.what, attempt: attempt + 1, last, waitMs }, rules.retryMessage);
    await sleep(waitMs);
  };
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw rules.deadlineError(last || 'the deadline passed before the first attempt');
    const signal = AbortSignal.timeout(remaining);
    rules.stats.attempts++;
    let status: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await agent.request({
        origin: req.origin,
        path: req.path,
        method: req.method,
        headers: req.headers,
        ...(req.body === undefined ? {} : { body: req.body }),
        signal,
        headersTimeout: remaining,
        bodyTimeout: remaining,
      });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch (e) {
      if (signal.aborted || Date.now() >= deadline) throw rules.deadlineError(rules.noAnswer(attempt, last), e);
      const tls = rules.tlsError(e);
      if (tls) throw tls;
      last = `${(e as { code?: string }).code ?? (e as Error).name}: ${(e as Error).message}`;
      const d = decideRetry({ attempt, retryable: rules.retryableError(e), now: Date.now(), deadline, policy: rules.policy });
      if (!d.retry) {
        if (d.reason === 'deadline') throw rules.deadlineError(last, e);
        throw rules.unavailableError(attempt + 1, last, { cause: e });
      }
      await retry(attempt, d.waitMs);
      continue;
    }
    const why = rules.retryableAnswer(status, text);
    if (why === undefined) return { status, text };
    last = why;
    const d = decideRetry({ attempt, retryable: true, retryAfterMs: parseRetryAfter(retryAfter, Date.now()), now: Date.now(), deadline, policy: rules.policy });
    if (!d.retry) {
      if (d.reason === 'deadline') throw rules.deadlineError(last);
      throw rules.unavailableError(attempt + 1, last, { status });
    }
    await retry(attempt, d.waitMs);
  }
}
