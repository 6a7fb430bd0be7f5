import { describe, expect, it } from 'vitest';
import { X509Certificate, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import {
  DerError,
  bitString,
  children,
  decode,
  ecdsaDerToRaw,
  ecdsaRawToDer,
  explicit,
  generalizedTime,
  int,
  namedBits,
  oid,
  parseCertificate,
  parseRsaPublicKey,
  parseSpki,
  readInteger,
  readOid,
  readTime,
  readTlv,
  seq,
  set,
  utcTime,
  x509Time,
} from '../../src/core/der.js';
import { buildCertificate, nodeKeySigner } from '../../src/core/x509-builder.js';

describe('DER writer', () => {
  it('encodes integers in minimal two\'s complement (X.690 §8.3)', () => {
    const cases: Array<[bigint | number | Buffer, string]> = [
      [0, '020100'],
      [127, '02017f'],
      [128, '02020080'],
      [256, '02020100'],
      [-1, '0201ff'],
      [-128, '020180'],
      [-129, '0202ff7f'],
      [Buffer.from('0000ff', 'hex'), '020200ff'],
      [Buffer.from('7f', 'hex'), '02017f'],
      [Buffer.alloc(0), '020100'],
    ];
    for (const [v, hex] of cases) {
      expect(int(v).toString('hex'), String(v)).toBe(hex);
      expect(readInteger(decode(int(v)))).toBe(Buffer.isBuffer(v) ? BigInt('0x' + (v.toString('hex') || '0')) : BigInt(v));
    }
  });

  it('encodes OIDs and reads them back', () => {
    expect(oid('1.2.840.113549.1.1.11').toString('hex')).toBe('06092a864886f70d01010b');
    expect(oid('2.5.29.37').toString('hex')).toBe('0603551d25');
    for (const o of ['1.3.101.112', '2.999.3', '1.2.840.10045.3.1.7', '0.9.2342.19200300.100.1.25']) {
      expect(readOid(decode(oid(o)))).toBe(o);
    }
    expect(() => oid('3.1')).toThrow(DerError);
  });

  it('uses long-form lengths above 127 bytes', () => {
    const big = seq(Buffer.alloc(300, 0x05));
    expect(big.subarray(0, 4).toString('hex')).toBe('3082012c');
    expect(decode(big).value.length).toBe(300);
  });

  it('sorts SET OF elements (X.690 §11.6)', () => {
    expect(set(int(2), int(1)).toString('hex')).toBe('3106020101020102');
  });

  it('encodes named bit lists without trailing zero bits (keyUsage)', () => {
    expect(namedBits([0]).toString('hex')).toBe('03020780'); // digitalSignature
    expect(namedBits([5, 6]).toString('hex')).toBe('03020106'); // keyCertSign, cRLSign
    expect(namedBits([0, 8]).toString('hex')).toBe('0303078080');
  });

  it('encodes times per RFC 5280 and reads them back', () => {
    const d = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));
    expect(utcTime(d).toString('latin1').slice(2)).toBe('300102030405Z');
    expect(generalizedTime(d).toString('latin1').slice(2)).toBe('20300102030405Z');
    expect(readTime(decode(x509Time(d))).getTime()).toBe(d.getTime());
    const late = new Date(Date.UTC(2050, 5, 1));
    expect(decode(x509Time(late)).tag).toBe(0x18);
    expect(readTime(decode(x509Time(late))).getTime()).toBe(late.getTime());
    expect(() => utcTime(late)).toThrow(DerError);
  });

  it('explicit tags wrap a whole element', () => {
    expect(explicit(0, int(2)).toString('hex')).toBe('a003020102');
    expect(children(decode(explicit(3, seq()))).length).toBe(1);
  });
});

describe('DER reader bounds', () => {
  const bad: Array<[string, string]> = [
    ['30', 'truncated header'],
    ['3003020101ff', 'trailing'],
    ['3005020101', 'exceeds'],
    ['3080020101000', 'indefinite'],
    ['3085000000000100', 'too large'],
    ['30810100', 'non-minimal'],
    ['3082000100', 'non-minimal'],
    ['1f0100', 'high tag'],
    ['3084ffffffff', 'exceeds'],
  ];
  for (const [hex, why] of bad) {
    it(`rejects ${hex} (${why})`, () => {
      expect(() => decode(Buffer.from(hex, 'hex'))).toThrow(DerError);
      try {
        decode(Buffer.from(hex, 'hex'));
      } catch (e) {
        expect((e as DerError).code).toBe('SIGNBRIDGE_ERR_DER');
        expect((e as Error).message).toContain(why);
      }
    });
  }

  it('rejects a child whose length runs past its parent', () => {
    const outer = Buffer.from('3003020501', 'hex');
    expect(() => children(decode(outer))).toThrow(/exceeds/);
  });

  it('readTlv walks consecutive elements', () => {
    const buf = Buffer.concat([int(1), int(2)]);
    const a = readTlv(buf, 0);
    const b = readTlv(buf, a.next);
    expect(b.next).toBe(buf.length);
    expect(readInteger(b.tlv)).toBe(2n);
  });
});

