// The daemon in-process on the run's real SoftHSMv2 token (test/setup/global-setup.ts), driven over
// a real unix socket by the TS client and by raw frames. Signatures are verified with node:crypto
// against the certificates the token set-up wrote (never against our own output).
import { X509Certificate, constants, createHash, verify } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, existsSync, chmodSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pkcs11Backend } from '../../src/backends/pkcs11/index.js';
import { attr, type P11Slot } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { startDaemon, type RunningDaemon } from '../../src/daemon/index.js';
import { DaemonClient, waitForDaemon } from '../../src/ipc/client.js';
import { FrameDecoder } from '../../src/ipc/framing.js';
import { MAGIC, decodeMessage, encodeRequest, type Message } from '../../src/ipc/protocol.js';
import { testKey, testToken } from '../helpers/token.js';

const DIGESTINFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const msg = Buffer.from('signbridge daemon test message');
const sha256 = createHash('sha256').update(msg).digest();

let dir: string;
let daemon: RunningDaemon;
let slots: P11Slot[];
const handles: Record<string, Buffer> = {};
const logLines: string[] = [];

function config(socket: string, extra: Record<string, string> = {}) {
  const t = testToken();
  return resolveConfig({ 'pkcs11-library': t.library, 'token-label': t.tokenLabel, 'pin-file': t.pinFile, socket, 'log-level': 'debug', ...extra }, {});
}
const logger = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(s) });

beforeAll(async () => {
  process.env.SOFTHSM2_CONF = testToken().softhsmConf;
  dir = mkdtempSync(join(tmpdir(), 'sbt-'));
  daemon = await startDaemon(config(join(dir, 'd', 's.sock')), { logger, env: {} });
  const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
  slots = (await c.inventory()).slots;
  c.close();
  for (const o of slots[0]!.objects) {
    if (o.key_handle.length > 0) handles[attr(o, C.CKA_LABEL)!.toString()] = o.key_handle;
  }
});
afterAll(async () => {
  await daemon?.close();
  rmSync(dir, { recursive: true, force: true });
});

const pubOf = (label: string) => new X509Certificate(testKey(label).certPem).publicKey;
const signReq = (label: string, mechanism: number, data: Buffer, extra: Partial<{ hash_alg: bigint; mgf: bigint; salt_len: number }> = {}) => ({
  key_handle: handles[label]!,
  mechanism: BigInt(mechanism),
  hash_alg: extra.hash_alg ?? BigInt(C.CKM_SHA256),
  mgf: extra.mgf ?? 0n,
  salt_len: extra.salt_len ?? 0,
  data,
});

describe('inventory', () => {
  it('serves the token with its keys, certificates and stable handles', async () => {
    const t = testToken();
    expect(slots).toHaveLength(1); // no Ed25519 key on the run token → no EdDSA slot
    expect(slots[0]!.token_label).toBe(t.tokenLabel);
    expect(Object.keys(handles).sort()).toEqual(['ec-p256', 'rsa-3072']);
    for (const k of t.keys) {
      const cert = slots[0]!.objects.find((o) => Number(attr(o, C.CKA_CLASS)!.readBigUInt64LE(0)) === C.CKO_CERTIFICATE && attr(o, C.CKA_ID)!.toString('hex') === k.idHex);
      expect(attr(cert!, C.CKA_VALUE)!.equals(new X509Certificate(k.certPem).raw)).toBe(true);
    }
    // a second daemon start on the same token gives the same handles (design.md "Key handles")
    const b = new Pkcs11Backend({ library: t.library, tokenLabel: t.tokenLabel, pin: (await import('node:fs')).readFileSync(t.pinFile, 'utf8').trim() });
    await b.start();
    try {
      const again = Object.fromEntries(b.tokens()[0]!.keys.map((k) => [k.label, k.handle.toString('hex')]));
      expect(again).toEqual(Object.fromEntries(Object.entries(handles).map(([l, h]) => [l, h.toString('hex')])));
    } finally {
      await b.close();
    }
  });

  it('GET_INVENTORY replies are the cached frame with only the id changed', async () => {
    const raw = await rawSession();
    await raw.greet();
    const a = await raw.call(encodeRequest('GET_INVENTORY', 11, {}));
    const b = await raw.call(encodeRequest('GET_INVENTORY', 12, {}));
    raw.sock.destroy();
    expect(a.readUInt32LE(6)).toBe(11);
    expect(b.readUInt32LE(6)).toBe(12);
    expect(a.subarray(10).equals(b.subarray(10))).toBe(true);
  });
});

