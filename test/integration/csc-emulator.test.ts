// Contract tests of the CSC emulator's API (docs/csc-emulator.md; CSC API v1.0.4.0): OAuth 2.0,
// info, credentials/list|info|sendOTP|authorize, signatures/signHash. A real HTTPS server and
// real SoftHSMv2 keys; every signature is verified with node:crypto against the credential's
// certificate, and every certificate against the emulator CA.
import { constants as C, createHash, verify, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seq, explicit, oid, int, nul } from '../../src/core/der.js';
import { post, startTestCscEmulator, type TestCscEmulator } from '../helpers/csc-emulator.js';
import type { ApiResponse } from '../helpers/emulator.js';

let emu: TestCscEmulator;
let token: string;
const V1 = '/csc/v1';
const csc = (path: string, body: unknown = {}, t: string | null = token): Promise<ApiResponse> => emu.csc(`${V1}/${path}`, body, t);
const sha = (alg: string, msg: string): string => createHash(alg).update(msg).digest('base64');

function expectCscError(r: ApiResponse, status: number, code: string, description?: RegExp): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  expect(r.json.error).toBe(code);
  expect(typeof r.json.error_description).toBe('string');
  if (description) expect(r.json.error_description).toMatch(description);
}

async function certOf(id: string): Promise<X509Certificate> {
  const r = await csc('credentials/info', { credentialID: id, certificates: 'single' });
  expect(r.status, r.text).toBe(200);
  return new X509Certificate(Buffer.from(r.json.cert.certificates[0], 'base64'));
}

const tokenForm = (fields: Record<string, string>, headers: Record<string, string> = {}): Promise<ApiResponse> =>
  post(emu.agent, `${emu.url}/oauth2/token`, new URLSearchParams(fields).toString(), { 'content-type': 'application/x-www-form-urlencoded', ...headers });

beforeAll(async () => {
  emu = await startTestCscEmulator();
  token = await emu.token();
});
afterAll(async () => {
  await emu?.stop();
});

