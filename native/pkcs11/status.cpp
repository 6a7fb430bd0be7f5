#include "status.h"

#include "p11_v3.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sb {

// Names from the v2.40 header, generated (scripts/gen-ckr-names.mjs) so every code the module
// or the daemon can return has one; other values newer than the header print as CKR_?.
const char* rv_name(CK_RV rv) {
  switch (rv) {
#define SB_CKR(n) \
  case n:         \
    return #n;
#include "ckr_names.inc"
#undef SB_CKR
    // PKCS#11 3.0 codes the module returns, defined in p11_v3.h (C_SessionCancel).
    case CKR_OPERATION_CANCEL_FAILED: return "CKR_OPERATION_CANCEL_FAILED";
    default: return "CKR_?";
  }
}

static std::atomic<bool> g_debug{false};

bool debug_enabled() { return g_debug.load(std::memory_order_relaxed); }

void set_debug_from_env() {
  const char* v = getenv("SIGNBRIDGE_DEBUG");
  g_debug.store(v && *v && strcmp(v, "0") != 0);
}

void debug_line(const std::string& line) {
  if (!debug_enabled()) return;
  std::string s = "signbridge: " + line + "\n";
  // One write(2) so lines from several threads do not interleave; errors are ignored.
  ssize_t r = write(2, s.data(), s.size());
  (void)r;
}

// No allocation: it may run after std::bad_alloc.
void debug_exception(const char* fn, const char* what) noexcept {
  if (!debug_enabled()) return;
  char buf[512];
  int n = snprintf(buf, sizeof buf, "signbridge: %s: internal error (%s); please report it\n", fn, what ? what : "");
  if (n <= 0) return;
  size_t len = static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1;
  ssize_t r = write(2, buf, len);
  (void)r;
}

}  // namespace sb
