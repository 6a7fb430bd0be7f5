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

/**
 * For each key: direct, p11-kit, signbridge (tmpfs audit), signbridge (disk audit). Rows carry
 * `overhead` = p50 − the same key's direct p50 (same run).
 */
export function sequentialRows({ loop, count, token, pin, p11kit, sockets, module, keys }) {
  const baseEnv = { ...process.env, SOFTHSM2_CONF: token.softhsmConf };
  const rows = [];
  for (const k of keys) {
    const row = (path, id, r, direct) => rows.push({ key: k.name, mech: k.mechName, path, id, ...r, overhead: direct ? r.p50_us - direct.p50_us : 0 });
    const direct = measure(loop, token.library, k.idHex, k.mech, count, { ...baseEnv, SIGN_LOOP_PIN: pin });
    row('SoftHSMv2 directly (the floor)', 'direct', direct);
    if (p11kit) row('p11-kit server + p11-kit-client.so', 'p11kit', measure(loop, P11KIT_CLIENT, k.idHex, k.mech, count, { ...baseEnv, SIGN_LOOP_PIN: pin, P11_KIT_SERVER_ADDRESS: p11kit.address }), direct);
    row('signbridge, audit log on tmpfs', 'sb_tmpfs', measure(loop, module, k.idHex, k.mech, count, { ...process.env, SIGNBRIDGE_SOCKET: sockets.tmpfs }), direct);
    row('signbridge, audit log on disk', 'sb_disk', measure(loop, module, k.idHex, k.mech, count, { ...process.env, SIGNBRIDGE_SOCKET: sockets.disk }), direct);
  }
  return rows;
}

export function printSequential(rows, count) {
  const fmt = (n, w) => String(typeof n === 'number' ? n.toFixed(1) : n).padStart(w);
  console.log(`\nC_SignInit + C_Sign, sequential, ${count} signatures per row (after ${Math.floor(count / 10) + 1} warm-up), µs`);
  console.log(`${'key'.padEnd(9)} ${'mechanism'.padEnd(20)} ${'path'.padEnd(36)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'p50 overhead'.padStart(13)}`);
  for (const r of rows) {
    console.log(`${r.key.padEnd(9)} ${r.mech.padEnd(20)} ${r.path.padEnd(36)} ${fmt(r.p50_us, 8)} ${fmt(r.p90_us, 8)} ${fmt(r.p99_us, 8)} ${fmt(r.overhead, 13)}`);
  }
}
