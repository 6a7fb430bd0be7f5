// The "pkcs11" backend: signs with a local PKCS#11 token through pkcs11js (SoftHSMv2 in tests).
// It composes the shared library (library.ts), the key listing (discovery.ts), the request checks
// (mechanism.ts) and the signing scheduler (scheduler.ts: event loop for fast keys, thread pool
// for slow ones). The hot path calls pkcs11js with pre-sized buffers.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type * as P from 'pkcs11js';
import type { NativeSignerApi, NativeSignerCtor } from '../../native/loader.js';
import { sbError } from '../../core/errors.js';
import { describeKey, type KeyRecord, type TokenRecord } from '../../core/keys.js';
import { primitiveOf } from '../../core/mechanisms.js';
import {
  CKM_ECDSA, CKM_EDDSA, CKM_RSA_PKCS, CKR_PIN_EXPIRED, CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED, CKR_USER_ALREADY_LOGGED_IN, ckrName,
} from '../../core/pkcs11.js';
import type { Backend, SignParams } from '../types.js';
import { TokenReader, findSlot } from './discovery.js';
import { acquireLibrary, releaseLibrary } from './library.js';
import { mechanismFor } from './mechanism.js';
import { CKF_SERIAL_SESSION, SignScheduler, place, placementOf } from './scheduler.js';
import { isPkcs11Error, tokenError } from './token-errors.js';

export interface Pkcs11BackendOptions {
  /** Path of the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so). */
  library: string;
  /** Token to use, by label (preferred) … */
  tokenLabel?: string | undefined;
  /** … or by index in the list of slots with a token present. */
  slotIndex?: number | undefined;
  /** The user PIN (see pin.ts for where it comes from). Never logged. */
  pin: string;
  logger?: Logger | undefined;
  /** Keys that sign faster than this sign synchronously on the event loop (default 1000 µs). */
  syncThresholdUs?: number | undefined;
  /**
   * The addon's native signer (src/native/loader.ts): fast keys then sign without JavaScript per
   * signature (docs/performance.md "The native signing path"). Absent: every signature in JS.
   */
  nativeSigner?: NativeSignerCtor | undefined;
  /**
   * At most this many sessions for asynchronous signs (default min(4, cores): the libuv pool has 4
   * threads, and more CPU-bound signatures than cores would preempt the event loop itself).
   */
  maxAsyncSessions?: number | undefined;
}

const NATIVE_MECHANISMS = new Set([CKM_ECDSA, CKM_RSA_PKCS, CKM_EDDSA]);
const PIN_ERRORS = [CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED, CKR_PIN_EXPIRED];

export class Pkcs11Backend implements Backend {
  readonly name = 'pkcs11';
  private lib: P.PKCS11 | undefined;
  private mainSession: Buffer | undefined;
  private scheduler: SignScheduler | undefined;
  private closing = false;
  private token: TokenRecord | undefined;
  private nativeSigner: NativeSignerApi | undefined;
  private gen = 0n;
  private readonly log: Logger | undefined;
  private readonly threshold: number;
  private readonly maxAsync: number;
  /** How many signatures took each path (bench and tests read this; the scheduler counts). */
  readonly counters = { sync: 0, async: 0 };

  constructor(private readonly opts: Pkcs11BackendOptions) {
    this.log = opts.logger;
    this.threshold = opts.syncThresholdUs ?? 1000;
    this.maxAsync = Math.max(1, opts.maxAsyncSessions ?? Math.min(4, availableParallelism()));
  }

