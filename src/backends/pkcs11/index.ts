// The "pkcs11" backend: signs with a local PKCS#11 token through graphene-pk11 / pkcs11js
// (SoftHSMv2 in tests). graphene loads the library and walks slots/tokens; the hot path calls
// pkcs11js (graphene's `lib`) directly with pre-sized output buffers.
//
// Signing path (shared PERFORMANCE.md): a libuv thread hop costs ~100 µs, more than our whole
// overhead budget, but a slow key must not stall other clients. So each key keeps an EWMA of its
// measured sign time: below `syncThresholdUs` it signs synchronously on the event loop (on a
// session used only by synchronous signs — they cannot interleave); otherwise, and for a key's
// first signature (unknown cost), it signs asynchronously on the libuv pool with a session of its
// own from a bounded pool, so concurrent async signs never share a session.
import { createHash, createPublicKey } from 'node:crypto';
import { availableParallelism } from 'node:os';
import * as graphene from 'graphene-pk11';
import type { Logger } from 'pino';
import pkcs11js from 'pkcs11js';
import type * as P from 'pkcs11js';
import { OID, bitString, decode, oid, parseCertificate, parseSpki, readOid, seq, TAG } from '../../core/der.js';
import { SignbridgeError, sbError } from '../../core/errors.js';
import { describeKey, keyHandle, type Curve, type KeyRecord, type KeyType, type TokenRecord } from '../../core/keys.js';
import { mechanismsFor, primitiveOf } from '../../core/mechanisms.js';
import {
  CKA_CERTIFICATE_TYPE, CKA_CLASS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ID, CKA_ISSUER, CKA_KEY_TYPE, CKA_LABEL,
  CKA_LOCAL, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_SIGN, CKA_SUBJECT, CKA_VALUE, CKC_X_509, CKG_MGF1_SHA1,
  CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512, CKK_EC, CKK_EC_EDWARDS, CKK_RSA,
  CKM_ECDSA, CKM_EDDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512,
  CKM_SHA_1, CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKR_DEVICE_ERROR, CKR_PIN_EXPIRED,
  CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED, CKR_USER_ALREADY_LOGGED_IN,
  CKR_ARGUMENTS_BAD, CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_SIZE_RANGE,
  CKR_KEY_TYPE_INCONSISTENT, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID, ckmName, ckrName,
} from '../../core/pkcs11.js';
import type { Backend, SignRequest } from '../types.js';

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
   * At most this many sessions for asynchronous signs (default min(4, cores): the libuv pool has 4
   * threads, and more CPU-bound signatures than cores would preempt the event loop itself).
   */
  maxAsyncSessions?: number | undefined;
}

/** How many recent event-loop sign times decide whether a key stays there (their median). */
const SYNC_SAMPLES = 5;
const CKF_SERIAL_SESSION = 4;

interface KeyState {
  obj: Buffer;
  /** Exact signature length, so C_Sign never needs a length query. */
  sigLen: number;
  /**
   * Where the key signs. It starts on the thread pool (its cost is unknown); an asynchronous sign
   * that completes under the threshold moves it to the event loop, and it goes back only when the
   * median of its last SYNC_SAMPLES event-loop signs is over the threshold — one sign that was slow
   * because the loop was preempted (slow signatures busy on every core) does not move it.
   */
  onLoop: boolean;
  /** Recent event-loop sign times, µs. */
  syncUs: number[];
  /** Primitives this key may use on this token. */
  primitives: Set<number>;
}

const HASH_LEN = new Map<number, number>([
  [CKM_SHA_1, 20], [CKM_SHA224, 28], [CKM_SHA256, 32], [CKM_SHA384, 48], [CKM_SHA512, 64],
]);
const MGFS = new Set([CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512]);
const CURVES: Record<string, { curve: Curve; bits: number }> = {
  [OID.prime256v1]: { curve: 'P-256', bits: 256 },
  [OID.secp384r1]: { curve: 'P-384', bits: 384 },
  [OID.secp521r1]: { curve: 'P-521', bits: 521 },
};

function isPkcs11Error(e: unknown): e is Error & { code: number } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

