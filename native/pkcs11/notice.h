// Default stderr notices (README "Failure behaviour"): the few failures a user cannot diagnose
// from a tool's own error text ("Function failed") get one line on stderr, once per process and
// cause, as p11-kit does for its own failures. SIGNBRIDGE_QUIET=1 silences them; never stdout
// (tools write signatures there). SIGNBRIDGE_DEBUG lines are separate and per failure.
#pragma once
#include <string>

namespace sb {

// One default line per process for each; None: an ordinary failure (SIGNBRIDGE_DEBUG only).
enum class NoticeCause : int {
  None = -1,
  Unreachable = 0,   // no daemon answers at the socket (nor did autostart start one)
  UntrustedDaemon,   // the socket's owner or directory is not ours (README "Security model")
  RefusedByDaemon,   // the daemon closed the connection unanswered (another uid)
  VersionMismatch,   // module and daemon speak different protocol versions
  LoginRequired,     // the daemon wants the client secret through C_Login first
  AuthorizationRequired,  // a CKA_ALWAYS_AUTHENTICATE key signed without a valid context-specific login
  Count
};

// Prints "signbridge: <line>" on stderr the first time `cause` happens in this process
// (nothing for NoticeCause::None).
void notice_once(NoticeCause cause, const std::string& line);

}  // namespace sb
