/*
 * Windows harness for signbridge-pkcs11.dll (test/e2e/windows-pkcs11.test.ts, run under Wine):
 * loads the DLL with LoadLibraryW like any Windows PKCS#11 host and prints what it saw, one
 * "key=value" line each, to the file given last (a Windows program's stdout may not be a
 * Linux pipe). The test verifies the signatures natively with node:crypto.
 *   win_pkcs11 <dll> sign <key label> <mechanism: ecdsa-sha256|rsa-sha256|rsa-pss-sha256> <message hex> <out>
 *   win_pkcs11 <dll> errors <out>
 *   win_pkcs11 <dll> nodaemon <out>       (SIGNBRIDGE_SOCKET names a pipe nobody serves)
 * Cryptoki structures are packed to 1 byte on Windows (p11.h), CK_ULONG is 32 bits.
 */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../native/pkcs11/p11.h" /* packed to 1 byte on Windows, like the module */

static FILE *out;
static CK_FUNCTION_LIST_PTR p;

static void hex(const char *key, const unsigned char *b, unsigned long n) {
  fprintf(out, "%s=", key);
  for (unsigned long i = 0; i < n; i++) fprintf(out, "%02x", b[i]);
  fprintf(out, "\n");
}

static int unhex(const char *s, unsigned char *b, size_t cap) {
  size_t n = strlen(s) / 2;
  if (n > cap) return -1;
  for (size_t i = 0; i < n; i++) sscanf(s + 2 * i, "%2hhx", &b[i]);
  return (int)n;
}

static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)}};
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  CK_RV rv = p->C_FindObjectsInit(s, t, 2);
  fprintf(out, "find_init_rv=0x%lx\n", (unsigned long)rv);
  rv = p->C_FindObjects(s, &h, 1, &n);
  p->C_FindObjectsFinal(s);
  return rv == CKR_OK && n == 1 ? h : 0;
}

static int do_sign(const char *label, const char *mech_name, const char *msg_hex) {
  unsigned char msg[4096];
  int msg_len = unhex(msg_hex, msg, sizeof msg);
  CK_RV rv = p->C_Initialize(NULL);
  fprintf(out, "initialize_rv=0x%lx\n", (unsigned long)rv);
  /* two-call convention for the slot list */
  CK_ULONG count = 0;
  rv = p->C_GetSlotList(CK_TRUE, NULL, &count);
  fprintf(out, "slot_count_rv=0x%lx\nslot_count=%lu\n", (unsigned long)rv, (unsigned long)count);
  if (rv != CKR_OK || count == 0) return 1;
  CK_SLOT_ID slots[16];
  count = count > 16 ? 16 : count;
  rv = p->C_GetSlotList(CK_TRUE, slots, &count);
  CK_TOKEN_INFO ti;
  p->C_GetTokenInfo(slots[0], &ti);
  fprintf(out, "token_label=%.32s\n", (const char *)ti.label);
  CK_SESSION_HANDLE s = 0;
  rv = p->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &s);
  fprintf(out, "open_rv=0x%lx\n", (unsigned long)rv);
  CK_OBJECT_HANDLE key = find(s, CKO_PRIVATE_KEY, label);
  CK_OBJECT_HANDLE cert = find(s, CKO_CERTIFICATE, label);
  fprintf(out, "key_found=%d\ncert_found=%d\n", key != 0, cert != 0);
  if (!key || !cert) return 1;
  /* the certificate's DER, two-call: the length first */
  CK_ATTRIBUTE v = {CKA_VALUE, NULL, 0};
  p->C_GetAttributeValue(s, cert, &v, 1);
  unsigned char *der = malloc(v.ulValueLen);
  v.pValue = der;
  rv = p->C_GetAttributeValue(s, cert, &v, 1);
  fprintf(out, "cert_rv=0x%lx\n", (unsigned long)rv);
  hex("cert", der, v.ulValueLen);

  CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM m = {0, NULL, 0};
  if (strcmp(mech_name, "ecdsa-sha256") == 0) m.mechanism = CKM_ECDSA_SHA256;
  else if (strcmp(mech_name, "rsa-sha256") == 0) m.mechanism = CKM_SHA256_RSA_PKCS;
  else if (strcmp(mech_name, "rsa-pss-sha256") == 0) {
    m.mechanism = CKM_SHA256_RSA_PKCS_PSS;
    m.pParameter = &pss;
    m.ulParameterLen = sizeof pss;
  }
  rv = p->C_SignInit(s, &m, key);
  fprintf(out, "sign_init_rv=0x%lx\n", (unsigned long)rv);
  /* two-call convention: NULL → the length, too small → CKR_BUFFER_TOO_SMALL and the length */
  CK_ULONG sig_len = 0;
  rv = p->C_Sign(s, msg, (CK_ULONG)msg_len, NULL, &sig_len);
  fprintf(out, "sign_len_rv=0x%lx\nsign_len=%lu\n", (unsigned long)rv, (unsigned long)sig_len);
  unsigned char sig[1024];
  CK_ULONG small = 1;
  rv = p->C_Sign(s, msg, (CK_ULONG)msg_len, sig, &small);
  fprintf(out, "sign_small_rv=0x%lx\nsign_small_len=%lu\n", (unsigned long)rv, (unsigned long)small);
  CK_ULONG got = sizeof sig;
  rv = p->C_Sign(s, msg, (CK_ULONG)msg_len, sig, &got);
  fprintf(out, "sign_rv=0x%lx\n", (unsigned long)rv);
  if (rv == CKR_OK) hex("signature", sig, got);
  p->C_CloseSession(s);
  rv = p->C_Finalize(NULL);
  fprintf(out, "finalize_rv=0x%lx\n", (unsigned long)rv);
  free(der);
  return 0;
}

