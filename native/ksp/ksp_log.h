// One line per failure in %LOCALAPPDATA%\signbridge\ksp.log: signtool and the other CNG callers
// have no console for the KSP, and a bare SECURITY_STATUS does not say which key or daemon.
#pragma once
#include <windows.h>

#include <string>

namespace sb::ksp {

// Appends "<UTC time> pid <pid> <entry> 0x<status> <NTE name>: <message>". Never throws; a log
// that cannot be written is skipped (the status still reaches the caller).
void log_failure(const char* entry, SECURITY_STATUS status, const std::string& message) noexcept;

// NTE_BAD_KEYSET → "NTE_BAD_KEYSET"; "SECURITY_STATUS" for others.
const char* status_name(SECURITY_STATUS s);

}  // namespace sb::ksp
