#include "daemon_client.h"

#include <algorithm>
#include <cstring>

#include "autostart.h"
#include "connection.h"
#include "os.h"

namespace sb {

namespace {

constexpr size_t MAX_IDLE = 4;
constexpr const char* CLIENT_NAME = "libsignbridge-pkcs11/0.1.0";

// The daemon's own words from await_reply's "… refused HELLO: <message>".
std::string after_refusal(const std::string& m) {
  const std::string mark = "refused HELLO: ";
  size_t at = m.find(mark);
  return at == std::string::npos ? m : m.substr(at + mark.size());
}

// "1" or "1..2": the protocol versions this module speaks (protocol.md "HELLO").
std::string proto_range() {
  std::string s = std::to_string(proto::VERSION_MIN);
  if (proto::VERSION_MAX != proto::VERSION_MIN) s += ".." + std::to_string(proto::VERSION_MAX);
  return s;
}

// ---- The one generic call: encode → round trip → decode → check rv -------------------------
// Split in two halves only so LOGIN can encode under the PIN lock and wait without it.

template <class Req>
uint32_t encode(Connection& c, proto::Call call, const Req& req) {
  uint32_t id = c.next_id++;
  c.wbuf.clear();
  proto::encode_request(c.wbuf, call, id, req);
  return id;
}

// Sends what encode() left in c.wbuf and decodes the reply into `reply`. A daemon error reply
// comes back with its rv (protocol.md "Reply envelope"); transport and decoding failures as
// CKR_DEVICE_ERROR with the connection marked broken.
template <class Rep>
Status await_reply(Connection& c, proto::Call call, uint32_t id, Rep& reply, int timeout_ms, bool& stale) {
  const uint8_t* body = nullptr;
  size_t n = 0;
  RETURN_IF_ERROR(c.round_trip(call, id, timeout_ms, body, n, stale));
  const std::string name = proto::find_call(static_cast<uint8_t>(call))->name;
  proto::ReplyStatus st;
  std::string err;
  if (!proto::read_reply_body(body, n, st, reply, err)) {
    c.broken = true;
    return Status(CKR_DEVICE_ERROR, "bad " + name + " reply from the signbridge daemon at " + c.path() + ": " + err);
  }
  if (st.rv != 0)
    return Status(static_cast<CK_RV>(st.rv), "the signbridge daemon at " + c.path() + " refused " + name + ": " + st.message);
  return Status::Ok();
}

template <class Req, class Rep>
Status call(Connection& c, proto::Call call_id, const Req& req, Rep& reply, int timeout_ms, bool& stale) {
  uint32_t id = encode(c, call_id, req);
  return await_reply(c, call_id, id, reply, timeout_ms, stale);
}

// LOGIN's frame holds the PIN: reserved up front so no reallocation leaves a copy behind, and
// wiped from the buffer whatever happens.
void encode_login(Connection& c, uint32_t slot, uint64_t user, const uint8_t* pin, size_t len, uint32_t& id) {
  c.wbuf.clear();
  c.wbuf.reserve(64 + MAX_PIN);
  id = encode(c, proto::Call::Login, proto::LoginRequestView{slot, user, {pin, len}});
}
Status await_login(Connection& c, uint32_t id, int timeout_ms, bool& stale) {
  proto::LoginReply reply;
  Status s = await_reply(c, proto::Call::Login, id, reply, timeout_ms, stale);
  secure_wipe(c.wbuf.data(), c.wbuf.size());
  c.wbuf.clear();
  return s;
}

}  // namespace

DaemonClient::DaemonClient(ClientConfig cfg) : cfg_(std::move(cfg)) {}
DaemonClient::~DaemonClient() { secure_wipe(pin_, sizeof pin_); }

// ---- The pool ---------------------------------------------------------------------------

std::unique_ptr<Connection> DaemonClient::take_idle() {
  std::lock_guard<std::mutex> g(mu_);
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void DaemonClient::give_back(std::unique_ptr<Connection> c) {
  c->pooled = true;
  std::unique_ptr<Connection> drop;
  std::lock_guard<std::mutex> g(mu_);
  // Logged in with a PIN that was since forgotten or replaced (C_Logout, another C_Login): the
  // daemon still treats it as logged in, so it must not be reused.
  if (c->auth_gen != 0 && c->auth_gen != pin_gen_) drop = std::move(c);
  else if (idle_.size() < MAX_IDLE) idle_.push_back(std::move(c));
  else drop = std::move(c);
}

void DaemonClient::drop_idle() {
  std::vector<std::unique_ptr<Connection>> old;
  std::lock_guard<std::mutex> g(mu_);
  old.swap(idle_);
}

// A connected and greeted connection (protocol.md "Connection life" 1-2).
Result<std::unique_ptr<Connection>> DaemonClient::connect_greet(bool* absent, int hello_timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                   Connection::open(cfg_.socket_path, cfg_.default_socket, hello_timeout_ms, absent));
  proto::HelloRequest hello;
  hello.client = std::string(CLIENT_NAME) + " pid=" + std::to_string(process_id());
  proto::HelloReply reply;
  bool stale = false;
  Status s = call(*conn, proto::Call::Hello, hello, reply, hello_timeout_ms, stale);
  const std::string ours = proto_range();
  // A daemon that refuses HELLO is as good as none for every slot call (design.md).
  if (!s.ok() && stale)  // closed before a byte of the reply: the daemon refuses this process
    return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + cfg_.socket_path +
                                        " closed the connection without answering HELLO: it is stopping, or it serves only its own user (this process runs as " +
                                        user_label() +
                                        ") — then run the tool as the daemon's user, or start the daemon with --allow-uid " +
                                        user_for_flag() + "; its log says which")
        .with_notice(NoticeCause::RefusedByDaemon);
  if (!s.ok() && !conn->broken)  // an error reply: the daemon does not accept our versions
    return Status(CKR_DEVICE_ERROR, "module speaks protocol " + ours + ", the daemon at " + cfg_.socket_path +
                                        " does not (it answered: " + after_refusal(s.message()) +
                                        "): use the same signbridge version on both sides")
        .with_notice(NoticeCause::VersionMismatch);
  if (!s.ok()) return Status(CKR_DEVICE_ERROR, s.message()).with_notice(s.notice());
  if (reply.version < proto::VERSION_MIN || reply.version > proto::VERSION_MAX)
    return Status(CKR_DEVICE_ERROR, "module speaks protocol " + ours + ", daemon " + std::to_string(reply.version) +
                                        " (" + cfg_.socket_path + "): use the same signbridge version on both sides")
        .with_notice(NoticeCause::VersionMismatch);
  return conn;
}

