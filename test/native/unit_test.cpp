// sb_unit_test: SHA-256/384/512 against FIPS 180 example vectors (expected values from an
// independent implementation), incremental hashing split at every byte, DigestInfo
// round trips, key facts from CKA_EC_PARAMS, CK_RV names, the two-call helper and the
// RETURN_IF_ERROR / ASSIGN_OR_RETURN macros.
//   sb_unit_test --rv-name <value>...   prints rv_name() of each value, one per line (the TS test
//                                       test/unit/ckr-names.test.ts feeds it every CKR_ the module uses)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../pkcs11/digest_info.h"
#include "../pkcs11/inventory.h"
#include "../pkcs11/sha2.h"
#include "../pkcs11/status.h"
#include "../pkcs11/templates.h"

using namespace sb;

static int checks = 0, failed = 0;
static void expect(bool ok, const std::string& what) {
  checks++;
  if (!ok) { failed++; fprintf(stderr, "FAIL: %s\n", what.c_str()); }
}

static std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) { s += d[p[i] >> 4]; s += d[p[i] & 15]; }
  return s;
}

static std::string digest(HashAlg alg, const std::string& msg, size_t chunk) {
  Sha2 h;
  h.init(alg);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(msg.data());
  size_t n = msg.size();
  if (chunk == 0) h.update(p, n);
  else for (size_t i = 0; i < n; i += chunk) h.update(p + i, n - i < chunk ? n - i : chunk);
  uint8_t out[64];
  h.final(out);
  return hex(out, h.digest_size());
}

