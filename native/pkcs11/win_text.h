// Windows text helpers of the client (Windows builds only): UTF-8 ↔ UTF-16, the OS's words for
// an error code, this process's user name and the account a SID names — for error messages
// and the default pipe name.
#pragma once
#include <string>

#include "os.h"

namespace sb {

std::wstring to_wide(const std::string& s);
std::string to_utf8(const std::wstring& s);
// "The system cannot find the file specified (error 2)".
std::string win_error_text(DWORD code);
// GetUserNameW of this process ("unknown" when it fails).
std::string current_user_name();
// "DOMAIN\\name (S-1-5-…)", or the SID alone when no account maps to it.
std::string sid_account(const void* sid);

}  // namespace sb
