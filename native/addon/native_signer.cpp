// The daemon's native signing path (docs/performance.md "The native signing path"). Once the
// daemon has checked a client (uid policy), it hands the connection's socket to this file: bytes
// are read and written here, on the event loop (libuv poll handles), and a SIGN frame for a fast
// key of the pkcs11 backend — with the audit log on a memory file system — is decoded, signed, put
// on record and answered without any JavaScript. Every other frame (HELLO, GET_INVENTORY, LOGIN,
// a key the backend did not hand over, a mechanism with parameters, an unusual length, a token
// error, an audit write that failed or is due for rotation, anything malformed) is passed to the
// daemon's JavaScript as it came, and that path answers it in full and says what went wrong. So
// this file holds no error text and no policy of its own; it repeats only what the JavaScript path
// does on success, byte for byte (the reply frame and both audit lines).
//
// Event-loop thread only: no locks. POSIX only; on Windows the daemon reads and signs in JS.
//
//   new NativeSigner(library, slot: Buffer, thresholdUs)   throws when the library is not loaded
//   .key(handle, obj: Buffer, sigLen, mechanisms: number[], maxRsaData, idleCostUs) / .dropKey(handle)
//   .scheduler(shared: Float64Array[pool, client, at], contentionWindow, idleMaxUs)   scheduler.ts's state
//   .keyJson(handle, json)            the key's audit fragment (the daemon's audit-record.ts)
//   .audit(fd, run, state: Float64Array[seq, size, torn, flushing], maxBytes, mechJson, hashes, onDisk, due()) / .auditFd(fd)
//                                     due(): outcome lines have waited 5 ms; audit.ts takes them
//   .adopt(fd, onEvent(kind 0 = data | 1 = closed, frame?)) → id     the connection is served here
//   .allow(id, peerJson, client) / .deny(id)  SIGN frames of this connection may (no longer) be made here
//   .write(id, frame) / .end(id) / .destroy(id)
//   .takeOutcomes() → string;  .stats() → { signed, declined: { <reason>: n }, keys };  .close()
// One per pkcs11 backend instance (a test process may run several daemons).
#ifndef _WIN32
#include <dlfcn.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <memory>
#include <unordered_map>
#include <vector>

#include <napi.h>

#include "messages.h"
#include "p11.h"

// The few libuv calls used here, declared by hand: the addon builds against node-api-headers,
// which carry no uv.h. Node exports libuv to addons (napi_get_uv_event_loop), its 1.x ABI is
// stable, and handle memory is sized at run time with uv_handle_size(); `data` is the first
// field of every handle (uv.h UV_HANDLE_FIELDS).
extern "C" {
struct uv_loop_s;
struct uv_handle_s;
struct uv_poll_s;
struct uv_timer_s;
typedef void (*uv_poll_cb)(uv_poll_s* handle, int status, int events);
typedef void (*uv_timer_cb)(uv_timer_s* handle);
typedef void (*uv_close_cb)(uv_handle_s* handle);
size_t uv_handle_size(int type);
int uv_poll_init(uv_loop_s* loop, uv_poll_s* handle, int fd);
int uv_poll_start(uv_poll_s* handle, int events, uv_poll_cb cb);
int uv_poll_stop(uv_poll_s* handle);
int uv_timer_init(uv_loop_s* loop, uv_timer_s* handle);
int uv_timer_start(uv_timer_s* handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat);
int uv_timer_stop(uv_timer_s* handle);
int uv_is_active(const uv_handle_s* handle);
void uv_unref(uv_handle_s* handle);
void uv_close(uv_handle_s* handle, uv_close_cb close_cb);
}

