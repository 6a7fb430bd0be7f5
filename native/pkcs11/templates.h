// The two conventions every output goes through, each written once: the two-call buffer
// convention (v2.40 §5.2) and C_GetAttributeValue's template cases (v2.40 §5.7).
#pragma once
#include <cstring>
#include <vector>

#include "p11.h"
#include "status.h"

namespace sb {

// v2.40 §5.2, the two-call convention, for every output buffer (C_GetSlotList,
// C_GetMechanismList, C_Sign, C_SignFinal, C_Digest, C_DigestFinal, attribute values):
// NULL buffer → *io_len = needed, CKR_OK (a length query); short buffer → *io_len = needed,
// CKR_BUFFER_TOO_SMALL; otherwise *io_len = needed and the caller writes `needed` units.
// `needed` and *io_len count units (bytes, slot IDs, mechanism types). Returns true when the
// caller must write now; false when `answer` already is the call's result.
inline bool two_call(CK_ULONG needed, const void* out, CK_ULONG_PTR io_len, Status& answer) {
  bool short_buffer = out && *io_len < needed;
  *io_len = needed;
  if (out && !short_buffer) return true;
  answer = short_buffer ? Status(CKR_BUFFER_TOO_SMALL) : Status::Ok();
  return false;
}

// A list output (slot IDs, mechanism types) through two_call: item i becomes out[i] = get(v[i]).
template <class T, class Vec, class Get>
Status write_list(const Vec& v, T* out, CK_ULONG_PTR count, Get&& get) {
  Status answer;
  if (!two_call(v.size(), out, count, answer)) return answer;
  for (size_t i = 0; i < v.size(); i++) out[i] = get(v[i]);
  return Status::Ok();
}

// What an object says about one attribute type.
enum class AttrState { Present, Sensitive, Missing };

// v2.40 §5.7 C_GetAttributeValue, the five cases, for every template entry (processing
// continues after a bad entry):
//  1. sensitive/unextractable → ulValueLen = CK_UNAVAILABLE_INFORMATION, CKR_ATTRIBUTE_SENSITIVE
//  2. unknown for this object → ulValueLen = CK_UNAVAILABLE_INFORMATION, CKR_ATTRIBUTE_TYPE_INVALID
//  3. pValue NULL → ulValueLen = exact length
//  4. pValue big enough → copy, ulValueLen = length
//  5. otherwise → ulValueLen = CK_UNAVAILABLE_INFORMATION, CKR_BUFFER_TOO_SMALL
// The spec lets any of the applicable errors be returned; like SoftHSMv2 we report, in
// priority order, SENSITIVE, then TYPE_INVALID, then BUFFER_TOO_SMALL.
// `lookup(type, value)` returns the state and, for Present, points value at the bytes.
template <class Lookup>
CK_RV fill_template(CK_ATTRIBUTE_PTR tmpl, CK_ULONG count, Lookup&& lookup) {
  bool sensitive = false, invalid = false, too_small = false;
  for (CK_ULONG i = 0; i < count; i++) {
    CK_ATTRIBUTE& a = tmpl[i];
    const std::vector<uint8_t>* value = nullptr;
    switch (lookup(a.type, value)) {
      case AttrState::Sensitive:
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        sensitive = true;
        break;
      case AttrState::Missing:
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        invalid = true;
        break;
      case AttrState::Present: {
        Status answer;
        if (two_call(value->size(), a.pValue, &a.ulValueLen, answer)) {
          if (!value->empty()) memcpy(a.pValue, value->data(), value->size());
        } else if (!answer.ok()) {
          a.ulValueLen = CK_UNAVAILABLE_INFORMATION;  // case 5: not the length (unlike §5.2)
          too_small = true;
        }
        break;
      }
    }
  }
  if (sensitive) return CKR_ATTRIBUTE_SENSITIVE;
  if (invalid) return CKR_ATTRIBUTE_TYPE_INVALID;
  if (too_small) return CKR_BUFFER_TOO_SMALL;
  return CKR_OK;
}

}  // namespace sb
