#include "daemon_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "../common/framing.h"
#include "peer_trust.h"

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

// SIGNBRIDGE_AUTOSTART: words separated by blanks; '…' and "…" group (no escapes, no shell).
bool split_words(const char* s, std::vector<std::string>& out) {
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (const char* p = s; *p; p++) {
    char ch = *p;
    if (quote) {
      if (ch == quote) quote = 0;
      else cur += ch;
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
      in_word = true;
    } else if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += ch;
      in_word = true;
    }
  }
  if (quote) return false;
  if (in_word) out.push_back(cur);
  return true;
}

}  // namespace

ClientConfig config_from_env() {
  ClientConfig c;
  if (const char* s = getenv("SIGNBRIDGE_SOCKET"); s && *s) {
    c.socket_path = s;
    c.socket_default = false;
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
  // Autostart is never on by default (docs/hardening/module.md "Autostart").
  if (const char* a = getenv("SIGNBRIDGE_AUTOSTART"); a && *a) {
    if (!split_words(a, c.autostart_argv) || c.autostart_argv.empty()) {
      c.autostart_argv.clear();
      c.autostart_error = "SIGNBRIDGE_AUTOSTART is not a command line (unbalanced quotes?)";
    }
  }
  if (const char* t = getenv("SIGNBRIDGE_AUTOSTART_TIMEOUT_MS"); t && *t) {
    char* end = nullptr;
    long v = strtol(t, &end, 10);
    if (end && *end == 0 && v > 0 && v <= 600000) c.autostart_timeout_ms = static_cast<int>(v);
  }
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
  uint64_t auth_gen = 0;  // login generation this connection sent LOGIN for (0: none)

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
DaemonClient::~DaemonClient() { explicit_bzero(pin_, sizeof pin_); }

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

void DaemonClient::forget_pin() {
  std::vector<std::unique_ptr<Connection>> old;
  std::lock_guard<std::mutex> g(mu_);
  explicit_bzero(pin_, sizeof pin_);
  pin_len_ = 0;
  pin_gen_ = 0;
  for (auto& c : idle_)
    if (c->auth_gen != 0) old.push_back(std::move(c));
  idle_.erase(std::remove(idle_.begin(), idle_.end(), nullptr), idle_.end());
}

void DaemonClient::wipe_pin_in_child() {
  explicit_bzero(pin_, sizeof pin_);
  pin_len_ = 0;
  pin_gen_ = 0;
}

Result<std::unique_ptr<Connection>> DaemonClient::connect_greet(bool* absent, int hello_timeout_ms) {
  *absent = false;
  const std::string& path = cfg_.socket_path;
  if (cfg_.socket_default) {
    bool missing = false;
    Status dir_ok = check_socket_dir(path, &missing);
    if (!dir_ok.ok()) {
      *absent = missing;
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
  auto conn = std::make_unique<Connection>(fd, cfg_.socket_path);
  int64_t deadline = now_ms() + hello_timeout_ms;
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
    // No socket file, or a socket nobody listens on (a daemon that died): no daemon at all.
    *absent = e == ENOENT || e == ECONNREFUSED;
    return Status(CKR_DEVICE_ERROR, unreachable(path, strerror(e)));
  }
  // Who may answer: only our uid or root, checked before a byte is sent (peer_trust.h).
  if (Status peer_ok = check_peer(fd, path); !peer_ok.ok()) return peer_ok;

  // HELLO once per connection (protocol.md "Connection life" 2).
  proto::HelloRequest hello;
  hello.client = std::string(CLIENT_NAME) + " pid=" + std::to_string(getpid());
  uint32_t id = conn->next_id++;
  conn->wbuf.clear();
  proto::encode_request(conn->wbuf, proto::Call::Hello, id, hello);
  const uint8_t* body = nullptr;
  size_t body_len = 0;
  bool stale = false;
  Status s = conn->round_trip(proto::Call::Hello, id, hello_timeout_ms, body, body_len, stale);
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

Result<std::unique_ptr<Connection>> DaemonClient::connect_fresh() {
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
  Status s = start_daemon();
  if (!s.ok()) {
    autostart_failed_ = true;
    return s;
  }
  return connect_greet(&absent, cfg_.meta_timeout_ms);
}

// ---- Autostart (docs/hardening/module.md "Autostart") ------------------------------------
// Like gpg-agent: when SIGNBRIDGE_AUTOSTART is set and no daemon answers, run that command
// detached (double fork + setsid, stdin /dev/null, stdout+stderr appended to <socket>.log, no
// other inherited fds) and wait for the socket to answer HELLO. Concurrent processes serialize
// on flock(<socket>.lock): the first one starts the daemon, the others find it answering.

namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// argv[0] as execve needs it: PATH is searched here, before fork (execvp is not
// async-signal-safe in a child of a multi-threaded process).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : std::string();
  const char* env = getenv("PATH");
  std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    if (end == std::string::npos) return {};
    start = end + 1;
  }
}

struct SpawnResult {
  Status status;
  pid_t pid = -1;  // the daemon (grandchild)
};

// Message from the intermediate child / the daemon child through a CLOEXEC pipe: a tag and an int.
struct Note {
  char tag;  // 'P' daemon pid, 'F' fork failed (errno), 'E' exec failed (errno)
  int value;
};

[[noreturn]] void child_fail(int fd, char tag, int err) {
  Note n{tag, err};
  ssize_t r = write(fd, &n, sizeof n);
  (void)r;
  _exit(127);
}

// Only async-signal-safe calls between fork and execve: everything is prepared by the caller.
SpawnResult spawn_detached(const std::string& program, char* const* argv, char* const* envp, int log_fd, int null_fd,
                           long max_fd) {
  SpawnResult out;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    out.status = Status(CKR_DEVICE_ERROR, std::string("autostart: pipe failed: ") + strerror(errno));
    return out;
  }
  pid_t first = fork();
  if (first < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    out.status = Status(CKR_DEVICE_ERROR, std::string("autostart: fork failed: ") + strerror(e));
    return out;
  }
  if (first == 0) {
    // Intermediate child: a new session (no controlling terminal, not in the tool's process
    // group, so ^C in the tool's terminal does not stop the daemon), then fork again so the
    // daemon is not a session leader and is re-parented to init when we exit.
    close(p[0]);
    if (setsid() < 0) child_fail(p[1], 'F', errno);
    pid_t second = fork();
    if (second < 0) child_fail(p[1], 'F', errno);
    if (second > 0) {
      Note n{'P', static_cast<int>(second)};
      ssize_t r = write(p[1], &n, sizeof n);
      (void)r;
      _exit(0);
    }
    // The daemon child.
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) child_fail(p[1], 'E', errno);
    // No inherited descriptors (the host's sockets, files, our own connections) except the
    // CLOEXEC pipe, which closes at execve.
    bool closed = false;
#ifdef SYS_close_range
    closed = (p[1] == 3 || syscall(SYS_close_range, 3u, static_cast<unsigned>(p[1] - 1), 0u) == 0) &&
             syscall(SYS_close_range, static_cast<unsigned>(p[1] + 1), ~0u, 0u) == 0;
#endif
    for (long fd = 3; !closed && fd < max_fd; fd++)
      if (fd != p[1]) close(static_cast<int>(fd));
    if (chdir("/") != 0) child_fail(p[1], 'E', errno);
    umask(077);
    // The host may block or ignore signals (SIGPIPE, SIGTERM …); execve keeps both.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, nullptr);
    execve(program.c_str(), argv, envp);
    child_fail(p[1], 'E', errno);
  }
  close(p[1]);
  int status = 0;
  while (waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  // Read notes until EOF: EOF comes when the intermediate child has exited and the daemon
  // child has exec'ed (CLOEXEC) or died. Bounded: both happen right after fork.
  Note n{};
  int exec_errno = 0, fork_errno = 0;
  size_t have = 0;
  int64_t deadline = now_ms() + 5000;
  for (;;) {
    if (wait_fd(p[0], POLLIN, deadline) != 0) break;
    ssize_t r = read(p[0], reinterpret_cast<char*>(&n) + have, sizeof n - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += size_t(r);
    if (have < sizeof n) continue;
    have = 0;
    if (n.tag == 'P') out.pid = n.value;
    else if (n.tag == 'E') exec_errno = n.value;
    else if (n.tag == 'F') fork_errno = n.value;
  }
  close(p[0]);
  if (fork_errno)
    out.status = Status(CKR_DEVICE_ERROR, std::string("autostart: could not detach the daemon: ") + strerror(fork_errno));
  else if (exec_errno)
    out.status = Status(CKR_DEVICE_ERROR, "autostart: cannot run " + program + ": " + strerror(exec_errno) +
                                              "; fix SIGNBRIDGE_AUTOSTART");
  return out;
}

// The daemon has exited: gone, or a zombie nobody reaped yet (a PID 1 that does not reap).
bool process_gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  const char* paren = strrchr(buf, ')');  // "pid (comm) S …"; comm may hold spaces and parens
  return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

// Closes the lock file (which releases the flock) when the attempt ends.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

Status DaemonClient::start_daemon() {
  const std::string& sock = cfg_.socket_path;
  const int bound = cfg_.autostart_timeout_ms;
  int64_t deadline = now_ms() + bound;
  std::string dir = dir_of(sock);
  // The daemon wants a private directory (0700, ours); create it the same way if missing.
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status(CKR_DEVICE_ERROR, "autostart: cannot create " + dir + ": " + strerror(errno));
  // Never start or wait for a daemon in a directory someone else controls (peer_trust.h).
  bool missing = false;
  if (Status dir_ok = check_socket_dir(sock, &missing); !dir_ok.ok()) return dir_ok;
  std::string lock_path = sock + ".lock";
  std::string log_path = sock + ".log";
  Fd lock;
  lock.fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock.fd < 0) return Status(CKR_DEVICE_ERROR, "autostart: cannot open the lock file " + lock_path + ": " + strerror(errno));
  while (flock(lock.fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return Status(CKR_DEVICE_ERROR, "autostart: cannot lock " + lock_path + ": " + strerror(errno));
    if (now_ms() >= deadline)
      return Status(CKR_DEVICE_ERROR, "autostart: another process held " + lock_path + " for " + std::to_string(bound) +
                                          " ms while starting the daemon; see " + log_path);
    usleep(20000);
  }
  // Under the lock: whoever held it before us may have started the daemon already.
  bool absent = false;
  auto probe = connect_greet(&absent, cfg_.meta_timeout_ms);
  if (probe.ok()) return Status::Ok();
  if (!absent) return probe.status();  // something answers on the socket, but badly

  std::string program = find_program(cfg_.autostart_argv[0]);
  if (program.empty())
    return Status(CKR_DEVICE_ERROR, "autostart: " + cfg_.autostart_argv[0] +
                                        " is not an executable (nor on PATH); fix SIGNBRIDGE_AUTOSTART");
  std::vector<char*> argv;
  for (const std::string& a : cfg_.autostart_argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The daemon listens where this module looks; it must not autostart anything itself.
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; e++) {
    if (strncmp(*e, "SIGNBRIDGE_SOCKET=", 18) == 0 || strncmp(*e, "SIGNBRIDGE_AUTOSTART", 20) == 0) continue;
    env_store.emplace_back(*e);
  }
  env_store.push_back("SIGNBRIDGE_SOCKET=" + sock);
  std::vector<char*> envp;
  for (std::string& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  Fd log, null;
  log.fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log.fd < 0) return Status(CKR_DEVICE_ERROR, "autostart: cannot open the log file " + log_path + ": " + strerror(errno));
  null.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null.fd < 0) return Status(CKR_DEVICE_ERROR, std::string("autostart: cannot open /dev/null: ") + strerror(errno));
  long max_fd = sysconf(_SC_OPEN_MAX);
  if (max_fd <= 0 || max_fd > 65536) max_fd = 65536;

  SpawnResult sp = spawn_detached(program, argv.data(), envp.data(), log.fd, null.fd, max_fd);
  if (!sp.status.ok()) return sp.status;
  debug_line("autostart: started " + program + " (pid " + std::to_string(sp.pid) + ") for " + sock + "; its output goes to " +
             log_path);
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0)
      return Status(CKR_DEVICE_ERROR, "autostart: the daemon started with SIGNBRIDGE_AUTOSTART (pid " + std::to_string(sp.pid) +
                                          ") did not answer on " + sock + " within " + std::to_string(bound) +
                                          " ms; see " + log_path);
    auto c = connect_greet(&absent, left < cfg_.meta_timeout_ms ? static_cast<int>(left) : cfg_.meta_timeout_ms);
    if (c.ok()) return Status::Ok();
    if (!absent) return c.status();
    // Re-parented to init: gone (or a zombie) means it exited (bad config, no token, …).
    if (sp.pid > 0 && process_gone(sp.pid))
      return Status(CKR_DEVICE_ERROR, "autostart: the daemon started with SIGNBRIDGE_AUTOSTART exited during start-up; see " +
                                          log_path);
    usleep(50000);
  }
}

