#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "../common/framing.h"
#include "peer_trust.h"

namespace sb {

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

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

long process_id() { return static_cast<long>(getpid()); }
long user_id() { return static_cast<long>(getuid()); }

std::string default_socket_path() {
  if (const char* x = getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/signbridge/signbridge.sock";
  return "/tmp/signbridge-" + std::to_string(getuid()) + "/signbridge.sock";
}

namespace {

std::string unreachable(const std::string& path, const std::string& why) {
  return "cannot reach the signbridge daemon at " + path + " (" + why +
         "); start it with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET";
}

}  // namespace

Connection::~Connection() {
  if (fd_ >= 0) close(fd_);
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path, bool default_path, int timeout_ms,
                                                     bool* absent) {
  *absent = false;
  // Who may answer (peer_trust.h): a default path's directory must be ours or root's and
  // private; /tmp/signbridge-<uid>/ may have been made by someone else.
  if (default_path) {
    bool missing = false;
    Status dir_ok = check_socket_dir(path, &missing);
    if (!dir_ok.ok()) {
      *absent = missing;  // no directory yet: just no daemon (autostart may create it)
      return dir_ok;
    }
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status(CKR_DEVICE_ERROR, "the socket path " + path + " is too long for a unix socket; set SIGNBRIDGE_SOCKET to a shorter path");
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // SOCK_CLOEXEC: a tool that forks+execs must not leak our socket into the child.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status(CKR_DEVICE_ERROR, std::string("cannot create a socket: ") + strerror(errno));
  std::unique_ptr<Connection> conn(new Connection(fd, path));
  int64_t deadline = now_ms() + timeout_ms;
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
      return Status(CKR_DEVICE_ERROR, unreachable(path, strerror(w))).with_notice(NoticeCause::Unreachable);
    }
    if (e == EAGAIN) {  // unix socket backlog full: the daemon is alive but busy, try again
      if (now_ms() >= deadline) return Status(CKR_DEVICE_ERROR, unreachable(path, "connection backlog full, timed out")).with_notice(NoticeCause::Unreachable);
      usleep(1000);
      continue;
    }
    // No socket file, or a socket nobody listens on (a daemon that died): no daemon at all.
    *absent = e == ENOENT || e == ECONNREFUSED;
    return Status(CKR_DEVICE_ERROR, unreachable(path, strerror(e))).with_notice(NoticeCause::Unreachable);
  }
  // Connected: only our uid or root may answer, checked before a byte is sent (peer_trust.h).
  RETURN_IF_ERROR(check_peer(fd, path));
  return conn;
}

Status Connection::send_all(const char* call, int timeout_ms, int64_t deadline, bool& stale) {
  size_t sent = 0;
  while (sent < wbuf.size()) {
    // MSG_NOSIGNAL: never raise SIGPIPE in the host process.
    ssize_t n = send(fd_, wbuf.data() + sent, wbuf.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd_, POLLOUT, deadline);
      if (w == ETIMEDOUT) return timeout(call, timeout_ms);
      if (w) return io_error("send", w);
      continue;
    }
    int e = errno;
    stale = sent == 0 && (e == EPIPE || e == ECONNRESET || e == ENOTCONN);
    return io_error("send", e);
  }
  return Status::Ok();
}

Status Connection::round_trip(proto::Call call, uint32_t id, int timeout_ms, const uint8_t*& body, size_t& body_len,
                              bool& stale) {
  stale = false;
  int64_t deadline = now_ms() + timeout_ms;
  const char* name = proto::find_call(static_cast<uint8_t>(call))->name;
  RETURN_IF_ERROR(send_all(name, timeout_ms, deadline, stale));
  size_t have = 0;
  if (rbuf_.size() < 4096) rbuf_.resize(4096);
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
    // poll first: right after the send the reply is never there yet, so a recv first would only
    // return EAGAIN — one wasted system call per round trip (docs/performance.md "Profile").
    int w = wait_fd(fd_, POLLIN, deadline);
    if (w == ETIMEDOUT) return timeout(name, timeout_ms);
    if (w) return io_error("recv", w);
    ssize_t n = recv(fd_, rbuf_.data() + have, rbuf_.size() - have, 0);
    if (n > 0) {
      have += size_t(n);
      continue;
    }
    if (n == 0) {
      stale = have == 0;
      broken = true;
      return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " closed the connection during " + name +
                                          (have ? " (partial reply)" : ""));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // a spurious wake-up: poll again
    int e = errno;
    stale = have == 0 && (e == ECONNRESET || e == EPIPE);
    return io_error("recv", e);
  }
}

Status Connection::timeout(const char* call, int ms) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " did not answer " + call + " within " +
                                      std::to_string(ms) + " ms; check that it is healthy (SIGNBRIDGE_TIMEOUT_MS sets the limit)");
}

Status Connection::io_error(const char* op, int e) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, std::string(op) + " to the signbridge daemon at " + path_ + " failed: " + strerror(e));
}

Status Connection::bad_reply(const char* why) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, "bad reply from the signbridge daemon at " + path_ + ": " + why +
                                      "; are the daemon and the module the same version?");
}

}  // namespace sb
