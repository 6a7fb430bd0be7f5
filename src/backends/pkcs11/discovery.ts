// What the backing token holds, as the daemon serves it: the slot by label or index, its signing
// keys with their SubjectPublicKeyInfo (from the certificate, else from the public key object or
// the private key's public attributes) and the certificate chains found on the token.
import { createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import type * as P from 'pkcs11js';
import { OID, bitString, decode, oid, parseCertificate, parseSpki, readOid, seq, TAG } from '../../core/der.js';
import { sbError } from '../../core/errors.js';
import { describeKey, keyHandle, type Curve, type KeyRecord, type KeyType } from '../../core/keys.js';
import { mechanismsFor, primitiveOf } from '../../core/mechanisms.js';
import {
  CKA_CERTIFICATE_TYPE, CKA_CLASS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ID, CKA_ISSUER, CKA_KEY_TYPE, CKA_LABEL,
  CKA_LOCAL, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_SIGN, CKA_SUBJECT, CKA_VALUE, CKC_X_509, CKK_EC,
  CKK_EC_EDWARDS, CKK_RSA, CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
} from '../../core/pkcs11.js';

const CURVES: Record<string, { curve: Curve; bits: number }> = {
  [OID.prime256v1]: { curve: 'P-256', bits: 256 },
  [OID.secp384r1]: { curve: 'P-384', bits: 384 },
  [OID.secp521r1]: { curve: 'P-521', bits: 521 },
};

/** A key found on the token: its record and what signing with it needs. */
export interface FoundKey {
  record: KeyRecord;
  /** The private key's object handle. */
  obj: Buffer;
  /** Exact signature length in bytes. */
  sigLen: number;
}

/** A slot with a token, as the backend uses it. */
export interface FoundSlot {
  handle: Buffer;
  token: P.TokenInfo;
  description: string;
}

/** The slot with the token labelled `tokenLabel`, else the `slotIndex`-th slot with a token. */
export function findSlot(lib: P.PKCS11, tokenLabel: string | undefined, slotIndex: number | undefined): FoundSlot {
  const slots = lib.C_GetSlotList(true);
  const found: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const handle = slots[i]!;
    const token = lib.C_GetTokenInfo(handle);
    const label = token.label.trim();
    found.push(`"${label}"`);
    if (tokenLabel !== undefined ? label === tokenLabel : i === (slotIndex ?? 0)) {
      return { handle, token, description: lib.C_GetSlotInfo(handle).slotDescription.trim() };
    }
  }
  const wanted = tokenLabel !== undefined ? `labelled "${tokenLabel}"` : `at slot index ${slotIndex ?? 0}`;
  throw sbError('SIGNBRIDGE_ERR_TOKEN_NOT_FOUND', { wanted, available: found.length ? found.join(', ') : 'none' });
}

function ulongOf(b: Buffer): number {
  return b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUIntLE(0, Math.min(b.length, 6));
}

/** Reads objects through one logged-in session. */
export class TokenReader {
  constructor(private readonly lib: P.PKCS11, private readonly session: Buffer, private readonly log?: Logger | undefined) {}

