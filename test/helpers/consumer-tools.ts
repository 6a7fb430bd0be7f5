// Shared by the consumer end-to-end tests (openssl, pkcs11-tool, osslsigncode hashes): tool lookup
// that fails with the apt-get line, public keys taken from the certificates with openssl (the
// independent verifier never sees anything signbridge computed), and the daemon's "signed" log lines.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { findOnPath, multiarch } from '../../src/demo/requirements.js';
import { describeRun, runCommand, type RunResult } from './run.js';

/** Absolute path of `cmd`, or an Error naming the Debian package to install (never a skipped test). */
export function requireCommand(cmd: string, aptPackage: string): string {
  const p = findOnPath(cmd);
  if (!p) throw new Error(`${cmd} is not installed: run as root: apt-get install -y ${aptPackage}`);
  return p;
}

/** OpenSC's tracing module (pkcs11-spy.so), used to look at the calls a consumer makes. */
export function pkcs11Spy(): string {
  const p = `/usr/lib/${multiarch()}/pkcs11/pkcs11-spy.so`;
  if (!existsSync(p)) throw new Error(`${p} is missing: run as root: apt-get install -y opensc-pkcs11`);
  return p;
}

/** Runs a command and fails the test (with the command and both streams) unless it exits 0. */
export async function runOk(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  const r = await runCommand(cmd, args, env ? { env } : {});
  expect(r.status, describeRun(r)).toBe(0);
  return r;
}

/** The certificate's public key as a PEM file, extracted by openssl itself. */
export async function publicKeyFromCert(certPath: string, dir: string, name: string): Promise<string> {
  const r = await runOk('openssl', ['x509', '-in', certPath, '-pubkey', '-noout']);
  const file = join(dir, `${name}.pub.pem`);
  writeFileSync(file, r.stdout);
  return file;
}

/** Number of "signed" lines the daemon logged (debug level) for a signing primitive (CKM_RSA_PKCS, …). */
export function signedInLog(logFile: string, mechanism: string): number {
  if (!existsSync(logFile)) return 0;
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"signed"') && l.includes(`"mechanism":"${mechanism}"`)).length;
}

/** Polls `cond` (pino writes its log asynchronously). */
export async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) if (cond()) return true;
  return cond();
}
