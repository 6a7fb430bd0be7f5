// C_Login → LOGIN (protocol.md "LOGIN"), module side, through pkcs11js against a real daemon run
// with --client-secret-file: CKF_LOGIN_REQUIRED tokens hide private keys and refuse C_SignInit
// until C_Login; the daemon's CKR_PIN_INCORRECT / CKR_PIN_LOCKED reach the caller; after a good
// C_Login every new connection (concurrent sessions, a restarted daemon) logs in again by itself.
// Signatures are verified with node:crypto; the secret never shows up in the daemon's log or in
// error text.
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { testToken } from '../helpers/token.js';

const token = testToken();
const SECRET = 'module-login-secret-5be91d';
const WRONG = 'module-login-wrong-pin-0a77';
const rsaPub = new X509Certificate(token.keys.find((k) => k.label === 'rsa-3072')!.certPem).publicKey;
const CKS_RO_PUBLIC_SESSION = 0;
const CKS_RO_USER_FUNCTIONS = 1;
const CKF_USER_PIN_COUNT_LOW = 0x10000; // v2.40 §5.5: a wrong PIN since the last successful login
const pinCountLow = () => (Number(p11.C_GetTokenInfo(slot).flags) & CKF_USER_PIN_COUNT_LOW) !== 0;

let dir: string;
let mod: ModuleFixture;
let p11: pkcs11js.PKCS11;
let slot: Buffer;
let s: Buffer;

function rv(fn: () => unknown): number {
  try {
    fn();
    return 0;
  } catch (e) {
    expect(String((e as Error).message)).not.toContain(SECRET);
    expect(String((e as Error).message)).not.toContain(WRONG);
    return (e as pkcs11js.Pkcs11Error).code;
  }
}

function privateKeys(session: Buffer): Buffer[] {
  p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
  const found = p11.C_FindObjects(session, 10) as unknown as Buffer[];
  p11.C_FindObjectsFinal(session);
  return found;
}

function rsaKey(session: Buffer): Buffer {
  p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from('01', 'hex') }]);
  const [k] = p11.C_FindObjects(session, 1) as unknown as Buffer[];
  p11.C_FindObjectsFinal(session);
  return k!;
}

function sign(session: Buffer, msg: Buffer): Buffer {
  p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsaKey(session));
  return p11.C_Sign(session, msg, Buffer.alloc(512));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sbl-'));
  writeFileSync(join(dir, 'client-secret'), `${SECRET}\n`, { mode: 0o600 });
  mod = await openModule({ daemonArgs: ['--client-secret-file', join(dir, 'client-secret'), '--log-level', 'debug'] });
  ({ p11, slot, session: s } = mod);
});

