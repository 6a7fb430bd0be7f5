// Concurrency (roadmap "Hardening: Concurrency"): 8 processes × 4 threads of the pthread client
// test/native/concurrency.c sign at once against ONE daemon serving the matrix token — RSA
// 2048/3072/4096 (PKCS#1, PSS, SHA*_RSA_PKCS*), EC P-256/P-384 (ECDSA, ECDSA_SHA*), Ed25519 (EdDSA,
// its own slot), single- and multi-part. Half the processes initialise the module with
// CKF_OS_LOCKING_OK, half with application mutex callbacks (real pthread mutexes, PKCS#11 v2.40
// §5.4 case 3); half give each thread its own sessions, half share one session per slot for
// C_FindObjects/C_GetAttributeValue (plus two reader-only threads). Every signature is verified
// with node:crypto against the key's certificate; zero errors; the daemon's RSS is read from
// /proc before and after and must stay within a generous bound (the numbers are printed).
import { X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive, buildConcurrencyClient, describeClient, quantile, rssKb, runClient, unverified, type ClientOptions, type ClientRun,
} from '../helpers/concurrency.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { mechanismsOf, type Family } from '../helpers/signing.js';
import { testToken } from '../helpers/token.js';

const PROCESSES = 8;
const THREADS = 4;
const PER_THREAD = 50;
const RSS_BOUND_KB = 64 * 1024;

let dir: string;
let exe: string;
let daemon: TestDaemon;
const keys = testToken('matrix').keys;
const pubs = new Map<string, KeyObject>(keys.map((k) => [k.label, new X509Certificate(k.certPem).publicKey]));

