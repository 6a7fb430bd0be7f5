// Sessions, login and objects: C_OpenSession … C_Logout, C_GetAttributeValue, C_FindObjects*.
#include "bridge.h"

#include <cstring>
#include <new>

#include "bridge_common.h"
#include "templates.h"

namespace sb::bridge {

Status open_session(CK_SLOT_ID id, CK_FLAGS flags, CK_SESSION_HANDLE& out) {
  return with_slot(id, [&](State& st, const SlotRec& slot) {
    if (!(flags & CKF_SERIAL_SESSION)) return Status(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    // R/W sessions are accepted: OpenSSH, pkcs11-tool --test and others always ask for one, and
    // refusing it fails them before they sign. Writes are refused per call instead (design.md
    // "What a bridge never does"). The daemon does not report CKF_WRITE_PROTECTED; if a token ever
    // does, v2.40 §5.6 C_OpenSession applies.
    if ((flags & CKF_RW_SESSION) && (slot.token_flags & CKF_WRITE_PROTECTED))
      return Status(CKR_TOKEN_WRITE_PROTECTED);
    out = st.sessions.open(slot.id, flags)->handle;
    return Status::Ok();
  });
}

Status close_session(CK_SESSION_HANDLE h) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  if (!st->sessions.close(h)) return Status(CKR_SESSION_HANDLE_INVALID);
  forget_pin_if_unused(*st);  // v2.40 §5.6: closing the last session logs the user out
  return Status::Ok();
}

Status close_all_sessions(CK_SLOT_ID id) {
  return with_slot(id, [&](State& st, const SlotRec& slot) {
    st.sessions.close_all(slot.id);
    forget_pin_if_unused(st);
    return Status::Ok();
  });
}

Status get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO& info) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  auto s = st->sessions.get(h);
  if (!s) return Status(CKR_SESSION_HANDLE_INVALID);
  bool user = st->sessions.logged_in(s->slot);
  bool rw = s->flags & CKF_RW_SESSION;
  info.slotID = s->slot;
  info.state = rw ? (user ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION)
                  : (user ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION);
  info.flags = s->flags;
  info.ulDeviceError = 0;
  return Status::Ok();
}

