// Contract tests of the STM emulator (docs/emulator.md) against the seed's request/response shapes
// and error codes (docs/stm-api.md, after DigiCert's STM tutorial). A real HTTPS
// server, real SoftHSMv2 keys; every signature is verified with node:crypto against the
// certificate the emulator hands out, and every certificate against the emulator CA.
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, verify, X509Certificate, constants as C } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCertificate, nodeKeySigner } from '../../src/core/x509-builder.js';
import { API_ERRORS, isLoopback, validateFaults } from '../../src/emulator/index.js';
import { runEmulatorCli } from '../../src/emulator/cli.js';
import { packageRoot } from '../../src/native/loader.js';
import { spawnEmulatorCli } from '../helpers/emulator-cli.js';
import { API, call, startTestEmulator, type ApiResponse, type TestEmulator } from '../helpers/emulator.js';

let emu: TestEmulator;
let firstStateDir: string;
const get = (path: string, agent = emu.mtls): Promise<ApiResponse> => call(emu.url, agent, 'GET', path);
const post = (path: string, body: unknown, agent = emu.mtls, headers?: Record<string, string>): Promise<ApiResponse> =>
  call(emu.url, agent, 'POST', path, { body, ...(headers ? { headers } : {}) });
const put = (path: string, body: unknown): Promise<ApiResponse> => call(emu.url, emu.mtls, 'PUT', path, { body });
const caCert = (): X509Certificate => new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_STM_CA_FILE!));

function seed(alias: 'codesign-rsa' | 'codesign-ec'): string {
  return emu.keypairs().find((k) => k.alias === alias)!.id;
}

async function certificateOf(keypairId: string): Promise<X509Certificate> {
  const r = await get(`${API}/keypairs/${keypairId}/certificate`);
  expect(r.status, r.text).toBe(200);
  return new X509Certificate(Buffer.from(r.json.cert, 'base64'));
}

function expectSeedError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  expect(r.json).toEqual({ errors: [{ code, message: expect.any(String) }] });
  expect(r.json.errors[0].message.length).toBeGreaterThan(10);
}

function expect401(r: ApiResponse): void {
  expect(r.status, r.text).toBe(401);
  expect(r.json).toEqual({ error: { status: 401, message: expect.stringMatching(/^Unauthorized: /) } });
}

async function sign(keypairId: string, hash: Buffer, sigAlg: string, extra: Record<string, unknown> = {}): Promise<ApiResponse> {
  return post(`${API}/keypairs/${keypairId}/sign`, { hash: hash.toString('base64'), sig_alg: sigAlg, ...extra });
}

