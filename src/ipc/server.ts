// The daemon's unix-socket server (protocol.md "Connection life"). Transport only: it frames,
// decodes, enforces HELLO-first, and dispatches to a Handler; what to sign with lives elsewhere.
// One line per malformed frame, then that connection (only) is closed.
// Who may sign (README "Security model"): a connection from a uid other than the allowed one
// (SO_PEERCRED) is closed before any of its bytes is read; with a LoginGate that requires it, SIGN
// needs a successful LOGIN on the connection (protocol.md "LOGIN"); with an AuditSink every SIGN
// is recorded (and on disk) before its reply is written.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, readlinkSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { sbError, SignbridgeError } from '../core/errors.js';
import { ensurePrivateDir } from '../core/paths.js';
import { CKR_FUNCTION_FAILED, CKR_USER_NOT_LOGGED_IN, ckmName, ckrName } from '../core/pkcs11.js';
import { FrameDecoder } from './framing.js';
import {
  PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, decodeMessage, encodeErrorReply, encodeReply, withId,
  type LoginRequest, type Message, type SignRequest,
} from './protocol.js';

/** The process at the other end of a connection (SO_PEERCRED + /proc/<pid>/exe). */
export interface PeerInfo {
  pid: number;
  uid: number;
  gid: number;
  /** readlink /proc/<pid>/exe; null when it cannot be read (process gone, no /proc, no permission) */
  exe: string | null;
}

export interface LoginResult {
  /** 0: the connection is authenticated; else the CK_RV of the reply */
  rv: number;
  /** the reply's sentence when rv != 0 (never the PIN) */
  message: string;
}

/** protocol.md "LOGIN": the daemon's client-secret policy (src/daemon/client-auth.ts). */
export interface LoginGate {
  /** true: SIGN on a connection without a successful LOGIN gets CKR_USER_NOT_LOGGED_IN */
  readonly required: boolean;
  /** Never throws; logs its own line per failure on `log` (the connection's logger). */
  login(req: LoginRequest, peer: PeerInfo | undefined, log: Logger): LoginResult;
}

/** What the server knows about one SIGN once its outcome is known. */
export interface SignAuditEvent {
  time: Date;
  conn: number;
  peer: PeerInfo | undefined;
  req: SignRequest;
  /** 0 = signed */
  rv: number;
  message: string;
  /** time spent in the handler/backend (µs) */
  backendUs: number;
}

