// The `gearmesh` CLI: subcommands that call a node's admin API and print its
// answers for people (tables, ISO-8601 times, prices) or as raw JSON, and
// offline tools that open nodes' LMDB data directories directly: `store`, and
// `verify` (verify_cmd.cpp); `keys` manages a node's CURVE keypair (keys_cmd.cpp).

#include "cli.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <tuple>
#include <vector>

#include "gearmesh/actors/kpis.hpp"
#include "gearmesh/actors/verify.hpp"
#include "gearmesh/ident.hpp"
#include "gearmesh/node/admin.hpp"
#include "gearmesh/sim/generate.hpp"
#include "gearmesh/store/store.hpp"
#include "keys_cmd.hpp"
#include "sim_cmd.hpp"
#include "verify_cmd.hpp"

namespace gearmesh::cli {

namespace {

using json = nlohmann::json;
using std::chrono::days;
using std::chrono::floor;
using std::chrono::microseconds;
using std::chrono::sys_days;

constexpr std::int64_t us_per_second = 1'000'000;
constexpr std::int64_t us_per_minute = 60 * us_per_second;
constexpr std::int64_t us_per_hour = 60 * us_per_minute;
constexpr std::int64_t us_per_day = 24 * us_per_hour;
constexpr std::int64_t relative_us_max = 3653 * us_per_day;  // 10 years
constexpr int request_timeout_ms = 10'000;

status bad_time(std::string_view text) {
  return status(errc::invalid_argument,
                fmt::format("invalid time \"{}\": expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z "
                            "(UTC) or +N followed by w, d, h or m (e.g. +3d)",
                            text));
}

/// Reads exactly `n` digits at `pos`; advances `pos`.
bool read_digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

result<std::int64_t> parse_relative(std::string_view text, std::int64_t now_us) {
  std::string_view digits = text.substr(1, text.size() - 2);
  if (digits.empty() || digits.size() > 9) return bad_time(text);
  std::int64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return bad_time(text);
    n = n * 10 + (c - '0');
  }
  std::int64_t unit = 0;
  switch (text.back()) {
    case 'w':
      unit = 7 * us_per_day;
      break;
    case 'd':
      unit = us_per_day;
      break;
    case 'h':
      unit = us_per_hour;
      break;
    case 'm':
      unit = us_per_minute;
      break;
    default:
      return bad_time(text);
  }
  if (n > relative_us_max / unit) {
    return status(errc::invalid_argument,
                  fmt::format("invalid time \"{}\": more than 10 years ahead", text));
  }
  return now_us + n * unit;
}

// --- JSON access that tolerates missing or mistyped fields -----------------

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::int64_t num(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<std::int64_t>();
}

std::string time_field(const json& j, const char* key) {
  std::int64_t us = num(j, key);
  return us == 0 ? "-" : format_time(us);
}

std::string scalar(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// --- Output -----------------------------------------------------------------

/// Prints rows as left-aligned columns separated by two spaces.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

/// "on time", "late 1d 2h" or "early 3h": `actual_us` against `promised_us`.
std::string lateness(std::int64_t actual_us, std::int64_t promised_us) {
  if (actual_us == 0 || promised_us == 0 || actual_us == promised_us) return "on time";
  std::int64_t d = actual_us > promised_us ? actual_us - promised_us : promised_us - actual_us;
  const std::int64_t hours = d / (3600LL * 1'000'000);
  std::string span = hours >= 24 ? std::to_string(hours / 24) + "d" : std::string();
  if (hours % 24 != 0 || hours == 0)
    span += (span.empty() ? "" : " ") + (hours == 0 ? std::to_string(d / (60LL * 1'000'000)) + "m"
                                                    : std::to_string(hours % 24) + "h");
  return (actual_us > promised_us ? "late " : "early ") + span;
}

/// One line of the contract tree: state, promised and expected/actual due.
std::string tree_line(const std::string& contract_id, const std::string& seller,
                      const std::string& item, std::int64_t quantity, const std::string& state,
                      std::int64_t promised_us, std::int64_t expected_us,
                      std::int64_t delivered_us) {
  std::string line = contract_id + "  " + seller + "  " + item + " x" + std::to_string(quantity) +
                     "  " + state + "  promised " + (promised_us ? format_time(promised_us) : "-");
  const std::int64_t when = delivered_us != 0 ? delivered_us : expected_us;
  if (delivered_us != 0)
    line += "  delivered " + format_time(delivered_us);
  else if (expected_us != 0)
    line += "  expected " + format_time(expected_us);
  if (when != 0) line += "  (" + lateness(when, promised_us) + ")";
  return line;
}

/// Prints the component contracts of a production event summary, indented.
void print_components(std::ostream& out, const json& components, const std::string& indent) {
  if (!components.is_array()) return;
  for (std::size_t i = 0; i < components.size(); ++i) {
    const auto& c = components[i];
    const bool last = i + 1 == components.size();
    out << indent << (last ? "└─ " : "├─ ")
        << tree_line(str(c, "contract_id"), str(c, "seller"), str(c, "item"), num(c, "quantity"),
                     str(c, "state"), num(c, "promised_due_us"), num(c, "expected_due_us"),
                     num(c, "delivered_us"))
        << '\n';
    if (auto it = c.find("components"); it != c.end())
      print_components(out, *it, indent + (last ? "   " : "│  "));
  }
}

/// The contract tree of an order: its contract, then, from the latest
/// production event, the seller's component contracts, tier by tier.
void print_tree(std::ostream& out, const json& order, const json& contract) {
  const json* progress = nullptr;
  if (auto it = contract.find("progress"); it != contract.end() && it->is_object()) progress = &*it;
  out << "\ncontracts\n"
      << tree_line(str(contract, "contract_id"), str(contract, "seller"), str(order, "item"),
                   num(order, "quantity"),
                   progress ? str(*progress, "state")
                            : (str(contract, "state") == "cancelled" ? "cancelled" : "contracted"),
                   num(contract, "promised_due_us"),
                   progress ? num(*progress, "expected_due_us") : 0,
                   progress ? num(*progress, "delivered_us") : 0)
      << '\n';
  if (progress)
    if (auto it = progress->find("components"); it != progress->end())
      print_components(out, *it, "");
}

void print_order(std::ostream& out, const json& order) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"order", str(order, "order_id")});
  rows.push_back({"item", str(order, "item")});
  rows.push_back({"quantity", std::to_string(num(order, "quantity"))});
  rows.push_back({"earliest", time_field(order, "earliest_start_us")});
  rows.push_back({"due", time_field(order, "due_us")});
  std::int64_t max_price = num(order, "max_price_cents");
  rows.push_back({"max price", max_price == 0 ? "none" : format_price(max_price)});
  rows.push_back({"state", str(order, "state")});
  if (auto reason = str(order, "reason"); !reason.empty()) rows.push_back({"reason", reason});
  const json* contract = nullptr;
  if (auto it = order.find("contract"); it != order.end() && it->is_object()) contract = &*it;
  if (contract) {
    rows.push_back({"contract", str(*contract, "contract_id")});
    rows.push_back({"  seller", str(*contract, "seller")});
    rows.push_back(
        {"  price", format_price(num(*contract, "price_cents"), str(*contract, "currency"))});
    rows.push_back({"  promised start", time_field(*contract, "promised_start_us")});
    rows.push_back({"  promised due", time_field(*contract, "promised_due_us")});
    rows.push_back({"  contract state", str(*contract, "state")});
    if (auto it = contract->find("progress"); it != contract->end() && it->is_object()) {
      const auto& p = *it;
      rows.push_back({"  execution", str(p, "state")});
      rows.push_back({"  started", time_field(p, "started_us")});
      if (num(p, "delivered_us") != 0)
        rows.push_back({"  delivered",
                        time_field(p, "delivered_us") + " (" +
                            lateness(num(p, "delivered_us"), num(*contract, "promised_due_us")) +
                            ")"});
      else
        rows.push_back({"  expected due",
                        time_field(p, "expected_due_us") + " (" +
                            lateness(num(p, "expected_due_us"), num(*contract, "promised_due_us")) +
                            ")"});
      if (auto reason = str(p, "reason"); !reason.empty()) rows.push_back({"  last news", reason});
    }
  } else {
    rows.push_back({"contract", "none"});
  }
  print_table(out, rows);
  if (contract) print_tree(out, order, *contract);

  const json* proposals = nullptr;
  if (auto it = order.find("proposals"); it != order.end() && it->is_array()) proposals = &*it;
  if (!proposals || proposals->empty()) {
    out << "\nno proposals\n";
    return;
  }
  std::string currency = contract ? str(*contract, "currency") : std::string();
  std::vector<std::vector<std::string>> table;
  table.push_back(
      {"SELLER", "PROPOSAL", "PRICE", "START", "DUE", "VALID UNTIL", "STATE", "REASON"});
  for (const auto& p : *proposals) {
    table.push_back({str(p, "seller"), str(p, "proposal_id"),
                     format_price(num(p, "price_cents"), currency),
                     time_field(p, "promised_start_us"), time_field(p, "promised_due_us"),
                     time_field(p, "valid_until_us"), str(p, "state"), str(p, "reason")});
  }
  out << "\nproposals\n";
  print_table(out, table);
}

