// The pure parts of the stm backend: SignRequest → sig_alg + hash, DigestInfo parsing, DER → r‖s,
// error-body shapes and their CK_RV, the retry/backoff policy, and the daemon's stm configuration.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { classifyRefusal, classifyTlsError, parseErrorBody, StmError } from '../../src/backends/stm/errors.js';
import { CKR_FUNCTION_REJECTED } from '../../src/core/pkcs11.js';
import { parseHost } from '../../src/backends/stm/http.js';
import { ckaIdOf, ecdsaToRaw } from '../../src/backends/stm/index.js';
import { backoffMs, decideRetry, DEFAULT_RETRY, isRetryableError, parseRetryAfter } from '../../src/backends/stm/retry.js';
import { HASHES, parseDigestInfo, planSign, stmMechanisms, type SignInput } from '../../src/backends/stm/sigalg.js';
import * as C from '../../src/core/pkcs11.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { exitCodeFor, EXIT } from '../../src/daemon/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-stm-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rsa = { type: 'rsa' as const, bits: 3072, label: 'codesign-rsa', mechanisms: stmMechanisms('rsa', { pss: true }) };
const ec = { type: 'ec' as const, bits: 256, label: 'codesign-ec', mechanisms: stmMechanisms('ec', { pss: true }) };
const ed = { type: 'ed25519' as const, bits: 256, label: 'ed', mechanisms: stmMechanisms('ed25519', { pss: true }) };
const req = (key: SignInput['key'], mechanism: number, data: Buffer, o: Partial<SignInput> = {}): SignInput => ({ key, mechanism, hashAlg: 0, mgf: 0, saltLen: 0, data, ...o });
const digest = (h: string, m = 'x') => createHash(h).update(m).digest();
const ckrOfThrow = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(StmError);
    expect((e as Error).message).not.toMatch(/undefined/);
    return (e as StmError).ckr;
  }
  throw new Error('did not throw');
};