// The one place a connection attempt finally fails: say it once on stderr (notice.h).
Result<std::unique_ptr<Connection>> DaemonClient::connect_fresh() {
  auto r = connect_or_start();
  if (!r.ok()) {
    NoticeCause cause = r.status().notice();
    notice_once(cause == NoticeCause::None ? NoticeCause::Unreachable : cause, r.status().message());
  }
  return r;
}

Result<std::unique_ptr<Connection>> DaemonClient::connect_or_start() {
  bool absent = false;
  auto r = connect_greet(&absent, cfg_.meta_timeout_ms);
  if (r.ok() || !absent) return r;
  if (!cfg_.autostart_error.empty()) return Status(CKR_DEVICE_ERROR, r.status().message() + "; " + cfg_.autostart_error);
  if (cfg_.autostart_argv.empty()) return r;
  // Autostart (docs/hardening/module.md): one attempt at a time in this process; across
  // processes start_daemon serializes on a lock file.
  std::lock_guard<std::mutex> g(autostart_mu_);
  r = connect_greet(&absent, cfg_.meta_timeout_ms);  // another thread may have started it
  if (r.ok() || !absent) return r;
  if (autostart_failed_)
    return Status(CKR_DEVICE_ERROR, r.status().message() + "; starting it with SIGNBRIDGE_AUTOSTART failed earlier in this process");
  Status s = start_daemon(cfg_, [this](int timeout_ms, bool* probe_absent) {
    auto c = connect_greet(probe_absent, timeout_ms);
    return c.ok() ? Status::Ok() : c.status();
  });
  if (!s.ok()) {
    autostart_failed_ = true;
    return s;
  }
  return connect_greet(&absent, cfg_.meta_timeout_ms);
}

