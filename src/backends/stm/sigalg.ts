// How a SIGN request (one of the four primitives, protocol.md "SIGN") becomes an STM sign call:
// the `sig_alg` name and the bytes that go in "hash" (docs/stm-api.md "POST keypairs/{id}/sign").
// Pure functions: no I/O, so every mapping decision is unit-tested (test/unit/stm-sigalg.test.ts).
import type { KeyRecord, KeyType } from '../../core/keys.js';
import { mechanismsFor, primitiveOf } from '../../core/mechanisms.js';
import {
  CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512,
  CKM_ECDSA, CKM_EDDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA_1,
  CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID, ckmName,
} from '../../core/pkcs11.js';
import { stmError, type StmError } from './errors.js';

export type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

interface HashInfo {
  ckm: number;
  name: HashName;
  len: number;
  mgf: number;
  /** DER of DigestInfo up to the digest: SEQUENCE { AlgorithmIdentifier { oid, NULL }, OCTET STRING (len) } (RFC 8017 §9.2 note 1). */
  prefix: Buffer;
  /** The STM spelling ("SHA256"), when STM signs this hash at all. */
  stm?: string;
}

export const HASHES: readonly HashInfo[] = [
  { ckm: CKM_SHA_1, name: 'sha1', len: 20, mgf: CKG_MGF1_SHA1, prefix: Buffer.from('3021300906052b0e03021a05000414', 'hex') },
  { ckm: CKM_SHA224, name: 'sha224', len: 28, mgf: CKG_MGF1_SHA224, prefix: Buffer.from('302d300d06096086480165030402040500041c', 'hex') },
  { ckm: CKM_SHA256, name: 'sha256', len: 32, mgf: CKG_MGF1_SHA256, prefix: Buffer.from('3031300d060960864801650304020105000420', 'hex'), stm: 'SHA256' },
  { ckm: CKM_SHA384, name: 'sha384', len: 48, mgf: CKG_MGF1_SHA384, prefix: Buffer.from('3041300d060960864801650304020205000430', 'hex'), stm: 'SHA384' },
  { ckm: CKM_SHA512, name: 'sha512', len: 64, mgf: CKG_MGF1_SHA512, prefix: Buffer.from('3051300d060960864801650304020305000440', 'hex'), stm: 'SHA512' },
];

const byCkm = (ckm: number): HashInfo | undefined => HASHES.find((h) => h.ckm === ckm);

/** The DigestInfo in a CKM_RSA_PKCS input: which hash, and the digest. Undefined when `data` is not one. */
export function parseDigestInfo(data: Buffer): { hash: HashInfo; digest: Buffer } | undefined {
  for (const h of HASHES) {
    if (data.length === h.prefix.length + h.len && data.subarray(0, h.prefix.length).equals(h.prefix)) {
      return { hash: h, digest: Buffer.from(data.subarray(h.prefix.length)) };
    }
  }
  return undefined;
}

/** What one STM sign call needs. */
export interface StmSignPlan {
  /** e.g. "SHA256WithRSA", "SHA384WithRSA/PSS", "SHA256WithECDSA", "ED25519". */
  sigAlg: string;
  /** The bytes sent base64 in "hash": a digest, or the message for ED25519. */
  hash: Buffer;
  /** The digest's hash (undefined for EdDSA): the local verification needs it. */
  hashName?: HashName;
  /** PSS salt length (= digest length; STM's PSS forms use no other). */
  saltLen?: number;
}

export interface SignInput {
  key: Pick<KeyRecord, 'type' | 'bits' | 'label' | 'mechanisms'>;
  mechanism: number;
  hashAlg: number;
  mgf: number;
  saltLen: number;
  data: Buffer;
}

function refuse(ckr: number, detail: string): StmError {
  return stmError('SIGNBRIDGE_ERR_STM_REQUEST', { detail }, { ckr });
}

/**
 * Map a SIGN request onto STM (docs/stm-backend.md "Mechanisms"). Throws StmError with:
 * CKR_MECHANISM_INVALID (the key does not list the primitive), CKR_DATA_INVALID (CKM_RSA_PKCS input
 * that is not a SHA-256/384/512 DigestInfo — STM signs digests, never raw padding input),
 * CKR_DATA_LEN_RANGE (a digest length STM has no algorithm for), CKR_MECHANISM_PARAM_INVALID (PSS
 * parameters other than MGF1 with the same hash and salt = hash length).
 */
