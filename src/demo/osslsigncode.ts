// osslsigncode (2.5 as in Debian 12, 2.9 from backports; libp11 engine) driven the way a user would: sign a PE through a
// PKCS#11 module, then verify it against the signer's certificate. No PIN on the command line:
// signbridge's module accepts any login (design.md "Login model"); a real token's PIN comes from a
// file via -readpass.

import { spawn } from 'node:child_process';
import { requiredFile } from './requirements.js';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the command line, for error messages (never contains a secret) */
  command: string;
}

/** Runs a command without a shell, capturing its output; never rejects on a non-zero exit. */
export function runCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ` (is it installed? see scripts/system-requirements.json)` : '';
      reject(new Error(`cannot run ${cmd}: ${e.message}${hint}`));
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, command: [cmd, ...args].join(' ') });
    });
  });
}

/** RFC 7512 PKCS#11 URI attribute value: percent-encode everything outside the unreserved set. */
export function uriValue(s: string): string {
  return Array.from(Buffer.from(s, 'utf8'))
    .map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`))
    .join('');
}

export interface SignOptions {
  /** the PKCS#11 module osslsigncode loads (libsignbridge-pkcs11.so, or libsofthsm2.so directly) */
  module: string;
  tokenLabel: string;
  keyLabel: string;
  input: string;
  output: string;
  /** certificate file; default: read the certificate from the token through the module (-pkcs11cert) */
  certs?: string;
  /** a file holding the token PIN (-readpass), only for modules that need a real login */
  pinFile?: string;
  /** environment for osslsigncode (SIGNBRIDGE_SOCKET, SOFTHSM2_CONF …) */
  env?: NodeJS.ProcessEnv;
  hash?: 'sha256' | 'sha384' | 'sha512';
  description?: string;
  /**
   * Pass the libp11 engine's path with -pkcs11engine. Default false: without it osslsigncode asks
   * OpenSSL for the engine by its id "pkcs11", which works in 2.5 and 2.9 alike; osslsigncode 2.5
   * (Debian 12's) fails with "bad engine id" when given the path.
   */
  enginePath?: boolean;
}

export function signArgs(o: SignOptions): string[] {
  const token = uriValue(o.tokenLabel);
  const object = uriValue(o.keyLabel);
  return [
    'sign',
    ...(o.enginePath ? ['-pkcs11engine', requiredFile('libengine-pkcs11-openssl')] : []),
    '-pkcs11module',
    o.module,
    ...(o.certs ? ['-certs', o.certs] : ['-pkcs11cert', `pkcs11:token=${token};object=${object};type=cert`]),
    '-key',
    `pkcs11:token=${token};object=${object};type=private`,
    ...(o.pinFile ? ['-readpass', o.pinFile] : []),
    '-h',
    o.hash ?? 'sha256',
    ...(o.description ? ['-n', o.description] : []),
    '-in',
    o.input,
    '-out',
    o.output,
  ];
}

export function osslsigncodeSign(o: SignOptions): Promise<RunResult> {
  return runCommand('osslsigncode', signArgs(o), { env: { ...process.env, ...o.env } });
}

export function osslsigncodeVerify(file: string, caFile: string): Promise<RunResult> {
  return runCommand('osslsigncode', ['verify', '-in', file, '-CAfile', caFile]);
}

export interface VerifyVerdict {
  ok: boolean;
  /** "Signature verification: ok|failed", or the last line explaining the failure */
  line: string;
  /** the verifier's "Subject:" line of Signer #0 */
  signer?: string;
  digest?: string;
}

/** Reads osslsigncode 2.9 `verify` output; ok only with exit 0, "Signature verification: ok" and "Succeeded". */
export function parseVerify(r: RunResult): VerifyVerdict {
  const out = `${r.stdout}\n${r.stderr}`;
  const verification = /^Signature verification: (\w+)/m.exec(out);
  const signer = /Signer #0:\s*\n\s*Subject:\s*(.+)/.exec(out);
  const digest = /^Message digest algorithm\s*:\s*(\S+)/m.exec(out);
  const ok = r.status === 0 && verification?.[1] === 'ok' && /^Succeeded$/m.test(out) && !/^Failed$/m.test(out);
  const lastLines = out.trim().split('\n').filter((l) => l.trim() !== '');
  const v: VerifyVerdict = { ok, line: verification ? verification[0] : (lastLines.slice(-2).join(' / ') || `exit ${r.status}`) };
  if (signer) v.signer = signer[1]!.trim();
  if (digest) v.digest = digest[1]!;
  return v;
}
