#include "status.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sb {

const char* rv_name(CK_RV rv) {
  switch (rv) {
#define X(n) case n: return #n;
    X(CKR_OK) X(CKR_HOST_MEMORY) X(CKR_SLOT_ID_INVALID) X(CKR_GENERAL_ERROR) X(CKR_FUNCTION_FAILED)
    X(CKR_ARGUMENTS_BAD) X(CKR_ATTRIBUTE_SENSITIVE) X(CKR_ATTRIBUTE_TYPE_INVALID)
    X(CKR_DATA_LEN_RANGE) X(CKR_DEVICE_ERROR) X(CKR_FUNCTION_NOT_SUPPORTED)
    X(CKR_KEY_HANDLE_INVALID) X(CKR_KEY_TYPE_INCONSISTENT) X(CKR_KEY_FUNCTION_NOT_PERMITTED)
    X(CKR_MECHANISM_INVALID) X(CKR_MECHANISM_PARAM_INVALID) X(CKR_OBJECT_HANDLE_INVALID)
    X(CKR_OPERATION_ACTIVE) X(CKR_OPERATION_NOT_INITIALIZED) X(CKR_SESSION_HANDLE_INVALID)
    X(CKR_SESSION_PARALLEL_NOT_SUPPORTED) X(CKR_TOKEN_WRITE_PROTECTED)
    X(CKR_USER_ALREADY_LOGGED_IN) X(CKR_USER_NOT_LOGGED_IN) X(CKR_USER_TYPE_INVALID)
    X(CKR_BUFFER_TOO_SMALL) X(CKR_CRYPTOKI_NOT_INITIALIZED) X(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    X(CKR_CANT_LOCK) X(CKR_TEMPLATE_INCONSISTENT) X(CKR_FUNCTION_NOT_PARALLEL)
    X(CKR_DATA_INVALID) X(CKR_FUNCTION_REJECTED) X(CKR_PIN_INCORRECT) X(CKR_TOKEN_NOT_PRESENT)
#undef X
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

}  // namespace sb
