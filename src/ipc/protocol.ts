// signbridge wire protocol v1 — a transport-free codec (docs/protocol.md is the contract;
// native/common/protocol.h mirrors the same call table). After p11-kit's rpc-message.h: one table
// of calls with their field signatures drives both encoder and decoder; decoding is bounded and
// its errors are sticky; framing (length prefix) lives in framing.ts.
import { isUtf8 } from 'node:buffer';
import { sbError, type SignbridgeError } from '../core/errors.js';
import type { P11Attribute, P11Mechanism, P11Object, P11Slot } from '../core/objects.js';

export const MAGIC = 0x31474253; // "SBG1" little-endian
export const MAX_FRAME = 4 * 1024 * 1024; // header included (protocol.md "Framing")
export const HEADER_SIZE = 10; // u32 length, u8 call, u8 kind, u32 id
export const MIN_LENGTH = 6; // `length` counts call+kind+id+body
export const MAX_LENGTH = MAX_FRAME - 4;
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 1;
export const MAX_KEY_HANDLE = 255;
/** CK_USER_TYPE CKU_USER (PKCS#11 v2.40 §3.4): the only user type LOGIN accepts (protocol.md "LOGIN"). */
export const CKU_USER = 1;

export const KIND_REQUEST = 0;
export const KIND_REPLY = 1;
export type KindName = 'request' | 'reply';

// ---------------------------------------------------------------------------------------------
// Field signatures (the call table)

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes' | 'str' | { array: Struct };
export type Struct = ReadonlyArray<readonly [name: string, type: FieldType]>;

const MECHANISM: Struct = [
  ['type', 'u64'],
  ['min_key_size', 'u32'],
  ['max_key_size', 'u32'],
  ['flags', 'u32'],
];
const ATTRIBUTE: Struct = [
  ['type', 'u64'],
  ['value', 'bytes'],
];
const OBJECT: Struct = [
  ['key_handle', 'bytes'],
  ['attributes', { array: ATTRIBUTE }],
];
const SLOT: Struct = [
  ['slot_id', 'u32'],
  ['slot_description', 'str'],
  ['manufacturer', 'str'],
  ['token_label', 'str'],
  ['token_model', 'str'],
  ['token_serial', 'str'],
  ['token_flags', 'u32'],
  ['mechanisms', { array: MECHANISM }],
  ['objects', { array: OBJECT }],
];

export const CALLS = {
  HELLO: {
    code: 0x01,
    request: [
      ['magic', 'u32'],
      ['min_version', 'u16'],
      ['max_version', 'u16'],
      ['client', 'str'],
    ],
    reply: [
      ['version', 'u16'],
      ['server', 'str'],
    ],
  },
  GET_INVENTORY: {
    code: 0x02,
    request: [],
    reply: [
      ['generation', 'u64'],
      ['slots', { array: SLOT }],
    ],
  },
  SIGN: {
    code: 0x03,
    request: [
      ['key_handle', 'bytes'],
      ['mechanism', 'u64'],
      ['hash_alg', 'u64'],
      ['mgf', 'u64'],
      ['salt_len', 'u32'],
      ['data', 'bytes'],
    ],
    reply: [['signature', 'bytes']],
  },
  // protocol.md "LOGIN": per connection; only needed when the daemon has a client secret.
  LOGIN: {
    code: 0x04,
    request: [
      ['slot_id', 'u32'],
      ['user_type', 'u64'],
      ['pin', 'bytes'],
    ],
    reply: [],
  },
} as const satisfies Record<string, { code: number; request: Struct; reply: Struct }>;

export type CallName = keyof typeof CALLS;
const CALL_BY_CODE = new Map<number, CallName>(
  (Object.keys(CALLS) as CallName[]).map((n) => [CALLS[n].code, n]),
);
export function callName(code: number): CallName | undefined {
  return CALL_BY_CODE.get(code);
}

// ---------------------------------------------------------------------------------------------
// Typed views of the bodies (u64 → bigint, bytes → Buffer, str → string)

export interface HelloRequest { magic: number; min_version: number; max_version: number; client: string }
export interface HelloReply { version: number; server: string }
// The inventory's shapes are the PKCS#11 objects core/objects.ts builds; the wire carries them as is.
export type Mechanism = P11Mechanism;
export type Attribute = P11Attribute;
export type InventoryObject = P11Object;
export type Slot = P11Slot;
export interface InventoryReply { generation: bigint; slots: Slot[] }
export interface SignRequest {
  key_handle: Buffer;
  mechanism: bigint;
  hash_alg: bigint;
  mgf: bigint;
  salt_len: number;
  data: Buffer;
}
export interface SignReply { signature: Buffer }
export interface LoginRequest { slot_id: number; user_type: bigint; pin: Buffer }
export type Empty = Record<string, never>;

