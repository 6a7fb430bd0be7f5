// npm run bench — the cost of a signature through signbridge, next to the same signature made
// directly on SoftHSMv2 and through p11-kit's own PKCS#11-over-unix-socket forwarding
// (p11-kit server + p11-kit-client.so), all timed by the same C loop (bench/sign-loop.c).
// Prints a table; asserts nothing (speed is measured here, not in the tests).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createToken } = await import(join(root, 'lib/softhsm/token-setup.js'));
const { startDaemon } = await import(join(root, 'lib/demo/daemon-process.js'));
const { modulePath } = await import(join(root, 'lib/native/loader.js'));

const COUNT = Number(process.env.BENCH_COUNT ?? 3000);
const CKM_ECDSA = 0x1041;
const CKM_SHA256_RSA_PKCS = 0x40;
const P11KIT_CLIENT = ['/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so', '/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so'].find(existsSync);

const dir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
const require = createRequire(import.meta.url);
const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
const loop = join(dir, 'sign-loop');
execFileSync('cc', ['-O2', '-std=c11', '-D_POSIX_C_SOURCE=200809L', '-I', include, join(root, 'bench/sign-loop.c'), '-o', loop, '-ldl']);

console.log(`creating a SoftHSMv2 token in ${dir} …`);
const token = await createToken({
  stateDir: join(dir, 'token'),
  tokenLabel: 'bench',
  keys: [
    { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '02' },
    { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '01' },
  ],
});
const pin = readFileSync(token.pinFile, 'utf8').trim();
const baseEnv = { ...process.env, SOFTHSM2_CONF: token.softhsmConf };

function measure(module, idHex, mech, env) {
  const r = spawnSync(loop, [module, idHex, mech.toString(16), String(COUNT)], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sign-loop failed on ${module}: ${r.stderr}`);
  return Object.fromEntries(r.stdout.trim().split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

// Every signature is in the audit log, on disk before the signature is returned (O_DSYNC): its
// cost is the audit file system's sync time. Two daemons: the audit log on tmpfs (the default
// place, beside the socket in $XDG_RUNTIME_DIR, is a tmpfs on systemd machines) and on this
// machine's disk (what --audit-log <persistent path> costs).
const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/sb-bench-') : mkdtempSync(join(tmpdir(), 'sb-bench-shm-'));
const socket = join(dir, 'signbridge.sock');
const daemon = await startDaemon({
  socket,
  softhsmConf: token.softhsmConf,
  library: token.library,
  tokenLabel: token.tokenLabel,
  pinFile: token.pinFile,
  logFile: join(dir, 'daemon.log'),
  extraArgs: ['--log-level', 'warn', '--audit-log', join(shm, 'audit.log')],
});
const diskSocket = join(dir, 'disk.sock');
const diskDaemon = await startDaemon({
  socket: diskSocket,
  softhsmConf: token.softhsmConf,
  library: token.library,
  tokenLabel: token.tokenLabel,
  pinFile: token.pinFile,
  logFile: join(dir, 'daemon-disk.log'),
  extraArgs: ['--log-level', 'warn', '--audit-log', join(dir, 'audit.log')],
});

let p11kit;
const rows = [];
try {
  if (P11KIT_CLIENT) {
    const name = join(dir, 'p11kit.sock');
    p11kit = spawn('p11-kit', ['server', '-f', '-n', name, '--provider', token.library, `pkcs11:token=${token.tokenLabel}`], {
      env: baseEnv,
      stdio: 'ignore',
    });
    for (let i = 0; i < 100 && !existsSync(name); i++) await new Promise((r) => setTimeout(r, 50));
    p11kit.address = `unix:path=${name}`;
  }
  const rssBefore = rssKb(daemon.pid);
  for (const [keyName, idHex, mech, mechName] of [
    ['EC P-256', '02', CKM_ECDSA, 'CKM_ECDSA'],
    ['RSA-3072', '01', CKM_SHA256_RSA_PKCS, 'CKM_SHA256_RSA_PKCS'],
  ]) {
    const direct = measure(token.library, idHex, mech, { ...baseEnv, SIGN_LOOP_PIN: pin });
    rows.push({ key: keyName, mech: mechName, path: 'SoftHSMv2 directly (the floor)', ...direct, overhead: 0 });
    if (p11kit) {
      const r = measure(P11KIT_CLIENT, idHex, mech, { ...baseEnv, SIGN_LOOP_PIN: pin, P11_KIT_SERVER_ADDRESS: p11kit.address });
      rows.push({ key: keyName, mech: mechName, path: 'p11-kit server + p11-kit-client.so', ...r, overhead: r.p50_us - direct.p50_us });
    }
    const sb = measure(modulePath(), idHex, mech, { ...process.env, SIGNBRIDGE_SOCKET: socket });
    rows.push({ key: keyName, mech: mechName, path: 'signbridge, audit log on tmpfs', ...sb, overhead: sb.p50_us - direct.p50_us });
    const sbDisk = measure(modulePath(), idHex, mech, { ...process.env, SIGNBRIDGE_SOCKET: diskSocket });
    rows.push({ key: keyName, mech: mechName, path: 'signbridge, audit log on disk (ext4)', ...sbDisk, overhead: sbDisk.p50_us - direct.p50_us });
  }
  const rssAfter = rssKb(daemon.pid);

  const fmt = (n, w) => String(typeof n === 'number' ? n.toFixed(1) : n).padStart(w);
  console.log(`\nC_SignInit + C_Sign, sequential, ${COUNT} signatures per row (after ${COUNT / 10 + 1} warm-up), µs`);
  console.log(`${'key'.padEnd(9)} ${'mechanism'.padEnd(20)} ${'path'.padEnd(36)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'p50 overhead'.padStart(13)}`);
  for (const r of rows) {
    console.log(`${r.key.padEnd(9)} ${r.mech.padEnd(20)} ${r.path.padEnd(36)} ${fmt(r.p50_us, 8)} ${fmt(r.p90_us, 8)} ${fmt(r.p99_us, 8)} ${fmt(r.overhead, 13)}`);
  }
  console.log(`\ndaemon RSS: ${rssBefore} kB before, ${rssAfter} kB after ${Math.round(rows.filter((r) => r.path.startsWith('signbridge, audit log on tmpfs')).length * COUNT * 1.1)} signatures`);
  // P processes × T threads at once against the same daemon (bench/concurrent.mjs)
  const { concurrentRows, printConcurrentTable } = await import('./concurrent.mjs');
  printConcurrentTable(await concurrentRows({ module: modulePath(), socket, daemonPid: daemon.pid }), 'RSA-3072 and P-256, every mechanism');
  const { cliStartupRows, printCliStartup } = await import('./cli-startup.mjs');
  printCliStartup(cliStartupRows());
} finally {
  p11kit?.kill('SIGTERM');
  await daemon.stop();
  await diskDaemon.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
