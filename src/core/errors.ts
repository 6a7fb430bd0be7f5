// One catalogue of signbridge errors (fastify/undici style): a stable `code`, a message that says
// what to do next, and, where a daemon reply carries it, the CK_RV (`ckr`). Messages are built
// from the parameters given here only — never pass a PIN, API key or password as a parameter.
import {
  CKR_DATA_LEN_RANGE,
  CKR_DEVICE_ERROR,
  CKR_FUNCTION_FAILED,
  CKR_FUNCTION_REJECTED,
  CKR_KEY_FUNCTION_NOT_PERMITTED,
  CKR_KEY_HANDLE_INVALID,
  CKR_MECHANISM_INVALID,
  CKR_MECHANISM_PARAM_INVALID,
  CKR_PIN_INCORRECT,
  CKR_PIN_LOCKED,
  CKR_USER_NOT_LOGGED_IN,
  ckrName,
} from './pkcs11.js';

interface Entry<P> {
  /** CK_RV a daemon reply carries for this error (protocol.md "SIGN" error table). */
  ckr: number;
  message: (p: P) => string;
}
function entry<P = Record<string, never>>(ckr: number, message: (p: P) => string): Entry<P> {
  return { ckr, message };
}

/** An STM refusal about one keypair. */
type Refusal = { keypair: string; detail: string };