void print_order_list(std::ostream& out, const json& body) {
  auto it = body.find("orders");
  if (it == body.end() || !it->is_array() || it->empty()) {
    out << "no orders\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  table.push_back({"ORDER", "ITEM", "QTY", "DUE", "STATE", "SELLER", "PRICE"});
  for (const auto& o : *it) {
    std::string seller = "-", price = "-";
    if (auto c = o.find("contract"); c != o.end() && c->is_object()) {
      seller = str(*c, "seller");
      price = format_price(num(*c, "price_cents"), str(*c, "currency"));
    }
    table.push_back({str(o, "order_id"), str(o, "item"), std::to_string(num(o, "quantity")),
                     time_field(o, "due_us"), str(o, "state"), seller, price});
  }
  print_table(out, table);
}

void print_contracts(std::ostream& out, const json& body) {
  auto it = body.find("contracts");
  if (it == body.end() || !it->is_array() || it->empty()) {
    out << "no contracts\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  table.push_back({"CONTRACT", "ORDER", "ROLE", "COUNTERPARTY", "ITEM", "QTY", "PRICE",
                   "PROMISED DUE", "STATE"});
  for (const auto& c : *it) {
    std::string role = str(c, "role");
    std::string counterparty = role == "seller" ? str(c, "buyer") : str(c, "seller");
    table.push_back({str(c, "contract_id"), str(c, "order_id"), role, counterparty, str(c, "item"),
                     std::to_string(num(c, "quantity")),
                     format_price(num(c, "price_cents"), str(c, "currency")),
                     time_field(c, "promised_due_us"), str(c, "state")});
  }
  print_table(out, table);
}

/// An answer of GET /v1/resolve/<id> or /v1/partners: one row per node.
void print_resolution(std::ostream& out, const json& body) {
  std::string what = str(body, "identifier");
  if (what.empty()) what = "capability " + str(body, "capability");
  std::string how = str(body, "status");
  if (body.value("cached", false)) how += ", from this node's cache";
  if (body.value("local", false)) how += ", answered by this node";
  out << what << ": " << how << " (ttl " << num(body, "ttl_s") << " s)\n";
  if (auto reason = str(body, "reason"); !reason.empty()) out << "reason: " << reason << '\n';
  auto it = body.find("entries");
  if (it == body.end() || !it->is_array() || it->empty()) return;
  bool any_referral = false;
  for (const auto& e : *it) any_referral = any_referral || e.value("referral", false);
  std::vector<std::vector<std::string>> table;
  table.push_back({"NODE", "ENDPOINT", "PUBLIC KEY", "CAPABILITIES"});
  if (any_referral) table.back().push_back("");
  for (const auto& e : *it) {
    std::string caps;
    if (auto c = e.find("capabilities"); c != e.end() && c->is_array())
      for (const auto& x : *c) caps += (caps.empty() ? "" : ",") + scalar(x);
    table.push_back({str(e, "node_id"), str(e, "endpoint"),
                     str(e, "public_key").empty() ? "-" : str(e, "public_key"),
                     caps.empty() ? "-" : caps});
    if (any_referral)
      table.back().push_back(e.value("referral", false) ? "(directory to ask)" : "");
  }
  print_table(out, table);
}

void print_capacity_offers(std::ostream& out, const json& body) {
  bool any = false;
  for (const char* side : {"published", "received"}) {
    auto it = body.find(side);
    if (it == body.end() || !it->is_array() || it->empty()) continue;
    if (any) out << '\n';
    any = true;
    out << side << '\n';
    std::vector<std::vector<std::string>> table;
    table.push_back({"OFFER", "PUBLISHER", "CAPABILITY", "WINDOW START", "WINDOW END", "UNITS",
                     "REMAINING", "UNIT PRICE", "VALID UNTIL", "STATE"});
    for (const auto& o : *it) {
      table.push_back({str(o, "offer_id"), str(o, "publisher"), str(o, "capability"),
                       time_field(o, "window_start_us"), time_field(o, "window_end_us"),
                       std::to_string(num(o, "units")), std::to_string(num(o, "remaining")),
                       format_price(num(o, "unit_price_cents"), str(o, "currency")),
                       time_field(o, "valid_until_us"), str(o, "state")});
    }
    print_table(out, table);
  }
  if (!any) out << "no capacity offers\n";
}

/// One outage and what it did (POST /v1/machines/<id>/down and others).
void print_outage(std::ostream& out, const json& o) {
  out << str(o, "outage_id") << ": " << str(o, "machine") << ' ' << str(o, "kind") << ' '
      << time_field(o, "from_us") << " .. " << time_field(o, "until_us") << " (" << str(o, "state")
      << ")";
  if (!str(o, "reason").empty()) out << ": " << str(o, "reason");
  out << '\n';
  auto it = o.find("effects");
  if (it != o.end() && it->is_array() && !it->empty()) {
    std::vector<std::vector<std::string>> table;
    table.push_back({"  CONTRACT", "OUTCOME", "EXPECTED DUE"});
    for (const auto& e : *it)
      table.push_back(
          {"  " + str(e, "contract_id"), str(e, "outcome"), time_field(e, "expected_due_us")});
    print_table(out, table);
  } else {
    out << "  no booked work was in the window\n";
  }
  if (num(o, "holds_moved") + num(o, "holds_released") > 0)
    out << "  proposals' holds: " << num(o, "holds_moved") << " moved, " << num(o, "holds_released")
        << " released\n";
}

