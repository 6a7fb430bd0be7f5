// Builds X.509 v3 certificates (RFC 5280 §4.1) around a signing callback, so the private key can
// live anywhere: in a PKCS#11 token (token set-up), in node:crypto (tests, the emulator's CA).

import { createHash, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import {
  OID,
  bitString,
  bool,
  decode,
  ecdsaRawToDer,
  explicit,
  implicit,
  int,
  namedBits,
  nul,
  octetString,
  oid,
  parseCertificate,
  parseSpki,
  printable,
  seq,
  set,
  toPem,
  utf8,
  x509Time,
  DerError,
} from './der.js';

export type SignatureAlgorithm =
  | 'sha256WithRSAEncryption'
  | 'ecdsa-with-SHA256'
  | 'ecdsa-with-SHA384'
  | 'Ed25519';

/** Returns the signatureValue in X.509 form: RSA PKCS#1 v1.5 bytes, ECDSA DER Ecdsa-Sig-Value, Ed25519 64 bytes. */
export type TbsSigner = (tbs: Buffer) => Promise<Buffer> | Buffer;

/** A Name as ordered attribute pairs (`[['CN', 'x'], ['O', 'y']]`), a record, or a ready Name DER. */
export type NameInput = Array<[string, string]> | Record<string, string> | Buffer;

export type KeyUsageName =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';

const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
};

const EKU_OIDS: Record<string, string> = {
  codeSigning: OID.codeSigning,
  serverAuth: OID.serverAuth,
  clientAuth: OID.clientAuth,
  timeStamping: OID.timeStamping,
};

const NAME_ATTRS: Record<string, string> = {
  CN: OID.commonName,
  C: OID.countryName,
  L: OID.localityName,
  ST: OID.stateOrProvinceName,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
};

export interface CertificateExtensions {
  basicConstraints?: { ca: boolean; pathLength?: number };
  keyUsage?: KeyUsageName[];
  /** names (codeSigning, serverAuth, clientAuth, timeStamping) or dotted OIDs */
  extendedKeyUsage?: string[];
  /** true: SHA-1 of the subject public key (RFC 5280 §4.2.1.2 method 1); or the identifier itself */
  subjectKeyIdentifier?: boolean | Buffer;
  /** true: derived from the issuer's public key (or the subject's, when self-signed); or the identifier */
  authorityKeyIdentifier?: boolean | Buffer;
}

export interface CertificateRequest {
  subject: NameInput;
  /** SubjectPublicKeyInfo DER of the certified key */
  subjectPublicKey: Buffer;
  /** omitted → self-signed (issuer = subject, issuer key = subject key) */
  issuer?: { name: NameInput; publicKey?: Buffer; keyIdentifier?: Buffer };
  /** positive; default 16 random bytes (RFC 5280 §4.1.2.2: at most 20 octets) */
  serial?: bigint | Buffer;
  notBefore?: Date;
  notAfter?: Date;
  /** default: derived from the issuer's key (RSA → SHA-256, P-256 → SHA-256, P-384 → SHA-384, Ed25519) */
  signatureAlgorithm?: SignatureAlgorithm;
  extensions?: CertificateExtensions;
  sign: TbsSigner;
}

export interface BuiltCertificate {
  der: Buffer;
  pem: string;
  tbs: Buffer;
}

export function encodeName(name: NameInput): Buffer {
  if (Buffer.isBuffer(name)) {
    decode(name); // must be one well-formed element
    return name;
  }
  const pairs = Array.isArray(name) ? name : Object.entries(name);
  return seq(
    ...pairs.map(([type, value]) => {
      const attrOid = NAME_ATTRS[type] ?? (/^\d+(\.\d+)+$/.test(type) ? type : undefined);
      if (!attrOid) throw new DerError(`X.509: unknown name attribute "${type}" (use CN, O, OU, C, L, ST or an OID)`);
      // countryName is PrintableString (RFC 5280 Appendix A); everything else UTF8String (§4.1.2.4)
      const v = attrOid === OID.countryName ? printable(value) : utf8(value);
      return set(seq(oid(attrOid), v));
    }),
  );
}

function algorithmIdentifier(alg: SignatureAlgorithm): Buffer {
  switch (alg) {
    case 'sha256WithRSAEncryption':
      return seq(oid(OID.sha256WithRSAEncryption), nul()); // RFC 4055 §5: parameters NULL
    case 'ecdsa-with-SHA256':
      return seq(oid(OID.ecdsaWithSHA256)); // RFC 5758 §3.2: parameters absent
    case 'ecdsa-with-SHA384':
      return seq(oid(OID.ecdsaWithSHA384));
    case 'Ed25519':
      return seq(oid(OID.ed25519)); // RFC 8410 §3: parameters absent
  }
}

