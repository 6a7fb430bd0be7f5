import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/ipc/framing.js';
import {
  MAGIC, MAX_FRAME, Reader, Writer, decodeMessage, encodeErrorReply, encodeMessage, encodeReply, encodeRequest,
  withId, type InventoryReply, type Message,
} from '../../src/ipc/protocol.js';

const inventory: InventoryReply = {
  generation: 0x1234_5678_9abcn,
  slots: [0, 1].map((i) => ({
    slot_id: i,
    slot_description: `slot ${i} — ünïcode`,
    manufacturer: 'signbridge',
    token_label: `token ${i}`,
    token_model: 'm',
    token_serial: 'serial',
    token_flags: 0x40a,
    mechanisms: [{ type: 0x1041n, min_key_size: 256, max_key_size: 521, flags: 0x800 }],
    objects: [
      { key_handle: randomBytes(16), attributes: [{ type: 0x40000600n, value: randomBytes(16) }, { type: 3n, value: Buffer.from('lbl') }] },
      { key_handle: Buffer.alloc(0), attributes: [] },
    ],
  })),
};

const messages: Message[] = [
  { call: 'HELLO', kind: 'request', id: 1, body: { magic: MAGIC, min_version: 1, max_version: 3, client: 'x' } },
  { call: 'HELLO', kind: 'reply', id: 1, body: { rv: 0, version: 1, server: 's' } },
  { call: 'GET_INVENTORY', kind: 'request', id: 0xffffffff, body: {} },
  { call: 'GET_INVENTORY', kind: 'reply', id: 2, body: { rv: 0, ...inventory } },
  { call: 'SIGN', kind: 'request', id: 3, body: { key_handle: randomBytes(16), mechanism: 0xdn, hash_alg: 0x270n, mgf: 4n, salt_len: 64, data: randomBytes(64) } },
  { call: 'SIGN', kind: 'reply', id: 3, body: { rv: 0, signature: randomBytes(384) } },
  { call: 'SIGN', kind: 'reply', id: 3, body: { rv: 0x60, message: 'gone' } },
];

describe('codec round trips', () => {
  for (const m of messages) {
    it(`${m.call} ${m.kind} ${m.body && 'rv' in m.body ? `rv=${m.body.rv}` : ''}`, () => {
      const bin = encodeMessage(m);
      expect(bin.readUInt32LE(0)).toBe(bin.length - 4);
      expect(decodeMessage(bin)).toEqual(m);
    });
  }

  it('u64 values above 2^53 survive (bigint end to end)', () => {
    const m: Message = { call: 'SIGN', kind: 'request', id: 1, body: { key_handle: Buffer.from([1]), mechanism: 0xffff_ffff_ffff_fffen, hash_alg: 0n, mgf: 0n, salt_len: 0, data: Buffer.alloc(0) } };
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('typed helpers match the generic encoder; withId rewrites only the id', () => {
    const a = encodeReply('GET_INVENTORY', 9, inventory);
    const b = withId(a, 77);
    expect(decodeMessage(b)).toEqual({ call: 'GET_INVENTORY', kind: 'reply', id: 77, body: { rv: 0, ...inventory } });
    expect(a.readUInt32LE(6)).toBe(9);
    expect(encodeErrorReply('SIGN', 1, 0x70, 'no').equals(encodeMessage({ call: 'SIGN', kind: 'reply', id: 1, body: { rv: 0x70, message: 'no' } }))).toBe(true);
    expect(() => encodeErrorReply('SIGN', 1, 0, 'x')).toThrow();
    expect(encodeRequest('GET_INVENTORY', 5, {}).length).toBe(10);
  });

  it('rejects a wrong HELLO magic, an unknown kind, a missing field, out-of-range values', () => {
    const hello = encodeRequest('HELLO', 1, { magic: MAGIC + 1, min_version: 1, max_version: 1, client: '' });
    expect(() => decodeMessage(hello)).toThrow(/magic/);
    const kind = Buffer.from(encodeRequest('GET_INVENTORY', 1, {}));
    kind[5] = 2;
    expect(() => decodeMessage(kind)).toThrow(/kind/);
    const short = encodeRequest('SIGN', 1, { key_handle: Buffer.from([1]), mechanism: 1n, hash_alg: 0n, mgf: 0n, salt_len: 0, data: Buffer.alloc(0) });
    const cut = Buffer.from(short.subarray(0, short.length - 4));
    cut.writeUInt32LE(cut.length - 4, 0);
    expect(() => decodeMessage(cut)).toThrow(/needs 4 bytes/);
    expect(() => encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 70000, max_version: 1, client: '' })).toThrow(/u16/);
    expect(() => encodeRequest('SIGN', 1, { key_handle: 'x' as unknown as Buffer, mechanism: 1n, hash_alg: 0n, mgf: 0n, salt_len: 0, data: Buffer.alloc(0) })).toThrow(/bytes/);
  });

  it('Reader errors are sticky: after the first failure every read returns zero values', () => {
    const r = new Reader(Buffer.from([1, 0, 0, 0]));
    expect(r.u64()).toBe(0n);
    expect(r.error).toMatch(/u64 needs 8/);
    expect(r.u8()).toBe(0); // 4 bytes are still there, but the error sticks
    expect(r.error).toMatch(/u64/);
    expect(() => r.finish()).toThrow(/u64 needs 8/);
  });

  it('refuses to encode a frame over MAX_FRAME', () => {
    expect(() => encodeReply('SIGN', 1, { signature: Buffer.alloc(MAX_FRAME) })).toThrow(/MAX_FRAME/);
    const w = new Writer();
    w.bytes(Buffer.alloc(MAX_FRAME - 10 - 4)); // exactly MAX_FRAME in total: allowed
    expect(w.frame(3, 1, 1).length).toBe(MAX_FRAME);
  });
});

