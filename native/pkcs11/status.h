// Status: a CK_RV plus a message for SIGNBRIDGE_DEBUG (STYLE.md "a status that carries its
// CK_RV"). Messages never contain secrets.
#pragma once
#include <optional>
#include <string>
#include <utility>

#include "p11.h"

namespace sb {

class Status {
 public:
  Status() = default;
  Status(CK_RV rv, std::string msg = {}) : rv_(rv), msg_(std::move(msg)) {}  // NOLINT
  static Status Ok() { return Status(); }
  bool ok() const { return rv_ == CKR_OK; }
  CK_RV rv() const { return rv_; }
  const std::string& message() const { return msg_; }

 private:
  CK_RV rv_ = CKR_OK;
  std::string msg_;
};

template <class T>
class Result {
 public:
  Result(T v) : value_(std::move(v)) {}                 // NOLINT
  Result(Status s) : status_(std::move(s)) {}           // NOLINT (must not be ok)
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

const char* rv_name(CK_RV rv);

// SIGNBRIDGE_DEBUG (design.md "Environment"): one line on stderr, prefixed "signbridge: ".
bool debug_enabled();
void set_debug_from_env();
void debug_line(const std::string& line);

}  // namespace sb
