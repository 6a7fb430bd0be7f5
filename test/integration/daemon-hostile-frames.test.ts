// Hostile clients against a real daemon process (protocol.md "Connection life" 4): garbage,
// truncated, oversize and otherwise malformed frames, each on its own connection, while another
// client keeps signing. Each bad connection is closed by the daemon and logged once (one warn
// line in the daemon's log); the signing client never sees an error, and every one of its
// signatures verifies with node:crypto against the token's certificate.
import { X509Certificate, createHash, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { HEADER_SIZE, KIND_REPLY, MAGIC, MAX_LENGTH, encodeRequest } from '../../src/ipc/protocol.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { testKey } from '../helpers/token.js';

let daemon: TestDaemon;
let ecHandle: Buffer;
const ecPub = () => new X509Certificate(testKey('ec-p256').certPem).publicKey;

beforeAll(async () => {
  daemon = await startTestDaemon();
  const c = await DaemonClient.connect({ socketPath: daemon.socket });
  const inv = await c.inventory();
  c.close();
  for (const o of inv.slots[0]!.objects) if (o.key_handle.length > 0 && attr(o, C.CKA_LABEL)?.toString() === 'ec-p256') ecHandle = o.key_handle;
  expect(ecHandle).toBeDefined();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
});

// ---- raw frames ---------------------------------------------------------------------------------
function frame(call: number, kind: number, body: Buffer, id = 1): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(body.length + 6, 0);
  h[4] = call;
  h[5] = kind;
  h.writeUInt32LE(id, 6);
  return Buffer.concat([h, body]);
}
const hello = encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'hostile-test' });
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

interface Hostile {
  name: string;
  /** what the client sends (one write per element) */
  writes: Buffer[];
  /** true: the client closes its side after writing (the daemon sees EOF mid-frame) */
  endAfter?: boolean;
}

const signReq = (id: number) =>
  encodeRequest('SIGN', id, { key_handle: Buffer.alloc(16, 7), mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.alloc(32) });

const HOSTILE: Hostile[] = [
  { name: 'garbage bytes', writes: [Buffer.from('GET / HTTP/1.1\r\nHost: signbridge\r\n\r\n')] },
  { name: 'oversize length (MAX_FRAME - 3)', writes: [u32(MAX_LENGTH + 1), Buffer.alloc(64)] },
  { name: 'length 0xffffffff', writes: [u32(0xffffffff)] },
  { name: 'length below the header (5)', writes: [u32(5), Buffer.alloc(5)] },
  { name: 'first frame is not HELLO', writes: [signReq(1)] },
  { name: 'HELLO with a wrong magic', writes: [encodeRequest('HELLO', 1, { magic: 0x12345678, min_version: 1, max_version: 1, client: 'x' })] },
  { name: 'a reply sent to the daemon', writes: [frame(0x01, KIND_REPLY, Buffer.concat([u32(0), Buffer.from([1, 0]), u32(0)]))] },
  { name: 'unknown call after HELLO', writes: [hello, frame(0x3f, 0, Buffer.alloc(0), 2)] },
  { name: 'unknown kind after HELLO', writes: [hello, frame(0x02, 7, Buffer.alloc(0), 2)] },
  { name: 'trailing byte after a GET_INVENTORY request', writes: [hello, frame(0x02, 0, Buffer.from([0]), 2)] },
  { name: 'SIGN whose key_handle length runs past the frame', writes: [hello, frame(0x03, 0, Buffer.concat([u32(0xfffffff0), Buffer.alloc(40)]), 2)] },
  { name: 'SIGN cut short (body truncated, length consistent)', writes: [hello, fixLen(signReq(2).subarray(0, 30))] },
  { name: 'second HELLO on a greeted connection', writes: [hello, encodeRequest('HELLO', 2, { magic: MAGIC, min_version: 1, max_version: 1, client: 'again' })] },
  { name: 'a good frame and garbage in one write', writes: [Buffer.concat([hello, Buffer.alloc(16, 0xff)])] },
];
// Frames cut short by the client's EOF: "missing bytes" (protocol.md "Connection life" 4).
const CUT_SHORT: Hostile[] = [
  { name: 'truncated frame, then EOF', writes: [hello, signReq(2).subarray(0, 40)], endAfter: true },
  { name: 'truncated length prefix, then EOF', writes: [Buffer.from([0x20, 0x00])], endAfter: true },
];
function fixLen(b: Buffer): Buffer {
  const c = Buffer.from(b);
  c.writeUInt32LE(c.length - 4, 0);
  return c;
}

/** Sends the hostile bytes; resolves when the daemon has closed the connection (or after `ms`). */
function attack(path: string, h: Hostile, ms = 3000): Promise<{ closedByDaemon: boolean; replies: number }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(path);
    let replies = 0;
    let ended = false;
    const t = setTimeout(() => {
      s.destroy();
      resolve({ closedByDaemon: false, replies });
    }, ms);
    s.on('data', () => replies++);
    s.on('error', () => undefined); // EPIPE/ECONNRESET once the daemon has closed: expected
    s.on('close', () => {
      clearTimeout(t);
      resolve({ closedByDaemon: !ended || h.endAfter === true, replies });
    });
    s.once('connect', async () => {
      try {
        for (const w of h.writes) {
          s.write(w);
          await new Promise((r) => setTimeout(r, 20));
        }
        if (h.endAfter) {
          ended = true;
          s.end();
        }
      } catch (e) {
        reject(e);
      }
    });
  });
}

