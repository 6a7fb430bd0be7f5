// The one place that knows where signbridge's native binaries live (design.md "Native binaries"):
//   PKCS#11 module: SIGNBRIDGE_MODULE → prebuilds/<platform>-<arch>/ → build/Release/
//   addon:                              prebuilds/<platform>-<arch>/ → build/Release/
// (better-sqlite3 / node-gyp-build style). Errors list every path tried and the fix (sharp style).
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sbError } from '../core/errors.js';

export const MODULE_FILE = process.platform === 'darwin' ? 'libsignbridge-pkcs11.dylib' : 'libsignbridge-pkcs11.so';
export const ADDON_FILE = 'signbridge_addon.node';

/** Package root: this file is src/native/loader.ts (tests) or lib/native/loader.js (installed). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

// A local build wins over a shipped prebuild (as in node-gyp-build): after `npm run build` the
// binaries just built are the ones used, never a stale prebuild.
function candidateDirs(root: string): string[] {
  return [join(root, 'build', 'Release'), join(root, 'prebuilds', `${process.platform}-${process.arch}`)];
}

/** Absolute path of libsignbridge-pkcs11.so; throws SIGNBRIDGE_ERR_NATIVE_NOT_BUILT listing what was tried. */
export function modulePath(env: NodeJS.ProcessEnv = process.env, root = packageRoot()): string {
  const tried: string[] = [];
  if (env.SIGNBRIDGE_MODULE) {
    const p = resolve(env.SIGNBRIDGE_MODULE);
    if (existsSync(p)) return p;
    tried.push(`${p} (from SIGNBRIDGE_MODULE)`);
  }
  for (const d of candidateDirs(root)) {
    const p = join(d, MODULE_FILE);
    if (existsSync(p)) return p;
    tried.push(p);
  }
  throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', {
    what: `the PKCS#11 module ${MODULE_FILE}`,
    tried: tried.join(', '),
    alternative: "set SIGNBRIDGE_MODULE to the module's path",
  });
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
export interface Addon {
  peerCredentials(fd: number): PeerCredentials;
}

function addonCandidates(root: string): string[] {
  const out: string[] = [];
  const [prebuilds, release] = candidateDirs(root) as [string, string];
  // prebuildify names the file after the package and its tags (e.g. signbridge.napi.node).
  out.push(join(prebuilds, ADDON_FILE));
  if (existsSync(prebuilds)) {
    for (const f of readdirSync(prebuilds).sort()) if (f.endsWith('.node') && f !== ADDON_FILE) out.push(join(prebuilds, f));
  }
  out.push(join(release, ADDON_FILE));
  return out;
}

let cached: Addon | undefined;

/** Load the node-addon-api addon (peer credentials). Throws SIGNBRIDGE_ERR_NATIVE_NOT_BUILT / _LOAD. */
export function loadAddon(root = packageRoot()): Addon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const p of addonCandidates(root)) {
    if (!existsSync(p)) {
      tried.push(p);
      continue;
    }
    let raw: { peerCredentials?: (fd: number) => PeerCredentials };
    try {
      raw = require(p) as typeof raw;
    } catch (e) {
      throw sbError('SIGNBRIDGE_ERR_NATIVE_LOAD', { path: p, reason: (e as Error).message }, { cause: e });
    }
    const native = raw.peerCredentials;
    if (typeof native !== 'function') {
      throw sbError('SIGNBRIDGE_ERR_NATIVE_LOAD', { path: p, reason: 'it does not export peerCredentials()' });
    }
    cached = {
      // Validate in JS before native code runs (better-sqlite3 style).
      peerCredentials(fd: number): PeerCredentials {
        if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`peerCredentials: fd must be a non-negative integer, got ${String(fd)}`);
        return native(fd);
      },
    };
    return cached;
  }
  throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', { what: `the addon ${ADDON_FILE}`, tried: tried.join(', ') });
}
