/*
 * What the straight-line C harnesses (arch_sign.c, sign_loop.c, misuse.c) share: loading the
 * module by path, and OK() for a call that must return CKR_OK (print where it failed, exit 1).
 * Include after p11.h.
 */
#ifndef SIGNBRIDGE_TEST_MODULE_H
#define SIGNBRIDGE_TEST_MODULE_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define OK(call)                                                                   \
  do {                                                                             \
    CK_RV rv_ = (call);                                                            \
    if (rv_ != CKR_OK) {                                                           \
      printf("FAIL %s: 0x%lx (line %d)\n", #call, (unsigned long)rv_, __LINE__);  \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

/* dlopen `path` and fetch its function list into *out; prints "FAIL …" and returns NULL on failure */
static CK_C_GetFunctionList open_module(const char *path, CK_FUNCTION_LIST_PTR *out) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("FAIL dlopen: %s\n", dlerror());
    return NULL;
  }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl || gfl(out) != CKR_OK) {
    printf("FAIL C_GetFunctionList\n");
    return NULL;
  }
  return gfl;
}

#endif
