// Who is at the other end of a pipe (Windows builds of the addon): a process's user SID from
// its token, and the client of a connected pipe instance (pid, SID, executable).
#pragma once
#include <string>

#include "../pkcs11/win_text.h"

namespace sb::pipe {

// The user SID in `process`'s token, as bytes; empty on failure (`err` says why).
std::string token_sid(HANDLE process, std::string& err);
// "S-1-5-21-…"; empty when it cannot be converted.
std::string sid_string(const std::string& sid);

struct Peer {
  DWORD pid = 0;
  std::string sid;    // binary; empty when unknown
  std::string exe;
  std::string error;  // why sid is unknown
};

// GetNamedPipeClientProcessId → OpenProcess → its token's user SID and image path.
Peer identify(HANDLE pipe);

}  // namespace sb::pipe
