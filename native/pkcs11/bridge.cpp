#include "bridge.h"

#include <pthread.h>

#include <cstring>
#include <new>

#include "state.h"
#include "templates.h"

namespace sb::bridge {

namespace {

// C_Initialize/C_Finalize against each other (v2.40 §5.4 leaves concurrent calls to the app,
// this just keeps two racing C_Initialize calls from both succeeding). The lock lives in
// state.cpp: the fork handlers take it around fork() so a child never inherits it held.
struct LifecycleGuard {
  LifecycleGuard() { lock_lifecycle(); }
  ~LifecycleGuard() { unlock_lifecycle(); }
};

// No slot logged in any more (C_Logout, last session closed): the kept PIN goes
// (protocol.md "LOGIN": wiped at C_Logout).
void forget_pin_if_unused(State& st) {
  if (!st.sessions.any_logged_in()) st.client->forget_pin();
}

// Fixed-width CK_UTF8CHAR fields: blank-padded, never NUL-terminated, cut at a character
// boundary (libp11 reads them as such).
void pad(CK_UTF8CHAR* dst, size_t width, const std::string& s) {
  memset(dst, ' ', width);
  size_t n = s.size() < width ? s.size() : width;
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
  memcpy(dst, s.data(), n);
}

constexpr CK_VERSION MODULE_VERSION = {0, 1};

// Objects hidden from this session: a private object on a token that requires login, before
// C_Login (design.md "Login model").
bool hidden(const SlotRec& slot, const ObjectRec& o, const SessionTable& sessions) {
  return (slot.token_flags & CKF_LOGIN_REQUIRED) && o.is_private && !sessions.logged_in(slot.id);
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

// Session + its slot + the inventory, under the lock.
struct SessionCtx {
  std::shared_ptr<Session> session;
  const SlotRec* slot = nullptr;
  const Inventory* inv = nullptr;
};
Status session_ctx(StateLock& st, CK_SESSION_HANDLE h, SessionCtx& ctx) {
  ctx.session = st->sessions.get(h);
  if (!ctx.session) return Status(CKR_SESSION_HANDLE_INVALID);
  ctx.inv = st->inventory.get();
  ctx.slot = ctx.inv ? ctx.inv->slot(ctx.session->slot) : nullptr;
  if (!ctx.slot) return Status(CKR_DEVICE_ERROR, "the session's slot is no longer in the daemon's inventory");
  return Status::Ok();
}

}  // namespace

Status initialize(CK_C_INITIALIZE_ARGS_PTR args) {
  LifecycleGuard g;
  // Argument checks come first (v2.40 §5.4); then "already initialized".
  auto lib = std::make_unique<Library>();
  ASSIGN_OR_RETURN(lib->lock, Locking::create(args));
  // No I/O and no thread here (design.md; p11tool passes CKF_LIBRARY_CANT_CREATE_OS_THREADS).
  set_debug_from_env();
  lib->state.client = std::make_shared<DaemonClient>(config_from_env());
  if (!install_library(std::move(lib))) return Status(CKR_CRYPTOKI_ALREADY_INITIALIZED);
  install_fork_handler();
  return Status::Ok();
}

Status finalize() {
  LifecycleGuard g;
  std::unique_ptr<Library> lib = take_library();
  if (!lib) return Status(CKR_CRYPTOKI_NOT_INITIALIZED);
  // Callers still doing I/O may hold the client a little longer: wipe the PIN now.
  lib->state.client->forget_pin();
  return Status::Ok();  // sessions, inventory and idle connections go with it
}

Status check_initialized() {
  StateLock st;
  return st.status();  // ok while initialized
}

Status get_info(CK_INFO& info) {
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
  }
  memset(&info, 0, sizeof info);
  info.cryptokiVersion = {2, 40};
  pad(info.manufacturerID, sizeof info.manufacturerID, "signbridge");
  info.flags = 0;
  pad(info.libraryDescription, sizeof info.libraryDescription, "signbridge PKCS#11 bridge");
  info.libraryVersion = MODULE_VERSION;
  return Status::Ok();
}

Status get_slot_list(bool /*token_present: every slot has its token*/, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  Status s = ensure_inventory();
  // design.md: daemon unreachable → CKR_FUNCTION_FAILED, the code v2.40 allows here.
  if (!s.ok()) return s.rv() == CKR_CRYPTOKI_NOT_INITIALIZED ? s : Status(CKR_FUNCTION_FAILED, s.message());
  StateLock st;
  RETURN_IF_ERROR(st.status());
  return write_list(st->inventory->slots, list, count, [](const SlotRec& slot) { return slot.id; });
}

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

Status get_slot_info(CK_SLOT_ID id, CK_SLOT_INFO& info) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    memset(&info, 0, sizeof info);
    pad(info.slotDescription, sizeof info.slotDescription, slot.description);
    pad(info.manufacturerID, sizeof info.manufacturerID, slot.manufacturer);
    info.flags = CKF_TOKEN_PRESENT;
    info.hardwareVersion = MODULE_VERSION;
    info.firmwareVersion = MODULE_VERSION;
    return Status::Ok();
  });
}

