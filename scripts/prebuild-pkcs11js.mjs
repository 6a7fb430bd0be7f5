#!/usr/bin/env node
// The PKCS#11 binding the pkcs11 backend, the emulator and the
// SoftHSMv2 set-up use, shipped so that an install needs no compiler (README "Stack"):
//   prebuilds/<platform>-<arch>/node_modules/pkcs11js/       its JS + build/Release/pkcs11.node, built
//                                                           here from the installed dependency's own
//                                                           sources with its own binding.gyp (Node-API)
//   prebuilds/<platform>-<arch>/node_modules/graphene-pk11/  its CommonJS build
//   prebuilds/<platform>-<arch>/node_modules/tslib/          graphene's runtime helper
// Versions are the ones package-lock.json installed; nothing of theirs is kept in the repository
// (prebuilds/ is git-ignored). src/native/pkcs11js.ts loads this copy when npm's is absent.
//
// Why a copy and not the npm dependency: npm 10 and 11 run `node-gyp rebuild` for any installed
// package with a binding.gyp and no install script, bundled dependencies included, so a
// dependency on pkcs11js compiles at every install; the dependencies are optional instead, and
// npm drops them silently when that build fails (measured; docs/install.md).
//
// npm runs it after `npm run prebuilds` (package.json "postprebuilds").
// `node scripts/prebuild-pkcs11js.mjs [--out <dir>] [<platform>-<arch> ...]`: with no tuple, one copy
// for every prebuilds/<platform>-<arch>/ that scripts/prebuilds.mjs made (so the two always match).
// Another Linux arch is cross-compiled with Debian's cross g++ (apt-get install -y g++-aarch64-linux-gnu).
// Run through npm: npm puts its bundled node-gyp on PATH.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const prebuildify = require('prebuildify');
const host = `${process.platform}-${process.arch}`;
// GNU triplets of Debian's cross toolchains (as scripts/prebuilds.mjs)
const LINUX_TRIPLET = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

// What each package needs at run time (their package.json "main" and what it requires), and the licence.
const COPIES = {
  pkcs11js: ['package.json', 'LICENSE', 'README.md', 'index.js', 'index.d.ts'],
  'graphene-pk11': ['package.json', 'LICENSE.md', 'README.md', 'build/cjs'],
  tslib: ['package.json', 'LICENSE.txt', 'CopyrightNotice.txt', 'tslib.js', 'tslib.d.ts'],
};
// what pkcs11js's binding.gyp compiles
const PKCS11JS_BUILD = ['binding.gyp', 'package.json', 'src', 'includes'];

function dependencyDir(name) {
  return dirname(require.resolve(`${name}/package.json`, { paths: [root] }));
}

function findNode(dir) {
  for (const e of readdirSync(dir, { recursive: true })) {
    const p = join(dir, String(e));
    if (p.endsWith('.node') && statSync(p).isFile()) return p;
  }
  return undefined;
}

/** The compiler environment for a tuple: none for this host, else the cross toolchain. */
function toolchain(platform, arch) {
  if (`${platform}-${arch}` === host) return {};
  const triplet = LINUX_TRIPLET[arch];
  if (platform !== 'linux' || !triplet) throw new Error(`cannot build pkcs11js for ${platform}-${arch} on ${host}`);
  if (spawnSync('sh', ['-c', `command -v ${triplet}-g++`]).status !== 0) {
    throw new Error(`${triplet}-g++ is not on PATH; install the cross compiler: apt-get install -y g++-${triplet.replace(/_/g, '-')}`);
  }
  return { CC: `${triplet}-gcc`, CXX: `${triplet}-g++`, LINK: `${triplet}-g++`, AR: `${triplet}-ar`, STRIP: `${triplet}-strip` };
}