/** When a run fails: is the daemon still there, and what did it say last? */
function daemonState(): string {
  const log = (() => {
    try {
      return readFileSync(daemon.logFile, 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  })();
  return `daemon pid ${daemon.pid} ${alive(daemon.pid) ? 'is alive' : 'is GONE (crashed?)'}; last log lines:\n${log}`;
}

function expectClean(r: ClientRun, what: string): void {
  expect(r.errors, `${describeClient(r, what)}\n${daemonState()}`).toEqual([]);
  expect(r.status, `${describeClient(r, what)}\n${daemonState()}`).toBe(0);
  expect(unverified(r.sigs, (l) => pubs.get(l)), what).toEqual([]);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-concurrency-'));
  exe = buildConcurrencyClient(dir);
  daemon = await startTestDaemon({ token: 'matrix' });
});

afterAll(async () => {
  await daemon?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('many processes × many threads against one daemon (test/native/concurrency.c)', () => {
  it('warm-up: one process, 4 threads, signs with every key of both slots; every signature verifies', async () => {
    const r = await runClient(exe, signbridgeModule(), { threads: 4, count: 12, seed: 99 }, daemon.env);
    expectClean(r, 'warm-up');
    expect(r.sigs).toHaveLength(48);
    expect(new Set(r.sigs.map((s) => s.label))).toEqual(new Set(keys.map((k) => k.label)));
  });

  it(`${PROCESSES} processes × ${THREADS} threads × ${PER_THREAD} signatures: every signature verifies, zero errors, daemon RSS stays flat`, async () => {
    const specs: ClientOptions[] = Array.from({ length: PROCESSES }, (_, i) => ({
      threads: THREADS,
      count: PER_THREAD,
      locking: i % 2 === 1 ? 'mutex' : 'os',
      sessions: i >= PROCESSES / 2 ? 'shared' : 'own',
      ...(i >= PROCESSES / 2 ? { readers: 2 } : {}),
      seed: i + 1,
    }));
    const rssBefore = rssKb(daemon.pid);
    const t0 = Date.now();
    const runs = await Promise.all(specs.map((o) => runClient(exe, signbridgeModule(), o, daemon.env)));
    const wallMs = Date.now() - t0;
    const daemonAlive = alive(daemon.pid);
    const rssAfter = daemonAlive ? rssKb(daemon.pid) : NaN;

    // the numbers, for the report (docs/hardening/concurrency.md)
    const all = runs.flatMap((r) => r.sigs);
    const lat = all.map((s) => s.us / 1000);
    console.log(
      [
        `concurrency: ${PROCESSES} processes × ${THREADS} threads × ${PER_THREAD} = ${all.length} signatures in ${wallMs} ms ` +
          `(${((all.length / wallMs) * 1000).toFixed(0)}/s); latency p50 ${quantile(lat, 0.5).toFixed(1)} ms, ` +
          `p99 ${quantile(lat, 0.99).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms`,
        `daemon RSS: ${(rssBefore / 1024).toFixed(1)} MiB before, ${(rssAfter / 1024).toFixed(1)} MiB after ` +
          `(${((rssAfter - rssBefore) / 1024).toFixed(1)} MiB; bound +${RSS_BOUND_KB / 1024} MiB)`,
        'proc locking sessions readers sigs errors  p50 ms  p99 ms finds collisions mutex lock/unlock',
        ...runs.map((r, i) => {
          const s = r.summary;
          return `${String(i).padStart(4)} ${(s.locking ?? '?').padEnd(7)} ${(s.sessions ?? '?').padEnd(8)} ${(s.readers ?? '?').padStart(7)} ` +
            `${String(r.sigs.length).padStart(4)} ${String(r.errors.length).padStart(6)} ${(Number(s.p50_us) / 1000).toFixed(1).padStart(7)} ` +
            `${(Number(s.p99_us) / 1000).toFixed(1).padStart(7)} ${(s.finds ?? '?').padStart(5)} ${(s.collisions ?? '?').padStart(10)} ` +
            `${s.mutex_lock ?? '?'}/${s.mutex_unlock ?? '?'}`;
        }),
      ].join('\n'),
    );

    expect(daemonAlive, daemonState()).toBe(true);
    runs.forEach((r, i) => expectClean(r, `process ${i} (${specs[i]!.locking}, ${specs[i]!.sessions})`));
    expect(all).toHaveLength(PROCESSES * THREADS * PER_THREAD);

    // mixed for real: every key × mechanism of the matrix, single- and multi-part
    const family = (t: string): Family => (t === 'ed25519' ? 'ed25519' : t === 'ec' ? 'ec' : 'rsa');
    const want = keys.flatMap((k) => mechanismsOf(family(k.type)).map((m) => `${k.label} ${m.ckm}`)).sort();
    expect([...new Set(all.map((s) => `${s.label} ${s.ckm}`))].sort()).toEqual(want);
    expect(new Set(all.map((s) => s.mode))).toEqual(new Set(['single', 'multi']));

    for (const [i, r] of runs.entries()) {
      const s = r.summary;
      if (specs[i]!.locking === 'mutex') {
        // v2.40 §5.4 case 3: the module must lock with the application's callbacks, in pairs
        expect(Number(s.mutex_create), 'CreateMutex called').toBeGreaterThanOrEqual(1);
        expect(Number(s.mutex_lock), 'LockMutex used for the calls').toBeGreaterThan(THREADS * PER_THREAD);
        expect(s.mutex_unlock).toBe(s.mutex_lock);
        expect(s.mutex_destroy, 'every mutex destroyed by C_Finalize').toBe(s.mutex_create);
        expect(s.mutex_misuse, 'no relock / foreign unlock').toBe('0');
      } else {
        expect(s.mutex_create).toBe('0');
      }
      if (specs[i]!.sessions === 'shared') expect(Number(s.finds), 'searches on the shared session').toBeGreaterThan(THREADS * PER_THREAD);
    }

    expect(rssAfter - rssBefore, `daemon RSS grew from ${rssBefore} kB to ${rssAfter} kB`).toBeLessThan(RSS_BOUND_KB);
    // the daemon logged no failure while serving them
    const log = readFileSync(daemon.logFile, 'utf8');
    expect(log.split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(0, 5)).toEqual([]);
  });
});
