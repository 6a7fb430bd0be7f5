// Fork safety (STYLE.md: kmsp11 fork_support_posix.cc): the child of a fork drops the module
// state; the parent is unaffected. Registered once per process; glibc unregisters the handler
// if the module is dlclose()d.
#include <pthread.h>

#include "state.h"

namespace sb {

static void child_after_fork() { forget_library_in_child(); }

void install_fork_handler() {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] { pthread_atfork(nullptr, nullptr, child_after_fork); });
}

}  // namespace sb
