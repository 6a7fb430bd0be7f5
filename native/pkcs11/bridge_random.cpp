// C_GenerateRandom and C_SeedRandom (v2.40 §5.15). The bytes come from the kernel CSPRNG
// through getrandom(2) (glibc ≥ 2.25; the baseline is 2.28, which has no arc4random), on
// Windows from the system RNG (BCryptGenRandom): the daemon is not involved, so random numbers
// work without a round trip.
#ifdef _WIN32
#include "os.h"
#include <bcrypt.h>
#else
#include <sys/random.h>
#endif

#include <cerrno>
#include <cstring>

#include "bridge.h"
#include "bridge_common.h"

namespace sb::bridge {

namespace {

// getrandom(2) may return fewer bytes than asked (above 256 bytes, or on a signal) and may
// fail with EINTR: loop until done. It blocks only before the kernel pool is first seeded.
Status fill_random(CK_BYTE_PTR out, CK_ULONG len) {
#ifdef _WIN32
  // CK_ULONG is 32 bits on Windows, as is BCryptGenRandom's length: one call.
  NTSTATUS st = BCryptGenRandom(nullptr, out, len, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
  if (st != 0) return Status(CKR_FUNCTION_FAILED, "BCryptGenRandom failed (NTSTATUS " + std::to_string(long(st)) + ")");
  return Status::Ok();
#else
  CK_ULONG done = 0;
  while (done < len) {
    ssize_t n = getrandom(out + done, len - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(CKR_FUNCTION_FAILED, std::string("getrandom(2) failed: ") + strerror(errno));
    }
    done += static_cast<CK_ULONG>(n);
  }
  return Status::Ok();
#endif
}

Status check_session(CK_SESSION_HANDLE h) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  if (!st->sessions.get(h)) return Status(CKR_SESSION_HANDLE_INVALID);
  return Status::Ok();
}

}  // namespace

Status generate_random(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  RETURN_IF_ERROR(check_session(h));
  return fill_random(out, len);  // outside the lock: may block briefly at early boot
}

// The kernel pool seeds itself; an application's seed would be ignored, which §5.15 says to
// report as CKR_RANDOM_SEED_NOT_SUPPORTED rather than pretend.
Status seed_random(CK_SESSION_HANDLE h) {
  RETURN_IF_ERROR(check_session(h));
  return Status(CKR_RANDOM_SEED_NOT_SUPPORTED, "the module draws from the kernel CSPRNG, which seeds itself; "
                                               "the seed is not needed");
}

}  // namespace sb::bridge
