// The module side of the hardening issue (docs/hardening/module.md): fork(), a daemon killed in
// the middle of a signature and restarted, and the optional autostart. Real daemons on real
// sockets over the run's SoftHSMv2 token; every signature is verified with node:crypto.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { constants, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../../src/demo/daemon-process.js';
import { packageRoot } from '../../src/native/loader.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { signbridgeModule } from '../helpers/module.js';
import { testToken } from '../helpers/token.js';

const token = testToken();
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const certs = Object.fromEntries(token.keys.map((k) => [k.label, new X509Certificate(k.certPem).publicKey]));

/** node:crypto's verdict on "sig <key> <who> <data-hex> <sig-hex>" (SHA256_RSA_PKCS / ECDSA_SHA256). */
function verifiesLine(line: string): boolean {
  const [, key, , dataHex, sigHex] = line.split(' ');
  const data = Buffer.from(dataHex!, 'hex');
  const sig = Buffer.from(sigHex!, 'hex');
  if (key === 'ec-p256') return cryptoVerify('sha256', data, { key: certs['ec-p256']!, dsaEncoding: 'ieee-p1363' }, sig);
  return cryptoVerify('sha256', data, { key: certs['rsa-3072']!, padding: constants.RSA_PKCS1_PADDING }, sig);
}

function compile(source: string, out: string, extra: string[] = []): void {
  const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
  try {
    execFileSync('cc', ['-std=c11', '-D_GNU_SOURCE', '-Wall', '-I', include, source, '-o', out, '-ldl', ...extra], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`cannot compile ${source} (apt-get install -y gcc): ${String(e)}`);
  }
}

describe('fork()', () => {
  let dir: string;
  let harness: string;
  let daemon: TestDaemon;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-fork-'));
    harness = join(dir, 'fork');
    compile(join(here, '..', 'native', 'fork.c'), harness, ['-pthread']);
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the child gets CKR_CRYPTOKI_NOT_INITIALIZED until C_Initialize, then signs; the parent keeps signing; forks during a sign never deadlock', () => {
    const FORKS = 12;
    const r = spawnSync(harness, [signbridgeModule(), String(FORKS)], {
      env: { ...process.env, SIGNBRIDGE_SOCKET: daemon.socket },
      encoding: 'utf8',
      timeout: 45_000, // a deadlocked child costs the harness 10 s, then it stops forking
    });
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('FAIL')), r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    const ok = lines.filter((l) => l.startsWith('ok '));
    // the first child checks 9 calls before C_Initialize, every later child C_GetSlotList
    const before = ok.filter((l) => l.startsWith('ok child:') && (l.includes('before C_Initialize') || l.includes("(parent's")));
    expect(before.length).toBe(9 + FORKS);
    expect(ok.filter((l) => l === 'ok child: C_Initialize in the child').length).toBe(1 + FORKS);
    const sigs = lines.filter((l) => l.startsWith('sig '));
    const by = (who: string) => sigs.filter((l) => l.split(' ')[2] === who);
    expect(by('child').length).toBe(2 * (1 + FORKS)); // RSA + ECDSA in every child
    expect(by('parent').length).toBeGreaterThanOrEqual(4 + 4); // before, during ×2, after, end + thread's first 4
    for (const l of sigs) expect(verifiesLine(l), l.slice(0, 80)).toBe(true);
    const stat = Object.fromEntries(lines.filter((l) => l.startsWith('stat ')).map((l) => [l.split(' ')[1], Number(l.split(' ')[2])]));
    expect(stat['thread-signatures']).toBeGreaterThan(0);
    expect(stat['hammer-calls']).toBeGreaterThan(0);
    console.log(`fork: ${FORKS} forks during signing (${stat['forks-mid-sign']} while the thread was inside C_Sign), ` +
      `${stat['thread-signatures']} thread signatures, ${stat['hammer-calls']} lock-hammer calls, ${sigs.length} signatures verified`);
  });
});

