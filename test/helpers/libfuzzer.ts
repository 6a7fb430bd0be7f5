// The libFuzzer target over the C++ codec (native/fuzz/fuzz_codec.cpp), built with
// -fsanitize=fuzzer,address,undefined (sanitize-build.ts) and run for a bounded time from the
// golden frames (test/fixtures/frames/*.bin). Shared by the short run in the test suite
// (test/integration/fuzz-native.test.ts) and the long one, `npm run fuzz` (scripts/fuzz.ts).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, sanitizeBuild, sanitizerReports } from './sanitize-build.js';

export const FRAMES = join(root, 'test', 'fixtures', 'frames');

export interface FuzzProcess {
  status: number | null;
  signal: NodeJS.Signals | null;
  /** the end of libFuzzer's stderr (it is chatty) */
  stderr: string;
}

/** Builds sb_fuzz_codec (incremental) and returns its path. */
export function buildFuzzer(): string {
  return sanitizeBuild(['sb_fuzz_codec']).bin('sb_fuzz_codec');
}

/** Runs the fuzzer binary with `args`; SIGKILL after `timeoutMs` (a hung fuzzer is a finding too). */
export function runFuzzerProcess(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<FuzzProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, {
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.length > 4 << 20) stderr = stderr.slice(-(1 << 20)); // keep the end
    });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (status, signal) => {
      clearTimeout(t);
      resolve({ status, signal, stderr });
    });
  });
}

export interface FuzzCampaign extends FuzzProcess {
  /** temp dir holding corpus/ and artifacts/ (the caller removes it when nothing was found) */
  dir: string;
  seeds: number;
  corpusFiles: number;
  /** stat::number_of_executed_units */
  runs: number;
  seconds: number;
  /** crash/leak/timeout inputs libFuzzer wrote */
  artifacts: string[];
  /** sanitizer report lines and violated fuzz properties in stderr */
  findings: string[];
}

/**
 * One bounded campaign: -max_total_time=`seconds`, -seed fixed so a run can be replayed.
 * Bounds (docs/hardening/hostile-input.md): -max_len=8192 -timeout=10 -rss_limit_mb=2048.
 */
export async function fuzzCodec(bin: string, opts: { seconds: number; maxRuns?: number; seed?: number }): Promise<FuzzCampaign> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-libfuzzer-'));
  const corpus = join(dir, 'corpus');
  const artifactDir = join(dir, 'artifacts');
  mkdirSync(corpus);
  mkdirSync(artifactDir);
  const seeds = readdirSync(FRAMES).filter((f) => f.endsWith('.bin'));
  for (const f of seeds) copyFileSync(join(FRAMES, f), join(corpus, f));
  const r = await runFuzzerProcess(bin, [
    `-max_total_time=${opts.seconds}`, `-runs=${opts.maxRuns ?? -1}`, '-max_len=8192', '-timeout=10',
    '-rss_limit_mb=2048', `-seed=${opts.seed ?? 1}`, '-print_final_stats=1', `-artifact_prefix=${artifactDir}/`, corpus,
  ], {}, (opts.seconds + 40) * 1000);
  const property = r.stderr.split('\n').filter((l) => /==\d+== ERROR: libFuzzer|signbridge fuzz property violated/.test(l));
  return {
    ...r,
    dir,
    seeds: seeds.length,
    corpusFiles: readdirSync(corpus).length,
    runs: Number(/stat::number_of_executed_units:\s*(\d+)/.exec(r.stderr)?.[1] ?? NaN),
    seconds: Number(/Done \d+ runs in (\d+) second/.exec(r.stderr)?.[1] ?? NaN),
    artifacts: readdirSync(artifactDir).map((f) => join(artifactDir, f)),
    findings: [...sanitizerReports(r.stderr), ...property],
  };
}
