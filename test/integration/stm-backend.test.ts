// The stm backend against the real STM emulator (HTTPS, mTLS/API key, keys in SoftHSMv2), in
// process. Signatures are verified with node:crypto against the certificates the emulator issued
// — never against anything the backend computed; faults are injected by the emulator and counted
// by its own stats.
import { X509Certificate, constants, createHash, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StmError } from '../../src/backends/stm/errors.js';
import { CKR_FUNCTION_REJECTED } from '../../src/core/pkcs11.js';
import { StmBackend, type StmBackendOptions } from '../../src/backends/stm/index.js';
import { HASHES } from '../../src/backends/stm/sigalg.js';
import type { SignParams } from '../../src/backends/types.js';
import { toPem } from '../../src/core/der.js';
import type { KeyRecord } from '../../src/core/keys.js';
import * as C from '../../src/core/pkcs11.js';
import { buildCertificate, nodeKeySigner } from '../../src/core/x509-builder.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';

let emu: TestEmulator;
let backend: StmBackend;
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(s) });
const work = mkdtempSync(join(tmpdir(), 'sb-stm-be-'));
const msg = Buffer.from('signbridge stm backend test');

function options(extra: Partial<StmBackendOptions> = {}): StmBackendOptions {
  return {
    host: emu.env.SM_HOST!,
    credentials: { clientCertFile: emu.env.SM_CLIENT_CERT_FILE, clientCertPassword: emu.env.SM_CLIENT_CERT_PASSWORD, caFile: emu.env.SIGNBRIDGE_STM_CA_FILE },
    refreshS: 0,
    logger,
    userAgent: 'signbridge/test (linux; x64)',
    ...extra,
  };
}

const key = (label: string): KeyRecord => {
  const k = backend.tokens()[0]!.keys.find((x) => x.label === label);
  if (!k) throw new Error(`no key ${label}; have ${backend.tokens()[0]!.keys.map((x) => x.label).join(', ')}`);
  return k;
};
const certKey = (k: KeyRecord) => new X509Certificate(k.certificate!).publicKey;
const digestInfo = (h: (typeof HASHES)[number], m = msg) => Buffer.concat([h.prefix, createHash(h.name).update(m).digest()]);
const sha = (name: string, m = msg) => createHash(name).update(m).digest();
// backend.sign's two arguments: the key (as tokens() lists it) and what to sign
const req = (k: KeyRecord, mechanism: number, data: Buffer, o: Partial<SignParams> = {}): [KeyRecord, SignParams] => [k, { mechanism, hashAlg: 0, mgf: 0, saltLen: 0, data, ...o }];
async function refusal(p: Promise<unknown>): Promise<StmError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(StmError);
  return e as StmError;
}

beforeAll(async () => {
  emu = await startTestEmulator();
  backend = new StmBackend(options());
  await backend.start();
}, 120_000);
afterAll(async () => {
  await backend?.close();
  await emu?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('discovery', () => {
  it('serves the seed keypairs under their aliases, CKA_ID = keypair UUID, chains to the emulator CA', () => {
    const t = backend.tokens()[0]!;
    expect(t.label).toBe('signbridge-stm');
    expect(t.serial).toMatch(/^[0-9a-f]{16}$/);
    expect(t.keys.map((k) => k.label)).toEqual(['codesign-ec', 'codesign-rsa']);
    const ca = new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_STM_CA_FILE!));
    for (const kp of emu.keypairs()) {
      const k = key(kp.alias);
      expect(k.id.toString('hex')).toBe(kp.id.replace(/-/g, ''));
      expect(new X509Certificate(k.certificate!).verify(ca.publicKey)).toBe(true);
      expect(k.chain.some((c) => c.equals(ca.raw))).toBe(true);
    }
    expect(key('codesign-rsa')).toMatchObject({ type: 'rsa', bits: 3072 });
    expect(key('codesign-ec')).toMatchObject({ type: 'ec', bits: 256, curve: 'P-256' });
    expect(key('codesign-rsa').mechanisms).toContain(C.CKM_SHA256_RSA_PKCS_PSS);
  });

  it('a key filter serves only the keys named (alias or keypair id)', async () => {
    const ecId = emu.keypairs().find((k) => k.alias === 'codesign-ec')!.id;
    const b = new StmBackend(options({ keyFilter: [ecId, 'no-such-alias'] }));
    await b.start();
    try {
      expect(b.tokens()[0]!.keys.map((k) => k.label)).toEqual(['codesign-ec']);
      expect(logLines.some((l) => l.includes('no-such-alias') && l.includes('--stm-key-filter'))).toBe(true);
    } finally {
      await b.close();
    }
  }, 30_000);
});

