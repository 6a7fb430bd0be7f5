// The native signing path (native/addon/native_signer.cpp; docs/performance.md "The native
// signing path"): the daemon in-process with the addon's NativeSigner and its audit log on tmpfs
// (/dev/shm), on the run's real SoftHSMv2 token, driven over a real unix socket. Signatures are
// verified with node:crypto; the native path's audit lines are compared field by field with the
// ones the JavaScript path writes for the same request (audit-record.ts), and every frame it
// declines must still be answered, by the JavaScript path.
import { X509Certificate, constants, createHash, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { requestRecord } from '../../src/daemon/audit-record.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { startDaemon, type RunningDaemon } from '../../src/daemon/index.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { MAGIC, encodeRequest } from '../../src/ipc/protocol.js';
import { loadAddon, type NativeSignerApi } from '../../src/native/loader.js';
import { testKey, testToken } from '../helpers/token.js';

const msg = Buffer.from('signbridge native signing path');
const sha256 = createHash('sha256').update(msg).digest();
const pubOf = (label: string) => new X509Certificate(testKey(label).certPem).publicKey;
const logLines: string[] = [];
const logger = pino({ level: 'info' }, { write: (s: string) => void logLines.push(s) });

let dir: string;
let shm: string;
const running: RunningDaemon[] = [];

async function start(name: string, extra: Record<string, string> = {}, auditDir = shm): Promise<{ d: RunningDaemon; audit: string; native: NativeSignerApi; handles: Record<string, Buffer> }> {
  const t = testToken();
  const audit = join(auditDir, name, 'audit.log');
  const cfg = resolveConfig(
    { 'pkcs11-library': t.library, 'token-label': t.tokenLabel, 'pin-file': t.pinFile, socket: join(dir, name, 's.sock'), 'audit-log': audit, 'log-level': 'info', ...extra },
    {},
  );
  const addon = loadAddon();
  if (!addon.NativeSigner) throw new Error('this addon has no NativeSigner: build it (npm run build) on Linux');
  const d = await startDaemon(cfg, { logger, env: {}, peerCredentials: addon.peerCredentials, nativeSigner: addon.NativeSigner });
  running.push(d);
  const native = d.backend.native;
  if (!native) throw new Error('the pkcs11 backend did not open its native signer');
  const c = await DaemonClient.connect({ socketPath: d.socketPath });
  const handles: Record<string, Buffer> = {};
  for (const o of (await c.inventory()).slots[0]!.objects) if (o.key_handle.length > 0) handles[attr(o, C.CKA_LABEL)!.toString()] = o.key_handle;
  c.close();
  return { d, audit, native, handles };
}

const req = (handle: Buffer, mechanism: number, data: Buffer, extra: Partial<{ hash_alg: bigint; mgf: bigint; salt_len: number }> = {}) => ({
  key_handle: handle, mechanism: BigInt(mechanism), hash_alg: extra.hash_alg ?? BigInt(C.CKM_SHA256), mgf: extra.mgf ?? 0n, salt_len: extra.salt_len ?? 0, data,
});

const linesOf = (file: string): Array<Record<string, unknown>> =>
  readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

/** The outcome lines wait up to 5 ms (audit.ts, native_signer.cpp): wait until every request has one. */
async function settled(file: string): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 200; i++) {
    const lines = linesOf(file);
    const open = lines.filter((l) => l.event === 'request').filter((r) => !lines.some((o) => o.event === 'outcome' && o.id === r.id));
    if (open.length === 0) return lines;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`requests without an outcome line in ${file}`);
}

/**
 * `count` P-256 requests of `sha256`, every record equal to the one the JavaScript path writes for
 * the same request (with this record's id and time), each with one `ok` outcome line, and the ids
 * of both paths unique and in order.
 */
