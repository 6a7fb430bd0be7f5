/*
 * How the C harnesses report: "ok <name>" or "FAIL <name>: <detail>" per check, counted; the
 * vitest side reads these lines and fails on any FAIL. (fork.c reports with write(2) instead: it
 * prints from a fork child, where stdio is not safe.)
 */
#ifndef SIGNBRIDGE_TEST_CHECK_H
#define SIGNBRIDGE_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failures, cases;

__attribute__((format(printf, 3, 4))) static void report(const char *name, int ok, const char *fmt, ...) {
  cases++;
  if (ok) {
    printf("ok %s\n", name);
    return;
  }
  failures++;
  printf("FAIL %s: ", name);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

#define CHECK(name, cond, ...) report((name), (cond) ? 1 : 0, __VA_ARGS__)

#define EXPECT_RV(name, call, want)                                                          \
  do {                                                                                       \
    CK_RV rv_ = (call);                                                                      \
    CHECK(name, rv_ == (CK_RV)(want), "got 0x%lx, want 0x%lx", (unsigned long)rv_,           \
          (unsigned long)(want));                                                            \
  } while (0)

#endif