struct Vector { const char* text; size_t repeat; const char* sha256; const char* sha384; const char* sha512; };
static const Vector VECTORS[] = {
    {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
    {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6b0455a8520bc4e6f5fe95b1fe3c8452b", "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c33596fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 1, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039", "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"},
    {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b07b8b3dc38ecc4ebae97ddd87f3d8985", "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"},
};

static Result<int> half(int v) {
  if (v % 2) return Status(CKR_DATA_LEN_RANGE, "odd");
  return v / 2;
}
static Status quarter(int v, int& out) {
  ASSIGN_OR_RETURN(int h, half(v));
  ASSIGN_OR_RETURN(out, half(h));
  return Status::Ok();
}
static Status first_error(const Status& a, const Status& b, int& reached) {
  reached = 0;
  RETURN_IF_ERROR(a);
  reached = 1;
  RETURN_IF_ERROR(half(4));  // a Result that is ok
  RETURN_IF_ERROR(b);
  reached = 2;
  return Status::Ok();
}

// v2.40 §5.2 through two_call: the answer, the length it leaves, and whether to write.
static void check_two_call() {
  uint8_t buf[8];
  Status answer(CKR_GENERAL_ERROR);
  CK_ULONG len = 99;
  expect(!two_call(5, nullptr, &len, answer) && answer.ok() && len == 5, "two_call: NULL buffer is a length query");
  len = 4;
  expect(!two_call(5, buf, &len, answer) && answer.rv() == CKR_BUFFER_TOO_SMALL && len == 5,
         "two_call: short buffer is CKR_BUFFER_TOO_SMALL with the needed length");
  len = 8;
  expect(two_call(5, buf, &len, answer) && len == 5, "two_call: a big enough buffer is written, length = needed");
  std::vector<int> v{7, 8, 9};
  CK_ULONG out[3] = {}, n = 2;
  expect(write_list(v, out, &n, [](int x) { return CK_ULONG(x); }).rv() == CKR_BUFFER_TOO_SMALL && n == 3 && out[0] == 0,
         "write_list: short list untouched");
  n = 3;
  expect(write_list(v, out, &n, [](int x) { return CK_ULONG(x); }).ok() && out[2] == 9, "write_list: copies");
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--rv-name") == 0) {
    for (int i = 2; i < argc; i++) printf("%s\n", rv_name(static_cast<CK_RV>(strtoull(argv[i], nullptr, 0))));
    return 0;
  }
  for (const Vector& v : VECTORS) {
    std::string msg;
    for (size_t i = 0; i < v.repeat; i++) msg += v.text;
    std::string name = std::string("\"") + (strlen(v.text) > 8 ? std::string(v.text, 8) + "..." : v.text) + "\" x" + std::to_string(v.repeat);
    expect(digest(HashAlg::Sha256, msg, 0) == v.sha256, "SHA-256 " + name);
    expect(digest(HashAlg::Sha384, msg, 0) == v.sha384, "SHA-384 " + name);
    expect(digest(HashAlg::Sha512, msg, 0) == v.sha512, "SHA-512 " + name);
    if (v.repeat == 1000000) {
      expect(digest(HashAlg::Sha256, msg, 4093) == v.sha256, "SHA-256 " + name + " in 4093-byte parts");
      expect(digest(HashAlg::Sha512, msg, 127) == v.sha512, "SHA-512 " + name + " in 127-byte parts");
    }
  }
  // Every split point of messages around the block and padding boundaries.
  for (size_t len : {0, 1, 55, 56, 63, 64, 65, 111, 112, 119, 127, 128, 129, 300}) {
    std::string msg;
    for (size_t i = 0; i < len; i++) msg += char('a' + i % 26);
    for (HashAlg alg : {HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512}) {
      std::string whole = digest(alg, msg, 0);
      for (size_t chunk = 1; chunk <= len; chunk++)
        if (digest(alg, msg, chunk) != whole) { expect(false, "split hashing len " + std::to_string(len) + " chunk " + std::to_string(chunk)); break; }
      Sha2 h;
      h.init(alg);
      for (size_t cut = 0; cut <= len; cut++) {
        h.init(alg);
        h.update(reinterpret_cast<const uint8_t*>(msg.data()), cut);
        h.update(reinterpret_cast<const uint8_t*>(msg.data()) + cut, len - cut);
        uint8_t out[64];
        h.final(out);
        if (hex(out, h.digest_size()) != whole) { expect(false, "two-part hashing len " + std::to_string(len) + " cut " + std::to_string(cut)); break; }
      }
    }
  }
  // DigestInfo: what we build we recognise; near misses are raw input.
  for (HashAlg alg : {HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512}) {
    uint8_t d[64] = {1, 2, 3}, di[MAX_DIGEST_INFO];
    size_t n = build_digest_info(alg, d, di);
    expect(n == 19 + hash_size(alg), "DigestInfo length");
    expect(digest_info_hash(di, n) == hash_mechanism(alg), "DigestInfo recognised");
    expect(digest_info_hash(di, n - 1) == 0, "short DigestInfo is raw");
    di[8] ^= 1;
    expect(digest_info_hash(di, n) == 0, "altered DigestInfo OID is raw");
  }
  {
    // SHA-1 DigestInfo of "abc" (RFC 8017 prefix + a9993e36...).
    const uint8_t sha1_di[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
                               0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};
    expect(digest_info_hash(sha1_di, sizeof sha1_di) == CKM_SHA_1, "SHA-1 DigestInfo recognised");
  }
  // Curves.
  const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  const uint8_t p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
  const uint8_t p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
  const uint8_t ed_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
  const uint8_t ed_name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};
  expect(ec_field_bytes(p256, sizeof p256) == 32, "P-256 field");
  expect(ec_field_bytes(p384, sizeof p384) == 48, "P-384 field");
  expect(ec_field_bytes(p521, sizeof p521) == 66, "P-521 field");
  expect(ec_field_bytes(p256, sizeof p256 - 1) == 0, "truncated OID unknown");
  expect(eddsa_signature_len(ed_oid, sizeof ed_oid) == 64, "Ed25519 by OID");
  expect(eddsa_signature_len(ed_name, sizeof ed_name) == 64, "Ed25519 by name");
  expect(eddsa_signature_len(p256, sizeof p256) == 0, "P-256 is not EdDSA");
  // CK_RV names: the codes the debug lines once printed as "CKR_?".
  expect(strcmp(rv_name(CKR_PIN_LOCKED), "CKR_PIN_LOCKED") == 0, "rv_name(CKR_PIN_LOCKED)");
  expect(strcmp(rv_name(CKR_KEY_SIZE_RANGE), "CKR_KEY_SIZE_RANGE") == 0, "rv_name(CKR_KEY_SIZE_RANGE)");
  expect(strcmp(rv_name(CKR_USER_PIN_NOT_INITIALIZED), "CKR_USER_PIN_NOT_INITIALIZED") == 0, "rv_name(CKR_USER_PIN_NOT_INITIALIZED)");
  expect(strcmp(rv_name(0x7ffffff0UL), "CKR_?") == 0, "rv_name of an unknown value");
  check_two_call();
  int q = 0, reached = -1;
  expect(quarter(12, q).ok() && q == 3, "ASSIGN_OR_RETURN: values flow through");
  expect(quarter(6, q).rv() == CKR_DATA_LEN_RANGE, "ASSIGN_OR_RETURN: the second error returns");
  expect(first_error(Status::Ok(), Status::Ok(), reached).ok() && reached == 2, "RETURN_IF_ERROR: ok falls through");
  expect(first_error(Status(CKR_PIN_LOCKED), Status::Ok(), reached).rv() == CKR_PIN_LOCKED && reached == 0,
         "RETURN_IF_ERROR: returns the first error");
  expect(first_error(Status::Ok(), Status(CKR_KEY_SIZE_RANGE), reached).rv() == CKR_KEY_SIZE_RANGE && reached == 1,
         "RETURN_IF_ERROR: later error");
  fprintf(stderr, "sb_unit_test: %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
