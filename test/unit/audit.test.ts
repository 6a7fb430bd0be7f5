// The audit log on its own (src/daemon/audit.ts): a line is in the file when append() resolves,
// concurrent lines share writes (group commit), rotation by size keeps `keep` files, every line
// parses; and the dispatcher: the backend signs while the request record is written, yet no
// signature leaves before the record is on disk, and one whose record failed is withheld.
// End to end through the module with SIGKILL: test/e2e/audit.test.ts.
import { createHash, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import * as C from '../../src/core/pkcs11.js';
import { Pkcs11Backend } from '../../src/backends/pkcs11/index.js';
import { AuditLog, type AuditSink, type SignRequestEvent } from '../../src/daemon/audit.js';
import { outcomeRecord, requestRecord } from '../../src/daemon/audit-record.js';
import { Dispatcher } from '../../src/daemon/dispatcher.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { testToken } from '../helpers/token.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const silent = pino({ level: 'silent' });
let n = 0;
const fresh = (): string => join(dir, `a${++n}`, 'audit.log');
const linesOf = (f: string): Array<Record<string, unknown>> =>
  readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AuditLog', () => {
  it('creates the file 0600 (directory 0700) and a line is on disk when append() resolves', async () => {
    const file = fresh();
    const a = await AuditLog.open({ file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(file, '..')).mode & 0o777).toBe(0o700);
    for (let i = 0; i < 3; i++) {
      await a.append({ i });
      // read with an independent reader right when the promise resolves
      expect(linesOf(file).map((l) => l.i)).toEqual(Array.from({ length: i + 1 }, (_, k) => k));
    }
    await a.close();
  });

  it('writes are synchronous to the disk: the file is open O_DSYNC|O_APPEND (what makes "on disk before the reply" true)', async () => {
    const { constants } = await import('node:fs');
    const a = await AuditLog.open({ file: fresh() });
    const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${a.fd}`, 'utf8'))![1]!, 8);
    expect(flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
    expect(flags & constants.O_APPEND).toBe(constants.O_APPEND);
    await a.close();
  });

  it('a line appended while the file is being rotated is in the next batch, and its append() resolves', async () => {
    const file = fresh();
    const a = await AuditLog.open({ file, writeOn: 'pool', maxBytes: 300, keep: 2 });
    await a.append({ pad: 'x'.repeat(200) });
    // the next append crosses 300 bytes: flush() rotates (asynchronously) before writing it; the
    // third arrives during that rotation and must not be left waiting
    const second = a.append({ pad: 'y'.repeat(200) });
    await new Promise((r) => setImmediate(r));
    const third = a.append({ third: true });
    const settled = await Promise.race([Promise.all([second, third]).then(() => 'resolved'), new Promise((r) => setTimeout(() => r('stuck'), 3000))]);
    expect(settled).toBe('resolved');
    expect(linesOf(file).some((l) => l.third === true)).toBe(true);
    await a.close();
  });

  it('group commit: 200 lines appended at once take a handful of write+fdatasync batches, in order', async () => {
    const file = fresh();
    const a = await AuditLog.open({ file, writeOn: 'pool' }); // the thread-pool path, as on a disk
    const seen: number[] = [];
    await Promise.all(Array.from({ length: 200 }, (_, i) => Promise.resolve(a.append({ i })).then(() => seen.push(i))));
    expect(a.lines).toBe(200);
    expect(a.batches).toBeLessThanOrEqual(3);
    expect(linesOf(file).map((l) => l.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // appends while a batch is in flight go into the next one, never lost
    const more = Array.from({ length: 50 }, (_, i) => a.append({ i: 200 + i }));
    await new Promise((r) => setImmediate(r));
    more.push(a.append({ i: 250 }));
    await Promise.all(more);
    expect(linesOf(file)).toHaveLength(251);
    await a.close();
    console.log(`[audit] group commit: ${a.lines} lines in ${a.batches} batches`);
  });

  it('where the O_DSYNC write is cheap (tmpfs) lines are written on the event loop: append() returns with the line on disk', async () => {
    const dir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/sb-audit-') : mkdtempSync(join(tmpdir(), 'sb-audit-'));
    try {
      const file = join(dir, 'audit.log');
      const a = await AuditLog.open({ file });
      const results = Array.from({ length: 50 }, (_, i) => a.append({ i }));
      // no promise: each line was written (O_DSYNC) before append() returned
      expect(results.filter((r) => r !== undefined)).toHaveLength(0);
      expect(linesOf(file).map((l) => l.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(a.syncWrites).toBe(50);
      expect(a.onLoop).toBe(true);
      await a.close();
      // the same file system with the thread pool forced: a promise, settled once on disk
      const pooled = await AuditLog.open({ file: join(dir, 'pool.log'), writeOn: 'pool' });
      const next = pooled.append({ first: true });
      expect(next).toBeInstanceOf(Promise);
      await next;
      expect(linesOf(join(dir, 'pool.log'))).toHaveLength(1);
      await pooled.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rotates by size: file, file.1 … file.<keep>, never more; each line parses; newest lines in the current file', async () => {
    const file = fresh();
    const a = await AuditLog.open({ file, maxBytes: 400, keep: 2 });
    for (let i = 0; i < 60; i++) await a.append({ i, pad: 'x'.repeat(40) });
    await a.close();
    const names = readdirSync(join(file, '..')).sort();
    expect(names).toEqual(['audit.log', 'audit.log.1', 'audit.log.2']);
    for (const f of names) expect(statSync(join(file, '..', f)).size).toBeLessThanOrEqual(400);
    const all = [...linesOf(`${file}.2`), ...linesOf(`${file}.1`), ...linesOf(file)].map((l) => l.i as number);
    // consecutive and ending with the last one written: rotation dropped only the oldest
    expect(all.at(-1)).toBe(59);
    expect(all).toEqual(Array.from({ length: all.length }, (_, k) => 60 - all.length + k));
    expect(all.length).toBeGreaterThan(10);
  });

  it('refuses to open a path it cannot create, with the errno', async () => {
    const notADir = join(dir, 'plain-file');
    (await import('node:fs')).writeFileSync(notADir, '');
    await expect(AuditLog.open({ file: join(notADir, 'sub', 'audit.log') })).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});

describe('the request record and the outcome line', () => {
  const base = {
    time: new Date('2026-01-02T03:04:05.678Z'),
    conn: 1,
    peer: { pid: 42, uid: 1000, gid: 1000, exe: '/usr/bin/osslsigncode' },
  };
  const key = { id: Buffer.from([1]), label: 'rsa-3072', handle: Buffer.from('aa', 'hex') } as never;
  const sha = (b: Buffer | string, h = 'sha256'): Buffer => createHash(h).update(b).digest();

  it('CKM_RSA_PKCS: the hash inside the DigestInfo; the outcome line carries the same id', () => {
    const d = sha('hello');
    const e: SignRequestEvent = {
      ...base,
      key,
      req: { key_handle: Buffer.from('aa', 'hex'), mechanism: BigInt(C.CKM_RSA_PKCS), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), d]) },
    };
    expect(requestRecord(e, 'r-1')).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      id: 'r-1',
      event: 'request',
      peer: { uid: 1000, pid: 42, exe: '/usr/bin/osslsigncode' },
      key: { id: '01', label: 'rsa-3072', handle: 'aa' },
      mechanism: 'CKM_RSA_PKCS',
      hash: 'CKM_SHA256',
      digest: d.toString('hex'),
    });
    expect(outcomeRecord('r-1', { rv: 0, message: '', backendUs: 1234 }, base.time)).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      id: 'r-1',
      event: 'outcome',
      outcome: 'ok',
      backend_us: 1234,
    });
  });

  it('EdDSA (no hash): data_sha256 of the message; a failure names the CKR and keeps the message; labels are escaped', () => {
    const msg = Buffer.from('a message for Ed25519');
    const e: SignRequestEvent = {
      ...base,
      peer: undefined,
      key: undefined,
      req: { key_handle: Buffer.from('bb', 'hex'), mechanism: BigInt(C.CKM_EDDSA), hash_alg: 0n, mgf: 0n, salt_len: 0, data: msg },
    };
    const r = requestRecord(e, 'r-2');
    expect(r).toMatchObject({ peer: null, key: { id: null, label: null, handle: 'bb' }, mechanism: 'CKM_EDDSA', hash: null, data_sha256: sha(msg).toString('hex') });
    expect(r).not.toHaveProperty('digest');
    expect(outcomeRecord('r-2', { rv: C.CKR_KEY_HANDLE_INVALID, message: 'no key with handle "bb"\n', backendUs: 3 })).toMatchObject({
      id: 'r-2',
      outcome: 'CKR_KEY_HANDLE_INVALID',
      error: 'no key with handle "bb"\n',
    });
    const odd = { id: Buffer.from([2]), label: 'a "quoted"\\ label\n', handle: Buffer.from('cc', 'hex') } as never;
    expect(requestRecord({ ...e, key: odd, req: { ...e.req, key_handle: Buffer.from('cc', 'hex') } }, 'r-3')).toMatchObject({ key: { id: '02', label: 'a "quoted"\\ label\n', handle: 'cc' } });
  });
});

describe('the dispatcher and its audit sink', () => {
  // a real token key (the run's SoftHSMv2 token) and a real server and client; only the sink varies
  let backend: Pkcs11Backend;
  let n = 0;
  const setup = async (audit: AuditSink) => {
    const t = testToken();
    process.env.SOFTHSM2_CONF = t.softhsmConf;
    backend ??= new Pkcs11Backend({ library: t.library, tokenLabel: t.tokenLabel, pin: readFileSync(t.pinFile, 'utf8').trim() });
    if (backend.tokens().length === 0) await backend.start();
    const key = backend.tokens()[0]!.keys.find((k) => k.label === 'ec-p256')!;
    const sock = join(dir, `srv${++n}`, 's.sock');
    const server = new DaemonServer({ socketPath: sock, logger: silent, accept: new Dispatcher({ backend, serverName: 'test', audit }).accept });
    await server.listen();
    const c = await DaemonClient.connect({ socketPath: sock });
    const digest = createHash('sha256').update('audited message').digest();
    const req = { key_handle: key.handle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: digest };
    const ok = (sig: Buffer): boolean => verify('sha256', Buffer.from('audited message'), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    const close = async (): Promise<void> => {
      c.close();
      await server.close();
      expect(existsSync(sock)).toBe(false);
    };
    return { key, c, req, ok, close };
  };
  const signatures = (): number => backend.counters.sync + backend.counters.async;
  afterAll(async () => {
    await backend?.close();
  });

  it('a signature whose request record cannot be written is withheld (CKR_FUNCTION_FAILED); one that can is returned after it, then its outcome is recorded', async () => {
    let fail = true;
    const order: string[] = [];
    const seen: SignRequestEvent[] = [];
    const { key, c, req, ok, close } = await setup({
      recordRequest: (e) => {
        seen.push(e);
        const durable = new Promise<void>((resolve, reject) => setTimeout(() => (order.push('durable'), fail ? reject(new Error('ENOSPC: no space left on device')) : resolve()), 20));
        return { durable, outcome: (o) => order.push(`outcome ${o.rv}`) };
      },
    });
    try {
      await expect(c.sign(req)).rejects.toMatchObject({ ckr: C.CKR_FUNCTION_FAILED, message: expect.stringContaining('audit log') });
      fail = false;
      const sig = await c.sign(req).then((s) => (order.push('replied'), s));
      expect(ok(sig)).toBe(true);
      // record durable → (reply written, and its outcome recorded in the same turn) → the client reads it
      while (order.length < 5) await new Promise((r) => setImmediate(r));
      expect(order).toEqual(['durable', `outcome ${C.CKR_FUNCTION_FAILED}`, 'durable', 'outcome 0', 'replied']);
      // the record names the very key record that signed: the handle was resolved once
      expect(seen.map((e) => e.key)).toEqual([key, key]);
    } finally {
      await close();
    }
  });

  it('the backend signs while the record is being written, and the signature waits for the record (a stalled sink never lets it out)', async () => {
    const gates: Array<{ open: () => void; fail: (e: Error) => void }> = [];
    const { c, req, ok, close } = await setup({
      recordRequest: () => ({
        durable: new Promise<void>((open, fail) => gates.push({ open, fail })),
        outcome: () => undefined,
      }),
    });
    try {
      for (const how of ['open', 'fail'] as const) {
        const before = signatures();
        let answered = false;
        const reply = c.sign(req).then(
          (sig) => ((answered = true), { sig }),
          (e: unknown) => ((answered = true), { e }),
        );
        // the token signs although the record is not durable yet (overlap) …
        for (let i = 0; i < 10_000 && signatures() === before; i++) await new Promise((r) => setTimeout(r, 1));
        expect(signatures()).toBe(before + 1);
        // … and the signature stays in the daemon, however long the record takes
        await new Promise((r) => setTimeout(r, 100));
        expect(answered).toBe(false);
        const g = gates.shift()!;
        if (how === 'open') {
          g.open();
          const r = await reply;
          expect(ok((r as { sig: Buffer }).sig)).toBe(true);
        } else {
          g.fail(new Error('EIO: i/o error'));
          expect((await reply) as { e: unknown }).toMatchObject({ e: { ckr: C.CKR_FUNCTION_FAILED, message: expect.stringContaining('audit log') } });
        }
      }
    } finally {
      await close();
    }
  });

  it('a refused request whose record is already on disk (the tmpfs path) gets its error reply, and the next signature works', async () => {
    const outcomes: number[] = [];
    const { c, req, ok, close } = await setup({ recordRequest: () => ({ durable: undefined, outcome: (o) => outcomes.push(o.rv) }) });
    try {
      const bogus = { ...req, key_handle: Buffer.alloc(16, 0xee) };
      await expect(c.sign(bogus)).rejects.toMatchObject({ ckr: C.CKR_KEY_HANDLE_INVALID });
      expect(ok(await c.sign(req))).toBe(true);
      expect(outcomes).toEqual([C.CKR_KEY_HANDLE_INVALID, 0]);
    } finally {
      await close();
    }
  });

  it('a real audit log on the thread pool: the request record is in the file when the signature arrives, the outcome line follows', async () => {
    const file = fresh();
    const audit = await AuditLog.open({ file, writeOn: 'pool' });
    const { c, req, ok, close } = await setup(audit);
    try {
      for (let i = 0; i < 3; i++) {
        const sig = await c.sign(req);
        const lines = linesOf(file); // read the instant the reply arrived
        const last = lines.filter((l) => l.event === 'request').at(-1)!;
        expect(last).toMatchObject({ event: 'request', key: { label: 'ec-p256' }, digest: req.data.toString('hex') });
        expect(ok(sig)).toBe(true);
        const outcome = async (): Promise<Record<string, unknown> | undefined> => linesOf(file).find((l) => l.event === 'outcome' && l.id === last.id);
        for (let k = 0; k < 1000 && !(await outcome()); k++) await new Promise((r) => setTimeout(r, 2));
        expect(await outcome()).toMatchObject({ outcome: 'ok', backend_us: expect.any(Number) });
      }
    } finally {
      await close();
      await audit.close();
    }
  });
});