// glibc 2.28 baseline (README "Install"): glibc 2.34 moved dlopen & co. from libdl into libc under a
// new version, so a build on Debian 12 asks for GLIBC_2.34. Each reference is pinned to the
// architecture's base version, which old and new glibc both export, and libdl.so.2 (a stub on 2.34+)
// is named so older glibc finds them (binutils manual, ".symver name, name2@nodename").
// libstdc++ stays shared, as Node's own: pkcs11js needs GLIBCXX_3.4.21 (GCC 5), below GCC 8's 3.4.25.
const DL_BASE = { x64: 'GLIBC_2.2.5', arm64: 'GLIBC_2.17' };
function glibcPins(arch, stage) {
  const base = DL_BASE[arch];
  if (!base) return {};
  const header = join(stage, 'signbridge_glibc_pins.h');
  writeFileSync(header, ['dlopen', 'dlsym', 'dlclose', 'dlerror'].map((f) => `__asm__(".symver ${f},${f}@${base}");\n`).join(''));
  return { CXXFLAGS: `-include ${header}`, LDFLAGS: '-Wl,--no-as-needed -l:libdl.so.2 -Wl,--as-needed' };
}

async function buildOne(tuple, outRoot, stage) {
  const [platform, arch] = tuple.split('-');
  const { STRIP, ...cross } = toolchain(platform, arch);
  const src = dependencyDir('pkcs11js');
  for (const p of PKCS11JS_BUILD) cpSync(join(src, p), join(stage, p), { recursive: true });
  const env = { ...cross, ...(platform === 'linux' ? glibcPins(arch, stage) : {}) };
  const saved = { ...process.env };
  Object.assign(process.env, env); // prebuildify hands its environment to node-gyp
  try {
    // Node-API (pkcs11js 2.x uses node_api.h only), so one build serves every Node >= 18
    await new Promise((res, rej) =>
      prebuildify({ cwd: stage, out: stage, napi: true, strip: true, stripBin: STRIP ?? 'strip', arch, platform, targets: [process.versions.node] }, (e) => (e ? rej(e) : res())),
    );
  } catch (e) {
    throw new Error(`building pkcs11js for ${tuple} failed: ${e.message} (run as \`npm run prebuilds\`; it needs python3, make and g++)`);
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }
  const built = findNode(join(stage, 'prebuilds'));
  if (!built) throw new Error(`prebuildify left no .node in ${join(stage, 'prebuilds')}`);

  const dest = join(outRoot, 'prebuilds', tuple, 'node_modules');
  rmSync(dest, { recursive: true, force: true }); // replace, never merge with a stale copy
  for (const [name, files] of Object.entries(COPIES)) {
    const from = dependencyDir(name);
    for (const f of files) {
      if (existsSync(join(from, f))) cpSync(join(from, f), join(dest, name, f), { recursive: true });
    }
  }
  mkdirSync(join(dest, 'pkcs11js', 'build', 'Release'), { recursive: true });
  cpSync(built, join(dest, 'pkcs11js', 'build', 'Release', 'pkcs11.node'));
  process.stdout.write(`prebuilds: ${dest}: ${Object.keys(COPIES).join(', ')} (pkcs11js built from ${src})\n`);
}

async function main() {
  const argv = process.argv.slice(2);
  let outRoot = root;
  const tuples = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') outRoot = resolve(argv[++i] ?? '.');
    else if (/^[a-z0-9]+-[a-z0-9]+$/.test(argv[i])) tuples.push(argv[i]);
    else throw new Error(`unknown argument ${argv[i]} (usage: [--out <dir>] [<platform>-<arch> ...])`);
  }
  if (tuples.length === 0) {
    const dir = join(outRoot, 'prebuilds');
    if (existsSync(dir)) {
      for (const t of readdirSync(dir)) {
        if (!existsSync(join(dir, t, 'signbridge.node'))) continue;
        // win32-x64 is cross-built with mingw-w64, which pkcs11js's node-gyp build cannot use: the
        // pkcs11 backend on Windows builds pkcs11js there (docs/windows.md); the stm backend needs none
        if (!t.startsWith('linux-')) {
          process.stdout.write(`prebuilds: ${t}: no prebuilt PKCS#11 binding (built on that platform at install)\n`);
          continue;
        }
        tuples.push(t);
      }
    }
    if (tuples.length === 0) {
      process.stdout.write(`prebuilds: no ${join(dir, '<platform>-<arch>', 'signbridge.node')}, so no PKCS#11 binding to build\n`);
      return;
    }
  }
  for (const t of tuples) {
    const stage = mkdtempSync(join(tmpdir(), 'signbridge-pkcs11js-'));
    try {
      await buildOne(t, outRoot, stage);
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`prebuilds: ${e.message}\n`);
  process.exitCode = 1;
}
