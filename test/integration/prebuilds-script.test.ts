// `npm run prebuilds` (scripts/prebuilds.mjs) in a copy of the package with a local build: it must
// write prebuilds/<platform>-<arch>/ (the addon under the name node-gyp-build finds, the module beside
// it) without touching build/ — node-gyp's `rebuild` used to wipe cmake-js's build directory, after
// which the daemon could not start. Then the prebuilds alone must start the daemon and sign.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestDaemon } from '../helpers/daemon.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testKey } from '../helpers/token.js';
import {
  LOCAL_ADDON, makePackageTree, mappedFiles, MODULE_FILE, PREBUILT_ADDON, runCli, signOnce, TUPLE, type PackageTree,
} from '../helpers/package-tree.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** relative path → sha256 of every file under dir */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

async function daemonFrom(t: PackageTree) {
  const d = await startTestDaemon({ cli: t.cli });
  cleanup.push(d.stop);
  return d;
}

describe('npm run prebuilds', () => {
  // a full node-gyp build of the module and the addon, then the win32-x64 cross-build: minutes on a 2-core machine
  it('writes the addon and the module to prebuilds/<platform>-<arch>/ and leaves the local build working', async () => {
    const t = makePackageTree({ build: true, sources: true });
    cleanup.push(t.remove);
    const build = join(t.root, 'build');
    // cmake-js's build directory holds more than Release/; this stands for it
    writeFileSync(join(build, 'CMakeCache.txt'), '# cmake-js state\n');
    const before = snapshot(build);

    // async: a minute of spawnSync would starve the vitest worker's RPC
    // this host's tuple and the cross-built win32-x64: linux-arm64 is checked by glibc-baseline and arm64-qemu
    const r = await runCommand('npm', ['run', 'prebuilds', '--', TUPLE, 'win32-x64'], { cwd: t.root, timeoutMs: 1_100_000 });
    expect(r.status, describeRun(r)).toBe(0);

    // win32-x64 too, cross-built (docs/windows.md): the addon, and the module exporting only C_*
    const win = join(t.root, 'prebuilds', 'win32-x64');
    expect(readdirSync(win).sort()).toEqual(['signbridge-ksp.dll', 'signbridge-pkcs11.dll', 'signbridge-windows.exe', 'signbridge.node']);
    // the KSP exports its one entry point only (docs/windows-signtool.md)
    const ksp = spawnSync('x86_64-w64-mingw32-objdump', ['-p', join(win, 'signbridge-ksp.dll')], { encoding: 'utf8' });
    expect([...ksp.stdout.matchAll(/^\s+\[\s*\d+\]\s+(\S+)$/gm)].map((m) => m[1]!), ksp.stdout).toEqual(['GetKeyStorageInterface']);
    const pe = spawnSync('x86_64-w64-mingw32-objdump', ['-p', join(win, 'signbridge-pkcs11.dll')], { encoding: 'utf8' });
    const exported = [...pe.stdout.matchAll(/^\s+\[\s*\d+\]\s+(\S+)$/gm)].map((m) => m[1]!);
    expect(exported).toContain('C_GetFunctionList');
    expect(exported.filter((n) => !n.startsWith('C_')), pe.stdout).toEqual([]);

    expect(snapshot(build), 'build/ is untouched').toEqual(before);
    // node_modules/: the prebuilt PKCS#11 binding (postprebuilds, scripts/prebuild-pkcs11js.mjs)
    expect(readdirSync(t.prebuilds).sort()).toEqual([MODULE_FILE, PREBUILT_ADDON, 'node_modules'].sort());
    for (const f of [MODULE_FILE, PREBUILT_ADDON]) expect(statSync(join(t.prebuilds, f)).size).toBeGreaterThan(0);
    // stripped (--strip-all keeps the dynamic symbols), and still the module's entry point
    const nm = spawnSync('nm', ['-D', '--defined-only', join(t.prebuilds, MODULE_FILE)], { encoding: 'utf8' });
    expect(nm.stdout).toMatch(/ T C_GetFunctionList$/m);
    expect(spawnSync('nm', [join(t.prebuilds, MODULE_FILE)], { encoding: 'utf8' }).stderr).toContain('no symbols');

    // the local build still wins, and the daemon starts from it
    expect(runCli(t, ['module-path']).stdout).toBe(join(t.release, MODULE_FILE) + '\n');
    const local = await daemonFrom(t);
    expect(mappedFiles(local.pid)).toContain(join(t.release, LOCAL_ADDON));
    await local.stop();

    // what the script made is a working package by itself
    rmSync(build, { recursive: true });
    const mp = runCli(t, ['module-path']);
    expect(mp.stdout).toBe(join(t.prebuilds, MODULE_FILE) + '\n');
    const shipped = await daemonFrom(t);
    expect(mappedFiles(shipped.pid)).toContain(join(t.prebuilds, PREBUILT_ADDON));
    const s = signOnce(mp.stdout.trim(), shipped.socket, testKey('ec-p256'));
    expect(s.mapped).toBe(true);
    expect(s.verified).toBe(true);
  }, 1_200_000);
});
