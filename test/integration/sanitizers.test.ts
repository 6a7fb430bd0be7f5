// The module built once with -fsanitize=address,undefined (native/fuzz/CMakeLists.txt, into a temp
// dir) and driven through its raw C ABI by C harnesses built with ASan/UBSan too: the PKCS#11
// misuse matrix (test/native/misuse.c), the conformance checks (test/native/conformance.c) and the
// PKCS#11 3.0 / random / object-size checks (test/native/interfaces.c),
// against real daemons on the run's SoftHSMv2 tokens. Any sanitizer report fails the test; every
// signature the harnesses make is verified here with node:crypto. The misuse matrix also runs
// against the normal build (SIGNBRIDGE_MODULE / build/Release), where the spec codes must be the same.
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modulePath } from '../../src/native/loader.js';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { FrameDecoder } from '../../src/ipc/framing.js';
import { MAGIC, decodeMessage, encodeRequest, withId, type InventoryReply } from '../../src/ipc/protocol.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { compileHarness, sanitizeBuild, sanitizerReports, waitForPrebuild, type SanitizeBuild } from '../helpers/sanitize-build.js';
import { testKey, testToken } from '../helpers/token.js';

const SAN_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
};

let dir: string;
let build: SanitizeBuild;
let matrixDaemon: TestDaemon;
let daemon: TestDaemon;
const harness = { misuse: '', misuseAsan: '', conformanceAsan: '', interfacesAsan: '' };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-sanitize-'));
  await waitForPrebuild();
  build = sanitizeBuild(['signbridge-pkcs11', 'sb_codec_test', 'sb_unit_test']);
  harness.misuse = join(dir, 'misuse');
  harness.misuseAsan = join(dir, 'misuse-asan');
  harness.conformanceAsan = join(dir, 'conformance-asan');
  harness.interfacesAsan = join(dir, 'interfaces-asan');
  compileHarness('misuse.c', harness.misuse, { sanitize: false });
  compileHarness('misuse.c', harness.misuseAsan, { sanitize: true });
  compileHarness('conformance.c', harness.conformanceAsan, { sanitize: true });
  compileHarness('interfaces.c', harness.interfacesAsan, { sanitize: true });
  [matrixDaemon, daemon] = await Promise.all([startTestDaemon({ token: 'matrix' }), startTestDaemon()]);
}, 240_000);

