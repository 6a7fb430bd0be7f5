/*
 * PKCS#11 3.0 interfaces and the v2.40 random / object-size calls of libsignbridge-pkcs11.so,
 * through the raw C ABI: C_GetInterfaceList (two-call convention), C_GetInterface (named,
 * versioned, NULL/NULL = the default 3.0), signing through the 3.0 list, C_LoginUser,
 * C_SessionCancel, an unimplemented 3.0 entry, C_GenerateRandom / C_SeedRandom, C_GetObjectSize.
 *
 * Built and run by test/integration/interfaces.test.ts:
 *   interfaces <module.so>   — a daemon serving the test token is on SIGNBRIDGE_SOCKET
 * Prints "ok"/"FAIL" lines (check.h) and "sig <name> <data-hex> <sig-hex>" for the test to verify.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "p11.h"
#include "../../native/pkcs11/p11_v3.h"
#include "check.h"

static CK_FUNCTION_LIST_3_0_PTR f3;

static void hex(const unsigned char *b, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *id) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)id, strlen(id)}};
  CK_OBJECT_HANDLE h[4];
  CK_ULONG n = 0;
  if (f3->C_FindObjectsInit(s, t, 2) != CKR_OK) return CK_INVALID_HANDLE;
  if (f3->C_FindObjects(s, h, 4, &n) != CKR_OK) n = 0;
  f3->C_FindObjectsFinal(s);
  return n == 1 ? h[0] : CK_INVALID_HANDLE;
}

static int is_version(CK_INTERFACE_PTR i, int major, int minor) {
  CK_VERSION *v = (CK_VERSION *)i->pFunctionList; /* both lists start with their version */
  return v->major == major && v->minor == minor;
}

