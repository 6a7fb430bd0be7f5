// PKCS#11 objects built from KeyRecords with real certificates (a CA issuing leaf certificates),
// checked against node:crypto's own view of the same keys and certificates — never against
// values computed by the code under test.
import { X509Certificate, createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { OID, oid } from '../../src/core/der.js';
import { describeKey, keyHandle, pkcs11Uri, nameToString, commonName, type KeyRecord, type TokenRecord } from '../../src/core/keys.js';
import { mechanismsFor } from '../../src/core/mechanisms.js';
import { attr, buildSlots, ckDate, type P11Object } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { buildCertificate, nodeKeySigner } from '../../src/core/x509-builder.js';

const u64 = (b: Buffer | undefined): number => {
  expect(b?.length).toBe(8); // CK_ULONG travels as 8-byte LE (protocol.md)
  return Number(b!.readBigUInt64LE(0));
};
const bool = (b: Buffer | undefined): boolean => {
  expect(b?.length).toBe(1);
  return b![0] === 1;
};
const classOf = (o: P11Object): number => u64(attr(o, C.CKA_CLASS));

let token: TokenRecord;
let caPem: string;
const keys: Record<string, { rec: KeyRecord; pub: KeyObject; cert: X509Certificate }> = {};

beforeAll(async () => {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caSpki = ca.publicKey.export({ type: 'spki', format: 'der' });
  const caCert = await buildCertificate({
    subject: [['O', 'signbridge tests'], ['CN', 'Test CA']],
    subjectPublicKey: caSpki,
    extensions: { basicConstraints: { ca: true }, keyUsage: ['keyCertSign'] },
    sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA256'),
  });
  caPem = caCert.pem;
  const gens: Array<[string, 'rsa' | 'ec' | 'ed25519', KeyObject]> = [
    ['rsa key', 'rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey],
    ['ec key', 'ec', generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey],
    ['ed key', 'ed25519', generateKeyPairSync('ed25519').publicKey],
  ];
  const recs: KeyRecord[] = [];
  for (const [i, [label, type, pub]] of gens.entries()) {
    const spki = pub.export({ type: 'spki', format: 'der' });
    const leaf = await buildCertificate({
      subject: [['CN', `${label} signer`]],
      subjectPublicKey: spki,
      issuer: { name: [['O', 'signbridge tests'], ['CN', 'Test CA']], publicKey: caSpki },
      serial: Buffer.from([0x01, 0x23, 0x45, 0x67 + i]),
      notBefore: new Date('2024-01-02T03:04:05Z'),
      notAfter: new Date('2030-11-12T13:14:15Z'),
      sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA256'),
    });
    const id = Buffer.from([i + 1]);
    const rec: KeyRecord = {
      handle: keyHandle('test', 'serial', id, spki),
      id,
      label,
      type,
      bits: type === 'rsa' ? 2048 : type === 'ec' ? 384 : 256,
      ...(type === 'ec' ? { curve: 'P-384' as const } : {}),
      publicKey: pub,
      spki,
      certificate: leaf.der,
      chain: [caCert.der],
      mechanisms: mechanismsFor(type),
      local: true,
    };
    recs.push(rec);
    keys[type] = { rec, pub, cert: new X509Certificate(leaf.der) };
  }
  token = { label: 'tok', serial: '0123456789abcdef', model: 'SoftHSM v2', manufacturer: 'SoftHSM project', description: 'd', keys: recs };
});

function objectsOf(slotObjects: P11Object[], id: Buffer): Record<'priv' | 'pub' | 'cert', P11Object> {
  const mine = slotObjects.filter((o) => attr(o, C.CKA_ID)?.equals(id));
  const find = (cls: number): P11Object => {
    const found = mine.filter((o) => classOf(o) === cls);
    expect(found).toHaveLength(1);
    return found[0]!;
  };
  return { priv: find(C.CKO_PRIVATE_KEY), pub: find(C.CKO_PUBLIC_KEY), cert: find(C.CKO_CERTIFICATE) };
}

describe('buildSlots', () => {
  it('puts Ed25519 keys on a token of their own (libp11 0.4.12, design.md)', () => {
    const slots = buildSlots([token]);
    expect(slots.map((s) => s.slot_id)).toEqual([0, 1]);
    const [main, ed] = slots as [(typeof slots)[0], (typeof slots)[0]];
    const keyTypes = (s: typeof main) => s.objects.filter((o) => classOf(o) === C.CKO_PRIVATE_KEY).map((o) => u64(attr(o, C.CKA_KEY_TYPE)));
    expect(keyTypes(main)).toEqual([C.CKK_RSA, C.CKK_EC]);
    expect(keyTypes(ed)).toEqual([C.CKK_EC_EDWARDS]);
    expect(main.token_label).toBe('tok');
    expect(ed.token_label).not.toBe(main.token_label);
    expect(ed.token_serial).not.toBe(main.token_serial);
    expect(ed.token_serial.length).toBeLessThanOrEqual(16);
    expect(main.token_flags & C.CKF_LOGIN_REQUIRED).toBe(0); // design.md "Login model"
    expect(main.token_flags & C.CKF_TOKEN_INITIALIZED).toBeTruthy();
    // mechanisms: only what the slot's keys can do, sizes in bits, CKF_SIGN
    expect(main.mechanisms.map((m) => Number(m.type))).toContain(C.CKM_SHA256_RSA_PKCS);
    expect(main.mechanisms.map((m) => Number(m.type))).toContain(C.CKM_ECDSA_SHA384);
    expect(main.mechanisms.map((m) => Number(m.type))).not.toContain(C.CKM_EDDSA);
    expect(ed.mechanisms.map((m) => Number(m.type))).toEqual([C.CKM_EDDSA]);
    for (const m of main.mechanisms) {
      expect(m.flags & C.CKF_SIGN).toBe(C.CKF_SIGN);
      if (Number(m.type) === C.CKM_RSA_PKCS) expect([m.min_key_size <= 2048, m.max_key_size >= 2048]).toEqual([true, true]);
      if (Number(m.type) === C.CKM_ECDSA) expect([m.min_key_size <= 384, m.max_key_size >= 384]).toEqual([true, true]);
    }
  });

  it('RSA private key: the attributes SunPKCS11 and libp11 read, with the right values', () => {
    const { rec, pub } = keys.rsa!;
    const { priv } = objectsOf(buildSlots([token])[0]!.objects, rec.id);
    expect(priv.key_handle.equals(rec.handle)).toBe(true);
    expect(priv.key_handle.length).toBe(16);
    const jwk = pub.export({ format: 'jwk' });
    expect(attr(priv, C.CKA_MODULUS)!.toString('base64url')).toBe(jwk.n);
    expect(attr(priv, C.CKA_PUBLIC_EXPONENT)!.toString('base64url')).toBe(jwk.e);
    expect(u64(attr(priv, C.CKA_KEY_TYPE))).toBe(C.CKK_RSA);
    expect(attr(priv, C.CKA_LABEL)!.toString()).toBe('rsa key');
    const expectBool: Array<[number, boolean]> = [
      [C.CKA_TOKEN, true], [C.CKA_PRIVATE, true], [C.CKA_MODIFIABLE, false], [C.CKA_SENSITIVE, true],
      [C.CKA_DECRYPT, false], [C.CKA_UNWRAP, false], [C.CKA_SIGN_RECOVER, false], [C.CKA_DERIVE, false],
      [C.CKA_SIGN, true], [C.CKA_EXTRACTABLE, false], [C.CKA_ALWAYS_SENSITIVE, true], [C.CKA_NEVER_EXTRACTABLE, true],
      [C.CKA_ALWAYS_AUTHENTICATE, false], [C.CKA_LOCAL, true],
    ];
    for (const [a, v] of expectBool) expect([C.ckaName(a), bool(attr(priv, a))]).toEqual([C.ckaName(a), v]);
    // CKA_SUBJECT = the certificate's subject Name DER (node's view: CN=rsa key signer)
    expect(nameToString(attr(priv, C.CKA_SUBJECT)!)).toBe('CN=rsa key signer');
    expect(attr(priv, C.CKA_PUBLIC_KEY_INFO)!.equals(pub.export({ type: 'spki', format: 'der' }))).toBe(true);
    const allowed = attr(priv, C.CKA_ALLOWED_MECHANISMS)!;
    expect(allowed.length % 8).toBe(0);
    const mechs = Array.from({ length: allowed.length / 8 }, (_, i) => Number(allowed.readBigUInt64LE(i * 8)));
    expect(mechs).toContain(C.CKM_RSA_PKCS);
    expect(mechs).toContain(C.CKM_SHA256_RSA_PKCS_PSS);
    expect(mechs).not.toContain(C.CKM_ECDSA);
  });

  it('RSA public key and certificate objects', () => {
    const { rec, pub, cert } = keys.rsa!;
    const o = objectsOf(buildSlots([token])[0]!.objects, rec.id);
    expect(o.pub.key_handle.length).toBe(0); // only private keys can sign
    expect(u64(attr(o.pub, C.CKA_MODULUS_BITS))).toBe(pub.asymmetricKeyDetails!.modulusLength);
    expect(bool(attr(o.pub, C.CKA_VERIFY))).toBe(true);
    expect(bool(attr(o.pub, C.CKA_PRIVATE))).toBe(false);
    expect(attr(o.pub, C.CKA_LABEL)!.toString()).toBe('rsa key');

    const c = o.cert;
    expect(attr(c, C.CKA_VALUE)!.equals(cert.raw)).toBe(true);
    expect(u64(attr(c, C.CKA_CERTIFICATE_TYPE))).toBe(C.CKC_X_509);
    expect(u64(attr(c, C.CKA_CERTIFICATE_CATEGORY))).toBe(C.CK_CERTIFICATE_CATEGORY_TOKEN_USER);
    expect(u64(attr(c, C.CKA_JAVA_MIDP_SECURITY_DOMAIN))).toBe(0);
    expect(bool(attr(c, C.CKA_TRUSTED))).toBe(false);
    expect(attr(c, C.CKA_LABEL)!.toString()).toBe('rsa key'); // the alias keytool shows
    // CKA_SERIAL_NUMBER is the whole DER INTEGER: 02 len value
    const serial = attr(c, C.CKA_SERIAL_NUMBER)!;
    expect(serial[0]).toBe(0x02);
    expect(serial[1]).toBe(serial.length - 2);
    expect(serial.subarray(2).toString('hex').toUpperCase()).toBe(cert.serialNumber.toUpperCase());
    expect(nameToString(attr(c, C.CKA_ISSUER)!)).toBe('O=signbridge tests, CN=Test CA');
    expect(cert.issuer).toBe('O=signbridge tests\nCN=Test CA');
    expect(attr(c, C.CKA_CHECK_VALUE)!.equals(createHash('sha1').update(cert.raw).digest().subarray(0, 3))).toBe(true);
    expect(attr(c, C.CKA_START_DATE)!.toString()).toBe('20240102');
    expect(attr(c, C.CKA_END_DATE)!.toString()).toBe('20301112');
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2030);
  });

  it('EC keys: CKA_EC_PARAMS is the curve OID, CKA_EC_POINT a DER OCTET STRING of the point', () => {
    const { rec, pub } = keys.ec!;
    const o = objectsOf(buildSlots([token])[0]!.objects, rec.id);
    const params = oid(OID.secp384r1);
    expect(attr(o.priv, C.CKA_EC_PARAMS)!.equals(params)).toBe(true);
    expect(attr(o.pub, C.CKA_EC_PARAMS)!.equals(params)).toBe(true);
    expect(attr(o.priv, C.CKA_EC_POINT)).toBeUndefined();
    const jwk = pub.export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    expect(attr(o.pub, C.CKA_EC_POINT)!.toString('hex')).toBe('04' + point.length.toString(16) + point.toString('hex'));
  });

  it('Ed25519 keys: CKK_EC_EDWARDS, CKA_EC_PARAMS = DER OID 1.3.101.112', () => {
    const { rec, pub } = keys.ed25519!;
    const o = objectsOf(buildSlots([token])[1]!.objects, rec.id);
    expect(u64(attr(o.priv, C.CKA_KEY_TYPE))).toBe(C.CKK_EC_EDWARDS);
    expect(attr(o.priv, C.CKA_EC_PARAMS)!.toString('hex')).toBe('06032b6570');
    const x = Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
    expect(attr(o.pub, C.CKA_EC_POINT)!.equals(Buffer.concat([Buffer.from([0x04, 0x20]), x]))).toBe(true);
  });

  it('chain CA certificates are certificate objects labelled with their CN, once per slot', () => {
    const ca = new X509Certificate(caPem);
    for (const s of buildSlots([token])) {
      const cas = s.objects.filter((o) => classOf(o) === C.CKO_CERTIFICATE && u64(attr(o, C.CKA_CERTIFICATE_CATEGORY)) === C.CK_CERTIFICATE_CATEGORY_AUTHORITY);
      expect(cas).toHaveLength(1);
      expect(attr(cas[0]!, C.CKA_LABEL)!.toString()).toBe('Test CA');
      expect(attr(cas[0]!, C.CKA_VALUE)!.equals(ca.raw)).toBe(true);
      // SunPKCS11 builds chains by CKA_SUBJECT == issuer of the leaf
      const leaf = s.objects.find((o) => classOf(o) === C.CKO_CERTIFICATE && u64(attr(o, C.CKA_CERTIFICATE_CATEGORY)) === C.CK_CERTIFICATE_CATEGORY_TOKEN_USER)!;
      expect(attr(cas[0]!, C.CKA_SUBJECT)!.equals(attr(leaf, C.CKA_ISSUER)!)).toBe(true);
    }
  });

  it('a key without a certificate still gets a private and a public key object, with an empty CKA_SUBJECT', () => {
    const r = { ...keys.rsa!.rec, certificate: undefined, chain: [] } as KeyRecord;
    delete (r as { certificate?: Buffer }).certificate;
    const [s] = buildSlots([{ ...token, keys: [r] }]);
    expect(s!.objects.map(classOf)).toEqual([C.CKO_PRIVATE_KEY, C.CKO_PUBLIC_KEY]);
    expect(attr(s!.objects[0]!, C.CKA_SUBJECT)!.length).toBe(0);
  });
});

describe('keys helpers', () => {
  it('keyHandle is 16 bytes, deterministic, and depends on every part', () => {
    const spki = keys.rsa!.rec.spki;
    const h = keyHandle('pkcs11', 'S', Buffer.from([1]), spki);
    expect(h.length).toBe(16);
    expect(keyHandle('pkcs11', 'S', Buffer.from([1]), spki).equals(h)).toBe(true);
    expect(keyHandle('stm', 'S', Buffer.from([1]), spki).equals(h)).toBe(false);
    expect(keyHandle('pkcs11', 'T', Buffer.from([1]), spki).equals(h)).toBe(false);
    expect(keyHandle('pkcs11', 'S', Buffer.from([2]), spki).equals(h)).toBe(false);
    expect(keyHandle('pkcs11', 'S', Buffer.from([1]), keys.ec!.rec.spki).equals(h)).toBe(false);
    // length prefixes: moving a byte between parts changes the handle
    expect(keyHandle('ab', 'c', Buffer.alloc(0), spki).equals(keyHandle('a', 'bc', Buffer.alloc(0), spki))).toBe(false);
  });

  it('pkcs11Uri percent-encodes per RFC 7512', () => {
    expect(pkcs11Uri({ label: 'my token' }, { label: 'code signing; key/1', id: Buffer.from([0x01, 0xab]) })).toBe(
      'pkcs11:token=my%20token;id=%01%ab;object=code%20signing%3b%20key%2f1;type=private',
    );
    expect(pkcs11Uri({ label: 'Ünï', serial: '01ab' }, { label: 'k' }, 'cert')).toBe('pkcs11:serial=01ab;token=%c3%9cn%c3%af;object=k;type=cert');
  });

  it('describeKey, nameToString, commonName, ckDate', () => {
    expect(describeKey({ type: 'rsa', bits: 3072 })).toBe('RSA-3072');
    expect(describeKey({ type: 'ec', bits: 256, curve: 'P-256' })).toBe('EC P-256');
    expect(describeKey({ type: 'ed25519', bits: 256 })).toBe('Ed25519');
    const subj = new X509Certificate(caPem);
    expect(subj.subject).toBe('O=signbridge tests\nCN=Test CA');
    expect(commonName(objectsOf(buildSlots([token])[0]!.objects, keys.rsa!.rec.id).cert.attributes.find((a) => a.type === BigInt(C.CKA_ISSUER))!.value)).toBe('Test CA');
    expect(ckDate(new Date('1999-12-31T23:59:59Z')).toString()).toBe('19991231');
  });
});