/** The signature algorithm that fits a signer's key (SPKI DER). */
export function signatureAlgorithmFor(spkiDer: Buffer): SignatureAlgorithm {
  const spki = parseSpki(spkiDer);
  if (spki.algorithmOid === OID.rsaEncryption) return 'sha256WithRSAEncryption';
  if (spki.algorithmOid === OID.ed25519) return 'Ed25519';
  if (spki.algorithmOid === OID.ecPublicKey && spki.parametersDer) {
    const params = spki.parametersDer;
    if (params.equals(oid(OID.prime256v1))) return 'ecdsa-with-SHA256';
    if (params.equals(oid(OID.secp384r1))) return 'ecdsa-with-SHA384';
  }
  throw new DerError(`X.509: no signature algorithm for key algorithm ${spki.algorithmOid}`);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  return createHash('sha1').update(parseSpki(spkiDer).publicKey).digest();
}

function extension(extnOid: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(extnOid), ...(critical ? [bool(true)] : []), octetString(value));
}

function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40; // positive, no leading zero
  return b;
}

export async function buildCertificate(req: CertificateRequest): Promise<BuiltCertificate> {
  const issuerKey = req.issuer ? req.issuer.publicKey : req.subjectPublicKey;
  if (!req.signatureAlgorithm && !issuerKey) throw new DerError('X.509: give signatureAlgorithm or issuer.publicKey');
  const alg = req.signatureAlgorithm ?? signatureAlgorithmFor(issuerKey!);
  const notBefore = req.notBefore ?? new Date(Date.now() - 5 * 60_000); // tolerate clock skew
  const notAfter = req.notAfter ?? new Date(notBefore.getTime() + 365 * 24 * 3600_000);
  if (notAfter <= notBefore) throw new DerError('X.509: notAfter must be after notBefore');
  const serial = req.serial ?? randomSerial();
  if (typeof serial === 'bigint' && serial <= 0n) throw new DerError('X.509: serial must be positive');

  const ext = req.extensions ?? {};
  const exts: Buffer[] = [];
  if (ext.basicConstraints) {
    const { ca, pathLength } = ext.basicConstraints;
    const body = seq(...(ca ? [bool(true)] : []), ...(ca && pathLength !== undefined ? [int(pathLength)] : []));
    exts.push(extension(OID.basicConstraints, true, body)); // §4.2.1.9: critical in CA certs; harmless in EE
  }
  if (ext.keyUsage && ext.keyUsage.length > 0) {
    exts.push(extension(OID.keyUsage, true, namedBits(ext.keyUsage.map((u) => KEY_USAGE_BITS[u]))));
  }
  if (ext.extendedKeyUsage && ext.extendedKeyUsage.length > 0) {
    const oids = ext.extendedKeyUsage.map((u) => EKU_OIDS[u] ?? u);
    exts.push(extension(OID.extKeyUsage, false, seq(...oids.map((o) => oid(o)))));
  }
  if (ext.subjectKeyIdentifier) {
    const id = Buffer.isBuffer(ext.subjectKeyIdentifier) ? ext.subjectKeyIdentifier : keyIdentifier(req.subjectPublicKey);
    exts.push(extension(OID.subjectKeyIdentifier, false, octetString(id)));
  }
  if (ext.authorityKeyIdentifier) {
    let id: Buffer | undefined = Buffer.isBuffer(ext.authorityKeyIdentifier) ? ext.authorityKeyIdentifier : req.issuer?.keyIdentifier;
    if (!id) {
      if (!issuerKey) throw new DerError('X.509: authorityKeyIdentifier needs issuer.publicKey or issuer.keyIdentifier');
      id = keyIdentifier(issuerKey);
    }
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } (§4.2.1.1)
    exts.push(extension(OID.authorityKeyIdentifier, false, seq(implicit(0, id))));
  }

  const algId = algorithmIdentifier(alg);
  const tbs = seq(
    explicit(0, int(2)), // v3
    int(serial),
    algId,
    encodeName(req.issuer ? req.issuer.name : req.subject),
    seq(x509Time(notBefore), x509Time(notAfter)),
    encodeName(req.subject),
    req.subjectPublicKey,
    ...(exts.length > 0 ? [explicit(3, seq(...exts))] : []),
  );
  const signature = await req.sign(tbs);
  const der = seq(tbs, algId, bitString(signature));
  parseCertificate(der); // self-check: what we hand out must parse
  return { der, pem: toPem(der), tbs };
}

/** A TbsSigner over a node:crypto private key (tests, an in-process CA). */
export function nodeKeySigner(key: KeyObject, alg: SignatureAlgorithm): TbsSigner {
  return (tbs) => {
    switch (alg) {
      case 'sha256WithRSAEncryption':
        return nodeSign('sha256', tbs, key);
      case 'ecdsa-with-SHA256':
        return nodeSign('sha256', tbs, { key, dsaEncoding: 'der' });
      case 'ecdsa-with-SHA384':
        return nodeSign('sha384', tbs, { key, dsaEncoding: 'der' });
      case 'Ed25519':
        return nodeSign(null, tbs, key);
    }
  };
}

/** Converts a PKCS#11 raw ECDSA result to the form X.509 needs (re-exported for token signers). */
export { ecdsaRawToDer };
