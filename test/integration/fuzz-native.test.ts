// libFuzzer over the C++ codec (native/fuzz/fuzz_codec.cpp: frame header and framing reader,
// every message decoder, read_reply_body as the module calls it, the inventory model), built with
// -fsanitize=fuzzer,address,undefined, seeded with the golden frames (test/fixtures/frames/*.bin).
// A SHORT run, so the ASan/UBSan build and the harness stay checked in every `npm test`; the long
// campaign is `npm run fuzz` (scripts/fuzz.ts). Any crash, sanitizer report, leak, timeout or
// violated property fails the test; the findings are kept in the temp dir named in the failure.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFuzzer, fuzzCodec, runFuzzerProcess } from '../helpers/libfuzzer.js';
import { sanitizerReports, waitForPrebuild } from '../helpers/sanitize-build.js';

// CI time, not coverage, sets this bound (docs/hardening/hostile-input.md).
const SECONDS = 3;
const dirs: string[] = [];
let bin: string;

beforeAll(async () => {
  await waitForPrebuild();
  bin = buildFuzzer();
}, 240_000);

afterAll(() => {
  if (!process.env.SIGNBRIDGE_KEEP_TEST_STATE) for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('libFuzzer: the C++ codec under ASan/UBSan', () => {
  it(`runs for ${SECONDS} s from the golden frames without a crash, leak or violated property`, async () => {
    const r = await fuzzCodec(bin, { seconds: SECONDS });
    const tail = `${r.stderr.slice(-6000)}\n(corpus and crash artifacts kept in ${r.dir})`;
    expect(r.seeds).toBeGreaterThan(5);
    expect(r.findings, tail).toEqual([]);
    expect(r.artifacts, tail).toEqual([]);
    expect(r.signal, tail).toBeNull();
    expect(r.status, tail).toBe(0);
    expect(r.runs, tail).toBeGreaterThan(1_000); // it really fuzzed, not just loaded the seeds
    dirs.push(r.dir); // kept when an expectation above failed
    console.log(`libFuzzer: ${r.runs} inputs in ${r.seconds} s, corpus grew from ${r.seeds} to ${r.corpusFiles} files (longer: npm run fuzz)`);
  }, (SECONDS + 60) * 1000);

  it('the harness can fail: an ASan error planted behind SIGNBRIDGE_FUZZ_CANARY is caught as a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-libfuzzer-canary-'));
    dirs.push(dir);
    const input = join(dir, 'canary.bin');
    writeFileSync(input, Buffer.from('SBG1 canary'));
    const r = await runFuzzerProcess(bin, [`-artifact_prefix=${dir}/`, input], { SIGNBRIDGE_FUZZ_CANARY: '1' }, 30_000);
    expect(r.status).not.toBe(0);
    expect(sanitizerReports(r.stderr).join('\n')).toMatch(/heap-buffer-overflow/);
  }, 40_000);
});
