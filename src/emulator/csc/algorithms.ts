// signAlgo / hashAlgo OIDs of signatures/signHash (CSC API v1.0.4.0 §11.9) → the SoftHSMv2
// mechanism and input. OIDs: RFC 8017 Appendix C (RSA), RFC 5758 §3.2 (ECDSA), RFC 5480 §2.1.1
// (ecPublicKey), NIST CSOR (SHA-2).

import { children, decode, readInteger, readOid, TAG } from '../../core/der.js';
import {
  CKG_MGF1_SHA256,
  CKG_MGF1_SHA384,
  CKG_MGF1_SHA512,
  CKM_ECDSA,
  CKM_RSA_PKCS,
  CKM_RSA_PKCS_PSS,
  CKM_SHA256,
  CKM_SHA384,
  CKM_SHA512,
} from '../../core/pkcs11.js';
import { PSS, type HsmMechanism } from '../hsm.js';
import { CscError } from './errors.js';

export type HashName = 'SHA256' | 'SHA384' | 'SHA512';
export type KeyAlg = 'RSA' | 'ECDSA';

export const HASHES: Record<HashName, { oid: string; len: number; ckm: number; mgf: number; digestInfo: string }> = {
  // RFC 8017 §9.2 note 1: the DER DigestInfo prefixes
  SHA256: { oid: '2.16.840.1.101.3.4.2.1', len: 32, ckm: CKM_SHA256, mgf: CKG_MGF1_SHA256, digestInfo: '3031300d060960864801650304020105000420' },
  SHA384: { oid: '2.16.840.1.101.3.4.2.2', len: 48, ckm: CKM_SHA384, mgf: CKG_MGF1_SHA384, digestInfo: '3041300d060960864801650304020205000430' },
  SHA512: { oid: '2.16.840.1.101.3.4.2.3', len: 64, ckm: CKM_SHA512, mgf: CKG_MGF1_SHA512, digestInfo: '3051300d060960864801650304020305000440' },
};

export const OIDS = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  mgf1: '1.2.840.113549.1.1.8',
  'P-256': '1.2.840.10045.3.1.7',
  'P-384': '1.3.132.0.34',
} as const;

interface SignAlgo {
  keyAlg: KeyAlg;
  /** the hash the OID itself names; undefined: hashAlgo (or PSS parameters) must say */
  hash?: HashName;
  pss?: boolean;
}

const SIGN_ALGOS: Record<string, SignAlgo> = {
  [OIDS.rsaEncryption]: { keyAlg: 'RSA' },
  [OIDS.sha256WithRSA]: { keyAlg: 'RSA', hash: 'SHA256' },
  [OIDS.sha384WithRSA]: { keyAlg: 'RSA', hash: 'SHA384' },
  [OIDS.sha512WithRSA]: { keyAlg: 'RSA', hash: 'SHA512' },
  [OIDS.rsassaPss]: { keyAlg: 'RSA', pss: true },
  [OIDS.ecPublicKey]: { keyAlg: 'ECDSA' },
  [OIDS.ecdsaWithSHA256]: { keyAlg: 'ECDSA', hash: 'SHA256' },
  [OIDS.ecdsaWithSHA384]: { keyAlg: 'ECDSA', hash: 'SHA384' },
  [OIDS.ecdsaWithSHA512]: { keyAlg: 'ECDSA', hash: 'SHA512' },
};

/** key/algo of credentials/info: every signAlgo OID this key accepts. */
export function algoOids(keyAlg: KeyAlg): string[] {
  return Object.entries(SIGN_ALGOS)
    .filter(([, a]) => a.keyAlg === keyAlg)
    .map(([oid]) => oid);
}

function hashByOid(oid: string): HashName | undefined {
  return (Object.keys(HASHES) as HashName[]).find((h) => HASHES[h].oid === oid);
}