function expectJavaScriptPathLines(d: RunningDaemon, lines: Array<Record<string, unknown>>, count: number): void {
  const requests = lines.filter((l) => l.event === 'request');
  expect(requests).toHaveLength(count);
  const key = d.backend.tokens()[0]!.keys.find((k) => k.label === 'ec-p256')!;
  for (const r of requests) {
    const peer = { pid: process.pid, uid: process.getuid!(), gid: 0, exe: (r.peer as { exe: string }).exe };
    expect(r).toEqual(requestRecord({ time: new Date(r.time as string), conn: 0, peer, req: req(key.handle, C.CKM_ECDSA, sha256), key }, r.id as string));
    expect(new Date(r.time as string).toISOString()).toBe(r.time);
    const outcomes = lines.filter((l) => l.event === 'outcome' && l.id === r.id);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ outcome: 'ok', backend_us: expect.any(Number) });
  }
  const seqs = requests.map((r) => Number(String(r.id).split('-')[1]));
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(new Set(seqs).size).toBe(seqs.length);
}

beforeAll(() => {
  process.env.SOFTHSM2_CONF = testToken().softhsmConf;
  dir = mkdtempSync(join(tmpdir(), 'sb-native-'));
  if (!existsSync('/dev/shm')) throw new Error('these tests need /dev/shm (a tmpfs): the native path writes its audit records only on a memory file system');
  shm = mkdtempSync('/dev/shm/sb-native-');
});
afterAll(async () => {
  for (const d of running) await d.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

describe('the native signing path (audit log on tmpfs)', () => {
  it('P-256 signatures are made natively, verify, and have the same audit lines the JavaScript path writes', async () => {
    const { d, audit, native, handles } = await start('basic');
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    // the key's first signatures measure it (thread pool, then the loop); then it is handed over
    for (let i = 0; i < 3; i++) await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    const before = native.stats().signed;
    for (let i = 0; i < 20; i++) {
      const sig = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
      expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
    c.close();
    expect(native.stats().signed - before).toBe(20);

    expectJavaScriptPathLines(d, await settled(audit), 23);
  });

  it('what it declines (PSS parameters, another hash, GET_INVENTORY) the JavaScript path answers, in order', async () => {
    const { d, audit, native, handles } = await start('declined');
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    for (let i = 0; i < 3; i++) await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    const before = native.stats();
    const pss = await c.sign(req(handles['rsa-3072']!, C.CKM_RSA_PKCS_PSS, sha256, { mgf: BigInt(C.CKG_MGF1_SHA256), salt_len: 32 }));
    expect(verify('sha256', msg, { key: pubOf('rsa-3072'), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss)).toBe(true);
    // an input the module names no hash for: the record then holds data_sha256, which only JS writes
    const odd = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256, { hash_alg: 0n }));
    expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, odd)).toBe(true);
    expect((await c.inventory()).slots).toHaveLength(1);
    const ec = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, ec)).toBe(true);
    c.close();
    const after = native.stats();
    const declined = (x: typeof after): number => Object.values(x.declined).reduce((a, b) => a + b, 0);
    expect(declined(after) - declined(before)).toBe(3); // PSS, data_sha256, GET_INVENTORY
    expect(after.declined.request! - before.declined.request!).toBeGreaterThanOrEqual(1);
    expect(after.signed - before.signed).toBe(1);
    const lines = await settled(audit);
    expect(lines.find((l) => l.event === 'request' && l.hash === null)).toMatchObject({ data_sha256: createHash('sha256').update(sha256).digest('hex') });
    expect(lines.filter((l) => l.event === 'outcome').every((l) => l.outcome === 'ok')).toBe(true);
  });

  it('a slow key (RSA-3072) signs natively while one client has the daemon to itself, like the scheduler’s idle loop', async () => {
    const { d, audit, native, handles } = await start('slow');
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), sha256]);
    // the first signature goes to the thread pool (cost unknown), the next is measured on the idle loop
    for (let i = 0; i < 3; i++) await c.sign(req(handles['rsa-3072']!, C.CKM_RSA_PKCS, digestInfo));
    const before = native.stats().signed;
    for (let i = 0; i < 5; i++) {
      const sig = await c.sign(req(handles['rsa-3072']!, C.CKM_RSA_PKCS, digestInfo));
      expect(verify('sha256', msg, pubOf('rsa-3072'), sig)).toBe(true);
    }
    c.close();
    expect(native.stats().signed - before).toBe(5);
    const lines = await settled(audit);
    expect(lines.filter((l) => l.event === 'request' && l.mechanism === 'CKM_RSA_PKCS' && l.digest === sha256.toString('hex'))).toHaveLength(8);
  });

  it('audit log on a disk: the record is synced on the addon’s writer thread while the token signs; the same lines', async () => {
    const { d, audit, native, handles } = await start('disk', {}, dir);
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    for (let i = 0; i < 3; i++) await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    const before = native.stats().signed;
    for (let i = 0; i < 10; i++) {
      const sig = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
      expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
    c.close();
    // one client alone: the daemon is idle between its requests, so the native path takes them —
    // all but those that arrive while audit.ts's own write (outcome lines, every 5 ms) is in flight
    expect(native.stats().signed - before).toBeGreaterThanOrEqual(5);
    expectJavaScriptPathLines(d, await settled(audit), 13);
  });

  it('a malformed frame closes only that connection (one log line); a client gone mid-frame is logged; the daemon signs on', async () => {
    const { d, handles } = await start('hostile');
    const send = (bytes: Buffer, end: boolean): Promise<Buffer> =>
      new Promise((resolve) => {
        const s = connect(d.socketPath);
        const got: Buffer[] = [];
        s.on('data', (b) => got.push(b));
        s.on('close', () => resolve(Buffer.concat(got)));
        s.on('error', () => undefined);
        s.write(bytes, () => (end ? s.end() : undefined));
      });
    const hello = encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'native-test' });
    const huge = Buffer.alloc(4);
    huge.writeUInt32LE(0x7fffffff, 0);
    const lines = logLines.length;
    await send(Buffer.concat([hello, huge]), false); // the daemon closes it
    await send(Buffer.concat([hello, encodeRequest('GET_INVENTORY', 2, {}).subarray(0, 7)]), true);
    const said = logLines.slice(lines).join('');
    expect(said).toContain('malformed frame; closing this connection');
    expect(said).toContain('connection closed mid-frame');
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    const sig = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    c.close();
  });

  it('rotation: the JavaScript path rotates, the native path writes to the new file; no line is lost or torn', async () => {
    const { d, audit, native, handles } = await start('rotation', { 'audit-max-bytes': '4000', 'audit-keep': '3' });
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    const n = 40;
    for (let i = 0; i < n; i++) await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    c.close();
    await settled(audit);
    await d.close();
    expect(native.stats().declined.rotation).toBeGreaterThan(0);
    const files = readdirSync(join(shm, 'rotation')).filter((f) => f.startsWith('audit.log'));
    expect(files.length).toBeGreaterThan(1);
    const all = files.flatMap((f) => linesOf(join(shm, 'rotation', f)));
    const requests = all.filter((l) => l.event === 'request');
    const seqs = requests.map((r) => Number(String(r.id).split('-')[1])).sort((a, b) => a - b);
    // whatever rotation dropped (audit-keep 3) is the oldest: the rest are consecutive up to n
    expect(seqs[seqs.length - 1]).toBe(n);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    for (const f of files) expect(readFileSync(join(shm, 'rotation', f), 'utf8').length).toBeLessThanOrEqual(4000);
  });

  it('with a client secret, SIGN before LOGIN is refused (CKR_USER_NOT_LOGGED_IN), then signed natively once logged in', async () => {
    const secretFile = join(dir, 'client-secret.txt');
    (await import('node:fs')).writeFileSync(secretFile, 'native-path-secret\n', { mode: 0o600 });
    const { d, native, handles } = await start('secret', { 'client-secret-file': secretFile });
    const c = await DaemonClient.connect({ socketPath: d.socketPath });
    await expect(c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256))).rejects.toMatchObject({ ckr: C.CKR_USER_NOT_LOGGED_IN });
    await c.request('LOGIN', { slot_id: 0, user_type: 1n /* CKU_USER */, pin: Buffer.from('native-path-secret') });
    for (let i = 0; i < 3; i++) await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    const before = native.stats().signed;
    const sig = await c.sign(req(handles['ec-p256']!, C.CKM_ECDSA, sha256));
    expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    expect(native.stats().signed - before).toBe(1);
    c.close();
  });
});
