/*
 * Many threads signing at once through the module's raw C ABI (roadmap "Hardening: Concurrency").
 *
 *   concurrency <module.so> [--threads N] [--count N | --seconds S] [--locking os|mutex]
 *               [--sessions own|shared] [--keys label,label,…] [--seed N] [--max-errors N] [--readers N] [--quiet]
 *
 * A daemon must answer on SIGNBRIDGE_SOCKET. The main thread finds every private key on every
 * slot (or those named by --keys); then N threads (default 4), released together by a barrier,
 * each sign --count times (default 50) or for --seconds, with mixed keys and mechanisms:
 * key = keys[(i + thread) % nkeys], mechanism / raw hash / single- vs multi-part from a seeded
 * PRNG. Raw mechanisms (CKM_RSA_PKCS as a DigestInfo, CKM_RSA_PKCS_PSS, CKM_ECDSA) sign a digest
 * made with C_Digest on the thread's session; the test never trusts it — it verifies the
 * signature over the *message* with node:crypto, which hashes on its own.
 *
 *   --locking os     C_Initialize with CKF_OS_LOCKING_OK (v2.40 §5.4 case 2)
 *   --locking mutex  flags 0 and four callbacks around real pthread error-checking mutexes
 *                    (case 3: the library must use them); the calls are counted and misuse
 *                    (unlock of a mutex the thread does not hold, relock) is reported
 *   --sessions own    each thread reads attributes / finds objects on its own sessions
 *   --sessions shared all threads read (C_GetAttributeValue) and search (C_FindObjects*) on ONE
 *                     session per slot opened by the main thread; a search that meets another
 *                     thread's active search gets CKR_OPERATION_ACTIVE and retries (the session's
 *                     operation state is shared, v2.40 §5.6) — counted as collisions
 *   Signing always uses the thread's own session (one active operation per session).
 *   --readers N      N more threads that only read and search (on the shared sessions with
 *                    --sessions shared, else on their own) until the signing threads are done
 *   --max-errors N   all threads stop once the process has seen N errors (default 5), so a hung
 *                    or dead daemon fails a test in bounded time (each call waits at most
 *                    SIGNBRIDGE_TIMEOUT_MS)
 *
 * Output, one line per event (each written with one fwrite, so lines never interleave):
 *   sig <thread> <i> <label> <mech-hex> <hash|-> <single|multi> <latency-us> <msg-hex> <sig-hex>
 *   lat <latency-us>                       (instead of sig lines with --quiet)
 *   err <thread> <i> <what> rv=0x<rv>      (any unexpected return value)
 *   summary key=value …                    (last line)
 * Exit status: the number of errors, capped at 100 (0 = all good).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p11.h"


#define MAX_KEYS 32
#define MAX_SLOTS 8
#define MAX_THREADS 64

static CK_FUNCTION_LIST_PTR p;

/* ---- options ------------------------------------------------------------------------------ */
static int opt_threads = 4, opt_count = 50, opt_quiet = 0, opt_shared = 0, opt_mutex = 0;
static double opt_seconds = 0;
static unsigned long opt_seed = 1;
static long opt_max_errors = 5;
static long g_errors; /* all threads, for --max-errors */
static int opt_readers = 0;
static int signers_done;
static const char *opt_keys = NULL;

/* ---- application mutex callbacks (v2.40 §5.4 case 3) -------------------------------------- */
static long m_create, m_destroy, m_lock, m_unlock, m_misuse;

