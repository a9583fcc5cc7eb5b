// Execution and tracking of contracts (docs/protocol.md section 6.7): the
// pure rules, without actors, clock or store.
//
// A seller keeps one execution_record per contract it sold (table
// "executions"). Clock-driven (the default), the contract advances by itself:
//
//   contracted --planned start + delay--> executing (Started)
//   executing  --planned end + delay----> completed (Completed)
//   completed  --promised due + delay---> delivered (Delivered)
//
// where the planned start and end are the first booking's start and the last
// booking's end as contracted, and `delay_us` is how much the plan slipped
// (a posted delay, or a component that arrives after the planned start).
// With `shop_floor` set the clock moves nothing: only posted events
// (shop-floor systems, POST /v1/events) advance the state. A cancelled
// contract never advances again.
//
// Every change produces one wire::production_event carrying the whole
// current status and sequence + 1, so a buyer keeps the latest and ignores
// older ones (reordering and duplicates change nothing).
//
// Threading: plain values and pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

/// The execution record of a contract `offer` became, given the bookings
/// that back it (start/end of the first and last booking). `shop_floor`:
/// only posted events advance it.
execution_record execution_of(const offer_record& offer,
                              const std::vector<reservation_record>& bookings, bool shop_floor);

/// When the clock next advances `e` (planned time + delay of its next step),
/// or nothing (shop floor, delivered, cancelled).
std::optional<timestamp_us> next_step_us(const execution_record& e);

/// The expected delivery of `e` as it stands: promised due + delay, or the
/// actual delivery once delivered.
timestamp_us expected_due_us(const execution_record& e);

/// The event describing `e` after a change of kind `kind` at `at_us`
/// (sequence is e.sequence, which the caller has already advanced).
/// `components` is the summary of e's component contracts.
wire::production_event event_of(const execution_record& e, wire::production_event_kind kind,
                                timestamp_us at_us, std::vector<wire::component_status> components);

/// Advances `e` by the clock up to `now`: every step due by then, in order,
/// each at its own due time. Returns the kinds applied (empty: nothing due).
/// Each applied step increments e.sequence.
std::vector<std::pair<wire::production_event_kind, timestamp_us>> advance(execution_record& e,
                                                                          timestamp_us now);

/// Takes the first clock step of `e` if it is due by `now` (what advance
/// does once): its kind and due time, or nothing.
std::optional<std::pair<wire::production_event_kind, timestamp_us>> advance_one(execution_record& e,
                                                                                timestamp_us now);

/// When the components of a contract arrive: the latest expected delivery
/// over `components` (delivered, else expected, else promised), ignoring
/// cancelled ones; nothing without components.
std::optional<timestamp_us> arrival_of(const std::vector<wire::component_status>& components);

/// Cuts a component tree to the wire limits: at most `depth_max` levels and
/// `total_max` statuses in all (breadth first: the upper tiers stay).
void prune(std::vector<wire::component_status>& components, std::size_t depth_max,
           std::size_t total_max);

/// A posted (shop-floor) event.
struct posted_event {
  wire::production_event_kind kind = wire::production_event_kind::progress;
  timestamp_us at_us = 0;            // when it happened; 0 = now
  timestamp_us expected_due_us = 0;  // delayed: the new expected delivery (required)
  std::string reason;
};

/// Applies a posted event to `e` at `now` and increments e.sequence.
/// Errors (errc::invalid_argument, `e` unchanged): the contract is cancelled
/// or delivered; started when already started; completed before started is
/// allowed (it implies started); a delay without an expected due later than
/// the promised due, or earlier than now; kind progress.
status post(execution_record& e, const posted_event& p, timestamp_us now);

/// A component of `e` is now expected at `arrival_us` (the latest expected
/// delivery over its component contracts). If that is after e's planned
/// start + delay and e has not started, the plan slips: delay_us grows so the
/// start follows the arrival, and the function returns true (the caller sends
/// a Delayed event; e.sequence was incremented). Otherwise false, e unchanged.
bool component_arrival(execution_record& e, timestamp_us arrival_us, std::string reason);

/// The state of a contract this node bought, for the tree: from the latest
/// event received (or `contracted` without one, `cancelled` if the contract
/// is cancelled).
wire::component_status component_of(const contract_record& c, const progress_record* latest);

}  // namespace gearmesh::actors