describe('the daemon dies during a sign, and comes back', () => {
  let mod: ModuleFixture;
  let p11: pkcs11js.PKCS11;
  let session: Buffer;
  let key: Buffer;

  beforeAll(async () => {
    mod = await openModule();
    ({ p11, session } = mod);
    key = mod.privateKey('rsa-3072');
  });
  afterAll(() => mod?.close());

  const signSync = (msg: Buffer): Buffer => {
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, key);
    return p11.C_Sign(session, msg, Buffer.alloc(512));
  };
  const rsaOk = (msg: Buffer, sig: Buffer) => cryptoVerify('sha256', msg, certs['rsa-3072']!, sig);

  it('a C_Sign waiting on a stopped daemon returns CKR_DEVICE_ERROR promptly when it is killed; the next C_Sign in the same process works once it is back', async () => {
    const m1 = Buffer.from('before the kill');
    expect(rsaOk(m1, signSync(m1))).toBe(true);

    // The daemon stops answering (SIGSTOP): the sign request sits in its socket.
    process.kill(mod.daemon.pid, 'SIGSTOP');
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, key);
    let settled = false;
    const pending = p11.C_SignAsync(session, Buffer.from('during the kill'), Buffer.alloc(512)).then(
      () => ({ ok: true as const, at: performance.now() }),
      (e: unknown) => ({ ok: false as const, at: performance.now(), e }),
    ).finally(() => { settled = true; });
    await new Promise((r) => setTimeout(r, 500));
    expect(settled, 'C_Sign must wait while the daemon is stopped').toBe(false);
    const killedAt = performance.now();
    process.kill(mod.daemon.pid, 'SIGKILL');
    const res = await pending;
    const ms = res.at - killedAt;
    expect(res.ok).toBe(false);
    expect(res.ok ? 0 : (res.e as pkcs11js.Pkcs11Error).code).toBe(pkcs11js.CKR_DEVICE_ERROR);
    expect(ms).toBeLessThan(1000);
    console.log(`daemon killed during C_Sign: CKR_DEVICE_ERROR ${ms.toFixed(1)} ms after SIGKILL`);

    // No daemon: fast CKR_DEVICE_ERROR, not a hang (the stale socket file is still there).
    const t0 = performance.now();
    let rv = 0;
    try {
      signSync(Buffer.from('no daemon'));
    } catch (e) {
      rv = (e as pkcs11js.Pkcs11Error).code;
    }
    expect(rv).toBe(pkcs11js.CKR_DEVICE_ERROR);
    expect(performance.now() - t0).toBeLessThan(1000);

    // Back on the same socket: the same session signs again, no C_Finalize/C_Initialize.
    await mod.daemon.restart();
    const m2 = Buffer.from('after the restart');
    expect(rsaOk(m2, signSync(m2))).toBe(true);
    const m3 = Buffer.from('and again');
    expect(rsaOk(m3, signSync(m3))).toBe(true);
  });
});

