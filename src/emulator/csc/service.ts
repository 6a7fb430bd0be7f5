// The CSC model behind the HTTP layer: credentials (keys in SoftHSMv2, certificates from the
// emulator CA), OTPs "sent" to <stateDir>/otp/<credentialID>, PIN checks, SADs with
// numSignatures and an expiry, and multi-hash signing. CSC API v1.0.4.0 §11.4–§11.9; what the
// spec leaves open is written down in docs/csc-emulator.md.

import { createHash, randomBytes, randomInt, timingSafeEqual, X509Certificate } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ecdsaRawToDer } from '../../core/der.js';
import type { KeySpec } from '../../softhsm/token-setup.js';
import type { EmulatorHsm } from '../hsm.js';
import type { Pki } from '../pki.js';
import { writeSecret } from '../pki.js';
import { HASHES, planSignature, type HashName } from './algorithms.js';
import { CscError } from './errors.js';
import { CREDENTIAL_STATUSES, saveCscState, type CredentialRecord, type CredentialStatus, type CscStateFile } from './store.js';
import { SadStore } from './sad.js';
import { credentialInfoJson } from './views.js';

export interface Lifetimes {
  /** SAD lifetime, seconds (default 3600) */
  sadTtlS: number;
  /** OTP lifetime, seconds (default 300) */
  otpTtlS: number;
}

/** wrong PINs in a row that lock a credential's PIN; wrong tries that burn an OTP */
export const PIN_TRIES = 3;
export const OTP_TRIES = 3;
const MAX_HASHES = 1000;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const CREDENTIAL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface Otp {
  value: string;
  expiresAt: number;
  wrong: number;
}

export interface NewCredential {
  id: string;
  key: KeySpec & { type: 'rsa' | 'ec' };
  description?: string;
  status?: CredentialStatus;
  pin?: string;
  otp?: boolean;
  scal?: '1' | '2';
  multisign?: number;
}

const digestPin = (salt: string, pin: string): Buffer => createHash('sha256').update(salt + '\0' + pin, 'utf8').digest();
const str = (v: unknown): v is string => typeof v === 'string';

export class CscService {
  private readonly sads: SadStore;
  private readonly otps = new Map<string, Otp>();
  /** hashes signed since the start (or the last stats reset), for the coalescing measurements */
  hashesSigned = 0;
  /**
   * ECDSA signatures as DER Ecdsa-Sig-Value (RFC 3279 §2.2.3, the default: the form CMS and PDF
   * embed) or raw r‖s (IEEE P1363, what PKCS#11 returns), which some CSC services send: a
   * client must cope with both (admin setting).
   */
  ecdsaFormat: 'der' | 'raw' = 'der';

  constructor(
    private readonly dir: string,
    private readonly state: CscStateFile,
    private readonly hsm: EmulatorHsm,
    private readonly pki: Pki,
    public lifetimes: Lifetimes,
    private readonly now: () => number = Date.now,
  ) {
    this.sads = new SadStore(now);
  }

  get clientId(): string {
    return this.state.client_id;
  }

  credentials(): CredentialRecord[] {
    return this.state.credentials;
  }

  // --- credentials ---------------------------------------------------------------------------

