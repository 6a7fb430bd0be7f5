// Sessions: handles never 0 and never reused within the module's lifetime; login state is per
// slot (design.md "Login model"), kept in the table next to the sessions it governs.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "p11.h"
#include "sign_ops.h"

namespace sb {

// A C_DigestInit operation (v2.40 §5.10): hashed locally, the daemon is never involved.
struct DigestOp {
  Sha2 sha;
  bool updated = false;  // C_DigestUpdate was called: C_Digest is no longer allowed
  bool busy = false;     // a thread hashes with the state lock released
};

struct Session {
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_SLOT_ID slot = 0;
  CK_FLAGS flags = 0;
  bool find_active = false;
  std::vector<CK_OBJECT_HANDLE> found;
  size_t found_pos = 0;
  std::unique_ptr<SignOp> sign;
  std::unique_ptr<DigestOp> digest;
};

class SessionTable {
 public:
  std::shared_ptr<Session> open(CK_SLOT_ID slot, CK_FLAGS flags);
  std::shared_ptr<Session> get(CK_SESSION_HANDLE h) const;
  bool close(CK_SESSION_HANDLE h);
  void close_all(CK_SLOT_ID slot);
  void clear();
  CK_ULONG count(CK_SLOT_ID slot, bool rw_only) const;

  bool logged_in(CK_SLOT_ID slot) const { return logged_in_.count(slot) != 0; }
  bool any_logged_in() const { return !logged_in_.empty(); }
  void set_logged_in(CK_SLOT_ID slot, bool v) {
    if (v) logged_in_.insert(slot);
    else logged_in_.erase(slot);
  }
  // CKF_USER_PIN_COUNT_LOW (v2.40 §5.5 CK_TOKEN_INFO): a wrong PIN since the last good C_Login.
  bool pin_failed(CK_SLOT_ID slot) const { return pin_failed_.count(slot) != 0; }
  void set_pin_failed(CK_SLOT_ID slot, bool v) {
    if (v) pin_failed_.insert(slot);
    else pin_failed_.erase(slot);
  }

 private:
  void forget_login_if_unused(CK_SLOT_ID slot);
  std::map<CK_SESSION_HANDLE, std::shared_ptr<Session>> sessions_;
  std::set<CK_SLOT_ID> logged_in_;
  std::set<CK_SLOT_ID> pin_failed_;
};

}  // namespace sb
