// A client connection the native signing path serves (native/addon/native_signer.cpp; docs/
// performance.md "The native signing path"). The addon reads and writes the socket; frames it does
// not answer itself arrive here whole, and server.ts serves this stream exactly like a socket, so
// HELLO, GET_INVENTORY, LOGIN, AUTHORIZE and every SIGN the native path declines take the usual
// JavaScript path. Linux/POSIX only (the Windows daemon has no native signer).
import { Duplex } from 'node:stream';
import type { NativeSignerApi } from '../native/loader.js';

export class NativeConnection extends Duplex {
  readonly nativeId: number;

  constructor(
    private readonly signer: NativeSignerApi,
    fd: number,
  ) {
    super({ allowHalfOpen: false });
    this.nativeId = signer.adopt(fd, (kind, frame) => {
      if (kind === 0) {
        this.push(frame);
        return;
      }
      // closed (by the client, or as we asked): data already pushed is still read, then 'end'
      if (!this.destroyed) this.push(null);
    });
  }

  override _read(): void {
    // frames are pushed as the addon delivers them
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.signer.write(this.nativeId, chunk);
    cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.signer.end(this.nativeId); // after the queued writes, like socket.end()
    cb();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.signer.destroy(this.nativeId);
    cb(err);
  }
}
