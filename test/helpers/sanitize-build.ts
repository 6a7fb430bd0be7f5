// The ASan/UBSan build of native/ (native/fuzz/CMakeLists.txt) that the hostile-input tests share:
// the libFuzzer target, the corpus harness and the sanitized PKCS#11 module. Built with clang into
// one directory under the OS temp dir (never into build/), serialized across vitest workers by a
// lock directory, incremental across runs. A missing tool fails with the apt-get line.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const APT_SANITIZE = 'apt-get install -y clang libclang-rt-14-dev cmake make';
export const APT_VALGRIND = 'apt-get install -y valgrind';

const clangArch: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

function tool(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** clang's runtime directory (ASan, UBSan, libFuzzer); throws with the apt-get line when any part is missing. */
export function clangRuntime(): { dir: string; asanSo: string } {
  const arch = clangArch[process.arch] ?? process.arch;
  if (!tool('clang', ['--version']) || !tool('clang++', ['--version']))
    throw new Error(`clang is not installed; the sanitizer and fuzz tests need it. Run as root: ${APT_SANITIZE}`);
  const fuzzer = tool('clang', [`-print-file-name=libclang_rt.fuzzer-${arch}.a`]);
  const asanSo = tool('clang', [`-print-file-name=libclang_rt.asan-${arch}.so`]);
  if (!fuzzer || !existsSync(fuzzer) || !asanSo || !existsSync(asanSo))
    throw new Error(`clang's sanitizer/libFuzzer runtime is missing (libclang_rt.fuzzer-${arch}.a). Run as root: ${APT_SANITIZE}`);
  if (!tool('cmake', ['--version'])) throw new Error(`cmake is not installed. Run as root: ${APT_SANITIZE}`);
  return { dir: dirname(asanSo), asanSo };
}

export function pkcs11Include(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
}

/** One build directory per checkout (so two clones never share one). */
export const sanitizeDir = join(tmpdir(), `signbridge-sanitize-${createHash('sha256').update(root).digest('hex').slice(0, 12)}`);

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs fn while holding `${sanitizeDir}.lock` (mkdir is atomic; a lock whose owner died is taken over). */
/** One try at `${sanitizeDir}.lock` (mkdir is atomic); a lock whose owner died is taken over. */
function tryLock(): boolean {
  const lock = `${sanitizeDir}.lock`;
  try {
    mkdirSync(lock);
    writeFileSync(join(lock, 'pid'), String(process.pid));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (!lockHeld()) rmSync(lock, { recursive: true, force: true });
    return false;
  }
}

/** Runs fn while holding `${sanitizeDir}.lock`. */
function withLock<T>(fn: () => T, timeoutMs = 300_000): T {
  const deadline = Date.now() + timeoutMs;
  while (!tryLock()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the sanitizer build lock ${sanitizeDir}.lock`);
    sleep(200);
  }
  try {
    return fn();
  } finally {
    rmSync(`${sanitizeDir}.lock`, { recursive: true, force: true });
  }
}

export interface SanitizeBuild {
  dir: string;
  /** <dir>/Release/<name> */
  bin(name: string): string;
  module: string;
  /** seconds spent configuring and building in this call (0 when up to date) */
  seconds: number;
}

/** Configure (once) and build the given targets of native/fuzz/CMakeLists.txt with clang + ASan/UBSan. */
export function sanitizeBuild(targets: string[]): SanitizeBuild {
  clangRuntime();
  const t0 = Date.now();
  withLock(() => {
    const env = { ...process.env, CC: 'clang', CXX: 'clang++' };
    if (!existsSync(join(sanitizeDir, 'CMakeCache.txt'))) {
      const c = spawnSync('cmake', ['-S', join(root, 'native', 'fuzz'), '-B', sanitizeDir, '-DSIGNBRIDGE_SANITIZE=ON', '-DSIGNBRIDGE_FUZZ=ON'], {
        env, encoding: 'utf8', cwd: root,
      });
      if (c.status !== 0) {
        rmSync(sanitizeDir, { recursive: true, force: true });
        throw new Error(`configuring the sanitizer build failed (${APT_SANITIZE}):\n${c.stdout}\n${c.stderr}`);
      }
    }
    const b = spawnSync('cmake', ['--build', sanitizeDir, '-j2', '--target', ...targets], { env, encoding: 'utf8', cwd: root, maxBuffer: 64 << 20 });
    if (b.status !== 0) throw new Error(`building ${targets.join(', ')} with ASan/UBSan failed:\n${b.stdout.slice(-4000)}\n${b.stderr.slice(-8000)}`);
  });
  const bin = (name: string) => join(sanitizeDir, 'Release', name);
  return { dir: sanitizeDir, bin, module: bin('libsignbridge-pkcs11.so'), seconds: (Date.now() - t0) / 1000 };
}

/** Every target the tests build with ASan/UBSan. */
export const SANITIZE_TARGETS = ['signbridge-pkcs11', 'sb_codec_test', 'sb_unit_test', 'sb_fuzz_codec', 'sb_codec_harness'];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-12000)));
    p.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-12000)));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, out }));
  });
}

/**
 * The whole sanitizer build, asynchronously, started by the global setup while the tests run: a
 * cold build takes a minute or more, and a test worker blocked that long in sanitizeBuild's
 * spawnSync misses vitest's RPC heartbeat ("Timeout calling onTaskUpdate"). The tests that need it
 * await waitForPrebuild() (the other tests go on meanwhile); their sanitizeBuild is then an
 * up-to-date check. Without clang it does nothing: those tests fail with the apt line.
 */
export async function prebuildSanitized(): Promise<void> {
  try {
    clangRuntime();
  } catch {
    return;
  }
  // the same lock as sanitizeBuild: test workers wait for it with waitForPrebuild()
  while (!tryLock()) await new Promise((r) => setTimeout(r, 200));
  try {
    const env = { ...process.env, CC: 'clang', CXX: 'clang++' };
    if (!existsSync(join(sanitizeDir, 'CMakeCache.txt'))) {
      const c = await run('cmake', ['-S', join(root, 'native', 'fuzz'), '-B', sanitizeDir, '-DSIGNBRIDGE_SANITIZE=ON', '-DSIGNBRIDGE_FUZZ=ON'], env);
      if (c.status !== 0) {
        rmSync(sanitizeDir, { recursive: true, force: true });
        throw new Error(`configuring the sanitizer build failed (${APT_SANITIZE}):\n${c.out}`);
      }
    }
    const b = await run('cmake', ['--build', sanitizeDir, '-j2', '--target', ...SANITIZE_TARGETS], env);
    if (b.status !== 0) throw new Error(`building the ASan/UBSan targets failed:\n${b.out}`);
  } finally {
    rmSync(`${sanitizeDir}.lock`, { recursive: true, force: true });
  }
}

/** Whether a live process holds the sanitizer build lock. */
function lockHeld(): boolean {
  let owner = 0;
  try {
    owner = Number(readFileSync(join(`${sanitizeDir}.lock`, 'pid'), 'utf8'));
  } catch {
    return existsSync(`${sanitizeDir}.lock`); // being created or removed right now
  }
  return owner > 0 && pidAlive(owner);
}

/**
 * Waits, without blocking the worker, while the global setup's prebuildSanitized() runs; call it
 * before sanitizeBuild() so the build it does is only an up-to-date check.
 */
export async function waitForPrebuild(timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (lockHeld() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
}

/**
 * Compile a C harness from test/native/ into `outDir`. With `sanitize`, it is built with ASan/UBSan
 * and clang's *shared* runtime — the one the sanitized module links — so the runtime is loaded
 * first, before dlopen brings in the module.
 */
export function compileHarness(source: string, out: string, opts: { sanitize: boolean }): void {
  const common = ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-Wall', '-g', '-I', pkcs11Include(), source.startsWith('/') ? source : join(root, 'test', 'native', source), '-o', out, '-ldl'];
  let r;
  if (opts.sanitize) {
    const rt = clangRuntime();
    r = spawnSync('clang', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-shared-libasan', '-fno-omit-frame-pointer', `-Wl,-rpath,${rt.dir}`, ...common], { encoding: 'utf8' });
  } else {
    r = spawnSync('cc', common, { encoding: 'utf8' });
  }
  if (r.error || r.status !== 0)
    throw new Error(`cannot compile ${source} (${opts.sanitize ? APT_SANITIZE : 'apt-get install -y gcc'}):\n${r.stderr ?? r.error}`);
}

/** Sanitizer reports in a process's stderr (ASan, UBSan, LeakSanitizer). */
export function sanitizerReports(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)/.test(l));
}
