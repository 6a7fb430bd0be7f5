// Seeded random + structural fuzzing of the TypeScript codec (src/ipc/protocol.ts) and framer
// (src/ipc/framing.ts), and the same corpus through the C++ codec (native/fuzz/codec_harness.cpp,
// built with ASan/UBSan) so the two decoders are held to one contract (docs/protocol.md).
//   - structural: valid messages of every call × kind generated from the call table, encoded,
//     decoded, re-encoded (round trip), then mutated (bit flips, interesting integers at every
//     kind of offset, truncation, extension, splices, length fix-ups that push the mutation past
//     the framing into the body decoders)
//   - random: raw bytes, and raw bytes behind a valid header
// Zero crashes: the only way to reject is SignbridgeError SIGNBRIDGE_ERR_PROTOCOL. An accepted
// frame must re-encode to the same bytes. The framer must give the same frames however the
// stream is split, and the same frames (and the same verdict on bad lengths) as the C++ framer.
// The seed is printed; SIGNBRIDGE_FUZZ_SEED=<n> replays a run, SIGNBRIDGE_FUZZ_CASES=<n> sizes it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignbridgeError } from '../../src/core/errors.js';
import { FrameDecoder } from '../../src/ipc/framing.js';
import {
  CALLS, HEADER_SIZE, KIND_REPLY, KIND_REQUEST, MAX_FRAME, MAX_LENGTH, MIN_LENGTH,
  decodeMessage, encodeMessage, type CallName, type FieldRule, type FieldType, type Message, type Struct,
} from '../../src/ipc/protocol.js';
import { sanitizeBuild, sanitizerReports, waitForPrebuild } from '../helpers/sanitize-build.js';

const SEED = Number(process.env.SIGNBRIDGE_FUZZ_SEED ?? 0x5b6e1) >>> 0;
const CASES = Number(process.env.SIGNBRIDGE_FUZZ_CASES ?? 10_000);
const TIME_BUDGET_MS = 6_000; // generation stops here even if CASES is not reached (slow CI)

// ---- seeded PRNG (mulberry32) ---------------------------------------------------------------
let state = SEED;
function rnd(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T,>(a: readonly T[]): T => a[int(a.length)]!;
const chance = (p: number) => rnd() < p;
function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

const INTERESTING_U32 = [0, 1, 2, 5, 6, 7, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
  MIN_LENGTH - 1, MIN_LENGTH, MAX_LENGTH, MAX_LENGTH + 1, MAX_FRAME, 255, 256];
const INTERESTING_U64 = [0n, 1n, 0x1041n, 0x250n, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn];
const STRINGS = ['', 'a', 'signbridge', 'é', '€', '😀', 'ü'.repeat(40), '\u0000', 'x'.repeat(300), '\ud7ff\ue000\uffff'];

// ---- structural generation from the call table ----------------------------------------------
function genField(t: FieldType, rule: FieldRule | undefined, depth: number): unknown {
  if (typeof t === 'object') {
    const n = depth > 2 ? int(2) : int(4);
    return Array.from({ length: n }, () => genStruct(t.array, depth + 1));
  }
  switch (t) {
    case 'u8': return int(256);
    case 'u16': return chance(0.3) ? pick([0, 1, 2, 0xffff]) : int(0x10000);
    case 'u32': return chance(0.3) ? pick(INTERESTING_U32) >>> 0 : int(0x100000000) >>> 0;
    case 'u64': return chance(0.5) ? pick(INTERESTING_U64) : BigInt(int(0x100000000)) * 0x100000000n + BigInt(int(0x100000000));
    case 'bytes': {
      // length-limited fields (key_handle: MAX_KEY_HANDLE) sit at their limit now and then; mutants go past it
      if (rule !== undefined && 'max' in rule) return randomBytes(chance(0.2) ? pick([0, 16, rule.max]) : int(Math.min(48, rule.max + 1)));
      const n = chance(0.1) ? int(600) : int(48);
      return randomBytes(n);
    }
    case 'str': return chance(0.5) ? pick(STRINGS) : Buffer.from(randomBytes(int(20))).toString('base64');
  }
}
function genStruct(s: Struct, depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [name, t, rule] of s) {
    o[name] = genField(t, rule, depth);
    if (rule !== undefined && 'is' in rule) o[name] = rule.is; // HELLO magic: valid messages first, mutants break it
  }
  return o;
}
const CALL_NAMES = Object.keys(CALLS) as CallName[];
function genMessage(): Message {
  const call = pick(CALL_NAMES);
  const id = chance(0.2) ? pick([0, 1, 0xffffffff]) : int(0x100000000);
  if (chance(0.5)) {
    const body = genStruct(CALLS[call].request);
    return { call, kind: 'request', id, body } as Message;
  }
  if (chance(0.25)) return { call, kind: 'reply', id, body: { rv: pick([1, 0x30, 0x60, 0x6, 0xffffffff]), message: pick(STRINGS) } } as Message;
  return { call, kind: 'reply', id, body: { rv: 0, ...genStruct(CALLS[call].reply) } } as Message;
}

