// What each request means (protocol.md "Calls"): HELLO first and only once, GET_INVENTORY from a
// frame cached per backend generation, LOGIN through the client-secret gate, SIGN. A SIGN is:
// decoded wire request → its key_handle resolved once to the backend's KeyRecord → the audit
// request record (written while the backend signs) and backend.sign(key, params) → both done →
// reply → outcome line (README "Audit log"). Every error becomes a reply's CK_RV in one place, replyError().
import { sbError, SignbridgeError } from '../core/errors.js';
import type { KeyRecord } from '../core/keys.js';
import { buildSlots } from '../core/objects.js';
import { CKF_LOGIN_REQUIRED, CKF_USER_PIN_INITIALIZED, CKR_FUNCTION_FAILED, CKR_USER_NOT_LOGGED_IN, ckmName, ckrName } from '../core/pkcs11.js';
import type { Backend } from '../backends/types.js';
import {
  PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, encodeErrorReply, encodeReply, withId,
  type AuthorizeRequest, type CallName, type HelloRequest, type SignRequest,
} from '../ipc/protocol.js';
import type { NativeSignerApi } from '../native/loader.js';
import { keyPart, peerPart } from './audit-record.js';
import type { AuditSink, AuditTicket } from './audit.js';
import type { LoginGate } from './client-auth.js';
import type { Connection, RequestHandler, RequestMessage } from './server.js';

export interface DispatcherOptions {
  backend: Backend;
  /** Sent in the HELLO reply, e.g. "signbridge/0.1.0". */
  serverName: string;
  /** Client-secret policy; absent → LOGIN always succeeds and SIGN needs none. */
  login?: LoginGate | undefined;
  /** Audit trail of SIGN requests; absent → none. */
  audit?: AuditSink | undefined;
  /**
   * The backend's native signing path, already attached to the audit log (daemon/index.ts): the
   * connections it serves are allowed to sign there once greeted (and logged in, with a secret).
   */
  native?: NativeSignerApi | undefined;
}

const INTERNAL_ERROR = 'internal error in the signbridge daemon: see its log';

/**
 * protocol.md "Reply envelope": an error as a reply's rv and sentence. Only catalogue errors
 * (SignbridgeError) say what happened; anything else is a bug whose text stays in the log.
 */
export function replyError(e: unknown): { rv: number; message: string } {
  return e instanceof SignbridgeError ? { rv: e.ckr, message: e.message } : { rv: CKR_FUNCTION_FAILED, message: INTERNAL_ERROR };
}

function errorFrame(call: CallName, id: number, e: unknown): Buffer {
  const { rv, message } = replyError(e);
  return encodeErrorReply(call, id, rv, message);
}

const LOGIN_REQUIRED = (): SignbridgeError =>
  new SignbridgeError(
    'SIGNBRIDGE_ERR_DAEMON_REPLY',
    "this signbridge daemon requires a login: C_Login(CKU_USER) with its client secret (the tool's PIN / -pass / -storepass) before signing",
    { ckr: CKR_USER_NOT_LOGGED_IN },
  );
const AUDIT_FAILED = (): SignbridgeError =>
  new SignbridgeError(
    'SIGNBRIDGE_ERR_DAEMON_REPLY',
    "the signbridge daemon could not write its audit log, so the signature was withheld: check the disk and the daemon's log",
    { ckr: CKR_FUNCTION_FAILED },
  );

/** One SIGN in progress: what its reply and audit lines need. */
interface SignCall {
  conn: Connection;
  id: number;
  req: SignRequest;
  t0: bigint;
  ticket: AuditTicket | undefined;
}

/** A backend's answer, settled: the signature or why not, and the time the backend took. */
interface Signed {
  sig?: Buffer;
  e?: unknown;
  us: number;
}

const elapsedUs = (t0: bigint): number => Math.round(Number(process.hrtime.bigint() - t0) / 1000);

export class Dispatcher {
  private readonly backend: Backend;
  private cachedGen: bigint | undefined;
  private cachedFrame: Buffer = Buffer.alloc(0);
  private byHandle = new Map<string, KeyRecord>();
  private lastHandle: Buffer = Buffer.alloc(0);
  private lastKey: KeyRecord | undefined;

  constructor(private readonly o: DispatcherOptions) {
    this.backend = o.backend;
    this.refresh(); // encode once up front: the first client pays nothing
  }

