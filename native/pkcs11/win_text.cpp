#include "win_text.h"

#include <sddl.h>

namespace sb {

std::wstring to_wide(const std::string& s) {
  if (s.empty()) return {};
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring w(n > 0 ? n : 0, L'\0');
  if (n > 0) MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
  return w;
}

std::string to_utf8(const std::wstring& w) {
  if (w.empty()) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
  std::string s(n > 0 ? n : 0, '\0');
  if (n > 0) WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
  return s;
}

std::string win_error_text(DWORD code) {
  wchar_t* buf = nullptr;
  DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                           nullptr, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::string text;
  if (n && buf) {
    text = to_utf8(std::wstring(buf, n));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.'))
      text.pop_back();
  }
  if (buf) LocalFree(buf);
  return (text.empty() ? std::string("Windows error") : text) + " (error " + std::to_string(code) + ")";
}

std::string current_user_name() {
  wchar_t name[257];
  DWORD len = 257;
  if (!GetUserNameW(name, &len) || len == 0) return "unknown";
  return to_utf8(std::wstring(name, len - 1));  // len counts the terminating NUL
}

std::string sid_account(const void* sid) {
  PSID p = const_cast<void*>(sid);
  std::string text = "SID ?";
  wchar_t* s = nullptr;
  if (ConvertSidToStringSidW(p, &s)) {
    text = to_utf8(s);
    LocalFree(s);
  }
  wchar_t name[256], domain[256];
  DWORD nlen = 256, dlen = 256;
  SID_NAME_USE use;
  if (LookupAccountSidW(nullptr, p, name, &nlen, domain, &dlen, &use))
    return to_utf8(domain) + "\\" + to_utf8(name) + " (" + text + ")";
  return text;
}

}  // namespace sb