/** A CA and client certificate that have nothing to do with the emulator. */
async function foreignClient(): Promise<Agent> {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caSpki = ca.publicKey.export({ type: 'spki', format: 'der' });
  const caName: Array<[string, string]> = [['CN', 'signbridge STM emulator CA']]; // same name, other key
  await buildCertificate({ subject: caName, subjectPublicKey: caSpki, sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA256'), extensions: { basicConstraints: { ca: true } } });
  const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leafCert = await buildCertificate({
    subject: [['CN', 'intruder']],
    subjectPublicKey: leaf.publicKey.export({ type: 'spki', format: 'der' }),
    issuer: { name: caName, publicKey: caSpki },
    sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA256'),
    extensions: { extendedKeyUsage: ['clientAuth'] },
  });
  return new Agent({
    connect: { ca: readFileSync(emu.env.SIGNBRIDGE_STM_CA_FILE!), cert: leafCert.pem, key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string },
  });
}

beforeAll(async () => {
  emu = await startTestEmulator();
  firstStateDir = emu.stateDir;
});
afterAll(async () => {
  await emu?.stop();
  if (firstStateDir && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(firstStateDir, { recursive: true, force: true });
});

describe('state directory (first run)', () => {
  it('holds the CA, server and client certificates, the secrets at 0600, and env.sh with every variable', () => {
    for (const f of ['ca.key', 'server.key', 'client.key', 'client.p12', 'client.p12.password', 'api-key', 'env.sh']) {
      expect((statSync(join(emu.stateDir, f)).mode & 0o777).toString(8), f).toBe('600');
    }
    const ca = caCert();
    expect(ca.ca).toBe(true);
    const client = new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_STM_CLIENT_CERT_PEM!));
    expect(client.verify(ca.publicKey)).toBe(true);
    const server = new X509Certificate(readFileSync(join(emu.stateDir, 'server.crt')));
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('localhost')).toBe('localhost');

    const envSh = readFileSync(emu.envFile, 'utf8');
    for (const k of ['SM_HOST', 'SM_API_KEY', 'SM_CLIENT_CERT_FILE', 'SM_CLIENT_CERT_PASSWORD', 'SIGNBRIDGE_STM_CLIENT_CERT_PEM', 'SIGNBRIDGE_STM_CLIENT_KEY_PEM', 'SIGNBRIDGE_STM_CA_FILE']) {
      expect(envSh).toContain(`export ${k}='${emu.env[k]}'`);
    }
    expect(emu.env.SM_HOST).toBe(emu.url);
    expect(emu.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('writes a PKCS#12 that opens with the password (node and openssl) and holds the client certificate', () => {
    const pfx = readFileSync(emu.env.SM_CLIENT_CERT_FILE!);
    expect(() => createSecureContext({ pfx, passphrase: emu.env.SM_CLIENT_CERT_PASSWORD! })).not.toThrow();
    expect(() => createSecureContext({ pfx, passphrase: 'wrong' })).toThrow();
    // password through the environment, never argv
    const r = spawnSync('openssl', ['pkcs12', '-in', emu.env.SM_CLIENT_CERT_FILE!, '-nokeys', '-clcerts', '-passin', 'env:P12PW'], {
      env: { ...process.env, P12PW: emu.env.SM_CLIENT_CERT_PASSWORD! },
      encoding: 'utf8',
    });
    expect(r.error, 'openssl missing: apt-get install -y openssl').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(new X509Certificate(r.stdout).fingerprint256).toBe(new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_STM_CLIENT_CERT_PEM!)).fingerprint256);
  });

  it('seeds codesign-rsa (RSA 3072) and codesign-ec (ECDSA P-256)', async () => {
    const rsa = await get(`${API}/keypairs/${seed('codesign-rsa')}`);
    expect(rsa.status).toBe(200);
    expect(rsa.json).toMatchObject({ alias: 'codesign-rsa', key_alg: 'RSA', key_size: 3072, key_status: 'ACTIVE', account: emu.account });
    const ec = await get(`${API}/keypairs/${seed('codesign-ec')}`);
    expect(ec.json).toMatchObject({ alias: 'codesign-ec', key_alg: 'ECDSA', curve: 'P-256', key_status: 'ACTIVE' });
  });
});

describe('authentication', () => {
  it('401 without credentials, in the gateway shape', async () => {
    expect401(await get(`${API}/keypairs`, emu.anonymous));
  });
  it('401 with a wrong API key', async () => {
    expect401(await call(emu.url, emu.anonymous, 'GET', `${API}/keypairs`, { headers: { 'x-api-key': 'not-the-key' } }));
  });
  it('401 with a client certificate from another CA (even one with the same name)', async () => {
    const intruder = await foreignClient();
    try {
      expect401(await get(`${API}/keypairs`, intruder));
    } finally {
      await intruder.close();
    }
  });
  it('200 with the client certificate (mTLS)', async () => {
    const r = await get(`${API}/keypairs`);
    expect(r.status, r.text).toBe(200);
  });
  it('200 with the API key and no client certificate', async () => {
    const r = await call(emu.url, emu.anonymous, 'GET', `${API}/keypairs`, { headers: { 'x-api-key': emu.env.SM_API_KEY! } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.total).toBeGreaterThanOrEqual(2);
  });
  it('401 when the certificate is right but the API key beside it is wrong (a presented credential must be valid)', async () => {
    expect401(await call(emu.url, emu.mtls, 'GET', `${API}/keypairs`, { headers: { 'x-api-key': 'stale' } }));
  });
});

describe('keypairs', () => {
  it('creates RSA, ECDSA and EdDSA keypairs (201) whose certificates chain to the emulator CA with EKU codeSigning', async () => {
    const bodies = [
      { alias: 'kp-rsa2048', key_alg: 'RSA', key_storage: 'HSM', key_type: 'TEST', properties: { key_size: 2048 }, status: 'ONLINE' },
      { alias: 'kp-p384', key_alg: 'ECDSA', key_storage: 'HSM', key_type: 'PRODUCTION', properties: { curve: 'P-384' }, status: 'ONLINE' },
      { alias: 'kp-ed25519', key_alg: 'EdDSA', properties: { curve: 'Ed25519' } },
    ];
    for (const b of bodies) {
      const r = await post(`${API}/keypairs`, b);
      expect(r.status, r.text).toBe(201);
      expect(r.json).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), alias: b.alias, key_alg: b.key_alg, key_status: 'ACTIVE', certificate_id: expect.any(String) });
      const one = await get(`${API}/keypairs/${r.json.id}`);
      expect(one.status).toBe(200);
      const cert = await certificateOf(r.json.id);
      expect(cert.verify(caCert().publicKey)).toBe(true);
      expect(cert.checkIssued(caCert())).toBe(true);
      expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.3']); // node's X509Certificate.keyUsage lists the EKU OIDs
      // public_key (SPKI) is the certified key
      expect(Buffer.from(one.json.public_key, 'base64').equals(cert.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    }
    const p384 = await get(`${API}/keypairs?alias=kp-p384`);
    expect(p384.json.items[0]).toMatchObject({ curve: 'P-384', key_type: 'PRODUCTION' });
  });

  it.each([
    [{ alias: 'x1', key_alg: 'DSA', properties: { key_size: 2048 } }, 'INVALID_KEY_ALG'],
    [{ alias: 'x2', properties: { key_size: 2048 } }, 'INVALID_KEY_ALG'],
    [{ alias: 'x3', key_alg: 'RSA' }, 'INVALID_PROPERTIES'],
    [{ alias: 'x4', key_alg: 'RSA', properties: { key_size: 1024 } }, 'INVALID_PROPERTIES'],
    [{ alias: 'x5', key_alg: 'ECDSA', properties: { key_size: 256 } }, 'INVALID_PROPERTIES'],
    [{ alias: 'x6', key_alg: 'EdDSA', properties: { curve: 'P-256' } }, 'INVALID_PROPERTIES'],
    [{ alias: '', key_alg: 'RSA', properties: { key_size: 2048 } }, 'INVALID_ALIAS'],
    [{ alias: 'x7', key_alg: 'RSA', properties: { key_size: 2048 }, status: 'SOMETIMES' }, 'INVALID_STATUS'],
  ])('POST keypairs %j → 400 %s', async (body, code) => {
    expectSeedError(await post(`${API}/keypairs`, body), 400, code);
  });

  it('a body that is not JSON → 400 INVALID_REQUEST; a taken alias → 409 ALIAS_ALREADY_EXISTS', async () => {
    expectSeedError(await post(`${API}/keypairs`, '{"alias":'), 400, 'INVALID_REQUEST');
    expectSeedError(await post(`${API}/keypairs`, { alias: 'codesign-rsa', key_alg: 'RSA', properties: { key_size: 2048 } }), 409, 'ALIAS_ALREADY_EXISTS');
  });

  it('GET keypairs/{id} of an unknown id → 404 KEYPAIR_NOT_FOUND', async () => {
    expectSeedError(await get(`${API}/keypairs/${randomUUID()}`), 404, 'KEYPAIR_NOT_FOUND');
  });
});

describe('certificates', () => {
  it('lists ACTIVE certificates with the fields a bridge reads, and pages with limit/offset/total', async () => {
    const all = await get(`${API}/certificates?limit=100&offset=0&certificate_status=ACTIVE`);
    expect(all.status).toBe(200);
    const total = all.json.total as number;
    expect(total).toBeGreaterThanOrEqual(2);
    expect(all.json.items).toHaveLength(total);
    const item = all.json.items.find((i: { alias: string }) => i.alias === 'codesign-rsa');
    expect(item).toMatchObject({
      id: expect.any(String),
      cert: expect.any(String),
      certificate_fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/),
      certificate_status: 'ACTIVE',
      default_cert: true,
      keypair: { id: seed('codesign-rsa'), alias: 'codesign-rsa' },
      account: emu.account,
      chain: [{ cert_type: 'ROOT', blob: expect.any(String) }],
    });
    expect(new Date(item.valid_from).getTime()).toBeLessThan(Date.now());
    expect(new Date(item.valid_to).getTime()).toBeGreaterThan(Date.now());
    expect(Buffer.from(item.chain[0].blob, 'base64').equals(caCert().raw)).toBe(true);

    // page one at a time until offset + items.length >= total (docs/stm-api.md "Paging")
    const seen: string[] = [];
    for (let offset = 0; ; offset += 1) {
      const p = await get(`${API}/certificates?limit=1&offset=${offset}&certificate_status=ACTIVE`);
      expect(p.json).toMatchObject({ total, offset, limit: 1 });
      seen.push(...p.json.items.map((i: { id: string }) => i.id));
      if (offset + p.json.items.length >= total) break;
    }
    expect(seen.sort()).toEqual(all.json.items.map((i: { id: string }) => i.id).sort());
    // limit is capped at 100
    expect((await get(`${API}/certificates?limit=5000`)).json.limit).toBe(100);
  });

  it('filters by alias and id; bad paging → 400 INVALID_REQUEST', async () => {
    const byAlias = await get(`${API}/certificates?alias=codesign-ec`);
    expect(byAlias.json.items.map((i: { alias: string }) => i.alias)).toEqual(['codesign-ec']);
    const id = byAlias.json.items[0].id;
    const byId = await get(`${API}/certificates?id=${id}`);
    expect(byId.json).toMatchObject({ total: 1, items: [{ id }] });
    expect((await get(`${API}/certificates?alias=nope`)).json).toMatchObject({ total: 0, items: [] });
    expectSeedError(await get(`${API}/certificates?limit=-1`), 400, 'INVALID_REQUEST');
  });

  it('POST keypairs/{id}/certificate issues a new default certificate and revokes the old one', async () => {
    const k = await post(`${API}/keypairs`, { alias: 'kp-reissue', key_alg: 'ECDSA', properties: { curve: 'P-256' } });
    const first = k.json.certificate_id;
    const r = await post(`${API}/keypairs/${k.json.id}/certificate`, {});
    expect(r.status, r.text).toBe(201);
    expect(r.json).toMatchObject({ certificate_status: 'ACTIVE', default_cert: true, keypair: { id: k.json.id } });
    expect(r.json.id).not.toBe(first);
    expect((await get(`${API}/certificates?id=${first}`)).json.items[0]).toMatchObject({ certificate_status: 'REVOKED', default_cert: false });
    const active = await get(`${API}/certificates?alias=kp-reissue&certificate_status=ACTIVE`);
    expect(active.json.items.map((i: { id: string }) => i.id)).toEqual([r.json.id]);
  });
});

