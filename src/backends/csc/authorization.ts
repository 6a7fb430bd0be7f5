// Per-credential authorisation and coalescing (docs/csc-backend.md "Authorisation",
// "Coalescing"). A credential that needs an OTP/PIN per use holds at most one SAD (Signature
// Activation Data, CSC API v1 §11.7) with the number of signatures it still allows and its expiry.
// Signatures queue per credential; whenever no signHash is in flight, every queued hash of the
// same algorithm that the SAD still covers goes out in ONE signHash call (§11.9 takes hash[]), so
// parallel signers share round trips. No SAD → the configured policy answers at once (never a wait).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { CKR_PIN_LOCKED } from '../../core/pkcs11.js';
import { CscError, cscError } from './errors.js';
import type { CscClient } from './http.js';
import type { CscSignPlan } from './sigalg.js';

/** What happens to a signature when no SAD covers it (--csc-unauthorized). */
export type UnauthorizedPolicy = 'refuse' | 'pin';

interface Sad {
  value: string;
  remaining: number;
  expiresAt: number;
  /** HMAC of the OTP/PIN that bought it: the same value given again reuses the SAD. */
  secretMac: Buffer;
}

interface Pending {
  plan: CscSignPlan;
  resolve: (sig: Buffer) => void;
  reject: (e: unknown) => void;
}

export interface LaneOptions {
  client: CscClient;
  credentialID: string;
  /** OTP per authorisation (else the PIN alone authorises). */
  needsOtp: boolean;
  needsPin: boolean;
  /** Signatures asked for per authorisation (min of the credential's multisign and the setting). */
  numSignatures: number;
  /** The credential's PIN (SIGNBRIDGE_CSC_PIN / --csc-pin-file), when it needs one besides the OTP. */
  pin?: string | undefined;
  policy: UnauthorizedPolicy;
  /** Most hashes per signHash call. */
  maxBatch: number;
  /** A lone first request waits this long for companions (0: only in-flight batching). */
  lingerMs: number;
  signTimeoutMs: number;
  logger?: Logger | undefined;
}

// Key of the HMAC that fingerprints OTPs in memory; the OTP itself is not kept.
const MAC_KEY = randomBytes(32);
const macOf = (secret: Buffer): Buffer => createHmac('sha256', MAC_KEY).update(secret).digest();
// A SAD this close to its expiry is not used: the signHash could arrive after it.
const EXPIRY_MARGIN_MS = 2000;

export class CredentialLane {
  private sad: Sad | undefined;
  private authorizing: { mac: Buffer; p: Promise<number> } | undefined;
  private queue: Pending[] = [];
  /** MACs of OTPs/PINs the service refused: a tool that retries the same one (NSS does) is answered here. */
  private refused: Buffer[] = [];
  private inFlight = false;
  private lingering: NodeJS.Timeout | undefined;
  /** signHash calls and the hashes they carried (the coalescing numbers). */
  readonly stats = { signHashCalls: 0, hashes: 0, authorizeCalls: 0 };

  constructor(private readonly o: LaneOptions) {}

