// A small, bounded DER reader and writer (ITU-T X.690 §8/§10) — just what signbridge needs for
// X.509 certificates, SubjectPublicKeyInfo, ECDSA signatures and PKCS#11 attribute values.
//
// Reader rules: definite lengths only, at most 4 length octets, every length checked against the
// bytes that are left, low-tag-number form only (X.509 never needs more). Anything else throws a
// DerError (code SIGNBRIDGE_ERR_DER) — input here comes from tokens and remote services.

export class DerError extends Error {
  readonly code = 'SIGNBRIDGE_ERR_DER';
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tags (universal class)
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------------------------------------
// Reader

export interface Tlv {
  /** the identifier octet (class | constructed | number) */
  tag: number;
  /** the contents octets */
  value: Buffer;
  /** the whole TLV (identifier + length + contents) */
  raw: Buffer;
}

const MAX_LENGTH_OCTETS = 4;

/** Reads one TLV at `offset`; returns it and the offset just after it. */
export function readTlv(buf: Buffer, offset = 0): { tlv: Tlv; next: number } {
  const left = buf.length - offset;
  if (left < 2) throw new DerError(`DER: truncated header at offset ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`DER: high tag number form at offset ${offset} is not supported`);
  let pos = offset + 1;
  const first = buf[pos++]!;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError(`DER: indefinite length at offset ${offset} (BER, not DER)`);
    if (n > MAX_LENGTH_OCTETS) throw new DerError(`DER: length of ${n} octets at offset ${offset} is too large`);
    if (pos + n > buf.length) throw new DerError(`DER: truncated length at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos++]!;
    if (len < 0x80 || (n > 1 && buf[offset + 2] === 0)) {
      throw new DerError(`DER: non-minimal length encoding at offset ${offset}`);
    }
  }
  if (len > buf.length - pos) {
    throw new DerError(`DER: length ${len} at offset ${offset} exceeds the ${buf.length - pos} bytes left`);
  }
  const end = pos + len;
  return { tlv: { tag, value: buf.subarray(pos, end), raw: buf.subarray(offset, end) }, next: end };
}

/** Decodes exactly one TLV spanning the whole buffer (trailing bytes are an error). */
export function decode(buf: Buffer, expectedTag?: number): Tlv {
  const { tlv, next } = readTlv(buf, 0);
  if (next !== buf.length) throw new DerError(`DER: ${buf.length - next} trailing bytes after the element`);
  if (expectedTag !== undefined) expectTag(tlv, expectedTag);
  return tlv;
}

/** The elements inside a constructed TLV (SEQUENCE, SET, [n] EXPLICIT). */
export function children(tlv: Tlv): Tlv[] {
  if ((tlv.tag & 0x20) === 0) throw new DerError(`DER: tag 0x${hex2(tlv.tag)} is not constructed`);
  const out: Tlv[] = [];
  let off = 0;
  while (off < tlv.value.length) {
    const { tlv: child, next } = readTlv(tlv.value, off);
    out.push(child);
    off = next;
  }
  return out;
}

