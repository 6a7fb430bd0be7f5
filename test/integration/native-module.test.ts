// libsignbridge-pkcs11.so driven through pkcs11js against the real daemon (pkcs11 backend on the
// run's SoftHSMv2 token). Signatures are verified with node:crypto against the certificates the
// token set-up wrote, never against our own output.
import { spawnSync } from 'node:child_process';
import { X509Certificate, constants as cc, createHash, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { testKey, testToken } from '../helpers/token.js';

const root = join(import.meta.dirname, '..', '..');
const modulePath = join(root, 'build', 'Release', 'libsignbridge-pkcs11.so');
const P = pkcs11js as unknown as Record<string, number>;
const CKM_EDDSA = 0x1057;
// v2.40 §3.6 session states (pkcs11js does not export them)
const CKS_RO_PUBLIC_SESSION = 0;
const CKS_RO_USER_FUNCTIONS = 1;

function rvOf(fn: () => unknown): number {
  try {
    fn();
    return 0;
  } catch (e) {
    if (typeof (e as { code?: unknown }).code === 'number') return (e as { code: number }).code;
    throw e;
  }
}

function publicKey(label: string): KeyObject {
  return new X509Certificate(testKey(label).certPem).publicKey;
}

describe('libsignbridge-pkcs11.so with the daemon', () => {
  let daemon: TestDaemon;
  let p11: pkcs11js.PKCS11;
  let slot: Buffer;
  let session: Buffer;
  const data = Buffer.from('signbridge native module test '.repeat(300));

  beforeAll(async () => {
    daemon = await startTestDaemon();
    process.env.SIGNBRIDGE_SOCKET = daemon.socket; // read by C_Initialize
    p11 = new pkcs11js.PKCS11();
    p11.load(modulePath);
    p11.C_Initialize({ flags: P.CKF_OS_LOCKING_OK! });
    const slots = p11.C_GetSlotList(true);
    slot = slots.find((s) => p11.C_GetTokenInfo(s).label.trim() === testToken().tokenLabel)!;
    expect(slot, 'the daemon serves the test token').toBeDefined();
    session = p11.C_OpenSession(slot, P.CKF_SERIAL_SESSION!);
  }, 60_000);

  afterAll(async () => {
    try {
      p11?.C_Finalize();
      p11?.close();
    } finally {
      await daemon?.stop();
    }
  });

  function find(template: pkcs11js.Template, s = session): Buffer[] {
    p11.C_FindObjectsInit(s, template);
    try {
      return p11.C_FindObjects(s, 100);
    } finally {
      p11.C_FindObjectsFinal(s);
    }
  }
  const privateKey = (idHex: string) =>
    find([{ type: P.CKA_CLASS!, value: P.CKO_PRIVATE_KEY! }, { type: P.CKA_ID!, value: Buffer.from(idHex, 'hex') }])[0]!;

  it('reports library and token info, blank-padded', () => {
    const info = p11.C_GetInfo();
    expect(info.cryptokiVersion).toEqual({ major: 2, minor: 40 });
    expect(info.manufacturerID).toBe('signbridge'.padEnd(32));
    const t = p11.C_GetTokenInfo(slot);
    expect(t.label).toHaveLength(32);
    expect(t.serialNumber.trim()).toBe(testToken().tokenSerial);
    expect(t.flags & P.CKF_LOGIN_REQUIRED!).toBe(0); // design.md "Login model"
    expect(rvOf(() => p11.C_GetSlotInfo(Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])))).toBe(P.CKR_SLOT_ID_INVALID);
  });

  it('lists mechanisms with sizes in bits and refuses unknown ones', () => {
    const mechs = p11.C_GetMechanismList(slot);
    expect(mechs).toContain(P.CKM_SHA256_RSA_PKCS);
    expect(mechs).toContain(P.CKM_ECDSA);
    const rsa = p11.C_GetMechanismInfo(slot, P.CKM_RSA_PKCS!);
    expect(rsa.maxKeySize).toBeGreaterThanOrEqual(3072);
    expect(rvOf(() => p11.C_GetMechanismInfo(slot, 0x7ffffff0))).toBe(P.CKR_MECHANISM_INVALID);
  });

  it('finds objects by any attribute and never hands out handle 0', () => {
    const all = find([]);
    expect(all.length).toBeGreaterThanOrEqual(6); // 2 keys × (private, public, certificate)
    for (const h of all) expect(h.readBigUInt64LE()).not.toBe(0n);
    expect(find([{ type: P.CKA_LABEL!, value: 'rsa-3072' }]).length).toBeGreaterThanOrEqual(2);
    expect(find([{ type: P.CKA_CLASS!, value: P.CKO_CERTIFICATE! }, { type: P.CKA_ID!, value: Buffer.from('02', 'hex') }])).toHaveLength(1);
    expect(find([{ type: P.CKA_ID!, value: Buffer.from('7777', 'hex') }])).toHaveLength(0);
    // a find in progress blocks a second one on the same session
    p11.C_FindObjectsInit(session, []);
    expect(rvOf(() => p11.C_FindObjectsInit(session, []))).toBe(P.CKR_OPERATION_ACTIVE);
    p11.C_FindObjectsFinal(session);
  });

  it('follows the C_GetAttributeValue cases: sensitive, unknown, handle 0', () => {
    const key = privateKey('01');
    const [mod] = p11.C_GetAttributeValue(session, key, [{ type: P.CKA_MODULUS! }]);
    expect((mod!.value as Buffer).length).toBe(384);
    expect(rvOf(() => p11.C_GetAttributeValue(session, key, [{ type: P.CKA_PRIVATE_EXPONENT! }]))).toBe(P.CKR_ATTRIBUTE_SENSITIVE);
    expect(rvOf(() => p11.C_GetAttributeValue(session, key, [{ type: 0x7fff0001 }]))).toBe(P.CKR_ATTRIBUTE_TYPE_INVALID);
    expect(rvOf(() => p11.C_GetAttributeValue(session, Buffer.alloc(8), [{ type: P.CKA_LABEL! }]))).toBe(P.CKR_OBJECT_HANDLE_INVALID);
    const [cls] = p11.C_GetAttributeValue(session, key, [{ type: P.CKA_CLASS! }]);
    expect((cls!.value as Buffer).readBigUInt64LE()).toBe(BigInt(P.CKO_PRIVATE_KEY!)); // native CK_ULONG width
  });

  it('signs CKM_RSA_PKCS over a DigestInfo; a short buffer keeps the operation', () => {
    const key = privateKey('01');
    const digest = createHash('sha256').update(data).digest();
    const di = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]);
    p11.C_SignInit(session, { mechanism: P.CKM_RSA_PKCS! }, key);
    expect(rvOf(() => p11.C_Sign(session, di, Buffer.alloc(10)))).toBe(P.CKR_BUFFER_TOO_SMALL);
    const sig = p11.C_Sign(session, di, Buffer.alloc(384));
    expect(sig).toHaveLength(384);
    expect(verify('sha256', data, publicKey('rsa-3072'), sig)).toBe(true);
    // the operation ended with the signature
    expect(rvOf(() => p11.C_Sign(session, di, Buffer.alloc(384)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
  });

  it('signs CKM_SHA256_RSA_PKCS multi-part (SunPKCS11 style), hashing in the module', () => {
    p11.C_SignInit(session, { mechanism: P.CKM_SHA256_RSA_PKCS! }, privateKey('01'));
    for (let i = 0; i < data.length; i += 1000) p11.C_SignUpdate(session, data.subarray(i, i + 1000));
    const sig = p11.C_SignFinal(session, Buffer.alloc(384));
    expect(verify('sha256', data, publicKey('rsa-3072'), sig)).toBe(true);
  });

  it('signs SHA384/512 RSA and PSS with the parameters checked', () => {
    for (const [mech, hash] of [[P.CKM_SHA384_RSA_PKCS!, 'sha384'], [P.CKM_SHA512_RSA_PKCS!, 'sha512']] as const) {
      p11.C_SignInit(session, { mechanism: mech }, privateKey('01'));
      expect(verify(hash, data, publicKey('rsa-3072'), p11.C_Sign(session, data, Buffer.alloc(384)))).toBe(true);
    }
    const pss = (hashAlg: number, mgf: number, saltLen: number) => ({
      mechanism: P.CKM_SHA256_RSA_PKCS_PSS!,
      parameter: { hashAlg, mgf, saltLen, type: P.CK_PARAMS_RSA_PSS! },
    });
    p11.C_SignInit(session, pss(P.CKM_SHA256!, P.CKG_MGF1_SHA256!, 32), privateKey('01'));
    const sig = p11.C_Sign(session, data, Buffer.alloc(384));
    const key = { key: publicKey('rsa-3072'), padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    expect(verify('sha256', data, key, sig)).toBe(true);
    // hashAlg must match the mechanism's hash; sLen at most modBytes - hLen - 2
    expect(rvOf(() => p11.C_SignInit(session, pss(P.CKM_SHA512!, P.CKG_MGF1_SHA256!, 32), privateKey('01')))).toBe(P.CKR_MECHANISM_PARAM_INVALID);
    expect(rvOf(() => p11.C_SignInit(session, pss(P.CKM_SHA256!, P.CKG_MGF1_SHA256!, 384 - 32 - 1), privateKey('01')))).toBe(P.CKR_MECHANISM_PARAM_INVALID);
    // "max" salt (openssl's default through the engine) is allowed
    p11.C_SignInit(session, pss(P.CKM_SHA256!, P.CKG_MGF1_SHA256!, 384 - 32 - 2), privateKey('01'));
    const maxSig = p11.C_Sign(session, data, Buffer.alloc(384));
    expect(verify('sha256', data, { ...key, saltLength: 384 - 32 - 2 }, maxSig)).toBe(true);
  });

  it('signs ECDSA (hash in) and ECDSA_SHA256 multi-part as raw r‖s', () => {
    const key = privateKey('02');
    p11.C_SignInit(session, { mechanism: P.CKM_ECDSA! }, key);
    const sig = p11.C_Sign(session, createHash('sha256').update(data).digest(), Buffer.alloc(64));
    expect(sig).toHaveLength(64);
    expect(verify('sha256', data, { key: publicKey('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    p11.C_SignInit(session, { mechanism: P.CKM_ECDSA_SHA256! }, key);
    p11.C_SignUpdate(session, data.subarray(0, 7));
    p11.C_SignUpdate(session, data.subarray(7));
    const sig2 = p11.C_SignFinal(session, Buffer.alloc(64));
    expect(verify('sha256', data, { key: publicKey('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig2)).toBe(true);
  });

  it('refuses wrong keys and mechanisms with the spec codes', () => {
    const rsa = privateKey('01');
    const ec = privateKey('02');
    const cert = find([{ type: P.CKA_CLASS!, value: P.CKO_CERTIFICATE! }])[0]!;
    const pub = find([{ type: P.CKA_CLASS!, value: P.CKO_PUBLIC_KEY! }])[0]!;
    expect(rvOf(() => p11.C_SignInit(session, { mechanism: P.CKM_ECDSA! }, rsa))).toBe(P.CKR_KEY_TYPE_INCONSISTENT);
    expect(rvOf(() => p11.C_SignInit(session, { mechanism: CKM_EDDSA }, rsa))).toBe(P.CKR_MECHANISM_INVALID); // no Ed25519 key on this token
    expect(rvOf(() => p11.C_SignInit(session, { mechanism: P.CKM_RSA_PKCS! }, cert))).toBe(P.CKR_KEY_HANDLE_INVALID);
    expect(rvOf(() => p11.C_SignInit(session, { mechanism: P.CKM_RSA_PKCS! }, Buffer.alloc(8)))).toBe(P.CKR_KEY_HANDLE_INVALID);
    const pubRv = rvOf(() => p11.C_SignInit(session, { mechanism: P.CKM_RSA_PKCS! }, pub));
    expect([P.CKR_KEY_FUNCTION_NOT_PERMITTED, P.CKR_KEY_TYPE_INCONSISTENT]).toContain(pubRv);
    p11.C_SignInit(session, { mechanism: P.CKM_ECDSA! }, ec);
    expect(rvOf(() => p11.C_SignInit(session, { mechanism: P.CKM_ECDSA! }, ec))).toBe(P.CKR_OPERATION_ACTIVE);
    // CKM_ECDSA is single-part: C_SignUpdate ends the operation
    expect(rvOf(() => p11.C_SignUpdate(session, Buffer.from('x')))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
    expect(rvOf(() => p11.C_SignFinal(session, Buffer.alloc(64)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
    // CKM_RSA_PKCS: more than k - 11 bytes
    p11.C_SignInit(session, { mechanism: P.CKM_RSA_PKCS! }, rsa);
    expect(rvOf(() => p11.C_Sign(session, Buffer.alloc(384 - 10), Buffer.alloc(384)))).toBe(P.CKR_DATA_LEN_RANGE);
    expect(rvOf(() => p11.C_Sign(session, Buffer.alloc(32), Buffer.alloc(384)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
  });

  it('keeps login state per slot as the spec says', () => {
    const s2 = p11.C_OpenSession(slot, P.CKF_SERIAL_SESSION!);
    expect(p11.C_GetSessionInfo(s2).state).toBe(CKS_RO_PUBLIC_SESSION);
    p11.C_Login(s2, P.CKU_USER!, 'any pin at all');
    expect(p11.C_GetSessionInfo(session).state).toBe(CKS_RO_USER_FUNCTIONS); // all sessions of the slot
    expect(rvOf(() => p11.C_Login(session, P.CKU_USER!, 'again'))).toBe(P.CKR_USER_ALREADY_LOGGED_IN);
    p11.C_Logout(s2);
    expect(rvOf(() => p11.C_Logout(s2))).toBe(P.CKR_USER_NOT_LOGGED_IN);
    p11.C_CloseSession(s2);
    expect(rvOf(() => p11.C_GetSessionInfo(s2))).toBe(P.CKR_SESSION_HANDLE_INVALID);
    expect(rvOf(() => p11.C_OpenSession(slot, 0))).toBe(P.CKR_SESSION_PARALLEL_NOT_SUPPORTED);
  });

  it('signs concurrently from libuv threads on separate sessions (no lock held during I/O)', async () => {
    const digest = createHash('sha256').update(data).digest();
    const sessions = Array.from({ length: 8 }, () => p11.C_OpenSession(slot, P.CKF_SERIAL_SESSION!));
    const sigs = await Promise.all(
      sessions.map((s) => {
        p11.C_SignInit(s, { mechanism: P.CKM_ECDSA! }, privateKey('02'));
        return p11.C_SignAsync(s, digest, Buffer.alloc(64));
      }),
    );
    for (const sig of sigs) expect(verify('sha256', data, { key: publicKey('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    for (const s of sessions) p11.C_CloseSession(s);
  });
});

describe('libsignbridge-pkcs11.so across a daemon restart', () => {
  it('drops the dead pooled connection and signs through the new daemon', async () => {
    const t = testToken();
    const dir = mkdtempSync(join(tmpdir(), 'sbr-'));
    const socket = join(dir, 's.sock');
    const start = () =>
      startDaemon({ socket, softhsmConf: t.softhsmConf, library: t.library, tokenLabel: t.tokenLabel, pinFile: t.pinFile, logFile: join(dir, 'd.log') });
    let d: RunningDaemon | undefined = await start();
    process.env.SIGNBRIDGE_SOCKET = socket;
    const p11 = new pkcs11js.PKCS11();
    p11.load(modulePath);
    try {
      p11.C_Initialize();
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === t.tokenLabel)!;
      const s = p11.C_OpenSession(slot, P.CKF_SERIAL_SESSION!);
      p11.C_FindObjectsInit(s, [{ type: P.CKA_CLASS!, value: P.CKO_PRIVATE_KEY! }, { type: P.CKA_ID!, value: Buffer.from('02', 'hex') }]);
      const [key] = p11.C_FindObjects(s, 1);
      p11.C_FindObjectsFinal(s);
      const digest = createHash('sha256').update('restart').digest();
      const signOnce = () => {
        p11.C_SignInit(s, { mechanism: P.CKM_ECDSA! }, key!);
        return p11.C_Sign(s, digest, Buffer.alloc(64));
      };
      const pub = { key: publicKey('ec-p256'), dsaEncoding: 'ieee-p1363' as const };
      expect(verify('sha256', Buffer.from('restart'), pub, signOnce())).toBe(true);
      await d.stop();
      d = await start();
      expect(verify('sha256', Buffer.from('restart'), pub, signOnce())).toBe(true);
      await d.stop();
      d = undefined;
      // daemon gone: the next signature fails cleanly (not a hang, not a crash)
      p11.C_SignInit(s, { mechanism: P.CKM_ECDSA! }, key!);
      expect(rvOf(() => p11.C_Sign(s, digest, Buffer.alloc(64)))).toBe(P.CKR_DEVICE_ERROR);
      p11.C_Finalize();
    } finally {
      p11.close();
      await d?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

// Without a daemon (or with one that never answers), in a child process so stderr can be read.
describe('libsignbridge-pkcs11.so without a daemon', () => {
  const script = `
    const { createRequire } = require('node:module');
    const req = createRequire(${JSON.stringify(join(root, 'package.json'))});
    const pkcs11js = req('pkcs11js');
    const p11 = new pkcs11js.PKCS11();
    p11.load(${JSON.stringify(modulePath)});
    const rv = (f) => { try { f(); return 0; } catch (e) { return e.code; } };
    const out = {};
    out.beforeInit = rv(() => p11.C_GetSlotList(true));
    p11.C_Initialize();
    out.again = rv(() => p11.C_Initialize());
    const t0 = Date.now();
    out.slotList = rv(() => p11.C_GetSlotList(true));
    out.slotInfo = rv(() => p11.C_GetSlotInfo(Buffer.alloc(8)));
    out.ms = Date.now() - t0;
    p11.C_Finalize();
    out.afterFinalize = rv(() => p11.C_GetInfo());
    console.log(JSON.stringify(out));`;

  function runChild(env: NodeJS.ProcessEnv) {
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    return { out: JSON.parse(r.stdout) as Record<string, number>, stderr: r.stderr };
  }

  it('fails fast with CKR_FUNCTION_FAILED / CKR_DEVICE_ERROR and says how to fix it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sbn-'));
    const socket = join(dir, 'nobody-here.sock');
    try {
      const { out, stderr } = runChild({ SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1' });
      expect(out.beforeInit).toBe(P.CKR_CRYPTOKI_NOT_INITIALIZED);
      expect(out.again).toBe(P.CKR_CRYPTOKI_ALREADY_INITIALIZED);
      expect(out.slotList).toBe(P.CKR_FUNCTION_FAILED);
      expect(out.slotInfo).toBe(P.CKR_DEVICE_ERROR);
      expect(out.afterFinalize).toBe(P.CKR_CRYPTOKI_NOT_INITIALIZED);
      expect(out.ms).toBeLessThan(1000);
      expect(stderr).toContain(`signbridge: C_GetSlotList: cannot reach the signbridge daemon at ${socket} (No such file or directory); start it with "signbridge daemon ...`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints nothing without SIGNBRIDGE_DEBUG', () => {
    const { stderr } = runChild({ SIGNBRIDGE_SOCKET: '/nonexistent/s.sock', SIGNBRIDGE_DEBUG: '0' });
    expect(stderr).not.toContain('signbridge:');
  });

  it('bounds a daemon that accepts but never answers by SIGNBRIDGE_TIMEOUT_MS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sbh-'));
    const socket = join(dir, 'hang.sock');
    const held: import('node:net').Socket[] = [];
    const server: Server = createServer((c) => held.push(c)); // reads nothing, answers nothing
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const child = await import('node:child_process');
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = child.spawn(process.execPath, ['-e', script], {
          env: { ...process.env, SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1', SIGNBRIDGE_TIMEOUT_MS: '300' },
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, number>;
      expect(out.slotList).toBe(P.CKR_FUNCTION_FAILED);
      expect(out.ms).toBeGreaterThanOrEqual(500); // two calls × 300 ms
      expect(out.ms).toBeLessThan(5000);
      expect(r.stderr).toContain('did not answer HELLO within 300 ms');
    } finally {
      for (const c of held) c.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
