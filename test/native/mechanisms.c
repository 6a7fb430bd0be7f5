/*
 * The two-call convention (PKCS#11 v2.40 §5.2) for every key × mechanism the module serves, through
 * the raw C ABI — what pkcs11js cannot express: C_Sign / C_SignFinal with a NULL output buffer.
 * For each private key on each slot and each mechanism in its CKA_ALLOWED_MECHANISMS:
 *   single-part: C_Sign(NULL) → CKR_OK + length; short buffer → CKR_BUFFER_TOO_SMALL + length, the
 *   operation still active; the real C_Sign → a signature of that length; then no operation left.
 *   multi-part (hash-and-sign mechanisms and CKM_EDDSA): C_SignUpdate ×3 (one empty, NULL pointer) and the same
 *   sequence on C_SignFinal.
 *
 * Built and run by test/integration/mechanisms.test.ts:
 *   mechanisms <module.so> <message-hex> <sha256-of-message-hex>
 * with a daemon on SIGNBRIDGE_SOCKET. Raw mechanisms sign the message's SHA-256 (as a DigestInfo for
 * CKM_RSA_PKCS); PSS uses MGF1 over its hash and sLen = hLen. Prints "ok <name>" / "FAIL <name>: …"
 * per check and "sig <key label> <mechanism hex> <single|multi> <signature hex>" for the test to
 * verify with node:crypto. Exit status: number of failures (capped at 100).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"
#include "check.h"


static CK_FUNCTION_LIST_PTR p;
static char name[256];


/* this harness names a check by its context: CHECK(cond, …) reports under `name` */
#undef CHECK
#undef EXPECT_RV
#define CHECK(cond, ...) report(name, (cond) ? 1 : 0, __VA_ARGS__)
#define EXPECT_RV(what, call, want)                                                         \
  do {                                                                                      \
    CK_RV rv_ = (call);                                                                     \
    snprintf(name, sizeof name, "%s %s", ctx, what);                                        \
    CHECK(rv_ == (CK_RV)(want), "got 0x%lx, want 0x%lx", (unsigned long)rv_, (unsigned long)(want)); \
  } while (0)

static unsigned char *unhex(const char *s, size_t *n) {
  size_t len = strlen(s) / 2;
  unsigned char *b = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) sscanf(s + 2 * i, "%2hhx", &b[i]);
  *n = len;
  return b;
}

static void print_sig(const char *label, CK_MECHANISM_TYPE m, const char *mode, const unsigned char *sig, CK_ULONG n) {
  printf("sig %s %lx %s ", label, (unsigned long)m, mode);
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", sig[i]);
  printf("\n");
}

/* The mechanism's own hash (hash-and-sign) — these are the multi-part ones; 0 for raw mechanisms. */
static CK_MECHANISM_TYPE own_hash(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA256_RSA_PKCS: case CKM_SHA256_RSA_PKCS_PSS: case CKM_ECDSA_SHA256: return CKM_SHA256;
    case CKM_SHA384_RSA_PKCS: case CKM_SHA384_RSA_PKCS_PSS: case CKM_ECDSA_SHA384: return CKM_SHA384;
    case CKM_SHA512_RSA_PKCS: case CKM_SHA512_RSA_PKCS_PSS: case CKM_ECDSA_SHA512: return CKM_SHA512;
    default: return 0;
  }
}

static CK_ULONG hash_len(CK_MECHANISM_TYPE h) { return h == CKM_SHA512 ? 64 : h == CKM_SHA384 ? 48 : 32; }

static CK_RSA_PKCS_MGF_TYPE mgf_of(CK_MECHANISM_TYPE h) {
  return h == CKM_SHA512 ? CKG_MGF1_SHA512 : h == CKM_SHA384 ? CKG_MGF1_SHA384 : CKG_MGF1_SHA256;
}

static int is_pss(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS || m == CKM_SHA384_RSA_PKCS_PSS ||
         m == CKM_SHA512_RSA_PKCS_PSS;
}

