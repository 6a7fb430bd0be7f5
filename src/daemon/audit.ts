// The audit log (README "Audit log"): every SIGN request, one JSON line, on disk (O_DSYNC) before the
// reply leaves the daemon — so a signature a tool holds is always on disk, even if the daemon is
// SIGKILLed right after.
//
// Where the file's O_DSYNC write is cheap (tmpfs: a few µs, e.g. the default place beside the
// socket in $XDG_RUNTIME_DIR), a line is written synchronously on the event loop: a thread-pool
// round trip per signature would cost more than the whole signing overhead budget
// (README "Performance"). Where it is slow (a real disk), lines go through the thread pool with
// group commit: lines arriving while a write is in flight (or in the same tick) are written
// together by the next one, so N concurrent signatures cost one synchronous write, not N, and the
// event loop never waits on the disk. The choice follows measured write times, like the pkcs11
// backend's choice of where to sign.
// Rotation by size: before a batch would push the file past maxBytes, audit.log → audit.log.1 →
// … → audit.log.<keep> (the oldest is dropped), and a fresh audit.log is started.
import { createHash } from 'node:crypto';
import { constants, writeSync } from 'node:fs';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { KeyRecord } from '../core/keys.js';
import { CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA_1, ckmName, ckrName } from '../core/pkcs11.js';
import type { SignRequest } from '../ipc/protocol.js';
import type { PeerInfo } from './server.js';

/** One SIGN once its outcome is known (dispatcher.ts). */
export interface SignAuditEvent {
  time: Date;
  conn: number;
  peer: PeerInfo | undefined;
  /** the decoded wire request */
  req: SignRequest;
  /** the key the request's handle resolved to (the one that signed); undefined when none */
  key: KeyRecord | undefined;
  /** 0 = signed */
  rv: number;
  message: string;
  /** time spent in the backend (µs) */
  backendUs: number;
}

/** Where the dispatcher records SIGNs: nothing once on disk (throws if it failed), else a promise. */
export interface AuditSink {
  recordSign(e: SignAuditEvent): void | Promise<void>;
}

export const DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_AUDIT_KEEP = 5;

/** A synchronous write slower than this (median of the last few) moves the log to the thread pool. */
const DEFAULT_SYNC_WRITE_MAX_US = 100;
const SYNC_SAMPLES = 5;
/** While on the thread pool, one line in this many is written synchronously to measure again. */
const PROBE_EVERY = 1000;

// O_DSYNC: write() returns once the data (and the size that finds it) is on disk — the same
// guarantee as write + fdatasync, in one thread-pool round trip instead of two.
const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;

export interface AuditOptions {
  file: string;
  /** rotate before the file would grow past this (default 10 MiB) */
  maxBytes?: number;
  /** rotated files kept besides the current one: file.1 … file.<keep> (default 5) */
  keep?: number;
  /** a synchronous write slower than this moves lines to the thread pool (default 100 µs; 0: always the pool) */
  syncWriteMaxUs?: number;
  logger?: Logger;
}

