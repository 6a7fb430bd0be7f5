#include "inventory.h"

#include <algorithm>
#include <cstring>
#include <limits>

#ifndef CKA_NAME_HASH_ALGORITHM
#define CKA_NAME_HASH_ALGORITHM 0x0000008CUL  // PKCS#11 3.0
#endif

namespace sb {

namespace {

// protocol.md "GET_INVENTORY": CK_ULONG attributes travel as 8-byte little-endian.
bool is_ulong_attribute(CK_ATTRIBUTE_TYPE t) {
  switch (t) {
    case CKA_CLASS: case CKA_KEY_TYPE: case CKA_CERTIFICATE_TYPE: case CKA_CERTIFICATE_CATEGORY:
    case CKA_MODULUS_BITS: case CKA_JAVA_MIDP_SECURITY_DOMAIN: case CKA_KEY_GEN_MECHANISM:
    case CKA_NAME_HASH_ALGORITHM:
      return true;
    default:
      return false;
  }
}

// Private-key attributes that are never revealed (v2.40 §5.7 case 1).
bool is_sensitive_private(CK_ATTRIBUTE_TYPE t) {
  switch (t) {
    case CKA_PRIVATE_EXPONENT: case CKA_PRIME_1: case CKA_PRIME_2: case CKA_EXPONENT_1:
    case CKA_EXPONENT_2: case CKA_COEFFICIENT: case CKA_VALUE:
      return true;
    default:
      return false;
  }
}

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

Value native_ulongs(const uint8_t* p, size_t count) {
  Value out(count * sizeof(CK_ULONG));
  for (size_t i = 0; i < count; i++) {
    CK_ULONG v = static_cast<CK_ULONG>(le64(p + 8 * i));
    memcpy(out.data() + i * sizeof(CK_ULONG), &v, sizeof v);
  }
  return out;
}

bool fits_ulong(const uint8_t* p, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (le64(p + 8 * i) > std::numeric_limits<CK_ULONG>::max()) return false;
  return true;
}

CK_ULONG read_ulong(const Value& v) {
  CK_ULONG x = 0;
  if (v.size() == sizeof x) memcpy(&x, v.data(), sizeof x);
  return x;
}

bool read_bool(const Value* v, bool fallback) { return v && !v->empty() ? (*v)[0] != 0 : fallback; }

bool equals(const uint8_t* p, size_t n, std::initializer_list<uint8_t> want) {
  return n == want.size() && std::equal(want.begin(), want.end(), p);
}

KeyFacts derive_facts(const ObjectRec& o) {
  KeyFacts k;
  if (const Value* v = o.find(CKA_KEY_TYPE)) k.key_type = read_ulong(*v);
  k.sign = read_bool(o.find(CKA_SIGN), !o.key_handle.empty());
  k.always_authenticate = read_bool(o.find(CKA_ALWAYS_AUTHENTICATE), false);
  if (const Value* v = o.find(CKA_ALLOWED_MECHANISMS)) {
    k.has_allowed = true;
    for (size_t i = 0; i + sizeof(CK_ULONG) <= v->size(); i += sizeof(CK_ULONG)) {
      CK_ULONG m;
      memcpy(&m, v->data() + i, sizeof m);
      k.allowed.push_back(m);
    }
  }
  if (k.key_type == CKK_RSA) {
    if (const Value* m = o.find(CKA_MODULUS)) {
      size_t i = 0;
      while (i < m->size() && (*m)[i] == 0) i++;  // an unsigned big-endian integer
      k.modulus_bytes = m->size() - i;
    } else if (const Value* bits = o.find(CKA_MODULUS_BITS)) {
      k.modulus_bytes = (read_ulong(*bits) + 7) / 8;
    }
    k.signature_len = k.modulus_bytes;
  } else if (k.key_type == CKK_EC) {
    if (const Value* p = o.find(CKA_EC_PARAMS)) k.field_bytes = ec_field_bytes(p->data(), p->size());
    k.signature_len = 2 * k.field_bytes;  // raw r‖s (v2.40 §2.3.1)
  } else if (k.key_type == CKK_EC_EDWARDS) {
    if (const Value* p = o.find(CKA_EC_PARAMS)) k.signature_len = eddsa_signature_len(p->data(), p->size());
  }
  return k;
}

std::string identity_of(CK_SLOT_ID slot, const proto::Object& o) {
  std::string id(reinterpret_cast<const char*>(&slot), sizeof slot);
  auto add = [&](const uint8_t* p, size_t n) {
    uint32_t len = static_cast<uint32_t>(n);
    id.append(reinterpret_cast<const char*>(&len), sizeof len);
    id.append(reinterpret_cast<const char*>(p), n);
  };
  add(o.key_handle.data(), o.key_handle.size());
  for (const auto& a : o.attributes) {
    id.append(reinterpret_cast<const char*>(&a.type), sizeof a.type);
    add(a.value.data(), a.value.size());
  }
  return id;
}

// Mechanisms the module serves by itself: the digests it computes anyway for hash-and-sign
// (sha2.cpp), listed in every slot that offers a hash-and-sign mechanism, after the daemon's
// list. A real token lists its digests too, and SunPKCS11 offers RSASSA-PSS only when
// C_GetMechanismInfo(CKM_SHAxxx) succeeds (P11PSSSignature.setSigParams). Key sizes are 0:
// digests use no key.
void add_local_mechanisms(std::vector<proto::Mechanism>& list) {
  static constexpr CK_MECHANISM_TYPE HASH_AND_SIGN[] = {
      CKM_SHA256_RSA_PKCS,     CKM_SHA384_RSA_PKCS,     CKM_SHA512_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS,
      CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS, CKM_ECDSA_SHA256,    CKM_ECDSA_SHA384,
      CKM_ECDSA_SHA512};
  auto listed = [&](CK_MECHANISM_TYPE t) {
    return std::any_of(list.begin(), list.end(), [&](const proto::Mechanism& m) { return m.type == t; });
  };
  if (!std::any_of(std::begin(HASH_AND_SIGN), std::end(HASH_AND_SIGN), listed)) return;
  for (CK_MECHANISM_TYPE t : {CKM_SHA256, CKM_SHA384, CKM_SHA512})
    if (!listed(t)) list.push_back(proto::Mechanism{t, 0, 0, CKF_DIGEST});
}

}  // namespace

size_t ec_field_bytes(const uint8_t* p, size_t n) {
  if (equals(p, n, {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})) return 32;  // P-256
  if (equals(p, n, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22})) return 48;                    // P-384
  if (equals(p, n, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23})) return 66;                    // P-521
  if (equals(p, n, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a})) return 32;                    // secp256k1
  return 0;
}

