// The STM model behind the HTTP layer: keypairs (keys in SoftHSMv2), certificates chained to the
// emulator CA, signing and signature records. Request shapes and error codes follow
// docs/stm-api.md and DigiCert's tutorial (the seed); every choice the seed leaves open is
// written down in docs/emulator.md.

import { createHash, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { ecdsaRawToDer } from '../core/der.js';
import {
  CKG_MGF1_SHA256,
  CKG_MGF1_SHA384,
  CKG_MGF1_SHA512,
  CKM_ECDSA,
  CKM_EDDSA,
  CKM_RSA_PKCS,
  CKM_RSA_PKCS_PSS,
  CKM_SHA256,
  CKM_SHA384,
  CKM_SHA512,
} from '../core/pkcs11.js';
import type { KeySpec } from '../softhsm/token-setup.js';
import { ApiError } from './errors.js';
import { PSS, type EmulatorHsm, type HsmMechanism } from './hsm.js';
import type { Pki } from './pki.js';
import { saveState, type CertificateRecord, type KeyAlg, type KeypairRecord, type StateFile } from './store.js';

export interface CreateKeypairInput {
  alias: string;
  key_alg: KeyAlg;
  key_size?: number;
  curve?: string;
}

export interface SignatureRecord {
  id: string;
  keypair_id: string;
  key_pair: string;
  signature: string;
  sig_alg: string;
  hash: string;
  signing_status: 'SUCCESS';
  account: string[];
  created_on: string;
  created_by: string;
  created_by_user: string;
  modified_on: string;
  modified_by: string;
  modified_by_user: string;
  client_ip: string;
  certificate_id: string | null;
  client_type: string;
  signature_type: 'HASH' | 'MESSAGE';
}

export interface ClientInfo {
  ip: string;
  userAgent: string | undefined;
  /** which credential authenticated the call, for created_by_user */
  via: 'mtls' | 'api-key';
}

type Hash = 'SHA256' | 'SHA384' | 'SHA512';
const HASH: Record<Hash, { len: number; ckm: number; mgf: number; digestInfo: string }> = {
  // RFC 8017 §9.2 note 1: the DER DigestInfo prefixes
  SHA256: { len: 32, ckm: CKM_SHA256, mgf: CKG_MGF1_SHA256, digestInfo: '3031300d060960864801650304020105000420' },
  SHA384: { len: 48, ckm: CKM_SHA384, mgf: CKG_MGF1_SHA384, digestInfo: '3041300d060960864801650304020205000430' },
  SHA512: { len: 64, ckm: CKM_SHA512, mgf: CKG_MGF1_SHA512, digestInfo: '3051300d060960864801650304020305000440' },
};

export interface ParsedSigAlg {
  keyAlg: KeyAlg;
  /** the form the emulator records, e.g. SHA256WithRSA/PSS */
  canonical: string;
  hash?: Hash;
  pss?: boolean;
}

const SUPPORTED_SIG_ALGS =
  'SHA256WithRSA, SHA384WithRSA, SHA512WithRSA, SHA256WithRSA/PSS, SHA384WithRSA/PSS, SHA512WithRSA/PSS, SHA256WithECDSA, SHA384WithECDSA, SHA512WithECDSA, ED25519';

/** sig_alg, case-insensitively (Java clients send SHA256withRSA); undefined when unknown. */
export function parseSigAlg(s: string): ParsedSigAlg | undefined {
  const u = s.trim().toUpperCase();
  let m = /^SHA(256|384|512)WITHRSA(\/PSS|ANDMGF1)?$/.exec(u);
  if (m) {
    const hash = `SHA${m[1]}` as Hash;
    return m[2] ? { keyAlg: 'RSA', canonical: `${hash}WithRSA/PSS`, hash, pss: true } : { keyAlg: 'RSA', canonical: `${hash}WithRSA`, hash };
  }
  m = /^SHA(256|384|512)WITHECDSA$/.exec(u);
  if (m) return { keyAlg: 'ECDSA', canonical: `SHA${m[1]}WithECDSA`, hash: `SHA${m[1]}` as Hash };
  if (u === 'ED25519' || u === 'EDDSA') return { keyAlg: 'EdDSA', canonical: 'ED25519' };
  return undefined;
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_SIGNATURES_KEPT = 10_000;
const EMULATOR_USER = '00000000-0000-4000-8000-0000000e0001';

/** Normalises a curve name; undefined when the emulator cannot make that key. */
export function normaliseCurve(keyAlg: KeyAlg, curve: unknown): string | undefined {
  if (typeof curve !== 'string') return undefined;
  const c = curve.trim().toUpperCase().replace(/[_ ]/g, '-');
  if (keyAlg === 'ECDSA') {
    if (['P-256', 'P256', 'SECP256R1', 'PRIME256V1', 'NIST-P-256'].includes(c)) return 'P-256';
    if (['P-384', 'P384', 'SECP384R1', 'NIST-P-384'].includes(c)) return 'P-384';
  }
  if (keyAlg === 'EdDSA' && c === 'ED25519') return 'Ed25519';
  return undefined;
}

function str(v: unknown): v is string {
  return typeof v === 'string';
}

export class StmService {
  private readonly signatures = new Map<string, SignatureRecord>();

  constructor(
    private readonly dir: string,
    private readonly state: StateFile,
    private readonly hsm: EmulatorHsm,
    private readonly pki: Pki,
  ) {}

  get account(): string {
    return this.state.account;
  }

  // --- keypairs ------------------------------------------------------------------------------

  /** Validates a POST keypairs body (seed fields) into a CreateKeypairInput. */
  static validateCreate(body: unknown): CreateKeypairInput & Pick<KeypairRecord, 'key_storage' | 'key_type' | 'status'> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError('INVALID_REQUEST', 'the request body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (!str(b.alias) || !ALIAS.test(b.alias)) {
      throw new ApiError('INVALID_ALIAS', 'alias is required: 1 to 64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    const algs: Record<string, KeyAlg> = { RSA: 'RSA', ECDSA: 'ECDSA', EDDSA: 'EdDSA' };
    const keyAlg = str(b.key_alg) ? algs[b.key_alg.toUpperCase()] : undefined;
    if (!keyAlg) throw new ApiError('INVALID_KEY_ALG', 'Invalid key algorithm specified: use one of RSA, ECDSA or EdDSA');
    const props = b.properties;
    if (typeof props !== 'object' || props === null || Array.isArray(props)) {
      throw new ApiError('INVALID_PROPERTIES', 'Key properties are required for the specified algorithm: RSA requires key_size, ECDSA and EdDSA require curve');
    }
    const p = props as Record<string, unknown>;
    const out: CreateKeypairInput = { alias: b.alias, key_alg: keyAlg };
    if (keyAlg === 'RSA') {
      if (p.key_size !== 2048 && p.key_size !== 3072 && p.key_size !== 4096) {
        throw new ApiError('INVALID_PROPERTIES', 'RSA requires properties.key_size: 2048, 3072 or 4096');
      }
      out.key_size = p.key_size;
    } else {
      const curve = normaliseCurve(keyAlg, p.curve);
      if (!curve) {
        throw new ApiError('INVALID_PROPERTIES', keyAlg === 'ECDSA' ? 'ECDSA requires properties.curve: P-256 or P-384' : 'EdDSA requires properties.curve: Ed25519');
      }
      out.curve = curve;
    }
    const pick = <T extends string>(field: string, allowed: readonly T[], dflt: T, code: 'INVALID_REQUEST' | 'INVALID_STATUS'): T => {
      const v = b[field];
      if (v === undefined || v === null) return dflt;
      const u = str(v) ? (v.toUpperCase() as T) : undefined;
      if (!u || !allowed.includes(u)) throw new ApiError(code, `${field} must be one of ${allowed.join(', ')}`);
      return u;
    };
    return {
      ...out,
      key_storage: pick('key_storage', ['HSM', 'DISK'] as const, 'HSM', 'INVALID_REQUEST'),
      key_type: pick('key_type', ['PRODUCTION', 'TEST'] as const, 'TEST', 'INVALID_REQUEST'),
      status: pick('status', ['ONLINE', 'OFFLINE'] as const, 'ONLINE', 'INVALID_STATUS'),
    };
  }

  /** Generates the key in SoftHSMv2, issues its certificate, records both. */
  async createKeypair(
    input: CreateKeypairInput & Partial<Pick<KeypairRecord, 'key_storage' | 'key_type' | 'status'>>,
  ): Promise<{ keypair: KeypairRecord; certificate: CertificateRecord }> {
    if (this.state.keypairs.some((k) => k.alias === input.alias)) {
      throw new ApiError('ALIAS_ALREADY_EXISTS', `a keypair with alias "${input.alias}" already exists: choose another alias`);
    }
    const spec: KeySpec =
      input.key_alg === 'RSA'
        ? { type: 'rsa', bits: input.key_size as 2048 | 3072 | 4096 }
        : input.key_alg === 'ECDSA'
          ? { type: 'ec', curve: input.curve as 'P-256' | 'P-384' }
          : { type: 'ed25519' };
    const id = randomUUID();
    const hsmId = randomBytes(16).toString('hex');
    let spki: Buffer;
    try {
      spki = this.hsm.generate(spec, input.alias, hsmId);
    } catch (e) {
      throw new ApiError('HSM_ERROR', `SoftHSMv2 could not generate the key pair: ${(e as Error).message}`);
    }
    return this.addKeypair({ ...input, id, hsm_id: hsmId }, spki);
  }

  /** Records a keypair whose key is already in the token (seeds, createKeypair). */
  async addKeypair(
    k: CreateKeypairInput & Partial<Pick<KeypairRecord, 'key_storage' | 'key_type' | 'status'>> & { id: string; hsm_id: string },
    spki: Buffer,
  ): Promise<{ keypair: KeypairRecord; certificate: CertificateRecord }> {
    const now = new Date().toISOString();
    const keypair: KeypairRecord = {
      id: k.id,
      alias: k.alias,
      key_alg: k.key_alg,
      ...(k.key_alg === 'RSA' ? { key_size: k.key_size! } : { curve: k.curve! }),
      key_storage: k.key_storage ?? 'HSM',
      key_type: k.key_type ?? 'TEST',
      status: k.status ?? 'ONLINE',
      key_status: 'ACTIVE',
      hsm_id: k.hsm_id,
      public_key: spki.toString('base64'),
      created_on: now,
      modified_on: now,
      release_window_open: true,
      signatures_remaining: null,
    };
    this.state.keypairs.push(keypair);
    const certificate = await this.newCertificate(keypair);
    saveState(this.dir, this.state);
    return { keypair, certificate };
  }

  private async newCertificate(k: KeypairRecord): Promise<CertificateRecord> {
    const der = await this.pki.issueCodeSigning(k.alias, Buffer.from(k.public_key, 'base64'));
    const c: CertificateRecord = {
      id: randomUUID(),
      keypair_id: k.id,
      cert: der.toString('base64'),
      certificate_status: 'ACTIVE',
      default_cert: true,
      created_on: new Date().toISOString(),
    };
    this.state.certificates.push(c);
    return c;
  }

  /** POST keypairs/{id}/certificate: a new certificate; the previous default one is REVOKED. */
  async reissueCertificate(keypairId: string): Promise<CertificateRecord> {
    const k = this.keypair(keypairId);
    for (const c of this.state.certificates) {
      if (c.keypair_id === k.id && c.default_cert) {
        c.default_cert = false;
        c.certificate_status = 'REVOKED';
      }
    }
    const c = await this.newCertificate(k);
    saveState(this.dir, this.state);
    return c;
  }

  keypair(id: string, account?: unknown): KeypairRecord {
    const k = this.state.keypairs.find((x) => x.id === id);
    // seed: "Keypair not found or you do not have access" — another account is "no access"
    if (!k || (account !== undefined && account !== this.state.account)) {
      throw new ApiError('KEYPAIR_NOT_FOUND', 'Keypair not found or you do not have access: check the keypair id (GET keypairs lists them)');
    }
    return k;
  }

  keypairs(): KeypairRecord[] {
    return this.state.keypairs;
  }

  currentCertificate(keypairId: string): CertificateRecord | undefined {
    return this.state.certificates.find((c) => c.keypair_id === keypairId && c.default_cert);
  }

  certificates(): CertificateRecord[] {
    return this.state.certificates;
  }

  /** PUT keypairs/{id}: {"status": "SUSPENDED" | "ACTIVE" | "ONLINE" | "OFFLINE"} (or key_status). */
  updateKeypair(id: string, body: unknown): KeypairRecord {
    const k = this.keypair(id);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError('INVALID_REQUEST', 'the request body must be a JSON object');
    const b = body as Record<string, unknown>;
    const v = b.status ?? b.key_status;
    const u = str(v) ? v.toUpperCase() : undefined;
    if (u === 'SUSPENDED' || u === 'SUSPEND') k.key_status = 'SUSPENDED';
    else if (u === 'ACTIVE' || u === 'RESUMED' || u === 'RESUME') k.key_status = 'ACTIVE';
    else if (u === 'ONLINE' || u === 'OFFLINE') k.status = u;
    else throw new ApiError('INVALID_STATUS', 'status must be SUSPENDED, ACTIVE, ONLINE or OFFLINE');
    k.modified_on = new Date().toISOString();
    saveState(this.dir, this.state);
    return k;
  }

  setReleaseWindow(id: string, open: boolean): void {
    this.keypair(id).release_window_open = open;
    saveState(this.dir, this.state);
  }

  setSignatureLimit(id: string, remaining: number | null): void {
    if (remaining !== null && (!Number.isInteger(remaining) || remaining < 0)) throw new ApiError('INVALID_REQUEST', 'remaining must be null or a whole number >= 0');
    this.keypair(id).signatures_remaining = remaining;
    saveState(this.dir, this.state);
  }

  // --- signing -------------------------------------------------------------------------------

  /**
   * POST keypairs/{id}/sign. Check order (docs/emulator.md): 404 keypair → 400 request
   * (sig_alg, hash) → 403 suspended → 403 release window → 403 signature limit → sign in SoftHSMv2.
   */
  async sign(id: string, body: unknown, client: ClientInfo): Promise<SignatureRecord> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError('INVALID_REQUEST', 'the request body must be a JSON object with hash and sig_alg');
    const b = body as Record<string, unknown>;
    const k = this.keypair(id, b.account);
    if (!str(b.sig_alg)) throw new ApiError('INVALID_SIG_ALG', `sig_alg is required: one of ${SUPPORTED_SIG_ALGS}`);
    const alg = parseSigAlg(b.sig_alg);
    if (!alg) throw new ApiError('INVALID_SIG_ALG', `sig_alg "${b.sig_alg.slice(0, 64)}" is not supported by the emulator: use one of ${SUPPORTED_SIG_ALGS}`);
    if (alg.keyAlg !== k.key_alg) {
      throw new ApiError('INVALID_SIG_ALG', `Signature algorithm is not compatible with keypair algorithm: ${alg.canonical} cannot be used with an ${k.key_alg} keypair`);
    }
    if (!str(b.hash) || b.hash.length === 0 || !B64.test(b.hash)) throw new ApiError('INVALID_HASH', 'hash is required: the base64 (RFC 4648 §4) digest to sign');
    const data = Buffer.from(b.hash, 'base64');
    if (alg.hash && data.length !== HASH[alg.hash].len) {
      throw new ApiError('INVALID_HASH', `hash holds ${data.length} bytes; ${alg.canonical} needs a ${HASH[alg.hash].len}-byte ${alg.hash} digest`);
    }
    if (k.key_status === 'SUSPENDED') throw new ApiError('KEYPAIR_SUSPENDED', `keypair "${k.alias}" is suspended: an administrator must resume it before it can sign`);
    if (!k.release_window_open) throw new ApiError('RELEASE_WINDOW_CLOSED', `no open release window allows keypair "${k.alias}" to sign now: ask an approver to open one`);
    if (k.signatures_remaining === 0) throw new ApiError('SIGNATURE_LIMIT_EXCEEDED', `keypair "${k.alias}" reached the signature limit of its release window: ask for a new window`);

    let signature: Buffer;
    try {
      signature = await this.signInHsm(k, alg, data);
    } catch (e) {
      throw new ApiError('HSM_ERROR', `the HSM could not sign: ${(e as Error).message}`);
    }
    if (k.signatures_remaining !== null) {
      k.signatures_remaining = Math.max(0, k.signatures_remaining - 1);
      saveState(this.dir, this.state);
    }
    const now = new Date().toISOString();
    const rec: SignatureRecord = {
      id: randomUUID(),
      keypair_id: k.id,
      key_pair: k.alias,
      signature: signature.toString('base64'),
      sig_alg: alg.canonical,
      hash: b.hash,
      signing_status: 'SUCCESS',
      account: [this.state.account],
      created_on: now,
      created_by: EMULATOR_USER,
      created_by_user: client.via === 'mtls' ? 'emulator-client-certificate' : 'emulator-api-key',
      modified_on: now,
      modified_by: EMULATOR_USER,
      modified_by_user: client.via === 'mtls' ? 'emulator-client-certificate' : 'emulator-api-key',
      client_ip: client.ip,
      certificate_id: this.currentCertificate(k.id)?.id ?? null,
      client_type: client.userAgent?.slice(0, 256) || 'unknown',
      signature_type: alg.hash ? 'HASH' : 'MESSAGE',
    };
    this.signatures.set(rec.id, rec);
    if (this.signatures.size > MAX_SIGNATURES_KEPT) this.signatures.delete(this.signatures.keys().next().value!);
    return rec;
  }

  private async signInHsm(k: KeypairRecord, alg: ParsedSigAlg, data: Buffer): Promise<Buffer> {
    let mech: HsmMechanism;
    let input = data;
    if (alg.keyAlg === 'RSA' && alg.pss) {
      const h = HASH[alg.hash!];
      // PSS over the given digest, MGF1 with the same hash, salt = hash length
      mech = { mechanism: CKM_RSA_PKCS_PSS, parameter: { hashAlg: h.ckm, mgf: h.mgf, saltLen: h.len, type: PSS.CK_PARAMS_RSA_PSS } };
    } else if (alg.keyAlg === 'RSA') {
      // PKCS#1 v1.5 over DigestInfo(hash) with CKM_RSA_PKCS (RFC 8017 §9.2)
      mech = { mechanism: CKM_RSA_PKCS };
      input = Buffer.concat([Buffer.from(HASH[alg.hash!].digestInfo, 'hex'), data]);
    } else if (alg.keyAlg === 'ECDSA') {
      mech = { mechanism: CKM_ECDSA };
    } else {
      mech = { mechanism: CKM_EDDSA }; // the "hash" field carries the message itself (Ed25519 is not prehashed)
    }
    const sig = await this.hsm.sign(k.hsm_id, mech, input);
    // Java-style services return ECDSA as a DER Ecdsa-Sig-Value (RFC 3279 §2.2.3), not PKCS#11's raw r‖s
    return alg.keyAlg === 'ECDSA' ? ecdsaRawToDer(sig) : sig;
  }

  signature(id: string): SignatureRecord {
    const s = this.signatures.get(id);
    if (!s) throw new ApiError('SIGNATURE_NOT_FOUND', 'no signature with this id (the emulator keeps the last 10000 signatures of this run)');
    return s;
  }

  signatureList(): SignatureRecord[] {
    return [...this.signatures.values()];
  }

  // --- JSON views ----------------------------------------------------------------------------

  keypairJson(k: KeypairRecord): Record<string, unknown> {
    return {
      id: k.id,
      alias: k.alias,
      key_alg: k.key_alg,
      ...(k.key_size !== undefined ? { key_size: k.key_size } : {}),
      ...(k.curve !== undefined ? { curve: k.curve } : {}),
      key_storage: k.key_storage,
      key_type: k.key_type,
      status: k.status,
      key_status: k.key_status,
      account: this.state.account,
      public_key: k.public_key,
      certificate_id: this.currentCertificate(k.id)?.id ?? null,
      created_on: k.created_on,
      modified_on: k.modified_on,
    };
  }

  certificateJson(c: CertificateRecord): Record<string, unknown> {
    const der = Buffer.from(c.cert, 'base64');
    const x = new X509Certificate(der);
    const k = this.state.keypairs.find((x2) => x2.id === c.keypair_id);
    return {
      id: c.id,
      alias: k?.alias ?? null,
      cert: c.cert,
      certificate_fingerprint: createHash('sha256').update(der).digest('hex'),
      serial_number: x.serialNumber.toLowerCase(),
      subject: x.subject.replace(/\n/g, ', '),
      certificate_status: c.certificate_status,
      default_cert: c.default_cert,
      keypair: { id: c.keypair_id, alias: k?.alias ?? null },
      account: this.state.account,
      valid_from: new Date(x.validFrom).toISOString(),
      valid_to: new Date(x.validTo).toISOString(),
      created_on: c.created_on,
      chain: [{ cert_type: 'ROOT', blob: this.pki.caCertDer.toString('base64') }],
    };
  }
}
