// protocol.md "LOGIN", daemon side, against a real daemon (CLI child process, SoftHSMv2 token) over
// its real socket: --client-secret-file sets CKF_LOGIN_REQUIRED, SIGN needs a LOGIN on the same
// connection, wrong PINs are CKR_PIN_INCORRECT and then CKR_PIN_LOCKED per uid, and a readable
// secret file or a secret in argv stops the daemon at start. Signatures are checked with node:crypto.
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { cliPath } from '../../src/demo/daemon-process.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { CKU_USER, type SignRequest } from '../../src/ipc/protocol.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { waitForLog } from '../helpers/log-lines.js';
import { testKey, testToken } from '../helpers/token.js';

const SECRET = 'e2e-client-secret-41c7be0f';
const work = mkdtempSync(join(tmpdir(), 'sb-cs-'));
const secretFile = join(work, 'client-secret');
writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });

const msg = Buffer.from('signed after LOGIN');
const digest = createHash('sha256').update(msg).digest();
let d: TestDaemon;
let handle: Buffer;
const open: DaemonClient[] = [];

async function client(sock = d.env.SIGNBRIDGE_SOCKET!): Promise<DaemonClient> {
  const c = await DaemonClient.connect({ socketPath: sock });
  open.push(c);
  return c;
}
const login = (c: DaemonClient, pin: string, userType = CKU_USER) => c.request('LOGIN', { slot_id: 0, user_type: BigInt(userType), pin: Buffer.from(pin) });
const signReq = (): SignRequest => ({ key_handle: handle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: digest });
const rvOf = (p: Promise<unknown>) => p.then(() => 0, (e: { ckr?: number }) => e.ckr ?? -1);

beforeAll(async () => {
  d = await startTestDaemon({ extraArgs: ['--client-secret-file', secretFile, '--log-level', 'debug'] });
  const c = await client();
  const inv = await c.inventory();
  handle = inv.slots[0]!.objects.find((o) => o.key_handle.length > 0 && attr(o, C.CKA_LABEL)?.toString() === 'ec-p256')!.key_handle;
});
afterAll(async () => {
  for (const c of open) c.close();
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('a daemon with --client-secret-file', () => {
  it('marks every token CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED', async () => {
    const inv = await (await client()).inventory();
    for (const s of inv.slots) {
      expect(s.token_flags & C.CKF_LOGIN_REQUIRED, s.token_label).toBe(C.CKF_LOGIN_REQUIRED);
      expect(s.token_flags & C.CKF_USER_PIN_INITIALIZED).toBe(C.CKF_USER_PIN_INITIALIZED);
    }
  });

  it('answers SIGN without LOGIN with CKR_USER_NOT_LOGGED_IN, and a sentence that says to log in', async () => {
    const c = await client();
    const e = await c.sign(signReq()).then(() => undefined, (x: Error & { ckr: number }) => x);
    expect(e?.ckr).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(e?.message).toMatch(/C_Login/);
  });

  it('LOGIN with the secret authenticates that connection only; the signature verifies', async () => {
    const c = await client();
    await expect(rvOf(login(c, SECRET, 0))).resolves.toBe(0x103); // CKU_SO: CKR_USER_TYPE_INVALID
    await login(c, SECRET);
    const sig = await c.sign(signReq());
    const pub = new X509Certificate(testKey('ec-p256').certPem).publicKey;
    expect(verify('sha256', msg, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    // LOGIN is per connection (protocol.md): a second connection still has to log in
    const other = await client();
    await expect(rvOf(other.sign(signReq()))).resolves.toBe(C.CKR_USER_NOT_LOGGED_IN);
  });

  it('a wrong PIN is CKR_PIN_INCORRECT and drops an earlier login on that connection', async () => {
    const c = await client();
    await login(c, SECRET);
    await expect(rvOf(login(c, 'not-the-secret'))).resolves.toBe(C.CKR_PIN_INCORRECT);
    await expect(rvOf(c.sign(signReq()))).resolves.toBe(C.CKR_USER_NOT_LOGGED_IN);
    await login(c, SECRET); // one failure is far from the limit
    expect((await c.sign(signReq())).length).toBe(64);
  });
});

describe('rate limit (its own daemon: the lock holds for the whole uid for 60 s)', () => {
  it('after 5 wrong PINs within 60 s: CKR_PIN_LOCKED, even for the right secret; one log line per failure, no PIN in the log', async () => {
    const ld = await startTestDaemon({ extraArgs: ['--client-secret-file', secretFile] });
    try {
      const c = await client(ld.env.SIGNBRIDGE_SOCKET);
      const rvs: number[] = [];
      for (let i = 0; i < 5; i++) rvs.push(await rvOf(login(c, `wrong-pin-${i}`)));
      expect(rvs).toEqual(Array(5).fill(C.CKR_PIN_INCORRECT));
      const e = await login(c, SECRET).then(() => undefined, (x: Error & { ckr: number }) => x);
      expect(e?.ckr).toBe(C.CKR_PIN_LOCKED);
      expect(e?.message).toMatch(/wait \d+ s/);
      // a new connection of the same uid is locked too
      await expect(rvOf(login(await client(ld.env.SIGNBRIDGE_SOCKET), SECRET))).resolves.toBe(C.CKR_PIN_LOCKED);
      const log = await waitForLog(ld.logFile, /LOGIN refused: too many wrong PINs/g, 2);
      expect(log.match(/LOGIN refused: wrong client secret/g)).toHaveLength(5);
      expect(log.match(/LOGIN refused: too many wrong PINs/g)).toHaveLength(2);
      for (const s of [SECRET, 'wrong-pin-0', 'wrong-pin-4']) expect(log).not.toContain(s);
      // the failure lines carry who tried (peer uid/pid)
      const line = JSON.parse(log.split('\n').find((l) => l.includes('wrong client secret'))!) as Record<string, unknown>;
      expect(line).toMatchObject({ peerUid: process.getuid!(), peerPid: process.pid, rv: 'CKR_PIN_INCORRECT' });
    } finally {
      await ld.stop();
    }
  });
});

describe('without a client secret', () => {
  it('LOGIN with any PIN answers rv 0 and tokens do not require a login', async () => {
    const nd = await startTestDaemon();
    try {
      const c = await client(nd.env.SIGNBRIDGE_SOCKET);
      await login(c, 'anything at all');
      const inv = await c.inventory();
      expect(inv.slots[0]!.token_flags & C.CKF_LOGIN_REQUIRED).toBe(0);
      expect((await c.sign(signReq())).length).toBe(64);
    } finally {
      await nd.stop();
    }
  });
});

describe('start-up refusals (exit 2, the message says what to do, never the secret)', () => {
  const t = testToken();
  const run = (args: string[]) =>
    spawnSync(process.execPath, [cliPath(), 'daemon', '--pkcs11-library', t.library, '--token-label', t.tokenLabel, '--pin-file', t.pinFile, '--socket', join(work, 'x', 's.sock'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, SOFTHSM2_CONF: t.softhsmConf },
      timeout: 30_000,
    });

  it('a group-readable client secret file', () => {
    const f = join(work, 'readable-secret');
    writeFileSync(f, SECRET, { mode: 0o644 });
    const r = run(['--client-secret-file', f]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`chmod 600 ${f}`);
    expect(r.stderr).not.toContain(SECRET);
  });

  it('a client secret on the command line', () => {
    const r = run(['--client-secret', 'argv-secret-do-not-echo']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--client-secret is not accepted.*--client-secret-file/);
    expect(r.stderr).not.toContain('argv-secret-do-not-echo');
  });
});
