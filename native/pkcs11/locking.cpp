#include "locking.h"

namespace sb {

Result<std::unique_ptr<Locking>> Locking::create(CK_C_INITIALIZE_ARGS_PTR args) {
  std::unique_ptr<Locking> l(new Locking());
  if (!args) return l;  // NULL: OS locking (we lock anyway: pkcs11js calls from worker threads)
  if (args->pReserved) return Status(CKR_ARGUMENTS_BAD, "C_Initialize: pReserved must be NULL");
  int given = (args->CreateMutex != nullptr) + (args->DestroyMutex != nullptr) +
              (args->LockMutex != nullptr) + (args->UnlockMutex != nullptr);
  if (given != 0 && given != 4)
    return Status(CKR_ARGUMENTS_BAD, "C_Initialize: mutex callbacks must be all set or all NULL");
  // v2.40 §5.4: with CKF_OS_LOCKING_OK the library may use OS locks even if callbacks are
  // given; callbacks without the flag must be used.
  if (given == 4 && !(args->flags & CKF_OS_LOCKING_OK)) {
    l->app_ = *args;
    if (l->app_.CreateMutex(&l->app_mutex_) != CKR_OK)
      return Status(CKR_CANT_LOCK, "C_Initialize: the application's CreateMutex failed");
    l->use_app_ = true;
  }
  return l;
}

Locking::~Locking() {
  if (use_app_ && app_mutex_) app_.DestroyMutex(app_mutex_);
}

Status Locking::lock() {
  if (!use_app_) {
    os_.lock();
    return Status::Ok();
  }
  CK_RV rv = app_.LockMutex(app_mutex_);
  if (rv != CKR_OK) return Status(CKR_GENERAL_ERROR, "the application's LockMutex failed");
  return Status::Ok();
}

void Locking::unlock() {
  if (use_app_) app_.UnlockMutex(app_mutex_);
  else os_.unlock();
}

}  // namespace sb
