// The executor: carries out the contracts a node sold and reports their
// execution to the buyers (ProductionEvent, docs/protocol.md section 6.7).
//
// One executor per node with a participant role (factory or supplier). The
// participant records each new contract's execution_record (table
// "executions", execution.hpp) in the commit that confirms the contract and
// hands it to the executor (execute_atom). From then on only the executor
// writes that record: every change is one commit of the record and the
// ProductionEvent to the contract's buyer.
//
//   clock       (default) each contract starts, completes and is delivered by
//               the node clock at its planned times (+ delay). One CAF timer
//               runs, for the earliest step of all contracts.
//   shop_floor  only events posted to the admin API (post_production_event)
//               advance a contract.
//
// Nested contracts: when the node's buyer records a production event of a
// component contract, it tells the executor (progress_atom); the executor
// sends the upstream buyer a new summary of the components (Progress) and,
// when a component now arrives after the contract's planned start, a Delayed
// event that shifts the contract by the slip (execution.hpp,
// component_arrival). A contract whose record says cancelled, or whose
// contract record is cancelled, never advances again.
//
// Re-plans (outage.hpp): when the participant re-plans a sold contract (a
// machine breakdown) or cancels it itself, it commits a replan record
// (table "replans") and hands it over (replan_atom). The executor reports
// it to the buyer -- Progress if the work still ends by the promised due,
// Delayed with the new expected delivery, or Cancelled -- and erases the
// record, in one commit; records left by a stop are reported at start. A
// contract whose record says cancelled while a re-plan for it is pending is
// the seller's cancellation, not the buyer's: the re-plan reports it.
//
// Threading: the functions below are called from non-actor threads (admin,
// install); the actor runs on the node's CAF scheduler.
#pragma once

#include <chrono>
#include <string>

#include <caf/fwd.hpp>

#include "gearmesh/actors/execution.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::actors {

struct executor_config {
  /// Only posted events advance contracts ([factory]/[supplier] execution =
  /// "shop_floor"); default: the node clock.
  bool shop_floor = false;
};

/// Spawns the executor, rebuilding the open executions (not delivered, not
/// cancelled) from the store and arming the timer (steps that fell due while
/// the node was down are taken at once). `ctx` must outlive the actor.
/// Errors: errc::storage if the stored executions cannot be read.
result<caf::actor> spawn_executor(caf::actor_system& sys, node_context& ctx, executor_config cfg);

/// The answer to a posted event.
struct post_reply {
  /// 201 durable; 400 bad input (kind, dates, state); 404 unknown contract;
  /// 503 unavailable; 504 no answer in time.
  unsigned http_status = 0;
  std::string error;
  wire::production_event event;  // on 201: the event sent to the buyer
};

/// Posts a shop-floor event for `contract_id` to `executor` and waits up to
/// `timeout` until it is durable (with its ProductionEvent). Blocking; call
/// from a non-actor thread.
post_reply post_production_event(caf::actor_system& sys, const caf::actor& executor,
                                 std::string contract_id, posted_event ev,
                                 std::chrono::milliseconds timeout);

}  // namespace gearmesh::actors
