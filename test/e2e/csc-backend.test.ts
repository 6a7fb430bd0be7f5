// The csc backend in-process against the real CSC emulator: the OAuth token renewed before it
// expires (no request ever answered 401), a revoked token renewed once, and retries only where
// the service cannot have processed the request (503 is retried; a dropped signHash is not: it
// may have spent SAD signatures). Counts are the emulator's own; signatures are checked with
// node:crypto against the certificate the emulator returns.
import { X509Certificate, createHash, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CscBackend } from '../../src/backends/csc/index.js';
import type { KeyRecord } from '../../src/core/keys.js';
import { CKM_ECDSA, CKR_DEVICE_ERROR } from '../../src/core/pkcs11.js';
import { startTestCscEmulator, type TestCscEmulator } from '../helpers/csc-emulator.js';

let emu: TestCscEmulator;
let backend: CscBackend;
let key: KeyRecord;
let cert: X509Certificate;
const req = (k: string): number => emu.stats().requests[k] ?? 0;
const SIGN_HASH = 'POST /csc/v1/signatures/signHash';
const TOKEN = 'POST /oauth2/token';

async function authorize(): Promise<void> {
  await backend.sendOtp('doc-ec');
  const otp = Buffer.from(readFileSync(join(emu.stateDir, 'otp', 'doc-ec'), 'utf8').trim());
  expect(await backend.authorize(key, otp)).toBeGreaterThan(0);
}

async function signOnce(text: string): Promise<boolean> {
  const digest = createHash('sha256').update(text).digest();
  const sig = await backend.sign(key, { mechanism: CKM_ECDSA, hashAlg: 0x250, mgf: 0, saltLen: 0, data: digest });
  return verify('sha256', Buffer.from(text), { key: cert.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
}

beforeAll(async () => {
  emu = await startTestCscEmulator();
  const set = await emu.admin('/settings', { tokenTtlS: 2 });
  expect(set.status, set.text).toBe(200);
  backend = new CscBackend({
    url: emu.env.SIGNBRIDGE_CSC_URL!,
    clientId: emu.env.SIGNBRIDGE_CSC_CLIENT_ID!,
    clientSecret: emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET!,
    caFile: emu.env.SIGNBRIDGE_CSC_CA_FILE!,
    logger: pino({ level: 'silent' }),
    retry: { baseMs: 20, capMs: 100, maxAttempts: 5 },
  });
  await backend.start();
  key = backend.tokens()[0]!.keys.find((k) => k.label === 'doc-ec')!;
  expect(key.alwaysAuthenticate).toBe(true);
  const info = await emu.csc('/csc/v1/credentials/info', { credentialID: 'doc-ec', certificates: 'single' });
  cert = new X509Certificate(Buffer.from((info.json as { cert: { certificates: string[] } }).cert.certificates[0]!, 'base64'));
  await authorize();
}, 120_000);

afterAll(async () => {
  await backend?.close();
  await emu?.stop();
});

describe('csc backend: token and retries', () => {
  it('renews the OAuth token before it expires: signatures 2.5 s apart with a 2 s token, no 401 answered', async () => {
    const tokens = req(TOKEN);
    expect(await signOnce('first')).toBe(true);
    await new Promise((r) => setTimeout(r, 2500));
    expect(await signOnce('second')).toBe(true);
    expect(req(TOKEN)).toBeGreaterThan(tokens);
    expect(emu.stats().responses['401'] ?? 0).toBe(0);
  }, 30_000);

  it('a token the service revoked (401 invalid_token) is renewed once and the call sent again', async () => {
    const ex = await emu.admin('/expire', { sads: false });
    expect(ex.status, ex.text).toBe(200);
    await emu.admin('/settings', { tokenTtlS: 3600 });
    const tokens = req(TOKEN);
    expect(await signOnce('after revocation')).toBe(true);
    expect(req(TOKEN)).toBe(tokens + 1);
  }, 30_000);

  it('503 on signHash (not processed) is retried and signs', async () => {
    emu.setFaults({ fail503Next: 1, scope: 'sign' });
    const before = req(SIGN_HASH);
    expect(await signOnce('after a 503')).toBe(true);
    expect(req(SIGN_HASH)).toBe(before + 2);
  }, 30_000);

  it('a signHash whose connection drops (maybe processed) is not sent again: CKR_DEVICE_ERROR', async () => {
    emu.setFaults({ dropNext: 1, scope: 'sign' });
    const before = req(SIGN_HASH);
    const e = await signOnce('dropped').then(() => undefined, (x: unknown) => x as { ckr?: number; message: string });
    expect(e?.ckr, e?.message).toBe(CKR_DEVICE_ERROR);
    expect(req(SIGN_HASH)).toBe(before + 1);
    emu.setFaults({});
    expect(await signOnce('after the drop')).toBe(true);
  }, 30_000);
});
