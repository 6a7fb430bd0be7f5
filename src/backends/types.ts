// The interface every signing backend implements (design.md: src/backends/types.ts). The daemon
// resolves a SIGN's key_handle to one of the backend's own KeyRecords once (src/daemon/dispatcher.ts)
// and calls sign(key, params) with it; errors are thrown as SignbridgeError whose `.ckr` becomes the
// reply's rv (protocol.md "SIGN" error table). SignParams is the backend's view of a signature;
// the decoded wire message is protocol.ts's SignRequest (bigint fields, key_handle).
import type { NativeSignerApi } from '../native/loader.js';
import type { KeyRecord, TokenRecord } from '../core/keys.js';

/** What to sign, once the key is known (numbers, not the wire's bigints). */
export interface SignParams {
  /** Signing primitive: CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_ECDSA or CKM_EDDSA. */
  mechanism: number;
  /** Digest in `data` (CKM_SHA256 …), 0 when unknown / EdDSA. */
  hashAlg: number;
  /** PSS only: CKG_MGF1_*; else 0. */
  mgf: number;
  /** PSS only; else 0. */
  saltLen: number;
  data: Buffer;
  /** Which client asks (the daemon's connection number): a backend may use it to see contention. */
  client?: number | undefined;
}

export interface Backend {
  readonly name: string;
  /** Connect, authenticate, list keys. Throws SignbridgeError with a message that says what to fix. */
  start(): Promise<void>;
  /** The backing tokens and their keys (after start()). */
  tokens(): TokenRecord[];
  /** Changes whenever tokens() changes (protocol.md "GET_INVENTORY" generation). */
  generation(): bigint;
  /**
   * Sign with `key`, a KeyRecord this backend listed in tokens() (it carries the backend's own
   * per-key state, so no second lookup). Returns the signature in PKCS#11 form (RSA: modulus
   * bytes; ECDSA: r‖s; EdDSA: 64 bytes), synchronously when the backend could sign at once.
   */
  sign(key: KeyRecord, params: SignParams): Buffer | Promise<Buffer>;
  /**
   * protocol.md "AUTHORIZE": a context-specific login's OTP/PIN for a key with
   * alwaysAuthenticate. Resolves with how many signatures the authorisation allows; throws a
   * SignbridgeError whose `.ckr` is one C_Login may return. Backends without such keys omit it.
   */
  authorize?(key: KeyRecord, secret: Buffer): Promise<number>;
  /**
   * The native SIGN path of this backend's fast keys (docs/performance.md "The native signing
   * path"), when it has one: the daemon offers it SIGN frames first and handles what it declines.
   */
  readonly native?: NativeSignerApi | undefined;
  /** Finish in-flight signatures, then release the token. */
  close(): Promise<void>;
}