describe('sig_alg mapping (docs/stm-backend.md "Mechanisms")', () => {
  it('CKM_RSA_PKCS: the DigestInfo picks SHAxxxWithRSA and only the digest is sent', () => {
    for (const h of HASHES.filter((x) => x.stm)) {
      const d = digest(h.name);
      const p = planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.concat([h.prefix, d]), { hashAlg: h.ckm }));
      expect(p).toMatchObject({ sigAlg: `${h.stm}WithRSA`, hashName: h.name });
      expect(p.hash.equals(d)).toBe(true);
      // hash_alg 0 (the module could not tell): the DigestInfo alone decides
      expect(planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.concat([h.prefix, d]))).sigAlg).toBe(`${h.stm}WithRSA`);
    }
  });

  it('CKM_RSA_PKCS refusals: raw data, SHA-1, a hash_alg that contradicts the DigestInfo', () => {
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.alloc(40, 7))))).toBe(C.CKR_DATA_INVALID);
    const sha1 = HASHES.find((h) => h.name === 'sha1')!;
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.concat([sha1.prefix, digest('sha1')]))))).toBe(C.CKR_DATA_INVALID);
    const s256 = HASHES.find((h) => h.name === 'sha256')!;
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.concat([s256.prefix, digest('sha256')]), { hashAlg: C.CKM_SHA384 })))).toBe(C.CKR_DATA_INVALID);
    // a DigestInfo with a truncated digest is not a DigestInfo
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS, Buffer.concat([s256.prefix, digest('sha256').subarray(1)]))))).toBe(C.CKR_DATA_INVALID);
  });

  it('PSS: only MGF1(same hash) with salt = hash length', () => {
    const d = digest('sha384');
    expect(planSign(req(rsa, C.CKM_RSA_PKCS_PSS, d, { hashAlg: C.CKM_SHA384, mgf: C.CKG_MGF1_SHA384, saltLen: 48 }))).toMatchObject({ sigAlg: 'SHA384WithRSA/PSS', saltLen: 48 });
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS_PSS, d, { hashAlg: C.CKM_SHA384, mgf: C.CKG_MGF1_SHA256, saltLen: 48 })))).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS_PSS, d, { hashAlg: C.CKM_SHA384, mgf: C.CKG_MGF1_SHA384, saltLen: 384 - 48 - 2 })))).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS_PSS, digest('sha1'), { hashAlg: C.CKM_SHA_1, mgf: C.CKG_MGF1_SHA1, saltLen: 20 })))).toBe(C.CKR_MECHANISM_PARAM_INVALID);
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_RSA_PKCS_PSS, d.subarray(0, 32), { hashAlg: C.CKM_SHA384, mgf: C.CKG_MGF1_SHA384, saltLen: 48 })))).toBe(C.CKR_DATA_LEN_RANGE);
    // a service configured without PSS: the key does not list it, so it is refused as a mechanism
    const noPss = { ...rsa, mechanisms: stmMechanisms('rsa', { pss: false }) };
    expect(noPss.mechanisms).not.toContain(C.CKM_RSA_PKCS_PSS);
    expect(noPss.mechanisms).toContain(C.CKM_SHA256_RSA_PKCS);
    expect(ckrOfThrow(() => planSign(req(noPss, C.CKM_RSA_PKCS_PSS, digest('sha256'), { hashAlg: C.CKM_SHA256, mgf: C.CKG_MGF1_SHA256, saltLen: 32 })))).toBe(C.CKR_MECHANISM_INVALID);
  });

  it('ECDSA: the digest length picks SHAxxxWithECDSA; other lengths are CKR_DATA_LEN_RANGE', () => {
    expect(planSign(req(ec, C.CKM_ECDSA, digest('sha256'))).sigAlg).toBe('SHA256WithECDSA');
    expect(planSign(req(ec, C.CKM_ECDSA, digest('sha384'))).sigAlg).toBe('SHA384WithECDSA');
    expect(planSign(req(ec, C.CKM_ECDSA, digest('sha512'), { hashAlg: C.CKM_SHA512 })).sigAlg).toBe('SHA512WithECDSA');
    expect(ckrOfThrow(() => planSign(req(ec, C.CKM_ECDSA, digest('sha1'))))).toBe(C.CKR_DATA_LEN_RANGE);
    expect(ckrOfThrow(() => planSign(req(ec, C.CKM_ECDSA, digest('sha256'), { hashAlg: C.CKM_SHA384 })))).toBe(C.CKR_DATA_LEN_RANGE);
  });

  it('EdDSA: ED25519 with the message itself; primitives a key does not list are CKR_MECHANISM_INVALID', () => {
    const m = Buffer.from('a message, not a hash');
    expect(planSign(req(ed, C.CKM_EDDSA, m))).toMatchObject({ sigAlg: 'ED25519', hash: m });
    expect(ckrOfThrow(() => planSign(req(ec, C.CKM_EDDSA, m)))).toBe(C.CKR_MECHANISM_INVALID);
    expect(ckrOfThrow(() => planSign(req(rsa, C.CKM_ECDSA, digest('sha256'))))).toBe(C.CKR_MECHANISM_INVALID);
    expect(ckrOfThrow(() => planSign(req(ed, C.CKM_RSA_PKCS, m)))).toBe(C.CKR_MECHANISM_INVALID);
  });

  it('parseDigestInfo finds exactly the five DigestInfos', () => {
    for (const h of HASHES) expect(parseDigestInfo(Buffer.concat([h.prefix, Buffer.alloc(h.len, 1)]))?.hash.name).toBe(h.name);
    expect(parseDigestInfo(Buffer.alloc(51))).toBeUndefined();
  });
});

describe('ECDSA DER → raw r‖s', () => {
  it('pads r and s to the field size; passes r‖s through; refuses garbage', () => {
    for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
      const field = { 'P-256': 32, 'P-384': 48, 'P-521': 66 }[curve];
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
      for (let i = 0; i < 20; i++) {
        const m = Buffer.from(`m${i}`);
        const der = sign('sha256', m, { key: privateKey, dsaEncoding: 'der' });
        const raw = ecdsaToRaw(der, field);
        expect(raw.length).toBe(2 * field);
        // the same signature, re-encoded by OpenSSL-independent means: r‖s → DER round trip
        expect(ecdsaToRaw(raw, field).equals(raw)).toBe(true);
      }
    }
    expect(() => ecdsaToRaw(Buffer.alloc(10), 32)).toThrow(/neither DER nor r‖s/);
  });

  it('CKA_ID: a keypair UUID becomes its 16 bytes, anything else its UTF-8', () => {
    expect(ckaIdOf('c2c8e459-0b8c-4df7-a37c-338ce61e35dd').toString('hex')).toBe('c2c8e4590b8c4df7a37c338ce61e35dd');
    expect(ckaIdOf('kp-1').toString()).toBe('kp-1');
  });
});

