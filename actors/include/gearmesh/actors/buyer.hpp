// The buyer: the initiator role of a node (one negotiation per order).
//
// It accepts new orders, sends CFPs to the sellers configured for the item,
// drives one `initiator` (negotiation.hpp) per order on inbound Propose,
// Refuse, Confirm and Failure and on its deadlines, and persists every step
// with node_context::commit (tables "orders", "contracts", "seq"; see
// records.hpp). Order ids are "<node id>/order/<n>", n from counter "order".
// On start it rebuilds the open orders from the store and re-arms their timers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

/// A new order, as POST /v1/orders receives it.
struct order_request {
  std::string item;
  std::uint32_t quantity = 0;
  timestamp_us due_us = 0;
  timestamp_us earliest_start_us = 0;  // 0 = now
  std::int64_t max_price_cents = 0;    // 0 = no ceiling
  std::vector<wire::attribute> attributes;
};

/// The buyer's answer to an order_request.
struct order_reply {
  /// 201 created (durable, CFPs committed); 400 bad input; 503 overloaded or
  /// shutting down; 500 storage failure; 504 no answer in time.
  unsigned http_status = 0;
  std::string order_id;
  std::string state;  // "negotiating" on 201
  std::string error;  // otherwise
};

/// A component order a participant of the same node asks for (nested
/// negotiation: a factory's CFP needs an item it buys). The buyer runs a
/// contract-net for it like for any order, but stops at the decision (state
/// `ready`) and awards only when the participant says so (component_award).
struct component_request {
  std::string parent_buyer;     // whose CFP the participant is answering
  std::string parent_order_id;  // that buyer's order id
  std::string item;
  std::uint32_t quantity = 0;
  timestamp_us earliest_start_us = 0;
  timestamp_us due_us = 0;       // when the participant would like it
  timestamp_us reply_by_us = 0;  // the decision, at the latest
  timestamp_us award_by_us = 0;  // cancelled if not awarded by then
};

/// The buyer's answer once a component order is decided.
struct component_quote {
  bool ok = false;
  std::string order_id;  // also set when !ok, if the order was opened
  std::string seller;    // the best proposal
  std::int64_t price_cents = 0;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  timestamp_us valid_until_us = 0;
  std::string reason;  // when !ok
};

/// The buyer's answer to an award of a component order: contracted or not.
struct component_award {
  bool ok = false;
  std::string order_id;
  std::string contract_id;
  std::string seller;
  std::int64_t price_cents = 0;
  timestamp_us promised_due_us = 0;
  std::string reason;  // when !ok
};

/// Most orders a buyer negotiates at once; further orders get 503.
constexpr std::size_t open_orders_max = 100'000;

/// Spawns the buyer in `sys`, rebuilding its open orders from the store and
/// re-arming their deadlines. `ctx` must outlive the actor. Inbound messages
/// arrive as (inbound_atom, wire::envelope) (node::route them here). Errors:
/// errc::storage if the stored orders cannot be read.
result<caf::actor> spawn_buyer(caf::actor_system& sys, node_context& ctx, buyer_config cfg);

/// Asks `buyer` to open an order and waits up to `timeout` for the reply,
/// which comes once the order and its CFPs are durable. Blocking; call from
/// a non-actor thread (the admin thread, tests).
order_reply place_order(caf::actor_system& sys, const caf::actor& buyer, order_request req,
                        std::chrono::milliseconds timeout);

/// Asks `buyer` to open an order without blocking: `done` runs with the reply
/// on one of `sys`'s actors (in deterministic execution: inside
/// node::run_ready). A timeout gives http_status 504.
void submit_order(caf::actor_system& sys, const caf::actor& buyer, order_request req,
                  std::chrono::milliseconds timeout, std::function<void(order_reply)> done);

}  // namespace gearmesh::actors
