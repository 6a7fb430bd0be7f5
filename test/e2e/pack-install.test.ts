// The package as users install it (issue 13): `npm pack`, then `npm install -g <tarball>` into a
// temporary prefix with no compiler on PATH (cc, c++, gcc, g++, clang, make, cmake removed) and
// no npm_config_build_from_source. Then the installed `signbridge` alone: module-path, doctor, and
// signatures through the installed module and daemon with the pkcs11 backend (a SoftHSMv2 token
// made by the installed package, pkcs11-tool signs, node:crypto verifies) and the stm backend
// (the installed package's own emulator, osslsigncode signs a PE, osslsigncode verify checks it).
// About 60 s here (install ≈ 15 s from npm's cache, RSA/EC keygen, two daemons, the emulator),
// plus `npm run prebuilds` when the prebuilds are missing or stale.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { unsignedPe } from '../helpers/module.js';
import { ROOT, TUPLE, compilerFreePath, ensurePrebuilds, installGlobal, pack, run, userEnv, type Packed } from '../helpers/pack.js';
import { registerEmulatorSecrets, registerTestSecrets } from '../helpers/secrets.js';

let work: string;
let packed: Packed;
let installed: { dir: string; bin: string; out: { status: number | null; stdout: string; stderr: string } };
let path: string;
const children: ChildProcess[] = [];

/** The installed CLI in a user's shell: compiler-free PATH, no npm_* or SIGNBRIDGE_* from the runner. */
function sb(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(installed.bin, args, { env: userEnv({ PATH: path, ...env }), timeoutMs: 60_000 });
}

interface Background {
  p: ChildProcess;
  /** everything it printed so far */
  output(): string;
}

