#include "notice.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace sb {

namespace {
std::atomic<bool> g_said[static_cast<int>(NoticeCause::Count)];

bool quiet() {
  const char* q = getenv("SIGNBRIDGE_QUIET");
  return q && *q && strcmp(q, "0") != 0;
}
}  // namespace

void notice_once(NoticeCause cause, const std::string& line) {
  if (cause == NoticeCause::None) return;
  // exchange: exactly one thread of the process prints, even when several fail at once.
  if (g_said[static_cast<int>(cause)].exchange(true) || quiet()) return;
  std::string s = "signbridge: " + line + "\n";
  ssize_t r = write(2, s.data(), s.size());  // one write(2): no interleaving with other threads
  (void)r;
}

}  // namespace sb
