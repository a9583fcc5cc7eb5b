#include "gearmesh/status.hpp"

namespace gearmesh {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::bad_config:
      return "bad_config";
    case errc::malformed_frame:
      return "malformed_frame";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::unknown_sender:
      return "unknown_sender";
    case errc::not_found:
      return "not_found";
    case errc::storage:
      return "storage";
    case errc::transport:
      return "transport";
    case errc::overloaded:
      return "overloaded";
    case errc::shutting_down:
      return "shutting_down";
    case errc::timeout:
      return "timeout";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(gearmesh::to_string(code_)) + ": " + message_;
}

}  // namespace gearmesh
