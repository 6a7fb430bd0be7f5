// The daemon's unix-socket server (protocol.md "Connection life"). Transport only: it frames,
// decodes, enforces HELLO-first, and dispatches to a Handler; what to sign with lives elsewhere.
// One line per malformed frame, then that connection (only) is closed.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { sbError, SignbridgeError } from '../core/errors.js';
import { ensurePrivateDir } from '../core/paths.js';
import { CKR_FUNCTION_FAILED, ckmName, ckrName } from '../core/pkcs11.js';
import { FrameDecoder } from './framing.js';
import {
  PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, decodeMessage, encodeErrorReply, encodeReply, withId,
  type Message, type SignRequest,
} from './protocol.js';

export interface Handler {
  /** The encoded GET_INVENTORY reply frame (any id; the server rewrites it), cached by the handler per generation. */
  inventoryFrame(): Buffer;
  /** The signature; throw a SignbridgeError (its `.ckr` becomes the reply's rv). */
  sign(req: SignRequest): Buffer | Promise<Buffer>;
}

export interface ServerOptions {
  socketPath: string;
  handler: Handler;
  logger: Logger;
  /** Sent in the HELLO reply, e.g. "signbridge/0.1.0". */
  serverName: string;
  /** SO_PEERCRED of a client fd (src/native/loader.ts); absent → connections are logged without pid/uid. */
  peerCredentials?: ((fd: number) => { pid: number; uid: number; gid: number }) | undefined;
}