describe('error bodies and their CK_RV (docs/stm-backend.md "Errors")', () => {
  const ctx = { host: 'stm.example', what: 'the signature with codesign-rsa', keypair: 'codesign-rsa', sigAlg: 'SHA256WithRSA' };
  it('reads every shape', () => {
    expect(parseErrorBody('{"errors":[{"code":"INVALID_SIG_ALG","message":"Signature algorithm is not compatible"}]}')).toEqual({ code: 'INVALID_SIG_ALG', message: 'Signature algorithm is not compatible' });
    expect(parseErrorBody('{"error":{"status":401,"message":"Unauthorized: invalid API key"}}')).toEqual({ message: 'Unauthorized: invalid API key' });
    expect(parseErrorBody('{"timestamp":"x","status":403,"error":"Forbidden","message":"Access Denied","path":"/a"}')).toEqual({ message: 'Access Denied' });
    expect(parseErrorBody('{"status":404,"error":"Not Found","path":"/a"}')).toEqual({ message: 'Not Found' });
    expect(parseErrorBody('<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>')).toEqual({ message: '502 Bad Gateway' });
    expect(parseErrorBody('')).toEqual({});
  });

  it('maps each refusal to its CK_RV with a sentence saying what to do', () => {
    const cases: Array<[number, string, number, RegExp]> = [
      [401, '{"error":{"status":401,"message":"invalid API key"}}', C.CKR_USER_NOT_LOGGED_IN, /check SM_API_KEY and the client certificate/],
      [403, '{"status":403,"error":"Forbidden","message":"Access Denied"}', C.CKR_USER_NOT_LOGGED_IN, /SSM_SIGNER/],
      [404, '{"errors":[{"code":"KEYPAIR_NOT_FOUND","message":"Keypair not found or you do not have access"}]}', C.CKR_KEY_HANDLE_INVALID, /refreshes its key list/],
      [400, '{"errors":[{"code":"INVALID_SIG_ALG","message":"not compatible"}]}', C.CKR_MECHANISM_INVALID, /pick another mechanism/],
      [403, '{"errors":[{"code":"KEYPAIR_SUSPENDED","message":"suspended"}]}', C.CKR_KEY_FUNCTION_NOT_PERMITTED, /the keypair codesign-rsa is suspended .*; ask an STM admin to resume it/],
      [403, '{"errors":[{"code":"RELEASE_WINDOW_CLOSED","message":"closed"}]}', CKR_FUNCTION_REJECTED, /release window .* is closed .*open a release window/],
      [403, '{"errors":[{"code":"SIGNATURE_LIMIT_EXCEEDED","message":"limit"}]}', CKR_FUNCTION_REJECTED, /signature limit .*raise the limit/],
      // the same refusals in the other shape, recognised by their words
      [403, '{"error":{"status":403,"message":"Keypair is suspended"}}', C.CKR_KEY_FUNCTION_NOT_PERMITTED, /suspended/],
      [409, '{"errors":[{"code":"ALIAS_ALREADY_EXISTS","message":"exists"}]}', C.CKR_FUNCTION_FAILED, /does not retry/],
    ];
    for (const [status, body, ckr, msg] of cases) {
      const e = classifyRefusal(status, parseErrorBody(body), ctx);
      expect([body, C.ckrName(e.ckr)]).toEqual([body, C.ckrName(ckr)]);
      expect(e.message).toMatch(msg);
      expect(e.status).toBe(status);
    }
  });

  it('TLS: a rejected client certificate and an untrusted server are not retried and say what to fix', () => {
    const client = classifyTlsError(Object.assign(new Error('tlsv13 alert certificate required'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }), 'h');
    expect(client?.ckr).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(client?.message).toMatch(/SM_CLIENT_CERT_FILE/);
    const server = classifyTlsError(Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), 'h');
    expect(server?.ckr).toBe(C.CKR_DEVICE_ERROR);
    expect(server?.message).toMatch(/SM_CA_FILE/);
    expect(classifyTlsError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 'h')).toBeUndefined();
  });
});

