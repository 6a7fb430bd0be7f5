// The daemon's front door: the unix socket (protocol.md "Connection life"). It accepts, reads each
// client's credentials and applies the uid policy (README "Security model": refused before any of
// the connection's bytes is read), frames and decodes, keeps one connection's replies in order,
// and closes only the connection that sent a malformed frame (one log line). What a request means
// is the dispatcher's (dispatcher.ts); this file knows no call but "a request".
import { connect, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, readlinkSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { sbError } from '../core/errors.js';
import { ensurePrivateDir } from '../core/paths.js';
import { FrameDecoder } from '../ipc/framing.js';
import { decodeMessage, type Message } from '../ipc/protocol.js';
import { peerPolicy, type PeerPolicy } from './peer-policy.js';
import { isPipePath, listenPipe, type PipeApi, type PipeListener, type PipePeer } from './pipe-server.js';
import type { Duplex } from 'node:stream';

/** The process at the other end of a connection (SO_PEERCRED + /proc/<pid>/exe; on Windows the pipe client's pid and token). */
export interface PeerInfo {
  pid: number;
  /** -1 on Windows (no uids there: `sid` says who) */
  uid: number;
  gid: number;
  /** readlink /proc/<pid>/exe (Windows: the image path); null when it cannot be read (process gone, no /proc, no permission) */
  exe: string | null;
  /** Windows: the client's user SID */
  sid?: string | undefined;
}

/** A decoded request frame (the wire's view; see protocol.ts). */
export type RequestMessage = Extract<Message, { kind: 'request' }>;

/** One accepted connection, as the dispatcher sees it. */
export interface Connection {
  /** Sequence number of the connection (log lines carry it as `conn`). */
  readonly n: number;
  readonly peer: PeerInfo | undefined;
  /** Logger whose lines carry conn and the peer's pid/uid/exe. */
  readonly log: Logger;
  /** The connection's id in the native signing path, when it serves it (native-connection.ts). */
  readonly nativeId?: number | undefined;
  /** Write a reply frame; dropped when the connection is already gone. */
  send(frame: Buffer): void;
  /** Write a last frame, then close (later requests on it are dropped). */
  end(frame: Buffer): void;
}

/**
 * Answers the requests of one connection, in order. Throwing means the frame was malformed (the
 * connection is closed); a returned promise holds back that connection's next request until it
 * settles (it must not reject), and close() waits for it.
 */
export type RequestHandler = (m: RequestMessage) => void | Promise<void>;

export interface ServerOptions {
  socketPath: string;
  logger: Logger;
  /** A new connection passed the uid policy: its request handler (dispatcher.ts). */
  accept(conn: Connection): RequestHandler;
  /** SO_PEERCRED of a client fd (src/native/loader.ts); absent → connections are logged without pid/uid. */
  peerCredentials?: ((fd: number) => { pid: number; uid: number; gid: number }) | undefined;
  /** uids besides the daemon's own that may connect (--allow-uid). Needs peerCredentials. */
  allowUids?: readonly number[] | undefined;
  /** The daemon's own uid (default process.getuid()); tests set it. */
  ownUid?: number | undefined;
  /** Refuse connections whose credentials cannot be read (the CLI daemon: fail closed). */
  requirePeerCredentials?: boolean | undefined;
  /** Windows: the addon's named-pipe server (socketPath is then \\.\pipe\…); only the daemon's own SID may connect. */
  pipe?: PipeApi | undefined;
  /**
   * The native signing path takes each accepted, identified connection over (its fd) and returns
   * the stream to serve (daemon/index.ts; docs/performance.md "The native signing path").
   */
  adopt?: ((fd: number) => Duplex & { readonly nativeId: number }) | undefined;
}

function readExe(pid: number): string | null {
  try {
    // procfs, no disk I/O: cheap enough to do synchronously once per connection
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
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
  private pipeListener: PipeListener | undefined;
  private readonly conns = new Set<Duplex>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly policy: PeerPolicy;
  private nextConn = 1;
  private listening = false;

  constructor(private readonly opts: ServerOptions) {
    const own = opts.ownUid ?? (typeof process.getuid === 'function' ? process.getuid() : undefined);
    this.policy = peerPolicy(own, opts.allowUids ?? []);
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /**
   * Make `path` usable: a private directory (0700, ours), no other daemon answering on it, a stale
   * socket file removed. The daemon calls this before touching the token too, to fail fast.
   */
  static async preparePath(path: string, logger: Logger): Promise<void> {
    // A pipe has no directory or file to check: creating its first instance refuses a taken name (listenOnPipe).
    if (isPipePath(path)) return;
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
    if (isPipePath(path)) return this.listenOnPipe(path);
    await DaemonServer.preparePath(path, this.opts.logger);
    // With a native path nothing may be read before it takes the connection over.
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: this.opts.adopt !== undefined }, (s) => this.onConnection(s));
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

  /**
   * Windows (docs/windows.md "The daemon on a named pipe"): the addon creates the pipe as its first
   * instance, so a name that exists — another daemon, or another user squatting on it — is refused
   * at start; its DACL admits only our user, and each client's SID is checked again here.
   */
  private listenOnPipe(path: string): void {
    const api = this.opts.pipe;
    if (!api) throw sbError('SIGNBRIDGE_ERR_CONFIG', { detail: `${path} is a named pipe, which needs the Windows addon; use a unix socket path with --socket` });
    const ownSid = api.currentUserSid();
    try {
      this.pipeListener = listenPipe(api, path, (conn, peer) => this.onPipeConnection(conn, peer, ownSid));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'SIGNBRIDGE_ERR_PIPE_EXISTS') throw sbError('SIGNBRIDGE_ERR_DAEMON_RUNNING', { path }, { cause: e });
      throw e;
    }
    this.listening = true;
  }

  private onPipeConnection(conn: Duplex, p: PipePeer, ownSid: string): void {
    const n = this.nextConn++;
    const peer: PeerInfo = { pid: p.pid, uid: -1, gid: -1, exe: p.exe, sid: p.sid ?? undefined };
    const log = this.opts.logger.child({ conn: n, peerPid: p.pid, peerSid: p.sid, peerAccount: p.account, peerExe: p.exe });
    // Fail closed: an unknown SID is refused like a foreign one, before a byte is read.
    if (p.sid !== ownSid) {
      log.warn({ allowedSid: ownSid, ...(p.error ? { err: p.error } : {}) }, p.sid ? `connection refused: peer SID ${p.sid} is not the daemon's user` : 'connection refused: cannot read its user SID');
      conn.destroy();
      return;
    }
    this.serve(conn, n, peer, log);
  }

  /** The peer's credentials and a logger carrying them; undefined when the connection was refused. */
  private identify(sock: Socket, n: number): { peer: PeerInfo | undefined; log: Logger } | undefined {
    let log = this.opts.logger.child({ conn: n });
    let peer: PeerInfo | undefined;
    if (this.opts.peerCredentials) {
      const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
      try {
        if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor');
        const c = this.opts.peerCredentials(fd);
        peer = { pid: c.pid, uid: c.uid, gid: c.gid, exe: readExe(c.pid) };
        log = this.opts.logger.child({ conn: n, peerPid: peer.pid, peerUid: peer.uid, peerExe: peer.exe });
      } catch (e) {
        if (this.opts.requirePeerCredentials) {
          log.warn({ err: (e as Error).message }, 'connection refused: cannot read its peer credentials (SO_PEERCRED)');
          return undefined;
        }
        log.warn({ err: (e as Error).message }, 'cannot read peer credentials');
      }
    } else if (this.opts.requirePeerCredentials) {
      log.warn('connection refused: no peer-credential check available');
      return undefined;
    }
    // README "Security model": the daemon's own uid (and --allow-uid); refused before any byte is read.
    const refusal = peer ? this.policy.refusal(peer.uid) : undefined;
    if (refusal) {
      log.warn(this.policy.logFields, refusal);
      return undefined;
    }
    return { peer, log };
  }

  private onConnection(sock: Socket): void {
    const n = this.nextConn++;
    const who = this.identify(sock, n);
    if (!who) {
      sock.destroy();
      return;
    }
    if (this.opts.adopt) {
      const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
      try {
        if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor');
        const native = this.opts.adopt(fd); // a dup of the fd: ours is closed below, the connection lives on
        sock.destroy();
        this.serve(native, n, who.peer, who.log);
        return;
      } catch (e) {
        who.log.warn({ err: (e as Error).message }, 'the native signing path cannot take this connection; it is served in JavaScript');
        sock.resume();
      }
    }
    this.serve(sock, n, who.peer, who.log);
  }

  /** One accepted, identified connection (a unix socket, or a pipe connection on Windows). */
  private serve(sock: Duplex, n: number, peer: PeerInfo | undefined, log: Logger): void {
    this.conns.add(sock);
    log.debug('client connected');
    const decoder = new FrameDecoder();
    const queue: Buffer[] = [];
    let busy = false;
    const conn: Connection = {
      n,
      peer,
      log,
      nativeId: (sock as Duplex & { nativeId?: number }).nativeId,
      send: (frame) => {
        if (!sock.destroyed) sock.write(frame);
      },
      end: (frame) => {
        queue.length = 0;
        sock.end(frame);
      },
    };
    const handle = this.opts.accept(conn);

    const malformed = (e: unknown): void => {
      log.warn({ err: (e as Error).message }, 'malformed frame; closing this connection');
      queue.length = 0;
      sock.destroy();
    };

    // Requests on one connection are answered in order (protocol.md: strictly alternating).
    const pump = (): void => {
      while (!busy && queue.length > 0 && !sock.destroyed) {
        const f = queue.shift()!;
        let r: void | Promise<void>;
        try {
          const m = decodeMessage(f);
          if (m.kind !== 'request') throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `a ${m.call} reply sent to the daemon` });
          r = handle(m);
        } catch (e) {
          malformed(e);
          return;
        }
        if (r) {
          busy = true;
          const settle = (): void => {
            this.inFlight.delete(p);
            busy = false;
            pump();
          };
          // close() waits for these: a signature (and its audit line) in progress is finished and answered.
          const p: Promise<void> = r.then(settle, (e: unknown) => {
            // a handler answers its own failures; one that could not is a bug: drop only this connection
            log.error({ err: (e as Error)?.message }, 'request handler failed; closing this connection');
            sock.destroy();
            settle();
          });
          this.inFlight.add(p);
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
    // protocol.md "Connection life": missing bytes are a malformed frame too — a peer that closes
    // inside a frame gets the same one line.
    sock.on('end', () => {
      if (decoder.pending > 0) log.warn({ err: `connection closed mid-frame (${decoder.pending} bytes of an incomplete frame)` }, 'malformed frame; closing this connection');
    });
    sock.on('close', () => {
      this.conns.delete(sock);
      log.debug('client disconnected');
    });
  }

  private async connsGone(maxMs: number): Promise<void> {
    for (let waited = 0; this.conns.size > 0 && waited < maxMs; waited += 20) await new Promise((r) => setTimeout(r, 20));
  }

  /** Stop accepting, let in-flight requests finish and be answered, close connections, remove the socket. */
  async close(): Promise<void> {
    if (!this.server && !this.pipeListener) return;
    const server = this.server;
    this.server = undefined;
    // a pipe has no close callback of its own: wait (at most the grace time below) for the ended connections to go
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : this.connsGone(600);
    const pipe = this.pipeListener;
    this.pipeListener = undefined;
    // Requests that arrive meanwhile are still answered: wait until nothing is in flight.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    for (const s of this.conns) s.end();
    // Give clients a moment to read their last replies, then cut the rest.
    const t = setTimeout(() => {
      for (const s of this.conns) s.destroy();
    }, 500);
    await closed;
    clearTimeout(t);
    if (pipe) {
      // after the connections had their moment: close() ends whatever is still open
      pipe.close();
      this.listening = false;
      return;
    }
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
