// The daemon's front door on Windows: a named pipe owned by the addon (native/addon/
// pipe_server_win.cpp; docs/windows.md "The daemon on a named pipe"). Node's net.Server could
// listen on a pipe but never shows JavaScript the pipe handle, and only that handle tells who the
// client is — so the addon accepts, reads the client's pid and user SID, and hands over bytes.
// Here each connection becomes a Duplex, so server.ts serves it exactly like a unix socket.
import { Duplex } from 'node:stream';
import type { NativePipeServer, PipeApi, PipePeer } from '../native/loader.js';

export type { PipeApi, PipePeer } from '../native/loader.js';

/** true for \\.\pipe\… (and //./pipe/…): a Windows named pipe, not a file. */
export function isPipePath(path: string): boolean {
  return /^[\\/]{2}[.?][\\/]pipe[\\/]/i.test(path);
}

class PipeConnection extends Duplex {
  constructor(
    private readonly server: NativePipeServer,
    private readonly id: number,
  ) {
    super({ allowHalfOpen: false });
  }
  override _read(): void {
    // bytes are pushed as the addon delivers them
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.server.write(this.id, chunk);
    cb();
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.server.end(this.id); // after the queued writes, like socket.end()
    cb();
  }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.server.destroy(this.id);
    cb(err);
  }
}

export interface PipeListener {
  close(): void;
}

/** Listens on `name`; `onConnection` gets each client's stream and identity (it may destroy the stream at once). */
export function listenPipe(api: PipeApi, name: string, onConnection: (conn: Duplex, peer: PipePeer) => void): PipeListener {
  const conns = new Map<number, PipeConnection>();
  const native = api.listen(name, (kind, id, payload) => {
    if (kind === 'connect') {
      const c = new PipeConnection(native, id);
      conns.set(id, c);
      onConnection(c, payload as PipePeer);
      return;
    }
    const c = conns.get(id);
    if (!c) return;
    if (kind === 'data') {
      c.push(payload as Buffer);
      return;
    }
    // 'close': the client went away or we ended it. End the readable side so data already pushed
    // is still read; autoDestroy then closes the stream.
    conns.delete(id);
    if (!c.destroyed) c.push(null);
  });
  return { close: () => native.close() };
}