export function planSign(req: SignInput): StmSignPlan {
  const { key, mechanism, data } = req;
  const allowed = new Set(key.mechanisms.map((m) => primitiveOf(m)));
  if (!allowed.has(mechanism)) {
    throw refuse(CKR_MECHANISM_INVALID, `key ${key.label} (${key.type}) cannot sign with ${ckmName(mechanism)} through STM; pick a mechanism \`signbridge keys\` lists for it`);
  }
  switch (mechanism) {
    case CKM_RSA_PKCS: {
      const di = parseDigestInfo(data);
      if (!di) throw refuse(CKR_DATA_INVALID, 'CKM_RSA_PKCS input is not a DigestInfo: STM signs digests only (use CKM_SHA256_RSA_PKCS or give a SHA-256/384/512 DigestInfo)');
      // The module's hash_alg, when it gives one, must agree with the DigestInfo we found.
      if (req.hashAlg !== 0 && req.hashAlg !== di.hash.ckm) {
        throw refuse(CKR_DATA_INVALID, `CKM_RSA_PKCS: the DigestInfo holds ${di.hash.name}, the request says ${ckmName(req.hashAlg)}`);
      }
      if (!di.hash.stm) throw refuse(CKR_DATA_INVALID, `STM has no RSA signature over ${di.hash.name}: sign with SHA-256, SHA-384 or SHA-512`);
      return { sigAlg: `${di.hash.stm}WithRSA`, hash: di.digest, hashName: di.hash.name };
    }
    case CKM_RSA_PKCS_PSS: {
      const h = byCkm(req.hashAlg);
      if (!h || !h.stm) throw refuse(CKR_MECHANISM_PARAM_INVALID, `PSS hash ${ckmName(req.hashAlg)}: STM signs PSS over SHA-256, SHA-384 or SHA-512 only`);
      if (req.mgf !== h.mgf) throw refuse(CKR_MECHANISM_PARAM_INVALID, `PSS MGF 0x${req.mgf.toString(16)}: STM uses MGF1 with the message hash (${h.name})`);
      if (req.saltLen !== h.len) throw refuse(CKR_MECHANISM_PARAM_INVALID, `PSS salt length ${req.saltLen}: STM uses salt length = hash length (${h.len} for ${h.name})`);
      if (data.length !== h.len) throw refuse(CKR_DATA_LEN_RANGE, `PSS digest of ${data.length} bytes, ${h.name} has ${h.len}`);
      return { sigAlg: `${h.stm}WithRSA/PSS`, hash: Buffer.from(data), hashName: h.name, saltLen: h.len };
    }
    case CKM_ECDSA: {
      // The hash length picks the algorithm (the module's hash_alg, when set, must agree).
      const h = req.hashAlg !== 0 ? byCkm(req.hashAlg) : HASHES.find((x) => x.len === data.length && x.stm);
      if (!h || !h.stm || h.len !== data.length) {
        throw refuse(CKR_DATA_LEN_RANGE, `ECDSA input of ${data.length} bytes: STM signs SHA-256 (32), SHA-384 (48) or SHA-512 (64) digests`);
      }
      return { sigAlg: `${h.stm}WithECDSA`, hash: Buffer.from(data), hashName: h.name };
    }
    case CKM_EDDSA:
      // STM's ED25519 takes the message itself in "hash" (pure EdDSA, RFC 8032).
      if (data.length === 0) throw refuse(CKR_DATA_LEN_RANGE, 'EdDSA message is empty');
      return { sigAlg: 'ED25519', hash: Buffer.from(data) };
    default:
      throw refuse(CKR_MECHANISM_INVALID, `${ckmName(mechanism)} is not a signing primitive`);
  }
}

/**
 * The mechanisms advertised for a key (KeyRecord.mechanisms): everything mechanisms.ts lists for
 * the key type that STM can do. PSS is left out when the service is configured not to offer it.
 */
export function stmMechanisms(type: KeyType, opts: { pss: boolean }): number[] {
  return mechanismsFor(type).filter((m) => opts.pss || primitiveOf(m) !== CKM_RSA_PKCS_PSS);
}

/** STM's key_alg ("RSA", "ECDSA", "EdDSA"; any case) as our key type. */
export function keyTypeOfAlg(keyAlg: unknown): KeyType | undefined {
  const a = String(keyAlg ?? '').toUpperCase();
  if (a === 'RSA') return 'rsa';
  if (a === 'ECDSA' || a === 'EC') return 'ec';
  if (a === 'EDDSA' || a === 'ED25519') return 'ed25519';
  return undefined;
}
