// Runs `signbridge daemon --backend pkcs11|stm|csc …` as a child process (the demo and the tests use
// it): waits until the socket answers HELLO, fails fast with the daemon's own stderr if it exits
// early, and stops it on request. Secrets never travel as arguments: the PIN as a file path
// (--pin-file), STM credentials in the environment (SM_API_KEY, SM_CLIENT_CERT_PASSWORD).

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packageRoot } from '../native/loader.js';
import { waitForDaemon } from '../ipc/client.js';

export interface StartDaemonOptions {
  /** default pkcs11; "stm" takes its settings from `env` (SM_HOST, …) and `extraArgs` */
  backend?: 'pkcs11' | 'stm' | 'csc';
  socket: string;
  /** pkcs11 backend only */
  softhsmConf?: string;
  library?: string;
  tokenLabel?: string;
  pinFile?: string;
  /** daemon stdout+stderr are appended here */
  logFile: string;
  /** how long to wait for the first HELLO answer (default 20 s) */
  timeoutMs?: number;
  /** extra CLI arguments after the standard ones */
  extraArgs?: string[];
  /** extra environment for the daemon */
  env?: NodeJS.ProcessEnv;
  /** the CLI to run (default: this package's lib/cli/index.js); tests start installed package trees */
  cli?: string;
}

export interface RunningDaemon {
  pid: number;
  socket: string;
  /** the daemon's stderr so far (bounded) — for error messages */
  stderr(): string;
  stop(): Promise<void>;
}

export class DaemonStartError extends Error {
  readonly code = 'SIGNBRIDGE_ERR_DAEMON_START';
  constructor(message: string) {
    super(message);
    this.name = 'DaemonStartError';
  }
}

const STDERR_KEEP = 16 * 1024;

/**
 * Tests: every daemon started here also copies its output into this directory, so
 * test/e2e/secrets-in-logs.test.ts can grep what all of the suite's daemons logged.
 * SIGNBRIDGE_TEST_LOG_DIR, else inside a vitest worker <tmpdir>/signbridge-test-logs/<pid of the
 * vitest main process> (shared by every worker of one run); else none.
 */
export function testLogDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.SIGNBRIDGE_TEST_LOG_DIR) return env.SIGNBRIDGE_TEST_LOG_DIR;
  if (env.VITEST_POOL_ID !== undefined) return join(tmpdir(), 'signbridge-test-logs', String(process.ppid));
  return undefined;
}

/** The built CLI (lib/cli/index.js); tests run from src/ but the daemon runs from lib/. */
export function cliPath(): string {
  const p = join(packageRoot(), 'lib', 'cli', 'index.js');
  if (!existsSync(p)) throw new DaemonStartError(`${p} does not exist: build signbridge first (\`npm run build\`)`);
  return p;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export async function startDaemon(opts: StartDaemonOptions): Promise<RunningDaemon> {
  const cli = opts.cli ?? cliPath();
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a', mode: 0o600 });
  // stm and csc take their settings from the environment (SM_*, SIGNBRIDGE_CSC_*) and extraArgs
  const stm = opts.backend === 'stm' || opts.backend === 'csc';
  if (!stm && (!opts.library || !opts.tokenLabel || !opts.pinFile || !opts.softhsmConf)) {
    throw new DaemonStartError('the pkcs11 backend needs library, tokenLabel, pinFile and softhsmConf');
  }
  const args = [
    cli,
    'daemon',
    '--backend',
    opts.backend ?? 'pkcs11',
    ...(stm ? [] : ['--pkcs11-library', opts.library!, '--token-label', opts.tokenLabel!, '--pin-file', opts.pinFile!]),
    '--socket',
    opts.socket,
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, {
    // SoftHSMv2 finds its token directory through SOFTHSM2_CONF (token-setup.ts wrote it)
    env: { ...process.env, ...opts.env, ...(stm ? {} : { SOFTHSM2_CONF: opts.softhsmConf }), SIGNBRIDGE_SOCKET: opts.socket },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const copyDir = testLogDir();
  let copy: WriteStream | undefined;
  if (copyDir && child.pid !== undefined) {
    mkdirSync(copyDir, { recursive: true, mode: 0o700 });
    copy = createWriteStream(join(copyDir, `daemon-${child.pid}.log`), { flags: 'a', mode: 0o600 });
    child.stdout!.on('data', (d: Buffer) => copy!.write(d));
  }
  child.stdout!.pipe(log, { end: false });
  child.stderr!.on('data', (d: Buffer) => {
    log.write(d);
    copy?.write(d);
    stderr = (stderr + d.toString('utf8')).slice(-STDERR_KEEP);
  });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.once('exit', (code, signal) => {
    exited = { code, signal };
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const stop = async (): Promise<void> => {
    if (exited || child.exitCode !== null) {
      log.end();
      copy?.end();
      return;
    }
    child.kill('SIGTERM');
    if (!(await waitExit(child, 5000))) {
      child.kill('SIGKILL');
      await waitExit(child, 2000);
    }
    await new Promise<void>((r) => log.end(r));
    if (copy) await new Promise<void>((r) => copy!.end(r));
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastError = 'not started';
  for (;;) {
    if (exited) {
      await stop();
      throw new DaemonStartError(
        `the signbridge daemon exited during start-up (${exited.signal ?? `exit code ${exited.code}`}); its stderr:\n${stderr.trim() || '(empty)'}\n(full log: ${opts.logFile})`,
      );
    }
    const early = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 0))]);
    if (early) {
      await stop();
      throw new DaemonStartError(`cannot start ${process.execPath} ${cli}: ${early.message}`);
    }
    if (existsSync(opts.socket)) {
      try {
        // short attempts, so an early exit of the daemon is noticed between them
        await waitForDaemon(opts.socket, 1000);
        break;
      } catch (e) {
        lastError = (e as Error).message;
      }
    } else {
      lastError = `socket ${opts.socket} does not exist yet`;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new DaemonStartError(
        `the signbridge daemon did not answer HELLO on ${opts.socket} within ${opts.timeoutMs ?? 20_000} ms (${lastError}); its stderr:\n${stderr.trim() || '(empty)'}\n(full log: ${opts.logFile})`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, socket: opts.socket, stderr: () => stderr, stop };
}