/** Resolves once the event is durably recorded; a rejection withholds the signature. */
export interface AuditSink {
  /** Nothing when the line is already on disk (throws if it could not be written), else a promise. */
  sign(e: SignAuditEvent): void | Promise<void>;
}

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
  /** The only uid allowed to connect (default: the daemon's own uid). Needs peerCredentials. */
  allowedUid?: number | undefined;
  /** Refuse connections whose credentials cannot be read (the CLI daemon: fail closed). */
  requirePeerCredentials?: boolean | undefined;
  /** Client-secret policy; absent → LOGIN always succeeds and SIGN needs none. */
  login?: LoginGate | undefined;
  /** Audit trail of SIGN requests; absent → none. */
  audit?: AuditSink | undefined;
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
          sock.destroy();
          return;
        }
        log.warn({ err: (e as Error).message }, 'cannot read peer credentials');
      }
    } else if (this.opts.requirePeerCredentials) {
      log.warn('connection refused: no peer-credential check available');
      sock.destroy();
      return;
    }
    // README "Security model": only the daemon's own uid may sign; refused before any byte is read.
    const allowed = this.opts.allowedUid ?? (typeof process.getuid === 'function' ? process.getuid() : undefined);
    if (peer && allowed !== undefined && peer.uid !== allowed) {
      log.warn({ allowedUid: allowed }, `connection refused: peer uid ${peer.uid} is not the daemon's uid ${allowed}`);
      sock.destroy();
      return;
    }
    this.conns.add(sock);
    log.debug('client connected');
    const decoder = new FrameDecoder();
    let greeted = false;
    let loggedIn = false;
    const gate = this.opts.login;
    const audit = this.opts.audit;
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
        case 'LOGIN': {
          const r = gate ? gate.login(m.body, peer, log) : { rv: 0, message: '' };
          m.body.pin.fill(0); // the PIN's bytes do not outlive the check
          // A failed LOGIN also drops an earlier success on this connection (fail closed).
          loggedIn = r.rv === 0;
          sock.write(r.rv === 0 ? encodeReply('LOGIN', m.id, {}) : encodeErrorReply('LOGIN', m.id, r.rv, r.message));
          return;
        }
        case 'SIGN':
          return this.sign(m.id, m.body, { sock, log, n, peer, needLogin: !!gate?.required && !loggedIn, audit });
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

  /**
   * One SIGN: handler → (audit, on disk) → reply. Returns a promise only when it went
   * asynchronous, so the pump keeps this connection's replies in order.
   */
  private sign(id: number, req: SignRequest, c: Parameters<DaemonServer['signNow']>[2]): void | Promise<void> {
    const r = this.signNow(id, req, c);
    if (!r) return;
    // close() waits for these: a signature (and its audit line) in progress is finished and answered.
    const p = r.finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return p;
  }

  private signNow(
    id: number,
    req: SignRequest,
    c: { sock: Socket; log: Logger; n: number; peer: PeerInfo | undefined; needLogin: boolean; audit: AuditSink | undefined },
  ): void | Promise<void> {
    const { sock, log } = c;
    const time = new Date();
    const t0 = process.hrtime.bigint();
    let backendUs = 0;
    const reply = (frame: Buffer): void => {
      if (!sock.destroyed) sock.write(frame);
    };
    const outcome = (sig: Buffer | undefined, e: unknown): void | Promise<void> => {
      backendUs = Math.round(Number(process.hrtime.bigint() - t0) / 1000);
      let rv = 0;
      let msg = '';
      if (sig === undefined) {
        rv = e instanceof SignbridgeError ? e.ckr : CKR_FUNCTION_FAILED;
        // Only catalogue messages go to the client; anything else stays in the log.
        msg = e instanceof SignbridgeError ? e.message : 'internal error in the signbridge daemon: see its log';
        log.warn({ rv: ckrName(rv), mechanism: ckmName(req.mechanism), err: (e as Error)?.message }, 'sign failed');
      } else if (log.isLevelEnabled('debug')) {
        log.debug({ mechanism: ckmName(req.mechanism), us: backendUs }, 'signed');
      }
      const frame = rv === 0 ? encodeReply('SIGN', id, { signature: sig! }) : encodeErrorReply('SIGN', id, rv, msg);
      if (!c.audit) {
        reply(frame);
        return;
      }
      // README "Audit log": the line is on disk before the signature leaves the daemon.
      const auditMessage = rv === 0 ? '' : e instanceof Error ? e.message : String(e);
      const withhold = (ae: unknown): void => {
        log.error({ err: (ae as Error).message }, 'audit log write failed: the signature is withheld');
        reply(encodeErrorReply('SIGN', id, CKR_FUNCTION_FAILED, 'the signbridge daemon could not write its audit log, so the signature was withheld: check the disk and the daemon\'s log'));
      };
      let written: void | Promise<void>;
      try {
        written = c.audit.sign({ time, conn: c.n, peer: c.peer, req, rv, message: auditMessage, backendUs });
      } catch (ae) {
        withhold(ae);
        return;
      }
      if (!written) {
        reply(frame);
        return;
      }
      return written.then(() => reply(frame), withhold);
    };
    if (c.needLogin) {
      // protocol.md "LOGIN": a daemon with a client secret signs only for a logged-in connection.
      return outcome(undefined, new SignbridgeError('SIGNBRIDGE_ERR_DAEMON_REPLY',
        'this signbridge daemon requires a login: C_Login(CKU_USER) with its client secret (the tool\'s PIN / -pass / -storepass) before signing',
        { ckr: CKR_USER_NOT_LOGGED_IN }));
    }
    let r: Buffer | Promise<Buffer>;
    try {
      r = this.opts.handler.sign(req);
    } catch (e) {
      return outcome(undefined, e);
    }
    if (Buffer.isBuffer(r)) return outcome(r, undefined);
    return r.then((sig) => outcome(sig, undefined), (e: unknown) => outcome(undefined, e));
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
