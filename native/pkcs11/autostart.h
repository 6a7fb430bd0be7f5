// Autostart (docs/hardening/module.md "Autostart"), like gpg-agent: when SIGNBRIDGE_AUTOSTART
// is set and no daemon answers, run that command detached (double fork + setsid, stdin
// /dev/null, stdout+stderr appended to <socket>.log, no other inherited fds) and wait until the
// socket answers HELLO. Concurrent processes serialize on flock(<socket>.lock): the first one
// starts the daemon, the others find it answering.
#pragma once
#include <functional>

#include "client_config.h"
#include "status.h"

namespace sb {

// Connects and greets once within timeout_ms: ok when a daemon answers HELLO; `absent` set
// when nobody listens on the socket at all.
using Probe = std::function<Status(int timeout_ms, bool* absent)>;

// Starts the daemon cfg.autostart_argv names (unless another process did meanwhile) and waits,
// at most cfg.autostart_timeout_ms, until `probe` succeeds.
Status start_daemon(const ClientConfig& cfg, const Probe& probe);

}  // namespace sb