/// GET /v1/machines.
void print_machines(std::ostream& out, const json& body) {
  std::vector<std::vector<std::string>> table;
  table.push_back({"MACHINE", "CAPABILITIES", "STATE", "HEALTH THRESHOLD", "OUTAGES"});
  auto ms = body.find("machines");
  if (ms != body.end() && ms->is_array())
    for (const auto& m : *ms) {
      std::string caps, outs;
      if (auto c = m.find("capabilities"); c != m.end() && c->is_array())
        for (const auto& x : *c) caps += (caps.empty() ? "" : ",") + scalar(x);
      if (auto o = m.find("outages"); o != m.end() && o->is_array())
        for (const auto& x : *o) outs += (outs.empty() ? "" : " ") + scalar(x);
      const auto threshold = num(m, "health_threshold");
      table.push_back({str(m, "id"), caps, str(m, "state"),
                       threshold > 0 ? std::to_string(threshold) : "-", outs.empty() ? "-" : outs});
    }
  if (table.size() == 1) {
    out << "no machines (this node has no factory role)\n";
    return;
  }
  print_table(out, table);
  auto os = body.find("outages");
  if (os != body.end() && os->is_array() && !os->empty()) {
    out << '\n';
    for (const auto& o : *os) print_outage(out, o);
  }
  const auto& t = body.value("totals", json::object());
  out << fmt::format(
      "\n{} outages: {} contracts rescheduled, {} delayed, {} cancelled; {} holds moved, {} "
      "released\n",
      num(t, "outages"), num(t, "rescheduled"), num(t, "delayed"), num(t, "cancelled"),
      num(t, "holds_moved"), num(t, "holds_released"));
}

void print_capacity_bookings(std::ostream& out, const json& body) {
  auto it = body.find("bookings");
  if (it == body.end() || !it->is_array() || it->empty()) {
    out << "no capacity bookings\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  table.push_back({"BOOKING", "OFFER", "ROLE", "COUNTERPARTY", "CAPABILITY", "UNITS", "PRICE",
                   "WINDOW START", "STATE", "REASON"});
  for (const auto& b : *it) {
    std::string role = str(b, "role");
    table.push_back({str(b, "booking_id"), str(b, "offer_id"), role,
                     role == "publisher" ? str(b, "booker") : str(b, "publisher"),
                     str(b, "capability"), std::to_string(num(b, "units")),
                     format_price(num(b, "price_cents"), str(b, "currency")),
                     time_field(b, "window_start_us"), str(b, "state"), str(b, "reason")});
  }
  print_table(out, table);
}

/// A duration for people: "45 s", "12 min", "5.5 h", "2.3 d".
std::string format_duration(std::int64_t us) {
  const double s = static_cast<double>(us) / 1e6;
  if (s < 60) return fmt::format("{:.3g} s", s);
  if (s < 3600) return fmt::format("{:.3g} min", s / 60);
  if (s < 86400) return fmt::format("{:.3g} h", s / 3600);
  return fmt::format("{:.3g} d", s / 86400);
}

/// A percentage field of the KPIs ("87.5 %"), "-" when null.
std::string pct_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return fmt::format("{:.1f} %", it->get<double>());
}

/// A number field with up to one decimal, "-" when null.
std::string decimal_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return fmt::format("{:.1f}", it->get<double>());
}

/// {"EUR": 1234, ...} as "12.34 EUR, ...", "-" when empty.
std::string money_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object() || it->empty()) return "-";
  std::string out;
  for (const auto& [currency, cents] : it->items())
    out += (out.empty() ? "" : ", ") +
           format_price(cents.is_number() ? cents.get<std::int64_t>() : 0, currency);
  return out;
}

std::string duration_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object() || num(*it, "count") == 0) return "-";
  return fmt::format("mean {}, p50 {}, p95 {}, max {} ({} orders)",
                     format_duration(num(*it, "mean_us")), format_duration(num(*it, "p50_us")),
                     format_duration(num(*it, "p95_us")), format_duration(num(*it, "max_us")),
                     num(*it, "count"));
}

/// The answer of GET /v1/kpis (or its offline twin).
void print_kpis(std::ostream& out, const json& body) {
  const auto from = num(body, "from_us"), to = num(body, "to_us");
  std::string window = "all records";
  if (from != 0 && to != 0)
    window = format_time(from) + " .. " + format_time(to);
  else if (from != 0)
    window = "from " + format_time(from);
  else if (to != 0)
    window = "until " + format_time(to);
  out << "KPIs of " << (str(body, "node_id").empty() ? "this node" : str(body, "node_id")) << " at "
      << time_field(body, "now_us") << ", window: " << window
      << ", deliveries: " << str(body, "delivery_basis") << "\n";
  std::vector<std::vector<std::string>> rows;
  auto buyer = body.value("buyer", json::object());
  for (const char* kind : {"customer_orders", "component_orders"}) {
    auto o = buyer.value(kind, json::object());
    if (num(o, "orders") == 0) continue;
    rows.push_back(
        {kind == std::string("customer_orders") ? "customer orders" : "component orders",
         fmt::format("{} placed: {} contracted, {} failed, {} cancelled, {} open", num(o, "orders"),
                     num(o, "contracted"), num(o, "failed"), num(o, "cancelled"), num(o, "open"))});
    rows.push_back(
        {"  on-time delivery", fmt::format("{} ({} on time, {} late)", pct_field(o, "on_time_pct"),
                                           num(o, "on_time"), num(o, "late"))});
    rows.push_back({"  lead time", duration_field(o, "lead_time")});
    rows.push_back({"  quote time", duration_field(o, "quote_time")});
    rows.push_back({"  spend", money_field(o, "spend_cents")});
  }
  auto seller = body.value("seller", json::object());
  if (num(seller, "offers") > 0 || num(seller, "contracts") > 0) {
    rows.push_back(
        {"seller", fmt::format("{} offers: {} contracted, {} lost, {} pending",
                               num(seller, "offers"), num(seller, "offers_contracted"),
                               num(seller, "offers_lost"), num(seller, "offers_pending"))});
    rows.push_back({"  win rate", pct_field(seller, "win_rate_pct")});
    rows.push_back({"  promised on time", pct_field(seller, "promised_on_time_pct")});
    rows.push_back({"  contracts",
                    fmt::format("{} ({} units)", num(seller, "contracts"), num(seller, "units"))});
    rows.push_back({"  revenue", money_field(seller, "revenue_cents")});
  }
  auto energy = body.value("energy", json::object());
  if (num(energy, "contracts") > 0) {
    rows.push_back(
        {"energy per unit",
         fmt::format("{} Wh ({} Wh for {} units of {} contracts)",
                     decimal_field(energy, "wh_per_unit"), decimal_field(energy, "energy_wh"),
                     num(energy, "units"), num(energy, "contracts"))});
    const auto by_item = energy.value("by_item", json::object());
    for (const auto& [item, e] : by_item.items())
      rows.push_back({"  " + item, fmt::format("{} Wh per unit ({} units)",
                                               decimal_field(e, "wh_per_unit"), num(e, "units"))});
  }
  if (rows.empty()) rows.push_back({"orders", "none in the window"});
  print_table(out, rows);
  auto util = body.value("utilization", json::object());
  auto resources = util.value("resources", json::array());
  if (resources.empty()) return;
  out << "\nutilization " << time_field(util, "from_us") << " .. " << time_field(util, "to_us")
      << "\n";
  std::vector<std::vector<std::string>> table;
  table.push_back({"RESOURCE", "CAPACITY", "DOWN", "BOOKED", "HELD", "UTILIZATION", "HELD %",
                   "WH/H", "ENERGY WH"});
  for (const auto& r : resources)
    table.push_back({str(r, "id"), std::to_string(num(r, "capacity_units")),
                     std::to_string(num(r, "down_units")), std::to_string(num(r, "booked_units")),
                     std::to_string(num(r, "held_units")), pct_field(r, "utilization_pct"),
                     pct_field(r, "held_pct"), std::to_string(num(r, "energy_wh_per_hour")),
                     decimal_field(r, "energy_wh")});
  print_table(out, table);
}

