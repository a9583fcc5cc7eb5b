// Scheduling: placing the operations of a work plan on a participant's
// capacity calendars (finite-capacity quoting) and placing them again when a
// machine goes down.
//
// Forward loading (docs/protocol.md 6.4): operations are placed one after
// another from a start time. Each starts no earlier than the previous one
// ends and goes to the candidate calendar on which it ends earliest (ties:
// the candidate listed first), taking the free units of each bucket from its
// fill level on and skipping full and blocked buckets
// (capacity_calendar::find_earliest). Every operation is reserved as soon as
// it is placed, so the next one — possibly on the same machine — sees it.
//
// Re-planning (a breakdown or maintenance window, calendar.hpp block()):
// the reservations of a plan from its first unfinished operation (one that
// ends after `now`) that has units in a blocked bucket are released and that operation and every
// later one are placed forward again, the first no earlier than the previous operation ends (or,
// for the first operation, than it was planned to start: that is when its bought components
// arrive), and never before `now`. An operation keeps its units; it may move to any of its
// candidates. Operations before it stay where they are.
//
// Reservation ids are "<owner>#<operation index>" (owner = a proposal id),
// the same before and after a re-plan, so a moved operation keeps its id
// and may change its calendar.
//
// Pure logic: no actors, clock or store. Not thread-safe: the calendars
// belong to the caller (the participant actor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::actors {

/// The calendars of one participant by resource id (machines of a factory,
/// items of a supplier).
using calendar_set = std::map<std::string, capacity_calendar, std::less<>>;

/// One operation of the work a CFP needs.
struct operation_plan {
  std::vector<std::string> candidates;  // resource ids able to do it, in preference order on ties
  std::int64_t units = 0;               // capacity units it takes
};

/// A component the work needs that this node buys (nested negotiation).
struct component_need {
  std::string item;
  std::uint32_t quantity = 0;  // for the whole order
  bool operator==(const component_need&) const = default;
};

/// The work a CFP needs, operation after operation.
struct work_plan {
  timestamp_us from_us = 0;     // the first operation may not start earlier
  timestamp_us horizon_us = 0;  // everything must end by then
  std::vector<operation_plan> operations;
  /// Bought components: sourced from this node's buyer before the proposal;
  /// the first operation starts once the last of them is promised.
  std::vector<component_need> components;
  /// The operations' own duration without waiting (components are asked to
  /// arrive by the CFP's due date minus this).
  timestamp_us min_lead_us = 0;
};

/// Where one operation went.
struct chosen_step {
  std::string resource;
  std::string reservation_id;
  placement where;
  bool operator==(const chosen_step&) const = default;
};

/// How the reservations a placement makes are kept.
struct reservation_terms {
  reservation_kind kind = reservation_kind::hold;
  timestamp_us deadline_us = 0;  // holds only: released once now > deadline_us
};

/// "<owner>#<index>": the reservation of operation `index` of `owner`'s plan.
std::string operation_reservation_id(std::string_view owner, std::size_t index);

/// Places `ops[first..]` forward from `from_us`, each ending by `horizon_us`,
/// and reserves each on `cals` as `terms` under
/// operation_reservation_id(owner, index). Returns the steps in operation
/// order (one per operation placed). Errors, with `cals` unchanged:
/// errc::overloaded "operation <k> fits on none of <candidates> by the
/// horizon"; errc::invalid_argument if an operation has no units, none of its
/// candidates is in `cals`, or a reservation id is taken.
[[nodiscard]] result<std::vector<chosen_step>> place_forward(
    calendar_set& cals, const std::vector<operation_plan>& ops, std::size_t first,
    timestamp_us from_us, timestamp_us horizon_us, std::string_view owner,
    const reservation_terms& terms);

/// place_forward of every operation of `plan` from plan.from_us by plan.horizon_us.
[[nodiscard]] result<std::vector<chosen_step>> place(calendar_set& cals, const work_plan& plan,
                                                     std::string_view owner,
                                                     const reservation_terms& terms);

/// Releases the reservations of `steps` from `cals`; those already gone are skipped.
void release(calendar_set& cals, const std::vector<chosen_step>& steps);

/// Index of the first of `steps` that is not finished by `now_us` (ends
/// later) and has units in a blocked bucket of its calendar (a step whose
/// calendar is not in `cals` does not count).
std::optional<std::size_t> first_blocked(const calendar_set& cals,
                                         const std::vector<chosen_step>& steps,
                                         timestamp_us now_us);

/// The result of a re-plan.
struct replan {
  std::vector<chosen_step> steps;  // every operation's reservation, in operation order
  std::size_t first_moved = 0;     // steps before it kept their place; == steps.size(): none moved
  timestamp_us end_us = 0;         // when the last operation ends now
};

/// Re-plans `steps` (operation k reserved as steps[k] on `cals`) around
/// blocked buckets, as described at the top of this file: from
/// first_blocked(cals, steps, now_us) on, each operation is released and placed
/// again on one of ops[k].candidates with its own units (ops[k].units is
/// not used), reserved as `terms`, ending by `horizon_us`. Nothing blocked:
/// the steps unchanged. Errors, with `cals` unchanged (the old reservations
/// restored where they were): errc::overloaded when an operation fits
/// nowhere by the horizon; errc::invalid_argument when `ops` and `steps`
/// differ in length or a step's reservation is missing from `cals`.
[[nodiscard]] result<replan> replan_blocked(calendar_set& cals,
                                            const std::vector<operation_plan>& ops,
                                            const std::vector<chosen_step>& steps,
                                            timestamp_us now_us, timestamp_us horizon_us,
                                            std::string_view owner, const reservation_terms& terms);

}  // namespace gearmesh::actors
