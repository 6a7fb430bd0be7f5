// sb_ksp_core_test: the KSP's platform-neutral core (native/ksp/ksp_core.cpp) — keys picked
// from a GET_INVENTORY reply, names resolved, and each CNG SignHash form turned into the
// daemon's SIGN parameters (DigestInfo prefixes from RFC 8017 §9.2 note 1, typed in here).
// The signatures themselves are checked end to end under Wine (test/e2e/windows-ksp.test.ts).
#include <cstdio>
#include <cstring>
#include <string>

#include "../ksp/ksp_core.h"
#include "../pkcs11/p11.h"

using namespace sb;
using namespace sb::ksp;

static int checks = 0, failed = 0;
static void expect(bool ok, const std::string& what) {
  checks++;
  if (!ok) { failed++; fprintf(stderr, "FAIL: %s\n", what.c_str()); }
}

static proto::Bytes ul(uint64_t v) {
  proto::Bytes b(8);
  for (int i = 0; i < 8; i++) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}
static proto::Bytes str(const std::string& s) { return proto::Bytes(s.begin(), s.end()); }

static proto::Object object(uint64_t cls, const std::string& label, proto::Bytes id, std::vector<proto::Attribute> more) {
  proto::Object o;
  o.key_handle = cls == CKO_PRIVATE_KEY ? str("h-" + label) : proto::Bytes();
  o.attributes = {{CKA_CLASS, ul(cls)}, {CKA_LABEL, str(label)}, {CKA_ID, std::move(id)}};
  for (auto& a : more) o.attributes.push_back(std::move(a));
  return o;
}