describe('sign', () => {
  const message = randomBytes(1000);
  const digest = (alg: string): Buffer => createHash(alg).update(message).digest();

  it.each(['SHA256', 'SHA384', 'SHA512'])('%sWithRSA: PKCS#1 v1.5 over the hash, verified against the certificate', async (h) => {
    const id = seed('codesign-rsa');
    const r = await sign(id, digest(h.toLowerCase()), `${h}WithRSA`);
    expect(r.status, r.text).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['id', 'signature']);
    const sig = Buffer.from(r.json.signature, 'base64');
    expect(sig).toHaveLength(384);
    expect(verify(h.toLowerCase(), message, (await certificateOf(id)).publicKey, sig)).toBe(true);
  });

  it.each(['SHA256', 'SHA384', 'SHA512'])('%sWithRSA/PSS: salt = hash length, verified against the certificate', async (h) => {
    const id = seed('codesign-rsa');
    const r = await sign(id, digest(h.toLowerCase()), `${h}WithRSA/PSS`);
    expect(r.status, r.text).toBe(200);
    const key = (await certificateOf(id)).publicKey;
    const sig = Buffer.from(r.json.signature, 'base64');
    const hLen = digest(h.toLowerCase()).length;
    expect(verify(h.toLowerCase(), message, { key, padding: C.RSA_PKCS1_PSS_PADDING, saltLength: hLen }, sig)).toBe(true);
    // the salt length really is hLen, not "auto": a verifier insisting on another length fails
    expect(verify(h.toLowerCase(), message, { key, padding: C.RSA_PKCS1_PSS_PADDING, saltLength: hLen + 1 }, sig)).toBe(false);
  });

  it.each(['SHA256', 'SHA384', 'SHA512'])('%sWithECDSA on P-256: a DER Ecdsa-Sig-Value, verified against the certificate', async (h) => {
    const id = seed('codesign-ec');
    const r = await sign(id, digest(h.toLowerCase()), `${h}WithECDSA`);
    expect(r.status, r.text).toBe(200);
    const sig = Buffer.from(r.json.signature, 'base64');
    expect(sig[0]).toBe(0x30);
    expect(verify(h.toLowerCase(), message, { key: (await certificateOf(id)).publicKey, dsaEncoding: 'der' }, sig)).toBe(true);
  });

  it('SHA384WithECDSA on a P-384 keypair, RSA-2048 and Java casing (sha512withrsa)', async () => {
    const p384 = (await get(`${API}/keypairs?alias=kp-p384`)).json.items[0].id;
    let r = await sign(p384, digest('sha384'), 'SHA384WithECDSA');
    expect(r.status, r.text).toBe(200);
    expect(verify('sha384', message, (await certificateOf(p384)).publicKey, Buffer.from(r.json.signature, 'base64'))).toBe(true);
    const rsa2048 = (await get(`${API}/keypairs?alias=kp-rsa2048`)).json.items[0].id;
    r = await sign(rsa2048, digest('sha512'), 'sha512withrsa');
    expect(r.status, r.text).toBe(200);
    expect(verify('sha512', message, (await certificateOf(rsa2048)).publicKey, Buffer.from(r.json.signature, 'base64'))).toBe(true);
  });

  it('ED25519: "hash" carries the message itself', async () => {
    const id = (await get(`${API}/keypairs?alias=kp-ed25519`)).json.items[0].id;
    const r = await sign(id, message, 'ED25519');
    expect(r.status, r.text).toBe(200);
    const sig = Buffer.from(r.json.signature, 'base64');
    expect(sig).toHaveLength(64);
    expect(verify(null, message, (await certificateOf(id)).publicKey, sig)).toBe(true);
  });

  it('INVALID_SIG_ALG on a key/algorithm mismatch or an unsupported sig_alg', async () => {
    expectSeedError(await sign(seed('codesign-rsa'), digest('sha256'), 'SHA256WithECDSA'), 400, 'INVALID_SIG_ALG');
    expectSeedError(await sign(seed('codesign-ec'), digest('sha256'), 'SHA256WithRSA'), 400, 'INVALID_SIG_ALG');
    expectSeedError(await sign(seed('codesign-rsa'), digest('sha512'), 'SHA3-512WithRSA/PSS'), 400, 'INVALID_SIG_ALG');
    expectSeedError(await post(`${API}/keypairs/${seed('codesign-rsa')}/sign`, { hash: digest('sha256').toString('base64') }), 400, 'INVALID_SIG_ALG');
  });

  it('INVALID_HASH when the hash length does not fit sig_alg or is not base64', async () => {
    expectSeedError(await sign(seed('codesign-rsa'), digest('sha256'), 'SHA384WithRSA'), 400, 'INVALID_HASH');
    expectSeedError(await sign(seed('codesign-ec'), digest('sha512'), 'SHA256WithECDSA'), 400, 'INVALID_HASH');
    expectSeedError(await post(`${API}/keypairs/${seed('codesign-rsa')}/sign`, { hash: 'not base64!', sig_alg: 'SHA256WithRSA' }), 400, 'INVALID_HASH');
  });

  it('KEYPAIR_NOT_FOUND for an unknown keypair or another account', async () => {
    expectSeedError(await sign(randomUUID(), digest('sha256'), 'SHA256WithRSA'), 404, 'KEYPAIR_NOT_FOUND');
    expectSeedError(await sign(seed('codesign-rsa'), digest('sha256'), 'SHA256WithRSA', { account: randomUUID() }), 404, 'KEYPAIR_NOT_FOUND');
    const ok = await sign(seed('codesign-rsa'), digest('sha256'), 'SHA256WithRSA', { account: emu.account });
    expect(ok.status, ok.text).toBe(200);
  });

  it('GET signatures/{id}: the record with the seed fields', async () => {
    const id = seed('codesign-ec');
    const hash = digest('sha256');
    const before = Date.now();
    const r = await call(emu.url, emu.mtls, 'POST', `${API}/keypairs/${id}/sign`, {
      body: { hash: hash.toString('base64'), sig_alg: 'SHA256withECDSA' },
      headers: { 'user-agent': 'signbridge/0.1.0 (linux; x64)' },
    });
    expect(r.status, r.text).toBe(200);
    const rec = await get(`${API}/signatures/${r.json.id}`);
    expect(rec.status).toBe(200);
    const cert = (await get(`${API}/keypairs/${id}/certificate`)).json;
    expect(rec.json).toMatchObject({
      id: r.json.id,
      keypair_id: id,
      key_pair: 'codesign-ec',
      signature: r.json.signature,
      sig_alg: 'SHA256WithECDSA',
      hash: hash.toString('base64'),
      signing_status: 'SUCCESS',
      account: [emu.account],
      client_ip: '127.0.0.1',
      certificate_id: cert.id,
      client_type: 'signbridge/0.1.0 (linux; x64)',
    });
    for (const f of ['created_on', 'created_by', 'created_by_user', 'modified_on', 'modified_by', 'modified_by_user', 'signature_type']) expect(rec.json).toHaveProperty(f);
    const created = Date.parse(rec.json.created_on);
    expect(rec.json.created_on).toBe(new Date(created).toISOString());
    expect(created).toBeGreaterThanOrEqual(before - 1000);
    expectSeedError(await get(`${API}/signatures/${randomUUID()}`), 404, 'SIGNATURE_NOT_FOUND');
  });
});