interface LogLine { level: number; msg: string; conn?: number; err?: string }
function logLines(): LogLine[] {
  return readFileSync(daemon.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}
async function malformedLines(atLeast: number, ms = 3000): Promise<LogLine[]> {
  const until = Date.now() + ms;
  for (;;) {
    const lines = logLines().filter((l) => l.level >= 40 && /malformed|closed mid-frame|truncated|incomplete/i.test(l.msg));
    if (lines.length >= atLeast || Date.now() > until) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('hostile frames from one client, signing by another', () => {
  it('closes and logs each bad connection once; the signing client never fails and its signatures verify', async () => {
    const signer = await DaemonClient.connect({ socketPath: daemon.socket });
    const msg = Buffer.from('signbridge: signing while others send garbage');
    const digest = createHash('sha256').update(msg).digest();
    let signed = 0;
    let stop = false;
    const errors: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          const sig = await signer.sign({ key_handle: ecHandle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: digest });
          if (!verify('sha256', msg, { key: ecPub(), dsaEncoding: 'ieee-p1363' }, sig)) errors.push('a signature did not verify');
          signed++;
        } catch (e) {
          errors.push((e as Error).message);
          return;
        }
      }
    })();

    const before = (await malformedLines(0, 0)).length;
    const results: { name: string; closedByDaemon: boolean; replies: number }[] = [];
    for (const h of HOSTILE) results.push({ name: h.name, ...(await attack(daemon.socket, h)) });
    const lines = (await malformedLines(before + HOSTILE.length)).slice(before);
    const signedDuring = signed;
    stop = true;
    await loop;
    signer.close();

    expect(errors).toEqual([]);
    expect(signedDuring, 'the signing client kept signing during the attack').toBeGreaterThan(HOSTILE.length);
    for (const r of results) expect(r.closedByDaemon, `${r.name}: the daemon must close the connection`).toBe(true);
    // one line per bad connection, each on its own connection (conn ids differ), in order
    const perCase = HOSTILE.map((h, i) => `${h.name}: ${lines[i] ? `${lines[i]!.msg} (${lines[i]!.err ?? ''})` : 'NOT LOGGED'}`);
    expect(lines.length, perCase.join('\n')).toBe(HOSTILE.length);
    expect(new Set(lines.map((l) => l.conn)).size, perCase.join('\n')).toBe(HOSTILE.length);
    console.log(`hostile frames: ${HOSTILE.length} bad connections closed and logged; ${signedDuring} signatures meanwhile`);
  }, 60_000);

  it('a frame cut short by EOF is logged once too (protocol.md: "missing bytes" is a malformed frame)', async () => {
    const before = (await malformedLines(0, 0)).length;
    for (const h of CUT_SHORT) {
      const r = await attack(daemon.socket, h);
      expect(r.replies, `${h.name}: only the HELLO reply, if any`).toBeLessThanOrEqual(1);
    }
    const lines = (await malformedLines(before + CUT_SHORT.length)).slice(before);
    const perCase = CUT_SHORT.map((h, i) => `${h.name}: ${lines[i] ? `${lines[i]!.msg} (${lines[i]!.err ?? ''})` : 'NOT LOGGED'}`);
    expect(lines.length, perCase.join('\n')).toBe(CUT_SHORT.length);
  }, 20_000);

  it('a client that sends half a frame and then stays silent holds only its own connection', async () => {
    const s = connect(daemon.socket);
    await new Promise((r) => s.once('connect', r));
    s.write(hello);
    s.write(signReq(2).subarray(0, 20));
    const c = await DaemonClient.connect({ socketPath: daemon.socket, timeoutMs: 3000 });
    const inv = await c.inventory();
    expect(inv.slots.length).toBeGreaterThan(0);
    const msg = Buffer.from('still served');
    const sig = await c.sign({ key_handle: ecHandle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: createHash('sha256').update(msg).digest() });
    expect(verify('sha256', msg, { key: ecPub(), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    c.close();
    s.destroy();
  });

  it('50 connections of random garbage at once: the daemon stays up and answers', async () => {
    const garbage = Array.from({ length: 50 }, (_, i) => ({ name: `garbage ${i}`, writes: [Buffer.from(createHash('sha512').update(String(i)).digest())] }));
    const rs = await Promise.all(garbage.map((h) => attack(daemon.socket, h)));
    expect(rs.every((r) => r.closedByDaemon)).toBe(true);
    process.kill(daemon.pid, 0); // throws ESRCH if the daemon died
    const c = await DaemonClient.connect({ socketPath: daemon.socket, timeoutMs: 3000 });
    expect((await c.inventory()).slots.length).toBeGreaterThan(0);
    c.close();
  }, 30_000);
});
