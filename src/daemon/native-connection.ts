// A client connection the native signing path serves (native/addon/native_signer.cpp; docs/
// performance.md "The native signing path"). The addon reads and writes the socket; frames it does
// not answer itself arrive here whole, and server.ts serves this stream exactly like a socket, so
// HELLO, GET_INVENTORY, LOGIN, AUTHORIZE and every SIGN the native path declines take the usual
// JavaScript path. Linux/POSIX only (the Windows daemon has no native signer).
import type { NativeSignerApi } from '../native/loader.js';
import { AddonStream } from './addon-stream.js';

export class NativeConnection extends AddonStream {
  readonly nativeId: number;

  constructor(signer: NativeSignerApi, fd: number) {
    let id = -1;
    super({ write: (chunk) => signer.write(id, chunk), end: () => signer.end(id), destroy: () => signer.destroy(id) });
    id = this.nativeId = signer.adopt(fd, (kind, frame) => (kind === 0 ? void this.push(frame) : this.peerClosed()));
  }
}
