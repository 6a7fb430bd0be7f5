#!/usr/bin/env node
// `npm run prebuilds [-- [--out <dir>] [<platform>-<arch> ...]]`: prebuilds/<platform>-<arch>/ for a
// package that installs without a compiler:
//   signbridge.node             the addon, built by prebuildify (Node-API, stripped); node-gyp-build
//                               finds it by its tags (none: any runtime/ABI, which Node-API allows)
//   libsignbridge-pkcs11.so     the PKCS#11 module from the same node-gyp build, stripped, beside it
//                               (src/native/loader.ts looks for the module beside the addon)
// With no tuple it makes every target this host can build (TARGETS); --out writes
// <dir>/prebuilds/<tuple>/ instead of this package's (the tests build into a cache that way).
//
// prebuildify runs `node-gyp rebuild` in its cwd, and rebuild first deletes <cwd>/build — which is
// cmake-js's build directory (the local build). So node-gyp runs in a staging copy of the sources
// in a temp dir; only prebuilds/<platform>-<arch>/ of the output is written.
//
// Run it through npm: npm puts its bundled node-gyp on PATH and passes .npmrc settings (nodedir).

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const prebuildify = require('prebuildify');

const host = `${process.platform}-${process.arch}`;
// what binding.gyp needs to build; native/test and native/fuzz are cmake-only
const STAGED = ['binding.gyp', 'package.json', 'native/common', 'native/pkcs11', 'native/addon'];

// Debian's cross toolchains (README "Supported platforms"): the GNU triplet of each Linux arch
const LINUX_TRIPLET = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/**
 * Every target, with the hosts that build it. Linux targets build natively or with Debian's
 * cross g++ (`apt-get install -y g++-<triplet with dashes>`), in both directions.
 */
const TARGETS = {
  'linux-x64': { platform: 'linux', arch: 'x64', module: 'libsignbridge-pkcs11.so', hosts: ['linux-x64', 'linux-arm64'] },
  'linux-arm64': { platform: 'linux', arch: 'arm64', module: 'libsignbridge-pkcs11.so', hosts: ['linux-x64', 'linux-arm64'] },
};

// win32-x64: its own step (the module there is signbridge-pkcs11.dll), in scripts/prebuilds-win32.mjs
// when present: buildWin32Prebuilds(root, stage) writes <root>/prebuilds/win32-x64/.
const WIN32_STEP = join(root, 'scripts', 'prebuilds-win32.mjs');
if (existsSync(WIN32_STEP)) TARGETS['win32-x64'] = { win32Step: WIN32_STEP, hosts: ['linux-x64'] };

class Failure extends Error {}
function die(msg) {
  throw new Failure(msg);
}

