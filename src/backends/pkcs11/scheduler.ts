// Where and on which token session a signature runs. A libuv thread hop costs ~100 µs, more than
// the daemon's whole overhead budget, but a slow key must not stall other clients
// (docs/performance.md "Where a slow key signs"). So each key keeps its measured sign times:
//  - below `thresholdUs` (a fast key) it always signs synchronously on the event loop;
//  - a slow key (up to IDLE_LOOP_MAX_US) also signs on the loop while it has the daemon to itself:
//    nothing on the thread pool and no other client's signature seen within a few of its sign
//    times — one tool signing in sequence pays no hop; under contention it signs on the pool;
//  - a key's first signature (unknown cost), and keys slower than that, sign on the libuv pool.
// Loop signs use one session only they use (they cannot interleave); each pool sign takes a
// session of its own from a bounded pool, so concurrent pool signs never share a session.
import type { Logger } from 'pino';
import type * as P from 'pkcs11js';
import type { KeyRecord } from '../../core/keys.js';
import type { NativeSignerApi } from '../../native/loader.js';
import { signError, tokenError } from './token-errors.js';

/**
 * How many recent event-loop sign times decide whether a key stays there: their minimum, because
 * preemption on a busy machine only ever adds time — a fast key whose signatures all looked slow
 * under load must not end up queued on the pool behind the slow ones.
 */
const SYNC_SAMPLES = 5;
/** A slow key signs on the idle loop only when its signatures take less than this (µs). */
export const IDLE_LOOP_MAX_US = 20_000;
/** Another client's signature within this many of the key's sign times means contention. */
const CONTENTION_WINDOW = 4;
/**
 * Pool times include the hop and any queueing, so a key known only from them (or whose last loop
 * times were over the limit) is measured on the idle loop again once in this many pool signs,
 * unless its pool time says it is hopeless (over PROBE_MAX_US).
 */
const PROBE_EVERY = 50;
const PROBE_MAX_US = 100_000;
export const CKF_SERIAL_SESSION = 4;

/** What the scheduler knows about one key; it travels on the KeyRecord itself (see placementOf). */
export interface KeyPlacement {
  /** The scheduler (so the backend instance and token session set) that owns `obj`. */
  readonly owner: SignScheduler;
  /** The private key's object handle on the token. */
  readonly obj: Buffer;
  /** Exact signature length, so C_Sign never needs a length query. */
  readonly sigLen: number;
  /** Primitives this key may use on this token. */
  readonly primitives: ReadonlySet<number>;
  /** The key's wire handle (what the native signer knows it by). */
  readonly handle: Buffer;
  /** The primitives the native signer may sign with (no parameters), and RSA's largest input. */
  readonly nativeMechanisms: readonly number[];
  readonly maxRsaData: number;
  /**
   * Whether the key is fast (always on the event loop). It starts on the thread pool (its cost is
   * unknown); a pool sign or a loop sign that completes under the threshold makes it fast, and it
   * goes back only when ALL of its last SYNC_SAMPLES loop signs were over the threshold — signs
   * that were slow because the loop was preempted (slow signatures busy on every core) do not move it.
   */
  onLoop: boolean;
  /** Recent event-loop sign times, µs. */
  syncUs: number[];
  /** The key's sign time, µs (least of its recent loop signs, else the last pool sign); 0 = unknown. */
  costUs: number;
  /** Pool signs since the key was last measured on the loop. */
  poolSigns: number;
}

// A symbol slot on the backend's own KeyRecords: the daemon resolves a key_handle once, and the
// record it hands to sign() already holds this — no second lookup by handle or identity.
const PLACEMENT = Symbol('signbridge.pkcs11.placement');
type PlacedKey = KeyRecord & { [PLACEMENT]?: KeyPlacement };

export function placementOf(key: KeyRecord): KeyPlacement | undefined {
  return (key as PlacedKey)[PLACEMENT];
}

export function place(key: KeyRecord, p: Omit<KeyPlacement, 'onLoop' | 'syncUs' | 'costUs' | 'poolSigns'>): void {
  (key as PlacedKey)[PLACEMENT] = { ...p, onLoop: false, syncUs: [], costUs: 0, poolSigns: 0 };
}