static const unsigned char *msg, *sha256;
static size_t msg_len;

static void check_mechanism(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const char *label, CK_MECHANISM_TYPE type) {
  char ctx[128];
  unsigned char sig[1024], digest_info[19 + 32];
  const unsigned char *in = msg;
  CK_ULONG in_len = msg_len, len, want;
  CK_MECHANISM_TYPE h = own_hash(type);
  CK_RSA_PKCS_PSS_PARAMS pss = {h ? h : CKM_SHA256, mgf_of(h ? h : CKM_SHA256), hash_len(h ? h : CKM_SHA256)};
  CK_MECHANISM mech = {type, NULL, 0};
  if (is_pss(type)) {
    mech.pParameter = &pss;
    mech.ulParameterLen = sizeof pss;
  }
  if (type == CKM_RSA_PKCS) { /* DigestInfo of the SHA-256 (RFC 8017 §9.2 note 1) */
    memcpy(digest_info, "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20", 19);
    memcpy(digest_info + 19, sha256, 32);
    in = digest_info;
    in_len = sizeof digest_info;
  } else if (type == CKM_RSA_PKCS_PSS || type == CKM_ECDSA) {
    in = sha256;
    in_len = 32;
  }

  snprintf(ctx, sizeof ctx, "%s 0x%lx single", label, (unsigned long)type);
  EXPECT_RV("init", p->C_SignInit(s, &mech, key), CKR_OK);
  len = 0;
  EXPECT_RV("NULL buffer → length", p->C_Sign(s, (CK_BYTE_PTR)in, in_len, NULL, &len), CKR_OK);
  want = len;
  snprintf(name, sizeof name, "%s length plausible", ctx);
  CHECK(want >= 64 && want <= 512, "length %lu", (unsigned long)want);
  len = want - 1;
  EXPECT_RV("short buffer", p->C_Sign(s, (CK_BYTE_PTR)in, in_len, sig, &len), CKR_BUFFER_TOO_SMALL);
  snprintf(name, sizeof name, "%s short buffer sets the length", ctx);
  CHECK(len == want, "len %lu want %lu", (unsigned long)len, (unsigned long)want);
  len = 0;
  EXPECT_RV("NULL buffer again (operation still active)", p->C_Sign(s, (CK_BYTE_PTR)in, in_len, NULL, &len), CKR_OK);
  len = sizeof sig;
  EXPECT_RV("sign", p->C_Sign(s, (CK_BYTE_PTR)in, in_len, sig, &len), CKR_OK);
  snprintf(name, sizeof name, "%s signature has the announced length", ctx);
  CHECK(len == want, "len %lu want %lu", (unsigned long)len, (unsigned long)want);
  if (len == want) print_sig(label, type, "single", sig, len);
  len = sizeof sig;
  EXPECT_RV("operation ended", p->C_Sign(s, (CK_BYTE_PTR)in, in_len, sig, &len), CKR_OPERATION_NOT_INITIALIZED);

  if (!h && type != CKM_EDDSA) return; /* digest-in mechanisms are single-part; EdDSA is buffered */
  snprintf(ctx, sizeof ctx, "%s 0x%lx multi", label, (unsigned long)type);
  EXPECT_RV("init", p->C_SignInit(s, &mech, key), CKR_OK);
  EXPECT_RV("update 1", p->C_SignUpdate(s, (CK_BYTE_PTR)msg, 7), CKR_OK);
  EXPECT_RV("update empty NULL", p->C_SignUpdate(s, NULL, 0), CKR_OK);
  EXPECT_RV("update rest", p->C_SignUpdate(s, (CK_BYTE_PTR)msg + 7, msg_len - 7), CKR_OK);
  len = 0;
  EXPECT_RV("final NULL buffer → length", p->C_SignFinal(s, NULL, &len), CKR_OK);
  snprintf(name, sizeof name, "%s final length as single-part", ctx);
  CHECK(len == want, "len %lu want %lu", (unsigned long)len, (unsigned long)want);
  len = want - 1;
  EXPECT_RV("final short buffer", p->C_SignFinal(s, sig, &len), CKR_BUFFER_TOO_SMALL);
  snprintf(name, sizeof name, "%s final short buffer sets the length", ctx);
  CHECK(len == want, "len %lu want %lu", (unsigned long)len, (unsigned long)want);
  len = sizeof sig;
  EXPECT_RV("final", p->C_SignFinal(s, sig, &len), CKR_OK);
  snprintf(name, sizeof name, "%s final signature length", ctx);
  CHECK(len == want, "len %lu want %lu", (unsigned long)len, (unsigned long)want);
  if (len == want) print_sig(label, type, "multi", sig, len);
  len = sizeof sig;
  EXPECT_RV("operation ended", p->C_SignFinal(s, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
}

static void check_key(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
  char ctx[64] = "key";
  char label[65] = {0};
  CK_ATTRIBUTE t[] = {{CKA_LABEL, label, sizeof label - 1}, {CKA_ALLOWED_MECHANISMS, NULL, 0}};
  EXPECT_RV("label and allowed mechanisms length", p->C_GetAttributeValue(s, key, t, 2), CKR_OK);
  CK_ULONG n = t[1].ulValueLen / sizeof(CK_MECHANISM_TYPE);
  snprintf(name, sizeof name, "%s has allowed mechanisms", label);
  CHECK(n > 0 && n < 64 && t[1].ulValueLen % sizeof(CK_MECHANISM_TYPE) == 0, "length %lu", (unsigned long)t[1].ulValueLen);
  if (n == 0 || n >= 64) return;
  CK_MECHANISM_TYPE mechs[64];
  t[1].pValue = mechs;
  EXPECT_RV("allowed mechanisms", p->C_GetAttributeValue(s, key, t, 2), CKR_OK);
  for (CK_ULONG i = 0; i < n; i++) check_mechanism(s, key, label, mechs[i]);
}

int main(int argc, char **argv) {
  char ctx[] = "setup";
  if (argc != 4) {
    fprintf(stderr, "usage: %s <module.so> <message-hex> <sha256-hex>\n", argv[0]);
    return 100;
  }
  size_t n;
  msg = unhex(argv[2], &msg_len);
  sha256 = unhex(argv[3], &n);
  if (n != 32 || msg_len < 8) {
    fprintf(stderr, "the SHA-256 must be 32 bytes and the message at least 8\n");
    return 100;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 100;
  }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl || gfl(&p) != CKR_OK) {
    fprintf(stderr, "C_GetFunctionList failed\n");
    return 100;
  }
  EXPECT_RV("initialize", p->C_Initialize(NULL), CKR_OK);
  CK_SLOT_ID slots[16];
  CK_ULONG nslots = 16;
  EXPECT_RV("slot list", p->C_GetSlotList(CK_TRUE, slots, &nslots), CKR_OK);
  int keys = 0;
  for (CK_ULONG i = 0; i < nslots && i < 16; i++) {
    CK_SESSION_HANDLE s;
    EXPECT_RV("open session", p->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_OBJECT_HANDLE h[32];
    CK_ULONG found = 0;
    EXPECT_RV("find init", p->C_FindObjectsInit(s, t, 1), CKR_OK);
    EXPECT_RV("find", p->C_FindObjects(s, h, 32, &found), CKR_OK);
    EXPECT_RV("find final", p->C_FindObjectsFinal(s), CKR_OK);
    for (CK_ULONG k = 0; k < found; k++, keys++) check_key(s, h[k]);
    EXPECT_RV("close session", p->C_CloseSession(s), CKR_OK);
  }
  snprintf(name, sizeof name, "found private keys");
  CHECK(keys > 0, "none");
  EXPECT_RV("finalize", p->C_Finalize(NULL), CKR_OK);
  return failures > 100 ? 100 : failures;
}