describe('suspension, release window, signature limit', () => {
  const hash = createHash('sha256').update('x').digest();

  it('PUT keypairs/{id} {"status":"SUSPENDED"} refuses signing at once (403 KEYPAIR_SUSPENDED); ACTIVE resumes', async () => {
    const k = await post(`${API}/keypairs`, { alias: 'kp-suspend', key_alg: 'ECDSA', properties: { curve: 'P-256' } });
    expect((await sign(k.json.id, hash, 'SHA256WithECDSA')).status).toBe(200);
    const s = await put(`${API}/keypairs/${k.json.id}`, { status: 'SUSPENDED' });
    expect(s.status, s.text).toBe(200);
    expect(s.json.key_status).toBe('SUSPENDED');
    expectSeedError(await sign(k.json.id, hash, 'SHA256WithECDSA'), 403, 'KEYPAIR_SUSPENDED');
    expect((await put(`${API}/keypairs/${k.json.id}`, { status: 'ACTIVE' })).json.key_status).toBe('ACTIVE');
    expect((await sign(k.json.id, hash, 'SHA256WithECDSA')).status).toBe(200);
    expectSeedError(await put(`${API}/keypairs/${k.json.id}`, { status: 'MAYBE' }), 400, 'INVALID_STATUS');
    expectSeedError(await put(`${API}/keypairs/${randomUUID()}`, { status: 'SUSPENDED' }), 404, 'KEYPAIR_NOT_FOUND');
  });

  it('suspendKeypair(), setReleaseWindow() and setSignatureLimit() of the programmatic API', async () => {
    const { id, certificateId } = await emu.createKeypair({ alias: 'kp-api', key_alg: 'ECDSA', curve: 'P-256' });
    expect((await get(`${API}/keypairs/${id}`)).json.certificate_id).toBe(certificateId);
    emu.setReleaseWindow(id, false);
    expectSeedError(await sign(id, hash, 'SHA256WithECDSA'), 403, 'RELEASE_WINDOW_CLOSED');
    emu.setReleaseWindow(id, true);
    emu.setSignatureLimit(id, 1);
    expect((await sign(id, hash, 'SHA256WithECDSA')).status).toBe(200);
    expectSeedError(await sign(id, hash, 'SHA256WithECDSA'), 403, 'SIGNATURE_LIMIT_EXCEEDED');
    emu.setSignatureLimit(id, null);
    expect((await sign(id, hash, 'SHA256WithECDSA')).status).toBe(200);
    await emu.suspendKeypair(id);
    expectSeedError(await sign(id, hash, 'SHA256WithECDSA'), 403, 'KEYPAIR_SUSPENDED');
  });

  it('the same through the admin endpoint', async () => {
    const id = seed('codesign-ec');
    const admin = (path: string, body: unknown): Promise<ApiResponse> => call(emu.adminUrl, emu.anonymous, 'POST', path, { body });
    expect((await admin(`/keypairs/${id}/release-window`, { open: false })).status).toBe(200);
    expectSeedError(await sign(id, hash, 'SHA256WithECDSA'), 403, 'RELEASE_WINDOW_CLOSED');
    await admin(`/keypairs/${id}/release-window`, { open: true });
    await admin(`/keypairs/${id}/signature-limit`, { remaining: 0 });
    expectSeedError(await sign(id, hash, 'SHA256WithECDSA'), 403, 'SIGNATURE_LIMIT_EXCEEDED');
    await admin(`/keypairs/${id}/signature-limit`, { remaining: null });
    expect((await sign(id, hash, 'SHA256WithECDSA')).status).toBe(200);
  });
});

