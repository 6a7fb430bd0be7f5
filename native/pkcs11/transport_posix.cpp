// The POSIX stream of connection.h: a unix socket, non-blocking, with poll(2) deadlines
// (design.md "Module behaviour decided here"). Its Windows twin is transport_win.cpp.
#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

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
std::string user_label() { return "uid " + std::to_string(getuid()); }
std::string user_for_flag() { return std::to_string(getuid()); }

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

struct Transport {
  int fd = -1;
  ~Transport() {
    if (fd >= 0) close(fd);
  }
};

Connection::Connection(std::unique_ptr<Transport> t, std::string path) : t_(std::move(t)), path_(std::move(path)) {}
Connection::~Connection() = default;

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
  auto t = std::make_unique<Transport>();
  t->fd = fd;
  std::unique_ptr<Connection> conn(new Connection(std::move(t), path));
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
  RETURN_IF_ERROR(check_peer(conn->t_->fd, path));
  return conn;
}

namespace {

IoResult failed(int e, bool gone) {
  IoResult r;
  r.io = e == ETIMEDOUT ? Io::Timeout : Io::Failed;
  r.why = strerror(e);
  r.peer_gone = gone;
  return r;
}

}  // namespace

IoResult Connection::write_all(int64_t deadline) {
  const int fd = t_->fd;
  size_t sent = 0;
  while (sent < wbuf.size()) {
    // MSG_NOSIGNAL: never raise SIGPIPE in the host process.
    ssize_t n = send(fd, wbuf.data() + sent, wbuf.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd, POLLOUT, deadline);
      if (w) return failed(w, false);
      continue;
    }
    int e = errno;
    return failed(e, sent == 0 && (e == EPIPE || e == ECONNRESET || e == ENOTCONN));
  }
  return {};
}

IoResult Connection::read_some(uint8_t* p, size_t cap, int64_t deadline, size_t& got) {
  const int fd = t_->fd;
  for (;;) {
    // poll first: right after a send the reply is never there yet, so a recv first would only
    // return EAGAIN — one wasted system call per round trip (docs/performance.md "Profile").
    int w = wait_fd(fd, POLLIN, deadline);
    if (w) return failed(w, false);
    ssize_t n = recv(fd, p, cap, 0);
    if (n > 0) {
      got = size_t(n);
      return {};
    }
    if (n == 0) return {Io::Closed, "", false};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // a spurious wake-up: poll again
    int e = errno;
    return failed(e, e == ECONNRESET || e == EPIPE);
  }
}

}  // namespace sb