size_t eddsa_signature_len(const uint8_t* p, size_t n) {
  // RFC 8410 OIDs, or the PrintableString curve names PKCS#11 3.0 §2.3.10 also allows.
  if (equals(p, n, {0x06, 0x03, 0x2b, 0x65, 0x70})) return 64;  // 1.3.101.112 Ed25519
  if (equals(p, n, {0x06, 0x03, 0x2b, 0x65, 0x71})) return 114; // 1.3.101.113 Ed448
  static const char k25519[] = "edwards25519";
  static const char k448[] = "edwards448";
  if (n == 2 + 12 && p[0] == 0x13 && p[1] == 12 && memcmp(p + 2, k25519, 12) == 0) return 64;
  if (n == 2 + 10 && p[0] == 0x13 && p[1] == 10 && memcmp(p + 2, k448, 10) == 0) return 114;
  return 0;
}

const Value* ObjectRec::find(CK_ATTRIBUTE_TYPE t) const {
  for (const auto& a : attrs)
    if (a.first == t) return &a.second;
  return nullptr;
}

bool ObjectRec::is_sensitive(CK_ATTRIBUTE_TYPE t) const {
  return cls == CKO_PRIVATE_KEY && is_sensitive_private(t);
}

const proto::Mechanism* SlotRec::mechanism(CK_MECHANISM_TYPE t) const {
  for (const auto& m : mechanisms)
    if (m.type == t) return &m;
  return nullptr;
}

const SlotRec* Inventory::slot(CK_SLOT_ID id) const {
  for (const auto& s : slots)
    if (s.id == id) return &s;
  return nullptr;
}

