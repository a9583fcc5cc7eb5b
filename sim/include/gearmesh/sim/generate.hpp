// Generated supply networks for the simulator (`gearmesh scenario generate`).
//
// A two-tier market of the roles the actors implement today: buyers (OEMs)
// place orders for items; each item is made by several competing factories
// (saw -> weld -> paint routings on machines with calendars) or sold from
// stock by suppliers; every buyer sources each item it needs from 2..4 of
// the sellers of that item. Optionally one supplier is disrupted (down for a
// while mid-run). The same options and seed give the same file.
#pragma once

#include <cstdint>
#include <string>

namespace gearmesh::sim {

struct generator_options {
  std::uint64_t seed = 1;
  std::size_t buyers = 4;
  std::size_t factories = 8;
  std::size_t suppliers = 4;
  std::size_t items = 4;        // factory-made item kinds (stock items: one per supplier group)
  std::uint64_t orders = 1000;  // in total, spread over the buyers
  double demand_hours = 24;
  double max_hours = 96;
  bool disruption = true;           // take the busiest supplier down for a while
  double crashes_per_node_day = 0;  // background crashes
  double loss = 0.01;
  double duplicate = 0.005;
};

/// The scenario file text.
std::string generate_scenario(const generator_options& o);

}  // namespace gearmesh::sim
