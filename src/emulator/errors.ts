// The emulator's one catalogue of API errors (docs/emulator.md "Errors"; a test checks the doc
// lists every code). The STM tutorial's documented shape is {"errors":[{code,message}]}; the
// DigiCert ONE gateway answers credential failures with {"error":{status,message}}
// (docs/stm-api.md "Errors"), so 401 uses that one.

export const API_ERRORS = {
  INVALID_REQUEST: 400, // body not JSON, a required field missing or of the wrong type
  INVALID_ALIAS: 400,
  INVALID_KEY_ALG: 400, // seed: key_alg not RSA, ECDSA or EdDSA
  INVALID_PROPERTIES: 400, // seed: key_size / curve missing or unsupported
  INVALID_SIG_ALG: 400, // seed: sig_alg unknown or not for this key's algorithm
  INVALID_HASH: 400, // hash not base64, or its length does not fit sig_alg
  INVALID_STATUS: 400, // PUT keypairs/{id} with a status we do not know
  KEYPAIR_SUSPENDED: 403,
  RELEASE_WINDOW_CLOSED: 403,
  SIGNATURE_LIMIT_EXCEEDED: 403,
  KEYPAIR_NOT_FOUND: 404, // seed
  CERTIFICATE_NOT_FOUND: 404,
  SIGNATURE_NOT_FOUND: 404,
  NOT_FOUND: 404, // no such endpoint
  METHOD_NOT_ALLOWED: 405,
  ALIAS_ALREADY_EXISTS: 409,
  REQUEST_TOO_LARGE: 413,
  HSM_ERROR: 500, // SoftHSMv2 refused an operation; the emulator's log has the detail
  INTERNAL_ERROR: 500, // a bug: the emulator's log has the detail
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Thrown by handlers; the server turns it into {"errors":[{code,message}]} with the catalogue status. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = API_ERRORS[code];
  }
}

/** Start-up / configuration problems of the emulator itself (never sent over HTTP). */
export class EmulatorError extends Error {
  constructor(
    readonly code: 'SIGNBRIDGE_ERR_EMULATOR_STATE' | 'SIGNBRIDGE_ERR_EMULATOR_CONFIG' | 'SIGNBRIDGE_ERR_EMULATOR_TOOL' | 'SIGNBRIDGE_ERR_EMULATOR_BUSY',
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
    this.name = 'EmulatorError';
  }
}
