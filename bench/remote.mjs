// Remote rows of `npm run bench`: the STM emulator (a child process) behind bench/latency-proxy.mjs
// with RTT 20 and 100 ms, a daemon --backend stm pointed at the proxy (mTLS), and per RTT:
//  - whole tool processes, one after another: `pkcs11-tool --sign` and `osslsigncode sign` through
//    signbridge, next to the same tool on a local SoftHSMv2 token (measured once; no network);
//  - the seed's way: one `curl` per hash (mTLS, a new connection and TLS handshake each time);
//  - N C threads (test/native/concurrency.c) signing in sequence through one daemon, N = 1…32,
//    with the connections the daemon opened to the proxy;
//  - N whole pkcs11-tool processes at once.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLatencyProxy } from './latency-proxy.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'lib/cli/index.js');
const { startDaemon } = await import(join(root, 'lib/demo/daemon-process.js'));
const { signArgs } = await import(join(root, 'lib/demo/osslsigncode.js'));
const PE = '/usr/share/win32/win32-loader.exe';
const p50 = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : NaN);

/** CPU time (user + system) a process has used so far, ms (/proc/<pid>/stat, clock ticks of 10 ms). */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

/** p50 of the daemon's own backend time (the audit outcome lines' backend_us) after line `from`, ms. */
function backendP50Ms(auditFile, from) {
  const us = readFileSync(auditFile, 'utf8').split('\n').slice(from).filter((l) => l.includes('"event":"outcome"')).map((l) => JSON.parse(l).backend_us);
  return us.length ? p50(us) / 1000 : NaN;
}
const lineCount = (f) => readFileSync(f, 'utf8').split('\n').length - 1;

/** The emulator as a child process: { url, env, ids: alias → keypair id, stop() }. */
async function startEmulatorChild(stateDir) {
  const child = spawn(process.execPath, [cli, 'emulator', '--state-dir', stateDir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  for (let i = 0; i < 600 && !/Stop with/.test(out); i++) {
    if (child.exitCode !== null) throw new Error(`the STM emulator exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (https:\/\/[^\s]+)/.exec(out)?.[1];
  if (!url) throw new Error(`the STM emulator did not start: ${out}${err}`);
  const ids = Object.fromEntries([...out.matchAll(/(\S+) \(\w+, id ([^)]+)\)/g)].map((m) => [m[1], m[2]]));
  // env.sh: `export NAME='value'` lines (the secrets stay in files and this process's memory)
  const env = Object.fromEntries(
    [...readFileSync(join(stateDir, 'env.sh'), 'utf8').matchAll(/^export (\w+)='((?:[^']|'\\'')*)'$/gm)].map((m) => [m[1], m[2].replace(/'\\''/g, "'")]),
  );
  const exited = new Promise((r) => child.once('exit', r));
  return { url, env, ids, pid: child.pid, stop: async () => (child.kill('SIGTERM'), await exited) };
}

/** Wall time of one whole process, ms. Asynchronous: the latency proxy runs in this process. */
async function timeProcess(cmd, args, env) {
  const t0 = process.hrtime.bigint();
  await runAsync(cmd, args, env);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** `n` timed runs after one warm-up (page cache, the daemon's connections); failed runs are counted, not timed. */
async function timeRuns(n, make, env, failures) {
  const ms = [];
  for (let i = 0; i <= n; i++) {
    try {
      const t = await timeProcess(...make(i), env);
      if (i > 0) ms.push(t);
    } catch (e) {
      failures.push(redact(e.message));
    }
  }
  return ms;
}

// pkcs11-tool takes the local token's PIN only on its command line: keep it out of what we print
let secretArgs = [];
const redact = (text) => secretArgs.reduce((t, s) => t.split(s).join('<PIN>'), text);

function runAsync(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err}${out}`))));
  });
}

/**
 * The tool command lines: through `module` (signbridge or libsofthsm2.so with a PIN file).
 * pkcs11-tool 0.23 picks the first private key for --sign whatever --label says (its C_FindObjects
 * template is the class alone): with `keyId` it is told the key by --id, which it does honour.
 */