void print_flat(std::ostream& out, const json& body) {
  if (!body.is_object()) {
    out << body.dump() << '\n';
    return;
  }
  for (const auto& [key, value] : body.items()) out << key << ": " << scalar(value) << '\n';
}

// --- Talking to the node ----------------------------------------------------

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
};

result<endpoint> parse_endpoint(std::string_view text) {
  auto colon = text.rfind(':');
  auto bad = [&] {
    return status(
        errc::invalid_argument,
        fmt::format("--node: expected HOST:PORT (e.g. 127.0.0.1:8100), got \"{}\"", text));
  };
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string_view host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:8100
  }
  std::string_view port = text.substr(colon + 1);
  if (port.size() > 5) return bad();
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad();
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return bad();
  return endpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

/// Calls the node and decodes its JSON answer. On failure prints to `err`
/// and returns the exit code in `rc`.
std::optional<json> request(const std::string& node_text, const std::string& method,
                            const std::string& target, const std::string& body, std::ostream& err,
                            int& rc) {
  auto ep = parse_endpoint(node_text);
  if (!ep) {
    err << "gearmesh: " << ep.error().message() << '\n';
    rc = exit_usage;
    return std::nullopt;
  }
  auto res = admin::call(ep->host, ep->port, method, target, body, request_timeout_ms);
  if (!res) {
    if (res.error().code() == errc::transport || res.error().code() == errc::timeout) {
      err << "gearmesh: cannot reach the node's admin API: " << res.error().message()
          << " (is gearmesh-node running? set --node or GEARMESH_NODE)\n";
      rc = exit_unreachable;
    } else {
      err << "gearmesh: " << res.error().message() << '\n';
      rc = exit_usage;
    }
    return std::nullopt;
  }
  json answer = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (res->status >= 400) {
    std::string message = str(answer, "error");
    if (message.empty()) message = res->body.empty() ? "no details" : res->body;
    err << "gearmesh: " << message << " (HTTP " << res->status << ")\n";
    rc = exit_api_error;
    return std::nullopt;
  }
  if (answer.is_discarded()) {
    err << "gearmesh: the node at " << node_text << " sent a response that is not JSON (HTTP "
        << res->status << ")\n";
    rc = exit_api_error;
    return std::nullopt;
  }
  rc = exit_ok;
  return answer;
}

std::int64_t now_us() {
  return std::chrono::duration_cast<microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// parse_time, and "-N" followed by w, d, h or m for times before now.
result<std::int64_t> parse_kpi_time(const std::string& text, std::int64_t now) {
  if (text.size() >= 3 && text.front() == '-') {
    auto ahead = parse_time("+" + text.substr(1), now);
    if (!ahead) return bad_time(text);
    return now - (*ahead - now);
  }
  return parse_time(text, now);
}

int usage_error(std::ostream& err, const std::string& message) {
  err << "gearmesh: " << message << "\nRun with --help for more information.\n";
  return exit_usage;
}

// --- Offline store tools ------------------------------------------------------

namespace fs = std::filesystem;

int fail(std::ostream& err, const std::string& message) {
  err << "gearmesh: " << message << '\n';
  return exit_api_error;
}

/// Opens the existing store in `dir`; never creates one.
result<std::unique_ptr<store::environment>> open_existing(const std::string& dir) {
  return actors::open_existing_store(dir);
}

int store_inspect(const std::string& data_dir, bool raw_json, std::ostream& out,
                  std::ostream& err) {
  auto env = open_existing(data_dir);
  if (!env) return fail(err, env.error().message());
  auto tables = (*env)->stats();
  if (!tables) return fail(err, tables.error().message());
  std::string path = (*env)->path();
  env->reset();
  if (raw_json) {
    json j = {{"path", path}, {"tables", json::array()}};
    for (const auto& t : *tables) {
      j["tables"].push_back({{"name", t.name}, {"entries", t.entries}, {"bytes", t.bytes}});
    }
    out << j.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
    return exit_ok;
  }
  out << "path: " << path << '\n';
  if (tables->empty()) {
    out << "no tables\n";
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"TABLE", "ENTRIES", "BYTES"});
  for (const auto& t : *tables) {
    rows.push_back({t.name, std::to_string(t.entries), std::to_string(t.bytes)});
  }
  print_table(out, rows);
  return exit_ok;
}

int store_backup(const std::string& data_dir, const std::string& to, bool raw_json,
                 std::ostream& out, std::ostream& err) {
  std::error_code ec;
  bool existed = fs::exists(to, ec);
  if (existed) {
    if (!fs::is_directory(to, ec)) return fail(err, to + ": exists and is not a directory");
    if (!fs::is_empty(to, ec)) {
      return fail(err, to + ": backup directory is not empty; choose a new or empty directory");
    }
  }
  auto env = open_existing(data_dir);
  if (!env) return fail(err, env.error().message());
  if (!existed && !fs::create_directories(to, ec) && ec) {
    return fail(err, fmt::format("{}: cannot create directory: {}", to, ec.message()));
  }
  if (auto st = (*env)->copy_to(to); !st) {
    env->reset();
    if (!existed) fs::remove_all(to, ec);
    return fail(err, st.message());
  }
  env->reset();
  if (raw_json) {
    out << json{{"from", data_dir}, {"to", to}}.dump(2, ' ', false, json::error_handler_t::replace)
        << '\n';
  } else {
    out << "backed up " << data_dir << " to " << to << '\n';
  }
  return exit_ok;
}

int store_restore(const std::string& from, const std::string& data_dir, bool force, bool raw_json,
                  std::ostream& out, std::ostream& err) {
  {
    // Opening checks that `from` is a store of this format version. Closed
    // again at the end of this scope.
    auto backup = open_existing(from);
    if (!backup) return fail(err, "--from: " + backup.error().message());
  }
  std::error_code ec;
  if (fs::exists(data_dir, ec)) {
    if (!fs::is_directory(data_dir, ec)) return fail(err, data_dir + ": not a directory");
    if (fs::equivalent(from, data_dir, ec)) {
      return fail(err, "--from and --data-dir are the same directory");
    }
  }
  fs::path target = fs::path(data_dir) / "data.mdb";
  if (fs::exists(target, ec) && !force) {
    return fail(err, data_dir +
                         " already holds a store (data.mdb); stop the node and pass --force to "
                         "overwrite it");
  }
  if (!fs::create_directories(data_dir, ec) && ec) {
    return fail(err, fmt::format("{}: cannot create directory: {}", data_dir, ec.message()));
  }
  // Copy next to the target, then rename: data.mdb is never half written.
  fs::path temp = fs::path(data_dir) / "data.mdb.restoring";
  if (!fs::copy_file(fs::path(from) / "data.mdb", temp, fs::copy_options::overwrite_existing, ec)) {
    fs::remove(temp, ec);
    return fail(err, fmt::format("{}: cannot copy data.mdb: {}", data_dir, ec.message()));
  }
  fs::rename(temp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    return fail(err, fmt::format("{}: cannot replace data.mdb: {}", data_dir, ec.message()));
  }
  {
    // Ids the node used after the backup was taken are unknown here: skip far
    // above them so that partners never drop a new message as a duplicate.
    auto env = open_existing(data_dir);
    if (!env) return fail(err, env.error().message());
    auto hw = (*env)->get("meta", store::meta_message_id_high_water);
    if (!hw) return fail(err, hw.error().message());
    std::uint64_t mark = hw->has_value() ? std::stoull(**hw) : 0;
    store::write_batch b;
    b.put("meta", store::meta_message_id_high_water,
          store::key_u64(mark + store::restore_message_id_skip));
    if (auto st = (*env)->apply(b); !st) return fail(err, st.message());
  }
  if (raw_json) {
    out << json{{"from", from}, {"data_dir", data_dir}}.dump(2, ' ', false,
                                                             json::error_handler_t::replace)
        << '\n';
  } else {
    out << "restored " << from << " into " << data_dir
        << "\nthe node using this data directory must be stopped while restoring; start it "
           "now\n";
  }
  return exit_ok;
}

