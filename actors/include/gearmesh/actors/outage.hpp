// Disruptions: machine breakdowns and maintenance windows.
//
// A factory's machine can go down for a window [from, until): a breakdown
// (from now, for a while), a maintenance window (planned, possibly later),
// or a maintenance window that a health score below the machine's
// `health_threshold` opens (from now, for its `maintenance_hours`). The
// participant, which owns the calendars (participant.hpp), handles it in
// one step:
//
//   1. It blocks the machine's calendar buckets that overlap the window
//      from max(from, now) on, rounded out to whole buckets
//      (capacity_calendar::block): nothing new is quoted on them.
//   2. It moves what was reserved there, contracts first (earliest promised
//      due first, then contract id), then held proposals. A contract's
//      operations, from the first unfinished one on a blocked bucket, are
//      placed again on any capable machine (scheduling.hpp, replan_blocked):
//        - the work still ends by the promised due: *rescheduled*, the
//          contract is unchanged and its buyer gets a Progress event saying
//          why the plan changed;
//        - it ends later, by at most `[factory] reschedule_delay_max_hours`
//          after the promised due: *delayed*, the buyer gets a Delayed event
//          with the new expected delivery;
//        - later than that, or it fits nowhere within the horizon:
//          *cancelled*, its bookings are released, its component orders
//          withdrawn, the contract cancelled, and the buyer gets a
//          Cancelled event with the reason; it sources the order again or
//          fails it (docs/protocol.md 6.8).
//      A held proposal's holds are moved the same way if its work still
//      ends by the promised due, else released (an Accept then places the
//      work again or fails, as for a lapsed hold). Contracts whose work is
//      completed, and reservations of capacity offers (capacity.hpp), are
//      not moved: a granted capacity booking in the window is cancelled
//      by the capacity broker, which tells its booker (CapacityCancelled),
//      in a commit of its own that follows this one.
//   3. It commits, in ONE step, the outage record ("outages"), the moved or
//      released reservation records, the changed offers and contracts, and
//      one replan record per contract touched ("replans"); then hands each
//      re-plan to the executor, which reports it to the buyer and erases
//      the record in one commit of its own (executor.hpp). A node that stops
//      in between reports the re-plans when it starts again.
//
// `up` ends the machine's open outages now: the blocks are lifted, nothing
// moves back. Outages are restored (blocked again) when the node starts.
// A component order that cannot be sourced again after its seller
// cancelled ends the upstream contract it backs the same way (cancelled,
// reason "component ... could not be sourced again: ...").
//
// Threading: the helpers below block the calling (non-actor) thread, or
// call back on an actor of `sys` (submit_outage, for the simulator).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/clock.hpp"

namespace gearmesh::actors {

/// Longest outage window one request may open.
inline constexpr timestamp_us outage_length_max_us = 90 * us_per_day;
/// Most open outages (not ended, not past) one machine keeps.
inline constexpr std::size_t open_outages_per_machine_max = 64;

/// POST /v1/machines/<id>/down|maintenance|up|health|cancel.
struct outage_request {
  enum class action : std::uint8_t { down, up, health, cancel };
  action what = action::down;
  std::string machine;
  std::string outage_id;  // cancel: a planned outage of `machine` that has not begun
  outage_kind kind = outage_kind::breakdown;  // down only
  timestamp_us from_us = 0;                   // down: 0 = now
  timestamp_us until_us = 0;                  // down: required, > now and > from
  std::string reason;                         // at most 1024 bytes
  std::int32_t health_score = -1;             // health: 0..100
};

/// The participant's answer, once its step is durable.
struct outage_reply {
  /// 201 an outage was opened; 200 nothing opened (health above the
  /// threshold, or already down), outages ended (up) or one cancelled
  /// (cancel); 409 cancel of an outage that has begun; 400 bad input (the
  /// window in the past or reversed, too long, a score out of range); 404
  /// unknown machine or no factory role; 503 too many open outages, or the
  /// participant unavailable; 500 the store failed; 504 no answer in time.
  unsigned http_status = 504;
  std::string error;
  /// down/health: the outage opened; up: the outages ended; cancel: the
  /// outage cancelled.
  std::vector<outage_record> outages;
};

/// Asks `participant` and waits up to `timeout`. Blocking: call from a
/// non-actor thread (admin API, tests).
outage_reply machine_outage(caf::actor_system& sys, const caf::actor& participant,
                            outage_request req, std::chrono::milliseconds timeout);

/// Asks `participant` without blocking: `done` runs with the reply on one of
/// `sys`'s actors (in deterministic execution: inside node::run_ready).
void submit_outage(caf::actor_system& sys, const caf::actor& participant, outage_request req,
                   std::chrono::milliseconds timeout, std::function<void(outage_reply)> done);

}  // namespace gearmesh::actors
