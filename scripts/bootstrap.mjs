#!/usr/bin/env node
// Fresh clone → working demo/test/bench in one command (`npm run demo`, `npm test`, `npm run bench`).
// Plain Node, no dependencies: this runs before node_modules exists.
//
//   node scripts/bootstrap.mjs demo|test|bench [args passed to the target…]
//
// 1. checks the system packages in scripts/system-requirements.json; missing ones are installed
//    with apt-get when running as root, otherwise the exact apt-get line is printed (exit 1);
// 2. `npm ci` when node_modules is missing (npm's `prepare` builds everything), else
//    `npm run build` (incremental);
// 3. runs the target: `node lib/cli/index.js demo`, `npx vitest run`, or the bench.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const MODES = ['demo', 'test', 'bench'];

function die(msg, code = 1) {
  process.stderr.write(`bootstrap: ${msg}\n`);
  process.exit(code);
}

function multiarch() {
  const m = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ia32: 'i386-linux-gnu' };
  return m[process.arch] ?? `${process.arch}-linux-gnu`;
}

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** Same rules as src/demo/requirements.ts. */
function missingRequirements(modes) {
  const spec = JSON.parse(readFileSync(join(root, 'scripts', 'system-requirements.json'), 'utf8'));
  return spec.requirements.filter((r) => {
    if (!r.needed_for.some((m) => modes.includes(m))) return false;
    if (r.command && onPath(r.command)) return false;
    if (r.files && r.files.some((f) => existsSync(f.replaceAll('{multiarch}', multiarch())))) return false;
    return true;
  });
}

function run(cmd, args, opts = {}) {
  process.stderr.write(`bootstrap: $ ${[cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) die(`cannot run ${cmd}: ${r.error.message}`);
  if (r.signal) die(`${cmd} was killed by ${r.signal}`);
  return r.status ?? 1;
}

function ensureSystemPackages(mode) {
  if (process.platform !== 'linux') {
    process.stderr.write('bootstrap: not Linux — skipping the Debian package check; install SoftHSMv2, osslsigncode and a C++ toolchain yourself\n');
    return;
  }
  const missing = missingRequirements(['build', mode]);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((r) => r.package))];
  const line = `apt-get install -y ${pkgs.join(' ')}`;
  for (const r of missing) process.stderr.write(`bootstrap: missing ${r.name} (Debian package ${r.package})\n`);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) die(`run as root: ${line}   (then run this command again)`);
  if (!onPath('apt-get')) die(`apt-get not found; install these packages with your package manager: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update'], { env }) !== 0) die('apt-get update failed: check the network and /etc/apt/sources.list*');
  if (run('apt-get', ['install', '-y', ...pkgs], { env }) !== 0) die(`apt-get install failed: try \`${line}\` yourself`);
  const still = missingRequirements(['build', mode]);
  if (still.length > 0) die(`still missing after apt-get: ${still.map((r) => r.name).join(', ')}`);
}

function ensureBuilt() {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (!existsSync(join(root, 'node_modules'))) {
    // `npm ci` runs the `prepare` script, which builds the native module and the TypeScript
    if (run(npm, ['ci']) !== 0) die('npm ci failed: see the output above');
  } else if (run(npm, ['run', 'build']) !== 0) {
    die('npm run build failed: see the output above (native code needs cmake, g++, make, python3)');
  }
}

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (!MODES.includes(mode)) die(`usage: node scripts/bootstrap.mjs ${MODES.join('|')} [args…]`, 2);
  ensureSystemPackages(mode);
  ensureBuilt();
  let status;
  if (mode === 'demo') {
    status = run(process.execPath, [join(root, 'lib', 'cli', 'index.js'), 'demo', ...rest]);
  } else if (mode === 'test') {
    // vitest strips types without checking them: type-check the tests (and src) first
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    if (run(process.execPath, [tsc, '-p', join(root, 'tsconfig.test.json')]) !== 0) die('type errors in src/ or test/: see above');
    status = run(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...rest]);
  } else {
    // the bench's entry point, whichever form it takes in this version
    status = run(process.execPath, [join(root, 'bench', 'run.mjs'), ...rest]);
  }
  process.exit(status);
}

main();
