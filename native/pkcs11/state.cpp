#include "state.h"

#include <pthread.h>

#include <atomic>

namespace sb {

static std::atomic<Library*> g_lib{nullptr};
static CK_OBJECT_HANDLE g_next_object = 1;  // guarded by the state lock

CK_OBJECT_HANDLE& next_object_handle() { return g_next_object; }

StateLock::StateLock() {
  Library* lib = g_lib.load(std::memory_order_acquire);
  if (!lib) {
    status_ = Status(CKR_CRYPTOKI_NOT_INITIALIZED);
    return;
  }
  status_ = lib->lock->lock();
  if (!status_.ok()) return;
  if (g_lib.load(std::memory_order_acquire) != lib) {  // finalized while we waited
    lib->lock->unlock();
    status_ = Status(CKR_CRYPTOKI_NOT_INITIALIZED);
    return;
  }
  lib_ = lib;
}

StateLock::~StateLock() {
  if (lib_) lib_->lock->unlock();
}

bool install_library(std::unique_ptr<Library> lib) {
  Library* expected = nullptr;
  if (!g_lib.compare_exchange_strong(expected, lib.get(), std::memory_order_acq_rel)) return false;
  lib.release();
  return true;
}

// v2.40 §5.4: C_Finalize while other threads are inside Cryptoki calls is undefined; callers
// doing I/O hold no Library pointer (only shared_ptrs to the client and their session), so
// they come back to CKR_CRYPTOKI_NOT_INITIALIZED instead of touching freed state.
std::unique_ptr<Library> take_library() {
  Library* lib = g_lib.load(std::memory_order_acquire);
  if (!lib) return nullptr;
  if (!lib->lock->lock().ok()) return nullptr;
  if (!g_lib.compare_exchange_strong(lib, nullptr, std::memory_order_acq_rel)) {
    return nullptr;
  }
  lib->lock->unlock();
  return std::unique_ptr<Library>(lib);
}

// Fork child (design: pthread_atfork). The child gets CKR_CRYPTOKI_NOT_INITIALIZED until it
// calls C_Initialize. The parent's state is abandoned, not freed: its locks may be held by
// threads that do not exist in the child, and closing/shutting down its connections must not
// disturb the parent (the sockets are SOCK_CLOEXEC, so an exec drops them).
// The PIN is wiped (protocol.md "LOGIN"): the child starts logged out and must not carry the
// parent's secret around (core dumps, a long-running child). wipe_pin_in_child takes no lock.
void forget_library_in_child() {
  Library* lib = g_lib.exchange(nullptr, std::memory_order_acq_rel);
  if (lib && lib->state.client) lib->state.client->wipe_pin_in_child();
}

static pthread_mutex_t g_lifecycle = PTHREAD_MUTEX_INITIALIZER;
void lock_lifecycle() { pthread_mutex_lock(&g_lifecycle); }
void unlock_lifecycle() { pthread_mutex_unlock(&g_lifecycle); }

}  // namespace sb