/** RSASSA-PSS-params (RFC 8017 Appendix A.2.3): hash, MGF1 hash, salt length; defaults SHA-1 are refused. */
function parsePssParams(b64: string): { hash: HashName; saltLen: number } {
  const bad = (why: string): CscError => new CscError('invalid_request', `Invalid parameter signAlgoParams: ${why}`);
  let fields;
  try {
    fields = children(decode(Buffer.from(b64, 'base64'), TAG.SEQUENCE));
  } catch {
    throw bad('not a DER RSASSA-PSS-params SEQUENCE (base64)');
  }
  let hash: HashName | undefined;
  let mgfHash: HashName | undefined;
  let saltLen = 20;
  try {
    for (const f of fields) {
      const inner = children(f)[0]!;
      if (f.tag === 0xa0) hash = hashByOid(readOid(children(inner)[0]!));
      else if (f.tag === 0xa1) {
        const [mgfOid, mgfAlg] = children(inner);
        if (readOid(mgfOid!) !== OIDS.mgf1) throw bad('the mask generation function must be MGF1');
        mgfHash = hashByOid(readOid(children(mgfAlg!)[0]!));
      } else if (f.tag === 0xa2) saltLen = Number(readInteger(inner));
    }
  } catch (e) {
    if (e instanceof CscError) throw e;
    throw bad('a field does not decode');
  }
  if (!hash) throw bad('hashAlgorithm must be SHA-256, SHA-384 or SHA-512');
  if (mgfHash !== hash) throw bad('MGF1 must use the same hash as hashAlgorithm');
  if (saltLen < 0 || saltLen > HASHES[hash].len) throw bad(`saltLength must be 0..${HASHES[hash].len}`);
  return { hash, saltLen };
}

export interface SignPlan {
  hash: HashName;
  mech: HsmMechanism;
  /** what the token signs for one digest */
  input(digest: Buffer): Buffer;
  keyAlg: KeyAlg;
}

/** Resolves signAlgo (+ hashAlgo, signAlgoParams) for a key; errors are the spec's invalid_request texts. */
export function planSignature(keyAlg: KeyAlg, signAlgo: unknown, hashAlgo: unknown, signAlgoParams: unknown): SignPlan {
  if (typeof signAlgo !== 'string') throw new CscError('invalid_request', 'Missing (or invalid type) string parameter signAlgo');
  const a = SIGN_ALGOS[signAlgo];
  if (!a) throw new CscError('invalid_request', `Invalid parameter signAlgo: ${signAlgo.slice(0, 64)} is not one of ${Object.keys(SIGN_ALGOS).join(', ')}`);
  if (a.keyAlg !== keyAlg) throw new CscError('invalid_request', `Invalid parameter signAlgo: ${signAlgo} is not for this credential's ${keyAlg} key (credentials/info key/algo lists what is)`);
  if (hashAlgo !== undefined && typeof hashAlgo !== 'string') throw new CscError('invalid_request', 'Missing (or invalid type) string parameter hashAlgo');
  const named = hashAlgo === undefined ? undefined : hashByOid(hashAlgo);
  if (hashAlgo !== undefined && !named) throw new CscError('invalid_request', `Invalid parameter hashAlgo: use ${Object.values(HASHES).map((h) => h.oid).join(', ')}`);
  let pss: { hash: HashName; saltLen: number } | undefined;
  if (a.pss && signAlgoParams !== undefined) {
    if (typeof signAlgoParams !== 'string') throw new CscError('invalid_request', 'Invalid parameter signAlgoParams: a base64 string');
    pss = parsePssParams(signAlgoParams);
  }
  const hash = a.hash ?? pss?.hash ?? named;
  if (!hash) throw new CscError('invalid_request', `Missing (or invalid type) string parameter hashAlgo: signAlgo ${signAlgo} does not name the hash`);
  if (named && named !== hash) throw new CscError('invalid_request', `Invalid parameter hashAlgo: signAlgo ${signAlgo} uses ${hash}`);
  const h = HASHES[hash];
  if (a.pss) {
    const saltLen = pss?.saltLen ?? h.len; // without parameters: salt = hash length (RFC 8017 §9.1 note 4)
    return { hash, keyAlg, mech: { mechanism: CKM_RSA_PKCS_PSS, parameter: { hashAlg: h.ckm, mgf: h.mgf, saltLen, type: PSS.CK_PARAMS_RSA_PSS } }, input: (d) => d };
  }
  if (keyAlg === 'RSA') {
    // PKCS#1 v1.5 over DigestInfo(hash) with CKM_RSA_PKCS (RFC 8017 §9.2)
    return { hash, keyAlg, mech: { mechanism: CKM_RSA_PKCS }, input: (d) => Buffer.concat([Buffer.from(h.digestInfo, 'hex'), d]) };
  }
  return { hash, keyAlg, mech: { mechanism: CKM_ECDSA }, input: (d) => d };
}
