// Signing operations: C_SignInit's local checks and the reduction of every mechanism to one
// of the four SIGN primitives (docs/protocol.md "SIGN"), with module-side hashing.
#pragma once
#include <memory>

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
  bool updated = false; // C_SignUpdate was called: C_Sign is no longer allowed
  bool busy = false;    // a thread works on it with the state lock released

  // Multi-part (C_SignUpdate/C_SignFinal) only for the hash-and-sign mechanisms, whose
  // data the module hashes incrementally. CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_ECDSA and
  // CKM_EDDSA are single-part in PKCS#11 v2.40 §2.1 / 3.0 §2.3 mechanism tables.
  bool multipart() const { return hash != HashAlg::None; }
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
// C_SignFinal: from the running digest.
Status final_input(SignOp& op, SignInput& in);

}  // namespace sb