template <class Fn>
Status DaemonClient::with_connection(int timeout_ms, Fn&& round_trip) {
  for (int attempt = 0;; attempt++) {
    std::unique_ptr<Connection> conn = attempt == 0 ? take_idle() : nullptr;
    if (!conn) {
      ASSIGN_OR_RETURN(conn, connect_fresh());
    }
    bool stale = false;
    conn->broken = false;
    // protocol.md "LOGIN": a kept PIN is sent right after HELLO on every new connection.
    Status s = relogin(*conn, cfg_.meta_timeout_ms, stale);
    if (s.ok()) s = round_trip(*conn, timeout_ms, stale);
    if (!conn->broken) {
      // Success or a daemon error reply: the connection is still in step, keep it.
      give_back(std::move(conn));
      return s;
    }
    // Transport failure: this connection is done (never reuse one that may be out of step).
    bool was_pooled = conn->pooled;
    conn.reset();
    if (stale && was_pooled && attempt == 0) {
      drop_idle();  // the daemon restarted: every idle connection is dead too
      continue;
    }
    return s;
  }
}

// ---- PIN custody (protocol.md "LOGIN") ---------------------------------------------------

void DaemonClient::forget_pin() {
  std::vector<std::unique_ptr<Connection>> old;
  std::lock_guard<std::mutex> g(mu_);
  secure_wipe(pin_, sizeof pin_);
  pin_len_ = 0;
  pin_gen_ = 0;
  for (auto& c : idle_)
    if (c->auth_gen != 0) old.push_back(std::move(c));
  idle_.erase(std::remove(idle_.begin(), idle_.end(), nullptr), idle_.end());
}

void DaemonClient::wipe_pin_in_child() {
  secure_wipe(pin_, sizeof pin_);
  pin_len_ = 0;
  pin_gen_ = 0;
}

Status DaemonClient::relogin(Connection& c, int timeout_ms, bool& stale) {
  uint64_t gen = 0;
  uint32_t id = 0;
  {
    // Encoded under the lock straight from pin_: no other copy of the PIN on a stack.
    std::lock_guard<std::mutex> g(mu_);
    if (pin_gen_ == 0 || c.auth_gen == pin_gen_) return Status::Ok();
    gen = pin_gen_;
    encode_login(c, pin_slot_, proto::CKU_USER_TYPE, pin_, pin_len_, id);
  }
  Status s = await_login(c, id, timeout_ms, stale);
  if (s.ok()) {
    c.auth_gen = gen;
    return s;
  }
  if (c.broken) return s;  // transport: with_connection decides about a retry
  // The daemon no longer accepts the PIN given at C_Login (secret changed, or locked out).
  return Status(CKR_USER_NOT_LOGGED_IN, "the signbridge daemon refused the PIN given at C_Login on a new connection (" +
                                            std::string(rv_name(s.rv())) + "); call C_Logout and C_Login again");
}

