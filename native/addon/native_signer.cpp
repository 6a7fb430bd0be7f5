// The daemon's native signing path (docs/performance.md "The native signing path"). A SIGN frame
// for a fast key of the pkcs11 backend, with the audit log on a memory file system, is decoded,
// signed, put on record and answered in this one call from the event loop: no JavaScript runs
// per signature. Everything else — another call, a key the backend did not hand over (slow, or
// not yet measured), a mechanism with parameters, an unusual length, a malformed frame, a token
// error, an audit write that failed or is due for rotation — is DECLINED (undefined): the daemon
// then gives the same frame to its JavaScript path, which handles it in full and says what went
// wrong. So this file holds no error text and no policy of its own; it repeats only what the
// JavaScript path does on success, byte for byte (the reply frame and both audit lines).
//
// Event-loop thread only (the daemon calls it from its socket handler): no locks. POSIX only; on
// Windows the daemon has no such functions and signs in JavaScript.
//
//   new NativeSigner(library, slot: Buffer, thresholdUs)   throws when the library is not loaded
//   .key(handle, obj: Buffer, sigLen, mechanisms: number[], maxRsaData) / .dropKey(handle)
//   .keyJson(handle, json)            the key's audit fragment (the daemon's audit-record.ts)
//   .audit(fd, run, state: Float64Array[seq, size, torn], maxBytes, mechJson, hashes) / .auditFd(fd)
//   .conn(peerJson) → id / .connEnd(id)
//   .sign(frame: Buffer, conn) → Buffer | undefined
//   .takeOutcomes() → string;  .stats() → { signed, declined: { <reason>: n }, keys };  .close()
// One per pkcs11 backend instance (a test process may run several daemons).
#ifndef _WIN32
#include <dlfcn.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include <napi.h>

#include "messages.h"
#include "p11.h"

// glibc 2.34 moved dlopen & co. into libc under a new version; the addon keeps the README's glibc
// 2.28 floor by binding the old names (libdl.so.2 still has them).
#if defined(__GLIBC__) && defined(__x86_64__) && !defined(SB_NO_GLIBC_COMPAT)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlclose,dlclose@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__) && !defined(SB_NO_GLIBC_COMPAT)
__asm__(".symver dlopen,dlopen@GLIBC_2.17");
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
__asm__(".symver dlclose,dlclose@GLIBC_2.17");
#endif

namespace {

using sb::proto::Call;
using sb::proto::SignReplyView;
using sb::proto::SignRequestView;

constexpr CK_MECHANISM_TYPE kEcdsa = 0x1041, kRsaPkcs = 0x0001, kEddsa = 0x1057;
// The JavaScript scheduler's rule (src/backends/pkcs11/scheduler.ts): a fast key whose last five
// signatures were all over the threshold goes back to it.
constexpr int kSlowSamples = 5;

struct Key {
  CK_OBJECT_HANDLE obj = 0;
  CK_ULONG sig_len = 0;
  std::vector<CK_MECHANISM_TYPE> mechanisms;
  size_t max_rsa_data = 0;
  int slow = 0;
};

struct Hash {
  uint64_t ckm;
  size_t len;
  std::string json;  // "hash":"CKM_SHA256","digest":"
};

struct Signer {
  void* lib = nullptr;
  CK_FUNCTION_LIST_PTR fl = nullptr;
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  double threshold_us = 1000;
  std::unordered_map<std::string, Key> keys;       // by wire key_handle
  std::unordered_map<std::string, std::string> key_json;
  // the audit log (src/daemon/audit.ts owns the file; these are its fd and shared counters)
  int audit_fd = -1;
  double* state = nullptr;  // [0] last record seq, [1] file size, [2] torn (a write failed part-way)
  Napi::Reference<Napi::Float64Array> state_ref;
  double max_bytes = 0;
  std::string run;
  std::unordered_map<uint64_t, std::string> mech_json;  // "mechanism":"CKM_ECDSA",
  std::vector<Hash> hashes;
  std::vector<std::string> peers;  // by connection id; "" = a free slot
  std::string outcomes;            // outcome lines waiting for the next write
  double signed_count = 0, declined[7] = {};
  std::vector<uint8_t> sig, out;
  std::string line;
};

double now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

// The time as JavaScript's Date#toISOString() writes it (milliseconds, UTC).
void append_iso_now(std::string& s) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  time_t secs = ts.tv_sec;
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
                   t.tm_min, t.tm_sec, int(ts.tv_nsec / 1000000));
  s.append(buf, size_t(n));
}

void append_hex(std::string& s, const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
}

std::string bytes_of(const Napi::Value& v, const char* what) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string("native signer: ") + what + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return std::string(reinterpret_cast<const char*>(b.Data()), b.Length());
}

