// Concurrent rows for `npm run bench`: P processes × T threads of the pthread client
// test/native/concurrency.c (the same program the concurrency tests run) sign at once against one
// daemon with mixed keys and mechanisms; per row: signatures, total signatures/s over the common
// wall time (first thread start → last thread end, CLOCK_REALTIME across processes), latency
// p50/p99 over every signature, and the daemon's RSS before/after. Asserts nothing.
//
//   node bench/concurrent.mjs        standalone: its own SoftHSMv2 token (RSA-3072, P-256) and daemon
//   bench/run.mjs imports concurrentRows() / printConcurrentTable() and passes its daemon.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** [processes, threads] per row */
export const DEFAULT_CONFIGS = [[1, 1], [1, 4], [4, 4], [8, 4]];

export function buildClient(dir) {
  const require = createRequire(import.meta.url);
  const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
  const exe = join(dir, 'concurrency');
  execFileSync('cc', ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-O2', '-I', include, join(root, 'test/native/concurrency.c'), '-o', exe, '-ldl', '-pthread']);
  return exe;
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function runOne(exe, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(exe, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`concurrency client failed (exit ${code}): ${err.trim()}\n${out.split('\n').filter((l) => l.startsWith('err')).slice(0, 5).join('\n')}`));
      const lats = [];
      let summary = {};
      for (const line of out.split('\n')) {
        if (line.startsWith('lat ')) lats.push(Number(line.slice(4)));
        else if (line.startsWith('summary ')) summary = Object.fromEntries(line.slice(8).split(' ').map((kv) => kv.split('=')));
      }
      resolve({ lats, summary });
    });
  });
}

const q = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

/** One client process: { n, perSecond (over its first start → last end), p50 µs }. */
export async function runClientRow(exe, args, env) {
  const r = await runOne(exe, args, env);
  const lats = [...r.lats].sort((a, b) => a - b);
  const s = (Number(r.summary.end_us) - Number(r.summary.start_us)) / 1e6;
  return { n: lats.length, perSecond: lats.length / s, p50: q(lats, 0.5) };
}

/**
 * One row per [P, T]: P client processes with T threads each, `count` signatures per thread over
 * `keys` (labels; default every key the daemon serves). BENCH_CONCURRENT_COUNT overrides `count`.
 */
export async function concurrentRows({ module, socket, daemonPid, configs = DEFAULT_CONFIGS, count = Number(process.env.BENCH_CONCURRENT_COUNT ?? 100), keys }) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-conc-'));
  try {
    const exe = buildClient(dir);
    const env = { ...process.env, SIGNBRIDGE_SOCKET: socket };
    // warm-up: every key's first signature (the daemon learns each key's cost)
    await runOne(exe, [module, '--threads', '2', '--count', '10', '--quiet', ...(keys ? ['--keys', keys.join(',')] : [])], env);
    const rows = [];
    for (const [P, T] of configs) {
      const rssBefore = rssKb(daemonPid);
      const runs = await Promise.all(
        Array.from({ length: P }, (_, i) =>
          runOne(exe, [module, '--threads', String(T), '--count', String(count), '--seed', String(i + 1), '--quiet', ...(keys ? ['--keys', keys.join(',')] : [])], env),
        ),
      );
      const rssAfter = rssKb(daemonPid);
      const lats = runs.flatMap((r) => r.lats).sort((a, b) => a - b);
      const start = Math.min(...runs.map((r) => Number(r.summary.start_us)));
      const end = Math.max(...runs.map((r) => Number(r.summary.end_us)));
      rows.push({ P, T, n: lats.length, perSecond: lats.length / ((end - start) / 1e6), p50: q(lats, 0.5), p99: q(lats, 0.99), rssBefore, rssAfter });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printConcurrentTable(rows, what = 'mixed keys and mechanisms') {
  console.log(`\nconcurrent: P processes × T threads signing at once (test/native/concurrency.c, ${what}), one daemon`);
  console.log(`${'P×T'.padEnd(6)} ${'signatures'.padStart(10)} ${'sig/s'.padStart(8)} ${'p50 µs'.padStart(9)} ${'p99 µs'.padStart(9)} ${'daemon RSS before → after'.padStart(28)}`);
  for (const r of rows) {
    const rss = `${(r.rssBefore / 1024).toFixed(1)} → ${(r.rssAfter / 1024).toFixed(1)} MiB`;
    console.log(`${`${r.P}×${r.T}`.padEnd(6)} ${String(r.n).padStart(10)} ${r.perSecond.toFixed(0).padStart(8)} ${r.p50.toFixed(0).padStart(9)} ${r.p99.toFixed(0).padStart(9)} ${rss.padStart(28)}`);
  }
}

// standalone
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { createToken } = await import(join(root, 'lib/softhsm/token-setup.js'));
  const { startDaemon } = await import(join(root, 'lib/demo/daemon-process.js'));
  const { modulePath } = await import(join(root, 'lib/native/loader.js'));
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
  try {
    console.log(`creating a SoftHSMv2 token in ${dir} …`);
    const token = await createToken({
      stateDir: join(dir, 'token'),
      tokenLabel: 'bench',
      keys: [
        { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '02' },
        { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '01' },
      ],
    });
    const socket = join(dir, 'signbridge.sock');
    const daemon = await startDaemon({
      socket, softhsmConf: token.softhsmConf, library: token.library, tokenLabel: token.tokenLabel, pinFile: token.pinFile,
      logFile: join(dir, 'daemon.log'), extraArgs: ['--log-level', 'warn'],
    });
    try {
      printConcurrentTable(await concurrentRows({ module: modulePath(), socket, daemonPid: daemon.pid }), 'RSA-3072 and P-256, every mechanism');
    } finally {
      await daemon.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
