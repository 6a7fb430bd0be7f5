// Fork safety (like kmsp11 fork_support_posix.cc): the child of a fork drops the module
// state; the parent is unaffected. Registered once per process; glibc unregisters the handler
// if the module is dlclose()d.
#ifndef _WIN32
#include <pthread.h>
#endif

#include "state.h"

namespace sb {

// The lifecycle lock is taken around fork() so that a fork while another thread is inside
// C_Initialize/C_Finalize cannot hand the child a lock held by a thread it does not have. The
// state lock and the connection pool's lock need no such care: the child never touches the
// parent's state (it is abandoned, see forget_library_in_child), so a sign in flight in another
// parent thread at fork time cannot deadlock the child.
static void before_fork() { lock_lifecycle(); }
static void parent_after_fork() { unlock_lifecycle(); }
static void child_after_fork() {
  unlock_lifecycle();
  forget_library_in_child();
}

#ifdef _WIN32
// No fork on Windows (winpthreads' pthread_atfork is a no-op): nothing to register.
void install_fork_handler() {}
#else
void install_fork_handler() {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] { pthread_atfork(before_fork, parent_after_fork, child_after_fork); });
}

#endif

}  // namespace sb