  /** Validates an admin "create credential" body (docs/csc-emulator.md "Admin endpoint"). */
  static validateNew(body: unknown): NewCredential {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CscError('invalid_request', 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (!str(b.credentialID) || !CREDENTIAL_ID.test(b.credentialID)) throw new CscError('invalid_request', 'credentialID: 1 to 64 letters, digits, ".", "_" or "-"');
    const keys: Record<string, NewCredential['key']> = {
      'rsa-2048': { type: 'rsa', bits: 2048 },
      'rsa-3072': { type: 'rsa', bits: 3072 },
      'rsa-4096': { type: 'rsa', bits: 4096 },
      'ec-p256': { type: 'ec', curve: 'P-256' },
      'ec-p384': { type: 'ec', curve: 'P-384' },
    };
    const key = str(b.key) ? keys[b.key.toLowerCase()] : b.key === undefined ? keys['ec-p256'] : undefined;
    if (!key) throw new CscError('invalid_request', `key: one of ${Object.keys(keys).join(', ')}`);
    if (b.status !== undefined && !CREDENTIAL_STATUSES.includes(b.status as CredentialStatus)) throw new CscError('invalid_request', `status: one of ${CREDENTIAL_STATUSES.join(', ')}`);
    if (b.pin !== undefined && (!str(b.pin) || b.pin.length < 4 || b.pin.length > 64)) throw new CscError('invalid_request', 'pin: 4 to 64 characters');
    if (b.otp !== undefined && typeof b.otp !== 'boolean') throw new CscError('invalid_request', 'otp: true or false');
    if (b.scal !== undefined && b.scal !== '1' && b.scal !== '2') throw new CscError('invalid_request', 'scal: "1" or "2"');
    if (b.multisign !== undefined && (!Number.isInteger(b.multisign) || (b.multisign as number) < 1 || (b.multisign as number) > MAX_HASHES)) {
      throw new CscError('invalid_request', `multisign: a whole number 1..${MAX_HASHES}`);
    }
    if (b.description !== undefined && (!str(b.description) || b.description.length > 255)) throw new CscError('invalid_request', 'description: at most 255 characters');
    return {
      id: b.credentialID,
      key,
      ...(str(b.description) ? { description: b.description } : {}),
      ...(b.status !== undefined ? { status: b.status as CredentialStatus } : {}),
      ...(str(b.pin) ? { pin: b.pin } : {}),
      ...(typeof b.otp === 'boolean' ? { otp: b.otp } : {}),
      ...(b.scal !== undefined ? { scal: b.scal as '1' | '2' } : {}),
      ...(b.multisign !== undefined ? { multisign: b.multisign as number } : {}),
    };
  }

  /** Generates the key in the token (unless `spki` is given: a seed) and records the credential. */
  async addCredential(c: NewCredential, seeded?: { idHex: string; spki: Buffer }): Promise<CredentialRecord> {
    if (this.state.credentials.some((x) => x.id === c.id)) throw new CscError('invalid_request', `credential ${c.id} exists already: choose another credentialID`);
    let idHex = seeded?.idHex;
    let spki = seeded?.spki;
    if (!idHex || !spki) {
      idHex = randomBytes(16).toString('hex');
      try {
        spki = this.hsm.generate(c.key, c.id, idHex);
      } catch (e) {
        throw new CscError('server_error', `SoftHSMv2 could not generate the key: ${(e as Error).message}`);
      }
    }
    const status = c.status ?? 'ACTIVE';
    let pinDigest: string | undefined;
    if (c.pin !== undefined) {
      const salt = randomBytes(16).toString('hex');
      pinDigest = `${salt}:${digestPin(salt, c.pin).toString('hex')}`;
    }
    const rec: CredentialRecord = {
      id: c.id,
      description: c.description ?? `signbridge CSC emulator credential ${c.id}`,
      key_alg: c.key.type === 'rsa' ? 'RSA' : 'ECDSA',
      ...(c.key.type === 'rsa' ? { key_size: c.key.bits } : { curve: c.key.curve }),
      hsm_id: idHex,
      public_key: spki.toString('base64'),
      ...(status === 'PENDING_ISSUANCE' ? {} : { cert: (await this.pki.issueDocumentSigning(`signbridge CSC emulator ${c.id}`, spki)).toString('base64') }),
      status,
      ...(pinDigest ? { pin_digest: pinDigest, pin_format: /^\d+$/.test(c.pin!) ? ('N' as const) : ('A' as const) } : {}),
      otp: c.otp ?? (c.pin === undefined),
      scal: c.scal ?? '1',
      multisign: c.multisign ?? 100,
      pin_failures: 0,
      created_on: new Date(this.now()).toISOString(),
    };
    this.state.credentials.push(rec);
    saveCscState(this.dir, this.state);
    return rec;
  }

  credential(id: unknown): CredentialRecord {
    if (!str(id)) throw new CscError('invalid_request', 'Missing (or invalid type) string parameter credentialID');
    const c = this.state.credentials.find((x) => x.id === id);
    if (!c) throw new CscError('invalid_request', 'Invalid parameter credentialID: credentials/list names the credentials of this client');
    return c;
  }

  /** Admin: a new status; leaving PENDING_ISSUANCE issues the certificate; unlocks the PIN on ACTIVE. */
  async setStatus(id: string, status: unknown): Promise<CredentialRecord> {
    const c = this.credential(id);
    if (!CREDENTIAL_STATUSES.includes(status as CredentialStatus)) throw new CscError('invalid_request', `status: one of ${CREDENTIAL_STATUSES.join(', ')}`);
    c.status = status as CredentialStatus;
    if (c.status !== 'PENDING_ISSUANCE' && !c.cert) {
      c.cert = (await this.pki.issueDocumentSigning(`signbridge CSC emulator ${c.id}`, Buffer.from(c.public_key, 'base64'))).toString('base64');
    }
    if (c.status === 'ACTIVE') c.pin_failures = 0;
    if (c.status !== 'ACTIVE') this.sads.dropFor(c.id);
    saveCscState(this.dir, this.state);
    return c;
  }

  private assertActive(c: CredentialRecord): void {
    if (c.status !== 'ACTIVE') {
      throw new CscError('credential_not_active', `credential ${c.id} is ${c.status}, only ACTIVE credentials sign: ask the account administrator (credentials/info shows the status)`, {
        credential_status: c.status,
      });
    }
  }

  info(id: unknown, b: Record<string, unknown>): Record<string, unknown> {
    const c = this.credential(id);
    const certificates = b.certificates ?? 'single';
    if (certificates !== 'none' && certificates !== 'single' && certificates !== 'chain') throw new CscError('invalid_request', 'Invalid parameter certificates: none, single or chain');
    for (const k of ['certInfo', 'authInfo'] as const) if (b[k] !== undefined && typeof b[k] !== 'boolean') throw new CscError('invalid_request', `Invalid parameter ${k}: true or false`);
    return credentialInfoJson(c, { certificates, certInfo: b.certInfo === true, authInfo: b.authInfo !== false, caDer: this.pki.caCertDer, now: this.now() });
  }

  // --- OTP, PIN, SAD -------------------------------------------------------------------------

  /** credentials/sendOTP: a fresh 6-digit OTP "delivered" to <stateDir>/otp/<credentialID> (mode 0600). */
  sendOtp(id: unknown): void {
    const c = this.credential(id);
    this.assertActive(c);
    if (!c.otp) throw new CscError('invalid_request', `credential ${c.id} uses no OTP (credentials/info OTP presence "false")`);
    const value = String(randomInt(0, 1_000_000)).padStart(6, '0');
    this.otps.set(c.id, { value, expiresAt: this.now() + this.lifetimes.otpTtlS * 1000, wrong: 0 });
    const dir = join(this.dir, 'otp');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeSecret(join(dir, c.id), value + '\n');
  }

  /** credentials/authorize → {SAD, expiresIn}. Checks: credential, status, numSignatures, hash, PIN, OTP. */
  authorize(b: Record<string, unknown>): { SAD: string; expiresIn: number } {
    const c = this.credential(b.credentialID);
    this.assertActive(c);
    const n = b.numSignatures;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new CscError('invalid_request', 'Missing (or invalid type) integer parameter numSignatures');
    if (n < 1 || n > c.multisign) throw new CscError('invalid_request', `Invalid parameter numSignatures: 1..${c.multisign} (credentials/info multisign)`);
    let hashes: Set<string> | undefined;
    if (b.hash !== undefined) {
      hashes = new Set(checkHashArray(b.hash));
      if (hashes.size !== n) throw new CscError('invalid_request', `Invalid parameter hash: ${hashes.size} distinct hashes for numSignatures ${n}`);
    } else if (c.scal === '2') {
      throw new CscError('invalid_request', 'Missing (or invalid type) array parameter hash: this credential is SCAL 2, the SAD is bound to the hashes to sign');
    }
    if (c.pin_digest) {
      if (!str(b.PIN)) throw new CscError('invalid_request', 'Missing (or invalid type) string parameter PIN');
      if (c.pin_failures >= PIN_TRIES) throw new CscError('pin_locked', `the PIN of credential ${c.id} is locked (${PIN_TRIES} failed tries in a row): an administrator must unlock it`);
      const [salt, hex] = c.pin_digest.split(':') as [string, string];
      if (!timingSafeEqual(digestPin(salt, b.PIN), Buffer.from(hex, 'hex'))) {
        c.pin_failures++;
        saveCscState(this.dir, this.state);
        const left = PIN_TRIES - c.pin_failures;
        if (left <= 0) throw new CscError('pin_locked', `the PIN of credential ${c.id} failed ${PIN_TRIES} times in a row and is now locked: an administrator must unlock it`);
        throw new CscError('invalid_pin', `the PIN is not valid (${left} ${left === 1 ? 'try' : 'tries'} left before it locks)`);
      }
      if (c.pin_failures !== 0) {
        c.pin_failures = 0;
        saveCscState(this.dir, this.state);
      }
    }
    if (c.otp) {
      if (!str(b.OTP)) throw new CscError('invalid_request', 'Missing (or invalid type) string parameter OTP');
      const o = this.otps.get(c.id);
      if (!o) throw new CscError('invalid_otp', `no OTP is pending for credential ${c.id}: call credentials/sendOTP, then authorize with the OTP it delivers`);
      if (o.expiresAt <= this.now()) {
        this.otps.delete(c.id);
        throw new CscError('invalid_otp', 'the OTP expired: call credentials/sendOTP for a new one');
      }
      const given = Buffer.from(b.OTP, 'utf8');
      const ok = given.length === o.value.length && timingSafeEqual(given, Buffer.from(o.value));
      if (!ok) {
        if (++o.wrong >= OTP_TRIES) this.otps.delete(c.id);
        throw new CscError('invalid_otp', o.wrong >= OTP_TRIES ? 'the OTP is not valid and is now void: call credentials/sendOTP for a new one' : 'the OTP is not valid');
      }
      this.otps.delete(c.id); // one authorisation per OTP
    }
    return { SAD: this.sads.issue(c.id, n, this.lifetimes.sadTtlS, hashes), expiresIn: this.lifetimes.sadTtlS };
  }

  /** credentials/extendTransaction → {SAD, expiresIn}: the same signatures left, a new lifetime. */
  extendTransaction(b: Record<string, unknown>): { SAD: string; expiresIn: number } {
    const c = this.credential(b.credentialID);
    this.assertActive(c);
    if (!str(b.SAD)) throw new CscError('invalid_request', 'Missing (or invalid type) string parameter SAD');
    return { SAD: this.sads.extend(b.SAD, c.id, this.lifetimes.sadTtlS), expiresIn: this.lifetimes.sadTtlS };
  }

  /** Test hook (admin endpoint): every SAD issued so far is expired. */
  expireSads(): number {
    return this.sads.expireAll();
  }

  // --- signing -------------------------------------------------------------------------------

  /**
   * signatures/signHash: all hashes of one call in the token, one after the other, in order.
   * The SAD's count is taken before signing, so concurrent calls cannot overspend it.
   */
  async signHash(b: Record<string, unknown>): Promise<string[]> {
    const c = this.credential(b.credentialID);
    this.assertActive(c);
    if (!str(b.SAD)) throw new CscError('invalid_request', 'Missing (or invalid type) string parameter SAD');
    this.sads.check(b.SAD, c.id);
    const hashes = checkHashArray(b.hash);
    const plan = planSignature(c.key_alg, b.signAlgo, b.hashAlgo, b.signAlgoParams);
    const len = HASHES[plan.hash as HashName].len;
    for (const h of hashes) {
      if (Buffer.from(h, 'base64').length !== len) throw new CscError('invalid_request', `Invalid digest value length: ${plan.hash} digests are ${len} bytes`);
    }
    this.sads.spend(b.SAD, c.id, hashes);
    const out: string[] = [];
    try {
      for (const h of hashes) {
        const sig = await this.hsm.sign(c.hsm_id, plan.mech, plan.input(Buffer.from(h, 'base64')));
        out.push((plan.keyAlg === 'ECDSA' && this.ecdsaFormat === 'der' ? ecdsaRawToDer(sig) : sig).toString('base64'));
        this.hashesSigned++;
      }
    } catch (e) {
      throw new CscError('server_error', `the HSM could not sign: ${(e as Error).message}`);
    }
    return out;
  }

  /** The certificate of a credential, for the tests' and demo's verifiers. */
  certificate(id: string): X509Certificate | undefined {
    const c = this.credential(id);
    return c.cert ? new X509Certificate(Buffer.from(c.cert, 'base64')) : undefined;
  }
}

function checkHashArray(v: unknown): string[] {
  if (!Array.isArray(v)) throw new CscError('invalid_request', 'Missing (or invalid type) array parameter hash');
  if (v.length === 0) throw new CscError('invalid_request', 'Empty hash array');
  if (v.length > MAX_HASHES) throw new CscError('invalid_request', `Invalid parameter hash: at most ${MAX_HASHES} hashes per call`);
  for (const h of v) if (!str(h) || h.length === 0 || !B64.test(h)) throw new CscError('invalid_request', 'Invalid Base64 hash string parameter');
  return v as string[];
}
