// pdfsig (poppler) through signbridge: an NSS database with libsignbridge-pkcs11.so added by
// modutil and the CA trusted, `pdfsig -add-signature -nick <token>:<label> -kpw <otp>` to sign,
// `pdfsig <file>` to verify. NSS does the context-specific login of a CKA_ALWAYS_AUTHENTICATE key
// with the password callback, so -kpw is the OTP (docs/csc-backend.md "pdfsig").
import { mkdirSync } from 'node:fs';
import { runCommand, type RunResult } from './osslsigncode.js';

/** A fresh NSS database in `dir` with the module added and `caFile` trusted for e-mail signing. */
export async function nssDbWithModule(dir: string, module: string, caFile: string, env: NodeJS.ProcessEnv): Promise<RunResult[]> {
  mkdirSync(dir, { recursive: true });
  const db = `sql:${dir}`;
  const steps: RunResult[] = [];
  steps.push(await runCommand('certutil', ['-N', '-d', db, '--empty-password'], { env }));
  steps.push(await runCommand('modutil', ['-dbdir', db, '-add', 'signbridge', '-libfile', module, '-force'], { env }));
  steps.push(await runCommand('certutil', ['-A', '-d', db, '-n', 'signbridge-csc-ca', '-t', 'CT,C,C', '-i', caFile], { env }));
  return steps;
}

export function pdfsigSign(o: { nssDir: string; token: string; label: string; otp: string; input: string; output: string; env: NodeJS.ProcessEnv }): Promise<RunResult> {
  return runCommand('pdfsig', ['-add-signature', '-nssdir', `sql:${o.nssDir}`, '-nick', `${o.token}:${o.label}`, '-kpw', o.otp, '-digest', 'SHA256', o.input, o.output], { env: o.env });
}

export function pdfsigVerify(nssDir: string, file: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return runCommand('pdfsig', ['-nssdir', `sql:${nssDir}`, file], { env });
}
