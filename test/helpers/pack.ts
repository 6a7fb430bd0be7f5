// The package as a user gets it: prebuilds for this machine (made by `npm run prebuilds` when
// missing or older than the native sources), `npm pack`, and `npm install -g` of the tarball into a
// temporary prefix with the compilers off PATH. Shared by pack-install.test.ts and ci-action.test.ts.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { packageRoot } from '../../src/native/loader.js';

export const ROOT = packageRoot();
export const TUPLE = `${process.platform}-${process.arch}`;
/** What must not be reachable for "no compiler": C/C++ compilers, linkers' drivers, make, cmake. */
const COMPILERS = /^(cc|c\+\+|gcc|g\+\+|cpp|clang|clang\+\+|make|gmake|cmake|ld)(-[0-9.]+)?$|-(gcc|g\+\+|cc|c\+\+|cpp)(-[0-9.]+)?$|^clang/;

/** A PATH of symlinks to every command on this PATH except the compilers (and the dir itself). */
export function compilerFreePath(dir: string, path = process.env.PATH ?? ''): string {
  mkdirSync(dir, { recursive: true });
  for (const d of path.split(delimiter)) {
    if (!d || !existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (COMPILERS.test(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(d, name), join(dir, name));
    }
  }
  return dir;
}

/** The environment of a user's shell: no npm_* variables from the test runner (npm_config_build_from_source among them). */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('SIGNBRIDGE_')) env[k] = v;
  return { ...env, ...extra };
}

function newest(paths: string[]): number {
  let t = 0;
  for (const p of paths) {
    const st = statSync(p);
    if (st.isDirectory()) t = Math.max(t, newest(readdirSync(p).map((n) => join(p, n))));
    else t = Math.max(t, st.mtimeMs);
  }
  return t;
}

/** The files a prebuild for this machine must have (scripts/prebuilds.mjs, scripts/prebuild-pkcs11js.mjs). */
export function prebuildFiles(root = ROOT): string[] {
  const dir = join(root, 'prebuilds', TUPLE);
  return [join(dir, 'signbridge.node'), join(dir, 'libsignbridge-pkcs11.so'), join(dir, 'node_modules', 'pkcs11js', 'build', 'Release', 'pkcs11.node')];
}

/** Make the prebuilds unless present and newer than every native source (one maker at a time). */
export async function ensurePrebuilds(): Promise<void> {
  const lock = join(ROOT, 'prebuilds', '.test-lock');
  mkdirSync(join(ROOT, 'prebuilds'), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    const sources = newest(['native/common', 'native/pkcs11', 'native/addon', 'binding.gyp'].map((p) => join(ROOT, p)));
    const files = prebuildFiles();
    if (files.every((f) => existsSync(f) && statSync(f).mtimeMs >= sources)) return;
    // this machine's tuple only (scripts/prebuilds.mjs takes tuples); postprebuilds adds the binding
    const r = await run('npm', ['run', 'prebuilds', '--', TUPLE], { cwd: ROOT, env: process.env, timeoutMs: 900_000 });
    if (r.status !== 0) throw new Error(`npm run prebuilds failed (${r.status}):\n${r.stderr.slice(-4000)}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface Packed {
  tarball: string;
  files: string[];
  size: number;
  unpackedSize: number;
}

/** `npm pack` of the working tree (scripts skipped: the tests run on a built tree). */
export function pack(dest: string): Packed {
  mkdirSync(dest, { recursive: true });
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], { cwd: ROOT, encoding: 'utf8', env: userEnv(), maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout) as [{ filename: string; files: { path: string }[]; size: number; unpackedSize: number }];
  return { tarball: join(dest, info.filename), files: info.files.map((f) => f.path).sort(), size: info.size, unpackedSize: info.unpackedSize };
}

export interface RunOut {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run without a shell, capturing output (async, so the test's own servers keep answering). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunOut> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    p.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: -1, stdout, stderr: `${stderr}${e.message}` });
    });
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** `npm install -g <tarball>` into `prefix` with `path` (compiler-free) as PATH; returns the installed package dir. */
export async function installGlobal(tarball: string, prefix: string, path: string): Promise<{ dir: string; bin: string; out: RunOut }> {
  const out = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', tarball], {
    env: userEnv({ PATH: path }),
    timeoutMs: 600_000,
  });
  return { dir: join(prefix, 'lib', 'node_modules', 'signbridge'), bin: join(prefix, 'bin', 'signbridge'), out };
}
