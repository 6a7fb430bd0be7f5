// The C++ codec (native/common) against the golden frames written by the TypeScript encoder
// (docs/protocol.md "Golden frames"), plus the C++ framing self-test (frames split and truncated
// at every byte) and the native unit vectors (SHA-2, DigestInfo, curves).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const framesDir = join(root, 'test', 'fixtures', 'frames');

function binary(name: string): string {
  const p = join(root, 'build', 'Release', name);
  if (!existsSync(p)) throw new Error(`${p} is missing: build the native code first with \`npx cmake-js compile --out build\``);
  return p;
}

function run(name: string, args: string[]) {
  const r = spawnSync(binary(name), args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

describe('sb_codec_test over test/fixtures/frames', () => {
  const bins = readdirSync(framesDir).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)).sort();

  it('has golden frames to check, good and bad', () => {
    expect(bins.filter((b) => b.startsWith('bad-')).length).toBeGreaterThan(0);
    expect(bins.filter((b) => !b.startsWith('bad-')).length).toBeGreaterThan(0);
  });

  it('decodes every good frame to its .json, re-encodes it byte for byte, and rejects every bad-* frame', () => {
    const r = run('sb_codec_test', [framesDir]);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; frame?: unknown; error?: string; reencode?: string });
    expect(lines.map((l) => l.file)).toEqual(bins);
    for (const line of lines) {
      if (line.file.startsWith('bad-')) {
        expect(line.frame, `${line.file} must be rejected`).toBeUndefined();
        expect(line.error, line.file).toMatch(/\w/);
        expect(existsSync(join(framesDir, `${line.file}.json`)), `${line.file} has no .json`).toBe(false);
      } else {
        expect(line.error, `${line.file}: ${line.error}`).toBeUndefined();
        expect(line.reencode, `${line.file} re-encodes to the same bytes`).toBeUndefined();
        const want = JSON.parse(readFileSync(join(framesDir, `${line.file}.json`), 'utf8'));
        expect(line.frame, line.file).toEqual(want);
      }
    }
    expect(r.status, r.stderr).toBe(0);
  });

  it('exits non-zero when a frame is bad but not named bad-* (the check can fail)', async () => {
    const { mkdtempSync, copyFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'sb-frames-'));
    try {
      copyFileSync(join(framesDir, 'bad-trailing-byte.bin'), join(dir, 'looks-fine.bin'));
      const r = run('sb_codec_test', [dir]);
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ file: 'looks-fine', error: expect.any(String) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('native self-tests', () => {
  it('framing: every prefix "needs more", split streams reassemble, bad lengths are bad at 4 bytes', () => {
    const r = run('sb_codec_test', ['--self-test']);
    expect(r.stderr).toMatch(/self-test: \d+ checks, 0 failed/);
    expect(r.status).toBe(0);
  });

  it('SHA-256/384/512 vectors, DigestInfo and curve facts', () => {
    const r = run('sb_unit_test', []);
    expect(r.stderr).toMatch(/sb_unit_test: \d+ checks, 0 failed/);
    expect(r.status).toBe(0);
  });
});
