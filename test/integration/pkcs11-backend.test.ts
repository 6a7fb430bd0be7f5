// The pkcs11 backend on a SoftHSMv2 token of this file's own (vitest runs each file in its own
// process, so SOFTHSM2_CONF can point here): keys WITHOUT certificates (public key from the token's
// public key objects), an Ed25519 key, the sync/async signing paths, PIN errors.
// Public keys for verification are read with OpenSC's pkcs11-tool, not through our code.
import { execFileSync } from 'node:child_process';
import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pkcs11Backend } from '../../src/backends/pkcs11/index.js';
import type { KeyRecord } from '../../src/core/keys.js';
import { buildSlots } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';

const LIB = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '4321';
let dir: string;
const pubs: Record<string, KeyObject> = {};

function need(tool: string, apt: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${tool} is missing: run \`apt-get install -y ${apt}\``);
  }
}

function p11(...args: string[]): string {
  return execFileSync('pkcs11-tool', ['--module', LIB, '--token-label', 'bk', '--login', '--pin', PIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  need('softhsm2-util', 'softhsm2');
  need('pkcs11-tool', 'opensc');
  dir = mkdtempSync(join(tmpdir(), 'sb-backend-'));
  writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bk', '--pin', PIN, '--so-pin', '12345678'], { stdio: 'ignore' });
  p11('--keypairgen', '--key-type', 'rsa:2048', '--id', '0a', '--label', 'rsa');
  p11('--keypairgen', '--key-type', 'EC:secp384r1', '--id', '0b', '--label', 'ec');
  p11('--keypairgen', '--key-type', 'EC:edwards25519', '--id', '0c', '--label', 'ed');
  // Public keys as OpenSC reads them: the RSA key as DER SubjectPublicKeyInfo; the EC points from
  // its object listing (OpenSC 0.23 cannot export a P-384 key to a file).
  const f = join(dir, 'rsa.der');
  p11('--read-object', '--type', 'pubkey', '--id', '0a', '-o', f);
  pubs.rsa = createPublicKey({ key: readFileSync(f), format: 'der', type: 'spki' });
  const listing = p11('--list-objects', '--type', 'pubkey');
  const ec = /EC_POINT:\s+0461(04[0-9a-f]{192})\b/.exec(listing);
  const ed = /EC_POINT:\s+0420([0-9a-f]{64})\b/.exec(listing);
  if (!ec || !ed) throw new Error(`expected a P-384 and an Ed25519 EC_POINT in pkcs11-tool output:\n${listing}`);
  const pt = Buffer.from(ec[1]!, 'hex');
  const b64 = (b: Buffer): string => b.toString('base64url');
  pubs.ec = createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: b64(pt.subarray(1, 49)), y: b64(pt.subarray(49)) }, format: 'jwk' });
  pubs.ed = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64(Buffer.from(ed[1]!, 'hex')) }, format: 'jwk' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const msg = Buffer.from('backend test');
const h256 = createHash('sha256').update(msg).digest();
const h384 = createHash('sha384').update(msg).digest();

