// The module loaded by pkcs11js in this test process, against a real daemon serving a real
// SoftHSMv2 token. Every signature is verified with node:crypto against the certificate's
// public key as SoftHSMv2 stored it (never against signbridge's own output).
import { createHash, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testToken } from '../helpers/token.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { modulePath } from '../../src/native/loader.js';

const token = testToken();
const rsaKey = token.keys.find((k) => k.label === 'rsa-3072')!;
const ecKey = token.keys.find((k) => k.label === 'ec-p256')!;

// DigestInfo prefixes (RFC 8017 §9.2 note 1) — the test's own copy, independent of the module's.
const DIGEST_INFO: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

const CKF_TOKEN_PRESENT = 0x1; // not exported by pkcs11js 2.1.7

let dir: string;
let daemon: TestDaemon;
let p11: pkcs11js.PKCS11;
let slot: Buffer;
let session: Buffer;

function expectCkr(fn: () => unknown, name: keyof typeof pkcs11js): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${String(name)}`).toBeInstanceOf(pkcs11js.Pkcs11Error);
  expect((err as pkcs11js.Pkcs11Error).code, `expected ${String(name)}`).toBe(pkcs11js[name]);
}

function find(template: pkcs11js.Template): Buffer[] {
  p11.C_FindObjectsInit(session, template);
  const found = p11.C_FindObjects(session, 100);
  p11.C_FindObjectsFinal(session);
  return found;
}

function privateKey(id: string): Buffer {
  const [h] = find([
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_ID, value: Buffer.from(id, 'hex') },
  ]);
  expect(h).toBeDefined();
  return h!;
}

function publicKeyOf(certPem: string): KeyObject {
  return new X509Certificate(certPem).publicKey;
}

function sign(mechanism: number, key: Buffer, data: Buffer, parts?: Buffer[]): Buffer {
  p11.C_SignInit(session, { mechanism }, key);
  const out = Buffer.alloc(1024);
  if (!parts) return p11.C_Sign(session, data, out);
  for (const part of parts) p11.C_SignUpdate(session, part);
  return p11.C_SignFinal(session, out);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-module-'));
  daemon = await startTestDaemon();
  process.env.SIGNBRIDGE_SOCKET = daemon.socket;
  p11 = new pkcs11js.PKCS11();
  p11.load(modulePath());
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  [slot] = p11.C_GetSlotList(true) as [Buffer];
  session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
});

afterAll(async () => {
  try {
    p11?.C_Finalize();
  } catch {
    /* already finalized by the last test */
  }
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('slots and tokens', () => {
  it('reports the library and one slot with the token the daemon serves', () => {
    const info = p11.C_GetInfo();
    expect(info.cryptokiVersion).toEqual({ major: 2, minor: 40 });
    expect(info.manufacturerID.trim()).toBe('signbridge');
    const slots = p11.C_GetSlotList(false);
    expect(slots).toHaveLength(1);
    const slotInfo = p11.C_GetSlotInfo(slot);
    expect(slotInfo.flags & CKF_TOKEN_PRESENT).toBeTruthy();
    const ti = p11.C_GetTokenInfo(slot);
    expect(ti.label.trimEnd()).toBe(token.tokenLabel);
    expect(ti.label).toHaveLength(32);
    expect(ti.flags & pkcs11js.CKF_TOKEN_INITIALIZED).toBeTruthy();
  });

  it('advertises exactly the signing mechanisms, with key sizes in bits', () => {
    const mechs = p11.C_GetMechanismList(slot);
    for (const m of [
      pkcs11js.CKM_RSA_PKCS,
      pkcs11js.CKM_SHA256_RSA_PKCS,
      pkcs11js.CKM_SHA384_RSA_PKCS,
      pkcs11js.CKM_SHA512_RSA_PKCS,
      pkcs11js.CKM_ECDSA,
      pkcs11js.CKM_ECDSA_SHA256,
      pkcs11js.CKM_ECDSA_SHA384,
      pkcs11js.CKM_ECDSA_SHA512,
    ]) {
      expect(mechs).toContain(m);
      const mi = p11.C_GetMechanismInfo(slot, m);
      expect(mi.flags & pkcs11js.CKF_SIGN).toBeTruthy();
      expect(mi.flags & (pkcs11js.CKF_DECRYPT | pkcs11js.CKF_ENCRYPT)).toBe(0);
    }
    const rsa = p11.C_GetMechanismInfo(slot, pkcs11js.CKM_RSA_PKCS);
    expect(rsa.minKeySize).toBeLessThanOrEqual(3072);
    expect(rsa.maxKeySize).toBeGreaterThanOrEqual(3072);
    const ec = p11.C_GetMechanismInfo(slot, pkcs11js.CKM_ECDSA);
    expect(ec.minKeySize).toBeLessThanOrEqual(256);
    expect(ec.maxKeySize).toBeGreaterThanOrEqual(256);
    expectCkr(() => p11.C_GetMechanismInfo(slot, pkcs11js.CKM_AES_CBC), 'CKR_MECHANISM_INVALID');
  });
});

describe('objects', () => {
  it('finds objects by class, label and id', () => {
    expect(find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }])).toHaveLength(2);
    expect(find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }])).toHaveLength(2);
    expect(find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }])).toHaveLength(2);
    expect(find([{ type: pkcs11js.CKA_LABEL, value: 'rsa-3072' }])).toHaveLength(3);
    expect(find([{ type: pkcs11js.CKA_ID, value: Buffer.from('02', 'hex') }])).toHaveLength(3);
    expect(
      find([
        { type: pkcs11js.CKA_LABEL, value: 'ec-p256' },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
      ]),
    ).toHaveLength(0);
    expect(find([{ type: pkcs11js.CKA_LABEL, value: 'no-such-key' }])).toHaveLength(0);
    expect(find([])).toHaveLength(6);
  });

  it('serves the private key attributes tools read', () => {
    const cert = new X509Certificate(rsaKey.certPem);
    const jwk = cert.publicKey.export({ format: 'jwk' });
    const attrs = p11.C_GetAttributeValue(session, privateKey(rsaKey.idHex), [
      { type: pkcs11js.CKA_CLASS },
      { type: pkcs11js.CKA_KEY_TYPE },
      { type: pkcs11js.CKA_LABEL },
      { type: pkcs11js.CKA_ID },
      { type: pkcs11js.CKA_SIGN },
      { type: pkcs11js.CKA_PRIVATE },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
      { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      { type: pkcs11js.CKA_MODULUS },
      { type: pkcs11js.CKA_PUBLIC_EXPONENT },
    ]);
    const v = attrs.map((a) => a.value as Buffer);
    expect(v[0]!.readBigUInt64LE()).toBe(BigInt(pkcs11js.CKO_PRIVATE_KEY));
    expect(v[1]!.readBigUInt64LE()).toBe(BigInt(pkcs11js.CKK_RSA));
    expect(v[2]!.toString()).toBe('rsa-3072');
    expect(v[3]!.toString('hex')).toBe(rsaKey.idHex);
    expect([...v.slice(4, 7).map((b) => b[0]), v[7]![0], v[8]![0], v[9]![0]]).toEqual([1, 1, 1, 0, 1, 1]);
    expect(v[10]!.toString('base64url')).toBe(jwk.n);
    expect(v[11]!.toString('base64url')).toBe(jwk.e);
  });

  it('serves the EC private key parameters and the certificate objects', () => {
    const ecParams = p11.C_GetAttributeValue(session, privateKey(ecKey.idHex), [
      { type: pkcs11js.CKA_EC_PARAMS },
    ])[0]!.value as Buffer;
    expect(ecParams.toString('hex')).toBe('06082a8648ce3d030107'); // prime256v1
    for (const key of [rsaKey, ecKey]) {
      const [certHandle] = find([
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
        { type: pkcs11js.CKA_ID, value: Buffer.from(key.idHex, 'hex') },
      ]);
      const a = p11.C_GetAttributeValue(session, certHandle!, [
        { type: pkcs11js.CKA_VALUE },
        { type: pkcs11js.CKA_CERTIFICATE_TYPE },
        { type: pkcs11js.CKA_LABEL },
        { type: pkcs11js.CKA_SUBJECT },
        { type: pkcs11js.CKA_ISSUER },
        { type: pkcs11js.CKA_SERIAL_NUMBER },
      ]);
      const der = a[0]!.value as Buffer;
      expect(der.equals(new X509Certificate(key.certPem).raw)).toBe(true);
      expect((a[1]!.value as Buffer).readBigUInt64LE()).toBe(BigInt(pkcs11js.CKC_X_509));
      expect((a[2]!.value as Buffer).toString()).toBe(key.label);
      // Subject, issuer and serial are the DER pieces inside the certificate itself.
      for (const i of [3, 4, 5]) expect(der.includes(a[i]!.value as Buffer)).toBe(true);
      const serial = a[5]!.value as Buffer;
      expect(serial[0]).toBe(0x02); // DER INTEGER
      expect(BigInt('0x' + serial.subarray(2).toString('hex')).toString(16).toUpperCase()).toBe(
        BigInt('0x' + new X509Certificate(key.certPem).serialNumber).toString(16).toUpperCase(),
      );
    }
  });

  it('answers CKR_OBJECT_HANDLE_INVALID and CKR_ATTRIBUTE_TYPE_INVALID', () => {
    expectCkr(
      () => p11.C_GetAttributeValue(session, Buffer.from('ffffff7f00000000', 'hex'), [{ type: pkcs11js.CKA_LABEL }]),
      'CKR_OBJECT_HANDLE_INVALID',
    );
    expectCkr(
      () => p11.C_GetAttributeValue(session, privateKey(rsaKey.idHex), [{ type: 0x7ffff00d }]),
      'CKR_ATTRIBUTE_TYPE_INVALID',
    );
  });
});

describe('signing, verified with node:crypto', () => {
  const message = Buffer.from('signbridge integration test: ' + 'x'.repeat(5000));

  for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
    const mech = pkcs11js[`CKM_${hash.toUpperCase()}_RSA_PKCS` as 'CKM_SHA256_RSA_PKCS'];
    it(`CKM_${hash.toUpperCase()}_RSA_PKCS single- and multi-part`, () => {
      const pub = publicKeyOf(rsaKey.certPem);
      const key = privateKey(rsaKey.idHex);
      const single = sign(mech, key, message);
      expect(single).toHaveLength(384);
      expect(cryptoVerify(hash, message, pub, single)).toBe(true);
      const multi = sign(mech, key, message, [message.subarray(0, 1), message.subarray(1, 4097), message.subarray(4097)]);
      expect(cryptoVerify(hash, message, pub, multi)).toBe(true);
      expect(cryptoVerify(hash, Buffer.from('other'), pub, multi)).toBe(false);
    });

    it(`CKM_RSA_PKCS over a ${hash} DigestInfo`, () => {
      const digestInfo = Buffer.concat([
        Buffer.from(DIGEST_INFO[hash]!, 'hex'),
        createHash(hash).update(message).digest(),
      ]);
      const sig = sign(pkcs11js.CKM_RSA_PKCS, privateKey(rsaKey.idHex), digestInfo);
      expect(cryptoVerify(hash, message, publicKeyOf(rsaKey.certPem), sig)).toBe(true);
    });

    const ecMech = pkcs11js[`CKM_ECDSA_${hash.toUpperCase()}` as 'CKM_ECDSA_SHA256'];
    it(`CKM_ECDSA_${hash.toUpperCase()} single- and multi-part (raw r‖s)`, () => {
      const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
      const key = privateKey(ecKey.idHex);
      const single = sign(ecMech, key, message);
      expect(single).toHaveLength(64);
      expect(cryptoVerify(hash, message, pub, single)).toBe(true);
      const multi = sign(ecMech, key, message, [message.subarray(0, 100), message.subarray(100)]);
      expect(cryptoVerify(hash, message, pub, multi)).toBe(true);
    });

    it(`CKM_ECDSA over a ${hash} hash`, () => {
      const digest = createHash(hash).update(message).digest();
      const sig = sign(pkcs11js.CKM_ECDSA, privateKey(ecKey.idHex), digest);
      expect(sig).toHaveLength(64);
      const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
      expect(cryptoVerify(hash, message, pub, sig)).toBe(true);
    });
  }
});

describe('error codes', () => {
  it('wrong mechanism, wrong key type, not initialised, invalid session', () => {
    const rsa = privateKey(rsaKey.idHex);
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_AES_CBC }, rsa), 'CKR_MECHANISM_INVALID');
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, rsa), 'CKR_KEY_TYPE_INCONSISTENT');
    expectCkr(
      () => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, privateKey(ecKey.idHex)),
      'CKR_KEY_TYPE_INCONSISTENT',
    );
    expectCkr(() => p11.C_Sign(session, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED');
    expectCkr(() => p11.C_SignUpdate(session, Buffer.from('x')), 'CKR_OPERATION_NOT_INITIALIZED');
    const bogus = Buffer.from('ffffff7f00000000', 'hex');
    expectCkr(() => p11.C_SignInit(bogus, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa), 'CKR_SESSION_HANDLE_INVALID');
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, bogus), 'CKR_KEY_HANDLE_INVALID');
  });

  it('a short buffer gets CKR_BUFFER_TOO_SMALL and the operation stays active', () => {
    const message = Buffer.from('short buffer');
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, privateKey(rsaKey.idHex));
    expectCkr(() => p11.C_Sign(session, message, Buffer.alloc(16)), 'CKR_BUFFER_TOO_SMALL');
    const sig = p11.C_Sign(session, message, Buffer.alloc(384));
    expect(cryptoVerify('sha256', message, publicKeyOf(rsaKey.certPem), sig)).toBe(true);
  });

  it('a missing daemon is a fast CKR_FUNCTION_FAILED, and the module recovers when it returns', () => {
    p11.C_Finalize();
    process.env.SIGNBRIDGE_SOCKET = join(dir, 'nobody-listens-here.sock');
    p11.C_Initialize();
    const t0 = performance.now();
    expectCkr(() => p11.C_GetSlotList(true), 'CKR_FUNCTION_FAILED');
    expect(performance.now() - t0).toBeLessThan(2000); // a bound against hanging, not a speed claim
    p11.C_Finalize();
    process.env.SIGNBRIDGE_SOCKET = daemon.socket;
    p11.C_Initialize();
    expect(p11.C_GetSlotList(true)).toHaveLength(1);
    p11.C_Finalize();
  });
});
