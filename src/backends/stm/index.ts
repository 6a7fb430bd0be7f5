// The "stm" backend: signs with DigiCert Software Trust Manager keypairs over its REST API
// (contract: docs/stm-api.md; behaviour: docs/stm-backend.md). Keys and certificate chains are
// discovered at start, refreshed on an interval, on SIGHUP and when STM says a keypair is gone;
// the module sees them exactly like the pkcs11 backend's keys (one token, objects from KeyRecords).
//
// A signature: SignParams → sig_alg + hash (sigalg.ts) → POST keypairs/{id}/sign over the warm
// connection pool (http.ts) → PKCS#11 form (ECDSA DER → r‖s) → checked against the certificate's
// public key (verify.ts) → back to the tool.
import { createHash, createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { parseCertificate } from '../../core/der.js';
import { describeKey, keyHandle, type KeyRecord, type TokenRecord } from '../../core/keys.js';
import { CKM_ECDSA, CKM_EDDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS } from '../../core/pkcs11.js';
import { ckaIdOf, ecdsaToRaw, keyShape } from '../remote-key.js';
import type { Backend, SignParams } from '../types.js';
import { tlsOptions, type StmCredentialFiles } from './credentials.js';
import { StmError, stmError } from './errors.js';
import { StmClient, type CertificateItem, type KeypairDetails } from './http.js';
import type { RetryPolicy } from './retry.js';
import { keyTypeOfAlg, planSign, stmMechanisms, type StmSignPlan } from './sigalg.js';
import { verifyEcdsaDigest, verifyEd25519, verifyRsaPkcs1, verifyRsaPss, type NativeVerifyDigest } from './verify.js';

export { StmError } from './errors.js';

export const DEFAULT_TOKEN_LABEL = 'signbridge-stm';

export interface StmBackendOptions {
  /** SM_HOST. */
  host: string;
  apiKey?: string | undefined;
  credentials?: StmCredentialFiles | undefined;
  /** SM_TLS_SKIP_VERIFY: do not check the server certificate (never the default). */
  tlsSkipVerify?: boolean | undefined;
  /** The token label the module shows (default "signbridge-stm"). */
  tokenLabel?: string | undefined;
  /** Serve only keys whose certificate alias, keypair alias or keypair id is listed. */
  keyFilter?: string[] | undefined;
  /** Re-list keys every this many seconds (default 300; 0 = never). */
  refreshS?: number | undefined;
  /** Deadline of one signature, retries included (default 30000 ms). */
  signTimeoutMs?: number | undefined;
  /** Deadline of the start-up listing (default 30000 ms). */
  startTimeoutMs?: number | undefined;
  /** Check every signature against the certificate's public key (default true). */
  verifySignatures?: boolean | undefined;
  /** The addon's OpenSSL check over a digest; without it the check runs in JS (verify.ts). */
  verifyDigest?: NativeVerifyDigest | undefined;
  /** Offer RSA-PSS mechanisms (default true: STM's "<HASH>WithRSA/PSS"). */
  pss?: boolean | undefined;
  userAgent?: string | undefined;
  retry?: RetryPolicy | undefined;
  logger?: Logger | undefined;
}

interface KeyState {
  /** The backend that listed the key (a record of another instance is refused). */
  owner: StmBackend;
  keypairId: string;
  alias: string;
  account: unknown;
}

// The keypair behind a KeyRecord travels on the record itself: the daemon resolves a key_handle
// once and hands that record to sign(), which then needs no second lookup.
const STM_KEY = Symbol('signbridge.stm.keypair');
type StmKey = KeyRecord & { [STM_KEY]?: KeyState };

/** One signature with its key, as sigalg.ts plans it. */
type StmSignRequest = SignParams & { key: KeyRecord };

// ckaIdOf and ecdsaToRaw moved to ../remote-key.ts (the csc backend uses them too); re-exported here.
export { ckaIdOf, ecdsaToRaw } from '../remote-key.js';

export class StmBackend implements Backend {
  readonly name = 'stm';
  private client: StmClient | undefined;
  private token: TokenRecord | undefined;
  private gen = 0n;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<boolean> | undefined;
  private inFlight = new Set<Promise<unknown>>();
  private closing = false;
  private readonly log: Logger | undefined;
  private readonly signTimeoutMs: number;
  private readonly verifyOn: boolean;

  constructor(private readonly opts: StmBackendOptions) {
    this.log = opts.logger;
    this.signTimeoutMs = opts.signTimeoutMs ?? 30_000;
    this.verifyOn = opts.verifySignatures ?? true;
  }

  /** Requests and retries sent so far (tests read this). */
  get stats(): { attempts: number; retries: number } {
    return this.client?.stats ?? { attempts: 0, retries: 0 };
  }

  async start(): Promise<void> {
    const skip = this.opts.tlsSkipVerify ?? false;
    const tls = tlsOptions(this.opts.credentials ?? {}, { skipVerify: skip });
    if (!this.opts.apiKey && !tls.pfx && !tls.cert) {
      throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: 'no STM credentials: set SM_API_KEY and/or SM_CLIENT_CERT_FILE (+ SM_CLIENT_CERT_PASSWORD)' });
    }
    this.client = new StmClient({
      host: this.opts.host,
      apiKey: this.opts.apiKey,
      tls,
      userAgent: this.opts.userAgent ?? 'signbridge',
      logger: this.log,
      retry: this.opts.retry,
    });
    if (skip) this.log?.warn({ host: this.client.display }, 'SM_TLS_SKIP_VERIFY is set: the STM server certificate is NOT checked; unset it outside of tests');
    try {
      // The listing opens (and keeps) the first connection: the first tool pays no handshake.
      await this.refresh('start', this.opts.startTimeoutMs ?? 30_000);
    } catch (e) {
      await this.client.close().catch(() => undefined);
      this.client = undefined;
      throw e;
    }
    const every = this.opts.refreshS ?? 300;
    if (every > 0) {
      this.timer = setInterval(() => void this.refresh('interval').catch(() => undefined), every * 1000);
      this.timer.unref();
    }
  }

  /**
   * Re-list the keys (start, interval, SIGHUP, a KEYPAIR_NOT_FOUND answer). Resolves true when the
   * key set changed. After start a failure keeps the previous keys (logged, one line).
   */
  refresh(reason: string, budgetMs = 30_000): Promise<boolean> {
    this.refreshing ??= this.doRefresh(reason, budgetMs).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(reason: string, budgetMs: number): Promise<boolean> {
    const client = this.client;
    if (!client) return false;
    const deadline = Date.now() + budgetMs;
    let keys: Array<{ k: KeyRecord; st: KeyState }>;
    try {
      keys = await this.discover(client, deadline, budgetMs);
    } catch (e) {
      if (reason === 'start') throw e;
      this.log?.warn({ reason, err: (e as Error).message }, 'STM key refresh failed; keeping the keys listed before');
      return false;
    }
    const h = createHash('sha256');
    for (const { k } of keys) h.update(k.handle).update(k.certificate ?? Buffer.alloc(0)).update(k.mechanisms.join(','));
    const gen = h.digest().readBigUInt64LE(0) || 1n;
    if (gen === this.gen) {
      this.log?.debug({ reason }, 'STM keys unchanged');
      return false;
    }
    this.token = {
      label: (this.opts.tokenLabel ?? DEFAULT_TOKEN_LABEL).slice(0, 32),
      // CK_TOKEN_INFO.serialNumber holds 16 characters: a digest of the host keeps it unique.
      serial: createHash('sha256').update(client.origin).digest('hex').slice(0, 16),
      model: 'DigiCert STM',
      manufacturer: 'signbridge (DigiCert STM)',
      description: `signbridge stm: ${client.display}`.slice(0, 64),
      keys: keys.map((x) => x.k),
    };
    for (const { k, st } of keys) (k as StmKey)[STM_KEY] = st;
    this.gen = gen;
    this.log?.info({ reason, host: client.display, keys: keys.map(({ k }) => `${k.label} (${describeKey(k)})`) }, 'STM keys ready');
    return true;
  }

  private async discover(client: StmClient, deadline: number, budgetMs: number): Promise<Array<{ k: KeyRecord; st: KeyState }>> {
    const items = await client.listCertificates(deadline, budgetMs);
    const filter = this.opts.keyFilter?.filter((f) => f !== '');
    const matches = (c: CertificateItem, f: string): boolean => [c.alias, c.keypair?.alias, c.keypair?.id, c.id].includes(f);
    const wanted = items.filter((c) => (c.certificate_status ?? 'ACTIVE').toUpperCase() === 'ACTIVE' && c.keypair?.id && c.cert && (!filter?.length || filter.some((f) => matches(c, f))));
    for (const f of filter ?? []) {
      if (!items.some((c) => matches(c, f))) this.log?.warn({ filter: f }, 'no STM certificate or keypair matches this --stm-key-filter entry; check the alias or id');
    }
    // One key per keypair: its default certificate, else the one valid longest.
    const byKeypair = new Map<string, CertificateItem>();
    for (const c of wanted) {
      const have = byKeypair.get(c.keypair!.id!);
      const better = !have || (c.default_cert && !have.default_cert) || (!!c.default_cert === !!have.default_cert && (c.valid_to ?? '') > (have.valid_to ?? ''));
      if (better) byKeypair.set(c.keypair!.id!, c);
    }
    const out: Array<{ k: KeyRecord; st: KeyState }> = [];
    // Keypair details a few at a time: key_alg (cross-check) and account (sent with each sign).
    const list = [...byKeypair.values()];
    for (let i = 0; i < list.length; i += 8) {
      const batch = await Promise.all(
        list.slice(i, i + 8).map(async (c) => {
          try {
            return { c, kp: await client.getKeypair(c.keypair!.id!, deadline, budgetMs) };
          } catch (e) {
            // Credentials and deadlines fail the whole listing; one inaccessible keypair does not.
            if (e instanceof StmError && (e.stmCode === 'SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND' || e.stmCode === 'SIGNBRIDGE_ERR_STM_REFUSED')) {
              this.log?.warn({ keypair: c.keypair!.id, alias: c.alias, err: e.message }, 'skipping an STM keypair the daemon cannot read');
              return undefined;
            }
            throw e;
          }
        }),
      );
      for (const b of batch) {
        if (!b) continue;
        try {
          out.push(this.keyRecord(client, b.c, b.kp));
        } catch (e) {
          this.log?.warn({ keypair: b.c.keypair!.id, alias: b.c.alias, err: (e as Error).message }, 'skipping an STM key the daemon cannot use');
        }
      }
    }
    return out.sort((a, b) => a.k.label.localeCompare(b.k.label) || Buffer.compare(a.k.id, b.k.id));
  }

  private keyRecord(client: StmClient, c: CertificateItem, kp: KeypairDetails): { k: KeyRecord; st: KeyState } {
    const der = Buffer.from(c.cert!, 'base64');
    const spki = parseCertificate(der).spkiDer;
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const shape = keyShape(publicKey);
    const declared = keyTypeOfAlg(kp.key_alg);
    if (declared && declared !== shape.type) throw new Error(`keypair key_alg ${kp.key_alg} does not match its certificate's ${shape.type} key`);
    if (kp.public_key) {
      const kpSpki = Buffer.from(kp.public_key, 'base64');
      if (!kpSpki.equals(spki)) throw new Error("the certificate's public key is not the keypair's public key");
    }
    const chain = (c.chain ?? [])
      .map((x) => (x.blob ? Buffer.from(x.blob, 'base64') : undefined))
      .filter((x): x is Buffer<ArrayBuffer> => x !== undefined && x.length > 0 && !x.equals(der));
    const keypairId = c.keypair!.id!;
    const id = ckaIdOf(keypairId);
    const label = c.alias ?? c.keypair?.alias ?? kp.alias ?? keypairId;
    const k: KeyRecord = {
      handle: keyHandle(this.name, client.origin, id, spki),
      id,
      label,
      ...shape,
      publicKey,
      spki,
      certificate: der,
      chain,
      mechanisms: stmMechanisms(shape.type, { pss: this.opts.pss ?? true }),
      local: true, // generated in STM's HSM
    };
    return { k, st: { owner: this, keypairId, alias: label, account: kp.account ?? c.account } };
  }

  tokens(): TokenRecord[] {
    return this.token ? [this.token] : [];
  }

  generation(): bigint {
    return this.gen;
  }

  sign(key: KeyRecord, params: SignParams): Promise<Buffer> {
    const st = (key as StmKey)[STM_KEY];
    if (!st || st.owner !== this || this.closing || !this.client) {
      return Promise.reject(stmError('SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND', { keypair: key.label, detail: 'not in the current key list' }));
    }
    const req: StmSignRequest = { key, ...params };
    let plan: StmSignPlan;
    try {
      plan = planSign(req);
    } catch (e) {
      return Promise.reject(e);
    }
    const p = this.signRemote(this.client, req, st, plan);
    this.inFlight.add(p);
    const done = (): void => void this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private async signRemote(client: StmClient, req: StmSignRequest, st: KeyState, plan: StmSignPlan): Promise<Buffer> {
    const t0 = Date.now();
    const body: { hash: string; sig_alg: string; account?: unknown } = { hash: plan.hash.toString('base64'), sig_alg: plan.sigAlg };
    if (st.account !== undefined && st.account !== null) body.account = st.account;
    let sig: Buffer;
    try {
      sig = await client.sign(st.keypairId, body, {
        what: `the signature with ${st.alias}`,
        deadline: t0 + this.signTimeoutMs,
        budgetMs: this.signTimeoutMs,
        keypair: st.alias,
        sigAlg: plan.sigAlg,
      });
    } catch (e) {
      // STM no longer knows the keypair: re-list now, so the module's re-fetch sees the change.
      if (e instanceof StmError && e.stmCode === 'SIGNBRIDGE_ERR_STM_KEYPAIR_NOT_FOUND') void this.refresh('keypair not found').catch(() => undefined);
      throw e;
    }
    const out = this.toPkcs11(req.key, plan, sig, st);
    if (this.verifyOn && !this.verifies(req, plan, out)) {
      throw stmError('SIGNBRIDGE_ERR_STM_BAD_SIGNATURE', { keypair: st.alias, sigAlg: plan.sigAlg });
    }
    this.log?.debug({ key: st.alias, sigAlg: plan.sigAlg, ms: Date.now() - t0 }, 'STM signed');
    return out;
  }

  /** The signature in the form protocol.md "SIGN" replies with. */
  private toPkcs11(key: KeyRecord, plan: StmSignPlan, sig: Buffer, st: KeyState): Buffer {
    const fieldBytes = Math.ceil(key.bits / 8);
    const bad = (detail: string): StmError =>
      stmError('SIGNBRIDGE_ERR_STM_RESPONSE', { host: this.client?.display ?? '?', what: `the signature with ${st.alias}`, detail });
    if (key.type === 'ec') {
      try {
        return ecdsaToRaw(sig, fieldBytes);
      } catch (e) {
        throw bad((e as Error).message);
      }
    }
    if (key.type === 'rsa') {
      // Some services drop leading zero bytes; PKCS#11 wants exactly the modulus length.
      if (sig.length > fieldBytes) throw bad(`RSA signature of ${sig.length} bytes for a ${key.bits}-bit key (${plan.sigAlg})`);
      return sig.length === fieldBytes ? sig : Buffer.concat([Buffer.alloc(fieldBytes - sig.length), sig]);
    }
    if (sig.length !== 64) throw bad(`Ed25519 signature of ${sig.length} bytes`);
    return sig;
  }

  private verifies(req: StmSignRequest, plan: StmSignPlan, sig: Buffer): boolean {
    const pub = req.key.publicKey;
    switch (req.mechanism) {
      case CKM_RSA_PKCS:
        return verifyRsaPkcs1(pub, req.data, sig);
      case CKM_RSA_PKCS_PSS:
        return verifyRsaPss(pub, plan.hashName!, plan.hash, plan.saltLen!, sig, this.opts.verifyDigest);
      case CKM_ECDSA:
        return verifyEcdsaDigest(pub, plan.hash, sig, this.opts.verifyDigest);
      case CKM_EDDSA:
        return verifyEd25519(pub, req.data, sig);
      default:
        return false;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.inFlight]);
    await this.refreshing?.catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    this.client = undefined;
  }
}
