// signbridge_addon (design.md "Addon API"):
//   peerCredentials(fd: number): { pid: number; uid: number; gid: number }
//   verifyDigest(spkiDer, kind, digest, signature, hash?, saltLen?): boolean   (Linux, see below)
//   On Windows also the daemon's named-pipe server and its user SID (pipe_server_win.cpp);
//   elsewhere the daemon's native signing path (native_signer.cpp).
// Errors are JS Error objects with `.code` set here, never parsed back out of a message.
#include <errno.h>
#ifndef _WIN32
#include <sys/socket.h>
#include <sys/types.h>
#endif

#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <napi.h>

#ifdef _WIN32
void RegisterPipeServer(Napi::Env env, Napi::Object exports);
#else
void RegisterNativeSigner(Napi::Env env, Napi::Object exports);
#endif

namespace {

Napi::Error coded(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    Napi::TypeError e = Napi::TypeError::New(env, "peerCredentials(fd) expects one integer file descriptor");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int>(d))) {
    Napi::RangeError e = Napi::RangeError::New(env, "peerCredentials(fd): fd must be an integer >= 0");
    e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw e;
  }
  int fd = static_cast<int>(d);
#ifdef SO_PEERCRED
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int err = errno;
    Napi::Error e = coded(env,
                          "cannot read the peer credentials of fd " + std::to_string(fd) + ": " + strerror(err) +
                              " (it must be a connected unix-domain socket)",
                          "SIGNBRIDGE_ERR_PEERCRED");
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
#else
  (void)fd;
  throw coded(env, "peer credentials are not supported on this platform", "SIGNBRIDGE_ERR_PEERCRED");
#endif
}

// ---- verifyDigest: signature over a digest, with the host process's OpenSSL ----
// node:crypto verifies messages, but the daemon holds only the digest the module computed, and a
// BigInt ECDSA check costs 5–9 ms of CPU. Node's executable exports OpenSSL's symbols (addons may
// use them: nodejs.org/api/addons.html "Linking to libraries included with Node.js"). The few we
// call are declared here as weak references to opaque types: no OpenSSL headers, no new link
// dependency (the glibc baseline is unchanged); they bind to Node's OpenSSL when the addon is
// loaded and stay null in a host that exports none, where verifyDigest is simply not exported.
#if defined(__linux__) && defined(__ELF__)
#define SB_HAVE_VERIFY_DIGEST 1
extern "C" {
struct sb_evp_pkey;
struct sb_evp_pkey_ctx;
struct sb_evp_md;
#define SB_WEAK __attribute__((weak, visibility("default")))
SB_WEAK sb_evp_pkey* d2i_PUBKEY(sb_evp_pkey** a, const unsigned char** pp, long length);
SB_WEAK void EVP_PKEY_free(sb_evp_pkey* pkey);
SB_WEAK int EVP_PKEY_up_ref(sb_evp_pkey* pkey);
SB_WEAK int EVP_PKEY_get_base_id(const sb_evp_pkey* pkey);
SB_WEAK sb_evp_pkey_ctx* EVP_PKEY_CTX_new(sb_evp_pkey* pkey, void* engine);
SB_WEAK void EVP_PKEY_CTX_free(sb_evp_pkey_ctx* ctx);
SB_WEAK int EVP_PKEY_verify_init(sb_evp_pkey_ctx* ctx);
SB_WEAK int EVP_PKEY_verify(sb_evp_pkey_ctx* ctx, const unsigned char* sig, size_t siglen, const unsigned char* tbs,
                            size_t tbslen);
SB_WEAK int EVP_PKEY_CTX_set_rsa_padding(sb_evp_pkey_ctx* ctx, int pad);
SB_WEAK int EVP_PKEY_CTX_set_signature_md(sb_evp_pkey_ctx* ctx, const sb_evp_md* md);
SB_WEAK int EVP_PKEY_CTX_set_rsa_pss_saltlen(sb_evp_pkey_ctx* ctx, int len);
SB_WEAK int EVP_PKEY_CTX_set_rsa_mgf1_md(sb_evp_pkey_ctx* ctx, const sb_evp_md* md);
SB_WEAK const sb_evp_md* EVP_get_digestbyname(const char* name);
SB_WEAK void ERR_clear_error(void);
#undef SB_WEAK
}

// OpenSSL's NIDs (obj_mac.h) and padding mode (rsa.h): stable ABI constants.
constexpr int kNidEc = 408;             // NID_X9_62_id_ecPublicKey
constexpr int kNidRsa = 6;              // NID_rsaEncryption
constexpr int kRsaPkcs1PssPadding = 6;  // RSA_PKCS1_PSS_PADDING

bool verify_digest_available() {
  return d2i_PUBKEY && EVP_PKEY_free && EVP_PKEY_up_ref && EVP_PKEY_get_base_id && EVP_PKEY_CTX_new && EVP_PKEY_CTX_free &&
         EVP_PKEY_verify_init && EVP_PKEY_verify && EVP_PKEY_CTX_set_rsa_padding && EVP_PKEY_CTX_set_signature_md &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen && EVP_PKEY_CTX_set_rsa_mgf1_md && EVP_get_digestbyname && ERR_clear_error;
}