// A bridge has no security officer (design.md "What a bridge never does"), so C_Login(CKU_SO)
// never succeeds. The spec's own refusals come first (v2.40 §5.6 C_Login): a R/O session keeps
// the SO out (CKR_SESSION_READ_ONLY_EXISTS), a logged-in user too
// (CKR_USER_ANOTHER_ALREADY_LOGGED_IN); otherwise CKR_USER_TYPE_INVALID, what the daemon's LOGIN
// answers for CKU_SO too. Not CKR_PIN_LOCKED (kmsp11's choice): here that code means "too many
// wrong client secrets".
static Status so_login_refusal(const SessionTable& sessions, CK_SLOT_ID slot) {
  if (sessions.count(slot, false) > sessions.count(slot, true))
    return Status(CKR_SESSION_READ_ONLY_EXISTS, "C_Login(CKU_SO): a read-only session is open (and the token has no SO)");
  if (sessions.logged_in(slot)) return Status(CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  return Status(CKR_USER_TYPE_INVALID, "C_Login: the token has no security officer (CKU_SO); only CKU_USER is supported");
}

// PKCS#11 v2.40 §5.6 C_Login with CKU_CONTEXT_SPECIFIC: after C_SignInit on a key with
// CKA_ALWAYS_AUTHENTICATE (§4.9) the OTP/PIN becomes one AUTHORIZE (protocol.md), sent with the
// lock released while `busy` keeps other threads off the operation. A failure marks the
// operation, so a tool that signs anyway gets nothing signed. Codes outside C_Login's list
// (§5.6) become CKR_FUNCTION_FAILED; the daemon's sentence stays.
struct ContextLogin {
  std::shared_ptr<DaemonClient> client;
  std::shared_ptr<Session> session;
  SignOp* op = nullptr;
  proto::Bytes key_handle;
};

static Status begin_context_login(State& st, SessionCtx& ctx, const CK_UTF8CHAR* pin, CK_ULONG pin_len,
                                  ContextLogin& out) {
  SignOp* op = ctx.session->sign.get();
  if (!op) return Status(CKR_OPERATION_NOT_INITIALIZED, "C_Login(CKU_CONTEXT_SPECIFIC) needs an active C_SignInit");
  if (!op->always_authenticate) return Status::Ok();  // nothing to authorise for this key
  if (op->busy) return Status(CKR_OPERATION_ACTIVE, "another thread is using this session's signing operation");
  if (!pin && pin_len) return Status(CKR_ARGUMENTS_BAD);
  out = {st.client, ctx.session, op, op->key_handle};
  op->busy = true;
  return Status::Ok();
}

static Status finish_context_login(ContextLogin& c, const CK_UTF8CHAR* pin, CK_ULONG pin_len) {
  uint32_t signatures = 0;
  Status s = c.client->authorize(c.key_handle, pin, pin_len, signatures);
  StateLock st;  // when finalized meanwhile nobody else can reach the session: mark it anyway
  if (c.session->sign.get() == c.op) {
    c.op->busy = false;
    c.op->auth_failed = !s.ok();
  }
  RETURN_IF_ERROR(st.status());
  if (s.ok()) return s;
  CK_RV rv = s.rv();
  bool allowed = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_DEVICE_ERROR || rv == CKR_FUNCTION_FAILED ||
                 rv == CKR_HOST_MEMORY || rv == CKR_GENERAL_ERROR || rv == CKR_USER_PIN_NOT_INITIALIZED;
  return allowed ? s : Status(CKR_FUNCTION_FAILED, s.message());
}

// design.md "Login model": a token without CKF_LOGIN_REQUIRED logs in locally — the PIN is not
// checked and never kept (access control is the socket's owner). A token with the flag (daemon
// run with --client-secret-file) gets one LOGIN round trip; the daemon's verdict
// (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, …) is the answer, and on success the client keeps the
// PIN for new connections (protocol.md "LOGIN").
Status login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const CK_UTF8CHAR* pin, CK_ULONG pin_len) {
  std::shared_ptr<DaemonClient> client;
  CK_SLOT_ID slot_id = 0;
  ContextLogin context;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    SessionCtx ctx;
    RETURN_IF_ERROR(session_ctx(st, h, ctx));
    if (user == CKU_CONTEXT_SPECIFIC) {
      RETURN_IF_ERROR(begin_context_login(*st, ctx, pin, pin_len, context));
      if (!context.op) return Status::Ok();
    }
  }
  if (context.op) return finish_context_login(context, pin, pin_len);
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    SessionCtx ctx;
    RETURN_IF_ERROR(session_ctx(st, h, ctx));
    if (user == CKU_SO) return so_login_refusal(st->sessions, ctx.slot->id);
    if (user != CKU_USER) return Status(CKR_USER_TYPE_INVALID, "C_Login: only CKU_USER is supported");
    if (st->sessions.logged_in(ctx.slot->id))
      return Status(CKR_USER_ALREADY_LOGGED_IN, "already logged in: login is per token, shared by all sessions of the process");
    if (!(ctx.slot->token_flags & CKF_LOGIN_REQUIRED)) {
      st->sessions.set_logged_in(ctx.slot->id, true);
      return Status::Ok();
    }
    client = st->client;
    slot_id = ctx.slot->id;
  }
  // The round trip runs with the state lock released. Codes C_Login may return (v2.40 §5.6)
  // pass through; anything else the daemon says becomes CKR_FUNCTION_FAILED.
  Status s = client->login(static_cast<uint32_t>(slot_id), CKU_USER, pin, pin_len);
  if (s.rv() == CKR_PIN_INCORRECT) {
    StateLock st;
    if (st.ok()) st->sessions.set_pin_failed(slot_id, true);
  }
  if (!s.ok()) return s.rv() == CKR_DEVICE_ERROR || s.rv() == CKR_PIN_INCORRECT || s.rv() == CKR_PIN_LOCKED ||
                             s.rv() == CKR_USER_TYPE_INVALID || s.rv() == CKR_FUNCTION_FAILED || s.rv() == CKR_GENERAL_ERROR ||
                             s.rv() == CKR_HOST_MEMORY || s.rv() == CKR_USER_PIN_NOT_INITIALIZED
                         ? s
                         : Status(CKR_FUNCTION_FAILED, s.message());
  StateLock st;
  if (!st.ok()) {
    client->forget_pin();  // finalized meanwhile
    return st.status();
  }
  st->sessions.set_logged_in(slot_id, true);
  st->sessions.set_pin_failed(slot_id, false);
  return Status::Ok();
}