describe('info and OAuth 2.0', () => {
  it('info needs no token and names the oauth2 base URL, the methods and authType', async () => {
    const r = await csc('info', { lang: 'en-US' }, null);
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ specs: '1.0.4.0', authType: ['oauth2client'], oauth2: emu.env.SIGNBRIDGE_CSC_URL, lang: 'en-US' });
    for (const m of ['credentials/list', 'credentials/info', 'credentials/sendOTP', 'credentials/authorize', 'credentials/extendTransaction', 'signatures/signHash']) {
      expect(r.json.methods).toContain(m);
    }
  });

  it('client credentials by Basic or in the body, form or JSON; the token is a bearer with an expiry and a refresh token', async () => {
    const id = emu.env.SIGNBRIDGE_CSC_CLIENT_ID!;
    const secret = emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET!;
    const basic = await tokenForm({ grant_type: 'client_credentials' }, { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
    expect(basic.status, basic.text).toBe(200);
    expect(basic.json).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 3600, refresh_token: expect.any(String) });
    expect(basic.headers['cache-control']).toBe('no-store');
    const viaJson = await post(emu.agent, `${emu.url}${V1}/oauth2/token`, JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }), {
      'content-type': 'application/json',
    });
    expect(viaJson.status, viaJson.text).toBe(200);
    expect((await csc('credentials/list', {}, basic.json.access_token)).status).toBe(200);
    expect((await csc('credentials/list', {}, viaJson.json.access_token)).status).toBe(200);
  });

  it('a wrong secret, an unknown grant and a missing grant are refused with RFC 6749 codes', async () => {
    const id = emu.env.SIGNBRIDGE_CSC_CLIENT_ID!;
    const bad = await tokenForm({ grant_type: 'client_credentials', client_id: id, client_secret: 'not-the-secret' });
    expectCscError(bad, 401, 'invalid_client');
    expect(bad.headers['www-authenticate']).toMatch(/^Basic /);
    expect(bad.text).not.toContain(emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET!);
    expectCscError(await tokenForm({ grant_type: 'client_credentials' }), 401, 'invalid_client', /SIGNBRIDGE_CSC_CLIENT_ID/);
    const secret = emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET!;
    expectCscError(await tokenForm({ grant_type: 'password', client_id: id, client_secret: secret }), 400, 'unsupported_grant_type');
    expectCscError(await tokenForm({ client_id: id, client_secret: secret }), 400, 'invalid_request', /grant_type/);
    const mangled = Buffer.from('%E0%A4%A:x').toString('base64');
    expectCscError(await tokenForm({ grant_type: 'client_credentials' }, { authorization: `Basic ${mangled}` }), 401, 'invalid_client', /URL-encoded/);
  });

  it('unknown paths → 404 not_found, other methods → 405, a body that is not JSON → invalid_request', async () => {
    expectCscError(await csc('credentials/nothing'), 404, 'not_found', /csc\/v1/);
    expectCscError(await post(emu.agent, `${emu.url}${V1}/credentials/list`, undefined, {}, 'GET'), 405, 'method_not_allowed');
    expectCscError(await post(emu.agent, `${emu.url}${V1}/credentials/list`, '{nope', { 'content-type': 'application/json', authorization: `Bearer ${token}` }), 400, 'invalid_request', /JSON/);
    expectCscError(await post(emu.agent, `${emu.url}${V1}/credentials/list`, '[]', { 'content-type': 'application/json', authorization: `Bearer ${token}` }), 400, 'invalid_request', /object/);
  });

  it('refresh_token gives a new access token once (rotated); a revoked token is refused', async () => {
    const creds = { client_id: emu.env.SIGNBRIDGE_CSC_CLIENT_ID!, client_secret: emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET! };
    const first = await tokenForm({ grant_type: 'client_credentials', ...creds });
    const refreshed = await tokenForm({ grant_type: 'refresh_token', refresh_token: first.json.refresh_token, ...creds });
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(refreshed.json.access_token).not.toBe(first.json.access_token);
    expect((await csc('credentials/list', {}, refreshed.json.access_token)).status).toBe(200);
    expectCscError(await tokenForm({ grant_type: 'refresh_token', refresh_token: first.json.refresh_token, ...creds }), 400, 'invalid_grant');
    const rv = await post(emu.agent, `${emu.url}/oauth2/revoke`, new URLSearchParams({ token: refreshed.json.access_token, ...creds }).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(rv.status, rv.text).toBe(200);
    expectCscError(await csc('credentials/list', {}, refreshed.json.access_token), 401, 'invalid_token');
  });

  it('API calls without, with a bogus or with an expired token → 401 invalid_token with a Bearer challenge', async () => {
    const none = await csc('credentials/list', {}, null);
    expectCscError(none, 401, 'invalid_token', /oauth2\/token/);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    expectCscError(await csc('credentials/list', {}, 'bogus'), 401, 'invalid_token');
    const t = await emu.token();
    const ex = await emu.admin('/expire', { sads: false });
    expect(ex.status, ex.text).toBe(200);
    expectCscError(await csc('credentials/list', {}, t), 401, 'invalid_token', /expired/);
    token = await emu.token();
  });
});