describe('autostart (SIGNBRIDGE_AUTOSTART)', () => {
  let dir: string;
  const started: number[] = [];

  // One consumer process: pkcs11js → C_Initialize → C_GetSlotList; prints its result as JSON.
  const CONSUMER = `
    const pkcs11js = require('pkcs11js');
    const p = new pkcs11js.PKCS11();
    p.load(process.argv[1]);
    p.C_Initialize();
    const t0 = Date.now();
    let out;
    try { out = { slots: p.C_GetSlotList(true).length, ms: Date.now() - t0 }; }
    catch (e) { out = { rv: e.code, ms: Date.now() - t0 }; }
    p.C_Finalize();
    console.log(JSON.stringify(out));`;

  function consumer(env: NodeJS.ProcessEnv): Promise<{ out: { slots?: number; rv?: number; ms: number }; stderr: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['-e', CONSUMER, signbridgeModule()], {
        cwd: packageRoot(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('exit', (code) => {
        try {
          resolve({ out: JSON.parse(stdout.trim().split('\n').pop()!), stderr });
        } catch {
          reject(new Error(`consumer exited ${code}: ${stdout}\n${stderr}`));
        }
      });
    });
  }

  /** Live processes whose environment says SIGNBRIDGE_SOCKET=<socket> (the daemons we started). */
  function daemonsOn(socket: string): number[] {
    const pids: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const env = readFileSync(`/proc/${d}/environ`, 'latin1').split('\0');
        const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
        if (/\) [ZX] /.test(stat)) continue;
        if (env.includes(`SIGNBRIDGE_SOCKET=${socket}`) && readFileSync(`/proc/${d}/cmdline`, 'latin1').includes('daemon')) pids.push(Number(d));
      } catch {
        /* gone, or not ours */
      }
    }
    return pids;
  }

  async function stopAll(pids: number[]): Promise<void> {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    const end = Date.now() + 5000;
    while (pids.some((p) => { try { process.kill(p, 0); return !/\) [ZX] /.test(readFileSync(`/proc/${p}/stat`, 'latin1')); } catch { return false; } }) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* stopped */
      }
    }
  }

  const autostartLine = (extra = '') =>
    `'${process.execPath}' '${cliPath()}' daemon --backend pkcs11 --pkcs11-library '${token.library}' ` +
    `--token-label '${token.tokenLabel}' --pin-file '${token.pinFile}'${extra}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sba-'));
  });
  afterAll(async () => {
    await stopAll(started);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is off by default: no daemon, no files, CKR_FUNCTION_FAILED at once', async () => {
    const socket = join(dir, 'off', 's.sock');
    const env = { SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_AUTOSTART: '' };
    const { out } = await consumer(env);
    expect(out.rv).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(out.ms).toBeLessThan(1000);
    expect(existsSync(dirname(socket))).toBe(false);
    expect(daemonsOn(socket)).toEqual([]);
  });

  it('4 processes at once with no daemon: exactly one daemon starts, all 4 get the slot list', async () => {
    const socket = join(dir, 'run', 's.sock'); // run/ does not exist yet: the module creates it 0700
    const env = {
      SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1', SIGNBRIDGE_AUTOSTART: autostartLine(), SOFTHSM2_CONF: token.softhsmConf,
    };
    const results = await Promise.all([0, 1, 2, 3].map(() => consumer(env)));
    const pids = daemonsOn(socket);
    started.push(...pids);
    for (const r of results) expect(r.out, r.stderr).toEqual({ slots: 1, ms: expect.any(Number) });
    const starts = results.flatMap((r) => r.stderr.split('\n').filter((l) => l.includes('autostart: started')));
    expect(starts.length, results.map((r) => r.stderr).join('\n')).toBe(1);
    expect(pids.length).toBe(1);
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    expect(statSync(`${socket}.log`).mode & 0o777).toBe(0o600);
    // the daemon is detached: its own session, not in any consumer's process group
    const fields = (pid: number | 'self') => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
    const [d, self] = [fields(pids[0]!), fields('self')]; // state ppid pgrp session tty_nr …
    expect(d[3]).not.toBe(self[3]); // a session of its own (setsid)
    expect(d[4]).toBe('0'); // no controlling terminal
    const log = readFileSync(`${socket}.log`, 'utf8');
    expect(log).not.toMatch(/in use|SIGNBRIDGE_ERR_DAEMON_RUNNING/);
    console.log(`autostart: 4 processes, 1 daemon (pid ${pids[0]}), slot list in ${results.map((r) => r.out.ms).join('/')} ms`);
    // a later process finds it running and starts nothing
    const again = await consumer(env);
    expect(again.out.slots).toBe(1);
    expect(again.stderr).not.toMatch(/autostart: started/);
    await stopAll(pids);
    expect(daemonsOn(socket)).toEqual([]);
  });

  it('a daemon that cannot start: a bounded CKR_FUNCTION_FAILED that points at its log', async () => {
    const socket = join(dir, 'bad', 's.sock');
    const env = {
      SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1', SOFTHSM2_CONF: token.softhsmConf,
      SIGNBRIDGE_AUTOSTART: `'${process.execPath}' '${cliPath()}' daemon --backend pkcs11 --pkcs11-library /nonexistent.so --token-label x --pin-file '${token.pinFile}'`,
    };
    const { out, stderr } = await consumer(env);
    expect(out.rv).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(out.ms).toBeLessThan(15_000);
    expect(stderr).toMatch(/exited during start-up; see .*s\.sock\.log/);
    expect(readFileSync(`${socket}.log`, 'utf8').length).toBeGreaterThan(0);
    expect(daemonsOn(socket)).toEqual([]);

    const missing = await consumer({ ...env, SIGNBRIDGE_AUTOSTART: 'no-such-signbridge-command daemon' });
    expect(missing.out.rv).toBe(pkcs11js.CKR_FUNCTION_FAILED);
    expect(missing.stderr).toMatch(/no-such-signbridge-command is not an executable/);
  });
});
