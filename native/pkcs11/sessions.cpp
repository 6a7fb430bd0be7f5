#include "sessions.h"

#include <atomic>

namespace sb {

// Process-wide, never reset (not even by C_Finalize), so a handle is never handed out twice.
static std::atomic<CK_SESSION_HANDLE> g_next_session{1};

std::shared_ptr<Session> SessionTable::open(CK_SLOT_ID slot, CK_FLAGS flags) {
  auto s = std::make_shared<Session>();
  s->handle = g_next_session.fetch_add(1);
  s->slot = slot;
  s->flags = flags;
  sessions_.emplace(s->handle, s);
  return s;
}

std::shared_ptr<Session> SessionTable::get(CK_SESSION_HANDLE h) const {
  auto it = sessions_.find(h);
  return it == sessions_.end() ? nullptr : it->second;
}

// v2.40 §5.6: when the last session of a token closes, the user is logged out.
void SessionTable::forget_login_if_unused(CK_SLOT_ID slot) {
  if (count(slot, false) == 0) logged_in_.erase(slot);
}

bool SessionTable::close(CK_SESSION_HANDLE h) {
  auto it = sessions_.find(h);
  if (it == sessions_.end()) return false;
  CK_SLOT_ID slot = it->second->slot;
  sessions_.erase(it);
  forget_login_if_unused(slot);
  return true;
}

void SessionTable::close_all(CK_SLOT_ID slot) {
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second->slot == slot ? sessions_.erase(it) : std::next(it);
  logged_in_.erase(slot);
}

void SessionTable::clear() {
  sessions_.clear();
  logged_in_.clear();
  pin_failed_.clear();
}

CK_ULONG SessionTable::count(CK_SLOT_ID slot, bool rw_only) const {
  CK_ULONG n = 0;
  for (const auto& [h, s] : sessions_)
    if (s->slot == slot && (!rw_only || (s->flags & CKF_RW_SESSION))) n++;
  return n;
}

}  // namespace sb
