#include "ksp_core.h"

#include <cctype>
#include <cstring>

#include "../pkcs11/digest_info.h"
#include "../pkcs11/inventory.h"
#include "../pkcs11/p11.h"

namespace sb::ksp {

namespace {

// protocol.md "GET_INVENTORY": CK_ULONG attributes are 8-byte little-endian on the wire.
bool wire_ulong(const proto::Object& o, uint64_t type, uint64_t& out) {
  for (const proto::Attribute& a : o.attributes) {
    if (a.type != type || a.value.size() != 8) continue;
    out = 0;
    for (int i = 7; i >= 0; --i) out = (out << 8) | a.value[i];
    return true;
  }
  return false;
}

const proto::Bytes* attr(const proto::Object& o, uint64_t type) {
  for (const proto::Attribute& a : o.attributes)
    if (a.type == type) return &a.value;
  return nullptr;
}

bool flag(const proto::Object& o, uint64_t type) {
  const proto::Bytes* v = attr(o, type);
  return v && v->size() == 1 && (*v)[0] != 0;
}

// Significant bits of a big-endian unsigned integer (CKA_MODULUS).
uint32_t bit_length(const proto::Bytes& v) {
  size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  if (i == v.size()) return 0;
  uint32_t bits = static_cast<uint32_t>((v.size() - i) * 8);
  for (uint8_t top = v[i]; !(top & 0x80); top <<= 1) --bits;
  return bits;
}

bool fill_key(const proto::Object& o, Key& k) {
  uint64_t kt = 0;
  if (!wire_ulong(o, CKA_KEY_TYPE, kt)) return false;
  if (kt == CKK_RSA) {
    const proto::Bytes* mod = attr(o, CKA_MODULUS);
    if (!mod) return false;
    k.alg = KeyAlg::Rsa;
    k.bits = bit_length(*mod);
    k.signature_len = (k.bits + 7) / 8;
  } else if (kt == CKK_EC) {
    const proto::Bytes* params = attr(o, CKA_EC_PARAMS);
    size_t field = params ? ec_field_bytes(params->data(), params->size()) : 0;
    if (field != 32 && field != 48) return false;  // CNG's ECDSA_P256 / ECDSA_P384
    k.alg = KeyAlg::Ec;
    k.bits = static_cast<uint32_t>(field * 8);
    k.signature_len = 2 * field;
  } else {
    return false;
  }
  return k.bits != 0;
}

struct HashInfo {
  const char* cng;  // BCRYPT_SHA256_ALGORITHM, …
  HashAlg alg;      // for DigestInfo (None: SHA-1, built from its own prefix below)
  uint64_t ckm, mgf;
  size_t len;
};

constexpr HashInfo HASHES[] = {
    {"SHA1", HashAlg::None, CKM_SHA_1, CKG_MGF1_SHA1, 20},
    {"SHA256", HashAlg::Sha256, CKM_SHA256, CKG_MGF1_SHA256, 32},
    {"SHA384", HashAlg::Sha384, CKM_SHA384, CKG_MGF1_SHA384, 48},
    {"SHA512", HashAlg::Sha512, CKM_SHA512, CKG_MGF1_SHA512, 64},
};

const HashInfo* hash_by_name(const std::string& name) {
  for (const HashInfo& h : HASHES) {
    if (name.size() != strlen(h.cng)) continue;
    bool same = true;
    for (size_t i = 0; i < name.size(); ++i)
      same = same && std::toupper(static_cast<unsigned char>(name[i])) == h.cng[i];
    if (same) return &h;
  }
  return nullptr;
}

const HashInfo* hash_by_len(size_t n) {
  for (const HashInfo& h : HASHES)
    if (h.len == n) return &h;
  return nullptr;
}

// RFC 8017 §9.2 note 1: the SHA-1 DigestInfo prefix (the SHA-2 ones come from digest_info.cpp).
constexpr uint8_t SHA1_PREFIX[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                   0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};

Error fail(int32_t code, std::string msg) { return Error{code, std::move(msg)}; }

}  // namespace

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::vector<Key> keys_from_inventory(const proto::InventoryReply& inv) {
  std::vector<Key> keys;
  for (const proto::Slot& slot : inv.slots) {
    for (const proto::Object& o : slot.objects) {
      uint64_t cls = 0;
      if (!wire_ulong(o, CKA_CLASS, cls) || cls != CKO_PRIVATE_KEY || !flag(o, CKA_SIGN)) continue;
      Key k;
      if (!fill_key(o, k) || o.key_handle.empty()) continue;
      if (const proto::Bytes* label = attr(o, CKA_LABEL)) k.name.assign(label->begin(), label->end());
      const proto::Bytes* id = attr(o, CKA_ID);
      if (id) k.id_hex = to_hex(id->data(), id->size());
      if (k.name.empty()) k.name = k.id_hex;
      if (k.name.empty()) continue;  // nothing a caller could name it by
      k.key_handle = o.key_handle;
      // The certificate of the same slot with the same CKA_ID (how the daemon pairs them).
      for (const proto::Object& c : slot.objects) {
        uint64_t ccls = 0;
        const proto::Bytes* cid = attr(c, CKA_ID);
        const proto::Bytes* der = attr(c, CKA_VALUE);
        if (wire_ulong(c, CKA_CLASS, ccls) && ccls == CKO_CERTIFICATE && id && cid && *cid == *id && der) {
          k.certificate = *der;
          break;
        }
      }
      keys.push_back(std::move(k));
    }
  }
  return keys;
}

const Key* find_key(const std::vector<Key>& keys, const std::string& name) {
  for (const Key& k : keys)
    if (k.name == name) return &k;
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Key& k : keys)
    if (!k.id_hex.empty() && k.id_hex == lower) return &k;
  return nullptr;
}

