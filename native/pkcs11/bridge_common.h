// What the bridge's files share: the inventory fetched on first use, a session with its slot,
// a slot by id, object visibility, and the error mapping of slot/session calls (design.md).
// Internal to the module (bridge*.cpp).
#pragma once
#include <memory>

#include "state.h"

namespace sb::bridge {

// No slot logged in any more (C_Logout, last session closed): the kept PIN goes
// (protocol.md "LOGIN": wiped at C_Logout).
void forget_pin_if_unused(State& st);

// Objects hidden from this session: a private object on a token that requires login, before
// C_Login (design.md "Login model").
bool hidden(const SlotRec& slot, const ObjectRec& o, const SessionTable& sessions);
// The default stderr line (notice.h) for a tool that uses a private key of a token with
// CKF_LOGIN_REQUIRED without C_Login: its own error ("not logged in", "key not found") does not
// say which secret it needs.
void notice_login_required();

// Slot/session calls report an unreachable daemon as CKR_DEVICE_ERROR (design.md).
Status device(const Status& s);

// Fetches the inventory on the first call that needs it (design.md). The I/O runs with the
// state lock released.
Status ensure_inventory();

// After SIGN answered CKR_KEY_HANDLE_INVALID: fetch once more; objects that are unchanged keep
// their handles, vanished ones become CKR_OBJECT_HANDLE_INVALID.
void refresh_inventory(const std::shared_ptr<DaemonClient>& client);

// Session + its slot + the inventory, under the lock.
struct SessionCtx {
  std::shared_ptr<Session> session;
  const SlotRec* slot = nullptr;
  const Inventory* inv = nullptr;
};
Status session_ctx(StateLock& st, CK_SESSION_HANDLE h, SessionCtx& ctx);
// An object of the session's slot that the caller may see (private ones need C_Login when the
// token says CKF_LOGIN_REQUIRED); else CKR_OBJECT_HANDLE_INVALID.
Result<const ObjectRec*> visible_object(StateLock& st, const SessionCtx& ctx, CK_OBJECT_HANDLE obj);

// Runs fn(state, slot) with the inventory loaded; unknown slot → CKR_SLOT_ID_INVALID.
template <class Fn>
Status with_slot(CK_SLOT_ID id, Fn&& fn) {
  Status s = ensure_inventory();
  if (!s.ok()) return device(s);
  StateLock st;
  RETURN_IF_ERROR(st.status());
  const SlotRec* slot = st->inventory->slot(id);
  if (!slot) return Status(CKR_SLOT_ID_INVALID);
  return fn(*st, *slot);
}

}  // namespace sb::bridge
