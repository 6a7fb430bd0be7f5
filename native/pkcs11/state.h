// The module state and its one lock. StateLock is the only way in: it takes the lock and
// checks "initialized" (CKR_CRYPTOKI_NOT_INITIALIZED otherwise).
#pragma once
#include <memory>

#include "daemon_client.h"
#include "inventory.h"
#include "locking.h"
#include "sessions.h"

namespace sb {

struct State {
  std::shared_ptr<DaemonClient> client;
  std::shared_ptr<const Inventory> inventory;  // null until the first call that needs it
  SessionTable sessions;
};

struct Library {
  std::unique_ptr<Locking> lock;
  State state;
};

class StateLock {
 public:
  StateLock();
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  bool ok() const { return lib_ != nullptr; }
  const Status& status() const { return status_; }
  State* operator->() { return &lib_->state; }
  State& operator*() { return lib_->state; }

 private:
  Library* lib_ = nullptr;
  Status status_;
};

// Lifecycle (C_Initialize / C_Finalize / fork child). install fails if already initialized.
bool install_library(std::unique_ptr<Library> lib);
std::unique_ptr<Library> take_library();  // null if not initialized
void forget_library_in_child();  // also wipes the kept PIN
void install_fork_handler();
// The C_Initialize/C_Finalize lock (held across fork() by the fork handlers).
void lock_lifecycle();
void unlock_lifecycle();

// Process-wide object handle counter (never reset, never 0).
CK_OBJECT_HANDLE& next_object_handle();

}  // namespace sb
