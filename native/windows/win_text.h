// Small text helpers of signbridge-windows.exe: UTF-16 ↔ UTF-8, hex, error text, exit codes.
#pragma once
#include <windows.h>

#include <string>
#include <vector>

namespace sb::win {

std::string utf8(const wchar_t* w);
std::string utf8(const std::wstring& w);
std::wstring utf16(const char* s);
std::string hex(const BYTE* p, size_t n);
bool unhex(const std::string& s, std::vector<BYTE>& out);
// "error 5 (Access is denied.)" for GetLastError().
std::string last_error();
std::string error_text(DWORD code);
// Prints "signbridge-windows: <message>" on stderr and returns rc.
int fail(int rc, const std::string& message);

}  // namespace sb::win
