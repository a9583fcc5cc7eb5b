// Deterministic simulation of a supply network (`gearmesh sim`).
//
// Every node of a scenario is a real Gearmesh node -- the same role actors,
// node host, codec and LMDB store as gearmesh-node -- opened with
// execution::deterministic in this process. The simulator owns the clock and
// the network: frames are the real encoded bytes, delivered after a seeded
// latency, lost, duplicated or cut by partitions; nodes crash (their actors
// stop between two steps) and restart from their own store. Everything runs
// on one thread in an order that depends only on the scenario and the seed,
// so a run replays exactly: the trace hash (every delivery, crash and
// restart with its time and bytes) and the state hash (every store's
// content at the end) are the same for the same scenario and seed.
//
// Invariants (DESIGN.md, checked by actors::verify_stores on the live
// stores): no over-commitment and no corrupt record after every simulated
// minute; at the end, once the network has quiesced (every order terminal,
// every outbox empty, nothing in flight), all of them -- contract agreement,
// no expired hold, no orphan or missing booking, every order terminal. A
// violation stops the run with the seed, the simulated time, the invariant
// and the last events of the nodes involved.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh {
class node;
}

namespace gearmesh::sim {

struct sim_options {
  std::uint64_t seed = 1;
  /// Where the nodes' stores go; empty = a fresh temporary directory that
  /// is removed afterwards.
  std::string work_dir;
  /// Simulated time between two mid-run invariant checks.
  timestamp_us check_every_us = us_per_min;
  /// Events of each node kept for a violation report.
  std::size_t trace_tail = 12;
  /// Set (by a signal handler, say) to stop the run at its next step: it
  /// then fails with errc::shutting_down and its temporary stores are
  /// removed. Null: runs to the end.
  const std::atomic<bool>* interrupted = nullptr;
  /// Free bytes the file system of the stores must keep: checked every few
  /// thousand steps, a run with less left stops with errc::storage. The
  /// stores of a run are written through LMDB's write map, and a write to a
  /// full file system would kill the process with SIGBUS instead.
  std::uint64_t free_bytes_min = std::uint64_t{64} << 20;
  /// Apply the stores' write transactions on a second thread
  /// (store::apply_thread) while the simulation goes on; with no work_dir,
  /// the mid-run checks run there too, each reading the stores as they were
  /// at its simulated time (a run they find broken is run again with checks
  /// that wait, for the report a one-thread run gives). Same results,
  /// traces and hashes as without; a single run is faster on two cores,
  /// several runs at once (a sweep with --jobs) are not.
  bool write_behind = false;
  /// Tests only: called before every mid-run check for each live node, to
  /// break a store on purpose and see the violation reported.
  std::function<void(timestamp_us now, const std::string& node_id, node& n)> inject;
};

/// Where runs put their temporary stores (sim_options::work_dir empty):
/// $TMPDIR if set; else /dev/shm when it is a tmpfs with twice
/// `bytes_needed`, and at least 1 GiB, free; else the system's temporary
/// directory. The stores are real LMDB files either way. On a disk, each
/// run creates and removes three inodes per node, and ext4's inode
/// allocation (it skips recently deleted inodes) took up to a fifth of a
/// 1,000-node run's time when runs followed each other.
std::string scratch_root(std::uint64_t bytes_needed);

/// A rough upper bound of what the stores of a run of `s` take: 128 KiB a
/// node and 8 KiB an order (measured: 205 MB for 1,000 nodes and 20,000
/// orders, 666 MB for 1,000 nodes and 100,000 orders).
std::uint64_t store_bytes_estimate(const scenario& s);

/// One booked interval of a machine (for the Gantt chart).
struct booking_span {
  std::string node;
  std::string resource;
  timestamp_us start_us = 0;
  timestamp_us end_us = 0;
};

/// One outage of a machine: a breakdown or maintenance window (for the Gantt chart).
struct outage_span {
  std::string node;
  std::string resource;
  std::string outage_id;
  std::string kind;  // "breakdown", "maintenance"
  timestamp_us start_us = 0;
  timestamp_us end_us = 0;  // when it ended early, else when it was to end
  std::string reason;
};

/// One order as the buyer ended it (for the order timeline).
struct order_span {
  std::string order_id;
  std::string buyer;
  std::string seller;  // empty unless contracted
  std::string state;   // contracted, failed, cancelled, negotiating, awarded
  timestamp_us created_us = 0;
  timestamp_us contracted_us = 0;  // when the Confirm reached the buyer (0 if none)
  timestamp_us due_us = 0;
  timestamp_us promised_due_us = 0;
};

struct kpis {
  std::uint64_t orders_placed = 0;   // accepted by a buyer (201)
  std::uint64_t orders_refused = 0;  // a buyer was down or refused the order
  std::uint64_t contracted = 0;
  std::uint64_t failed = 0;     // failed or cancelled
  std::uint64_t open = 0;       // still negotiating at the end (only if not quiesced)
  double on_time_pct = 0;       // contracted with promised due <= due, of contracted
  double lead_time_mean_h = 0;  // order placed -> promised due, contracted orders
  double lead_time_p95_h = 0;
  double negotiation_ms_mean = 0;  // order placed -> Confirm at the buyer
  double negotiation_ms_p95 = 0;
  double messages_per_order = 0;  // frames delivered (acks included) / orders placed
  /// Orders factories placed for bought components (nested negotiation);
  /// not counted above.
  std::uint64_t component_orders = 0;
  std::uint64_t component_contracted = 0;
  /// Machine outages (breakdowns, maintenance) and what they did to the
  /// contracts booked on them (outage.hpp); orders a buyer sourced again
  /// after a seller cancelled (customer and component orders).
  std::uint64_t outages = 0;
  std::uint64_t outage_rescheduled = 0;
  std::uint64_t outage_delayed = 0;
  std::uint64_t outage_cancelled = 0;
  std::uint64_t orders_resourced = 0;
  /// Capacity sharing ([[capacity]]): offers published; bookings as their
  /// bookers ended them (booked, refused, cancelled by an outage of the
  /// machine), and bookings that could not be asked (the offer not
  /// published or not received yet, the booker down).
  std::uint64_t capacity_offers = 0;
  std::uint64_t capacity_booked = 0;
  std::uint64_t capacity_refused = 0;
  std::uint64_t capacity_cancelled = 0;
  std::uint64_t capacity_not_asked = 0;
  /// Booked share of each machine's capacity from the start to the last
  /// booking's end, less the buckets it was out of service in, by
  /// "node/resource".
  std::map<std::string, double> utilization;
};

struct sim_result {
  std::string scenario;
  std::uint64_t seed = 0;
  bool ok = true;         // no violation, quiesced
  bool quiesced = false;  // ended with every order terminal, nothing in flight
  std::string failure;    // the violation report (empty if ok)
  std::uint64_t trace_hash = 0;
  std::uint64_t state_hash = 0;
  timestamp_us start_us = 0;
  timestamp_us end_us = 0;  // simulated time at the end
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_delivered = 0;
  std::uint64_t frames_lost = 0;  // loss, partitions, node down
  std::uint64_t frames_duplicated = 0;
  std::uint64_t crashes = 0;
  std::uint64_t mid_step_crashes = 0;     // of those, struck between two jobs of one step
  std::uint64_t crash_point_crashes = 0;  // of those, by a runtime crash point (buggify)
  /// buggify: the fault points this run armed, and how often each fired.
  std::map<std::string, std::uint64_t> fault_points;
  std::uint64_t partitions = 0;
  std::uint64_t disruptions = 0;  // scheduled outages ([[disruptions]])
  std::uint64_t breakdowns = 0;   // machine breakdowns sent ([[breakdowns]], breakdowns_per_day)
  std::uint64_t invariant_checks = 0;
  std::uint64_t actor_jobs = 0;
  double wall_seconds = 0;
  kpis k;
  std::vector<booking_span> bookings;
  std::vector<outage_span> outages;
  std::vector<order_span> orders;
};

/// Runs `s` with `opts.seed`. Errors (no result): the scenario's nodes do not
/// start (bad role sections: errc::bad_config naming the node), the work
/// directory cannot be created. A violated invariant is a result with ok =
/// false and `failure` set.
result<sim_result> run_simulation(const scenario& s, const sim_options& opts);

/// The hash of traces and states: the 64-bit XXH3 of `data` seeded with
/// the hash so far, `h` (libxxhash; XXH3's output is the same on every
/// platform and fixed since xxHash 0.8.0).
std::uint64_t hash_bytes(std::uint64_t h, const void* data, std::size_t n);
inline constexpr std::uint64_t hash_init = 0;

}  // namespace gearmesh::sim
