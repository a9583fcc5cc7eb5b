// Scenario files (see scenario.hpp).
#include "gearmesh/sim/scenario.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "gearmesh/node/config.hpp"

namespace gearmesh::sim {
namespace {

constexpr std::size_t nodes_max = 100'000;

/// Reads fields of one table; the first error sticks.
class reader {
 public:
  reader(const config_file& file, const toml::table& t, std::string prefix)
      : file_(file), t_(t), prefix_(std::move(prefix)) {}

  const toml::node* get(std::string_view key) const { return t_.get(key); }

  void fail(const toml::node* where, std::string_view key, std::string_view what) {
    if (st_.is_ok()) st_ = file_.error(where ? where : &t_, prefix_ + std::string(key), what);
  }

  void string(std::string_view key, bool required, std::string& out) {
    const toml::node* n = get(key);
    if (!n) {
      if (required) fail(nullptr, key, "missing required field");
      return;
    }
    if (const auto* v = n->as_string())
      out = v->get();
    else
      fail(n, key, std::string("expected a string, got ") + toml_type_name(*n));
  }

  /// A number (integer or float) >= 0, times `scale`.
  void number(std::string_view key, double scale, double& out) {
    const toml::node* n = get(key);
    if (!n) return;
    std::optional<double> v = n->value<double>();
    if (!v || *v < 0) {
      fail(n, key, std::string("expected a number >= 0, got ") + toml_type_name(*n));
      return;
    }
    out = *v * scale;
  }

  void probability(std::string_view key, double& out) {
    number(key, 1, out);
    if (out > 1) fail(get(key), key, "expected a probability in 0..1");
  }

  void integer(std::string_view key, std::int64_t min, std::int64_t scale, std::int64_t& out) {
    const toml::node* n = get(key);
    if (!n) return;
    if (!n->is_integer() || n->as_integer()->get() < min) {
      fail(n, key, "expected an integer >= " + std::to_string(min));
      return;
    }
    out = n->as_integer()->get() * scale;
  }

  /// [lo, hi] with 0 <= lo <= hi, times `scale`; a single number means [x, x].
  void interval(std::string_view key, std::int64_t scale, range& out) {
    const toml::node* n = get(key);
    if (!n) return;
    auto as_int = [&](const toml::node& e) -> std::optional<std::int64_t> {
      if (auto d = e.value<double>(); d && *d >= 0)
        return static_cast<std::int64_t>(*d * static_cast<double>(scale));
      return std::nullopt;
    };
    std::optional<std::int64_t> lo, hi;
    if (const auto* a = n->as_array(); a && a->size() == 2) {
      lo = as_int((*a)[0]);
      hi = as_int((*a)[1]);
    } else if (!n->is_array()) {
      lo = hi = as_int(*n);
    }
    if (!lo || !hi || *lo > *hi) {
      fail(n, key, "expected [low, high] with 0 <= low <= high, or one number >= 0");
      return;
    }
    out = {*lo, *hi};
  }

  void strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* a = n->as_array();
    bool ok = a != nullptr;
    for (std::size_t i = 0; ok && i < a->size(); ++i) {
      const auto* s = (*a)[i].as_string();
      ok = s != nullptr;
      if (ok) out.push_back(s->get());
    }
    if (!ok) fail(n, key, "expected an array of strings");
  }

  /// Reports keys not in `known`.
  void only(std::initializer_list<std::string_view> known) {
    for (const auto& [k, v] : t_) {
      if (std::find(known.begin(), known.end(), k.str()) == known.end()) {
        fail(&v, k.str(), "unknown key");
        return;
      }
    }
  }

  const status& state() const { return st_; }

