// The module loaded by pkcs11js in this test process, against a real daemon serving a real
// SoftHSMv2 token (test/helpers/module-fixture.ts). Every signature is verified with node:crypto
// against the certificate's public key as SoftHSMv2 stored it (never against signbridge's own
// output). The raw C ABI side of the same calls is test/native/conformance.c; every error code in
// depth is errors.test.ts, every mechanism mechanisms.test.ts.
import { spawn } from 'node:child_process';
import { verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/native/loader.js';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { signbridgeModule } from '../helpers/module.js';
import { digest, digestInfo } from '../helpers/signing.js';
import { testKey, testToken } from '../helpers/token.js';

const token = testToken();
const rsaKey = testKey('rsa-3072');
const ecKey = testKey('ec-p256');
const CKF_TOKEN_PRESENT = 0x1; // not exported by pkcs11js 2.1.7

let dir: string;
let m: ModuleFixture;
let p11: pkcs11js.PKCS11;
let slot: Buffer;
let session: Buffer;

function rvOf(fn: () => unknown): number {
  try {
    fn();
    return pkcs11js.CKR_OK;
  } catch (e) {
    if (e instanceof pkcs11js.Pkcs11Error) return e.code;
    throw e;
  }
}

function expectCkr(fn: () => unknown, name: keyof typeof pkcs11js): void {
  expect(rvOf(fn), `expected ${String(name)}`).toBe(pkcs11js[name]);
}

const find = (template: pkcs11js.Template): Buffer[] => m.find(template);
const privateKey = (label: string): Buffer => m.privateKey(label);

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
  m = await openModule();
  ({ p11, slot, session } = m);
});

afterAll(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('slots and tokens', () => {
  it('reports the library and one slot with the token the daemon serves', () => {
    const info = p11.C_GetInfo();
    expect(info.cryptokiVersion).toEqual({ major: 2, minor: 40 });
    expect(info.manufacturerID).toBe('signbridge'.padEnd(32)); // blank-padded, not NUL-terminated
    const slots = p11.C_GetSlotList(false);
    expect(slots).toHaveLength(1);
    const slotInfo = p11.C_GetSlotInfo(slot);
    expect(slotInfo.flags & CKF_TOKEN_PRESENT).toBeTruthy();
    expectCkr(() => p11.C_GetSlotInfo(Buffer.from('ffffff7f00000000', 'hex')), 'CKR_SLOT_ID_INVALID');
    const ti = p11.C_GetTokenInfo(slot);
    expect(ti.label.trimEnd()).toBe(token.tokenLabel);
    expect(ti.label).toHaveLength(32);
    expect(ti.serialNumber.trim()).toBe(token.tokenSerial);
    expect(ti.flags & pkcs11js.CKF_TOKEN_INITIALIZED).toBeTruthy();
    expect(ti.flags & pkcs11js.CKF_LOGIN_REQUIRED).toBe(0); // design.md "Login model"
  });

  it('advertises exactly the signing mechanisms, with key sizes in bits', () => {
    const mechs = p11.C_GetMechanismList(slot);
    const { CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS } = pkcs11js;
    const { CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512 } = pkcs11js;
    for (const mech of [CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS, CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512]) {
      expect(mechs).toContain(mech);
      const mi = p11.C_GetMechanismInfo(slot, mech);
      expect(mi.flags & pkcs11js.CKF_SIGN).toBeTruthy();
      expect(mi.flags & (pkcs11js.CKF_DECRYPT | pkcs11js.CKF_ENCRYPT)).toBe(0);
    }
    const rsa = p11.C_GetMechanismInfo(slot, pkcs11js.CKM_RSA_PKCS);
    // the token serves one RSA-3072 and one P-256 key: the sizes are theirs (docs/mechanisms.md)
    expect([rsa.minKeySize, rsa.maxKeySize]).toEqual([3072, 3072]);
    const ec = p11.C_GetMechanismInfo(slot, pkcs11js.CKM_ECDSA);
    expect([ec.minKeySize, ec.maxKeySize]).toEqual([256, 256]);
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
    expect(find([{ type: pkcs11js.CKA_LABEL, value: 'ec-p256' }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA }])).toHaveLength(0);
    expect(find([{ type: pkcs11js.CKA_LABEL, value: 'no-such-key' }])).toHaveLength(0);
    const all = find([]);
    expect(all).toHaveLength(6);
    for (const h of all) expect(h.readBigUInt64LE()).not.toBe(0n); // 0 is CK_INVALID_HANDLE
    // a search in progress blocks a second one on the same session
    p11.C_FindObjectsInit(session, []);
    expectCkr(() => p11.C_FindObjectsInit(session, []), 'CKR_OPERATION_ACTIVE');
    p11.C_FindObjectsFinal(session);
  });

  it('serves the private key attributes tools read', () => {
    const cert = new X509Certificate(rsaKey.certPem);
    const jwk = cert.publicKey.export({ format: 'jwk' });
    const types = [
      pkcs11js.CKA_CLASS, pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_LABEL, pkcs11js.CKA_ID, pkcs11js.CKA_SIGN, pkcs11js.CKA_PRIVATE,
      pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_ALWAYS_SENSITIVE, pkcs11js.CKA_NEVER_EXTRACTABLE,
      pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT,
    ];
    const attrs = p11.C_GetAttributeValue(session, privateKey(rsaKey.label), types.map((type) => ({ type })));
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
    const ecParams = p11.C_GetAttributeValue(session, privateKey(ecKey.label), [{ type: pkcs11js.CKA_EC_PARAMS }])[0]!.value as Buffer;
    expect(ecParams.toString('hex')).toBe('06082a8648ce3d030107'); // prime256v1
    for (const key of [rsaKey, ecKey]) {
      const [certHandle] = find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }, { type: pkcs11js.CKA_ID, value: Buffer.from(key.idHex, 'hex') }]);
      const { CKA_VALUE, CKA_CERTIFICATE_TYPE, CKA_LABEL, CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER } = pkcs11js;
      const types = [CKA_VALUE, CKA_CERTIFICATE_TYPE, CKA_LABEL, CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER];
      const a = p11.C_GetAttributeValue(session, certHandle!, types.map((type) => ({ type })));
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

  it('answers CKR_OBJECT_HANDLE_INVALID, CKR_ATTRIBUTE_TYPE_INVALID and CKR_ATTRIBUTE_SENSITIVE', () => {
    for (const bad of [Buffer.from('ffffff7f00000000', 'hex'), Buffer.alloc(8)]) {
      expectCkr(() => p11.C_GetAttributeValue(session, bad, [{ type: pkcs11js.CKA_LABEL }]), 'CKR_OBJECT_HANDLE_INVALID');
    }
    expectCkr(() => p11.C_GetAttributeValue(session, privateKey(rsaKey.label), [{ type: pkcs11js.CKA_PRIVATE_EXPONENT }]), 'CKR_ATTRIBUTE_SENSITIVE');
    expectCkr(
      () => p11.C_GetAttributeValue(session, privateKey(rsaKey.label), [{ type: 0x7ffff00d }]),
      'CKR_ATTRIBUTE_TYPE_INVALID',
    );
  });
});

