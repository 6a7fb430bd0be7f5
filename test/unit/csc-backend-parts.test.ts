// The csc backend's pure parts: every CSC refusal → one catalogue error and CK_RV
// (docs/csc-backend.md "Errors"), the retry rule (only unprocessed requests), signAlgo choice
// from the credential's key.algo list, and the shared OAuth token renewed early, once.
import { describe, expect, it } from 'vitest';
import { TokenKeeper, tokenFrom } from '../../src/backends/csc/credentials.js';
import { classifyRefusal, parseCscError } from '../../src/backends/csc/errors.js';
import { retryableError, retryableStatus } from '../../src/backends/csc/retry.js';
import { planSign } from '../../src/backends/csc/sigalg.js';
import * as C from '../../src/core/pkcs11.js';

const ctx = { host: 'csc.example', what: 'the signature', credential: 'doc-rsa' };
const refusal = (status: number, body: object) => classifyRefusal(status, parseCscError(JSON.stringify(body)), ctx);

describe('CSC refusals → CK_RV', () => {
  it.each([
    [400, { error: 'invalid_otp', error_description: 'the OTP is not valid' }, 'SIGNBRIDGE_ERR_CSC_OTP_INVALID', C.CKR_PIN_INCORRECT],
    [400, { error: 'invalid_request', error_description: 'Invalid OTP' }, 'SIGNBRIDGE_ERR_CSC_OTP_INVALID', C.CKR_PIN_INCORRECT],
    [400, { error: 'invalid_pin' }, 'SIGNBRIDGE_ERR_CSC_PIN_INVALID', C.CKR_PIN_INCORRECT],
    [400, { error: 'pin_locked', error_description: 'PIN locked' }, 'SIGNBRIDGE_ERR_CSC_LOCKED', C.CKR_PIN_LOCKED],
    [400, { error: 'credential_not_active', credential_status: 'SUSPENDED' }, 'SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE', C.CKR_KEY_FUNCTION_NOT_PERMITTED],
    [400, { error: 'invalid_request', error_description: 'the credential is revoked' }, 'SIGNBRIDGE_ERR_CSC_CREDENTIAL_STATE', C.CKR_KEY_FUNCTION_NOT_PERMITTED],
    [400, { error: 'expired_sad' }, 'SIGNBRIDGE_ERR_CSC_SAD_EXPIRED', C.CKR_USER_NOT_LOGGED_IN],
    [400, { error: 'invalid_request', error_description: 'Invalid parameter SAD' }, 'SIGNBRIDGE_ERR_CSC_SAD_EXPIRED', C.CKR_USER_NOT_LOGGED_IN],
    [400, { error: 'invalid_request', error_description: 'Invalid parameter credentialID' }, 'SIGNBRIDGE_ERR_CSC_CREDENTIAL_NOT_FOUND', C.CKR_KEY_HANDLE_INVALID],
    [400, { error: 'invalid_request', error_description: 'Invalid parameter signAlgo' }, 'SIGNBRIDGE_ERR_CSC_SIG_ALG', C.CKR_MECHANISM_INVALID],
    [401, { error: 'invalid_token' }, 'SIGNBRIDGE_ERR_CSC_AUTH', C.CKR_USER_NOT_LOGGED_IN],
    [400, { error: 'invalid_request', error_description: 'Empty hash array' }, 'SIGNBRIDGE_ERR_CSC_REFUSED', C.CKR_FUNCTION_FAILED],
  ])('HTTP %i %j → %s', (status, body, code, ckr) => {
    const e = refusal(status, body);
    expect(e.code).toBe(code);
    expect(e.ckr).toBe(ckr);
    expect(e.message).toMatch(/: |ask|check|request|pick/); // a sentence that says what to do
  });

  it('reads non-JSON bodies (gateway HTML) as a short text', () => {
    expect(parseCscError('<html><title>502 Bad Gateway</title></html>').description).toBe('502 Bad Gateway');
  });
});

describe('retries only where the service cannot have processed the request', () => {
  it('429 and 503 for every call; 502/504 and dropped connections for reads only; refused connections always', () => {
    expect(retryableStatus(503, false)).toBe(true);
    expect(retryableStatus(429, false)).toBe(true);
    expect(retryableStatus(502, false)).toBe(false);
    expect(retryableStatus(504, true)).toBe(true);
    expect(retryableStatus(500, true)).toBe(false);
    expect(retryableError({ code: 'ECONNREFUSED' }, false)).toBe(true);
    expect(retryableError({ code: 'UND_ERR_SOCKET' }, false)).toBe(false);
    expect(retryableError({ cause: { code: 'ECONNRESET' } }, true)).toBe(true);
  });
});

describe('signAlgo from the credential key.algo list', () => {
  const di = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), Buffer.alloc(32, 7)]);
  const rsa = { mechanism: C.CKM_RSA_PKCS, hashAlg: C.CKM_SHA256, mgf: 0, saltLen: 0, data: di };
  it('the combined OID when listed, else the key algorithm with hashAlgo', () => {
    expect(planSign('rsa', ['1.2.840.113549.1.1.11'], rsa, 'x').signAlgo).toBe('1.2.840.113549.1.1.11');
    const p = planSign('rsa', ['1.2.840.113549.1.1.1'], rsa, 'x');
    expect([p.signAlgo, p.hashAlgo, p.hash.equals(Buffer.alloc(32, 7))]).toEqual(['1.2.840.113549.1.1.1', '2.16.840.1.101.3.4.2.1', true]);
    const ec = planSign('ec', ['1.2.840.10045.4.3.3'], { mechanism: C.CKM_ECDSA, hashAlg: 0, mgf: 0, saltLen: 0, data: Buffer.alloc(48) }, 'x');
    expect([ec.signAlgo, ec.hashAlgo]).toEqual(['1.2.840.10045.4.3.3', '2.16.840.1.101.3.4.2.2']);
  });
  it('inputs the service cannot sign are refused with the data codes', () => {
    expect(() => planSign('rsa', [], { ...rsa, data: Buffer.alloc(32) }, 'x')).toThrow(expect.objectContaining({ ckr: C.CKR_DATA_INVALID }));
    expect(() => planSign('ec', [], { mechanism: C.CKM_ECDSA, hashAlg: 0, mgf: 0, saltLen: 0, data: Buffer.alloc(20) }, 'x')).toThrow(expect.objectContaining({ ckr: C.CKR_DATA_LEN_RANGE }));
  });
});

describe('the shared OAuth token', () => {
  it('renewed a fifth of its life early (at most a minute), by one fetch however many callers wait', async () => {
    expect(tokenFrom({ access_token: 't', expires_in: 100 }, 0)!.renewAt).toBe(80_000);
    expect(tokenFrom({ access_token: 't', expires_in: 3600 }, 0)!.renewAt).toBe(3_540_000);
    let n = 0;
    const k = new TokenKeeper(async () => ({ value: `t${++n}`, renewAt: Date.now() + 60_000 }));
    const got = await Promise.all([k.get(), k.get(), k.get()]);
    expect(got).toEqual(['t1', 't1', 't1']);
    expect(k.fetches).toBe(1);
    k.invalidate('t1');
    expect(await k.get()).toBe('t2');
  });
});