Status get_token_info(CK_SLOT_ID id, CK_TOKEN_INFO& info) {
  return with_slot(id, [&](State& st, const SlotRec& slot) {
    memset(&info, 0, sizeof info);
    pad(info.label, sizeof info.label, slot.label);
    pad(info.manufacturerID, sizeof info.manufacturerID, slot.manufacturer);
    pad(info.model, sizeof info.model, slot.model);
    pad(info.serialNumber, sizeof info.serialNumber, slot.serial);
    info.flags = slot.token_flags;
    info.ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info.ulSessionCount = st.sessions.count(slot.id, false);
    info.ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info.ulRwSessionCount = st.sessions.count(slot.id, true);
    info.ulMaxPinLen = 255;
    info.ulMinPinLen = 0;  // any PIN is accepted locally (design.md "Login model")
    info.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info.hardwareVersion = MODULE_VERSION;
    info.firmwareVersion = MODULE_VERSION;
    memset(info.utcTime, ' ', sizeof info.utcTime);  // no CKF_CLOCK_ON_TOKEN
    return Status::Ok();
  });
}

Status get_mechanism_list(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    return write_list(slot.mechanisms, list, count, [](const proto::Mechanism& m) { return m.type; });
  });
}

Status get_mechanism_info(CK_SLOT_ID id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO& info) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    const proto::Mechanism* m = slot.mechanism(type);
    if (!m) return Status(CKR_MECHANISM_INVALID);
    info.ulMinKeySize = m->min_key_size;
    info.ulMaxKeySize = m->max_key_size;
    info.flags = m->flags;
    return Status::Ok();
  });
}

