// The Windows stream of connection.h: a named pipe opened for overlapped I/O, so every read and
// write waits at most until the same deadlines as the POSIX socket (design.md "Module behaviour
// decided here"). Who may answer (docs/windows.md "Who may answer"): the pipe server's process
// must run as our own user (GetNamedPipeServerProcessId → its token's user SID), checked before
// a byte is sent; anyone can create a pipe name first (pipe squatting), so the name alone proves
// nothing. A refusal is the same CKR_DEVICE_ERROR + one notice line as on Linux.
#include "connection.h"
#include "os.h"
#include "win_text.h"

#include <memory>
#include <string>

namespace sb {

int64_t now_ms() { return static_cast<int64_t>(GetTickCount64()); }

long process_id() { return static_cast<long>(GetCurrentProcessId()); }

std::string user_for_flag() { return current_user_name(); }
std::string user_label() { return "user " + current_user_name(); }

// docs/windows.md "Pipe name": one pipe per user; the daemon computes the same name from
// os.userInfo().username (libuv asks GetUserNameW too).
std::string default_socket_path() { return "\\\\.\\pipe\\signbridge-" + current_user_name(); }

struct Transport {
  HANDLE pipe = INVALID_HANDLE_VALUE;
  HANDLE event = nullptr;  // manual-reset, for the one overlapped operation in flight
  ~Transport() {
    if (pipe != INVALID_HANDLE_VALUE) CloseHandle(pipe);
    if (event) CloseHandle(event);
  }
};

Connection::Connection(std::unique_ptr<Transport> t, std::string path) : t_(std::move(t)), path_(std::move(path)) {}
Connection::~Connection() = default;

namespace {

std::string unreachable(const std::string& path, const std::string& why) {
  return "cannot reach the signbridge daemon at " + path + " (" + why +
         "); start it with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET";
}

Status refuse(const std::string& line) { return Status(CKR_DEVICE_ERROR, line).with_notice(NoticeCause::UntrustedDaemon); }

// The user SID in a process token, copied out; empty on failure (err set).
std::string token_user_sid(HANDLE token, DWORD& err) {
  DWORD len = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &len);
  std::string buf(len, '\0');
  if (len == 0 || !GetTokenInformation(token, TokenUser, buf.data(), len, &len)) {
    err = GetLastError();
    return {};
  }
  PSID sid = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
  return std::string(reinterpret_cast<const char*>(sid), GetLengthSid(sid));
}

std::string process_user_sid(HANDLE process, DWORD& err) {
  HANDLE token = nullptr;
  if (!OpenProcessToken(process, TOKEN_QUERY, &token)) {
    err = GetLastError();
    return {};
  }
  std::string sid = token_user_sid(token, err);
  CloseHandle(token);
  return sid;
}

// Only a server running as our own user may answer (not even an administrator's or SYSTEM's
// daemon: it could return signatures of its choosing or read what we sign).
Status check_server(HANDLE pipe, const std::string& path) {
  ULONG pid = 0;
  if (!GetNamedPipeServerProcessId(pipe, &pid))
    return refuse("cannot tell who runs the daemon at " + path + " (GetNamedPipeServerProcessId: " +
                  win_error_text(GetLastError()) + "); nothing was sent");
  DWORD err = 0;
  std::string mine = process_user_sid(GetCurrentProcess(), err);
  if (mine.empty()) return refuse("cannot read this process's own user SID (" + win_error_text(err) + "); nothing was sent");
  HANDLE proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  std::string theirs;
  if (proc) {
    theirs = process_user_sid(proc, err);
    CloseHandle(proc);
  } else {
    err = GetLastError();
  }
  const std::string fix =
      "; nothing was sent. Stop it, and start your own with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET to your daemon's pipe";
  if (theirs.empty())
    return refuse("refusing the daemon at " + path + ": cannot tell which user runs its process (pid " + std::to_string(pid) +
                  ": " + win_error_text(err) + "), so it may be another user's" + fix);
  if (theirs.size() == mine.size() && EqualSid(const_cast<char*>(theirs.data()), const_cast<char*>(mine.data())))
    return Status::Ok();
  return refuse("refusing the daemon at " + path + ": it runs as " + sid_account(theirs.data()) + " (pid " +
                std::to_string(pid) + "), not as you (" + sid_account(mine.data()) +
                "), so it could return false signatures or read what you sign" + fix);
}

IoResult failed(DWORD e, bool gone) {
  IoResult r;
  r.io = Io::Failed;
  r.why = win_error_text(e);
  r.peer_gone = gone;
  return r;
}

bool peer_gone(DWORD e) { return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED; }

// Waits for the operation started on `ov` until the deadline; on timeout it is cancelled (and
// waited for, so `ov` and the buffer are no longer in use when we return).
IoResult finish(HANDLE pipe, OVERLAPPED& ov, int64_t deadline, DWORD& done) {
  int64_t left = deadline - now_ms();
  DWORD wait_ms = left <= 0 ? 0 : left >= INFINITE ? INFINITE - 1 : static_cast<DWORD>(left);
  if (WaitForSingleObject(ov.hEvent, wait_ms) != WAIT_OBJECT_0) {
    CancelIoEx(pipe, &ov);
    GetOverlappedResult(pipe, &ov, &done, TRUE);
    return {Io::Timeout, "", false};
  }
  if (!GetOverlappedResult(pipe, &ov, &done, FALSE)) {
    DWORD e = GetLastError();
    return peer_gone(e) ? IoResult{Io::Closed, "", true} : failed(e, false);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path, bool /*default_path: no directory*/,
                                                     int timeout_ms, bool* absent) {
  *absent = false;
  const std::wstring wpath = to_wide(path);
  const int64_t deadline = now_ms() + timeout_ms;
  auto t = std::make_unique<Transport>();
  for (;;) {
    // SECURITY_IDENTIFICATION: the server may learn who we are but never act as us.
    t->pipe = CreateFileW(wpath.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                          FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (t->pipe != INVALID_HANDLE_VALUE) break;
    DWORD e = GetLastError();
    if (e == ERROR_PIPE_BUSY) {  // every instance taken: the daemon is alive but busy, wait for one
      int64_t left = deadline - now_ms();
      if (left <= 0)
        return Status(CKR_DEVICE_ERROR, unreachable(path, "all pipe instances busy, timed out")).with_notice(NoticeCause::Unreachable);
      WaitNamedPipeW(wpath.c_str(), static_cast<DWORD>(left < 1000 ? left : 1000));
      continue;
    }
    // No such pipe: no daemon at all (the case autostart may fix).
    *absent = e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND;
    return Status(CKR_DEVICE_ERROR, unreachable(path, win_error_text(e))).with_notice(NoticeCause::Unreachable);
  }
  t->event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (!t->event) return Status(CKR_DEVICE_ERROR, "cannot create an event for the daemon pipe: " + win_error_text(GetLastError()));
  RETURN_IF_ERROR(check_server(t->pipe, path));
  return std::unique_ptr<Connection>(new Connection(std::move(t), path));
}

IoResult Connection::write_all(int64_t deadline) {
  size_t sent = 0;
  while (sent < wbuf.size()) {
    OVERLAPPED ov{};
    ov.hEvent = t_->event;
    size_t rest = wbuf.size() - sent;
    DWORD chunk = rest > (1u << 30) ? (1u << 30) : static_cast<DWORD>(rest);
    if (!WriteFile(t_->pipe, wbuf.data() + sent, chunk, nullptr, &ov)) {
      DWORD e = GetLastError();
      if (e != ERROR_IO_PENDING) return failed(e, sent == 0 && peer_gone(e));
    }
    DWORD done = 0;
    IoResult r = finish(t_->pipe, ov, deadline, done);
    if (r.io == Io::Closed) return failed(ERROR_BROKEN_PIPE, sent == 0);
    if (r.io != Io::Ok) return r;
    sent += done;
  }
  return {};
}

IoResult Connection::read_some(uint8_t* p, size_t cap, int64_t deadline, size_t& got) {
  for (;;) {
    OVERLAPPED ov{};
    ov.hEvent = t_->event;
    DWORD chunk = cap > (1u << 30) ? (1u << 30) : static_cast<DWORD>(cap);
    if (!ReadFile(t_->pipe, p, chunk, nullptr, &ov)) {
      DWORD e = GetLastError();
      if (peer_gone(e)) return {Io::Closed, "", true};
      if (e != ERROR_IO_PENDING && e != ERROR_MORE_DATA) return failed(e, false);
    }
    DWORD done = 0;
    IoResult r = finish(t_->pipe, ov, deadline, done);
    if (r.io != Io::Ok) return r;
    if (done > 0) {
      got = done;
      return {};
    }
    // A zero-byte read on a byte-mode pipe carries nothing: read again.
  }
}

}  // namespace sb