describe('framing', () => {
  const stream = Buffer.concat(messages.map(encodeMessage));

  it('a stream of frames split at every byte boundary yields the same frames', () => {
    const whole = new FrameDecoder().push(stream);
    expect(whole.map(decodeMessage)).toEqual(messages);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(got.map((f) => f.toString('hex'))).toEqual(whole.map((f) => f.toString('hex')));
      expect(d.pending).toBe(0);
    }
  });

  it('byte-at-a-time and random chunking', () => {
    const d = new FrameDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...d.push(stream.subarray(i, i + 1)));
    expect(got.map(decodeMessage)).toEqual(messages);
    for (let round = 0; round < 50; round++) {
      const e = new FrameDecoder();
      const out: Buffer[] = [];
      let off = 0;
      while (off < stream.length) {
        const n = 1 + Math.floor(Math.random() * 200);
        out.push(...e.push(stream.subarray(off, off + n)));
        off += n;
      }
      expect(out.map(decodeMessage)).toEqual(messages);
    }
  });

  it('rejects oversize and undersize lengths as soon as the length is complete, even split', () => {
    for (const len of [0, 5, MAX_FRAME - 3, 0xffffffff]) {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(len >>> 0);
      const d = new FrameDecoder();
      expect(d.push(b.subarray(0, 3))).toEqual([]);
      expect(() => d.push(b.subarray(3))).toThrow(/outside/);
      expect(() => d.push(Buffer.alloc(1))).toThrow(); // unusable after an error
    }
    const ok = Buffer.alloc(4);
    ok.writeUInt32LE(MAX_FRAME - 4);
    const d = new FrameDecoder();
    expect(d.push(ok)).toEqual([]); // the largest legal length is accepted and awaited
    expect(d.pending).toBe(4);
  });

  it('garbage: random bytes never crash the framer or codec with anything but a protocol error', () => {
    for (let i = 0; i < 2000; i++) {
      const g = randomBytes(1 + Math.floor(Math.random() * 64));
      // half the time a plausible length, so the codec (not only the framer) sees the garbage
      if (i % 2 && g.length >= 10) g.writeUInt32LE(g.length - 4, 0);
      try {
        for (const f of new FrameDecoder().push(g)) decodeMessage(f);
      } catch (e) {
        expect((e as { code?: string }).code).toBe('SIGNBRIDGE_ERR_PROTOCOL');
      }
    }
  });
});

// native/common/protocol.def is the one definition; scripts/gen-protocol.mjs makes the TypeScript table.
describe('protocol table generator', () => {
  const root = join(import.meta.dirname, '..', '..');
  const files = ['scripts/gen-protocol.mjs', 'native/common/protocol.def', 'src/ipc/protocol-table.generated.ts'];
  const gen = (cwd: string, ...args: string[]) =>
    spawnSync(process.execPath, [join(cwd, 'scripts', 'gen-protocol.mjs'), ...args], { encoding: 'utf8', timeout: 30_000 });
  /** A scratch copy of the generator, the .def and the generated file, with the .def edited by `edit`. */
  function scratch(edit: (def: string) => string): string {
    const dir = mkdtempSync(join(tmpdir(), 'sb-gen-'));
    for (const f of files) cpSync(join(root, f), join(dir, f), { recursive: true });
    const def = join(dir, 'native', 'common', 'protocol.def');
    writeFileSync(def, edit(readFileSync(def, 'utf8')));
    return dir;
  }

  it('the committed src/ipc/protocol-table.generated.ts is what the .def generates (else: npm run gen:protocol)', () => {
    const r = gen(root, '--check');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('--check fails on a stale table; one .def edit plus the generator adds a field', () => {
    const dir = scratch((def) => def.replace('SB_FIELD(bytes, signature)', 'SB_FIELD(bytes, signature)\nSB_FIELD(u32, dummy)'));
    try {
      const stale = gen(dir, '--check');
      expect(stale.status).toBe(1);
      expect(stale.stderr).toMatch(/protocol-table\.generated\.ts is stale/);
      expect(gen(dir).status).toBe(0);
      const ts = readFileSync(join(dir, 'src', 'ipc', 'protocol-table.generated.ts'), 'utf8');
      expect(ts).toMatch(/export const SIGN_REPLY: Struct = \[\n {2}\['signature', 'bytes'\],\n {2}\['dummy', 'u32'\],\n\];/);
      expect(ts).toContain('SignReply: { signature: Buffer; dummy: number };');
      expect(gen(dir, '--check').status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a .def line it does not understand, naming the line, and writes nothing', () => {
    const dir = scratch((def) => def.replace('SB_FIELD(u32, salt_len)', 'SB_FIELD(u24, salt_len)'));
    try {
      const before = readFileSync(join(dir, 'src', 'ipc', 'protocol-table.generated.ts'), 'utf8');
      const r = gen(dir);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/protocol\.def:\d+: unknown wire type u24/);
      expect(readFileSync(join(dir, 'src', 'ipc', 'protocol-table.generated.ts'), 'utf8')).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
