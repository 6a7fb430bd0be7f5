// The error codes tools depend on (PKCS#11 v2.40 §5 return values), through the module loaded by
// pkcs11js against a real daemon on the "matrix" SoftHSMv2 token — and what state each error leaves
// behind (§5.2: an error other than CKR_BUFFER_TOO_SMALL ends an active C_Sign/C_SignFinal; an error
// from C_SignInit starts nothing). Every signature a test completes is verified with node:crypto.
import { constants, publicDecrypt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDaemon } from '../helpers/daemon.js';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import {
  CKM_EDDSA, MECHANISMS, digest, digestInfo, mechanism, pssParams, publicKey, signatureLength, verifies, type MechCase,
} from '../helpers/signing.js';
import { testToken, type TestKey } from '../helpers/token.js';

const token = testToken('matrix');
const key = (label: string): TestKey => token.keys.find((k) => k.label === label)!;
const rsa2048 = key('rsa-2048');
const rsa3072 = key('rsa-3072');
const p256 = key('ec-p256');
const p384 = key('ec-p384');
const ed = key('ed25519');
const mech = (ckm: number): MechCase => MECHANISMS.find((m) => m.ckm === ckm)!;
const BOGUS = Buffer.from('ffffff7f00000000', 'hex'); // a handle nobody handed out
const ZERO = Buffer.alloc(8); // CK_INVALID_HANDLE
// CK_STATE values (pkcs11js does not export them)
const CKS_RO_PUBLIC_SESSION = 0;
const CKS_RO_USER_FUNCTIONS = 1;
// A PIN-shaped secret: it must never reach the daemon, its log or an error text (design.md "Login model").
const SECRET_PIN = 'errors-test-pin-7d1f0c';

let mod: ModuleFixture;
let daemon: TestDaemon;
let p11: pkcs11js.PKCS11;
let mainSlot: Buffer;
let edSlot: Buffer;
let s: Buffer; // a session on the RSA/EC token
let es: Buffer; // a session on the EdDSA token
const handles = new Map<string, Buffer>();

function rvOf(fn: () => unknown): string {
  try {
    fn();
    return 'CKR_OK';
  } catch (e) {
    if (e instanceof pkcs11js.Pkcs11Error) {
      const name = Object.keys(pkcs11js).find((k) => k.startsWith('CKR_') && (pkcs11js as unknown as Record<string, number>)[k] === e.code);
      return name ?? `0x${e.code.toString(16)}`;
    }
    // pkcs11js 2.1.7 does not wrap C_FindObjects' errors in Pkcs11Error: "CKR_X:<code>"
    const m = e instanceof Error ? /^(CKR_\w+):\d+/.exec(e.message) : null;
    if (m) return m[1]!;
    throw e;
  }
}

function expectRv(fn: () => unknown, want: string, what = ''): void {
  expect(rvOf(fn), what).toBe(want);
}

const find = (session: Buffer, template: pkcs11js.Template): Buffer[] => mod.find(template, session);

function h(k: TestKey): Buffer {
  return handles.get(k.label)!;
}

beforeAll(async () => {
  mod = await openModule({ token: 'matrix' });
  ({ daemon, p11, slot: mainSlot, session: s } = mod);
  [edSlot, es] = [mod.edSlot!, mod.edSession!];
  for (const k of token.keys) handles.set(k.label, mod.privateKey(k.label));
});

afterAll(() => mod?.close());

describe('CKR_KEY_TYPE_INCONSISTENT', () => {
  it('an EC mechanism on an RSA key and an RSA mechanism on an EC key; nothing is started', () => {
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, h(rsa2048)), 'CKR_KEY_TYPE_INCONSISTENT');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, h(rsa3072)), 'CKR_KEY_TYPE_INCONSISTENT');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, h(p256)), 'CKR_KEY_TYPE_INCONSISTENT');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: pssParams('sha256', 32) }, h(p384)), 'CKR_KEY_TYPE_INCONSISTENT');
    expectRv(() => p11.C_Sign(s, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'no operation left behind');
  });
});