const ObjectRec* Inventory::object(CK_OBJECT_HANDLE h) const {
  auto it = objects.find(h);
  return it == objects.end() ? nullptr : &it->second;
}

Result<std::shared_ptr<const Inventory>> build_inventory(proto::InventoryReply&& reply,
                                                          const Inventory* previous,
                                                          CK_OBJECT_HANDLE& next_handle) {
  auto inv = std::make_shared<Inventory>();
  inv->generation = reply.generation;
  std::map<std::string, CK_OBJECT_HANDLE> kept;
  if (previous)
    for (const auto& [h, o] : previous->objects) kept.emplace(o.identity, h);

  for (proto::Slot& s : reply.slots) {
    if (inv->slot(s.slot_id))
      return Status(CKR_DEVICE_ERROR, "the daemon's inventory lists slot " + std::to_string(s.slot_id) + " twice");
    SlotRec slot;
    slot.id = s.slot_id;
    slot.description = std::move(s.slot_description);
    slot.manufacturer = std::move(s.manufacturer);
    slot.label = std::move(s.token_label);
    slot.model = std::move(s.token_model);
    slot.serial = std::move(s.token_serial);
    slot.token_flags = s.token_flags;
    // The wire's types are 8 bytes; CK_ULONG is 4 on Windows (LLP64): a value that does not fit
    // would alias another mechanism or attribute, so it is refused, not truncated.
    for (const proto::Mechanism& m : s.mechanisms)
      if (m.type > std::numeric_limits<CK_ULONG>::max())
        return Status(CKR_DEVICE_ERROR, "the daemon sent a mechanism type that does not fit this platform's CK_ULONG");
    slot.mechanisms = std::move(s.mechanisms);
    add_local_mechanisms(slot.mechanisms);
    for (proto::Object& po : s.objects) {
      ObjectRec o;
      o.slot = slot.id;
      o.identity = identity_of(slot.id, po);
      o.key_handle = std::move(po.key_handle);
      for (proto::Attribute& a : po.attributes) {
        if (a.type > std::numeric_limits<CK_ULONG>::max())
          return Status(CKR_DEVICE_ERROR, "the daemon sent an attribute type that does not fit this platform's CK_ULONG");
        CK_ATTRIBUTE_TYPE t = static_cast<CK_ATTRIBUTE_TYPE>(a.type);
        Value v;
        if (is_ulong_attribute(t)) {
          if (a.value.size() != 8 || !fits_ulong(a.value.data(), 1))
            return Status(CKR_DEVICE_ERROR, "the daemon sent a CK_ULONG attribute that is not 8 bytes");
          v = native_ulongs(a.value.data(), 1);
        } else if (t == CKA_ALLOWED_MECHANISMS) {
          if (a.value.size() % 8 != 0 || !fits_ulong(a.value.data(), a.value.size() / 8))
            return Status(CKR_DEVICE_ERROR, "the daemon sent CKA_ALLOWED_MECHANISMS not made of 8-byte values");
          v = native_ulongs(a.value.data(), a.value.size() / 8);
        } else {
          v = std::move(a.value);
        }
        o.attrs.emplace_back(t, std::move(v));
      }
      if (const Value* c = o.find(CKA_CLASS)) o.cls = read_ulong(*c);
      // Sensitive values must never leave the module, even if a daemon sent them.
      o.attrs.erase(std::remove_if(o.attrs.begin(), o.attrs.end(),
                                   [&](const auto& a) { return o.is_sensitive(a.first); }),
                    o.attrs.end());
      o.is_private = read_bool(o.find(CKA_PRIVATE), o.cls == CKO_PRIVATE_KEY);
      if (o.cls == CKO_PRIVATE_KEY) o.key = derive_facts(o);
      auto k = kept.find(o.identity);
      if (k != kept.end()) {
        o.handle = k->second;
        kept.erase(k);  // a duplicate object in the new reply gets its own handle
      } else {
        o.handle = next_handle++;
      }
      slot.objects.push_back(o.handle);
      inv->objects.emplace(o.handle, std::move(o));
    }
    inv->slots.push_back(std::move(slot));
  }
  return std::shared_ptr<const Inventory>(std::move(inv));
}

}  // namespace sb