describe('random numbers and object sizes (v2.40 §5.15, §5.7)', () => {
  it('C_GenerateRandom: the requested length, draws that differ; CKF_RNG is set; C_SeedRandom is refused', () => {
    expect(p11.C_GetTokenInfo(slot).flags & pkcs11js.CKF_RNG).toBeTruthy();
    const draws = Array.from({ length: 8 }, () => p11.C_GenerateRandom(session, Buffer.alloc(32)).toString('hex'));
    for (const d of draws) expect(d).toHaveLength(64);
    expect(new Set(draws).size).toBe(draws.length);
    const big = p11.C_GenerateRandom(session, Buffer.alloc(100_000));
    expect(big.length).toBe(100_000);
    expect(big.subarray(-32).equals(Buffer.alloc(32))).toBe(false); // filled to the end
    expectCkr(() => p11.C_GenerateRandom(Buffer.from('ffffff7f00000000', 'hex'), Buffer.alloc(8)), 'CKR_SESSION_HANDLE_INVALID');
    expectCkr(() => p11.C_SeedRandom(session, Buffer.from('seed')), 'CKR_RANDOM_SEED_NOT_SUPPORTED');
  });

  it('C_GetObjectSize: an estimate covering the attribute values, for every object', () => {
    const [cert] = find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }, { type: pkcs11js.CKA_LABEL, value: rsaKey.label }]);
    const value = p11.C_GetAttributeValue(session, cert!, [{ type: pkcs11js.CKA_VALUE }])[0]!.value as Buffer;
    expect(p11.C_GetObjectSize(session, cert!)).toBeGreaterThan(value.length);
    expect(p11.C_GetObjectSize(session, privateKey(rsaKey.label))).toBeGreaterThan(3072 / 8); // holds the modulus
    expectCkr(() => p11.C_GetObjectSize(session, Buffer.from('ffffff7f00000000', 'hex')), 'CKR_OBJECT_HANDLE_INVALID');
  });
});

