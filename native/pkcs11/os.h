// Small OS shims the shared module code needs, one #ifdef each (the transport and autostart
// have platform files of their own).
#pragma once
#include <cstddef>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <string.h>
#endif

namespace sb {

// Wipes a secret (the PIN) in a way the compiler may not drop as a dead store.
inline void secure_wipe(void* p, size_t n) {
#ifdef _WIN32
  SecureZeroMemory(p, n);
#else
  explicit_bzero(p, n);
#endif
}

}  // namespace sb
