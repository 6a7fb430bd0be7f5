/*
 * One signature through the module, built for any architecture (test/e2e/arm64-qemu.test.ts and
 * node-versions.test.ts compile it for aarch64 and run it under qemu-user):
 *   arch_sign <module.so> <key-label> <ec|rsa>     with a daemon on SIGNBRIDGE_SOCKET
 * dlopen, C_Initialize, find the private key and the certificate labelled <key-label> on any
 * slot, sign a message with CKM_ECDSA_SHA256 (ec) or CKM_SHA256_RSA_PKCS (rsa), C_Finalize.
 * Prints "arch <uname machine>", "cert <DER hex>", "sig <message hex> <signature hex>";
 * the test verifies the signature with node:crypto. Exit 0 when every call returned CKR_OK.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "p11.h"
#include "module.h"

static CK_FUNCTION_LIST_PTR p;

static void hex(const unsigned char *b, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

/* the first object of `cls` labelled `label` in session s, or 0 */
static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)}};
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  OK(p->C_FindObjectsInit(s, t, 2));
  OK(p->C_FindObjects(s, &h, 1, &n));
  OK(p->C_FindObjectsFinal(s));
  return n == 1 ? h : 0;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[3], "ec") != 0 && strcmp(argv[3], "rsa") != 0)) {
    fprintf(stderr, "usage: %s <module.so> <key-label> <ec|rsa>\n", argv[0]);
    return 100;
  }
  struct utsname u;
  if (uname(&u) == 0) printf("arch %s\n", u.machine);
  if (!open_module(argv[1], &p)) return 100;
  OK(p->C_Initialize(NULL));
  CK_SLOT_ID slots[16];
  CK_ULONG nslots = 16;
  OK(p->C_GetSlotList(CK_TRUE, slots, &nslots));
  CK_SESSION_HANDLE s = 0;
  CK_OBJECT_HANDLE key = 0, cert = 0;
  for (CK_ULONG i = 0; i < nslots && !key; i++) {
    OK(p->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s));
    key = find(s, CKO_PRIVATE_KEY, argv[2]);
    cert = find(s, CKO_CERTIFICATE, argv[2]);
    if (!key) OK(p->C_CloseSession(s));
  }
  if (!key || !cert) {
    printf("FAIL no private key and certificate labelled %s on %lu slot(s)\n", argv[2], (unsigned long)nslots);
    return 1;
  }

  unsigned char der[8192];
  CK_ATTRIBUTE value = {CKA_VALUE, der, sizeof der};
  OK(p->C_GetAttributeValue(s, cert, &value, 1));
  printf("cert ");
  hex(der, value.ulValueLen);
  printf("\n");

  char msg[96];
  int len = snprintf(msg, sizeof msg, "signed on %s through signbridge", u.machine);
  CK_MECHANISM m = {strcmp(argv[3], "ec") == 0 ? CKM_ECDSA_SHA256 : CKM_SHA256_RSA_PKCS, NULL, 0};
  unsigned char sig[1024];
  CK_ULONG slen = sizeof sig;
  OK(p->C_SignInit(s, &m, key));
  OK(p->C_Sign(s, (CK_BYTE_PTR)msg, (CK_ULONG)len, sig, &slen));
  printf("sig ");
  hex((const unsigned char *)msg, (CK_ULONG)len);
  printf(" ");
  hex(sig, slen);
  printf("\n");
  OK(p->C_CloseSession(s));
  OK(p->C_Finalize(NULL));
  return 0;
}
