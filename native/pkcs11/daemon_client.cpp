#include "daemon_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "../common/framing.h"

namespace sb {

namespace {

constexpr size_t MAX_IDLE = 4;
constexpr const char* CLIENT_NAME = "libsignbridge-pkcs11/0.1.0";

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits until fd is ready for `events` or the deadline passes. 0 ready, ETIMEDOUT, or errno.
int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, left > 1000000 ? 1000000 : static_cast<int>(left));
    if (r > 0) return 0;  // readable/writable or HUP/ERR: the next syscall tells which
    if (r == 0) continue;
    if (errno != EINTR) return errno;
  }
}

std::string unreachable(const std::string& path, const std::string& why) {
  return "cannot reach the signbridge daemon at " + path + " (" + why +
         "); start it with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET";
}

}  // namespace

ClientConfig config_from_env() {
  ClientConfig c;
  if (const char* s = getenv("SIGNBRIDGE_SOCKET"); s && *s) {
    c.socket_path = s;
  } else if (const char* x = getenv("XDG_RUNTIME_DIR"); x && *x) {
    c.socket_path = std::string(x) + "/signbridge/signbridge.sock";
  } else {
    c.socket_path = "/tmp/signbridge-" + std::to_string(getuid()) + "/signbridge.sock";
  }
  if (const char* t = getenv("SIGNBRIDGE_TIMEOUT_MS"); t && *t) {
    char* end = nullptr;
    long v = strtol(t, &end, 10);
    if (end && *end == 0 && v > 0 && v <= 24L * 3600 * 1000) c.sign_timeout_ms = static_cast<int>(v);
  }
  c.meta_timeout_ms = c.sign_timeout_ms < 10000 ? c.sign_timeout_ms : 10000;
  return c;
}

// One greeted connection with its reusable buffers (no allocation per signature once warm).
class Connection {
 public:
  Connection(int fd, const std::string& path) : fd_(fd), path_(path) {}
  ~Connection() { if (fd_ >= 0) close(fd_); }
  std::vector<uint8_t> wbuf;
  uint32_t next_id = 1;
  bool pooled = false;  // came from the idle pool (so a failure may just mean "stale")
  bool broken = false;  // transport or framing failure: out of step, must be closed

  // Sends wbuf and reads exactly one reply frame for (call, id). On success body/body_len point
  // into rbuf_. `stale` is set when the failure means "the peer was already gone" (nothing of
  // the reply arrived), which is worth one retry on a fresh connection.
  Status round_trip(proto::Call call, uint32_t id, int timeout_ms, const uint8_t*& body,
                    size_t& body_len, bool& stale) {
    stale = false;
    int64_t deadline = now_ms() + timeout_ms;
    const char* name = proto::find_call(static_cast<uint8_t>(call))->name;
    size_t sent = 0;
    while (sent < wbuf.size()) {
      // MSG_NOSIGNAL: never raise SIGPIPE in the host process.
      ssize_t n = send(fd_, wbuf.data() + sent, wbuf.size() - sent, MSG_NOSIGNAL);
      if (n > 0) { sent += size_t(n); continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        int w = wait_fd(fd_, POLLOUT, deadline);
        if (w == ETIMEDOUT) return timeout(name, timeout_ms);
        if (w) return io_error("send", w);
        continue;
      }
      int e = errno;
      stale = sent == 0 && (e == EPIPE || e == ECONNRESET || e == ENOTCONN);
      return io_error("send", e);
    }
    size_t have = 0;
    size_t need = 4096;
    if (rbuf_.size() < need) rbuf_.resize(need);
    for (;;) {
      size_t frame = 0;
      const char* why = "";
      proto::FrameStatus fs = proto::scan_frame(rbuf_.data(), have, &frame, &why);
      if (fs == proto::FrameStatus::Bad) return bad_reply(why);
      if (fs == proto::FrameStatus::Complete) {
        if (have != frame) return bad_reply("bytes after the reply frame");
        proto::FrameHeader h = proto::read_header(rbuf_.data());
        if (h.call != static_cast<uint8_t>(call) || h.kind != static_cast<uint8_t>(proto::Kind::Reply) || h.id != id)
          return bad_reply("reply does not match the request (call, kind or id)");
        body = rbuf_.data() + proto::HEADER_SIZE;
        body_len = frame - proto::HEADER_SIZE;
        return Status::Ok();
      }
      // Need more: grow to the announced frame size (bounded by MAX_FRAME via scan_frame).
      if (have >= 4) {
        size_t total = size_t(rbuf_[0] | rbuf_[1] << 8 | rbuf_[2] << 16 | uint32_t(rbuf_[3]) << 24) + 4;
        if (rbuf_.size() < total) rbuf_.resize(total);
      }
      if (have == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
      ssize_t n = recv(fd_, rbuf_.data() + have, rbuf_.size() - have, 0);
      if (n > 0) { have += size_t(n); continue; }
      if (n == 0) {
        stale = have == 0;
        broken = true;
        return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " closed the connection during " + name +
                                            (have ? " (partial reply)" : ""));
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int w = wait_fd(fd_, POLLIN, deadline);
        if (w == ETIMEDOUT) return timeout(name, timeout_ms);
        if (w) return io_error("recv", w);
        continue;
      }
      int e = errno;
      stale = have == 0 && (e == ECONNRESET || e == EPIPE);
      return io_error("recv", e);
    }
  }

