// Retry policy for STM calls (docs/stm-backend.md "Retries"): 429 (honouring Retry-After), 502,
// 503, 504 and dropped connections are retried with capped exponential backoff and full jitter
// (../http-retry.ts); other 4xx never. No wait ever runs past the call's deadline.
export { DEFAULT_RETRY, backoffMs, decideRetry, parseRetryAfter, type RetryDecision, type RetryPolicy } from '../http-retry.js';

export const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

// Network errors that mean "the request may not have reached the service, or the connection
// died": undici's own codes and the errno codes under them.
const RETRY_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);

/** Is this thrown error (not an HTTP answer) worth another attempt? */
export function isRetryableError(e: unknown): boolean {
  for (let cur = e as { code?: unknown; cause?: unknown } | undefined, depth = 0; cur && depth < 4; cur = cur.cause as typeof cur, depth++) {
    if (typeof cur.code === 'string' && RETRY_CODES.has(cur.code)) return true;
  }
  return false;
}