describe('signing, verified with node:crypto against the emulator-issued certificates', () => {
  it('RSA PKCS#1 v1.5 over SHA-256/384/512 DigestInfos, and PSS', async () => {
    const k = key('codesign-rsa');
    for (const h of HASHES.filter((x) => x.stm)) {
      const sig = await backend.sign(...req(k, C.CKM_RSA_PKCS, digestInfo(h), { hashAlg: h.ckm }));
      expect(sig.length).toBe(384);
      expect(verify(h.name, msg, certKey(k), sig)).toBe(true);
      const pss = await backend.sign(...req(k, C.CKM_RSA_PKCS_PSS, sha(h.name), { hashAlg: h.ckm, mgf: h.mgf, saltLen: h.len }));
      expect(verify(h.name, msg, { key: certKey(k), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.len }, pss)).toBe(true);
    }
  });

  it('ECDSA: the service answers DER, the tool gets r‖s of 64 bytes', async () => {
    const k = key('codesign-ec');
    for (const h of ['sha256', 'sha384', 'sha512']) {
      const sig = await backend.sign(...req(k, C.CKM_ECDSA, sha(h)));
      expect(sig.length).toBe(64);
      expect(verify(h, msg, { key: certKey(k), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
  });

  it('one warm connection: many signatures, no new TLS handshake', async () => {
    const k = key('codesign-ec');
    const before = emu.stats().tlsHandshakes;
    const sigs = await Promise.all(Array.from({ length: 6 }, () => backend.sign(...req(k, C.CKM_ECDSA, sha('sha256')))));
    for (const s of sigs) expect(verify('sha256', msg, { key: certKey(k), dsaEncoding: 'ieee-p1363' }, s)).toBe(true);
    // concurrent requests may open a few more connections, sequential ones reuse them
    const mid = emu.stats().tlsHandshakes;
    for (let i = 0; i < 5; i++) await backend.sign(...req(k, C.CKM_ECDSA, sha('sha256')));
    expect(emu.stats().tlsHandshakes).toBe(mid);
    expect(mid - before).toBeLessThanOrEqual(6);
  });

  it('a sign answer with only an id: the signature is fetched from GET signatures/{id}', async () => {
    emu.setFaults({ signResponseIdOnly: true });
    try {
      const k = key('codesign-rsa');
      const h = HASHES.find((x) => x.name === 'sha256')!;
      const sig = await backend.sign(...req(k, C.CKM_RSA_PKCS, digestInfo(h)));
      expect(verify('sha256', msg, certKey(k), sig)).toBe(true);
    } finally {
      emu.setFaults({});
    }
  });

  it('refresh picks up a new Ed25519 keypair (generation changes); ED25519 signs the message', async () => {
    const gen = backend.generation();
    await emu.createKeypair({ alias: 'codesign-ed', key_alg: 'EdDSA' });
    expect(await backend.refresh('test')).toBe(true);
    expect(backend.generation()).not.toBe(gen);
    expect(await backend.refresh('test')).toBe(false); // nothing changed since
    const k = key('codesign-ed');
    expect(k.type).toBe('ed25519');
    const sig = await backend.sign(...req(k, C.CKM_EDDSA, msg));
    expect(verify(null, msg, certKey(k), sig)).toBe(true);
  }, 30_000);

  it('a signature that does not verify against the certificate never reaches the tool (CKR_DEVICE_ERROR)', async () => {
    const k = key('codesign-ec');
    const wrong = { ...k, publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey };
    const e = await refusal(backend.sign(...req(wrong, C.CKM_ECDSA, sha('sha256'))));
    expect(e.ckr).toBe(C.CKR_DEVICE_ERROR);
    expect(e.message).toMatch(/does not verify against its certificate's public key/);
  });
});

describe('faults: retries, deadlines (emulator stats prove what happened)', () => {
  it('429 with Retry-After and 503 are retried; the signature still verifies', async () => {
    const k = key('codesign-ec');
    emu.resetStats();
    emu.setFaults({ fail429Next: 2, retryAfterS: 0, fail503Next: 1 });
    const t0 = Date.now();
    const sig = await backend.sign(...req(k, C.CKM_ECDSA, sha('sha256')));
    expect(verify('sha256', msg, { key: certKey(k), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    const s = emu.stats();
    expect(s.responses['429']).toBe(2);
    expect(s.responses['503']).toBe(1);
    expect(s.responses['200']).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    emu.setFaults({});
  });

  it('a dropped connection is retried on a new one', async () => {
    const k = key('codesign-rsa');
    emu.resetStats();
    emu.setFaults({ dropNext: 1 });
    const h = HASHES.find((x) => x.name === 'sha256')!;
    const sig = await backend.sign(...req(k, C.CKM_RSA_PKCS, digestInfo(h)));
    expect(verify('sha256', msg, certKey(k), sig)).toBe(true);
    expect(emu.stats().dropped).toBe(1);
    emu.setFaults({});
  });

  it('a sign that outlives its deadline fails in bounded time with CKR_DEVICE_ERROR', async () => {
    const b = new StmBackend(options({ signTimeoutMs: 400 }));
    await b.start();
    try {
      emu.setFaults({ latencyMs: 3000 });
      const k = b.tokens()[0]!.keys.find((x) => x.label === 'codesign-ec')!;
      const t0 = Date.now();
      const e = await refusal(b.sign(...req(k, C.CKM_ECDSA, sha('sha256'))));
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(e.ckr).toBe(C.CKR_DEVICE_ERROR);
      expect(e.message).toMatch(/did not complete the signature with codesign-ec within 400 ms/);
    } finally {
      emu.setFaults({});
      await b.close();
    }
  }, 30_000);

  it('429 without end: gives up within the deadline with CKR_DEVICE_ERROR', async () => {
    const b = new StmBackend(options({ signTimeoutMs: 1500 }));
    await b.start();
    try {
      emu.setFaults({ rate429: 1, retryAfterS: null, scope: 'sign' });
      const k = b.tokens()[0]!.keys.find((x) => x.label === 'codesign-ec')!;
      const t0 = Date.now();
      const e = await refusal(b.sign(...req(k, C.CKM_ECDSA, sha('sha256'))));
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(e.ckr).toBe(C.CKR_DEVICE_ERROR);
      expect(b.stats.retries).toBeGreaterThan(0);
    } finally {
      emu.setFaults({});
      await b.close();
    }
  }, 30_000);
});

describe('refusals: each its CK_RV and a sentence saying what to do', () => {
  let id: string;
  let k: KeyRecord;
  beforeAll(async () => {
    id = (await emu.createKeypair({ alias: 'policy-ec', key_alg: 'ECDSA', curve: 'P-256' })).id;
    await backend.refresh('test');
    k = key('policy-ec');
  }, 30_000);

  it('release window closed, signature limit used up → CKR_FUNCTION_REJECTED', async () => {
    emu.setReleaseWindow(id, false);
    let e = await refusal(backend.sign(...req(k, C.CKM_ECDSA, sha('sha256'))));
    expect(e.ckr).toBe(CKR_FUNCTION_REJECTED);
    expect(e.message).toMatch(/release window of keypair policy-ec is closed/);
    emu.setReleaseWindow(id, true);
    emu.setSignatureLimit(id, 0);
    e = await refusal(backend.sign(...req(k, C.CKM_ECDSA, sha('sha256'))));
    expect(e.ckr).toBe(CKR_FUNCTION_REJECTED);
    expect(e.message).toMatch(/used up its signature limit/);
    emu.setSignatureLimit(id, null);
    await backend.sign(...req(k, C.CKM_ECDSA, sha('sha256')));
  });

  it('a suspended keypair → CKR_KEY_FUNCTION_NOT_PERMITTED, not retried', async () => {
    emu.resetStats();
    await emu.suspendKeypair(id);
    const e = await refusal(backend.sign(...req(k, C.CKM_ECDSA, sha('sha256'))));
    expect(e.ckr).toBe(C.CKR_KEY_FUNCTION_NOT_PERMITTED);
    expect(e.message).toMatch(/STM refused: the keypair policy-ec is suspended .*; ask an STM admin to resume it/);
    expect(emu.stats().requests['POST /keypairs/{id}/sign']).toBe(1);
  });
});

describe('credentials', () => {
  it('API key only (no client certificate) works', async () => {
    const b = new StmBackend(options({ apiKey: emu.env.SM_API_KEY, credentials: { caFile: emu.env.SIGNBRIDGE_STM_CA_FILE } }));
    await b.start();
    try {
      const kk = b.tokens()[0]!.keys.find((x) => x.label === 'codesign-ec')!;
      const sig = await b.sign(...req(kk, C.CKM_ECDSA, sha('sha256')));
      expect(verify('sha256', msg, { key: certKey(kk), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    } finally {
      await b.close();
    }
  });

  it('PEM client certificate + key files work', async () => {
    const b = new StmBackend(options({ credentials: { clientCertFile: emu.env.SIGNBRIDGE_STM_CLIENT_CERT_PEM, clientKeyFile: emu.env.SIGNBRIDGE_STM_CLIENT_KEY_PEM, caFile: emu.env.SIGNBRIDGE_STM_CA_FILE } }));
    await b.start();
    expect(b.tokens()[0]!.keys.length).toBeGreaterThanOrEqual(2);
    await b.close();
  });

  it('a wrong API key: start fails with CKR_USER_NOT_LOGGED_IN and never shows the key', async () => {
    const bad = 'wrong-api-key-0123456789';
    const b = new StmBackend(options({ apiKey: bad, credentials: { caFile: emu.env.SIGNBRIDGE_STM_CA_FILE } }));
    const e = await refusal(b.start());
    expect(e.stmCode).toBe('SIGNBRIDGE_ERR_STM_AUTH');
    expect(e.ckr).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(e.message).toMatch(/refused the credentials \(HTTP 401.*check SM_API_KEY/);
    expect(e.message).not.toContain(bad);
    expect(logLines.join('\n')).not.toContain(bad);
  });

  it('a client certificate from another CA: start fails with the credentials error', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const cert = await buildCertificate({
      subject: { CN: 'not issued by the emulator' },
      subjectPublicKey: spki,
      sign: nodeKeySigner(privateKey, 'ecdsa-with-SHA256'),
    });
    const certFile = join(work, 'other.crt');
    const keyFile = join(work, 'other.key');
    writeFileSync(certFile, toPem(cert.der));
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const b = new StmBackend(options({ credentials: { clientCertFile: certFile, clientKeyFile: keyFile, caFile: emu.env.SIGNBRIDGE_STM_CA_FILE } }));
    const e = await refusal(b.start());
    expect(e.ckr).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(e.message).toMatch(/SM_CLIENT_CERT_FILE/);
  });

  it('a wrong PKCS#12 password is a configuration error that names the variable, not the password', async () => {
    const b = new StmBackend(options({ credentials: { clientCertFile: emu.env.SM_CLIENT_CERT_FILE, clientCertPassword: 'not-the-password', caFile: emu.env.SIGNBRIDGE_STM_CA_FILE } }));
    const e = await refusal(b.start());
    expect(e.stmCode).toBe('SIGNBRIDGE_ERR_STM_CONFIG');
    expect(e.message).toMatch(/SM_CLIENT_CERT_PASSWORD/);
    expect(e.message).not.toContain('not-the-password');
  });

  it('without the emulator CA the server is not trusted: a clear TLS error, not a retry loop', async () => {
    // (API key only: a PKCS#12 that carries the CA makes Node trust that CA for the connection)
    const b = new StmBackend(options({ apiKey: emu.env.SM_API_KEY, credentials: {}, startTimeoutMs: 10_000 }));
    const t0 = Date.now();
    const e = await refusal(b.start());
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(e.stmCode).toBe('SIGNBRIDGE_ERR_STM_TLS');
    expect(e.message).toMatch(/not trusted.*SM_CA_FILE/);
  });
});