describe('CKR_MECHANISM_INVALID', () => {
  it('a mechanism the token does not offer for signing; nothing is started', () => {
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_AES_CBC }, h(rsa2048)), 'CKR_MECHANISM_INVALID', 'AES_CBC');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA1_RSA_PKCS }, h(rsa2048)), 'CKR_MECHANISM_INVALID', 'SHA1_RSA_PKCS');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256 }, h(rsa2048)), 'CKR_MECHANISM_INVALID', 'a digest mechanism');
    expectRv(() => p11.C_SignInit(s, { mechanism: CKM_EDDSA }, h(rsa2048)), 'CKR_MECHANISM_INVALID', 'EdDSA on the RSA/EC token');
    expectRv(() => p11.C_SignInit(es, { mechanism: pkcs11js.CKM_ECDSA }, h(ed)), 'CKR_MECHANISM_INVALID', 'ECDSA on the EdDSA token');
    expectRv(() => p11.C_Sign(s, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'no operation left behind');
    expectRv(() => p11.C_GetMechanismInfo(mainSlot, pkcs11js.CKM_AES_CBC), 'CKR_MECHANISM_INVALID', 'C_GetMechanismInfo');
  });
});

describe('CKR_MECHANISM_PARAM_INVALID', () => {
  it('a parameter on a mechanism that takes none, and bad PSS parameters', () => {
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS, parameter: Buffer.alloc(8) }, h(rsa2048)), 'CKR_MECHANISM_PARAM_INVALID');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA, parameter: Buffer.alloc(8) }, h(p256)), 'CKR_MECHANISM_PARAM_INVALID');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS }, h(rsa2048)), 'CKR_MECHANISM_PARAM_INVALID', 'PSS without params');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: pssParams('sha512', 64) }, h(rsa2048)), 'CKR_MECHANISM_PARAM_INVALID', 'hashAlg ≠ mechanism hash');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: pssParams('sha256', 256 - 32 - 1) }, h(rsa2048)), 'CKR_MECHANISM_PARAM_INVALID', 'salt too large');
    // nothing was started: the same key signs right after
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: pssParams('sha256', 32) }, h(rsa2048));
    const msg = Buffer.from('after param errors');
    expect(verifies(publicKey(rsa2048), mech(pkcs11js.CKM_SHA256_RSA_PKCS_PSS), 'sha256', msg, p11.C_Sign(s, msg, Buffer.alloc(512)), 32)).toBe(true);
  });
});

describe('CKR_DATA_LEN_RANGE, and the operation ends', () => {
  it('CKM_RSA_PKCS: k − 11 bytes sign (RFC 8017 §9.2), one more is CKR_DATA_LEN_RANGE', () => {
    const k = 256; // RSA-2048 modulus bytes
    const fits = Buffer.alloc(k - 11, 0x42);
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS }, h(rsa2048));
    const sig = p11.C_Sign(s, fits, Buffer.alloc(512));
    // independent check: the public key opens the EMSA-PKCS1-v1_5 block back to exactly our input
    expect(publicDecrypt({ key: publicKey(rsa2048), padding: constants.RSA_PKCS1_PADDING }, sig).equals(fits)).toBe(true);

    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS }, h(rsa2048));
    expectRv(() => p11.C_Sign(s, Buffer.alloc(k - 10, 0x42), Buffer.alloc(512)), 'CKR_DATA_LEN_RANGE', 'k − 10 bytes');
    expectRv(() => p11.C_Sign(s, fits, Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'after the error');
  });

  it('CKM_RSA_PKCS: a SHA-512 DigestInfo with trailing bytes, too long for RSA-2048', () => {
    // 83 bytes of DigestInfo + 170 bytes = 253 > 245
    const tooLong = Buffer.concat([digestInfo('sha512', Buffer.from('m')), Buffer.alloc(170, 1)]);
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS }, h(rsa2048));
    expectRv(() => p11.C_Sign(s, tooLong, Buffer.alloc(512)), 'CKR_DATA_LEN_RANGE');
    expectRv(() => p11.C_Sign(s, tooLong, Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'after the error');
  });

  it('CKM_RSA_PKCS_PSS: a hash of the wrong length for params.hashAlg', () => {
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: pssParams('sha256', 32) }, h(rsa3072));
    expectRv(() => p11.C_Sign(s, digest('sha384', Buffer.from('m')), Buffer.alloc(512)), 'CKR_DATA_LEN_RANGE', 'a SHA-384 for SHA-256');
    expectRv(() => p11.C_Sign(s, digest('sha256', Buffer.from('m')), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'after the error');
  });

  it('CKM_ECDSA: an empty hash and one longer than SHA-512', () => {
    for (const bad of [Buffer.alloc(0), Buffer.alloc(65, 3)]) {
      p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, h(p256));
      expectRv(() => p11.C_Sign(s, bad, Buffer.alloc(512)), 'CKR_DATA_LEN_RANGE', `${bad.length} bytes`);
      expectRv(() => p11.C_Sign(s, digest('sha256', Buffer.from('m')), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'after the error');
    }
  });
});