function tools(dir, module, tokenLabel, keyLabel, pinFile, keyId) {
  const hash = join(dir, 'hash.bin');
  writeFileSync(hash, Buffer.alloc(32, 0x5a));
  // pkcs11-tool takes a PIN only as an argument: only the bench's own throwaway token needs one
  const pin = pinFile ? readFileSync(pinFile, 'utf8').trim() : undefined;
  if (pin) secretArgs = [pin];
  const login = pin ? ['--login', '--pin', pin] : [];
  return {
    pkcs11tool: (i) => ['pkcs11-tool', ['--module', module, '--token-label', tokenLabel, ...login, '--sign', '--mechanism', 'ECDSA', ...(keyId ? ['--id', keyId] : ['--label', keyLabel]), '-i', hash, '-o', join(dir, `sig-${i}.bin`)]],
    osslsigncode: (i) => ['osslsigncode', signArgs({ module, tokenLabel, keyLabel, input: PE, output: join(dir, `signed-${i}.exe`), pinFile })],
  };
}

/**
 * `local`: { token (bench SoftHSMv2 token: tokenLabel, library, softhsmConf, pinFile), keyLabel }.
 * `concurrencyExe`: the built test/native/concurrency.c. Returns { local, rtts: [...] }.
 */
export async function remoteRows({ dir, module, local, concurrencyExe, runConcurrent, rtts = [20, 100], runs = 10, parallel = [1, 4, 16, 32] }) {
  const out = { local: {}, rtts: [], failures: [] };
  const localEnv = { ...process.env, SOFTHSM2_CONF: local.token.softhsmConf };
  mkdirSync(join(dir, 'local'), { recursive: true });
  const lt = tools(join(dir, 'local'), local.token.library, local.token.tokenLabel, local.keyLabel, local.token.pinFile, local.keyId);
  for (const tool of ['pkcs11tool', 'osslsigncode']) {
    out.local[tool] = { p50_ms: p50(await timeRuns(runs, lt[tool], localEnv, out.failures)), runs };
  }

  const emu = await startEmulatorChild(join(dir, 'emulator'));
  try {
    for (const rtt of rtts) {
      const proxy = await startLatencyProxy({ rttMs: rtt, upstreamPort: Number(new URL(emu.url).port) });
      const ddir = join(dir, `stm-${rtt}`);
      mkdirSync(ddir, { recursive: true, mode: 0o700 });
      const daemon = await startDaemon({
        backend: 'stm',
        socket: join(ddir, 's.sock'),
        logFile: join(ddir, 'daemon.log'),
        env: { SM_HOST: proxy.url, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE },
        extraArgs: ['--log-level', 'warn', '--audit-log', join(ddir, 'audit.log')],
        timeoutMs: 60_000,
      });
      const row = { rtt_ms: rtt };
      try {
        const env = { ...process.env, SIGNBRIDGE_SOCKET: daemon.socket };
        const tokenOf = await runAsync('pkcs11-tool', ['--module', module, '--list-token-slots'], env);
        const label = /token label\s*:\s*(.+)/.exec(tokenOf)?.[1]?.trim() ?? 'codesign-ec';
        const sb = tools(ddir, module, label, 'codesign-ec', undefined);
        const audit = join(ddir, 'audit.log');
        for (const tool of ['pkcs11tool', 'osslsigncode']) {
          const from = lineCount(audit);
          // backend_ms: the daemon's wait for STM (one round trip + the emulator), from its audit log
          row[tool] = { p50_ms: p50(await timeRuns(runs, sb[tool], env, out.failures)), local_ms: out.local[tool].p50_ms, budget_ms: rtt + out.local[tool].p50_ms + 2, backend_ms: backendP50Ms(audit, from) };
        }
        row.curl = { p50_ms: p50(await timeRuns(runs, () => ['curl', curlArgs(proxy.url, emu, 'codesign-ec')], process.env, out.failures)) };
        row.parallel = [];
        for (const n of parallel) {
          proxy.resetStats();
          const cpu0 = { emulator: cpuMs(emu.pid), daemon: cpuMs(daemon.pid), bench: process.cpuUsage() };
          const r = await runConcurrent(concurrencyExe, [module, '--threads', String(n), '--count', String(Math.max(5, Math.ceil(400 / n / (rtt / 20)))), '--keys', 'codesign-ec', '--quiet'], env);
          const b = process.cpuUsage(cpu0.bench);
          // CPU ms per signature of each process: where the time goes when the rate saturates
          const cpuPerSig = {
            emulator: (cpuMs(emu.pid) - cpu0.emulator) / r.n,
            daemon: (cpuMs(daemon.pid) - cpu0.daemon) / r.n,
            proxy: (b.user + b.system) / 1000 / r.n,
          };
          row.parallel.push({ n, perSecond: r.perSecond, target: (0.8 * n) / (rtt / 1000), p50_ms: r.p50 / 1000, newConnections: proxy.stats.connections, openConnections: proxy.stats.open, cpuPerSig });
        }
        row.processes = [];
        for (const n of parallel) {
          const t0 = process.hrtime.bigint();
          const ok = await Promise.all(Array.from({ length: n }, (_, i) => runAsync(...sb.pkcs11tool(`p${n}-${i}`), env).then(() => 1, (e) => (out.failures.push(redact(e.message)), 0))));
          if (ok.includes(0)) continue;
          row.processes.push({ n, perSecond: n / (Number(process.hrtime.bigint() - t0) / 1e9) });
        }
      } finally {
        await daemon.stop();
        await proxy.close();
      }
      out.rtts.push(row);
    }
  } finally {
    await emu.stop();
  }
  return out;
}