describe('SIGN on SoftHSMv2, verified with node:crypto', () => {
  it('RSA_PKCS over a SHA-256 DigestInfo (sync and async paths)', async () => {
    const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
    const backend = daemon.backend as Pkcs11Backend;
    const before = { ...backend.counters };
    for (let i = 0; i < 5; i++) {
      const sig = await c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS, Buffer.concat([DIGESTINFO_SHA256, sha256])));
      expect(sig.length).toBe(384);
      expect(verify('sha256', msg, pubOf('rsa-3072'), sig)).toBe(true);
    }
    c.close();
    expect(backend.counters.sync + backend.counters.async - before.sync - before.async).toBe(5);
  });

  it('RSA_PKCS_PSS with params: salt = hash length and "max" salt (openssl default)', async () => {
    const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
    for (const salt of [32, 384 - 32 - 2]) {
      const sig = await c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS_PSS, sha256, { mgf: BigInt(C.CKG_MGF1_SHA256), salt_len: salt }));
      expect(verify('sha256', msg, { key: pubOf('rsa-3072'), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt }, sig)).toBe(true);
    }
    c.close();
  });

  it('ECDSA over the hash: raw r‖s of 64 bytes', async () => {
    const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
    for (let i = 0; i < 5; i++) {
      const sig = await c.sign(signReq('ec-p256', C.CKM_ECDSA, sha256));
      expect(sig.length).toBe(64);
      expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
    c.close();
  });

  it('concurrent clients on many connections all get valid signatures', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => DaemonClient.connect({ socketPath: daemon.socketPath })));
    const sigs = await Promise.all(
      clients.flatMap((c) => [0, 1, 2].map(() => c.sign(signReq('ec-p256', C.CKM_ECDSA, sha256)))),
    );
    for (const s of sigs) expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, s)).toBe(true);
    for (const c of clients) c.close();
  });

  it('errors carry the CK_RV of protocol.md and a message, and the connection keeps working', async () => {
    const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
    const rv = async (p: Promise<unknown>) => p.then(() => 0, (e: { ckr: number; message: string }) => (expect(e.message.length).toBeGreaterThan(10), e.ckr));
    expect(await rv(c.sign({ ...signReq('ec-p256', C.CKM_ECDSA, sha256), key_handle: Buffer.alloc(16, 7) }))).toBe(C.CKR_KEY_HANDLE_INVALID);
    expect(await rv(c.sign(signReq('rsa-3072', C.CKM_ECDSA, sha256)))).toBe(C.CKR_MECHANISM_INVALID);
    expect(await rv(c.sign(signReq('ec-p256', C.CKM_EDDSA, msg)))).toBe(C.CKR_MECHANISM_INVALID);
    expect(await rv(c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS_PSS, sha256, { mgf: 0x99n, salt_len: 32 })))).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(await rv(c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS_PSS, sha256, { mgf: 2n, salt_len: 400 })))).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(await rv(c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS, Buffer.alloc(384 - 10, 1))))).toBe(C.CKR_DATA_LEN_RANGE);
    expect(await rv(c.sign(signReq('rsa-3072', C.CKM_RSA_PKCS_PSS, sha256.subarray(0, 20), { mgf: 2n, salt_len: 32 })))).toBe(C.CKR_DATA_LEN_RANGE);
    const ok = await c.sign(signReq('ec-p256', C.CKM_ECDSA, sha256));
    expect(verify('sha256', msg, { key: pubOf('ec-p256'), dsaEncoding: 'ieee-p1363' }, ok)).toBe(true);
    c.close();
  });
});