 private:
  const config_file& file_;
  const toml::table& t_;
  std::string prefix_;
  status st_;
};

constexpr std::string_view role_sections[] = {"buyer", "factory", "supplier"};

status read_node(const config_file& file, const toml::table& t, std::size_t i, node_spec& out) {
  reader r(file, t, "nodes[" + std::to_string(i) + "].");
  r.string("id", true, out.id);
  r.strings("peers", out.peers);
  r.only({"id", "peers", "buyer", "factory", "supplier"});
  if (!r.state()) return r.state();
  toml::table roles;
  for (auto section : role_sections)
    if (const toml::node* n = t.get(section)) roles.insert(section, *n);
  if (roles.empty()) r.fail(nullptr, "id", "node '" + out.id + "' has no role section");
  if (const auto* machines = t["factory"]["machines"].as_array())
    for (const auto& m : *machines)
      if (const auto* mt = m.as_table())
        if (auto id = (*mt)["id"].value<std::string>()) out.machines.push_back(*id);
  std::ostringstream text;
  text << toml::toml_formatter{roles};
  out.roles_toml = text.str();
  return r.state();
}

status read_demand(const config_file& file, const toml::table& t, std::size_t i, demand_spec& out) {
  reader r(file, t, "demand[" + std::to_string(i) + "].");
  r.string("buyer", true, out.buyer);
  r.string("item", true, out.item);
  std::int64_t orders = 0;
  r.integer("orders", 1, 1, orders);
  if (!t.get("orders")) r.fail(nullptr, "orders", "missing required field");
  out.orders = static_cast<std::uint64_t>(orders);
  r.interval("every_min", us_per_min, out.gap_us);
  r.interval("quantity", 1, out.quantity);
  if (out.quantity.lo < 1) r.fail(t.get("quantity"), "quantity", "quantities start at 1");
  r.interval("due_days", us_per_day, out.due_after_us);
  r.only({"buyer", "item", "orders", "every_min", "quantity", "due_days"});
  return r.state();
}

/// One [[capacity]] entry and its bookings; the nodes are checked by the caller.
status read_capacity(const config_file& file, const toml::table& t, const std::string& field,
                     capacity_spec& out) {
  reader r(file, t, field + ".");
  r.string("publisher", true, out.publisher);
  r.string("capability", true, out.capability);
  std::int64_t units = 0;
  r.integer("units", 1, 1, units);
  if (!t.get("units")) r.fail(nullptr, "units", "missing required field");
  out.units = static_cast<std::uint32_t>(std::min<std::int64_t>(units, 1'000'000));
  r.integer("unit_price_cents", 0, 1, out.unit_price_cents);
  double at_h = 0, valid_h = 0;
  r.number("at_hours", 1, at_h);
  r.number("valid_hours", 1, valid_h);
  r.interval("window_hours", us_per_hour, out.window_us);
  if (!t.get("window_hours")) r.fail(nullptr, "window_hours", "missing required field");
  out.at_us = static_cast<timestamp_us>(at_h * us_per_hour);
  out.valid_us = static_cast<timestamp_us>(valid_h * us_per_hour);
  if (r.state() && out.window_us.hi <= out.window_us.lo)
    r.fail(t.get("window_hours"), "window_hours", "the window must end after it starts");
  if (r.state() && out.window_us.lo <= out.at_us)
    r.fail(t.get("window_hours"), "window_hours", "the window must start after at_hours");
  if (const toml::node* n = t.get("bookings"); n && r.state()) {
    const auto* list = n->as_array();
    if (!list) r.fail(n, "bookings", "expected [[capacity.bookings]] tables");
    for (std::size_t i = 0; list && r.state() && i < list->size(); ++i) {
      const auto* bt = (*list)[i].as_table();
      const std::string bf = field + ".bookings[" + std::to_string(i) + "]";
      if (!bt) return file.error(&(*list)[i], bf, "expected a table");
      reader br(file, *bt, bf + ".");
      capacity_booking_spec b;
      double b_at = 0;
      std::int64_t b_units = 0;
      br.string("booker", true, b.booker);
      br.number("at_hours", 1, b_at);
      br.integer("units", 1, 1, b_units);
      if (!bt->get("units")) br.fail(nullptr, "units", "missing required field");
      br.only({"booker", "at_hours", "units"});
      if (!br.state()) return br.state();
      b.at_us = static_cast<timestamp_us>(b_at * us_per_hour);
      b.units = static_cast<std::uint32_t>(std::min<std::int64_t>(b_units, 1'000'000));
      out.bookings.push_back(std::move(b));
    }
  }
  r.only({"publisher", "capability", "units", "unit_price_cents", "at_hours", "window_hours",
          "valid_hours", "bookings"});
  return r.state();
}

/// Buyers and the sellers their sources name talk to each other, and so do
/// capacity publishers and their bookers.
void derive_peers(scenario& s) {
  std::map<std::string, std::set<std::string>> peers;
  for (auto& n : s.nodes) peers[n.id].insert(n.peers.begin(), n.peers.end());
  for (const auto& c : s.capacity)
    for (const auto& b : c.bookings) {
      peers[c.publisher].insert(b.booker);
      peers[b.booker].insert(c.publisher);
    }
  for (auto& n : s.nodes) {
    auto roles = toml::parse(n.roles_toml);
    if (const auto* sources = roles["buyer"]["sources"].as_array()) {
      for (const auto& src : *sources) {
        if (const auto* sellers =
                src.as_table() ? (*src.as_table())["sellers"].as_array() : nullptr)
          for (const auto& seller : *sellers)
            if (auto id = seller.value<std::string>()) {
              peers[n.id].insert(*id);
              peers[*id].insert(n.id);
            }
      }
    }
  }
  for (auto& n : s.nodes) {
    n.peers.assign(peers[n.id].begin(), peers[n.id].end());
    n.peers.erase(std::remove(n.peers.begin(), n.peers.end(), n.id), n.peers.end());
  }
}

}  // namespace

