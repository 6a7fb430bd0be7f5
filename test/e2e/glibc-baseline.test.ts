// The shipped binaries load on glibc >= 2.28 (README "Supported platforms"): every versioned
// symbol the module and the addon import, read with `objdump -T`, is GLIBC_2.28 or older, none is
// GLIBCXX_/CXXABI_ (libstdc++ is linked in), and they need no library an old distribution lacks.
// Checked for the local cmake-js build and for the node-gyp prebuilds of linux-x64 and linux-arm64
// (built once into the test cache: test/helpers/cross-build.ts). The first run builds both
// prebuilds (2–5 minutes on a busy 2-core machine); later runs take seconds.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODULE_FILE, PREBUILT_ADDON, prebuildsFor } from '../helpers/cross-build.js';
import { requireTool } from '../helpers/test-cache.js';

const root = join(import.meta.dirname, '..', '..');
const BASELINE: [number, number] = [2, 28];
/** what every glibc system has (glibc itself loads libgcc_s for pthread_cancel) */
// libdl.so.2: the addon's dlopen (native_signer.cpp), a stub that glibc 2.34+ still ships
const ALLOWED_NEEDED = ['libc.so.6', 'libpthread.so.0', 'libdl.so.2', 'libgcc_s.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1'];
const APT_BINUTILS = 'apt-get install -y binutils';

interface Imported {
  version: string;
  symbol: string;
}

/** Versioned symbols of a shared object's dynamic symbol table (defined and imported). */
function versionedSymbols(file: string): Imported[] {
  requireTool('objdump', APT_BINUTILS);
  const r = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`objdump -T ${file} failed: ${r.stderr}`);
  const out: Imported[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /\s\(?((?:GLIBC|GLIBCXX|CXXABI|GCC)_[\d.]+)\)?\s+(\S+)\s*$/.exec(line);
    if (m) out.push({ version: m[1]!, symbol: m[2]! });
  }
  return out;
}

function newerThanBaseline(version: string): boolean {
  const m = /^GLIBC_(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > BASELINE[0] || (maj === BASELINE[0] && min > BASELINE[1]);
}

/** Every symbol that breaks the baseline, as "symbol@VERSION". */
function violations(file: string): string[] {
  return versionedSymbols(file)
    .filter((s) => newerThanBaseline(s.version) || /^(GLIBCXX|CXXABI)_/.test(s.version))
    .map((s) => `${s.symbol}@${s.version}`);
}

function highestGlibc(file: string): string {
  const v = versionedSymbols(file)
    .map((s) => /^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$/.exec(s.version))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]) || Number(a[2]) - Number(b[2]) || Number(a[3] ?? 0) - Number(b[3] ?? 0));
  return v.length ? v[v.length - 1]![0] : '(none)';
}

function readelf(args: string[], file: string): string {
  requireTool('readelf', APT_BINUTILS);
  const r = spawnSync('readelf', [...args, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`readelf ${args.join(' ')} ${file} failed: ${r.stderr}`);
  return r.stdout;
}

function needed(file: string): string[] {
  return [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
}

function machine(file: string): string {
  return /Machine:\s+(.+)/.exec(readelf(['-h'], file))![1]!.trim();
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sb-glibc-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the checker itself', () => {
  it('names a symbol above the baseline and a GLIBCXX_ one in a library built without the precautions', () => {
    requireTool('g++', 'apt-get install -y g++');
    const src = join(work, 'careless.cpp');
    writeFileSync(src, '#include <stdlib.h>\n#include <string>\nextern "C" unsigned careless(const char* s) { return arc4random() + std::string(s).size(); }\n');
    const so = join(work, 'careless.so');
    const r = spawnSync('g++', ['-shared', '-fPIC', '-O1', src, '-o', so], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const v = violations(so);
    expect(v).toContain('arc4random@GLIBC_2.36');
    expect(v.some((s) => s.includes('@GLIBCXX_')), v.join(', ')).toBe(true);
  });
});

describe('glibc 2.28 baseline of the shipped binaries', () => {
  const cases: Array<{ name: string; arch: string; files: () => Promise<string[]> }> = [
    { name: 'local build (cmake-js, build/Release)', arch: 'Advanced Micro Devices X86-64', files: async () => [join(root, 'build', 'Release', MODULE_FILE), join(root, 'build', 'Release', 'signbridge_addon.node')] },
    { name: 'prebuilds/linux-x64 (node-gyp)', arch: 'Advanced Micro Devices X86-64', files: async () => prebuildFiles(await prebuildsFor('linux-x64')) },
    { name: 'prebuilds/linux-arm64 (node-gyp, cross-compiled)', arch: 'AArch64', files: async () => prebuildFiles(await prebuildsFor('linux-arm64')) },
  ];
  for (const c of cases) {
    it(`${c.name}: no GLIBC_ above 2.28, no GLIBCXX_/CXXABI_, only libraries every glibc system has`, async () => {
      for (const f of await c.files()) {
        expect(machine(f), f).toBe(c.arch);
        expect(violations(f), `${f} needs symbols newer than glibc ${BASELINE.join('.')} or libstdc++'s`).toEqual([]);
        expect(needed(f).filter((n) => !ALLOWED_NEEDED.includes(n)), `${f}: DT_NEEDED`).toEqual([]);
        // the PKCS#11 entry points are still there after the symbol pinning (and stripping)
        if (f.endsWith(MODULE_FILE)) expect(spawnSync('objdump', ['-T', f], { encoding: 'utf8' }).stdout).toMatch(/ C_GetFunctionList$/m);
        console.log(`[glibc] ${f.replace(root, '.')}: highest ${highestGlibc(f)}`);
      }
    }, 900_000);
  }

  it('the prebuilt x64 addon still throws and catches C++ exceptions (libstdc++ linked in, libgcc_s shared)', async () => {
    const dir = await prebuildsFor('linux-x64');
    // a bad fd makes the addon throw a C++ Napi::Error that node-addon-api turns into a JS error
    const r = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(join(dir, PREBUILT_ADDON))}).peerCredentials(987654) } catch (e) { console.log(e.code) }`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('SIGNBRIDGE_ERR_PEERCRED');
  }, 900_000);
});

function prebuildFiles(dir: string): string[] {
  return [join(dir, MODULE_FILE), join(dir, PREBUILT_ADDON)];
}
