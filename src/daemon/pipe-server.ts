// The daemon's front door on Windows: a named pipe owned by the addon (native/addon/
// pipe_server_win.cpp; docs/windows.md "The daemon on a named pipe"). Node's net.Server could
// listen on a pipe but never shows JavaScript the pipe handle, and only that handle tells who the
// client is — so the addon accepts, reads the client's pid and user SID, and hands over bytes.
// Here each connection becomes a Duplex, so server.ts serves it exactly like a unix socket.
import type { Duplex } from 'node:stream';
import type { PipeApi, PipePeer } from '../native/loader.js';
import { AddonStream } from './addon-stream.js';

export type { PipeApi, PipePeer } from '../native/loader.js';

/** true for \\.\pipe\… (and //./pipe/…): a Windows named pipe, not a file. */
export function isPipePath(path: string): boolean {
  return /^[\\/]{2}[.?][\\/]pipe[\\/]/i.test(path);
}

export interface PipeListener {
  close(): void;
}

/** Listens on `name`; `onConnection` gets each client's stream and identity (it may destroy the stream at once). */
export function listenPipe(api: PipeApi, name: string, onConnection: (conn: Duplex, peer: PipePeer) => void): PipeListener {
  const conns = new Map<number, AddonStream>();
  const native = api.listen(name, (kind, id, payload) => {
    if (kind === 'connect') {
      const c = new AddonStream({ write: (chunk) => native.write(id, chunk), end: () => native.end(id), destroy: () => native.destroy(id) });
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
    // 'close': the client went away or we ended it; autoDestroy then closes the stream
    conns.delete(id);
    c.peerClosed();
  });
  return { close: () => native.close() };
}
