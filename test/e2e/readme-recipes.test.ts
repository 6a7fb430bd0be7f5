// The README's "3. Sign" recipes, run exactly as written: every ```sh block of that section is
// executed by bash (set -euo pipefail) in a scratch directory, with `signbridge` on PATH and a
// daemon serving a SoftHSMv2 token named "my-token" (rsa-3072 id 01, ec-p256 id 02, ed25519 id 03)
// — the names the README uses. The verifiers inside the recipes (osslsigncode verify, jarsigner
// -verify, openssl … -verify) must succeed, so a recipe that stops working fails this test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, cliPath, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { packageRoot } from '../../src/native/loader.js';
import { createToken } from '../../src/softhsm/token-setup.js';
import { waitForDaemon } from '../../src/ipc/client.js';
import { requiredFile } from '../../src/demo/requirements.js';

const root = packageRoot();

/** The ```sh blocks between "### 3. Sign" and the next "## " heading, with the text before each. */
function recipeBlocks(): Array<{ title: string; script: string }> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('### 3. Sign');
  const end = readme.indexOf('\n## ', start);
  expect(start, 'README has a "### 3. Sign" section').toBeGreaterThan(0);
  const section = readme.slice(start, end);
  const out: Array<{ title: string; script: string }> = [];
  const re = /\*\*([^*]+)\*\*[\s\S]*?```sh\n([\s\S]*?)```/g;
  for (let m = re.exec(section); m; m = re.exec(section)) out.push({ title: m[1]!.trim(), script: m[2]! });
  return out;
}

let dir: string;
let work: string;
let daemon: RunningDaemon;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-readme-'));
  const token = await createToken({
    stateDir: join(dir, 'token'),
    tokenLabel: 'my-token',
    keys: [
      { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '01' },
      { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '02' },
      { type: 'ed25519', label: 'ed25519', idHex: '03' },
    ],
  });
  daemon = await startDaemon({
    socket: join(dir, 'run', 's.sock'),
    softhsmConf: token.softhsmConf,
    library: token.library,
    tokenLabel: token.tokenLabel,
    pinFile: token.pinFile,
    logFile: join(dir, 'daemon.log'),
  });
  // what a user has after `npm install -g signbridge`: the command on PATH
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'signbridge'), `#!/bin/sh\nexec "${process.execPath}" "${cliPath()}" "$@"\n`);
  chmodSync(join(bin, 'signbridge'), 0o755);
  // the files the recipes name
  work = join(dir, 'work');
  mkdirSync(work);
  copyFileSync(requiredFile('win32-loader'), join(work, 'app.exe'));
  for (const k of token.keys) copyFileSync(k.certPath, join(work, `${k.label}.pem`));
  writeFileSync(join(work, 'file'), 'a release artifact\n'.repeat(500));
  symlinkSync(join(root, 'examples'), join(work, 'examples'));
  writeFileSync(join(work, 'Hello.txt'), 'hello from a jar\n');
  const jar = spawnSync('jar', ['cf', 'app.jar', 'Hello.txt'], { cwd: work, encoding: 'utf8' });
  if (jar.error) throw new Error('`jar` not found: apt-get install -y openjdk-17-jdk-headless');
  expect(jar.status, jar.stderr).toBe(0);
  env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, SIGNBRIDGE_SOCKET: daemon.socket };
  delete env.PKCS11_MODULE_PATH;
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('README recipes, exactly as written', () => {
  it('has a recipe for every consumer', () => {
    expect(recipeBlocks().map((b) => b.title.split(' ')[0])).toEqual(['osslsigncode', 'jarsigner', 'openssl', 'pkcs11-tool', 'Node']);
  });

  for (const [i, name] of ['osslsigncode', 'jarsigner / keytool', 'openssl', 'pkcs11-tool', 'Node apps'].entries()) {
    it(`${name}: every command succeeds, verifiers included`, () => {
      const block = recipeBlocks()[i]!;
      const r = spawnSync('bash', ['-c', `set -euo pipefail\n${block.script}`], { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
      const out = `${r.stdout}\n${r.stderr}`;
      expect(r.status, `--- ${block.title}\n${block.script}\n--- output\n${out}`).toBe(0);
      if (name === 'osslsigncode') expect(out).toMatch(/^Signature verification: ok$/m);
      if (name === 'jarsigner / keytool') {
        expect(out).toMatch(/rsa-3072, PrivateKeyEntry/);
        expect(out).toMatch(/^jar verified\.$/m);
      }
      if (name === 'openssl') {
        // the provider form, then the engine form: two signatures verified, one self-signed certificate
        expect(out.match(/^Verified OK$/gm)).toHaveLength(2);
        expect(out).toMatch(/^self\.pem: OK$/m);
      }
      if (name === 'pkcs11-tool') {
        expect(out).toMatch(/token label\s*: my-token/);
        expect(out).toMatch(/^Verified OK$/m);
      }
      if (name === 'Node apps') expect(out).not.toMatch(/fail/i);
    });
  }
});

/** The ```sh blocks of "## Remote signing", in order (shell 1, 2, 3). */
function remoteBlocks(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('## Remote signing');
  expect(start, 'README has a "## Remote signing" section').toBeGreaterThan(0);
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe('README remote signing recipe (emulator → daemon --backend stm → osslsigncode), exactly as written', () => {
  it('shell 1 and shell 2 start the emulator and the daemon; shell 3 signs and verifies', async () => {
    const blocks = remoteBlocks();
    expect(blocks).toHaveLength(3);
    // a fresh HOME (~/stm-emu) and XDG_RUNTIME_DIR (the default socket) — nothing from the other tests
    const home = join(dir, 'home');
    const runtime = join(dir, 'xdg');
    mkdirSync(home);
    mkdirSync(runtime, { mode: 0o700 });
    const shellEnv: NodeJS.ProcessEnv = { ...env, HOME: home, XDG_RUNTIME_DIR: runtime };
    delete shellEnv.SIGNBRIDGE_SOCKET;
    for (const k of Object.keys(shellEnv)) if (k.startsWith('SM_')) delete shellEnv[k];
    const procs: ChildProcess[] = [];
    let logs = '';
    const background = (script: string): void => {
      const p = spawn('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: work, env: shellEnv, detached: true });
      p.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
      procs.push(p);
    };
    try {
      background(blocks[0]!);
      const envSh = join(home, 'stm-emu', 'env.sh');
      for (let i = 0; i < 300 && !existsSync(envSh); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(envSh), `emulator did not write env.sh\n${logs}`).toBe(true);
      background(blocks[1]!);
      await waitForDaemon(join(runtime, 'signbridge', 'signbridge.sock'), 30_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${logs}`);
      });
      const r = spawnSync('bash', ['-c', `set -euo pipefail\n${blocks[2]}`], { cwd: work, env: shellEnv, encoding: 'utf8', timeout: 120_000 });
      const out = `${r.stdout}\n${r.stderr}`;
      expect(r.status, `${blocks[2]}\n--- output\n${out}\n--- emulator and daemon\n${logs}`).toBe(0);
      expect(out).toMatch(/codesign-rsa/);
      expect(out).toMatch(/^Signature verification: ok$/m);
    } finally {
      for (const p of procs) {
        try {
          process.kill(-p.pid!, 'SIGTERM'); // the whole process group: bash and what it started
        } catch {
          /* already gone */
        }
      }
      await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
    }
  });
});
