// Wiring the domain actors into a node.
#pragma once

#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "gearmesh/node/admin.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh {
class node;
}

namespace gearmesh::actors {

/// Reads the role sections of `file` ([buyer], [factory], [supplier],
/// [directory]), spawns
/// the role actors in `n`'s actor system (rebuilding their state from the
/// store), routes inbound message types to them and registers their admin
/// routes. Once the roles started, it also commits (asynchronously, only what
/// changed) the node id to "meta"/"node_id" and every configured calendar's
/// resource_record to "resources", for offline checks (records.hpp). Call
/// between node::open() and node::serve(). Errors: errc::bad_config naming
/// file, line and field; errc::storage if stored state cannot be read.
status install_roles(node& n, const config_file& file);

/// The role actors install_roles spawned; null handles for absent roles.
struct installed_roles {
  caf::actor buyer;
  caf::actor participant;  // the factory or supplier
  caf::actor directory;    // every node has one (directory.hpp)
  caf::actor capacity;     // the capacity broker (capacity.hpp), on every node
  caf::actor executor;     // with a participant: carries out its contracts (executor.hpp)
};

/// install_roles, returning the actors it spawned (the simulator places
/// orders with the buyer directly, see submit_order in buyer.hpp).
result<installed_roles> install_roles_with_handles(node& n, const config_file& file);

struct resource_spec;  // participant.hpp

/// Records the node's id ("meta"/"node_id") and the definition of every
/// configured calendar ("resources", with the machines' energy rates), so that
/// `gearmesh verify` and the KPIs (kpis.hpp) work from the store alone (done by
/// install_roles; exposed for tests). One asynchronous commit, only of what
/// differs from the store (failures are logged); records of resources no
/// longer configured stay, as their holds and bookings may still be stored.
/// Call from the thread that owns `ctx`'s commits (before serving, or in an actor).
void record_identity(node_context& ctx, const std::vector<resource_spec>& specs);

/// Registers the order, contract and KPI routes of the admin API on `r` (done by
/// install_roles; exposed for tests and embedders). `buyer` is the buyer actor,
/// or nullptr if the node has no buyer role. GET handlers read committed state
/// from `ctx.store()`; POST /v1/orders asks `buyer` and waits up to
/// `order_timeout_ms`. Shapes (docs/protocol.md, "Admin API"):
///   POST /v1/orders {"item","quantity","due_us","earliest_start_us"?,
///        "max_price_cents"?, "attributes"?} -> 201 {"order_id","state"};
///        400 {"error"} on bad input; 404 {"error"} without a buyer role
///   GET  /v1/orders -> {"orders":[ORDER...]};  GET /v1/orders/<id> -> ORDER | 404
///   GET  /v1/contracts -> {"contracts":[CONTRACT...]}
///   GET  /v1/kpis[?from_us=&to_us=] -> KPIS (kpis_to_json, kpis.hpp); 400 on a bad window
/// `sys`, `ctx` and the actor must outlive the router.
void add_admin_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                      const caf::actor* buyer, int order_timeout_ms = 5000);

/// Registers the directory routes (done by install_roles), each waiting at
/// most `lookup_timeout_ms` for `directory` (docs/operations.md):
///   GET /v1/resolve/<identifier>       -> 200 RESOLUTION (found, referral);
///        404 RESOLUTION + "error" (not_found); 400 {"error"} malformed id
///   GET /v1/partners?capability=<name> -> the same, for a capability search
///   GET /v1/directory                  -> the directory's counters
/// RESOLUTION = {"identifier"|"capability", "status", "entries":[{"node_id",
///   "endpoint","public_key","capabilities","referral"}], "ttl_s", "reason",
///   "cached", "local"}. `sys` and the actor must outlive the router.
void add_directory_routes(admin::router& r, caf::actor_system& sys, const caf::actor& directory,
                          int lookup_timeout_ms);

/// Registers the execution route (done by install_roles): `executor` is the
/// node's executor, or nullptr without a factory or supplier role.
///   POST /v1/events {"contract_id","kind":"started"|"completed"|"delayed"|"delivered",
///        "at_us"?,"expected_due_us"? (required for delayed),"reason"?}
///        -> 201 EVENT once the event and its ProductionEvent are durable;
///        400 bad input or transition; 404 unknown contract / no seller role
/// `sys` and the actor must outlive the router.
void add_execution_routes(admin::router& r, caf::actor_system& sys, const caf::actor* executor,
                          int timeout_ms = 5000);

struct machine_config;  // roles_config.hpp

/// Registers the machine routes (done by install_roles; outage.hpp):
/// `participant` is the factory, or nullptr without one; `machines` its
/// configured machines.
///   POST /v1/machines/<id>/down {"until_us" | "for_s", "from_us"?, "reason"?}
///        -> 201 OUTAGE (a breakdown) once durable, with what it did
///   POST /v1/machines/<id>/maintenance {the same} -> 201 OUTAGE (maintenance)
///   POST /v1/machines/<id>/up {} -> 200 {"ended":[OUTAGE...]}
///   POST /v1/machines/<id>/health {"score": 0..100} -> 201 OUTAGE when the
///        score is below the machine's health_threshold, else 200 {"outage": null}
///   GET  /v1/machines -> {"machines":[MACHINE...],"outages":[OUTAGE...],"totals":{...}}
///   400 bad input (window in the past, reversed, too long; score out of
///   range); 404 unknown machine / no factory role; 503 too many outages.
/// `sys`, `ctx` and the actor must outlive the router.
void add_machine_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                        const caf::actor* participant, std::vector<machine_config> machines,
                        int timeout_ms = 10000);

/// Registers the capacity routes on `r` (done by install_roles). POSTs ask
/// `broker` and wait up to `timeout_ms`; GETs read committed state:
///   POST /v1/capacity/offers {"capability","units","unit_price_cents",
///        "window_start_us","window_end_us","valid_until_us"?,"machine"?}
///        -> 201 OFFER; 400 bad input; 404 no factory role; 409 no room
///   DELETE /v1/capacity/offers/<offer id> -> 200 OFFER (withdrawn); 404 unknown
///   GET  /v1/capacity/offers -> {"published":[OFFER...],"received":[OFFER...]}
///   POST /v1/capacity/bookings {"offer_id","units"} -> 201 BOOKING once the
///        publisher's CapacityBooked is durable here; 409 BOOKING+"error" if
///        refused; 404 offer not received; 410 expired or withdrawn; 504 no
///        answer in time (the booking stays "requested")
///   GET  /v1/capacity/bookings -> {"bookings":[BOOKING...]} (as booker and publisher)
/// Shapes: docs/protocol.md section 9. `sys`, `ctx` and `broker` must outlive the router.
void add_capacity_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                         const caf::actor& broker, int timeout_ms = 5000);

}  // namespace gearmesh::actors
