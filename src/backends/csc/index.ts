// The "csc" backend: document signing through a Cloud Signature Consortium API v1 service
// (DigiCert Document Trust Manager; docs/csc-backend.md). Each ACTIVE credential is served as a
// key with its certificate chain; one needing an OTP/PIN per use is a private key with
// CKA_ALWAYS_AUTHENTICATE, whose context-specific login becomes credentials/authorize
// (authorization.ts). A signature: SignParams → hash + OIDs (sigalg.ts) → the credential's lane,
// which coalesces parallel signatures into one signHash (authorization.ts) → PKCS#11 form →
// checked against the certificate's public key → back to the tool.
import { createHash, createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { parseCertificate } from '../../core/der.js';
import { describeKey, keyHandle, type KeyRecord, type TokenRecord } from '../../core/keys.js';
import { CKM_ECDSA, CKR_PIN_LOCKED } from '../../core/pkcs11.js';
import { ckaIdOf, ecdsaToRaw, keyShape } from '../remote-key.js';
import { verifyEcdsaDigest, verifyRsaPkcs1 } from '../stm/verify.js';
import type { Backend, SignParams } from '../types.js';
import { CredentialLane, type UnauthorizedPolicy } from './authorization.js';
import { readCaFile } from './credentials.js';
import { CscError, cscError } from './errors.js';
import { CscClient, type CredentialInfo } from './http.js';
import type { RetryPolicy } from './retry.js';
import { cscMechanisms, planSign } from './sigalg.js';

export { CscError } from './errors.js';
export const DEFAULT_TOKEN_LABEL = 'signbridge-csc';

export interface CscBackendOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  caFile?: string | undefined;
  tokenLabel?: string | undefined;
  /** The credentials' PIN, for those that need a PIN besides the OTP (or the 'pin' policy). */
  pin?: string | undefined;
  /** No SAD for a signature: refuse (CKR_USER_NOT_LOGGED_IN) or authorise with the PIN. */
  policy?: UnauthorizedPolicy | undefined;
  /** Signatures per authorisation, at most the credential's multisign (default 16). */
  numSignatures?: number | undefined;
  maxBatch?: number | undefined;
  lingerMs?: number | undefined;
  signTimeoutMs?: number | undefined;
  startTimeoutMs?: number | undefined;
  verifySignatures?: boolean | undefined;
  userAgent?: string | undefined;
  retry?: RetryPolicy | undefined;
  logger?: Logger | undefined;
}

const CSC_KEY = Symbol('signbridge.csc.credential');
type CscKey = KeyRecord & { [CSC_KEY]?: { owner: CscBackend; credentialID: string; algos: string[]; lane: CredentialLane } };

/** The credential's state as DTM reports it ("status"), else as the spec's key/cert status imply. */
export function credentialState(ci: CredentialInfo): string {
  if (typeof ci.status === 'string' && ci.status !== '') return ci.status.toUpperCase();
  const cert = (ci.cert?.status ?? 'valid').toLowerCase();
  if (cert === 'revoked') return 'REVOKED';
  if (cert === 'suspended') return 'SUSPENDED';
  if (cert === 'expired') return 'EXPIRED';
  if ((ci.key?.status ?? 'enabled').toLowerCase() === 'disabled') return 'DEACTIVATED';
  return 'ACTIVE';
}

const presence = (v: { presence?: string } | undefined): boolean => v?.presence === 'true' || (v?.presence as unknown) === true;

export class CscBackend implements Backend {
  readonly name = 'csc';
  private client: CscClient | undefined;
  private token: TokenRecord | undefined;
  private gen = 0n;
  private closing = false;
  private lanes = new Map<string, CredentialLane>();
  private readonly log: Logger | undefined;

  constructor(private readonly opts: CscBackendOptions) {
    this.log = opts.logger;
  }

  /** HTTP calls per endpoint and, per credential, signHash calls / hashes / authorisations. */
  stats(): { calls: Record<string, number>; lanes: Record<string, CredentialLane['stats']> } {
    return { calls: { ...(this.client?.stats.calls ?? {}) }, lanes: Object.fromEntries([...this.lanes].map(([k, l]) => [k, { ...l.stats }])) };
  }

