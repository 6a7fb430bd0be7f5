// Key facts both remote backends (stm, csc) derive the same way: the CKA_ID of a remote key id,
// the type/size/curve of a certificate's public key, and an ECDSA signature in PKCS#11's r‖s form.
import type { KeyObject } from 'node:crypto';
import { children, decode, ecdsaDerToRaw, readUnsignedInteger, TAG } from '../core/der.js';
import type { Curve, KeyType } from '../core/keys.js';

const NAMED_CURVES: Record<string, { curve: Curve; bits: number }> = {
  prime256v1: { curve: 'P-256', bits: 256 },
  secp384r1: { curve: 'P-384', bits: 384 },
  secp521r1: { curve: 'P-521', bits: 521 },
};

/** CKA_ID of a keypair: its UUID's 16 bytes, else the id's UTF-8 (stable across restarts). */
export function ckaIdOf(keypairId: string): Buffer {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(keypairId)) return Buffer.from(keypairId.replace(/-/g, ''), 'hex');
  return Buffer.from(keypairId, 'utf8').subarray(0, 255);
}

/** The key type, size and curve of a SubjectPublicKeyInfo. */
export function keyShape(publicKey: KeyObject): { type: KeyType; bits: number; curve?: Curve } {
  const t = publicKey.asymmetricKeyType;
  const d = publicKey.asymmetricKeyDetails ?? {};
  if (t === 'rsa') return { type: 'rsa', bits: d.modulusLength ?? 0 };
  if (t === 'ec') {
    const c = NAMED_CURVES[d.namedCurve ?? ''];
    if (!c) throw new Error(`unsupported EC curve ${d.namedCurve} (P-256, P-384 and P-521 are supported)`);
    return { type: 'ec', bits: c.bits, curve: c.curve };
  }
  if (t === 'ed25519') return { type: 'ed25519', bits: 256 };
  throw new Error(`unsupported public key type ${t}`);
}

/** An ECDSA signature as STM returns it (DER Ecdsa-Sig-Value, or already r‖s) → r‖s (PKCS#11 v2.40 §2.3.1). */
export function ecdsaToRaw(sig: Buffer, fieldBytes: number): Buffer {
  try {
    const t = decode(sig, TAG.SEQUENCE);
    if (t.raw.length === sig.length && children(t).every((c) => c.tag === TAG.INTEGER && readUnsignedInteger(c).length <= fieldBytes)) {
      return ecdsaDerToRaw(sig, fieldBytes);
    }
  } catch {
    /* not DER */
  }
  if (sig.length === 2 * fieldBytes) return sig;
  throw new Error(`ECDSA signature of ${sig.length} bytes is neither DER nor r‖s of a ${fieldBytes * 8}-bit field`);
}
