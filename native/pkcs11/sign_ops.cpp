#include "sign_ops.h"

#include <algorithm>
#include <cstring>

namespace sb {

namespace {

struct MechSpec {
  CK_MECHANISM_TYPE mech;
  CK_KEY_TYPE key_type;
  uint64_t primitive;
  HashAlg hash;
};

constexpr MechSpec MECHS[] = {
    {CKM_RSA_PKCS, CKK_RSA, CKM_RSA_PKCS, HashAlg::None},
    {CKM_SHA256_RSA_PKCS, CKK_RSA, CKM_RSA_PKCS, HashAlg::Sha256},
    {CKM_SHA384_RSA_PKCS, CKK_RSA, CKM_RSA_PKCS, HashAlg::Sha384},
    {CKM_SHA512_RSA_PKCS, CKK_RSA, CKM_RSA_PKCS, HashAlg::Sha512},
    {CKM_RSA_PKCS_PSS, CKK_RSA, CKM_RSA_PKCS_PSS, HashAlg::None},
    {CKM_SHA256_RSA_PKCS_PSS, CKK_RSA, CKM_RSA_PKCS_PSS, HashAlg::Sha256},
    {CKM_SHA384_RSA_PKCS_PSS, CKK_RSA, CKM_RSA_PKCS_PSS, HashAlg::Sha384},
    {CKM_SHA512_RSA_PKCS_PSS, CKK_RSA, CKM_RSA_PKCS_PSS, HashAlg::Sha512},
    {CKM_ECDSA, CKK_EC, CKM_ECDSA, HashAlg::None},
    {CKM_ECDSA_SHA256, CKK_EC, CKM_ECDSA, HashAlg::Sha256},
    {CKM_ECDSA_SHA384, CKK_EC, CKM_ECDSA, HashAlg::Sha384},
    {CKM_ECDSA_SHA512, CKK_EC, CKM_ECDSA, HashAlg::Sha512},
    {CKM_EDDSA, CKK_EC_EDWARDS, CKM_EDDSA, HashAlg::None},
};

size_t hash_len_of(CK_MECHANISM_TYPE h) {
  switch (h) {
    case CKM_SHA_1: return 20;
    case CKM_SHA224: return 28;
    case CKM_SHA256: return 32;
    case CKM_SHA384: return 48;
    case CKM_SHA512: return 64;
    default: return 0;
  }
}

// The MGF1 that goes with a PSS hashAlg. The spec does not tie them together (RFC 8017 §9.1 only
// recommends it), but the backends do (SoftHSMv2 answers CKR_ARGUMENTS_BAD at C_Sign, STM offers
// MGF1 over the signature hash only), so another MGF is refused at C_SignInit, before a tool
// hashes its file (v2.40 §5.11: CKR_MECHANISM_PARAM_INVALID).
CK_RSA_PKCS_MGF_TYPE mgf_for(CK_MECHANISM_TYPE hash) {
  switch (hash) {
    case CKM_SHA_1: return CKG_MGF1_SHA1;
    case CKM_SHA224: return CKG_MGF1_SHA224;
    case CKM_SHA256: return CKG_MGF1_SHA256;
    case CKM_SHA384: return CKG_MGF1_SHA384;
    case CKM_SHA512: return CKG_MGF1_SHA512;
    default: return 0;
  }
}

// ECDSA input is a hash; its length names the hash (0 when it is none of the usual ones).
uint64_t ecdsa_hash_alg(size_t n) {
  switch (n) {
    case 20: return CKM_SHA_1;
    case 28: return CKM_SHA224;
    case 32: return CKM_SHA256;
    case 48: return CKM_SHA384;
    case 64: return CKM_SHA512;
    default: return 0;
  }
}

// Largest message the wire can carry in one SIGN frame (header, fields, key handle).
constexpr size_t MAX_SIGN_DATA = proto::MAX_FRAME - 1024;

}  // namespace

Result<std::unique_ptr<SignOp>> make_sign_op(const SlotRec& slot, const ObjectRec& key, const CK_MECHANISM& m) {
  if (!key.is_key()) return Status(CKR_KEY_HANDLE_INVALID, "C_SignInit: the object is not a key");
  const proto::Mechanism* offered = slot.mechanism(m.mechanism);
  const MechSpec* spec = nullptr;
  for (const MechSpec& s : MECHS)
    if (s.mech == m.mechanism) spec = &s;
  if (!offered || !(offered->flags & CKF_SIGN) || !spec)
    return Status(CKR_MECHANISM_INVALID, "C_SignInit: the token does not offer this mechanism for signing");
  CK_KEY_TYPE kt = CK_UNAVAILABLE_INFORMATION;
  if (const Value* v = key.find(CKA_KEY_TYPE); v && v->size() == sizeof(CK_ULONG))
    memcpy(&kt, v->data(), sizeof kt);
  if (kt != spec->key_type)
    return Status(CKR_KEY_TYPE_INCONSISTENT, "C_SignInit: the mechanism does not fit this key's type");
  if (key.cls != CKO_PRIVATE_KEY || !key.key.sign)
    return Status(CKR_KEY_FUNCTION_NOT_PERMITTED, "C_SignInit: the key is not a private key that may sign");
  const KeyFacts& k = key.key;
  if (k.has_allowed && std::find(k.allowed.begin(), k.allowed.end(), m.mechanism) == k.allowed.end())
    return Status(CKR_MECHANISM_INVALID, "C_SignInit: the mechanism is not in the key's CKA_ALLOWED_MECHANISMS");
  if (key.key_handle.empty())
    return Status(CKR_KEY_FUNCTION_NOT_PERMITTED, "C_SignInit: the daemon gave this key no key_handle");
  if (k.signature_len == 0)
    return Status(CKR_KEY_SIZE_RANGE, "C_SignInit: unknown key size or curve (CKA_MODULUS / CKA_EC_PARAMS)");

  auto op = std::make_unique<SignOp>();
  op->mechanism = m.mechanism;
  op->key = key.handle;
  op->primitive = spec->primitive;
  op->hash = spec->hash;
  op->signature_len = k.signature_len;
  op->modulus_bytes = k.modulus_bytes;
  op->key_handle = key.key_handle;
  op->always_authenticate = k.always_authenticate;

  if (spec->primitive == CKM_RSA_PKCS_PSS) {
    // v2.40 §2.1.14: CK_RSA_PKCS_PSS_PARAMS, exactly.
    if (!m.pParameter || m.ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
      return Status(CKR_MECHANISM_PARAM_INVALID, "C_SignInit: PSS needs a CK_RSA_PKCS_PSS_PARAMS parameter");
    CK_RSA_PKCS_PSS_PARAMS p;
    memcpy(&p, m.pParameter, sizeof p);
    size_t hlen = hash_len_of(p.hashAlg);
    if (!hlen || p.mgf != mgf_for(p.hashAlg))
      return Status(CKR_MECHANISM_PARAM_INVALID, "C_SignInit: PSS needs a supported hashAlg and MGF1 over that same hash");
    if (spec->hash != HashAlg::None && p.hashAlg != hash_mechanism(spec->hash))
      return Status(CKR_MECHANISM_PARAM_INVALID, "C_SignInit: PSS hashAlg does not match the mechanism's hash");
    if (k.modulus_bytes < hlen + 2 || p.sLen > k.modulus_bytes - hlen - 2)
      return Status(CKR_MECHANISM_PARAM_INVALID, "C_SignInit: PSS sLen is larger than the modulus allows");
    op->pss_hash = p.hashAlg;
    op->mgf = p.mgf;
    op->salt_len = static_cast<uint32_t>(p.sLen);
  } else if (m.ulParameterLen != 0) {
    return Status(CKR_MECHANISM_PARAM_INVALID, "C_SignInit: this mechanism takes no parameter");
  }
  if (op->hash != HashAlg::None) op->sha.init(op->hash);
  return op;
}

// Turns the bytes to be signed by the primitive into the request input and checks lengths.
static Status primitive_input(SignOp& op, const uint8_t* data, size_t n, uint64_t known_hash, SignInput& in) {
  in.data = data;
  in.len = n;
  switch (op.primitive) {
    case CKM_RSA_PKCS:
      // v2.40 §2.1.6: at most k-11 bytes.
      if (op.modulus_bytes < 11 || n > op.modulus_bytes - 11)
        return Status(CKR_DATA_LEN_RANGE, "C_Sign: CKM_RSA_PKCS input longer than the modulus length - 11");
      in.hash_alg = known_hash ? known_hash : digest_info_hash(data, n);
      return Status::Ok();
    case CKM_RSA_PKCS_PSS:
      if (n != hash_len_of(op.pss_hash))
        return Status(CKR_DATA_LEN_RANGE, "C_Sign: CKM_RSA_PKCS_PSS input must be a hash of params.hashAlg's length");
      in.hash_alg = op.pss_hash;
      return Status::Ok();
    case CKM_ECDSA:
      if (n == 0 || n > 64) return Status(CKR_DATA_LEN_RANGE, "C_Sign: CKM_ECDSA input must be a hash (1..64 bytes)");
      in.hash_alg = known_hash ? known_hash : ecdsa_hash_alg(n);
      return Status::Ok();
    case CKM_EDDSA:
      if (n > MAX_SIGN_DATA) return Status(CKR_DATA_LEN_RANGE, "C_Sign: EdDSA message too large for one request");
      in.hash_alg = 0;
      return Status::Ok();
  }
  return Status(CKR_GENERAL_ERROR, "unknown signing primitive");
}

// Finishes the running digest and wraps it as the primitive expects.
static Status digest_input(SignOp& op, SignInput& in) {
  uint8_t digest[64];
  op.sha.final(digest);
  size_t dlen = hash_size(op.hash);
  uint64_t h = hash_mechanism(op.hash);
  if (op.primitive == CKM_RSA_PKCS) {
    size_t n = build_digest_info(op.hash, digest, in.scratch);
    return primitive_input(op, in.scratch, n, h, in);
  }
  memcpy(in.scratch, digest, dlen);
  return primitive_input(op, in.scratch, dlen, h, in);
}

Status single_part_input(SignOp& op, const uint8_t* data, size_t n, SignInput& in) {
  if (op.hash == HashAlg::None) return primitive_input(op, data, n, 0, in);
  op.sha.update(data, n);
  return digest_input(op, in);
}

Status update_input(SignOp& op, const uint8_t* data, size_t n) {
  if (!op.buffers_message()) {
    op.sha.update(data, n);
    return Status::Ok();
  }
  if (n > MAX_SIGN_DATA - op.message.size())
    return Status(CKR_DATA_LEN_RANGE, "C_SignUpdate: EdDSA message too large for one request");
  op.message.insert(op.message.end(), data, data + n);
  return Status::Ok();
}

Status final_input(SignOp& op, SignInput& in) {
  if (op.buffers_message()) return primitive_input(op, op.message.data(), op.message.size(), 0, in);
  return digest_input(op, in);
}

}  // namespace sb
