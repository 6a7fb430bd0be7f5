// The module's model of slots, mechanisms and objects, built from one GET_INVENTORY reply
// (design.md "Module behaviour": fetched once, cached until C_Finalize).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../common/messages.h"
#include "p11.h"
#include "status.h"

namespace sb {

// Signing facts derived locally from the private key's attributes, so that length queries
// and C_SignInit checks need no round trip.
struct KeyFacts {
  CK_KEY_TYPE key_type = CK_UNAVAILABLE_INFORMATION;
  size_t modulus_bytes = 0;  // RSA
  size_t field_bytes = 0;    // EC (Weierstrass)
  size_t signature_len = 0;  // 0: unknown size/curve, cannot sign
  bool sign = false;         // CKA_SIGN
  bool always_authenticate = false;  // CKA_ALWAYS_AUTHENTICATE: C_Login(CKU_CONTEXT_SPECIFIC) per operation
  bool has_allowed = false;  // CKA_ALLOWED_MECHANISMS present
  std::vector<CK_MECHANISM_TYPE> allowed;
};

using Value = std::vector<uint8_t>;

struct ObjectRec {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_SLOT_ID slot = 0;
  CK_OBJECT_CLASS cls = CK_UNAVAILABLE_INFORMATION;
  bool is_private = false;  // CKA_PRIVATE
  proto::Bytes key_handle;
  std::vector<std::pair<CK_ATTRIBUTE_TYPE, Value>> attrs;  // values in native CK_ULONG width
  KeyFacts key;                                           // private keys only
  std::string identity;                                   // to keep handles across re-fetches

  const Value* find(CK_ATTRIBUTE_TYPE t) const;
  bool is_sensitive(CK_ATTRIBUTE_TYPE t) const;
  bool is_key() const {
    return cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY || cls == CKO_SECRET_KEY;
  }
};

struct SlotRec {
  CK_SLOT_ID id = 0;
  std::string description, manufacturer, label, model, serial;
  CK_FLAGS token_flags = 0;
  std::vector<proto::Mechanism> mechanisms;
  std::vector<CK_OBJECT_HANDLE> objects;  // in inventory order
  const proto::Mechanism* mechanism(CK_MECHANISM_TYPE t) const;
};

struct Inventory {
  uint64_t generation = 0;
  std::vector<SlotRec> slots;
  std::unordered_map<CK_OBJECT_HANDLE, ObjectRec> objects;
  const SlotRec* slot(CK_SLOT_ID id) const;
  const ObjectRec* object(CK_OBJECT_HANDLE h) const;
};

// Converts a decoded reply into the model. Objects also present in `previous` (same slot,
// key_handle and attributes) keep their handle; others take fresh numbers from `next_handle`,
// so a handle is never 0 and never reused (libp11 treats handle 0 as "none").
Result<std::shared_ptr<const Inventory>> build_inventory(proto::InventoryReply&& reply,
                                                          const Inventory* previous,
                                                          CK_OBJECT_HANDLE& next_handle);

// EC field size in bytes from DER CKA_EC_PARAMS (named curve OID); 0 if unknown.
size_t ec_field_bytes(const uint8_t* p, size_t n);
// EdDSA signature length from CKA_EC_PARAMS (OID or printable curve name); 0 if unknown.
size_t eddsa_signature_len(const uint8_t* p, size_t n);

}  // namespace sb
