// Start a real signbridge daemon (child process, pkcs11 backend on the run's SoftHSMv2 token) on a
// fresh socket in a private temp dir. Always pair with `await d.stop()` (afterAll).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { testToken, type TokenName } from './token.js';

export interface TestDaemon extends RunningDaemon {
  dir: string;
  logFile: string;
  /** env for a consumer process: SIGNBRIDGE_SOCKET (and SIGNBRIDGE_DEBUG for diagnosable failures) */
  env: NodeJS.ProcessEnv;
  /** Stops the process (if it still runs) and starts a new one on the same socket, flags and log; `pid` follows. */
  restart(): Promise<void>;
}

export async function startTestDaemon(
  opts: { extraArgs?: string[]; env?: NodeJS.ProcessEnv; token?: TokenName; cli?: string } = {},
): Promise<TestDaemon> {
  const t = testToken(opts.token);
  // mkdtemp gives 0700, which the daemon requires of its socket directory; keep the path short
  // (sun_path holds 108 bytes)
  const dir = mkdtempSync(join(tmpdir(), 'sbd-'));
  const logFile = join(dir, 'daemon.log');
  const socket = join(dir, 's.sock');
  const start = () =>
    startDaemon({
      socket,
      softhsmConf: t.softhsmConf,
      library: t.library,
      tokenLabel: t.tokenLabel,
      pinFile: t.pinFile,
      logFile,
      ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
      ...(opts.env ? { env: opts.env } : {}),
        ...(opts.cli ? { cli: opts.cli } : {}),
    });
  let d = await start();
  return {
    get pid() {
      return d.pid;
    },
    socket,
    dir,
    logFile,
    env: { SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_DEBUG: '1' },
    stderr: () => d.stderr(),
    restart: async () => {
      await d.stop();
      d = await start();
    },
    stop: async () => {
      await d.stop();
      if (!process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
    },
  };
}
