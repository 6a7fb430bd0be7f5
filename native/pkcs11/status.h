// Status: a CK_RV plus a message for SIGNBRIDGE_DEBUG (kmsp11's status that carries its
// CK_RV). Messages never contain secrets.
#pragma once
#include <optional>
#include <string>
#include <utility>

#include "notice.h"
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
  // A failure the user should hear about without SIGNBRIDGE_DEBUG (notice.h); the client
  // prints it once where a connection attempt finally fails.
  Status&& with_notice(NoticeCause c) && {
    cause_ = c;
    return std::move(*this);
  }
  NoticeCause notice() const { return cause_; }

 private:
  CK_RV rv_ = CKR_OK;
  std::string msg_;
  NoticeCause cause_ = NoticeCause::None;
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

// Early returns, the kmsp11 / absl idiom (kmsp11's status_macros.h). The expression is
// evaluated once; a Result that is not ok() returns its Status.
#define SB_CONCAT_INNER(a, b) a##b
#define SB_CONCAT(a, b) SB_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    ::sb::Status sb_status_ = ::sb::to_status(expr);  \
    if (!sb_status_.ok()) return sb_status_;          \
  } while (0)

// `lhs` may declare a variable (ASSIGN_OR_RETURN(auto x, f())); the value is moved out.
#define ASSIGN_OR_RETURN(lhs, expr) SB_ASSIGN_OR_RETURN_IMPL(SB_CONCAT(sb_result_, __LINE__), lhs, expr)
#define SB_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                             \
  if (!result.ok()) return result.status();         \
  lhs = std::move(*result)

inline const Status& to_status(const Status& s) { return s; }
template <class T>
const Status& to_status(const Result<T>& r) { return r.status(); }

const char* rv_name(CK_RV rv);

// SIGNBRIDGE_DEBUG (design.md "Environment"): one line on stderr, prefixed "signbridge: ".
bool debug_enabled();
void set_debug_from_env();
void debug_line(const std::string& line);
// The boundary's catch blocks (entry.h guard()): one line, no allocation.
void debug_exception(const char* fn, const char* what) noexcept;

}  // namespace sb
