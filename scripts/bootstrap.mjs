#!/usr/bin/env node
// Fresh clone → working demo/test/bench in one command (`npm run demo`, `npm test`, `npm run bench`).
// Plain Node, no dependencies: this runs before node_modules exists.
//
//   node scripts/bootstrap.mjs demo|test|bench [args passed to the target…]
//
// 1. checks the system packages in scripts/system-requirements.json; missing ones are installed
//    with apt-get when running as root, otherwise the exact apt-get line is printed (exit 1); a
//    requirement with a `suite` (pkcs11-provider: bookworm-backports) gets that suite, pinned for it;
// 2. `npm ci` when node_modules is missing (npm's `prepare` builds everything), else
//    `npm run build` (incremental);
// 3. runs the target: `node lib/cli/index.js demo`, `npx vitest run`, or the bench.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

const SOURCES_LIST = '/etc/apt/sources.list';
const SOURCES_DIR = '/etc/apt/sources.list.d';
const PREFERENCES_DIR = '/etc/apt/preferences.d';

/** Root's lines for a package from another suite; the same as .ci/run and src/demo/requirements.ts. */
function suiteLines(suite, pkg) {
  return [
    `{ grep -Eqs '^[^#]*${suite}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources || echo 'deb http://deb.debian.org/debian ${suite} main' > /etc/apt/sources.list.d/${suite}.list; }`,
    `printf 'Package: ${pkg}\\nPin: release n=${suite}\\nPin-Priority: 500\\n' > /etc/apt/preferences.d/signbridge-${pkg}`,
    'apt-get update',
    `apt-get install -y -t ${suite} ${pkg}`,
  ];
}

/** Whether an enabled apt source (one-line .list or deb822 .sources) names `suite`. */
function suiteListed(suite) {
  const files = [SOURCES_LIST];
  try {
    for (const f of readdirSync(SOURCES_DIR)) if (/\.(list|sources)$/.test(f)) files.push(join(SOURCES_DIR, f));
  } catch {
    /* no sources.list.d */
  }
  const re = new RegExp(`^[^#]*${suite}`, 'm'); // suite names are [a-z-]: nothing to escape
  return files.some((f) => {
    try {
      return re.test(readFileSync(f, 'utf8'));
    } catch {
      return false;
    }
  });
}

/**
 * Adds `suite` (deb.debian.org, main) when no source lists it, and pins it for `pkg` alone:
 * backports is NotAutomatic, so nothing else is taken from it unless asked for with -t.
 */
function addPinnedSuite(suite, pkg) {
  if (!suiteListed(suite)) {
    const list = join(SOURCES_DIR, `${suite}.list`);
    process.stderr.write(`bootstrap: adding ${suite} to ${list}\n`);
    writeFileSync(list, `deb http://deb.debian.org/debian ${suite} main\n`);
  }
  writeFileSync(join(PREFERENCES_DIR, `signbridge-${pkg}`), `Package: ${pkg}\nPin: release n=${suite}\nPin-Priority: 500\n`);
}

function ensureSystemPackages(mode) {
  if (process.platform !== 'linux') {
    process.stderr.write('bootstrap: not Linux — skipping the Debian package check; install SoftHSMv2, osslsigncode and a C++ toolchain yourself\n');
    return;
  }
  const missing = missingRequirements(['build', mode]);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.filter((r) => !r.suite).map((r) => r.package))];
  const fromSuite = missing.filter((r) => r.suite);
  const lines = [
    ...(pkgs.length > 0 ? [`apt-get install -y ${pkgs.join(' ')}`] : []),
    ...fromSuite.flatMap((r) => suiteLines(r.suite, r.package)),
  ];
  const line = lines.join(' && ');
  for (const r of missing) process.stderr.write(`bootstrap: missing ${r.name} (Debian package ${r.package}${r.suite ? `, from ${r.suite}` : ''})\n`);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) die(`run as root: ${line}   (then run this command again)`);
  if (!onPath('apt-get')) die(`apt-get not found; install these packages with your package manager: ${missing.map((r) => r.package).join(' ')}`);
  for (const r of fromSuite) addPinnedSuite(r.suite, r.package);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update'], { env }) !== 0) die('apt-get update failed: check the network and /etc/apt/sources.list*');
  if (pkgs.length > 0 && run('apt-get', ['install', '-y', ...pkgs], { env }) !== 0) die(`apt-get install failed: try \`${line}\` yourself`);
  for (const r of fromSuite) {
    if (run('apt-get', ['install', '-y', '-t', r.suite, r.package], { env }) !== 0) die(`apt-get install failed: try \`${line}\` yourself`);
  }
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