function background(args: string[], env: NodeJS.ProcessEnv): Background {
  const out: string[] = [];
  const p = spawn(installed.bin, args, { env: userEnv({ PATH: path, ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  p.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  children.push(p);
  return { p, output: () => out.join('') };
}

/** Poll until `signbridge keys --json` answers on `socket` (the daemon is up), or fail with its log. */
async function waitForDaemon(socket: string, d: Background): Promise<{ label: string }[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await sb(['keys', '--json'], { SIGNBRIDGE_SOCKET: socket });
    if (r.status === 0) return JSON.parse(r.stdout) as { label: string }[];
    if (d.p.exitCode !== null || Date.now() > deadline) throw new Error(`daemon not answering (exit ${d.p.exitCode}):\n${d.output()}\n${r.stderr}`);
    await new Promise((res) => setTimeout(res, 300));
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-pack-'));
  await ensurePrebuilds();
  packed = pack(join(work, 'tarball'));
  path = compilerFreePath(join(work, 'nocc-bin'));
  installed = await installGlobal(packed.tarball, join(work, 'prefix'), path);
}, 900_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  if (work && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(work, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('holds lib/, the prebuilds, the native sources, docs and the recipes — no tests, no state, no TypeScript sources', () => {
    const top = new Set(packed.files.map((f) => f.split('/')[0]));
    expect([...top].sort()).toEqual(
      ['CMakeLists.txt', 'README.md', 'action.yml', 'binding.gyp', 'docs', 'lib', 'native', 'package.json', 'prebuilds', 'scripts', 'softhsm-config', 'stop'].sort(),
    );
    const under = (dir: string) => packed.files.filter((f) => f.startsWith(dir));
    expect(under('native/').every((f) => /^native\/(common|pkcs11|addon)\//.test(f)), 'only what binding.gyp builds').toBe(true);
    expect(under('scripts/').sort()).toEqual(['scripts/install.mjs', 'scripts/system-requirements.json']);
    expect(packed.files.filter((f) => /(^|\/)(test|state|src)\//.test(f) && !f.startsWith('prebuilds/'))).toEqual([]);
    expect(packed.files).toContain('lib/cli/index.js');
    expect(packed.files).toContain('native/pkcs11/entry.cpp');
    for (const f of ['signbridge.node', 'libsignbridge-pkcs11.so', 'node_modules/pkcs11js/build/Release/pkcs11.node', 'node_modules/graphene-pk11/build/cjs/index.js', 'node_modules/tslib/tslib.js']) {
      expect(packed.files, f).toContain(`prebuilds/${TUPLE}/${f}`);
    }
  });
});

describe('the prebuilt PKCS#11 binding', () => {
  it('pkcs11.node needs no glibc newer than 2.28 and no libstdc++ newer than GCC 8 (GLIBCXX_3.4.25), naming any symbol that does', () => {
    const file = join(ROOT, 'prebuilds', TUPLE, 'node_modules', 'pkcs11js', 'build', 'Release', 'pkcs11.node');
    const r = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
    expect(r.status, `objdump -T ${file}: ${r.stderr} (apt-get install -y binutils)`).toBe(0);
    const newer = (v: string, base: number[]) => {
      const a = v.split('.').map(Number);
      for (let i = 0; i < Math.max(a.length, base.length); i++) if ((a[i] ?? 0) !== (base[i] ?? 0)) return (a[i] ?? 0) > (base[i] ?? 0);
      return false;
    };
    const above: string[] = [];
    for (const m of r.stdout.matchAll(/\((GLIBC|GLIBCXX)_([0-9.]+)\)\s+(\S+)/g)) {
      if (newer(m[2]!, m[1] === 'GLIBC' ? [2, 28] : [3, 4, 25])) above.push(`${m[3]}@${m[1]}_${m[2]}`);
    }
    expect(above).toEqual([]);
  });
});

describe('npm install -g of the tarball with no compiler on PATH', () => {
  it('installs, compiling nothing: the prebuilds are used and no build/ directory appears', () => {
    expect(installed.out.status, `${installed.out.stdout}\n${installed.out.stderr}`).toBe(0);
    expect(`${installed.out.stdout}${installed.out.stderr}`).toMatch(/signbridge: using the prebuilt binaries in .*prebuilds\/.*: nothing to compile/);
    expect(existsSync(join(installed.dir, 'build'))).toBe(false);
  });

  it('`signbridge module-path` prints the shipped module; doctor finds the module, the addon and the prebuilt PKCS#11 binding', async () => {
    const r = await sb(['module-path']);
    expect(r.status, r.stderr).toBe(0);
    expect(realpathSync(r.stdout.trim())).toBe(realpathSync(join(installed.dir, 'prebuilds', TUPLE, 'libsignbridge-pkcs11.so')));
    const d = await sb(['doctor', '--json'], { XDG_RUNTIME_DIR: join(work, 'no-runtime') });
    const checks = (JSON.parse(d.stdout) as { checks: { status: string; what: string; detail: string }[] }).checks;
    const by = (what: string) => checks.find((c) => c.what === what);
    expect(by('PKCS#11 module')?.status).toBe('ok');
    expect(by('native addon')?.status).toBe('ok');
    expect(by('PKCS#11 binding')?.status).toBe('ok');
    expect(by('PKCS#11 binding')?.detail).toContain(join('prebuilds', TUPLE, 'node_modules'));
  });

  it('signs through the installed module and daemon with the pkcs11 backend (SoftHSMv2); node:crypto verifies', async () => {
    const state = join(work, 'token');
    const t = await run('node', [join(installed.dir, 'softhsm-config', 'create-token.mjs'), '--state-dir', state, '--label', 'packed', '--keys', 'rsa:2048,ec:P-256'], {
      env: userEnv({ PATH: path }),
    });
    expect(t.status, t.stderr).toBe(0);
    const token = JSON.parse(t.stdout) as { softhsmConf: string; library: string; pinFile: string; keys: { label: string; idHex: string; certPath: string }[] };
    registerTestSecrets({ pin: readFileSync(token.pinFile, 'utf8') });
    const socket = join(work, 'p11-run', 's.sock');
    const env = { SOFTHSM2_CONF: token.softhsmConf };
    const d = background(['daemon', '--backend', 'pkcs11', '--pkcs11-library', token.library, '--token-label', 'packed', '--pin-file', token.pinFile, '--socket', socket], env);
    await waitForDaemon(socket, d);

    const doc = await sb(['doctor', '--socket', socket]);
    expect(doc.status, doc.stdout).toBe(0);
    expect(doc.stdout).toMatch(/^ok +daemon: .* answers on /m);

    const module = (await sb(['module-path'])).stdout.trim();
    const data = join(work, 'data.bin');
    writeFileSync(data, 'signed through a packed signbridge\n');
    for (const [label, mech, dsa] of [['rsa-2048', 'SHA256-RSA-PKCS', undefined], ['ec-p256', 'ECDSA-SHA256', 'ieee-p1363']] as const) {
      const key = token.keys.find((k) => k.label === label)!;
      const sig = join(work, `${label}.sig`);
      const r = await run('pkcs11-tool', ['--module', module, '--token-label', 'packed', '--sign', '--id', key.idHex, '-m', mech, '--input-file', data, '--output-file', sig], {
        env: userEnv({ PATH: path, SIGNBRIDGE_SOCKET: socket }),
      });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const pub = createPublicKey(readFileSync(key.certPath));
      const ok = cryptoVerify('sha256', readFileSync(data), dsa ? { key: pub, dsaEncoding: dsa } : pub, readFileSync(sig));
      expect(ok, `${label} signature verifies`).toBe(true);
    }
    d.p.kill('SIGTERM');
  });

  it('signs a PE through the installed daemon with the stm backend against the installed `signbridge emulator`; osslsigncode verify checks it', async () => {
    const emuState = join(work, 'emu');
    const emu = background(['emulator', '--state-dir', emuState], {});
    const envSh = join(emuState, 'env.sh');
    const deadline = Date.now() + 90_000;
    while (!existsSync(envSh) || !/SM_HOST=/.test(readFileSync(envSh, 'utf8'))) {
      if (emu.p.exitCode !== null || Date.now() > deadline) throw new Error(`emulator did not start:\n${emu.output()}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const env: Record<string, string> = {};
    for (const m of readFileSync(envSh, 'utf8').matchAll(/^export ([A-Z_0-9]+)=(?:'([^']*)'|"([^"]*)"|(\S*))$/gm)) env[m[1]!] = m[2] ?? m[3] ?? m[4] ?? '';
    expect(env.SM_HOST).toMatch(/^https:\/\//);
    registerEmulatorSecrets(env);

    const socket = join(work, 'stm-run', 's.sock');
    const d = background(['daemon', '--backend', 'stm', '--socket', socket], env);
    const keys = await waitForDaemon(socket, d);
    expect(keys.map((k) => k.label)).toContain('codesign-rsa');

    const module = (await sb(['module-path'])).stdout.trim();
    const out = join(work, 'signed-stm.exe');
    const s = await osslsigncodeSign({ module, tokenLabel: 'signbridge-stm', keyLabel: 'codesign-rsa', input: unsignedPe(), output: out, env: userEnv({ PATH: path, SIGNBRIDGE_SOCKET: socket }) });
    expect(s.status, `${s.stdout}\n${s.stderr}\n${d.output()}`).toBe(0);
    const v = parseVerify(await osslsigncodeVerify(out, env.SIGNBRIDGE_STM_CA_FILE!));
    expect(v.ok).toBe(true);
    expect(v.signer).toContain('CN=codesign-rsa');
    d.p.kill('SIGTERM');
    emu.p.kill('SIGTERM');
  });
});