// glibc 2.34 moved dlopen & co. into libc under a new version; the addon keeps the README's glibc
// 2.28 floor by binding the architecture's base version, which old and new glibc both export, and
// names libdl.so.2 (a stub on 2.34+) so that older glibc finds them there (CMakeLists.txt).
// pthread_create/join likewise (glibc 2.34 gave them a new version in libc; libpthread.so.0, also
// named, has the old one), which is why the audit writer below is a pthread and not a std::thread.
#if defined(__GLIBC__) && defined(__x86_64__) && !defined(SB_NO_GLIBC_COMPAT)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlclose,dlclose@GLIBC_2.2.5");
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__) && !defined(SB_NO_GLIBC_COMPAT)
__asm__(".symver dlopen,dlopen@GLIBC_2.17");
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
__asm__(".symver dlclose,dlclose@GLIBC_2.17");
__asm__(".symver pthread_create,pthread_create@GLIBC_2.17");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.17");
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
  double idle_cost_us = 0;  // 0: a fast key; else a slow key of this cost, signed here only when idle
  int slow = 0;
};

struct Hash {
  uint64_t ckm;
  size_t len;
  std::string json;  // "hash":"CKM_SHA256","digest":"
};

bool write_all(int fd, const std::string& s, size_t* done);

// The audit log on a disk: the request record's synchronous write (O_DSYNC, ≈ 0.2–0.4 ms here)
// runs on this thread while the event loop signs, and the loop waits for whatever is left of it —
// one write at a time, so no queue. (On a memory file system the loop writes it itself.)
class Writer {
 public:
  Writer() {
    pthread_mutex_init(&m_, nullptr);
    pthread_cond_init(&cv_, nullptr);
    started_ = pthread_create(&thread_, nullptr, &Writer::Run, this) == 0;
  }
  ~Writer() {
    pthread_mutex_lock(&m_);
    stop_ = true;
    pthread_cond_broadcast(&cv_);
    pthread_mutex_unlock(&m_);
    if (started_) pthread_join(thread_, nullptr);
    pthread_cond_destroy(&cv_);
    pthread_mutex_destroy(&m_);
  }
  bool started() const { return started_; }
  void Submit(int fd, const std::string* data) {
    pthread_mutex_lock(&m_);
    fd_ = fd;
    data_ = data;
    done_ = false;
    job_ = true;
    pthread_cond_broadcast(&cv_);
    pthread_mutex_unlock(&m_);
  }
  bool Wait(size_t* written) {
    pthread_mutex_lock(&m_);
    while (!done_) pthread_cond_wait(&cv_, &m_);
    *written = written_;
    bool ok = ok_;
    pthread_mutex_unlock(&m_);
    return ok;
  }

 private:
  static void* Run(void* self) {
    static_cast<Writer*>(self)->Loop();
    return nullptr;
  }
  void Loop() {
    pthread_mutex_lock(&m_);
    for (;;) {
      while (!stop_ && !job_) pthread_cond_wait(&cv_, &m_);
      if (stop_) break;
      job_ = false;
      int fd = fd_;
      const std::string* data = data_;
      pthread_mutex_unlock(&m_);
      size_t w = 0;
      bool ok = write_all(fd, *data, &w);
      pthread_mutex_lock(&m_);
      written_ = w;
      ok_ = ok;
      done_ = true;
      pthread_cond_broadcast(&cv_);
    }
    pthread_mutex_unlock(&m_);
  }
  // plain pthread objects: std::mutex/condition_variable would pull in libstdc++ parts that need
  // glibc 2.34 symbols (the README's floor is 2.28)
  pthread_mutex_t m_;
  pthread_cond_t cv_;
  pthread_t thread_{};
  bool started_ = false, stop_ = false, job_ = false, done_ = true, ok_ = false;
  int fd_ = -1;
  const std::string* data_ = nullptr;
  size_t written_ = 0;
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
  std::unique_ptr<Writer> writer;  // the audit log is on a disk: its writes run there
  double* state = nullptr;  // [0] last record seq, [1] file size, [2] torn (a write failed part-way), [3] audit.ts writing
  Napi::Reference<Napi::Float64Array> state_ref;
  double max_bytes = 0;
  std::string run;
  std::unordered_map<uint64_t, std::string> mech_json;  // "mechanism":"CKM_ECDSA",
  std::vector<Hash> hashes;
  // the JavaScript scheduler's shared state (scheduler.ts `shared`): [0] signatures on the thread
  // pool, [1] the last signing client, [2] when it asked (ms, CLOCK_MONOTONIC); and its rule's numbers
  double* sched = nullptr;
  Napi::Reference<Napi::Float64Array> sched_ref;
  double contention_window = 4, idle_max_us = 20000;
  std::string outcomes;  // outcome lines waiting for the next record (or the timer below)
  Napi::FunctionReference on_outcomes;  // audit.ts: take them now
  uv_timer_s* outcome_timer = nullptr;
  double signed_count = 0, declined[8] = {};
  std::vector<uint8_t> sig, out;
  std::string line;
};