Status open_session(CK_SLOT_ID id, CK_FLAGS flags, CK_SESSION_HANDLE& out) {
  return with_slot(id, [&](State& st, const SlotRec& slot) {
    if (!(flags & CKF_SERIAL_SESSION)) return Status(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
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

// design.md "Login model": a token without CKF_LOGIN_REQUIRED logs in locally — the PIN is not
// checked and never kept (access control is the socket's owner). A token with the flag (daemon
// run with --client-secret-file) gets one LOGIN round trip; the daemon's verdict
// (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, …) is the answer, and on success the client keeps the
// PIN for new connections (protocol.md "LOGIN").
Status login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const CK_UTF8CHAR* pin, CK_ULONG pin_len) {
  std::shared_ptr<DaemonClient> client;
  CK_SLOT_ID slot_id = 0;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    SessionCtx ctx;
    RETURN_IF_ERROR(session_ctx(st, h, ctx));
    if (user == CKU_CONTEXT_SPECIFIC)
      return ctx.session->sign ? Status::Ok() : Status(CKR_OPERATION_NOT_INITIALIZED);
    if (user != CKU_USER) return Status(CKR_USER_TYPE_INVALID, "C_Login: only CKU_USER is supported");
    if (st->sessions.logged_in(ctx.slot->id)) return Status(CKR_USER_ALREADY_LOGGED_IN);
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
  const ObjectRec* o = ctx.inv->object(obj);
  if (!o || o->slot != ctx.slot->id || hidden(*ctx.slot, *o, st->sessions))
    return Status(CKR_OBJECT_HANDLE_INVALID);
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
  if (sess.find_active) return Status(CKR_OPERATION_ACTIVE);
  for (CK_ULONG i = 0; i < count; i++)
    if (!tmpl[i].pValue && tmpl[i].ulValueLen) return Status(CKR_ARGUMENTS_BAD);
  sess.found.clear();
  sess.found_pos = 0;
  for (CK_OBJECT_HANDLE oh : ctx.slot->objects) {
    const ObjectRec& o = *ctx.inv->object(oh);
    if (hidden(*ctx.slot, o, st->sessions)) continue;
    bool match = true;
    // Exact byte match on any attribute; CK_ULONG values are stored in native width, so a
    // caller's CK_ULONG compares as is.
    for (CK_ULONG i = 0; i < count && match; i++) {
      const CK_ATTRIBUTE& a = tmpl[i];
      const Value* v = o.is_sensitive(a.type) ? nullptr : o.find(a.type);
      match = v && v->size() == a.ulValueLen && (a.ulValueLen == 0 || memcmp(v->data(), a.pValue, a.ulValueLen) == 0);
    }
    if (match) sess.found.push_back(oh);
  }
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

Status sign_init(CK_SESSION_HANDLE h, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  if (ctx.session->sign) return Status(CKR_OPERATION_ACTIVE);
  const ObjectRec* o = ctx.inv->object(key);
  if (!o || o->slot != ctx.slot->id) return Status(CKR_KEY_HANDLE_INVALID);
  if (hidden(*ctx.slot, *o, st->sessions))
    return Status(CKR_USER_NOT_LOGGED_IN, "C_SignInit: the token requires C_Login before using its private keys");
  ASSIGN_OR_RETURN(ctx.session->sign, make_sign_op(*ctx.slot, *o, mech));
  return Status::Ok();
}

namespace {

// Ends the operation if it is still the one this call worked on.
void end_op(const std::shared_ptr<Session>& s, const SignOp* op) {
  StateLock st;  // when finalized meanwhile nobody else can reach the session: drop it anyway
  if (s->sign.get() == op) s->sign.reset();
}

// One SIGN round trip with the lock released; on CKR_KEY_HANDLE_INVALID the inventory is
// fetched again once (protocol.md "SIGN" errors).
Status sign_round_trip(const std::shared_ptr<DaemonClient>& client, SignOp& op, const SignInput& in, CK_BYTE_PTR out) {
  Status s = client->sign(op.key_handle, op.primitive, in.hash_alg, op.mgf, op.salt_len, in.data, in.len, out,
                          op.signature_len);
  if (s.rv() == CKR_KEY_HANDLE_INVALID) refresh_inventory(client);
  return s;
}

// Common first half of C_Sign/C_SignFinal under the lock: find the op, answer length queries
// locally (v2.40 §5.2), mark the op busy.
enum class Step { Done, Proceed };
Step begin_output(StateLock& st, CK_SESSION_HANDLE h, bool final_call, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len,
                  std::shared_ptr<Session>& sess, std::shared_ptr<DaemonClient>& client, SignOp*& op, Status& result) {
  sess = st->sessions.get(h);
  if (!sess) { result = Status(CKR_SESSION_HANDLE_INVALID); return Step::Done; }
  op = sess->sign.get();
  if (!op) { result = Status(CKR_OPERATION_NOT_INITIALIZED); return Step::Done; }
  if (op->busy) { result = Status(CKR_OPERATION_ACTIVE, "another thread is using this session's signing operation"); return Step::Done; }
  if (!sig_len) { sess->sign.reset(); result = Status(CKR_ARGUMENTS_BAD); return Step::Done; }
  // C_Sign after C_SignUpdate, or C_SignFinal on a single-part mechanism: like SoftHSMv2, end
  // the operation with CKR_OPERATION_NOT_INITIALIZED (no multi-/single-part op is active).
  if ((!final_call && op->updated) || (final_call && !op->multipart())) {
    sess->sign.reset();
    result = Status(CKR_OPERATION_NOT_INITIALIZED, final_call ? "C_SignFinal: this mechanism is single-part; use C_Sign"
                                                              : "C_Sign after C_SignUpdate; finish with C_SignFinal");
    return Step::Done;
  }
  // A length query or a short buffer leaves the operation active (§5.2).
  if (!two_call(op->signature_len, sig, sig_len, result)) return Step::Done;
  op->busy = true;
  client = st->client;
  return Step::Proceed;
}

}  // namespace

Status sign(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  std::shared_ptr<Session> sess;
  std::shared_ptr<DaemonClient> client;
  SignOp* op = nullptr;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    if (!data && len) {
      if (auto s = st->sessions.get(h); s && s->sign && !s->sign->busy) s->sign.reset();
      return Status(CKR_ARGUMENTS_BAD);
    }
    Status result;
    if (begin_output(st, h, false, sig, sig_len, sess, client, op, result) == Step::Done) return result;
  }
  // Lock released: hashing and I/O do not stall other threads and sessions.
  SignInput in;
  Status s = single_part_input(*op, data, len, in);
  if (s.ok()) s = sign_round_trip(client, *op, in, sig);
  end_op(sess, op);
  return s;
}

Status sign_update(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len) {
  std::shared_ptr<Session> sess;
  SignOp* op = nullptr;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    sess = st->sessions.get(h);
    if (!sess) return Status(CKR_SESSION_HANDLE_INVALID);
    op = sess->sign.get();
    if (!op) return Status(CKR_OPERATION_NOT_INITIALIZED);
    if (op->busy) return Status(CKR_OPERATION_ACTIVE, "another thread is using this session's signing operation");
    if (!op->multipart()) {
      // CKM_RSA_PKCS, _PSS and ECDSA are single-part: C_SignUpdate ends the operation
      // with CKR_OPERATION_NOT_INITIALIZED (as SoftHSMv2 does; v2.40 §5.11 lists that code).
      sess->sign.reset();
      return Status(CKR_OPERATION_NOT_INITIALIZED, "C_SignUpdate: this mechanism is single-part; use C_Sign");
    }
    if (!data && len) {
      sess->sign.reset();
      return Status(CKR_ARGUMENTS_BAD);
    }
    op->busy = true;
    op->updated = true;
  }
  // Outside the lock; `busy` keeps other callers off this op. An error (or a failed
  // allocation) ends the operation, as any C_SignUpdate error must (v2.40 §5.11).
  Status s;
  try {
    s = update_input(*op, data, len);
  } catch (const std::bad_alloc&) {
    s = Status(CKR_HOST_MEMORY);
  }
  StateLock st;
  op->busy = false;
  if (!s.ok() && st.ok() && sess->sign.get() == op) sess->sign.reset();
  RETURN_IF_ERROR(st.status());
  return s;
}

Status sign_final(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  std::shared_ptr<Session> sess;
  std::shared_ptr<DaemonClient> client;
  SignOp* op = nullptr;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    Status result;
    if (begin_output(st, h, true, sig, sig_len, sess, client, op, result) == Step::Done) return result;
  }
  SignInput in;
  Status s = final_input(*op, in);
  if (s.ok()) s = sign_round_trip(client, *op, in, sig);
  end_op(sess, op);
  return s;
}

// ---- Digesting (v2.40 §5.10), all local -------------------------------------------------

namespace {

HashAlg digest_alg(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA256: return HashAlg::Sha256;
    case CKM_SHA384: return HashAlg::Sha384;
    case CKM_SHA512: return HashAlg::Sha512;
    default: return HashAlg::None;
  }
}

void end_digest(const std::shared_ptr<Session>& s, const DigestOp* op) {
  StateLock st;  // as end_op: after C_Finalize nobody else can reach the session
  if (s->digest.get() == op) s->digest.reset();
}

// The checks C_Digest, C_DigestUpdate and C_DigestFinal share. Like signing (v2.40 §5.10
// refers to §5.11's rules): a bad argument or misuse ends the operation.
Status digest_op(StateLock& st, CK_SESSION_HANDLE h, std::shared_ptr<Session>& sess, DigestOp*& op) {
  sess = st->sessions.get(h);
  if (!sess) return Status(CKR_SESSION_HANDLE_INVALID);
  op = sess->digest.get();
  if (!op) return Status(CKR_OPERATION_NOT_INITIALIZED);
  if (op->busy) return Status(CKR_OPERATION_ACTIVE, "another thread is using this session's digest operation");
  return Status::Ok();
}

}  // namespace

