// Expected<T>: a value or an Error, a code and a message naming what failed. Errors are
// values on the hot path (STYLE.md); g++ 12 has no std::expected, so this is the small
// subset we use.
// Shared with libprism-client, whose public headers include it as prism/expected.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace prism {

// What kind of failure an Error is, for code that must act on it (as libuv's UV_E* and
// store::Code): decide by the code, never by the message, which is for people.
enum class ErrorCode : uint8_t {
  kFailed = 0,       // nothing more specific to say
  kInvalidArgument,  // the input is wrong; the same call fails again
  kNotFound,         // what was named does not exist
  kConflict,         // it exists, or is in another state than the call needs
  kDisabled,         // switched off by configuration
  kUnavailable,      // a peer or resource is not there now; a later call may work
  kTimeout,          // no answer within the deadline
  kServerStatus,     // a server answered with a status other than OK (libprism-client)
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::kFailed;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }
inline Error make_error(ErrorCode code, std::string message) {
  return Error{std::move(message), code};
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const std::string& error() const { return std::get<1>(v_).message; }
  ErrorCode code() const { return ok() ? ErrorCode::kFailed : std::get<1>(v_).code; }
  // The whole error, to pass on with its code: `return x.failure();`.
  const Error& failure() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& error() const { return error_.message; }
  ErrorCode code() const { return error_.code; }
  const Error& failure() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace prism
