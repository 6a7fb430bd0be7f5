// libFuzzer over the C++ codec (native/fuzz/fuzz_codec.cpp: frame header and framing reader,
// every message decoder, read_reply_body as the module calls it, the inventory model), built with
// -fsanitize=fuzzer,address,undefined and run for a bounded time, seeded with the golden frames
// (test/fixtures/frames/*.bin). Any crash, sanitizer report, leak, timeout or violated property
// fails the test; the fuzzer's findings are kept in the temp corpus/artifact dir named in the failure.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sanitizeBuild, sanitizerReports, type SanitizeBuild } from '../helpers/sanitize-build.js';

// Bounds (docs/hardening/hostile-input.md): CI time, not coverage, sets them.
const MAX_TOTAL_TIME_S = 20;
const MAX_RUNS = 3_000_000;
const MAX_LEN = 8192;

const frames = join(import.meta.dirname, '..', 'fixtures', 'frames');
let dir: string;
let build: SanitizeBuild;
let keep = false;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-libfuzzer-'));
  build = sanitizeBuild(['sb_fuzz_codec']);
}, 240_000);

afterAll(() => {
  if (dir && !keep && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
});

function fuzz(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = (MAX_TOTAL_TIME_S + 40) * 1000) {
  return new Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    const p = spawn(build.bin('sb_fuzz_codec'), args, {
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.length > 4 << 20) stderr = stderr.slice(-(1 << 20)); // libFuzzer is chatty; keep the end
    });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (status, signal) => {
      clearTimeout(t);
      resolve({ status, signal, stderr });
    });
  });
}

describe('libFuzzer: the C++ codec under ASan/UBSan', () => {
  it(`runs for ${MAX_TOTAL_TIME_S} s (at most ${MAX_RUNS} inputs) from the golden frames without a crash, leak or violated property`, async () => {
    const corpus = join(dir, 'corpus');
    const artifacts = join(dir, 'artifacts') + '/';
    mkdirSync(corpus);
    mkdirSync(artifacts);
    const seeds = readdirSync(frames).filter((f) => f.endsWith('.bin'));
    expect(seeds.length).toBeGreaterThan(5);
    for (const f of seeds) copyFileSync(join(frames, f), join(corpus, f));
    const r = await fuzz([
      `-max_total_time=${MAX_TOTAL_TIME_S}`, `-runs=${MAX_RUNS}`, `-max_len=${MAX_LEN}`, '-timeout=10',
      '-rss_limit_mb=2048', '-seed=1', '-print_final_stats=1', `-artifact_prefix=${artifacts}`, corpus,
    ]);
    const runs = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(r.stderr)?.[1] ?? NaN);
    const secs = Number(/Done \d+ runs in (\d+) second/.exec(r.stderr)?.[1] ?? NaN);
    const found = readdirSync(artifacts);
    if (r.status !== 0 || found.length > 0) keep = true;
    const tail = `${r.stderr.slice(-6000)}\n(corpus and crash artifacts kept in ${dir})`;
    expect(sanitizerReports(r.stderr), tail).toEqual([]);
    expect(r.stderr, tail).not.toMatch(/==\d+== ERROR: libFuzzer|signbridge fuzz property violated/);
    expect(found, tail).toEqual([]);
    expect(r.signal, tail).toBeNull();
    expect(r.status, tail).toBe(0);
    expect(runs).toBeGreaterThan(10_000);
    console.log(`libFuzzer: ${runs} inputs in ${secs} s, corpus grew from ${seeds.length} to ${readdirSync(corpus).length} files`);
  }, (MAX_TOTAL_TIME_S + 60) * 1000);

  it('the harness can fail: an ASan error planted behind SIGNBRIDGE_FUZZ_CANARY is caught as a crash', async () => {
    const input = join(dir, 'canary.bin');
    writeFileSync(input, Buffer.from('SBG1 canary'));
    const r = await fuzz([`-artifact_prefix=${dir}/`, input], { SIGNBRIDGE_FUZZ_CANARY: '1' }, 30_000);
    expect(r.status).not.toBe(0);
    expect(sanitizerReports(r.stderr).join('\n')).toMatch(/heap-buffer-overflow/);
  }, 40_000);
});
