// The platform-neutral half of the KSP: which keys the daemon offers (from one GET_INVENTORY
// reply) and how a CNG SignHash call becomes the daemon's SIGN request. No Windows types here,
// so it is unit-tested natively (test/native/ksp_core_test.cpp); the CNG side is ksp_*.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../common/messages.h"

namespace sb::ksp {

// SECURITY_STATUS values the core returns (winerror.h; the same numbers on every platform).
namespace nte {
constexpr int32_t OK = 0;
constexpr int32_t BAD_DATA = static_cast<int32_t>(0x80090005);
constexpr int32_t BAD_ALGID = static_cast<int32_t>(0x80090008);
constexpr int32_t BAD_FLAGS = static_cast<int32_t>(0x80090009);
constexpr int32_t PERM = static_cast<int32_t>(0x80090010);
constexpr int32_t BAD_KEYSET = static_cast<int32_t>(0x80090016);
constexpr int32_t FAIL = static_cast<int32_t>(0x80090020);
constexpr int32_t INVALID_PARAMETER = static_cast<int32_t>(0x80090027);
constexpr int32_t NOT_SUPPORTED = static_cast<int32_t>(0x80090029);
constexpr int32_t DEVICE_NOT_READY = static_cast<int32_t>(0x80090030);
}  // namespace nte

// A failure with the sentence the log file gets (never a secret).
struct Error {
  int32_t code = nte::OK;
  std::string message;
  bool ok() const { return code == nte::OK; }
};

enum class KeyAlg { Rsa, Ec };

struct Key {
  std::string name;          // CKA_LABEL: the CNG key name (what signtool's /kc names)
  std::string id_hex;        // CKA_ID in lowercase hex: accepted as a name too
  proto::Bytes key_handle;   // the daemon's handle for SIGN
  KeyAlg alg = KeyAlg::Rsa;
  uint32_t bits = 0;         // RSA modulus bits, or the curve's field bits (256, 384)
  size_t signature_len = 0;  // modulus bytes, or 2 × field bytes (r‖s)
  proto::Bytes certificate;  // DER of the certificate with the same CKA_ID; may be empty
};

// The signing keys of every slot, in inventory order. Keys of other types (EdDSA, unknown
// curves) are left out: CNG has no key storage algorithm for them here.
std::vector<Key> keys_from_inventory(const proto::InventoryReply& inv);

// By label first, then by hex CKA_ID (case-insensitive); nullptr when none.
const Key* find_key(const std::vector<Key>& keys, const std::string& name);

// CNG's algorithm names for a key: "RSA" / "ECDSA" group, "RSA" / "ECDSA_P256" / "ECDSA_P384".
const char* algorithm_group(const Key& k);
const char* algorithm_name(const Key& k);

// Which padding info SignHash was given (BCRYPT_PAD_* in dwFlags).
enum class Padding { None, Pkcs1, Pss };

struct SignHashArgs {
  Padding padding = Padding::None;
  bool has_alg = false;     // pszAlgId was not NULL
  std::string alg_id;       // pszAlgId in ASCII: "SHA256", …
  uint32_t salt_len = 0;    // BCRYPT_PSS_PADDING_INFO.cbSalt
  const uint8_t* hash = nullptr;
  size_t hash_len = 0;
};

// The daemon's SIGN parameters (protocol.md "SIGN").
struct SignPlan {
  uint64_t mechanism = 0, hash_alg = 0, mgf = 0;
  uint32_t salt_len = 0;
  proto::Bytes data;
};

// PKCS#1 v1.5: DigestInfo(hash named by pszAlgId) with CKM_RSA_PKCS; PSS: the hash with
// CKM_RSA_PKCS_PSS, MGF1 over the same hash, cbSalt; ECDSA: the hash with CKM_ECDSA (the
// daemon answers r‖s, the form CNG returns).
Error plan_sign(const Key& k, const SignHashArgs& a, SignPlan& out);

// The SECURITY_STATUS for a CK_RV from the daemon client.
int32_t status_for_rv(uint64_t rv);

std::string to_hex(const uint8_t* p, size_t n);

}  // namespace sb::ksp