export const ERRORS = {
  // --- connection / protocol ---
  SIGNBRIDGE_ERR_NO_DAEMON: entry<{ path: string; reason: string }>(
    CKR_DEVICE_ERROR,
    (p) => `no signbridge daemon at ${p.path} (${p.reason}): start it with \`signbridge daemon --backend pkcs11 …\` or set SIGNBRIDGE_SOCKET to the socket it listens on`,
  ),
  SIGNBRIDGE_ERR_TIMEOUT: entry<{ path: string; what: string; ms: number }>(
    CKR_DEVICE_ERROR,
    (p) => `the signbridge daemon at ${p.path} did not answer ${p.what} within ${p.ms} ms: check the daemon's log, or restart it`,
  ),
  SIGNBRIDGE_ERR_CONNECTION_CLOSED: entry<{ path: string; what: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the signbridge daemon at ${p.path} closed the connection during ${p.what}: check the daemon's log`,
  ),
  SIGNBRIDGE_ERR_PROTOCOL: entry<{ detail: string }>(
    CKR_DEVICE_ERROR,
    (p) => `malformed signbridge frame: ${p.detail} (module and daemon versions may differ: update both from the same release)`,
  ),
  SIGNBRIDGE_ERR_VERSION: entry<{ server: string; client: string; upgrade: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `signbridge daemon speaks protocol ${p.server}, module speaks ${p.client}: upgrade the ${p.upgrade}`,
  ),
  SIGNBRIDGE_ERR_DAEMON_REPLY: entry<{ what: string; message: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `the signbridge daemon refused ${p.what}: ${p.message}`,
  ),

  // --- daemon start-up ---
  SIGNBRIDGE_ERR_DAEMON_RUNNING: entry<{ path: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `another signbridge daemon already answers on ${p.path}: stop it first, or start this one with --socket <other path>`,
  ),
  SIGNBRIDGE_ERR_SOCKET_DIR: entry<{ dir: string; problem: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `unsafe socket directory ${p.dir}: ${p.problem}; remove it or fix it (owner = the daemon's user, mode 0700), or choose another with --socket`,
  ),
  SIGNBRIDGE_ERR_CONFIG: entry<{ detail: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `invalid signbridge configuration: ${p.detail} (see \`signbridge daemon --help\`)`,
  ),
  SIGNBRIDGE_ERR_PIN_MISSING: entry(
    CKR_FUNCTION_FAILED,
    () => 'no token PIN given: set SIGNBRIDGE_PIN or pass --pin-file <file> (a file readable only by you, mode 0600); a PIN is never accepted as a flag',
  ),
  SIGNBRIDGE_ERR_PIN_FILE: entry<{ file: string; problem: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `cannot use PIN file ${p.file}: ${p.problem}`,
  ),
  SIGNBRIDGE_ERR_PIN_INCORRECT: entry<{ token: string; rv: string }>(
    CKR_PIN_INCORRECT,
    (p) => `the token "${p.token}" refused the PIN (${p.rv}): check SIGNBRIDGE_PIN or the PIN file; repeated failures may lock the token`,
  ),
  SIGNBRIDGE_ERR_PKCS11_LIBRARY: entry<{ library: string; reason: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `cannot load the PKCS#11 library ${p.library} (${p.reason}): check --pkcs11-library (for SoftHSMv2: /usr/lib/softhsm/libsofthsm2.so, \`apt-get install -y softhsm2\`)`,
  ),
  SIGNBRIDGE_ERR_TOKEN_NOT_FOUND: entry<{ wanted: string; available: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `no token ${p.wanted} in the PKCS#11 library (tokens present: ${p.available}): check --token-label / --slot-index`,
  ),

  // --- signing (protocol.md "SIGN" error table) ---
  SIGNBRIDGE_ERR_KEY_NOT_FOUND: entry<{ handle: string }>(
    CKR_KEY_HANDLE_INVALID,
    (p) => `no key with handle ${p.handle}: the daemon's inventory changed; re-read the key list (\`signbridge keys\`)`,
  ),
  SIGNBRIDGE_ERR_MECHANISM: entry<{ mechanism: string; key: string }>(
    CKR_MECHANISM_INVALID,
    (p) => `key ${p.key} cannot sign with ${p.mechanism}: pick a mechanism the key lists (\`signbridge keys\`)`,
  ),
  SIGNBRIDGE_ERR_MECHANISM_PARAM: entry<{ detail: string }>(
    CKR_MECHANISM_PARAM_INVALID,
    (p) => `bad signature parameters: ${p.detail}`,
  ),
  SIGNBRIDGE_ERR_DATA_LEN: entry<{ detail: string }>(
    CKR_DATA_LEN_RANGE,
    (p) => `wrong data length for this signature: ${p.detail}`,
  ),
  SIGNBRIDGE_ERR_TOKEN: entry<{ op: string; rv: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the backing token failed during ${p.op} (${p.rv}): check the token (is it present, is the PIN still valid?) and the daemon's log`,
  ),

  // --- native binaries ---
  SIGNBRIDGE_ERR_NATIVE_NOT_BUILT: entry<{ what: string; tried: string; alternative?: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `${p.what} not found; tried: ${p.tried}. Run \`npm run build\` in the signbridge package (needs cmake and g++)${p.alternative ? `, or ${p.alternative}` : ''}`,
  ),
  SIGNBRIDGE_ERR_NATIVE_LOAD: entry<{ path: string; reason: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `cannot load ${p.path}: ${p.reason}. Rebuild it for this Node version with \`npm run build\``,
  ),
  SIGNBRIDGE_ERR_PKCS11_BINDING: entry<{ tried: string; reason: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `the PKCS#11 binding (graphene-pk11 / pkcs11js) is not available: ${p.reason}; tried: ${p.tried}. Install a compiler (apt-get install -y g++ make python3) and reinstall signbridge so npm builds pkcs11js, or use a signbridge package with prebuilds for ${process.platform}-${process.arch}`,
  ),
  SIGNBRIDGE_ERR_PEERCRED: entry<{ reason: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `cannot read the peer credentials of a socket client: ${p.reason}`,
  ),

  // --- CLI ---
  SIGNBRIDGE_ERR_USAGE: entry<{ detail: string; command: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `${p.detail}: see \`signbridge ${p.command} --help\``,
  ),
  SIGNBRIDGE_ERR_NOT_AVAILABLE: entry<{ command: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `\`signbridge ${p.command}\` is not available yet in this version: see \`signbridge --help\` for the commands there are`,
  ),

  // --- STM backend (docs/stm-backend.md "Errors"): the message is the daemon's one log line and
  // what the module prints under SIGNBRIDGE_DEBUG, so it never holds a secret ---
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

  // --- CSC backend (docs/csc-backend.md "Errors"): one CK_RV per CSC failure; the message is the
  // daemon's one log line and what SIGNBRIDGE_DEBUG prints, so it never holds a secret ---
  SIGNBRIDGE_ERR_CSC_CONFIG: entry<{ detail: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `invalid CSC configuration: ${p.detail} (see docs/csc-backend.md and \`signbridge daemon --help\`)`,
  ),
  SIGNBRIDGE_ERR_CSC_AUTH: entry<{ host: string; detail: string }>(
    CKR_USER_NOT_LOGGED_IN,
    (p) => `the CSC service at ${p.host} refused the OAuth client credentials (${p.detail}): check SIGNBRIDGE_CSC_CLIENT_ID and the client secret (SIGNBRIDGE_CSC_CLIENT_SECRET or --csc-client-secret-file)`,
  ),
  SIGNBRIDGE_ERR_CSC_TLS: entry<{ host: string; detail: string }>(
    CKR_DEVICE_ERROR,
    (p) => `TLS connection to the CSC service at ${p.host} failed (${p.detail}): check SIGNBRIDGE_CSC_URL, or give the CA of the server certificate with SIGNBRIDGE_CSC_CA_FILE / --csc-ca-file`,
  ),
  SIGNBRIDGE_ERR_CSC_OTP_INVALID: entry<{ credential: string; detail: string }>(
    CKR_PIN_INCORRECT,
    (p) => `the CSC service refused the OTP for ${p.credential} (${p.detail}); nothing was signed: request a new OTP with \`signbridge otp ${p.credential}\` and log in again with it (C_Login(CKU_CONTEXT_SPECIFIC); pdfsig -kpw; pkcs11-provider: pkcs11-module-token-pin)`,
  ),
  SIGNBRIDGE_ERR_CSC_PIN_INVALID: entry<{ credential: string; detail: string }>(
    CKR_PIN_INCORRECT,
    (p) => `the CSC service refused the PIN for ${p.credential} (${p.detail}); nothing was signed: check the credential's PIN (SIGNBRIDGE_CSC_PIN or --csc-pin-file); repeated failures may lock the credential`,
  ),
  SIGNBRIDGE_ERR_CSC_LOCKED: entry<{ credential: string; detail: string }>(
    CKR_PIN_LOCKED,
    (p) => `the CSC service will not authorise ${p.credential} (${p.detail}): the credential is locked or not ACTIVE; ask the Document Trust Manager administrator to unlock or reactivate it`,
  ),
  SIGNBRIDGE_ERR_CSC_NOT_AUTHORIZED: entry<{ credential: string }>(
    CKR_USER_NOT_LOGGED_IN,
    (p) => `${p.credential} needs an authorisation per use and none is held: run \`signbridge otp ${p.credential}\`, then give the OTP as the context-specific login (C_Login(CKU_CONTEXT_SPECIFIC) after C_SignInit; pdfsig -kpw <otp>; pkcs11-provider: pkcs11-module-token-pin = file:<otp file>); docs/csc-backend.md "Authorisation"`,
  ),
  SIGNBRIDGE_ERR_CSC_SAD_EXPIRED: entry<{ credential: string; detail: string }>(
    CKR_USER_NOT_LOGGED_IN,
    (p) => `the authorisation (SAD) for ${p.credential} expired or is used up (${p.detail}); nothing was signed: request a new OTP with \`signbridge otp ${p.credential}\` and log in again (C_Login(CKU_CONTEXT_SPECIFIC))`,
  ),
  SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE: entry<{ credential: string; state: string }>(
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    (p) => `the CSC credential ${p.credential} is ${p.state}, and only ACTIVE credentials sign: ask the Document Trust Manager administrator to reactivate it, or use another credential`,
  ),
  SIGNBRIDGE_ERR_CSC_CREDENTIAL_NOT_FOUND: entry<{ credential: string; detail: string }>(
    CKR_KEY_HANDLE_INVALID,
    (p) => `the CSC service does not know credential ${p.credential} (${p.detail}); the daemon lists its credentials again: check \`signbridge keys\``,
  ),
  SIGNBRIDGE_ERR_CSC_SIG_ALG: entry<{ credential: string; detail: string }>(
    CKR_MECHANISM_INVALID,
    (p) => `the CSC service refused the signature algorithm for ${p.credential} (${p.detail}): pick a mechanism \`signbridge keys\` lists for the key`,
  ),
  SIGNBRIDGE_ERR_CSC_REFUSED: entry<{ host: string; what: string; detail: string }>(
    CKR_FUNCTION_FAILED,
    (p) => `the CSC service at ${p.host} refused ${p.what} (${p.detail}): check the request against the service's audit log; signbridge does not retry this`,
  ),
  SIGNBRIDGE_ERR_CSC_UNAVAILABLE: entry<{ host: string; what: string; attempts: number; last: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the CSC service at ${p.host} did not complete ${p.what} after ${p.attempts} attempt(s) (last: ${p.last}): check the network and the service status, then sign again`,
  ),
  SIGNBRIDGE_ERR_CSC_DEADLINE: entry<{ host: string; what: string; ms: number; last: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the CSC service at ${p.host} did not complete ${p.what} within ${p.ms} ms (${p.last}): check the network and the service status, or raise --sign-timeout-ms`,
  ),
  SIGNBRIDGE_ERR_CSC_RESPONSE: entry<{ host: string; what: string; detail: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the CSC service at ${p.host} answered ${p.what} with something signbridge cannot use (${p.detail}): check that SIGNBRIDGE_CSC_URL is the service's base URL (endpoints under /csc/v1/)`,
  ),
  SIGNBRIDGE_ERR_CSC_BAD_SIGNATURE: entry<{ credential: string }>(
    CKR_DEVICE_ERROR,
    (p) => `the signature the CSC service returned for ${p.credential} does not verify against its certificate's public key; not handed to the tool. Report it to the service's administrator`,
  ),
} as const;