function run(opts) {
  return new Promise((resolve, reject) => prebuildify(opts, (err) => (err ? reject(err) : resolve())));
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v "${cmd}"`], { encoding: 'utf8' }).status === 0;
}

/** Compiler environment and strip binary for a target: the host's own tools, or the cross ones. */
function toolchain(t) {
  if (`${t.platform}-${t.arch}` === host) return { env: {}, strip: 'strip' };
  const triplet = LINUX_TRIPLET[t.arch];
  const pkg = `g++-${triplet.replace(/_/g, '-')}`;
  if (!onPath(`${triplet}-g++`)) die(`${triplet}-g++ is not on PATH; install the cross compiler: apt-get install -y ${pkg}`);
  const env = { CC: `${triplet}-gcc`, CXX: `${triplet}-g++`, LINK: `${triplet}-g++`, AR: `${triplet}-ar` };
  return { env, strip: `${triplet}-strip` };
}

/** node-gyp puts a shared_library target in build/Release/ or build/Release/lib.target/ (make generator). */
function findModule(stage, file) {
  for (const d of ['build/Release', 'build/Release/lib.target', 'build/Release/obj.target']) {
    const p = join(stage, d, file);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** prebuildify reads its compiler settings from process.env when called; set them for one build. */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function build(tuple, outRoot) {
  const t = TARGETS[tuple];
  if (t.win32Step) return buildWin32(t, outRoot);
  const tc = toolchain(t);
  const stage = mkdtempSync(join(tmpdir(), 'signbridge-prebuilds-'));
  try {
    for (const p of STAGED) cpSync(join(root, p), join(stage, p), { recursive: true });
    // binding.gyp resolves pkcs11js and node-addon-api headers with require.resolve from its cwd
    symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'), 'junction');

    // Node-API is ABI-stable, so one build with this Node's headers serves every Node >= 20.
    // out = the stage too: prebuildify renames the .node into place, which fails across file systems.
    try {
      await withEnv(tc.env, () =>
        run({ cwd: stage, out: stage, napi: true, strip: true, stripBin: tc.strip, arch: t.arch, platform: t.platform, targets: [process.versions.node] }),
      );
    } catch (e) {
      die(`${tuple}: prebuildify failed: ${e.message} (node-gyp comes with npm: run this as \`npm run prebuilds\`; it needs python3, make and g++)`);
    }

    const built = join(stage, 'prebuilds', tuple);
    const module = findModule(stage, t.module);
    if (!module) die(`${tuple}: node-gyp built no ${t.module} (looked in ${join(stage, 'build', 'Release')})`);
    copyFileSync(module, join(built, t.module));
    // --strip-all keeps .dynsym, so the exported C_* functions stay (prebuildify strips the addon the same way)
    const s = spawnSync(tc.strip, ['--strip-all', join(built, t.module)], { stdio: 'inherit' });
    if (s.status !== 0) die(`${tuple}: ${tc.strip} ${t.module} failed`);

    // replace, not merge: a stale .node left here could be the one node-gyp-build picks
    const dest = join(outRoot, 'prebuilds', tuple);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    for (const f of readdirSync(built)) {
      copyFileSync(join(built, f), join(dest, f));
      chmodSync(join(dest, f), 0o755);
    }
    process.stdout.write(`prebuilds: ${dest}: ${readdirSync(dest).sort().join(', ')}\n`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function buildWin32(t, outRoot) {
  if (outRoot !== root) die('win32-x64 is written to this package\'s prebuilds/ only (no --out)');
  const { buildWin32Prebuilds } = await import(t.win32Step);
  const stage = mkdtempSync(join(tmpdir(), 'signbridge-prebuilds-win32-'));
  try {
    const built = buildWin32Prebuilds(root, stage);
    process.stdout.write(`prebuilds: ${join(root, 'prebuilds', 'win32-x64')}: ${built.join(', ')}\n`);
  } catch (e) {
    die(`win32-x64: ${e.message}`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function parseArgs(argv) {
  let out = root;
  const tuples = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') {
      if (!argv[i + 1]) die('--out needs a directory');
      out = resolve(argv[++i]);
    } else if (TARGETS[argv[i]]) tuples.push(argv[i]);
    else die(`unknown target ${argv[i]}; known: ${Object.keys(TARGETS).join(', ')}`);
  }
  const all = Object.keys(TARGETS).filter((k) => TARGETS[k].hosts.includes(host));
  if (tuples.length === 0 && all.length === 0) die(`this host (${host}) builds none of ${Object.keys(TARGETS).join(', ')}`);
  for (const k of tuples) if (!TARGETS[k].hosts.includes(host)) die(`${k} is not built on ${host} (hosts: ${TARGETS[k].hosts.join(', ')})`);
  return { out, tuples: tuples.length ? tuples : all };
}

try {
  const { out, tuples } = parseArgs(process.argv.slice(2));
  for (const tuple of tuples) await build(tuple, out);
} catch (e) {
  process.stderr.write(`prebuilds: ${e instanceof Failure ? e.message : e.stack}\n`);
  process.exitCode = 1;
}
