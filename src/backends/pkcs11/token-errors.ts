// What the backing token's errors become: a SignbridgeError carrying a CK_RV for the tool, with the
// token's own code kept in the message (the log's, never a PIN).
import { SignbridgeError, sbError } from '../../core/errors.js';
import {
  CKR_ARGUMENTS_BAD, CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_DEVICE_ERROR, CKR_KEY_FUNCTION_NOT_PERMITTED,
  CKR_KEY_SIZE_RANGE, CKR_KEY_TYPE_INCONSISTENT, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID, ckrName,
} from '../../core/pkcs11.js';

/** An error thrown by pkcs11js: `.code` is the token's CK_RV. */
export function isPkcs11Error(e: unknown): e is Error & { code: number } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

/** A token failure as a SignbridgeError carrying the token's own CK_RV (passed through to the tool). */
export function tokenError(op: string, e: unknown): SignbridgeError {
  if (e instanceof SignbridgeError) return e;
  if (isPkcs11Error(e)) return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: ckrName(e.code) }, { ckr: e.code, cause: e });
  return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: (e as Error)?.message ?? String(e) }, { ckr: CKR_DEVICE_ERROR, cause: e });
}

// Token codes that describe the signing request itself, so they mean the same to the tool.
const REQUEST_ERRORS = new Set([
  CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
  CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_SIZE_RANGE,
]);

/**
 * A backing-token error during a signature, as the tool should see it. Anything else the token says
 * (CKR_SESSION_HANDLE_INVALID, CKR_OPERATION_ACTIVE, CKR_USER_NOT_LOGGED_IN …) is about the daemon's
 * own session with the token, not the tool's: the tool gets CKR_DEVICE_ERROR and the log keeps the
 * token's code. SoftHSMv2 answers bad PSS parameters with CKR_ARGUMENTS_BAD, hence that mapping.
 */
export function signError(op: string, e: unknown): SignbridgeError {
  const err = tokenError(op, e);
  if (!isPkcs11Error(e)) return err;
  const ckr = e.code === CKR_ARGUMENTS_BAD ? CKR_MECHANISM_PARAM_INVALID : REQUEST_ERRORS.has(e.code) ? e.code : CKR_DEVICE_ERROR;
  return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: ckrName(e.code) }, { ckr, cause: e });
}
