/*
 * Conformance checks of libsignbridge-pkcs11.so through its raw C ABI — the cases a binding such
 * as pkcs11js hides: NULL and short buffers (two-call convention, PKCS#11 v2.40 §5.2), the five
 * C_GetAttributeValue cases (§5.7), argument checks, and error codes for misuse.
 *
 * Built and run by test/integration/conformance.test.ts:
 *   conformance <module.so> daemon      — a daemon serving the test token is on SIGNBRIDGE_SOCKET
 *   conformance <module.so> no-daemon   — SIGNBRIDGE_SOCKET points at nothing
 * Prints "ok <name>" or "FAIL <name>: <detail>" per check, and "sig <name> <data-hex> <sig-hex>"
 * for signatures the test verifies with node:crypto. Exit status: number of failures (capped).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "p11.h"
#include "check.h"

static CK_FUNCTION_LIST_PTR p;



static void hex(const unsigned char *b, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int blank_padded(const CK_UTF8CHAR *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == 0) return 0;
  return 1;
}

/* Find the private key and certificate with this CKA_ID. */
static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *id) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)id, strlen(id)}};
  CK_OBJECT_HANDLE h[4];
  CK_ULONG n = 0;
  if (p->C_FindObjectsInit(s, t, 2) != CKR_OK) return CK_INVALID_HANDLE;
  if (p->C_FindObjects(s, h, 4, &n) != CKR_OK) n = 0;
  p->C_FindObjectsFinal(s);
  return n == 1 ? h[0] : CK_INVALID_HANDLE;
}

/* Application-supplied mutex callbacks (v2.40 §5.4, C_Initialize): without CKF_OS_LOCKING_OK the
 * library must lock with these. They count their calls so the test can see they were used. */
static int n_create, n_destroy, n_lock, n_unlock;
static CK_RV app_create(CK_VOID_PTR_PTR m) { static int token; *m = &token; n_create++; return CKR_OK; }
static CK_RV app_destroy(CK_VOID_PTR m) { (void)m; n_destroy++; return CKR_OK; }
static CK_RV app_lock(CK_VOID_PTR m) { (void)m; n_lock++; return CKR_OK; }
static CK_RV app_unlock(CK_VOID_PTR m) { (void)m; n_unlock++; return CKR_OK; }