double now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

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

// Outcome lines need no sync of their own (audit.ts): they ride along with the next request
// record, or go out by themselves this long after the signature (the JavaScript path's delay).
constexpr uint64_t kOutcomeDelayMs = 5;

void* handle_data(void* h) { return *static_cast<void**>(h); }  // uv_handle_t's first field
void set_handle_data(void* h, void* v) { *static_cast<void**>(h) = v; }

// The outcome lines waited long enough: JavaScript's audit log takes them (takeOutcomes) into a
// write of its own, which knows about rotation, failures and the disk's thread pool.
void write_outcomes(uv_timer_s* t) {
  Signer& s = *static_cast<Signer*>(handle_data(t));
  if (s.outcomes.empty() || s.on_outcomes.IsEmpty()) return;
  napi_env env = s.on_outcomes.Env();
  Napi::HandleScope scope(env);
  napi_value fn = s.on_outcomes.Value();
  napi_value recv, result;
  napi_get_global(env, &recv);  // napi_make_callback needs an object as `this`
  if (napi_make_callback(env, nullptr, recv, fn, 0, nullptr, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

void arm_outcome_timer(Signer& s) {
  if (s.outcome_timer && !uv_is_active(reinterpret_cast<uv_handle_s*>(s.outcome_timer)))
    uv_timer_start(s.outcome_timer, write_outcomes, kOutcomeDelayMs, 0);
}

// Why a frame went to the JavaScript path (stats().declined): one counter each.
enum Decline { kNoAudit, kNotSign, kKey, kRequest, kBusy, kToken, kRotation, kWrite, kDeclineCount };
const char* const kDeclineNames[kDeclineCount] = {"noAudit", "notSign", "key", "request", "busy", "token", "rotation", "write"};

bool decline(Signer& s, Decline why) {
  s.declined[why]++;
  return false;
}

// The whole path; false = declined (nothing was sent, nothing needs undoing).
// A request record of `bytes` is in the file (the outcomes it carried with it too): count it, and
// queue its outcome line (audit-record.ts outcomeLine) for the next write.
void recorded(Signer& s, size_t bytes, const std::string& id, const char* outcome, double us) {
  s.state[0] += 1;
  s.state[1] += double(bytes);
  s.outcomes.clear();
  s.outcomes += "{\"time\":\"";
  append_iso_now(s.outcomes);
  s.outcomes += "\",\"id\":\"" + id + "\",\"event\":\"outcome\"," + outcome + ",\"backend_us\":" + std::to_string(uint64_t(us + 0.5)) + "}\n";
  arm_outcome_timer(s);
}

// `peer`: the connection's audit fragment; `client`: its connection number in the daemon. On
// success the reply frame is in s.out.
bool sign_frame(Signer& s, const uint8_t* p, size_t n, const std::string& peer, double client) {
  // torn, or audit.ts has a write of its own in flight (its size would be stale): its turn
  if (s.audit_fd < 0 || !s.state || s.state[2] != 0 || s.state[3] != 0) return decline(s, kNoAudit);
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

  // where the JavaScript scheduler would sign (scheduler.ts): a fast key on the loop always; a
  // slow key on the loop only with nothing on the thread pool and no other client's signature
  // within a few of its sign times — else on the pool, which is the JavaScript path's to use.
  // With the audit log on a disk the loop also waits for the record's sync: the same rule, for
  // every key, so that concurrent clients keep the JavaScript path and its shared (group) writes.
  bool disk = s.writer != nullptr;
  double now = now_ms();
  if (!s.sched) return decline(s, kBusy);
  if (key.idle_cost_us > 0 || disk) {
    double other = s.sched[1] != -1 && client != s.sched[1] ? now - s.sched[2] : 1e300;
    if (s.sched[0] > 0 || other * 1000 <= s.contention_window * std::max(key.idle_cost_us, s.threshold_us)) return decline(s, kBusy);
  }

  // the request record (audit-record.ts requestLine), with the outcome lines still waiting
  std::string id = s.run + "-" + std::to_string(uint64_t(s.state[0]) + 1);
  std::string& line = s.line;
  line.assign(s.outcomes);
  line += "{\"time\":\"";
  append_iso_now(line);
  line += "\",\"id\":\"" + id + "\",\"event\":\"request\",\"peer\":" + peer + ",\"key\":" + jit->second + "," + mit->second + hash->json;
  append_hex(line, req.data.data + len - hash->len, hash->len);
  line += "\"}\n";
  if (s.max_bytes > 0 && s.state[1] > 0 && s.state[1] + double(line.size()) > s.max_bytes) return decline(s, kRotation);  // rotation: JavaScript's
  s.sched[1] = client;
  s.sched[2] = now;
  if (disk) s.writer->Submit(s.audit_fd, &line);  // the disk syncs while the token signs

  // a failed write: "torn" tells the JavaScript path to start its next write on a new line, and it
  // reports the failure, for this request and until a write succeeds
  auto write_failed = [&s](size_t done) {
    if (done > 0) {
      s.state[2] = 1;
      s.state[1] += double(done);
    }
    s.audit_fd = -1;
  };
  // sign
  CK_MECHANISM mech{req.mechanism, nullptr, 0};
  s.sig.resize(key.sig_len);
  CK_ULONG sig_len = key.sig_len;
  double t0 = now_us();
  bool signed_ok = s.fl->C_SignInit(s.session, &mech, key.obj) == CKR_OK &&
                   s.fl->C_Sign(s.session, const_cast<CK_BYTE_PTR>(req.data.data), CK_ULONG(len), s.sig.data(), &sig_len) == CKR_OK;
  double us = now_us() - t0;
  size_t done = 0;
  bool written = disk ? s.writer->Wait(&done) : false;
  if (!signed_ok) {
    reset_session(s);
    if (disk) {
      // the record is on disk already: say what became of it before the JavaScript path makes
      // the request again, under the next id
      if (!written) {
        write_failed(done);
        return decline(s, kToken);
      }
      recorded(s, line.size(), id,
               "\"outcome\":\"retried\",\"error\":\"the token refused it on the native signing path; the daemon made the request again under the next id\"", us);
    }
    return decline(s, kToken);
  }
  uint32_t frame_id = h.id;
  if (us >= (key.idle_cost_us > 0 ? s.idle_max_us : s.threshold_us)) {
    if (++key.slow >= kSlowSamples) s.keys.erase(kit);  // this signature is still answered
  } else {
    key.slow = 0;
  }
  if (!disk) written = write_all(s.audit_fd, line, &done);
  if (!written) {
    write_failed(done);
    return decline(s, kWrite);
  }
  recorded(s, line.size(), id, "\"outcome\":\"ok\"", us);

  s.out.clear();
  SignReplyView rep;
  rep.signature = sb::wire::ByteView{s.sig.data(), size_t(sig_len)};
  sb::proto::encode_ok_reply(s.out, Call::Sign, frame_id, rep);
  s.signed_count++;
  return true;
}

constexpr int kUvReadable = 1, kUvWritable = 2;  // uv_poll_event
constexpr int kUvPoll = 8, kUvTimer = 13;          // uv_handle_type
constexpr size_t kReadChunk = 64 * 1024;

class NativeSigner;

// One adopted connection. Its poll handle's memory is freed in the close callback, after libuv
// is done with it; the fd (our dup of the accepted socket) is closed there too.
struct Conn {
  NativeSigner* owner = nullptr;
  uint32_t id = 0;
  int fd = -1;
  uv_poll_s* poll = nullptr;
  std::vector<uint8_t> in;  // bytes of frames not yet handled
  std::string out;          // reply bytes the socket did not take yet
  std::string peer;         // audit fragment; empty: SIGN frames go to JavaScript (not greeted …)
  double client = -1;       // the daemon's number for this connection (the scheduler's `client`)
  int js_pending = 0;       // frames given to JavaScript and not answered: later ones follow them
  int events = 0;
  bool passthrough = false; // a malformed stream: everything goes to JavaScript, which closes it
  bool ending = false;      // close once `out` is written
  bool closing = false;
  Napi::FunctionReference on_event;
};

class NativeSigner : public Napi::ObjectWrap<NativeSigner> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSigner",
                       {InstanceMethod("key", &NativeSigner::AddKey), InstanceMethod("dropKey", &NativeSigner::DropKey), InstanceMethod("scheduler", &NativeSigner::Scheduler),
                        InstanceMethod("keyJson", &NativeSigner::KeyJson), InstanceMethod("audit", &NativeSigner::Audit),
                        InstanceMethod("auditFd", &NativeSigner::AuditFd), InstanceMethod("adopt", &NativeSigner::Adopt),
                        InstanceMethod("allow", &NativeSigner::Allow), InstanceMethod("deny", &NativeSigner::Deny),
                        InstanceMethod("write", &NativeSigner::Write), InstanceMethod("end", &NativeSigner::End),
                        InstanceMethod("destroy", &NativeSigner::Destroy), InstanceMethod("takeOutcomes", &NativeSigner::TakeOutcomes),
                        InstanceMethod("stats", &NativeSigner::Stats), InstanceMethod("close", &NativeSigner::Close)});
  }

  explicit NativeSigner(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSigner>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "new NativeSigner(library, slot, thresholdUs)");
    std::string library = info[0].As<Napi::String>();
    s_.slot = ulong_of(info[1], "slot");
    s_.threshold_us = info[2].As<Napi::Number>().DoubleValue();
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok || !loop_) throw Napi::Error::New(env, "native signer: no event loop");
    // RTLD_NOLOAD: the very library (and C_Initialize) pkcs11js loaded; never a second copy.
    s_.lib = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (!s_.lib) throw Napi::Error::New(env, "native signer: the PKCS#11 library is not loaded in this process");
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(s_.lib, "C_GetFunctionList"));
    if (!get || get(&s_.fl) != CKR_OK || !s_.fl || !open_session(s_)) {
      Release(false);
      throw Napi::Error::New(env, "native signer: no function list or session from the PKCS#11 library");
    }
    s_.outcome_timer = static_cast<uv_timer_s*>(std::calloc(1, uv_handle_size(kUvTimer)));
    uv_timer_init(loop_, s_.outcome_timer);
    set_handle_data(s_.outcome_timer, &s_);
    uv_unref(reinterpret_cast<uv_handle_s*>(s_.outcome_timer));
  }
  ~NativeSigner() override { Release(false); }

 private:
  // notify: emit "closed" to JavaScript for each connection (not from a finalizer).
  void Release(bool notify) {
    std::vector<uint32_t> ids;
    for (auto& c : conns_) ids.push_back(c.first);
    for (uint32_t id : ids) CloseConn(id, notify);
    if (s_.outcome_timer) {
      uv_timer_stop(s_.outcome_timer);  // what is still waiting, audit.ts takes when it closes
      uv_close(reinterpret_cast<uv_handle_s*>(s_.outcome_timer), [](uv_handle_s* h) { std::free(h); });
      s_.outcome_timer = nullptr;
    }
    if (s_.fl && s_.session != CK_INVALID_HANDLE) s_.fl->C_CloseSession(s_.session);
    s_.session = CK_INVALID_HANDLE;
    s_.fl = nullptr;
    s_.keys.clear();
    s_.audit_fd = -1;
    s_.writer.reset();
    if (s_.lib) dlclose(s_.lib);
    s_.lib = nullptr;
  }

  Conn* Find(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) return nullptr;
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    return it == conns_.end() || it->second->closing ? nullptr : it->second;
  }

  // ---- connections ----
  static void OnPoll(uv_poll_s* h, int status, int events) {
    Conn* c = static_cast<Conn*>(handle_data(h));
    c->owner->Pump(c, status, events);
  }

  void Watch(Conn* c) {
    int want = (c->passthrough || c->ending ? 0 : kUvReadable) | (c->out.empty() ? 0 : kUvWritable);
    if (want == c->events) return;
    c->events = want;
    if (want) uv_poll_start(c->poll, want, OnPoll);
    else uv_poll_stop(c->poll);
  }

  void Pump(Conn* c, int status, int events) {
    if (c->closing) return;
    if (status < 0) return CloseConn(c->id, true);
    if (events & kUvWritable) {
      if (!Flush(c)) return;
    }
    if (!(events & kUvReadable)) return Watch(c);
    bool eof = false;
    for (;;) {
      ssize_t n = read(c->fd, rbuf_.get(), kReadChunk);
      if (n > 0) {
        c->in.insert(c->in.end(), rbuf_.get(), rbuf_.get() + n);
        if (size_t(n) < kReadChunk) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;  // 0: the client closed; < 0: reset
      break;
    }
    if (!Frames(c)) return;  // closed meanwhile
    if (eof) {
      // a client that closes inside a frame: JavaScript sees the bytes, and says so (server.ts)
      if (!c->in.empty()) {
        std::vector<uint8_t> rest;
        rest.swap(c->in);
        if (!Emit(c, 0, rest.data(), rest.size())) return;
      }
      return CloseConn(c->id, true);
    }
    Watch(c);
  }

  // Every complete frame in c->in: signed here, or given to JavaScript. False when c was closed.
  bool Frames(Conn* c) {
    size_t off = 0;
    while (!c->closing && off < c->in.size()) {
      const uint8_t* p = c->in.data() + off;
      size_t left = c->in.size() - off, size = 0;
      sb::proto::FrameStatus st = c->passthrough ? sb::proto::FrameStatus::Bad : sb::proto::scan_frame(p, left, &size, nullptr);
      if (st == sb::proto::FrameStatus::NeedMore) break;
      if (st == sb::proto::FrameStatus::Bad) {
        // JavaScript's decoder refuses these bytes with its one log line and closes the connection
        c->passthrough = true;
        std::vector<uint8_t> rest(p, p + left);
        off = c->in.size();
        c->in.clear();
        return Emit(c, 0, rest.data(), rest.size());
      }
      if (c->js_pending == 0 && !c->peer.empty() && sign_frame(s_, p, size, c->peer, c->client)) {
        c->out.append(reinterpret_cast<const char*>(s_.out.data()), s_.out.size());
        off += size;
        if (!Flush(c)) return false;
        continue;
      }
      c->js_pending++;
      std::vector<uint8_t> frame(p, p + size);
      off += size;
      if (!Emit(c, 0, frame.data(), frame.size())) return false;
    }
    if (!c->closing) c->in.erase(c->in.begin(), c->in.begin() + std::ptrdiff_t(std::min(off, c->in.size())));
    return !c->closing;
  }

  // Writes what the socket takes now; the rest when it is writable. False when c was closed.
  bool Flush(Conn* c) {
    while (!c->out.empty()) {
      ssize_t n = ::write(c->fd, c->out.data(), c->out.size());
      if (n > 0) {
        c->out.erase(0, size_t(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      CloseConn(c->id, true);  // the client is gone
      return false;
    }
    if (c->out.empty() && c->ending) {
      CloseConn(c->id, true);
      return false;
    }
    Watch(c);
    return true;
  }

  // Calls JavaScript's onEvent(kind[, bytes]); false when that closed the connection.
  bool Emit(Conn* c, int kind, const uint8_t* p, size_t n) {
    uint32_t id = c->id;
    Napi::HandleScope scope(env_);
    std::vector<napi_value> args{Napi::Number::New(env_, kind)};
    if (p) args.push_back(Napi::Buffer<uint8_t>::Copy(env_, p, n));
    napi_value fn = c->on_event.Value();
    napi_value recv = Value();
    napi_value result;
    // a callback from the loop (not from JavaScript): MakeCallback runs the microtasks after it
    if (napi_make_callback(env_, nullptr, recv, fn, args.size(), args.data(), &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env_, &err);
      napi_fatal_exception(env_, err);  // as if thrown by any event handler: 'uncaughtException'
    }
    auto it = conns_.find(id);
    return it != conns_.end() && !it->second->closing;
  }

  // notify: tell JavaScript (not from the finalizer, where no JavaScript may run).
  void CloseConn(uint32_t id, bool notify) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second->closing) return;
    Conn* c = it->second;
    c->closing = true;
    conns_.erase(it);
    uv_poll_stop(c->poll);
    if (notify) Emit(c, 1, nullptr, 0);
    uv_close(reinterpret_cast<uv_handle_s*>(c->poll), [](uv_handle_s* h) {
      Conn* conn = static_cast<Conn*>(handle_data(h));
      ::close(conn->fd);  // after libuv let go of it
      std::free(h);
      delete conn;
    });
  }

  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "adopt(fd, onEvent)");
    int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
    if (fd < 0) throw Napi::Error::New(env, std::string("native signer: cannot take over the connection: ") + strerror(errno));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    Conn* c = new Conn();
    c->id = next_id_++;
    c->fd = fd;
    c->on_event = Napi::Persistent(info[1].As<Napi::Function>());
    c->poll = static_cast<uv_poll_s*>(std::calloc(1, uv_handle_size(kUvPoll)));
    if (uv_poll_init(loop_, c->poll, fd) != 0) {
      ::close(fd);
      std::free(c->poll);
      delete c;
      throw Napi::Error::New(env, "native signer: cannot watch the connection");
    }
    set_handle_data(c->poll, c);
    c->owner = this;
    conns_[c->id] = c;
    Watch(c);
    return Napi::Number::New(env, c->id);
  }

  Napi::Value Allow(const Napi::CallbackInfo& info) {
    if (Conn* c = Find(info); c && info.Length() == 3 && info[1].IsString() && info[2].IsNumber()) {
      c->peer = info[1].As<Napi::String>().Utf8Value();
      c->client = info[2].As<Napi::Number>().DoubleValue();
    }
    return info.Env().Undefined();
  }

  Napi::Value Deny(const Napi::CallbackInfo& info) {
    if (Conn* c = Find(info)) c->peer.clear();
    return info.Env().Undefined();
  }

  // A reply from JavaScript: it answers the oldest frame given to it.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Conn* c = Find(info);
    if (!c || info.Length() != 2 || !info[1].IsBuffer()) return info.Env().Undefined();
    auto b = info[1].As<Napi::Buffer<uint8_t>>();
    c->out.append(reinterpret_cast<const char*>(b.Data()), b.Length());
    if (c->js_pending > 0) c->js_pending--;
    Flush(c);
    return info.Env().Undefined();
  }

  Napi::Value End(const Napi::CallbackInfo& info) {
    if (Conn* c = Find(info)) {
      c->ending = true;
      Flush(c);
    }
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (info.Length() == 1 && info[0].IsNumber()) CloseConn(info[0].As<Napi::Number>().Uint32Value(), true);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release(true);
    return info.Env().Undefined();
  }

  Napi::Value AddKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 6 || !info[2].IsNumber() || !info[3].IsArray() || !info[4].IsNumber() || !info[5].IsNumber())
      throw Napi::TypeError::New(env, "key(handle, obj, sigLen, mechanisms, maxRsaData, idleCostUs)");
    if (!s_.fl) return env.Undefined();
    Key k;
    k.obj = ulong_of(info[1], "obj");
    k.sig_len = CK_ULONG(info[2].As<Napi::Number>().Uint32Value());
    auto arr = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) k.mechanisms.push_back(CK_MECHANISM_TYPE(arr.Get(i).As<Napi::Number>().Int64Value()));
    k.max_rsa_data = size_t(info[4].As<Napi::Number>().Uint32Value());
    k.idle_cost_us = info[5].As<Napi::Number>().DoubleValue();
    s_.keys[bytes_of(info[0], "handle")] = std::move(k);
    return env.Undefined();
  }

  Napi::Value Scheduler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "scheduler(shared, contentionWindow, idleMaxUs)");
    auto a = info[0].As<Napi::TypedArray>();
    if (a.TypedArrayType() != napi_float64_array || a.ElementLength() < 3)
      throw Napi::TypeError::New(env, "scheduler: shared must be a Float64Array of 3");
    s_.sched_ref = Napi::Persistent(a.As<Napi::Float64Array>());
    s_.sched = a.As<Napi::Float64Array>().Data();
    s_.contention_window = info[1].As<Napi::Number>().DoubleValue();
    s_.idle_max_us = info[2].As<Napi::Number>().DoubleValue();
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
    if (info.Length() != 8 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsTypedArray() || !info[3].IsNumber() ||
        !info[4].IsObject() || !info[5].IsArray() || !info[6].IsBoolean() || !info[7].IsFunction())
      throw Napi::TypeError::New(env, "audit(fd, run, state, maxBytes, mechJson, hashes, onDisk, takeOutcomes)");
    s_.on_outcomes = Napi::Persistent(info[7].As<Napi::Function>());
    auto state = info[2].As<Napi::TypedArray>();
    if (state.TypedArrayType() != napi_float64_array || state.ElementLength() < 4)
      throw Napi::TypeError::New(env, "audit: state must be a Float64Array of 4");
    s_.state_ref = Napi::Persistent(state.As<Napi::Float64Array>());
    s_.state = state.As<Napi::Float64Array>().Data();
    s_.audit_fd = info[0].As<Napi::Number>().Int32Value();
    s_.run = info[1].As<Napi::String>().Utf8Value();
    s_.max_bytes = info[3].As<Napi::Number>().DoubleValue();
    s_.writer.reset();
    if (info[6].As<Napi::Boolean>().Value()) {
      s_.writer = std::make_unique<Writer>();
      if (!s_.writer->started()) {
        s_.writer.reset();
        s_.audit_fd = -1;  // no thread: the JavaScript path writes every record
      }
    }
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
  // gone (or reused) — every SIGN goes to the JavaScript path meanwhile.
  Napi::Value AuditFd(const Napi::CallbackInfo& info) {
    if (info.Length() == 1 && info[0].IsNumber()) s_.audit_fd = info[0].As<Napi::Number>().Int32Value();
    return info.Env().Undefined();
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
    o.Set("connections", Napi::Number::New(env, double(conns_.size())));
    return o;
  }

  Napi::Env env_;
  uv_loop_s* loop_ = nullptr;
  Signer s_;
  std::unordered_map<uint32_t, Conn*> conns_;
  uint32_t next_id_ = 1;
  std::unique_ptr<uint8_t[]> rbuf_{new uint8_t[kReadChunk]};  // one read buffer for every connection
};

}  // namespace

void RegisterNativeSigner(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeSigner", NativeSigner::Define(env));
}
#endif