// ---- LOGIN (protocol.md "LOGIN") ----------------------------------------------------------

namespace {

// Sends the LOGIN frame already in c.wbuf and reads its reply; the frame (it holds the PIN)
// is wiped from the buffer whatever happens. Daemon refusals come back with their rv.
Status login_round_trip(Connection& c, uint32_t id, int timeout_ms, bool& stale) {
  const uint8_t* body = nullptr;
  size_t n = 0;
  Status rt = c.round_trip(proto::Call::Login, id, timeout_ms, body, n, stale);
  explicit_bzero(c.wbuf.data(), c.wbuf.size());
  c.wbuf.clear();
  if (!rt.ok()) return rt;
  proto::ReplyStatus st;
  proto::LoginReply reply;
  std::string err;
  if (!proto::read_reply_body(body, n, st, reply, err)) {
    c.broken = true;
    return Status(CKR_DEVICE_ERROR, "bad LOGIN reply from the signbridge daemon: " + err);
  }
  if (st.rv != 0) return Status(static_cast<CK_RV>(st.rv), "the signbridge daemon refused LOGIN: " + st.message);
  return Status::Ok();
}

void encode_login(Connection& c, uint32_t id, uint32_t slot, uint64_t user, const uint8_t* pin, size_t len) {
  c.wbuf.clear();
  c.wbuf.reserve(64 + MAX_PIN);  // no reallocation that would leave a copy of the PIN behind
  proto::encode_request(c.wbuf, proto::Call::Login, id, proto::LoginRequestView{slot, user, {pin, len}});
}

}  // namespace

Status DaemonClient::relogin(Connection& c, int timeout_ms, bool& stale) {
  uint64_t gen = 0;
  uint32_t id = 0;
  {
    // Encoded under the lock straight from pin_: no other copy of the PIN on a stack.
    std::lock_guard<std::mutex> g(mu_);
    if (pin_gen_ == 0 || c.auth_gen == pin_gen_) return Status::Ok();
    gen = pin_gen_;
    id = c.next_id++;
    encode_login(c, id, pin_slot_, proto::CKU_USER_TYPE, pin_, pin_len_);
  }
  Status s = login_round_trip(c, id, timeout_ms, stale);
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
    uint32_t id = c.next_id++;
    encode_login(c, id, slot_id, user_type, pin, pin_len);
    Status s = login_round_trip(c, id, timeout_ms, stale);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> g(mu_);
    explicit_bzero(pin_, sizeof pin_);
    if (pin_len) memcpy(pin_, pin, pin_len);
    pin_len_ = pin_len;
    pin_gen_ = gen;
    pin_slot_ = slot_id;
    c.auth_gen = gen;
    return Status::Ok();
  });
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