// A raw connection: write frames, read whole frames back; `closed` resolves when the daemon hangs up.
async function rawSession() {
  const sock: Socket = connect(daemon.socketPath);
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  const dec = new FrameDecoder();
  const frames: Buffer[] = [];
  let wake: (() => void) | undefined;
  sock.on('data', (d) => {
    frames.push(...dec.push(d));
    wake?.();
  });
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  const next = async (): Promise<Buffer | null> => {
    for (;;) {
      if (frames.length) return frames.shift()!;
      if (sock.destroyed || sock.readableEnded) return null;
      await Promise.race([new Promise<void>((r) => (wake = r)), closed]);
      if (!frames.length && (sock.destroyed || sock.readableEnded)) return null;
    }
  };
  const hello = encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'raw test' });
  return {
    sock,
    closed,
    next,
    async call(frame: Buffer): Promise<Buffer> {
      sock.write(frame);
      const f = await next();
      if (!f) throw new Error('connection closed');
      return f;
    },
    async greet() {
      const r = decodeMessage(await this.call(hello));
      expect(r.body).toMatchObject({ rv: 0, version: 1 });
    },
  };
}

describe('connection rules (protocol.md "Connection life")', () => {
  async function stillServes(): Promise<void> {
    const c = await DaemonClient.connect({ socketPath: daemon.socketPath });
    expect((await c.inventory()).slots.length).toBe(1);
    c.close();
  }

  it('a first frame other than HELLO closes that connection only', async () => {
    const r = await rawSession();
    r.sock.write(encodeRequest('GET_INVENTORY', 1, {}));
    expect(await r.next()).toBeNull();
    await stillServes();
  });

  it('malformed frames close the connection; the daemon logs one line and keeps serving', async () => {
    const bad: Buffer[] = [
      Buffer.from([5, 0, 0, 0, 2, 0, 0, 0, 0]), // length too small
      Buffer.from([0xff, 0xff, 0xff, 0x7f]), // length too large (never buffered)
      Buffer.from([6, 0, 0, 0, 0x09, 0, 1, 0, 0, 0]), // unknown call
      Buffer.concat([encodeRequest('GET_INVENTORY', 2, {}).subarray(0, 0), Buffer.from([7, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0])]), // trailing byte
      encodeRequest('HELLO', 3, { magic: MAGIC, min_version: 1, max_version: 1, client: '' }), // a second HELLO
    ];
    for (const b of bad) {
      const r = await rawSession();
      await r.greet();
      const before = logLines.filter((l) => l.includes('malformed frame')).length;
      r.sock.write(b);
      expect(await r.next()).toBeNull();
      await r.closed;
      expect(logLines.filter((l) => l.includes('malformed frame')).length).toBe(before + 1);
    }
    await stillServes();
  });

  it('HELLO with a version range the daemon does not speak: CKR_FUNCTION_FAILED with a sentence, then close', async () => {
    const r = await rawSession();
    const reply = decodeMessage(await r.call(encodeRequest('HELLO', 9, { magic: MAGIC, min_version: 2, max_version: 3, client: 'future module' }))) as Message;
    expect(reply.body).toEqual({ rv: C.CKR_FUNCTION_FAILED, message: expect.stringMatching(/speaks protocol 1\.\.1, module speaks 2\.\.3: upgrade the daemon/) });
    expect(await r.next()).toBeNull();
  });

  it('client: no daemon → a clear error naming the socket and the command to run', async () => {
    const p = join(dir, 'none.sock');
    await expect(DaemonClient.connect({ socketPath: p })).rejects.toMatchObject({
      code: 'SIGNBRIDGE_ERR_NO_DAEMON',
      message: expect.stringContaining(`no signbridge daemon at ${p} (no such socket): start it with \`signbridge daemon`),
    });
    await expect(waitForDaemon(p, 200)).rejects.toMatchObject({ code: 'SIGNBRIDGE_ERR_NO_DAEMON' });
  });

  it('client: a daemon that accepts but never answers hits the timeout', async () => {
    const p = join(dir, 'mute.sock');
    const mute = createServer(() => undefined).listen(p);
    await new Promise((r) => mute.once('listening', r));
    const t0 = Date.now();
    await expect(DaemonClient.connect({ socketPath: p, timeoutMs: 300 })).rejects.toMatchObject({ code: 'SIGNBRIDGE_ERR_TIMEOUT' });
    expect(Date.now() - t0).toBeLessThan(2000);
    mute.close();
  });
});

