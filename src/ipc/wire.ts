// Body primitives of the wire protocol (docs/protocol.md "Body primitives"): a bounded Reader whose
// first error sticks, and a growable Writer that finishes a frame in place. The codec that walks
// the generated field lists is protocol.ts.
import { isUtf8 } from 'node:buffer';
import { sbError, type SignbridgeError } from '../core/errors.js';
import { HEADER_SIZE, MAX_FRAME, MAX_LENGTH } from './protocol-table.generated.js';

export function protocolError(detail: string): SignbridgeError {
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
