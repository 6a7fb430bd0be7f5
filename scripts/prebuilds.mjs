#!/usr/bin/env node
// `npm run prebuilds`: prebuilds/<platform>-<arch>/ for a package that installs without a compiler:
//   signbridge.node             the addon, built by prebuildify (Node-API, stripped); node-gyp-build
//                               finds it by its tags (none: any runtime/ABI, which Node-API allows)
//   libsignbridge-pkcs11.so     the PKCS#11 module from the same node-gyp build, stripped, beside it
//                               (src/native/loader.ts looks for the module beside the addon)
//
// prebuildify runs `node-gyp rebuild` in its cwd, and rebuild first deletes <cwd>/build — which is
// cmake-js's build directory (the local build). So node-gyp runs in a staging copy of the sources
// in a temp dir; only prebuilds/<platform>-<arch>/ of this package is written.
//
// Run it through npm: npm puts its bundled node-gyp on PATH and passes .npmrc settings (nodedir).

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const prebuildify = require('prebuildify');
import { buildWin32Prebuilds } from './prebuilds-win32.mjs';

const tuple = `${process.platform}-${process.arch}`;
// keep in step with MODULE_FILE in src/native/loader.ts
const MODULE_FILE =
  process.platform === 'win32' ? 'signbridge-pkcs11.dll' : process.platform === 'darwin' ? 'libsignbridge-pkcs11.dylib' : 'libsignbridge-pkcs11.so';
// what binding.gyp needs to build; native/test and native/fuzz are cmake-only
const STAGED = ['binding.gyp', 'package.json', 'native/common', 'native/pkcs11', 'native/addon'];

class Failure extends Error {}
function die(msg) {
  throw new Failure(msg);
}

function run(opts) {
  return new Promise((resolve, reject) => prebuildify(opts, (err) => (err ? reject(err) : resolve())));
}

/** node-gyp puts a shared_library target in build/Release/ or build/Release/lib.target/ (make generator). */
function findModule(stage) {
  for (const d of ['build/Release', 'build/Release/lib.target', 'build/Release/obj.target']) {
    const p = join(stage, d, MODULE_FILE);
    if (existsSync(p)) return p;
  }
  return undefined;
}

async function main(stage) {
  for (const p of STAGED) cpSync(join(root, p), join(stage, p), { recursive: true });
  // binding.gyp resolves pkcs11js and node-addon-api headers with require.resolve from its cwd
  symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'), 'junction');

  // Node-API is ABI-stable, so one build with this Node's headers serves every Node >= 20.
  // out = the stage too: prebuildify renames the .node into place, which fails across file systems.
  try {
    await run({ cwd: stage, out: stage, napi: true, strip: true, targets: [process.versions.node] });
  } catch (e) {
    die(`prebuildify failed: ${e.message} (node-gyp comes with npm: run this as \`npm run prebuilds\`; it needs python3, make and g++)`);
  }

  const built = join(stage, 'prebuilds', tuple);
  const module = findModule(stage);
  if (!module) die(`node-gyp built no ${MODULE_FILE} (looked in ${join(stage, 'build', 'Release')})`);
  copyFileSync(module, join(built, MODULE_FILE));
  // --strip-all keeps .dynsym, so the exported C_* functions stay (prebuildify strips the addon the same way)
  if (process.platform === 'linux') {
    const s = spawnSync('strip', ['--strip-all', join(built, MODULE_FILE)], { stdio: 'inherit' });
    if (s.status !== 0) die(`strip ${MODULE_FILE} failed`);
  }

  // replace, not merge: a stale .node left here could be the one node-gyp-build picks
  const dest = join(root, 'prebuilds', tuple);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(built)) {
    copyFileSync(join(built, f), join(dest, f));
    chmodSync(join(dest, f), 0o755);
  }
  process.stdout.write(`prebuilds: ${dest}: ${readdirSync(dest).sort().join(', ')}\n`);

  // win32-x64, cross-built with mingw-w64 (a separate step: scripts/prebuilds-win32.mjs)
  try {
    const built = buildWin32Prebuilds(root, stage);
    process.stdout.write(`prebuilds: ${join(root, 'prebuilds', 'win32-x64')}: ${built.join(', ')}\n`);
  } catch (e) {
    die(e.message);
  }
}

const stage = mkdtempSync(join(tmpdir(), 'signbridge-prebuilds-'));
try {
  await main(stage);
} catch (e) {
  process.stderr.write(`prebuilds: ${e instanceof Failure ? e.message : e.stack}\n`);
  process.exitCode = 1;
} finally {
  rmSync(stage, { recursive: true, force: true });
}