describe('CKR_OPERATION_ACTIVE', () => {
  it('a second C_SignInit fails and the first operation carries on unchanged', () => {
    const msg = Buffer.from('first operation wins');
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA384_RSA_PKCS }, h(rsa2048));
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, h(rsa3072)), 'CKR_OPERATION_ACTIVE');
    const sig = p11.C_Sign(s, msg, Buffer.alloc(512));
    expect(sig.length).toBe(256); // rsa-2048, not rsa-3072
    expect(verifies(publicKey(rsa2048), mech(pkcs11js.CKM_SHA384_RSA_PKCS), 'sha384', msg, sig)).toBe(true);
  });

  it('a second C_FindObjectsInit fails and the first search carries on', () => {
    p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
    expectRv(() => p11.C_FindObjectsInit(s, []), 'CKR_OPERATION_ACTIVE');
    expect(p11.C_FindObjects(s, 100)).toHaveLength(5);
    p11.C_FindObjectsFinal(s);
  });
});

describe('CKR_OPERATION_NOT_INITIALIZED', () => {
  it('C_Sign, C_SignUpdate, C_SignFinal, C_FindObjects and C_FindObjectsFinal with nothing started', () => {
    expectRv(() => p11.C_Sign(s, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_Sign');
    expectRv(() => p11.C_SignUpdate(s, Buffer.from('x')), 'CKR_OPERATION_NOT_INITIALIZED', 'C_SignUpdate');
    expectRv(() => p11.C_SignFinal(s, Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_SignFinal');
    expectRv(() => p11.C_FindObjects(s, 1), 'CKR_OPERATION_NOT_INITIALIZED', 'C_FindObjects');
    expectRv(() => p11.C_FindObjectsFinal(s), 'CKR_OPERATION_NOT_INITIALIZED', 'C_FindObjectsFinal');
  });

  it('after a completed signature, and when single- and multi-part calls are mixed', () => {
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, h(p256));
    p11.C_Sign(s, Buffer.from('done'), Buffer.alloc(512));
    expectRv(() => p11.C_SignFinal(s, Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_SignFinal after C_Sign');
    // C_Sign after C_SignUpdate: the multi-part operation must be finished with C_SignFinal
    // (v2.40 §5.12); the module ends it, as SoftHSMv2 does
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, h(p256));
    p11.C_SignUpdate(s, Buffer.from('part'));
    expectRv(() => p11.C_Sign(s, Buffer.from('part'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_Sign after C_SignUpdate');
    // C_SignFinal on a single-part (digest-in) mechanism
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, h(p256));
    expectRv(() => p11.C_SignFinal(s, Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_SignFinal on CKM_ECDSA');
    expectRv(() => p11.C_Sign(s, Buffer.alloc(32), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'and it ended the operation');
    // CKM_EDDSA is multi-part (the module buffers the message), so C_SignUpdate + C_Sign is the mix there
    p11.C_SignInit(es, { mechanism: CKM_EDDSA }, h(ed));
    p11.C_SignUpdate(es, Buffer.from('part'));
    expectRv(() => p11.C_Sign(es, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_Sign after C_SignUpdate on CKM_EDDSA');
  });
});

describe('CKR_SESSION_HANDLE_INVALID', () => {
  it('a handle never handed out, 0, a closed session, and sessions closed by C_CloseAllSessions', () => {
    for (const bad of [BOGUS, ZERO]) {
      expectRv(() => p11.C_SignInit(bad, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, h(rsa2048)), 'CKR_SESSION_HANDLE_INVALID', 'C_SignInit');
      expectRv(() => p11.C_Sign(bad, Buffer.from('x'), Buffer.alloc(512)), 'CKR_SESSION_HANDLE_INVALID', 'C_Sign');
      expectRv(() => p11.C_GetSessionInfo(bad), 'CKR_SESSION_HANDLE_INVALID', 'C_GetSessionInfo');
      expectRv(() => p11.C_FindObjectsInit(bad, []), 'CKR_SESSION_HANDLE_INVALID', 'C_FindObjectsInit');
      expectRv(() => p11.C_CloseSession(bad), 'CKR_SESSION_HANDLE_INVALID', 'C_CloseSession');
    }
    const t = p11.C_OpenSession(mainSlot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_SignInit(t, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, h(rsa2048));
    p11.C_CloseSession(t);
    expectRv(() => p11.C_Sign(t, Buffer.from('x'), Buffer.alloc(512)), 'CKR_SESSION_HANDLE_INVALID', 'closed session, operation gone');
    expectRv(() => p11.C_CloseSession(t), 'CKR_SESSION_HANDLE_INVALID', 'closed twice');

    const u = p11.C_OpenSession(edSlot, pkcs11js.CKF_SERIAL_SESSION);
    const v = p11.C_OpenSession(edSlot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_CloseAllSessions(edSlot);
    expectRv(() => p11.C_GetSessionInfo(u), 'CKR_SESSION_HANDLE_INVALID', 'C_CloseAllSessions');
    expectRv(() => p11.C_GetSessionInfo(v), 'CKR_SESSION_HANDLE_INVALID', 'C_CloseAllSessions');
    // the other slot's session is untouched; reopen the EdDSA one for later tests
    expect(rvOf(() => p11.C_GetSessionInfo(s))).toBe('CKR_OK');
    es = p11.C_OpenSession(edSlot, pkcs11js.CKF_SERIAL_SESSION);
  });
});

describe('CKR_OBJECT_HANDLE_INVALID / CKR_KEY_HANDLE_INVALID', () => {
  it('unknown handles, handle 0, and an object of the other token', () => {
    for (const bad of [BOGUS, ZERO]) {
      expectRv(() => p11.C_GetAttributeValue(s, bad, [{ type: pkcs11js.CKA_LABEL }]), 'CKR_OBJECT_HANDLE_INVALID', 'C_GetAttributeValue');
      expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, bad), 'CKR_KEY_HANDLE_INVALID', 'C_SignInit');
    }
    // the Ed25519 key seen through a session of the RSA/EC token, and the other way round
    expectRv(() => p11.C_GetAttributeValue(s, h(ed), [{ type: pkcs11js.CKA_LABEL }]), 'CKR_OBJECT_HANDLE_INVALID', 'ed25519 via slot 0');
    expectRv(() => p11.C_GetAttributeValue(es, h(rsa2048), [{ type: pkcs11js.CKA_LABEL }]), 'CKR_OBJECT_HANDLE_INVALID', 'rsa via EdDSA slot');
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, h(ed)), 'CKR_KEY_HANDLE_INVALID', 'sign with the other token\'s key');
    // a certificate is not a key
    const [cert] = find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }, { type: pkcs11js.CKA_LABEL, value: 'rsa-2048' }]);
    expectRv(() => p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, cert!), 'CKR_KEY_HANDLE_INVALID', 'a certificate');
    expectRv(() => p11.C_Sign(s, Buffer.from('x'), Buffer.alloc(512)), 'CKR_OPERATION_NOT_INITIALIZED', 'no operation left behind');
  });
});

describe('CKR_ATTRIBUTE_TYPE_INVALID / CKR_ATTRIBUTE_SENSITIVE', () => {
  it('an unknown attribute type, alone and among valid ones; a private exponent is sensitive', () => {
    expectRv(() => p11.C_GetAttributeValue(s, h(rsa2048), [{ type: 0x7ffff00d }]), 'CKR_ATTRIBUTE_TYPE_INVALID', 'alone');
    expectRv(() => p11.C_GetAttributeValue(s, h(rsa2048), [{ type: pkcs11js.CKA_LABEL }, { type: 0x7ffff00d }, { type: pkcs11js.CKA_ID }]), 'CKR_ATTRIBUTE_TYPE_INVALID', 'among valid ones');
    expectRv(() => p11.C_GetAttributeValue(es, h(ed), [{ type: 0x7ffff00d }]), 'CKR_ATTRIBUTE_TYPE_INVALID', 'ed25519');
    expectRv(() => p11.C_GetAttributeValue(s, h(rsa2048), [{ type: pkcs11js.CKA_PRIVATE_EXPONENT }]), 'CKR_ATTRIBUTE_SENSITIVE');
    expectRv(() => p11.C_GetAttributeValue(s, h(p256), [{ type: pkcs11js.CKA_VALUE }]), 'CKR_ATTRIBUTE_SENSITIVE', 'EC private value');
  });
});

describe('CKR_USER_NOT_LOGGED_IN and the login model (design.md "Login model")', () => {
  // The tokens never set CKF_LOGIN_REQUIRED: keys are visible and sign without C_Login; C_Login
  // takes any PIN and never sends it to the daemon (which holds the real token PIN). So the only
  // CKR_USER_NOT_LOGGED_IN a tool can meet is C_Logout without a login.
  it('no CKF_LOGIN_REQUIRED; private keys found and used without C_Login', () => {
    for (const slot of [mainSlot, edSlot]) expect(p11.C_GetTokenInfo(slot).flags & pkcs11js.CKF_LOGIN_REQUIRED).toBe(0);
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
    expect(find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }])).toHaveLength(5);
    const msg = Buffer.from('no login');
    p11.C_SignInit(es, { mechanism: CKM_EDDSA }, h(ed));
    expect(verifies(publicKey(ed), mech(CKM_EDDSA), 'sha256', msg, p11.C_Sign(es, msg, Buffer.alloc(64)))).toBe(true);
  });

  it('C_Logout without a login is CKR_USER_NOT_LOGGED_IN; after C_Login(any PIN) it succeeds once', () => {
    expectRv(() => p11.C_Logout(s), 'CKR_USER_NOT_LOGGED_IN', 'before login');
    p11.C_Login(s, pkcs11js.CKU_USER, SECRET_PIN);
    // login state is per token (v2.40 §5.6): a second session of the same token is logged in too
    const t = p11.C_OpenSession(mainSlot, pkcs11js.CKF_SERIAL_SESSION);
    expect(p11.C_GetSessionInfo(t).state).toBe(CKS_RO_USER_FUNCTIONS);
    expect(p11.C_GetSessionInfo(es).state, 'the EdDSA token is another token').toBe(CKS_RO_PUBLIC_SESSION);
    expectRv(() => p11.C_Login(t, pkcs11js.CKU_USER, SECRET_PIN), 'CKR_USER_ALREADY_LOGGED_IN');
    const msg = Buffer.from('logged in');
    p11.C_SignInit(t, { mechanism: pkcs11js.CKM_ECDSA_SHA384 }, h(p384));
    const sig = p11.C_Sign(t, msg, Buffer.alloc(512));
    expect(verifies(publicKey(p384), mech(pkcs11js.CKM_ECDSA_SHA384), 'sha384', msg, sig)).toBe(true);
    p11.C_Logout(t);
    expectRv(() => p11.C_Logout(s), 'CKR_USER_NOT_LOGGED_IN', 'after logout');
    expect(p11.C_GetSessionInfo(s).state).toBe(CKS_RO_PUBLIC_SESSION);
    p11.C_CloseSession(t);
    // the PIN stayed in this process: not in the daemon's log
    expect(readFileSync(daemon.logFile, 'utf8')).not.toContain(SECRET_PIN);
  });
});

describe('CKR_BUFFER_TOO_SMALL keeps the operation active (v2.40 §5.2), then it completes and verifies', () => {
  const msg = Buffer.from('short buffer, then the real one');

  it('C_Sign, single-part RSA (CKM_SHA512_RSA_PKCS on RSA-3072)', () => {
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA512_RSA_PKCS }, h(rsa3072));
    expectRv(() => p11.C_Sign(s, msg, Buffer.alloc(383)), 'CKR_BUFFER_TOO_SMALL', '383 of 384 bytes');
    expectRv(() => p11.C_Sign(s, msg, Buffer.alloc(1)), 'CKR_BUFFER_TOO_SMALL', 'again');
    const sig = p11.C_Sign(s, msg, Buffer.alloc(384));
    expect(sig.length).toBe(signatureLength(rsa3072));
    expect(verifies(publicKey(rsa3072), mech(pkcs11js.CKM_SHA512_RSA_PKCS), 'sha512', msg, sig)).toBe(true);
  });

  it('C_Sign, CKM_RSA_PKCS_PSS with the maximum salt', () => {
    const salt = 256 - 48 - 2;
    p11.C_SignInit(s, mechanism(mech(pkcs11js.CKM_RSA_PKCS_PSS), 'sha384', salt), h(rsa2048));
    const hash = digest('sha384', msg);
    expectRv(() => p11.C_Sign(s, hash, Buffer.alloc(255)), 'CKR_BUFFER_TOO_SMALL');
    const sig = p11.C_Sign(s, hash, Buffer.alloc(256));
    expect(verifies(publicKey(rsa2048), mech(pkcs11js.CKM_RSA_PKCS_PSS), 'sha384', msg, sig, salt)).toBe(true);
  });

  it('C_SignFinal, multi-part ECDSA (CKM_ECDSA_SHA384 on P-384)', () => {
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA_SHA384 }, h(p384));
    p11.C_SignUpdate(s, msg.subarray(0, 5));
    p11.C_SignUpdate(s, msg.subarray(5));
    expectRv(() => p11.C_SignFinal(s, Buffer.alloc(95)), 'CKR_BUFFER_TOO_SMALL', '95 of 96 bytes');
    const sig = p11.C_SignFinal(s, Buffer.alloc(96));
    expect(sig.length).toBe(96);
    expect(verifies(publicKey(p384), mech(pkcs11js.CKM_ECDSA_SHA384), 'sha384', msg, sig)).toBe(true);
  });

  it('C_Sign, CKM_EDDSA', () => {
    p11.C_SignInit(es, { mechanism: CKM_EDDSA }, h(ed));
    expectRv(() => p11.C_Sign(es, msg, Buffer.alloc(63)), 'CKR_BUFFER_TOO_SMALL');
    const sig = p11.C_Sign(es, msg, Buffer.alloc(64));
    expect(verifies(publicKey(ed), mech(CKM_EDDSA), 'sha256', msg, sig)).toBe(true);
  });
});
