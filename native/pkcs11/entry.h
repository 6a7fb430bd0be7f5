// The C ABI boundary helper: every C_* body is guard(name, [&]{ ...checks; return bridge::x(...); }).
// No logic here beyond pointer checks (the boundary only dispatches, like SoftHSMv2 main.cpp).
#pragma once
#include <exception>
#include <new>
#include <string>

#include "status.h"

namespace sb {

// The v2.40 function list (entry.cpp): C_GetFunctionList's answer and the 2.40 interface.
extern CK_FUNCTION_LIST g_function_list_v2;

template <class Fn>
CK_RV guard(const char* fn, Fn&& body) noexcept {
  try {
    Status s = body();
    if (!s.ok() && !s.message().empty() && debug_enabled())
      debug_line(std::string(fn) + ": " + s.message() + " (" + rv_name(s.rv()) + ")");
    return s.rv();
  } catch (const std::bad_alloc&) {  // an exception is a bug to report: one SIGNBRIDGE_DEBUG line
    debug_exception(fn, "out of memory");
    return CKR_HOST_MEMORY;
  } catch (const std::exception& e) {
    debug_exception(fn, e.what());
    return CKR_GENERAL_ERROR;
  } catch (...) {
    debug_exception(fn, "unknown exception");
    return CKR_GENERAL_ERROR;
  }
}

}  // namespace sb