static CK_RV cb_create(CK_VOID_PTR_PTR pp) {
  if (!pp) return CKR_ARGUMENTS_BAD;
  pthread_mutex_t *m = malloc(sizeof *m);
  pthread_mutexattr_t a;
  if (!m) return CKR_HOST_MEMORY;
  pthread_mutexattr_init(&a);
  /* error-checking: a relock or a foreign unlock is reported instead of deadlocking silently */
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  *pp = m;
  __atomic_add_fetch(&m_create, 1, __ATOMIC_RELAXED);
  return CKR_OK;
}
static CK_RV cb_destroy(CK_VOID_PTR m) {
  if (!m) return CKR_MUTEX_BAD;
  if (pthread_mutex_destroy(m) != 0) __atomic_add_fetch(&m_misuse, 1, __ATOMIC_RELAXED);
  free(m);
  __atomic_add_fetch(&m_destroy, 1, __ATOMIC_RELAXED);
  return CKR_OK;
}
static CK_RV cb_lock(CK_VOID_PTR m) {
  if (!m) return CKR_MUTEX_BAD;
  if (pthread_mutex_lock(m) != 0) {
    __atomic_add_fetch(&m_misuse, 1, __ATOMIC_RELAXED);
    return CKR_GENERAL_ERROR;
  }
  __atomic_add_fetch(&m_lock, 1, __ATOMIC_RELAXED);
  return CKR_OK;
}
static CK_RV cb_unlock(CK_VOID_PTR m) {
  if (!m) return CKR_MUTEX_BAD;
  if (pthread_mutex_unlock(m) != 0) {
    __atomic_add_fetch(&m_misuse, 1, __ATOMIC_RELAXED);
    return CKR_MUTEX_NOT_LOCKED;
  }
  __atomic_add_fetch(&m_unlock, 1, __ATOMIC_RELAXED);
  return CKR_OK;
}

/* ---- keys and mechanisms ------------------------------------------------------------------ */
typedef struct {
  int slot; /* index into slots[] */
  CK_OBJECT_HANDLE handle;
  char label[65];
  unsigned char id[255];
  CK_ULONG id_len;
  CK_KEY_TYPE type;
} sb_key;

enum input { DIGEST_INFO, HASH, MESSAGE };
typedef struct {
  CK_MECHANISM_TYPE mech;
  CK_MECHANISM_TYPE own_hash; /* hash-and-sign: the mechanism's hash; 0: raw (any of HASHES) */
  int pss;
  enum input input;
  int multipart; /* C_SignUpdate/C_SignFinal allowed: where the module hashes or buffers */
} mech_desc;

static const mech_desc RSA_MECHS[] = {
    {CKM_RSA_PKCS, 0, 0, DIGEST_INFO, 0},
    {CKM_SHA256_RSA_PKCS, CKM_SHA256, 0, MESSAGE, 1},
    {CKM_SHA384_RSA_PKCS, CKM_SHA384, 0, MESSAGE, 1},
    {CKM_SHA512_RSA_PKCS, CKM_SHA512, 0, MESSAGE, 1},
    {CKM_RSA_PKCS_PSS, 0, 1, HASH, 0},
    {CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, 1, MESSAGE, 1},
    {CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, 1, MESSAGE, 1},
    {CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, 1, MESSAGE, 1},
};
static const mech_desc EC_MECHS[] = {
    {CKM_ECDSA, 0, 0, HASH, 0},
    {CKM_ECDSA_SHA256, CKM_SHA256, 0, MESSAGE, 1},
    {CKM_ECDSA_SHA384, CKM_SHA384, 0, MESSAGE, 1},
    {CKM_ECDSA_SHA512, CKM_SHA512, 0, MESSAGE, 1},
};
static const mech_desc ED_MECHS[] = {{CKM_EDDSA, 0, 0, MESSAGE, 1}};

static const CK_MECHANISM_TYPE HASHES[] = {CKM_SHA256, CKM_SHA384, CKM_SHA512};

static const char *hash_name(CK_MECHANISM_TYPE h) {
  return h == CKM_SHA256 ? "sha256" : h == CKM_SHA384 ? "sha384" : h == CKM_SHA512 ? "sha512" : "-";
}
static CK_ULONG hash_len(CK_MECHANISM_TYPE h) { return h == CKM_SHA512 ? 64 : h == CKM_SHA384 ? 48 : 32; }
static CK_RSA_PKCS_MGF_TYPE mgf_of(CK_MECHANISM_TYPE h) {
  return h == CKM_SHA512 ? CKG_MGF1_SHA512 : h == CKM_SHA384 ? CKG_MGF1_SHA384 : CKG_MGF1_SHA256;
}
/* DigestInfo prefixes, RFC 8017 §9.2 note 1 */
static const unsigned char *digest_info_prefix(CK_MECHANISM_TYPE h) {
  return (const unsigned char *)(h == CKM_SHA512   ? "\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40"
                                 : h == CKM_SHA384 ? "\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30"
                                                   : "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20");
}

