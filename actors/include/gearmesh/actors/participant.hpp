// The participant role of contract-net (a seller: factory or supplier).
//
// One participant actor per node answers CFPs, Accepts, Rejects and Cancels.
// It owns one capacity_calendar per resource (a factory's machines, a
// supplier's items) and persists their holds and bookings (tables
// "holds"/"bookings", key "<resource>/<reservation id>"); where work goes is
// decided by the scheduling module (scheduling.hpp).
// What differs between a factory and a supplier is a `participant_policy`:
// which resources exist, what work a CFP needs, and the price.
//
// Behaviour (docs/protocol.md, "Participant"):
//   CFP     refuse (unknown item, other currency, quantity 0, nothing fits
//           within the horizon, price above the ceiling) or place one hold per
//           operation (each operation on the capable resource that finishes it
//           earliest, starting when the previous one ends), then Propose with
//           valid_until = hold deadline = now + hold TTL. A CFP for an order
//           that already has a valid held proposal gets that Propose again.
//   Accept  holds valid: book them, record the contract, Confirm. Holds lapsed:
//           reserve again; if the promised due date still holds, book and
//           Confirm, else Failure. Already contracted under the same contract
//           id: Confirm again. Unknown/rejected/cancelled: Failure.
//   Reject  release the holds (unknown proposal: nothing).
//   Cancel  with a contract id: release the bookings, contract -> cancelled
//           (unknown contract: remember a tombstone so a late Accept fails);
//           without: release the order's held proposal.
// Holds also expire by themselves (a timer, and lazily).
//
// Disruptions (outage.hpp): a machine going down blocks its calendar for the
// window and moves, delays or cancels the work reserved there; contracts it
// cancels, and contracts whose component could not be sourced again after
// its seller cancelled, are reported to the buyer through the executor.
//
// Proposal ids are "<node id>/proposal/<n>", n from counter "proposal";
// reservation ids are "<proposal id>#<operation index>".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/fwd.hpp>

#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/scheduling.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

/// One calendar of a participant.
struct resource_spec {
  std::string id;  // no '/'
  timestamp_us bucket_us = us_per_hour;
  std::int64_t capacity = 60;           // units per bucket
  std::int64_t energy_wh_per_hour = 0;  // recorded in "resources" for the KPIs
};

/// A machine's health rule (outage.hpp): a posted score below `threshold`
/// opens a maintenance window of `maintenance_us` from now.
struct health_rule {
  std::int32_t threshold = 0;  // 0: scores open no window
  timestamp_us maintenance_us = 4 * us_per_hour;
};

/// What makes a participant a factory or a supplier. Pure and thread-safe.
class participant_policy {
 public:
  virtual ~participant_policy() = default;
  /// "factory" or "supplier", for logs.
  virtual std::string_view role() const = 0;
  /// The currency of its prices; CFPs in another currency are refused.
  virtual std::string_view currency() const = 0;
  virtual timestamp_us hold_ttl_us() const = 0;
  virtual std::vector<resource_spec> resources() const = 0;
  /// The work CFP `c` needs at `now`, or errc::invalid_argument with the reason
  /// to refuse (e.g. "unknown item FRAME2").
  virtual result<work_plan> plan(const wire::cfp& c, timestamp_us now) const = 0;
  /// The price for the whole quantity, given where the work went and what
  /// the bought components cost (0 without components).
  virtual std::int64_t price(const wire::cfp& c, const std::vector<chosen_step>& steps,
                             std::int64_t components_cents) const = 0;
  /// How long a CFP waits for component proposals (nested negotiation).
  virtual timestamp_us component_window_us() const { return 300 * us_per_ms; }
  /// Whether the resources are machines that can go down (outage.hpp).
  virtual bool machines() const { return false; }
  /// How late an outage may make a contract before it is cancelled.
  virtual timestamp_us reschedule_delay_max_us() const { return 0; }
  /// The health rule of machine `resource`.
  virtual health_rule health(std::string_view /*resource*/) const { return {}; }
};

/// Spawns the participant, rebuilding the calendars from the store (expired
/// holds are released). `buyer` is the node's buyer
/// actor, which sources bought components (nested negotiation); without one
/// (an invalid handle) CFPs needing bought components are refused. `ctx` must
/// outlive them. Errors: errc::storage if stored state cannot be read or no
/// longer fits the configured capacity.
result<caf::actor> spawn_participant(caf::actor_system& sys, node_context& ctx,
                                     std::shared_ptr<const participant_policy> policy,
                                     const caf::actor& buyer);

/// Loads a resource's calendar from the committed "holds" and "bookings"
/// tables (also used by tests and checkers).
result<capacity_calendar> load_calendar(const store::environment& env, const resource_spec& r);

}  // namespace gearmesh::actors