/** true when something accepts connections on `path` (within timeoutMs). */
export function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(true); // connected-but-silent or slow: treat as alive, never delete its socket
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export class DaemonServer {
  private server: Server | undefined;
  private readonly conns = new Set<Socket>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private nextConn = 1;
  private listening = false;

  constructor(private readonly opts: ServerOptions) {}

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /**
   * Make `path` usable: a private directory (0700, ours), no other daemon answering on it, a stale
   * socket file removed. The daemon calls this before touching the token too, to fail fast.
   */
  static async preparePath(path: string, logger: Logger): Promise<void> {
    ensurePrivateDir(dirname(path));
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(path);
    } catch {
      st = undefined;
    }
    if (!st) return;
    if (!st.isSocket()) throw sbError('SIGNBRIDGE_ERR_CONFIG', { detail: `${path} exists and is not a socket; remove it or choose another --socket` });
    if (await probeSocket(path)) throw sbError('SIGNBRIDGE_ERR_DAEMON_RUNNING', { path });
    unlinkSync(path); // stale socket of a daemon that died
    logger.info({ socket: path }, 'removed a stale socket file');
  }

  async listen(): Promise<void> {
    const path = this.opts.socketPath;
    await DaemonServer.preparePath(path, this.opts.logger);
    const server = createServer({ allowHalfOpen: false }, (s) => this.onConnection(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600); // the directory is 0700 already; this is defence in depth
    this.listening = true;
    server.on('error', (e) => this.opts.logger.error({ err: e.message }, 'socket server error'));
  }

  private onConnection(sock: Socket): void {
    const n = this.nextConn++;
    let log = this.opts.logger.child({ conn: n });
    if (this.opts.peerCredentials) {
      const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
      try {
        if (typeof fd === 'number' && fd >= 0) {
          const c = this.opts.peerCredentials(fd);
          log = this.opts.logger.child({ conn: n, peerPid: c.pid, peerUid: c.uid });
        }
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'cannot read peer credentials');
      }
    }
    this.conns.add(sock);
    log.debug('client connected');
    const decoder = new FrameDecoder();
    let greeted = false;
    const queue: Buffer[] = [];
    let busy = false;

    const malformed = (e: unknown): void => {
      log.warn({ err: (e as Error).message }, 'malformed frame; closing this connection');
      queue.length = 0;
      sock.destroy();
    };

    // Handle one request; returns a promise only when the handler went asynchronous.
    const handle = (frame: Buffer): void | Promise<void> => {
      const m: Message = decodeMessage(frame);
      if (m.kind !== 'request') throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `a ${m.call} reply sent to the daemon` });
      if (!greeted) {
        if (m.call !== 'HELLO') throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `first frame is ${m.call}, not HELLO` });
        const { min_version, max_version, client } = m.body;
        const version = Math.min(max_version, PROTOCOL_MAX_VERSION);
        if (version < Math.max(min_version, PROTOCOL_MIN_VERSION)) {
          // protocol.md "HELLO": answer CKR_FUNCTION_FAILED with a sentence, then close.
          const upgrade = max_version < PROTOCOL_MIN_VERSION ? 'module' : 'daemon';
          const msg = sbError('SIGNBRIDGE_ERR_VERSION', {
            server: `${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
            client: `${min_version}..${max_version}`,
            upgrade,
          }).message;
          log.warn({ client }, msg);
          sock.end(encodeErrorReply('HELLO', m.id, CKR_FUNCTION_FAILED, msg));
          queue.length = 0;
          return;
        }
        greeted = true;
        log.debug({ client, version }, 'hello');
        sock.write(encodeReply('HELLO', m.id, { version, server: this.opts.serverName }));
        return;
      }
      switch (m.call) {
        case 'GET_INVENTORY':
          sock.write(withId(this.opts.handler.inventoryFrame(), m.id));
          return;
        case 'SIGN': {
          const id = m.id;
          const req = m.body;
          const t0 = process.hrtime.bigint();
          const ok = (sig: Buffer): void => {
            if (log.isLevelEnabled('debug')) log.debug({ mechanism: ckmName(req.mechanism), us: Number(process.hrtime.bigint() - t0) / 1000 }, 'signed');
            if (!sock.destroyed) sock.write(encodeReply('SIGN', id, { signature: sig }));
          };
          const fail = (e: unknown): void => {
            const rv = e instanceof SignbridgeError ? e.ckr : CKR_FUNCTION_FAILED;
            // Only catalogue messages go to the client; anything else stays in the log.
            const msg = e instanceof SignbridgeError ? e.message : 'internal error in the signbridge daemon: see its log';
            log.warn({ rv: ckrName(rv), mechanism: ckmName(req.mechanism), err: (e as Error)?.message }, 'sign failed');
            if (!sock.destroyed) sock.write(encodeErrorReply('SIGN', id, rv, msg));
          };
          let r: Buffer | Promise<Buffer>;
          try {
            r = this.opts.handler.sign(req);
          } catch (e) {
            fail(e);
            return;
          }
          if (Buffer.isBuffer(r)) {
            ok(r);
            return;
          }
          const p = r.then(ok, fail);
          this.inFlight.add(p);
          return p.finally(() => this.inFlight.delete(p));
        }
        default:
          throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `a second ${m.call} on a greeted connection` });
      }
    };

    // Requests on one connection are answered in order (protocol.md: strictly alternating).
    const pump = (): void => {
      while (!busy && queue.length > 0 && !sock.destroyed) {
        const f = queue.shift()!;
        let r: void | Promise<void>;
        try {
          r = handle(f);
        } catch (e) {
          malformed(e);
          return;
        }
        if (r) {
          busy = true;
          r.then(() => {
            busy = false;
            pump();
          });
        }
      }
    };

    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        malformed(e);
        return;
      }
      if (frames.length === 0) return;
      queue.push(...frames);
      pump();
    });
    sock.on('error', (e) => log.debug({ err: e.message }, 'connection error'));
    sock.on('close', () => {
      this.conns.delete(sock);
      log.debug('client disconnected');
    });
  }

  /** Stop accepting, let in-flight signatures finish and be answered, close connections, remove the socket. */
  async close(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Requests that arrive meanwhile are still answered: wait until nothing is in flight.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    for (const s of this.conns) s.end();
    // Give clients a moment to read their last replies, then cut the rest.
    const t = setTimeout(() => {
      for (const s of this.conns) s.destroy();
    }, 500);
    await closed;
    clearTimeout(t);
    if (this.listening) {
      try {
        unlinkSync(this.opts.socketPath);
      } catch {
        /* already gone */
      }
      this.listening = false;
    }
  }
}
