// The signing mechanisms signbridge offers, described independently of the module and daemon
// (docs/mechanisms.md), plus an independent verifier: every signature a test gets from the module
// is checked here with node:crypto against the key's certificate, never against signbridge output.
import { constants, createHash, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { TestKey } from './token.js';

export type Hash = 'sha256' | 'sha384' | 'sha512';
export const HASHES: readonly Hash[] = ['sha256', 'sha384', 'sha512'];
export const HASH_LEN: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };

// PKCS#11 3.0 values the 2.40 header (and pkcs11js) lack — design.md "PKCS#11 headers".
export const CKM_EDDSA = 0x1057;
export const CKK_EC_EDWARDS = 0x40;
// CK_MECHANISM_INFO EC flags (v2.40 §2.3.1), exported by pkcs11js at run time but not in its types.
export const CKF_EC_F_P = 0x100000;
export const CKF_EC_NAMEDCURVE = 0x800000;
export const CKF_EC_UNCOMPRESS = 0x1000000;

export const CKM_HASH: Record<Hash, number> = {
  sha256: pkcs11js.CKM_SHA256,
  sha384: pkcs11js.CKM_SHA384,
  sha512: pkcs11js.CKM_SHA512,
};
export const CKG_MGF1: Record<Hash, number> = {
  sha256: pkcs11js.CKG_MGF1_SHA256,
  sha384: pkcs11js.CKG_MGF1_SHA384,
  sha512: pkcs11js.CKG_MGF1_SHA512,
};

// DigestInfo prefixes (RFC 8017 §9.2 note 1) — the tests' own copy, independent of the module's.
export const DIGEST_INFO_PREFIX: Record<Hash, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

export type Family = 'rsa' | 'ec' | 'ed25519';
/**
 * How a mechanism takes its input (PKCS#11 v2.40 §2.1.6–2.1.15, §2.3.6–2.3.7; 3.0 §2.3.14):
 * 'digest-info' CKM_RSA_PKCS (a DigestInfo in), 'hash' CKM_RSA_PKCS_PSS / CKM_ECDSA (a hash in),
 * 'message' the hash-and-sign mechanisms and CKM_EDDSA (the message in).
 */
export type Input = 'digest-info' | 'hash' | 'message';

export interface MechCase {
  name: string;
  ckm: number;
  family: Family;
  input: Input;
  pss: boolean;
  /** the mechanism's own hash (hash-and-sign mechanisms); raw mechanisms take any of HASHES */
  hash?: Hash;
  /** C_SignUpdate/C_SignFinal allowed: only where the module hashes (v2.40 mechanism tables, footnote 2) */
  multipart: boolean;
}

export const MECHANISMS: readonly MechCase[] = [
  { name: 'CKM_RSA_PKCS', ckm: pkcs11js.CKM_RSA_PKCS, family: 'rsa', input: 'digest-info', pss: false, multipart: false },
  ...HASHES.map((h) => ({
    name: `CKM_${h.toUpperCase()}_RSA_PKCS`, ckm: pkcs11js[`CKM_${h.toUpperCase()}_RSA_PKCS` as 'CKM_SHA256_RSA_PKCS'],
    family: 'rsa' as const, input: 'message' as const, pss: false, hash: h, multipart: true,
  })),
  { name: 'CKM_RSA_PKCS_PSS', ckm: pkcs11js.CKM_RSA_PKCS_PSS, family: 'rsa', input: 'hash', pss: true, multipart: false },
  ...HASHES.map((h) => ({
    name: `CKM_${h.toUpperCase()}_RSA_PKCS_PSS`, ckm: pkcs11js[`CKM_${h.toUpperCase()}_RSA_PKCS_PSS` as 'CKM_SHA256_RSA_PKCS_PSS'],
    family: 'rsa' as const, input: 'message' as const, pss: true, hash: h, multipart: true,
  })),
  { name: 'CKM_ECDSA', ckm: pkcs11js.CKM_ECDSA, family: 'ec', input: 'hash', pss: false, multipart: false },
  ...HASHES.map((h) => ({
    name: `CKM_ECDSA_${h.toUpperCase()}`, ckm: pkcs11js[`CKM_ECDSA_${h.toUpperCase()}` as 'CKM_ECDSA_SHA256'],
    family: 'ec' as const, input: 'message' as const, pss: false, hash: h, multipart: true,
  })),
  { name: 'CKM_EDDSA', ckm: CKM_EDDSA, family: 'ed25519', input: 'message', pss: false, multipart: true },
];

export function mechName(ckm: number): string {
  return MECHANISMS.find((m) => m.ckm === ckm)?.name ?? `0x${ckm.toString(16)}`;
}

