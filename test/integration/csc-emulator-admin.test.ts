// Contract tests of the CSC emulator around the API (docs/csc-emulator.md): credentials in every
// state, PIN and PIN+OTP credentials, SCAL 2, the admin endpoint, faults and counters, a restart
// on the same state, the command line, and the error catalogue in the doc.
import { spawnSync } from 'node:child_process';
import { createHash, verify, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEmulatorCli } from '../../src/emulator/cli.js';
import { CSC_ERRORS } from '../../src/emulator/csc/index.js';
import { startEmulator } from '../../src/emulator/index.js';
import { packageRoot } from '../../src/native/loader.js';
import { spawnEmulatorCli } from '../helpers/emulator-cli.js';
import { startTestCscEmulator, type TestCscEmulator } from '../helpers/csc-emulator.js';
import type { ApiResponse } from '../helpers/emulator.js';

let emu: TestCscEmulator;
let stateDir: string;
let token: string;
const csc = (path: string, body: unknown = {}): Promise<ApiResponse> => emu.csc(`/csc/v1/${path}`, body, token);
const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64');
const EC_SHA256 = '1.2.840.10045.4.3.2';

function expectCscError(r: ApiResponse, status: number, code: string, description?: RegExp): void {
  expect(r.status, r.text).toBe(status);
  expect(r.json.error, r.text).toBe(code);
  if (description) expect(r.json.error_description).toMatch(description);
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'sb-csc-admin-'));
  emu = await startTestCscEmulator({ stateDir });
  token = await emu.token();
});
afterAll(async () => {
  await emu?.stop();
  if (stateDir && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
});

describe('credential states', () => {
  it('the admin endpoint makes credentials in every state; only ACTIVE ones send OTPs, authorize and sign', async () => {
    const states = { 'st-pending': 'PENDING_ISSUANCE', 'st-deactivated': 'DEACTIVATED', 'st-revoked': 'REVOKED', 'st-suspended': 'SUSPENDED' } as const;
    for (const [id, status] of Object.entries(states)) {
      const r = await emu.admin('/credentials', { credentialID: id, key: 'ec-p256', status, otp: true });
      expect(r.status, r.text).toBe(201);
    }
    expect((await csc('credentials/list')).json.credentialIDs).toEqual(expect.arrayContaining(Object.keys(states)));
    const certStatus: Record<string, string | undefined> = { 'st-pending': undefined, 'st-deactivated': 'valid', 'st-revoked': 'revoked', 'st-suspended': 'suspended' };
    for (const [id, status] of Object.entries(states)) {
      const info = await csc('credentials/info', { credentialID: id });
      expect(info.status, info.text).toBe(200);
      expect(info.json.status).toBe(status);
      expect(info.json.key.status).toBe('disabled');
      expect(info.json.cert?.status).toBe(certStatus[id]);
      for (const [path, body] of [
        ['credentials/sendOTP', { credentialID: id }],
        ['credentials/authorize', { credentialID: id, numSignatures: 1, OTP: '123456' }],
        ['signatures/signHash', { credentialID: id, SAD: 'x', hash: [sha256('x')], signAlgo: EC_SHA256 }],
      ] as const) {
        const r = await csc(path, body);
        expectCscError(r, 400, 'credential_not_active', new RegExp(status));
        expect(r.json.credential_status).toBe(status);
      }
    }
  });

  it('PENDING_ISSUANCE has no certificate until it turns ACTIVE; then it signs and the signature verifies', async () => {
    expect((await csc('credentials/info', { credentialID: 'st-pending' })).json.cert).toBeUndefined();
    const r = await emu.admin('/credentials/st-pending/status', { status: 'ACTIVE' });
    expect(r.json).toEqual({ credentialID: 'st-pending', status: 'ACTIVE' });
    const info = await csc('credentials/info', { credentialID: 'st-pending' });
    const cert = new X509Certificate(Buffer.from(info.json.cert.certificates[0], 'base64'));
    expect(cert.verify(new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_CSC_CA_FILE!)).publicKey)).toBe(true);
    const SAD = await emu.authorize('st-pending', 1);
    const s = await csc('signatures/signHash', { credentialID: 'st-pending', SAD, hash: [sha256('pending')], signAlgo: EC_SHA256 });
    expect(s.status, s.text).toBe(200);
    expect(verify('sha256', Buffer.from('pending'), cert.publicKey, Buffer.from(s.json.signatures[0], 'base64'))).toBe(true);
  });

  it('suspending a credential voids its SADs; resuming needs a new authorisation', async () => {
    const SAD = await emu.authorize('doc-ec', 2);
    expect((await emu.admin('/credentials/doc-ec/status', { status: 'SUSPENDED' })).status).toBe(200);
    const body = { credentialID: 'doc-ec', SAD, hash: [sha256('s')], signAlgo: EC_SHA256 };
    const r = await csc('signatures/signHash', body);
    expectCscError(r, 400, 'credential_not_active', /SUSPENDED/);
    expect(r.json.credential_status).toBe('SUSPENDED');
    expect((await emu.admin('/credentials/doc-ec/status', { status: 'ACTIVE' })).status).toBe(200);
    expectCscError(await csc('signatures/signHash', body), 400, 'invalid_sad');
    expectCscError(await emu.admin('/credentials/doc-ec/status', { status: 'PAUSED' }), 400, 'invalid_request', /ACTIVE/);
  });
});

