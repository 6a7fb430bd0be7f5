// The two conventions every output goes through, each written once (STYLE.md "errors know
// their extra data").
#pragma once
#include <cstring>
#include <vector>

#include "p11.h"

namespace sb {

// v2.40 §5.2 (two-call convention): NULL buffer → length only; short buffer →
// CKR_BUFFER_TOO_SMALL with the length set; otherwise the caller copies `needed` units.
// `needed` and *io_len count units (bytes, slot IDs, mechanism types).
enum class Output { LengthOnly, TooSmall, Fits };
inline Output two_call(CK_ULONG needed, const void* out, CK_ULONG_PTR io_len) {
  if (!out) {
    *io_len = needed;
    return Output::LengthOnly;
  }
  if (*io_len < needed) {
    *io_len = needed;
    return Output::TooSmall;
  }
  *io_len = needed;
  return Output::Fits;
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
      case AttrState::Present:
        if (!a.pValue) {
          a.ulValueLen = value->size();
        } else if (a.ulValueLen >= value->size()) {
          if (!value->empty()) memcpy(a.pValue, value->data(), value->size());
          a.ulValueLen = value->size();
        } else {
          a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
          too_small = true;
        }
        break;
    }
  }
  if (sensitive) return CKR_ATTRIBUTE_SENSITIVE;
  if (invalid) return CKR_ATTRIBUTE_TYPE_INVALID;
  if (too_small) return CKR_BUFFER_TOO_SMALL;
  return CKR_OK;
}

}  // namespace sb