export type ErrorCode = keyof typeof ERRORS;
export type ParamsOf<C extends ErrorCode> = (typeof ERRORS)[C] extends Entry<infer P> ? P : never;

export class SignbridgeError extends Error {
  override name = 'SignbridgeError';
  readonly code: ErrorCode;
  /** The CK_RV a daemon reply carries for this error. */
  readonly ckr: number;
  constructor(code: ErrorCode, message: string, opts: { ckr?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.ckr = opts.ckr ?? ERRORS[code].ckr;
  }
}

/** Build an error from the catalogue. `ckr` overrides the catalogue's (e.g. a token's own CK_RV). */
export function sbError<C extends ErrorCode>(
  code: C,
  params: ParamsOf<C>,
  opts: { ckr?: number; cause?: unknown } = {},
): SignbridgeError {
  const e = ERRORS[code] as Entry<ParamsOf<C>>;
  return new SignbridgeError(code, e.message(params), opts);
}

export function isSignbridgeError(e: unknown): e is SignbridgeError {
  return e instanceof SignbridgeError;
}

/** A CK_RV for any thrown value: a SignbridgeError's own, else CKR_FUNCTION_FAILED. */
export function ckrOf(e: unknown): number {
  return e instanceof SignbridgeError ? e.ckr : CKR_FUNCTION_FAILED;
}

export { ckrName };