describe('PIN, PIN + OTP and SCAL 2 credentials', () => {
  it('a PIN credential: PIN presence true (numeric); a wrong PIN → invalid_pin; three wrong → pin_locked; ACTIVE again unlocks', async () => {
    expect((await emu.admin('/credentials', { credentialID: 'pin-only', key: 'ec-p256', pin: '123456' })).status).toBe(201);
    const info = await csc('credentials/info', { credentialID: 'pin-only' });
    expect(info.json.PIN).toMatchObject({ presence: 'true', format: 'N' });
    expect(info.json.OTP).toEqual({ presence: 'false' });
    expectCscError(await csc('credentials/sendOTP', { credentialID: 'pin-only' }), 400, 'invalid_request', /no OTP/);
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1 }), 400, 'invalid_request', /PIN/);
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '000000' }), 400, 'invalid_pin', /2 tries left/);
    const ok = await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '123456' });
    expect(ok.status, ok.text).toBe(200);
    for (let i = 0; i < 2; i++) expectCscError(await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '9999' }), 400, 'invalid_pin');
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '9999' }), 400, 'pin_locked');
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '123456' }), 400, 'pin_locked', /administrator/);
    await emu.admin('/credentials/pin-only/status', { status: 'ACTIVE' });
    expect((await csc('credentials/authorize', { credentialID: 'pin-only', numSignatures: 1, PIN: '123456' })).status).toBe(200);
    // the PIN is never stored in clear
    expect(readFileSync(join(emu.stateDir, 'credentials.json'), 'utf8')).not.toContain('"123456"');
  });

  it('a PIN + OTP credential needs both', async () => {
    expect((await emu.admin('/credentials', { credentialID: 'pin-otp', key: 'ec-p256', pin: 'secret-pin', otp: true })).status).toBe(201);
    const info = await csc('credentials/info', { credentialID: 'pin-otp' });
    expect(info.json.PIN).toMatchObject({ presence: 'true', format: 'A' });
    expect(info.json.OTP).toMatchObject({ presence: 'true' });
    await csc('credentials/sendOTP', { credentialID: 'pin-otp' });
    const OTP = readFileSync(join(emu.stateDir, 'otp', 'pin-otp'), 'utf8').trim();
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-otp', numSignatures: 1, OTP }), 400, 'invalid_request', /PIN/);
    expectCscError(await csc('credentials/authorize', { credentialID: 'pin-otp', numSignatures: 1, PIN: 'secret-pin' }), 400, 'invalid_request', /OTP/);
    expect((await csc('credentials/authorize', { credentialID: 'pin-otp', numSignatures: 1, PIN: 'secret-pin', OTP })).status).toBe(200);
  });

  it('SCAL 2: authorize needs hash[]; the SAD signs those hashes only', async () => {
    expect((await emu.admin('/credentials', { credentialID: 'scal2', key: 'ec-p256', otp: true, scal: '2' })).status).toBe(201);
    expect((await csc('credentials/info', { credentialID: 'scal2' })).json.SCAL).toBe('2');
    await csc('credentials/sendOTP', { credentialID: 'scal2' });
    const OTP = readFileSync(join(emu.stateDir, 'otp', 'scal2'), 'utf8').trim();
    expectCscError(await csc('credentials/authorize', { credentialID: 'scal2', numSignatures: 1, OTP }), 400, 'invalid_request', /hash/);
    const SAD = await emu.authorize('scal2', 2, { hash: [sha256('a'), sha256('b')] });
    expectCscError(await csc('signatures/signHash', { credentialID: 'scal2', SAD, hash: [sha256('c')], signAlgo: EC_SHA256 }), 400, 'invalid_sad', /authorised for/);
    expect((await csc('signatures/signHash', { credentialID: 'scal2', SAD, hash: [sha256('b')], signAlgo: EC_SHA256 })).status).toBe(200);
    expectCscError(await csc('signatures/signHash', { credentialID: 'scal2', SAD, hash: [sha256('b')], signAlgo: EC_SHA256 }), 400, 'invalid_sad');
    expect((await csc('signatures/signHash', { credentialID: 'scal2', SAD, hash: [sha256('a')], signAlgo: EC_SHA256 })).status).toBe(200);
  });

  it('admin create validates its body and refuses a duplicate credentialID', async () => {
    expectCscError(await emu.admin('/credentials', { credentialID: 'doc-rsa' }), 400, 'invalid_request', /exists/);
    expectCscError(await emu.admin('/credentials', { credentialID: 'x', key: 'dsa-1024' }), 400, 'invalid_request', /key/);
    expectCscError(await emu.admin('/credentials', { credentialID: '../evil' }), 400, 'invalid_request', /credentialID/);
    expectCscError(await emu.admin('/nothing', {}), 404, 'not_found', /Admin endpoint/);
  });
});

