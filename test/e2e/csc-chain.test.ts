// The csc chain end to end: signer processes (pkcs11js) → libsignbridge-pkcs11.so → `signbridge
// daemon --backend csc` (a child process) → CSC emulator (HTTPS, OAuth 2.0, keys in SoftHSMv2).
// Per-signature authorisation the PKCS#11 way: the keys carry CKA_ALWAYS_AUTHENTICATE and the
// OTP from `signbridge otp` is the context-specific login after C_SignInit. Every signature is
// verified with node:crypto against the certificate the emulator itself returns; refusals are
// checked by their CK_RV and by the emulator's own counters (nothing signed).
import { spawn } from 'node:child_process';
import { X509Certificate, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../../src/demo/daemon-process.js';
import { CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_USER_NOT_LOGGED_IN } from '../../src/core/pkcs11.js';
import { sendOtp, signTogether, startCscDaemon, type CscChain, type SignerResult } from '../helpers/csc-chain.js';
import { startTestCscEmulator, type TestCscEmulator } from '../helpers/csc-emulator.js';
import { describeRun } from '../helpers/run.js';

let emu: TestCscEmulator;
let work: string;
let chain: CscChain;
const SIGN_HASH = 'POST /csc/v1/signatures/signHash';
const AUTHORIZE = 'POST /csc/v1/credentials/authorize';

async function certOf(credentialID: string): Promise<X509Certificate> {
  const r = await emu.csc('/csc/v1/credentials/info', { credentialID, certificates: 'single' });
  return new X509Certificate(Buffer.from((r.json as { cert: { certificates: string[] } }).cert.certificates[0]!, 'base64'));
}

function verifies(cert: X509Certificate, mech: 'rsa' | 'ecdsa', message: string, r: SignerResult): boolean {
  if (!r.sig) return false;
  const key = mech === 'ecdsa' ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' as const } : cert.publicKey;
  return verify('sha256', Buffer.from(message), key, Buffer.from(r.sig, 'hex'));
}

async function otpFor(credential: string): Promise<string> {
  const { run, otp } = await sendOtp(emu, chain, credential);
  expect(run.status, describeRun(run)).toBe(0);
  expect(otp).toMatch(/^\d{6}$/);
  return otp;
}

const counters = (): { signHash: number; authorize: number; hashes: number } => {
  const s = emu.stats();
  return { signHash: s.requests[SIGN_HASH] ?? 0, authorize: s.requests[AUTHORIZE] ?? 0, hashes: s.hashesSigned };
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-csc-e2e-'));
  emu = await startTestCscEmulator();
  chain = await startCscDaemon(emu, work, ['--csc-num-signatures', '32']);
}, 120_000);

