// Autostart on Windows (docs/hardening/module.md "Autostart", docs/windows.md "Autostart"): the
// same contract as autostart.cpp with Windows means. CreateProcessW runs SIGNBRIDGE_AUTOSTART
// detached (no console, its own process group, so ^C in the tool's console does not stop it),
// stdin NUL, stdout+stderr appended to %LOCALAPPDATA%\signbridge\autostart.log, and it inherits
// only those two handles. Concurrent processes serialize on a named mutex per pipe: the first
// starts the daemon, the others find it answering.
#include <cstdlib>
#include <string>
#include <vector>

#include "autostart.h"
#include "connection.h"
#include "win_text.h"

namespace sb {

namespace {

// One argument as CommandLineToArgvW / the CRT read it back (quotes, backslashes before them).
std::wstring quote_arg(const std::wstring& a) {
  if (!a.empty() && a.find_first_of(L" \t\n\v\"") == std::wstring::npos) return a;
  std::wstring q = L"\"";
  size_t slashes = 0;
  for (wchar_t c : a) {
    if (c == L'\\') {
      slashes++;
      continue;
    }
    if (c == L'"') q.append(slashes * 2 + 1, L'\\');
    else q.append(slashes, L'\\');
    slashes = 0;
    q += c;
  }
  q.append(slashes * 2, L'\\');
  return q + L"\"";
}

// This process's environment without SIGNBRIDGE_SOCKET / SIGNBRIDGE_AUTOSTART*, plus the pipe the
// module looks at: the daemon listens there and never autostarts anything itself.
std::wstring child_environment(const std::string& pipe) {
  std::wstring block;
  wchar_t* env = GetEnvironmentStringsW();
  for (const wchar_t* e = env; e && *e; e += wcslen(e) + 1) {
    std::wstring var(e);
    if (_wcsnicmp(e, L"SIGNBRIDGE_SOCKET=", 18) == 0 || _wcsnicmp(e, L"SIGNBRIDGE_AUTOSTART", 20) == 0) continue;
    block += var;
    block += L'\0';
  }
  if (env) FreeEnvironmentStringsW(env);
  block += L"SIGNBRIDGE_SOCKET=" + to_wide(pipe);
  block += L'\0';
  block += L'\0';
  return block;
}

std::wstring log_path() {
  wchar_t buf[MAX_PATH];
  DWORD n = GetEnvironmentVariableW(L"LOCALAPPDATA", buf, MAX_PATH);
  std::wstring dir = n > 0 && n < MAX_PATH ? std::wstring(buf, n) : std::wstring(L".");
  dir += L"\\signbridge";
  CreateDirectoryW(dir.c_str(), nullptr);  // exists already: fine
  return dir + L"\\autostart.log";
}

struct Handle {
  HANDLE h = nullptr;
  ~Handle() {
    if (h && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

struct Spawned {
  Status status;
  Handle process;
  DWORD pid = 0;
};

void spawn(const ClientConfig& cfg, const std::wstring& log, Spawned& out) {
  std::wstring cmd;
  for (const std::string& a : cfg.autostart_argv) cmd += (cmd.empty() ? L"" : L" ") + quote_arg(to_wide(a));
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  Handle nul, logf;
  nul.h = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING, 0, nullptr);
  logf.h = CreateFileW(log.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_ALWAYS,
                       FILE_ATTRIBUTE_NORMAL, nullptr);
  if (nul.h == INVALID_HANDLE_VALUE || logf.h == INVALID_HANDLE_VALUE) {
    out.status = Status(CKR_DEVICE_ERROR, "autostart: cannot open the log file " + to_utf8(log) + ": " +
                                              win_error_text(GetLastError()));
    return;
  }
  // Only these two handles are inherited, not whatever the host made inheritable.
  HANDLE list[2] = {nul.h, logf.h};
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
  std::vector<char> attr_buf(size);
  auto attrs = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attr_buf.data());
  if (!InitializeProcThreadAttributeList(attrs, 1, 0, &size) ||
      !UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list, sizeof list, nullptr, nullptr)) {
    out.status = Status(CKR_DEVICE_ERROR, "autostart: cannot limit inherited handles: " + win_error_text(GetLastError()));
    return;
  }
  STARTUPINFOEXW si{};
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = nul.h;
  si.StartupInfo.hStdOutput = logf.h;
  si.StartupInfo.hStdError = logf.h;
  si.lpAttributeList = attrs;
  std::wstring env = child_environment(cfg.socket_path);
  PROCESS_INFORMATION pi{};
  BOOL ok = CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, TRUE,
                           DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT,
                           env.data(), nullptr, &si.StartupInfo, &pi);
  DWORD err = GetLastError();
  DeleteProcThreadAttributeList(attrs);
  if (!ok) {
    out.status = Status(CKR_DEVICE_ERROR, "autostart: cannot run " + cfg.autostart_argv[0] + ": " + win_error_text(err) +
                                              "; fix SIGNBRIDGE_AUTOSTART (a program, e.g. node.exe with the daemon's script)");
    return;
  }
  CloseHandle(pi.hThread);
  out.process.h = pi.hProcess;
  out.pid = pi.dwProcessId;
}

}  // namespace

