// The HTML report of a simulation run (`gearmesh sim ... --report DIR`).
//
// write_report writes DIR/index.html: one self-contained file (inline CSS
// and SVG, no scripts from the network), viewable offline in any browser,
// with the run's header (scenario, seed, hashes, simulated span, wall time),
// the KPIs, a Gantt chart of every machine's bookings over simulated time,
// the order timelines (placed -> contracted -> promised due, against the
// due date), and KPI charts (utilization per machine, order outcomes).
#pragma once

#include <string>

#include "gearmesh/sim/simulator.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::sim {

/// Writes DIR/index.html for `r` (DIR is created if missing). Errors:
/// errc::storage naming the path.
status write_report(const sim_result& r, const std::string& dir);

}  // namespace gearmesh::sim
