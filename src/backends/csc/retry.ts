// Which failed CSC calls may be sent again (docs/csc-backend.md "Retries"). The backoff and the
// deadline rule are shared with stm (../http-retry.ts: capped exponential backoff, full jitter,
// no wait past the deadline). What differs is the rule: credentials/authorize consumes an OTP and signHash a
// SAD's signatures, so a call that the service may have processed is never repeated; only reads
// (info, list, credentials/info) are retried after an answer was possibly lost.
export { DEFAULT_RETRY, decideRetry, parseRetryAfter, type RetryPolicy } from '../http-retry.js';

/**
 * Statuses that say "not processed": 429 (rate limited, RFC 6585 §4) and 503 (RFC 9110 §15.6.4)
 * for every call; 502/504 (a gateway lost the answer: maybe processed) for reads only.
 */
export function retryableStatus(status: number, idempotent: boolean): boolean {
  if (status === 429 || status === 503) return true;
  return idempotent && (status === 502 || status === 504);
}

// The request never left: the connection was refused or could not be made.
const NOT_SENT = new Set(['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
// The connection died: the request may have reached the service.
const MAYBE_SENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Is this thrown network error worth another attempt for a call of this kind? */
export function retryableError(e: unknown, idempotent: boolean): boolean {
  for (let cur = e as { code?: unknown; cause?: unknown } | undefined, depth = 0; cur && depth < 4; cur = cur.cause as typeof cur, depth++) {
    if (typeof cur.code !== 'string') continue;
    if (NOT_SENT.has(cur.code)) return true;
    if (MAYBE_SENT.has(cur.code)) return idempotent;
  }
  return false;
}
