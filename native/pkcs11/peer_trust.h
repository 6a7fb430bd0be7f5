// Who may answer (README "Security model"): the module talks only to a daemon run by its own
// user or by root. /tmp is writable by everyone, so the default socket path
// /tmp/signbridge-<uid>/ may have been created by someone else, who could then serve fake keys,
// return signatures of their choosing, read the hashes being signed and collect the client
// secret sent by LOGIN. Two checks, both before a single byte is sent:
//   1. the socket's directory (default paths, and before autostart): a real directory, owned by
//      us or root, not writable by group or others — what the daemon itself requires;
//   2. the listening peer (every path): SO_PEERCRED uid is ours or 0.
// A refusal is a Status like "daemon unreachable" (CKR_DEVICE_ERROR) whose message says who owns
// what and what to do, marked to be printed once per process on stderr (notice.h).
#pragma once
#include <string>

#include "status.h"

namespace sb {

// The directory part of a socket path ("." when it has none).
std::string dir_of(const std::string& path);

// ok; CKR_DEVICE_ERROR when the directory is unsafe. `*missing` is set when it does not exist
// (not an attack: just no daemon yet, which autostart may fix).
Status check_socket_dir(const std::string& socket_path, bool* missing);

// ok when the process listening on the connected unix socket `fd` runs as our uid or root.
Status check_peer(int fd, const std::string& socket_path);

}  // namespace sb