  async start(): Promise<void> {
    if (!this.opts.clientId || !this.opts.clientSecret) {
      throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: 'no OAuth client credentials: set SIGNBRIDGE_CSC_CLIENT_ID and SIGNBRIDGE_CSC_CLIENT_SECRET (or --csc-client-secret-file)' });
    }
    this.client = new CscClient({
      url: this.opts.url,
      clientId: this.opts.clientId,
      clientSecret: this.opts.clientSecret,
      ca: this.opts.caFile ? readCaFile(this.opts.caFile) : undefined,
      userAgent: this.opts.userAgent ?? 'signbridge',
      logger: this.log,
      retry: this.opts.retry,
    });
    try {
      await this.refresh('start', this.opts.startTimeoutMs ?? 30_000);
    } catch (e) {
      await this.client.close().catch(() => undefined);
      this.client = undefined;
      throw e;
    }
  }

  /** List the credentials again (start, SIGHUP); after start a failure keeps the previous keys. */
  async refresh(reason: string, budgetMs = 30_000): Promise<boolean> {
    const client = this.client;
    if (!client) return false;
    const deadline = Date.now() + budgetMs;
    const ctx = { what: 'listing credentials', deadline, budgetMs };
    let keys: KeyRecord[];
    try {
      if (reason === 'start') await client.info({ what: 'the info request', deadline, budgetMs });
      const ids = await client.listCredentials(ctx);
      keys = [];
      for (const id of ids) {
        const ci = await client.credentialInfo(id, ctx);
        const state = credentialState(ci);
        if (state !== 'ACTIVE') {
          this.log?.info({ credential: id, state }, `CSC credential ${id} is ${state}: not served (only ACTIVE credentials sign; ask the Document Trust Manager administrator)`);
          continue;
        }
        try {
          keys.push(this.keyRecord(client, id, ci));
        } catch (e) {
          this.log?.warn({ credential: id, err: (e as Error).message }, 'skipping a CSC credential the daemon cannot use');
        }
      }
    } catch (e) {
      if (reason === 'start') throw e;
      this.log?.warn({ reason, err: (e as Error).message }, 'CSC credential refresh failed; keeping the credentials listed before');
      return false;
    }
    keys.sort((a, b) => a.label.localeCompare(b.label));
    const h = createHash('sha256');
    for (const k of keys) h.update(k.handle).update(k.certificate ?? Buffer.alloc(0)).update(String(k.alwaysAuthenticate));
    const gen = h.digest().readBigUInt64LE(0) || 1n;
    if (gen === this.gen) return false;
    this.token = {
      label: (this.opts.tokenLabel ?? DEFAULT_TOKEN_LABEL).slice(0, 32),
      serial: createHash('sha256').update(client.origin).digest('hex').slice(0, 16),
      model: 'CSC API v1',
      manufacturer: 'signbridge (CSC)',
      description: `signbridge csc: ${client.display}`.slice(0, 64),
      keys,
    };
    this.gen = gen;
    this.log?.info({ reason, host: client.display, keys: keys.map((k) => `${k.label} (${describeKey(k)}${k.alwaysAuthenticate ? ', per-signature authorisation' : ''})`) }, 'CSC credentials ready');
    return true;
  }

  private keyRecord(client: CscClient, id: string, ci: CredentialInfo): KeyRecord {
    const certs = (ci.cert?.certificates ?? []).map((b) => Buffer.from(b, 'base64'));
    const der = certs[0];
    if (!der) throw new Error('credentials/info returned no certificate');
    const spki = parseCertificate(der).spkiDer;
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const { type, bits, curve } = keyShape(publicKey);
    // CSC signAlgo OIDs here cover RSA and ECDSA only (sigalg.ts).
    if (type === 'ed25519') throw new Error('unsupported key ed25519');
    const needsOtp = presence(ci.OTP);
    const needsPin = presence(ci.PIN);
    const kid = ckaIdOf(id);
    const k: KeyRecord = {
      handle: keyHandle(this.name, client.origin, kid, spki),
      id: kid,
      label: id,
      type,
      bits,
      ...(curve ? { curve } : {}),
      publicKey,
      spki,
      certificate: der,
      chain: certs.slice(1),
      mechanisms: cscMechanisms(type),
      local: true,
      alwaysAuthenticate: needsOtp || needsPin || ci.authMode === 'explicit',
    };
    let lane = this.lanes.get(id);
    if (!lane) {
      const multisign = typeof ci.multisign === 'number' && ci.multisign > 0 ? ci.multisign : 1;
      lane = new CredentialLane({
        client,
        credentialID: id,
        needsOtp,
        needsPin,
        numSignatures: Math.max(1, Math.min(multisign, this.opts.numSignatures ?? 16)),
        pin: this.opts.pin,
        policy: this.opts.policy ?? 'refuse',
        maxBatch: this.opts.maxBatch ?? 64,
        lingerMs: this.opts.lingerMs ?? 0,
        signTimeoutMs: this.opts.signTimeoutMs ?? 30_000,
        logger: this.log,
      });
      this.lanes.set(id, lane);
    }
    (k as CscKey)[CSC_KEY] = { owner: this, credentialID: id, algos: ci.key?.algo ?? [], lane };
    return k;
  }

  tokens(): TokenRecord[] {
    return this.token ? [this.token] : [];
  }

  generation(): bigint {
    return this.gen;
  }

  private stateOf(key: KeyRecord): NonNullable<CscKey[typeof CSC_KEY]> {
    const st = (key as CscKey)[CSC_KEY];
    if (!st || st.owner !== this || this.closing || !this.client) {
      throw cscError('SIGNBRIDGE_ERR_CSC_CREDENTIAL_NOT_FOUND', { credential: key.label, detail: 'not in the current credential list' });
    }
    return st;
  }

  async authorize(key: KeyRecord, secret: Buffer): Promise<number> {
    const st = this.stateOf(key);
    try {
      return await st.lane.authorize(secret);
    } catch (e) {
      // C_Login has no CKR_KEY_FUNCTION_NOT_PERMITTED (v2.40 §5.6): a credential that is no longer
      // ACTIVE refuses the login as locked; its signatures keep their own code.
      if (e instanceof CscError && e.cscCode === 'SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE') throw new CscError(e.cscCode, e.message, { ckr: CKR_PIN_LOCKED, status: e.status });
      throw e;
    }
  }

  async sign(key: KeyRecord, params: SignParams): Promise<Buffer> {
    const st = this.stateOf(key);
    const plan = planSign(key.type, st.algos, params, st.credentialID);
    const sig = await st.lane.sign(plan);
    const fieldBytes = Math.ceil(key.bits / 8);
    let out: Buffer;
    try {
      out = key.type === 'ec' ? ecdsaToRaw(sig, fieldBytes) : sig.length <= fieldBytes ? Buffer.concat([Buffer.alloc(fieldBytes - sig.length), sig]) : sig;
    } catch (e) {
      throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.client?.display ?? '?', what: `the signature with ${st.credentialID}`, detail: (e as Error).message });
    }
    if (this.opts.verifySignatures ?? true) {
      const ok = params.mechanism === CKM_ECDSA ? verifyEcdsaDigest(key.publicKey, plan.hash, out) : verifyRsaPkcs1(key.publicKey, params.data, out);
      if (!ok) throw cscError('SIGNBRIDGE_ERR_CSC_BAD_SIGNATURE', { credential: st.credentialID });
    }
    return out;
  }

  /** credentials/sendOTP for `signbridge otp` (the OTP goes to the user, never to signbridge). */
  async sendOtp(credentialID: string): Promise<void> {
    if (!this.client) throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: 'the backend is not started' });
    await this.client.sendOtp(credentialID, { what: `sendOTP for ${credentialID}`, deadline: Date.now() + 30_000, budgetMs: 30_000 });
  }

  async close(): Promise<void> {
    this.closing = true;
    const e = cscError('SIGNBRIDGE_ERR_CSC_UNAVAILABLE', { host: this.client?.display ?? '?', what: 'the signature', attempts: 0, last: 'the daemon is stopping' });
    for (const l of this.lanes.values()) l.close(e);
    await this.client?.close().catch(() => undefined);
    this.client = undefined;
  }
}
