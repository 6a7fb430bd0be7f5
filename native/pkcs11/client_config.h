// The daemon client's settings, read once from the environment at C_Initialize
// (design.md "Environment"; docs/hardening/module.md "Autostart").
#pragma once
#include <string>
#include <vector>

namespace sb {

struct ClientConfig {
  std::string socket_path;
  // The path is the built-in default ($XDG_RUNTIME_DIR/… or /tmp/signbridge-<uid>/…), not
  // SIGNBRIDGE_SOCKET: the connection checks such a directory before trusting it.
  bool default_socket = false;
  int sign_timeout_ms = 60000;  // SIGNBRIDGE_TIMEOUT_MS
  int meta_timeout_ms = 10000;  // HELLO, GET_INVENTORY, LOGIN: min(SIGNBRIDGE_TIMEOUT_MS, 10000)
  // SIGNBRIDGE_AUTOSTART split into words (no shell); empty: autostart is off (the default).
  std::vector<std::string> autostart_argv;
  std::string autostart_error;  // SIGNBRIDGE_AUTOSTART was set but could not be parsed
  int autostart_timeout_ms = 15000;  // SIGNBRIDGE_AUTOSTART_TIMEOUT_MS
};

// design.md "Environment": SIGNBRIDGE_SOCKET, else $XDG_RUNTIME_DIR/signbridge/signbridge.sock,
// else /tmp/signbridge-<uid>/signbridge.sock.
ClientConfig config_from_env();

}  // namespace sb
