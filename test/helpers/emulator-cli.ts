// The emulator's command line (lib/emulator/cli.js) as a child process, for the tests that check
// what it prints, the env.sh it writes and its exit on SIGTERM (STM and CSC alike).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cliPath } from '../../src/demo/daemon-process.js';
import { packageRoot } from '../../src/native/loader.js';

export interface EmulatorCli {
  child: ChildProcess;
  /** everything printed so far */
  readonly stdout: string;
  readonly stderr: string;
  /** resolves once it prints "Stop with Ctrl-C"; rejects with its stderr if it exits first */
  ready: Promise<void>;
  /** SIGTERM, then its exit code */
  terminate(): Promise<number | null>;
}

export function spawnEmulatorCli(args: string[]): EmulatorCli {
  cliPath(); // fails with the build command when lib/ is missing
  const child = spawn(process.execPath, [join(packageRoot(), 'lib', 'emulator', 'cli.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (/Stop with Ctrl-C/.test(stdout)) {
        clearInterval(t);
        resolve();
      }
      if (child.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`emulator exited ${child.exitCode}: ${stderr}`));
      }
    }, 50);
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    ready,
    terminate: () => {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      child.kill('SIGTERM');
      return exited;
    },
  };
}
