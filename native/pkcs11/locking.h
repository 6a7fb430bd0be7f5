// The one lock in front of the module state (state sits behind one lock whose
// accessor also checks "initialized"). OS mutex, or the application's mutex callbacks when it
// passes them without CKF_OS_LOCKING_OK (PKCS#11 v2.40 §5.4, C_Initialize cases 1-4).
#pragma once
#include <memory>
#include <mutex>

#include "p11.h"
#include "status.h"

namespace sb {

class Locking {
 public:
  // Validates CK_C_INITIALIZE_ARGS (pReserved NULL; callbacks all or none).
  static Result<std::unique_ptr<Locking>> create(CK_C_INITIALIZE_ARGS_PTR args);
  ~Locking();
  Status lock();
  void unlock();

 private:
  Locking() = default;
  std::mutex os_;
  CK_C_INITIALIZE_ARGS app_{};  // callbacks when used
  void* app_mutex_ = nullptr;
  bool use_app_ = false;
};

}  // namespace sb
