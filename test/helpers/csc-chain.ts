// The csc chain for end-to-end tests: a CSC emulator, a `signbridge daemon --backend csc` child
// process whose OAuth secret comes from a 0600 file, `signbridge otp`, and signer processes
// (csc-signer.mjs) that sign through libsignbridge-pkcs11.so — together, for coalescing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliPath, startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { signbridgeModule } from './module.js';
import { runCommand, type RunResult } from './run.js';
import type { TestCscEmulator } from './csc-emulator.js';

const SIGNER = fileURLToPath(new URL('./csc-signer.mjs', import.meta.url));

export interface CscChain {
  daemon: RunningDaemon;
  log: string;
  /** the daemon's environment: service URL, client id, CA; the secret is in a file */
  env: NodeJS.ProcessEnv;
  secretFile: string;
}

export async function startCscDaemon(emu: TestCscEmulator, work: string, extraArgs: string[] = []): Promise<CscChain> {
  const dir = mkdtempSync(join(work, 'd-'));
  const secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, `${emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET}\n`, { mode: 0o600 });
  const env = { SIGNBRIDGE_CSC_URL: emu.env.SIGNBRIDGE_CSC_URL, SIGNBRIDGE_CSC_CLIENT_ID: emu.env.SIGNBRIDGE_CSC_CLIENT_ID, SIGNBRIDGE_CSC_CA_FILE: emu.env.SIGNBRIDGE_CSC_CA_FILE };
  const log = join(dir, 'daemon.log');
  const daemon = await startDaemon({ backend: 'csc', socket: join(dir, 's.sock'), logFile: log, env, extraArgs: ['--csc-client-secret-file', secretFile, '--log-level', 'debug', ...extraArgs], timeoutMs: 30_000 });
  return { daemon, log, env, secretFile };
}

/** `signbridge otp <credential>`, then the OTP the emulator "sent" (its file). */
export async function sendOtp(emu: TestCscEmulator, chain: CscChain, credential: string): Promise<{ run: RunResult; otp: string }> {
  const run = await runCommand(process.execPath, [cliPath(), 'otp', credential, '--csc-client-secret-file', chain.secretFile], { env: { ...process.env, ...chain.env } });
  const otp = run.status === 0 ? readFileSync(join(emu.stateDir, 'otp', credential), 'utf8').trim() : '';
  return { run, otp };
}

export interface SignerResult {
  ready?: boolean;
  sig?: string;
  step?: string;
  rv?: number | null;
  error?: string;
  alwaysAuthenticate?: boolean;
}

/**
 * `n` signer processes: each gets ready (C_SignInit + context-specific login with `otp`), then
 * all are told to sign at once. Resolves with each one's outcome.
 */
export async function signTogether(chain: CscChain, o: { n: number; label: string; mech: 'rsa' | 'ecdsa'; otp?: string | undefined; message: (i: number) => string }): Promise<SignerResult[]> {
  const kids = Array.from({ length: o.n }, (_, i) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SIGNBRIDGE_SOCKET: chain.daemon.socket, SB_MODULE: signbridgeModule(), SB_LABEL: o.label, SB_MECH: o.mech, SB_MESSAGE: o.message(i) };
    if (o.otp !== undefined) env.SB_OTP = o.otp;
    const child = spawn(process.execPath, [SIGNER], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: SignerResult[] = [];
    let buf = '';
    let onLine: (() => void) | undefined;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let at = buf.indexOf('\n'); at >= 0; at = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, at)) as SignerResult);
        buf = buf.slice(at + 1);
        onLine?.();
      }
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const next = (k: number): Promise<void> =>
      new Promise((r) => {
        const check = (): void => {
          if (lines.length > k) r();
        };
        onLine = check;
        void exited.then(r);
        check();
      });
    return { child, lines, next, exited };
  });
  await Promise.all(kids.map((k) => k.next(0)));
  for (const k of kids) if (k.lines[0]?.ready) k.child.stdin.write('go\n');
  await Promise.all(kids.map((k) => k.exited));
  return kids.map((k) => (k.lines[0]?.ready ? { ...k.lines[1], alwaysAuthenticate: k.lines[0].alwaysAuthenticate } : (k.lines[0] ?? { error: 'no output' })));
}
