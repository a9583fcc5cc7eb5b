// The `gearmesh` command line: a client of a node's admin API, plus offline
// tools for nodes' LMDB stores (`gearmesh store inspect|backup|restore`,
// `gearmesh verify DATA_DIR...`) and key files (`gearmesh keys generate|show`).
//
// `run` is the whole program minus the process boundary, so tests drive it
// with an argv and string streams against a real HTTP server. The pure
// helpers (dates, prices, escaping) are exposed for unit tests.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "gearmesh/status.hpp"

namespace gearmesh::cli {

/// Process exit codes.
enum exit_code : int {
  /// Success.
  exit_ok = 0,
  /// The node answered with an error, a store tool failed (missing
  /// directory, not a store, format version mismatch; the message went to
  /// stderr), `verify` found a violation, or `keys` failed (I/O error, keys
  /// exist without --force, bad or too widely readable key file).
  exit_api_error = 1,
  /// Bad command line.
  exit_usage = 2,
  /// The node's admin API could not be reached (connect failed or timed out),
  /// `verify` could not open or read a store, or the file system of `sim`'s
  /// stores is (nearly) full.
  exit_unreachable = 3,
  /// `sim` was stopped by SIGINT or SIGTERM (its temporary stores removed).
  exit_interrupted = 130,
};

/// Parses a point in time given on the command line, as microseconds since
/// the Unix epoch:
///   "2026-12-01"                     midnight UTC
///   "2026-12-01T08:00Z", "2026-12-01T08:00:00Z", "2026-12-01T08:00:00.5Z"
///                                    UTC; the "Z" may be omitted
///   "+3d", "+12h", "+30m", "+2w"     relative to `now_us`, at most 10 years
/// Errors: errc::invalid_argument with a message naming the accepted forms.
result<std::int64_t> parse_time(std::string_view text, std::int64_t now_us);

/// ISO-8601 UTC to the minute, e.g. "2026-12-01T08:00Z".
std::string format_time(std::int64_t us);

/// "1234.56", or "1234.56 EUR" with a currency; negative amounts as "-0.05".
std::string format_price(std::int64_t cents, std::string_view currency = {});

/// Percent-encodes every byte except RFC 3986 unreserved characters, so that
/// an order id such as "velo/order/1" stays one path segment.
std::string percent_encode(std::string_view s);

/// Runs the CLI with `argv` (argv[0] is the program name). Normal output goes
/// to `out`, diagnostics to `err`. Returns an exit_code. Never throws.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace gearmesh::cli
