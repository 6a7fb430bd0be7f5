// The one place that knows where signbridge's native binaries live (design.md "Native binaries").
//   addon:          node-gyp-build — build/Release/ (a local build wins), build/Debug/, then
//                   prebuilds/<platform>-<arch>/ matched by its tags (napi, libc, …)
//   PKCS#11 module: SIGNBRIDGE_MODULE, else beside the addon node-gyp-build picked, so both always
//                   come from the same build (never a local addon with a stale prebuilt module)
// Errors list every path tried and the fix (sharp style).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sbError } from '../core/errors.js';

export const MODULE_FILE =
  process.platform === 'win32' ? 'signbridge-pkcs11.dll' : process.platform === 'darwin' ? 'libsignbridge-pkcs11.dylib' : 'libsignbridge-pkcs11.so';

const require = createRequire(import.meta.url);
// node-gyp-build ships no types; resolve() is its documented lookup without the require().
const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };

/** Package root: this file is src/native/loader.ts (tests) or lib/native/loader.js (installed). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The directories node-gyp-build searches, in its order (for error messages). */
export function searchedDirs(root = packageRoot()): string[] {
  return [join(root, 'build', 'Release'), join(root, 'build', 'Debug'), join(root, 'prebuilds', `${process.platform}-${process.arch}`)];
}

/** Absolute path of the addon node-gyp-build picks; throws SIGNBRIDGE_ERR_NATIVE_NOT_BUILT listing what was tried. */
export function addonPath(root = packageRoot()): string {
  try {
    return nodeGypBuild.resolve(root);
  } catch (e) {
    // its message names the tags it wanted (platform, arch, abi, libc): worth keeping for a prebuild mismatch
    const wanted = (e as Error).message.split('\n')[0];
    throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', {
      what: 'the addon (a .node file)',
      tried: `${searchedDirs(root).join(', ')} (${wanted})`,
    }, { cause: e });
  }
}

/** Absolute path of libsignbridge-pkcs11.so; throws SIGNBRIDGE_ERR_NATIVE_NOT_BUILT listing what was tried. */
export function modulePath(env: NodeJS.ProcessEnv = process.env, root = packageRoot()): string {
  const tried: string[] = [];
  const alternative = "set SIGNBRIDGE_MODULE to the module's path";
  if (env.SIGNBRIDGE_MODULE) {
    const p = resolve(env.SIGNBRIDGE_MODULE);
    if (existsSync(p)) return p;
    tried.push(`${p} (from SIGNBRIDGE_MODULE)`);
  }
  let dir: string;
  try {
    dir = dirname(addonPath(root));
  } catch {
    // no addon anywhere, so no build to take the module from
    tried.push(...searchedDirs(root).map((d) => join(d, MODULE_FILE)));
    throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', { what: `the PKCS#11 module ${MODULE_FILE}`, tried: tried.join(', '), alternative });
  }
  const p = join(dir, MODULE_FILE);
  if (existsSync(p)) return p;
  tried.push(`${p} (beside the addon)`);
  throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', { what: `the PKCS#11 module ${MODULE_FILE}`, tried: tried.join(', '), alternative });
}

/** The client of one pipe connection, as the addon read it from the pipe handle. */
export interface PipePeer {
  pid: number;
  /** user SID string (S-1-5-21-…); null when it could not be read (then `error` says why) */
  sid: string | null;
  /** DOMAIN\name of that SID, for log lines */
  account: string | null;
  exe: string | null;
  error: string | null;
}

/** The addon's server object (one per listening pipe). */
export interface NativePipeServer {
  write(id: number, data: Buffer): void;
  end(id: number): void;
  destroy(id: number): void;
  close(): void;
}

export type PipeEvent = (kind: 'connect' | 'data' | 'close', id: number, payload?: PipePeer | Buffer) => void;