export interface RequestBodies { HELLO: HelloRequest; GET_INVENTORY: Empty; SIGN: SignRequest; LOGIN: LoginRequest }
/** LOGIN's reply has no fields after rv (an intersection with Empty would forbid `rv`). */
export type NoFields = Record<never, never>;
export interface ReplyBodies { HELLO: HelloReply; GET_INVENTORY: InventoryReply; SIGN: SignReply; LOGIN: NoFields }

/** A reply body: `rv` first, then the call's fields (rv == 0) or `message` (protocol.md "Reply envelope"). */
export type ReplyBody<C extends CallName> = ({ rv: 0 } & ReplyBodies[C]) | { rv: number; message: string };

export type Message =
  | { [C in CallName]: { call: C; kind: 'request'; id: number; body: RequestBodies[C] } }[CallName]
  | { [C in CallName]: { call: C; kind: 'reply'; id: number; body: ReplyBody<C> } }[CallName];

// ---------------------------------------------------------------------------------------------
// Reader / Writer

function protocolError(detail: string): SignbridgeError {
  return sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail });
}

/** Bounded reader over one frame body. The first error sticks; later reads return zero values. */
export class Reader {
  private pos: number;
  error: string | null = null;
  constructor(private readonly buf: Buffer, start = 0, private readonly end = buf.length) {
    this.pos = start;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  private take(n: number, what: string): number {
    if (this.error !== null) return -1;
    if (n > this.end - this.pos) {
      this.error = `${what} needs ${n} bytes, ${this.end - this.pos} left`;
      return -1;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  fail(msg: string): void {
    if (this.error === null) this.error = msg;
  }
  u8(): number {
    const at = this.take(1, 'u8');
    return at < 0 ? 0 : this.buf[at]!;
  }
  u16(): number {
    const at = this.take(2, 'u16');
    return at < 0 ? 0 : this.buf.readUInt16LE(at);
  }
  u32(): number {
    const at = this.take(4, 'u32');
    return at < 0 ? 0 : this.buf.readUInt32LE(at);
  }
  u64(): bigint {
    const at = this.take(8, 'u64');
    return at < 0 ? 0n : this.buf.readBigUInt64LE(at);
  }
  bytes(): Buffer {
    const n = this.u32();
    const at = this.take(n, 'bytes');
    return at < 0 ? Buffer.alloc(0) : this.buf.subarray(at, at + n);
  }
  str(): string {
    const b = this.bytes();
    // protocol.md "Body primitives": a str holds UTF-8; anything else is malformed (as in the C++ codec),
    // never silently replaced by U+FFFD (which would not re-encode to the same bytes).
    if (this.error === null && !isUtf8(b)) this.error = 'str is not valid UTF-8';
    return b.toString('utf8');
  }
  /** An array count, rejected when `count * minItemSize` exceeds what is left (no huge allocations). */
  count(minItemSize: number): number {
    const n = this.u32();
    if (this.error !== null) return 0;
    if (n * minItemSize > this.remaining) {
      this.error = `array count ${n} larger than the ${this.remaining} bytes left`;
      return 0;
    }
    return n;
  }
  /** Throws the sticky error, or an error for unconsumed bytes (protocol.md: a body must be consumed exactly). */
  finish(): void {
    if (this.error !== null) throw protocolError(this.error);
    if (this.pos !== this.end) throw protocolError(`${this.end - this.pos} trailing bytes after the last field`);
  }
}

/** Growable writer; reserves the 10-byte header so a frame is finished in place (one buffer, one write). */
export class Writer {
  private buf: Buffer;
  private pos: number;
  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(initial, HEADER_SIZE));
    this.pos = HEADER_SIZE;
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.pos = this.buf.writeUInt16LE(v, this.pos);
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.pos = this.buf.writeUInt32LE(v, this.pos);
    return this;
  }
  u64(v: bigint | number): this {
    this.ensure(8);
    this.pos = this.buf.writeBigUInt64LE(BigInt(v), this.pos);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  str(s: string): this {
    const n = Buffer.byteLength(s, 'utf8');
    this.u32(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
    return this;
  }
  /** Write the header and return the finished frame. */
  frame(call: number, kind: number, id: number): Buffer {
    const length = this.pos - 4;
    if (length > MAX_LENGTH) throw protocolError(`frame of ${this.pos} bytes exceeds MAX_FRAME (${MAX_FRAME})`);
    this.buf.writeUInt32LE(length, 0);
    this.buf[4] = call;
    this.buf[5] = kind;
    this.buf.writeUInt32LE(id >>> 0, 6);
    return this.buf.subarray(0, this.pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Generic struct codec driven by the table

function minSize(t: FieldType): number {
  if (typeof t === 'object') return 4;
  return { u8: 1, u16: 2, u32: 4, u64: 8, bytes: 4, str: 4 }[t];
}
const structMin = new WeakMap<Struct, number>();
function minStructSize(s: Struct): number {
  let n = structMin.get(s);
  if (n === undefined) {
    n = s.reduce((acc, [, t]) => acc + minSize(t), 0);
    structMin.set(s, Math.max(n, 1));
  }
  return structMin.get(s)!;
}

export function readStruct(r: Reader, s: Struct): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, t] of s) {
    switch (t) {
      case 'u8': out[name] = r.u8(); break;
      case 'u16': out[name] = r.u16(); break;
      case 'u32': out[name] = r.u32(); break;
      case 'u64': out[name] = r.u64(); break;
      case 'bytes': {
        const b = r.bytes();
        // protocol.md "object": a key_handle is at most 255 bytes (SIGN and inventory alike)
        if (name === 'key_handle' && b.length > MAX_KEY_HANDLE) r.fail(`key_handle of ${b.length} bytes (at most ${MAX_KEY_HANDLE})`);
        out[name] = b;
        break;
      }
      case 'str': out[name] = r.str(); break;
      default: {
        const n = r.count(minStructSize(t.array));
        const items: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) items[i] = readStruct(r, t.array);
        out[name] = items;
      }
    }
    if (r.error !== null) break;
  }
  return out;
}

function bad(name: string, want: string): SignbridgeError {
  return protocolError(`field ${name} must be ${want}`);
}

export function writeStruct(w: Writer, s: Struct, v: Record<string, unknown>): void {
  for (const [name, t] of s) {
    const x = v[name];
    switch (t) {
      case 'u8':
      case 'u16':
      case 'u32': {
        const max = t === 'u8' ? 0xff : t === 'u16' ? 0xffff : 0xffffffff;
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > max) throw bad(name, t);
        if (t === 'u8') w.u8(x);
        else if (t === 'u16') w.u16(x);
        else w.u32(x);
        break;
      }
      case 'u64':
        if (typeof x === 'bigint' ? x < 0n || x > 0xffffffffffffffffn : typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
          throw bad(name, 'u64');
        w.u64(x as bigint | number);
        break;
      case 'bytes':
        if (!(x instanceof Uint8Array)) throw bad(name, 'bytes');
        if (name === 'key_handle' && x.length > MAX_KEY_HANDLE) throw bad(name, `at most ${MAX_KEY_HANDLE} bytes`);
        w.bytes(x);
        break;
      case 'str':
        if (typeof x !== 'string') throw bad(name, 'a string');
        w.str(x);
        break;
      default:
        if (!Array.isArray(x)) throw bad(name, 'an array');
        w.u32(x.length);
        for (const item of x) writeStruct(w, t.array, item as Record<string, unknown>);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Frames and messages

export interface RawFrame {
  call: number;
  kind: number;
  id: number;
  /** The complete frame, header included. */
  frame: Buffer;
}

/** Parse the header of one complete frame (as yielded by FrameDecoder). */
export function parseHeader(frame: Buffer): RawFrame {
  if (frame.length < HEADER_SIZE) throw protocolError(`frame of ${frame.length} bytes is shorter than the header`);
  const length = frame.readUInt32LE(0);
  if (length < MIN_LENGTH || length > MAX_LENGTH) throw protocolError(`frame length ${length} outside [${MIN_LENGTH}, ${MAX_LENGTH}]`);
  if (length + 4 !== frame.length) throw protocolError(`frame length ${length} but ${frame.length - 4} bytes follow`);
  return { call: frame[4]!, kind: frame[5]!, id: frame.readUInt32LE(6), frame };
}

function kindName(kind: number): KindName {
  if (kind === KIND_REQUEST) return 'request';
  if (kind === KIND_REPLY) return 'reply';
  throw protocolError(`unknown frame kind ${kind}`);
}

/** Decode one complete frame into a message; throws SIGNBRIDGE_ERR_PROTOCOL for anything malformed. */
export function decodeMessage(frame: Buffer): Message {
  const h = parseHeader(frame);
  const call = callName(h.call);
  if (call === undefined) throw protocolError(`unknown call 0x${h.call.toString(16).padStart(2, '0')}`);
  const kind = kindName(h.kind);
  const r = new Reader(frame, HEADER_SIZE);
  let body: Record<string, unknown>;
  if (kind === 'request') {
    body = readStruct(r, CALLS[call].request);
    r.finish();
    // protocol.md "HELLO": a wrong magic is a malformed frame.
    if (call === 'HELLO' && body.magic !== MAGIC) throw protocolError(`HELLO magic 0x${(body.magic as number).toString(16)} is not "SBG1"`);
  } else {
    const rv = r.u32();
    body = rv === 0 ? { rv, ...readStruct(r, CALLS[call].reply) } : { rv, message: r.str() };
    r.finish();
  }
  return { call, kind, id: h.id, body } as Message;
}

export function encodeMessage(m: Message): Buffer {
  const def = CALLS[m.call];
  if (def === undefined) throw protocolError(`unknown call ${String(m.call)}`);
  const w = new Writer();
  if (m.kind === 'request') {
    writeStruct(w, def.request, m.body as Record<string, unknown>);
    return w.frame(def.code, KIND_REQUEST, m.id);
  }
  const body = m.body as { rv: number; message?: string } & Record<string, unknown>;
  w.u32(body.rv);
  if (body.rv === 0) writeStruct(w, def.reply, body);
  else w.str(body.message ?? '');
  return w.frame(def.code, KIND_REPLY, m.id);
}

// Typed helpers the server and client use.

export function encodeRequest<C extends CallName>(call: C, id: number, body: RequestBodies[C]): Buffer {
  return encodeMessage({ call, kind: 'request', id, body } as Message);
}
export function encodeReply<C extends CallName>(call: C, id: number, body: ReplyBodies[C]): Buffer {
  return encodeMessage({ call, kind: 'reply', id, body: { rv: 0, ...body } } as Message);
}
export function encodeErrorReply(call: CallName, id: number, rv: number, message: string): Buffer {
  if (rv === 0) throw protocolError('an error reply needs rv != 0');
  return encodeMessage({ call, kind: 'reply', id, body: { rv, message } } as Message);
}
/** Rewrite the id of an already encoded frame (cached inventory reply) into a fresh buffer. */
export function withId(frame: Buffer, id: number): Buffer {
  const out = Buffer.allocUnsafe(frame.length);
  frame.copy(out);
  out.writeUInt32LE(id >>> 0, 6);
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON form of the golden frames (protocol.md "Golden frames"): bytes → lower-case hex,
// integers → JSON numbers (u64 must be a safe integer there), arrays/structs as is.

function structToJson(s: Struct, v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, t] of s) {
    const x = v[name];
    if (t === 'u64') {
      const n = Number(x as bigint);
      if (!Number.isSafeInteger(n)) throw bad(name, 'a u64 below 2^53 in JSON');
      out[name] = n;
    } else if (t === 'bytes') out[name] = (x as Buffer).toString('hex');
    else if (typeof t === 'object') out[name] = (x as Record<string, unknown>[]).map((i) => structToJson(t.array, i));
    else out[name] = x;
  }
  return out;
}
function structFromJson(s: Struct, v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, t] of s) {
    const x = v[name];
    if (x === undefined) throw bad(name, 'present');
    if (t === 'u64') out[name] = BigInt(x as number);
    else if (t === 'bytes') {
      if (typeof x !== 'string' || !/^([0-9a-f]{2})*$/.test(x)) throw bad(name, 'lower-case hex');
      out[name] = Buffer.from(x, 'hex');
    } else if (typeof t === 'object') out[name] = (x as Record<string, unknown>[]).map((i) => structFromJson(t.array, i));
    else out[name] = x;
  }
  return out;
}

export interface JsonMessage { call: CallName; kind: KindName; id: number; body: Record<string, unknown> }

export function messageToJson(m: Message): JsonMessage {
  const def = CALLS[m.call];
  const body = m.body as Record<string, unknown>;
  if (m.kind === 'request') return { call: m.call, kind: m.kind, id: m.id, body: structToJson(def.request, body) };
  const rv = body.rv as number;
  return {
    call: m.call,
    kind: m.kind,
    id: m.id,
    body: rv === 0 ? { rv, ...structToJson(def.reply, body) } : { rv, message: body.message },
  };
}

export function messageFromJson(j: JsonMessage): Message {
  const def = CALLS[j.call];
  if (def === undefined) throw protocolError(`unknown call ${String(j.call)}`);
  if (j.kind === 'request') return { call: j.call, kind: 'request', id: j.id, body: structFromJson(def.request, j.body) } as Message;
  const rv = j.body.rv as number;
  return {
    call: j.call,
    kind: 'reply',
    id: j.id,
    body: rv === 0 ? { rv, ...structFromJson(def.reply, j.body) } : { rv, message: j.body.message },
  } as Message;
}
