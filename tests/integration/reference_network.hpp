// Configs of the reference network of DESIGN.md (velo buyer, framecraft and
// alloyframe competing factories, cellpack supplier) on 127.0.0.1, for tests
// and benchmarks that start real gearmesh-node processes.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <fmt/format.h>

#include "gearmesh/keys/keys.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::testing {

/// The ports of one node.
struct node_ports {
  std::uint16_t zmq = 0;
  std::uint16_t admin = 0;
};

/// Deadlines and retry timings; short ones make a network quiesce quickly.
struct network_timing {
  int proposal_window_ms = 1500;
  int confirm_timeout_ms = 3000;
  int hold_ttl_ms = 10000;
  int retry_initial_ms = 100;
  int retry_max_ms = 1000;
};

/// A FRAME factory: saw, `welders` welding robots of `weld_capacity`
/// minutes per hour bucket (the bottleneck: 12 minutes per frame), paint.
struct factory_shape {
  int rate_cents_per_hour = 4000;
  int welders = 1;
  int weld_capacity = 60;
  int margin_pct = 15;
  int horizon_days = 0;  // 0 = the default
};

/// Writes a CURVE keypair for every node of `ports` to `keys_dir`/<id>/
/// (gearmesh keys generate does the same). Errors: see keys::write_keypair.
inline status write_network_keys(const std::string& keys_dir,
                                 const std::map<std::string, node_ports>& ports) {
  for (const auto& [id, p] : ports) {
    if (auto key = keys::write_keypair(keys_dir + "/" + id, true); !key) return key.error();
  }
  return status::ok();
}

/// [node], [admin], [store], [transport], [security] and a [[peers]] entry
/// for every other node in `ports`. With `keys_dir` (see write_network_keys)
/// every link is CurveZMQ and each peer's public key is its node.pub there;
/// an empty `keys_dir` gives plain TCP (insecure = true).
inline std::string node_sections(const std::string& id,
                                 const std::map<std::string, node_ports>& ports,
                                 const network_timing& t, const std::string& keys_dir) {
  const auto& own = ports.at(id);
  std::string out = fmt::format(
      "[node]\nid = \"{}\"\nlisten = \"tcp://127.0.0.1:{}\"\ndata_dir = \"data\"\n"
      "log_level = \"info\"\n\n[admin]\nport = {}\n\n[store]\nsync = true\n\n"
      "[transport]\nretry_initial_ms = {}\nretry_max_ms = {}\n\n",
      id, own.zmq, own.admin, t.retry_initial_ms, t.retry_max_ms);
  if (keys_dir.empty())
    out += "[security]\ninsecure = true\n\n";
  else
    out += fmt::format("[security]\nsecret_key_file = \"{}/{}/node.key\"\n\n", keys_dir, id);
  for (const auto& [peer, p] : ports) {
    if (peer == id) continue;
    out += fmt::format("[[peers]]\nid = \"{}\"\nendpoint = \"tcp://127.0.0.1:{}\"\n", peer, p.zmq);
    if (!keys_dir.empty())
      out += fmt::format("public_key_file = \"{}/{}/node.pub\"\n", keys_dir, peer);
    out += "\n";
  }
  return out;
}

/// Velo's [buyer] section: FRAME from both factories, BATTERY from cellpack.
inline std::string buyer_section(const network_timing& t) {
  return fmt::format(R"(
[buyer]
currency = "EUR"
proposal_window_ms = {}
confirm_timeout_ms = {}

[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft", "alloyframe"]

[[buyer.sources]]
item = "BATTERY"
sellers = ["cellpack"]
)",
                     t.proposal_window_ms, t.confirm_timeout_ms);
}

inline std::string factory_section(const factory_shape& f, const network_timing& t) {
  std::string out =
      fmt::format("\n[factory]\nhold_ttl_ms = {}\nbucket_minutes = 60\nmargin_pct = {}\n",
                  t.hold_ttl_ms, f.margin_pct);
  if (f.horizon_days > 0) out += fmt::format("horizon_days = {}\n", f.horizon_days);
  auto machine = [&](const std::string& id, const char* capability, int capacity) {
    out += fmt::format(
        "\n[[factory.machines]]\nid = \"{}\"\ncapabilities = [\"{}\"]\n"
        "rate_cents_per_hour = {}\ncapacity_per_bucket = {}\n",
        id, capability, f.rate_cents_per_hour, capacity);
  };
  machine("saw1", "sawing", 60);
  for (int w = 1; w <= f.welders; ++w)
    machine("weld" + std::to_string(w), "welding", f.weld_capacity);
  machine("paint1", "coating", 60);
  out += R"(
[[factory.items]]
id = "FRAME"

[[factory.items.operations]]
capability = "sawing"
minutes_per_unit = 6

[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 12

[[factory.items.operations]]
capability = "coating"
minutes_per_unit = 8
)";
  return out;
}

/// Cellpack's [supplier] section: BATTERY from stock.
inline std::string supplier_section(const network_timing& t, int lead_time_days = 3,
                                    int horizon_days = 0) {
  std::string out = fmt::format("\n[supplier]\nhold_ttl_ms = {}\n", t.hold_ttl_ms);
  if (horizon_days > 0) out += fmt::format("horizon_days = {}\n", horizon_days);
  out += fmt::format(R"(
[[supplier.items]]
id = "BATTERY"
unit_price_cents = 18000
lead_time_days = {}
daily_capacity = 40
)",
                     lead_time_days);
  return out;
}

}  // namespace gearmesh::testing
