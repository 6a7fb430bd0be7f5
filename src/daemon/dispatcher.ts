// What each request means (protocol.md "Calls"): HELLO first and only once, GET_INVENTORY from a
// frame cached per backend generation, LOGIN through the client-secret gate, SIGN. A SIGN is:
// decoded wire request → its key_handle resolved once to the backend's KeyRecord → backend.sign
// (key, params) → audit line with that same key (on disk before the reply, README "Audit log")
// → reply. Every error becomes a reply's CK_RV in one place, replyError().
import { sbError, SignbridgeError } from '../core/errors.js';
import type { KeyRecord } from '../core/keys.js';
import { buildSlots } from '../core/objects.js';
import { CKF_LOGIN_REQUIRED, CKF_USER_PIN_INITIALIZED, CKR_FUNCTION_FAILED, CKR_USER_NOT_LOGGED_IN, ckmName, ckrName } from '../core/pkcs11.js';
import type { Backend } from '../backends/types.js';
import {
  PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, encodeErrorReply, encodeReply, withId,
  type AuthorizeRequest, type CallName, type HelloRequest, type SignRequest,
} from '../ipc/protocol.js';
import type { AuditSink } from './audit.js';
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

/** One SIGN in progress: what its reply and audit line need. */
interface SignCall {
  conn: Connection;
  id: number;
  req: SignRequest;
  key: KeyRecord | undefined;
  time: Date;
  t0: bigint;
}

export class Dispatcher {
  private readonly backend: Backend;
  private cachedGen: bigint | undefined;
  private cachedFrame: Buffer = Buffer.alloc(0);
  private byHandle = new Map<string, KeyRecord>();

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
    // protocol.md "LOGIN": with a client secret every slot's token says a login is required
    const extra = this.o.login?.required ? CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED : 0;
    const slots = buildSlots(tokens).map((sl) => ({ ...sl, token_flags: sl.token_flags | extra }));
    this.cachedFrame = encodeReply('GET_INVENTORY', 0, { generation: gen, slots });
    this.cachedGen = gen;
  }

  /** server.ts's accept(): the request handler of one new connection. */
  readonly accept = (conn: Connection): RequestHandler => {
    let greeted = false;
    let loggedIn = false;
    return (m: RequestMessage): void | Promise<void> => {
      if (!greeted) {
        if (m.call !== 'HELLO') throw sbError('SIGNBRIDGE_ERR_PROTOCOL', { detail: `first frame is ${m.call}, not HELLO` });
        greeted = this.hello(conn, m.id, m.body);
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

  /** One SIGN; returns a promise only when it went asynchronous (the server then holds the connection's next request). */
  private sign(conn: Connection, id: number, req: SignRequest, needLogin: boolean): void | Promise<void> {
    if (this.cachedGen !== this.backend.generation()) this.refresh();
    // The one resolution of the handle: this record signs and is what the audit line names.
    const key = this.byHandle.get(req.key_handle.toString('hex'));
    const call: SignCall = { conn, id, req, key, time: new Date(), t0: process.hrtime.bigint() };
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
      });
    } catch (e) {
      return this.signed(call, undefined, e);
    }
    if (Buffer.isBuffer(r)) return this.signed(call, r, undefined);
    return r.then((sig) => this.signed(call, sig, undefined), (e: unknown) => this.signed(call, undefined, e));
  }

  /**
   * protocol.md "AUTHORIZE": a context-specific login for the key of the module's active
   * operation. The secret's bytes are wiped once the backend has them.
   */
  private authorize(conn: Connection, id: number, req: AuthorizeRequest, needLogin: boolean): void | Promise<void> {
    if (this.cachedGen !== this.backend.generation()) this.refresh();
    const key = this.byHandle.get(req.key_handle.toString('hex'));
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

  /** The outcome: audit line (on disk), then the reply. Never rejects. */
  private signed(call: SignCall, sig: Buffer | undefined, e: unknown): void | Promise<void> {
    const { conn, id, req } = call;
    const backendUs = Math.round(Number(process.hrtime.bigint() - call.t0) / 1000);
    let frame: Buffer;
    let rv = 0;
    if (sig === undefined) {
      const err = replyError(e);
      rv = err.rv;
      frame = encodeErrorReply('SIGN', id, rv, err.message);
      conn.log.warn({ rv: ckrName(rv), mechanism: ckmName(req.mechanism), err: (e as Error)?.message }, 'sign failed');
    } else {
      frame = encodeReply('SIGN', id, { signature: sig });
      if (conn.log.isLevelEnabled('debug')) conn.log.debug({ mechanism: ckmName(req.mechanism), us: backendUs }, 'signed');
    }
    const audit = this.o.audit;
    if (!audit) {
      conn.send(frame);
      return;
    }
    // README "Audit log": the line is on disk before the signature leaves the daemon.
    const message = rv === 0 ? '' : e instanceof Error ? e.message : String(e);
    const withhold = (ae: unknown): void => {
      conn.log.error({ err: (ae as Error).message }, 'audit log write failed: the signature is withheld');
      conn.send(errorFrame('SIGN', id, AUDIT_FAILED()));
    };
    let written: void | Promise<void>;
    try {
      written = audit.recordSign({ time: call.time, conn: conn.n, peer: conn.peer, req, key: call.key, rv, message, backendUs });
    } catch (ae) {
      withhold(ae);
      return;
    }
    if (!written) {
      conn.send(frame);
      return;
    }
    return written.then(() => conn.send(frame), withhold);
  }
}