 private:
  Status timeout(const char* call, int ms) {
    broken = true;
    return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " did not answer " + call + " within " +
                                        std::to_string(ms) + " ms; check that it is healthy (SIGNBRIDGE_TIMEOUT_MS sets the limit)");
  }
  Status io_error(const char* op, int e) {
    broken = true;
    return Status(CKR_DEVICE_ERROR, std::string(op) + " to the signbridge daemon at " + path_ + " failed: " + strerror(e));
  }
  Status bad_reply(const char* why) {
    broken = true;
    return Status(CKR_DEVICE_ERROR, "bad reply from the signbridge daemon at " + path_ + ": " + why +
                                        "; are the daemon and the module the same version?");
  }
  int fd_;
  const std::string& path_;
  std::vector<uint8_t> rbuf_;
};

DaemonClient::DaemonClient(ClientConfig cfg) : cfg_(std::move(cfg)) {}
DaemonClient::~DaemonClient() = default;

std::unique_ptr<Connection> DaemonClient::take_idle() {
  std::lock_guard<std::mutex> g(mu_);
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void DaemonClient::give_back(std::unique_ptr<Connection> c) {
  c->pooled = true;
  std::lock_guard<std::mutex> g(mu_);
  if (idle_.size() < MAX_IDLE) idle_.push_back(std::move(c));
}

void DaemonClient::drop_idle() {
  std::vector<std::unique_ptr<Connection>> old;
  std::lock_guard<std::mutex> g(mu_);
  old.swap(idle_);
}

Result<std::unique_ptr<Connection>> DaemonClient::connect_fresh() {
  const std::string& path = cfg_.socket_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status(CKR_DEVICE_ERROR, "the socket path " + path + " is too long for a unix socket; set SIGNBRIDGE_SOCKET to a shorter path");
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // SOCK_CLOEXEC: a tool that forks+execs must not leak our socket into the child.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status(CKR_DEVICE_ERROR, std::string("cannot create a socket: ") + strerror(errno));
  auto conn = std::make_unique<Connection>(fd, cfg_.socket_path);
  int64_t deadline = now_ms() + cfg_.meta_timeout_ms;
  for (;;) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EINPROGRESS) {
      int w = wait_fd(fd, POLLOUT, deadline);
      if (w == 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr == 0) break;
        w = soerr;
      }
      return Status(CKR_DEVICE_ERROR, unreachable(path, strerror(w)));
    }
    if (e == EAGAIN) {  // unix socket backlog full: the daemon is alive but busy, try again
      if (now_ms() >= deadline) return Status(CKR_DEVICE_ERROR, unreachable(path, "connection backlog full, timed out"));
      usleep(1000);
      continue;
    }
    return Status(CKR_DEVICE_ERROR, unreachable(path, strerror(e)));
  }

  // HELLO once per connection (protocol.md "Connection life" 2).
  proto::HelloRequest hello;
  hello.client = std::string(CLIENT_NAME) + " pid=" + std::to_string(getpid());
  uint32_t id = conn->next_id++;
  conn->wbuf.clear();
  proto::encode_request(conn->wbuf, proto::Call::Hello, id, hello);
  const uint8_t* body = nullptr;
  size_t body_len = 0;
  bool stale = false;
  Status s = conn->round_trip(proto::Call::Hello, id, cfg_.meta_timeout_ms, body, body_len, stale);
  if (!s.ok()) return s;
  proto::ReplyStatus st;
  proto::HelloReply reply;
  std::string err;
  if (!proto::read_reply_body(body, body_len, st, reply, err))
    return Status(CKR_DEVICE_ERROR, "bad HELLO reply from the signbridge daemon at " + path + ": " + err);
  if (st.rv != 0)
    return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path + " refused HELLO: " + st.message);
  if (reply.version < proto::VERSION_MIN || reply.version > proto::VERSION_MAX)
    return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path + " chose protocol " +
                                        std::to_string(reply.version) + ", the module speaks 1..1: install matching versions");
  return conn;
}