Status digest_init(CK_SESSION_HANDLE h, const CK_MECHANISM& mech) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  if (ctx.session->digest) return Status(CKR_OPERATION_ACTIVE);
  const proto::Mechanism* offered = ctx.slot->mechanism(mech.mechanism);
  HashAlg alg = digest_alg(mech.mechanism);
  if (!offered || !(offered->flags & CKF_DIGEST) || alg == HashAlg::None)
    return Status(CKR_MECHANISM_INVALID, "C_DigestInit: the token digests with CKM_SHA256, CKM_SHA384 and CKM_SHA512 only");
  if (mech.ulParameterLen != 0) return Status(CKR_MECHANISM_PARAM_INVALID, "C_DigestInit: digests take no parameter");
  auto op = std::make_unique<DigestOp>();
  op->sha.init(alg);
  ctx.session->digest = std::move(op);
  return Status::Ok();
}

Status digest(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  std::shared_ptr<Session> sess;
  DigestOp* op = nullptr;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    RETURN_IF_ERROR(digest_op(st, h, sess, op));
    if (!out_len || (!data && len)) {
      sess->digest.reset();
      return Status(CKR_ARGUMENTS_BAD);
    }
    if (op->updated) {
      sess->digest.reset();
      return Status(CKR_OPERATION_NOT_INITIALIZED, "C_Digest after C_DigestUpdate; finish with C_DigestFinal");
    }
    Status answer;
    if (!two_call(op->sha.digest_size(), out, out_len, answer)) return answer;  // op stays active (§5.2)
    op->busy = true;
  }
  // Lock released while hashing; `busy` keeps other callers off this op.
  op->sha.update(data, len);
  op->sha.final(out);
  end_digest(sess, op);
  return Status::Ok();
}

Status digest_update(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len) {
  std::shared_ptr<Session> sess;
  DigestOp* op = nullptr;
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
    RETURN_IF_ERROR(digest_op(st, h, sess, op));
    if (!data && len) {
      sess->digest.reset();
      return Status(CKR_ARGUMENTS_BAD);
    }
    op->busy = true;
    op->updated = true;
  }
  op->sha.update(data, len);
  StateLock st;
  op->busy = false;
  return st.status();  // ok while initialized
}

Status digest_final(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  std::shared_ptr<Session> sess;
  DigestOp* op = nullptr;
  RETURN_IF_ERROR(digest_op(st, h, sess, op));
  if (!out_len) {
    sess->digest.reset();
    return Status(CKR_ARGUMENTS_BAD);
  }
  Status answer;
  if (!two_call(op->sha.digest_size(), out, out_len, answer)) return answer;
  op->sha.final(out);  // at most one block: done under the lock
  sess->digest.reset();
  return Status::Ok();
}

}  // namespace sb::bridge
