// `gearmesh sim SCENARIO [--seed N | --seeds A..B] [--jobs N] [--json]
//  [--report DIR] [--work-dir DIR] [--threads N]`: the deterministic simulator
// (sim/include/gearmesh/sim/simulator.hpp) as a command.
#pragma once

#include <iosfwd>
#include <string>

namespace gearmesh::cli {

struct sim_command_options {
  std::string scenario;
  /// "N" (one run, full report) or "A..B" (a sweep: one line per seed, the
  /// failing seeds listed at the end).
  std::string seeds = "1";
  unsigned jobs = 0;       // sweep workers; 0 = one per core
  std::string report_dir;  // one run: write the HTML report there
  std::string work_dir;    // one run: keep the nodes' stores there
  bool json = false;
  double check_every_s = 60;  // simulated seconds between mid-run invariant checks
  /// Threads of one run: 2 applies the stores' writes on a second thread
  /// (sim_options::write_behind); 0 = 2 if the machine has two cores or
  /// more. A sweep's runs have one thread each (--jobs runs several).
  unsigned threads = 0;
};

/// Runs the scenario. Returns exit_ok if every run kept every invariant,
/// exit_api_error if any run failed (its seed and report are printed),
/// exit_usage for a bad scenario or seed range.
int sim_command(const sim_command_options& o, std::ostream& out, std::ostream& err);

}  // namespace gearmesh::cli