// ---- mutations --------------------------------------------------------------------------------
function fixLength(b: Buffer): Buffer {
  if (b.length >= 4) b.writeUInt32LE(Math.max(0, b.length - 4), 0);
  return b;
}
function mutate(src: Buffer, other: Buffer): Buffer {
  let b = Buffer.from(src);
  const ops = 1 + int(3);
  for (let k = 0; k < ops; k++) {
    switch (int(10)) {
      case 0: if (b.length) b[int(b.length)]! ^= 1 << int(8); break; // bit flip
      case 1: if (b.length) b[int(b.length)] = pick([0, 1, 0x7f, 0x80, 0xff]); break;
      case 2: if (b.length >= 4) b.writeUInt32LE(pick(INTERESTING_U32) >>> 0, int(b.length - 3)); break;
      case 3: b = b.subarray(0, int(b.length + 1)); break; // truncate
      case 4: b = Buffer.concat([b, randomBytes(1 + int(16))]); break; // extend
      case 5: b = Buffer.concat([b, other]); break; // two frames in one stream
      case 6: if (b.length > 4) b[4] = pick([0, 1, 2, 3, 4, 5, 0x3f, 0x40, 0xff]); break; // call code
      case 7: if (b.length > 5) b[5] = pick([0, 1, 2, 0xff]); break; // kind
      case 8: { // overwrite the u32 at a field-ish offset inside the body with a huge/edge count or length
        if (b.length > HEADER_SIZE + 4) b.writeUInt32LE(pick(INTERESTING_U32) >>> 0, HEADER_SIZE + int(b.length - HEADER_SIZE - 3));
        break;
      }
      case 9: { // splice a chunk of another frame into this one
        const at = int(b.length + 1);
        const from = int(other.length + 1);
        b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + int(32)), b.subarray(at)]);
        break;
      }
    }
  }
  // Most mutants get a consistent length again, so the body decoders (not only the framer) see them.
  return chance(0.7) ? fixLength(b) : b;
}

// ---- what each side does with one case -----------------------------------------------------
type Verdict = { ok: true; call: string; kind: string; id: number } | { ok: false; err: string };
const crashes: string[] = [];
const notCanonical: number[] = []; // corpus indexes accepted by TS that re-encode differently

function tsDecode(b: Buffer, index: number): Verdict {
  try {
    const m = decodeMessage(b);
    const again = encodeMessage(m);
    if (!again.equals(b)) notCanonical.push(index);
    return { ok: true, call: m.call, kind: m.kind, id: m.id };
  } catch (e) {
    if (!(e instanceof SignbridgeError) || e.code !== 'SIGNBRIDGE_ERR_PROTOCOL') {
      crashes.push(`decodeMessage threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} on ${b.toString('hex').slice(0, 400)}`);
    }
    return { ok: false, err: (e as Error).message };
  }
}