/** The seed's way: one curl process per hash, mTLS, a new connection (and handshake) each time. */
function curlArgs(url, emu, alias) {
  const id = emu.ids[alias];
  const body = JSON.stringify({ hash: Buffer.alloc(32, 0x5a).toString('base64'), sig_alg: 'SHA256withECDSA' });
  return ['-sS', '--fail', '--cacert', emu.env.SIGNBRIDGE_STM_CA_FILE, '--cert', emu.env.SIGNBRIDGE_STM_CLIENT_CERT_PEM, '--key', emu.env.SIGNBRIDGE_STM_CLIENT_KEY_PEM,
    '-H', 'content-type: application/json', '-d', body, `${url}/signingmanager/api/v1/keypairs/${id}/sign`, '-o', '/dev/null'];
}

export function printRemote(r) {
  for (const f of r.failures.slice(0, 5)) console.log(`FAILED: ${f.split('\n').slice(0, 3).join(' | ')}`);
  if (r.failures.length) console.log(`${r.failures.length} tool run(s) failed; their rows are timed over the runs that worked`);
  console.log('\nremote: daemon --backend stm → latency proxy → STM emulator (mTLS), whole processes one after another, p50 ms');
  console.log(`local SoftHSMv2 token: pkcs11-tool --sign ${r.local.pkcs11tool.p50_ms.toFixed(1)} ms, osslsigncode sign ${r.local.osslsigncode.p50_ms.toFixed(1)} ms`);
  for (const row of r.rtts) {
    console.log(`RTT ${row.rtt_ms} ms:`);
    for (const tool of ['pkcs11tool', 'osslsigncode']) {
      const t = row[tool];
      console.log(`  ${tool.padEnd(13)} ${t.p50_ms.toFixed(1).padStart(7)} ms   target ≤ RTT + local + 2 = ${t.budget_ms.toFixed(1)} ms  ${t.p50_ms <= t.budget_ms ? 'PASS' : 'MISS'}  (the daemon's wait for STM: p50 ${t.backend_ms.toFixed(1)} ms)`);
    }
    console.log(`  curl per hash (the seed's way: new mTLS connection each) ${row.curl.p50_ms.toFixed(1)} ms`);
    console.log('  N C threads through one daemon: sig/s (target ≥ 0.8·N/RTT), p50 ms, connections the daemon opened');
    for (const p of row.parallel) {
      const c = p.cpuPerSig;
      console.log(`    N=${String(p.n).padEnd(3)} ${p.perSecond.toFixed(0).padStart(6)} sig/s  target ${p.target.toFixed(0).padStart(5)}  ${p.perSecond >= p.target ? 'PASS' : 'MISS'}  p50 ${p.p50_ms.toFixed(1)} ms  connections ${p.newConnections} new, ${p.openConnections} open; ` +
        `CPU ms per signature: emulator ${c.emulator.toFixed(1)}, daemon ${c.daemon.toFixed(1)}, proxy ${c.proxy.toFixed(1)}`);
    }
    console.log(`  N pkcs11-tool processes at once: ${row.processes.map((p) => `N=${p.n} ${p.perSecond.toFixed(0)} sig/s`).join(', ')}`);
  }
}
