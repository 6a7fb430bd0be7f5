// What a backend knows about its keys (KeyRecord) and tokens (TokenRecord), the stable key handle
// (design.md "Key handles"), RFC 7512 pkcs11: URIs and human descriptions.
import { createHash, type KeyObject } from 'node:crypto';
import { OID, children, decode, readOid, type Tlv } from './der.js';

export type KeyType = 'rsa' | 'ec' | 'ed25519';
export type Curve = 'P-256' | 'P-384' | 'P-521';

export interface KeyRecord {
  /** Opaque handle the daemon serves (16 bytes, see keyHandle()). */
  handle: Buffer;
  /** CKA_ID (at most 255 bytes). */
  id: Buffer;
  /** CKA_LABEL of the private key. */
  label: string;
  type: KeyType;
  /** RSA: modulus bits; EC: field bits (256, 384, 521); Ed25519: 256. */
  bits: number;
  curve?: Curve;
  publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  /** X.509 certificate DER with the same CKA_ID, if the token has one. */
  certificate?: Buffer;
  /** CA certificates of the chain (DER), issuer of `certificate` first. */
  chain: Buffer[];
  /** CKM_* the key can sign with (what the module advertises for it); see mechanisms.ts. */
  mechanisms: number[];
  /** CKA_LOCAL as the backing token reports it (generated on the token). */
  local?: boolean;
  /**
   * CKA_ALWAYS_AUTHENTICATE (PKCS#11 v2.40 §4.9): each use needs its own authorisation, given by
   * C_Login(CKU_CONTEXT_SPECIFIC) after C_SignInit (protocol.md "AUTHORIZE"); the csc backend's
   * OTP/PIN credentials.
   */
  alwaysAuthenticate?: boolean;
}

export interface TokenRecord {
  /** Backing token's label / serial / model / manufacturer, as the daemon serves them. */
  label: string;
  serial: string;
  model: string;
  manufacturer: string;
  /** Slot description (e.g. "signbridge pkcs11: SoftHSM slot 0"). */
  description: string;
  keys: KeyRecord[];
}

/**
 * design.md "Key handles": first 16 bytes of SHA-256 over (backend name, backing token serial,
 * CKA_ID, SPKI DER); each part length-prefixed (u32 LE) so different splits cannot collide.
 */
export function keyHandle(backend: string, tokenSerial: string, id: Buffer, spki: Buffer): Buffer {
  const h = createHash('sha256');
  for (const part of [Buffer.from(backend, 'utf8'), Buffer.from(tokenSerial, 'utf8'), id, spki]) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(part.length);
    h.update(len).update(part);
  }
  return h.digest().subarray(0, 16);
}

/** "RSA-3072", "EC P-256", "Ed25519". */
export function describeKey(k: Pick<KeyRecord, 'type' | 'bits' | 'curve'>): string {
  switch (k.type) {
    case 'rsa':
      return `RSA-${k.bits}`;
    case 'ec':
      return `EC ${k.curve ?? `${k.bits}-bit`}`;
    case 'ed25519':
      return 'Ed25519';
  }
}

// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded
// (RFC 7512 §2.3 allows percent-encoding of any character).
function pctEncode(v: string | Buffer, all = false): string {
  const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (!all && /[A-Za-z0-9\-._~]/.test(c)) out += c;
    else out += '%' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/**
 * RFC 7512 URI of a private key, e.g. `pkcs11:token=t;object=my%20key;id=%01;type=private`.
 * `id` is always fully percent-encoded (it is binary); osslsigncode/libp11 and pkcs11-tool accept this.
 */
export function pkcs11Uri(
  token: { label: string; serial?: string; manufacturer?: string; model?: string },
  key: { label?: string; id?: Buffer },
  type: 'private' | 'public' | 'cert' = 'private',
): string {
  const parts: string[] = [];
  if (token.model) parts.push(`model=${pctEncode(token.model)}`);
  if (token.manufacturer) parts.push(`manufacturer=${pctEncode(token.manufacturer)}`);
  if (token.serial) parts.push(`serial=${pctEncode(token.serial)}`);
  parts.push(`token=${pctEncode(token.label)}`);
  if (key.id && key.id.length > 0) parts.push(`id=${pctEncode(key.id, true)}`);
  if (key.label) parts.push(`object=${pctEncode(key.label)}`);
  parts.push(`type=${type}`);
  return 'pkcs11:' + parts.join(';');
}

const NAME_KEYS: Record<string, string> = {
  [OID.commonName]: 'CN',
  [OID.countryName]: 'C',
  [OID.localityName]: 'L',
  [OID.stateOrProvinceName]: 'ST',
  [OID.organizationName]: 'O',
  [OID.organizationalUnitName]: 'OU',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

function nameAttributes(nameDer: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const rdn of children(decode(nameDer))) {
    for (const atv of children(rdn)) {
      const [t, v] = children(atv) as [Tlv, Tlv];
      const key = NAME_KEYS[readOid(t)] ?? readOid(t);
      // BMPString is UTF-16BE; the other string types are ASCII-compatible.
      const value = v.tag === 0x1e ? Buffer.from(v.value).swap16().toString('utf16le') : v.value.toString('utf8');
      out.push([key, value]);
    }
  }
  return out;
}

/** "CN=Example, O=Org" (RDNs in certificate order) for display. */
export function nameToString(nameDer: Buffer): string {
  return nameAttributes(nameDer)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** The last CN of a Name, or undefined. */
export function commonName(nameDer: Buffer): string | undefined {
  const cns = nameAttributes(nameDer).filter(([k]) => k === 'CN');
  return cns.length > 0 ? cns[cns.length - 1]![1] : undefined;
}
