// Signature Activation Data (CSC API v1.0.4.0 §11.7–§11.9): an opaque token from
// credentials/authorize that allows `numSignatures` hashes of one credential until it expires,
// optionally bound to the hashes given at authorisation (SCAL 2).

import { randomBytes } from 'node:crypto';
import { CscError } from './errors.js';

interface Sad {
  credentialId: string;
  remaining: number;
  expiresAt: number;
  /** authorize with hash[]: the base64 digests this SAD may sign, each once */
  hashes?: Set<string>;
}

/** used-up SADs remembered so the error can say "used up" rather than "unknown" */
const SPENT_KEPT = 10_000;

export class SadStore {
  private readonly sads = new Map<string, Sad>();
  private readonly spent = new Set<string>();

  constructor(private readonly now: () => number) {}

  issue(credentialId: string, numSignatures: number, ttlS: number, hashes?: Set<string>): string {
    const now = this.now();
    for (const [k, s] of this.sads) if (s.expiresAt <= now) this.sads.delete(k);
    const sad = randomBytes(32).toString('base64url');
    this.sads.set(sad, { credentialId, remaining: numSignatures, expiresAt: now + ttlS * 1000, ...(hashes ? { hashes } : {}) });
    return sad;
  }

  /** The live SAD for this credential, or the error that says why not. */
  private live(sad: string, credentialId: string): Sad {
    const s = this.sads.get(sad);
    if (!s && this.spent.has(sad)) throw new CscError('invalid_sad', 'the SAD is used up (its numSignatures are signed): authorize again (credentials/authorize)');
    if (!s || s.credentialId !== credentialId) throw new CscError('invalid_sad', 'the SAD is not valid for this credential: authorize again (credentials/authorize)');
    if (s.expiresAt <= this.now()) {
      this.sads.delete(sad);
      throw new CscError('expired_sad', 'the SAD expired: authorize again (credentials/authorize)');
    }
    return s;
  }

  /** Checks without spending (signHash validates its request after the SAD, then spends). */
  check(sad: string, credentialId: string): void {
    this.live(sad, credentialId);
  }

  /** Takes one signature per hash, synchronously, so concurrent calls cannot overspend. */
  spend(sad: string, credentialId: string, hashes: string[]): void {
    const s = this.live(sad, credentialId);
    if (hashes.length > s.remaining) {
      throw new CscError('invalid_sad', `the SAD allows ${s.remaining} more signature(s), this call has ${hashes.length} hashes: authorize again with numSignatures >= ${hashes.length}`);
    }
    if (s.hashes && (new Set(hashes).size !== hashes.length || !hashes.every((h) => s.hashes!.has(h)))) {
      throw new CscError('invalid_sad', 'a hash is not one the SAD was authorised for (authorize with hash[] binds the SAD to those hashes, each once)');
    }
    s.remaining -= hashes.length;
    if (s.hashes) for (const h of hashes) s.hashes.delete(h);
    if (s.remaining === 0) {
      this.sads.delete(sad);
      this.spent.add(sad);
      if (this.spent.size > SPENT_KEPT) this.spent.delete(this.spent.values().next().value!);
    }
  }

  /** credentials/extendTransaction (§11.8): a new SAD with what is left of the old one and a new expiry; the old one ends. */
  extend(sad: string, credentialId: string, ttlS: number): string {
    const s = this.live(sad, credentialId);
    this.sads.delete(sad);
    const next = randomBytes(32).toString('base64url');
    this.sads.set(next, { ...s, expiresAt: this.now() + ttlS * 1000 });
    return next;
  }

  /** A credential that leaves ACTIVE loses its SADs. */
  dropFor(credentialId: string): void {
    for (const [k, s] of this.sads) if (s.credentialId === credentialId) this.sads.delete(k);
  }

  /** Test hook (admin endpoint): every SAD issued so far is expired. */
  expireAll(): number {
    for (const s of this.sads.values()) s.expiresAt = 0;
    return this.sads.size;
  }
}