describe('ECDSA signature conversion', () => {
  it('raw r‖s ↔ DER verifies with node:crypto both ways', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const data = Buffer.from('signbridge');
    for (let i = 0; i < 20; i++) {
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = ecdsaRawToDer(raw);
      expect(verify('sha256', data, publicKey, der)).toBe(true);
      expect(ecdsaDerToRaw(der, 32).equals(raw)).toBe(true);
    }
  });

  it('keeps leading zero bytes of r and s', () => {
    const raw = Buffer.concat([Buffer.alloc(31), Buffer.from([0x80]), Buffer.from([0x01]), Buffer.alloc(31, 0xff)]);
    const der = ecdsaRawToDer(raw);
    expect(der.toString('hex')).toBe('3026020200800220' + '01' + 'ff'.repeat(31));
    expect(ecdsaDerToRaw(der, 32).equals(raw)).toBe(true);
    expect(() => ecdsaRawToDer(Buffer.alloc(3))).toThrow(DerError);
  });
});

describe('parseCertificate', () => {
  it('agrees with node:crypto X509Certificate', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const serial = Buffer.from('4a1b2c3d4e5f60718293a4b5c6d7e8f9', 'hex');
    const notBefore = new Date(Date.UTC(2024, 0, 1, 12, 0, 0));
    const notAfter = new Date(Date.UTC(2051, 0, 1, 12, 0, 0)); // GeneralizedTime
    const built = await buildCertificate({
      subject: [['CN', 'parse test'], ['O', 'signbridge']],
      subjectPublicKey: spki,
      serial,
      notBefore,
      notAfter,
      sign: nodeKeySigner(privateKey, 'sha256WithRSAEncryption'),
    });
    const p = parseCertificate(built.der);
    const x = new X509Certificate(built.der);
    expect(p.serialDer.subarray(2).toString('hex').toUpperCase()).toBe(x.serialNumber.toUpperCase());
    expect(p.notBefore.getTime()).toBe(new Date(x.validFrom).getTime());
    expect(p.notAfter.getTime()).toBe(new Date(x.validTo).getTime());
    expect(createPublicKey({ key: p.spkiDer, format: 'der', type: 'spki' }).equals(x.publicKey)).toBe(true);
    expect(p.subjectDer.equals(p.issuerDer)).toBe(true);
    expect(p.subjectDer.toString('latin1')).toContain('parse test');
    expect(x.subject).toBe('CN=parse test\nO=signbridge');
    expect(p.tbs.equals(built.tbs)).toBe(true);
    // the tbs the reader returns is exactly what was signed
    expect(verify('sha256', p.tbs, publicKey, p.signature)).toBe(true);
    const rsa = parseRsaPublicKey(parseSpki(p.spkiDer).publicKey);
    const jwk = publicKey.export({ format: 'jwk' });
    expect(rsa.modulus.equals(Buffer.from(jwk.n!, 'base64url'))).toBe(true);
    expect(rsa.publicExponent.equals(Buffer.from(jwk.e!, 'base64url'))).toBe(true);
  });

  it('parses a certificate made by openssl-compatible encoders (node EC key)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const built = await buildCertificate({ subject: { CN: 'ec' }, subjectPublicKey: spki, sign: nodeKeySigner(privateKey, 'ecdsa-with-SHA384') });
    const s = parseSpki(parseCertificate(built.der).spkiDer);
    expect(s.algorithmOid).toBe('1.2.840.10045.2.1');
    expect(readOid(decode(s.parametersDer!))).toBe('1.3.132.0.34');
    expect(s.publicKey[0]).toBe(0x04);
    expect(s.publicKey.length).toBe(97);
  });

  it('rejects garbage and truncated certificates', () => {
    expect(() => parseCertificate(Buffer.from('3000', 'hex'))).toThrow(DerError);
    expect(() => parseCertificate(Buffer.from('hello'))).toThrow(DerError);
    expect(() => parseCertificate(seq(seq(), seq(), bitString(Buffer.alloc(1))))).toThrow(DerError);
  });
});
