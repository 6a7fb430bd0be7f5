// protocol.md "Golden frames": every <name>.bin decodes to <name>.json and re-encodes to the same
// bytes; every bad-*.bin is rejected (by the framing layer or the codec), and has no .json.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/ipc/framing.js';
import { decodeMessage, encodeMessage, messageFromJson, messageToJson, type JsonMessage } from '../../src/ipc/protocol.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'frames');
const files = readdirSync(dir);
const good = files.filter((f) => f.endsWith('.bin') && !f.startsWith('bad-'));
const bad = files.filter((f) => f.startsWith('bad-') && f.endsWith('.bin'));

/** Decode a file as a receiver would: through the framer, then the codec. */
function receive(bin: Buffer) {
  const frames = new FrameDecoder().push(bin);
  if (frames.length !== 1) throw new Error(`expected one complete frame, got ${frames.length}`);
  return decodeMessage(frames[0]!);
}

describe('golden frames', () => {
  it('has the frames docs/protocol.md and the C++ tests rely on', () => {
    for (const name of [
      'hello-request', 'hello-reply', 'hello-version-mismatch-reply', 'get-inventory-request', 'inventory-reply',
      'sign-request-rsa-pkcs', 'sign-request-ecdsa', 'sign-request-pss', 'sign-reply', 'sign-error-reply',
    ]) expect(good).toContain(`${name}.bin`);
    for (const name of ['truncated-body', 'length-too-large', 'length-too-small', 'unknown-call', 'trailing-byte', 'array-count'])
      expect(bad).toContain(`bad-${name}.bin`);
  });

  for (const f of good) {
    it(`${f} decodes to its .json and re-encodes to the same bytes`, () => {
      const bin = readFileSync(join(dir, f));
      const json = JSON.parse(readFileSync(join(dir, f.replace(/\.bin$/, '.json')), 'utf8')) as JsonMessage;
      const m = receive(bin);
      expect(messageToJson(m)).toEqual(json);
      expect(encodeMessage(m).equals(bin)).toBe(true);
      // and the JSON side alone builds the same frame (what the C++ test does from the .json)
      expect(encodeMessage(messageFromJson(json)).equals(bin)).toBe(true);
    });
  }

  for (const f of bad) {
    it(`${f} is rejected and has no .json`, () => {
      expect(existsSync(join(dir, f.replace(/\.bin$/, '.json')))).toBe(false);
      const bin = readFileSync(join(dir, f));
      expect(() => receive(bin)).toThrow(expect.objectContaining({ code: 'SIGNBRIDGE_ERR_PROTOCOL' }));
    });
  }

  it('rejects bad-length-too-large without buffering its body', () => {
    const d = new FrameDecoder();
    expect(() => d.push(readFileSync(join(dir, 'bad-length-too-large.bin')).subarray(0, 4))).toThrow(/outside/);
    expect(d.pending).toBe(0);
  });
});
