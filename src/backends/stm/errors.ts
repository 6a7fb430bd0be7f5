// STM failures: the shapes error bodies arrive in (docs/stm-api.md "Errors"), and
// how each failure becomes a CK_RV plus ONE sentence saying what to do (docs/stm-backend.md
// "Errors"). The codes and sentences are in the one catalogue, core/errors.ts
// (SIGNBRIDGE_ERR_STM_*); StmError is a SignbridgeError that also keeps the HTTP status.
import { ERRORS, SignbridgeError, type ErrorCode, type ParamsOf } from '../../core/errors.js';
import { CKR_USER_NOT_LOGGED_IN } from '../../core/pkcs11.js';

export type StmErrorCode = Extract<ErrorCode, `SIGNBRIDGE_ERR_STM_${string}`>;

export class StmError extends SignbridgeError {
  override name = 'StmError';
  /** The STM catalogue code (also readable as `.code`). */
  readonly stmCode: StmErrorCode;
  /** HTTP status, when the failure was an HTTP answer. */
  readonly status: number | undefined;
  constructor(code: StmErrorCode, message: string, opts: { ckr?: number; cause?: unknown; status?: number } = {}) {
    super(code, message, { ckr: opts.ckr ?? ERRORS[code].ckr, cause: opts.cause });
    this.stmCode = code;
    this.status = opts.status;
  }
}

/** Build an StmError from the catalogue; `ckr` overrides the catalogue's. */
export function stmError<C extends StmErrorCode>(code: C, params: ParamsOf<C>, opts: { ckr?: number; cause?: unknown; status?: number } = {}): StmError {
  const message = (ERRORS[code].message as (p: ParamsOf<C>) => string)(params);
  return new StmError(code, message, opts);
}

/** What an error body said, in whichever shape it came. */
export interface ServiceError {
  code?: string;
  message?: string;
}

const clean = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

/**
 * Reads every error shape seen from STM: `{"errors":[{code,message}]}` (documented),
 * `{"error":{status,message}}` (DigiCert ONE services), Spring's `{status,error,message,path}`,
 * `{code,message}`, and non-JSON (gateway HTML, empty body) → nothing or a short text.
 */
export function parseErrorBody(text: string): ServiceError {
  const t = text.trim();
  if (t === '') return {};
  let j: unknown;
  try {
    j = JSON.parse(t);
  } catch {
    // HTML from a gateway: the title is the useful part.
    const title = /<title>([^<]*)<\/title>/i.exec(t)?.[1];
    return { message: clean(title ?? t.replace(/<[^>]*>/g, ' ')).slice(0, 120) };
  }
  if (typeof j !== 'object' || j === null) return { message: clean(String(j)) };
  const o = j as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? clean(v) : undefined);
  const out = (code: unknown, message: unknown): ServiceError => {
    const r: ServiceError = {};
    const c = str(code);
    const m = str(message);
    if (c) r.code = c;
    if (m) r.message = m;
    return r;
  };
  if (Array.isArray(o.errors) && o.errors.length > 0) {
    const first = o.errors[0] as Record<string, unknown>;
    const msgs = (o.errors as Array<Record<string, unknown>>).map((e) => str(e?.message)).filter(Boolean);
    return out(first?.code, msgs.join('; '));
  }
  if (typeof o.error === 'object' && o.error !== null) {
    const e = o.error as Record<string, unknown>;
    return out(e.code, e.message ?? e.status);
  }
  // Spring: "error" is the reason phrase, "message" the detail.
  if (typeof o.error === 'string' || 'message' in o || 'code' in o) return out(o.code, o.message ?? o.error);
  return {};
}

/** One refusal, classified by code first, then (for services that send only text) by the words used. */
export function classifyRefusal(
  status: number,
  body: ServiceError,
  ctx: { host: string; what: string; keypair?: string; sigAlg?: string },
): StmError {
  const code = (body.code ?? '').toUpperCase();
  const text = `${code} ${body.message ?? ''}`.toLowerCase();
  const detail = [body.code, body.message].filter(Boolean).join(': ') || `HTTP ${status}`;
  const keypair = ctx.keypair ?? '(unknown)';
  const o = { status };
  // Codes first (exact), then the words of services that send only text.
  if (code === 'KEYPAIR_NOT_FOUND') return stmError('SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND', { keypair, detail }, o);
  if (code === 'INVALID_SIG_ALG') return stmError('SIGNBRIDGE_ERR_STM_SIG_ALG', { keypair, detail, sigAlg: ctx.sigAlg ?? '?' }, o);
  if (code.includes('SUSPENDED')) return stmError('SIGNBRIDGE_ERR_STM_SUSPENDED', { keypair, detail }, o);
  if (code.includes('LIMIT')) return stmError('SIGNBRIDGE_ERR_STM_SIGNATURE_LIMIT', { keypair, detail }, o);
  if (code.includes('RELEASE_WINDOW')) return stmError('SIGNBRIDGE_ERR_STM_RELEASE_WINDOW', { keypair, detail }, o);
  if (code === '') {
    if (/\bsuspended\b/.test(text)) return stmError('SIGNBRIDGE_ERR_STM_SUSPENDED', { keypair, detail }, o);
    if (/signature limit|limit (exceeded|reached)/.test(text)) return stmError('SIGNBRIDGE_ERR_STM_SIGNATURE_LIMIT', { keypair, detail }, o);
    if (/release window/.test(text)) return stmError('SIGNBRIDGE_ERR_STM_RELEASE_WINDOW', { keypair, detail }, o);
  }
  if (status === 401 || status === 403) {
    return stmError('SIGNBRIDGE_ERR_STM_AUTH', { host: ctx.host, status: `HTTP ${status}`, detail: body.message ?? body.code ?? '' }, o);
  }
  if (status === 404 && ctx.keypair) return stmError('SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND', { keypair, detail }, o);
  return stmError('SIGNBRIDGE_ERR_STM_REFUSED', { host: ctx.host, what: ctx.what, status: `HTTP ${status}`, detail: body.message ?? body.code ?? '' }, o);
}

// TLS failures: OpenSSL's alert/verify codes as Node reports them. A rejected client certificate
// is a credentials problem; an untrusted server certificate a CA-file problem; neither is retried.
const CLIENT_CERT_REJECTED = /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE|DECRYPT_ERROR|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED)/;
const SERVER_CERT_UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE)$/;

/** A TLS error that retrying cannot fix, as an StmError; undefined for other errors. */
export function classifyTlsError(e: unknown, host: string): StmError | undefined {
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message : '';
  if (CLIENT_CERT_REJECTED.test(code) || CLIENT_CERT_REJECTED.test(message.toUpperCase().replace(/ /g, '_'))) {
    return stmError(
      'SIGNBRIDGE_ERR_STM_TLS',
      { host, detail: `the server rejected the client certificate: ${code || message}`, fix: 'check SM_CLIENT_CERT_FILE / --stm-client-cert-file (the PKCS#12 or PEM client certificate STM issued for this user) and SM_CLIENT_CERT_PASSWORD' },
      { ckr: CKR_USER_NOT_LOGGED_IN, cause: e },
    );
  }
  if (SERVER_CERT_UNTRUSTED.test(code)) {
    return stmError(
      'SIGNBRIDGE_ERR_STM_TLS',
      { host, detail: `the server's certificate is not trusted: ${code}`, fix: 'check SM_HOST, or give the CA that issued the server certificate with SM_CA_FILE / --stm-ca-file' },
      { cause: e },
    );
  }
  return undefined;
}
