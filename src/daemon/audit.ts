// The audit log (README "Audit log"): for every SIGN a request record, on disk before the
// signature leaves the daemon — so a signature a tool holds is always on record, even if the
// daemon is SIGKILLed right after — and an outcome line after the reply.
//
// The request record is written WHILE the backend signs (dispatcher.ts waits for both), and
// concurrent requests share one synchronous write (group commit). Outcome lines need no sync of
// their own: they ride along with the next request record's write (or a write a few ms later).
// Where that write is cheap — tmpfs, e.g. the default place beside the socket in
// $XDG_RUNTIME_DIR: a few µs — it is made synchronously on the event loop (a thread-pool round
// trip would cost more than the write); on any other file system through the thread pool, started
// at once so the disk's sync overlaps the signing (docs/performance.md "The audit line"). The file
// system type decides, not timings: one preempted write on a busy machine must not move a tmpfs
// log off the loop.
// Rotation by size: before a batch would push the file past maxBytes, audit.log → audit.log.1 →
// … → audit.log.<keep> (the oldest is dropped), and a fresh audit.log is started.
import { randomBytes } from 'node:crypto';
import { constants, statfsSync, writeSync } from 'node:fs';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { NativeSignerApi } from '../native/loader.js';
import { outcomeLine, requestLine, type SignOutcome, type SignRequestEvent } from './audit-record.js';

export type { SignOutcome, SignRequestEvent } from './audit-record.js';

/** A request on record: `durable` (absent when already on disk) settles once it is. */
export interface AuditTicket {
  readonly durable: Promise<void> | undefined;
  /** Record how the request ended (written after the reply; never throws). */
  outcome(o: SignOutcome): void;
}

/** Where the dispatcher records SIGNs. recordRequest throws when the record certainly failed. */
export interface AuditSink {
  recordRequest(e: SignRequestEvent): AuditTicket;
}

export const DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_AUDIT_KEEP = 5;
/** An outcome line with no request record to ride along with is written this much later. */
const OUTCOME_DELAY_MS = 5;

// O_DSYNC: write() returns once the data (and the size that finds it) is on disk — the same
// guarantee as write + fdatasync, in one system call (one thread-pool round trip).
const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;
// statfs(2) f_type of the memory file systems, where a synchronous write costs a few µs
const MEMORY_FS = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

export interface AuditOptions {
  file: string;
  /** rotate before the file would grow past this (default 10 MiB) */
  maxBytes?: number;
  /** rotated files kept besides the current one: file.1 … file.<keep> (default 5) */
  keep?: number;
  /** where request records are written: 'auto' (the default) = 'loop' on tmpfs/ramfs, else 'pool' */
  writeOn?: 'auto' | 'loop' | 'pool';
  logger?: Logger;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** What the audit log gives the native signing path and takes from it (src/native/loader.ts NativeSignerApi). */
export type NativeAuditPeer = Pick<NativeSignerApi, 'audit' | 'auditFd' | 'takeOutcomes'>;

export class AuditLog implements AuditSink {
  /**
   * Shared with the native signing path, which writes request records to the same descriptor:
   * [0] the last record's sequence number, [1] the file's size, [2] 1 when a write failed part-way,
   * [3] 1 while a write of ours is in flight (the native side then leaves the file to us, so the
   * size it checks against --audit-max-bytes is never stale).
   */
  private readonly state = new Float64Array(4);
  private native: NativeAuditPeer | undefined;
  /** lines waiting for the next write; `waiters` are the synced records among them */
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  /** writes pending outcome lines that no request record took along */
  private timer: NodeJS.Timeout | undefined;
  private armed = false;
  private closed = false;

  /** prefix of this run's record ids (a restarted daemon starts its own) */
  private readonly run = randomBytes(4).toString('hex');
  /** writes made (each one O_DSYNC write), for the bench/tests */
  batches = 0;
  lines = 0;
  /** writes made synchronously on the event loop */
  syncWrites = 0;

