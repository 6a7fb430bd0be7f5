#include "autostart.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "connection.h"
#include "peer_trust.h"

namespace sb {

namespace {

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

Status start_daemon(const ClientConfig& cfg, const Probe& probe) {
  const std::string& sock = cfg.socket_path;
  const int bound = cfg.autostart_timeout_ms;
  int64_t deadline = now_ms() + bound;
  std::string dir = dir_of(sock);
  // The daemon wants a private directory (0700, ours); create it the same way if missing.
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status(CKR_DEVICE_ERROR, "autostart: cannot create " + dir + ": " + strerror(errno));
  // Never start or wait for a daemon in a directory someone else controls (peer_trust.h).
  bool missing = false;
  RETURN_IF_ERROR(check_socket_dir(sock, &missing));
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
  Status answered = probe(cfg.meta_timeout_ms, &absent);
  if (answered.ok() || !absent) return answered;  // up, or something answers on the socket, but badly

  std::string program = find_program(cfg.autostart_argv[0]);
  if (program.empty())
    return Status(CKR_DEVICE_ERROR, "autostart: " + cfg.autostart_argv[0] +
                                        " is not an executable (nor on PATH); fix SIGNBRIDGE_AUTOSTART");
  std::vector<char*> argv;
  for (const std::string& a : cfg.autostart_argv) argv.push_back(const_cast<char*>(a.c_str()));
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
    answered = probe(left < cfg.meta_timeout_ms ? static_cast<int>(left) : cfg.meta_timeout_ms, &absent);
    if (answered.ok() || !absent) return answered;
    // Re-parented to init: gone (or a zombie) means it exited (bad config, no token, …).
    if (sp.pid > 0 && process_gone(sp.pid))
      return Status(CKR_DEVICE_ERROR, "autostart: the daemon started with SIGNBRIDGE_AUTOSTART exited during start-up; see " +
                                          log_path);
    usleep(50000);
  }
}

}  // namespace sb