int run_parsed(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "Talks to a Gearmesh node through its admin API; `store` and `verify` work offline on "
      "nodes' data directories, `keys` on key files.",
      "gearmesh"};
  app.fallthrough();  // global options may follow the subcommand
  app.require_subcommand(1);

  std::string node = "127.0.0.1:8100";
  bool raw_json = false;
  app.add_option("--node", node, "HOST:PORT of the node's admin API")
      ->envname("GEARMESH_NODE")
      ->capture_default_str();
  app.add_flag("--json", raw_json, "Print the node's JSON answer instead of a summary");

  auto* order = app.add_subcommand("order", "Submit and follow customer orders");
  order->require_subcommand(1);

  std::string item, due, earliest;
  std::int64_t quantity = 0;
  std::int64_t max_price_cents = 0;
  std::vector<std::string> attributes;
  auto* submit = order->add_subcommand("submit", "Submit an order; prints its id");
  submit->add_option("--item", item, "Item to order, e.g. FRAME")->required();
  submit->add_option("--qty", quantity, "Quantity")->required()->check(CLI::PositiveNumber);
  submit->add_option("--due", due, "Due date: 2026-12-01, 2026-12-01T08:00:00Z (UTC) or +3d, +12h")
      ->required();
  submit->add_option("--earliest", earliest, "Earliest start (same forms as --due); default now");
  submit->add_option("--max-price", max_price_cents, "Price ceiling in cents; 0 = none")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--attr", attributes, "Attribute key=value, e.g. colour=red (repeatable)");

  std::string order_id;
  auto* order_status = order->add_subcommand("status", "Show an order, its contract and proposals");
  order_status->add_option("ORDER_ID", order_id, "Order id, e.g. velo/order/1")->required();
  auto* order_list = order->add_subcommand("list", "List orders");

  std::string event_contract, event_kind, event_at, event_expected, event_reason;
  auto* event = app.add_subcommand(
      "event",
      "Report a shop-floor production event for a contract this node sold (started, completed, "
      "delayed, delivered); the buyer receives it as a ProductionEvent");
  event->add_option("CONTRACT_ID", event_contract, "Contract id, e.g. velo/order/1/c1")->required();
  event->add_option("KIND", event_kind, "started, completed, delayed or delivered")
      ->required()
      ->check(CLI::IsMember({"started", "completed", "delayed", "delivered"}));
  event->add_option("--at", event_at, "When it happened (same forms as --due); default now");
  event->add_option("--expected-due", event_expected,
                    "delayed: the new expected delivery (same forms as --due)");
  event->add_option("--reason", event_reason, "Why, e.g. weld-robot1 broke down");

  std::string resolve_id, capability;
  auto* resolve = app.add_subcommand(
      "resolve",
      "Resolve an identifier (e.g. acme.plant1/machine/m7, velo/order/17) to the owning node's "
      "endpoint, public key and capabilities, through the directory; or, with --capability, "
      "find the nodes that offer a capability");
  resolve->add_option("ID", resolve_id, "Identifier: enterprise[.node]/kind/id or a node id");
  resolve->add_option("--capability", capability, "Find partners offering this, e.g. welding");
  auto* directory_cmd =
      app.add_subcommand("directory", "Print the node's directory counters (cache hits, ...)");

  auto* capacity = app.add_subcommand("capacity", "Publish, list and book spare capacity");
  capacity->require_subcommand(1);
  std::string cap_start, cap_end, cap_valid, cap_machine, offer_id;
  std::int64_t cap_units = 0, unit_price_cents = 0;
  auto* cap_publish = capacity->add_subcommand(
      "publish", "Offer spare capacity of this factory to its partners; prints the offer id");
  cap_publish->add_option("--capability", capability, "Process kind, e.g. coating")->required();
  cap_publish->add_option("--units", cap_units, "Capacity units offered (machine-minutes)")
      ->required()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}));
  cap_publish->add_option("--unit-price", unit_price_cents, "Price of one unit in cents")
      ->required()
      ->check(CLI::NonNegativeNumber);
  cap_publish->add_option("--start", cap_start, "Window start (same forms as --due)")->required();
  cap_publish->add_option("--end", cap_end, "Window end (same forms as --due)")->required();
  cap_publish->add_option("--valid-until", cap_valid,
                          "Bookable until then (same forms as --due); default: the window start");
  cap_publish->add_option("--machine", cap_machine,
                          "Reserve on this machine; default: any capable");
  auto* cap_offers = capacity->add_subcommand(
      "offers", "List offers this node published and offers partners sent it");
  auto* cap_book = capacity->add_subcommand(
      "book", "Book units of an offer a partner sent; waits for the publisher's answer");
  cap_book->add_option("OFFER_ID", offer_id, "Offer id, e.g. framecraft/capacity/1")->required();
  cap_book->add_option("--units", cap_units, "Units to book")
      ->required()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}));
  auto* cap_withdraw = capacity->add_subcommand(
      "withdraw", "Withdraw an offer this node published (granted bookings stay)");
  cap_withdraw->add_option("OFFER_ID", offer_id, "Offer id, e.g. framecraft/capacity/1")
      ->required();
  auto* cap_bookings =
      capacity->add_subcommand("bookings", "List capacity bookings, as booker and as publisher");

  auto* machine = app.add_subcommand(
      "machine",
      "Report a machine breakdown, a maintenance window or a health score to this factory; its "
      "booked work moves to another machine, is delayed, or is cancelled (the buyer sources it "
      "again)");
  machine->require_subcommand(1);
  std::string machine_id, m_from, m_until, m_for, m_reason;
  std::int64_t m_score = -1;
  auto* m_down = machine->add_subcommand("down", "The machine broke down (from now, or --from)");
  auto* m_maint = machine->add_subcommand("maintenance", "A maintenance window");
  for (auto* c : {m_down, m_maint}) {
    c->add_option("MACHINE", machine_id, "Machine id, e.g. weld-robot1")->required();
    c->add_option("--for", m_for, "How long: 90m, 6h, 2d (or --until)");
    c->add_option("--until", m_until, "Until then (same forms as --due)");
    c->add_option("--from", m_from, "From then (same forms as --due); default now");
    c->add_option("--reason", m_reason, "Why, e.g. servo fault");
  }
  auto* m_up = machine->add_subcommand("up", "The machine works again: its outages end now");
  m_up->add_option("MACHINE", machine_id, "Machine id")->required();
  std::string m_outage_id;
  auto* m_cancel = machine->add_subcommand(
      "cancel", "Cancel a planned outage (maintenance window) that has not begun");
  m_cancel->add_option("MACHINE", machine_id, "Machine id")->required();
  m_cancel->add_option("OUTAGE", m_outage_id, "Outage id, as `machine list` shows it")->required();
  auto* m_health = machine->add_subcommand(
      "health",
      "Report a health score 0..100; below the machine's health_threshold it opens a "
      "maintenance window");
  m_health->add_option("MACHINE", machine_id, "Machine id")->required();
  m_health->add_option("SCORE", m_score, "0..100")->required()->check(CLI::Range(0, 100));
  auto* m_list = machine->add_subcommand("list", "List machines, their outages and what they did");

  auto* contracts = app.add_subcommand("contracts", "List contracts, as buyer and as seller");
  std::string kpi_from, kpi_to, kpi_data_dir;
  auto* kpis = app.add_subcommand(
      "kpis",
      "Print the node's KPIs: on-time delivery, lead time, win rate, utilization, energy per unit");
  kpis->add_option("--from", kpi_from,
                   "Window start: YYYY-MM-DD[THH:MM[:SS]Z] (UTC), or relative to now: +N or -N "
                   "with w, d, h or m (write --from=-7d)");
  kpis->add_option("--to", kpi_to, "Window end (exclusive); same forms");
  kpis->add_option("--data-dir", kpi_data_dir,
                   "Compute them offline from this data directory instead of asking the node");
  auto* health = app.add_subcommand("health", "Check that the node answers");
  auto* metrics = app.add_subcommand("metrics", "Print the node's counters");

  auto* store_cmd = app.add_subcommand("store", "Offline tools for a node's data directory");
  store_cmd->require_subcommand(1);
  std::string data_dir, backup_dir;
  bool force = false;
  auto* inspect = store_cmd->add_subcommand("inspect", "Show tables with entry counts and sizes");
  inspect->add_option("--data-dir", data_dir, "The node's data directory")->required();
  auto* backup = store_cmd->add_subcommand(
      "backup", "Consistent compacted copy of the store; safe while the node runs");
  backup->add_option("--data-dir", data_dir, "The node's data directory")->required();
  backup->add_option("--to", backup_dir, "New or empty directory for the copy")->required();
  auto* restore = store_cmd->add_subcommand(
      "restore", "Replace a data directory's store with a backup; the node must be stopped");
  restore->add_option("--from", backup_dir, "Directory written by `store backup`")->required();
  restore->add_option("--data-dir", data_dir, "The node's data directory")->required();
  restore->add_flag("--force", force, "Overwrite an existing store in --data-dir");

  std::vector<std::string> verify_dirs;
  std::string verify_now;
  auto* verify = app.add_subcommand(
      "verify",
      "Check the invariants over the stores of stopped nodes: capacity, agreement of contracts, "
      "terminal orders, expired holds, leaked or missing bookings, corrupt records. Exit 0 clean, "
      "1 violations, 3 a store cannot be opened");
  verify->add_option("DATA_DIR", verify_dirs, "Data directories of the nodes to check together")
      ->required();
  verify->add_option("--now", verify_now,
                     "Reference time for hold deadlines: microseconds since the epoch or a time "
                     "as for --due; default now");

  auto* keys_cmd = app.add_subcommand("keys", "Create and show a node's CURVE keypair");
  keys_cmd->require_subcommand(1);
  std::string keys_dir, key_file;
  bool keys_force = false;
  auto* keys_generate = keys_cmd->add_subcommand(
      "generate",
      "Write a new keypair: DIR/node.key (secret, mode 0600) and DIR/node.pub; print the public "
      "key");
  keys_generate->add_option("--out", keys_dir, "Key directory, created with mode 0700 if missing")
      ->required();
  keys_generate->add_flag("--force", keys_force,
                          "Replace existing keys (partners then need the new node.pub)");
  auto* keys_show = keys_cmd->add_subcommand(
      "show", "Print the public key of a node.key (secret) or node.pub file");
  keys_show->add_option("--key", key_file, "node.key or node.pub")->required();

  sim_command_options sim_opts;
  std::string sim_seed;
  auto* sim_cmd = app.add_subcommand(
      "sim",
      "Simulate a supply network deterministically (same scenario and seed, same run): the "
      "production actors on a simulated clock and network with seeded faults, invariants "
      "checked throughout. Exit 0 every invariant held, 1 a violation (its seed is printed)");
  sim_cmd->add_option("SCENARIO", sim_opts.scenario, "Scenario file (examples/scenarios/)")
      ->required();
  auto* sim_seed_opt = sim_cmd->add_option("--seed", sim_seed, "Run one seed; default 1");
  sim_cmd->add_option("--seeds", sim_opts.seeds, "Sweep seeds A..B and list the failing ones")
      ->excludes(sim_seed_opt);
  sim_cmd->add_option("--jobs", sim_opts.jobs, "Sweep workers; default one per core");
  sim_cmd
      ->add_option("--threads", sim_opts.threads,
                   "One run: 2 applies the stores' writes and runs the mid-run checks on a "
                   "second thread (same results); "
                   "default 2 on a machine with two cores or more, else 1")
      ->check(CLI::Range(1, 2));
  sim_cmd->add_option("--report", sim_opts.report_dir,
                      "One run: write an HTML report (Gantt chart, order timelines, KPIs) to DIR");
  sim_cmd->add_option(
      "--work-dir", sim_opts.work_dir,
      "One run: keep the nodes' stores in DIR (for gearmesh verify / store inspect)");
  sim_cmd
      ->add_option("--check-every", sim_opts.check_every_s,
                   "Simulated seconds between mid-run invariant checks (the full check runs at "
                   "the end)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // Killed nodes log failed commits on purpose; the nodes' own logs are for debugging a seed.
  std::string sim_log_level = "critical";
  sim_cmd->add_option("--log-level", sim_log_level, "Log level of the simulated nodes")
      ->capture_default_str();

  auto* scenario_cmd = app.add_subcommand("scenario", "Make scenario files for `gearmesh sim`");
  scenario_cmd->require_subcommand(1);
  sim::generator_options gen;
  std::string gen_out;
  auto* generate = scenario_cmd->add_subcommand(
      "generate",
      "Write a generated supply network: buyers, competing factories and suppliers, demand, and "
      "a supplier disruption (the same options give the same file)");
  generate->add_option("--out", gen_out, "Scenario file to write; - for stdout")->required();
  generate->add_option("--seed", gen.seed, "Seed of the network's shape")->capture_default_str();
  generate->add_option("--buyers", gen.buyers)->capture_default_str();
  generate->add_option("--factories", gen.factories)->capture_default_str();
  generate->add_option("--suppliers", gen.suppliers)->capture_default_str();
  generate->add_option("--items", gen.items, "Factory-made item kinds")->capture_default_str();
  generate->add_option("--orders", gen.orders, "Orders in total")->capture_default_str();
  generate->add_option("--demand-hours", gen.demand_hours)->capture_default_str();
  generate->add_option("--max-hours", gen.max_hours)->capture_default_str();
  generate->add_option("--crashes-per-node-day", gen.crashes_per_node_day)->capture_default_str();
  generate->add_option("--loss", gen.loss)->capture_default_str();
  generate->add_option("--duplicate", gen.duplicate)->capture_default_str();
  bool no_disruption = false;
  generate->add_flag("--no-disruption", no_disruption, "No supplier disruption");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e, out, err);
    return rc == 0 ? exit_ok : exit_usage;
  }

  int rc = exit_ok;
  if (submit->parsed()) {
    std::int64_t now = now_us();
    json body = {{"item", item}, {"quantity", quantity}};
    auto due_us = parse_time(due, now);
    if (!due_us) return usage_error(err, "--due: " + due_us.error().message());
    body["due_us"] = *due_us;
    if (!earliest.empty()) {
      auto earliest_us = parse_time(earliest, now);
      if (!earliest_us) return usage_error(err, "--earliest: " + earliest_us.error().message());
      body["earliest_start_us"] = *earliest_us;
    }
    if (max_price_cents > 0) body["max_price_cents"] = max_price_cents;
    if (!attributes.empty()) {
      json attrs = json::object();
      for (const auto& a : attributes) {
        auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0) {
          return usage_error(err, "--attr: expected key=value, got \"" + a + "\"");
        }
        attrs[a.substr(0, eq)] = a.substr(eq + 1);
      }
      body["attributes"] = std::move(attrs);
    }
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    auto answer = request(node, "POST", "/v1/orders", text, err, rc);
    if (!answer) return rc;
    if (raw_json) {
      out << answer->dump(2) << '\n';
    } else {
      out << str(*answer, "order_id") << '\n';
    }
    return exit_ok;
  }

  if (event->parsed()) {
    const std::int64_t now = now_us();
    json body = {{"contract_id", event_contract}, {"kind", event_kind}};
    if (!event_at.empty()) {
      auto at = parse_time(event_at, now);
      if (!at) return usage_error(err, "--at: " + at.error().message());
      body["at_us"] = *at;
    }
    if (!event_expected.empty()) {
      auto due_us = parse_time(event_expected, now);
      if (!due_us) return usage_error(err, "--expected-due: " + due_us.error().message());
      body["expected_due_us"] = *due_us;
    }
    if (event_kind == "delayed" && event_expected.empty())
      return usage_error(err, "delayed: --expected-due is required");
    if (!event_reason.empty()) body["reason"] = event_reason;
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    auto answer = request(node, "POST", "/v1/events", text, err, rc);
    if (!answer) return rc;
    if (raw_json)
      out << answer->dump(2) << '\n';
    else
      out << str(*answer, "contract_id") << "  " << str(*answer, "kind") << "  #"
          << num(*answer, "sequence") << "  " << str(*answer, "state") << "  expected "
          << time_field(*answer, "expected_due_us") << '\n';
    return exit_ok;
  }

  if (cap_publish->parsed()) {
    const std::int64_t now = now_us();
    json body = {
        {"capability", capability}, {"units", cap_units}, {"unit_price_cents", unit_price_cents}};
    auto start_us = parse_time(cap_start, now);
    if (!start_us) return usage_error(err, "--start: " + start_us.error().message());
    auto end_us = parse_time(cap_end, now);
    if (!end_us) return usage_error(err, "--end: " + end_us.error().message());
    body["window_start_us"] = *start_us;
    body["window_end_us"] = *end_us;
    if (!cap_valid.empty()) {
      auto valid_us = parse_time(cap_valid, now);
      if (!valid_us) return usage_error(err, "--valid-until: " + valid_us.error().message());
      body["valid_until_us"] = *valid_us;
    }
    if (!cap_machine.empty()) body["machine"] = cap_machine;
    auto answer = request(node, "POST", "/v1/capacity/offers",
                          body.dump(-1, ' ', false, json::error_handler_t::replace), err, rc);
    if (!answer) return rc;
    if (raw_json)
      out << answer->dump(2) << '\n';
    else
      out << str(*answer, "offer_id") << '\n';
    return exit_ok;
  }
  if (cap_withdraw->parsed()) {
    auto answer =
        request(node, "DELETE", "/v1/capacity/offers/" + percent_encode(offer_id), {}, err, rc);
    if (!answer) return rc;
    if (raw_json)
      out << answer->dump(2) << '\n';
    else
      out << str(*answer, "offer_id") << " withdrawn; " << num(*answer, "booked_units")
          << " units stay booked\n";
    return exit_ok;
  }
  if (cap_book->parsed()) {
    json body = {{"offer_id", offer_id}, {"units", cap_units}};
    auto answer = request(node, "POST", "/v1/capacity/bookings",
                          body.dump(-1, ' ', false, json::error_handler_t::replace), err, rc);
    if (!answer) return rc;
    if (raw_json) {
      out << answer->dump(2) << '\n';
    } else {
      out << str(*answer, "booking_id") << ' ' << str(*answer, "state") << ": "
          << num(*answer, "units") << " units of " << str(*answer, "capability") << " for "
          << format_price(num(*answer, "price_cents"), str(*answer, "currency")) << ", "
          << num(*answer, "remaining") << " units left\n";
    }
    return exit_ok;
  }

  if (m_down->parsed() || m_maint->parsed() || m_up->parsed() || m_health->parsed() ||
      m_cancel->parsed()) {
    const std::int64_t now = now_us();
    json body = json::object();
    std::string action = m_up->parsed()       ? "up"
                         : m_health->parsed() ? "health"
                         : m_cancel->parsed() ? "cancel"
                                              : "";
    if (m_cancel->parsed()) body["outage_id"] = m_outage_id;
    if (m_down->parsed() || m_maint->parsed()) {
      action = m_down->parsed() ? "down" : "maintenance";
      std::int64_t from = now;
      if (!m_from.empty()) {
        auto t = parse_time(m_from, now);
        if (!t) return usage_error(err, "--from: " + t.error().message());
        from = *t;
        body["from_us"] = from;
      }
      if (m_for.empty() == m_until.empty())
        return usage_error(err, action + ": give --for or --until");
      if (!m_for.empty()) {
        auto t = parse_time("+" + m_for, from);
        if (!t) return usage_error(err, "--for: expected a duration like 90m, 6h or 2d");
        body["until_us"] = *t;
      } else {
        auto t = parse_time(m_until, now);
        if (!t) return usage_error(err, "--until: " + t.error().message());
        body["until_us"] = *t;
      }
      if (!m_reason.empty()) body["reason"] = m_reason;
    } else if (m_health->parsed()) {
      body["score"] = m_score;
    }
    auto answer = request(node, "POST", "/v1/machines/" + percent_encode(machine_id) + "/" + action,
                          body.dump(-1, ' ', false, json::error_handler_t::replace), err, rc);
    if (!answer) return rc;
    if (raw_json) {
      out << answer->dump(2) << '\n';
    } else if (action == "up") {
      const auto n = answer->value("ended", json::array()).size();
      out << machine_id << " is up; " << n << (n == 1 ? " outage" : " outages") << " ended\n";
    } else if (action == "cancel") {
      out << m_outage_id << " cancelled: " << machine_id
          << " stays in service then (work it moved stays where it went)\n";
    } else if (answer->contains("outage") && (*answer)["outage"].is_null()) {
      out << "no outage opened (score at or above the threshold, no threshold, or already "
             "down)\n";
    } else {
      print_outage(out, *answer);
    }
    return exit_ok;
  }

  if (kpis->parsed()) {
    const std::int64_t now = now_us();
    std::int64_t from_us = 0, to_us = 0;
    for (auto [text, what, value] :
         {std::tuple{&kpi_from, "--from", &from_us}, std::tuple{&kpi_to, "--to", &to_us}}) {
      if (text->empty()) continue;
      auto t = parse_kpi_time(*text, now);
      if (!t) return usage_error(err, std::string(what) + ": " + t.error().message());
      *value = *t;
    }
    if (from_us != 0 && to_us != 0 && from_us >= to_us)
      return usage_error(err, "--from must be before --to");
    std::optional<json> answer;
    if (!kpi_data_dir.empty()) {
      auto env = open_existing(kpi_data_dir);
      if (!env) return fail(err, env.error().message());
      actors::kpi_options opts;
      opts.now_us = now;
      opts.from_us = from_us;
      opts.to_us = to_us;
      auto k = actors::compute_kpis(**env, opts);
      if (!k) return fail(err, k.error().message());
      answer = json::parse(actors::kpis_to_json(*k));
    } else {
      std::string target = "/v1/kpis";
      char sep = '?';
      for (auto [name, value] : {std::pair{"from_us", from_us}, std::pair{"to_us", to_us}}) {
        if (value == 0) continue;
        target += sep + std::string(name) + "=" + std::to_string(value);
        sep = '&';
      }
      answer = request(node, "GET", target, {}, err, rc);
      if (!answer) return rc;
    }
    if (raw_json)
      out << answer->dump(2) << '\n';
    else
      print_kpis(out, *answer);
    return exit_ok;
  }

  if (inspect->parsed()) return store_inspect(data_dir, raw_json, out, err);
  if (backup->parsed()) return store_backup(data_dir, backup_dir, raw_json, out, err);
  if (restore->parsed()) return store_restore(backup_dir, data_dir, force, raw_json, out, err);
  if (verify->parsed()) return verify_command(verify_dirs, verify_now, raw_json, out, err);
  if (generate->parsed()) {
    gen.disruption = !no_disruption;
    if (gen.buyers == 0 || gen.factories + gen.suppliers == 0 || gen.orders == 0)
      return usage_error(err, "a network needs a buyer, a seller and an order");
    const std::string text = sim::generate_scenario(gen);
    if (gen_out == "-") {
      out << text;
      return exit_ok;
    }
    std::ofstream file(gen_out, std::ios::binary | std::ios::trunc);
    if (!(file << text) || !file.flush()) {
      err << "gearmesh scenario generate: cannot write " << gen_out << '\n';
      return exit_unreachable;
    }
    out << "wrote " << gen_out << ": " << gen.buyers + gen.factories + gen.suppliers << " nodes, "
        << gen.orders << " orders\n";
    return exit_ok;
  }
  if (sim_cmd->parsed()) {
    if (!sim_seed.empty()) sim_opts.seeds = sim_seed;
    sim_opts.json = raw_json;
    spdlog::set_level(spdlog::level::from_str(sim_log_level));
    return sim_command(sim_opts, out, err);
  }
  if (keys_generate->parsed()) {
    return keys_generate_command(keys_dir, keys_force, raw_json, out, err);
  }
  if (keys_show->parsed()) return keys_show_command(key_file, raw_json, out, err);

  std::string target;
  void (*print)(std::ostream&, const json&) = print_flat;
  if (order_status->parsed()) {
    target = "/v1/orders/" + percent_encode(order_id);
    print = print_order;
  } else if (order_list->parsed()) {
    target = "/v1/orders";
    print = print_order_list;
  } else if (resolve->parsed()) {
    if (resolve_id.empty() == capability.empty())
      return usage_error(err, "resolve: give an identifier or --capability NAME, not both");
    if (!resolve_id.empty()) {
      if (auto id = ident::parse(resolve_id); !id) return usage_error(err, id.error().message());
      target = "/v1/resolve/" + percent_encode(resolve_id);
    } else {
      target = "/v1/partners?capability=" + percent_encode(capability);
    }
    print = print_resolution;
  } else if (directory_cmd->parsed()) {
    target = "/v1/directory";
  } else if (contracts->parsed()) {
    target = "/v1/contracts";
    print = print_contracts;
  } else if (m_list->parsed()) {
    target = "/v1/machines";
    print = print_machines;
  } else if (cap_offers->parsed()) {
    target = "/v1/capacity/offers";
    print = print_capacity_offers;
  } else if (cap_bookings->parsed()) {
    target = "/v1/capacity/bookings";
    print = print_capacity_bookings;
  } else if (health->parsed()) {
    target = "/v1/health";
  } else if (metrics->parsed()) {
    target = "/v1/metrics";
  } else {
    return usage_error(err, "no command given");
  }
  auto answer = request(node, "GET", target, {}, err, rc);
  if (!answer) return rc;
  if (raw_json) {
    out << answer->dump(2) << '\n';
  } else {
    print(out, *answer);
  }
  return exit_ok;
}

}  // namespace

