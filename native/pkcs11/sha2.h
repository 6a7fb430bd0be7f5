// SHA-256/384/512 (FIPS 180-4), incremental, for hash-and-sign and multi-part signing
// (design.md: the module hashes; OpenSSL is not linked into the module).
#pragma once
#include <cstddef>
#include <cstdint>

namespace sb {

enum class HashAlg { None, Sha256, Sha384, Sha512 };

class Sha2 {
 public:
  void init(HashAlg alg);
  void update(const uint8_t* p, size_t n);
  // Writes digest_size() bytes to out; the object must be init()ed again before reuse.
  void final(uint8_t* out);
  size_t digest_size() const;
  HashAlg alg() const { return alg_; }

 private:
  void block256(const uint8_t* p);
  void block512(const uint8_t* p);
  HashAlg alg_ = HashAlg::None;
  uint32_t h32_[8];
  uint64_t h64_[8];
  uint8_t buf_[128];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes hashed (messages over 2^61 bytes are not a concern here)
};

size_t hash_size(HashAlg alg);

}  // namespace sb