interface StreamResult { frames: number[]; bad: boolean }
/** Feed the framer in the given chunk sizes; frames completed before a bad length still count. */
function tsStream(b: Buffer, split: 'bytes' | 'random' | 'whole'): StreamResult {
  const d = new FrameDecoder();
  const frames: number[] = [];
  let off = 0;
  while (off < b.length) {
    const n = split === 'whole' ? b.length : split === 'bytes' ? 1 : 1 + int(64);
    try {
      for (const f of d.push(b.subarray(off, off + n))) frames.push(f.length);
    } catch (e) {
      if (!(e instanceof SignbridgeError) || e.code !== 'SIGNBRIDGE_ERR_PROTOCOL') crashes.push(`FrameDecoder threw ${(e as Error)?.message}`);
      return { frames, bad: true };
    }
    off += n;
  }
  return { frames, bad: false };
}

// ---- the corpus ---------------------------------------------------------------------------------
interface Case { bytes: Buffer; origin: string }
const corpus: Case[] = [];
let generated = 0;
let roundTrips = 0;
let elapsedMs = 0;

function buildCorpus(): void {
  const t0 = Date.now();
  const golden = join(import.meta.dirname, '..', 'fixtures', 'frames');
  const seeds = readdirSync(golden).filter((f) => f.endsWith('.bin')).map((f) => readFileSync(join(golden, f)));
  for (const s of seeds) corpus.push({ bytes: s, origin: 'golden' });
  // The bounds themselves: the largest frame, one byte more, a header that announces it.
  const big = encodeMessage({ call: 'SIGN', kind: 'request', id: 1, body: { key_handle: Buffer.alloc(16), mechanism: 1n, hash_alg: 0n, mgf: 0n, salt_len: 0, data: Buffer.alloc(MAX_FRAME - HEADER_SIZE - 4 - 16 - 8 - 8 - 8 - 4 - 4) } } as Message);
  corpus.push({ bytes: big, origin: 'edge: MAX_FRAME' });
  corpus.push({ bytes: fixLength(Buffer.concat([big, Buffer.alloc(1)])), origin: 'edge: MAX_FRAME + 1' });
  corpus.push({ bytes: big.subarray(0, 64), origin: 'edge: MAX_FRAME announced, 64 bytes sent' });
  for (let i = 0; generated < CASES && Date.now() - t0 < TIME_BUDGET_MS; i++) {
    const r = rnd();
    if (r < 0.25) {
      const m = genMessage();
      const b = encodeMessage(m);
      // structural round trip: what we encode, we decode to the same message and bytes
      const back = decodeMessage(b);
      if (!isDeepStrictEqual(back, m) || !encodeMessage(back).equals(b)) crashes.push(`round trip changed a valid ${m.call} ${m.kind}: ${b.toString('hex').slice(0, 400)}`);
      roundTrips++;
      corpus.push({ bytes: b, origin: `valid ${m.call} ${m.kind}` });
    } else if (r < 0.85) {
      const base = chance(0.3) ? pick(seeds) : encodeMessage(genMessage());
      corpus.push({ bytes: mutate(base, chance(0.5) ? pick(seeds) : encodeMessage(genMessage())), origin: 'mutant' });
    } else if (r < 0.93) {
      corpus.push({ bytes: randomBytes(int(64)), origin: 'random bytes' });
    } else {
      // a valid header with a random body
      const body = randomBytes(int(96));
      const h = Buffer.alloc(HEADER_SIZE);
      h.writeUInt32LE(body.length + 6, 0);
      h[4] = 1 + int(5);
      h[5] = pick([KIND_REQUEST, KIND_REPLY]);
      h.writeUInt32LE(int(0x100000000) >>> 0, 6);
      corpus.push({ bytes: Buffer.concat([h, body]), origin: 'header + random body' });
    }
    generated++;
  }
  elapsedMs = Date.now() - t0;
}