  /** The inventory frame and handle map, re-built when the backend's generation changed. */
  private refresh(): void {
    const gen = this.backend.generation();
    if (gen === this.cachedGen) return;
    const tokens = this.backend.tokens();
    this.byHandle = new Map(tokens.flatMap((t) => t.keys.map((k) => [k.handle.toString('hex'), k] as const)));
    this.lastKey = undefined;
    // protocol.md "LOGIN": with a client secret every slot's token says a login is required
    const extra = this.o.login?.required ? CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED : 0;
    const slots = buildSlots(tokens).map((sl) => ({ ...sl, token_flags: sl.token_flags | extra }));
    this.cachedFrame = encodeReply('GET_INVENTORY', 0, { generation: gen, slots });
    this.cachedGen = gen;
    for (const k of this.byHandle.values()) this.o.native?.keyJson(k.handle, keyPart(k, k.handle));
  }

  /** The key a wire handle names; a tool signs with one key over and over, so the last one is kept. */
  private keyFor(handle: Buffer): KeyRecord | undefined {
    if (this.lastKey && handle.equals(this.lastHandle)) return this.lastKey;
    const key = this.byHandle.get(handle.toString('hex'));
    if (key) {
      this.lastHandle = key.handle;
      this.lastKey = key;
    }
    return key;
  }

