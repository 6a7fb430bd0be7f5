// Files that hold secrets must be readable by the daemon's user only (README "Security model"):
// a PIN, the client secret, STM API key / password files, and an mTLS PKCS#12 or private key.
// Checked at start, before the token or STM is touched, so a mistake is exit 2 with the fix.
// The PIN file (backends/pkcs11/pin.ts) and the STM API-key/password files (backends/stm/credentials.ts)
// carry the same check where they are read; this file adds the client secret and the mTLS key
// material, which are read elsewhere without a mode check.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { sbError } from '../core/errors.js';
import { stmError } from '../backends/stm/errors.js';
import type { DaemonConfig } from './config.js';
import { groupOrOthersCanRead } from '../core/paths.js';

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** "readable by group or others (mode 0644): run `chmod 600 f`", or undefined when the mode is fine. */
export function modeProblem(file: string, mode: number): string | undefined {
  if (!groupOrOthersCanRead(mode)) return undefined;
  return `it is readable by group or others (mode 0${(mode & 0o777).toString(8)}): run \`chmod 600 ${file}\``;
}

/**
 * Read a secret from `file`: a regular file, owned by the daemon's user, mode 0600 (or stricter),
 * non-empty; one trailing newline stripped. Checked on the opened fd (no window between check
 * and read). Errors name the file and the fix, never the content.
 */
export function readClientSecretFile(file: string): Buffer {
  const fail = (problem: string): Error => sbError('SIGNBRIDGE_ERR_CONFIG', { detail: `cannot use --client-secret-file ${file}: ${problem}` });
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw fail(`${(e as NodeJS.ErrnoException).code ?? 'cannot open it'}: check the path`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail('it is not a regular file');
    const bad = modeProblem(file, st.mode);
    if (bad) throw fail(bad);
    const me = uid();
    if (me !== undefined && st.uid !== me) throw fail(`it is owned by uid ${st.uid}, not by the daemon's user (${me}): chown it or run the daemon as its owner`);
    let b = readFileSync(fd);
    if (b.length > 0 && b[b.length - 1] === 0x0a) b = b.subarray(0, b[b.length - 2] === 0x0d ? -2 : -1);
    if (b.length === 0) throw fail('it is empty');
    return b;
  } finally {
    closeSync(fd);
  }
}

/** PKCS#12 (anything not PEM) or a PEM file that holds a private key: both are secrets. */
function holdsKey(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false; // unreadable files are reported by whoever reads them (with the path and errno)
  }
  try {
    const head = Buffer.alloc(64 * 1024);
    const n = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, n).toString('latin1');
    if (!text.includes('-----BEGIN ')) return true;
    return /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(text);
  } finally {
    closeSync(fd);
  }
}

function statMode(file: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return fstatSync(fd).mode;
  } finally {
    closeSync(fd);
  }
}

/**
 * The mTLS key material of the stm backend (STM API-key and password files are checked by
 * backends/stm/credentials.ts when read; the PIN file by backends/pkcs11/pin.ts).
 * Throws SIGNBRIDGE_ERR_STM_CONFIG (exit 2), like the other STM credential checks.
 */
export function checkSecretFiles(cfg: DaemonConfig): void {
  if (cfg.backend !== 'stm' || !cfg.stm) return;
  const files: Array<[what: string, file: string | undefined, always: boolean]> = [
    ['client certificate', cfg.stm.clientCertFile, false],
    ['client key file', cfg.stm.clientKeyFile, true],
  ];
  for (const [what, file, always] of files) {
    if (!file) continue;
    const mode = statMode(file);
    if (mode === undefined) continue;
    if (!always && !holdsKey(file)) continue; // a PEM certificate alone is public
    const bad = modeProblem(file, mode);
    if (bad) throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `the ${what} ${file} holds a private key and ${bad}` });
  }
}
