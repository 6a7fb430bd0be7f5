/*
 * The PKCS#11 misuse matrix (docs/hardening/hostile-input.md): what a careless or hostile caller
 * does to libsignbridge-pkcs11.so through its raw C ABI, each case checked against the CK_RV the
 * spec (PKCS#11 v2.40) defines for it:
 *   - every function before C_Initialize and after C_Finalize → CKR_CRYPTOKI_NOT_INITIALIZED (§5.4)
 *   - NULL for every pointer argument of every implemented function → CKR_ARGUMENTS_BAD (§5.1:
 *     "an argument was NULL where a value was required"); NULL with length 0 where the spec
 *     allows it → CKR_OK
 *   - zero lengths (empty messages, empty templates, zero-sized outputs)
 *   - huge lengths where the spec still defines the answer from the length alone
 *     (CKR_DATA_LEN_RANGE, CKR_MECHANISM_PARAM_INVALID, no match) — the buffers behind them are
 *     small, so a module that reads them shows up under ASan/valgrind
 *   - wrong handles (0, unknown, closed, from before C_Finalize, another slot's key, not a key)
 *   - calls out of order (§5.11/§5.10: no operation, operation active, single-part vs multi-part)
 * and, after each group, that the module still signs (the signatures are printed and verified by
 * the test with node:crypto).
 *
 * Built and run by test/integration/sanitizers.test.ts (plain, and built with ASan/UBSan against
 * the ASan/UBSan module):
 *   misuse <module.so>    with a daemon serving the matrix token on SIGNBRIDGE_SOCKET
 *   misuse <module.so> hostile-daemon <n>
 *                         with a *hostile* daemon on SIGNBRIDGE_SOCKET (the test's fake daemon
 *                         answers with mutated real replies): n rounds of C_Initialize, slot list,
 *                         token info, object search, attribute reads, signing with every private
 *                         key, C_Finalize. C_GetSlotList must answer CKR_OK or CKR_FUNCTION_FAILED;
 *                         the rest only has to return (the module's reply path under ASan).
 * Prints "ok <name>" / "FAIL <name>: ..." per check, "sig <key> <mechanism> <data-hex> <sig-hex>"
 * per signature, and "cases <n>"; exit status = number of failures (capped at 99).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"
#include "module.h"
#include "check.h"

#ifndef CKM_ECDSA_SHA256
#define CKM_ECDSA_SHA256 0x1044UL
#endif

#define HUGE_LEN ((CK_ULONG)0x7fffffffUL)

static CK_FUNCTION_LIST_PTR p;



static void hex(const unsigned char *b, CK_ULONG n) {
  if (n == 0) printf("-");
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

static void print_sig(const char *key, const char *mech, const unsigned char *data, CK_ULONG dlen,
                      const unsigned char *sig, CK_ULONG slen) {
  printf("sig %s %s ", key, mech);
  hex(data, dlen);
  printf(" ");
  hex(sig, slen);
  printf("\n");
}

/* The matrix token's keys (test/helpers/token.ts): CKA_ID 11 rsa-2048, 21 ec-p256, 31 ed25519. */
struct keys {
  CK_SLOT_ID slot, ed_slot;
  CK_OBJECT_HANDLE rsa, ec, ec_pub, cert, ed;
};

static CK_OBJECT_HANDLE find_in(CK_SLOT_ID slot, CK_OBJECT_CLASS cls, unsigned char id) {
  CK_SESSION_HANDLE s;
  CK_OBJECT_HANDLE h[4];
  CK_ULONG n = 0;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
  if (p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) return CK_INVALID_HANDLE;
  if (p->C_FindObjectsInit(s, t, 2) == CKR_OK) {
    if (p->C_FindObjects(s, h, 4, &n) != CKR_OK) n = 0;
    p->C_FindObjectsFinal(s);
  }
  p->C_CloseSession(s);
  return n == 1 ? h[0] : CK_INVALID_HANDLE;
}

static int find_keys(struct keys *k) {
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  memset(k, 0, sizeof *k);
  if (p->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) return 0;
  for (CK_ULONG i = 0; i < n; i++) {
    CK_OBJECT_HANDLE rsa = find_in(slots[i], CKO_PRIVATE_KEY, 0x11);
    CK_OBJECT_HANDLE ed = find_in(slots[i], CKO_PRIVATE_KEY, 0x31);
    if (rsa) {
      k->slot = slots[i];
      k->rsa = rsa;
      k->ec = find_in(slots[i], CKO_PRIVATE_KEY, 0x21);
      k->ec_pub = find_in(slots[i], CKO_PUBLIC_KEY, 0x21);
      k->cert = find_in(slots[i], CKO_CERTIFICATE, 0x21);
    }
    if (ed) {
      k->ed_slot = slots[i];
      k->ed = ed;
    }
  }
  return k->rsa && k->ec && k->ec_pub && k->cert && k->ed && k->slot != k->ed_slot;
}

/* Every one of the 68 functions (except C_GetFunctionList and C_Initialize) with arguments that are
 * otherwise valid, so only "not initialized" can be the answer. */
