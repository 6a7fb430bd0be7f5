// README "Security model", who may answer: the module talks only to a daemon run by its own user or
// by root. Where XDG_RUNTIME_DIR is unset the default socket is /tmp/signbridge-<uid>/, and /tmp
// is writable by everyone: another user can create that directory first and listen there. These
// tests play that attack with real users (runuser): the listener runs as `daemon` (uid 1), the
// tool as `nobody` (uid 65534), and the listener counts every connection and byte it receives.
// Refused means: the tool gets the "no daemon" code, stderr has one line naming the socket, the
// owner and what to do, and the listener received nothing (no HELLO, no client name, no hash).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { requireCommand } from '../helpers/consumer-tools.js';
import { compileHarness, sanitizeBuild, sanitizerReports, waitForPrebuild } from '../helpers/sanitize-build.js';
import { MECHANISMS, publicKey, verifies } from '../helpers/signing.js';
import { testKey, testToken } from '../helpers/token.js';

const RUNUSER = '/usr/sbin/runuser';
const TOOL_USER = 'nobody';
const TOOL_UID = 65534;
const ATTACKER = 'daemon'; // uid 1 on Debian
const ATTACKER_UID = 1;
const DEFAULT_DIR = `/tmp/signbridge-${TOOL_UID}`;
const CKR_FUNCTION_FAILED = '0x6';

// Runs as the attacker: make `dir` with `mode`, listen on `sock` (0777), print "ready"; on any
// stdin input print what it received ({connections, bytes}) and exit.
const LISTENER = `
const net = require('node:net'), fs = require('node:fs');
const [dir, mode, sock] = process.argv.slice(1);
fs.mkdirSync(dir, { recursive: true });
fs.chmodSync(dir, parseInt(mode, 8));
try { fs.unlinkSync(sock); } catch {}
let connections = 0, bytes = 0;
const srv = net.createServer((s) => { connections++; s.on('data', (d) => (bytes += d.length)); s.on('error', () => {}); });
srv.listen(sock, () => { fs.chmodSync(sock, 0o777); process.stdout.write('ready\\n'); });
process.stdin.on('data', () => setTimeout(() => { process.stdout.write(JSON.stringify({ connections, bytes }) + '\\n'); process.exit(0); }, 200));
`;

interface Listener {
  stop(): Promise<{ connections: number; bytes: number }>;
}

function startListener(dir: string, mode: string, sock: string): Promise<Listener> {
  const p: ChildProcessWithoutNullStreams = spawn(RUNUSER, ['-u', ATTACKER, '--', process.execPath, '-e', LISTENER, dir, mode, sock]);
  let out = '';
  let err = '';
  let ready = false;
  p.stderr.on('data', (d: Buffer) => (err += d));
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('exit', (code) => reject(new Error(`listener exited ${code} before it was ready: ${err}`)));
    p.stdout.on('data', (d: Buffer) => {
      out += d;
      if (ready || !out.startsWith('ready\n')) return;
      ready = true;
      p.removeAllListeners('exit');
      resolve({
        stop: () =>
          new Promise((res, rej) => {
            p.on('exit', () => {
              try {
                res(JSON.parse(out.slice('ready\n'.length).trim()) as { connections: number; bytes: number });
              } catch {
                rej(new Error(`listener output: ${out} ${err}`));
              }
            });
            p.stdin.write('stop\n');
          }),
      });
    });
  });
}