describe('faults and counters', () => {
  it('the next signHash gets 503, then 429 with Retry-After, then its connection dropped; counters count every call', async () => {
    emu.resetStats();
    const SAD = await emu.authorize('doc-ec', 1);
    const body = { credentialID: 'doc-ec', SAD, hash: [sha256('f')], signAlgo: EC_SHA256 };
    expect((await emu.admin('/faults', { fail503Next: 1, fail429Next: 1, dropNext: 1, retryAfterS: 2 })).status).toBe(200);
    await expect(csc('signatures/signHash', body)).rejects.toThrow();
    const r429 = await csc('signatures/signHash', body);
    expect(r429.status).toBe(429);
    expect(r429.headers['retry-after']).toBe('2');
    expectCscError(await csc('signatures/signHash', body), 503, 'temporarily_unavailable');
    const ok = await csc('signatures/signHash', body);
    expect(ok.status, ok.text).toBe(200); // faults consumed nothing of the SAD
    const stats = (await emu.admin('/stats')).json;
    expect(stats.requests['POST /csc/v1/signatures/signHash']).toBe(4);
    expect(stats.requests['POST /csc/v1/credentials/authorize']).toBe(1);
    expect(stats.requests['POST /csc/v1/credentials/sendOTP']).toBe(1);
    expect(stats.dropped).toBe(1);
    expect(stats.hashesSigned).toBe(1);
    expect(stats.responses).toMatchObject({ '429': 1, '503': 1 });
    expect((await emu.admin('/faults', {})).json).toEqual({});
  });

  it('latency delays every API answer; a bad fault is refused', async () => {
    await emu.admin('/faults', { latencyMs: 300 });
    const t0 = Date.now();
    expect((await csc('credentials/list')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    await emu.admin('/faults', {});
    expectCscError(await emu.admin('/faults', { rate503: 2 }), 400, 'invalid_request', /rate503/);
  });
});

describe('later runs, the command line and the error catalogue', () => {
  it('a restart on the same state keeps the client, the credentials and their keys', async () => {
    const env = emu.env;
    const cert = new X509Certificate(Buffer.from((await csc('credentials/info', { credentialID: 'doc-rsa' })).json.cert.certificates[0], 'base64'));
    await emu.stop({ keepState: true });
    emu = await startTestCscEmulator({ stateDir });
    token = await emu.token();
    expect(emu.env.SIGNBRIDGE_CSC_CLIENT_ID).toBe(env.SIGNBRIDGE_CSC_CLIENT_ID);
    expect(emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET).toBe(env.SIGNBRIDGE_CSC_CLIENT_SECRET);
    expect((await csc('credentials/list')).json.credentialIDs).toEqual(expect.arrayContaining(['doc-rsa', 'doc-ec', 'scal2', 'pin-otp']));
    const SAD = await emu.authorize('doc-rsa', 1);
    const s = await csc('signatures/signHash', { credentialID: 'doc-rsa', SAD, hash: [sha256('restart')], signAlgo: '1.2.840.113549.1.1.11' });
    expect(s.status, s.text).toBe(200);
    expect(verify('sha256', Buffer.from('restart'), cert.publicKey, Buffer.from(s.json.signatures[0], 'base64'))).toBe(true);
  });

  it('a non-empty directory without credentials.json is refused with the fix', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sb-csc-other-'));
    writeFileSync(join(other, 'something'), 'x');
    try {
      await expect(startTestCscEmulator({ stateDir: other })).rejects.toThrow(/holds no credentials\.json.*remove it/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('one emulator per process: an STM emulator beside the CSC one is refused with what to do', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sb-csc-stm-'));
    try {
      await expect(startEmulator({ stateDir: other })).rejects.toThrow(/already runs in this process.*signbridge emulator/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2', async () => {
    expect(await runEmulatorCli(['--api', 'xyz', '--state-dir', '/tmp/x'])).toBe(2);
    expect(await runEmulatorCli(['--api', 'csc', '--state-dir', '/tmp/x', '--auth', 'mtls'])).toBe(2);
    expect(await runEmulatorCli(['--state-dir', '/tmp/x', '--sad-ttl', '5'])).toBe(2);
    expect(await runEmulatorCli(['--api', 'csc', '--state-dir', '/tmp/x', '--sad-ttl', '0'])).toBe(2);
  });

  it('`emulator --api csc` writes env.sh with the four variables and prints no secret; a client that knows only env.sh signs; SIGTERM exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-csc-cli-'));
    const emu = spawnEmulatorCli(['--api', 'csc', '--state-dir', dir, '--listen', '127.0.0.1:0', '--sad-ttl', '120']);
    const { child } = emu;
    try {
      await emu.ready;
      const envFile = join(dir, 'env.sh');
      expect(emu.stdout).toContain(`. ${envFile} && signbridge daemon --backend csc`);
      const envText = readFileSync(envFile, 'utf8');
      const names = [...envText.matchAll(/^export (\w+)=/gm)].map((m) => m[1]);
      expect(names).toEqual(['SIGNBRIDGE_CSC_URL', 'SIGNBRIDGE_CSC_CLIENT_ID', 'SIGNBRIDGE_CSC_CLIENT_SECRET', 'SIGNBRIDGE_CSC_CA_FILE']);
      const secret = /export SIGNBRIDGE_CSC_CLIENT_SECRET='([^']+)'/.exec(envText)![1]!;
      expect(emu.stdout + emu.stderr).not.toContain(secret);
      // a separate process that knows nothing but env.sh: token from the URL info names, OTP from the file, sign, verify
      const script = `
        import { readFileSync } from 'node:fs';
        import { createHash, verify, X509Certificate } from 'node:crypto';
        import { Agent, request } from 'undici';
        const e = process.env;
        const dispatcher = new Agent({ connect: { ca: readFileSync(e.SIGNBRIDGE_CSC_CA_FILE) } });
        const call = async (url, body, headers) => { const r = await request(url, { dispatcher, method: 'POST', body, headers }); return r.statusCode === 204 ? null : r.body.json(); };
        const info = await call(e.SIGNBRIDGE_CSC_URL + '/csc/v1/info', '{}', { 'content-type': 'application/json' });
        const tok = await call(info.oauth2 + '/oauth2/token', new URLSearchParams({ grant_type: 'client_credentials', client_id: e.SIGNBRIDGE_CSC_CLIENT_ID, client_secret: e.SIGNBRIDGE_CSC_CLIENT_SECRET }).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
        const h = { 'content-type': 'application/json', authorization: 'Bearer ' + tok.access_token };
        const api = (m, b) => call(e.SIGNBRIDGE_CSC_URL + '/csc/v1/' + m, JSON.stringify(b), h);
        const credentialIDs = (await api('credentials/list', {})).credentialIDs;
        const ci = await api('credentials/info', { credentialID: 'doc-ec' });
        await api('credentials/sendOTP', { credentialID: 'doc-ec' });
        const OTP = readFileSync(process.argv[1] + '/otp/doc-ec', 'utf8').trim();
        const a = await api('credentials/authorize', { credentialID: 'doc-ec', numSignatures: 1, OTP });
        const s = await api('signatures/signHash', { credentialID: 'doc-ec', SAD: a.SAD, hash: [createHash('sha256').update('cli').digest('base64')], signAlgo: '1.2.840.10045.4.3.2' });
        const cert = new X509Certificate(Buffer.from(ci.cert.certificates[0], 'base64'));
        console.log(JSON.stringify({ credentialIDs, expiresIn: a.expiresIn, ok: verify('sha256', Buffer.from('cli'), cert.publicKey, Buffer.from(s.signatures[0], 'base64')) }));
      `;
      const r = spawnSync('bash', ['-c', `. "$1" && exec "$2" --input-type=module -e "$3" "$4"`, 'sh', envFile, process.execPath, script, dir], {
        cwd: packageRoot(),
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        timeout: 30_000,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ credentialIDs: ['doc-rsa', 'doc-ec'], expiresIn: 120, ok: true });
      expect(existsSync(join(dir, 'otp', 'doc-ec'))).toBe(true);
      expect(await emu.terminate(), emu.stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('docs/csc-emulator.md lists every error code with its status', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'csc-emulator.md'), 'utf8');
    for (const [code, status] of Object.entries(CSC_ERRORS)) expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
  });
});