describe('pkcs11 backend', () => {
  let b: Pkcs11Backend;
  let keys: Record<string, KeyRecord>;
  beforeAll(async () => {
    b = new Pkcs11Backend({ library: LIB, tokenLabel: 'bk', pin: PIN });
    await b.start();
    keys = Object.fromEntries(b.tokens()[0]!.keys.map((k) => [k.label, k]));
  });
  afterAll(async () => b.close());

  it('lists keys without certificates, taking the public key from the token', () => {
    expect(Object.keys(keys)).toEqual(['rsa', 'ec', 'ed']); // ordered by CKA_ID
    expect(keys.rsa).toMatchObject({ type: 'rsa', bits: 2048, chain: [] });
    expect(keys.ec).toMatchObject({ type: 'ec', bits: 384, curve: 'P-384' });
    expect(keys.ed).toMatchObject({ type: 'ed25519', bits: 256 });
    for (const l of ['rsa', 'ec', 'ed']) {
      expect(keys[l]!.certificate).toBeUndefined();
      expect(keys[l]!.spki.equals(pubs[l]!.export({ type: 'spki', format: 'der' }))).toBe(true);
    }
    expect(keys.ed!.mechanisms).toEqual([C.CKM_EDDSA]);
    // and the Ed25519 key lands on its own slot
    expect(buildSlots(b.tokens()).map((s) => s.slot_id)).toEqual([0, 1]);
    expect(b.generation()).not.toBe(0n);
  });

  it('signs Ed25519 (EDDSA over the message), ECDSA P-384, RSA PKCS#1 and PSS; node:crypto verifies', async () => {
    const ed = await b.sign(keys.ed!, { mechanism: C.CKM_EDDSA, hashAlg: 0, mgf: 0, saltLen: 0, data: msg });
    expect(ed.length).toBe(64);
    expect(verify(null, msg, pubs.ed!, ed)).toBe(true);
    const ec = await b.sign(keys.ec!, { mechanism: C.CKM_ECDSA, hashAlg: C.CKM_SHA384, mgf: 0, saltLen: 0, data: h384 });
    expect(ec.length).toBe(96);
    expect(verify('sha384', msg, { key: pubs.ec!, dsaEncoding: 'ieee-p1363' }, ec)).toBe(true);
    const pss = await b.sign(keys.rsa!, { mechanism: C.CKM_RSA_PKCS_PSS, hashAlg: C.CKM_SHA256, mgf: C.CKG_MGF1_SHA256, saltLen: 0, data: h256 });
    expect(verify('sha256', msg, { key: pubs.rsa!, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 0 }, pss)).toBe(true);
    // raw CKM_RSA_PKCS input that is not a DigestInfo (hash_alg 0): checked by public-key recovery
    const raw = Buffer.from('arbitrary data');
    const sig = await b.sign(keys.rsa!, { mechanism: C.CKM_RSA_PKCS, hashAlg: 0, mgf: 0, saltLen: 0, data: raw });
    const { publicDecrypt } = await import('node:crypto');
    expect(publicDecrypt({ key: pubs.rsa!, padding: constants.RSA_PKCS1_PADDING }, sig).equals(raw)).toBe(true);
  });

  it("token errors about the daemon's own session are not passed to the tool as if they were the tool's", async () => {
    // SoftHSMv2 answers PSS with an MGF1 hash other than hashAlg with CKR_ARGUMENTS_BAD; the tool
    // gets CKR_MECHANISM_PARAM_INVALID (its arguments were fine, its parameters were not)
    const err = await Promise.resolve()
      .then(() => b.sign(keys.rsa!, { mechanism: C.CKM_RSA_PKCS_PSS, hashAlg: C.CKM_SHA256, mgf: C.CKG_MGF1_SHA1, saltLen: 32, data: h256 }))
      .then(() => undefined, (e: unknown) => e as { ckr?: number; message: string });
    expect(err?.ckr).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(err?.message).toMatch(/CKR_ARGUMENTS_BAD/); // the log line keeps what the token said
  });

  it('first signature of a key goes to the thread pool, then fast keys sign on the event loop', async () => {
    const fresh = new Pkcs11Backend({ library: LIB, tokenLabel: 'bk', pin: PIN, syncThresholdUs: 1_000_000 });
    await fresh.start();
    const k = fresh.tokens()[0]!.keys.find((x) => x.label === 'ec')!;
    const params = { mechanism: C.CKM_ECDSA, hashAlg: C.CKM_SHA384, mgf: 0, saltLen: 0, data: h384 };
    const first = fresh.sign(k, params);
    expect(first).toBeInstanceOf(Promise);
    await first;
    const second = fresh.sign(k, params);
    expect(Buffer.isBuffer(second)).toBe(true); // synchronous: no thread hop
    expect(verify('sha384', msg, { key: pubs.ec!, dsaEncoding: 'ieee-p1363' }, second as Buffer)).toBe(true);
    expect(fresh.counters).toEqual({ sync: 1, async: 1 });
    await fresh.close();

    // threshold 0: never on the event loop; concurrent signs use separate sessions (pool of 2 here)
    const slow = new Pkcs11Backend({ library: LIB, tokenLabel: 'bk', pin: PIN, syncThresholdUs: 0, maxAsyncSessions: 2 });
    await slow.start();
    const rk = slow.tokens()[0]!.keys.find((x) => x.label === 'rsa')!;
    const sigs = await Promise.all(
      Array.from({ length: 12 }, () => slow.sign(rk, { mechanism: C.CKM_RSA_PKCS_PSS, hashAlg: C.CKM_SHA256, mgf: C.CKG_MGF1_SHA256, saltLen: 32, data: h256 })),
    );
    for (const s of sigs) expect(verify('sha256', msg, { key: pubs.rsa!, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, s)).toBe(true);
    expect(slow.counters).toEqual({ sync: 0, async: 12 });
    await slow.close();
  });

  it('unknown token label and a missing library say what to fix', async () => {
    await expect(new Pkcs11Backend({ library: LIB, tokenLabel: 'nope', pin: PIN }).start()).rejects.toMatchObject({
      code: 'SIGNBRIDGE_ERR_TOKEN_NOT_FOUND',
      message: expect.stringContaining('"bk"'),
    });
    await expect(new Pkcs11Backend({ library: '/nonexistent/libx.so', tokenLabel: 'bk', pin: PIN }).start()).rejects.toMatchObject({
      code: 'SIGNBRIDGE_ERR_PKCS11_LIBRARY',
      message: expect.stringContaining('--pkcs11-library'),
    });
  });
});

// After the backend above has closed: a login already held in this process would hide a wrong PIN.
describe('pkcs11 backend log-in', () => {
  it('a wrong PIN: SIGNBRIDGE_ERR_PIN_INCORRECT with CKR_PIN_INCORRECT, the PIN nowhere in the error', async () => {
    const wrong = 'wrong-pin-77';
    const x = new Pkcs11Backend({ library: LIB, tokenLabel: 'bk', pin: wrong });
    const e = await x.start().then(() => undefined, (err: unknown) => err as { code: string; ckr: number; message: string });
    expect(e).toMatchObject({ code: 'SIGNBRIDGE_ERR_PIN_INCORRECT', ckr: C.CKR_PIN_INCORRECT });
    expect(JSON.stringify(e) + e!.message).not.toContain(wrong);
  });

});
