#include "bridge_common.h"

namespace sb::bridge {

// No slot logged in any more (C_Logout, last session closed): the kept PIN goes
// (protocol.md "LOGIN": wiped at C_Logout).
void forget_pin_if_unused(State& st) {
  if (!st.sessions.any_logged_in()) st.client->forget_pin();
}

// Objects hidden from this session: a private object on a token that requires login, before
// C_Login (design.md "Login model").
bool hidden(const SlotRec& slot, const ObjectRec& o, const SessionTable& sessions) {
  return (slot.token_flags & CKF_LOGIN_REQUIRED) && o.is_private && !sessions.logged_in(slot.id);
}

Result<const ObjectRec*> visible_object(StateLock& st, const SessionCtx& ctx, CK_OBJECT_HANDLE obj) {
  const ObjectRec* o = ctx.inv->object(obj);
  if (!o || o->slot != ctx.slot->id) return Status(CKR_OBJECT_HANDLE_INVALID);
  if (hidden(*ctx.slot, *o, st->sessions))
    return Status(CKR_OBJECT_HANDLE_INVALID, "the token requires C_Login before its private objects are visible");
  return o;
}

void notice_login_required() {
  notice_once(NoticeCause::LoginRequired,
              "the signbridge daemon requires a login before its private keys can be used (it was started with "
              "--client-secret-file): give the tool that secret as its PIN, e.g. pkcs11-tool --login --pin, "
              "osslsigncode -pass, jarsigner -storepass, pin-value= in a pkcs11: URI");
}

// Slot/session calls report an unreachable daemon as CKR_DEVICE_ERROR (design.md).
Status device(const Status& s) {
  if (s.rv() == CKR_CRYPTOKI_NOT_INITIALIZED) return s;
  return Status(CKR_DEVICE_ERROR, s.message());
}

// Fetches the inventory on the first call that needs it (design.md). The I/O runs with the
// state lock released.
Status ensure_inventory() {
  std::shared_ptr<DaemonClient> client;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    if (st->inventory) return Status::Ok();
    client = st->client;
  }
  ASSIGN_OR_RETURN(proto::InventoryReply reply, client->get_inventory());
  StateLock st;
  RETURN_IF_ERROR(st.status());
  if (st->inventory) return Status::Ok();  // another thread won the race
  ASSIGN_OR_RETURN(st->inventory, build_inventory(std::move(reply), nullptr, next_object_handle()));
  return Status::Ok();
}

// After SIGN answered CKR_KEY_HANDLE_INVALID: fetch once more; objects that are unchanged keep
// their handles, vanished ones become CKR_OBJECT_HANDLE_INVALID.
void refresh_inventory(const std::shared_ptr<DaemonClient>& client) {
  auto reply = client->get_inventory();
  if (!reply.ok()) {
    debug_line("re-fetching the inventory failed: " + reply.status().message());
    return;
  }
  StateLock st;
  if (!st.ok()) return;
  auto inv = build_inventory(std::move(*reply), st->inventory.get(), next_object_handle());
  if (inv.ok()) st->inventory = *inv;
  else debug_line("re-fetched inventory rejected: " + inv.status().message());
}

Status session_ctx(StateLock& st, CK_SESSION_HANDLE h, SessionCtx& ctx) {
  ctx.session = st->sessions.get(h);
  if (!ctx.session) return Status(CKR_SESSION_HANDLE_INVALID);
  ctx.inv = st->inventory.get();
  ctx.slot = ctx.inv ? ctx.inv->slot(ctx.session->slot) : nullptr;
  if (!ctx.slot) return Status(CKR_DEVICE_ERROR, "the session's slot is no longer in the daemon's inventory");
  return Status::Ok();
}

}  // namespace sb::bridge