  /** A context-specific login's OTP/PIN → a SAD (or the one that value already bought). */
  authorize(secret: Buffer): Promise<number> {
    const mac = macOf(secret);
    const s = this.usableSad();
    if (s && timingSafeEqual(s.secretMac, mac)) return Promise.resolve(s.remaining);
    if (this.authorizing && timingSafeEqual(this.authorizing.mac, mac)) return this.authorizing.p;
    if (this.refused.some((r) => timingSafeEqual(r, mac))) {
      // CKR_PIN_LOCKED, not CKR_PIN_INCORRECT: NSS asks its password callback again after
      // CKR_PIN_INCORRECT, and a tool whose callback repeats the same value would loop forever.
      const code = this.o.needsOtp ? 'SIGNBRIDGE_ERR_CSC_OTP_INVALID' : 'SIGNBRIDGE_ERR_CSC_PIN_INVALID';
      return Promise.reject(cscError(code, { credential: this.o.credentialID, detail: 'refused before, so not sent again' }, { ckr: CKR_PIN_LOCKED }));
    }
    const value = secret.toString('utf8');
    const auth = this.o.needsOtp ? { OTP: value, ...(this.o.pin ? { PIN: this.o.pin } : {}) } : this.o.needsPin ? { PIN: value } : {};
    const p = this.requestSad(mac, auth);
    this.authorizing = { mac, p };
    const clear = (): void => {
      if (this.authorizing?.p === p) this.authorizing = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  private async requestSad(mac: Buffer, auth: { OTP?: string; PIN?: string }): Promise<number> {
    const t0 = Date.now();
    this.stats.authorizeCalls++;
    try {
      const r = await this.o.client.authorize(
        { credentialID: this.o.credentialID, numSignatures: this.o.numSignatures, ...auth },
        { what: `the authorisation of ${this.o.credentialID}`, deadline: t0 + this.o.signTimeoutMs, budgetMs: this.o.signTimeoutMs },
      );
      this.sad = { value: r.sad, remaining: this.o.numSignatures, expiresAt: t0 + r.expiresIn * 1000, secretMac: mac };
      this.o.logger?.info({ credential: this.o.credentialID, signatures: this.o.numSignatures, expiresIn: r.expiresIn }, 'CSC credential authorised');
      this.pump();
      return this.o.numSignatures;
    } catch (e) {
      // Fail closed: a refused OTP/PIN also ends an earlier authorisation of this credential.
      this.sad = undefined;
      if (e instanceof CscError && (e.cscCode === 'SIGNBRIDGE_ERR_CSC_OTP_INVALID' || e.cscCode === 'SIGNBRIDGE_ERR_CSC_PIN_INVALID')) {
        this.refused = [...this.refused.slice(-15), mac];
      }
      this.failQueued(e);
      throw e;
    }
  }

  private usableSad(now = Date.now()): Sad | undefined {
    const s = this.sad;
    return s && s.remaining > 0 && now < s.expiresAt - EXPIRY_MARGIN_MS ? s : undefined;
  }

  sign(plan: CscSignPlan): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ plan, resolve, reject });
      if (this.queue.length === 1 && !this.inFlight && this.o.lingerMs > 0 && this.usableSad()) {
        this.lingering ??= setTimeout(() => {
          this.lingering = undefined;
          this.pump();
        }, this.o.lingerMs);
        return;
      }
      if (!this.lingering) this.pump();
    });
  }

  private pump(): void {
    if (this.inFlight || this.lingering || this.queue.length === 0) return;
    const sad = this.usableSad();
    if (!sad) {
      if (this.authorizing) return; // the login under way will pump
      // Implicit authorisation (no OTP, no PIN), or the 'pin' policy for a PIN-only credential:
      // the daemon authorises on its own; the queue waits for that one call.
      if (!this.o.needsOtp && (!this.o.needsPin || (this.o.policy === 'pin' && this.o.pin))) {
        this.authorize(Buffer.from(this.o.pin ?? '', 'utf8')).catch(() => undefined);
        return;
      }
      const had = this.sad;
      this.sad = undefined;
      const credential = this.o.credentialID;
      this.failQueued(
        had
          ? cscError('SIGNBRIDGE_ERR_CSC_SAD_EXPIRED', { credential, detail: had.remaining <= 0 ? `all ${this.o.numSignatures} signature(s) used` : 'expired' })
          : cscError('SIGNBRIDGE_ERR_CSC_NOT_AUTHORIZED', { credential }),
      );
      return;
    }
    const first = this.queue[0]!.plan;
    const same = (p: CscSignPlan): boolean => p.hashAlgo === first.hashAlgo && p.signAlgo === first.signAlgo;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    for (const q of this.queue) (batch.length < Math.min(sad.remaining, this.o.maxBatch) && same(q.plan) ? batch : rest).push(q);
    this.queue = rest;
    sad.remaining -= batch.length;
    this.inFlight = true;
    this.stats.signHashCalls++;
    this.stats.hashes += batch.length;
    const t0 = Date.now();
    this.o.client
      .signHash(
        { credentialID: this.o.credentialID, SAD: sad.value, hash: batch.map((b) => b.plan.hash.toString('base64')), hashAlgo: first.hashAlgo, signAlgo: first.signAlgo },
        { what: `the signature with ${this.o.credentialID}`, deadline: t0 + this.o.signTimeoutMs, budgetMs: this.o.signTimeoutMs },
      )
      .then(
        (sigs) => batch.forEach((b, i) => b.resolve(sigs[i]!)),
        (e: unknown) => {
          if (e instanceof CscError && (e.cscCode === 'SIGNBRIDGE_ERR_CSC_SAD_EXPIRED' || e.cscCode === 'SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE') && this.sad === sad) this.sad = undefined;
          batch.forEach((b) => b.reject(e));
        },
      )
      .finally(() => {
        this.inFlight = false;
        this.pump();
      });
  }

  private failQueued(e: unknown): void {
    const q = this.queue;
    this.queue = [];
    q.forEach((p) => p.reject(e));
  }

  /** Drop the SAD and refuse what waits (close). */
  close(e: unknown): void {
    if (this.lingering) clearTimeout(this.lingering);
    this.lingering = undefined;
    this.sad = undefined;
    this.failQueued(e);
  }
}
