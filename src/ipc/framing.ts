// Length-prefixed framing (protocol.md "Framing"), separate from the codec. Push socket chunks in,
// get complete frames (header included) out. A `length` outside [6, MAX_FRAME-4] is rejected as
// soon as its 4 bytes are seen, before any body is buffered, so a peer cannot make us grow.
import { sbError } from '../core/errors.js';
import { MAX_LENGTH, MIN_LENGTH } from './protocol.js';

export class FrameDecoder {
  /** Up to 3 bytes of a length prefix split across chunks. */
  private head: Buffer = Buffer.alloc(0);
  /** The frame being assembled (allocated once its length is known), and how much of it is filled. */
  private partial: Buffer | null = null;
  private filled = 0;
  private failed = false;

  /** Feed one chunk; returns the frames it completed (possibly none). Throws SIGNBRIDGE_ERR_PROTOCOL on a bad length; the decoder is then unusable. */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: 'decoder used after a framing error' });
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.partial !== null) {
        const n = Math.min(this.partial.length - this.filled, chunk.length - off);
        chunk.copy(this.partial, this.filled, off, off + n);
        this.filled += n;
        off += n;
        if (this.filled === this.partial.length) {
          out.push(this.partial);
          this.partial = null;
          this.filled = 0;
        }
        continue;
      }
      // Need the 4-byte length.
      let length: number;
      if (this.head.length === 0 && chunk.length - off >= 4) {
        length = chunk.readUInt32LE(off);
      } else {
        const need = 4 - this.head.length;
        const n = Math.min(need, chunk.length - off);
        this.head = Buffer.concat([this.head, chunk.subarray(off, off + n)]);
        off += n;
        if (this.head.length < 4) break;
        length = this.head.readUInt32LE(0);
      }
      if (length < MIN_LENGTH || length > MAX_LENGTH) {
        this.failed = true;
        throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `frame length ${length} outside [${MIN_LENGTH}, ${MAX_LENGTH}]` });
      }
      if (this.head.length === 4) {
        // Length came from `head`; the body starts at `off`.
        this.partial = Buffer.allocUnsafe(4 + length);
        this.head.copy(this.partial, 0);
        this.filled = 4;
        this.head = Buffer.alloc(0);
        continue;
      }
      // Length read in place: the whole frame may be in this chunk (common case, no copy).
      if (chunk.length - off >= 4 + length) {
        out.push(chunk.subarray(off, off + 4 + length));
        off += 4 + length;
      } else {
        this.partial = Buffer.allocUnsafe(4 + length);
        this.filled = 0;
      }
    }
    return out;
  }

  /** Bytes held for an incomplete frame (0 between frames). */
  get pending(): number {
    return this.head.length + this.filled;
  }
}