static void check_lookup(CK_C_GetInterfaceList gil, CK_C_GetInterface gi, CK_FUNCTION_LIST_PTR v2) {
  CK_INTERFACE list[4];
  CK_ULONG n = 0;
  EXPECT_RV("interface list NULL count", gil(NULL, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("interface list length query", gil(NULL, &n), CKR_OK);
  CHECK("interface list has two", n == 2, "n=%lu", (unsigned long)n);
  n = 1;
  EXPECT_RV("interface list short buffer", gil(list, &n), CKR_BUFFER_TOO_SMALL);
  CHECK("interface list short buffer gives length", n == 2, "n=%lu", (unsigned long)n);
  n = 4;
  EXPECT_RV("interface list", gil(list, &n), CKR_OK);
  CHECK("interface list count", n == 2, "n=%lu", (unsigned long)n);
  CHECK("interface list names", strcmp((char *)list[0].pInterfaceName, "PKCS 11") == 0 &&
                                    strcmp((char *)list[1].pInterfaceName, "PKCS 11") == 0,
        "%s / %s", (char *)list[0].pInterfaceName, (char *)list[1].pInterfaceName);
  CHECK("interface list versions 3.0 then 2.40", is_version(&list[0], 3, 0) && is_version(&list[1], 2, 40),
        "first %d.%d", ((CK_VERSION *)list[0].pFunctionList)->major,
        ((CK_VERSION *)list[0].pFunctionList)->minor);
  CHECK("2.40 interface is C_GetFunctionList's list", list[1].pFunctionList == (void *)v2, "%p vs %p",
        list[1].pFunctionList, (void *)v2);
  CHECK("not claimed fork-safe", list[0].flags == 0 && list[1].flags == 0, "flags 0x%lx",
        (unsigned long)list[0].flags);

  CK_INTERFACE_PTR it = NULL;
  CK_VERSION v30 = {3, 0}, v240 = {2, 40}, v31 = {3, 1};
  EXPECT_RV("get interface NULL out", gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
  EXPECT_RV("get interface default", gi(NULL, NULL, &it, 0), CKR_OK);
  CHECK("default is 3.0", it && is_version(it, 3, 0), "%s", it ? "other version" : "NULL");
  CK_INTERFACE_PTR named = NULL;
  EXPECT_RV("get interface PKCS 11 3.0", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &named, 0), CKR_OK);
  CHECK("PKCS 11 3.0 is the default", named && it && named->pFunctionList == it->pFunctionList, "differs");
  f3 = named ? (CK_FUNCTION_LIST_3_0_PTR)named->pFunctionList : NULL;
  EXPECT_RV("get interface PKCS 11 no version", gi((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &named, 0), CKR_OK);
  CHECK("PKCS 11 without version is 3.0", named && is_version(named, 3, 0), "other");
  EXPECT_RV("get interface PKCS 11 2.40", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &named, 0), CKR_OK);
  CHECK("PKCS 11 2.40 is C_GetFunctionList's", named && named->pFunctionList == (void *)v2, "differs");
  EXPECT_RV("get interface 3.1 absent", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v31, &named, 0), CKR_ARGUMENTS_BAD);
  EXPECT_RV("get interface unknown name", gi((CK_UTF8CHAR_PTR) "Vendor X", NULL, &named, 0), CKR_ARGUMENTS_BAD);
  EXPECT_RV("get interface fork-safe absent", gi(NULL, NULL, &named, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);
  if (!f3) return;
  CHECK("3.0 list points at the exported calls", f3->C_GetInterfaceList == gil && f3->C_GetInterface == gi,
        "differs");
  /* The first 68 entries are the v2.40 list's: a 3.0 list read as CK_FUNCTION_LIST works. */
  CHECK("3.0 list starts with the 2.40 entries",
        memcmp((char *)f3 + sizeof(CK_VERSION), (char *)v2 + sizeof(CK_VERSION),
               sizeof(CK_FUNCTION_LIST) - sizeof(CK_VERSION)) == 0,
        "differs");
  CK_FUNCTION_LIST_PTR from3 = NULL;
  EXPECT_RV("3.0 C_GetFunctionList", f3->C_GetFunctionList(&from3), CKR_OK);
  CHECK("C_GetFunctionList stays 2.40", from3 == v2 && from3->version.major == 2 && from3->version.minor == 40,
        "other list");
  EXPECT_RV("3.0 entry before C_Initialize", f3->C_MessageSignInit(1, NULL, 1), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_RV("C_LoginUser before C_Initialize", f3->C_LoginUser(1, CKU_USER, NULL, 0, NULL, 0),
            CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void check_sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mt, const char *name) {
  static const unsigned char msg[] = "signbridge: signed through the PKCS#11 3.0 function list";
  unsigned char sig[1024];
  CK_ULONG slen = sizeof sig;
  CK_MECHANISM m = {mt, NULL, 0};
  char label[96];
  snprintf(label, sizeof label, "3.0 sign init %s", name);
  EXPECT_RV(label, f3->C_SignInit(s, &m, key), CKR_OK);
  snprintf(label, sizeof label, "3.0 sign %s", name);
  CK_RV rv = f3->C_Sign(s, (CK_BYTE_PTR)msg, sizeof msg - 1, sig, &slen);
  EXPECT_RV(label, rv, CKR_OK);
  if (rv != CKR_OK) return;
  printf("sig %s ", name);
  hex(msg, sizeof msg - 1);
  printf(" ");
  hex(sig, slen);
  printf("\n");
}

static void check_cancel(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE ec) {
  CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0}, d = {CKM_SHA256, NULL, 0};
  unsigned char buf[128];
  CK_ULONG len = sizeof buf, n = 0;
  CK_OBJECT_HANDLE h[4];
  EXPECT_RV("cancel: sign init", f3->C_SignInit(s, &m, ec), CKR_OK);
  EXPECT_RV("cancel: digest init", f3->C_DigestInit(s, &d), CKR_OK);
  EXPECT_RV("cancel: find init", f3->C_FindObjectsInit(s, NULL, 0), CKR_OK);
  EXPECT_RV("cancel sign only", f3->C_SessionCancel(s, CKF_SIGN), CKR_OK);
  EXPECT_RV("cancelled sign is gone", f3->C_Sign(s, buf, 4, buf, &len), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("find survives a sign cancel", f3->C_FindObjects(s, h, 4, &n), CKR_OK);
  EXPECT_RV("cancel digest and find", f3->C_SessionCancel(s, CKF_DIGEST | CKF_FIND_OBJECTS), CKR_OK);
  len = sizeof buf;
  EXPECT_RV("cancelled digest is gone", f3->C_Digest(s, buf, 4, buf, &len), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("cancelled find is gone", f3->C_FindObjects(s, h, 4, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_RV("sign init after cancel", f3->C_SignInit(s, &m, ec), CKR_OK);
  EXPECT_RV("cancel with nothing else active", f3->C_SessionCancel(s, CKF_SIGN | CKF_DECRYPT), CKR_OK);
  EXPECT_RV("cancel bad session", f3->C_SessionCancel(0x7fff0000UL, CKF_SIGN), CKR_SESSION_HANDLE_INVALID);
}

static void check_login_user(CK_SESSION_HANDLE s) {
  CK_SESSION_INFO si;
  EXPECT_RV("login user NULL name with length", f3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4, NULL, 3),
            CKR_ARGUMENTS_BAD);
  /* s is a R/O session: v2.40 §5.6 refuses an SO login with CKR_SESSION_READ_ONLY_EXISTS first, as
     C_Login does (docs/design.md "What a bridge never does") */
  EXPECT_RV("login user SO", f3->C_LoginUser(s, CKU_SO, (CK_UTF8CHAR_PTR) "1234", 4, NULL, 0),
            CKR_SESSION_READ_ONLY_EXISTS);
  EXPECT_RV("login user with a name", f3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4,
                                                      (CK_UTF8CHAR_PTR) "builder", 7), CKR_OK);
  EXPECT_RV("login user session info", f3->C_GetSessionInfo(s, &si), CKR_OK);
  CHECK("login user logged in", si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS,
        "state %lu", (unsigned long)si.state);
  EXPECT_RV("login user twice", f3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4, NULL, 0),
            CKR_USER_ALREADY_LOGGED_IN);
  EXPECT_RV("logout after login user", f3->C_Logout(s), CKR_OK);
}

static void check_unsupported(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE ec) {
  CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
  unsigned char buf[64];
  CK_ULONG len = sizeof buf;
  EXPECT_RV("C_MessageSignInit not supported", f3->C_MessageSignInit(s, &m, ec), CKR_FUNCTION_NOT_SUPPORTED);
  EXPECT_RV("C_SignMessage not supported", f3->C_SignMessage(s, NULL, 0, buf, 8, buf, &len),
            CKR_FUNCTION_NOT_SUPPORTED);
  EXPECT_RV("C_MessageEncryptInit not supported", f3->C_MessageEncryptInit(s, &m, ec), CKR_FUNCTION_NOT_SUPPORTED);
  EXPECT_RV("C_DecryptMessageNext not supported", f3->C_DecryptMessageNext(s, NULL, 0, buf, 8, buf, &len, 0),
            CKR_FUNCTION_NOT_SUPPORTED);
  EXPECT_RV("C_MessageVerifyFinal not supported", f3->C_MessageVerifyFinal(s), CKR_FUNCTION_NOT_SUPPORTED);
}

static void check_random(CK_SLOT_ID slot, CK_SESSION_HANDLE s) {
  CK_TOKEN_INFO ti;
  EXPECT_RV("token info", f3->C_GetTokenInfo(slot, &ti), CKR_OK);
  CHECK("token has CKF_RNG", ti.flags & CKF_RNG, "flags 0x%lx", (unsigned long)ti.flags);
  unsigned char a[64], b[64], zero[64], big[70000];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  memset(zero, 0, sizeof zero);
  EXPECT_RV("random 64", f3->C_GenerateRandom(s, a, sizeof a), CKR_OK);
  EXPECT_RV("random 64 again", f3->C_GenerateRandom(s, b, sizeof b), CKR_OK);
  CHECK("random filled", memcmp(a, zero, sizeof a) != 0 && memcmp(b, zero, sizeof b) != 0, "all zero");
  CHECK("random does not repeat", memcmp(a, b, sizeof a) != 0, "two draws equal");
  /* Larger than one getrandom(2) call is guaranteed to return: the loop fills it all. */
  memset(big, 0, sizeof big);
  EXPECT_RV("random 70000", f3->C_GenerateRandom(s, big, sizeof big), CKR_OK);
  CHECK("random 70000 filled to the end", memcmp(big + sizeof big - 64, zero, 64) != 0, "tail zero");
  EXPECT_RV("random zero length", f3->C_GenerateRandom(s, NULL, 0), CKR_OK);
  EXPECT_RV("random NULL buffer", f3->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
  EXPECT_RV("random bad session", f3->C_GenerateRandom(0x7fff0000UL, a, 16), CKR_SESSION_HANDLE_INVALID);
  EXPECT_RV("seed refused", f3->C_SeedRandom(s, a, 16), CKR_RANDOM_SEED_NOT_SUPPORTED);
  EXPECT_RV("seed NULL", f3->C_SeedRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
  EXPECT_RV("seed bad session", f3->C_SeedRandom(0x7fff0000UL, a, 16), CKR_SESSION_HANDLE_INVALID);
}

static void check_object_size(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE cert, CK_OBJECT_HANDLE key) {
  CK_ULONG size = 0, key_size = 0;
  CK_ATTRIBUTE v = {CKA_VALUE, NULL, 0};
  EXPECT_RV("cert value length", f3->C_GetAttributeValue(s, cert, &v, 1), CKR_OK);
  EXPECT_RV("object size cert", f3->C_GetObjectSize(s, cert, &size), CKR_OK);
  CHECK("object size covers the certificate", size > v.ulValueLen && size < v.ulValueLen + 16384,
        "size %lu value %lu", (unsigned long)size, (unsigned long)v.ulValueLen);
  EXPECT_RV("object size private key", f3->C_GetObjectSize(s, key, &key_size), CKR_OK);
  CHECK("object size private key nonzero", key_size > 0, "size %lu", (unsigned long)key_size);
  EXPECT_RV("object size NULL", f3->C_GetObjectSize(s, cert, NULL), CKR_ARGUMENTS_BAD);
  EXPECT_RV("object size bad object", f3->C_GetObjectSize(s, 0x7fff0000UL, &size), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_RV("object size bad session", f3->C_GetObjectSize(0x7fff0000UL, cert, &size), CKR_SESSION_HANDLE_INVALID);
}

/* Failures a user can act on: with SIGNBRIDGE_DEBUG each prints one line saying why (the test
 * reads stderr). The calls themselves are ordinary misuse a tool can make. */
static void check_debug_reasons(CK_SLOT_ID slot, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE ec) {
  CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0}, d = {CKM_SHA256, NULL, 0};
  CK_MECHANISM_INFO mi;
  unsigned char buf[64];
  CK_ULONG len = sizeof buf;
  EXPECT_RV("reason: initialize twice", f3->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
  EXPECT_RV("reason: mechanism of another slot", f3->C_GetMechanismInfo(slot, CKM_EDDSA, &mi), CKR_MECHANISM_INVALID);
  EXPECT_RV("reason: sign init", f3->C_SignInit(s, &m, ec), CKR_OK);
  EXPECT_RV("reason: sign init while active", f3->C_SignInit(s, &m, ec), CKR_OPERATION_ACTIVE);
  EXPECT_RV("reason: cancel the sign", f3->C_SessionCancel(s, CKF_SIGN), CKR_OK);
  EXPECT_RV("reason: unknown key", f3->C_SignInit(s, &m, 0x7fff0000UL), CKR_KEY_HANDLE_INVALID);
  EXPECT_RV("reason: digest init", f3->C_DigestInit(s, &d), CKR_OK);
  EXPECT_RV("reason: digest init while active", f3->C_DigestInit(s, &d), CKR_OPERATION_ACTIVE);
  EXPECT_RV("reason: find init", f3->C_FindObjectsInit(s, NULL, 0), CKR_OK);
  EXPECT_RV("reason: find init while active", f3->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
  EXPECT_RV("reason: cancel digest and find", f3->C_SessionCancel(s, CKF_DIGEST | CKF_FIND_OBJECTS), CKR_OK);
  EXPECT_RV("reason: login", f3->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), CKR_OK);
  EXPECT_RV("reason: login twice", f3->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_ALREADY_LOGGED_IN);
  EXPECT_RV("reason: logout", f3->C_Logout(s), CKR_OK);
  EXPECT_RV("reason: encrypt", f3->C_Encrypt(s, buf, 8, buf, &len), CKR_FUNCTION_NOT_SUPPORTED);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <module.so>\n", argv[0]);
    return 100;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("FAIL dlopen: %s\n", dlerror());
    return 100;
  }
  CK_C_GetInterfaceList gil = (CK_C_GetInterfaceList)dlsym(lib, "C_GetInterfaceList");
  CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR v2 = NULL;
  if (!gil || !gi || !gfl || gfl(&v2) != CKR_OK) {
    printf("FAIL dlsym C_GetInterfaceList / C_GetInterface / C_GetFunctionList\n");
    return 100;
  }
  check_lookup(gil, gi, v2);
  if (!f3) {
    printf("FAIL no 3.0 list\n");
    return 100;
  }
  EXPECT_RV("3.0 initialize", f3->C_Initialize(NULL), CKR_OK);
  CK_SLOT_ID slot;
  CK_ULONG n = 1;
  EXPECT_RV("3.0 slot list", f3->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  EXPECT_RV("3.0 open session", f3->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
  CK_OBJECT_HANDLE rsa = find_one(s, CKO_PRIVATE_KEY, "\x01");
  CK_OBJECT_HANDLE ec = find_one(s, CKO_PRIVATE_KEY, "\x02");
  CK_OBJECT_HANDLE cert = find_one(s, CKO_CERTIFICATE, "\x01");
  CHECK("3.0 find keys", rsa && ec && cert, "rsa %lu ec %lu cert %lu", (unsigned long)rsa, (unsigned long)ec,
        (unsigned long)cert);
  check_login_user(s);
  if (rsa && ec && cert) {
    check_sign(s, rsa, CKM_SHA256_RSA_PKCS, "SHA256_RSA_PKCS");
    check_sign(s, ec, CKM_ECDSA_SHA256, "ECDSA_SHA256");
    check_cancel(s, ec);
    check_unsupported(s, ec);
    check_object_size(s, cert, rsa);
  }
  check_random(slot, s);
  if (ec) check_debug_reasons(slot, s, ec);
  EXPECT_RV("3.0 close session", f3->C_CloseSession(s), CKR_OK);
  EXPECT_RV("3.0 finalize", f3->C_Finalize(NULL), CKR_OK);
  EXPECT_RV("3.0 entry after finalize", f3->C_SessionCancel(s, CKF_SIGN), CKR_CRYPTOKI_NOT_INITIALIZED);
  printf("failures %d\n", failures);
  return failures > 99 ? 99 : failures;
}
