// Default stderr notices (README "Failure behaviour"): the few failures a user cannot diagnose
// from a tool's own error text ("Function failed") get one line on stderr, once per process and
// cause, as p11-kit does for its own failures. SIGNBRIDGE_QUIET=1 silences them; never stdout
// (tools write signatures there). SIGNBRIDGE_DEBUG lines are separate and per failure.
#pragma once
#include <string>

namespace sb {

enum class NoticeCause : int {
  UntrustedDaemon = 0,  // the socket's owner or directory is not ours (README "Security model")
  Count
};

// Prints "signbridge: <line>" on stderr the first time `cause` happens in this process.
void notice_once(NoticeCause cause, const std::string& line);

}  // namespace sb
