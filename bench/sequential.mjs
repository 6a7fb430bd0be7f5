// The sequential rows of `npm run bench`: one C loop (bench/sign-loop.c: C_SignInit + C_Sign, p50
// of BENCH_COUNT) through SoftHSMv2 directly, p11-kit's forwarding (p11-kit server +
// p11-kit-client.so) and signbridge with its audit log on tmpfs and on disk; plus the disk's own
// synchronous write time, measured in the same run (the audit record's cost on that disk).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CKM_ECDSA = 0x1041;
export const CKM_SHA256_RSA_PKCS = 0x40;
export const P11KIT_CLIENT = ['/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so', '/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so'].find(existsSync);

export function pkcs11Include() {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
}

export function buildSignLoop(dir) {
  const exe = join(dir, 'sign-loop');
  execFileSync('cc', ['-O2', '-std=c11', '-D_POSIX_C_SOURCE=200809L', '-I', pkcs11Include(), join(root, 'bench/sign-loop.c'), '-o', exe, '-ldl']);
  return exe;
}

/** One sign-loop run: { p50_us, p90_us, p99_us, mean_us, n }. */
export function measure(loop, module, idHex, mech, count, env) {
  const r = spawnSync(loop, [module, idHex, mech.toString(16), String(count)], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sign-loop failed on ${module}: ${r.stderr}`);
  return Object.fromEntries(r.stdout.trim().split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
}

/** p50 of `n` 200-byte O_DSYNC appends in `dir` (what one audit record costs there), µs. */
export function dsyncAppendP50(dir, n = 500) {
  const d = mkdtempSync(join(dir, 'sb-dsync-'));
  try {
    const fd = openSync(join(d, 'probe.log'), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o600);
    const line = Buffer.alloc(200, 0x61);
    const t = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      writeSync(fd, line);
      t.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    closeSync(fd);
    t.sort((a, b) => a - b);
    return t[t.length >> 1];
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** p11-kit server exporting the token on a unix socket; { address, stop() } or undefined without p11-kit-client.so. */
export async function startP11kit(dir, token, baseEnv) {
  if (!P11KIT_CLIENT) return undefined;
  const name = join(dir, 'p11kit.sock');
  const child = spawn('p11-kit', ['server', '-f', '-n', name, '--provider', token.library, `pkcs11:token=${token.tokenLabel}`], { env: baseEnv, stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(name); i++) await new Promise((r) => setTimeout(r, 50));
  return { address: `unix:path=${name}`, stop: () => child.kill('SIGTERM') };
}

/** Median of numbers. */
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * For each key: direct, p11-kit, signbridge (tmpfs audit), signbridge (disk audit). The paths take
 * turns: `rounds` rounds of count/rounds signatures each, path after path, so a slow spell of this
 * shared machine lands on every path instead of on one row; a row's p50/p90/p99 are the medians of
 * its rounds' (`round_p50_us` keeps each round's p50). Rows carry `overhead` = p50 − the same key's
 * direct p50.
 */
export function sequentialRows({ loop, count, token, pin, p11kit, sockets, module, keys, rounds = 5 }) {
  const baseEnv = { ...process.env, SOFTHSM2_CONF: token.softhsmConf };
  const rows = [];
  const per = Math.max(100, Math.round(count / rounds));
  for (const k of keys) {
    const paths = [
      { id: 'direct', path: 'SoftHSMv2 directly (the floor)', module: token.library, env: { ...baseEnv, SIGN_LOOP_PIN: pin } },
      ...(p11kit ? [{ id: 'p11kit', path: 'p11-kit server + p11-kit-client.so', module: P11KIT_CLIENT, env: { ...baseEnv, SIGN_LOOP_PIN: pin, P11_KIT_SERVER_ADDRESS: p11kit.address } }] : []),
      { id: 'sb_tmpfs', path: 'signbridge, audit log on tmpfs', module, env: { ...process.env, SIGNBRIDGE_SOCKET: sockets.tmpfs } },
      ...(sockets.js ? [{ id: 'sb_js', path: 'signbridge, tmpfs, JavaScript path only', module, env: { ...process.env, SIGNBRIDGE_SOCKET: sockets.js } }] : []),
      { id: 'sb_disk', path: 'signbridge, audit log on disk', module, env: { ...process.env, SIGNBRIDGE_SOCKET: sockets.disk } },
    ];
    const runs = new Map(paths.map((p) => [p.id, []]));
    for (let r = 0; r < rounds; r++) for (const p of paths) runs.get(p.id).push(measure(loop, p.module, k.idHex, k.mech, per, p.env));
    const stat = (id) => {
      const rs = runs.get(id);
      return {
        p10_us: median(rs.map((x) => x.p10_us)), p50_us: median(rs.map((x) => x.p50_us)), p90_us: median(rs.map((x) => x.p90_us)), p99_us: median(rs.map((x) => x.p99_us)),
        mean_us: median(rs.map((x) => x.mean_us)), n: rs.reduce((a, x) => a + x.n, 0), round_p50_us: rs.map((x) => x.p50_us),
      };
    };
    const direct = stat('direct');
    for (const p of paths) {
      const r = p.id === 'direct' ? direct : stat(p.id);
      // p10 beside p50: the token's own RSA time here is bimodal (two clusters ≈ 1 ms apart), and a
      // row's p50 can fall in either; the fast cluster's edge (p10) does not jump
      rows.push({ key: k.name, mech: k.mechName, path: p.path, id: p.id, ...r, overhead: p.id === 'direct' ? 0 : r.p50_us - direct.p50_us, overhead_p10: p.id === 'direct' ? 0 : r.p10_us - direct.p10_us });
    }
  }
  return rows;
}

export function printSequential(rows, count) {
  const fmt = (n, w) => String(typeof n === 'number' ? n.toFixed(1) : n).padStart(w);
  const rounds = rows[0]?.round_p50_us?.length ?? 1;
  console.log(`\nC_SignInit + C_Sign, sequential, ${count} signatures per row in ${rounds} rounds taken in turn by the paths; medians of the rounds, µs`);
  console.log(`${'key'.padEnd(9)} ${'mechanism'.padEnd(20)} ${'path'.padEnd(40)} ${'p10'.padStart(8)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'p50 overhead'.padStart(13)} ${'p10 overhead'.padStart(13)}`);
  for (const r of rows) {
    console.log(`${r.key.padEnd(9)} ${r.mech.padEnd(20)} ${r.path.padEnd(40)} ${fmt(r.p10_us, 8)} ${fmt(r.p50_us, 8)} ${fmt(r.p90_us, 8)} ${fmt(r.p99_us, 8)} ${fmt(r.overhead, 13)} ${fmt(r.overhead_p10, 13)}`);
  }
}

/**
 * The floor under any forwarding: one 64-byte request and reply over a unix socket, no signing —
 * a C client against a C epoll server and against Node's net echo server, taking turns like the
 * signature rows. { c_us, node_us } (medians of the rounds' p50s).
 */
export async function roundTripRows(dir, count = 3000, rounds = 5) {
  const exe = join(dir, 'echo');
  execFileSync('cc', ['-O2', '-std=c11', '-D_POSIX_C_SOURCE=200809L', join(root, 'bench/echo.c'), '-o', exe]);
  const nodeSock = join(dir, 'echo-node.sock');
  const node = spawn(process.execPath, ['-e', `const net = require('node:net'); net.createServer((c) => c.on('data', (d) => c.write(d))).listen(${JSON.stringify(nodeSock)}, () => console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => node.stdout.once('data', r));
  const per = Math.max(100, Math.round(count / rounds));
  const c = [];
  const n = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const cSock = join(dir, `echo-c-${r}.sock`);
      const srv = spawn(exe, ['server', cSock], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((res) => srv.stdout.once('data', res));
      const one = (sock) => Number(/p50_us=([\d.]+)/.exec(execFileSync(exe, ['client', sock, String(per)], { encoding: 'utf8' }))[1]);
      c.push(one(cSock));
      srv.kill();
      n.push(one(nodeSock));
    }
  } finally {
    node.kill();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  return { c_us: median(c), node_us: median(n) };
}