let dir: string;
let ts: Verdict[] = [];
let streams: StreamResult[] = [];
let native: { verdict: string; frames: number[]; bad: boolean; detail: string }[] = [];
let nativeStderr = '';
let nativeStatus: number | null = null;

beforeAll(async () => {
  buildCorpus();
  const t0 = Date.now();
  ts = corpus.map((c, i) => tsDecode(c.bytes, i));
  streams = corpus.map((c, i) => {
    const whole = tsStream(c.bytes, 'whole');
    const split = c.bytes.length > 65536 ? whole : tsStream(c.bytes, i % 4 === 0 && c.bytes.length < 4096 ? 'bytes' : 'random');
    if (JSON.stringify(split) !== JSON.stringify(whole) && !(whole.bad && split.bad))
      crashes.push(`framer depends on how the stream is split: whole ${JSON.stringify(whole)} vs split ${JSON.stringify(split)} for ${c.bytes.toString('hex').slice(0, 200)}`);
    // a bad length in the same chunk as a good frame loses that frame in push(); byte-wise splits are exact
    return split.bad && c.bytes.length < 65536 ? tsStream(c.bytes, 'bytes') : split;
  });
  elapsedMs += Date.now() - t0;

  // The same corpus through the C++ codec.
  await waitForPrebuild();
  const build = sanitizeBuild(['sb_codec_harness']);
  dir = mkdtempSync(join(tmpdir(), 'sb-fuzz-codec-'));
  const file = join(dir, 'corpus.bin');
  const parts: Buffer[] = [];
  for (const c of corpus) {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(c.bytes.length, 0);
    parts.push(n, c.bytes);
  }
  writeFileSync(file, Buffer.concat(parts));
  const r = spawnSync(build.bin('sb_codec_harness'), [file], {
    encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120_000,
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
  });
  nativeStderr = r.stderr;
  nativeStatus = r.status;
  native = r.stdout.split('\n').filter(Boolean).map((l) => {
    const [, verdict, sizes, end, detail] = l.split('\t');
    return { verdict: verdict!, frames: sizes === '-' ? [] : sizes!.split(',').map(Number), bad: end === 'bad', detail: detail ?? '' };
  });
  console.log(`fuzz-codec: seed ${SEED}, ${corpus.length} cases (${roundTrips} structural round trips), ` +
    `${ts.filter((v) => v.ok).length} accepted by TS; TS side ${elapsedMs} ms`);
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function firstExamples(idx: number[], describe: (i: number) => string, n = 5): string {
  return `${idx.length} cases (seed ${SEED}), e.g.:\n` + idx.slice(0, n).map((i) => `  #${i} ${corpus[i]!.origin}: ${corpus[i]!.bytes.toString('hex').slice(0, 240)}\n    ${describe(i)}`).join('\n');
}

describe('TypeScript codec and framer under fuzz', () => {
  it('generates thousands of cases within the time budget', () => {
    expect(corpus.length).toBeGreaterThan(2_000);
    expect(elapsedMs).toBeLessThan(TIME_BUDGET_MS * 3);
  });

  it('never crashes: every rejection is SIGNBRIDGE_ERR_PROTOCOL, valid messages round-trip, framing ignores chunking', () => {
    expect(crashes.slice(0, 10), `${crashes.length} problems`).toEqual([]);
  });

  it('an accepted frame re-encodes to the same bytes (decoding loses nothing)', () => {
    expect(notCanonical.length, firstExamples(notCanonical, (i) => `re-encodes to ${encodeMessage(decodeMessage(corpus[i]!.bytes)).toString('hex').slice(0, 240)}`)).toBe(0);
  });

  it('rejects most mutants and random bytes (the fuzz reaches the rejection paths)', () => {
    const rejected = ts.filter((v, i) => !v.ok && corpus[i]!.origin !== 'golden').length;
    expect(rejected).toBeGreaterThan(corpus.length / 3);
    const reasons = new Set(ts.filter((v): v is { ok: false; err: string } => !v.ok).map((v) => v.err.replace(/\d+/g, 'N')));
    expect(reasons.size).toBeGreaterThan(8);
  });
});

describe('the same corpus through the C++ codec (sb_codec_harness, ASan/UBSan)', () => {
  it('decodes every case without a sanitizer report or a violated property', () => {
    expect(sanitizerReports(nativeStderr), nativeStderr.slice(-6000)).toEqual([]);
    const violations = native.map((n, i) => (n.verdict === 'violation' ? i : -1)).filter((i) => i >= 0);
    expect(violations.length, firstExamples(violations, (i) => native[i]!.detail)).toBe(0);
    expect(native).toHaveLength(corpus.length);
    expect(nativeStatus, nativeStderr.slice(-2000)).toBe(0);
  });

  it('frames a stream exactly as the TypeScript framer does (frame sizes, and bad lengths)', () => {
    const differ = corpus.map((_, i) => i).filter((i) => {
      const a = streams[i]!;
      const b = native[i]!;
      return a.bad !== b.bad || a.frames.join() !== b.frames.join();
    });
    expect(differ.length, firstExamples(differ, (i) => `TS ${JSON.stringify(streams[i])} vs C++ ${JSON.stringify({ frames: native[i]!.frames, bad: native[i]!.bad })}`)).toBe(0);
  });

  it('accepts and rejects exactly the same frames as the TypeScript decoder (one contract, docs/protocol.md)', () => {
    const differ = corpus.map((_, i) => i).filter((i) => ts[i]!.ok !== (native[i]!.verdict === 'ok'));
    expect(differ.length, firstExamples(differ, (i) => `TS ${JSON.stringify(ts[i])} vs C++ ${native[i]!.verdict} ${native[i]!.detail}`)).toBe(0);
    // and where both accept, they read the same header
    for (let i = 0; i < corpus.length; i++) {
      const t = ts[i]!;
      if (t.ok && native[i]!.verdict === 'ok') expect(native[i]!.detail).toBe(`${t.call} ${t.kind} ${t.id}`);
    }
  });
});

// Minimal reproductions of what the differential fuzz found (docs/hardening/hostile-input.md
// "Findings"). Each frame is rejected by the C++ decoder; protocol.md makes both limits part of
// the contract, so the TypeScript decoder must reject it too.
describe('findings: the TypeScript decoder against the contract', () => {
  function frame(call: number, kind: number, body: Buffer): Buffer {
    const h = Buffer.alloc(HEADER_SIZE);
    h.writeUInt32LE(body.length + 6, 0);
    h[4] = call;
    h[5] = kind;
    h.writeUInt32LE(7, 6);
    return Buffer.concat([h, body]);
  }
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n, 0); return b; };
  const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n, 0); return b; };

  function expectRejected(f: Buffer) {
    let err: unknown;
    try {
      decodeMessage(f);
    } catch (e) {
      err = e;
    }
    expect(err, `decodeMessage accepted ${f.toString('hex')}`).toBeInstanceOf(SignbridgeError);
    expect((err as SignbridgeError).code).toBe('SIGNBRIDGE_ERR_PROTOCOL');
  }

  it('a str that is not UTF-8 is a malformed frame (protocol.md "Body primitives": str is bytes holding UTF-8)', () => {
    // HELLO reply: rv 0, version 1, server = "\xff"
    expectRejected(frame(0x01, KIND_REPLY, Buffer.concat([u32(0), u16(1), u32(1), Buffer.from([0xff])])));
  });

  it('a key_handle longer than 255 bytes is a malformed frame (protocol.md "object": at most 255 bytes)', () => {
    // SIGN request with a 256-byte key_handle, otherwise well-formed
    const body = Buffer.concat([u32(256), Buffer.alloc(256, 1), Buffer.alloc(24), u32(0), u32(32), Buffer.alloc(32)]);
    expectRejected(frame(0x03, KIND_REQUEST, body));
  });
});
