#include "ksp_registry.h"

#include <windows.h>
#include <bcrypt.h>
#include <ncrypt.h>

#include <cstdio>
#include <vector>

#include "win_text.h"

// In bcrypt.lib but not in mingw-w64's bcrypt.h (declared from Microsoft's documentation).
extern "C" {
NTSTATUS WINAPI BCryptRegisterProvider(LPCWSTR pszProvider, ULONG dwFlags, PCRYPT_PROVIDER_REG pReg);
NTSTATUS WINAPI BCryptUnregisterProvider(LPCWSTR pszProvider);
NTSTATUS WINAPI BCryptAddContextFunctionProvider(ULONG dwTable, LPCWSTR pszContext, ULONG dwInterface,
                                                 LPCWSTR pszFunction, LPCWSTR pszProvider, ULONG dwPosition);
NTSTATUS WINAPI BCryptRemoveContextFunctionProvider(ULONG dwTable, LPCWSTR pszContext, ULONG dwInterface,
                                                    LPCWSTR pszFunction, LPCWSTR pszProvider);
}

namespace sb::win {

namespace {

constexpr const wchar_t* PROVIDER = L"Signbridge Key Storage Provider";
constexpr const wchar_t* DLL_NAME = L"signbridge-ksp.dll";
constexpr const wchar_t* PROVIDERS_KEY = L"SYSTEM\\CurrentControlSet\\Control\\Cryptography\\Providers\\";
constexpr NTSTATUS STATUS_OBJECT_NAME_COLLISION_ = static_cast<NTSTATUS>(0xC0000035L);

std::string nt(NTSTATUS s) {
  char b[16];
  snprintf(b, sizeof b, "0x%08lx", static_cast<unsigned long>(s));
  return b;
}

std::string value_text(DWORD type, const std::vector<BYTE>& data) {
  if (type == REG_SZ || type == REG_EXPAND_SZ) return "REG_SZ \"" + utf8(reinterpret_cast<const wchar_t*>(data.data())) + "\"";
  if (type == REG_DWORD && data.size() >= 4) {
    DWORD d;
    memcpy(&d, data.data(), 4);
    return "REG_DWORD " + std::to_string(d);
  }
  if (type == REG_MULTI_SZ) {
    std::string s = "REG_MULTI_SZ";
    for (auto* p = reinterpret_cast<const wchar_t*>(data.data()); *p; p += wcslen(p) + 1) s += " \"" + utf8(p) + "\"";
    return s;
  }
  return "type " + std::to_string(type) + ", " + std::to_string(data.size()) + " bytes";
}

// Prints every value of HKLM\<path> and its subkeys; false when the key does not exist.
bool dump(const std::wstring& path) {
  HKEY k;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.c_str(), 0, KEY_READ, &k) != ERROR_SUCCESS) return false;
  printf("  HKLM\\%s\n", utf8(path).c_str());
  for (DWORD i = 0;; i++) {
    wchar_t name[256];
    DWORD name_len = 256, type = 0, size = 0;
    if (RegEnumValueW(k, i, name, &name_len, nullptr, &type, nullptr, &size) != ERROR_SUCCESS) break;
    std::vector<BYTE> data(size + 4, 0);
    name_len = 256;
    RegEnumValueW(k, i, name, &name_len, nullptr, &type, data.data(), &size);
    printf("    %s = %s\n", name_len ? utf8(name).c_str() : "(Default)", value_text(type, data).c_str());
  }
  std::vector<std::wstring> subkeys;
  for (DWORD i = 0;; i++) {
    wchar_t name[256];
    DWORD n = 256;
    if (RegEnumKeyExW(k, i, name, &n, nullptr, nullptr, nullptr, nullptr) != ERROR_SUCCESS) break;
    subkeys.emplace_back(name, n);
  }
  RegCloseKey(k);
  for (const std::wstring& s : subkeys) dump(path + L"\\" + s);
  return true;
}

std::wstring system_dll() {
  wchar_t dir[MAX_PATH];
  UINT n = GetSystemDirectoryW(dir, MAX_PATH);
  return std::wstring(dir, n) + L"\\" + DLL_NAME;
}

}  // namespace

