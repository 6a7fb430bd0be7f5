// PKCS#11 3.0 C_SessionCancel (3.0 §5.6): cancels the session's active operations named by
// mechanism-style flags. signbridge has three kinds: sign (CKF_SIGN), digest (CKF_DIGEST) and
// object search (CKF_FIND_OBJECTS); flags for operations it never starts cancel nothing.
#include "bridge.h"
#include "bridge_common.h"
#include "p11_v3.h"

namespace sb::bridge {

Status session_cancel(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  auto s = st->sessions.get(h);
  if (!s) return Status(CKR_SESSION_HANDLE_INVALID);
  // A busy operation is being used by another thread with the lock released; freeing it now
  // would pull it from under that thread.
  if (((flags & CKF_SIGN) && s->sign && s->sign->busy) || ((flags & CKF_DIGEST) && s->digest && s->digest->busy))
    return Status(CKR_OPERATION_CANCEL_FAILED, "C_SessionCancel: another thread is inside this session's operation");
  if (flags & CKF_SIGN) s->sign.reset();
  if (flags & CKF_DIGEST) s->digest.reset();
  if (flags & CKF_FIND_OBJECTS) {
    s->find_active = false;
    s->found.clear();
  }
  return Status::Ok();
}

}  // namespace sb::bridge