/** The addon's pipe API (src/native/loader.ts); throws with code SIGNBRIDGE_ERR_PIPE_EXISTS when the name is taken. */
export interface PipeApi {
  listen(name: string, onEvent: PipeEvent): NativePipeServer;
  currentUserSid(): string;
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
/** OpenSSL's check of a signature over a digest (native/addon/addon.cpp); ECDSA signatures are DER. */
export type VerifyDigest = (spkiDer: Buffer, kind: 'ecdsa' | 'rsa-pss', digest: Buffer, signature: Buffer, hash?: string, saltLen?: number) => boolean;
/**
 * The daemon's native signing path for fast keys of the pkcs11 backend
 * (native/addon/native_signer.cpp, docs/performance.md "The native signing path"). It serves
 * adopted connections: SIGN frames it can make are answered there; every other frame reaches
 * `onEvent(0, frame)` and is answered with write(). Event-loop thread only.
 */
export interface NativeSignerApi {
  /** idleCostUs 0: a fast key, signed there always; > 0: a slow key of that cost, signed there only when the daemon is idle (scheduler.ts). */
  key(handle: Buffer, obj: Buffer, sigLen: number, mechanisms: number[], maxRsaData: number, idleCostUs: number): void;
  /** The scheduler's shared state ([pool signatures, last client, when]) and its contention rule's numbers. */
  scheduler(shared: Float64Array, contentionWindow: number, idleMaxUs: number): void;
  dropKey(handle: Buffer): void;
  keyJson(handle: Buffer, json: string): void;
  /** state: [last record seq, file size, torn, audit.ts writing] shared with src/daemon/audit.ts; hashes: [ckm, length, '"hash":"…","digest":"'] */
  /** onDisk: the record's synchronous write runs on a thread of the addon's while the loop signs (and the loop waits for it). */
  audit(fd: number, run: string, state: Float64Array, maxBytes: number, mechJson: Record<number, string>, hashes: Array<[number, number, string]>, onDisk: boolean, outcomesDue: () => void): void;
  auditFd(fd: number): void;
  /** Serve the connection on `fd` (a dup of it; the caller closes its own). kind 0: a frame for JavaScript; 1: closed. */
  adopt(fd: number, onEvent: (kind: 0 | 1, frame?: Buffer) => void): number;
  /** SIGN frames of connection `id` may be made natively, recorded with this peer fragment; `client`: the daemon's connection number … */
  allow(id: number, peerJson: string, client: number): void;
  /** … or no longer. */
  deny(id: number): void;
  write(id: number, frame: Buffer): void;
  end(id: number): void;
  destroy(id: number): void;
  takeOutcomes(): string;
  /** declined: frames that went to JavaScript, by reason (native_signer.cpp kDeclineNames) */
  stats(): { signed: number; declined: Record<string, number>; keys: number; connections: number };
  close(): void;
}
export type NativeSignerCtor = new (library: string, slot: Buffer, thresholdUs: number) => NativeSignerApi;

export interface Addon {
  peerCredentials(fd: number): PeerCredentials;
  /** Not on Windows (native/addon/native_signer.cpp is POSIX only). */
  NativeSigner?: NativeSignerCtor | undefined;
  /** Windows only: the daemon's named-pipe server and its user SID (native/addon/pipe_server_win.cpp). */
  pipe?: PipeApi | undefined;
  /** Absent when the addon was built without it (win32) or the host exports no OpenSSL. */
  verifyDigest?: VerifyDigest | undefined;
}

// per path: a process loads one addon, but tests resolve against several package trees
const loaded = new Map<string, Addon>();

/** Load the node-addon-api addon (peer credentials). Throws SIGNBRIDGE_ERR_NATIVE_NOT_BUILT / _LOAD. */
export function loadAddon(root = packageRoot()): Addon {
  const p = addonPath(root);
  const hit = loaded.get(p);
  if (hit) return hit;
  let raw: {
    peerCredentials?: (fd: number) => PeerCredentials;
    PipeServer?: new (name: string, onEvent: PipeEvent) => NativePipeServer;
    currentUserSid?: () => string;
    verifyDigest?: VerifyDigest;
    NativeSigner?: NativeSignerCtor;
  };
  try {
    raw = require(p) as typeof raw;
  } catch (e) {
    throw sbError('SIGNBRIDGE_ERR_NATIVE_LOAD', { path: p, reason: (e as Error).message }, { cause: e });
  }
  const native = raw.peerCredentials;
  if (typeof native !== 'function') {
    throw sbError('SIGNBRIDGE_ERR_NATIVE_LOAD', { path: p, reason: 'it does not export peerCredentials()' });
  }
  const addon: Addon = {
    // Validate in JS before native code runs (better-sqlite3 style).
    peerCredentials(fd: number): PeerCredentials {
      if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`peerCredentials: fd must be a non-negative integer, got ${String(fd)}`);
      return native(fd);
    },
    verifyDigest: typeof raw.verifyDigest === 'function' ? raw.verifyDigest : undefined,
    NativeSigner: typeof raw.NativeSigner === 'function' ? raw.NativeSigner : undefined,
  };
  const { PipeServer, currentUserSid } = raw;
  if (PipeServer && currentUserSid) addon.pipe = { listen: (name, onEvent) => new PipeServer(name, onEvent), currentUserSid };
  else if (process.platform === 'win32') throw sbError('SIGNBRIDGE_ERR_NATIVE_LOAD', { path: p, reason: 'it has no named-pipe server (PipeServer): it is not a Windows build' });
  loaded.set(p, addon);
  return addon;
}
