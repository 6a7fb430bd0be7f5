// Read-write sessions (design.md "What a bridge never does"), through the module loaded by pkcs11js
// against a real daemon on the "matrix" token: C_OpenSession(CKF_RW_SESSION) succeeds — OpenSSH and
// pkcs11-tool --test always ask for one — and the session states follow v2.40 §6.7 (CKS_RW_*),
// while every call that would create, change or destroy an object, generate a key or manage the
// token still fails with CKR_FUNCTION_NOT_SUPPORTED, and C_Login(CKU_SO) never succeeds (§5.6).
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { testToken } from '../helpers/token.js';

// CK_STATE values (v2.40 §6.7; pkcs11js does not export them)
const CKS_RO_PUBLIC_SESSION = 0;
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_PUBLIC_SESSION = 2;
const CKS_RW_USER_FUNCTIONS = 3;
const RW = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION;

let mod: ModuleFixture;
let p11: pkcs11js.PKCS11;

function rv(fn: () => unknown): number {
  try {
    fn();
    return pkcs11js.CKR_OK;
  } catch (e) {
    if (e instanceof pkcs11js.Pkcs11Error) return e.code;
    // pkcs11js 2.1.7 throws some calls' errors as a plain Error "CKR_X:<code>"
    const m = e instanceof Error ? /^CKR_\w+:(\d+)$/.exec(e.message) : null;
    if (m) return Number(m[1]);
    throw e;
  }
}

beforeAll(async () => {
  mod = await openModule({ token: 'matrix' });
  p11 = mod.p11;
});

afterAll(async () => {
  await mod?.close();
});

describe('read-write sessions', () => {
  it('the token is not write-protected; C_OpenSession(CKF_RW_SESSION) succeeds and is counted as R/W', () => {
    const info = p11.C_GetTokenInfo(mod.slot);
    expect(info.flags & pkcs11js.CKF_WRITE_PROTECTED).toBe(0);
    const before = info.rwSessionCount;
    const rw = p11.C_OpenSession(mod.slot, RW);
    try {
      const si = p11.C_GetSessionInfo(rw);
      expect(si.state).toBe(CKS_RW_PUBLIC_SESSION);
      expect(si.flags & pkcs11js.CKF_RW_SESSION).toBe(pkcs11js.CKF_RW_SESSION);
      expect(p11.C_GetTokenInfo(mod.slot).rwSessionCount).toBe(before + 1);
      expect(p11.C_GetSessionInfo(mod.session).state, 'the fixture session stays R/O').toBe(CKS_RO_PUBLIC_SESSION);
    } finally {
      p11.C_CloseSession(rw);
    }
    expect(p11.C_GetTokenInfo(mod.slot).rwSessionCount).toBe(before);
  });

  it('a R/W session finds and signs with the token keys (what OpenSSH does)', () => {
    const rw = p11.C_OpenSession(mod.slot, RW);
    try {
      p11.C_FindObjectsInit(rw, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'ec-p256' }]);
      const [key] = p11.C_FindObjects(rw, 2) as unknown as Buffer[];
      p11.C_FindObjectsFinal(rw);
      expect(key).toBeDefined();
      p11.C_SignInit(rw, { mechanism: pkcs11js.CKM_ECDSA }, key!);
      const sig = p11.C_Sign(rw, Buffer.alloc(32, 7), Buffer.alloc(64));
      expect(sig.length).toBe(64); // r‖s of P-256; the e2e tests verify such signatures with OpenSSH
    } finally {
      p11.C_CloseSession(rw);
    }
  });

  it('writes stay refused on a R/W session: create, copy, change, destroy, generate, PIN and token management', () => {
    const rw = p11.C_OpenSession(mod.slot, RW);
    try {
      p11.C_FindObjectsInit(rw, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }]);
      const [cert] = p11.C_FindObjects(rw, 1) as unknown as Buffer[];
      p11.C_FindObjectsFinal(rw);
      const label = [{ type: pkcs11js.CKA_LABEL, value: 'renamed' }];
      const NS = pkcs11js.CKR_FUNCTION_NOT_SUPPORTED;
      expect(rv(() => p11.C_CreateObject(rw, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }, ...label]))).toBe(NS);
      expect(rv(() => p11.C_CopyObject(rw, cert!, label))).toBe(NS);
      expect(rv(() => p11.C_SetAttributeValue(rw, cert!, label))).toBe(NS);
      expect(rv(() => p11.C_DestroyObject(rw, cert!))).toBe(NS);
      expect(rv(() => p11.C_GenerateKeyPair(rw, { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN }, [], []))).toBe(NS);
      expect(rv(() => p11.C_GenerateKey(rw, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, []))).toBe(NS);
      expect(rv(() => p11.C_InitPIN(rw, '1234'))).toBe(NS);
      expect(rv(() => p11.C_SetPIN(rw, '1234', '5678'))).toBe(NS);
      expect(rv(() => p11.C_InitToken(mod.slot, '1234', 'wiped'))).toBe(NS);
      // nothing changed: the certificate is still there under its own label
      const got = p11.C_GetAttributeValue(rw, cert!, [{ type: pkcs11js.CKA_LABEL }])[0]!.value as Buffer;
      expect(testToken('matrix').keys.map((k) => k.label)).toContain(got.toString('utf8'));
    } finally {
      p11.C_CloseSession(rw);
    }
  });

  it('C_Login(CKU_USER) on a R/W session gives CKS_RW_USER_FUNCTIONS, and the R/O session CKS_RO_USER_FUNCTIONS', () => {
    const rw = p11.C_OpenSession(mod.slot, RW);
    try {
      p11.C_Login(rw, pkcs11js.CKU_USER, 'any PIN'); // design.md "Login model"
      expect(p11.C_GetSessionInfo(rw).state).toBe(CKS_RW_USER_FUNCTIONS);
      expect(p11.C_GetSessionInfo(mod.session).state).toBe(CKS_RO_USER_FUNCTIONS);
      p11.C_Logout(rw);
      expect(p11.C_GetSessionInfo(rw).state).toBe(CKS_RW_PUBLIC_SESSION);
    } finally {
      p11.C_CloseSession(rw);
    }
  });
});

