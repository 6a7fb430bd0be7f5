// Temporary signbridge package trees, laid out like an installed package: the compiled lib/,
// package.json, node_modules (a symlink to this checkout's), and native binaries in build/Release/
// (a local build) and/or prebuilds/<platform>-<arch>/ (what `npm run prebuilds` ships), made from
// this checkout's local build. The loader resolves everything relative to the tree's own lib/.
import { spawnSync } from 'node:child_process';
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pkcs11js from 'pkcs11js';
import type { TestKey } from './token.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const TUPLE = `${process.platform}-${process.arch}`;
export const MODULE_FILE = 'libsignbridge-pkcs11.so';
/** cmake-js's and node-gyp's name for the addon */
export const LOCAL_ADDON = 'signbridge_addon.node';
/** prebuildify's name for it (the package name; no tags: Node-API fits any Node) */
export const PREBUILT_ADDON = 'signbridge.node';

export interface PackageTree {
  root: string;
  cli: string;
  release: string;
  prebuilds: string;
  remove(): void;
}

function localBuild(file: string): string {
  const p = join(root, 'build', 'Release', file);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npx cmake-js compile --out build\` first`);
  return p;
}

/**
 * A package tree in a temp dir. `build`: build/Release/ with the local build's module and addon;
 * `prebuilds`: prebuilds/<platform>-<arch>/ with the same two files under their shipped names;
 * `sources`: also what `npm run prebuilds` needs (binding.gyp, native/, scripts/prebuilds*.mjs,
 * scripts/prebuild-pkcs11js.mjs — its postprebuilds step — and for
 * the win32-x64 cross-build CMakeLists.txt, cmake/, scripts/build-win32.sh).
 */
export function makePackageTree(opts: { build?: boolean; prebuilds?: boolean; sources?: boolean }): PackageTree {
  const cli = join(root, 'lib', 'cli', 'index.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npx tsc -p tsconfig.json\` first`);
  // realpath: the daemon and module-path report resolved paths (the OS temp dir may be a symlink)
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'sb-pkg-')));
  cpSync(join(root, 'lib'), join(dir, 'lib'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'junction');
  const release = join(dir, 'build', 'Release');
  const prebuilds = join(dir, 'prebuilds', TUPLE);
  if (opts.build) {
    mkdirSync(release, { recursive: true });
    copyFileSync(localBuild(MODULE_FILE), join(release, MODULE_FILE));
    copyFileSync(localBuild(LOCAL_ADDON), join(release, LOCAL_ADDON));
  }
  if (opts.prebuilds) {
    mkdirSync(prebuilds, { recursive: true });
    copyFileSync(localBuild(MODULE_FILE), join(prebuilds, MODULE_FILE));
    copyFileSync(localBuild(LOCAL_ADDON), join(prebuilds, PREBUILT_ADDON));
  }
  if (opts.sources) {
    // the win32-x64 step cross-builds with CMake (scripts/prebuilds-win32.mjs → scripts/build-win32.sh)
    for (const p of ['binding.gyp', 'native', 'scripts/prebuilds.mjs', 'scripts/prebuilds-win32.mjs', 'scripts/prebuild-pkcs11js.mjs', 'scripts/build-win32.sh', 'CMakeLists.txt', 'cmake'])
      cpSync(join(root, p), join(dir, p), { recursive: true });
  }
  return {
    root: dir,
    cli: join(dir, 'lib', 'cli', 'index.js'),
    release,
    prebuilds,
    remove: () => {
      if (!process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `signbridge <args>` run from a tree, as a user would (no shell). */
export function runCli(tree: PackageTree, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const e = { ...process.env, ...env };
  delete e.SIGNBRIDGE_MODULE; // the lookup under test, not an override
  const r = spawnSync(process.execPath, [tree.cli, ...args], { env: e, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Files a process has mapped (Linux /proc): which addon or module it really loaded. */
export function mappedFiles(pid: number | 'self'): string[] {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
  const files = new Set<string>();
  for (const line of maps.split('\n')) {
    const i = line.indexOf('/');
    if (i >= 0) files.add(line.slice(i).replace(/ \(deleted\)$/, ''));
  }
  return [...files];
}

/**
 * One CKM_ECDSA_SHA256 signature with `key` through the PKCS#11 module at `module` (pkcs11js, in
 * this process), against the daemon on `socket`; verified here with node:crypto against the key's
 * certificate. Also says whether that file is the module this process really mapped.
 */
export function signOnce(module: string, socket: string, key: TestKey): { verified: boolean; mapped: boolean } {
  process.env.SIGNBRIDGE_SOCKET = socket;
  const p11 = new pkcs11js.PKCS11();
  p11.load(module);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const [slot] = p11.C_GetSlotList(true) as [Buffer];
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(key.idHex, 'hex') },
    ]);
    const [handle] = p11.C_FindObjects(session, 2);
    p11.C_FindObjectsFinal(session);
    if (!handle) throw new Error(`the module at ${module} lists no private key with id ${key.idHex}`);
    const message = Buffer.from(`signed through ${module}`);
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, handle);
    const sig = p11.C_Sign(session, message, Buffer.alloc(256));
    const pub = new X509Certificate(key.certPem).publicKey;
    return {
      verified: cryptoVerify('sha256', message, { key: pub, dsaEncoding: 'ieee-p1363' }, sig),
      mapped: mappedFiles('self').includes(module),
    };
  } finally {
    p11.C_Finalize();
    p11.close();
  }
}