describe('faults', () => {
  const hash = createHash('sha256').update('faults').digest();
  const adminPost = (path: string, body: unknown): Promise<ApiResponse> => call(emu.adminUrl, emu.anonymous, 'POST', path, { body });
  const stats = async (): Promise<any> => (await call(emu.adminUrl, emu.anonymous, 'GET', '/stats')).json; // eslint-disable-line @typescript-eslint/no-explicit-any

  it('fail429Next: the next 2 sign calls get 429 with Retry-After, the third signs; stats count all three', async () => {
    await adminPost('/stats/reset', {});
    expect((await adminPost('/faults', { fail429Next: 2, retryAfterS: 2 })).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await sign(seed('codesign-rsa'), hash, 'SHA256WithRSA');
      expect(r.status).toBe(429);
      expect(r.headers['retry-after']).toBe('2');
      expect(r.json).toEqual({ error: { status: 429, message: expect.any(String) } });
    }
    expect((await get(`${API}/keypairs`)).status).toBe(200); // count faults hit sign calls only
    expect((await sign(seed('codesign-rsa'), hash, 'SHA256WithRSA')).status).toBe(200);
    const s = await stats();
    expect(s.requests['POST /keypairs/{id}/sign']).toBe(3);
    expect(s.responses['429']).toBe(2);
    expect((await call(emu.adminUrl, emu.anonymous, 'GET', '/faults')).json.fail429Next).toBe(0);
  });

  it('rate429 = 1 hits every API call (not /__admin); retryAfterS null sends no Retry-After', async () => {
    emu.setFaults({ rate429: 1, retryAfterS: 7 });
    let r = await get(`${API}/certificates`);
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('7');
    expect((await call(emu.adminUrl, emu.anonymous, 'GET', '/stats')).status).toBe(200);
    emu.setFaults({ rate429: 1, retryAfterS: null });
    r = await get(`${API}/certificates`);
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBeUndefined();
    emu.setFaults({});
    expect((await get(`${API}/certificates`)).status).toBe(200);
  });

  it('503 answers with an HTML body, as a gateway does', async () => {
    emu.setFaults({ rate503: 1 });
    const r = await get(`${API}/keypairs`);
    emu.setFaults({});
    expect(r.status).toBe(503);
    expect(r.headers['content-type']).toBe('text/html');
    expect(r.text).toMatch(/<html>/);
  });

  it('dropNext: the connection closes without an answer', async () => {
    await adminPost('/stats/reset', {});
    emu.setFaults({ dropNext: 1 });
    await expect(sign(seed('codesign-rsa'), hash, 'SHA256WithRSA')).rejects.toThrow(/other side closed|socket|ECONNRESET/i);
    expect((await stats()).dropped).toBe(1);
    expect((await sign(seed('codesign-rsa'), hash, 'SHA256WithRSA')).status).toBe(200);
  });

  it('latencyMs delays every API answer', async () => {
    emu.setFaults({ latencyMs: 300 });
    const t0 = Date.now();
    const r = await get(`${API}/keypairs`);
    const ms = Date.now() - t0;
    emu.setFaults({});
    expect(r.status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(290);
  });

  it('signResponseIdOnly: sign answers {id}; the signature is in GET signatures/{id}', async () => {
    emu.setFaults({ signResponseIdOnly: true });
    const r = await sign(seed('codesign-ec'), hash, 'SHA256WithECDSA');
    emu.setFaults({});
    expect(r.json).toEqual({ id: expect.any(String) });
    expect((await get(`${API}/signatures/${r.json.id}`)).json.signature).toEqual(expect.any(String));
  });

  it('stats count TLS handshakes: one keep-alive client makes one connection for many calls', async () => {
    // connections: 1 — undici may otherwise open a second socket when a request starts before it
    // has processed the previous response's end; a keep-alive client must then reuse this one
    const mtls = new Agent({
      connections: 1,
      connect: { ca: readFileSync(emu.env.SIGNBRIDGE_STM_CA_FILE!), cert: readFileSync(emu.env.SIGNBRIDGE_STM_CLIENT_CERT_PEM!), key: readFileSync(emu.env.SIGNBRIDGE_STM_CLIENT_KEY_PEM!) },
    });
    try {
      emu.resetStats(); // not over HTTP: other clients' connections would count too
      for (let i = 0; i < 5; i++) expect((await get(`${API}/keypairs`, mtls)).status).toBe(200);
      const s = emu.stats();
      expect(s.requests['GET /keypairs']).toBe(5);
      expect(s.connections, JSON.stringify(s)).toBe(1);
      expect(s.tlsHandshakes).toBe(1);
    } finally {
      await mtls.close();
    }
  });

  it('the admin endpoint rejects bad faults with 400 and the field name', async () => {
    const r = await adminPost('/faults', { rate429: 2 });
    expect(r.status).toBe(400);
    expect(r.json.errors[0].message).toMatch(/rate429/);
    expect((await adminPost('/faults', { typo: 1 })).json.errors[0].message).toMatch(/unknown fault "typo"/);
  });

  it('admin is loopback-only: the peer check', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['192.0.2.2', '10.0.0.1', '::ffff:10.0.0.1', '0.0.0.0', '::', 'fe80::1', '', undefined]) expect(isLoopback(a), String(a)).toBe(false);
    expect(() => validateFaults({ dropRate: -0.1 })).toThrow(/dropRate/);
  });
});

