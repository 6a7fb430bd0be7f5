#include "pipe_peer_win.h"

#include <vector>

#include <sddl.h>

namespace sb::pipe {

std::string token_sid(HANDLE process, std::string& err) {
  HANDLE token = nullptr;
  if (!OpenProcessToken(process, TOKEN_QUERY, &token)) {
    err = "OpenProcessToken: " + win_error_text(GetLastError());
    return {};
  }
  DWORD len = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &len);
  std::vector<char> buf(len ? len : 1);
  std::string sid;
  if (len && GetTokenInformation(token, TokenUser, buf.data(), len, &len)) {
    PSID p = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
    sid.assign(reinterpret_cast<const char*>(p), GetLengthSid(p));
  } else {
    err = "GetTokenInformation: " + win_error_text(GetLastError());
  }
  CloseHandle(token);
  return sid;
}

std::string sid_string(const std::string& sid) {
  wchar_t* s = nullptr;
  if (sid.empty() || !ConvertSidToStringSidW(const_cast<char*>(sid.data()), &s)) return "";
  std::string out = to_utf8(s);
  LocalFree(s);
  return out;
}

Peer identify(HANDLE pipe) {
  Peer p;
  ULONG pid = 0;
  if (!GetNamedPipeClientProcessId(pipe, &pid)) {
    p.error = "GetNamedPipeClientProcessId: " + win_error_text(GetLastError());
    return p;
  }
  p.pid = pid;
  HANDLE proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (!proc) {
    p.error = "OpenProcess: " + win_error_text(GetLastError());
    return p;
  }
  p.sid = token_sid(proc, p.error);
  wchar_t path[1024];
  DWORD n = 1024;
  if (QueryFullProcessImageNameW(proc, 0, path, &n)) p.exe = to_utf8(std::wstring(path, n));
  CloseHandle(proc);
  return p;
}

}  // namespace sb::pipe
