// Binaries for other targets, built once into the test cache (test-cache.ts): the prebuilds of
// `npm run prebuilds` per <platform>-<arch>, pkcs11js cross-built for arm64 (the daemon imports
// it), C harnesses for arm64, and how to run arm64 programs here (qemu-user with Debian's
// aarch64 cross libraries as the sysroot).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeRun, runCommand } from './run.js';
import { cached, contentKey, requireFile, requireTool, testCache } from './test-cache.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const MODULE_FILE = 'libsignbridge-pkcs11.so';
export const PREBUILT_ADDON = 'signbridge.node';
export const APT_CROSS = 'apt-get install -y g++-aarch64-linux-gnu';
export const APT_QEMU = 'apt-get install -y qemu-user';
/** Debian's aarch64 cross sysroot (libc6-arm64-cross, libstdc++6-arm64-cross: with g++-aarch64-linux-gnu) */
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

/** What `npm run prebuilds` reads (scripts/prebuilds.mjs STAGED) and the script itself. */
const PREBUILD_INPUTS = ['binding.gyp', 'package.json', 'native/common', 'native/pkcs11', 'native/addon', 'scripts/prebuilds.mjs'];

/** npm's bundled node-gyp, which `npm run` puts on PATH (prebuildify looks for it there). */
export function npmNodeGypBin(): string {
  const npm = requireTool('npm', 'install Node.js 20 with npm');
  const dir = join(dirname(realpathSync(npm)), 'node-gyp-bin');
  return requireFile(dir, 'use the npm that comes with Node.js (it bundles node-gyp)');
}

/** prebuilds/<tuple>/ made by `npm run prebuilds -- --out <cache entry> <tuple>` from this checkout. */
export async function prebuildsFor(tuple: 'linux-x64' | 'linux-arm64'): Promise<string> {
  if (tuple === 'linux-arm64' && process.arch !== 'arm64') requireTool('aarch64-linux-gnu-g++', APT_CROSS);
  const key = contentKey(root, PREBUILD_INPUTS, process.version);
  const entry = join(testCache(), `prebuilds-${tuple}-${key}`);
  const dir = join(entry, 'prebuilds', tuple);
  await cached(
    entry,
    () => existsSync(join(dir, MODULE_FILE)) && existsSync(join(dir, PREBUILT_ADDON)),
    async (out) => {
      // a node-gyp build of the module and the addon: 1–3 minutes on a busy 2-core machine
      const r = await runCommand('npm', ['run', 'prebuilds', '--', '--out', out, tuple], { cwd: root, timeoutMs: 600_000 });
      if (r.status !== 0) throw new Error(`npm run prebuilds -- ${tuple} failed:\n${describeRun(r)}`);
    },
  );
  return dir;
}

/** node_modules/pkcs11js rebuilt for arm64 (node-gyp --arch=arm64 with the aarch64 cross g++). */
export async function pkcs11jsArm64(): Promise<string> {
  requireTool('aarch64-linux-gnu-g++', APT_CROSS);
  const src = join(root, 'node_modules', 'pkcs11js');
  const version = (JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string }).version;
  const entry = join(testCache(), `pkcs11js-${version}-linux-arm64`);
  const built = join(entry, 'build', 'Release', 'pkcs11.node');
  await cached(
    entry,
    () => existsSync(built),
    async (dir) => {
      cpSync(src, dir, { recursive: true, filter: (p) => !p.startsWith(join(src, 'build')) });
      const gyp = npmNodeGypBin();
      const env = { ...process.env, PATH: `${gyp}:${process.env.PATH}`, CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++' };
      const r = await runCommand('node-gyp', ['rebuild', '--arch=arm64'], { cwd: dir, env, timeoutMs: 600_000 });
      if (r.status !== 0) {
        rmSync(join(dir, 'build'), { recursive: true, force: true });
        throw new Error(`node-gyp rebuild --arch=arm64 of pkcs11js failed:\n${describeRun(r)}`);
      }
    },
  );
  return entry;
}

/** Compile a C harness from test/native/ for aarch64 (Debian's cross gcc). */
export function compileArm64Harness(source: string, out: string): void {
  requireTool('aarch64-linux-gnu-gcc', APT_CROSS);
  const include = join(root, 'node_modules', 'pkcs11js', 'includes', 'pkcs11');
  const r = spawnSync('aarch64-linux-gnu-gcc', ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-Wall', '-O1', '-I', include, join(root, 'test', 'native', source), '-o', out, '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot compile ${source} for aarch64 (${APT_CROSS}):\n${r.stderr ?? r.error}`);
}

/** argv prefix that runs an aarch64 Linux program here: nothing on arm64, else qemu-user. */
export function arm64Runner(): string[] {
  if (process.arch === 'arm64') return [];
  requireTool('qemu-aarch64', APT_QEMU);
  requireFile(join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1'), APT_CROSS);
  return ['qemu-aarch64', '-L', ARM64_SYSROOT];
}