export function expectTag(tlv: Tlv, tag: number, what = 'element'): Tlv {
  if (tlv.tag !== tag) throw new DerError(`DER: ${what} has tag 0x${hex2(tlv.tag)}, expected 0x${hex2(tag)}`);
  return tlv;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** INTEGER contents → bigint (two's complement). */
export function readInteger(tlv: Tlv): bigint {
  expectTag(tlv, TAG.INTEGER, 'INTEGER');
  const v = tlv.value;
  if (v.length === 0) throw new DerError('DER: empty INTEGER');
  let n = BigInt('0x' + v.toString('hex'));
  if (v[0]! & 0x80) n -= 1n << BigInt(v.length * 8);
  return n;
}

/** INTEGER contents as an unsigned big-endian magnitude (leading zero octet dropped). */
export function readUnsignedInteger(tlv: Tlv): Buffer {
  expectTag(tlv, TAG.INTEGER, 'INTEGER');
  const v = tlv.value;
  if (v.length === 0) throw new DerError('DER: empty INTEGER');
  if (v[0]! & 0x80) throw new DerError('DER: negative INTEGER where an unsigned value is expected');
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  return Buffer.from(v.subarray(i));
}

export function readOid(tlv: Tlv): string {
  expectTag(tlv, TAG.OID, 'OBJECT IDENTIFIER');
  const v = tlv.value;
  if (v.length === 0) throw new DerError('DER: empty OBJECT IDENTIFIER');
  const arcs: bigint[] = [];
  let cur = 0n;
  let inArc = false;
  for (const b of v) {
    if (!inArc && b === 0x80) throw new DerError('DER: non-minimal OBJECT IDENTIFIER arc');
    cur = (cur << 7n) | BigInt(b & 0x7f);
    inArc = (b & 0x80) !== 0;
    if (!inArc) {
      arcs.push(cur);
      cur = 0n;
    }
  }
  if (inArc) throw new DerError('DER: truncated OBJECT IDENTIFIER');
  const first = arcs.shift()!;
  const a = first < 40n ? 0n : first < 80n ? 1n : 2n;
  return [a, first - a * 40n, ...arcs].join('.');
}

/** BIT STRING → its bytes; only whole-octet strings (unused bits = 0) unless allowUnused. */
export function readBitString(tlv: Tlv, allowUnused = false): Buffer {
  expectTag(tlv, TAG.BIT_STRING, 'BIT STRING');
  if (tlv.value.length === 0) throw new DerError('DER: empty BIT STRING');
  const unused = tlv.value[0]!;
  if (unused > 7 || (unused !== 0 && !allowUnused)) throw new DerError(`DER: BIT STRING with ${unused} unused bits`);
  return tlv.value.subarray(1);
}

export function readOctetString(tlv: Tlv): Buffer {
  expectTag(tlv, TAG.OCTET_STRING, 'OCTET STRING');
  return tlv.value;
}

/** UTCTime (RFC 5280 §4.1.2.5.1: YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ). */
export function readTime(tlv: Tlv): Date {
  const s = tlv.value.toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`DER: malformed UTCTime "${s}"`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tlv.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`DER: malformed GeneralizedTime "${s}"`);
    year = Number(m[1]);
  } else {
    throw new DerError(`DER: tag 0x${hex2(tlv.tag)} is not a time`);
  }
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime())) throw new DerError(`DER: invalid time "${s}"`);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Certificates and keys

export interface ParsedCertificate {
  /** the whole TBSCertificate TLV (what the issuer signed) */
  tbs: Buffer;
  /** the whole serialNumber INTEGER TLV (PKCS#11 CKA_SERIAL_NUMBER) */
  serialDer: Buffer;
  /** the whole issuer Name TLV (CKA_ISSUER) */
  issuerDer: Buffer;
  /** the whole subject Name TLV (CKA_SUBJECT) */
  subjectDer: Buffer;
  /** the whole SubjectPublicKeyInfo TLV */
  spkiDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** the outer signatureAlgorithm OID */
  signatureAlgorithmOid: string;
  /** the signatureValue BIT STRING contents */
  signature: Buffer;
}

/** RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
export function parseCertificate(der: Buffer): ParsedCertificate {
  const cert = decode(der, TAG.SEQUENCE);
  const top = children(cert);
  if (top.length !== 3) throw new DerError(`X.509: Certificate has ${top.length} elements, expected 3`);
  const [tbsTlv, sigAlgTlv, sigTlv] = top as [Tlv, Tlv, Tlv];
  expectTag(tbsTlv, TAG.SEQUENCE, 'TBSCertificate');
  const f = children(tbsTlv);
  let i = 0;
  if (f[0]?.tag === 0xa0) i++; // [0] EXPLICIT version, absent for v1
  if (f.length < i + 6) throw new DerError('X.509: TBSCertificate is too short');
  const serial = expectTag(f[i]!, TAG.INTEGER, 'serialNumber');
  const issuer = expectTag(f[i + 2]!, TAG.SEQUENCE, 'issuer');
  const validity = children(expectTag(f[i + 3]!, TAG.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new DerError('X.509: validity must hold two times');
  const subject = expectTag(f[i + 4]!, TAG.SEQUENCE, 'subject');
  const spki = expectTag(f[i + 5]!, TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const sigAlg = children(expectTag(sigAlgTlv, TAG.SEQUENCE, 'signatureAlgorithm'));
  if (sigAlg.length < 1) throw new DerError('X.509: empty signatureAlgorithm');
  return {
    tbs: Buffer.from(tbsTlv.raw),
    serialDer: Buffer.from(serial.raw),
    issuerDer: Buffer.from(issuer.raw),
    subjectDer: Buffer.from(subject.raw),
    spkiDer: Buffer.from(spki.raw),
    notBefore: readTime(validity[0]!),
    notAfter: readTime(validity[1]!),
    signatureAlgorithmOid: readOid(sigAlg[0]!),
    signature: Buffer.from(readBitString(sigTlv)),
  };
}

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  secp521r1: '1.3.132.0.35',
  ed25519: '1.3.101.112',
  commonName: '2.5.4.3',
  countryName: '2.5.4.6',
  localityName: '2.5.4.7',
  stateOrProvinceName: '2.5.4.8',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  timeStamping: '1.3.6.1.5.5.7.3.8',
} as const;

export interface ParsedSpki {
  algorithmOid: string;
  /** the whole parameters TLV (for EC: the namedCurve OID = PKCS#11 CKA_EC_PARAMS), if present */
  parametersDer?: Buffer;
  /** the subjectPublicKey BIT STRING contents (RSA: RSAPublicKey DER; EC: the point; Ed25519: 32 bytes) */
  publicKey: Buffer;
}

/** RFC 5280 §4.1.2.7 SubjectPublicKeyInfo. */
export function parseSpki(spkiDer: Buffer): ParsedSpki {
  const [alg, key] = children(decode(spkiDer, TAG.SEQUENCE)) as [Tlv?, Tlv?];
  if (!alg || !key) throw new DerError('SPKI: expected algorithm and subjectPublicKey');
  const algParts = children(expectTag(alg, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  if (algParts.length < 1) throw new DerError('SPKI: empty AlgorithmIdentifier');
  const out: ParsedSpki = { algorithmOid: readOid(algParts[0]!), publicKey: Buffer.from(readBitString(key)) };
  if (algParts[1] && algParts[1].tag !== TAG.NULL) out.parametersDer = Buffer.from(algParts[1].raw);
  return out;
}

/** RFC 8017 A.1.1 RSAPublicKey ::= SEQUENCE { modulus, publicExponent } (unsigned magnitudes). */
export function parseRsaPublicKey(der: Buffer): { modulus: Buffer; publicExponent: Buffer } {
  const [n, e] = children(decode(der, TAG.SEQUENCE)) as [Tlv?, Tlv?];
  if (!n || !e) throw new DerError('RSAPublicKey: expected modulus and publicExponent');
  return { modulus: readUnsignedInteger(n), publicExponent: readUnsignedInteger(e) };
}

/**
 * PKCS#11 raw ECDSA signature r‖s (v2.40 §2.3.1) → X.509/CMS Ecdsa-Sig-Value
 * SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
 */
export function ecdsaRawToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new DerError(`ECDSA: raw signature length ${raw.length} is not even`);
  const half = raw.length / 2;
  return seq(int(raw.subarray(0, half)), int(raw.subarray(half)));
}

/** Ecdsa-Sig-Value DER → r‖s, each left-padded to `fieldBytes` (32 for P-256, 48 for P-384, 66 for P-521). */
export function ecdsaDerToRaw(der: Buffer, fieldBytes: number): Buffer {
  const parts = children(decode(der, TAG.SEQUENCE));
  if (parts.length !== 2) throw new DerError('ECDSA: Ecdsa-Sig-Value must hold r and s');
  const out = Buffer.alloc(fieldBytes * 2);
  parts.forEach((p, k) => {
    const v = readUnsignedInteger(p);
    if (v.length > fieldBytes) throw new DerError(`ECDSA: integer longer than the ${fieldBytes}-byte field`);
    v.copy(out, k * fieldBytes + fieldBytes - v.length);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

function encodeLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given identifier octet and contents. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function seq(...parts: Buffer[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(parts));
}

/** SET OF: DER sorts the encoded elements (X.690 §11.6). */
export function set(...parts: Buffer[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...parts].sort(Buffer.compare)));
}

/**
 * INTEGER. A bigint/number is encoded in minimal two's complement; a Buffer is an unsigned
 * big-endian magnitude (leading zeros stripped, a 0x00 prepended when the top bit is set).
 */
export function int(v: bigint | number | Buffer): Buffer {
  if (Buffer.isBuffer(v)) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    let mag = v.subarray(i);
    if (mag.length === 0) mag = Buffer.from([0]);
    if (mag[0]! & 0x80) mag = Buffer.concat([Buffer.from([0]), mag]);
    return tlv(TAG.INTEGER, mag);
  }
  let n = BigInt(v);
  const bytes: number[] = [];
  if (n >= 0n) {
    do {
      bytes.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    if (bytes[0]! & 0x80) bytes.unshift(0);
  } else {
    do {
      bytes.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n < -1n);
    if (!(bytes[0]! & 0x80)) bytes.unshift(0xff);
  }
  return tlv(TAG.INTEGER, Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.\d+)+$/.test(dotted)) throw new DerError(`DER: invalid OID "${dotted}"`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const out: number[] = [];
  const first = arcs[0]! * 40n + arcs[1]!;
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let a = arc >> 7n; a > 0n; a >>= 7n) chunk.unshift(Number(a & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export function nul(): Buffer {
  return Buffer.from([TAG.NULL, 0]);
}

export function bool(v: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
}

export function octetString(v: Buffer): Buffer {
  return tlv(TAG.OCTET_STRING, v);
}

export function bitString(v: Buffer, unusedBits = 0): Buffer {
  if (unusedBits < 0 || unusedBits > 7 || (unusedBits > 0 && v.length === 0)) throw new DerError('DER: bad unused bit count');
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), v]));
}