static void mechs_of(CK_KEY_TYPE t, const mech_desc **m, int *n) {
  if (t == CKK_RSA) { *m = RSA_MECHS; *n = sizeof RSA_MECHS / sizeof *RSA_MECHS; }
  else if (t == CKK_EC) { *m = EC_MECHS; *n = sizeof EC_MECHS / sizeof *EC_MECHS; }
  else if (t == CKK_EC_EDWARDS) { *m = ED_MECHS; *n = 1; }
  else { *m = NULL; *n = 0; }
}

static CK_SLOT_ID slots[MAX_SLOTS];
static CK_SESSION_HANDLE shared_sess[MAX_SLOTS];
static int nslots;
static sb_key keys[MAX_KEYS];
static int nkeys;
static pthread_barrier_t start_barrier;

/* ---- helpers ------------------------------------------------------------------------------ */
static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}
static double wall_us(void) { /* comparable across processes (the bench takes min start / max end) */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}
static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}
static char *hexcat(char *out, const unsigned char *b, CK_ULONG n) {
  static const char digits[] = "0123456789abcdef";
  for (CK_ULONG i = 0; i < n; i++) {
    *out++ = digits[b[i] >> 4];
    *out++ = digits[b[i] & 15];
  }
  return out;
}
static void emit(const char *line, size_t n) { fwrite(line, 1, n, stdout); }

typedef struct {
  int t;
  int reader;
  CK_SESSION_HANDLE sess[MAX_SLOTS];
  double *lat;
  size_t nlat, cap;
  long errors, collisions, reads, finds;
} worker;

static void report_err(worker *w, long i, const char *what, CK_RV rv) {
  char line[256];
  int n = snprintf(line, sizeof line, "err %d %ld %s rv=0x%lx\n", w->t, i, what, (unsigned long)rv);
  emit(line, (size_t)n);
  w->errors++;
  __atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
}

/* Find the private key with this CKA_ID on `s`; in shared mode a concurrent search on the same
 * session is CKR_OPERATION_ACTIVE, which we wait out (bounded: 10 s). */
static CK_RV find_key(worker *w, CK_SESSION_HANDLE s, const sb_key *k, CK_OBJECT_HANDLE *found, CK_ULONG *nfound) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)k->id, k->id_len}};
  double give_up = now_us() + 10e6;
  CK_RV rv;
  while ((rv = p->C_FindObjectsInit(s, t, 2)) == CKR_OPERATION_ACTIVE && opt_shared && now_us() < give_up) {
    w->collisions++;
    sched_yield();
  }
  if (rv != CKR_OK) return rv;
  rv = p->C_FindObjects(s, found, 4, nfound);
  CK_RV rv2 = p->C_FindObjectsFinal(s);
  w->finds++;
  return rv != CKR_OK ? rv : rv2;
}

/* Reads that run concurrently with other threads' signs (and, shared, on one session). */
static void check_reads(worker *w, long i, const sb_key *k) {
  CK_SESSION_HANDLE s = opt_shared ? shared_sess[k->slot] : w->sess[k->slot];
  char label[65] = {0};
  unsigned char id[255];
  CK_ATTRIBUTE t[] = {{CKA_LABEL, label, sizeof label - 1}, {CKA_ID, id, sizeof id}};
  CK_RV rv = p->C_GetAttributeValue(s, k->handle, t, 2);
  w->reads++;
  if (rv != CKR_OK) { report_err(w, i, "C_GetAttributeValue", rv); return; }
  if (strcmp(label, k->label) != 0 || t[1].ulValueLen != k->id_len || memcmp(id, k->id, k->id_len) != 0)
    { report_err(w, i, "C_GetAttributeValue(read-back-differs)", 0); return; }
  if (!opt_shared && i % 4 != 0) return; /* shared: search every time, to meet other threads' searches */
  CK_OBJECT_HANDLE found[4];
  CK_ULONG n = 0;
  rv = find_key(w, s, k, found, &n);
  if (rv != CKR_OK) { report_err(w, i, "C_FindObjects", rv); return; }
  if (n != 1 || found[0] != k->handle) report_err(w, i, "C_FindObjects(wrong-result)", n);
}

