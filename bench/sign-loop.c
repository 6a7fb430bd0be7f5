/*
 * Times C_SignInit + C_Sign through any PKCS#11 module, sequentially, like the measurements in
 * docs/performance.md, so the direct token and signbridge are measured by the same code.
 *
 *   sign-loop <module.so> <key-id-hex> <mechanism-hex> <count> [pin]
 *
 * Prints one line: "p10_us=<..> p50_us=<..> p90_us=<..> p99_us=<..> mean_us=<..> n=<..>".
 * The PIN (only needed for a direct SoftHSMv2 token) is read from the SIGN_LOOP_PIN environment
 * variable, never argv.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../test/native/p11.h"

#include "timing.h"

static int unhex(const char *s, unsigned char *out, size_t max) {
  size_t n = strlen(s) / 2;
  if (n > max) return -1;
  for (size_t i = 0; i < n; i++) sscanf(s + 2 * i, "%2hhx", &out[i]);
  return (int)n;
}

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); return 1; } while (0)

int main(int argc, char **argv) {
  if (argc != 5) DIE("usage: %s <module.so> <key-id-hex> <mechanism-hex> <count>", argv[0]);
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) DIE("dlopen: %s", dlerror());
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR p;
  if (!gfl || gfl(&p) != CKR_OK) DIE("C_GetFunctionList");
  CK_C_INITIALIZE_ARGS args = {0};
  args.flags = CKF_OS_LOCKING_OK;
  if (p->C_Initialize(&args) != CKR_OK) DIE("C_Initialize");

  unsigned char id[256];
  int idlen = unhex(argv[2], id, sizeof id);
  CK_MECHANISM_TYPE mech = strtoul(argv[3], NULL, 16);
  int count = atoi(argv[4]);

  CK_SLOT_ID slots[8];
  CK_ULONG nslots = 8;
  CK_RV rv = p->C_GetSlotList(CK_TRUE, slots, &nslots);
  if (rv != CKR_OK || nslots == 0) DIE("C_GetSlotList: 0x%lx", (unsigned long)rv);
  CK_SESSION_HANDLE s = 0;
  CK_OBJECT_HANDLE key = 0;
  for (CK_ULONG i = 0; i < nslots && !key; i++) {
    if (p->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) continue;
    const char *pin = getenv("SIGN_LOOP_PIN");
    if (pin) p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id, (CK_ULONG)idlen}};
    CK_ULONG n = 0;
    p->C_FindObjectsInit(s, t, 2);
    p->C_FindObjects(s, &key, 1, &n);
    p->C_FindObjectsFinal(s);
    if (n != 1) { key = 0; p->C_CloseSession(s); }
  }
  if (!key) DIE("no private key with id %s", argv[2]);

  unsigned char data[64];
  memset(data, 0x5a, sizeof data);
  CK_ULONG dlen = 32; /* a SHA-256 hash for CKM_ECDSA; a message for hash-and-sign mechanisms */
  unsigned char sig[1024];
  CK_MECHANISM m = {mech, NULL, 0};
  double *t = calloc((size_t)count, sizeof *t);
  int warmup = count / 10 + 1;
  for (int i = -warmup; i < count; i++) {
    CK_ULONG slen = sizeof sig;
    double t0 = now_us();
    rv = p->C_SignInit(s, &m, key);
    if (rv == CKR_OK) rv = p->C_Sign(s, data, dlen, sig, &slen);
    double dt = now_us() - t0;
    if (rv != CKR_OK) DIE("sign %d: 0x%lx", i, (unsigned long)rv);
    if (i >= 0) t[i] = dt;
  }
  double sum = 0;
  for (int i = 0; i < count; i++) sum += t[i];
  qsort(t, (size_t)count, sizeof *t, cmp_double);
  printf("p10_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f n=%d\n", t[count / 10], t[count / 2],
         t[count * 9 / 10], t[count * 99 / 100], sum / count, count);
  p->C_CloseSession(s);
  p->C_Finalize(NULL);
  return 0;
}
