// The audit log's two lines per SIGN (README "Audit log"): the request record, written and synced
// while the backend signs (the signature waits for it), and the outcome, written after the reply.
// They share an `id`. Built as strings by hand from parts that are cached per key and per
// connection: the request line is on every signature's critical path (docs/performance.md).
import { createHash } from 'node:crypto';
import type { KeyRecord } from '../core/keys.js';
import { CKM_ECDSA, CKM_EDDSA, CKM_RSA_PKCS, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA_1, ckmName, ckrName } from '../core/pkcs11.js';
import type { SignRequest } from '../ipc/protocol.js';
import type { PeerInfo } from './server.js';

/** One SIGN as it arrives (dispatcher.ts), before the backend signs. */
export interface SignRequestEvent {
  time: Date;
  conn: number;
  peer: PeerInfo | undefined;
  /** the decoded wire request */
  req: SignRequest;
  /** the key the request's handle resolved to (the one that will sign); undefined when none */
  key: KeyRecord | undefined;
}

/** How a SIGN ended. */
export interface SignOutcome {
  /** 0 = signed (and returned) */
  rv: number;
  message: string;
  /** time spent in the backend (µs) */
  backendUs: number;
}

const HASH_LEN = new Map<number, number>([
  [CKM_SHA_1, 20],
  [CKM_SHA224, 28],
  [CKM_SHA256, 32],
  [CKM_SHA384, 48],
  [CKM_SHA512, 64],
]);

/**
 * The request record's fields (README "Audit log"). `digest` is the hash that is signed, under
 * `hash` (for CKM_RSA_PKCS: the hash inside the DigestInfo); when the daemon got no hash it can
 * name (EdDSA's message, raw RSA input) the record holds `data_sha256`, the SHA-256 of the data.
 */
export function requestRecord(e: SignRequestEvent, id: string): Record<string, unknown> {
  return JSON.parse(requestLine(e, id)) as Record<string, unknown>;
}

/** The outcome line's fields. */
export function outcomeRecord(id: string, o: SignOutcome, time = new Date()): Record<string, unknown> {
  return JSON.parse(outcomeLine(id, o, time)) as Record<string, unknown>;
}

// Per key, per peer and per mechanism the JSON fragment never changes: build it once.
const keyJson = new WeakMap<KeyRecord, string>();
const peerJson = new WeakMap<PeerInfo, string>();
const mechJson = new Map<bigint, string>();

function mechPart(m: bigint): string {
  let s = mechJson.get(m);
  if (s === undefined) {
    s = `"mechanism":${JSON.stringify(ckmName(m))},`;
    if (mechJson.size < 256) mechJson.set(m, s); // mechanisms come from the wire: bounded
  }
  return s;
}

// One ISO time string per millisecond: signatures in the same millisecond share it.
let isoMs = -1;
let isoText = '';
function isoTime(d: Date): string {
  const ms = d.getTime();
  if (ms !== isoMs) {
    isoText = d.toISOString();
    isoMs = ms;
  }
  return isoText;
}

export function keyPart(key: KeyRecord | undefined, handle: Buffer): string {
  if (!key) return `{"id":null,"label":null,"handle":"${handle.toString('hex')}"}`;
  let s = keyJson.get(key);
  if (s === undefined) {
    s = `{"id":"${key.id.toString('hex')}","label":${JSON.stringify(key.label)},"handle":"${key.handle.toString('hex')}"}`;
    keyJson.set(key, s);
  }
  return s; // the key was found by this very handle (dispatcher.ts), so its handle is the request's
}

export function peerPart(peer: PeerInfo | undefined): string {
  if (!peer) return 'null';
  let s = peerJson.get(peer);
  if (s === undefined) {
    s = JSON.stringify({ uid: peer.uid, pid: peer.pid, exe: peer.exe, ...(peer.sid ? { sid: peer.sid } : {}) });
    peerJson.set(peer, s);
  }
  return s;
}

/** The request line (no newline). */
export function requestLine(e: SignRequestEvent, id: string): string {
  const hashAlg = Number(e.req.hash_alg);
  const n = HASH_LEN.get(hashAlg);
  const data = e.req.data;
  const digest =
    n !== undefined && data.length >= n
      ? `"hash":"${ckmName(hashAlg)}","digest":"${data.toString('hex', data.length - n)}"`
      : `"hash":null,"data_sha256":"${createHash('sha256').update(data).digest('hex')}"`;
  return (
    `{"time":"${isoTime(e.time)}","id":"${id}","event":"request","peer":${peerPart(e.peer)},` +
    `"key":${keyPart(e.key, e.req.key_handle)},${mechPart(e.req.mechanism)}${digest}}`
  );
}

/** The outcome line (no newline). */
export function outcomeLine(id: string, o: SignOutcome, time = new Date()): string {
  const outcome = o.rv === 0 ? '"outcome":"ok"' : `"outcome":${JSON.stringify(ckrName(o.rv))},"error":${JSON.stringify(o.message)}`;
  return `{"time":"${isoTime(time)}","id":"${id}","event":"outcome",${outcome},"backend_us":${o.backendUs}}`;
}

/**
 * The request line's mechanism and hash fragments for the native signing path, which writes the
 * same line for CKM_ECDSA, CKM_RSA_PKCS and CKM_EDDSA (native/addon/native_signer.cpp): one
 * format, made here. Hashes: [CKM_SHA*, digest length, '"hash":"CKM_SHA…","digest":"'].
 */
export function nativeFragments(): { mechJson: Record<number, string>; hashes: Array<[number, number, string]> } {
  const mechJson: Record<number, string> = {};
  for (const m of [CKM_ECDSA, CKM_RSA_PKCS, CKM_EDDSA]) mechJson[m] = mechPart(BigInt(m));
  const hashes = [...HASH_LEN].map(([ckm, len]): [number, number, string] => [ckm, len, `"hash":"${ckmName(ckm)}","digest":"`]);
  return { mechJson, hashes };
}
