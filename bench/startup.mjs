// Daemon start-up for `npm run bench`: from spawning `signbridge daemon --backend pkcs11` to the
// socket answering HELLO and GET_INVENTORY with the token's keys (what a tool's first call needs).
// Measured several times; the daemon is stopped (SIGTERM) after each.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { DaemonClient } = await import(join(root, 'lib/ipc/client.js'));
// SB_BENCH_LIB: another compiled tree beside lib/ (e.g. tsc --outDir lib-before at an older commit) for a before/after
const LIB = process.env.SB_BENCH_LIB ?? 'lib';

async function readyOnce(dir, token, i) {
  const socket = join(dir, `startup-${i}.sock`);
  const t0 = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [join(root, LIB, 'cli/index.js'), 'daemon', '--backend', 'pkcs11', '--pkcs11-library', token.library, '--token-label', token.tokenLabel,
      '--pin-file', token.pinFile, '--socket', socket, '--log-level', 'warn', '--audit-log', join(dir, `startup-${i}.audit.log`)],
    { env: { ...process.env, SOFTHSM2_CONF: token.softhsmConf }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the daemon exited during start-up: ${stderr}`);
      if (existsSync(socket)) {
        try {
          const c = await DaemonClient.connect({ socketPath: socket, timeoutMs: 2000 });
          const inv = await c.inventory();
          c.close();
          const keys = inv.slots.flatMap((s) => s.objects).filter((o) => o.key_handle.length > 0).length;
          if (keys > 0) return { ms: Number(process.hrtime.bigint() - t0) / 1e6, keys };
        } catch {
          /* not listening yet */
        }
      }
      if (Number(process.hrtime.bigint() - t0) > 20e9) throw new Error(`the daemon did not answer within 20 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** { p50_ms, min_ms, runs, keys } over `runs` starts. */
export async function daemonStartup(dir, token, runs = 5) {
  const d = join(dir, 'startup');
  mkdirSync(d, { recursive: true, mode: 0o700 });
  try {
    const ms = [];
    let keys = 0;
    for (let i = 0; i < runs; i++) {
      const r = await readyOnce(d, token, i);
      ms.push(r.ms);
      keys = r.keys;
    }
    ms.sort((a, b) => a - b);
    return { p50_ms: ms[ms.length >> 1], min_ms: ms[0], runs, keys };
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