afterAll(async () => {
  await mod?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a token with CKF_LOGIN_REQUIRED (daemon --client-secret-file)', () => {
  it('before C_Login: the flag is set, private keys are hidden, certificates are not', () => {
    expect(p11.C_GetTokenInfo(slot).flags & pkcs11js.CKF_LOGIN_REQUIRED).toBe(pkcs11js.CKF_LOGIN_REQUIRED);
    expect(privateKeys(s)).toEqual([]);
    p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }]);
    expect((p11.C_FindObjects(s, 10) as unknown as Buffer[]).length).toBe(2);
    p11.C_FindObjectsFinal(s);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
  });

  it('a wrong PIN is CKR_PIN_INCORRECT from the daemon; still logged out; the token says CKF_USER_PIN_COUNT_LOW', () => {
    expect(pinCountLow()).toBe(false);
    expect(rv(() => p11.C_Login(s, pkcs11js.CKU_USER, WRONG))).toBe(pkcs11js.CKR_PIN_INCORRECT);
    expect(pinCountLow()).toBe(true);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
    expect(privateKeys(s)).toEqual([]);
    // s is a R/O session: v2.40 §5.6 answers an SO login with CKR_SESSION_READ_ONLY_EXISTS first
    // (was CKR_USER_TYPE_INVALID; with only R/W sessions it still is, test/integration/rw-sessions.test.ts)
    expect(rv(() => p11.C_Login(s, pkcs11js.CKU_SO, SECRET))).toBe(pkcs11js.CKR_SESSION_READ_ONLY_EXISTS);
  });

  it('the right PIN logs in (CKF_USER_PIN_COUNT_LOW cleared): keys appear and sign (verified with node:crypto); a second C_Login is CKR_USER_ALREADY_LOGGED_IN', () => {
    p11.C_Login(s, pkcs11js.CKU_USER, SECRET);
    expect(pinCountLow()).toBe(false);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_USER_FUNCTIONS);
    expect(privateKeys(s).length).toBe(2);
    const msg = Buffer.from('signed after C_Login');
    expect(cryptoVerify('sha256', msg, rsaPub, sign(s, msg))).toBe(true);
    expect(rv(() => p11.C_Login(s, pkcs11js.CKU_USER, SECRET))).toBe(pkcs11js.CKR_USER_ALREADY_LOGGED_IN);
  });

  it('new pooled connections log in by themselves: 8 concurrent signatures on 8 sessions', async () => {
    const sessions = Array.from({ length: 8 }, () => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    const msgs = sessions.map((_, i) => Buffer.from(`concurrent ${i}`));
    const sigs = await Promise.all(sessions.map((x, i) => {
      p11.C_SignInit(x, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsaKey(x));
      return p11.C_SignAsync(x, msgs[i]!, Buffer.alloc(512));
    }));
    sigs.forEach((sig, i) => expect(cryptoVerify('sha256', msgs[i]!, rsaPub, sig)).toBe(true));
    for (const x of sessions) p11.C_CloseSession(x);
    // the daemon saw one LOGIN per new connection, each with the right PIN
    const lines = readFileSync(mod.daemon.logFile, 'utf8').split('\n');
    expect(lines.filter((l) => l.includes('LOGIN ok')).length).toBeGreaterThanOrEqual(2);
  });

  it('a restarted daemon: the next C_Sign in the same process logs in on the new connection and signs', async () => {
    await mod.daemon.restart();
    const msg = Buffer.from('signed after a daemon restart');
    expect(cryptoVerify('sha256', msg, rsaPub, sign(s, msg))).toBe(true);
  });

  it('C_Logout: keys hidden again, C_SignInit is CKR_USER_NOT_LOGGED_IN; C_Login works again', () => {
    const key = rsaKey(s);
    p11.C_Logout(s);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
    expect(privateKeys(s)).toEqual([]);
    expect(rv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, key))).toBe(pkcs11js.CKR_USER_NOT_LOGGED_IN);
    expect(rv(() => p11.C_Logout(s))).toBe(pkcs11js.CKR_USER_NOT_LOGGED_IN);
    p11.C_Login(s, pkcs11js.CKU_USER, SECRET);
    const msg = Buffer.from('signed after logging in again');
    expect(cryptoVerify('sha256', msg, rsaPub, sign(s, msg))).toBe(true);
  });

  it('C_Finalize forgets the login: after C_Initialize the keys are hidden until C_Login', () => {
    mod.reinitialize(); // C_Finalize, C_Initialize, a new session
    ({ slot, session: s } = mod);
    expect(privateKeys(s)).toEqual([]);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
  });

  it('wrong PINs are rate-limited by the daemon: CKR_PIN_LOCKED reaches the caller, even for the right PIN', () => {
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push(rv(() => p11.C_Login(s, pkcs11js.CKU_USER, WRONG)));
    expect(codes.slice(0, 5).every((c) => c === pkcs11js.CKR_PIN_INCORRECT || c === pkcs11js.CKR_PIN_LOCKED)).toBe(true);
    expect(codes[5]).toBe(pkcs11js.CKR_PIN_LOCKED);
    expect(rv(() => p11.C_Login(s, pkcs11js.CKU_USER, SECRET))).toBe(pkcs11js.CKR_PIN_LOCKED);
    expect(privateKeys(s)).toEqual([]);
  });

  it('the secret and the wrong PIN never appear in the daemon log', () => {
    const log = readFileSync(mod.daemon.logFile, 'utf8');
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(WRONG);
  });
});