static void check_app_mutexes(void) {
  CK_C_INITIALIZE_ARGS a;
  memset(&a, 0, sizeof a);
  a.CreateMutex = app_create;
  a.DestroyMutex = app_destroy;
  a.LockMutex = app_lock;
  a.UnlockMutex = app_unlock;
  EXPECT_RV("initialize with app mutexes", p->C_Initialize(&a), CKR_OK);
  CK_ULONG n = 0;
  EXPECT_RV("slot list with app mutexes", p->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
  CK_SLOT_ID slot;
  n = 1;
  EXPECT_RV("slot list 1 with app mutexes", p->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
  CK_SESSION_HANDLE s;
  EXPECT_RV("session with app mutexes", p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
  EXPECT_RV("finalize with app mutexes", p->C_Finalize(NULL), CKR_OK);
  CHECK("app mutexes used", n_create > 0 && n_lock > 0 && n_lock == n_unlock,
        "create %d lock %d unlock %d", n_create, n_lock, n_unlock);
  CHECK("app mutexes destroyed at finalize", n_destroy == n_create, "create %d destroy %d", n_create,
        n_destroy);
}

static void check_no_daemon(void) {
  EXPECT_RV("initialize without daemon", p->C_Initialize(NULL), CKR_OK);
  CK_INFO info;
  EXPECT_RV("get info without daemon", p->C_GetInfo(&info), CKR_OK);
  CK_ULONG n = 0;
  double t0 = now_ms();
  CK_RV rv = p->C_GetSlotList(CK_FALSE, NULL, &n);
  double dt = now_ms() - t0;
  CHECK("slot list without daemon fails", rv == CKR_FUNCTION_FAILED, "got 0x%lx", (unsigned long)rv);
  CHECK("slot list without daemon does not hang", dt < 2000.0, "took %.1f ms", dt);
  printf("time no-daemon-slot-list-ms %.3f\n", dt);
  EXPECT_RV("slot info without daemon", p->C_GetSlotInfo(1, &(CK_SLOT_INFO){0}), CKR_DEVICE_ERROR);
  EXPECT_RV("finalize without daemon", p->C_Finalize(NULL), CKR_OK);
}

static void check_initialize_args(void) {
  CK_C_INITIALIZE_ARGS a;
  memset(&a, 0, sizeof a);
  a.pReserved = &a;
  EXPECT_RV("initialize pReserved set", p->C_Initialize(&a), CKR_ARGUMENTS_BAD);
  memset(&a, 0, sizeof a);
  a.CreateMutex = (CK_CREATEMUTEX)1; /* some but not all callbacks */
  EXPECT_RV("initialize partial mutex callbacks", p->C_Initialize(&a), CKR_ARGUMENTS_BAD);
  CK_INFO info;
  EXPECT_RV("get info before initialize", p->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
  memset(&a, 0, sizeof a);
  a.flags = CKF_OS_LOCKING_OK;
  EXPECT_RV("initialize os locking", p->C_Initialize(&a), CKR_OK);
  EXPECT_RV("initialize twice", p->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
  EXPECT_RV("finalize reserved", p->C_Finalize(&a), CKR_ARGUMENTS_BAD);
  EXPECT_RV("finalize", p->C_Finalize(NULL), CKR_OK);
  EXPECT_RV("finalize twice", p->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static CK_SLOT_ID check_slots(void) {
  CK_INFO info;
  EXPECT_RV("get info", p->C_GetInfo(&info), CKR_OK);
  CHECK("cryptoki 2.40", info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40,
        "%d.%d", info.cryptokiVersion.major, info.cryptokiVersion.minor);
  CHECK("info strings blank padded",
        blank_padded(info.manufacturerID, 32) && blank_padded(info.libraryDescription, 32),
        "NUL inside");
  EXPECT_RV("get info NULL", p->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);

  CK_ULONG n = 0;
  EXPECT_RV("slot list NULL count", p->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("slot list size query", p->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
  CHECK("at least one slot", n >= 1, "n=%lu", (unsigned long)n);
  CK_ULONG want = n;
  CK_SLOT_ID slots[16];
  n = 0;
  EXPECT_RV("slot list short buffer", p->C_GetSlotList(CK_FALSE, slots, &n), CKR_BUFFER_TOO_SMALL);
  CHECK("slot list short buffer sets count", n == want, "n=%lu want %lu", (unsigned long)n,
        (unsigned long)want);
  n = 16;
  EXPECT_RV("slot list", p->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);

  CK_SLOT_INFO si;
  EXPECT_RV("slot info", p->C_GetSlotInfo(slots[0], &si), CKR_OK);
  CHECK("slot has token", si.flags & CKF_TOKEN_PRESENT, "flags 0x%lx", (unsigned long)si.flags);
  EXPECT_RV("slot info bad slot", p->C_GetSlotInfo(0xdead0000UL, &si), CKR_SLOT_ID_INVALID);
  CK_TOKEN_INFO ti;
  EXPECT_RV("token info", p->C_GetTokenInfo(slots[0], &ti), CKR_OK);
  CHECK("token strings blank padded",
        blank_padded(ti.label, 32) && blank_padded(ti.manufacturerID, 32) &&
            blank_padded(ti.model, 16) && blank_padded(ti.serialNumber, 16),
        "NUL inside");
  CHECK("token initialized", ti.flags & CKF_TOKEN_INITIALIZED, "flags 0x%lx",
        (unsigned long)ti.flags);
  printf("token-label %.32s\n", ti.label);

  CK_MECHANISM_TYPE mechs[64];
  n = 0;
  EXPECT_RV("mechanism list size", p->C_GetMechanismList(slots[0], NULL, &n), CKR_OK);
  want = n;
  n = 1;
  EXPECT_RV("mechanism list short", p->C_GetMechanismList(slots[0], mechs, &n),
            CKR_BUFFER_TOO_SMALL);
  CHECK("mechanism list short sets count", n == want, "n=%lu", (unsigned long)n);
  n = 64;
  EXPECT_RV("mechanism list", p->C_GetMechanismList(slots[0], mechs, &n), CKR_OK);
  int has_rsa = 0, has_ecdsa = 0;
  for (CK_ULONG i = 0; i < n; i++) {
    has_rsa |= mechs[i] == CKM_SHA256_RSA_PKCS;
    has_ecdsa |= mechs[i] == CKM_ECDSA;
  }
  CHECK("mechanisms include SHA256_RSA_PKCS and ECDSA", has_rsa && has_ecdsa, "rsa %d ec %d",
        has_rsa, has_ecdsa);
  CK_MECHANISM_INFO mi;
  EXPECT_RV("mechanism info", p->C_GetMechanismInfo(slots[0], CKM_SHA256_RSA_PKCS, &mi), CKR_OK);
  CHECK("mechanism info sign only, bits", (mi.flags & CKF_SIGN) && !(mi.flags & CKF_DECRYPT) &&
                                              mi.ulMinKeySize >= 1024 && mi.ulMaxKeySize >= 3072,
        "flags 0x%lx min %lu max %lu", (unsigned long)mi.flags, (unsigned long)mi.ulMinKeySize,
        (unsigned long)mi.ulMaxKeySize);
  EXPECT_RV("mechanism info unknown", p->C_GetMechanismInfo(slots[0], CKM_AES_CBC, &mi),
            CKR_MECHANISM_INVALID);
  return slots[0];
}

static void check_attributes(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
  CK_ATTRIBUTE t[3];
  /* case 3: NULL pValue → length */
  t[0] = (CK_ATTRIBUTE){CKA_LABEL, NULL, 0};
  EXPECT_RV("attr length query", p->C_GetAttributeValue(s, key, t, 1), CKR_OK);
  CK_ULONG label_len = t[0].ulValueLen;
  CHECK("attr length is label length", label_len == strlen("rsa-3072"), "len %lu",
        (unsigned long)label_len);
  /* case 5: too small → CK_UNAVAILABLE_INFORMATION + CKR_BUFFER_TOO_SMALL */
  char small[2];
  t[0] = (CK_ATTRIBUTE){CKA_LABEL, small, sizeof small};
  EXPECT_RV("attr short buffer", p->C_GetAttributeValue(s, key, t, 1), CKR_BUFFER_TOO_SMALL);
  CHECK("attr short buffer unavailable", t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION,
        "len %lu", (unsigned long)t[0].ulValueLen);
  /* case 1: sensitive */
  char big[1024];
  t[0] = (CK_ATTRIBUTE){CKA_PRIVATE_EXPONENT, big, sizeof big};
  EXPECT_RV("attr sensitive", p->C_GetAttributeValue(s, key, t, 1), CKR_ATTRIBUTE_SENSITIVE);
  CHECK("attr sensitive unavailable", t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION, "len %lu",
        (unsigned long)t[0].ulValueLen);
  /* case 2 in a template with valid entries: the others are still filled */
  char id[64], label[64];
  t[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof id};
  t[1] = (CK_ATTRIBUTE){0x7ffff00dUL, big, sizeof big};
  t[2] = (CK_ATTRIBUTE){CKA_LABEL, label, sizeof label};
  EXPECT_RV("attr invalid type", p->C_GetAttributeValue(s, key, t, 3), CKR_ATTRIBUTE_TYPE_INVALID);
  CHECK("attr invalid type unavailable", t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "len %lu",
        (unsigned long)t[1].ulValueLen);
  CHECK("attr others still filled",
        t[0].ulValueLen == 1 && id[0] == 1 && t[2].ulValueLen == label_len &&
            memcmp(label, "rsa-3072", label_len) == 0,
        "id len %lu label len %lu", (unsigned long)t[0].ulValueLen, (unsigned long)t[2].ulValueLen);
  /* CK_ULONG and CK_BBOOL attributes in native width */
  CK_KEY_TYPE kt = 0xffff;
  CK_BBOOL sign = CK_FALSE, sensitive = CK_FALSE, extractable = CK_TRUE;
  CK_ATTRIBUTE u[] = {{CKA_KEY_TYPE, &kt, sizeof kt},
                      {CKA_SIGN, &sign, sizeof sign},
                      {CKA_SENSITIVE, &sensitive, sizeof sensitive},
                      {CKA_EXTRACTABLE, &extractable, sizeof extractable}};
  EXPECT_RV("attr ulong and bool", p->C_GetAttributeValue(s, key, u, 4), CKR_OK);
  CHECK("attr values", kt == CKK_RSA && sign && sensitive && !extractable,
        "kt %lu sign %d sens %d extr %d", (unsigned long)kt, sign, sensitive, extractable);
  EXPECT_RV("attr NULL template", p->C_GetAttributeValue(s, key, NULL, 1), CKR_ARGUMENTS_BAD);
  t[0] = (CK_ATTRIBUTE){CKA_LABEL, NULL, 0};
  EXPECT_RV("attr handle 0", p->C_GetAttributeValue(s, 0, t, 1), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_RV("attr unknown handle", p->C_GetAttributeValue(s, 0x7fff0000UL, t, 1),
            CKR_OBJECT_HANDLE_INVALID);
}

static void check_sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE rsa, CK_OBJECT_HANDLE ec,
                       CK_OBJECT_HANDLE cert) {
  static const unsigned char msg[] = "signbridge conformance message";
  CK_ULONG mlen = sizeof msg - 1;
  unsigned char sig[1024];
  CK_ULONG slen;
  CK_MECHANISM m_rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
  CK_MECHANISM m_ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
  CK_MECHANISM m_bad = {CKM_AES_CBC, NULL, 0};

  slen = sizeof sig;
  EXPECT_RV("sign not initialized", p->C_Sign(s, (CK_BYTE_PTR)msg, mlen, sig, &slen),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("sign final not initialized", p->C_SignFinal(s, sig, &slen),
            CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("sign init NULL mechanism", p->C_SignInit(s, NULL, rsa), CKR_ARGUMENTS_BAD);
  EXPECT_RV("sign init wrong mechanism", p->C_SignInit(s, &m_bad, rsa), CKR_MECHANISM_INVALID);
  EXPECT_RV("sign init wrong key type", p->C_SignInit(s, &m_ecdsa, rsa),
            CKR_KEY_TYPE_INCONSISTENT);
  EXPECT_RV("sign init invalid key", p->C_SignInit(s, &m_rsa, 0x7fff0000UL),
            CKR_KEY_HANDLE_INVALID);
  EXPECT_RV("sign init certificate as key", p->C_SignInit(s, &m_rsa, cert),
            CKR_KEY_HANDLE_INVALID);
  EXPECT_RV("sign init invalid session", p->C_SignInit(0x7fff0000UL, &m_rsa, rsa),
            CKR_SESSION_HANDLE_INVALID);

  /* Two-call convention on C_Sign: NULL → length; short → CKR_BUFFER_TOO_SMALL and the
   * operation stays active; then the real signature. */
  EXPECT_RV("sign init rsa", p->C_SignInit(s, &m_rsa, rsa), CKR_OK);
  EXPECT_RV("sign init while active", p->C_SignInit(s, &m_rsa, rsa), CKR_OPERATION_ACTIVE);
  slen = 0;
  EXPECT_RV("sign length query", p->C_Sign(s, (CK_BYTE_PTR)msg, mlen, NULL, &slen), CKR_OK);
  CHECK("sign length is modulus bytes", slen == 384, "len %lu", (unsigned long)slen);
  slen = 10;
  EXPECT_RV("sign short buffer", p->C_Sign(s, (CK_BYTE_PTR)msg, mlen, sig, &slen),
            CKR_BUFFER_TOO_SMALL);
  CHECK("sign short buffer sets length", slen == 384, "len %lu", (unsigned long)slen);
  slen = sizeof sig;
  EXPECT_RV("sign rsa", p->C_Sign(s, (CK_BYTE_PTR)msg, mlen, sig, &slen), CKR_OK);
  printf("sig SHA256_RSA_PKCS ");
  hex(msg, mlen);
  printf(" ");
  hex(sig, slen);
  printf("\n");
  slen = sizeof sig;
  EXPECT_RV("sign after completion", p->C_Sign(s, (CK_BYTE_PTR)msg, mlen, sig, &slen),
            CKR_OPERATION_NOT_INITIALIZED);

  /* Multi-part with the same convention on C_SignFinal. */
  EXPECT_RV("sign init ecdsa", p->C_SignInit(s, &m_ecdsa, ec), CKR_OK);
  EXPECT_RV("sign update 1", p->C_SignUpdate(s, (CK_BYTE_PTR)msg, 10), CKR_OK);
  EXPECT_RV("sign update 2", p->C_SignUpdate(s, (CK_BYTE_PTR)msg + 10, mlen - 10), CKR_OK);
  slen = 0;
  EXPECT_RV("sign final length query", p->C_SignFinal(s, NULL, &slen), CKR_OK);
  CHECK("ecdsa p-256 length", slen == 64, "len %lu", (unsigned long)slen);
  slen = 63;
  EXPECT_RV("sign final short", p->C_SignFinal(s, sig, &slen), CKR_BUFFER_TOO_SMALL);
  slen = sizeof sig;
  EXPECT_RV("sign final", p->C_SignFinal(s, sig, &slen), CKR_OK);
  printf("sig ECDSA_SHA256 ");
  hex(msg, mlen);
  printf(" ");
  hex(sig, slen);
  printf("\n");

  /* CKM_RSA_PKCS input that cannot fit the modulus. */
  CK_MECHANISM m_raw = {CKM_RSA_PKCS, NULL, 0};
  unsigned char toolong[384];
  memset(toolong, 0x41, sizeof toolong);
  EXPECT_RV("sign init rsa raw", p->C_SignInit(s, &m_raw, rsa), CKR_OK);
  slen = sizeof sig;
  EXPECT_RV("rsa pkcs data too long", p->C_Sign(s, toolong, sizeof toolong, sig, &slen),
            CKR_DATA_LEN_RANGE);
  EXPECT_RV("operation ended after error", p->C_SignFinal(s, sig, &slen),
            CKR_OPERATION_NOT_INITIALIZED);
}

static void check_daemon(void) {
  check_initialize_args();
  check_app_mutexes();
  EXPECT_RV("initialize", p->C_Initialize(NULL), CKR_OK);
  CK_SLOT_ID slot = check_slots();

  CK_SESSION_HANDLE s = 0;
  EXPECT_RV("open session without serial flag", p->C_OpenSession(slot, 0, NULL, NULL, &s),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED);
  EXPECT_RV("open session bad slot", p->C_OpenSession(0xdead0000UL, CKF_SERIAL_SESSION, NULL, NULL, &s),
            CKR_SLOT_ID_INVALID);
  EXPECT_RV("open session", p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
  CHECK("session handle not 0", s != CK_INVALID_HANDLE, "0");
  CK_SESSION_INFO sinfo;
  EXPECT_RV("session info", p->C_GetSessionInfo(s, &sinfo), CKR_OK);
  CHECK("session state public", sinfo.state == CKS_RO_PUBLIC_SESSION, "state %lu",
        (unsigned long)sinfo.state);
  EXPECT_RV("logout when not logged in", p->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
  EXPECT_RV("login", p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "anything", 8), CKR_OK);
  EXPECT_RV("login twice", p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "anything", 8),
            CKR_USER_ALREADY_LOGGED_IN);
  EXPECT_RV("session info after login", p->C_GetSessionInfo(s, &sinfo), CKR_OK);
  CHECK("session state user", sinfo.state == CKS_RO_USER_FUNCTIONS, "state %lu",
        (unsigned long)sinfo.state);

  /* Object search: a find in progress blocks another; template on any attribute. */
  CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE tc[] = {{CKA_CLASS, &priv, sizeof priv}};
  CK_OBJECT_HANDLE h[16];
  CK_ULONG n = 0;
  EXPECT_RV("find init", p->C_FindObjectsInit(s, tc, 1), CKR_OK);
  EXPECT_RV("find init while active", p->C_FindObjectsInit(s, tc, 1), CKR_OPERATION_ACTIVE);
  EXPECT_RV("find", p->C_FindObjects(s, h, 16, &n), CKR_OK);
  CHECK("two private keys", n == 2 && h[0] != 0 && h[1] != 0, "n=%lu", (unsigned long)n);
  EXPECT_RV("find final", p->C_FindObjectsFinal(s), CKR_OK);
  EXPECT_RV("find final again", p->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("find NULL count", p->C_FindObjects(s, h, 16, NULL), CKR_ARGUMENTS_BAD);

  CK_OBJECT_HANDLE rsa = find_one(s, CKO_PRIVATE_KEY, "\x01");
  CK_OBJECT_HANDLE ec = find_one(s, CKO_PRIVATE_KEY, "\x02");
  CK_OBJECT_HANDLE cert = find_one(s, CKO_CERTIFICATE, "\x01");
  CK_OBJECT_HANDLE pub = find_one(s, CKO_PUBLIC_KEY, "\x01");
  CHECK("find by class and id", rsa && ec && cert && pub && rsa != ec,
        "rsa %lu ec %lu cert %lu pub %lu", (unsigned long)rsa, (unsigned long)ec,
        (unsigned long)cert, (unsigned long)pub);
  if (rsa && ec && cert) {
    check_attributes(s, rsa);
    check_sign(s, rsa, ec, cert);
  }

  EXPECT_RV("close session", p->C_CloseSession(s), CKR_OK);
  EXPECT_RV("closed session invalid", p->C_GetSessionInfo(s, &sinfo), CKR_SESSION_HANDLE_INVALID);
  EXPECT_RV("finalize", p->C_Finalize(NULL), CKR_OK);
  CK_ULONG cnt = 0;
  EXPECT_RV("after finalize", p->C_GetSlotList(CK_FALSE, NULL, &cnt), CKR_CRYPTOKI_NOT_INITIALIZED);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <module.so> daemon|no-daemon\n", argv[0]);
    return 100;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("FAIL dlopen: %s\n", dlerror());
    return 100;
  }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl) {
    printf("FAIL dlsym C_GetFunctionList\n");
    return 100;
  }
  EXPECT_RV("function list NULL", gfl(NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("function list", gfl(&p), CKR_OK);
  CHECK("function list version 2.40", p->version.major == 2 && p->version.minor == 40, "%d.%d",
        p->version.major, p->version.minor);
  if (strcmp(argv[2], "no-daemon") == 0)
    check_no_daemon();
  else
    check_daemon();
  printf("failures %d\n", failures);
  return failures > 99 ? 99 : failures;
}