afterAll(async () => {
  await Promise.all([matrixDaemon?.stop(), daemon?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(bin: string, args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(bin, args, { env: { ...process.env, ...SAN_ENV, ...env }, encoding: 'utf8', timeout: 60_000, maxBuffer: 32 << 20 });
  if (r.error) throw r.error;
  const lines = r.stdout.split('\n').filter(Boolean);
  return { ...r, lines, failed: lines.filter((l) => l.startsWith('FAIL')), reports: sanitizerReports(r.stderr) };
}

/** "sig <key> <mechanism> <data-hex|-> <sig-hex>" lines of misuse.c, verified against the matrix token's certificates. */
function verifyMisuseSignatures(lines: string[]): number {
  const sigs = lines.filter((l) => l.startsWith('sig '));
  for (const line of sigs) {
    const [, key, mech, dataHex, sigHex] = line.split(' ');
    const data = dataHex === '-' ? Buffer.alloc(0) : Buffer.from(dataHex!, 'hex');
    const sig = Buffer.from(sigHex!, 'hex');
    const pub = new X509Certificate(testKey(key!, 'matrix').certPem).publicKey;
    const ok =
      mech === 'EDDSA' ? cryptoVerify(null, data, pub, sig)
      : mech === 'ECDSA_SHA256' ? cryptoVerify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)
      : cryptoVerify('sha256', data, pub, sig);
    expect(ok, `signature does not verify: ${line}`).toBe(true);
  }
  return sigs.length;
}

function expectMisuseClean(r: ReturnType<typeof run>) {
  expect(r.failed, r.stderr.slice(-4000)).toEqual([]);
  expect(r.reports, r.stderr.slice(-8000)).toEqual([]);
  expect(r.status, r.stderr.slice(-4000)).toBe(0);
  const cases = Number(/^cases (\d+)$/m.exec(r.stdout)?.[1]);
  // 2 × 67 not-initialized calls plus the NULL/zero/huge/handle/order groups
  expect(cases).toBeGreaterThan(300);
  // one per group, plus EdDSA and RSA over the empty message and the RSA DigestInfo of SHA-256("")
  expect(verifyMisuseSignatures(r.lines)).toBe(9);
  return cases;
}

describe('PKCS#11 misuse matrix (test/native/misuse.c)', () => {
  it('every case gets the spec CK_RV from the normal build, and the module still signs after each group', () => {
    const r = run(harness.misuse, [modulePath()], matrixDaemon.env);
    const cases = expectMisuseClean(r);
    console.log(`misuse matrix (normal build): ${cases} cases`);
  });

  it('the same under ASan/UBSan: no report, no leak', () => {
    const r = run(harness.misuseAsan, [build.module], matrixDaemon.env);
    const cases = expectMisuseClean(r);
    console.log(`misuse matrix (ASan/UBSan build): ${cases} cases`);
  });
});

describe('PKCS#11 3.0 interfaces, random and object size (test/native/interfaces.c) against the ASan/UBSan module', () => {
  it('passes with a real daemon, with SIGNBRIDGE_DEBUG on, without a sanitizer report', () => {
    const r = run(harness.interfacesAsan, [build.module], { SIGNBRIDGE_SOCKET: daemon.socket, SIGNBRIDGE_DEBUG: '1' });
    expect(r.failed).toEqual([]);
    expect(r.reports, r.stderr.slice(-8000)).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.lines.filter((l) => l.startsWith('sig '))).toHaveLength(2); // verified in interfaces.test.ts
  });
});

describe('conformance checks against the ASan/UBSan module', () => {
  it('passes with a real daemon, without a sanitizer report, and its signatures verify', () => {
    const r = run(harness.conformanceAsan, [build.module, 'daemon'], { SIGNBRIDGE_SOCKET: daemon.socket });
    expect(r.failed).toEqual([]);
    expect(r.reports, r.stderr.slice(-8000)).toEqual([]);
    expect(r.status).toBe(0);
    const token = testToken();
    const certs = Object.fromEntries(token.keys.map((k) => [k.label, new X509Certificate(k.certPem).publicKey]));
    const sigs = r.lines.filter((l) => l.startsWith('sig '));
    expect(sigs).toHaveLength(2);
    for (const line of sigs) {
      const [, name, dataHex, sigHex] = line.split(' ');
      const data = Buffer.from(dataHex!, 'hex');
      const sig = Buffer.from(sigHex!, 'hex');
      const ok = name === 'SHA256_RSA_PKCS'
        ? cryptoVerify('sha256', data, certs['rsa-3072']!, sig)
        : cryptoVerify('sha256', data, { key: certs['ec-p256']!, dsaEncoding: 'ieee-p1363' }, sig);
      expect(ok, line).toBe(true);
    }
  });

  it('passes with no daemon at all', () => {
    const r = run(harness.conformanceAsan, [build.module, 'no-daemon'], { SIGNBRIDGE_SOCKET: join(dir, 'absent.sock') });
    expect(r.failed).toEqual([]);
    expect(r.reports, r.stderr.slice(-8000)).toEqual([]);
    expect(r.status).toBe(0);
  });
});

describe('native codec and unit tests under ASan/UBSan', () => {
  it('sb_codec_test decodes the golden frames and passes its framing self-test', () => {
    const frames = join(import.meta.dirname, '..', 'fixtures', 'frames');
    const g = run(build.bin('sb_codec_test'), [frames], {});
    expect(g.reports, g.stderr).toEqual([]);
    expect(g.status, g.stderr + g.stdout.slice(-2000)).toBe(0);
    const s = run(build.bin('sb_codec_test'), ['--self-test'], {});
    expect(s.reports, s.stderr).toEqual([]);
    expect(s.stderr).toMatch(/self-test: \d+ checks, 0 failed/);
    expect(s.status).toBe(0);
  });

  it('sb_unit_test (SHA-2, DigestInfo, curves)', () => {
    const u = run(build.bin('sb_unit_test'), [], {});
    expect(u.reports, u.stderr).toEqual([]);
    expect(u.stderr).toMatch(/sb_unit_test: \d+ checks, 0 failed/);
    expect(u.status).toBe(0);
  });
});

// ---- a hostile daemon: real replies, mutated -------------------------------------------------
/** HELLO, GET_INVENTORY and SIGN reply frames of the real daemon, captured raw. */
async function captureReplies(socket: string): Promise<{ hello: Buffer; inventory: Buffer; sign: Buffer }> {
  const s = connect(socket);
  const d = new FrameDecoder();
  const frames: Buffer[] = [];
  let waiting: (() => void) | undefined;
  s.on('data', (c: Buffer) => {
    frames.push(...d.push(c));
    waiting?.();
  });
  const next = async (req: Buffer) => {
    const want = frames.length + 1;
    s.write(req);
    while (frames.length < want) await new Promise<void>((r) => (waiting = r));
    return frames[want - 1]!;
  };
  await new Promise((r) => s.once('connect', r));
  const hello = await next(encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'capture' }));
  const inventory = await next(encodeRequest('GET_INVENTORY', 2, {}));
  const inv = decodeMessage(inventory).body as InventoryReply;
  const ec = inv.slots[0]!.objects.find((o) => o.key_handle.length > 0 && attr(o, C.CKA_LABEL)?.toString() === 'ec-p256')!;
  const sign = await next(encodeRequest('SIGN', 3, { key_handle: ec.key_handle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.alloc(32, 1) }));
  s.destroy();
  return { hello, inventory, sign };
}