describe('credentials/list and credentials/info', () => {
  it('lists the seed credentials, paged by maxResults/pageToken', async () => {
    const all = await csc('credentials/list');
    expect(all.status, all.text).toBe(200);
    expect(all.json).toEqual({ credentialIDs: ['doc-rsa', 'doc-ec'] });
    const p1 = await csc('credentials/list', { maxResults: 1 });
    expect(p1.json).toEqual({ credentialIDs: ['doc-rsa'], nextPageToken: expect.any(String) });
    const p2 = await csc('credentials/list', { maxResults: 1, pageToken: p1.json.nextPageToken });
    expect(p2.json).toEqual({ credentialIDs: ['doc-ec'] });
    expectCscError(await csc('credentials/list', { maxResults: 0 }), 400, 'invalid_request');
  });

  it('doc-rsa: RSA 3072, explicit auth with an online OTP and no PIN, a chain to the emulator CA, certInfo that matches the certificate', async () => {
    const r = await csc('credentials/info', { credentialID: 'doc-rsa', certificates: 'chain', certInfo: true, authInfo: true });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({
      status: 'ACTIVE',
      key: { status: 'enabled', len: 3072 },
      cert: { status: 'valid' },
      authMode: 'explicit',
      SCAL: '1',
      PIN: { presence: 'false' },
      OTP: { presence: 'true', type: 'online' },
      multisign: expect.any(Number),
    });
    expect(r.json.key.algo).toEqual(expect.arrayContaining(['1.2.840.113549.1.1.1', '1.2.840.113549.1.1.11', '1.2.840.113549.1.1.10']));
    const [leafB64, caB64] = r.json.cert.certificates as string[];
    const leaf = new X509Certificate(Buffer.from(leafB64!, 'base64'));
    const ca = new X509Certificate(Buffer.from(caB64!, 'base64'));
    expect(ca.fingerprint256).toBe(new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_CSC_CA_FILE!)).fingerprint256);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.4'); // emailProtection: openssl cms and NSS accept it for signing
    expect(r.json.cert.serialNumber).toBe(leaf.serialNumber.toLowerCase());
    expect(r.json.cert.subjectDN).toContain('doc-rsa');
    expect(r.json.cert.validTo).toMatch(/^\d{14}Z$/);
  });

  it('doc-ec: P-256 with its curve OID; certificates "none" leaves them out; bad parameters → invalid_request', async () => {
    const r = await csc('credentials/info', { credentialID: 'doc-ec', certificates: 'none' });
    expect(r.status, r.text).toBe(200);
    expect(r.json.key).toMatchObject({ len: 256, curve: '1.2.840.10045.3.1.7' });
    expect(r.json.key.algo).toContain('1.2.840.10045.4.3.2');
    expect(r.json.cert.certificates).toBeUndefined();
    expect((await certOf('doc-ec')).publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expectCscError(await csc('credentials/info', { credentialID: 'nope' }), 400, 'invalid_request', /credentialID/);
    expectCscError(await csc('credentials/info', {}), 400, 'invalid_request', /credentialID/);
    expectCscError(await csc('credentials/info', { credentialID: 'doc-ec', certificates: 'all' }), 400, 'invalid_request', /certificates/);
  });
});

describe('credentials/sendOTP and credentials/authorize', () => {
  it('sendOTP → 204 and a 6-digit OTP in <stateDir>/otp/<id> (0600); a new one replaces the old', async () => {
    const r = await csc('credentials/sendOTP', { credentialID: 'doc-ec' });
    expect(r.status, r.text).toBe(204);
    const file = join(emu.stateDir, 'otp', 'doc-ec');
    const first = readFileSync(file, 'utf8').trim();
    expect(first).toMatch(/^\d{6}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await csc('credentials/sendOTP', { credentialID: 'doc-ec' });
    const second = readFileSync(file, 'utf8').trim();
    if (second !== first) expectCscError(await csc('credentials/authorize', { credentialID: 'doc-ec', numSignatures: 1, OTP: first }), 400, 'invalid_otp');
    const ok = await csc('credentials/authorize', { credentialID: 'doc-ec', numSignatures: 1, OTP: second });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json).toEqual({ SAD: expect.any(String), expiresIn: 3600 });
  });

  it('an OTP authorises once; a missing OTP, a wrong one, or none sent are refused; three wrong tries void it', async () => {
    await csc('credentials/sendOTP', { credentialID: 'doc-rsa' });
    const otp = readFileSync(join(emu.stateDir, 'otp', 'doc-rsa'), 'utf8').trim();
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1 }), 400, 'invalid_request', /OTP/);
    const wrong = otp === '000000' ? '000001' : '000000';
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: wrong }), 400, 'invalid_otp');
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: 'ööööö1' }), 400, 'invalid_otp'); // 6 characters, 11 bytes
    expect((await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: otp })).status).toBe(200);
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: otp }), 400, 'invalid_otp', /sendOTP/);

    await csc('credentials/sendOTP', { credentialID: 'doc-rsa' });
    const otp2 = readFileSync(join(emu.stateDir, 'otp', 'doc-rsa'), 'utf8').trim();
    const wrong2 = otp2 === '111111' ? '111112' : '111111';
    for (let i = 0; i < 3; i++) expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: wrong2 }), 400, 'invalid_otp');
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-rsa', numSignatures: 1, OTP: otp2 }), 400, 'invalid_otp', /sendOTP/);
  });

  it('numSignatures must be 1..multisign; a hash[] must match it', async () => {
    const info = await csc('credentials/info', { credentialID: 'doc-ec' });
    await csc('credentials/sendOTP', { credentialID: 'doc-ec' });
    const OTP = readFileSync(join(emu.stateDir, 'otp', 'doc-ec'), 'utf8').trim();
    for (const n of [0, info.json.multisign + 1, 1.5, '1']) {
      expectCscError(await csc('credentials/authorize', { credentialID: 'doc-ec', numSignatures: n, OTP }), 400, 'invalid_request', /numSignatures/);
    }
    expectCscError(await csc('credentials/authorize', { credentialID: 'doc-ec', numSignatures: 2, hash: [sha('sha256', 'x')], OTP }), 400, 'invalid_request', /hash/);
  });
});