template <class Fn>
Status DaemonClient::with_connection(int timeout_ms, Fn&& round_trip) {
  for (int attempt = 0;; attempt++) {
    std::unique_ptr<Connection> conn = attempt == 0 ? take_idle() : nullptr;
    if (!conn) {
      auto fresh = connect_fresh();
      if (!fresh.ok()) return fresh.status();
      conn = std::move(*fresh);
    }
    bool stale = false;
    conn->broken = false;
    Status s = round_trip(*conn, timeout_ms, stale);
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

Result<proto::InventoryReply> DaemonClient::get_inventory() {
  proto::InventoryReply out;
  Status s = with_connection(cfg_.meta_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) -> Status {
    uint32_t id = c.next_id++;
    c.wbuf.clear();
    proto::encode_request(c.wbuf, proto::Call::GetInventory, id, proto::InventoryRequest{});
    const uint8_t* body = nullptr;
    size_t n = 0;
    Status rt = c.round_trip(proto::Call::GetInventory, id, timeout_ms, body, n, stale);
    if (!rt.ok()) return rt;
    proto::ReplyStatus st;
    std::string err;
    if (!proto::read_reply_body(body, n, st, out, err)) {
      c.broken = true;
      return Status(CKR_DEVICE_ERROR, "bad GET_INVENTORY reply from the signbridge daemon: " + err);
    }
    if (st.rv != 0) return Status(static_cast<CK_RV>(st.rv), "the signbridge daemon refused GET_INVENTORY: " + st.message);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status DaemonClient::sign(const proto::Bytes& key_handle, uint64_t mechanism, uint64_t hash_alg, uint64_t mgf,
                          uint32_t salt_len, const uint8_t* data, size_t data_len, uint8_t* out, size_t sig_len) {
  return with_connection(cfg_.sign_timeout_ms, [&](Connection& c, int timeout_ms, bool& stale) -> Status {
    uint32_t id = c.next_id++;
    c.wbuf.clear();
    proto::SignRequestView req{{key_handle.data(), key_handle.size()}, mechanism, hash_alg, mgf, salt_len, {data, data_len}};
    proto::encode_request(c.wbuf, proto::Call::Sign, id, req);
    const uint8_t* body = nullptr;
    size_t n = 0;
    Status rt = c.round_trip(proto::Call::Sign, id, timeout_ms, body, n, stale);
    if (!rt.ok()) return rt;
    proto::ReplyStatus st;
    proto::SignReplyView reply;
    std::string err;
    if (!proto::read_reply_body(body, n, st, reply, err)) {
      c.broken = true;
      return Status(CKR_DEVICE_ERROR, "bad SIGN reply from the signbridge daemon: " + err);
    }
    // protocol.md "SIGN": daemon error replies pass through to the tool.
    if (st.rv != 0) return Status(static_cast<CK_RV>(st.rv), "the signbridge daemon refused SIGN: " + st.message);
    if (reply.signature.size != sig_len)
      return Status(CKR_DEVICE_ERROR, "the signbridge daemon returned a " + std::to_string(reply.signature.size) +
                                          "-byte signature, expected " + std::to_string(sig_len));
    memcpy(out, reply.signature.data, sig_len);
    return Status::Ok();
  });
}

}  // namespace sb