interface Waiter {
  line: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class AuditLog implements AuditSink {
  private pending: Waiter[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  /** a write failed part-way: start the next batch on a new line so later lines still parse */
  private torn = false;
  /** batches written (each one O_DSYNC write), for the bench/tests */
  batches = 0;
  lines = 0;
  /** lines written synchronously on the event loop */
  syncLines = 0;
  /** write synchronously (cheap file system) or through the thread pool (see the top) */
  private syncWrites: boolean;
  private syncUs: number[] = [];
  private sinceProbe = 0;

  private constructor(
    readonly file: string,
    private fh: FileHandle,
    private size: number,
    private readonly maxBytes: number,
    private readonly keep: number,
    private readonly logger: Logger | undefined,
    private readonly syncWriteMaxUs: number,
  ) {
    this.syncWrites = syncWriteMaxUs > 0;
  }

  /** The open file descriptor (tests read its flags from /proc/self/fdinfo). */
  get fd(): number {
    return this.fh.fd;
  }

  /** Open (create 0600) `file` for appending; its directory is created 0700 if missing. */
  static async open(opts: AuditOptions): Promise<AuditLog> {
    const maxBytes = opts.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES;
    const keep = opts.keep ?? DEFAULT_AUDIT_KEEP;
    await mkdir(dirname(opts.file), { recursive: true, mode: 0o700 });
    const fh = await open(opts.file, APPEND_DSYNC, 0o600);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error('it is not a regular file');
      await syncDir(dirname(opts.file)); // the new file's name survives a crash too
      return new AuditLog(opts.file, fh, st.size, maxBytes, keep, opts.logger, opts.syncWriteMaxUs ?? DEFAULT_SYNC_WRITE_MAX_US);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /**
   * Append one record. Returns nothing when the line is already on disk (a synchronous O_DSYNC
   * write returned; throws if it failed), or a promise that resolves once it is.
   */
  append(record: object): void | Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the audit log ${this.file} is closed`));
    const line = JSON.stringify(record) + '\n';
    if (this.canWriteNow(line.length)) return this.writeNow(line);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ line, resolve, reject });
      this.schedule();
    });
  }

  /** The SIGN's line (auditRecord); a rejection or throw withholds the signature. */
  recordSign(e: SignAuditEvent): void | Promise<void> {
    return this.append(auditRecord(e));
  }

  /** Nothing queued or in flight (order is kept), no rotation due, and the file is cheap to sync. */
  private canWriteNow(len: number): boolean {
    if (this.flushing || this.scheduled || this.pending.length > 0 || this.torn) return false;
    if (this.size > 0 && this.size + len > this.maxBytes) return false; // rotation is asynchronous
    if (this.syncWrites) return true;
    if (this.syncWriteMaxUs <= 0 || ++this.sinceProbe < PROBE_EVERY) return false;
    this.sinceProbe = 0;
    return true;
  }

  private writeNow(line: string): void {
    const data = Buffer.from(line, 'utf8');
    const t0 = process.hrtime.bigint();
    let off = 0;
    try {
      while (off < data.length) off += writeSync(this.fh.fd, data, off, data.length - off);
    } catch (e) {
      if (off > 0) this.torn = true;
      this.logger?.error({ file: this.file, err: (e as Error).message }, 'cannot write the audit log: signatures are refused until it can be written');
      throw e;
    }
    this.size += data.length;
    this.batches++;
    this.lines++;
    this.syncLines++;
    this.syncUs.push(Number(process.hrtime.bigint() - t0) / 1000);
    if (this.syncUs.length > SYNC_SAMPLES) this.syncUs.shift();
    const median = [...this.syncUs].sort((a, b) => a - b)[this.syncUs.length >> 1]!;
    const wasSync = this.syncWrites;
    // one write 10× over the limit is enough evidence (a disk sync); otherwise the median decides
    const max = this.syncWriteMaxUs;
    this.syncWrites = this.syncUs.at(-1)! < 10 * max && (this.syncUs.length < SYNC_SAMPLES || median < max);
    if (!this.syncWrites) this.syncUs = [];
    if (wasSync !== this.syncWrites) this.logger?.debug({ file: this.file, sync: this.syncWrites }, 'audit log write mode');
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return; // a running flush picks the new lines up when it ends
    this.scheduled = true;
    // setImmediate: every request completing in this tick joins the same batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return;
    this.flushing = true;
    const batch = this.pending;
    this.pending = [];
    try {
      let data = Buffer.from(batch.map((w) => w.line).join(''), 'utf8');
      if (this.torn) data = Buffer.concat([Buffer.from('\n'), data]);
      if (this.size > 0 && this.size + data.length > this.maxBytes) await this.rotate();
      this.torn = true;
      let off = 0;
      while (off < data.length) off += (await this.fh.write(data, off, data.length - off)).bytesWritten;
      this.torn = false;
      this.size += data.length;
      this.batches++;
      this.lines += batch.length;
      for (const w of batch) w.resolve();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      this.logger?.error({ file: this.file, err: err.message }, 'cannot write the audit log: signatures are refused until it can be written');
      for (const w of batch) w.reject(err);
    } finally {
      this.flushing = false;
      if (this.pending.length > 0) this.schedule();
    }
  }

  private async rotate(): Promise<void> {
    await this.fh.close();
    for (let i = this.keep - 1; i >= 1; i--) await renameIfExists(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    if (this.keep >= 1) await renameIfExists(this.file, `${this.file}.1`);
    // keep = 0: truncate in place, nothing kept
    this.fh = await open(this.file, this.keep >= 1 ? APPEND_DSYNC : APPEND_DSYNC | constants.O_TRUNC, 0o600);
    this.size = 0;
    await syncDir(dirname(this.file));
    this.logger?.info({ file: this.file, keep: this.keep }, 'audit log rotated');
  }

  /** Write what is pending, then close. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.pending.length > 0 || this.scheduled) await new Promise((r) => setImmediate(r));
    this.closed = true;
    await this.fh.close();
  }
}

async function renameIfExists(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

async function syncDir(dir: string): Promise<void> {
  let d: FileHandle | undefined;
  try {
    d = await open(dir, 'r');
    await d.sync();
  } catch {
    /* some filesystems refuse fsync on a directory; the data itself is still synced */
  } finally {
    await d?.close();
  }
}

const HASH_LEN = new Map<number, number>([
  [CKM_SHA_1, 20],
  [CKM_SHA224, 28],
  [CKM_SHA256, 32],
  [CKM_SHA384, 48],
  [CKM_SHA512, 64],
]);

/**
 * One audit line (README "Audit log"). `digest` is the hash that was signed, under `hash`
 * (for CKM_RSA_PKCS: the hash inside the DigestInfo); when the daemon got no hash it can name
 * (EdDSA's message, raw RSA input) the line holds `data_sha256`, the SHA-256 of the data instead.
 */
export function auditRecord(e: SignAuditEvent): Record<string, unknown> {
  const key = e.key;
  const hashAlg = Number(e.req.hash_alg);
  const n = HASH_LEN.get(hashAlg);
  const data = e.req.data;
  const digest =
    n !== undefined && data.length >= n
      ? { hash: ckmName(hashAlg), digest: data.subarray(data.length - n).toString('hex') }
      : { hash: null, data_sha256: createHash('sha256').update(data).digest('hex') };
  return {
    time: e.time.toISOString(),
    peer: e.peer ? { uid: e.peer.uid, pid: e.peer.pid, exe: e.peer.exe, ...(e.peer.sid ? { sid: e.peer.sid } : {}) } : null,
    key: { id: key ? key.id.toString('hex') : null, label: key ? key.label : null, handle: e.req.key_handle.toString('hex') },
    mechanism: ckmName(e.req.mechanism),
    ...digest,
    outcome: e.rv === 0 ? 'ok' : ckrName(e.rv),
    ...(e.rv === 0 ? {} : { error: e.message }),
    backend_us: e.backendUs,
  };
}
