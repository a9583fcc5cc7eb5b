// The factory: a participant whose resources are machines.
//
// Scheduling (forward loading): the item's routing is placed operation by
// operation from max(earliest_start, now); each operation starts after the
// previous one ends and goes to the capable machine that finishes it
// earliest (ties: the machine listed first). An operation takes
// setup_minutes + minutes_per_unit * quantity machine-minutes (capacity
// units). Price = ceil(sum over operations of minutes * machine rate / 60 *
// (1 + margin_pct / 100)). Work must end within horizon_days.
//
// Bill of materials: components made here add their operations before the
// item's own (depth first); bought components are sourced by the node's buyer
// before the factory proposes (nested negotiation, participant.hpp), the
// first operation starts no earlier than the latest promised component
// delivery, and their price is added to the cost before the margin.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "gearmesh/actors/participant.hpp"
#include "gearmesh/actors/roles_config.hpp"

namespace gearmesh::actors {

/// The factory's policy (pure; exposed for tests).
std::shared_ptr<const participant_policy> make_factory_policy(factory_config cfg);

/// Spawns a factory participant with one calendar per machine; `buyer`
/// sources bought components (see spawn_participant).
result<caf::actor> spawn_factory(caf::actor_system& sys, node_context& ctx, factory_config cfg,
                                 const caf::actor& buyer);

}  // namespace gearmesh::actors