static int do_errors(void) {
  CK_ULONG before = 0;
  CK_RV rv = p->C_GetSlotList(CK_TRUE, NULL, &before);
  fprintf(out, "before_init_rv=0x%lx\n", (unsigned long)rv);
  p->C_Initialize(NULL);
  rv = p->C_Initialize(NULL);
  fprintf(out, "init_twice_rv=0x%lx\n", (unsigned long)rv);
  rv = p->C_GetSlotList(CK_TRUE, NULL, NULL);
  fprintf(out, "null_count_rv=0x%lx\n", (unsigned long)rv);
  CK_BYTE data[4] = {1, 2, 3, 4};
  CK_ULONG n = 0;
  rv = p->C_Sign(12345, data, 4, NULL, &n);
  fprintf(out, "bad_session_rv=0x%lx\n", (unsigned long)rv);
  CK_SLOT_ID slot;
  CK_ULONG count = 1;
  p->C_GetSlotList(CK_TRUE, &slot, &count);
  CK_SESSION_HANDLE s = 0;
  p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
  rv = p->C_Sign(s, data, 4, NULL, &n);
  fprintf(out, "not_initialized_rv=0x%lx\n", (unsigned long)rv);
  rv = p->C_CreateObject(s, NULL, 0, NULL);
  fprintf(out, "create_object_rv=0x%lx\n", (unsigned long)rv);
  p->C_Finalize(NULL);
  return 0;
}

static int do_nodaemon(void) {
  LARGE_INTEGER f, a, b;
  QueryPerformanceFrequency(&f);
  p->C_Initialize(NULL);
  QueryPerformanceCounter(&a);
  CK_ULONG count = 0;
  CK_RV rv = p->C_GetSlotList(CK_TRUE, NULL, &count);
  QueryPerformanceCounter(&b);
  fprintf(out, "slot_list_rv=0x%lx\nelapsed_ms=%.3f\n", (unsigned long)rv, (double)(b.QuadPart - a.QuadPart) * 1000.0 / (double)f.QuadPart);
  p->C_Finalize(NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  out = fopen(argv[argc - 1], "w");
  if (!out) return 2;
  fprintf(out, "sizeof_ulong=%u\nsizeof_attribute=%u\n", (unsigned)sizeof(CK_ULONG), (unsigned)sizeof(CK_ATTRIBUTE));
  HMODULE dll = LoadLibraryA(argv[1]);
  if (!dll) {
    fprintf(out, "load_error=%lu\n", (unsigned long)GetLastError());
    fclose(out);
    return 1;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)(void (*)(void))GetProcAddress(dll, "C_GetFunctionList");
  if (!get || get(&p) != CKR_OK) {
    fprintf(out, "no_function_list=1\n");
    fclose(out);
    return 1;
  }
  int rc = 2;
  if (strcmp(argv[2], "sign") == 0 && argc == 7) rc = do_sign(argv[3], argv[4], argv[5]);
  else if (strcmp(argv[2], "errors") == 0) rc = do_errors();
  else if (strcmp(argv[2], "nodaemon") == 0) rc = do_nodaemon();
  fprintf(out, "done=1\n");
  fclose(out);
  FreeLibrary(dll);
  return rc;
}
