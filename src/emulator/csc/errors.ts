// The CSC emulator's one catalogue of errors (docs/csc-emulator.md "Errors"; a test checks the
// doc lists every code). Body shape of CSC API v1.0.4.0 §10.1 and RFC 6749 §5.2:
// {"error": code, "error_description": text}. Codes beyond the spec's are the emulator's
// (marked so in the doc) and give a client one stable code per condition it must react to.

export const CSC_ERRORS = {
  invalid_request: 400, // a parameter missing, of the wrong type or not valid (the spec's catch-all)
  invalid_pin: 400, // authorize: the PIN is wrong
  invalid_otp: 400, // authorize: the OTP is wrong, expired, used up, or none was sent
  pin_locked: 400, // authorize: too many wrong PINs; an administrator must unlock the credential
  invalid_sad: 400, // signHash: the SAD is unknown, for another credential, used up, or bound to other hashes
  expired_sad: 400, // signHash: the SAD's lifetime is over
  credential_not_active: 400, // authorize / signHash / sendOTP: the credential is not ACTIVE (body names its status)
  invalid_client: 401, // oauth2/token: unknown client or wrong secret (RFC 6749 §5.2)
  invalid_grant: 400, // oauth2/token: refresh token unknown, expired or revoked (RFC 6749 §5.2)
  unsupported_grant_type: 400, // oauth2/token: not client_credentials or refresh_token
  access_denied: 403, // the admin endpoint from a non-loopback address
  invalid_token: 401, // an API call without a valid (present, known, unexpired) access token (RFC 6750 §3.1)
  not_found: 404, // no such endpoint
  method_not_allowed: 405,
  request_too_large: 413,
  temporarily_unavailable: 503, // fault injection (503); RFC 6749 §4.1.2.1 names the code
  server_error: 500, // SoftHSMv2 refused an operation, or a bug: the emulator's log has the detail
} as const;

export type CscErrorCode = keyof typeof CSC_ERRORS;

/** Thrown by handlers; the server turns it into {"error","error_description"} with the catalogue status. */
export class CscError extends Error {
  readonly status: number;
  constructor(
    readonly code: CscErrorCode,
    message: string,
    /** extra fields of the body, e.g. credential_status */
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'CscError';
    this.status = CSC_ERRORS[code];
  }
}