Status DaemonClient::login(uint32_t slot_id, uint64_t user_type, const uint8_t* pin, size_t pin_len) {
  // v2.40 C_Login has no CKR_PIN_LEN_RANGE: a PIN this long cannot be right.
  if (pin_len > MAX_PIN) return Status(CKR_PIN_INCORRECT, "C_Login: the PIN is longer than 255 bytes");
  uint64_t gen = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    gen = ++gen_counter_;
  }
  return with_connection(cfg_.meta_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) -> Status {
    uint32_t id = 0;
    encode_login(c, slot_id, user_type, pin, pin_len, id);
    RETURN_IF_ERROR(await_login(c, id, timeout_ms, stale));
    std::lock_guard<std::mutex> g(mu_);
    secure_wipe(pin_, sizeof pin_);
    if (pin_len) memcpy(pin_, pin, pin_len);
    pin_len_ = pin_len;
    pin_gen_ = gen;
    pin_slot_ = slot_id;
    c.auth_gen = gen;
    return Status::Ok();
  });
}

Status DaemonClient::authorize(const proto::Bytes& key_handle, const uint8_t* pin, size_t pin_len,
                               uint32_t& signatures) {
  if (pin_len > MAX_PIN) return Status(CKR_PIN_INCORRECT, "C_Login(CKU_CONTEXT_SPECIFIC): the OTP/PIN is longer than 255 bytes");
  // The service answers an authorisation over the network: the SIGN deadline applies.
  return with_connection(cfg_.sign_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) -> Status {
    c.wbuf.clear();
    c.wbuf.reserve(64 + proto::MAX_KEY_HANDLE + MAX_PIN);  // no reallocation leaves a copy of the OTP
    uint32_t id = encode(c, proto::Call::Authorize,
                         proto::AuthorizeRequestView{{key_handle.data(), key_handle.size()}, {pin, pin_len}});
    proto::AuthorizeReply reply;
    Status s = await_reply(c, proto::Call::Authorize, id, reply, timeout_ms, stale);
    secure_wipe(c.wbuf.data(), c.wbuf.size());
    c.wbuf.clear();
    RETURN_IF_ERROR(s);
    signatures = reply.signatures;
    return Status::Ok();
  });
}

// ---- The calls ----------------------------------------------------------------------------

Result<proto::InventoryReply> DaemonClient::get_inventory() {
  proto::InventoryReply out;
  RETURN_IF_ERROR(with_connection(cfg_.meta_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) {
    return call(c, proto::Call::GetInventory, proto::InventoryRequest{}, out, timeout_ms, stale);
  }));
  return out;
}

Status DaemonClient::sign(const proto::Bytes& key_handle, uint64_t mechanism, uint64_t hash_alg, uint64_t mgf,
                          uint32_t salt_len, const uint8_t* data, size_t data_len, uint8_t* out, size_t sig_len,
                          bool per_use_auth) {
  return with_connection(cfg_.sign_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) -> Status {
    proto::SignRequestView req{{key_handle.data(), key_handle.size()}, mechanism, hash_alg, mgf, salt_len, {data, data_len}};
    proto::SignReplyView reply;  // the signature, read in place from the connection's buffer
    // protocol.md "SIGN": daemon error replies pass through to the tool.
    Status s = call(c, proto::Call::Sign, req, reply, timeout_ms, stale);
    if (s.rv() == CKR_USER_NOT_LOGGED_IN && per_use_auth)  // the daemon's sentence says how to authorise
      notice_once(NoticeCause::AuthorizationRequired, s.message());
    else if (s.rv() == CKR_USER_NOT_LOGGED_IN)  // the tool never logged in; its own error names no cause
      notice_once(NoticeCause::LoginRequired,
                  "the signbridge daemon at " + c.path() +
                      " requires a login before signing (it was started with --client-secret-file): give the tool that secret as its PIN, e.g. pkcs11-tool --login --pin, osslsigncode -pass, jarsigner -storepass, pin-value= in a pkcs11: URI");
    RETURN_IF_ERROR(s);
    if (reply.signature.size != sig_len)
      return Status(CKR_DEVICE_ERROR, "the signbridge daemon returned a " + std::to_string(reply.signature.size) +
                                          "-byte signature, expected " + std::to_string(sig_len));
    memcpy(out, reply.signature.data, sig_len);
    return Status::Ok();
  });
}

}  // namespace sb