describe('errors catalogue', () => {
  it('docs/emulator.md lists every error code with its status', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'emulator.md'), 'utf8');
    for (const [code, status] of Object.entries(API_ERRORS)) expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
  });
  it('unknown endpoint → 404 NOT_FOUND; wrong method → 405', async () => {
    expectSeedError(await get(`${API}/nothing-here`), 404, 'NOT_FOUND');
    expectSeedError(await call(emu.url, emu.mtls, 'DELETE', `${API}/certificates`), 405, 'METHOD_NOT_ALLOWED');
  });
});

describe('later runs and auth modes', () => {
  it('a restart reuses the CA, the keypairs and the keys; --auth mtls ignores the API key; --auth api-key ignores the certificate', async () => {
    const before = await get(`${API}/certificates?certificate_status=ACTIVE`);
    const caBefore = caCert().fingerprint256;
    const keyId = seed('codesign-rsa');
    await emu.stop({ keepState: true });

    emu = await startTestEmulator({ stateDir: emu.stateDir, auth: 'mtls' });
    expect(caCert().fingerprint256).toBe(caBefore);
    const after = await get(`${API}/certificates?certificate_status=ACTIVE`);
    expect(after.status).toBe(200);
    expect(after.json.items.map((i: { id: string }) => i.id).sort()).toEqual(before.json.items.map((i: { id: string }) => i.id).sort());
    expect401(await call(emu.url, emu.anonymous, 'GET', `${API}/keypairs`, { headers: { 'x-api-key': emu.env.SM_API_KEY! } }));
    // the key in the token survived: sign and verify against the old certificate
    const h = createHash('sha256').update('restart').digest();
    const r = await sign(keyId, h, 'SHA256WithRSA');
    expect(r.status, r.text).toBe(200);
    expect(verify('sha256', Buffer.from('restart'), (await certificateOf(keyId)).publicKey, Buffer.from(r.json.signature, 'base64'))).toBe(true);
    await emu.stop();

    emu = await startTestEmulator({ stateDir: emu.stateDir, auth: 'api-key' });
    expect401(await get(`${API}/keypairs`));
    expect((await call(emu.url, emu.anonymous, 'GET', `${API}/keypairs`, { headers: { 'x-api-key': emu.env.SM_API_KEY! } })).status).toBe(200);
  });

  it('one emulator per process: a second start is refused with what to do', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sb-emu-2-'));
    try {
      await expect(startTestEmulator({ stateDir: other })).rejects.toThrow(/already runs in this process.*signbridge emulator/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('command line', () => {
  it('usage errors exit 2 and say what to do', async () => {
    expect(await runEmulatorCli([])).toBe(2);
    expect(await runEmulatorCli(['--state-dir', '/tmp/x', '--rate-429', '3'])).toBe(2);
    expect(await runEmulatorCli(['--bogus'])).toBe(2);
  });

  it('`emulator --state-dir` runs in the foreground, prints no secret, and `. env.sh` gives a client everything it needs; SIGTERM exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-emu-cli-'));
    const emu = spawnEmulatorCli(['--state-dir', dir, '--listen', '127.0.0.1:0', '--rate-429', '1', '--retry-after', '3']);
    const { child } = emu;
    try {
      await emu.ready;
      const envFile = join(dir, 'env.sh');
      expect(emu.stdout).toContain(`. ${envFile} && signbridge daemon --backend stm`);
      const envText = readFileSync(envFile, 'utf8');
      const secret = (k: string): string => new RegExp(`export ${k}='([^']+)'`).exec(envText)![1]!;
      for (const k of ['SM_API_KEY', 'SM_CLIENT_CERT_PASSWORD']) {
        expect(emu.stdout).not.toContain(secret(k));
        expect(emu.stderr).not.toContain(secret(k));
      }
      // a separate process that knows nothing but env.sh: 429 from the flag, then (faults off) mTLS from the PKCS#12
      const script = `
        import { readFileSync } from 'node:fs';
        import { Agent, request } from 'undici';
        const e = process.env;
        const agent = new Agent({ connect: { ca: readFileSync(e.SIGNBRIDGE_STM_CA_FILE), pfx: readFileSync(e.SM_CLIENT_CERT_FILE), passphrase: e.SM_CLIENT_CERT_PASSWORD } });
        const r1 = await request(e.SM_HOST + '/signingmanager/api/v1/certificates', { dispatcher: agent });
        await r1.body.text();
        const r0 = await request(e.SM_HOST + '/__admin/faults', { dispatcher: agent, method: 'POST', body: '{}' });
        await r0.body.text();
        const r2 = await request(e.SM_HOST + '/signingmanager/api/v1/certificates', { dispatcher: agent });
        const j = await r2.body.json();
        const r3 = await request(e.SM_HOST + '/signingmanager/api/v1/keypairs', { headers: { 'x-api-key': e.SM_API_KEY }, dispatcher: new Agent({ connect: { ca: readFileSync(e.SIGNBRIDGE_STM_CA_FILE) } }) });
        await r3.body.text();
        console.log(JSON.stringify({ first: r1.statusCode, retryAfter: r1.headers['retry-after'], second: r2.statusCode, total: j.total, apiKey: r3.statusCode }));
      `;
      const r = spawnSync('bash', ['-c', `. "$1" && exec "$2" --input-type=module -e "$3"`, 'sh', envFile, process.execPath, script], {
        cwd: packageRoot(),
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        timeout: 30_000,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ first: 429, retryAfter: '3', second: 200, total: 2, apiKey: 200 });

      expect(await emu.terminate(), emu.stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