  /** server.ts's accept(): the request handler of one new connection. */
  readonly accept = (conn: Connection): RequestHandler => {
    let greeted = false;
    let loggedIn = false;
    // A connection the native path serves may sign there once greeted (and, with a client
    // secret, logged in); a failed LOGIN takes that back, as it does here.
    const native = conn.nativeId !== undefined ? this.o.native : undefined;
    const nativeAllowed = (): void => {
      if (!native) return;
      if (greeted && (!this.o.login?.required || loggedIn)) native.allow(conn.nativeId!, peerPart(conn.peer), conn.n);
      else native.deny(conn.nativeId!);
    };
    return (m: RequestMessage): void | Promise<void> => {
      if (!greeted) {
        if (m.call !== 'HELLO') throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `first frame is ${m.call}, not HELLO` });
        greeted = this.hello(conn, m.id, m.body);
        nativeAllowed();
        return;
      }
      switch (m.call) {
        case 'GET_INVENTORY':
          this.refresh();
          conn.send(withId(this.cachedFrame, m.id));
          return;
        case 'LOGIN': {
          const r = this.o.login ? this.o.login.login(m.body, conn.peer, conn.log) : { rv: 0, message: '' };
          m.body.pin.fill(0); // the PIN's bytes do not outlive the check
          // A failed LOGIN also drops an earlier success on this connection (fail closed).
          loggedIn = r.rv === 0;
          nativeAllowed();
          conn.send(r.rv === 0 ? encodeReply('LOGIN', m.id, {}) : encodeErrorReply('LOGIN', m.id, r.rv, r.message));
          return;
        }
        case 'SIGN':
          return this.sign(conn, m.id, m.body, !!this.o.login?.required && !loggedIn);
        case 'AUTHORIZE':
          return this.authorize(conn, m.id, m.body, !!this.o.login?.required && !loggedIn);
        default:
          throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `a second ${m.call} on a greeted connection` });
      }
    };
  };

  /** protocol.md "HELLO": true when a version was agreed; else the reply says why and the connection ends. */
  private hello(conn: Connection, id: number, body: HelloRequest): boolean {
    const { min_version, max_version, client } = body;
    const version = Math.min(max_version, PROTOCOL_MAX_VERSION);
    if (version < Math.max(min_version, PROTOCOL_MIN_VERSION)) {
      const upgrade = max_version < PROTOCOL_MIN_VERSION ? 'module' : 'daemon';
      const e = sbError('SIGNBRIDGE_ERR_VERSION', {
        server: `${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
        client: `${min_version}..${max_version}`,
        upgrade,
      });
      conn.log.warn({ client }, e.message);
      conn.end(errorFrame('HELLO', id, e));
      return false;
    }
    conn.log.debug({ client, version }, 'hello');
    conn.send(encodeReply('HELLO', id, { version, server: this.o.serverName }));
    return true;
  }

  /**
   * One SIGN; returns a promise only when it went asynchronous (the server then holds the
   * connection's next request). README "Audit log": the request record is started first and the
   * backend signs while it is written; the signature is sent only once the record is on disk.
   */
  private sign(conn: Connection, id: number, req: SignRequest, needLogin: boolean): void | Promise<void> {
    if (this.cachedGen !== this.backend.generation()) this.refresh();
    // The one resolution of the handle: this record signs and is what the audit line names.
    const key = this.keyFor(req.key_handle);
    const call: SignCall = { conn, id, req, t0: process.hrtime.bigint(), ticket: undefined };
    if (this.o.audit) {
      try {
        call.ticket = this.o.audit.recordRequest({ time: new Date(), conn: conn.n, peer: conn.peer, req, key });
      } catch (ae) {
        return this.withhold(call, ae); // nothing was signed
      }
    }
    let r: Buffer | Promise<Buffer>;
    try {
      if (needLogin) throw LOGIN_REQUIRED();
      if (!key) throw sbError('SIGNBRIDGE_ERR_KEY_NOT_FOUND', { handle: req.key_handle.toString('hex') || '(empty)' });
      r = this.backend.sign(key, {
        mechanism: Number(req.mechanism),
        hashAlg: Number(req.hash_alg),
        mgf: Number(req.mgf),
        saltLen: req.salt_len,
        data: req.data,
        client: conn.n,
      });
    } catch (e) {
      if (!call.ticket?.durable) return this.signed(call, { e, us: elapsedUs(call.t0) });
      r = Promise.reject(e); // handled below, with the record's write
    }
    const durable = call.ticket?.durable;
    if (Buffer.isBuffer(r) && !durable) return this.signed(call, { sig: r, us: elapsedUs(call.t0) });
    const done: Promise<Signed> = Buffer.isBuffer(r)
      ? Promise.resolve({ sig: r, us: elapsedUs(call.t0) })
      : r.then((sig) => ({ sig, us: elapsedUs(call.t0) }), (e: unknown) => ({ e, us: elapsedUs(call.t0) }));
    if (!durable) return done.then((s) => this.signed(call, s));
    // both settle before the reply: the signature and the record's write (either may finish first)
    return Promise.all([done, durable.then(() => undefined, (ae: unknown) => ({ ae }))]).then(([s, failed]) =>
      failed ? this.withhold(call, failed.ae) : this.signed(call, s),
    );
  }

  /**
   * protocol.md "AUTHORIZE": a context-specific login for the key of the module's active
   * operation. The secret's bytes are wiped once the backend has them.
   */
  private authorize(conn: Connection, id: number, req: AuthorizeRequest, needLogin: boolean): void | Promise<void> {
    if (this.cachedGen !== this.backend.generation()) this.refresh();
    const key = this.keyFor(req.key_handle);
    const fail = (e: unknown): void => {
      const { rv, message } = replyError(e);
      conn.log.warn({ rv: ckrName(rv), key: key?.label, err: message }, 'authorisation failed');
      conn.send(encodeErrorReply('AUTHORIZE', id, rv, message));
    };
    let p: Promise<number>;
    try {
      if (needLogin) throw LOGIN_REQUIRED();
      if (!key) throw sbError('SIGNBRIDGE_ERR_KEY_NOT_FOUND', { handle: req.key_handle.toString('hex') || '(empty)' });
      if (!key.alwaysAuthenticate || !this.backend.authorize) {
        req.pin.fill(0);
        conn.send(encodeReply('AUTHORIZE', id, { signatures: 0 }));
        return;
      }
      p = this.backend.authorize(key, req.pin);
    } catch (e) {
      req.pin.fill(0);
      fail(e);
      return;
    }
    return p.then(
      (signatures) => {
        req.pin.fill(0);
        conn.log.info({ key: key.label, signatures }, 'authorised');
        conn.send(encodeReply('AUTHORIZE', id, { signatures }));
      },
      (e: unknown) => {
        req.pin.fill(0);
        fail(e);
      },
    );
  }

  /** The reply (the request record is on disk by now), then the outcome line. Never throws. */
  private signed(call: SignCall, s: Signed): void {
    const { conn, id, req } = call;
    if (s.sig === undefined) {
      const err = replyError(s.e);
      conn.send(encodeErrorReply('SIGN', id, err.rv, err.message));
      conn.log.warn({ rv: ckrName(err.rv), mechanism: ckmName(req.mechanism), err: (s.e as Error)?.message }, 'sign failed');
      const message = s.e instanceof Error ? s.e.message : String(s.e);
      call.ticket?.outcome({ rv: err.rv, message, backendUs: s.us });
      return;
    }
    conn.send(encodeReply('SIGN', id, { signature: s.sig }));
    if (conn.log.isLevelEnabled('debug')) conn.log.debug({ mechanism: ckmName(req.mechanism), us: s.us }, 'signed');
    call.ticket?.outcome({ rv: 0, message: '', backendUs: s.us });
  }

  /** The request record could not be written: no signature leaves the daemon. */
  private withhold(call: SignCall, ae: unknown): void {
    call.conn.log.error({ err: (ae as Error)?.message }, 'audit log write failed: the signature is withheld');
    const e = AUDIT_FAILED();
    call.conn.send(errorFrame('SIGN', call.id, e));
    call.ticket?.outcome({ rv: e.ckr, message: e.message, backendUs: elapsedUs(call.t0) });
  }
}
