// A supply network to simulate, read from a scenario file (TOML).
//
//   [sim]
//   name = "two-tier demo"
//   start = 2026-01-05T06:00:00Z   # simulated time at the start (default: this instant)
//   demand_hours = 8               # orders are placed during this long
//   max_hours = 48                 # the run stops here even if work is left
//
//   [network]                      # every frame, seeded per run
//   latency_ms = [2, 40]           # uniform; different latencies reorder frames
//   loss = 0.01                    # probability a frame is lost
//   duplicate = 0.01               # probability a frame arrives twice
//
//   [faults]
//   crashes_per_node_day = 2.0     # node crashes (Poisson); the node restarts from its store
//   restart_after_s = [5, 120]
//   partitions_per_day = 1.0       # a link between two peers cut both ways for a while
//   partition_s = [10, 300]
//   buggify = true                 # arm a seeded quarter of the runtime's fault points
//
//   [[nodes]]                      # one gearmesh node each, with the role
//   id = "velo"                    # sections of a node config under it
//   [nodes.buyer]                  # ([buyer], [factory], [supplier]; see
//   ...                            # actors/include/gearmesh/actors/roles_config.hpp)
//
//   [[disruptions]]                # a node down for a while (a supplier's
//   node = "cellpack"              # plant fire, a strike), then back from
//   at_hours = 2                   # its store
//   for_hours = 4
//
//   [[breakdowns]]                 # a machine of a factory down for a while
//   node = "framecraft"            # (actors/include/gearmesh/actors/outage.hpp):
//   machine = "weld1"              # its booked work moves to another machine,
//   at_hours = 3                   # is delayed, or is cancelled and re-sourced
//   for_hours = 6
//   kind = "breakdown"             # or "maintenance"             (default "breakdown")
//   reason = "servo fault"         #                                (optional)
//
//   [faults]                       # and seeded ones, during the demand window:
//   breakdowns_per_day = 2         # a random machine of a random factory (Poisson)
//   breakdown_hours = [1, 12]      # down this long, uniform       (default [1, 12])
//
//   [[capacity]]                   # spare capacity a factory publishes
//   publisher = "framecraft"       # (docs/protocol.md 6.5); its bookers
//   capability = "coating"         # become its peers
//   units = 240                    # machine-minutes
//   unit_price_cents = 150
//   at_hours = 1                   # published then
//   window_hours = [20, 28]        # the window, in hours after the start
//   valid_hours = 12               # bookable this long (default: until the window)
//   [[capacity.bookings]]
//   booker = "velo"
//   at_hours = 2
//   units = 60
//
//   [[demand]]                     # orders placed at a buyer node
//   buyer = "velo"
//   item = "FRAME"
//   orders = 40
//   every_min = [5, 30]            # gap between orders, uniform
//   quantity = [2, 20]
//   due_days = [1, 10]             # due date after the order is placed
//
// Peers are derived: a buyer and every seller its sources name talk to each
// other; `peers = ["..."]` in a node adds more. Errors name the file, line
// and field, like node configs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::sim {

/// A closed interval [lo, hi] drawn from uniformly.
struct range {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
};

struct network_profile {
  range latency_us{2 * us_per_ms, 40 * us_per_ms};
  double loss = 0;
  double duplicate = 0;
};

struct fault_profile {
  double crashes_per_node_day = 0;
  range restart_after_us{5 * us_per_s, 120 * us_per_s};
  double partitions_per_day = 0;
  range partition_us{10 * us_per_s, 300 * us_per_s};
  /// BUGGIFY: each run arms a seeded quarter of the runtime's fault points
  /// (gearmesh/fault.hpp) with small probabilities. A crash point kills the
  /// node at that exact place in its step; network points drop or
  /// duplicate what the node sends.
  bool buggify = false;
  /// Machine breakdowns a day in the whole network (Poisson), each on a
  /// seeded machine of a seeded factory, for breakdown_us.
  double breakdowns_per_day = 0;
  range breakdown_us{us_per_hour, 12 * us_per_hour};
  /// Clock skew: each node's clock is off the simulated time by its own
  /// seeded offset in [-clock_skew_us, +clock_skew_us] (kept across restarts,
  /// like a host's clock). 0: every node shows the simulated time.
  timestamp_us clock_skew_us = 0;
};

struct node_spec {
  std::string id;
  /// The node's role sections as TOML text ("[buyer] ..."), parsed by the
  /// actors library exactly as in a node config.
  std::string roles_toml;
  std::vector<std::string> peers;     // derived and explicit, sorted, unique
  std::vector<std::string> machines;  // its factory's machines, in config order
};

struct demand_spec {
  std::string buyer;
  std::string item;
  std::uint64_t orders = 0;
  range gap_us{5 * us_per_min, 30 * us_per_min};
  range quantity{1, 10};
  range due_after_us{us_per_day, 10 * us_per_day};
};

struct disruption_spec {
  std::string node;
  timestamp_us at_us = 0;  // after the start
  timestamp_us for_us = 0;
};

struct breakdown_spec {
  std::string node;
  std::string machine;
  timestamp_us at_us = 0;  // after the start
  timestamp_us for_us = 0;
  bool maintenance = false;  // kind = "maintenance"
  std::string reason;
};

struct capacity_booking_spec {
  std::string booker;
  timestamp_us at_us = 0;  // after the start
  std::uint32_t units = 0;
};

/// A capacity offer a factory publishes, and the bookings partners ask for.
struct capacity_spec {
  std::string publisher;
  std::string capability;
  std::uint32_t units = 0;
  std::int64_t unit_price_cents = 0;
  timestamp_us at_us = 0;     // published, after the start
  range window_us;            // after the start
  timestamp_us valid_us = 0;  // bookable this long after publishing; 0 = until the window
  std::vector<capacity_booking_spec> bookings;
};

struct scenario {
  std::string name;
  std::string path;  // for messages
  timestamp_us start_us = 0;
  timestamp_us demand_us = 8 * us_per_hour;
  timestamp_us max_us = 48 * us_per_hour;
  network_profile network;
  fault_profile faults;
  std::vector<node_spec> nodes;
  std::vector<demand_spec> demand;
  std::vector<disruption_spec> disruptions;
  std::vector<breakdown_spec> breakdowns;
  std::vector<capacity_spec> capacity;
};

/// Parses scenario TOML; `name` appears in errors ("<name>:<line>: <field>: ...").
result<scenario> parse_scenario(std::string_view text, const std::string& name);

/// Reads and parses a scenario file.
result<scenario> load_scenario(const std::string& path);

}  // namespace gearmesh::sim
