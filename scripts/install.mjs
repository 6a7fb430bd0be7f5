#!/usr/bin/env node
// npm's "install" step of the signbridge package (docs/install.md). With a prebuild for this
// platform nothing compiles; node-gyp builds from source only when no prebuild matches or when
// asked (npm_config_build_from_source, i.e. `npm install --build-from-source`), and says which.
// A development checkout is built by `npm run build` (prepare) instead: nothing to do here.
// npm shows this output with --foreground-scripts (and always when it fails).

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const tuple = `${process.platform}-${process.arch}`;
// keep in step with MODULE_FILE in src/native/loader.ts
const MODULE_FILE =
  process.platform === 'win32' ? 'signbridge-pkcs11.dll' : process.platform === 'darwin' ? 'libsignbridge-pkcs11.dylib' : 'libsignbridge-pkcs11.so';
const say = (line) => process.stderr.write(`signbridge: ${line}\n`);
const truthy = (v) => v !== undefined && v !== '' && v !== 'false' && v !== '0';

if (existsSync(join(root, 'src')) && existsSync(join(root, 'tsconfig.json'))) process.exit(0);

// npm 11 warns that --build-from-source is not one of its own settings (it still passes it on);
// SIGNBRIDGE_BUILD_FROM_SOURCE=1 asks the same without relying on that
const asked = truthy(process.env.npm_config_build_from_source) || truthy(process.env.SIGNBRIDGE_BUILD_FROM_SOURCE);
if (asked) {
  say('building from source because --build-from-source (npm_config_build_from_source) or SIGNBRIDGE_BUILD_FROM_SOURCE is set');
} else {
  try {
    // node-gyp-build's own lookup (what src/native/loader.ts uses at run time)
    const addon = require('node-gyp-build').resolve(root);
    const module = join(dirname(addon), MODULE_FILE);
    if (existsSync(module)) {
      say(`using the prebuilt binaries in ${dirname(addon)}: nothing to compile`);
      process.exit(0);
    }
    say(`${addon} has no ${MODULE_FILE} beside it: building from source`);
  } catch (e) {
    say(`no prebuilt binary matches ${tuple} (${String(e.message).split('\n')[0]}): building from source with node-gyp`);
  }
}

// npm hands its bundled node-gyp to scripts as npm_config_node_gyp (and puts it on PATH)
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' }) : spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  say(
    `building from source failed (${r.error ? r.error.message : `node-gyp exited ${r.status}`}). It needs python3, make and a C++17 compiler: ` +
      'apt-get install -y python3 make g++ (Debian/Ubuntu), then install signbridge again',
  );
  process.exit(1);
}
// the make generator puts a shared_library in build/Release/lib.target/; the loader wants it beside the addon
for (const d of ['lib.target', 'obj.target']) {
  const p = join(root, 'build', 'Release', d, MODULE_FILE);
  if (existsSync(p)) copyFileSync(p, join(root, 'build', 'Release', MODULE_FILE));
}
say(`built from source in ${join(root, 'build', 'Release')}`);
