// What each key type can sign with, and the CK_MECHANISM_INFO the module reports for it.
// Sizes are in bits for RSA and EC (SunPKCS11 checks keys against them, docs/consumers.md "SunPKCS11").
// The module hashes for the CKM_SHAxxx_* variants and sends one of the four signing primitives
// (protocol.md "SIGN"), so every mechanism here is backed by RSA_PKCS, RSA_PKCS_PSS, ECDSA or EDDSA.
import type { KeyRecord, KeyType } from './keys.js';
import {
  CKF_EC_F_P, CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS, CKF_SIGN,
  CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_EDDSA,
  CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS,
  CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS,
} from './pkcs11.js';

export interface MechanismInfo {
  type: number;
  minKeySize: number;
  maxKeySize: number;
  flags: number;
}

export const RSA_MECHANISMS: readonly number[] = [
  CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
  CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
];
export const EC_MECHANISMS: readonly number[] = [CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512];
export const EDDSA_MECHANISMS: readonly number[] = [CKM_EDDSA];

export function mechanismsFor(type: KeyType): number[] {
  switch (type) {
    case 'rsa':
      return [...RSA_MECHANISMS];
    case 'ec':
      return [...EC_MECHANISMS];
    case 'ed25519':
      return [...EDDSA_MECHANISMS];
  }
}

const FLAGS: Record<KeyType, number> = {
  rsa: CKF_SIGN,
  ec: CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
  ed25519: CKF_SIGN,
};

/** The primitive (protocol.md "SIGN" mechanism) a mechanism the module advertises reduces to. */
export function primitiveOf(mechanism: number): number | undefined {
  if (mechanism === CKM_RSA_PKCS || mechanism === CKM_SHA256_RSA_PKCS || mechanism === CKM_SHA384_RSA_PKCS || mechanism === CKM_SHA512_RSA_PKCS) return CKM_RSA_PKCS;
  if (mechanism === CKM_RSA_PKCS_PSS || mechanism === CKM_SHA256_RSA_PKCS_PSS || mechanism === CKM_SHA384_RSA_PKCS_PSS || mechanism === CKM_SHA512_RSA_PKCS_PSS) return CKM_RSA_PKCS_PSS;
  if (EC_MECHANISMS.includes(mechanism)) return CKM_ECDSA;
  if (mechanism === CKM_EDDSA) return CKM_EDDSA;
  return undefined;
}

function keyTypeOf(mechanism: number): KeyType | undefined {
  if (RSA_MECHANISMS.includes(mechanism)) return 'rsa';
  if (EC_MECHANISMS.includes(mechanism)) return 'ec';
  if (mechanism === CKM_EDDSA) return 'ed25519';
  return undefined;
}

/**
 * The slot's mechanism list: the union of its keys' mechanisms, in a stable order. Each size range
 * is exactly the smallest and largest key served with that mechanism, not a range the backends
 * could in principle sign with: SunPKCS11 rejects a key outside [min, max] (docs/consumers.md), so
 * every served key must fit, and pkcs11-tool -M / p11tool show the range to people choosing a key,
 * who must not read "RSA 1024" where no such key exists. The range and the keys come from the same
 * inventory (re-fetched together), so they cannot disagree.
 */
export function slotMechanisms(keys: ReadonlyArray<Pick<KeyRecord, 'type' | 'bits' | 'mechanisms'>>): MechanismInfo[] {
  const out = new Map<number, MechanismInfo>();
  const order = [...RSA_MECHANISMS, ...EC_MECHANISMS, ...EDDSA_MECHANISMS];
  for (const k of keys) {
    for (const m of k.mechanisms) {
      const t = keyTypeOf(m);
      if (t === undefined) continue;
      const cur = out.get(m) ?? { type: m, minKeySize: k.bits, maxKeySize: k.bits, flags: FLAGS[t] };
      cur.minKeySize = Math.min(cur.minKeySize, k.bits);
      cur.maxKeySize = Math.max(cur.maxKeySize, k.bits);
      out.set(m, cur);
    }
  }
  return order.filter((m) => out.has(m)).map((m) => out.get(m)!);
}