afterAll(async () => {
  await chain?.daemon.stop();
  await emu?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('csc backend through the module', () => {
  // First: no authorisation has been given for doc-ec yet in this daemon.
  it('without a context-specific login and no authorisation held: CKR_USER_NOT_LOGGED_IN at once, and one log line saying what to do', async () => {
    const [r] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', message: () => 'no login at all' });
    expect(r!.step).toBe('C_Sign');
    expect(r!.rv).toBe(CKR_USER_NOT_LOGGED_IN);
    expect(chain.daemon.stderr()).toMatch(/signbridge otp doc-ec/);
  }, 60_000);

  it('a tool that never logs in per operation signs after `signbridge otp doc-ec --authorize` (the OTP on stdin, to the daemon)', async () => {
    const otp = await otpFor('doc-ec');
    const before = counters();
    // asynchronous: the emulator answers from this process's event loop
    const child = spawn(process.execPath, [cliPath(), 'otp', 'doc-ec', '--authorize'], { env: { ...process.env, SIGNBRIDGE_SOCKET: chain.daemon.socket } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(`${otp}\n`);
    const status = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const a = { status, stdout, stderr };
    expect(a.status, `${a.stdout}${a.stderr}`).toBe(0);
    expect(a.stdout).toMatch(/doc-ec is authorised for 32 signature\(s\)/);
    expect(counters().authorize).toBe(before.authorize + 1);
    const [r] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', message: () => 'authorised ahead' });
    expect(verifies(await certOf('doc-ec'), 'ecdsa', 'authorised ahead', r!), JSON.stringify(r)).toBe(true);
  }, 60_000);

  it('serves doc-rsa and doc-ec with CKA_ALWAYS_AUTHENTICATE; an OTP from `signbridge otp` signs, verified against the emulator certificate', async () => {
    for (const [label, mech] of [['doc-rsa', 'rsa'], ['doc-ec', 'ecdsa']] as const) {
      const otp = await otpFor(label);
      const message = `one ${label}`;
      const [r] = await signTogether(chain, { n: 1, label, mech, otp, message: () => message });
      expect(r!.alwaysAuthenticate, JSON.stringify(r)).toBe(true);
      expect(verifies(await certOf(label), mech, message, r!), `${JSON.stringify(r)}\n${chain.daemon.stderr()}`).toBe(true);
    }
  }, 120_000);

  it('a wrong OTP is CKR_PIN_INCORRECT at C_Login and C_Sign signs nothing (the emulator signed no hash)', async () => {
    const otp = await otpFor('doc-rsa');
    const wrong = otp === '000000' ? '111111' : '000000';
    const before = counters();
    const [r] = await signTogether(chain, { n: 1, label: 'doc-rsa', mech: 'rsa', otp: wrong, message: () => 'wrong otp' });
    expect(r!.step, JSON.stringify(r)).toBe('C_Login(CKU_CONTEXT_SPECIFIC)');
    expect(r!.rv).toBe(CKR_PIN_INCORRECT);
    // a tool that ignores the failed login and signs anyway gets nothing either (the SAD was dropped)
    const [again] = await signTogether(chain, { n: 1, label: 'doc-rsa', mech: 'rsa', message: () => 'no login' });
    expect(again!.rv, JSON.stringify(again)).toBe(CKR_USER_NOT_LOGGED_IN);
    expect(counters().hashes).toBe(before.hashes);
    expect(counters().signHash).toBe(before.signHash);
  }, 60_000);

  it('an expired SAD asks for a new authorisation (CKR_USER_NOT_LOGGED_IN); a new OTP signs again', async () => {
    const otp = await otpFor('doc-ec');
    const [first] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', otp, message: () => 'before expiry' });
    expect(first!.sig, JSON.stringify(first)).toBeDefined();
    const ex = await emu.admin('/expire', { accessTokens: false });
    expect(ex.status, ex.text).toBe(200);
    const [expired] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', otp, message: () => 'after expiry' });
    expect(expired!.rv, JSON.stringify(expired)).toBe(CKR_USER_NOT_LOGGED_IN);
    expect(chain.daemon.stderr()).toMatch(/expired or is used up/);
    const fresh = await otpFor('doc-ec');
    const [again] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', otp: fresh, message: () => 'new authorisation' });
    expect(verifies(await certOf('doc-ec'), 'ecdsa', 'new authorisation', again!), JSON.stringify(again)).toBe(true);
  }, 60_000);

  it('a suspended credential is refused with its own code: C_Login → CKR_PIN_LOCKED, C_Sign with an earlier SAD → CKR_KEY_FUNCTION_NOT_PERMITTED', async () => {
    const otp = await otpFor('doc-rsa');
    const [ok] = await signTogether(chain, { n: 1, label: 'doc-rsa', mech: 'rsa', otp, message: () => 'before suspension' });
    expect(ok!.sig, JSON.stringify(ok)).toBeDefined();
    const spare = await otpFor('doc-ec');
    await emu.setStatus('doc-rsa', 'SUSPENDED');
    await emu.setStatus('doc-ec', 'SUSPENDED');
    try {
      const before = counters();
      const [kept] = await signTogether(chain, { n: 1, label: 'doc-rsa', mech: 'rsa', otp, message: () => 'suspended, kept SAD' });
      expect(kept!.rv, JSON.stringify(kept)).toBe(CKR_KEY_FUNCTION_NOT_PERMITTED);
      const [login] = await signTogether(chain, { n: 1, label: 'doc-ec', mech: 'ecdsa', otp: spare, message: () => 'suspended, new login' });
      expect(login!.step, JSON.stringify(login)).toBe('C_Login(CKU_CONTEXT_SPECIFIC)');
      expect(login!.rv).toBe(CKR_PIN_LOCKED);
      expect(counters().hashes).toBe(before.hashes);
      expect(chain.daemon.stderr()).toMatch(/is SUSPENDED, and only ACTIVE credentials sign/);
    } finally {
      await emu.setStatus('doc-rsa', 'ACTIVE');
      await emu.setStatus('doc-ec', 'ACTIVE');
    }
  }, 60_000);

  it('parallel signers on one credential share one authorisation and are coalesced into fewer signHash calls', async () => {
    const cert = await certOf('doc-rsa');
    const rows: string[] = [];
    for (const n of [1, 4, 16]) {
      const otp = await otpFor('doc-rsa');
      const before = counters();
      const results = await signTogether(chain, { n, label: 'doc-rsa', mech: 'rsa', otp, message: (i) => `parallel ${n} #${i}` });
      results.forEach((r, i) => expect(verifies(cert, 'rsa', `parallel ${n} #${i}`, r), `${JSON.stringify(r)}\n${chain.daemon.stderr()}`).toBe(true));
      const after = counters();
      const calls = after.signHash - before.signHash;
      expect(after.hashes - before.hashes).toBe(n);
      expect(after.authorize - before.authorize, 'one authorize per OTP, shared by every signer').toBe(1);
      rows.push(`${n} signer(s): ${calls} signHash call(s), ${(calls / n).toFixed(2)} per signature`);
      if (n === 16) expect(calls, rows.join('\n')).toBeLessThanOrEqual(8);
    }
    process.stdout.write(`csc coalescing (emulator counters):\n  ${rows.join('\n  ')}\n`);
  }, 180_000);
});