static void all_functions(const char *when, CK_RV want, CK_SESSION_HANDLE s, CK_SLOT_ID slot) {
  char name[128];
  unsigned char buf[512];
  CK_ULONG len = sizeof buf, count = 8;
  CK_SLOT_ID slots[8];
  CK_INFO info;
  CK_SLOT_INFO si;
  CK_TOKEN_INFO ti;
  CK_MECHANISM_TYPE mt[64];
  CK_MECHANISM_INFO mi;
  CK_SESSION_HANDLE sh;
  CK_SESSION_INFO sinfo;
  CK_OBJECT_HANDLE oh = 1, oh2 = 2;
  CK_ATTRIBUTE attr = {CKA_LABEL, buf, sizeof buf};
  CK_MECHANISM mech = {CKM_SHA256, NULL, 0};
  CK_BYTE data[32] = {0};
#define ALL(fn, call)                                  \
  do {                                                 \
    snprintf(name, sizeof name, "%s %s", when, fn);    \
    len = sizeof buf;                                  \
    count = 8;                                         \
    EXPECT_RV(name, call, want);                       \
  } while (0)
  ALL("C_Finalize", p->C_Finalize(NULL));
  ALL("C_GetInfo", p->C_GetInfo(&info));
  ALL("C_GetSlotList", p->C_GetSlotList(CK_FALSE, slots, &count));
  ALL("C_GetSlotInfo", p->C_GetSlotInfo(slot, &si));
  ALL("C_GetTokenInfo", p->C_GetTokenInfo(slot, &ti));
  count = 64;
  ALL("C_GetMechanismList", p->C_GetMechanismList(slot, mt, &count));
  ALL("C_GetMechanismInfo", p->C_GetMechanismInfo(slot, CKM_SHA256_RSA_PKCS, &mi));
  ALL("C_InitToken", p->C_InitToken(slot, (CK_UTF8CHAR_PTR) "1234", 4, buf));
  ALL("C_InitPIN", p->C_InitPIN(s, (CK_UTF8CHAR_PTR) "1234", 4));
  ALL("C_SetPIN", p->C_SetPIN(s, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "5678", 4));
  ALL("C_OpenSession", p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &sh));
  ALL("C_CloseSession", p->C_CloseSession(s));
  ALL("C_CloseAllSessions", p->C_CloseAllSessions(slot));
  ALL("C_GetSessionInfo", p->C_GetSessionInfo(s, &sinfo));
  ALL("C_GetOperationState", p->C_GetOperationState(s, buf, &len));
  ALL("C_SetOperationState", p->C_SetOperationState(s, buf, 16, 0, 0));
  ALL("C_Login", p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4));
  ALL("C_Logout", p->C_Logout(s));
  ALL("C_CreateObject", p->C_CreateObject(s, &attr, 1, &oh));
  ALL("C_CopyObject", p->C_CopyObject(s, oh, &attr, 1, &oh2));
  ALL("C_DestroyObject", p->C_DestroyObject(s, oh));
  ALL("C_GetObjectSize", p->C_GetObjectSize(s, oh, &len));
  ALL("C_GetAttributeValue", p->C_GetAttributeValue(s, oh, &attr, 1));
  ALL("C_SetAttributeValue", p->C_SetAttributeValue(s, oh, &attr, 1));
  ALL("C_FindObjectsInit", p->C_FindObjectsInit(s, &attr, 1));
  ALL("C_FindObjects", p->C_FindObjects(s, &oh, 1, &count));
  ALL("C_FindObjectsFinal", p->C_FindObjectsFinal(s));
  ALL("C_EncryptInit", p->C_EncryptInit(s, &mech, oh));
  ALL("C_Encrypt", p->C_Encrypt(s, data, sizeof data, buf, &len));
  ALL("C_EncryptUpdate", p->C_EncryptUpdate(s, data, sizeof data, buf, &len));
  ALL("C_EncryptFinal", p->C_EncryptFinal(s, buf, &len));
  ALL("C_DecryptInit", p->C_DecryptInit(s, &mech, oh));
  ALL("C_Decrypt", p->C_Decrypt(s, data, sizeof data, buf, &len));
  ALL("C_DecryptUpdate", p->C_DecryptUpdate(s, data, sizeof data, buf, &len));
  ALL("C_DecryptFinal", p->C_DecryptFinal(s, buf, &len));
  ALL("C_DigestInit", p->C_DigestInit(s, &mech));
  ALL("C_Digest", p->C_Digest(s, data, sizeof data, buf, &len));
  ALL("C_DigestUpdate", p->C_DigestUpdate(s, data, sizeof data));
  ALL("C_DigestKey", p->C_DigestKey(s, oh));
  ALL("C_DigestFinal", p->C_DigestFinal(s, buf, &len));
  ALL("C_SignInit", p->C_SignInit(s, &mech, oh));
  ALL("C_Sign", p->C_Sign(s, data, sizeof data, buf, &len));
  ALL("C_SignUpdate", p->C_SignUpdate(s, data, sizeof data));
  ALL("C_SignFinal", p->C_SignFinal(s, buf, &len));
  ALL("C_SignRecoverInit", p->C_SignRecoverInit(s, &mech, oh));
  ALL("C_SignRecover", p->C_SignRecover(s, data, sizeof data, buf, &len));
  ALL("C_VerifyInit", p->C_VerifyInit(s, &mech, oh));
  ALL("C_Verify", p->C_Verify(s, data, sizeof data, buf, 64));
  ALL("C_VerifyUpdate", p->C_VerifyUpdate(s, data, sizeof data));
  ALL("C_VerifyFinal", p->C_VerifyFinal(s, buf, 64));
  ALL("C_VerifyRecoverInit", p->C_VerifyRecoverInit(s, &mech, oh));
  ALL("C_VerifyRecover", p->C_VerifyRecover(s, buf, 64, data, &len));
  ALL("C_DigestEncryptUpdate", p->C_DigestEncryptUpdate(s, data, sizeof data, buf, &len));
  ALL("C_DecryptDigestUpdate", p->C_DecryptDigestUpdate(s, data, sizeof data, buf, &len));
  ALL("C_SignEncryptUpdate", p->C_SignEncryptUpdate(s, data, sizeof data, buf, &len));
  ALL("C_DecryptVerifyUpdate", p->C_DecryptVerifyUpdate(s, data, sizeof data, buf, &len));
  ALL("C_GenerateKey", p->C_GenerateKey(s, &mech, &attr, 1, &oh));
  ALL("C_GenerateKeyPair", p->C_GenerateKeyPair(s, &mech, &attr, 1, &attr, 1, &oh, &oh2));
  ALL("C_WrapKey", p->C_WrapKey(s, &mech, oh, oh2, buf, &len));
  ALL("C_UnwrapKey", p->C_UnwrapKey(s, &mech, oh, buf, 16, &attr, 1, &oh2));
  ALL("C_DeriveKey", p->C_DeriveKey(s, &mech, oh, &attr, 1, &oh2));
  ALL("C_SeedRandom", p->C_SeedRandom(s, data, sizeof data));
  ALL("C_GenerateRandom", p->C_GenerateRandom(s, buf, 16));
  ALL("C_GetFunctionStatus", p->C_GetFunctionStatus(s));
  ALL("C_CancelFunction", p->C_CancelFunction(s));
  ALL("C_WaitForSlotEvent", p->C_WaitForSlotEvent(CKF_DONT_BLOCK, slots, NULL));