  find(template: P.Template): Buffer[] {
    const { lib, session: s } = this;
    lib.C_FindObjectsInit(s, template);
    const out: Buffer[] = [];
    try {
      for (;;) {
        const batch = lib.C_FindObjects(s, 64);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    return out;
  }

  /** One attribute, or undefined when the token does not have it (CKR_ATTRIBUTE_TYPE_INVALID etc.). */
  attr(obj: Buffer, type: number): Buffer | undefined {
    try {
      const [a] = this.lib.C_GetAttributeValue(this.session, obj, [{ type }]);
      const v = a?.value;
      return Buffer.isBuffer(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every private key the daemon can sign with, in a stable order (by CKA_ID, then label). */
  listKeys(backend: string, serial: string, tokenMechs: Set<number>): FoundKey[] {
    const certs = this.find([{ type: CKA_CLASS, value: CKO_CERTIFICATE }, { type: CKA_CERTIFICATE_TYPE, value: CKC_X_509 }])
      .map((o) => ({ id: this.attr(o, CKA_ID) ?? Buffer.alloc(0), der: this.attr(o, CKA_VALUE), subject: this.attr(o, CKA_SUBJECT), issuer: this.attr(o, CKA_ISSUER) }))
      .filter((c): c is { id: Buffer; der: Buffer; subject: Buffer | undefined; issuer: Buffer | undefined } => c.der !== undefined && c.der.length > 0);
    const pubs = this.find([{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }]).map((o) => ({ id: this.attr(o, CKA_ID) ?? Buffer.alloc(0), obj: o }));
    const keys: FoundKey[] = [];
    for (const obj of this.find([{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }])) {
      const id = this.attr(obj, CKA_ID) ?? Buffer.alloc(0);
      const label = (this.attr(obj, CKA_LABEL) ?? Buffer.alloc(0)).toString('utf8');
      const name = label || `id ${id.toString('hex')}`;
      try {
        const k = this.keyRecord({ obj, id, label, backend, serial, tokenMechs, certs, pubs });
        if (k) keys.push(k);
      } catch (e) {
        this.log?.warn({ key: name, err: (e as Error).message }, 'skipping a key the daemon cannot use');
      }
    }
    // The object list the module sees does not depend on the order the token returns objects in.
    return keys.sort((a, b) => Buffer.compare(a.record.id, b.record.id) || a.record.label.localeCompare(b.record.label));
  }

  private keyRecord(o: {
    obj: Buffer; id: Buffer; label: string; backend: string; serial: string; tokenMechs: Set<number>;
    certs: Array<{ id: Buffer; der: Buffer }>; pubs: Array<{ id: Buffer; obj: Buffer }>;
  }): FoundKey | undefined {
    const { obj, id, label, certs } = o;
    const sign = this.attr(obj, CKA_SIGN);
    if (sign && sign[0] === 0) return undefined; // not a signing key
    if (id.length > 255) throw new Error('CKA_ID is longer than 255 bytes');
    const ckk = ulongOf(this.attr(obj, CKA_KEY_TYPE) ?? Buffer.alloc(8, 0xff));
    const cert = certs.find((c) => c.id.equals(id));
    const spki = cert ? parseCertificate(cert.der).spkiDer : this.spkiFromToken(ckk, o.pubs.find((p) => p.id.equals(id))?.obj, obj);
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const p = parseSpki(spki);
    let type: KeyType;
    let bits: number;
    let curve: Curve | undefined;
    if (p.algorithmOid === OID.rsaEncryption && ckk === CKK_RSA) {
      type = 'rsa';
      bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    } else if (p.algorithmOid === OID.ecPublicKey && ckk === CKK_EC) {
      const c = CURVES[readOid(decode(p.parametersDer ?? Buffer.alloc(0)))];
      if (!c) throw new Error('unsupported EC curve (P-256, P-384 and P-521 are supported)');
      type = 'ec';
      bits = c.bits;
      curve = c.curve;
    } else if (p.algorithmOid === OID.ed25519 && ckk === CKK_EC_EDWARDS) {
      type = 'ed25519';
      bits = 256;
    } else {
      throw new Error(`key type 0x${ckk.toString(16)} with public key ${p.algorithmOid} is not supported`);
    }
    // Narrow to what this token can actually do.
    const mechanisms = mechanismsFor(type).filter((m) => o.tokenMechs.has(primitiveOf(m)!));
    if (mechanisms.length === 0) throw new Error(`the token offers no signing mechanism for ${describeKey({ type, bits, curve })} keys`);
    const record: KeyRecord = {
      handle: keyHandle(o.backend, o.serial, id, spki),
      id: Buffer.from(id),
      label,
      type,
      bits,
      ...(curve ? { curve } : {}),
      publicKey,
      spki,
      ...(cert ? { certificate: cert.der } : {}),
      chain: chainFor(cert?.der, certs.map((c) => c.der)),
      mechanisms,
      local: (this.attr(obj, CKA_LOCAL) ?? Buffer.from([0]))[0] === 1,
    };
    const fieldBytes = Math.ceil(bits / 8);
    return { record, obj, sigLen: type === 'rsa' ? fieldBytes : type === 'ec' ? 2 * fieldBytes : 64 };
  }

  /** SubjectPublicKeyInfo from the public key object (or the private key's public attributes). */
  private spkiFromToken(ckk: number, pub: Buffer | undefined, priv: Buffer): Buffer {
    const from = (t: number): Buffer | undefined => (pub ? this.attr(pub, t) : undefined) ?? this.attr(priv, t);
    if (ckk === CKK_RSA) {
      const n = from(CKA_MODULUS);
      const e = from(CKA_PUBLIC_EXPONENT);
      if (!n || !e) throw new Error('no certificate and no RSA public key on the token');
      const jwk = { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') };
      return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' });
    }
    const params = from(CKA_EC_PARAMS);
    const pointAttr = pub ? this.attr(pub, CKA_EC_POINT) : undefined;
    if (!params || !pointAttr) throw new Error('no certificate and no public key object with CKA_EC_POINT on the token');
    // CKA_EC_POINT is normally a DER OCTET STRING around the point; some tokens give it raw.
    let point = pointAttr;
    try {
      const t = decode(pointAttr, TAG.OCTET_STRING);
      if (t.raw.length === pointAttr.length) point = Buffer.from(t.value);
    } catch {
      /* raw point */
    }
    if (ckk === CKK_EC) return seq(seq(oid(OID.ecPublicKey), params), bitString(point));
    if (ckk === CKK_EC_EDWARDS) {
      // SoftHSMv2 gives PrintableString "edwards25519"; PKCS#11 3.0 also allows the OID 1.3.101.112.
      const isEd25519 = params.equals(oid(OID.ed25519)) || params.subarray(2).toString('latin1') === 'edwards25519';
      if (!isEd25519 || point.length !== 32) throw new Error('only Ed25519 Edwards keys are supported');
      return seq(seq(oid(OID.ed25519)), bitString(point));
    }
    throw new Error(`key type 0x${ckk.toString(16)} is not supported`);
  }
}

/** CA certificates on the token that issued `leaf`, issuer first (stops at a self-signed one). */
export function chainFor(leaf: Buffer | undefined, all: Buffer[]): Buffer[] {
  if (!leaf) return [];
  const chain: Buffer[] = [];
  let cur = parseCertificate(leaf);
  for (let depth = 0; depth < 8; depth++) {
    if (cur.issuerDer.equals(cur.subjectDer)) break;
    const issuer = all.find((d) => !d.equals(leaf) && !chain.some((c) => c.equals(d)) && parseCertificate(d).subjectDer.equals(cur.issuerDer));
    if (!issuer) break;
    chain.push(issuer);
    cur = parseCertificate(issuer);
  }
  return chain;
}
