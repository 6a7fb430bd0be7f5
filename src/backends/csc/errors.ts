// CSC failures (Cloud Signature Consortium API v1, spec 1.0.4.0 §10 "Error handling": an HTTP
// status with `{"error": "...", "error_description": "..."}`) and how each becomes ONE CK_RV with
// one sentence saying what to do (docs/csc-backend.md "Errors"). The codes and sentences are in
// the one catalogue, core/errors.ts (SIGNBRIDGE_ERR_CSC_*); CscError also keeps the HTTP status.
import { ERRORS, SignbridgeError, type ErrorCode, type ParamsOf } from '../../core/errors.js';

export type CscErrorCode = Extract<ErrorCode, `SIGNBRIDGE_ERR_CSC_${string}`>;

export class CscError extends SignbridgeError {
  override name = 'CscError';
  readonly cscCode: CscErrorCode;
  readonly status: number | undefined;
  constructor(code: CscErrorCode, message: string, opts: { ckr?: number; cause?: unknown; status?: number } = {}) {
    super(code, message, { ckr: opts.ckr ?? ERRORS[code].ckr, cause: opts.cause });
    this.cscCode = code;
    this.status = opts.status;
  }
}

export function cscError<C extends CscErrorCode>(code: C, params: ParamsOf<C>, opts: { ckr?: number; cause?: unknown; status?: number } = {}): CscError {
  const message = (ERRORS[code].message as (p: ParamsOf<C>) => string)(params);
  return new CscError(code, message, opts);
}

/** The CSC error body: `error` (a code such as invalid_request) and `error_description`. */
export interface CscServiceError {
  error?: string;
  description?: string;
  /** Document Trust Manager's lifecycle state, when the refusal is about it. */
  credentialStatus?: string;
}

const clean = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

export function parseCscError(text: string): CscServiceError {
  const t = text.trim();
  if (t === '') return {};
  try {
    const j = JSON.parse(t) as Record<string, unknown>;
    const out: CscServiceError = {};
    if (typeof j?.error === 'string' && j.error.trim()) out.error = clean(j.error);
    const d = j?.error_description ?? j?.message;
    if (typeof d === 'string' && d.trim()) out.description = clean(d);
    if (typeof j?.credential_status === 'string' && j.credential_status.trim()) out.credentialStatus = clean(j.credential_status).toUpperCase();
    return out;
  } catch {
    const title = /<title>([^<]*)<\/title>/i.exec(t)?.[1];
    return { description: clean(title ?? t.replace(/<[^>]*>/g, ' ')).slice(0, 120) };
  }
}

export interface RefusalContext {
  host: string;
  what: string;
  credential?: string | undefined;
}

/**
 * One refusal → one catalogue error. The spec's codes first (invalid_otp, invalid_pin,
 * invalid_token …), then the words of `invalid_request` descriptions, which the spec uses for
 * most failures ("SAD expired", "Invalid parameter SAD", "credential is suspended").
 */
export function classifyRefusal(status: number, body: CscServiceError, ctx: RefusalContext): CscError {
  const code = (body.error ?? '').toLowerCase();
  const text = `${code} ${body.description ?? ''}`.toLowerCase();
  const detail = [body.error, body.description].filter(Boolean).join(': ') || `HTTP ${status}`;
  const credential = ctx.credential ?? '(unknown)';
  const o = { status };
  if (code === 'invalid_otp' || /\botp\b.*\b(invalid|wrong|incorrect|expired)|(invalid|wrong|incorrect) otp/.test(text)) {
    return cscError('SIGNBRIDGE_ERR_CSC_OTP_INVALID', { credential, detail }, o);
  }
  if (code === 'invalid_pin' || /\bpin\b.*\b(invalid|wrong|incorrect)|(invalid|wrong|incorrect) pin/.test(text)) {
    return cscError('SIGNBRIDGE_ERR_CSC_PIN_INVALID', { credential, detail }, o);
  }
  if (code === 'credential_not_active' || body.credentialStatus || /\b(suspended|revoked|deactivated|disabled|pending_issuance|not active|inactive)\b/.test(text)) {
    const state = body.credentialStatus ?? (/suspended/.test(text) ? 'SUSPENDED' : /revoked/.test(text) ? 'REVOKED' : /pending/.test(text) ? 'PENDING_ISSUANCE' : 'DEACTIVATED');
    return cscError('SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE', { credential, state }, o);
  }
  if (code === 'pin_locked' || /\blocked\b|too many/.test(text)) return cscError('SIGNBRIDGE_ERR_CSC_LOCKED', { credential, detail }, o);
  if (code === 'invalid_sad' || code === 'expired_sad' || /\bsad\b/.test(text)) return cscError('SIGNBRIDGE_ERR_CSC_SAD_EXPIRED', { credential, detail }, o);
  if (/credentialid|credential.*(not found|unknown|invalid)/.test(text) || (status === 404 && ctx.credential)) {
    return cscError('SIGNBRIDGE_ERR_CSC_CREDENTIAL_NOT_FOUND', { credential, detail }, o);
  }
  if (/signalgo|hashalgo|algorithm/.test(text)) return cscError('SIGNBRIDGE_ERR_CSC_SIG_ALG', { credential, detail }, o);
  if (status === 401 || code === 'invalid_token' || code === 'invalid_client' || code === 'unauthorized_client' || code === 'access_denied') {
    return cscError('SIGNBRIDGE_ERR_CSC_AUTH', { host: ctx.host, detail }, o);
  }
  return cscError('SIGNBRIDGE_ERR_CSC_REFUSED', { host: ctx.host, what: ctx.what, detail }, o);
}

const SERVER_CERT_UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE)$/;

/** A TLS failure retrying cannot fix, else undefined. */
export function classifyTlsError(e: unknown, host: string): CscError | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && SERVER_CERT_UNTRUSTED.test(code)) {
    return cscError('SIGNBRIDGE_ERR_CSC_TLS', { host, detail: `the server's certificate is not trusted: ${code}` }, { cause: e });
  }
  return undefined;
}
