// Where signbridge keeps its socket (design.md "Environment": SIGNBRIDGE_SOCKET, else
// $XDG_RUNTIME_DIR/signbridge/signbridge.sock, else /tmp/signbridge-<uid>/signbridge.sock; on
// Windows the per-user pipe \\.\pipe\signbridge-<user name>, docs/windows.md) and the check that a
// socket directory is private to us.
import { lstatSync, mkdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { sbError } from './errors.js';

function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/** The module computes the same name (GetUserNameW; libuv's userInfo() asks the same). */
export function defaultPipeName(): string {
  return `\\\\.\\pipe\\signbridge-${userInfo().username}`;
}

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.SIGNBRIDGE_SOCKET) return env.SIGNBRIDGE_SOCKET;
  if (platform === 'win32') return defaultPipeName();
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'signbridge', 'signbridge.sock');
  return join('/tmp', `signbridge-${uid()}`, 'signbridge.sock');
}

/** $XDG_STATE_HOME/signbridge, else ~/.local/state/signbridge (logs of background runs, demo output); Windows: %LOCALAPPDATA%\\signbridge. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return join(env.LOCALAPPDATA || join(homedir(), 'AppData', 'Local'), 'signbridge');
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'signbridge');
}

/**
 * Create `dir` with mode 0700, or verify an existing one: a real directory (not a symlink),
 * owned by us, no group/other access. A directory in /tmp that someone else created could let
 * them replace our socket, so anything else is refused with a message that says how to fix it.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true });
  // Windows has no mode bits or uids (stat reports 0o666 and uid 0): the directory lives under the
  // user's profile (%LOCALAPPDATA%), whose inherited ACL admits only that user, SYSTEM and
  // Administrators (docs/windows.md "Files and permissions"), so there is nothing further to check here.
  if (process.platform === 'win32') {
    mkdirSync(dir, { recursive: true });
    return;
  }
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw sbError('SIGNBRIDGE_ERR_SOCKET_DIR', { dir, problem: 'it is not a directory (or is a symlink)' });
  if (st.uid !== uid()) throw sbError('SIGNBRIDGE_ERR_SOCKET_DIR', { dir, problem: `it is owned by uid ${st.uid}, not ${uid()}` });
  if ((st.mode & 0o077) !== 0)
    throw sbError('SIGNBRIDGE_ERR_SOCKET_DIR', { dir, problem: `its mode is 0${(st.mode & 0o777).toString(8)}, group/others have access` });
}

/**
 * true when group or others may read a file of this mode. Always false on Windows: Node reports
 * mode bits made up from the read-only attribute there (0o666 / 0o444); access is the file's ACL,
 * and files under the user's profile inherit one that admits only the user, SYSTEM and
 * Administrators (docs/windows.md "Files and permissions").
 */
export function groupOrOthersCanRead(mode: number, platform: NodeJS.Platform = process.platform): boolean {
  return platform !== 'win32' && (mode & 0o077) !== 0;
}
