// A PKCS#11 signature request → what signatures/signHash takes (CSC API v1 §11.9): the hash,
// hashAlgo and signAlgo as OIDs. signAlgo is picked from the credential's own key.algo list
// (credentials/info): the combined OID (sha256WithRSAEncryption, ecdsa-with-SHA256) when listed,
// else the key algorithm (rsaEncryption, id-ecPublicKey) with hashAlgo beside it.
import type { KeyType } from '../../core/keys.js';
import { CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_RSA_PKCS, CKM_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA384, CKM_SHA384_RSA_PKCS, CKM_SHA512, CKM_SHA512_RSA_PKCS } from '../../core/pkcs11.js';
import type { SignParams } from '../types.js';
import { HASHES, parseDigestInfo, type HashName } from '../stm/sigalg.js';
import { cscError } from './errors.js';

const HASH_OID: Record<HashName, string> = {
  sha1: '1.3.14.3.2.26',
  sha224: '2.16.840.1.101.3.4.2.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};
const RSA_OID = '1.2.840.113549.1.1.1';
const EC_OID = '1.2.840.10045.2.1';
const RSA_WITH: Partial<Record<HashName, string>> = { sha256: '1.2.840.113549.1.1.11', sha384: '1.2.840.113549.1.1.12', sha512: '1.2.840.113549.1.1.13' };
const ECDSA_WITH: Partial<Record<HashName, string>> = { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3', sha512: '1.2.840.10045.4.3.4' };

/** The mechanisms a CSC credential serves: PKCS#1 v1.5 or ECDSA over SHA-2 (what DTM signs). */
export function cscMechanisms(type: KeyType): number[] {
  if (type === 'rsa') return [CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS];
  if (type === 'ec') return [CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512];
  return [];
}

export interface CscSignPlan {
  hash: Buffer;
  hashName: HashName;
  hashAlgo: string;
  signAlgo: string;
}

/** SignParams of a key with `algos` (its key.algo list) → one signHash entry; CKR_* errors for what cannot be signed. */
export function planSign(type: KeyType, algos: readonly string[], p: SignParams, credential: string): CscSignPlan {
  let hash: Buffer;
  let hashName: HashName | undefined;
  if (p.mechanism === CKM_RSA_PKCS && type === 'rsa') {
    const di = parseDigestInfo(p.data);
    if (!di || !['sha256', 'sha384', 'sha512'].includes(di.hash.name)) {
      throw cscError('SIGNBRIDGE_ERR_CSC_SIG_ALG', { credential, detail: 'CKM_RSA_PKCS input must be a SHA-256/384/512 DigestInfo (the service signs hashes)' }, { ckr: CKR_DATA_INVALID });
    }
    hash = di.digest;
    hashName = di.hash.name;
  } else if (p.mechanism === CKM_ECDSA && type === 'ec') {
    hashName = HASHES.find((h) => h.len === p.data.length && [CKM_SHA256, CKM_SHA384, CKM_SHA512].includes(h.ckm))?.name;
    if (!hashName) throw cscError('SIGNBRIDGE_ERR_CSC_SIG_ALG', { credential, detail: `a ${p.data.length}-byte ECDSA input is not a SHA-256/384/512 digest` }, { ckr: CKR_DATA_LEN_RANGE });
    hash = p.data;
  } else {
    throw cscError('SIGNBRIDGE_ERR_CSC_SIG_ALG', { credential, detail: `mechanism 0x${p.mechanism.toString(16)} is not served for a ${type} credential` });
  }
  const combined = (type === 'rsa' ? RSA_WITH : ECDSA_WITH)[hashName];
  const base = type === 'rsa' ? RSA_OID : EC_OID;
  const signAlgo = combined && algos.includes(combined) ? combined : algos.length === 0 || algos.includes(base) ? base : combined;
  if (!signAlgo) throw cscError('SIGNBRIDGE_ERR_CSC_SIG_ALG', { credential, detail: `the credential lists no algorithm for ${hashName} (${algos.join(', ')})` });
  return { hash, hashName, hashAlgo: HASH_OID[hashName], signAlgo };
}