CK_ULONG ulong_of(const Napi::Value& v, const char* what) {
  std::string b = bytes_of(v, what);
  if (b.size() != sizeof(CK_ULONG)) throw Napi::TypeError::New(v.Env(), std::string("native signer: ") + what + " is not a CK_ULONG");
  CK_ULONG u = 0;
  std::memcpy(&u, b.data(), sizeof u);
  return u;
}

bool open_session(Signer& s) {
  s.session = CK_INVALID_HANDLE;
  return s.fl->C_OpenSession(s.slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s.session) == CKR_OK;
}

// After a failed C_SignInit/C_Sign an operation may still be active: start from a fresh session.
void reset_session(Signer& s) {
  if (s.session != CK_INVALID_HANDLE) s.fl->C_CloseSession(s.session);
  if (!open_session(s)) s.keys.clear();  // no session: decline everything from now on
}

bool write_all(int fd, const std::string& s, size_t* done) {
  *done = 0;
  while (*done < s.size()) {
    ssize_t n = write(fd, s.data() + *done, s.size() - *done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    *done += size_t(n);
  }
  return true;
}

// Why a frame went to the JavaScript path (stats().declined): one counter each.
enum Decline { kNoAudit, kNotSign, kKey, kRequest, kToken, kRotation, kWrite, kDeclineCount };
const char* const kDeclineNames[kDeclineCount] = {"noAudit", "notSign", "key", "request", "token", "rotation", "write"};

bool decline(Signer& s, Decline why) {
  s.declined[why]++;
  return false;
}

// The whole path; false = declined (nothing was sent, nothing needs undoing).
bool sign_frame(Signer& s, const uint8_t* p, size_t n, size_t conn, Napi::Env env, Napi::Value* reply) {
  if (s.audit_fd < 0 || !s.state || s.state[2] != 0 || conn >= s.peers.size() || s.peers[conn].empty()) return decline(s, kNoAudit);
  if (n < sb::proto::HEADER_SIZE) return decline(s, kNotSign);
  sb::proto::FrameHeader h = sb::proto::read_header(p);
  if (size_t(h.length) + 4 != n || h.call != uint8_t(Call::Sign) || h.kind != sb::proto::KIND_REQUEST) return decline(s, kNotSign);
  SignRequestView req;
  sb::wire::Reader r(p + sb::proto::HEADER_SIZE, n - sb::proto::HEADER_SIZE);
  sb::proto::read_body(r, req);
  if (!r.finish()) return decline(s, kNotSign);
  auto kit = s.keys.find(std::string(reinterpret_cast<const char*>(req.key_handle.data), req.key_handle.size));
  if (kit == s.keys.end()) return decline(s, kKey);
  Key& key = kit->second;
  auto jit = s.key_json.find(kit->first);
  auto mit = s.mech_json.find(req.mechanism);
  if (jit == s.key_json.end() || mit == s.mech_json.end()) return decline(s, kKey);
  bool allowed = false;
  for (CK_MECHANISM_TYPE m : key.mechanisms) allowed = allowed || m == req.mechanism;
  if (!allowed || req.mgf != 0 || req.salt_len != 0) return decline(s, kRequest);
  size_t len = req.data.size;
  // the JavaScript path's checks (src/backends/pkcs11/mechanism.ts); anything else is its to refuse
  if (req.mechanism == kEcdsa ? (len == 0 || len > 64) : req.mechanism == kRsaPkcs ? (len == 0 || len > key.max_rsa_data) : req.mechanism != kEddsa)
    return decline(s, kRequest);
  const Hash* hash = nullptr;
  for (const Hash& x : s.hashes)
    if (x.ckm == req.hash_alg && len >= x.len) hash = &x;
  if (!hash) return decline(s, kRequest);  // the record then names data_sha256: the JavaScript path writes it

  // sign
  CK_MECHANISM mech{req.mechanism, nullptr, 0};
  s.sig.resize(key.sig_len);
  CK_ULONG sig_len = key.sig_len;
  double t0 = now_us();
  if (s.fl->C_SignInit(s.session, &mech, key.obj) != CKR_OK) {
    reset_session(s);
    return decline(s, kToken);
  }
  if (s.fl->C_Sign(s.session, const_cast<CK_BYTE_PTR>(req.data.data), CK_ULONG(len), s.sig.data(), &sig_len) != CKR_OK) {
    reset_session(s);
    return decline(s, kToken);
  }
  double us = now_us() - t0;
  uint32_t frame_id = h.id;
  if (us >= s.threshold_us) {
    if (++key.slow >= kSlowSamples) s.keys.erase(kit);  // this signature is still answered
  } else {
    key.slow = 0;
  }

  // the request record (audit-record.ts requestLine), with the outcome lines still waiting
  std::string id = s.run + "-" + std::to_string(uint64_t(s.state[0]) + 1);
  std::string& line = s.line;
  line.assign(s.outcomes);
  line += "{\"time\":\"";
  append_iso_now(line);
  line += "\",\"id\":\"" + id + "\",\"event\":\"request\",\"peer\":" + s.peers[conn] + ",\"key\":" + jit->second + "," + mit->second + hash->json;
  append_hex(line, req.data.data + len - hash->len, hash->len);
  line += "\"}\n";
  if (s.max_bytes > 0 && s.state[1] > 0 && s.state[1] + double(line.size()) > s.max_bytes) return decline(s, kRotation);  // rotation: JavaScript's
  size_t done = 0;
  if (!write_all(s.audit_fd, line, &done)) {
    if (done > 0) {
      s.state[2] = 1;  // torn: the JavaScript path starts its next write on a new line
      s.state[1] += double(done);
    }
    s.audit_fd = -1;  // and it reports the failure, for this request and until a write succeeds
    return decline(s, kWrite);
  }
  s.state[0] += 1;
  s.state[1] += double(line.size());
  s.outcomes.clear();
  s.outcomes += "{\"time\":\"";
  append_iso_now(s.outcomes);
  s.outcomes += "\",\"id\":\"" + id + "\",\"event\":\"outcome\",\"outcome\":\"ok\",\"backend_us\":" + std::to_string(llround(us)) + "}\n";

  s.out.clear();
  SignReplyView rep;
  rep.signature = sb::wire::ByteView{s.sig.data(), size_t(sig_len)};
  sb::proto::encode_ok_reply(s.out, Call::Sign, frame_id, rep);
  *reply = Napi::Buffer<uint8_t>::Copy(env, s.out.data(), s.out.size());
  s.signed_count++;
  return true;
}

class NativeSigner : public Napi::ObjectWrap<NativeSigner> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSigner",
                       {InstanceMethod("key", &NativeSigner::AddKey), InstanceMethod("dropKey", &NativeSigner::DropKey),
                        InstanceMethod("keyJson", &NativeSigner::KeyJson), InstanceMethod("audit", &NativeSigner::Audit),
                        InstanceMethod("auditFd", &NativeSigner::AuditFd), InstanceMethod("conn", &NativeSigner::Conn),
                        InstanceMethod("connEnd", &NativeSigner::ConnEnd), InstanceMethod("sign", &NativeSigner::Sign),
                        InstanceMethod("takeOutcomes", &NativeSigner::TakeOutcomes), InstanceMethod("stats", &NativeSigner::Stats),
                        InstanceMethod("close", &NativeSigner::Close)});
  }

  explicit NativeSigner(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSigner>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "new NativeSigner(library, slot, thresholdUs)");
    std::string library = info[0].As<Napi::String>();
    s_.slot = ulong_of(info[1], "slot");
    s_.threshold_us = info[2].As<Napi::Number>().DoubleValue();
    // RTLD_NOLOAD: the very library (and C_Initialize) pkcs11js loaded; never a second copy.
    s_.lib = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (!s_.lib) throw Napi::Error::New(env, "native signer: the PKCS#11 library is not loaded in this process");
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(s_.lib, "C_GetFunctionList"));
    if (!get || get(&s_.fl) != CKR_OK || !s_.fl || !open_session(s_)) {
      Release();
      throw Napi::Error::New(env, "native signer: no function list or session from the PKCS#11 library");
    }
  }
  ~NativeSigner() override { Release(); }

 private:
  void Release() {
    if (s_.fl && s_.session != CK_INVALID_HANDLE) s_.fl->C_CloseSession(s_.session);
    s_.session = CK_INVALID_HANDLE;
    s_.fl = nullptr;
    s_.keys.clear();
    s_.audit_fd = -1;
    if (s_.lib) dlclose(s_.lib);
    s_.lib = nullptr;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  Napi::Value AddKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 5 || !info[2].IsNumber() || !info[3].IsArray() || !info[4].IsNumber())
      throw Napi::TypeError::New(env, "key(handle, obj, sigLen, mechanisms, maxRsaData)");
    if (!s_.fl) return env.Undefined();
    Key k;
    k.obj = ulong_of(info[1], "obj");
    k.sig_len = CK_ULONG(info[2].As<Napi::Number>().Uint32Value());
    auto arr = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) k.mechanisms.push_back(CK_MECHANISM_TYPE(arr.Get(i).As<Napi::Number>().Int64Value()));
    k.max_rsa_data = size_t(info[4].As<Napi::Number>().Uint32Value());
    s_.keys[bytes_of(info[0], "handle")] = std::move(k);
    return env.Undefined();
  }

  Napi::Value DropKey(const Napi::CallbackInfo& info) {
    if (info.Length() == 1) s_.keys.erase(bytes_of(info[0], "handle"));
    return info.Env().Undefined();
  }

  Napi::Value KeyJson(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "keyJson(handle, json)");
    s_.key_json[bytes_of(info[0], "handle")] = info[1].As<Napi::String>().Utf8Value();
    return env.Undefined();
  }

  Napi::Value Audit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 6 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsTypedArray() || !info[3].IsNumber() ||
        !info[4].IsObject() || !info[5].IsArray())
      throw Napi::TypeError::New(env, "audit(fd, run, state, maxBytes, mechJson, hashes)");
    auto state = info[2].As<Napi::TypedArray>();
    if (state.TypedArrayType() != napi_float64_array || state.ElementLength() < 3)
      throw Napi::TypeError::New(env, "audit: state must be a Float64Array of 3");
    s_.state_ref = Napi::Persistent(state.As<Napi::Float64Array>());
    s_.state = state.As<Napi::Float64Array>().Data();
    s_.audit_fd = info[0].As<Napi::Number>().Int32Value();
    s_.run = info[1].As<Napi::String>().Utf8Value();
    s_.max_bytes = info[3].As<Napi::Number>().DoubleValue();
    s_.mech_json.clear();
    auto mj = info[4].As<Napi::Object>();
    auto names = mj.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string k = names.Get(i).As<Napi::String>();
      s_.mech_json[std::strtoull(k.c_str(), nullptr, 10)] = mj.Get(k).As<Napi::String>().Utf8Value();
    }
    s_.hashes.clear();
    auto hs = info[5].As<Napi::Array>();
    for (uint32_t i = 0; i < hs.Length(); i++) {
      auto h = hs.Get(i).As<Napi::Array>();
      s_.hashes.push_back({uint64_t(h.Get(0u).As<Napi::Number>().Int64Value()), size_t(h.Get(1u).As<Napi::Number>().Uint32Value()),
                           h.Get(2u).As<Napi::String>().Utf8Value()});
    }
    return env.Undefined();
  }

  // -1 while the audit log is rotated or closed: nothing is written to a descriptor that may be
  // gone (or reused) — every SIGN is declined to the JavaScript path meanwhile.
  Napi::Value AuditFd(const Napi::CallbackInfo& info) {
    if (info.Length() == 1 && info[0].IsNumber()) s_.audit_fd = info[0].As<Napi::Number>().Int32Value();
    return info.Env().Undefined();
  }

  Napi::Value Conn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "conn(peerJson)");
    std::string peer = info[0].As<Napi::String>().Utf8Value();
    for (size_t i = 0; i < s_.peers.size(); i++) {
      if (s_.peers[i].empty()) {
        s_.peers[i] = std::move(peer);
        return Napi::Number::New(env, double(i));
      }
    }
    s_.peers.push_back(std::move(peer));
    return Napi::Number::New(env, double(s_.peers.size() - 1));
  }

  Napi::Value ConnEnd(const Napi::CallbackInfo& info) {
    if (info.Length() == 1 && info[0].IsNumber()) {
      int64_t i = info[0].As<Napi::Number>().Int64Value();
      if (i >= 0 && size_t(i) < s_.peers.size()) s_.peers[size_t(i)].clear();
    }
    return info.Env().Undefined();
  }

  Napi::Value Sign(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsBuffer() || !info[1].IsNumber()) return env.Undefined();
    auto frame = info[0].As<Napi::Buffer<uint8_t>>();
    int64_t conn = info[1].As<Napi::Number>().Int64Value();
    Napi::Value reply = env.Undefined();
    bool ok = false;
    try {
      ok = s_.fl && conn >= 0 && sign_frame(s_, frame.Data(), frame.Length(), size_t(conn), env, &reply);
    } catch (...) {
      ok = false;  // (std::bad_alloc) declined like anything else: never an exception out of the loop
    }
    return ok ? reply : env.Undefined();
  }

  Napi::Value TakeOutcomes(const Napi::CallbackInfo& info) {
    Napi::String out = Napi::String::New(info.Env(), s_.outcomes);
    s_.outcomes.clear();
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("signed", Napi::Number::New(env, s_.signed_count));
    Napi::Object d = Napi::Object::New(env);
    for (int i = 0; i < kDeclineCount; i++) d.Set(kDeclineNames[i], Napi::Number::New(env, s_.declined[i]));
    o.Set("declined", d);
    o.Set("keys", Napi::Number::New(env, double(s_.keys.size())));
    return o;
  }

  Signer s_;
};

}  // namespace

void RegisterNativeSigner(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeSigner", NativeSigner::Define(env));
}
#endif
