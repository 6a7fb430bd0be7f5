// STM failures: the shapes error bodies arrive in (STM-API.md "Errors — accept every shape"), and
// how each failure becomes a CK_RV plus ONE sentence saying what to do (docs/stm-backend.md
// "Errors"). The sentence is the error's message: the daemon's "sign failed" log line carries it,
// and so does the reply the module prints under SIGNBRIDGE_DEBUG — so it never holds a secret.
//
// These codes live here rather than in core/errors.ts (owned elsewhere for now); StmError is a
// SignbridgeError, so the IPC server turns `.ckr` into the reply's rv like any other.
import { SignbridgeError, type ErrorCode } from '../../core/errors.js';
import {
  CKR_DEVICE_ERROR, CKR_FUNCTION_FAILED, CKR_FUNCTION_REJECTED, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,
  CKR_MECHANISM_INVALID, CKR_USER_NOT_LOGGED_IN,
} from '../../core/pkcs11.js';

interface Entry<P> {
  ckr: number;
  message: (p: P) => string;
}
const entry = <P>(ckr: number, message: (p: P) => string): Entry<P> => ({ ckr, message });

type Refusal = { keypair: string; detail: string };

export const STM_ERRORS = {
  SIGNBRIDGE_ERR_STM_CONFIG: entry<{ detail: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `invalid STM configuration: ${p.detail} (see docs/stm-backend.md and \`signbridge daemon --help\`)`,
  ),
  SIGNBRIDGE_ERR_STM_AUTH: entry<{ host: string; status: string; detail: string }>(
    CKR_USER_NOT_LOGGED_IN,
    (p) => `STM at ${p.host} refused the credentials (${p.status}${p.detail ? `: ${p.detail}` : ''}): check SM_API_KEY and the client certificate (SM_CLIENT_CERT_FILE, SM_CLIENT_CERT_PASSWORD); the STM user needs the SSM_SIGNER or SSM_BUILD_ENGINEER role`,
  ),
  SIGNBRIDGE_ERR_STM_TLS: entry<{ host: string; detail: string; fix: string }>(
    CKR_DEVICE_ERROR,
    (p) => `TLS connection to STM at ${p.host} failed (${p.detail}): ${p.fix}`,
  ),
  SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND: entry<Refusal>(
    CKR_KEY_HANDLE_INVALID,
    (p) => `STM refused: keypair ${p.keypair} was not found or is not accessible (${p.detail}); the daemon refreshes its key list, check \`signbridge keys\` and the user's access to the keypair`,
  ),
  SIGNBRIDGE_ERR_STM_SIG_ALG: entry<Refusal & { sigAlg: string }>(
    CKR_MECHANISM_INVALID,
    (p) => `STM refused signature algorithm ${p.sigAlg} for keypair ${p.keypair} (${p.detail}): pick another mechanism \`signbridge keys\` lists for the key`,
  ),
  SIGNBRIDGE_ERR_STM_SUSPENDED: entry<Refusal>(
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    (p) => `STM refused: the keypair ${p.keypair} is suspended (${p.detail}); ask an STM admin to resume it`,
  ),
  SIGNBRIDGE_ERR_STM_RELEASE_WINDOW: entry<Refusal>(
    CKR_FUNCTION_REJECTED,
    (p) => `STM refused: the release window of keypair ${p.keypair} is closed (${p.detail}); ask an STM admin to open a release window (or approve the request), then sign again`,
  ),
  SIGNBRIDGE_ERR_STM_SIGNATURE_LIMIT: entry<Refusal>(
    CKR_FUNCTION_REJECTED,
    (p) => `STM refused: keypair ${p.keypair} has used up its signature limit (${p.detail}); ask an STM admin to raise the limit or open a new release window`,
  ),
  SIGNBRIDGE_ERR_STM_REFUSED: entry<{ host: string; what: string; status: string; detail: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `STM at ${p.host} refused ${p.what} (${p.status}${p.detail ? `: ${p.detail}` : ''}): check the request against the STM audit log; signbridge does not retry this`,
  ),
  SIGNBRIDGE_ERR_STM_UNAVAILABLE: entry<{ host: string; what: string; attempts: number; last: string }>(
    CKR_DEVICE_ERROR,
    (p) => `STM at ${p.host} did not complete ${p.what} after ${p.attempts} attempt(s) (last: ${p.last}): check the network and the service status, then sign again`,
  ),
  SIGNBRIDGE_ERR_STM_DEADLINE: entry<{ host: string; what: string; ms: number; last: string }>(
    CKR_DEVICE_ERROR,
    (p) => `STM at ${p.host} did not complete ${p.what} within ${p.ms} ms (${p.last}): check the network and the service status, or raise --sign-timeout-ms`,
  ),
  SIGNBRIDGE_ERR_STM_RESPONSE: entry<{ host: string; what: string; detail: string }>(
    CKR_DEVICE_ERROR,
    (p) => `STM at ${p.host} answered ${p.what} with something signbridge cannot use (${p.detail}): check that SM_HOST points at the DigiCert ONE clientauth host`,
  ),
  SIGNBRIDGE_ERR_STM_BAD_SIGNATURE: entry<{ keypair: string; sigAlg: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the signature STM returned for keypair ${p.keypair} (${p.sigAlg}) does not verify against its certificate's public key; not handed to the tool. Check that the keypair's certificate in STM belongs to the key, and report it to the STM admin`,
  ),
  SIGNBRIDGE_ERR_STM_REQUEST: entry<{ detail: string }>(CKR_FUNCTION_FAILED, (p) => `cannot sign through STM: ${p.detail}`),
} as const;

export type StmErrorCode = keyof typeof STM_ERRORS;
type ParamsOf<C extends StmErrorCode> = (typeof STM_ERRORS)[C] extends Entry<infer P> ? P : never;

export class StmError extends SignbridgeError {
  override name = 'StmError';
  /** The STM catalogue code (also readable as `.code`). */
  readonly stmCode: StmErrorCode;
  /** HTTP status, when the failure was an HTTP answer. */
  readonly status: number | undefined;
  constructor(code: StmErrorCode, message: string, opts: { ckr?: number; cause?: unknown; status?: number } = {}) {
    // The base class types `code` as a core catalogue code; ours extends that catalogue.
    super(code as unknown as ErrorCode, message, { ckr: opts.ckr ?? STM_ERRORS[code].ckr, cause: opts.cause });
    this.stmCode = code;
    this.status = opts.status;
  }
}

/** Build an StmError from the catalogue; `ckr` overrides the catalogue's. */
export function stmError<C extends StmErrorCode>(code: C, params: ParamsOf<C>, opts: { ckr?: number; cause?: unknown; status?: number } = {}): StmError {
  const e = STM_ERRORS[code] as Entry<ParamsOf<C>>;
  return new StmError(code, e.message(params), opts);
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