  private constructor(
    readonly file: string,
    private fh: FileHandle,
    size: number,
    private readonly maxBytes: number,
    private readonly keep: number,
    private readonly logger: Logger | undefined,
    /** true: request records are written on the event loop */
    readonly onLoop: boolean,
  ) {
    this.size = size;
  }

  private get flushing(): boolean {
    return this.state[3] !== 0;
  }
  private set flushing(f: boolean) {
    this.state[3] = f ? 1 : 0;
  }

  private get size(): number {
    return this.state[1]!;
  }
  private set size(n: number) {
    this.state[1] = n;
  }
  /** a write failed part-way: start the next batch on a new line so later lines still parse */
  private get torn(): boolean {
    return this.state[2] !== 0;
  }
  private set torn(t: boolean) {
    this.state[2] = t ? 1 : 0;
  }

  /**
   * Let the native signing path write request records here too. Its records take sequence
   * numbers from the same counter; its outcome lines go out with its next record, on its own
   * timer, or with this log's next write. On a disk it syncs each record on a thread of its own
   * while the loop signs, and only while the daemon is idle (docs/performance.md).
   */
  attachNative(native: NativeAuditPeer, fragments: { mechJson: Record<number, string>; hashes: Array<[number, number, string]> }): boolean {
    if (this.closed) return false;
    native.audit(this.fh.fd, this.run, this.state, this.maxBytes, fragments.mechJson, fragments.hashes, !this.onLoop, () => this.writePending());
    this.native = native;
    return true;
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
      const writeOn = opts.writeOn ?? 'auto';
      const onLoop = writeOn === 'loop' || (writeOn === 'auto' && onMemoryFs(opts.file));
      opts.logger?.debug({ file: opts.file, onLoop }, 'audit log opened');
      return new AuditLog(opts.file, fh, st.size, maxBytes, keep, opts.logger, onLoop);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /**
   * Append one line that must be durable. Returns nothing when it is already on disk (a
   * synchronous O_DSYNC write returned; throws if it failed), or a promise that resolves once it is.
   */
  append(record: object): void | Promise<void> {
    return this.appendLine(JSON.stringify(record));
  }

  /** The request record now (on disk before `durable` settles); its outcome line later. */
  recordRequest(e: SignRequestEvent): AuditTicket {
    const id = `${this.run}-${++this.state[0]!}`;
    const durable = this.appendLine(requestLine(e, id));
    return { durable: durable ?? undefined, outcome: (o) => this.appendLater(outcomeLine(id, o)) };
  }

  private appendLine(line: string): void | Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the audit log ${this.file} is closed`));
    this.pending.push(line + '\n');
    if (this.onLoop && !this.flushing && !this.torn && !this.rotationDue()) return this.writeNow();
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    // Started at once (not on a later tick): the thread pool writes while the loop signs.
    if (!this.flushing) void this.flush();
    return p;
  }

  /** A line that needs no sync of its own: it goes out with the next write. */
  private appendLater(line: string): void {
    if (this.closed) return;
    this.pending.push(line + '\n');
    this.armOutcomeTimer();
  }

  private armOutcomeTimer(): void {
    if (this.armed || this.flushing) return;
    this.armed = true;
    // one timer, re-armed (refresh) rather than made per signature
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        if (!this.armed) return; // a write took the lines along meanwhile
        this.armed = false;
        this.writePending();
      }, OUTCOME_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Lines that need no sync of their own (outcomes, ours and the native path's), written now. */
  private writePending(): void {
    if (this.closed) return;
    this.collectNative();
    if (this.flushing || this.pending.length === 0) return;
    if (this.onLoop && !this.torn && !this.rotationDue()) {
      try {
        this.writeNow(); // a memory file system: cheaper than a thread-pool round trip
      } catch {
        /* logged by writeNow; the lines of a failed write are lost, as in flush() */
      }
    } else void this.flush();
  }

  /** The native path's outcome lines go out with this log's next write, ahead of its own lines. */
  private collectNative(): void {
    const lines = this.native?.takeOutcomes();
    if (lines) this.pending.unshift(lines);
  }

  private rotationDue(): boolean {
    this.collectNative(); // the native path's waiting outcome lines go out in the same write
    let n = 0;
    for (const l of this.pending) n += l.length;
    return this.size > 0 && this.size + n > this.maxBytes; // rotation is asynchronous
  }

  /** Every pending line as one string (they all go out with this write), and how many lines. */
  private takeText(): { text: string; n: number } {
    this.collectNative();
    const n = this.pending.length;
    const text = n === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.armed = false;
    return { text: this.torn ? '\n' + text : text, n };
  }

  private takeBatch(): Buffer {
    const { text } = this.takeText();
    return Buffer.from(text, 'utf8');
  }

  /** On the event loop: the string goes to write(2) as it is (no Buffer of our own on the hot path). */
  private writeNow(): void {
    const { text, n } = this.takeText();
    const total = Buffer.byteLength(text);
    let done = 0;
    try {
      done = writeSync(this.fh.fd, text);
      if (done < total) {
        // a short write (a full disk, a signal): the rest from a Buffer, at the byte offset
        const data = Buffer.from(text, 'utf8');
        while (done < total) done += writeSync(this.fh.fd, data, done, total - done);
      }
    } catch (e) {
      if (done > 0) this.torn = true;
      this.logger?.error({ file: this.file, err: (e as Error).message }, 'cannot write the audit log: signatures are refused until it can be written');
      throw e;
    }
    this.torn = false;
    this.size += total;
    this.batches++;
    this.syncWrites++;
    this.lines += n;
    this.native?.auditFd(this.fh.fd); // the native path stops at a failed write; the log works again
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        let waiters: Waiter[] = [];
        try {
          if (this.rotationDue()) await this.rotate();
          // taken after the rotation: a record appended meanwhile goes out in this batch, so its
          // waiter must be resolved with it
          waiters = this.waiters;
          this.waiters = [];
          const data = this.takeBatch();
          let off = 0;
          try {
            while (off < data.length) off += (await this.fh.write(data, off, data.length - off)).bytesWritten;
          } catch (e) {
            this.torn = true; // how much of the failed write reached the file is unknown
            throw e;
          }
          this.torn = false;
          this.size += data.length;
          this.batches++;
          this.lines += countLines(data);
          for (const w of waiters) w.resolve();
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          this.logger?.error({ file: this.file, err: err.message }, 'cannot write the audit log: signatures are refused until it can be written');
          // a failed rotation or write: every record waiting now is refused (and its line
          // dropped), rather than tried again in a loop
          if (this.pending.length > 0) this.takeText();
          for (const w of [...waiters, ...this.waiters]) w.reject(err);
          this.waiters = [];
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async rotate(): Promise<void> {
    this.native?.auditFd(-1); // nothing native is written to a descriptor being closed (and maybe reused)
    await this.fh.close();
    for (let i = this.keep - 1; i >= 1; i--) await renameIfExists(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    if (this.keep >= 1) await renameIfExists(this.file, `${this.file}.1`);
    // keep = 0: truncate in place, nothing kept
    this.fh = await open(this.file, this.keep >= 1 ? APPEND_DSYNC : APPEND_DSYNC | constants.O_TRUNC, 0o600);
    this.size = 0;
    await syncDir(dirname(this.file));
    this.native?.auditFd(this.fh.fd);
    this.logger?.info({ file: this.file, keep: this.keep }, 'audit log rotated');
  }

  /** Write what is pending (outcome lines too), then close. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing) await new Promise((r) => setImmediate(r));
    this.native?.auditFd(-1);
    this.collectNative();
    if (this.pending.length > 0) await this.flush();
    this.closed = true;
    this.native = undefined;
    if (this.timer) clearTimeout(this.timer);
    await this.fh.close();
  }
}

/** tmpfs/ramfs? Unknown (statfs refused) counts as a disk: the pool path is correct anywhere. */
function onMemoryFs(file: string): boolean {
  try {
    return MEMORY_FS.has(statfsSync(file).type);
  } catch {
    return false;
  }
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  return n;
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
