// README "Audit log", end to end: signatures made through libsignbridge-pkcs11.so (pkcs11js) with a
// real daemon on the matrix SoftHSMv2 token. The request record is read the instant C_Sign
// returns (so it was written before the reply), its digest is compared with one computed here,
// its outcome line follows with the same id, and every signature is verified with node:crypto.
// Then: SIGKILL the daemon right after C_Sign returns — the record is in the file and every line
// parses. And rotation by size with a tiny --audit-max-bytes.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { CKM_EDDSA, MECHANISMS, mechanism, publicKey, verifies, type Hash, type MechCase } from '../helpers/signing.js';
import { testToken, type TestKey } from '../helpers/token.js';

const token = testToken('matrix');
const key = (label: string): TestKey => token.keys.find((k) => k.label === label)!;
const mech = (ckm: number): MechCase => MECHANISMS.find((m) => m.ckm === ckm)!;
const work = mkdtempSync(join(tmpdir(), 'sb-audit-e2e-'));
const auditFile = join(work, 'logs', 'audit.log');

let mod: ModuleFixture;
let d: TestDaemon;
let p11: pkcs11js.PKCS11;
let s: Buffer;
let es: Buffer;
const handles = new Map<string, Buffer>();

type Line = Record<string, unknown> & { key: Record<string, unknown>; peer: Record<string, unknown> | null };
const lines = (f = auditFile): Line[] => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
const requests = (f = auditFile): Line[] => lines(f).filter((l) => l.event === 'request');
/** The outcome line of request `id`: written after the reply, so it may take a moment. */
async function outcomeOf(id: unknown): Promise<Line | undefined> {
  for (let i = 0; i < 500; i++) {
    const o = lines().find((l) => l.event === 'outcome' && l.id === id);
    if (o) return o;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

beforeAll(async () => {
  mod = await openModule({ token: 'matrix', daemonArgs: ['--audit-log', auditFile] });
  ({ daemon: d, p11, session: s } = mod);
  es = mod.edSession!;
  for (const k of token.keys) handles.set(k.label, mod.privateKey(k.label));
});

afterAll(async () => {
  try {
    await mod?.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

function sign(k: TestKey, m: MechCase, h: Hash, input: Buffer): Buffer {
  const ses = k.type === 'ed25519' ? es : s;
  p11.C_SignInit(ses, mechanism(m, h), handles.get(k.label)!);
  return p11.C_Sign(ses, input, Buffer.alloc(1024));
}

describe('one audit line per signature, written before the signature is returned', () => {
  const cases: Array<{ k: string; ckm: number; h: Hash; wire: string; what: string }> = [
    { k: 'ec-p256', ckm: C.CKM_ECDSA, h: 'sha256', wire: 'CKM_ECDSA', what: 'ECDSA over a SHA-256 hash' },
    { k: 'rsa-2048', ckm: pkcs11js.CKM_SHA384_RSA_PKCS, h: 'sha384', wire: 'CKM_RSA_PKCS', what: 'SHA384_RSA_PKCS (the module hashes, the daemon gets a DigestInfo)' },
    { k: 'rsa-3072', ckm: pkcs11js.CKM_SHA512_RSA_PKCS_PSS, h: 'sha512', wire: 'CKM_RSA_PKCS_PSS', what: 'SHA512_RSA_PKCS_PSS' },
    { k: 'ed25519', ckm: CKM_EDDSA, h: 'sha256', wire: 'CKM_EDDSA', what: 'Ed25519 (no hash: data_sha256 of the message)' },
  ];
  for (const c of cases) {
    it(c.what, async () => {
      const k = key(c.k);
      const m = mech(c.ckm);
      const message = Buffer.from(`audit me: ${c.what} ${Date.now()}`);
      const input = m.input === 'hash' ? createHash(c.h).update(message).digest() : message;
      const before = existsSync(auditFile) ? requests().length : 0;
      const sig = sign(k, m, c.h, input);
      // read right away: the daemon wrote and synced the request record before it replied
      const all = requests();
      expect(all.length).toBe(before + 1);
      const line = all.at(-1)!;
      expect(verifies(publicKey(k), m, c.h, message, sig)).toBe(true);
      expect(line).toMatchObject({
        event: 'request',
        key: { id: k.idHex, label: k.label },
        mechanism: c.wire,
        peer: { uid: process.getuid!(), pid: process.pid, exe: realpathSync(process.execPath) },
      });
      if (k.type === 'ed25519') {
        expect(line.hash).toBeNull();
        expect(line.data_sha256).toBe(createHash('sha256').update(message).digest('hex'));
      } else {
        expect(line.hash).toBe(`CKM_${c.h.toUpperCase()}`);
        expect(line.digest).toBe(createHash(c.h).update(message).digest('hex'));
      }
      expect(Date.now() - Date.parse(line.time as string)).toBeLessThan(60_000);
      const outcome = await outcomeOf(line.id);
      expect(outcome).toMatchObject({ event: 'outcome', outcome: 'ok' });
      expect(outcome!.backend_us).toBeGreaterThan(0);
    });
  }

  it('a refused request is recorded too (outcome = the CKR name, with the message)', async () => {
    const c = await DaemonClient.connect({ socketPath: d.env.SIGNBRIDGE_SOCKET! });
    try {
      const bogus = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
      await expect(c.sign({ key_handle: bogus, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.alloc(32, 7) })).rejects.toMatchObject({ ckr: C.CKR_KEY_HANDLE_INVALID });
      const line = requests().at(-1)!;
      expect(line).toMatchObject({ key: { id: null, label: null, handle: bogus.toString('hex') }, digest: Buffer.alloc(32, 7).toString('hex') });
      expect(await outcomeOf(line.id)).toMatchObject({ outcome: 'CKR_KEY_HANDLE_INVALID', error: expect.stringContaining('no key with handle') });
    } finally {
      c.close();
    }
  });

  it('the audit log is created 0600', () => {
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);
  });

  it('SIGKILL right after C_Sign returns: the request record is in the file and every line parses', async () => {
    const k = key('ec-p384');
    const message = Buffer.from(`the last words ${process.hrtime.bigint()}`);
    const before = requests().length;
    const sig = sign(k, mech(pkcs11js.CKM_ECDSA_SHA384), 'sha384', message);
    process.kill(d.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200)); // the daemon is gone; nothing more can be written
    expect(() => process.kill(d.pid, 0)).toThrow(); // really dead
    const all = requests(); // every line parses (JSON.parse throws otherwise)
    expect(all.length).toBe(before + 1);
    expect(all.at(-1)).toMatchObject({ key: { label: 'ec-p384' }, hash: 'CKM_SHA384', digest: createHash('sha384').update(message).digest('hex') });
    expect(verifies(publicKey(k), mech(pkcs11js.CKM_ECDSA_SHA384), 'sha384', message, sig)).toBe(true);
  });
});

describe('rotation by size', () => {
  it('--audit-max-bytes 2000 --audit-keep 2: audit.log, .1 and .2 only, each within the bound, lines consecutive', async () => {
    const dir = join(work, 'rot');
    const file = join(dir, 'audit.log');
    const rd = await startTestDaemon({ extraArgs: ['--audit-log', file, '--audit-max-bytes', '2000', '--audit-keep', '2'] });
    const c = await DaemonClient.connect({ socketPath: rd.env.SIGNBRIDGE_SOCKET! });
    try {
      const inv = await c.inventory();
      const h = inv.slots[0]!.objects.find((o) => o.key_handle.length > 0 && attr(o, C.CKA_LABEL)?.toString() === 'ec-p256')!.key_handle;
      const digests: string[] = [];
      for (let i = 0; i < 40; i++) {
        const dg = createHash('sha256').update(`rotate ${i}`).digest();
        digests.push(dg.toString('hex'));
        await c.sign({ key_handle: h, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: dg });
      }
      expect(readdirSync(dir).sort()).toEqual(['audit.log', 'audit.log.1', 'audit.log.2']);
      for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(2000);
      const kept = [...requests(`${file}.2`), ...requests(`${file}.1`), ...requests(file)].map((l) => l.digest);
      expect(kept.length).toBeGreaterThan(5);
      expect(kept.length).toBeLessThan(40); // the oldest were dropped
      expect(kept).toEqual(digests.slice(40 - kept.length));
    } finally {
      c.close();
      await rd.stop();
    }
  });
});
