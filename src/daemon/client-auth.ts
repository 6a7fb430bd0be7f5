// The optional per-client secret (protocol.md "LOGIN"; README "Security model"). With
// --client-secret-file the daemon sets CKF_LOGIN_REQUIRED and a connection may SIGN only after a
// LOGIN whose PIN matches. The comparison is constant-time over SHA-256 digests, so neither the
// content nor the length of the secret leaks through timing; wrong PINs are rate-limited per
// peer uid (5 failures within 60 s → CKR_PIN_LOCKED, without comparing, until the window passes).
// The secret itself is not kept: only its digest.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { CKR_PIN_INCORRECT, CKR_PIN_LOCKED, ckrName } from '../core/pkcs11.js';
import { CKU_USER, type LoginRequest } from '../ipc/protocol.js';
import type { PeerInfo } from './server.js';

export interface LoginResult {
  /** 0: the connection is authenticated; else the CK_RV of the reply */
  rv: number;
  /** the reply's sentence when rv != 0 (never the PIN) */
  message: string;
}

/** protocol.md "LOGIN": the daemon's client-secret policy, as the dispatcher asks it. */
export interface LoginGate {
  /** true: SIGN on a connection without a successful LOGIN gets CKR_USER_NOT_LOGGED_IN */
  readonly required: boolean;
  /** Never throws; logs its own line per failure on `log` (the connection's logger). */
  login(req: LoginRequest, peer: PeerInfo | undefined, log: Logger): LoginResult;
}

/** PKCS#11 v2.40 §3.6 (not in core/pkcs11.ts yet). */
export const CKR_USER_TYPE_INVALID = 0x103;
export const MAX_FAILURES = 5;
export const FAILURE_WINDOW_MS = 60_000;

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}

export interface ClientSecretOptions {
  maxFailures?: number;
  windowMs?: number;
  /** clock (ms), for tests */
  now?: () => number;
}

export class ClientSecret implements LoginGate {
  readonly required = true;
  private readonly digest: Buffer;
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  /** peer uid → times (ms) of the failures still inside the window */
  private readonly failures = new Map<number, number[]>();

  /** `secret` is wiped after hashing. */
  constructor(secret: Buffer, opts: ClientSecretOptions = {}) {
    this.digest = sha256(secret);
    secret.fill(0);
    this.maxFailures = opts.maxFailures ?? MAX_FAILURES;
    this.windowMs = opts.windowMs ?? FAILURE_WINDOW_MS;
    this.now = opts.now ?? Date.now;
  }

  login(req: LoginRequest, peer: PeerInfo | undefined, log: Logger): LoginResult {
    // protocol.md "LOGIN": only CKU_USER; not a wrong PIN, so it does not count as a failure.
    if (req.user_type !== BigInt(CKU_USER)) {
      const message = `user type ${req.user_type} is not CKU_USER (1): signbridge only has a user login (C_Login with CKU_USER)`;
      log.warn({ rv: 'CKR_USER_TYPE_INVALID' }, 'LOGIN refused: wrong user type');
      return { rv: CKR_USER_TYPE_INVALID, message };
    }
    // Without SO_PEERCRED (in-process use) all peers share one bucket.
    const uid = peer?.uid ?? -1;
    const t = this.now();
    const recent = (this.failures.get(uid) ?? []).filter((x) => t - x < this.windowMs);
    if (recent.length >= this.maxFailures) {
      this.failures.set(uid, recent);
      const waitS = Math.max(1, Math.ceil((recent[0]! + this.windowMs - t) / 1000));
      log.warn({ rv: ckrName(CKR_PIN_LOCKED), failures: recent.length, retryInS: waitS }, 'LOGIN refused: too many wrong PINs for this uid (not compared)');
      return {
        rv: CKR_PIN_LOCKED,
        message: `too many wrong PINs for this user (${recent.length} within ${this.windowMs / 1000} s): wait ${waitS} s, then log in with the secret from the daemon's --client-secret-file`,
      };
    }
    // Digests have a fixed length, so timingSafeEqual neither throws nor leaks the secret's length.
    if (timingSafeEqual(sha256(req.pin), this.digest)) {
      this.failures.delete(uid);
      log.debug('LOGIN ok');
      return { rv: 0, message: '' };
    }
    recent.push(t);
    this.failures.set(uid, recent);
    const left = this.maxFailures - recent.length;
    log.warn({ rv: ckrName(CKR_PIN_INCORRECT), failures: recent.length, windowS: this.windowMs / 1000 }, 'LOGIN refused: wrong client secret');
    return {
      rv: CKR_PIN_INCORRECT,
      message:
        `the PIN does not match the client secret of the signbridge daemon: use the secret in its --client-secret-file ` +
        `(${left} more wrong PIN${left === 1 ? '' : 's'} within ${this.windowMs / 1000} s lock logins for this user)`,
    };
  }
}

/** No client secret configured: LOGIN always succeeds (protocol.md "LOGIN"). */
export const NO_CLIENT_SECRET: LoginGate = {
  required: false,
  login: () => ({ rv: 0, message: '' }),
};
