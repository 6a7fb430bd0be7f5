// The PKCS#11 objects the module serves, built from the backend's TokenRecords (protocol.md
// "GET_INVENTORY"). Attribute values are exactly what C_GetAttributeValue returns, except that
// CK_ULONG values travel as 8-byte little-endian u64 and CKA_ALLOWED_MECHANISMS as a u64 array.
// Which attributes are needed: docs/consumers.md "SunPKCS11" (from keytool and jarsigner traces)
// (SunPKCS11 reads CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_MODULUS /
// CKA_PUBLIC_EXPONENT or CKA_EC_PARAMS on the private key; a missing one fails the listing).
// This module imports nothing from ipc (design.md: ipc → core), so the slot type is declared here
// with the same shape as protocol.ts's Slot.
import { createHash } from 'node:crypto';
import { OID, oid, octetString, parseCertificate, parseRsaPublicKey, parseSpki } from './der.js';
import { commonName, type KeyRecord, type TokenRecord } from './keys.js';
import { slotMechanisms } from './mechanisms.js';
import {
  CKA_ALLOWED_MECHANISMS, CKA_ALWAYS_AUTHENTICATE, CKA_ALWAYS_SENSITIVE, CKA_CERTIFICATE_CATEGORY,
  CKA_CERTIFICATE_TYPE, CKA_CHECK_VALUE, CKA_CLASS, CKA_DECRYPT, CKA_DERIVE, CKA_EC_PARAMS, CKA_EC_POINT,
  CKA_ENCRYPT, CKA_END_DATE, CKA_EXTRACTABLE, CKA_ID, CKA_ISSUER, CKA_JAVA_MIDP_SECURITY_DOMAIN,
  CKA_KEY_TYPE, CKA_LABEL, CKA_LOCAL, CKA_MODIFIABLE, CKA_MODULUS, CKA_MODULUS_BITS,
  CKA_NEVER_EXTRACTABLE, CKA_PRIVATE, CKA_PUBLIC_EXPONENT, CKA_PUBLIC_KEY_INFO, CKA_SENSITIVE,
  CKA_SERIAL_NUMBER, CKA_SIGN, CKA_SIGN_RECOVER, CKA_START_DATE, CKA_SUBJECT, CKA_TOKEN, CKA_TRUSTED,
  CKA_UNWRAP, CKA_VALUE, CKA_VERIFY, CKA_VERIFY_RECOVER, CKA_WRAP, CKC_X_509,
  CK_CERTIFICATE_CATEGORY_AUTHORITY, CK_CERTIFICATE_CATEGORY_TOKEN_USER, CKF_TOKEN_INITIALIZED,
  CKF_USER_PIN_INITIALIZED, CKK_EC, CKK_EC_EDWARDS, CKK_RSA, CKO_CERTIFICATE,
  CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
} from './pkcs11.js';

export interface P11Attribute { type: bigint; value: Buffer }
export interface P11Object { key_handle: Buffer; attributes: P11Attribute[] }
export interface P11Mechanism { type: bigint; min_key_size: number; max_key_size: number; flags: number }
export interface P11Slot {
  slot_id: number;
  slot_description: string;
  manufacturer: string;
  token_label: string;
  token_model: string;
  token_serial: string;
  token_flags: number;
  mechanisms: P11Mechanism[];
  objects: P11Object[];
}

const TRUE = Buffer.from([1]);
const FALSE = Buffer.from([0]);
const EMPTY = Buffer.alloc(0);
/** DER OID 1.3.101.112 (id-Ed25519): CKA_EC_PARAMS of an Ed25519 key (PKCS#11 3.0 §2.3.10 allows the OID form). */
export const ED25519_EC_PARAMS = oid(OID.ed25519);