describe('signing, verified with node:crypto', () => {
  const message = Buffer.from('signbridge integration test: ' + 'x'.repeat(5000));

  for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
    const mech = pkcs11js[`CKM_${hash.toUpperCase()}_RSA_PKCS` as 'CKM_SHA256_RSA_PKCS'];
    it(`CKM_${hash.toUpperCase()}_RSA_PKCS single- and multi-part`, () => {
      const pub = publicKeyOf(rsaKey.certPem);
      const key = privateKey(rsaKey.label);
      const single = sign(mech, key, message);
      expect(single).toHaveLength(384);
      expect(cryptoVerify(hash, message, pub, single)).toBe(true);
      const multi = sign(mech, key, message, [message.subarray(0, 1), message.subarray(1, 4097), message.subarray(4097)]);
      expect(cryptoVerify(hash, message, pub, multi)).toBe(true);
      expect(cryptoVerify(hash, Buffer.from('other'), pub, multi)).toBe(false);
    });

    it(`CKM_RSA_PKCS over a ${hash} DigestInfo`, () => {
      const sig = sign(pkcs11js.CKM_RSA_PKCS, privateKey(rsaKey.label), digestInfo(hash, message));
      expect(cryptoVerify(hash, message, publicKeyOf(rsaKey.certPem), sig)).toBe(true);
    });

    const ecMech = pkcs11js[`CKM_ECDSA_${hash.toUpperCase()}` as 'CKM_ECDSA_SHA256'];
    it(`CKM_ECDSA_${hash.toUpperCase()} single- and multi-part (raw r‖s)`, () => {
      const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
      const key = privateKey(ecKey.label);
      const single = sign(ecMech, key, message);
      expect(single).toHaveLength(64);
      expect(cryptoVerify(hash, message, pub, single)).toBe(true);
      const multi = sign(ecMech, key, message, [message.subarray(0, 100), message.subarray(100)]);
      expect(cryptoVerify(hash, message, pub, multi)).toBe(true);
    });

    it(`CKM_ECDSA over a ${hash} hash`, () => {
      const sig = sign(pkcs11js.CKM_ECDSA, privateKey(ecKey.label), digest(hash, message));
      expect(sig).toHaveLength(64);
      const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
      expect(cryptoVerify(hash, message, pub, sig)).toBe(true);
    });
  }

  it('signs concurrently from libuv threads on separate sessions (no lock held during I/O)', async () => {
    const sessions = Array.from({ length: 8 }, () => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    const sigs = await Promise.all(
      sessions.map((s) => {
        p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, privateKey(ecKey.label));
        return p11.C_SignAsync(s, digest('sha256', message), Buffer.alloc(64));
      }),
    );
    const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
    for (const sig of sigs) expect(cryptoVerify('sha256', message, pub, sig)).toBe(true);
    for (const s of sessions) p11.C_CloseSession(s);
  });
});

describe('a daemon restart', () => {
  it('drops the dead pooled connection and signs through the new daemon, same session (design.md)', async () => {
    const message = Buffer.from('restart');
    const pub = { key: publicKeyOf(ecKey.certPem), dsaEncoding: 'ieee-p1363' as const };
    const key = privateKey(ecKey.label);
    expect(cryptoVerify('sha256', message, pub, sign(pkcs11js.CKM_ECDSA, key, digest('sha256', message)))).toBe(true);
    const before = m.daemon.pid;
    await m.daemon.restart();
    expect(m.daemon.pid).not.toBe(before);
    expect(cryptoVerify('sha256', message, pub, sign(pkcs11js.CKM_ECDSA, key, digest('sha256', message)))).toBe(true);
  });
});