Status logout(CK_SESSION_HANDLE h) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  auto s = st->sessions.get(h);
  if (!s) return Status(CKR_SESSION_HANDLE_INVALID);
  if (!st->sessions.logged_in(s->slot)) return Status(CKR_USER_NOT_LOGGED_IN);
  st->sessions.set_logged_in(s->slot, false);
  forget_pin_if_unused(*st);
  return Status::Ok();
}

Status get_attribute_value(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  ASSIGN_OR_RETURN(const ObjectRec* o, visible_object(st, ctx, obj));
  return Status(fill_template(tmpl, count, [&](CK_ATTRIBUTE_TYPE t, const Value*& v) {
    if (o->is_sensitive(t)) return AttrState::Sensitive;
    v = o->find(t);
    return v ? AttrState::Present : AttrState::Missing;
  }));
}

Status find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  Session& sess = *ctx.session;
  if (sess.find_active)
    return Status(CKR_OPERATION_ACTIVE, "a search is already active in this session; end it with C_FindObjectsFinal");
  for (CK_ULONG i = 0; i < count; i++)
    if (!tmpl[i].pValue && tmpl[i].ulValueLen) return Status(CKR_ARGUMENTS_BAD);
  sess.found.clear();
  sess.found_pos = 0;
  bool missed_private = false;  // a private key matched but stays hidden until C_Login
  for (CK_OBJECT_HANDLE oh : ctx.slot->objects) {
    const ObjectRec& o = *ctx.inv->object(oh);
    bool match = true;
    // Exact byte match on any attribute; CK_ULONG values are stored in native width, so a
    // caller's CK_ULONG compares as is.
    for (CK_ULONG i = 0; i < count && match; i++) {
      const CK_ATTRIBUTE& a = tmpl[i];
      const Value* v = o.is_sensitive(a.type) ? nullptr : o.find(a.type);
      match = v && v->size() == a.ulValueLen && (a.ulValueLen == 0 || memcmp(v->data(), a.pValue, a.ulValueLen) == 0);
    }
    if (!match) continue;
    if (hidden(*ctx.slot, o, st->sessions)) missed_private = missed_private || count > 0;
    else sess.found.push_back(oh);
  }
  // A tool looking for a key it has not logged in for finds nothing and says "key not found".
  if (missed_private) notice_login_required();
  sess.find_active = true;
  return Status::Ok();
}

Status find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG& count) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  auto s = st->sessions.get(h);
  if (!s) return Status(CKR_SESSION_HANDLE_INVALID);
  if (!s->find_active) return Status(CKR_OPERATION_NOT_INITIALIZED);
  count = 0;
  while (count < max && s->found_pos < s->found.size()) out[count++] = s->found[s->found_pos++];
  return Status::Ok();
}

Status find_objects_final(CK_SESSION_HANDLE h) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  auto s = st->sessions.get(h);
  if (!s) return Status(CKR_SESSION_HANDLE_INVALID);
  if (!s->find_active) return Status(CKR_OPERATION_NOT_INITIALIZED);
  s->find_active = false;
  s->found.clear();
  return Status::Ok();
}

}  // namespace sb::bridge
