// A client connection whose bytes the addon reads and writes — the Windows named pipe
// (pipe-server.ts) and a unix socket the native signing path took over (native-connection.ts) —
// as the Duplex server.ts serves like any socket. The addon pushes what it read; our writes, end
// and destroy go back to it.
import { Duplex } from 'node:stream';

/** What the addon does with one connection's writes, end and destroy. */
export interface AddonSide {
  write(chunk: Buffer): void;
  end(): void;
  destroy(): void;
}

export class AddonStream extends Duplex {
  constructor(private readonly side: AddonSide) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // bytes are pushed as the addon delivers them
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.side.write(chunk);
    cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.side.end(); // after the queued writes, like socket.end()
    cb();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.side.destroy();
    cb(err);
  }

  /** The addon closed the connection (the client went away, or we ended it): data already pushed is still read, then 'end'. */
  peerClosed(): void {
    if (!this.destroyed) this.push(null);
  }
}