/** Runs `cmd` as the tool user with exactly `env` (no XDG_RUNTIME_DIR, no SIGNBRIDGE_SOCKET unless given). */
function runAsTool(cmd: string, args: string[], env: Record<string, string> = {}, extraEnv: Record<string, string> = {}) {
  const envArgs = Object.entries({ PATH: '/usr/bin:/bin', HOME: '/', ...env, ...extraEnv }).map(([k, v]) => `${k}=${v}`);
  const t0 = Date.now();
  const r = spawnSync(RUNUSER, ['-u', TOOL_USER, '--', '/usr/bin/env', '-i', ...envArgs, cmd, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { ...r, ms: Date.now() - t0, notices: r.stderr.split('\n').filter((l) => l.startsWith('signbridge: ')) };
}

let work: string; // 0755: readable by the tool user (the modules, the harness)
let scratch: string; // 0777: where the tool user writes
let module: string;
let asanModule: string;
let harness: string;
let asanHarness: string;

beforeAll(async () => {
  try {
    accessSync(RUNUSER, constants.X_OK);
  } catch {
    throw new Error(`${RUNUSER} is missing: run as root \`apt-get install -y util-linux\``);
  }
  if (process.getuid!() !== 0) throw new Error('these tests switch users with runuser: run the test suite as root (as CI does)');
  requireCommand('pkcs11-tool', 'opensc');
  work = mkdtempSync(join(tmpdir(), 'sb-trust-'));
  chmodSync(work, 0o755);
  scratch = join(work, 'scratch');
  spawnSync('mkdir', ['-m', '1777', scratch]);
  module = join(work, 'libsignbridge-pkcs11.so');
  copyFileSync(signbridgeModule(), module);
  await waitForPrebuild();
  const build = sanitizeBuild(['signbridge-pkcs11']);
  asanModule = join(work, 'libsignbridge-pkcs11-asan.so');
  copyFileSync(build.module, asanModule);
  harness = join(work, 'trust');
  asanHarness = join(work, 'trust-asan');
  compileHarness('trust.c', harness, { sanitize: false });
  compileHarness('trust.c', asanHarness, { sanitize: true });
  for (const f of [module, asanModule, harness, asanHarness]) chmodSync(f, 0o755);
}, 240_000);

afterAll(() => {
  rmSync(DEFAULT_DIR, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a directory another user created at the default path', () => {
  beforeAll(() => rmSync(DEFAULT_DIR, { recursive: true, force: true }));
  afterAll(() => rmSync(DEFAULT_DIR, { recursive: true, force: true }));

  it('pkcs11-tool -L: refused before connecting; one stderr line names the directory, its owner and what to do', async () => {
    const l = await startListener(DEFAULT_DIR, '0777', join(DEFAULT_DIR, 'signbridge.sock'));
    const r = runAsTool('pkcs11-tool', ['--module', module, '-L']);
    const got = await l.stop();
    expect(r.status, r.stderr).not.toBe(0);
    expect(got).toEqual({ connections: 0, bytes: 0 });
    expect(r.notices, r.stderr).toHaveLength(1);
    const line = r.notices[0]!;
    expect(line).toContain(`refusing the socket directory ${DEFAULT_DIR}`);
    expect(line).toContain(`owned by uid ${ATTACKER_UID} (${ATTACKER})`);
    expect(line).toContain(`not by you (uid ${TOOL_UID} (${TOOL_USER})) or root`);
    expect(line).toContain('nothing was sent');
    expect(line).toContain('signbridge daemon');
    console.log(`the refusal as a user sees it:\n${line}`);
  });

  it('the same directory made 0755 by its owner is still refused (not ours, not root)', async () => {
    const l = await startListener(DEFAULT_DIR, '0755', join(DEFAULT_DIR, 'signbridge.sock'));
    const r = runAsTool(harness, [module]);
    const got = await l.stop();
    expect(got).toEqual({ connections: 0, bytes: 0 });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1); // two failing calls, one line
  });

  it('a group/world-writable directory of the tool user itself is refused too', () => {
    rmSync(DEFAULT_DIR, { recursive: true, force: true });
    spawnSync(RUNUSER, ['-u', TOOL_USER, '--', 'mkdir', '-m', '0777', DEFAULT_DIR]);
    chmodSync(DEFAULT_DIR, 0o777);
    const r = runAsTool(harness, [module]);
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
    expect(r.notices[0]).toContain('group or others may write to it (mode 0777)');
    rmSync(DEFAULT_DIR, { recursive: true, force: true });
  });

  it('SIGNBRIDGE_AUTOSTART starts nothing there and does not wait', async () => {
    const marker = join(scratch, 'autostarted');
    const l = await startListener(DEFAULT_DIR, '0777', join(DEFAULT_DIR, 'signbridge.sock'));
    // also with the socket gone: "no daemon" must not make the module autostart into that directory
    spawnSync(RUNUSER, ['-u', ATTACKER, '--', 'rm', '-f', join(DEFAULT_DIR, 'signbridge.sock')]);
    const r = runAsTool(harness, [module], { SIGNBRIDGE_AUTOSTART: `/usr/bin/touch ${marker}`, SIGNBRIDGE_AUTOSTART_TIMEOUT_MS: '20000' });
    const got = await l.stop();
    expect(got).toEqual({ connections: 0, bytes: 0 });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(existsSync(marker)).toBe(false);
    expect(r.ms).toBeLessThan(10_000); // no wait for a daemon (the autostart bound is 20 s)
    expect(r.notices, r.stderr).toHaveLength(1);
  });

  it('the ASan/UBSan module refuses it the same way, with no sanitizer report', async () => {
    const l = await startListener(DEFAULT_DIR, '0777', join(DEFAULT_DIR, 'signbridge.sock'));
    const r = runAsTool(asanHarness, [asanModule], {}, { ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1' });
    const got = await l.stop();
    expect(sanitizerReports(r.stderr), r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(got).toEqual({ connections: 0, bytes: 0 });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
  });
});

describe('a listener of another user on an explicit SIGNBRIDGE_SOCKET', () => {
  let dir: string;
  let sock: string;
  beforeAll(() => {
    dir = join(scratch, 'foreign');
    sock = join(dir, 's.sock');
  });

  it('is refused after connect with nothing sent (SO_PEERCRED); the line names the socket and its owner', async () => {
    const l = await startListener(dir, '0755', sock);
    const r = runAsTool(harness, [module], { SIGNBRIDGE_SOCKET: sock });
    const got = await l.stop();
    expect(got.connections).toBeGreaterThan(0); // it did connect: the peer check is what refused
    expect(got.bytes).toBe(0);
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
    expect(r.notices[0]).toContain(`refusing the daemon at ${sock}: it runs as uid ${ATTACKER_UID} (${ATTACKER})`);
    expect(r.notices[0]).toContain('nothing was sent');
  });

  it('SIGNBRIDGE_QUIET=1 silences the line (the code stays); SIGNBRIDGE_DEBUG adds its own lines', async () => {
    const l = await startListener(dir, '0755', sock);
    const quiet = runAsTool(harness, [module], { SIGNBRIDGE_SOCKET: sock, SIGNBRIDGE_QUIET: '1' });
    const debug = runAsTool(harness, [module], { SIGNBRIDGE_SOCKET: sock, SIGNBRIDGE_DEBUG: '1' });
    const got = await l.stop();
    expect(got.bytes).toBe(0);
    expect(quiet.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(quiet.stderr).toBe('');
    expect(debug.notices.length, debug.stderr).toBeGreaterThan(1);
    expect(debug.notices.filter((l) => l.includes('refusing the daemon')).length).toBeGreaterThan(1);
  });

  it('the ASan/UBSan module refuses it the same way, with no sanitizer report', async () => {
    const l = await startListener(dir, '0755', sock);
    const r = runAsTool(asanHarness, [asanModule], { SIGNBRIDGE_SOCKET: sock }, { ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1' });
    const got = await l.stop();
    expect(sanitizerReports(r.stderr), r.stderr).toEqual([]);
    expect(got.bytes).toBe(0);
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
  });
});

describe('a daemon run as root serves a non-root tool', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startTestDaemon({ extraArgs: ['--allow-uid', String(TOOL_UID)] });
    // The daemon's 0700 directory keeps other users out by default; a system service would
    // publish its socket for its build user. Open the path for this test only.
    chmodSync(dirname(d.env.SIGNBRIDGE_SOCKET!), 0o711);
    chmodSync(d.env.SIGNBRIDGE_SOCKET!, 0o666);
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('pkcs11-tool as nobody lists the token and signs; node:crypto verifies the signature', () => {
    const env = { SIGNBRIDGE_SOCKET: d.env.SIGNBRIDGE_SOCKET! };
    const list = runAsTool('pkcs11-tool', ['--module', module, '-L'], env);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain(testToken().tokenLabel);
    expect(list.notices).toEqual([]);

    const key = testKey('ec-p256');
    const message = Buffer.from(`signed by ${TOOL_USER} through a root daemon\n`);
    const input = join(scratch, 'digest.bin');
    const output = join(scratch, 'sig.bin');
    writeFileSync(input, createHash('sha256').update(message).digest());
    chmodSync(input, 0o644);
    const sign = runAsTool('pkcs11-tool', ['--module', module, '--sign', '-m', 'ECDSA', '--id', key.idHex, '-i', input, '-o', output], env);
    expect(sign.status, sign.stderr).toBe(0);
    const ecdsa = MECHANISMS.find((m) => m.family === 'ec' && m.input === 'hash')!;
    expect(verifies(publicKey(key), ecdsa, 'sha256', message, readFileSync(output))).toBe(true);
  });

  it('the ASan/UBSan module accepts the root daemon too', () => {
    const r = runAsTool(asanHarness, [asanModule], { SIGNBRIDGE_SOCKET: d.env.SIGNBRIDGE_SOCKET! }, { ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1' });
    expect(sanitizerReports(r.stderr), r.stderr).toEqual([]);
    expect(r.stdout).toMatch(/^slots 0x0 [1-9]/m);
    expect(r.notices).toEqual([]);
  });
});

describe('a root daemon that does not let this user in', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startTestDaemon();
    chmodSync(dirname(d.env.SIGNBRIDGE_SOCKET!), 0o711);
    chmodSync(d.env.SIGNBRIDGE_SOCKET!, 0o666);
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('the tool gets one line: the daemon closed the connection, run as its user or start it with --allow-uid', async () => {
    const r = runAsTool(harness, [module], { SIGNBRIDGE_SOCKET: d.env.SIGNBRIDGE_SOCKET! });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
    expect(r.notices[0]).toContain(`the signbridge daemon at ${d.env.SIGNBRIDGE_SOCKET!} closed the connection without answering HELLO`);
    expect(r.notices[0]).toContain(`start the daemon with --allow-uid ${TOOL_UID}`);
  });
});