#undef ALL
}

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot) {
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  if (p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) return CK_INVALID_HANDLE;
  return s;
}

/* A real signature after each group: the module is still usable (verified by the test). */
static void still_signs(const char *after, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE ec) {
  char name[128];
  static const unsigned char msg[] = "signbridge misuse: still signs";
  unsigned char sig[128];
  CK_ULONG slen = sizeof sig;
  CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
  snprintf(name, sizeof name, "still signs after %s: init", after);
  EXPECT_RV(name, p->C_SignInit(s, &m, ec), CKR_OK);
  snprintf(name, sizeof name, "still signs after %s: sign", after);
  EXPECT_RV(name, p->C_Sign(s, (CK_BYTE_PTR)msg, sizeof msg - 1, sig, &slen), CKR_OK);
  print_sig("ec-p256", "ECDSA_SHA256", msg, sizeof msg - 1, sig, slen);
}

static void null_pointers(const struct keys *k) {
  CK_SESSION_HANDLE s = open_session(k->slot);
  CK_ULONG n = 0;
  unsigned char buf[512];
  CK_SLOT_ID slots[8];
  CK_MECHANISM_TYPE mt[64];
  CK_OBJECT_HANDLE h[64];
  CK_MECHANISM m_rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
  CK_MECHANISM m_sha = {CKM_SHA256, NULL, 0};
  CK_MECHANISM m_eddsa = {CKM_EDDSA, NULL, 0};
  static const unsigned char data[] = "0123456789abcdef0123456789abcdef";

  EXPECT_RV("NULL C_Finalize(pReserved != NULL)", p->C_Finalize(buf), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetInfo pInfo", p->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetSlotList pulCount", p->C_GetSlotList(CK_FALSE, slots, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetSlotList both", p->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetSlotInfo pInfo", p->C_GetSlotInfo(k->slot, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetTokenInfo pInfo", p->C_GetTokenInfo(k->slot, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetMechanismList pulCount", p->C_GetMechanismList(k->slot, mt, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetMechanismInfo pInfo", p->C_GetMechanismInfo(k->slot, CKM_SHA256_RSA_PKCS, NULL),
            CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_OpenSession phSession", p->C_OpenSession(k->slot, CKF_SERIAL_SESSION, NULL, NULL, NULL),
            CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetSessionInfo pInfo", p->C_GetSessionInfo(s, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_Login pPin with length", p->C_Login(s, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetAttributeValue pTemplate", p->C_GetAttributeValue(s, k->rsa, NULL, 1), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_GetAttributeValue pTemplate, count 0", p->C_GetAttributeValue(s, k->rsa, NULL, 0), CKR_OK);
  EXPECT_RV("NULL C_FindObjectsInit pTemplate", p->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
  {
    CK_ATTRIBUTE t = {CKA_ID, NULL, 1}; /* NULL value with a length inside the template */
    EXPECT_RV("NULL C_FindObjectsInit pValue with length", p->C_FindObjectsInit(s, &t, 1), CKR_ARGUMENTS_BAD);
  }
  EXPECT_RV("NULL C_FindObjectsInit pTemplate, count 0", p->C_FindObjectsInit(s, NULL, 0), CKR_OK);
  EXPECT_RV("NULL C_FindObjects phObject", p->C_FindObjects(s, NULL, 4, &n), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_FindObjects pulObjectCount", p->C_FindObjects(s, h, 4, NULL), CKR_ARGUMENTS_BAD);
  n = 99;
  EXPECT_RV("NULL C_FindObjects phObject, max 0", p->C_FindObjects(s, NULL, 0, &n), CKR_OK);
  CHECK("NULL C_FindObjects max 0 returns none", n == 0, "n=%lu", (unsigned long)n);
  EXPECT_RV("C_FindObjectsFinal after NULL cases", p->C_FindObjectsFinal(s), CKR_OK);
  EXPECT_RV("NULL C_SignInit pMechanism", p->C_SignInit(s, NULL, k->rsa), CKR_ARGUMENTS_BAD);

  /* §5.11: any error but CKR_BUFFER_TOO_SMALL ends the operation. */
  EXPECT_RV("C_SignInit for NULL pData", p->C_SignInit(s, &m_rsa, k->rsa), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("NULL C_Sign pData with length", p->C_Sign(s, NULL, 16, buf, &n), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_Sign ended the operation", p->C_Sign(s, (CK_BYTE_PTR)data, 4, buf, &n),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignInit for NULL pulSignatureLen", p->C_SignInit(s, &m_rsa, k->rsa), CKR_OK);
  EXPECT_RV("NULL C_Sign pulSignatureLen", p->C_Sign(s, (CK_BYTE_PTR)data, 4, buf, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_Sign pulSignatureLen ended the operation", p->C_SignFinal(s, buf, &n),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignInit for NULL pPart", p->C_SignInit(s, &m_rsa, k->rsa), CKR_OK);
  EXPECT_RV("NULL C_SignUpdate pPart with length", p->C_SignUpdate(s, NULL, 8), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_SignUpdate ended the operation", p->C_SignUpdate(s, (CK_BYTE_PTR)data, 4),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignInit for NULL pulSignatureLen (final)", p->C_SignInit(s, &m_rsa, k->rsa), CKR_OK);
  EXPECT_RV("C_SignUpdate before NULL final", p->C_SignUpdate(s, (CK_BYTE_PTR)data, 4), CKR_OK);
  EXPECT_RV("NULL C_SignFinal pulSignatureLen", p->C_SignFinal(s, buf, NULL), CKR_ARGUMENTS_BAD);
  n = sizeof buf;
  EXPECT_RV("NULL C_SignFinal ended the operation", p->C_SignFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  /* NULL with length 0 is an empty message: a real signature over "" (verified by the test). */
  {
    CK_SESSION_HANDLE se = open_session(k->ed_slot);
    unsigned char sig[64];
    CK_ULONG slen = sizeof sig;
    EXPECT_RV("C_SignInit EdDSA for an empty message", p->C_SignInit(se, &m_eddsa, k->ed), CKR_OK);
    EXPECT_RV("NULL C_Sign pData, length 0 (EdDSA, empty message)", p->C_Sign(se, NULL, 0, sig, &slen), CKR_OK);
    print_sig("ed25519", "EDDSA", NULL, 0, sig, slen);
    EXPECT_RV("C_SignInit SHA256_RSA_PKCS for an empty message", p->C_SignInit(s, &m_rsa, k->rsa), CKR_OK);
    EXPECT_RV("NULL C_SignUpdate pPart, length 0", p->C_SignUpdate(s, NULL, 0), CKR_OK);
    slen = sizeof buf;
    EXPECT_RV("C_SignFinal over an empty message", p->C_SignFinal(s, buf, &slen), CKR_OK);
    print_sig("rsa-2048", "SHA256_RSA_PKCS", NULL, 0, buf, slen);
    p->C_CloseSession(se);
  }

  EXPECT_RV("NULL C_DigestInit pMechanism", p->C_DigestInit(s, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("C_DigestInit for NULL pData", p->C_DigestInit(s, &m_sha), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("NULL C_Digest pData with length", p->C_Digest(s, NULL, 8, buf, &n), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_Digest ended the operation", p->C_Digest(s, (CK_BYTE_PTR)data, 4, buf, &n),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_DigestInit for NULL pulDigestLen", p->C_DigestInit(s, &m_sha), CKR_OK);
  EXPECT_RV("NULL C_Digest pulDigestLen", p->C_Digest(s, (CK_BYTE_PTR)data, 4, buf, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("C_DigestInit for NULL pPart", p->C_DigestInit(s, &m_sha), CKR_OK);
  EXPECT_RV("NULL C_DigestUpdate pPart with length", p->C_DigestUpdate(s, NULL, 8), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_DigestUpdate ended the operation", p->C_DigestFinal(s, buf, &n),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_DigestInit for NULL final", p->C_DigestInit(s, &m_sha), CKR_OK);
  EXPECT_RV("NULL C_DigestFinal pulDigestLen", p->C_DigestFinal(s, buf, NULL), CKR_ARGUMENTS_BAD);
  {
    /* SHA-256("") through NULL/0: the known vector, not our own output. */
    static const unsigned char empty256[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    EXPECT_RV("C_DigestInit for an empty message", p->C_DigestInit(s, &m_sha), CKR_OK);
    n = sizeof buf;
    EXPECT_RV("NULL C_Digest pData, length 0", p->C_Digest(s, NULL, 0, buf, &n), CKR_OK);
    CHECK("SHA-256 of the empty message", n == 32 && memcmp(buf, empty256, 32) == 0, "len %lu",
          (unsigned long)n);
  }
  still_signs("NULL pointers", s, k->ec);
  p->C_CloseSession(s);
}

static void zero_lengths(const struct keys *k) {
  CK_SESSION_HANDLE s = open_session(k->slot);
  CK_ULONG n;
  unsigned char buf[512];
  CK_SLOT_ID slots[8];
  CK_MECHANISM_TYPE mt[64];
  CK_OBJECT_HANDLE h[64];
  CK_MECHANISM m_ecdsa = {CKM_ECDSA, NULL, 0};
  CK_MECHANISM m_raw = {CKM_RSA_PKCS, NULL, 0};

  n = 0;
  EXPECT_RV("zero C_GetSlotList count with a buffer", p->C_GetSlotList(CK_FALSE, slots, &n), CKR_BUFFER_TOO_SMALL);
  CHECK("zero C_GetSlotList count set", n >= 2, "n=%lu", (unsigned long)n);
  n = 0;
  EXPECT_RV("zero C_GetMechanismList count with a buffer", p->C_GetMechanismList(k->slot, mt, &n),
            CKR_BUFFER_TOO_SMALL);
  CHECK("zero C_GetMechanismList count set", n > 0, "n=%lu", (unsigned long)n);
  {
    CK_ATTRIBUTE t = {CKA_LABEL, buf, 0};
    EXPECT_RV("zero C_GetAttributeValue ulValueLen", p->C_GetAttributeValue(s, k->rsa, &t, 1), CKR_BUFFER_TOO_SMALL);
    CHECK("zero C_GetAttributeValue → unavailable", t.ulValueLen == CK_UNAVAILABLE_INFORMATION, "len %lu",
          (unsigned long)t.ulValueLen);
  }
  {
    CK_BYTE id = 0x11;
    CK_ATTRIBUTE t = {CKA_ID, &id, 0}; /* an empty CKA_ID matches nothing here */
    EXPECT_RV("zero-length template value: find init", p->C_FindObjectsInit(s, &t, 1), CKR_OK);
    n = 99;
    EXPECT_RV("zero-length template value: find", p->C_FindObjects(s, h, 64, &n), CKR_OK);
    CHECK("zero-length template value matches nothing", n == 0, "n=%lu", (unsigned long)n);
    EXPECT_RV("zero-length template value: final", p->C_FindObjectsFinal(s), CKR_OK);
  }
  {
    CK_ATTRIBUTE unused = {CKA_ID, buf, 1}; /* count 0: never looked at */
    EXPECT_RV("empty template: find init", p->C_FindObjectsInit(s, &unused, 0), CKR_OK);
  }
  n = 0;
  EXPECT_RV("empty template: find", p->C_FindObjects(s, h, 64, &n), CKR_OK);
  CHECK("empty template matches every object of the slot", n >= 3, "n=%lu", (unsigned long)n);
  EXPECT_RV("empty template: final", p->C_FindObjectsFinal(s), CKR_OK);

  /* CKM_ECDSA signs a hash: an empty one is CKR_DATA_LEN_RANGE (and ends the operation). */
  EXPECT_RV("C_SignInit ECDSA for empty input", p->C_SignInit(s, &m_ecdsa, k->ec), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("zero-length CKM_ECDSA input", p->C_Sign(s, buf, 0, buf, &n), CKR_DATA_LEN_RANGE);
  EXPECT_RV("zero-length CKM_ECDSA ended the operation", p->C_Sign(s, buf, 0, buf, &n),
            CKR_OPERATION_NOT_INITIALIZED);
  /* A zero-sized output buffer that is not NULL: CKR_BUFFER_TOO_SMALL, operation kept (§5.2). */
  EXPECT_RV("C_SignInit RSA_PKCS for a zero-sized output", p->C_SignInit(s, &m_raw, k->rsa), CKR_OK);
  n = 0;
  EXPECT_RV("zero-sized signature buffer", p->C_Sign(s, buf, 16, buf, &n), CKR_BUFFER_TOO_SMALL);
  CHECK("zero-sized signature buffer: length set", n == 256, "len %lu", (unsigned long)n);
  {
    /* then the same operation signs a real DigestInfo */
    static const unsigned char di[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                       0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20, 0xe3, 0xb0, 0xc4,
                                       0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
                                       0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4,
                                       0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    n = sizeof buf;
    EXPECT_RV("operation kept after a zero-sized buffer", p->C_Sign(s, (CK_BYTE_PTR)di, sizeof di, buf, &n), CKR_OK);
    /* the DigestInfo of SHA-256(""): verifies as a SHA256 signature of the empty message */
    print_sig("rsa-2048", "SHA256_RSA_PKCS", NULL, 0, buf, n);
  }
  still_signs("zero lengths", s, k->ec);
  p->C_CloseSession(s);
}

static void huge_lengths(const struct keys *k) {
  CK_SESSION_HANDLE s = open_session(k->slot);
  CK_SESSION_HANDLE se = open_session(k->ed_slot);
  CK_ULONG n;
  unsigned char small[16] = {0}, buf[512];
  CK_SLOT_ID slots[8];
  CK_OBJECT_HANDLE h[64];
  CK_MECHANISM m_raw = {CKM_RSA_PKCS, NULL, 0};
  CK_MECHANISM m_ecdsa = {CKM_ECDSA, NULL, 0};
  CK_MECHANISM m_eddsa = {CKM_EDDSA, NULL, 0};

  /* The answer follows from the length alone; the 16-byte buffer must never be read past. */
  EXPECT_RV("C_SignInit RSA_PKCS for huge input", p->C_SignInit(s, &m_raw, k->rsa), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("huge CKM_RSA_PKCS input (> k-11)", p->C_Sign(s, small, HUGE_LEN, buf, &n), CKR_DATA_LEN_RANGE);
  EXPECT_RV("C_SignInit ECDSA for huge input", p->C_SignInit(s, &m_ecdsa, k->ec), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("huge CKM_ECDSA input", p->C_Sign(s, small, HUGE_LEN, buf, &n), CKR_DATA_LEN_RANGE);
  EXPECT_RV("C_SignInit EdDSA for huge input", p->C_SignInit(se, &m_eddsa, k->ed), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("huge CKM_EDDSA input (beyond one frame)", p->C_Sign(se, small, HUGE_LEN, buf, &n), CKR_DATA_LEN_RANGE);
  EXPECT_RV("C_SignInit EdDSA for a huge part", p->C_SignInit(se, &m_eddsa, k->ed), CKR_OK);
  EXPECT_RV("C_SignUpdate EdDSA small part", p->C_SignUpdate(se, small, sizeof small), CKR_OK);
  EXPECT_RV("huge C_SignUpdate EdDSA part", p->C_SignUpdate(se, small, HUGE_LEN), CKR_DATA_LEN_RANGE);
  EXPECT_RV("huge C_SignUpdate ended the operation", p->C_SignFinal(se, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  {
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM m_pss = {CKM_RSA_PKCS_PSS, &pss, HUGE_LEN};
    EXPECT_RV("huge PSS ulParameterLen", p->C_SignInit(s, &m_pss, k->rsa), CKR_MECHANISM_PARAM_INVALID);
    m_pss.pParameter = NULL;
    m_pss.ulParameterLen = sizeof pss;
    EXPECT_RV("NULL PSS pParameter with its length", p->C_SignInit(s, &m_pss, k->rsa), CKR_MECHANISM_PARAM_INVALID);
    pss.sLen = HUGE_LEN;
    m_pss.pParameter = &pss;
    EXPECT_RV("huge PSS sLen", p->C_SignInit(s, &m_pss, k->rsa), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM m_param = {CKM_ECDSA, small, HUGE_LEN};
    EXPECT_RV("huge ulParameterLen on a mechanism without parameters", p->C_SignInit(s, &m_param, k->ec),
              CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM m_dparam = {CKM_SHA256, small, HUGE_LEN};
    EXPECT_RV("huge ulParameterLen on a digest", p->C_DigestInit(s, &m_dparam), CKR_MECHANISM_PARAM_INVALID);
  }
  {
    /* A huge template value length against a 1-byte CKA_ID: no match, nothing read. */
    CK_ATTRIBUTE t = {CKA_ID, small, HUGE_LEN};
    EXPECT_RV("huge template ulValueLen: find init", p->C_FindObjectsInit(s, &t, 1), CKR_OK);
    n = 99;
    EXPECT_RV("huge template ulValueLen: find", p->C_FindObjects(s, h, 64, &n), CKR_OK);
    CHECK("huge template ulValueLen matches nothing", n == 0, "n=%lu", (unsigned long)n);
    EXPECT_RV("huge template ulValueLen: final", p->C_FindObjectsFinal(s), CKR_OK);
  }
  {
    /* A buffer that claims to be huge is big enough: the value (1 byte) is copied, length set. */
    unsigned char id[16];
    CK_ATTRIBUTE t = {CKA_ID, id, HUGE_LEN};
    EXPECT_RV("huge C_GetAttributeValue ulValueLen", p->C_GetAttributeValue(s, k->rsa, &t, 1), CKR_OK);
    CHECK("huge ulValueLen: exact length back", t.ulValueLen == 1 && id[0] == 0x11, "len %lu",
          (unsigned long)t.ulValueLen);
  }
  n = HUGE_LEN;
  EXPECT_RV("huge C_GetSlotList count", p->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
  CHECK("huge C_GetSlotList count: exact count back", n >= 2 && n <= 8, "n=%lu", (unsigned long)n);
  EXPECT_RV("C_FindObjectsInit all", p->C_FindObjectsInit(s, NULL, 0), CKR_OK);
  n = 0;
  EXPECT_RV("huge C_FindObjects max", p->C_FindObjects(s, h, HUGE_LEN, &n), CKR_OK);
  CHECK("huge C_FindObjects max: exact count back", n >= 3 && n < 64, "n=%lu", (unsigned long)n);
  EXPECT_RV("C_FindObjectsFinal all", p->C_FindObjectsFinal(s), CKR_OK);
  still_signs("huge lengths", s, k->ec);
  p->C_CloseSession(s);
  p->C_CloseSession(se);
}

static void wrong_handles(const struct keys *k) {
  CK_SESSION_HANDLE s = open_session(k->slot);
  CK_SESSION_HANDLE closed = open_session(k->slot);
  CK_ULONG n = 0;
  unsigned char buf[512];
  CK_SLOT_INFO si;
  CK_TOKEN_INFO ti;
  CK_MECHANISM_INFO mi;
  CK_SESSION_INFO sinfo;
  CK_MECHANISM_TYPE mt[64];
  CK_SESSION_HANDLE sh;
  CK_OBJECT_HANDLE h[4];
  CK_MECHANISM m_ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
  CK_MECHANISM m_eddsa = {CKM_EDDSA, NULL, 0};
  CK_MECHANISM m_sha = {CKM_SHA256, NULL, 0};
  CK_ATTRIBUTE t = {CKA_LABEL, buf, sizeof buf};
  const CK_SLOT_ID bad_slots[] = {0xdead0000UL, (CK_SLOT_ID)-1};
  EXPECT_RV("close a session to use later", p->C_CloseSession(closed), CKR_OK);
  const CK_SESSION_HANDLE bad[] = {CK_INVALID_HANDLE, 0x7fff0000UL, (CK_SESSION_HANDLE)-1, closed};
  const char *bad_name[] = {"0", "unknown", "~0", "closed"};

  for (int i = 0; i < 2; i++) {
    char name[128];
#define SLOT(fn, call)                                                             \
  snprintf(name, sizeof name, "slot %lx %s", (unsigned long)bad_slots[i], fn);     \
  EXPECT_RV(name, call, CKR_SLOT_ID_INVALID)
    SLOT("C_GetSlotInfo", p->C_GetSlotInfo(bad_slots[i], &si));
    SLOT("C_GetTokenInfo", p->C_GetTokenInfo(bad_slots[i], &ti));
    n = 64;
    SLOT("C_GetMechanismList", p->C_GetMechanismList(bad_slots[i], mt, &n));
    SLOT("C_GetMechanismInfo", p->C_GetMechanismInfo(bad_slots[i], CKM_ECDSA, &mi));
    SLOT("C_OpenSession", p->C_OpenSession(bad_slots[i], CKF_SERIAL_SESSION, NULL, NULL, &sh));
    SLOT("C_CloseAllSessions", p->C_CloseAllSessions(bad_slots[i]));
#undef SLOT
  }
  for (int i = 0; i < 4; i++) {
    char name[128];
    CK_SESSION_HANDLE b = bad[i];
#define SESS(fn, call)                                                  \
  snprintf(name, sizeof name, "session %s %s", bad_name[i], fn);       \
  n = sizeof buf;                                                       \
  EXPECT_RV(name, call, CKR_SESSION_HANDLE_INVALID)
    SESS("C_CloseSession", p->C_CloseSession(b));
    SESS("C_GetSessionInfo", p->C_GetSessionInfo(b, &sinfo));
    SESS("C_Login", p->C_Login(b, CKU_USER, (CK_UTF8CHAR_PTR) "any", 3));
    SESS("C_Logout", p->C_Logout(b));
    SESS("C_GetAttributeValue", p->C_GetAttributeValue(b, k->rsa, &t, 1));
    SESS("C_FindObjectsInit", p->C_FindObjectsInit(b, NULL, 0));
    SESS("C_FindObjects", p->C_FindObjects(b, h, 4, &n));
    SESS("C_FindObjectsFinal", p->C_FindObjectsFinal(b));
    SESS("C_SignInit", p->C_SignInit(b, &m_ecdsa, k->ec));
    SESS("C_Sign", p->C_Sign(b, buf, 32, buf, &n));
    SESS("C_SignUpdate", p->C_SignUpdate(b, buf, 32));
    SESS("C_SignFinal", p->C_SignFinal(b, buf, &n));
    SESS("C_DigestInit", p->C_DigestInit(b, &m_sha));
    SESS("C_Digest", p->C_Digest(b, buf, 32, buf, &n));
    SESS("C_DigestUpdate", p->C_DigestUpdate(b, buf, 32));
    SESS("C_DigestFinal", p->C_DigestFinal(b, buf, &n));
#undef SESS
  }
  const CK_OBJECT_HANDLE bad_obj[] = {CK_INVALID_HANDLE, 0x7fff0000UL, (CK_OBJECT_HANDLE)-1};
  for (int i = 0; i < 3; i++) {
    char name[128];
    snprintf(name, sizeof name, "object %lx C_GetAttributeValue", (unsigned long)bad_obj[i]);
    EXPECT_RV(name, p->C_GetAttributeValue(s, bad_obj[i], &t, 1), CKR_OBJECT_HANDLE_INVALID);
    snprintf(name, sizeof name, "object %lx C_SignInit", (unsigned long)bad_obj[i]);
    EXPECT_RV(name, p->C_SignInit(s, &m_ecdsa, bad_obj[i]), CKR_KEY_HANDLE_INVALID);
  }
  /* Objects of another slot (the EdDSA token) through this slot's session, and back. */
  t.ulValueLen = sizeof buf;
  EXPECT_RV("another slot's object: C_GetAttributeValue", p->C_GetAttributeValue(s, k->ed, &t, 1),
            CKR_OBJECT_HANDLE_INVALID);
  EXPECT_RV("another slot's key: C_SignInit", p->C_SignInit(s, &m_eddsa, k->ed), CKR_KEY_HANDLE_INVALID);
  {
    CK_SESSION_HANDLE se = open_session(k->ed_slot);
    EXPECT_RV("another slot's key (from the EdDSA slot): C_SignInit", p->C_SignInit(se, &m_ecdsa, k->ec),
              CKR_KEY_HANDLE_INVALID);
    p->C_CloseSession(se);
  }
  /* Not a private key. */
  EXPECT_RV("certificate as key", p->C_SignInit(s, &m_ecdsa, k->cert), CKR_KEY_HANDLE_INVALID);
  EXPECT_RV("public key as signing key", p->C_SignInit(s, &m_ecdsa, k->ec_pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
  EXPECT_RV("mechanism of another key type", p->C_SignInit(s, &m_ecdsa, k->rsa), CKR_KEY_TYPE_INCONSISTENT);
  EXPECT_RV("EdDSA mechanism on the RSA slot", p->C_SignInit(s, &m_eddsa, k->rsa), CKR_MECHANISM_INVALID);
  still_signs("wrong handles", s, k->ec);
  p->C_CloseSession(s);
}

static void out_of_order(const struct keys *k) {
  CK_SESSION_HANDLE s = open_session(k->slot);
  CK_ULONG n;
  unsigned char buf[512];
  CK_OBJECT_HANDLE h[4];
  CK_MECHANISM m_ecdsa = {CKM_ECDSA, NULL, 0};
  CK_MECHANISM m_ecdsa256 = {CKM_ECDSA_SHA256, NULL, 0};
  CK_MECHANISM m_sha = {CKM_SHA256, NULL, 0};
  static const unsigned char hash[32] = {1, 2, 3};

  n = sizeof buf;
  EXPECT_RV("C_Sign before C_SignInit", p->C_Sign(s, buf, 32, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignUpdate before C_SignInit", p->C_SignUpdate(s, buf, 32), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignFinal before C_SignInit", p->C_SignFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_FindObjects before C_FindObjectsInit", p->C_FindObjects(s, h, 4, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_FindObjectsFinal before C_FindObjectsInit", p->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_Digest before C_DigestInit", p->C_Digest(s, buf, 4, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_DigestUpdate before C_DigestInit", p->C_DigestUpdate(s, buf, 4), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_DigestFinal before C_DigestInit", p->C_DigestFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_Logout before C_Login", p->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
  EXPECT_RV("context-specific C_Login without an operation", p->C_Login(s, CKU_CONTEXT_SPECIFIC, NULL, 0),
            CKR_OPERATION_NOT_INITIALIZED);

  EXPECT_RV("C_SignInit", p->C_SignInit(s, &m_ecdsa, k->ec), CKR_OK);
  EXPECT_RV("C_SignInit while active", p->C_SignInit(s, &m_ecdsa, k->ec), CKR_OPERATION_ACTIVE);
  /* CKM_ECDSA is single-part: C_SignUpdate ends it (module's documented choice, like SoftHSMv2). */
  EXPECT_RV("C_SignUpdate on a single-part mechanism", p->C_SignUpdate(s, (CK_BYTE_PTR)hash, 32),
            CKR_OPERATION_NOT_INITIALIZED);
  n = sizeof buf;
  EXPECT_RV("…and the operation is gone", p->C_Sign(s, (CK_BYTE_PTR)hash, 32, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignInit single-part again", p->C_SignInit(s, &m_ecdsa, k->ec), CKR_OK);
  EXPECT_RV("C_SignFinal on a single-part mechanism", p->C_SignFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignInit multi-part", p->C_SignInit(s, &m_ecdsa256, k->ec), CKR_OK);
  EXPECT_RV("C_SignUpdate", p->C_SignUpdate(s, (CK_BYTE_PTR)hash, 32), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("C_Sign after C_SignUpdate", p->C_Sign(s, (CK_BYTE_PTR)hash, 32, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("C_SignFinal after the operation ended", p->C_SignFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);

  EXPECT_RV("C_FindObjectsInit", p->C_FindObjectsInit(s, NULL, 0), CKR_OK);
  EXPECT_RV("C_FindObjectsInit while active", p->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
  EXPECT_RV("C_FindObjectsFinal", p->C_FindObjectsFinal(s), CKR_OK);
  EXPECT_RV("C_DigestInit", p->C_DigestInit(s, &m_sha), CKR_OK);
  EXPECT_RV("C_DigestInit while active", p->C_DigestInit(s, &m_sha), CKR_OPERATION_ACTIVE);
  EXPECT_RV("C_DigestUpdate", p->C_DigestUpdate(s, buf, 4), CKR_OK);
  n = sizeof buf;
  EXPECT_RV("C_Digest after C_DigestUpdate", p->C_Digest(s, buf, 4, buf, &n), CKR_OPERATION_NOT_INITIALIZED);

  /* Sessions closed under an active operation; C_CloseAllSessions; then the handle is dead. */
  EXPECT_RV("C_SignInit before close", p->C_SignInit(s, &m_ecdsa256, k->ec), CKR_OK);
  EXPECT_RV("C_CloseSession with an active operation", p->C_CloseSession(s), CKR_OK);
  EXPECT_RV("C_SignFinal on the closed session", p->C_SignFinal(s, buf, &n), CKR_SESSION_HANDLE_INVALID);
  CK_SESSION_HANDLE a = open_session(k->slot), b = open_session(k->slot);
  EXPECT_RV("C_CloseAllSessions", p->C_CloseAllSessions(k->slot), CKR_OK);
  CK_SESSION_INFO sinfo;
  EXPECT_RV("session after C_CloseAllSessions (1)", p->C_GetSessionInfo(a, &sinfo), CKR_SESSION_HANDLE_INVALID);
  EXPECT_RV("session after C_CloseAllSessions (2)", p->C_GetSessionInfo(b, &sinfo), CKR_SESSION_HANDLE_INVALID);
  s = open_session(k->slot);
  CHECK("a new session gets a new handle", s != CK_INVALID_HANDLE && s != a && s != b, "s=%lu", (unsigned long)s);
  still_signs("calls out of order", s, k->ec);
  p->C_CloseSession(s);
}

/* One round against a hostile daemon; returns 1 when it got as far as a sign attempt. */
static int hostile_round(int i) {
  char name[96];
  int signed_ = 0;
  CK_ULONG n = 0;
  EXPECT_RV("hostile: C_Initialize", p->C_Initialize(NULL), CKR_OK);
  CK_RV rv = p->C_GetSlotList(CK_FALSE, NULL, &n);
  snprintf(name, sizeof name, "hostile round %d: C_GetSlotList is CKR_OK or CKR_FUNCTION_FAILED", i);
  CHECK(name, rv == CKR_OK || rv == CKR_FUNCTION_FAILED, "got 0x%lx", (unsigned long)rv);
  CK_SLOT_ID slots[16];
  if (rv == CKR_OK && n > 0) {
    if (n > 16) n = 16;
    if (p->C_GetSlotList(CK_FALSE, slots, &n) != CKR_OK) n = 0;
  } else {
    n = 0;
  }
  for (CK_ULONG k = 0; k < n; k++) {
    CK_TOKEN_INFO ti;
    CK_SLOT_INFO si;
    CK_MECHANISM_TYPE mt[64];
    CK_ULONG mn = 64;
    CK_SESSION_HANDLE s;
    p->C_GetSlotInfo(slots[k], &si);
    p->C_GetTokenInfo(slots[k], &ti);
    p->C_GetMechanismList(slots[k], mt, &mn);
    if (p->C_OpenSession(slots[k], CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) continue;
    p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "any", 3);
    CK_OBJECT_HANDLE h[32];
    CK_ULONG hn = 0;
    if (p->C_FindObjectsInit(s, NULL, 0) == CKR_OK) {
      if (p->C_FindObjects(s, h, 32, &hn) != CKR_OK) hn = 0;
      p->C_FindObjectsFinal(s);
    }
    for (CK_ULONG j = 0; j < hn; j++) {
      unsigned char v[4][512];
      CK_OBJECT_CLASS cls = 0;
      CK_KEY_TYPE kt = 0;
      CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}, {CKA_ID, v[0], 512},
                          {CKA_LABEL, v[1], 512}, {CKA_MODULUS, v[2], 512}, {CKA_EC_PARAMS, v[3], 512}};
      p->C_GetAttributeValue(s, h[j], t, 6);
      if (cls != CKO_PRIVATE_KEY) continue;
      CK_MECHANISM m = {kt == CKK_RSA ? CKM_SHA256_RSA_PKCS : kt == CKK_EC ? CKM_ECDSA_SHA256 : CKM_EDDSA, NULL, 0};
      if (p->C_SignInit(s, &m, h[j]) != CKR_OK) continue;
      unsigned char sig[1024];
      CK_ULONG sl = 0;
      if (p->C_Sign(s, (CK_BYTE_PTR) "hostile", 7, NULL, &sl) != CKR_OK) continue;
      sl = sizeof sig;
      p->C_Sign(s, (CK_BYTE_PTR) "hostile", 7, sig, &sl); /* any rv; the op ends either way */
      signed_ = 1;
    }
    p->C_CloseSession(s);
  }
  EXPECT_RV("hostile: C_Finalize", p->C_Finalize(NULL), CKR_OK);
  return signed_;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[2], "hostile-daemon") == 0) {
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList gfl = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    if (!gfl || gfl(&p) != CKR_OK) {
      printf("FAIL cannot load %s\n", argv[1]);
      return 100;
    }
    int rounds = atoi(argv[3]), signs = 0;
    for (int i = 0; i < rounds; i++) signs += hostile_round(i);
    printf("rounds %d sign-attempts %d\n", rounds, signs);
    printf("failures %d\n", failures);
    return failures > 99 ? 99 : failures;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: %s <module.so>   (daemon serving the matrix token on SIGNBRIDGE_SOCKET)\n", argv[0]);
    return 100;
  }
  CK_C_GetFunctionList gfl = open_module(argv[1], &p);
  if (!gfl) return 100;
  EXPECT_RV("NULL C_GetFunctionList ppFunctionList", gfl(NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("NULL C_Initialize (pInitArgs may be NULL)", p->C_Initialize(NULL), CKR_OK);
  EXPECT_RV("C_Finalize", p->C_Finalize(NULL), CKR_OK);
  all_functions("before C_Initialize:", CKR_CRYPTOKI_NOT_INITIALIZED, 1, 0);

  EXPECT_RV("C_Initialize", p->C_Initialize(NULL), CKR_OK);
  struct keys k;
  int found = find_keys(&k);
  CHECK("the matrix token's keys (ids 11, 21, 31) on two slots", found,
        "rsa %lu ec %lu ec-pub %lu cert %lu ed %lu", (unsigned long)k.rsa, (unsigned long)k.ec,
        (unsigned long)k.ec_pub, (unsigned long)k.cert, (unsigned long)k.ed);
  if (!found) {
    printf("failures %d\n", failures);
    return failures;
  }
  null_pointers(&k);
  zero_lengths(&k);
  huge_lengths(&k);
  wrong_handles(&k);
  out_of_order(&k);

  /* After C_Finalize: every call, handles from before, and a clean second life. */
  CK_SESSION_HANDLE old = open_session(k.slot);
  CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
  EXPECT_RV("C_SignInit before C_Finalize", p->C_SignInit(old, &m, k.ec), CKR_OK);
  EXPECT_RV("C_Finalize with a session and an operation", p->C_Finalize(NULL), CKR_OK);
  all_functions("after C_Finalize:", CKR_CRYPTOKI_NOT_INITIALIZED, old, k.slot);
  EXPECT_RV("C_Initialize again", p->C_Initialize(NULL), CKR_OK);
  CK_SESSION_INFO sinfo;
  EXPECT_RV("a session from before C_Finalize", p->C_GetSessionInfo(old, &sinfo), CKR_SESSION_HANDLE_INVALID);
  struct keys k2;
  CHECK("keys found again after re-initializing", find_keys(&k2), "no");
  CK_SESSION_HANDLE s = open_session(k2.slot);
  CHECK("new session handle differs from the old one", s != old && s != CK_INVALID_HANDLE, "s=%lu", (unsigned long)s);
  unsigned char buf[64];
  CK_ULONG n = sizeof buf;
  EXPECT_RV("an operation from before C_Finalize is gone", p->C_SignFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
  still_signs("C_Finalize and C_Initialize", s, k2.ec);
  EXPECT_RV("final C_Finalize", p->C_Finalize(NULL), CKR_OK);
  EXPECT_RV("C_Finalize twice", p->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
  printf("cases %d\n", cases);
  printf("failures %d\n", failures);
  return failures > 99 ? 99 : failures;
}
