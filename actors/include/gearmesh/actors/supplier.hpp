// The supplier: a participant selling items from stock, one daily-capacity
// calendar per item.
//
// Scheduling: the quantity is taken from the item's daily capacity (1-day
// buckets of daily_capacity units) starting at max(earliest_start, now +
// lead_time_days); the promised due date is when the last unit is placed.
// Price = unit_price_cents * quantity. Work must end within horizon_days.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "gearmesh/actors/participant.hpp"
#include "gearmesh/actors/roles_config.hpp"

namespace gearmesh::actors {

/// The supplier's policy (pure; exposed for tests).
std::shared_ptr<const participant_policy> make_supplier_policy(supplier_config cfg);

/// Spawns a supplier participant with one calendar per item.
result<caf::actor> spawn_supplier(caf::actor_system& sys, node_context& ctx, supplier_config cfg);

}  // namespace gearmesh::actors