/** A token failure as a SignbridgeError carrying the token's own CK_RV (passed through to the tool). */
function tokenError(op: string, e: unknown): SignbridgeError {
  if (e instanceof SignbridgeError) return e;
  if (isPkcs11Error(e)) return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: ckrName(e.code) }, { ckr: e.code, cause: e });
  return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: (e as Error)?.message ?? String(e) }, { ckr: CKR_DEVICE_ERROR, cause: e });
}

// Token codes that describe the signing request itself, so they mean the same to the tool.
const REQUEST_ERRORS = new Set([
  CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
  CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_SIZE_RANGE,
]);

/**
 * A backing-token error during a signature, as the tool should see it. Anything else the token says
 * (CKR_SESSION_HANDLE_INVALID, CKR_OPERATION_ACTIVE, CKR_USER_NOT_LOGGED_IN …) is about the daemon's
 * own session with the token, not the tool's: the tool gets CKR_DEVICE_ERROR and the log keeps the
 * token's code. SoftHSMv2 answers bad PSS parameters with CKR_ARGUMENTS_BAD, hence that mapping.
 */
function signError(op: string, e: unknown): SignbridgeError {
  const err = tokenError(op, e);
  if (!isPkcs11Error(e)) return err;
  const ckr = e.code === CKR_ARGUMENTS_BAD ? CKR_MECHANISM_PARAM_INVALID : REQUEST_ERRORS.has(e.code) ? e.code : CKR_DEVICE_ERROR;
  return sbError('SIGNBRIDGE_ERR_TOKEN', { op, rv: ckrName(e.code) }, { ckr, cause: e });
}

// One loaded+initialized library per path and process, shared by every backend using it: a second
// C_Initialize/C_Finalize pair on the same library would tear down the sessions of the first.
const libraries = new Map<string, { mod: graphene.Module; users: number }>();

function acquireLibrary(library: string): graphene.Module {
  const have = libraries.get(library);
  if (have) {
    have.users++;
    return have.mod;
  }
  const mod = graphene.Module.load(library, 'signbridge-backing-token');
  try {
    // Signs run on the event loop AND on libuv threads: the token must lock (PKCS#11 v2.40 §5.4);
    // without CKF_OS_LOCKING_OK SoftHSMv2 does no locking and concurrent signs corrupt its heap.
    mod.initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (!(isPkcs11Error(e) && e.code === 0x191 /* CKR_CRYPTOKI_ALREADY_INITIALIZED */)) {
      try {
        mod.close();
      } catch {
        /* ignore */
      }
      throw e;
    }
  }
  libraries.set(library, { mod, users: 1 });
  return mod;
}

function releaseLibrary(library: string): void {
  const have = libraries.get(library);
  if (!have || --have.users > 0) return;
  libraries.delete(library);
  try {
    have.mod.finalize();
  } catch {
    /* not initialized */
  }
  try {
    have.mod.close();
  } catch {
    /* ignore */
  }
}

function ulongOf(b: Buffer): number {
  return b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUIntLE(0, Math.min(b.length, 6));
}

export class Pkcs11Backend implements Backend {
  readonly name = 'pkcs11';
  private mod: graphene.Module | undefined;
  private lib: P.PKCS11 | undefined;
  private slotHandle: Buffer | undefined;
  private mainSession: Buffer | undefined;
  private syncSession: Buffer | undefined;
  private idle: Buffer[] = [];
  private openAsync = 0;
  private waiters: Array<(s: Buffer) => void> = [];
  private inFlight = new Set<Promise<unknown>>();
  private closing = false;
  private state = new WeakMap<KeyRecord, KeyState>();
  private token: TokenRecord | undefined;
  private gen = 0n;
  private readonly log: Logger | undefined;
  private readonly threshold: number;
  private readonly maxAsync: number;
  /** How many signatures took each path (bench and tests read this). */
  readonly counters = { sync: 0, async: 0 };

  constructor(private readonly opts: Pkcs11BackendOptions) {
    this.log = opts.logger;
    this.threshold = opts.syncThresholdUs ?? 1000;
    this.maxAsync = Math.max(1, opts.maxAsyncSessions ?? Math.min(4, availableParallelism()));
  }