int main() {
  const proto::Bytes P256 = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  const proto::Bytes P384 = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
  const proto::Bytes ED25519 = {0x06, 0x03, 0x2b, 0x65, 0x70};
  proto::Bytes modulus(384, 0xc5);  // RSA-3072, top bit set
  const proto::Bytes yes = {1}, no = {0};

  proto::Slot slot;
  slot.objects.push_back(object(CKO_PRIVATE_KEY, "codesign-rsa", {0x0a, 0xBC}, {{CKA_KEY_TYPE, ul(CKK_RSA)}, {CKA_MODULUS, modulus}, {CKA_SIGN, yes}}));
  slot.objects.push_back(object(CKO_CERTIFICATE, "codesign-rsa", {0x0a, 0xBC}, {{CKA_VALUE, {0x30, 0x03, 0x02, 0x01, 0x01}}}));
  slot.objects.push_back(object(CKO_PRIVATE_KEY, "ec256", {0x01}, {{CKA_KEY_TYPE, ul(CKK_EC)}, {CKA_EC_PARAMS, P256}, {CKA_SIGN, yes}}));
  slot.objects.push_back(object(CKO_PRIVATE_KEY, "ec384", {0x02}, {{CKA_KEY_TYPE, ul(CKK_EC)}, {CKA_EC_PARAMS, P384}, {CKA_SIGN, yes}}));
  slot.objects.push_back(object(CKO_PRIVATE_KEY, "ed", {0x03}, {{CKA_KEY_TYPE, ul(CKK_EC_EDWARDS)}, {CKA_EC_PARAMS, ED25519}, {CKA_SIGN, yes}}));
  slot.objects.push_back(object(CKO_PRIVATE_KEY, "nosign", {0x04}, {{CKA_KEY_TYPE, ul(CKK_EC)}, {CKA_EC_PARAMS, P256}, {CKA_SIGN, no}}));
  slot.objects.push_back(object(CKO_PUBLIC_KEY, "pub", {0x05}, {{CKA_KEY_TYPE, ul(CKK_EC)}, {CKA_EC_PARAMS, P256}}));
  proto::InventoryReply inv;
  inv.slots.push_back(slot);

  std::vector<Key> keys = keys_from_inventory(inv);
  expect(keys.size() == 3, "three signing keys (RSA, P-256, P-384); EdDSA, non-signing and public keys left out: got " + std::to_string(keys.size()));
  const Key* rsa = find_key(keys, "codesign-rsa");
  const Key* ec = find_key(keys, "ec256");
  const Key* ec384 = find_key(keys, "ec384");
  expect(rsa && rsa->alg == KeyAlg::Rsa && rsa->bits == 3072 && rsa->signature_len == 384, "RSA-3072 facts");
  expect(rsa && rsa->certificate.size() == 5, "RSA key paired with the certificate of the same CKA_ID");
  expect(rsa && std::string(algorithm_group(*rsa)) == "RSA" && std::string(algorithm_name(*rsa)) == "RSA", "RSA CNG names");
  expect(ec && ec->bits == 256 && ec->signature_len == 64 && ec->certificate.empty(), "P-256 facts, no certificate");
  expect(ec && std::string(algorithm_group(*ec)) == "ECDSA" && std::string(algorithm_name(*ec)) == "ECDSA_P256", "P-256 CNG names");
  expect(ec384 && ec384->signature_len == 96 && std::string(algorithm_name(*ec384)) == "ECDSA_P384", "P-384 facts");
  expect(find_key(keys, "0ABC") == rsa && find_key(keys, "0abc") == rsa, "a key is found by its hex CKA_ID too");
  expect(find_key(keys, "missing") == nullptr && find_key(keys, "ed") == nullptr, "unknown and EdDSA names are not found");

  uint8_t h32[32], h48[48], h20[20];
  for (int i = 0; i < 48; i++) h48[i] = static_cast<uint8_t>(i);
  memcpy(h32, h48, 32);
  memcpy(h20, h48, 20);
  SignPlan p;
  SignHashArgs a{Padding::Pkcs1, true, "SHA256", 0, h32, 32};
  expect(rsa && plan_sign(*rsa, a, p).ok(), "PKCS#1 SHA-256 plans");
  expect(p.mechanism == CKM_RSA_PKCS && p.hash_alg == CKM_SHA256 &&
             to_hex(p.data.data(), 19) == "3031300d060960864801650304020105000420" && p.data.size() == 51 &&
             memcmp(p.data.data() + 19, h32, 32) == 0,
         "PKCS#1 SHA-256 sends DigestInfo(SHA-256) with CKM_RSA_PKCS");
  a = {Padding::Pkcs1, true, "sha384", 0, h48, 48};
  expect(rsa && plan_sign(*rsa, a, p).ok() && p.hash_alg == CKM_SHA384 &&
             to_hex(p.data.data(), 19) == "3041300d060960864801650304020205000430", "PKCS#1 SHA-384 (name case-insensitive)");
  a = {Padding::Pkcs1, true, "SHA1", 0, h20, 20};
  expect(rsa && plan_sign(*rsa, a, p).ok() && p.hash_alg == CKM_SHA_1 &&
             to_hex(p.data.data(), 15) == "3021300906052b0e03021a05000414", "PKCS#1 SHA-1 DigestInfo");
  a = {Padding::Pkcs1, true, "SHA256", 0, h48, 48};
  expect(rsa && plan_sign(*rsa, a, p).code == nte::BAD_DATA, "a 48-byte hash named SHA256 is NTE_BAD_DATA");
  a = {Padding::Pkcs1, true, "MD5", 0, h32, 32};
  expect(rsa && plan_sign(*rsa, a, p).code == nte::BAD_ALGID, "MD5 is NTE_BAD_ALGID");
  a = {Padding::Pss, true, "SHA256", 32, h32, 32};
  expect(rsa && plan_sign(*rsa, a, p).ok() && p.mechanism == CKM_RSA_PKCS_PSS && p.hash_alg == CKM_SHA256 &&
             p.mgf == CKG_MGF1_SHA256 && p.salt_len == 32 && p.data.size() == 32, "PSS SHA-256 salt 32");
  a = {Padding::Pss, true, "SHA256", 400, h32, 32};
  expect(rsa && plan_sign(*rsa, a, p).code == nte::INVALID_PARAMETER, "a PSS salt longer than the modulus allows");
  a = {Padding::None, false, "", 0, h32, 32};
  expect(rsa && plan_sign(*rsa, a, p).code == nte::INVALID_PARAMETER, "RSA without padding is refused");
  expect(ec && plan_sign(*ec, a, p).ok() && p.mechanism == CKM_ECDSA && p.hash_alg == CKM_SHA256 && p.data.size() == 32, "ECDSA over SHA-256");
  a = {Padding::None, false, "", 0, h48, 48};
  expect(ec384 && plan_sign(*ec384, a, p).ok() && p.hash_alg == CKM_SHA384, "ECDSA over SHA-384");
  a = {Padding::None, false, "", 0, h48, 17};
  expect(ec && plan_sign(*ec, a, p).code == nte::BAD_DATA, "a 17-byte ECDSA hash is NTE_BAD_DATA");
  a = {Padding::Pkcs1, true, "SHA256", 0, h32, 32};
  expect(ec && plan_sign(*ec, a, p).code == nte::BAD_FLAGS, "ECDSA with PKCS#1 padding is NTE_BAD_FLAGS");
  expect(status_for_rv(CKR_DEVICE_ERROR) == nte::DEVICE_NOT_READY && status_for_rv(CKR_KEY_HANDLE_INVALID) == nte::BAD_KEYSET &&
             status_for_rv(CKR_GENERAL_ERROR) == nte::FAIL, "CK_RV → SECURITY_STATUS");

  fprintf(stderr, "sb_ksp_core_test: %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