static void sign_once(worker *w, long i, uint64_t *rng) {
  const sb_key *k = &keys[(i + w->t) % nkeys];
  const mech_desc *ms;
  int nm;
  mechs_of(k->type, &ms, &nm);
  const mech_desc *d = &ms[xorshift(rng) % (uint64_t)nm];
  CK_MECHANISM_TYPE h = d->own_hash ? d->own_hash : d->mech == CKM_EDDSA ? 0 : HASHES[xorshift(rng) % 3];
  int multi = d->multipart && (xorshift(rng) & 1);
  CK_SESSION_HANDLE s = w->sess[k->slot];

  unsigned char msg[128], in[19 + 64], sig[1024];
  CK_ULONG msg_len = 16 + xorshift(rng) % 100, in_len = 0, sig_len = sizeof sig;
  for (CK_ULONG j = 0; j < msg_len; j++) msg[j] = (unsigned char)xorshift(rng);
  const unsigned char *input = msg;
  CK_RV rv;

  check_reads(w, i, k);

  if (d->input != MESSAGE) { /* raw mechanism: the module digests, node:crypto re-hashes to verify */
    CK_MECHANISM dm = {h, NULL, 0};
    unsigned char *dst = d->input == DIGEST_INFO ? in + 19 : in;
    CK_ULONG dlen = 64;
    rv = p->C_DigestInit(s, &dm);
    if (rv == CKR_OK) rv = p->C_Digest(s, msg, msg_len, dst, &dlen);
    if (rv != CKR_OK || dlen != hash_len(h)) { report_err(w, i, "C_Digest", rv); return; }
    if (d->input == DIGEST_INFO) memcpy(in, digest_info_prefix(h), 19);
    in_len = dlen + (d->input == DIGEST_INFO ? 19 : 0);
    input = in;
  }
  CK_MECHANISM_TYPE ph = d->own_hash ? d->own_hash : h;
  CK_RSA_PKCS_PSS_PARAMS pss = {ph, mgf_of(ph), hash_len(ph)};
  CK_MECHANISM m = {d->mech, d->pss ? &pss : NULL, d->pss ? sizeof pss : 0};

  double t0 = now_us();
  rv = p->C_SignInit(s, &m, k->handle);
  if (rv != CKR_OK) { report_err(w, i, "C_SignInit", rv); return; }
  if (multi) {
    CK_ULONG cut = msg_len / 3;
    rv = p->C_SignUpdate(s, msg, cut);
    if (rv == CKR_OK) rv = p->C_SignUpdate(s, msg + cut, msg_len - cut);
    if (rv == CKR_OK) rv = p->C_SignFinal(s, sig, &sig_len);
  } else {
    rv = p->C_Sign(s, (CK_BYTE_PTR)input, d->input == MESSAGE ? msg_len : in_len, sig, &sig_len);
  }
  double dt = now_us() - t0;
  if (rv != CKR_OK) {
    char what[96];
    snprintf(what, sizeof what, "%s(%s,0x%lx)", multi ? "C_SignFinal" : "C_Sign", k->label, (unsigned long)d->mech);
    { report_err(w, i, what, rv); return; }
  }
  if (w->nlat == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 256;
    w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
  }
  w->lat[w->nlat++] = dt;

  char line[4096];
  int n;
  if (opt_quiet) {
    n = snprintf(line, sizeof line, "lat %.0f\n", dt);
  } else {
    n = snprintf(line, sizeof line, "sig %d %ld %s %lx %s %s %.0f ", w->t, i, k->label, (unsigned long)d->mech,
                 hash_name(ph), multi ? "multi" : "single", dt);
    char *e = hexcat(line + n, msg, msg_len);
    *e++ = ' ';
    e = hexcat(e, sig, sig_len);
    *e++ = '\n';
    n = (int)(e - line);
  }
  emit(line, (size_t)n);
}