export interface SchedulerOptions {
  lib: P.PKCS11;
  slot: Buffer;
  thresholdUs: number;
  maxAsyncSessions: number;
  /**
   * Incremented per signature: `sync` on the event loop, `async` on the thread pool; `idleLoop`
   * counts the slow keys' signatures made on the loop because nothing else waited.
   */
  counters: { sync: number; async: number; idleLoop?: number };
  logger?: Logger | undefined;
  /**
   * The native signing path (docs/performance.md "The native signing path"): a key this scheduler
   * keeps on the loop is handed to it after a fast loop signature, and taken back when it leaves
   * the loop. It applies the same rule by itself (five slow signatures in a row: the key is
   * dropped), so a key it dropped comes back here and is measured again.
   */
  native?: NativeSignerApi | undefined;
}

export class SignScheduler {
  private syncSession: Buffer;
  private idle: Buffer[] = [];
  private openAsync = 0;
  private waiters: Array<(s: Buffer) => void> = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  /**
   * Shared with the native signing path, which keeps it up to date for the signatures it makes:
   * [0] signatures on the thread pool now, [1] the last signing client (-1: none yet),
   * [2] when it asked (ms of CLOCK_MONOTONIC: process.hrtime, the native side's clock too).
   */
  readonly shared = new Float64Array([0, -1, 0]);

  /** Opens the event-loop session at once (throws the token's error). */
  constructor(private readonly o: SchedulerOptions) {
    this.syncSession = o.lib.C_OpenSession(o.slot, CKF_SERIAL_SESSION);
    o.native?.scheduler(this.shared, CONTENTION_WINDOW, IDLE_LOOP_MAX_US);
  }

  /** Sign on the event loop (returns the signature) or on the thread pool (returns a promise). */
  sign(st: KeyPlacement, mech: P.Mechanism, data: Buffer, client?: number): Buffer | Promise<Buffer> {
    const now = Number(process.hrtime.bigint()) / 1e6;
    const sh = this.shared;
    const other = client !== undefined && sh[1] !== -1 && client !== sh[1] ? now - sh[2]! : Infinity;
    sh[1] = client ?? -1;
    sh[2] = now;
    if (st.onLoop) {
      this.o.counters.sync++;
      return this.signSync(st, mech, data);
    }
    if (this.idleLoop(st, other)) {
      this.o.counters.sync++;
      this.o.counters.idleLoop = (this.o.counters.idleLoop ?? 0) + 1;
      return this.signSync(st, mech, data);
    }
    this.o.counters.async++;
    const p = this.signAsync(st, mech, data);
    this.inFlight.add(p);
    sh[0] = this.inFlight.size;
    const done = (): void => {
      this.inFlight.delete(p);
      sh[0] = this.inFlight.size;
    };
    p.then(done, done);
    return p;
  }

  /**
   * A slow key of known, bounded cost signs on the loop when it has the daemon to itself: nothing
   * on the pool, and the last other client's signature (`sinceOtherMs` ago) not recent. A
   * threshold of 0 means "never on the loop".
   */
  private idleLoop(st: KeyPlacement, sinceOtherMs: number): boolean {
    if (this.o.thresholdUs <= 0 || st.costUs <= 0 || this.inFlight.size > 0) return false;
    if (sinceOtherMs * 1000 <= CONTENTION_WINDOW * Math.max(st.costUs, this.o.thresholdUs)) return false;
    if (st.costUs <= IDLE_LOOP_MAX_US) return true;
    // known only from the pool, or slow last time: measure it on the loop again now and then
    return st.poolSigns >= (st.syncUs.length === 0 ? 1 : PROBE_EVERY) && st.costUs < PROBE_MAX_US;
  }

  private recordSync(st: KeyPlacement, us: number): void {
    this.placeSync(st, us);
    const native = this.o.native;
    if (!native || st.nativeMechanisms.length === 0) return;
    // a fast key signs there always; a slow one of bounded cost only when the daemon is idle,
    // by the rule of idleLoop() below (the native side reads `shared` for it)
    if (st.onLoop && us < this.o.thresholdUs) native.key(st.handle, st.obj, st.sigLen, [...st.nativeMechanisms], st.maxRsaData, 0);
    else if (!st.onLoop && this.o.thresholdUs > 0 && us <= IDLE_LOOP_MAX_US) native.key(st.handle, st.obj, st.sigLen, [...st.nativeMechanisms], st.maxRsaData, st.costUs);
    else native.dropKey(st.handle);
  }