export function ulong(v: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}
function ulongArray(vs: readonly number[]): Buffer {
  return Buffer.concat(vs.map(ulong));
}
/** CK_DATE: "YYYYMMDD" in ASCII (PKCS#11 v2.40 §3.3). */
export function ckDate(d: Date): Buffer {
  const s = `${d.getUTCFullYear().toString().padStart(4, '0')}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
  return Buffer.from(s, 'ascii');
}

class Attrs {
  readonly list: P11Attribute[] = [];
  add(type: number, value: Buffer): this {
    this.list.push({ type: BigInt(type), value });
    return this;
  }
}

function keyTypeCk(k: KeyRecord): number {
  return k.type === 'rsa' ? CKK_RSA : k.type === 'ec' ? CKK_EC : CKK_EC_EDWARDS;
}

/** Key-type specific public attributes: RSA modulus/exponent, EC/Ed25519 params (and point for the public key). */
function publicParts(k: KeyRecord, a: Attrs, withPoint: boolean, withBits: boolean): void {
  const spki = parseSpki(k.spki);
  if (k.type === 'rsa') {
    const { modulus, publicExponent } = parseRsaPublicKey(spki.publicKey);
    a.add(CKA_MODULUS, modulus).add(CKA_PUBLIC_EXPONENT, publicExponent);
    if (withBits) a.add(CKA_MODULUS_BITS, ulong(k.bits));
  } else {
    const params = k.type === 'ec' ? spki.parametersDer : ED25519_EC_PARAMS;
    if (!params) throw new Error(`EC key ${k.label} has no curve parameters in its SubjectPublicKeyInfo`);
    a.add(CKA_EC_PARAMS, params);
    // CKA_EC_POINT is the DER OCTET STRING around the point (v2.40 §2.3.3; SoftHSMv2, OpenSC expect it).
    if (withPoint) a.add(CKA_EC_POINT, octetString(spki.publicKey));
  }
}

function subjectOf(k: KeyRecord): Buffer {
  return k.certificate ? parseCertificate(k.certificate).subjectDer : EMPTY;
}

export function privateKeyObject(k: KeyRecord): P11Object {
  const a = new Attrs()
    .add(CKA_CLASS, ulong(CKO_PRIVATE_KEY))
    .add(CKA_TOKEN, TRUE)
    .add(CKA_PRIVATE, TRUE)
    .add(CKA_MODIFIABLE, FALSE)
    .add(CKA_LABEL, Buffer.from(k.label, 'utf8'))
    .add(CKA_ID, k.id)
    .add(CKA_KEY_TYPE, ulong(keyTypeCk(k)))
    .add(CKA_SUBJECT, subjectOf(k))
    .add(CKA_SENSITIVE, TRUE)
    .add(CKA_DECRYPT, FALSE)
    .add(CKA_UNWRAP, FALSE)
    .add(CKA_SIGN, TRUE)
    .add(CKA_SIGN_RECOVER, FALSE)
    .add(CKA_DERIVE, FALSE)
    .add(CKA_EXTRACTABLE, FALSE)
    .add(CKA_ALWAYS_SENSITIVE, TRUE)
    .add(CKA_NEVER_EXTRACTABLE, TRUE)
    .add(CKA_ALWAYS_AUTHENTICATE, k.alwaysAuthenticate ? TRUE : FALSE)
    .add(CKA_LOCAL, k.local ? TRUE : FALSE)
    .add(CKA_ALLOWED_MECHANISMS, ulongArray(k.mechanisms))
    .add(CKA_PUBLIC_KEY_INFO, k.spki);
  publicParts(k, a, false, false);
  return { key_handle: k.handle, attributes: a.list };
}

export function publicKeyObject(k: KeyRecord): P11Object {
  const a = new Attrs()
    .add(CKA_CLASS, ulong(CKO_PUBLIC_KEY))
    .add(CKA_TOKEN, TRUE)
    .add(CKA_PRIVATE, FALSE)
    .add(CKA_MODIFIABLE, FALSE)
    .add(CKA_LABEL, Buffer.from(k.label, 'utf8'))
    .add(CKA_ID, k.id)
    .add(CKA_KEY_TYPE, ulong(keyTypeCk(k)))
    .add(CKA_SUBJECT, subjectOf(k))
    .add(CKA_ENCRYPT, FALSE)
    .add(CKA_VERIFY, TRUE)
    .add(CKA_VERIFY_RECOVER, FALSE)
    .add(CKA_WRAP, FALSE)
    .add(CKA_DERIVE, FALSE)
    .add(CKA_TRUSTED, FALSE)
    .add(CKA_LOCAL, k.local ? TRUE : FALSE)
    .add(CKA_PUBLIC_KEY_INFO, k.spki);
  publicParts(k, a, true, true);
  return { key_handle: EMPTY, attributes: a.list };
}

/** An X.509 certificate object (PKCS#11 v2.40 §4.6). */
export function certificateObject(der: Buffer, label: string, id: Buffer, category: number): P11Object {
  const c = parseCertificate(der);
  // CKA_CHECK_VALUE: first 3 bytes of the SHA-1 of CKA_VALUE (v2.40 §4.6.3).
  const check = createHash('sha1').update(der).digest().subarray(0, 3);
  const a = new Attrs()
    .add(CKA_CLASS, ulong(CKO_CERTIFICATE))
    .add(CKA_TOKEN, TRUE)
    .add(CKA_PRIVATE, FALSE)
    .add(CKA_MODIFIABLE, FALSE)
    .add(CKA_LABEL, Buffer.from(label, 'utf8'))
    .add(CKA_ID, id)
    .add(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509))
    .add(CKA_TRUSTED, FALSE)
    .add(CKA_CERTIFICATE_CATEGORY, ulong(category))
    .add(CKA_CHECK_VALUE, Buffer.from(check))
    .add(CKA_START_DATE, ckDate(c.notBefore))
    .add(CKA_END_DATE, ckDate(c.notAfter))
    .add(CKA_SUBJECT, c.subjectDer)
    .add(CKA_ISSUER, c.issuerDer)
    .add(CKA_SERIAL_NUMBER, c.serialDer) // the whole DER INTEGER, as v2.40 §4.6.3 says
    .add(CKA_VALUE, der)
    .add(CKA_JAVA_MIDP_SECURITY_DOMAIN, ulong(0));
  return { key_handle: EMPTY, attributes: a.list };
}

/** CA certificates get a CKA_ID of their own: SHA-1 of their SubjectPublicKeyInfo (like RFC 5280 key ids). */
function caId(der: Buffer): Buffer {
  return createHash('sha1').update(parseCertificate(der).spkiDer).digest();
}

/** The objects of a set of keys: per key private key, public key, certificate; then the chain CAs (deduplicated). */
export function objectsForKeys(keys: readonly KeyRecord[]): P11Object[] {
  const out: P11Object[] = [];
  const cas = new Map<string, Buffer>();
  const leaves = new Set<string>();
  for (const k of keys) {
    out.push(privateKeyObject(k), publicKeyObject(k));
    if (k.certificate) {
      out.push(certificateObject(k.certificate, k.label, k.id, CK_CERTIFICATE_CATEGORY_TOKEN_USER));
      leaves.add(k.certificate.toString('base64'));
    }
    for (const ca of k.chain) cas.set(ca.toString('base64'), ca);
  }
  for (const [b64, ca] of cas) {
    if (leaves.has(b64)) continue;
    const label = commonName(parseCertificate(ca).subjectDer) ?? 'CA certificate';
    out.push(certificateObject(ca, label, caId(ca), CK_CERTIFICATE_CATEGORY_AUTHORITY));
  }
  return out;
}

// Tokens without CKF_LOGIN_REQUIRED (design.md "Login model") and without CKF_WRITE_PROTECTED:
// clients that open R/W sessions (OpenSSH) must get one; writes are refused per call (design.md
// "What a bridge never does").
export const TOKEN_FLAGS = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;

/**
 * The slots the module serves. Backing token i becomes slot 2*i (its RSA/EC keys) and, when it
 * has Ed25519 keys, slot 2*i+1 holding only those (design.md: libp11 0.4.12 breaks on a token
 * mixing Ed25519 with other keys). Slot ids therefore only depend on the token order in the
 * daemon's configuration.
 */
export function buildSlots(tokens: readonly TokenRecord[]): P11Slot[] {
  const slots: P11Slot[] = [];
  tokens.forEach((t, i) => {
    const main = t.keys.filter((k) => k.type !== 'ed25519');
    const ed = t.keys.filter((k) => k.type === 'ed25519');
    slots.push(slot(2 * i, t, t.label, t.serial, t.description, main));
    if (ed.length > 0) {
      // A distinct label and serial so tools (and pkcs11: URIs) can tell the two tokens apart.
      const serial = (t.serial.length > 14 ? t.serial.slice(0, 14) : t.serial) + 'ed';
      slots.push(slot(2 * i + 1, t, `${t.label} EdDSA`.slice(0, 32), serial, `${t.description} (EdDSA)`, ed));
    }
  });
  return slots;
}

function slot(id: number, t: TokenRecord, label: string, serial: string, description: string, keys: KeyRecord[]): P11Slot {
  return {
    slot_id: id,
    slot_description: description,
    manufacturer: t.manufacturer,
    token_label: label,
    token_model: t.model,
    token_serial: serial,
    token_flags: TOKEN_FLAGS,
    mechanisms: slotMechanisms(keys).map((m) => ({ type: BigInt(m.type), min_key_size: m.minKeySize, max_key_size: m.maxKeySize, flags: m.flags })),
    objects: objectsForKeys(keys),
  };
}

/** Attribute lookup helper for tests and the CLI. */
export function attr(o: P11Object, type: number): Buffer | undefined {
  return o.attributes.find((a) => a.type === BigInt(type))?.value;
}