/**
 * A named bit list (X.690 §11.2.2: trailing zero bits removed), e.g. KeyUsage.
 * `bits` are bit numbers, 0 = the most significant bit of the first octet.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)]! |= 0x80 >> (b % 8);
  return bitString(bytes, 7 - (max % 8));
}

export function utf8(s: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

export function printable(s: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) throw new DerError(`DER: "${s}" is not a PrintableString`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

export function ia5(s: string): Buffer {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new DerError('DER: IA5String must be ASCII');
  return tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
}

function timeDigits(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

export function utcTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new DerError(`DER: UTCTime cannot hold year ${y}`);
  return tlv(TAG.UTC_TIME, Buffer.from(String(y % 100).padStart(2, '0') + timeDigits(d), 'latin1'));
}

export function generalizedTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new DerError(`DER: GeneralizedTime cannot hold year ${y}`);
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + timeDigits(d), 'latin1'));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function x509Time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(d) : generalizedTime(d);
}

/** [n] EXPLICIT: a constructed context-specific tag wrapping a whole TLV. */
export function explicit(n: number, inner: Buffer): Buffer {
  if (n < 0 || n > 30) throw new DerError(`DER: context tag ${n} out of range`);
  return tlv(0xa0 | n, inner);
}

/** [n] IMPLICIT: a context-specific tag replacing the inner type's tag; `content` is the contents octets. */
export function implicit(n: number, content: Buffer, constructed = false): Buffer {
  if (n < 0 || n > 30) throw new DerError(`DER: context tag ${n} out of range`);
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}

/** PEM armour (RFC 7468). */
export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** The first PEM block with `label` → DER. */
export function fromPem(pem: string, label = 'CERTIFICATE'): Buffer {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`);
  const m = re.exec(pem);
  if (!m) throw new DerError(`PEM: no ${label} block found`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}
