/* glibc 2.28 baseline for the shipped binaries (README "Supported platforms").
 *
 * We build on Debian 12 (glibc 2.36) and link libstdc++ statically, so the module and the addon
 * load into any host whatever its libstdc++. What that archive and glibc 2.36's headers reference,
 * glibc versions above 2.28 (measured with objdump -T; test/e2e/glibc-baseline.test.ts keeps it so):
 *   arc4random              2.36  libstdc++ random.o (std::random_device), never called by us
 *   pthread_once            2.34  our fork.cpp (libpthread merged into libc in 2.34)
 *   __pthread_key_create    2.34  libstdc++'s thread-local support
 *   lstat (stat, fstat)     2.33  2.33 turned the stat family into real symbols; node-gyp builds
 *                                 with _FILE_OFFSET_BITS=64, which names them lstat64 etc.
 *   __libc_single_threaded  2.32  libstdc++'s refcounts (shared_ptr, COW strings)
 * The linker redirects each reference to __wrap_<name> (glibc_compat.opts: --wrap=<name>), and
 * the wrappers below call the old version, pinned with .symver, that both old and new glibc
 * export: the architecture's base version (x86_64 GLIBC_2.2.5, aarch64 GLIBC_2.17). Before 2.34
 * pthread_once and __pthread_key_create live in libpthread.so.0, so the binaries also name that
 * library (an empty stub on 2.34+). Binutils manual, "VERSION": .symver name, name2@nodename.
 * libgcc stays shared (libgcc_s.so.1, on every glibc system: glibc itself loads it for
 * pthread_cancel): the static unwinder of gcc 12 finds frames only through _dl_find_object (2.35)
 * and has no fallback, so a thrown exception would abort on older glibc.
 * Cheaper than a Debian 11 sysroot (glibc 2.31: still above 2.28) and needs no download. */
/* Elsewhere (Windows, macOS, musl, other CPUs) this file is empty and the build adds no --wrap
 * (CMakeLists.txt, binding.gyp): those builds are from source, for the machine they run on. */
#if defined(__linux__)
#include <features.h> /* defines __GLIBC__ */
#endif
#if defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>

#if defined(__x86_64__)
#define SB_GLIBC_BASE "GLIBC_2.2.5"
#define SB_STAT_VER 1 /* _STAT_VER_LINUX of x86_64's <bits/stat.h> before 2.33 */
#elif defined(__aarch64__)
#define SB_GLIBC_BASE "GLIBC_2.17"
#define SB_STAT_VER 0 /* _STAT_VER_KERNEL: the generic 64-bit struct stat */
#endif

#define SB_HIDDEN __attribute__((visibility("hidden")))
#define SB_PIN(local, name) __asm__(".symver " #local ", " #name "@" SB_GLIBC_BASE)

int sb_old_pthread_once(pthread_once_t*, void (*)(void));
int sb_old_pthread_key_create(pthread_key_t*, void (*)(void*));
int sb_old_xstat(int, const char*, struct stat*);
int sb_old_lxstat(int, const char*, struct stat*);
int sb_old_fxstat(int, int, struct stat*);
SB_PIN(sb_old_pthread_once, pthread_once);
SB_PIN(sb_old_pthread_key_create, __pthread_key_create);
SB_PIN(sb_old_xstat, __xstat);
SB_PIN(sb_old_lxstat, __lxstat);
SB_PIN(sb_old_fxstat, __fxstat);

SB_HIDDEN int __wrap_pthread_once(pthread_once_t* once, void (*fn)(void)) { return sb_old_pthread_once(once, fn); }

SB_HIDDEN int __wrap___pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) {
  return sb_old_pthread_key_create(key, dtor);
}

SB_HIDDEN int __wrap_stat(const char* path, struct stat* st) { return sb_old_xstat(SB_STAT_VER, path, st); }
SB_HIDDEN int __wrap_lstat(const char* path, struct stat* st) { return sb_old_lxstat(SB_STAT_VER, path, st); }
SB_HIDDEN int __wrap_fstat(int fd, struct stat* st) { return sb_old_fxstat(SB_STAT_VER, fd, st); }
/* on 64-bit targets struct stat64 is struct stat, and __xstat64 is __xstat's alias */
SB_HIDDEN int __wrap_stat64(const char* path, struct stat* st) { return sb_old_xstat(SB_STAT_VER, path, st); }
SB_HIDDEN int __wrap_lstat64(const char* path, struct stat* st) { return sb_old_lxstat(SB_STAT_VER, path, st); }
SB_HIDDEN int __wrap_fstat64(int fd, struct stat* st) { return sb_old_fxstat(SB_STAT_VER, fd, st); }

/* 0 = "maybe several threads": libstdc++ then always uses atomic refcounts, which is what it did
 * before glibc 2.32 and is correct in any host. */
SB_HIDDEN char __wrap___libc_single_threaded = 0;

/* Only std::random_device("arc4random") would call it; answer from the same kernel CSPRNG that
 * C_GenerateRandom uses (getrandom(2), glibc 2.25). */
SB_HIDDEN uint32_t __wrap_arc4random(void) {
  uint32_t v = 0;
  unsigned char* p = (unsigned char*)&v;
  size_t done = 0;
  while (done < sizeof v) {
    ssize_t n = getrandom(p + done, sizeof v - done, 0);
    if (n > 0) done += (size_t)n;
    else if (n < 0 && errno != EINTR) break; /* no kernel CSPRNG: arc4random has no error path either */
  }
  return v;
}

#endif /* Linux glibc x86_64 / aarch64 */