describe('socket files', () => {
  it('directory 0700, socket 0600', () => {
    expect(statSync(join(dir, 'd')).mode & 0o777).toBe(0o700);
    expect(statSync(daemon.socketPath).mode & 0o777).toBe(0o600);
  });

  it('refuses to start when another daemon answers; removes a stale socket otherwise', async () => {
    await expect(startDaemon(config(daemon.socketPath), { logger, env: {} })).rejects.toMatchObject({ code: 'SIGNBRIDGE_ERR_DAEMON_RUNNING' });
    // a stale socket: a listener that is gone, its file left behind
    const stale = join(dir, 'd', 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL'); // what a crashed daemon leaves: the file, nobody listening
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(stale)).toBe(true);
    const d2 = await startDaemon(config(stale), { logger, env: {} });
    expect(logLines.some((l) => l.includes('removed a stale socket file'))).toBe(true);
    await d2.close();
    expect(existsSync(stale)).toBe(false);
  });

  it('refuses a socket directory that group/others can enter', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    await expect(startDaemon(config(join(open, 's.sock')), { logger, env: {} })).rejects.toMatchObject({
      code: 'SIGNBRIDGE_ERR_SOCKET_DIR',
      message: expect.stringContaining('0755'),
    });
  });

  it('close() finishes in-flight signatures, then removes the socket', async () => {
    const sock = join(dir, 'd', 'closing.sock');
    // sync threshold 0: every signature goes through the thread pool, so some are in flight at close()
    const d = await startDaemon(config(sock, { 'sync-threshold-us': '0' }), { logger, env: {} });
    const c = await DaemonClient.connect({ socketPath: sock });
    const inv = await c.inventory();
    const h = inv.slots[0]!.objects.find((o) => attr(o, C.CKA_LABEL)?.toString() === 'rsa-3072' && o.key_handle.length)!.key_handle;
    const cs = await Promise.all([1, 2, 3].map(() => DaemonClient.connect({ socketPath: sock })));
    const backend = d.backend as Pkcs11Backend;
    const pending = cs.map((x) => x.sign({ ...signReq('rsa-3072', C.CKM_RSA_PKCS, Buffer.concat([DIGESTINFO_SHA256, sha256])), key_handle: h }));
    // close once the daemon has received all three (they are then on the thread pool)
    while (backend.counters.async < 3) await new Promise((r) => setImmediate(r));
    await d.close();
    for (const sig of await Promise.all(pending)) expect(verify('sha256', msg, pubOf('rsa-3072'), sig)).toBe(true);
    expect(backend.counters.sync).toBe(0);
    expect(existsSync(sock)).toBe(false);
    c.close();
    for (const x of cs) x.close();
  });
});

describe('--backend stm start-up checks (no service needed)', () => {
  it('credential files are checked before the socket is touched: a readable API key file is a configuration error', async () => {
    const keyFile = join(dir, 'api-key');
    (await import('node:fs')).writeFileSync(keyFile, 'k\n', { mode: 0o644 });
    const sock = join(dir, 'd', 'stm.sock');
    const cfg = resolveConfig({ backend: 'stm', 'stm-host': 'https://127.0.0.1:1', 'stm-api-key-file': keyFile, socket: sock }, {});
    await expect(startDaemon(cfg, { logger, env: {} })).rejects.toMatchObject({ code: 'SIGNBRIDGE_ERR_STM_CONFIG', message: expect.stringContaining('chmod 600') });
    expect(existsSync(sock)).toBe(false);
  });

  it('an unreachable STM host fails start-up (exit 3) in bounded time with what to check', async () => {
    const { exitCodeFor, EXIT } = await import('../../src/daemon/index.js');
    const sock = join(dir, 'd', 'stm2.sock');
    // port 1 on loopback: connection refused at once; retried until the start deadline would pass
    const cfg = resolveConfig({ backend: 'stm', 'stm-host': 'https://127.0.0.1:1', socket: sock }, {});
    const t0 = Date.now();
    const e = await startDaemon(cfg, { logger, env: { SM_API_KEY: 'k' } }).then(() => undefined, (x: unknown) => x);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(exitCodeFor(e)).toBe(EXIT.BACKEND);
    expect((e as Error).message).toMatch(/STM at 127\.0\.0\.1:1 did not complete listing certificates after \d+ attempt\(s\) \(last: ECONNREFUSED.*check the network/);
  });
});
