// `npm run fuzz [-- <seconds>]`: builds the libFuzzer target over the C++ codec with ASan/UBSan
// (native/fuzz/CMakeLists.txt, clang) and runs it from the golden frames for <seconds> (default 60;
// also SIGNBRIDGE_FUZZ_SECONDS), then prints the inputs run and every finding. `npm test` keeps a
// 3 s run of the same target (test/integration/fuzz-native.test.ts). Exit 1 when anything was found;
// the corpus and the crashing inputs are then kept (their directory is printed).
import { rmSync } from 'node:fs';
import { buildFuzzer, fuzzCodec } from '../test/helpers/libfuzzer.js';

const arg = process.argv[2] ?? process.env.SIGNBRIDGE_FUZZ_SECONDS ?? '60';
const seconds = Number(arg);
if (!Number.isInteger(seconds) || seconds <= 0) {
  console.error(`usage: npm run fuzz [-- <seconds>]   (a whole number of seconds, got "${arg}")`);
  process.exit(2);
}

console.log(`fuzz: building sb_fuzz_codec (clang, -fsanitize=fuzzer,address,undefined)…`);
const bin = buildFuzzer();
console.log(`fuzz: running ${bin} for ${seconds} s from the golden frames…`);
const r = await fuzzCodec(bin, { seconds });
console.log(`fuzz: ${r.runs} inputs in ${r.seconds} s, corpus grew from ${r.seeds} to ${r.corpusFiles} files`);
const clean = r.status === 0 && r.signal === null && r.findings.length === 0 && r.artifacts.length === 0;
if (clean) {
  console.log('fuzz: findings: none');
  rmSync(r.dir, { recursive: true, force: true });
} else {
  console.log(`fuzz: FINDINGS (exit ${r.status ?? r.signal}):`);
  for (const f of r.findings) console.log(`  ${f}`);
  for (const a of r.artifacts) console.log(`  input: ${a}`);
  console.log(`--- end of libFuzzer's output\n${r.stderr.slice(-6000)}\nfuzz: corpus and artifacts kept in ${r.dir}`);
  process.exit(1);
}
