// `gearmesh verify`: runs actors::verify_data_dirs and prints its report.
#include "verify_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <ostream>

#include "cli.hpp"
#include "gearmesh/actors/verify.hpp"

namespace gearmesh::cli {

namespace {

using json = nlohmann::json;

/// --now: microseconds since the epoch, or a time as parse_time reads it.
result<std::int64_t> parse_now(const std::string& text) {
  const auto wall = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  if (text.empty()) return wall;
  const bool digits = text.find_first_not_of("0123456789") == std::string::npos;
  if (digits && text.size() <= 18) return static_cast<std::int64_t>(std::stoll(text));
  if (digits) return status(errc::invalid_argument, "--now: \"" + text + "\" is too large");
  auto t = parse_time(text, wall);
  if (!t) {
    return status(errc::invalid_argument,
                  "--now: " + t.error().message() + ", or microseconds since the epoch");
  }
  return t;
}

json report_json(const actors::verify_report& r) {
  json stores = json::array();
  for (const auto& s : r.stores) {
    stores.push_back({{"path", s.path},
                      {"node_id", s.node_id},
                      {"node_id_source", actors::to_string(s.id_source)},
                      {"orders", s.orders},
                      {"contracts", s.contracts},
                      {"offers", s.offers},
                      {"holds", s.holds},
                      {"bookings", s.bookings},
                      {"resources", s.resources}});
  }
  json violations = json::array();
  for (const auto& v : r.violations) {
    violations.push_back({{"kind", actors::to_string(v.kind)},
                          {"invariant", actors::invariant_of(v.kind)},
                          {"node", v.node},
                          {"table", v.table},
                          {"key", v.key},
                          {"message", v.message}});
  }
  return json{{"now_us", r.now_us},
              {"clean", r.clean()},
              {"stores", std::move(stores)},
              {"violations", std::move(violations)},
              {"violations_total", r.violations_total},
              {"unchecked",
               {{"contracts", r.contracts_unchecked}, {"reservations", r.reservations_unchecked}}}};
}

/// "1 store", "2 stores".
std::string count(std::uint64_t n, const char* noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

void print_report(std::ostream& out, const actors::verify_report& r) {
  std::uint64_t orders = 0, contracts = 0, holds = 0, bookings = 0;
  for (const auto& s : r.stores) {
    out << fmt::format("{}: node {} (id from {}): {}, {}, {}, {}, {}, {}\n", s.path, s.node_id,
                       actors::to_string(s.id_source), count(s.orders, "order"),
                       count(s.contracts, "contract"), count(s.offers, "offer"),
                       count(s.holds, "hold"), count(s.bookings, "booking"),
                       count(s.resources, "resource"));
    orders += s.orders;
    contracts += s.contracts;
    holds += s.holds;
    bookings += s.bookings;
  }
  for (const auto& v : r.violations) {
    out << fmt::format("{} at {}, {} {}: {} [{}]\n", actors::to_string(v.kind), v.node, v.table,
                       v.key, v.message, actors::invariant_of(v.kind));
  }
  if (r.violations_total > r.violations.size())
    out << fmt::format("... and {} more violations not listed\n",
                       r.violations_total - r.violations.size());
  if (r.contracts_unchecked > 0)
    out << fmt::format("{} unchecked for agreement: the counterpart's store was not given\n",
                       count(r.contracts_unchecked, "contract"));
  if (r.reservations_unchecked > 0)
    out << fmt::format(
        "{} (holds, bookings) unchecked for over-commitment: the resource has no stored "
        "definition (start the node once with this version to record it)\n",
        count(r.reservations_unchecked, "reservation"));
  out << fmt::format("verified {}: {}, {}, {}, {}; ", count(r.stores.size(), "store"),
                     count(orders, "order"), count(contracts, "contract"), count(holds, "hold"),
                     count(bookings, "booking"));
  if (r.clean()) {
    out << "no violations\n";
  } else {
    out << count(r.violations_total, "violation") << '\n';
  }
}

}  // namespace

int verify_command(const std::vector<std::string>& data_dirs, const std::string& now_text,
                   bool raw_json, std::ostream& out, std::ostream& err) {
  auto now = parse_now(now_text);
  if (!now) {
    err << "gearmesh: " << now.error().message() << "\nRun with --help for more information.\n";
    return exit_usage;
  }
  actors::verify_options opts;
  opts.now_us = *now;
  auto report = actors::verify_data_dirs(data_dirs, opts);
  if (!report) {
    err << "gearmesh: " << report.error().message() << '\n';
    return report.error().code() == errc::invalid_argument ? exit_usage : exit_unreachable;
  }
  if (raw_json) {
    out << report_json(*report).dump(2, ' ', false, json::error_handler_t::replace) << '\n';
  } else {
    print_report(out, *report);
  }
  return report->clean() ? exit_ok : exit_api_error;
}

}  // namespace gearmesh::cli
