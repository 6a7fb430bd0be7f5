// A small client of the daemon (used by `signbridge keys`, the demo and tests): connect, HELLO,
// GET_INVENTORY, SIGN — one request at a time per connection (protocol.md "Connection life"),
// every request bounded by a timeout, every failure a SignbridgeError that says what to do.
import { connect, type Socket } from 'node:net';
import { sbError, SignbridgeError } from '../core/errors.js';
import { defaultSocketPath } from '../core/paths.js';
import { FrameDecoder } from './framing.js';
import {
  MAGIC, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, decodeMessage, encodeRequest,
  type CallName, type InventoryReply, type Message, type ReplyBodies, type RequestBodies, type SignRequest,
} from './protocol.js';

export interface ClientOptions {
  socketPath?: string;
  /** HELLO / GET_INVENTORY deadline (default 10000 ms, design.md "Environment"). */
  timeoutMs?: number;
  /** SIGN deadline (default 60000 ms). */
  signTimeoutMs?: number;
  clientName?: string;
}

interface Pending {
  call: CallName;
  id: number;
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class DaemonClient {
  private decoder = new FrameDecoder();
  private nextId = 1;
  private pending: Pending | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closedError: SignbridgeError | undefined;
  version = 0;
  server = '';

  private constructor(
    private readonly sock: Socket,
    readonly socketPath: string,
    private readonly timeoutMs: number,
    private readonly signTimeoutMs: number,
  ) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', () => undefined); // surfaced through 'close'
    sock.on('close', () => this.fail(this.closedError ?? sbError('SIGNBRIDGE_ERR_CONNECTION_CLOSED', { path: socketPath, what: this.pending?.call ?? 'idle' })));
  }

  /** Connect and greet. Throws SIGNBRIDGE_ERR_NO_DAEMON when nothing listens on the socket. */
  static async connect(opts: ClientOptions = {}): Promise<DaemonClient> {
    const path = opts.socketPath ?? defaultSocketPath();
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(sbError('SIGNBRIDGE_ERR_TIMEOUT', { path, what: 'connect', ms: timeoutMs }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        const reason = e.code === 'ENOENT' ? 'no such socket' : e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message);
        reject(sbError('SIGNBRIDGE_ERR_NO_DAEMON', { path, reason }, { cause: e }));
      });
    });
    const c = new DaemonClient(sock, path, timeoutMs, opts.signTimeoutMs ?? 60_000);
    try {
      const m = await c.request('HELLO', {
        magic: MAGIC,
        min_version: PROTOCOL_MIN_VERSION,
        max_version: PROTOCOL_MAX_VERSION,
        client: opts.clientName ?? `signbridge-client pid=${process.pid}`,
      });
      c.version = m.version;
      c.server = m.server;
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
      for (const f of frames) {
        const m = decodeMessage(f);
        const p = this.pending;
        if (!p || m.kind !== 'reply' || m.id !== p.id || m.call !== p.call) {
          throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `unexpected ${m.call} ${m.kind} id ${m.id}` });
        }
        this.pending = undefined;
        clearTimeout(p.timer);
        p.resolve(m);
      }
    } catch (e) {
      this.closedError = e as SignbridgeError;
      this.sock.destroy();
    }
  }

  private fail(e: SignbridgeError): void {
    const p = this.pending;
    this.pending = undefined;
    this.closedError ??= e;
    if (p) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }

  /** Send one request and await its reply; rv != 0 becomes SIGNBRIDGE_ERR_DAEMON_REPLY with that ckr. */
  request<C extends CallName>(call: C, body: RequestBodies[C]): Promise<ReplyBodies[C]> {
    const run = (): Promise<never> =>
      new Promise((resolve, reject) => {
        if (this.closedError || this.sock.destroyed) {
          reject(this.closedError ?? sbError('SIGNBRIDGE_ERR_CONNECTION_CLOSED', { path: this.socketPath, what: call }));
          return;
        }
        const id = this.nextId++ >>> 0;
        const ms = call === 'SIGN' || call === 'AUTHORIZE' ? this.signTimeoutMs : this.timeoutMs;
        const timer = setTimeout(() => {
          const e = sbError('SIGNBRIDGE_ERR_TIMEOUT', { path: this.socketPath, what: call, ms });
          this.fail(e);
          this.sock.destroy(); // the reply may still come; this connection is out of step now
        }, ms);
        this.pending = {
          call,
          id,
          timer,
          reject,
          resolve: (m) => {
            const b = m.body as { rv: number; message?: string };
            if (b.rv !== 0) reject(sbError('SIGNBRIDGE_ERR_DAEMON_REPLY', { what: call, message: b.message ?? '' }, { ckr: b.rv }));
            else resolve(b as never);
          },
        };
        this.sock.write(encodeRequest(call, id, body));
      });
    // one outstanding request per connection
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async inventory(): Promise<InventoryReply> {
    const r = await this.request('GET_INVENTORY', {});
    return { generation: r.generation, slots: r.slots };
  }

  async sign(req: SignRequest): Promise<Buffer> {
    return (await this.request('SIGN', req)).signature;
  }

  /** protocol.md "AUTHORIZE": an OTP/PIN for a CKA_ALWAYS_AUTHENTICATE key → signatures it allows. */
  async authorize(keyHandle: Buffer, pin: Buffer): Promise<number> {
    return (await this.request('AUTHORIZE', { key_handle: keyHandle, pin })).signatures;
  }

  close(): void {
    this.closedError ??= sbError('SIGNBRIDGE_ERR_CONNECTION_CLOSED', { path: this.socketPath, what: 'close' });
    this.sock.destroy();
  }
}

/** Resolve once a daemon answers HELLO on `path`; throw its last error after timeoutMs. */
export async function waitForDaemon(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const c = await DaemonClient.connect({ socketPath: path, timeoutMs: Math.max(100, Math.min(2000, deadline - Date.now())) });
      c.close();
      return;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) throw last;
    await new Promise((r) => setTimeout(r, 50));
  }
}