  async start(): Promise<void> {
    const { library } = this.opts;
    let mod: graphene.Module;
    try {
      mod = acquireLibrary(library);
    } catch (e) {
      throw sbError('SIGNBRIDGE_ERR_PKCS11_LIBRARY', { library, reason: (e as Error).message }, { cause: e });
    }
    this.mod = mod;
    this.lib = mod.lib;
    try {
      const slot = this.findSlot(mod);
      this.slotHandle = slot.handle;
      const t = slot.getToken();
      this.mainSession = this.lib.C_OpenSession(slot.handle, CKF_SERIAL_SESSION);
      this.login(t.label.trim());
      this.syncSession = this.lib.C_OpenSession(slot.handle, CKF_SERIAL_SESSION);
      const tokenMechs = new Set(this.lib.C_GetMechanismList(slot.handle));
      const serial = t.serialNumber.trim();
      const keys = this.listKeys(serial, tokenMechs);
      this.token = {
        label: t.label.trim(),
        serial,
        model: t.model.trim(),
        manufacturer: t.manufacturerID.trim(),
        description: `signbridge pkcs11: ${slot.slotDescription.trim()}`.slice(0, 64),
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

  private findSlot(mod: graphene.Module): graphene.Slot {
    const slots = mod.getSlots(true);
    const found: string[] = [];
    for (let i = 0; i < slots.length; i++) {
      const s = slots.items(i);
      const label = s.getToken().label.trim();
      found.push(`"${label}"`);
      if (this.opts.tokenLabel !== undefined ? label === this.opts.tokenLabel : i === (this.opts.slotIndex ?? 0)) return s;
    }
    const wanted = this.opts.tokenLabel !== undefined ? `labelled "${this.opts.tokenLabel}"` : `at slot index ${this.opts.slotIndex ?? 0}`;
    throw sbError('SIGNBRIDGE_ERR_TOKEN_NOT_FOUND', { wanted, available: found.length ? found.join(', ') : 'none' });
  }

  private login(label: string): void {
    try {
      this.lib!.C_Login(this.mainSession!, 1 /* CKU_USER */, this.opts.pin);
    } catch (e) {
      // Another backend in this process (same library) already holds the login: PKCS#11 login
      // state is per application, so this PIN cannot be checked without logging that one out.
      if (isPkcs11Error(e) && e.code === CKR_USER_ALREADY_LOGGED_IN) return;
      if (isPkcs11Error(e) && [CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED, CKR_PIN_EXPIRED].includes(e.code)) {
        // Cause deliberately dropped: nothing PIN-related travels further than the rv name.
        throw sbError('SIGNBRIDGE_ERR_PIN_INCORRECT', { token: label, rv: ckrName(e.code) }, { ckr: e.code });
      }
      throw tokenError('C_Login', e);
    }
  }

  // --- key listing -------------------------------------------------------------------------

  private find(template: P.Template): Buffer[] {
    const lib = this.lib!;
    const s = this.mainSession!;
    lib.C_FindObjectsInit(s, template);
    const out: Buffer[] = [];
    try {
      for (;;) {
        const batch = lib.C_FindObjects(s, 64);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    return out;
  }

  /** One attribute, or undefined when the token does not have it (CKR_ATTRIBUTE_TYPE_INVALID etc.). */
  private attr(obj: Buffer, type: number): Buffer | undefined {
    try {
      const [a] = this.lib!.C_GetAttributeValue(this.mainSession!, obj, [{ type }]);
      const v = a?.value;
      return Buffer.isBuffer(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  private listKeys(serial: string, tokenMechs: Set<number>): KeyRecord[] {
    const certs = this.find([{ type: CKA_CLASS, value: CKO_CERTIFICATE }, { type: CKA_CERTIFICATE_TYPE, value: CKC_X_509 }])
      .map((o) => ({ id: this.attr(o, CKA_ID) ?? Buffer.alloc(0), der: this.attr(o, CKA_VALUE), subject: this.attr(o, CKA_SUBJECT), issuer: this.attr(o, CKA_ISSUER) }))
      .filter((c): c is { id: Buffer; der: Buffer; subject: Buffer | undefined; issuer: Buffer | undefined } => c.der !== undefined && c.der.length > 0);
    const pubs = this.find([{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }]).map((o) => ({ id: this.attr(o, CKA_ID) ?? Buffer.alloc(0), obj: o }));
    const keys: KeyRecord[] = [];
    for (const obj of this.find([{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }])) {
      const id = this.attr(obj, CKA_ID) ?? Buffer.alloc(0);
      const label = (this.attr(obj, CKA_LABEL) ?? Buffer.alloc(0)).toString('utf8');
      const name = label || `id ${id.toString('hex')}`;
      try {
        const k = this.keyRecord(obj, id, label, serial, tokenMechs, certs, pubs);
        if (k) keys.push(k);
      } catch (e) {
        this.log?.warn({ key: name, err: (e as Error).message }, 'skipping a key the daemon cannot use');
      }
    }
    // Stable order (by CKA_ID, then label): the object list the module sees does not depend on
    // the order the token happens to return objects in.
    return keys.sort((a, b) => Buffer.compare(a.id, b.id) || a.label.localeCompare(b.label));
  }

  private keyRecord(
    obj: Buffer,
    id: Buffer,
    label: string,
    serial: string,
    tokenMechs: Set<number>,
    certs: Array<{ id: Buffer; der: Buffer }>,
    pubs: Array<{ id: Buffer; obj: Buffer }>,
  ): KeyRecord | undefined {
    const sign = this.attr(obj, CKA_SIGN);
    if (sign && sign[0] === 0) return undefined; // not a signing key
    if (id.length > 255) throw new Error('CKA_ID is longer than 255 bytes');
    const ckk = ulongOf(this.attr(obj, CKA_KEY_TYPE) ?? Buffer.alloc(8, 0xff));
    const cert = certs.find((c) => c.id.equals(id));
    let spki: Buffer;
    if (cert) spki = parseCertificate(cert.der).spkiDer;
    else {
      const pub = pubs.find((p) => p.id.equals(id));
      spki = this.spkiFromToken(ckk, pub?.obj, obj);
    }
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const p = parseSpki(spki);
    let type: KeyType;
    let bits: number;
    let curve: Curve | undefined;
    if (p.algorithmOid === OID.rsaEncryption && ckk === CKK_RSA) {
      type = 'rsa';
      bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    } else if (p.algorithmOid === OID.ecPublicKey && ckk === CKK_EC) {
      const c = CURVES[readOid(decode(p.parametersDer ?? Buffer.alloc(0)))];
      if (!c) throw new Error('unsupported EC curve (P-256, P-384 and P-521 are supported)');
      type = 'ec';
      bits = c.bits;
      curve = c.curve;
    } else if (p.algorithmOid === OID.ed25519 && ckk === CKK_EC_EDWARDS) {
      type = 'ed25519';
      bits = 256;
    } else {
      throw new Error(`key type 0x${ckk.toString(16)} with public key ${p.algorithmOid} is not supported`);
    }
    // Narrow to what this token can actually do.
    const needs = (prim: number): boolean => tokenMechs.has(prim);
    const mechanisms = mechanismsFor(type).filter((m) => needs(primitiveOf(m)!));
    if (mechanisms.length === 0) throw new Error(`the token offers no signing mechanism for ${describeKey({ type, bits, curve })} keys`);
    const chain = this.chainFor(cert?.der, certs.map((c) => c.der));
    const k: KeyRecord = {
      handle: keyHandle(this.name, serial, id, spki),
      id: Buffer.from(id),
      label,
      type,
      bits,
      ...(curve ? { curve } : {}),
      publicKey,
      spki,
      ...(cert ? { certificate: cert.der } : {}),
      chain,
      mechanisms,
      local: (this.attr(obj, CKA_LOCAL) ?? Buffer.from([0]))[0] === 1,
    };
    const fieldBytes = Math.ceil(bits / 8);
    this.state.set(k, {
      obj,
      sigLen: type === 'rsa' ? fieldBytes : type === 'ec' ? 2 * fieldBytes : 64,
      onLoop: false,
      syncUs: [],
      primitives: new Set(mechanisms.map((m) => primitiveOf(m)!)),
    });
    return k;
  }

  /** SubjectPublicKeyInfo from the public key object (or the private key's public attributes). */
  private spkiFromToken(ckk: number, pub: Buffer | undefined, priv: Buffer): Buffer {
    const from = (t: number): Buffer | undefined => (pub ? this.attr(pub, t) : undefined) ?? this.attr(priv, t);
    if (ckk === CKK_RSA) {
      const n = from(CKA_MODULUS);
      const e = from(CKA_PUBLIC_EXPONENT);
      if (!n || !e) throw new Error('no certificate and no RSA public key on the token');
      const jwk = { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') };
      return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' });
    }
    const params = from(CKA_EC_PARAMS);
    const pointAttr = pub ? this.attr(pub, CKA_EC_POINT) : undefined;
    if (!params || !pointAttr) throw new Error('no certificate and no public key object with CKA_EC_POINT on the token');
    // CKA_EC_POINT is normally a DER OCTET STRING around the point; some tokens give it raw.
    let point = pointAttr;
    try {
      const t = decode(pointAttr, TAG.OCTET_STRING);
      if (t.raw.length === pointAttr.length) point = Buffer.from(t.value);
    } catch {
      /* raw point */
    }
    if (ckk === CKK_EC) return seq(seq(oid(OID.ecPublicKey), params), bitString(point));
    if (ckk === CKK_EC_EDWARDS) {
      // SoftHSMv2 gives PrintableString "edwards25519"; PKCS#11 3.0 also allows the OID 1.3.101.112.
      const isEd25519 = params.equals(oid(OID.ed25519)) || params.subarray(2).toString('latin1') === 'edwards25519';
      if (!isEd25519 || point.length !== 32) throw new Error('only Ed25519 Edwards keys are supported');
      return seq(seq(oid(OID.ed25519)), bitString(point));
    }
    throw new Error(`key type 0x${ckk.toString(16)} is not supported`);
  }

  /** CA certificates on the token that issued `leaf`, issuer first (stops at a self-signed one). */
  private chainFor(leaf: Buffer | undefined, all: Buffer[]): Buffer[] {
    if (!leaf) return [];
    const chain: Buffer[] = [];
    let cur = parseCertificate(leaf);
    for (let depth = 0; depth < 8; depth++) {
      if (cur.issuerDer.equals(cur.subjectDer)) break;
      const issuer = all.find((d) => !d.equals(leaf) && !chain.some((c) => c.equals(d)) && parseCertificate(d).subjectDer.equals(cur.issuerDer));
      if (!issuer) break;
      chain.push(issuer);
      cur = parseCertificate(issuer);
    }
    return chain;
  }

  tokens(): TokenRecord[] {
    return this.token ? [this.token] : [];
  }

  generation(): bigint {
    return this.gen;
  }

  // --- signing -----------------------------------------------------------------------------

  /** Check the request against the key (protocol.md "SIGN" errors) and build the pkcs11js mechanism. */
  private mechanism(req: SignRequest, st: KeyState): P.Mechanism {
    const { key, mechanism, hashAlg, data } = req;
    if (!st.primitives.has(mechanism)) {
      throw sbError('SIGNBRIDGE_ERR_MECHANISM', { mechanism: ckmName(mechanism), key: `${key.label} (${describeKey(key)})` });
    }
    const modBytes = Math.ceil(key.bits / 8);
    switch (mechanism) {
      case CKM_RSA_PKCS:
        // RFC 8017 §9.2: at least 11 bytes of padding.
        if (data.length === 0 || data.length > modBytes - 11)
          throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `RSA_PKCS input of ${data.length} bytes for a ${key.bits}-bit key (1..${modBytes - 11})` });
        return { mechanism };
      case CKM_RSA_PKCS_PSS: {
        const hLen = HASH_LEN.get(hashAlg);
        if (hLen === undefined) throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS hash ${ckmName(hashAlg)} is not SHA-1/224/256/384/512` });
        if (!MGFS.has(req.mgf)) throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS MGF 0x${req.mgf.toString(16)} is not a CKG_MGF1_*` });
        const emLen = Math.ceil((key.bits - 1) / 8);
        if (req.saltLen > emLen - hLen - 2)
          throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS salt length ${req.saltLen} exceeds ${emLen - hLen - 2} for this key and hash` });
        if (data.length !== hLen) throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `PSS digest of ${data.length} bytes, ${ckmName(hashAlg)} has ${hLen}` });
        const parameter: P.RsaPSS = { hashAlg, mgf: req.mgf, saltLen: req.saltLen, type: pkcs11js.CK_PARAMS_RSA_PSS };
        return { mechanism, parameter };
      }
      case CKM_ECDSA:
        if (data.length === 0 || data.length > 64) throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `ECDSA digest of ${data.length} bytes (1..64)` });
        return { mechanism };
      case CKM_EDDSA:
        return { mechanism };
      default:
        throw sbError('SIGNBRIDGE_ERR_MECHANISM', { mechanism: ckmName(mechanism), key: key.label });
    }
  }

  sign(req: SignRequest): Buffer | Promise<Buffer> {
    const st = this.state.get(req.key);
    if (!st || this.closing || !this.lib) {
      throw sbError('SIGNBRIDGE_ERR_KEY_NOT_FOUND', { handle: req.key.handle.toString('hex') });
    }
    const mech = this.mechanism(req, st);
    if (st.onLoop) {
      this.counters.sync++;
      return this.signSync(req, st, mech);
    }
    this.counters.async++;
    const p = this.signAsync(req, st, mech);
    this.inFlight.add(p);
    const done = (): void => void this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private recordSync(st: KeyState, us: number): void {
    st.syncUs.push(us);
    if (st.syncUs.length > SYNC_SAMPLES) st.syncUs.shift();
    if (st.syncUs.length < SYNC_SAMPLES) return;
    const median = [...st.syncUs].sort((a, b) => a - b)[SYNC_SAMPLES >> 1]!;
    if (median >= this.threshold) {
      st.onLoop = false;
      st.syncUs = [];
    }
  }

  private recordAsync(st: KeyState, us: number): void {
    // includes waiting for a pool thread: a fast key measured under load simply stays here longer
    if (us < this.threshold) st.onLoop = true;
  }

  private signSync(req: SignRequest, st: KeyState, mech: P.Mechanism): Buffer {
    const lib = this.lib!;
    const s = this.syncSession!;
    const t0 = process.hrtime.bigint();
    try {
      lib.C_SignInit(s, mech, st.obj);
      const sig = lib.C_Sign(s, req.data, Buffer.allocUnsafe(st.sigLen));
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
      this.lib!.C_CloseSession(this.syncSession!);
    } catch {
      /* already gone */
    }
    try {
      this.syncSession = this.lib!.C_OpenSession(this.slotHandle!, CKF_SERIAL_SESSION);
    } catch (e) {
      this.log?.error({ err: (e as Error).message }, 'cannot reopen the signing session');
    }
  }

  private acquire(): Promise<Buffer> {
    const s = this.idle.pop();
    if (s) return Promise.resolve(s);
    if (this.openAsync < this.maxAsync) {
      try {
        const n = this.lib!.C_OpenSession(this.slotHandle!, CKF_SERIAL_SESSION);
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
        this.lib!.C_CloseSession(s);
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

  private async signAsync(req: SignRequest, st: KeyState, mech: P.Mechanism): Promise<Buffer> {
    const s = await this.acquire();
    const lib = this.lib!;
    const t0 = process.hrtime.bigint();
    try {
      lib.C_SignInit(s, mech, st.obj);
    } catch (e) {
      this.release(s, false);
      throw signError('C_SignInit', e);
    }
    return new Promise<Buffer>((resolve, reject) => {
      lib.C_Sign(s, req.data, Buffer.allocUnsafe(st.sigLen), (err, sig) => {
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

  async close(): Promise<void> {
    this.closing = true;
    // Finish in-flight asynchronous signatures before the sessions go away.
    await Promise.allSettled([...this.inFlight]);
    const lib = this.lib;
    if (lib) {
      for (const s of [...this.idle, this.syncSession, this.mainSession]) {
        if (!s) continue;
        try {
          lib.C_CloseSession(s);
        } catch {
          /* ignore */
        }
      }
      this.idle = [];
    }
    if (this.mod) releaseLibrary(this.opts.library);
    this.mod = undefined;
    this.lib = undefined;
  }
}