static void *run_worker(void *arg) {
  worker *w = arg;
  uint64_t rng = (opt_seed * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(w->t + 1) << 32) ^ 0x5bd1e995ULL;
  if (!rng) rng = 1;
  for (int s = 0; s < nslots; s++) {
    CK_RV rv = p->C_OpenSession(slots[s], CKF_SERIAL_SESSION, NULL, NULL, &w->sess[s]);
    if (rv != CKR_OK) report_err(w, -1, "C_OpenSession", rv);
  }
  pthread_barrier_wait(&start_barrier);
  if (w->errors) return NULL;
  if (w->reader) {
    struct timespec pause = {0, 100 * 1000}; /* leave CPU to the signers; searches still overlap */
    for (long i = 0; !__atomic_load_n(&signers_done, __ATOMIC_ACQUIRE); i++) {
      if (__atomic_load_n(&g_errors, __ATOMIC_RELAXED) >= opt_max_errors) break;
      check_reads(w, i, &keys[xorshift(&rng) % (uint64_t)nkeys]);
      nanosleep(&pause, NULL);
    }
  } else {
    double end = opt_seconds > 0 ? now_us() + opt_seconds * 1e6 : 0;
    for (long i = 0; opt_seconds > 0 ? now_us() < end : i < opt_count; i++) {
      if (__atomic_load_n(&g_errors, __ATOMIC_RELAXED) >= opt_max_errors) break;
      sign_once(w, i, &rng);
    }
  }
  for (int s = 0; s < nslots; s++) {
    CK_RV rv = p->C_CloseSession(w->sess[s]);
    if (rv != CKR_OK) report_err(w, -1, "C_CloseSession", rv);
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int wanted(const char *label) {
  if (!opt_keys) return 1;
  size_t n = strlen(label);
  for (const char *s = opt_keys; *s;) {
    const char *e = strchr(s, ',');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == n && strncmp(s, label, n) == 0) return 1;
    if (!e) break;
    s = e + 1;
  }
  return 0;
}

#define DIE(...) do { fprintf(stderr, "concurrency: " __VA_ARGS__); fprintf(stderr, "\n"); return 100; } while (0)

int main(int argc, char **argv) {
  if (argc < 2) DIE("usage: %s <module.so> [--threads N] [--count N | --seconds S] [--locking os|mutex] [--sessions own|shared] [--keys a,b] [--seed N] [--max-errors N] [--readers N] [--quiet]", argv[0]);
  for (int a = 2; a < argc; a++) {
    const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
    if (!strcmp(o, "--quiet")) { opt_quiet = 1; continue; }
    if (!v) DIE("%s needs a value", o);
    a++;
    if (!strcmp(o, "--threads")) opt_threads = atoi(v);
    else if (!strcmp(o, "--count")) opt_count = atoi(v);
    else if (!strcmp(o, "--seconds")) opt_seconds = atof(v);
    else if (!strcmp(o, "--seed")) opt_seed = strtoul(v, NULL, 10);
    else if (!strcmp(o, "--max-errors")) opt_max_errors = atol(v);
    else if (!strcmp(o, "--readers")) opt_readers = atoi(v);
    else if (!strcmp(o, "--keys")) opt_keys = v;
    else if (!strcmp(o, "--locking") && (!strcmp(v, "os") || !strcmp(v, "mutex"))) opt_mutex = !strcmp(v, "mutex");
    else if (!strcmp(o, "--sessions") && (!strcmp(v, "own") || !strcmp(v, "shared"))) opt_shared = !strcmp(v, "shared");
    else DIE("unknown option or value: %s %s", o, v);
  }
  if (opt_threads < 1 || opt_readers < 0 || opt_threads + opt_readers > MAX_THREADS) DIE("--threads (1..) plus --readers must be at most %d", MAX_THREADS);

  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) DIE("dlopen %s: %s", argv[1], dlerror());
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl || gfl(&p) != CKR_OK) DIE("C_GetFunctionList failed");

  CK_C_INITIALIZE_ARGS args;
  memset(&args, 0, sizeof args);
  if (opt_mutex) {
    args.CreateMutex = cb_create;
    args.DestroyMutex = cb_destroy;
    args.LockMutex = cb_lock;
    args.UnlockMutex = cb_unlock;
  } else {
    args.flags = CKF_OS_LOCKING_OK;
  }
  CK_RV rv = p->C_Initialize(&args);
  if (rv != CKR_OK) DIE("C_Initialize: 0x%lx", (unsigned long)rv);

  CK_ULONG n = MAX_SLOTS;
  rv = p->C_GetSlotList(CK_TRUE, slots, &n);
  if (rv != CKR_OK || n == 0) DIE("C_GetSlotList: 0x%lx, %lu slots (is the daemon running on SIGNBRIDGE_SOCKET?)", (unsigned long)rv, n);
  nslots = (int)n;
  for (int s = 0; s < nslots; s++) {
    rv = p->C_OpenSession(slots[s], CKF_SERIAL_SESSION, NULL, NULL, &shared_sess[s]);
    if (rv != CKR_OK) DIE("C_OpenSession: 0x%lx", (unsigned long)rv);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_OBJECT_HANDLE h[MAX_KEYS];
    CK_ULONG found = 0;
    if (p->C_FindObjectsInit(shared_sess[s], t, 1) != CKR_OK || p->C_FindObjects(shared_sess[s], h, MAX_KEYS, &found) != CKR_OK ||
        p->C_FindObjectsFinal(shared_sess[s]) != CKR_OK)
      DIE("listing the private keys of slot %lu failed", (unsigned long)slots[s]);
    for (CK_ULONG i = 0; i < found && nkeys < MAX_KEYS; i++) {
      sb_key *k = &keys[nkeys];
      memset(k, 0, sizeof *k);
      CK_ATTRIBUTE a[] = {{CKA_LABEL, k->label, sizeof k->label - 1}, {CKA_ID, k->id, sizeof k->id}, {CKA_KEY_TYPE, &k->type, sizeof k->type}};
      if (p->C_GetAttributeValue(shared_sess[s], h[i], a, 3) != CKR_OK) DIE("reading a key's label, id and type failed");
      k->id_len = a[1].ulValueLen;
      k->slot = s;
      k->handle = h[i];
      const mech_desc *m;
      int nm;
      mechs_of(k->type, &m, &nm);
      if (nm > 0 && wanted(k->label)) nkeys++;
    }
  }
  if (nkeys == 0) DIE("no private key to sign with%s%s", opt_keys ? " among --keys " : "", opt_keys ? opt_keys : "");

  int nthreads = opt_threads + opt_readers;
  worker *ws = calloc((size_t)nthreads, sizeof *ws);
  pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
  pthread_barrier_init(&start_barrier, NULL, (unsigned)nthreads + 1);
  for (int t = 0; t < nthreads; t++) {
    ws[t].t = t;
    ws[t].reader = t >= opt_threads;
    if (pthread_create(&tid[t], NULL, run_worker, &ws[t]) != 0) DIE("pthread_create failed");
  }
  pthread_barrier_wait(&start_barrier);
  double t0 = now_us(), w0 = wall_us();
  for (int t = 0; t < opt_threads; t++) pthread_join(tid[t], NULL);
  double elapsed = now_us() - t0, w1 = wall_us();
  __atomic_store_n(&signers_done, 1, __ATOMIC_RELEASE);
  for (int t = opt_threads; t < nthreads; t++) pthread_join(tid[t], NULL);

  long errors = 0, collisions = 0, reads = 0, finds = 0;
  size_t total = 0;
  for (int t = 0; t < nthreads; t++) {
    errors += ws[t].errors;
    collisions += ws[t].collisions;
    reads += ws[t].reads;
    finds += ws[t].finds;
    total += ws[t].nlat;
  }
  double *all = malloc((total ? total : 1) * sizeof *all);
  size_t at = 0;
  for (int t = 0; t < nthreads; t++) {
    memcpy(all + at, ws[t].lat, ws[t].nlat * sizeof *all);
    at += ws[t].nlat;
    free(ws[t].lat);
  }
  qsort(all, total, sizeof *all, cmp);
  for (int s = 0; s < nslots; s++) {
    rv = p->C_CloseSession(shared_sess[s]);
    if (rv != CKR_OK) { fprintf(stdout, "err main -1 C_CloseSession rv=0x%lx\n", (unsigned long)rv); errors++; }
  }
  rv = p->C_Finalize(NULL);
  if (rv != CKR_OK) { fprintf(stdout, "err main -1 C_Finalize rv=0x%lx\n", (unsigned long)rv); errors++; }
  printf("summary pid=%ld locking=%s sessions=%s threads=%d readers=%d keys=%d signatures=%zu errors=%ld reads=%ld finds=%ld "
         "collisions=%ld elapsed_ms=%.1f start_us=%.0f end_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f "
         "mutex_create=%ld mutex_destroy=%ld mutex_lock=%ld mutex_unlock=%ld mutex_misuse=%ld\n",
         (long)getpid(), opt_mutex ? "mutex" : "os", opt_shared ? "shared" : "own", opt_threads, opt_readers, nkeys, total, errors, reads,
         finds, collisions, elapsed / 1e3, w0, w1, total ? all[total / 2] : 0, total ? all[total * 99 / 100] : 0,
         total ? all[total - 1] : 0, m_create, m_destroy, m_lock, m_unlock, m_misuse);
  fflush(stdout);
  free(all);
  free(ws);
  free(tid);
  return errors > 100 ? 100 : (int)errors;
}