result<std::int64_t> parse_time(std::string_view text, std::int64_t now_us) {
  if (text.size() >= 3 && text.front() == '+') return parse_relative(text, now_us);

  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!read_digits(text, pos, 4, year) || pos >= text.size() || text[pos++] != '-' ||
      !read_digits(text, pos, 2, month) || pos >= text.size() || text[pos++] != '-' ||
      !read_digits(text, pos, 2, day)) {
    return bad_time(text);
  }
  std::int64_t fraction_us = 0;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    if (!read_digits(text, pos, 2, hour) || pos >= text.size() || text[pos++] != ':' ||
        !read_digits(text, pos, 2, minute)) {
      return bad_time(text);
    }
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!read_digits(text, pos, 2, second)) return bad_time(text);
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::int64_t scale = 100'000;
        std::size_t digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          fraction_us += (text[pos] - '0') * scale;
          scale /= 10;
          ++pos;
          ++digits;
        }
        if (digits == 0) return bad_time(text);
      }
    }
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) ++pos;
  }
  if (pos != text.size()) return bad_time(text);
  if (hour > 23 || minute > 59 || second > 59) return bad_time(text);
  std::chrono::year_month_day ymd{std::chrono::year(year),
                                  std::chrono::month(static_cast<unsigned>(month)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return bad_time(text);
  std::int64_t days_since_epoch = sys_days(ymd).time_since_epoch().count();
  return days_since_epoch * us_per_day + hour * us_per_hour + minute * us_per_minute +
         second * us_per_second + fraction_us;
}

std::string format_time(std::int64_t us) {
  std::chrono::sys_time<microseconds> t{microseconds(us)};
  auto day = floor<days>(t);
  std::chrono::year_month_day ymd{day};
  std::int64_t minutes = (us - day.time_since_epoch().count() * us_per_day) / us_per_minute;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     minutes / 60, minutes % 60);
}

std::string format_price(std::int64_t cents, std::string_view currency) {
  // Work on the magnitude as unsigned so INT64_MIN does not overflow.
  std::uint64_t magnitude =
      cents < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(cents) : std::uint64_t(cents);
  std::string s = fmt::format("{}{}.{:02}", cents < 0 ? "-" : "", magnitude / 100, magnitude % 100);
  if (!currency.empty()) {
    s += ' ';
    s += currency;
  }
  return s;
}

std::string percent_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  try {
    return run_parsed(argc, argv, out, err);
  } catch (const std::exception& e) {
    err << "gearmesh: unexpected error: " << e.what() << '\n';
    return exit_api_error;
  }
}

}  // namespace gearmesh::cli