describe('signatures/signHash', () => {
  const msg = (i: number): string => `document ${i}`;

  it('RSA PKCS#1 v1.5 with SHA-256/384/512, by sha*WithRSA or rsaEncryption + hashAlgo, several hashes per call', async () => {
    const cert = await certOf('doc-rsa');
    const cases = [
      { signAlgo: '1.2.840.113549.1.1.11', hash: 'sha256' },
      { signAlgo: '1.2.840.113549.1.1.12', hash: 'sha384' },
      { signAlgo: '1.2.840.113549.1.1.13', hash: 'sha512' },
      { signAlgo: '1.2.840.113549.1.1.1', hashAlgo: '2.16.840.1.101.3.4.2.1', hash: 'sha256' },
    ];
    const SAD = await emu.authorize('doc-rsa', cases.length * 2);
    for (const c of cases) {
      const hashes = [0, 1].map((i) => sha(c.hash, msg(i)));
      const r = await csc('signatures/signHash', { credentialID: 'doc-rsa', SAD, hash: hashes, signAlgo: c.signAlgo, ...(c.hashAlgo ? { hashAlgo: c.hashAlgo } : {}) });
      expect(r.status, r.text).toBe(200);
      expect(r.json.signatures).toHaveLength(2);
      r.json.signatures.forEach((s: string, i: number) => expect(verify(c.hash, Buffer.from(msg(i)), cert.publicKey, Buffer.from(s, 'base64')), `${c.signAlgo} #${i}`).toBe(true));
      // the wrong message does not verify: the test can fail
      expect(verify(c.hash, Buffer.from(msg(1)), cert.publicKey, Buffer.from(r.json.signatures[0], 'base64'))).toBe(false);
    }
  });

  it('RSA-PSS with hashAlgo (salt = hash length) and with DER signAlgoParams', async () => {
    const cert = await certOf('doc-rsa');
    const SAD = await emu.authorize('doc-rsa', 2);
    const r1 = await csc('signatures/signHash', { credentialID: 'doc-rsa', SAD, hash: [sha('sha256', 'pss')], signAlgo: '1.2.840.113549.1.1.10', hashAlgo: '2.16.840.1.101.3.4.2.1' });
    expect(r1.status, r1.text).toBe(200);
    const key = { key: cert.publicKey, padding: C.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    expect(verify('sha256', Buffer.from('pss'), key, Buffer.from(r1.json.signatures[0], 'base64'))).toBe(true);
    // RSASSA-PSS-params (RFC 8017 A.2.3): SHA-384, MGF1-SHA-384, salt 20
    const sha384 = seq(oid('2.16.840.1.101.3.4.2.2'), nul());
    const params = seq(explicit(0, sha384), explicit(1, seq(oid('1.2.840.113549.1.1.8'), sha384)), explicit(2, int(20)));
    const r2 = await csc('signatures/signHash', { credentialID: 'doc-rsa', SAD, hash: [sha('sha384', 'pss')], signAlgo: '1.2.840.113549.1.1.10', signAlgoParams: params.toString('base64') });
    expect(r2.status, r2.text).toBe(200);
    expect(verify('sha384', Buffer.from('pss'), { ...key, saltLength: 20 }, Buffer.from(r2.json.signatures[0], 'base64'))).toBe(true);
  });

  it('ECDSA P-256 → DER signatures, by ecdsa-with-SHA* or ecPublicKey + hashAlgo', async () => {
    const cert = await certOf('doc-ec');
    const SAD = await emu.authorize('doc-ec', 4);
    const a = await csc('signatures/signHash', { credentialID: 'doc-ec', SAD, hash: [sha('sha256', msg(0)), sha('sha256', msg(1))], signAlgo: '1.2.840.10045.4.3.2' });
    expect(a.status, a.text).toBe(200);
    a.json.signatures.forEach((s: string, i: number) => {
      const der = Buffer.from(s, 'base64');
      expect(der[0]).toBe(0x30);
      expect(verify('sha256', Buffer.from(msg(i)), cert.publicKey, der)).toBe(true);
    });
    const b = await csc('signatures/signHash', { credentialID: 'doc-ec', SAD, hash: [sha('sha384', msg(2))], signAlgo: '1.2.840.10045.2.1', hashAlgo: '2.16.840.1.101.3.4.2.2' });
    expect(b.status, b.text).toBe(200);
    expect(verify('sha384', Buffer.from(msg(2)), cert.publicKey, Buffer.from(b.json.signatures[0], 'base64'))).toBe(true);
  });

  it('the ecdsaFormat setting "raw" answers r‖s (IEEE P1363), as some services do', async () => {
    const cert = await certOf('doc-ec');
    expect((await emu.admin('/settings', { ecdsaFormat: 'raw' })).json.ecdsaFormat).toBe('raw');
    try {
      const SAD = await emu.authorize('doc-ec', 1);
      const r = await csc('signatures/signHash', { credentialID: 'doc-ec', SAD, hash: [sha('sha256', 'raw')], signAlgo: '1.2.840.10045.4.3.2' });
      const sig = Buffer.from(r.json.signatures[0], 'base64');
      expect(sig).toHaveLength(64);
      expect(verify('sha256', Buffer.from('raw'), { key: cert.publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    } finally {
      await emu.admin('/settings', { ecdsaFormat: 'der' });
    }
    expectCscError(await emu.admin('/settings', { ecdsaFormat: 'pem' }), 400, 'invalid_request', /ecdsaFormat/);
  });

  it('a SAD signs numSignatures hashes in all, then is used up; more hashes than it has left signs nothing', async () => {
    const SAD = await emu.authorize('doc-ec', 3);
    const req = (n: number): Promise<ApiResponse> =>
      csc('signatures/signHash', { credentialID: 'doc-ec', SAD, hash: Array.from({ length: n }, (_, i) => sha('sha256', msg(i))), signAlgo: '1.2.840.10045.4.3.2' });
    await emu.resetStats();
    expectCscError(await req(4), 400, 'invalid_sad', /3 more/);
    expect((await req(2)).status).toBe(200);
    expectCscError(await req(2), 400, 'invalid_sad', /1 more/);
    expect((await req(1)).status).toBe(200);
    expectCscError(await req(1), 400, 'invalid_sad', /used up/);
    const stats = (await emu.admin('/stats')).json;
    expect(stats.hashesSigned).toBe(3);
    expect(stats.requests['POST /csc/v1/signatures/signHash']).toBe(5);
  });

  it('concurrent calls cannot overspend a SAD', async () => {
    const SAD = await emu.authorize('doc-ec', 2);
    const body = { credentialID: 'doc-ec', SAD, hash: [sha('sha256', 'a'), sha('sha256', 'b')], signAlgo: '1.2.840.10045.4.3.2' };
    const rs = await Promise.all([csc('signatures/signHash', body), csc('signatures/signHash', body), csc('signatures/signHash', body)]);
    expect(rs.map((r) => r.status).sort()).toEqual([200, 400, 400]);
  });

  it('a SAD of another credential, an unknown or an expired SAD are refused', async () => {
    const rsaSad = await emu.authorize('doc-rsa', 1);
    const body = { credentialID: 'doc-ec', hash: [sha('sha256', 'x')], signAlgo: '1.2.840.10045.4.3.2' };
    expectCscError(await csc('signatures/signHash', { ...body, SAD: rsaSad }), 400, 'invalid_sad', /authorize again/);
    expectCscError(await csc('signatures/signHash', { ...body, SAD: 'bogus' }), 400, 'invalid_sad');
    expectCscError(await csc('signatures/signHash', { ...body }), 400, 'invalid_request', /SAD/);
    const ecSad = await emu.authorize('doc-ec', 1);
    expect((await emu.admin('/expire', { accessTokens: false })).status).toBe(200);
    expectCscError(await csc('signatures/signHash', { ...body, SAD: ecSad }), 400, 'expired_sad', /authorize again/);
  });

  it('extendTransaction: a new SAD with the signatures left and a new lifetime; the old one ends', async () => {
    const cert = await certOf('doc-ec');
    const SAD = await emu.authorize('doc-ec', 2);
    const sign = (sad: string, m: string): Promise<ApiResponse> => csc('signatures/signHash', { credentialID: 'doc-ec', SAD: sad, hash: [sha('sha256', m)], signAlgo: '1.2.840.10045.4.3.2' });
    expect((await sign(SAD, 'one')).status).toBe(200);
    const x = await csc('credentials/extendTransaction', { credentialID: 'doc-ec', SAD });
    expect(x.status, x.text).toBe(200);
    expect(x.json).toEqual({ SAD: expect.any(String), expiresIn: 3600 });
    expect(x.json.SAD).not.toBe(SAD);
    expectCscError(await sign(SAD, 'two'), 400, 'invalid_sad');
    const two = await sign(x.json.SAD, 'two');
    expect(two.status, two.text).toBe(200);
    expect(verify('sha256', Buffer.from('two'), cert.publicKey, Buffer.from(two.json.signatures[0], 'base64'))).toBe(true);
    expectCscError(await sign(x.json.SAD, 'three'), 400, 'invalid_sad', /used up/);
    expectCscError(await csc('credentials/extendTransaction', { credentialID: 'doc-rsa', SAD: x.json.SAD }), 400, 'invalid_sad');
    expectCscError(await csc('credentials/extendTransaction', { credentialID: 'doc-ec' }), 400, 'invalid_request', /SAD/);
  });

  it('SAD lifetime from the settings: expiresIn follows it and the SAD expires after it', async () => {
    expect((await emu.admin('/settings', { sadTtlS: 1 })).json.sadTtlS).toBe(1);
    try {
      await csc('credentials/sendOTP', { credentialID: 'doc-ec' });
      const OTP = readFileSync(join(emu.stateDir, 'otp', 'doc-ec'), 'utf8').trim();
      const a = await csc('credentials/authorize', { credentialID: 'doc-ec', numSignatures: 1, OTP });
      expect(a.json.expiresIn).toBe(1);
      await new Promise((r) => setTimeout(r, 1100));
      expectCscError(await csc('signatures/signHash', { credentialID: 'doc-ec', SAD: a.json.SAD, hash: [sha('sha256', 'x')], signAlgo: '1.2.840.10045.4.3.2' }), 400, 'expired_sad');
    } finally {
      await emu.admin('/settings', { sadTtlS: 3600 });
    }
  });

  it('request errors: wrong digest length, unknown or foreign signAlgo, missing or mismatched hashAlgo, empty or non-base64 hash[]', async () => {
    const SAD = await emu.authorize('doc-rsa', 1);
    const base = { credentialID: 'doc-rsa', SAD, hash: [sha('sha256', 'x')], signAlgo: '1.2.840.113549.1.1.11' };
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ hash: [sha('sha384', 'x')] }, /digest value length/],
      [{ signAlgo: '1.2.3.4' }, /signAlgo/],
      [{ signAlgo: '1.2.840.10045.4.3.2' }, /signAlgo.*RSA/],
      [{ signAlgo: '1.2.840.113549.1.1.1' }, /hashAlgo/],
      [{ hashAlgo: '2.16.840.1.101.3.4.2.3' }, /hashAlgo/],
      [{ hash: [] }, /Empty hash/],
      [{ hash: ['not base64!'] }, /Base64/],
      [{ hash: 'abc' }, /array parameter hash/],
      [{ signAlgo: undefined }, /signAlgo/],
    ];
    for (const [change, re] of bad) expectCscError(await csc('signatures/signHash', { ...base, ...change }), 400, 'invalid_request', re);
    // none of them spent the SAD
    expect((await csc('signatures/signHash', base)).status).toBe(200);
  });
});