describe('retry policy (docs/stm-backend.md "Retries")', () => {
  const now = 1_000_000;
  it('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBeGreaterThanOrEqual(4000);
    expect(parseRetryAfter(new Date(now - 5000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('full jitter under a capped exponential ceiling', () => {
    expect(backoffMs(0, DEFAULT_RETRY, () => 0.999)).toBeLessThan(DEFAULT_RETRY.baseMs);
    expect(backoffMs(3, DEFAULT_RETRY, () => 0.999)).toBe(Math.floor(0.999 * DEFAULT_RETRY.baseMs * 8));
    expect(backoffMs(20, DEFAULT_RETRY, () => 0.999)).toBeLessThanOrEqual(DEFAULT_RETRY.capMs);
    expect(backoffMs(20, DEFAULT_RETRY, () => 0)).toBe(0);
  });

  it('never past the deadline, never for other 4xx, at most maxAttempts; Retry-After wins when longer', () => {
    expect(decideRetry({ attempt: 0, retryable: false, now, deadline: now + 10_000 })).toEqual({ retry: false, reason: 'not-retryable' });
    expect(decideRetry({ attempt: 0, retryable: true, retryAfterMs: 2000, now, deadline: now + 10_000, random: () => 0.5 })).toEqual({ retry: true, waitMs: 2000 });
    expect(decideRetry({ attempt: 0, retryable: true, retryAfterMs: 20_000, now, deadline: now + 10_000 })).toEqual({ retry: false, reason: 'deadline' });
    expect(decideRetry({ attempt: DEFAULT_RETRY.maxAttempts - 1, retryable: true, now, deadline: now + 1e9 })).toEqual({ retry: false, reason: 'attempts' });
  });

  it('network errors worth retrying, by code (also nested in cause)', () => {
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableError(new Error('x', { cause: Object.assign(new Error('y'), { code: 'UND_ERR_SOCKET' }) }))).toBe(true);
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe(false);
  });
});

describe('daemon configuration for --backend stm', () => {
  it('SM_* environment, flags over environment, defaults', () => {
    const env = { SM_HOST: 'https://clientauth.one.digicert.com', SM_CLIENT_CERT_FILE: '/c.p12', SM_CA_FILE: '/ca.pem', SM_TLS_SKIP_VERIFY: 'false' };
    const c = resolveConfig({ backend: 'stm', socket: join(dir, 's.sock') }, env);
    expect(c.backend).toBe('stm');
    expect(c.stm).toMatchObject({
      host: 'https://clientauth.one.digicert.com', clientCertFile: '/c.p12', caFile: '/ca.pem', tlsSkipVerify: false,
      tokenLabel: 'signbridge-stm', keyFilter: [], refreshS: 300, signTimeoutMs: 30_000, verifySignatures: true,
    });
    const f = resolveConfig({ backend: 'stm', 'stm-host': 'https://other', 'stm-key-filter': 'a, b', 'sign-timeout-ms': '500', 'verify-signatures': 'false', 'token-label': 'mine' }, { ...env, SIGNBRIDGE_STM_CA_FILE: '/x.pem', SM_TLS_SKIP_VERIFY: 'true' });
    expect(f.stm).toMatchObject({ host: 'https://other', keyFilter: ['a', 'b'], signTimeoutMs: 500, verifySignatures: false, tokenLabel: 'mine', caFile: '/x.pem', tlsSkipVerify: true });
    expect(() => resolveConfig({ backend: 'stm' }, {})).toThrow(/--stm-host <url> \(or SM_HOST\) is required/);
    expect(() => resolveConfig({ backend: 'hsm' }, {})).toThrow(/available: pkcs11, stm/);
  });

  it('a config file may name secret files but never hold a secret', () => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ backend: 'stm', 'stm-host': 'https://h', 'stm-api-key-file': 'key.txt', 'verify-signatures': false }));
    const c = resolveConfig({ config: file }, {});
    expect(c.stm).toMatchObject({ apiKeyFile: join(dir, 'key.txt'), verifySignatures: false });
    for (const k of ['stm-api-key', 'SM_API_KEY', 'stm-client-cert-password']) {
      writeFileSync(file, JSON.stringify({ backend: 'stm', [k]: 'sekrit-value' }));
      let msg = '';
      try {
        resolveConfig({ config: file }, {});
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(/secrets are never read from the config/);
      expect(msg).not.toContain('sekrit-value');
    }
  });

  it('SM_HOST must be https; STM errors choose exit 2 (configuration) or 3 (service)', () => {
    expect(parseHost('clientauth.one.digicert.com')).toMatchObject({ origin: 'https://clientauth.one.digicert.com', prefix: '' });
    expect(parseHost('https://h.example/prefix/')).toMatchObject({ origin: 'https://h.example', prefix: '/prefix' });
    expect(() => parseHost('http://h.example')).toThrow(/must be an https:\/\/ URL/);
    let cfgErr: unknown;
    try {
      parseHost('http://h');
    } catch (e) {
      cfgErr = e;
    }
    expect(exitCodeFor(cfgErr)).toBe(EXIT.CONFIG);
    expect(exitCodeFor(classifyRefusal(401, {}, { host: 'h', what: 'x' }))).toBe(EXIT.BACKEND);
  });

  it('secret files must be private', async () => {
    const { readSecretFile } = await import('../../src/backends/stm/credentials.js');
    const f = join(dir, 'api-key');
    writeFileSync(f, 'the-key\n');
    chmodSync(f, 0o644);
    expect(() => readSecretFile(f, 'STM API key')).toThrow(/chmod 600/);
    chmodSync(f, 0o600);
    expect(readSecretFile(f, 'STM API key')).toBe('the-key');
  });
});
