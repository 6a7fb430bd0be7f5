// Signing operations: C_SignInit's local checks and the reduction of every mechanism to one
// of the four SIGN primitives (docs/protocol.md "SIGN"), with module-side hashing.
#pragma once
#include <memory>
#include <vector>

#include "../common/messages.h"
#include "digest_info.h"
#include "inventory.h"
#include "sha2.h"
#include "status.h"

namespace sb {

struct SignOp {
  CK_MECHANISM_TYPE mechanism = 0;
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  uint64_t primitive = 0;         // CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_ECDSA or CKM_EDDSA
  HashAlg hash = HashAlg::None;   // hash-and-sign: the module hashes the data
  CK_MECHANISM_TYPE pss_hash = 0; // PSS: params.hashAlg
  uint64_t mgf = 0;
  uint32_t salt_len = 0;
  size_t signature_len = 0;
  size_t modulus_bytes = 0;
  proto::Bytes key_handle;
  Sha2 sha;             // running digest for C_SignUpdate
  std::vector<uint8_t> message;  // CKM_EDDSA multi-part: the message so far (bounded by MAX_SIGN_DATA)
  bool updated = false; // C_SignUpdate was called: C_Sign is no longer allowed
  bool busy = false;    // a thread works on it with the state lock released
  // PKCS#11 v2.40 §4.9 CKA_ALWAYS_AUTHENTICATE: the key wants C_Login(CKU_CONTEXT_SPECIFIC) after
  // C_SignInit; the daemon turns it into an authorisation (protocol.md "AUTHORIZE").
  bool always_authenticate = false;
  // The last context-specific login of this operation failed: C_Sign refuses, nothing is signed.
  bool auth_failed = false;

  // Multi-part (C_SignUpdate/C_SignFinal): the hash-and-sign mechanisms, whose data the module
  // hashes incrementally, and CKM_EDDSA, whose message it buffers — PureEdDSA needs the whole
  // message at once, and pkcs11-tool switches to C_SignUpdate for inputs over 1 KiB.
  // CKM_RSA_PKCS, CKM_RSA_PKCS_PSS and CKM_ECDSA take a digest: single-part (v2.40 §2.1, §2.3).
  bool buffers_message() const { return primitive == CKM_EDDSA; }
  bool multipart() const { return hash != HashAlg::None || buffers_message(); }
};

// C_SignInit checks, all local (no round trip). `key` must be a visible object.
Result<std::unique_ptr<SignOp>> make_sign_op(const SlotRec& slot, const ObjectRec& key,
                                             const CK_MECHANISM& mech);

// What goes in the SIGN request's data field.
struct SignInput {
  const uint8_t* data = nullptr;
  size_t len = 0;
  uint64_t hash_alg = 0;
  uint8_t scratch[MAX_DIGEST_INFO];
};

// Single-part C_Sign input (hashes it for hash-and-sign mechanisms).
Status single_part_input(SignOp& op, const uint8_t* data, size_t n, SignInput& in);
// C_SignUpdate's data: into the running digest, or the EdDSA message buffer.
Status update_input(SignOp& op, const uint8_t* data, size_t n);
// C_SignFinal: from the running digest or the buffered EdDSA message.
Status final_input(SignOp& op, SignInput& in);

}  // namespace sb