const char* algorithm_group(const Key& k) { return k.alg == KeyAlg::Rsa ? "RSA" : "ECDSA"; }

const char* algorithm_name(const Key& k) {
  if (k.alg == KeyAlg::Rsa) return "RSA";
  return k.bits == 384 ? "ECDSA_P384" : "ECDSA_P256";
}

Error plan_sign(const Key& k, const SignHashArgs& a, SignPlan& out) {
  if (!a.hash || a.hash_len == 0) return fail(nte::INVALID_PARAMETER, "SignHash: no hash given");
  if (k.alg == KeyAlg::Ec) {
    // CNG signs ECDSA without padding info; the hash length names the hash.
    if (a.padding != Padding::None)
      return fail(nte::BAD_FLAGS, "SignHash: ECDSA key '" + k.name + "' takes no padding (dwFlags must not name BCRYPT_PAD_*)");
    const HashInfo* h = hash_by_len(a.hash_len);
    if (!h) return fail(nte::BAD_DATA, "SignHash: a " + std::to_string(a.hash_len) + "-byte hash is not SHA-1/256/384/512");
    out = SignPlan{CKM_ECDSA, h->ckm, 0, 0, proto::Bytes(a.hash, a.hash + a.hash_len)};
    return {};
  }
  if (a.padding == Padding::None)
    return fail(nte::INVALID_PARAMETER, "SignHash: RSA key '" + k.name + "' needs BCRYPT_PAD_PKCS1 or BCRYPT_PAD_PSS with its padding info");
  if (a.padding == Padding::Pkcs1 && !a.has_alg) {
    // No pszAlgId: the caller passes the DigestInfo itself (CNG's raw PKCS#1 form).
    uint64_t inner = digest_info_hash(a.hash, a.hash_len);
    if (!inner) return fail(nte::BAD_DATA, "SignHash: PKCS#1 without pszAlgId needs a DigestInfo as input; name the hash in BCRYPT_PKCS1_PADDING_INFO");
    out = SignPlan{CKM_RSA_PKCS, inner, 0, 0, proto::Bytes(a.hash, a.hash + a.hash_len)};
    return {};
  }
  const HashInfo* h = hash_by_name(a.alg_id);
  if (!h) return fail(nte::BAD_ALGID, "SignHash: hash algorithm '" + a.alg_id + "' is not SHA1, SHA256, SHA384 or SHA512");
  if (a.hash_len != h->len)
    return fail(nte::BAD_DATA, "SignHash: " + std::to_string(a.hash_len) + " bytes is not a " + a.alg_id + " hash (" + std::to_string(h->len) + " bytes)");
  if (a.padding == Padding::Pss) {
    size_t mod = k.signature_len;
    if (mod < h->len + 2 || a.salt_len > mod - h->len - 2)
      return fail(nte::INVALID_PARAMETER, "SignHash: PSS salt of " + std::to_string(a.salt_len) + " bytes does not fit key '" + k.name + "'");
    out = SignPlan{CKM_RSA_PKCS_PSS, h->ckm, h->mgf, a.salt_len, proto::Bytes(a.hash, a.hash + a.hash_len)};
    return {};
  }
  proto::Bytes di;
  if (h->alg == HashAlg::None) {
    di.assign(SHA1_PREFIX, SHA1_PREFIX + sizeof SHA1_PREFIX);
    di.insert(di.end(), a.hash, a.hash + a.hash_len);
  } else {
    di.resize(MAX_DIGEST_INFO);
    di.resize(build_digest_info(h->alg, a.hash, di.data()));
  }
  out = SignPlan{CKM_RSA_PKCS, h->ckm, 0, 0, std::move(di)};
  return {};
}

int32_t status_for_rv(uint64_t rv) {
  switch (rv) {
    case CKR_OK: return nte::OK;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_FUNCTION_FAILED:
    case CKR_TOKEN_NOT_PRESENT: return nte::DEVICE_NOT_READY;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID: return nte::BAD_KEYSET;
    case CKR_MECHANISM_INVALID:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return nte::NOT_SUPPORTED;
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_ARGUMENTS_BAD: return nte::INVALID_PARAMETER;
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE: return nte::BAD_DATA;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
    case CKR_USER_NOT_LOGGED_IN: return nte::PERM;
    default: return nte::FAIL;
  }
}

}  // namespace sb::ksp