// Parsed keys by SPKI bytes: OpenSSL 3's decoder (d2i_PUBKEY) costs more than the ECDSA check
// itself, and the daemon checks against the same few certificates' keys over and over. Bounded
// (a re-listing that brings new keys simply starts again); the mutex makes worker threads safe.
constexpr size_t kKeyCacheMax = 64;
std::mutex g_key_mu;
std::map<std::string, sb_evp_pkey*>* g_keys = new std::map<std::string, sb_evp_pkey*>();  // never destroyed: no exit-time order

// A key for `spki` with one reference held for the caller (free it with EVP_PKEY_free), or null.
sb_evp_pkey* cached_key(const uint8_t* der, size_t len) {
  std::string k(reinterpret_cast<const char*>(der), len);
  std::lock_guard<std::mutex> lock(g_key_mu);
  auto it = g_keys->find(k);
  if (it == g_keys->end()) {
    const unsigned char* p = der;
    sb_evp_pkey* key = d2i_PUBKEY(nullptr, &p, static_cast<long>(len));
    if (!key) return nullptr;
    if (p != der + len) {  // trailing bytes: not one SPKI
      EVP_PKEY_free(key);
      return nullptr;
    }
    if (g_keys->size() >= kKeyCacheMax) {
      for (auto& e : *g_keys) EVP_PKEY_free(e.second);
      g_keys->clear();
    }
    it = g_keys->emplace(std::move(k), key).first;
  }
  return EVP_PKEY_up_ref(it->second) == 1 ? it->second : nullptr;
}

// Frees what OpenSSL handed out and empties its per-thread error queue on every path: a failed
// check pushes errors there, and Node's own crypto calls must not find them later.
struct OsslScope {
  sb_evp_pkey* key = nullptr;
  sb_evp_pkey_ctx* ctx = nullptr;
  ~OsslScope() {
    if (ctx) EVP_PKEY_CTX_free(ctx);
    if (key) EVP_PKEY_free(key);
    ERR_clear_error();
  }
};

Napi::Buffer<uint8_t> bufferArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    Napi::TypeError e = Napi::TypeError::New(info.Env(), std::string("verifyDigest: ") + name + " must be a Buffer");
    e.Set("code", Napi::String::New(info.Env(), "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// verifyDigest(spkiDer, kind, digest, signature[, hash, saltLen]) → boolean
//   kind "ecdsa":   signature is DER Ecdsa-Sig-Value (RFC 3279 §2.2.3), digest truncated per FIPS 186-4
//   kind "rsa-pss": MGF1 with `hash`, salt length `saltLen` (RFC 8017 §9.1.2)
// False for a wrong signature, a malformed key or a key of the other kind; throws only on bad arguments.
Napi::Value VerifyDigest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> spki = bufferArg(info, 0, "spkiDer");
  if (info.Length() < 2 || !info[1].IsString()) {
    Napi::TypeError e = Napi::TypeError::New(env, "verifyDigest: kind must be \"ecdsa\" or \"rsa-pss\"");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> digest = bufferArg(info, 2, "digest");
  Napi::Buffer<uint8_t> sig = bufferArg(info, 3, "signature");
  bool pss = kind == "rsa-pss";
  if (!pss && kind != "ecdsa") {
    Napi::TypeError e = Napi::TypeError::New(env, "verifyDigest: kind must be \"ecdsa\" or \"rsa-pss\", got " + kind);
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw e;
  }
  std::string hash;
  int saltLen = 0;
  if (pss) {
    if (info.Length() < 6 || !info[4].IsString() || !info[5].IsNumber()) {
      Napi::TypeError e = Napi::TypeError::New(env, "verifyDigest: rsa-pss needs hash (string) and saltLen (number)");
      e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
      throw e;
    }
    hash = info[4].As<Napi::String>().Utf8Value();
    saltLen = info[5].As<Napi::Number>().Int32Value();
  }
  OsslScope s;
  s.key = cached_key(spki.Data(), spki.Length());
  if (!s.key) return Napi::Boolean::New(env, false);
  if (EVP_PKEY_get_base_id(s.key) != (pss ? kNidRsa : kNidEc)) return Napi::Boolean::New(env, false);
  s.ctx = EVP_PKEY_CTX_new(s.key, nullptr);
  if (!s.ctx || EVP_PKEY_verify_init(s.ctx) <= 0) return Napi::Boolean::New(env, false);
  if (pss) {
    const sb_evp_md* md = EVP_get_digestbyname(hash.c_str());
    if (!md || EVP_PKEY_CTX_set_rsa_padding(s.ctx, kRsaPkcs1PssPadding) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(s.ctx, md) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(s.ctx, md) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(s.ctx, saltLen) <= 0)
      return Napi::Boolean::New(env, false);
  }
  int rc = EVP_PKEY_verify(s.ctx, sig.Data(), sig.Length(), digest.Data(), digest.Length());
  return Napi::Boolean::New(env, rc == 1);
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
#ifdef _WIN32
  RegisterPipeServer(env, exports);
#else
  RegisterNativeSigner(env, exports);  // native_signer.cpp: the daemon's SIGN path for fast keys
#endif
#if SB_HAVE_VERIFY_DIGEST
  // Only when the host executable exports OpenSSL (Node's own does on Linux): the JS fallback
  // in src/backends/stm/verify.ts runs otherwise.
  if (verify_digest_available()) exports.Set("verifyDigest", Napi::Function::New(env, VerifyDigest, "verifyDigest"));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(signbridge_addon, Init)
