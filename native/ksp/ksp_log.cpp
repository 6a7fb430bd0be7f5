#include "ksp_log.h"

#include <cstdio>

namespace sb::ksp {

const char* status_name(SECURITY_STATUS s) {
  switch (s) {
    case NTE_BAD_DATA: return "NTE_BAD_DATA";
    case NTE_BAD_ALGID: return "NTE_BAD_ALGID";
    case NTE_BAD_FLAGS: return "NTE_BAD_FLAGS";
    case NTE_NO_MEMORY: return "NTE_NO_MEMORY";
    case NTE_PERM: return "NTE_PERM";
    case NTE_NOT_FOUND: return "NTE_NOT_FOUND";
    case NTE_BAD_KEYSET: return "NTE_BAD_KEYSET";
    case NTE_FAIL: return "NTE_FAIL";
    case NTE_INVALID_HANDLE: return "NTE_INVALID_HANDLE";
    case NTE_INVALID_PARAMETER: return "NTE_INVALID_PARAMETER";
    case NTE_BUFFER_TOO_SMALL: return "NTE_BUFFER_TOO_SMALL";
    case NTE_NOT_SUPPORTED: return "NTE_NOT_SUPPORTED";
    case NTE_NO_MORE_ITEMS: return "NTE_NO_MORE_ITEMS";
    case NTE_INTERNAL_ERROR: return "NTE_INTERNAL_ERROR";
    case NTE_DEVICE_NOT_READY: return "NTE_DEVICE_NOT_READY";
    default: return "SECURITY_STATUS";
  }
}

namespace {

std::wstring log_path(bool create_dir) {
  wchar_t base[MAX_PATH];
  DWORD n = GetEnvironmentVariableW(L"LOCALAPPDATA", base, MAX_PATH);
  if (n == 0 || n >= MAX_PATH) n = GetTempPathW(MAX_PATH, base);
  if (n == 0 || n >= MAX_PATH) return {};
  std::wstring dir(base, n);
  if (!dir.empty() && dir.back() != L'\\') dir += L'\\';
  dir += L"signbridge";
  if (create_dir) CreateDirectoryW(dir.c_str(), nullptr);  // exists already: fine
  return dir + L"\\ksp.log";
}

}  // namespace

void log_failure(const char* entry, SECURITY_STATUS status, const std::string& message) noexcept {
  try {
    SYSTEMTIME t;
    GetSystemTime(&t);
    char head[160];
    snprintf(head, sizeof head, "%04u-%02u-%02uT%02u:%02u:%02uZ pid %lu %s 0x%08lx %s: ", t.wYear, t.wMonth, t.wDay,
             t.wHour, t.wMinute, t.wSecond, static_cast<unsigned long>(GetCurrentProcessId()), entry,
             static_cast<unsigned long>(status), status_name(status));
    std::string line = head + message + "\r\n";
    std::wstring path = log_path(true);
    if (path.empty()) return;
    // FILE_APPEND_DATA: each WriteFile lands at the end, whole, even with several processes.
    HANDLE f = CreateFileW(path.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, nullptr);
    if (f == INVALID_HANDLE_VALUE) return;
    DWORD written = 0;
    WriteFile(f, line.data(), static_cast<DWORD>(line.size()), &written, nullptr);
    CloseHandle(f);
  } catch (...) {
    // out of memory while logging: the caller still gets its status
  }
}

}  // namespace sb::ksp
