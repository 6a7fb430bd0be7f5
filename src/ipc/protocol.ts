// signbridge wire protocol v1 — a transport-free codec (docs/protocol.md is the contract). Every
// code, field list and limit comes from native/common/protocol.def through the generated
// protocol-table.generated.ts (npm run gen:protocol), the same definition the C++ codec is built
// from. After p11-kit's rpc-message.h: one table of calls with their field signatures drives both
// encoder and decoder; decoding is bounded and its errors are sticky (wire.ts); framing (length
// prefix) lives in framing.ts.
import {
  CALLS, CKU_USER_TYPE, HELLO_MAGIC, VERSION_MAX, VERSION_MIN, HEADER_SIZE, KIND_REPLY, KIND_REQUEST, MAX_FRAME, MAX_KEY_HANDLE, MAX_LENGTH, MIN_LENGTH,
  type FieldRule, type FieldType, type Records, type ReplyBodies, type RequestBodies, type Struct,
} from './protocol-table.generated.js';
import { Reader, Writer, protocolError } from './wire.js';
import type { SignbridgeError } from '../core/errors.js';

export { CALLS, HEADER_SIZE, KIND_REPLY, KIND_REQUEST, MAX_FRAME, MAX_KEY_HANDLE, MAX_LENGTH, MIN_LENGTH, Reader, Writer };
export type { Field, FieldRule, FieldType, ReplyBodies, RequestBodies, Struct, WireType } from './protocol-table.generated.js';
// The names this module has always exported, for the table's constants.
export const MAGIC = HELLO_MAGIC; // "SBG1" little-endian
export const PROTOCOL_MIN_VERSION = VERSION_MIN;
export const PROTOCOL_MAX_VERSION = VERSION_MAX;
/** CK_USER_TYPE CKU_USER (PKCS#11 v2.40 §3.4): the only user type LOGIN accepts (protocol.md "LOGIN"). */
export const CKU_USER = CKU_USER_TYPE;

export type KindName = 'request' | 'reply';

export type CallName = keyof typeof CALLS;
const CALL_BY_CODE = new Map<number, CallName>(
  (Object.keys(CALLS) as CallName[]).map((n) => [CALLS[n].code, n]),
);
export function callName(code: number): CallName | undefined {
  return CALL_BY_CODE.get(code);
}

// ---------------------------------------------------------------------------------------------
// Typed views of the bodies (u64 → bigint, bytes → Buffer, str → string), generated from the .def.
// The inventory's records have the shapes core/objects.ts builds (P11Slot …); the wire carries them as is.

export type HelloRequest = Records['HelloRequest'];
export type HelloReply = Records['HelloReply'];
export type Mechanism = Records['Mechanism'];
export type Attribute = Records['Attribute'];
export type InventoryObject = Records['Object'];
export type Slot = Records['Slot'];
export type InventoryReply = Records['InventoryReply'];
export type SignRequest = Records['SignRequest'];
export type SignReply = Records['SignReply'];
export type LoginRequest = Records['LoginRequest'];
export type AuthorizeRequest = Records['AuthorizeRequest'];
export type Empty = Record<string, never>;
/** LOGIN's reply has no fields after rv (an intersection with Empty would forbid `rv`). */
export type NoFields = Record<never, never>;

/** A reply body: `rv` first, then the call's fields (rv == 0) or `message` (protocol.md "Reply envelope"). */
export type ReplyBody<C extends CallName> = ({ rv: 0 } & ReplyBodies[C]) | { rv: number; message: string };

export type Message =
  | { [C in CallName]: { call: C; kind: 'request'; id: number; body: RequestBodies[C] } }[CallName]
  | { [C in CallName]: { call: C; kind: 'reply'; id: number; body: ReplyBody<C> } }[CallName];

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

/** Applies a field's rule (protocol.def SB_FIELD_MAX / SB_FIELD_IS) to what was read. */
function checkRule(r: Reader, name: string, rule: FieldRule | undefined, v: number | Buffer | string): void {
  if (rule === undefined || r.error !== null) return;
  if ('max' in rule) {
    const n = typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : (v as Buffer).length;
    // e.g. protocol.md "object": a key_handle is at most 255 bytes (SIGN and inventory alike)
    if (n > rule.max) r.fail(`${name} of ${n} bytes (at most ${rule.max})`);
  } else if (v !== rule.is) {
    // e.g. protocol.md "HELLO": a wrong magic is a malformed frame
    r.fail(`${name} 0x${(v as number).toString(16)} is not 0x${rule.is.toString(16)}`);
  }
}

export function readStruct(r: Reader, s: Struct): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, t, rule] of s) {
    let v: unknown;
    switch (t) {
      case 'u8': v = r.u8(); break;
      case 'u16': v = r.u16(); break;
      case 'u32': v = r.u32(); break;
      case 'u64': v = r.u64(); break;
      case 'bytes': v = r.bytes(); break;
      case 'str': v = r.str(); break;
      default: {
        const n = r.count(minStructSize(t.array));
        const items: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) items[i] = readStruct(r, t.array);
        v = items;
      }
    }
    checkRule(r, name, rule, v as number | Buffer | string);
    out[name] = v;
    if (r.error !== null) break;
  }
  return out;
}

function bad(name: string, want: string): SignbridgeError {
  return protocolError(`field ${name} must be ${want}`);
}

export function writeStruct(w: Writer, s: Struct, v: Record<string, unknown>): void {
  for (const [name, t, rule] of s) {
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
        if (rule !== undefined && 'max' in rule && x.length > rule.max) throw bad(name, `at most ${rule.max} bytes`);
        w.bytes(x);
        break;
      case 'str':
        if (typeof x !== 'string') throw bad(name, 'a string');
        if (rule !== undefined && 'max' in rule && Buffer.byteLength(x, 'utf8') > rule.max) throw bad(name, `at most ${rule.max} bytes`);
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