  private placeSync(st: KeyPlacement, us: number): void {
    st.poolSigns = 0;
    st.syncUs.push(us);
    if (st.syncUs.length > SYNC_SAMPLES) st.syncUs.shift();
    const least = Math.min(...st.syncUs);
    st.costUs = least;
    if (!st.onLoop) {
      st.onLoop = least < this.o.thresholdUs; // a slow key that is fast after all (idle-loop signs measured it)
      return;
    }
    if (st.syncUs.length < SYNC_SAMPLES) return;
    if (least >= this.o.thresholdUs) {
      st.onLoop = false;
      st.syncUs = [];
    }
  }

  private recordAsync(st: KeyPlacement, us: number): void {
    // includes waiting for a pool thread: a fast key measured under load simply stays here longer
    if (us < this.o.thresholdUs) {
      st.onLoop = true;
      st.syncUs = [];
    }
    // a pool time (hop and queueing included) is an upper bound of the cost: it can only lower it
    if (st.syncUs.length === 0 || us < st.costUs) st.costUs = us;
    st.poolSigns++;
  }

  private signSync(st: KeyPlacement, mech: P.Mechanism, data: Buffer): Buffer {
    const lib = this.o.lib;
    const s = this.syncSession;
    const t0 = process.hrtime.bigint();
    try {
      lib.C_SignInit(s, mech, st.obj);
      const sig = lib.C_Sign(s, data, Buffer.allocUnsafe(st.sigLen));
      this.recordSync(st, Number(process.hrtime.bigint() - t0) / 1000);
      return sig;
    } catch (e) {
      // An operation may be left active (e.g. after CKR_BUFFER_TOO_SMALL): start from a clean session.
      this.replaceSyncSession();
      throw signError('C_Sign', e);
    }
  }

  private replaceSyncSession(): void {
    try {
      this.o.lib.C_CloseSession(this.syncSession);
    } catch {
      /* already gone */
    }
    try {
      this.syncSession = this.o.lib.C_OpenSession(this.o.slot, CKF_SERIAL_SESSION);
    } catch (e) {
      this.o.logger?.error({ err: (e as Error).message }, 'cannot reopen the signing session');
    }
  }

  private acquire(): Promise<Buffer> {
    const s = this.idle.pop();
    if (s) return Promise.resolve(s);
    if (this.openAsync < this.o.maxAsyncSessions) {
      try {
        const n = this.o.lib.C_OpenSession(this.o.slot, CKF_SERIAL_SESSION);
        this.openAsync++;
        return Promise.resolve(n);
      } catch (e) {
        return Promise.reject(tokenError('C_OpenSession', e));
      }
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(s: Buffer, healthy: boolean): void {
    if (!healthy) {
      try {
        this.o.lib.C_CloseSession(s);
      } catch {
        /* ignore */
      }
      this.openAsync--;
      const w = this.waiters.shift();
      if (w) this.acquire().then(w, () => this.waiters.unshift(w));
      return;
    }
    const w = this.waiters.shift();
    if (w) w(s);
    else this.idle.push(s);
  }

  private async signAsync(st: KeyPlacement, mech: P.Mechanism, data: Buffer): Promise<Buffer> {
    const s = await this.acquire();
    const lib = this.o.lib;
    const t0 = process.hrtime.bigint();
    try {
      lib.C_SignInit(s, mech, st.obj);
    } catch (e) {
      this.release(s, false);
      throw signError('C_SignInit', e);
    }
    return new Promise<Buffer>((resolve, reject) => {
      lib.C_Sign(s, data, Buffer.allocUnsafe(st.sigLen), (err, sig) => {
        if (err) {
          this.release(s, false);
          reject(signError('C_Sign', err));
          return;
        }
        this.release(s, true);
        this.recordAsync(st, Number(process.hrtime.bigint() - t0) / 1000);
        resolve(sig);
      });
    });
  }

  /** Wait for in-flight asynchronous signatures, then close every session this scheduler opened. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    for (const s of [...this.idle, this.syncSession]) {
      try {
        this.o.lib.C_CloseSession(s);
      } catch {
        /* ignore */
      }
    }
    this.idle = [];
  }
}
