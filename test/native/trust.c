/*
 * Who may answer (README "Security model"): loads the module given as argv[1], initializes it and
 * asks for the slot list, printing "init <rv>" and "slots <rv> <count>" in hex. The vitest side
 * (test/e2e/module-trust.test.ts) runs it as another user against sockets it does not trust and
 * checks the codes, the one stderr line and that the listener received nothing.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "p11.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: trust <module.so>\n");
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR f = NULL;
  if (!get || get(&f) != CKR_OK) return 2;
  CK_RV rv = f->C_Initialize(NULL);
  printf("init 0x%lx\n", (unsigned long)rv);
  CK_ULONG n = 0;
  rv = f->C_GetSlotList(CK_FALSE, NULL, &n);
  printf("slots 0x%lx %lu\n", (unsigned long)rv, (unsigned long)n);
  /* Twice: the stderr notice must still appear only once per process. */
  rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
  printf("slots 0x%lx %lu\n", (unsigned long)rv, (unsigned long)n);
  f->C_Finalize(NULL);
  /* No dlclose: the module's static libstdc++ keeps its exception pool for the life of the
     process, which LeakSanitizer reports as a leak once the module is unloaded. */
  return 0;
}
