// The systemd units of docs/service/: `systemd-analyze verify` accepts them without a single
// warning; the user unit's ExecStart, run as systemd would run it (specifiers expanded, the
// RuntimeDirectory and StateDirectory created with the unit's modes), starts a daemon whose
// socket is the default path, which `signbridge doctor` names as the user unit's; and doctor finds
// the system unit's socket when the default path has none. About 10 s.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceSocket } from '../../src/cli/service-socket.js';
import { cliPath } from '../../src/demo/daemon-process.js';
import { ROOT, run } from '../helpers/pack.js';
import { testToken } from '../helpers/token.js';

const USER_UNIT = join(ROOT, 'docs', 'service', 'signbridge.service');
const SYSTEM_UNIT = join(ROOT, 'docs', 'service', 'signbridge-system.service');

let work: string;
let daemon: ChildProcess | undefined;
let fake: Server | undefined;

function requireSystemdAnalyze(): void {
  const r = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('systemd-analyze is missing: apt-get install -y systemd');
}

/** [Service] key → values (a key may repeat). */
function serviceSection(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(unit, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) section = s[1]!;
    else if (section === 'Service') {
      const i = line.indexOf('=');
      const k = line.slice(0, i);
      out.set(k, [...(out.get(k) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sb-units-'));
});

afterAll(() => {
  daemon?.kill('SIGTERM');
  fake?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('docs/service units', () => {
  it('systemd-analyze verify accepts the system unit and the user unit without any warning', async () => {
    requireSystemdAnalyze();
    const runtime = join(work, 'verify-runtime');
    mkdirSync(runtime, { mode: 0o700 });
    for (const [args, unit] of [[['verify'], SYSTEM_UNIT], [['--user', 'verify'], USER_UNIT]] as const) {
      const r = await run('systemd-analyze', [...args, unit], { env: { ...process.env, XDG_RUNTIME_DIR: runtime }, cwd: work });
      expect(r.status, `${unit}: ${r.stderr}`).toBe(0);
      // verify exits 0 on unknown keys and bad values, printing them: any output is a failure
      expect(`${r.stdout}${r.stderr}`.trim(), unit).toBe('');
    }
  });

  it('both units keep the socket directory private: RuntimeDirectory=signbridge, mode 0700; the socket lives in it', () => {
    for (const unit of [USER_UNIT, SYSTEM_UNIT]) {
      const s = serviceSection(unit);
      expect(s.get('RuntimeDirectory'), unit).toEqual(['signbridge']);
      expect(s.get('RuntimeDirectoryMode'), unit).toEqual(['0700']);
      expect(s.get('ExecStart')![0], unit).toMatch(/--socket (%t|\/run)\/signbridge\/signbridge\.sock/);
    }
  });

  it("the user unit's ExecStart, run as systemd would, serves the default socket; doctor names the user unit and passes", async () => {
    const t = testToken();
    const runtime = join(work, 'runtime');
    const config = join(work, 'config');
    const state = join(work, 'state');
    const bin = join(work, 'bin');
    for (const d of [runtime, config, state, bin]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const s = serviceSection(USER_UNIT);
    // what systemd does before ExecStart: the unit's directories with the unit's modes
    mkdirSync(join(runtime, s.get('RuntimeDirectory')![0]!), { mode: Number.parseInt(s.get('RuntimeDirectoryMode')![0]!, 8) });
    mkdirSync(join(state, s.get('StateDirectory')![0]!), { mode: Number.parseInt(s.get('StateDirectoryMode')![0]!, 8) });
    mkdirSync(join(config, 'signbridge'));
    writeFileSync(
      join(config, 'signbridge', 'daemon.json'),
      JSON.stringify({ backend: 'pkcs11', 'pkcs11-library': t.library, 'token-label': t.tokenLabel, 'pin-file': t.pinFile }),
    );
    // `signbridge` on the PATH, as after `npm install -g`
    writeFileSync(join(bin, 'signbridge'), `#!/bin/sh\nexec "${process.execPath}" "${cliPath()}" "$@"\n`);
    chmodSync(join(bin, 'signbridge'), 0o755);
    const exec = s.get('ExecStart')![0]!.replaceAll('%t', runtime).replaceAll('%E', config).replaceAll('%S', state);
    const [cmd, ...args] = exec.split(/\s+/);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, XDG_RUNTIME_DIR: runtime, SOFTHSM2_CONF: t.softhsmConf };
    delete env.SIGNBRIDGE_SOCKET;
    let out = '';
    daemon = spawn(cmd!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));

    const deadline = Date.now() + 30_000;
    let r = await run(join(bin, 'signbridge'), ['doctor'], { env });
    while (r.status !== 0 && Date.now() < deadline && daemon.exitCode === null) {
      await new Promise((res) => setTimeout(res, 300));
      r = await run(join(bin, 'signbridge'), ['doctor'], { env });
    }
    expect(r.status, `${r.stdout}\n--- daemon\n${out}`).toBe(0);
    expect(r.stdout).toContain(`ok    service socket: ${join(runtime, 'signbridge', 'signbridge.sock')} is where the systemd user unit listens`);
    expect(r.stdout).toMatch(/^ok +socket directory: .* \(mode 700, yours\)$/m);
    expect(r.stdout).toMatch(/^ok +daemon: .* answers on /m);
  });

  it("doctor turns to the system unit's socket when the default path has none, and says to export SIGNBRIDGE_SOCKET", async () => {
    const sys = join(work, 'run-signbridge', 'signbridge.sock');
    mkdirSync(join(work, 'run-signbridge'), { mode: 0o700 });
    fake = createServer();
    await new Promise<void>((res) => fake!.listen(sys, res));
    const missing = join(work, 'nothing', 'signbridge.sock');
    expect(serviceSocket(missing, false, {}, sys)).toEqual({ socket: sys, unit: 'system', switched: true });
    // never when the socket was named (--socket, SIGNBRIDGE_SOCKET), nor when the default is there
    expect(serviceSocket(missing, true, {}, sys)).toEqual({ socket: missing });
    expect(serviceSocket(sys, false, {}, sys)).toEqual({ socket: sys, unit: 'system' });
  });
});
