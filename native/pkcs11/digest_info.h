// PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2 note 1): recognise the prefix of a CKM_RSA_PKCS input
// to report hash_alg to the daemon, and build it for CKM_SHAxxx_RSA_PKCS.
#pragma once
#include <cstddef>
#include <cstdint>

#include "p11.h"
#include "sha2.h"

namespace sb {

constexpr size_t MAX_DIGEST_INFO = 19 + 64;

// CKM_SHA_1 / CKM_SHA224 / CKM_SHA256 / CKM_SHA384 / CKM_SHA512 when p is exactly a DigestInfo
// of that hash; 0 otherwise (raw input).
CK_MECHANISM_TYPE digest_info_hash(const uint8_t* p, size_t n);

// Writes DigestInfo(alg, digest) to out (at least MAX_DIGEST_INFO bytes); returns its length.
size_t build_digest_info(HashAlg alg, const uint8_t* digest, uint8_t* out);

CK_MECHANISM_TYPE hash_mechanism(HashAlg alg);  // CKM_SHA256 ...; 0 for None

}  // namespace sb
