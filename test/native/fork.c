/*
 * fork() and libsignbridge-pkcs11.so (PKCS#11 v2.40 §6.7.1: after fork the child must call
 * C_Initialize before anything else; until then every call is CKR_CRYPTOKI_NOT_INITIALIZED).
 *
 * Built and run by test/integration/module-faults.test.ts:
 *   fork <module.so> <forks>      — a daemon serving the test token is on SIGNBRIDGE_SOCKET
 *
 * 1. The parent initializes, signs, forks. The child checks that every call answers
 *    CKR_CRYPTOKI_NOT_INITIALIZED (also on the parent's session and key handles), calls
 *    C_Initialize, lists slots and signs. The parent keeps signing while the child runs and after.
 * 2. The parent starts two threads — one signing in a loop, one hammering the state lock with
 *    attribute reads — and forks <forks> times while they run; each child must get through
 *    C_Initialize and a signature within 10 s (a lock inherited in the held state would hang it).
 * Prints "ok <name>" / "FAIL <name>: …", "sig <key> <who> <data-hex> <sig-hex>" for every
 * signature (verified by the test with node:crypto), and "stat <name> <n>".
 * Exit status: number of failures (capped at 100).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "p11.h"

static CK_FUNCTION_LIST_PTR p;
static int failures;
static const char *who = "parent";

/* One write per line (stdout is shared by the parent and its children). */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void out(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(1, buf, (size_t)n);
  (void)w;
}

#define CHECK(name, cond, ...)                                         \
  do {                                                                 \
    if (cond) {                                                        \
      out("ok %s: %s", who, name);                                     \
    } else {                                                           \
      char d_[512];                                                    \
      snprintf(d_, sizeof d_, __VA_ARGS__);                            \
      failures++;                                                      \
      out("FAIL %s: %s: %s", who, name, d_);                           \
    }                                                                  \
  } while (0)

#define EXPECT_RV(name, call, want)                                                            \
  do {                                                                                         \
    CK_RV rv_ = (call);                                                                        \
    CHECK(name, rv_ == (CK_RV)(want), "got 0x%lx, want 0x%lx", (unsigned long)rv_, (unsigned long)(want)); \
  } while (0)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void hex(char *dst, const unsigned char *b, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) sprintf(dst + 2 * i, "%02x", b[i]);
  dst[2 * n] = 0;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, const char *id) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)id, strlen(id)}};
  CK_OBJECT_HANDLE h[2];
  CK_ULONG n = 0;
  if (p->C_FindObjectsInit(s, t, 2) != CKR_OK) return CK_INVALID_HANDLE;
  if (p->C_FindObjects(s, h, 2, &n) != CKR_OK) n = 0;
  p->C_FindObjectsFinal(s);
  return n == 1 ? h[0] : CK_INVALID_HANDLE;
}

struct Signer {
  CK_SESSION_HANDLE session;
  CK_OBJECT_HANDLE rsa, ec;
};

static CK_RV open_signer(struct Signer *sg) {
  CK_SLOT_ID slots[4];
  CK_ULONG n = 4;
  CK_RV rv = p->C_GetSlotList(CK_TRUE, slots, &n);
  if (rv != CKR_OK) return rv;
  if (n < 1) return CKR_SLOT_ID_INVALID;
  rv = p->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &sg->session);
  if (rv != CKR_OK) return rv;
  sg->rsa = find_key(sg->session, "\x01");
  sg->ec = find_key(sg->session, "\x02");
  return sg->rsa && sg->ec ? CKR_OK : CKR_KEY_HANDLE_INVALID;
}