Status start_daemon(const ClientConfig& cfg, const Probe& probe) {
  const std::string& pipe = cfg.socket_path;
  const int bound = cfg.autostart_timeout_ms;
  const int64_t deadline = now_ms() + bound;
  const std::wstring log = log_path();
  // Per session and pipe ('\' is not allowed in a mutex name).
  std::wstring mutex_name = L"Local\\signbridge-autostart-" + to_wide(pipe);
  for (size_t i = 6; i < mutex_name.size(); i++)
    if (mutex_name[i] == L'\\') mutex_name[i] = L'_';
  Handle mutex;
  mutex.h = CreateMutexW(nullptr, FALSE, mutex_name.c_str());
  if (!mutex.h) return Status(CKR_DEVICE_ERROR, "autostart: cannot create its lock: " + win_error_text(GetLastError()));
  DWORD w = WaitForSingleObject(mutex.h, static_cast<DWORD>(bound));
  if (w != WAIT_OBJECT_0 && w != WAIT_ABANDONED)  // abandoned: its holder died; the lock is ours now
    return Status(CKR_DEVICE_ERROR, "autostart: another process held the start-up lock for " + std::to_string(bound) +
                                        " ms while starting the daemon; see " + to_utf8(log));
  struct Release {
    HANDLE m;
    ~Release() { ReleaseMutex(m); }
  } release{mutex.h};
  // Under the lock: whoever held it before us may have started the daemon already.
  bool absent = false;
  Status answered = probe(cfg.meta_timeout_ms, &absent);
  if (answered.ok() || !absent) return answered;

  Spawned sp;
  spawn(cfg, log, sp);
  if (!sp.status.ok()) return sp.status;
  debug_line("autostart: started " + cfg.autostart_argv[0] + " (pid " + std::to_string(sp.pid) + ") for " + pipe +
             "; its output goes to " + to_utf8(log));
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0)
      return Status(CKR_DEVICE_ERROR, "autostart: the daemon started with SIGNBRIDGE_AUTOSTART (pid " + std::to_string(sp.pid) +
                                          ") did not answer on " + pipe + " within " + std::to_string(bound) +
                                          " ms; see " + to_utf8(log));
    answered = probe(left < cfg.meta_timeout_ms ? static_cast<int>(left) : cfg.meta_timeout_ms, &absent);
    if (answered.ok() || !absent) return answered;
    if (WaitForSingleObject(sp.process.h, 0) == WAIT_OBJECT_0)
      return Status(CKR_DEVICE_ERROR, "autostart: the daemon started with SIGNBRIDGE_AUTOSTART exited during start-up; see " +
                                          to_utf8(log));
    Sleep(50);
  }
}

}  // namespace sb