export function mechanismsOf(family: Family): MechCase[] {
  return MECHANISMS.filter((m) => m.family === family);
}

/** Signature length the spec fixes: RSA modulus bytes, ECDSA 2 × field bytes (v2.40 §2.3.1), EdDSA 64. */
export function signatureLength(k: TestKey): number {
  if (k.type === 'rsa') return k.bits! / 8;
  if (k.type === 'ed25519') return 64;
  return { 'P-256': 64, 'P-384': 96 }[k.curve!]!;
}

/** The largest PSS salt: emLen − hLen − 2, emLen = ⌈(modBits − 1)/8⌉ (RFC 8017 §9.1.1 step 3). */
export function maxPssSalt(k: TestKey, h: Hash): number {
  return Math.ceil((k.bits! - 1) / 8) - HASH_LEN[h] - 2;
}

export function digest(h: Hash, message: Buffer): Buffer {
  return createHash(h).update(message).digest();
}

export function digestInfo(h: Hash, message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[h], 'hex'), digest(h, message)]);
}

/** What C_Sign gets for this mechanism over `message` (hashed with `h` for the raw ones). */
export function signInput(m: MechCase, h: Hash, message: Buffer): Buffer {
  if (m.input === 'digest-info') return digestInfo(h, message);
  if (m.input === 'hash') return digest(h, message);
  return message;
}

export function pssParams(h: Hash, saltLen: number, mgf = CKG_MGF1[h]): pkcs11js.RsaPSS {
  return { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: CKM_HASH[h], mgf, saltLen };
}

/** A raw CK_RSA_PKCS_PSS_PARAMS {hashAlg, mgf, sLen} in this platform's CK_ULONG (8 bytes on LP64). */
export function pssParamsBuffer(hashAlg: number, mgf: number, saltLen: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(hashAlg), 0);
  b.writeBigUInt64LE(BigInt(mgf), 8);
  b.writeBigUInt64LE(BigInt(saltLen), 16);
  return b;
}

export function mechanism(m: MechCase, h: Hash, saltLen?: number): pkcs11js.Mechanism {
  if (!m.pss) return { mechanism: m.ckm };
  return { mechanism: m.ckm, parameter: pssParams(h, saltLen ?? HASH_LEN[h]) };
}

export function publicKey(k: TestKey): KeyObject {
  return new X509Certificate(k.certPem).publicKey;
}

/**
 * node:crypto's verdict on a signature over `message` ('hash'/'digest-info' mechanisms: over the
 * message that `h` hashed). PSS: RSA_PKCS1_PSS_PADDING with MGF1 over the same hash and the salt
 * length given; ECDSA: raw r‖s (ieee-p1363); Ed25519: null algorithm (the whole message).
 */
export function verifies(pub: KeyObject, m: MechCase, h: Hash, message: Buffer, sig: Buffer, saltLen?: number): boolean {
  if (m.family === 'ed25519') return cryptoVerify(null, message, pub, sig);
  const alg = m.hash ?? h;
  if (m.family === 'ec') return cryptoVerify(alg, message, { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
  if (m.pss) {
    return cryptoVerify(alg, message, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltLen ?? HASH_LEN[alg] }, sig);
  }
  return cryptoVerify(alg, message, { key: pub, padding: constants.RSA_PKCS1_PADDING }, sig);
}

/** CKA_ALLOWED_MECHANISMS as returned by C_GetAttributeValue: an array of native CK_ULONG (8 bytes here). */
export function decodeUlongArray(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 8 <= b.length; i += 8) out.push(Number(b.readBigUInt64LE(i)));
  return out;
}

/**
 * The "sig <SHA256_RSA_PKCS|ECDSA_SHA256> <data-hex> <sig-hex>" lines of the C harnesses
 * (conformance.c, interfaces.c), verified with node:crypto against the test token's rsa-3072 and
 * ec-p256 certificates. Returns the mechanism names in order and which of them verified.
 */
export function verifyHarnessSignatures(lines: string[], keys: TestKey[]): { names: string[]; verified: boolean[] } {
  const cert = (label: string) => publicKey(keys.find((k) => k.label === label)!);
  const sigs = lines.filter((l) => l.startsWith('sig '));
  const names = sigs.map((l) => l.split(' ')[1]!);
  const verified = sigs.map((line) => {
    const [, name, dataHex, sigHex] = line.split(' ');
    const data = Buffer.from(dataHex!, 'hex');
    const sig = Buffer.from(sigHex!, 'hex');
    return name === 'SHA256_RSA_PKCS'
      ? cryptoVerify('sha256', data, cert('rsa-3072'), sig)
      : cryptoVerify('sha256', data, { key: cert('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig);
  });
  return { names, verified };
}
