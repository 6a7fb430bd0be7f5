// Digesting (v2.40 §5.10): C_DigestInit, C_Digest, C_DigestUpdate, C_DigestFinal, all local.
#include "bridge.h"

#include <cstring>
#include <new>

#include "bridge_common.h"
#include "templates.h"

namespace sb::bridge {

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
  if (ctx.session->digest)
    return Status(CKR_OPERATION_ACTIVE, "a digest operation is already active in this session; finish it with "
                                        "C_Digest / C_DigestFinal");
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