/* Signs `msg` with CKM_SHA256_RSA_PKCS (rsa) or CKM_ECDSA_SHA256 (ec); prints the sig line. */
static CK_RV sign_one(struct Signer *sg, int use_ec, const char *tag, int print) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s %s pid %d %.3f", who, tag, (int)getpid(), now_ms());
  CK_MECHANISM m = {use_ec ? CKM_ECDSA_SHA256 : CKM_SHA256_RSA_PKCS, NULL, 0};
  CK_RV rv = p->C_SignInit(sg->session, &m, use_ec ? sg->ec : sg->rsa);
  if (rv != CKR_OK) return rv;
  unsigned char sig[512];
  CK_ULONG len = sizeof sig;
  rv = p->C_Sign(sg->session, (CK_BYTE_PTR)msg, strlen(msg), sig, &len);
  if (rv != CKR_OK) return rv;
  if (print) {
    char mh[257], sh[1025];
    hex(mh, (unsigned char *)msg, strlen(msg));
    hex(sh, sig, len);
    out("sig %s %s %s %s", use_ec ? "ec-p256" : "rsa-3072", who, mh, sh);
  }
  return CKR_OK;
}

/* In a fresh child: nothing works before C_Initialize, everything after. */
static void child_checks(const struct Signer *parent, int full) {
  who = "child";
  CK_INFO info;
  CK_ULONG n = 0;
  EXPECT_RV("C_GetSlotList before C_Initialize", p->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  if (full) {
    EXPECT_RV("C_GetInfo before C_Initialize", p->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_SESSION_INFO si;
    EXPECT_RV("C_GetSessionInfo(parent's session)", p->C_GetSessionInfo(parent->session, &si),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    EXPECT_RV("C_SignInit(parent's session and key)", p->C_SignInit(parent->session, &m, parent->rsa),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    unsigned char sig[512];
    CK_ULONG len = sizeof sig;
    EXPECT_RV("C_Sign(parent's session)", p->C_Sign(parent->session, (CK_BYTE_PTR) "x", 1, sig, &len),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_BYTE pin[] = "1234";
    EXPECT_RV("C_Login(parent's session)", p->C_Login(parent->session, CKU_USER, pin, 4), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_ATTRIBUTE a = {CKA_LABEL, NULL, 0};
    EXPECT_RV("C_GetAttributeValue(parent's key)", p->C_GetAttributeValue(parent->session, parent->rsa, &a, 1),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT_RV("C_CloseSession(parent's session)", p->C_CloseSession(parent->session), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT_RV("C_Finalize before C_Initialize", p->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
  }
  CK_C_INITIALIZE_ARGS args = {0};
  args.flags = CKF_OS_LOCKING_OK;
  EXPECT_RV("C_Initialize in the child", p->C_Initialize(&args), CKR_OK);
  if (full) EXPECT_RV("C_GetInfo after C_Initialize", p->C_GetInfo(&info), CKR_OK);
  struct Signer sg;
  EXPECT_RV("slots, session and keys in the child", open_signer(&sg), CKR_OK);
  EXPECT_RV("RSA signature in the child", sign_one(&sg, 0, "child", 1), CKR_OK);
  EXPECT_RV("ECDSA signature in the child", sign_one(&sg, 1, "child", 1), CKR_OK);
  EXPECT_RV("C_Finalize in the child", p->C_Finalize(NULL), CKR_OK);
}

/* Waits for a child for at most `ms`; a child that does not finish is killed (deadlock). */
static int wait_child(pid_t pid, double ms, const char *name) {
  double end = now_ms() + ms;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      CHECK(name, 0, "waitpid: %s", strerror(errno));
      return -1;
    }
    if (now_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      CHECK(name, 0, "the child did not finish within %.0f ms (deadlock?) — killed", ms);
      return -1;
    }
    usleep(5000);
  }
  CHECK(name, WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
  return 0;
}

/* ---- phase 2: fork while other threads are inside the module ---- */
static volatile int stop_threads;
static volatile int in_sign;
static int thread_signs, thread_errors, hammer_calls;

static void *signer_thread(void *arg) {
  struct Signer *sg = arg;
  for (int i = 0; !stop_threads; i++) {
    in_sign = 1;
    CK_RV rv = sign_one(sg, i & 1, "thread", i < 4);
    in_sign = 0;
    if (rv == CKR_OK) thread_signs++;
    else thread_errors++;
  }
  return NULL;
}

static void *hammer_thread(void *arg) {
  struct Signer *sg = arg;
  while (!stop_threads) {
    char label[64];
    CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof label};
    p->C_GetAttributeValue(sg->session, sg->rsa, &a, 1);
    hammer_calls++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fork <module.so> <forks>\n");
    return 100;
  }
  int forks = atoi(argv[2]);
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 100;
  }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl || gfl(&p) != CKR_OK) return 100;

  CK_C_INITIALIZE_ARGS args = {0};
  args.flags = CKF_OS_LOCKING_OK;
  EXPECT_RV("C_Initialize", p->C_Initialize(&args), CKR_OK);
  struct Signer sg;
  EXPECT_RV("slots, session and keys", open_signer(&sg), CKR_OK);
  EXPECT_RV("sign before fork", sign_one(&sg, 0, "before", 1), CKR_OK);

  /* 1. A plain fork; the parent signs while the child works. */
  pid_t pid = fork();
  if (pid == 0) {
    child_checks(&sg, 1);
    _exit(failures > 100 ? 100 : failures);
  }
  CHECK("fork", pid > 0, "fork: %s", strerror(errno));
  int during = 0;
  for (int i = 0; i < 5; i++) during += sign_one(&sg, i & 1, "during", i < 2) == CKR_OK;
  CHECK("the parent signs while the child runs", during == 5, "%d of 5", during);
  if (pid > 0) wait_child(pid, 10000, "child (plain fork) finished cleanly");
  EXPECT_RV("the parent signs after the child", sign_one(&sg, 0, "after", 1), CKR_OK);
  CK_SESSION_INFO si;
  EXPECT_RV("the parent's session is intact", p->C_GetSessionInfo(sg.session, &si), CKR_OK);

  /* 2. Fork while a signer thread and a lock-hammering thread run. */
  struct Signer ts, hs;
  EXPECT_RV("thread sessions", open_signer(&ts), CKR_OK);
  EXPECT_RV("hammer session", open_signer(&hs), CKR_OK);
  pthread_t t1, t2;
  pthread_create(&t1, NULL, signer_thread, &ts);
  pthread_create(&t2, NULL, hammer_thread, &hs);
  while (thread_signs < 2 && !thread_errors) usleep(1000);
  int ok_children = 0, mid_sign = 0;
  for (int i = 0; i < forks; i++) {
    usleep(3000 + (i * 1700) % 9000); /* land at different points of the sign loop */
    int was_in_sign = in_sign;
    pid_t c = fork();
    if (c == 0) {
      child_checks(&sg, 0);
      _exit(failures > 100 ? 100 : failures);
    }
    if (c < 0) {
      CHECK("fork during a sign", 0, "fork: %s", strerror(errno));
      continue;
    }
    mid_sign += was_in_sign;
    if (wait_child(c, 10000, "child forked during a sign finished cleanly") != 0) break; /* stay bounded */
    ok_children++;
  }
  stop_threads = 1;
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK("every child forked during a sign finished", ok_children == forks, "%d of %d", ok_children, forks);
  CHECK("the signer thread never failed", thread_errors == 0 && thread_signs > 0, "%d ok, %d errors", thread_signs,
        thread_errors);
  out("stat forks-mid-sign %d", mid_sign);
  out("stat thread-signatures %d", thread_signs);
  out("stat hammer-calls %d", hammer_calls);
  EXPECT_RV("the parent signs after all forks", sign_one(&sg, 1, "end", 1), CKR_OK);
  EXPECT_RV("C_Finalize", p->C_Finalize(NULL), CKR_OK);
  return failures > 100 ? 100 : failures;
}
