// Errors as values at module boundaries.
//
// A `status` is either ok or carries an `errc` and a message a person can act
// on ("data/framecraft: mdb_env_open: No space left on device"). `result<T>`
// holds a value or a non-ok status. Neither throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gearmesh {

/// Error codes of the Gearmesh runtime.
enum class errc {
  /// No error.
  ok = 0,
  /// A caller passed an argument that can never be valid.
  invalid_argument,
  /// A config file is malformed or has a missing or wrong field.
  bad_config,
  /// An inbound frame failed verification (size, depth, tables, identifier).
  malformed_frame,
  /// A frame uses a protocol version this node does not speak.
  unsupported_version,
  /// A frame names a sender that is not a configured peer.
  unknown_sender,
  /// A key does not exist in a table.
  not_found,
  /// The storage layer failed (LMDB error, disk full, format mismatch).
  storage,
  /// The transport failed (bind, connect, socket error).
  transport,
  /// A bound (queue, map size, rate) was reached; the request was shed.
  overloaded,
  /// The component is stopping or stopped.
  shutting_down,
  /// A deadline passed before the operation completed.
  timeout,
  /// An internal invariant failed; a bug.
  internal,
};

/// Human-readable name of an error code, e.g. "bad_config".
const char* to_string(errc code) noexcept;

/// Result of an operation: ok, or an error code with a message.
class [[nodiscard]] status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok() { return {}; }

  bool is_ok() const noexcept { return code_ == errc::ok; }
  explicit operator bool() const noexcept { return is_ok(); }
  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  /// "storage: data/x: mdb_put: MDB_MAP_FULL" style text.
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

/// A value or an error status.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : value_(std::move(value)) {}
  result(status error) : error_(std::move(error)) { assert(!error_.is_ok()); }

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(value_);
    return *value_;
  }
  const T& value() const& {
    assert(value_);
    return *value_;
  }
  T&& value() && {
    assert(value_);
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const status& error() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  status error_;
};

}  // namespace gearmesh
