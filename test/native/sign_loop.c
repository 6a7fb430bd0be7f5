/*
 * A sign loop through the raw C ABI, for valgrind memcheck (test/integration/valgrind.test.ts):
 * C_Initialize, find the run token's keys (CKA_ID 01 rsa-3072, 02 ec-p256), then <n> signatures
 * alternating CKM_SHA256_RSA_PKCS (single-part, with a length query) and CKM_ECDSA_SHA256
 * (multi-part), a fresh session every 25 signatures, C_Finalize, and a second C_Initialize /
 * sign / C_Finalize (state rebuilt and torn down twice).
 *   sign_loop <module.so> <n>     with a daemon on SIGNBRIDGE_SOCKET
 * Prints "sig <rsa|ec> <message-hex> <signature-hex>" per signature and "signed <n>";
 * exit status 0 when every call returned CKR_OK.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"
#include "module.h"

static CK_FUNCTION_LIST_PTR p;

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, unsigned char id) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  OK(p->C_FindObjectsInit(s, t, 2));
  OK(p->C_FindObjects(s, &h, 1, &n));
  OK(p->C_FindObjectsFinal(s));
  if (n != 1) {
    printf("FAIL no private key with CKA_ID %02x\n", id);
    exit(1);
  }
  return h;
}

static void hex(const unsigned char *b, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

static int sign_some(int from, int n) {
  CK_SLOT_ID slot;
  CK_ULONG count = 1;
  CK_SESSION_HANDLE s = 0;
  CK_OBJECT_HANDLE rsa = 0, ec = 0;
  OK(p->C_Initialize(NULL));
  OK(p->C_GetSlotList(CK_TRUE, &slot, &count));
  for (int i = from; i < from + n; i++) {
    if ((i - from) % 25 == 0) {
      if (s) OK(p->C_CloseSession(s));
      OK(p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
      rsa = find_key(s, 0x01);
      ec = find_key(s, 0x02);
    }
    char msg[64];
    int len = snprintf(msg, sizeof msg, "signbridge valgrind loop message %d", i);
    unsigned char sig[512];
    CK_ULONG slen = 0;
    if (i % 2 == 0) {
      CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
      OK(p->C_SignInit(s, &m, rsa));
      OK(p->C_Sign(s, (CK_BYTE_PTR)msg, (CK_ULONG)len, NULL, &slen)); /* length query */
      OK(p->C_Sign(s, (CK_BYTE_PTR)msg, (CK_ULONG)len, sig, &slen));
      printf("sig rsa ");
    } else {
      CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
      OK(p->C_SignInit(s, &m, ec));
      OK(p->C_SignUpdate(s, (CK_BYTE_PTR)msg, 10));
      OK(p->C_SignUpdate(s, (CK_BYTE_PTR)msg + 10, (CK_ULONG)len - 10));
      slen = sizeof sig;
      OK(p->C_SignFinal(s, sig, &slen));
      printf("sig ec ");
    }
    hex((const unsigned char *)msg, (CK_ULONG)len);
    printf(" ");
    hex(sig, slen);
    printf("\n");
  }
  OK(p->C_Finalize(NULL)); /* with a session still open: C_Finalize cleans it up */
  return n;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <module.so> <n>\n", argv[0]);
    return 100;
  }
  int n = atoi(argv[2]);
  if (!open_module(argv[1], &p)) return 100;
  int done = sign_some(0, n - n / 10);
  done += sign_some(done, n / 10); /* a second life after C_Finalize */
  printf("signed %d\n", done);
  return 0;
}