describe('C_Login(CKU_SO): there is no security officer', () => {
  it('with a R/O session open: CKR_SESSION_READ_ONLY_EXISTS (v2.40 §5.6), from either session', () => {
    const rw = p11.C_OpenSession(mod.slot, RW);
    try {
      expect(rv(() => p11.C_Login(mod.session, pkcs11js.CKU_SO, 'so-pin'))).toBe(pkcs11js.CKR_SESSION_READ_ONLY_EXISTS);
      expect(rv(() => p11.C_Login(rw, pkcs11js.CKU_SO, 'so-pin'))).toBe(pkcs11js.CKR_SESSION_READ_ONLY_EXISTS);
    } finally {
      p11.C_CloseSession(rw);
    }
  });

  it('with only R/W sessions: CKR_USER_TYPE_INVALID; with the user logged in: CKR_USER_ANOTHER_ALREADY_LOGGED_IN', () => {
    // the EdDSA token's slot: its only session is the one opened here
    const slot = mod.edSlot!;
    p11.C_CloseSession(mod.edSession!);
    const rw = p11.C_OpenSession(slot, RW);
    try {
      expect(rv(() => p11.C_Login(rw, pkcs11js.CKU_SO, 'so-pin'))).toBe(pkcs11js.CKR_USER_TYPE_INVALID);
      expect(p11.C_GetSessionInfo(rw).state).toBe(CKS_RW_PUBLIC_SESSION);
      p11.C_Login(rw, pkcs11js.CKU_USER, 'any PIN');
      expect(rv(() => p11.C_Login(rw, pkcs11js.CKU_SO, 'so-pin'))).toBe(pkcs11js.CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
      expect(p11.C_GetSessionInfo(rw).state).toBe(CKS_RW_USER_FUNCTIONS);
    } finally {
      p11.C_CloseSession(rw);
      mod.edSession = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    }
  });
});