result<scenario> parse_scenario(std::string_view text, const std::string& name) {
  auto file = config_file::parse(text, name);
  if (!file) return file.error();
  const toml::table& root = file->root();
  scenario s;
  s.path = name;
  s.start_us = std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::sys_days(std::chrono::year(2026) / 1 / 5).time_since_epoch())
                   .count() +
               6 * us_per_hour;
  {
    static const toml::table empty;
    const toml::table* t = root["sim"].as_table();
    reader r(*file, t ? *t : empty, "sim.");
    r.string("name", false, s.name);
    if (const toml::node* start = t ? t->get("start") : nullptr) {
      const auto* dt = start->as_date_time();
      if (!dt || !dt->get().offset) {
        r.fail(start, "start", "expected a date-time with an offset, like 2026-01-05T06:00:00Z");
      } else {
        const auto& v = dt->get();
        auto days = std::chrono::sys_days(std::chrono::year(v.date.year) /
                                          static_cast<int>(v.date.month) / v.date.day);
        s.start_us =
            std::chrono::duration_cast<std::chrono::microseconds>(days.time_since_epoch()).count() +
            (v.time.hour * 3600LL + v.time.minute * 60LL + v.time.second -
             v.offset->minutes * 60LL) *
                us_per_s;
      }
    }
    double demand_h = static_cast<double>(s.demand_us) / us_per_hour;
    double max_h = static_cast<double>(s.max_us) / us_per_hour;
    r.number("demand_hours", 1, demand_h);
    r.number("max_hours", 1, max_h);
    s.demand_us = static_cast<timestamp_us>(demand_h * us_per_hour);
    s.max_us = static_cast<timestamp_us>(max_h * us_per_hour);
    if (s.max_us < s.demand_us)
      r.fail(t ? t->get("max_hours") : nullptr, "max_hours", "must be at least demand_hours");
    r.only({"name", "start", "demand_hours", "max_hours"});
    if (!r.state()) return r.state();
  }
  if (const toml::table* t = root["network"].as_table()) {
    reader r(*file, *t, "network.");
    r.interval("latency_ms", us_per_ms, s.network.latency_us);
    r.probability("loss", s.network.loss);
    r.probability("duplicate", s.network.duplicate);
    r.only({"latency_ms", "loss", "duplicate"});
    if (!r.state()) return r.state();
  }
  if (const toml::table* t = root["faults"].as_table()) {
    reader r(*file, *t, "faults.");
    r.number("crashes_per_node_day", 1, s.faults.crashes_per_node_day);
    r.interval("restart_after_s", us_per_s, s.faults.restart_after_us);
    r.number("partitions_per_day", 1, s.faults.partitions_per_day);
    r.interval("partition_s", us_per_s, s.faults.partition_us);
    if (const toml::node* b = t->get("buggify")) {
      if (b->is_boolean())
        s.faults.buggify = b->as_boolean()->get();
      else
        r.fail(b, "buggify", std::string("expected a boolean, got ") + toml_type_name(*b));
    }
    double skew_ms = 0;
    r.number("clock_skew_ms", 1, skew_ms);
    s.faults.clock_skew_us = static_cast<timestamp_us>(skew_ms * us_per_ms);
    r.number("breakdowns_per_day", 1, s.faults.breakdowns_per_day);
    r.interval("breakdown_hours", us_per_hour, s.faults.breakdown_us);
    if (r.state() && s.faults.breakdown_us.hi == 0 && t->get("breakdown_hours"))
      r.fail(t->get("breakdown_hours"), "breakdown_hours", "a breakdown lasts more than 0 hours");
    r.only({"crashes_per_node_day", "restart_after_s", "partitions_per_day", "partition_s",
            "buggify", "clock_skew_ms", "breakdowns_per_day", "breakdown_hours"});
    if (!r.state()) return r.state();
  }
  const auto* nodes = root["nodes"].as_array();
  if (!nodes || nodes->empty())
    return file->error(root.get("nodes"), "nodes", "expected one or more [[nodes]]");
  if (nodes->size() > nodes_max)
    return file->error(root.get("nodes"), "nodes", "more than " + std::to_string(nodes_max));
  std::set<std::string> ids;
  for (std::size_t i = 0; i < nodes->size(); ++i) {
    const auto* t = (*nodes)[i].as_table();
    if (!t)
      return file->error(&(*nodes)[i], "nodes[" + std::to_string(i) + "]", "expected a table");
    node_spec n;
    if (auto st = read_node(*file, *t, i, n); !st) return st;
    if (!ids.insert(n.id).second)
      return file->error(t->get("id"), "nodes[" + std::to_string(i) + "].id",
                         "duplicate node id \"" + n.id + "\"");
    s.nodes.push_back(std::move(n));
  }
  if (const auto* demand = root["demand"].as_array()) {
    for (std::size_t i = 0; i < demand->size(); ++i) {
      const auto* t = (*demand)[i].as_table();
      if (!t)
        return file->error(&(*demand)[i], "demand[" + std::to_string(i) + "]", "expected a table");
      demand_spec d;
      if (auto st = read_demand(*file, *t, i, d); !st) return st;
      if (!ids.contains(d.buyer))
        return file->error(t->get("buyer"), "demand[" + std::to_string(i) + "].buyer",
                           "no node \"" + d.buyer + "\"");
      s.demand.push_back(std::move(d));
    }
  }
  if (const auto* list = root["disruptions"].as_array()) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto* t = (*list)[i].as_table();
      const std::string field = "disruptions[" + std::to_string(i) + "]";
      if (!t) return file->error(&(*list)[i], field, "expected a table");
      reader r(*file, *t, field + ".");
      disruption_spec d;
      double at_h = -1, for_h = -1;
      r.string("node", true, d.node);
      r.number("at_hours", 1, at_h);
      r.number("for_hours", 1, for_h);
      r.only({"node", "at_hours", "for_hours"});
      if (r.state() && (at_h < 0 || for_h < 0))
        r.fail(nullptr, at_h < 0 ? "at_hours" : "for_hours", "missing required field");
      if (r.state() && !ids.contains(d.node))
        r.fail(t->get("node"), "node", "no node \"" + d.node + "\"");
      if (!r.state()) return r.state();
      d.at_us = static_cast<timestamp_us>(at_h * us_per_hour);
      d.for_us = static_cast<timestamp_us>(for_h * us_per_hour);
      s.disruptions.push_back(std::move(d));
    }
  }
  if (const auto* list = root["breakdowns"].as_array()) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto* t = (*list)[i].as_table();
      const std::string field = "breakdowns[" + std::to_string(i) + "]";
      if (!t) return file->error(&(*list)[i], field, "expected a table");
      reader r(*file, *t, field + ".");
      breakdown_spec b;
      double at_h = -1, for_h = -1;
      std::string kind = "breakdown";
      r.string("node", true, b.node);
      r.string("machine", true, b.machine);
      r.number("at_hours", 1, at_h);
      r.number("for_hours", 1, for_h);
      r.string("kind", false, kind);
      r.string("reason", false, b.reason);
      r.only({"node", "machine", "at_hours", "for_hours", "kind", "reason"});
      if (r.state() && (at_h < 0 || for_h < 0))
        r.fail(nullptr, at_h < 0 ? "at_hours" : "for_hours", "missing required field");
      if (r.state() && for_h <= 0)
        r.fail(t->get("for_hours"), "for_hours", "a breakdown lasts more than 0 hours");
      if (r.state() && kind != "breakdown" && kind != "maintenance")
        r.fail(t->get("kind"), "kind", "expected \"breakdown\" or \"maintenance\"");
      if (r.state() && !ids.contains(b.node))
        r.fail(t->get("node"), "node", "no node \"" + b.node + "\"");
      if (r.state()) {
        const auto& n = *std::find_if(s.nodes.begin(), s.nodes.end(),
                                      [&](const node_spec& x) { return x.id == b.node; });
        if (std::find(n.machines.begin(), n.machines.end(), b.machine) == n.machines.end())
          r.fail(t->get("machine"), "machine",
                 "node \"" + b.node + "\" has no machine \"" + b.machine + "\"");
      }
      if (!r.state()) return r.state();
      b.at_us = static_cast<timestamp_us>(at_h * us_per_hour);
      b.for_us = static_cast<timestamp_us>(for_h * us_per_hour);
      b.maintenance = kind == "maintenance";
      s.breakdowns.push_back(std::move(b));
    }
  }
  if (const auto* list = root["capacity"].as_array()) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto* t = (*list)[i].as_table();
      const std::string field = "capacity[" + std::to_string(i) + "]";
      if (!t) return file->error(&(*list)[i], field, "expected a table");
      capacity_spec c;
      if (auto st = read_capacity(*file, *t, field, c); !st) return st;
      const auto publisher = std::find_if(s.nodes.begin(), s.nodes.end(),
                                          [&](const node_spec& n) { return n.id == c.publisher; });
      if (publisher == s.nodes.end() || publisher->machines.empty())
        return file->error(t->get("publisher"), field + ".publisher",
                           "no factory node \"" + c.publisher + "\" (capacity is a machine's)");
      for (std::size_t j = 0; j < c.bookings.size(); ++j)
        if (!ids.contains(c.bookings[j].booker) || c.bookings[j].booker == c.publisher)
          return file->error(t->get("bookings"),
                             field + ".bookings[" + std::to_string(j) + "].booker",
                             "no other node \"" + c.bookings[j].booker + "\"");
      s.capacity.push_back(std::move(c));
    }
  }
  for (const auto& n : s.nodes)
    for (const auto& p : n.peers)
      if (!ids.contains(p))
        return status(errc::bad_config, name + ": node '" + n.id + "' names peer '" + p +
                                            "', which is not a node of the scenario");
  derive_peers(s);
  for (const auto& n : s.nodes)
    for (const auto& p : n.peers)
      if (!ids.contains(p))
        return status(errc::bad_config, name + ": node '" + n.id + "' buys from '" + p +
                                            "', which is not a node of the scenario");
  return s;
}

result<scenario> load_scenario(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return status(errc::bad_config, path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path);
}

}  // namespace gearmesh::sim
