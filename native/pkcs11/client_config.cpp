#include "client_config.h"

#include <cstdlib>

#include "connection.h"

namespace sb {

namespace {

// SIGNBRIDGE_AUTOSTART: words separated by blanks; '…' and "…" group (no escapes, no shell).
bool split_words(const char* s, std::vector<std::string>& out) {
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (const char* p = s; *p; p++) {
    char ch = *p;
    if (quote) {
      if (ch == quote) quote = 0;
      else cur += ch;
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
      in_word = true;
    } else if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += ch;
      in_word = true;
    }
  }
  if (quote) return false;
  if (in_word) out.push_back(cur);
  return true;
}

// A positive number of milliseconds up to `max`; anything else leaves the default.
void read_ms(const char* name, long max, int& out) {
  const char* t = getenv(name);
  if (!t || !*t) return;
  char* end = nullptr;
  long v = strtol(t, &end, 10);
  if (end && *end == 0 && v > 0 && v <= max) out = static_cast<int>(v);
}

}  // namespace

ClientConfig config_from_env() {
  ClientConfig c;
  if (const char* s = getenv("SIGNBRIDGE_SOCKET"); s && *s) {
    c.socket_path = s;
  } else {
    c.socket_path = default_socket_path();
    c.default_socket = true;
  }
  read_ms("SIGNBRIDGE_TIMEOUT_MS", 24L * 3600 * 1000, c.sign_timeout_ms);
  c.meta_timeout_ms = c.sign_timeout_ms < 10000 ? c.sign_timeout_ms : 10000;
  // Autostart is never on by default (docs/hardening/module.md "Autostart").
  if (const char* a = getenv("SIGNBRIDGE_AUTOSTART"); a && *a) {
    if (!split_words(a, c.autostart_argv) || c.autostart_argv.empty()) {
      c.autostart_argv.clear();
      c.autostart_error = "SIGNBRIDGE_AUTOSTART is not a command line (unbalanced quotes?)";
    }
  }
  read_ms("SIGNBRIDGE_AUTOSTART_TIMEOUT_MS", 600000, c.autostart_timeout_ms);
  return c;
}

}  // namespace sb
