// Where an installed package finds its native binaries (src/native/loader.ts, node-gyp-build):
// real package trees in temp dirs, the real CLI and daemon started from them, and /proc/<pid>/maps
// to see which addon and module each process really loaded.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { testKey } from '../helpers/token.js';
import {
  LOCAL_ADDON, makePackageTree, mappedFiles, MODULE_FILE, PREBUILT_ADDON, runCli, signOnce, type PackageTree,
} from '../helpers/package-tree.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function tree(opts: Parameters<typeof makePackageTree>[0]): PackageTree {
  const t = makePackageTree(opts);
  cleanup.push(t.remove);
  return t;
}

async function daemonFrom(t: PackageTree): Promise<TestDaemon> {
  const d = await startTestDaemon({ cli: t.cli });
  cleanup.push(d.stop);
  return d;
}

describe('a package installed from prebuilds (no build/)', () => {
  it('starts the daemon with the prebuilt addon and signs through the prebuilt module', async () => {
    const t = tree({ prebuilds: true });
    expect(existsSync(join(t.root, 'build'))).toBe(false);

    const mp = runCli(t, ['module-path']);
    expect(mp.stderr).toBe('');
    expect(mp.status).toBe(0);
    expect(mp.stdout).toBe(join(t.prebuilds, MODULE_FILE) + '\n');

    const d = await daemonFrom(t);
    expect(mappedFiles(d.pid)).toContain(join(t.prebuilds, PREBUILT_ADDON));

    const r = signOnce(mp.stdout.trim(), d.socket, testKey('ec-p256'));
    expect(r.mapped, 'this process loaded the module from prebuilds/').toBe(true);
    expect(r.verified, 'the signature verifies against the certificate').toBe(true);
  });
});

describe('a local build and a prebuild side by side', () => {
  it('the local build wins: module-path and the daemon use build/Release/', async () => {
    const t = tree({ build: true, prebuilds: true });
    const mp = runCli(t, ['module-path']);
    expect(mp.status).toBe(0);
    expect(mp.stdout).toBe(join(t.release, MODULE_FILE) + '\n');

    const d = await daemonFrom(t);
    const maps = mappedFiles(d.pid);
    expect(maps).toContain(join(t.release, LOCAL_ADDON));
    expect(maps.filter((f) => f.startsWith(join(t.root, 'prebuilds')))).toEqual([]);
  });

  it('the module comes from the addon\'s build: a local addon without its module is an error, not a stale prebuilt module', () => {
    const t = tree({ build: true, prebuilds: true });
    rmSync(join(t.release, MODULE_FILE));
    const mp = runCli(t, ['module-path']);
    expect(mp.status).toBe(1);
    expect(mp.stdout).toBe('');
    expect(mp.stderr).toContain(`${join(t.release, MODULE_FILE)} (beside the addon)`);
    expect(mp.stderr).toContain('npm run build');
  });
});

describe('nothing built', () => {
  it('module-path and the daemon fail, listing every place tried and the command that fixes it', async () => {
    const t = tree({});
    const mp = runCli(t, ['module-path']);
    expect(mp.status).toBe(1);
    for (const d of [join(t.root, 'build', 'Release'), join(t.root, 'build', 'Debug'), t.prebuilds]) {
      expect(mp.stderr).toContain(join(d, MODULE_FILE));
    }
    expect(mp.stderr).toContain('`npm run build`');

    // the daemon fails closed without the addon (it checks each client's uid with it)
    await expect(startTestDaemon({ cli: t.cli })).rejects.toThrow(/exited during start-up[\s\S]*addon[\s\S]*not found[\s\S]*npm run build/);
  });
});