function hostileDaemon(path: string, real: { hello: Buffer; inventory: Buffer; sign: Buffer }, seed: number) {
  let st = seed >>> 0;
  const rnd = () => {
    st = (Math.imul(st ^ (st >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return st / 4294967296;
  };
  const int = (n: number) => Math.floor(rnd() * n);
  const stats = { replies: 0, intact: 0, mutated: 0, closed: 0 };
  const mutate = (f: Buffer): Buffer | 'close' | 'partial' => {
    const b = Buffer.from(f);
    switch (int(9)) {
      case 0: return 'close';
      case 1: return 'partial';
      case 2: b[10 + int(b.length - 10)]! ^= 1 << int(8); return b;
      case 3: if (b.length >= 14) b.writeUInt32LE([0, 1, 0xff, 0x7fffffff, 0xffffffff][int(5)]!, 10 + int(b.length - 13)); return b;
      case 4: { const c = b.subarray(0, 10 + int(b.length - 10)); c.writeUInt32LE(c.length - 4, 0); return c; }
      case 5: { const c = Buffer.concat([b, Buffer.alloc(1 + int(8), int(256))]); c.writeUInt32LE(c.length - 4, 0); return c; }
      case 6: b.writeUInt32LE(1 + int(0xfffffffe), 10); return b; // an error rv, then bytes that are not a message
      case 7: b[4] = 1 + int(4); return b; // another call's reply
      default: b.writeUInt32LE([5, 0xffffffff, 0x400000][int(3)]!, 0); return b; // bad length
    }
  };
  const conns = new Set<Socket>();
  const server: Server = createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => undefined);
    const d = new FrameDecoder();
    sock.on('data', (c: Buffer) => {
      let frames: Buffer[];
      try {
        frames = d.push(c);
      } catch {
        sock.destroy();
        return;
      }
      for (const f of frames) {
        const call = f[4]!;
        const id = f.readUInt32LE(6);
        const base = withId(call === 1 ? real.hello : call === 2 ? real.inventory : real.sign, id);
        stats.replies++;
        // HELLO mostly intact, so the rounds get to the inventory and to signing
        if (rnd() < (call === 1 ? 0.85 : 0.3)) {
          stats.intact++;
          sock.write(base);
          continue;
        }
        const m = mutate(base);
        stats.mutated++;
        if (m === 'close') {
          stats.closed++;
          sock.destroy();
          return;
        }
        if (m === 'partial') {
          stats.closed++;
          sock.end(base.subarray(0, int(base.length)));
          return;
        }
        sock.write(m);
      }
    });
  });
  return {
    stats,
    listen: () => new Promise<void>((r) => server.listen(path, r)),
    close: () => new Promise<void>((r) => {
      for (const c of conns) c.destroy();
      server.close(() => r());
    }),
  };
}

describe('the ASan/UBSan module against a hostile daemon (mutated real replies)', () => {
  it('survives every reply: C_GetSlotList is CKR_OK or CKR_FUNCTION_FAILED, everything else returns, no sanitizer report', async () => {
    const real = await captureReplies(daemon.socket);
    const socket = join(dir, 'hostile.sock');
    const fake = hostileDaemon(socket, real, 0x5b1);
    await fake.listen();
    try {
      const ROUNDS = 300;
      const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const p = spawn(harness.misuseAsan, [build.module, 'hostile-daemon', String(ROUNDS)], {
          env: { ...process.env, ...SAN_ENV, SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_TIMEOUT_MS: '3000' },
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const t = setTimeout(() => p.kill('SIGKILL'), 90_000);
        p.on('error', reject);
        p.on('close', (status) => {
          clearTimeout(t);
          resolve({ status, stdout, stderr });
        });
      });
      const lines = r.stdout.split('\n');
      expect(lines.filter((l) => l.startsWith('FAIL')).slice(0, 10), r.stderr.slice(-4000)).toEqual([]);
      expect(sanitizerReports(r.stderr), r.stderr.slice(-8000)).toEqual([]);
      expect(r.status, r.stderr.slice(-4000)).toBe(0);
      const m = /rounds (\d+) sign-attempts (\d+)/.exec(r.stdout);
      expect(Number(m?.[1])).toBe(ROUNDS);
      expect(Number(m?.[2]), 'some rounds got as far as C_Sign').toBeGreaterThan(10);
      expect(fake.stats.mutated).toBeGreaterThan(ROUNDS / 2);
      console.log(`hostile daemon: ${ROUNDS} rounds, ${m?.[2]} reached C_Sign; replies ${JSON.stringify(fake.stats)}`);
    } finally {
      await fake.close();
    }
  }, 120_000);
});

describe('the sanitizer check can fail', () => {
  it('a heap overflow in a harness built the same way is reported and fails the process', () => {
    const src = join(dir, 'overflow.c');
    writeFileSync(src, '#include <stdlib.h>\nint main(int c, char **v) { (void)v; char *p = malloc(8); p[8 + c] = 1; free(p); return 0; }\n');
    const bin = join(dir, 'overflow');
    compileHarness(src, bin, { sanitize: true });
    const r = run(bin, [], {});
    expect(r.status).not.toBe(0);
    expect(r.reports.join('\n')).toMatch(/heap-buffer-overflow/);
  });
});
