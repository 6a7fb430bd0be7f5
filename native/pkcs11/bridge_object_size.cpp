// C_GetObjectSize (v2.40 §5.7): "Cryptoki does not specify what the precise meaning of an
// object's size is"; an estimate is allowed. The module answers the bytes of the attribute
// values it holds plus one CK_ATTRIBUTE header each — public values only (the daemon never
// sends sensitive ones), so the answer reveals nothing and CKR_INFORMATION_SENSITIVE is not needed.
#include "bridge.h"
#include "bridge_common.h"

namespace sb::bridge {

Status get_object_size(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG& size) {
  StateLock st;
  RETURN_IF_ERROR(st.status());
  SessionCtx ctx;
  RETURN_IF_ERROR(session_ctx(st, h, ctx));
  ASSIGN_OR_RETURN(const ObjectRec* o, visible_object(st, ctx, obj));
  CK_ULONG total = 0;
  for (const auto& [type, value] : o->attrs) {
    if (o->is_sensitive(type)) continue;
    total += sizeof(CK_ATTRIBUTE) + value.size();
  }
  size = total;
  return Status::Ok();
}

}  // namespace sb::bridge