  async start(): Promise<void> {
    const { library } = this.opts;
    let lib: P.PKCS11;
    try {
      lib = this.lib = acquireLibrary(library);
    } catch (e) {
      throw sbError('SIGNBRIDGE_ERR_PKCS11_LIBRARY', { library, reason: (e as Error).message }, { cause: e });
    }
    try {
      const slot = findSlot(lib, this.opts.tokenLabel, this.opts.slotIndex);
      const t = slot.token;
      this.mainSession = lib.C_OpenSession(slot.handle, CKF_SERIAL_SESSION);
      this.login(t.label.trim());
      this.nativeSigner = this.openNative(slot.handle);
      const scheduler = new SignScheduler({
        lib, slot: slot.handle, thresholdUs: this.threshold, maxAsyncSessions: this.maxAsync, counters: this.counters, logger: this.log,
        native: this.nativeSigner,
      });
      this.scheduler = scheduler;
      const tokenMechs = new Set(lib.C_GetMechanismList(slot.handle));
      const serial = t.serialNumber.trim();
      const found = new TokenReader(lib, this.mainSession, this.log).listKeys(this.name, serial, tokenMechs);
      for (const f of found) {
        const primitives = new Set(f.record.mechanisms.map((m) => primitiveOf(m)!));
        place(f.record, {
          owner: scheduler, obj: f.obj, sigLen: f.sigLen, primitives, handle: f.record.handle,
          // what the native path may sign: the primitives that take no parameter (mechanism.ts)
          nativeMechanisms: [...primitives].filter((m) => NATIVE_MECHANISMS.has(m)),
          maxRsaData: f.record.type === 'rsa' ? Math.ceil(f.record.bits / 8) - 11 : 0,
        });
      }
      const keys = found.map((f) => f.record);
      this.token = {
        label: t.label.trim(),
        serial,
        model: t.model.trim(),
        manufacturer: t.manufacturerID.trim(),
        description: `signbridge pkcs11: ${slot.description}`.slice(0, 64),
        keys,
      };
      const h = createHash('sha256');
      for (const k of keys) h.update(k.handle).update(k.certificate ?? Buffer.alloc(0));
      this.gen = h.digest().readBigUInt64LE(0) || 1n;
      this.log?.info({ token: this.token.label, serial, keys: keys.map((k) => `${k.label} (${describeKey(k)})`) }, 'pkcs11 token ready');
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** The native signer on its own session, or undefined (none in this addon, or it failed: JS signs). */
  private openNative(slot: Buffer): NativeSignerApi | undefined {
    const Ctor = this.opts.nativeSigner;
    if (!Ctor || this.threshold <= 0) return undefined;
    try {
      return new Ctor(this.opts.library, slot, this.threshold);
    } catch (e) {
      this.log?.warn({ err: (e as Error).message }, 'native signing path unavailable: every signature is made in JavaScript');
      return undefined;
    }
  }

  get native(): NativeSignerApi | undefined {
    return this.nativeSigner;
  }

  private login(label: string): void {
    try {
      this.lib!.C_Login(this.mainSession!, 1 /* CKU_USER */, this.opts.pin);
    } catch (e) {
      // Another backend in this process (same library) already holds the login: PKCS#11 login
      // state is per application, so this PIN cannot be checked without logging that one out.
      if (isPkcs11Error(e) && e.code === CKR_USER_ALREADY_LOGGED_IN) return;
      if (isPkcs11Error(e) && PIN_ERRORS.includes(e.code)) {
        // Cause deliberately dropped: nothing PIN-related travels further than the rv name.
        throw sbError('SIGNBRIDGE_ERR_PIN_INCORRECT', { token: label, rv: ckrName(e.code) }, { ckr: e.code });
      }
      throw tokenError('C_Login', e);
    }
  }

  tokens(): TokenRecord[] {
    return this.token ? [this.token] : [];
  }

  generation(): bigint {
    return this.gen;
  }

  sign(key: KeyRecord, params: SignParams): Buffer | Promise<Buffer> {
    const st = placementOf(key);
    const scheduler = this.scheduler;
    // a key of another backend instance (or of this one before a restart) has no object here
    if (!st || !scheduler || st.owner !== scheduler || this.closing) {
      throw sbError('SIGNBRIDGE_ERR_KEY_NOT_FOUND', { handle: key.handle.toString('hex') });
    }
    return scheduler.sign(st, mechanismFor(key, params, st.primitives), params.data, params.client);
  }

  async close(): Promise<void> {
    this.closing = true;
    // Finish in-flight asynchronous signatures before the sessions go away.
    this.nativeSigner?.close(); // its session goes before the library's C_Finalize
    this.nativeSigner = undefined;
    await this.scheduler?.close();
    this.scheduler = undefined;
    if (this.lib && this.mainSession) {
      try {
        this.lib.C_CloseSession(this.mainSession);
      } catch {
        /* ignore */
      }
    }
    this.mainSession = undefined;
    if (this.lib) releaseLibrary(this.opts.library);
    this.lib = undefined;
  }
}
