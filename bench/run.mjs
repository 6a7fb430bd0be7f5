// npm run bench [-- --json out.json] [-- --no-remote] — the cost of a signature through signbridge
// next to the same signature made directly on SoftHSMv2 and through p11-kit's own
// PKCS#11-over-unix-socket forwarding, all timed by the same C loop (bench/sign-loop.c); then the
// disk's own sync time, daemon start-up, concurrency, remote signing behind a latency proxy, and
// the daemon's memory. Every target of docs/performance.md is printed with PASS or MISS. Asserts
// nothing (speed is measured here, not in the tests). The machine is shared and noisy: compare
// rows of one run (the ratios), not absolute times across runs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo, printMachine } from './machine.mjs';
import { CKM_ECDSA, CKM_SHA256_RSA_PKCS, buildSignLoop, dsyncAppendP50, printSequential, roundTripRows, sequentialRows, startP11kit } from './sequential.mjs';
import { printTargets, targets } from './targets.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({ options: { json: { type: 'string' }, 'no-remote': { type: 'boolean' } } });
const { createToken } = await import(join(root, 'lib/softhsm/token-setup.js'));
const { startDaemon } = await import(join(root, 'lib/demo/daemon-process.js'));
const { modulePath } = await import(join(root, 'lib/native/loader.js'));
const { buildClient, concurrentRows, printConcurrentTable, runClientRow } = await import('./concurrent.mjs');
const { daemonStartup } = await import('./startup.mjs');

const COUNT = Number(process.env.BENCH_COUNT ?? 3000);
const KEYS = [
  { name: 'EC P-256', idHex: '02', mech: CKM_ECDSA, mechName: 'CKM_ECDSA' },
  { name: 'RSA-3072', idHex: '01', mech: CKM_SHA256_RSA_PKCS, mechName: 'CKM_SHA256_RSA_PKCS' },
];

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

const dir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
const result = { machine: machineInfo(), count: COUNT };
printMachine(result.machine);
const loop = buildSignLoop(dir);
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

// Two daemons: the audit log on tmpfs (the default place beside the socket in $XDG_RUNTIME_DIR is
// a tmpfs on systemd machines) and on this machine's disk (root and CI: /tmp/signbridge-<uid>/).
const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/sb-bench-') : mkdtempSync(join(tmpdir(), 'sb-bench-shm-'));
const daemonOpts = (socket, audit, log, env = {}) => ({
  socket, softhsmConf: token.softhsmConf, library: token.library, tokenLabel: token.tokenLabel, pinFile: token.pinFile,
  logFile: join(dir, log), extraArgs: ['--log-level', 'warn', '--audit-log', audit], env,
});
const daemon = await startDaemon(daemonOpts(join(dir, 'tmpfs.sock'), join(shm, 'audit.log'), 'daemon-tmpfs.log'));
const diskDaemon = await startDaemon(daemonOpts(join(dir, 'disk.sock'), join(dir, 'audit', 'audit.log'), 'daemon-disk.log'));
// the same as the first with the native signing path off: what it saves, in the same run
const jsDaemon = await startDaemon(daemonOpts(join(dir, 'js.sock'), join(shm, 'audit-js.log'), 'daemon-js.log', { SIGNBRIDGE_NATIVE_SIGN: '0' }));
const p11kit = await startP11kit(dir, token, { ...process.env, SOFTHSM2_CONF: token.softhsmConf });
if (!p11kit) console.log('p11-kit-client.so not found: no p11-kit rows (apt-get install -y p11-kit p11-kit-modules)');

try {
  result.rssBeforeKb = rssKb(daemon.pid);
  result.sequential = sequentialRows({ loop, count: COUNT, token, pin, p11kit, sockets: { tmpfs: join(dir, 'tmpfs.sock'), disk: join(dir, 'disk.sock'), js: join(dir, 'js.sock') }, module: modulePath(), keys: KEYS });
  result.diskDsyncP50Us = dsyncAppendP50(join(dir, 'audit'));
  result.tmpfsDsyncP50Us = dsyncAppendP50(shm);
  printSequential(result.sequential, COUNT);
  result.roundTrip = await roundTripRows(dir, COUNT);
  console.log(`\none 64-byte request and reply over a unix socket, no signing (the floor under any forwarding), p50: C client ↔ C epoll server ${result.roundTrip.c_us.toFixed(1)} µs, C client ↔ Node net server ${result.roundTrip.node_us.toFixed(1)} µs`);
  console.log(`\n200-byte O_DSYNC append (one audit record), p50: disk ${result.diskDsyncP50Us.toFixed(1)} µs (${join(dir, 'audit')}), tmpfs ${result.tmpfsDsyncP50Us.toFixed(1)} µs`);

  result.startup = await daemonStartup(dir, token);
  console.log(`\ndaemon start-up (--backend pkcs11, spawn → HELLO + GET_INVENTORY lists ${result.startup.keys} keys): p50 ${result.startup.p50_ms.toFixed(0)} ms, min ${result.startup.min_ms.toFixed(0)} ms over ${result.startup.runs} starts`);

  // P processes × T threads at once against the tmpfs daemon (bench/concurrent.mjs)
  result.concurrent = await concurrentRows({ module: modulePath(), socket: join(dir, 'tmpfs.sock'), daemonPid: daemon.pid });
  printConcurrentTable(result.concurrent, 'RSA-3072 and P-256, every mechanism');
  result.rssAfterKb = rssKb(daemon.pid);
  console.log(`\ndaemon RSS: ${(result.rssBeforeKb / 1024).toFixed(1)} MiB before the rows, ${(result.rssAfterKb / 1024).toFixed(1)} MiB after the sequential and concurrent rows`);

  if (!opts['no-remote']) {
    const { remoteRows, printRemote } = await import('./remote.mjs');
    result.remote = await remoteRows({
      dir: join(dir, 'remote'),
      module: modulePath(),
      local: { token, keyLabel: 'ec-p256', keyId: '02' },
      concurrencyExe: buildClient(dir),
      runConcurrent: runClientRow,
    });
    printRemote(result.remote);
  }
  const { verifyDigestRows, printVerifyDigest } = await import('./verify-digest.mjs');
  result.verifyDigest = verifyDigestRows();
  printVerifyDigest(result.verifyDigest);
  const { cliStartupRows, printCliStartup } = await import('./cli-startup.mjs');
  result.cliStartup = cliStartupRows();
  printCliStartup(result.cliStartup);

  result.targets = targets(result);
  printTargets(result.targets);
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
    console.log(`\nevery row: ${opts.json} (node bench/chart.mjs ${opts.json} docs/performance.svg draws the chart)`);
  }
} finally {
  p11kit?.stop();
  await daemon.stop();
  await diskDaemon.stop();
  await jsDaemon.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
