// Signing: C_SignInit, C_Sign, C_SignUpdate, C_SignFinal (v2.40 §5.11). Mechanism checks and
// hashing are sign_ops.h; the signature is one SIGN round trip with the state lock released.
#include "bridge.h"

#include <cstring>
#include <new>

#include "bridge_common.h"
#include "templates.h"

namespace sb::bridge {

Status sign_init(CK_SESSION_HANDLE h, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  if (ctx.session->sign)
    return Status(CKR_OPERATION_ACTIVE, "a signing operation is already active in this session; finish it with "
                                        "C_Sign / C_SignFinal or open another session");
  const ObjectRec* o = ctx.inv->object(key);
  if (!o || o->slot != ctx.slot->id)
    return Status(CKR_KEY_HANDLE_INVALID, "no such key in this session's slot (handles do not survive C_Finalize; "
                                          "`signbridge keys` lists what the daemon serves)");
  if (hidden(*ctx.slot, *o, st->sessions)) {
    notice_login_required();
    return Status(CKR_USER_NOT_LOGGED_IN, "C_SignInit: the token requires C_Login before using its private keys");
  }
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
                          op.signature_len, op.always_authenticate);
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
  if (op->auth_failed) {
    sess->sign.reset();
    result = Status(CKR_USER_NOT_LOGGED_IN, "the context-specific login (C_Login(CKU_CONTEXT_SPECIFIC)) of this signing "
                                            "operation failed: C_SignInit again and log in with a valid OTP/PIN");
    return Step::Done;
  }
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

}  // namespace sb::bridge