describe('error codes', () => {
  it('wrong mechanism, wrong key type, not initialised, invalid session', () => {
    const rsa = privateKey(rsaKey.label);
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_AES_CBC }, rsa), 'CKR_MECHANISM_INVALID');
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, rsa), 'CKR_KEY_TYPE_INCONSISTENT');
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, privateKey(ecKey.label)), 'CKR_KEY_TYPE_INCONSISTENT');
    expectCkr(() => p11.C_Sign(session, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED');
    expectCkr(() => p11.C_SignUpdate(session, Buffer.from('x')), 'CKR_OPERATION_NOT_INITIALIZED');
    const bogus = Buffer.from('ffffff7f00000000', 'hex');
    expectCkr(() => p11.C_SignInit(bogus, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa), 'CKR_SESSION_HANDLE_INVALID');
    expectCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, bogus), 'CKR_KEY_HANDLE_INVALID');
    const [pub] = find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }]);
    expect([pkcs11js.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11js.CKR_KEY_TYPE_INCONSISTENT]).toContain(
      rvOf(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, pub!)),
    );
    expectCkr(() => p11.C_OpenSession(slot, 0), 'CKR_SESSION_PARALLEL_NOT_SUPPORTED'); // no CKF_SERIAL_SESSION
  });

  it('a short buffer gets CKR_BUFFER_TOO_SMALL and the operation stays active', () => {
    const message = Buffer.from('short buffer');
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, privateKey(rsaKey.label));
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
    process.env.SIGNBRIDGE_SOCKET = m.daemon.socket;
    p11.C_Initialize();
    expect(p11.C_GetSlotList(true)).toHaveLength(1);
    p11.C_Finalize();
  });
});

// Without a daemon (or with one that never answers), in a child process so stderr can be read.
describe('without a daemon', () => {
  const script = `
    const p11 = new (require('pkcs11js').PKCS11)();
    p11.load(process.argv[1]);
    const rv = (f) => { try { f(); return 0; } catch (e) { return e.code; } };
    const out = { beforeInit: rv(() => p11.C_GetSlotList(true)) };
    p11.C_Initialize();
    out.again = rv(() => p11.C_Initialize());
    const t0 = Date.now();
    out.slotList = rv(() => p11.C_GetSlotList(true));
    out.slotInfo = rv(() => p11.C_GetSlotInfo(Buffer.alloc(8)));
    out.ms = Date.now() - t0;
    p11.C_Finalize();
    out.afterFinalize = rv(() => p11.C_GetInfo());
    console.log(JSON.stringify(out));`;

  function runChild(env: NodeJS.ProcessEnv): Promise<{ out: Record<string, number>; stderr: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['-e', script, signbridgeModule()], { cwd: packageRoot(), env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => {
        if (code !== 0) reject(new Error(`consumer exited ${code}: ${stdout}\n${stderr}`));
        else resolve({ out: JSON.parse(stdout) as Record<string, number>, stderr });
      });
    });
  }

  it('fails fast with CKR_FUNCTION_FAILED / CKR_DEVICE_ERROR and says how to fix it', async () => {
    const socket = join(dir, 'nobody-here.sock');
    const { out, stderr } = await runChild({ SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1' });
    expect(out.beforeInit).toBe(pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED);
    expect(out.again).toBe(pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED);
    expect(out.slotList).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(out.slotInfo).toBe(pkcs11js.CKR_DEVICE_ERROR);
    expect(out.afterFinalize).toBe(pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED);
    expect(out.ms).toBeLessThan(1000);
    expect(stderr).toContain(`signbridge: C_GetSlotList: cannot reach the signbridge daemon at ${socket} (No such file or directory); start it with "signbridge daemon ...`);
  });

  it('without SIGNBRIDGE_DEBUG: one notice line for the process; SIGNBRIDGE_QUIET=1: nothing', async () => {
    const socket = join(dir, 'nobody-here.sock');
    const { out, stderr } = await runChild({ SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '0' });
    expect(out.slotList).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(stderr.split('\n').filter((l) => l.startsWith('signbridge:')), stderr).toEqual([
      `signbridge: cannot reach the signbridge daemon at ${socket} (No such file or directory); start it with "signbridge daemon ..." or set SIGNBRIDGE_SOCKET`,
    ]);
    const quiet = await runChild({ SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '0', SIGNBRIDGE_QUIET: '1' });
    expect(quiet.out.slotList).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(quiet.stderr).not.toContain('signbridge:');
  });

  it('bounds a daemon that accepts but never answers by SIGNBRIDGE_TIMEOUT_MS', async () => {
    const socket = join(dir, 'hang.sock');
    const held: Socket[] = [];
    const server = createServer((c) => held.push(c)); // reads nothing, answers nothing
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const { out, stderr } = await runChild({ SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1', SIGNBRIDGE_TIMEOUT_MS: '300' });
      expect(out.slotList).toBe(pkcs11js.CKR_FUNCTION_FAILED);
      expect(out.ms).toBeGreaterThanOrEqual(500); // two calls × 300 ms
      expect(out.ms).toBeLessThan(5000);
      expect(stderr).toContain('did not answer HELLO within 300 ms');
    } finally {
      for (const c of held) c.destroy();
      server.close();
    }
  });
});