int install_ksp(const std::wstring& dll_path) {
  std::wstring target = system_dll();
  if (!CopyFileW(dll_path.c_str(), target.c_str(), FALSE)) {
    DWORD e = GetLastError();
    return fail(e == ERROR_ACCESS_DENIED ? 4 : 3, "install-ksp: copying " + utf8(dll_path) + " to " + utf8(target) + " failed: " +
                                                      error_text(e) + (e == ERROR_ACCESS_DENIED ? "; run it from an elevated (administrator) prompt" : ""));
  }
  printf("copied %s -> %s\n", utf8(dll_path).c_str(), utf8(target).c_str());
  PWSTR functions[] = {const_cast<wchar_t*>(NCRYPT_KEY_STORAGE_ALGORITHM)};
  CRYPT_INTERFACE_REG iface = {NCRYPT_KEY_STORAGE_INTERFACE, CRYPT_LOCAL, 1, functions};
  PCRYPT_INTERFACE_REG ifaces[] = {&iface};
  CRYPT_IMAGE_REG image = {const_cast<wchar_t*>(DLL_NAME), 1, ifaces};
  CRYPT_PROVIDER_REG reg = {0, nullptr, &image, nullptr};
  NTSTATUS s = BCryptRegisterProvider(PROVIDER, CRYPT_OVERWRITE, &reg);
  if (s < 0) return fail(s == static_cast<NTSTATUS>(0xC0000022L) ? 4 : 3, "install-ksp: BCryptRegisterProvider failed with " + nt(s) + "; run it from an elevated (administrator) prompt");
  s = BCryptAddContextFunctionProvider(CRYPT_LOCAL, nullptr, NCRYPT_KEY_STORAGE_INTERFACE, NCRYPT_KEY_STORAGE_ALGORITHM,
                                       PROVIDER, CRYPT_PRIORITY_BOTTOM);
  if (s < 0 && s != STATUS_OBJECT_NAME_COLLISION_)
    return fail(3, "install-ksp: BCryptAddContextFunctionProvider failed with " + nt(s));
  printf("registered \"Signbridge Key Storage Provider\" (KEY_STORAGE interface 0x00010001, local scope); the registry now holds:\n");
  if (!dump(std::wstring(PROVIDERS_KEY) + PROVIDER))
    return fail(3, "install-ksp: Windows reported success but HKLM\\" + utf8(std::wstring(PROVIDERS_KEY) + PROVIDER) +
                       " does not exist (Wine's bcrypt accepts the call and writes nothing: run on Windows)");
  printf("check it: certutil -csp \"Signbridge Key Storage Provider\" -key\n");
  return 0;
}

int uninstall_ksp() {
  std::wstring path = std::wstring(PROVIDERS_KEY) + PROVIDER;
  printf("removing the registration; before:\n");
  bool had = dump(path);
  NTSTATUS s = BCryptRemoveContextFunctionProvider(CRYPT_LOCAL, nullptr, NCRYPT_KEY_STORAGE_INTERFACE,
                                                   NCRYPT_KEY_STORAGE_ALGORITHM, PROVIDER);
  if (s < 0 && had) printf("  (BCryptRemoveContextFunctionProvider: %s)\n", nt(s).c_str());
  s = BCryptUnregisterProvider(PROVIDER);
  if (s < 0 && had) return fail(s == static_cast<NTSTATUS>(0xC0000022L) ? 4 : 3, "uninstall-ksp: BCryptUnregisterProvider failed with " + nt(s) + "; run it from an elevated (administrator) prompt");
  printf(had ? "removed HKLM\\%s\n" : "HKLM\\%s was not there: nothing to remove\n", utf8(path).c_str());
  std::wstring dll = system_dll();
  if (DeleteFileW(dll.c_str())) printf("deleted %s\n", utf8(dll).c_str());
  else if (GetLastError() != ERROR_FILE_NOT_FOUND)
    printf("could not delete %s (%s): a process still has it loaded; delete it after a restart\n", utf8(dll).c_str(), last_error().c_str());
  return 0;
}

}  // namespace sb::win
