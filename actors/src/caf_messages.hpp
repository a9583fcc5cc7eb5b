// CAF message vocabulary private to the actors library (and its tests).
// Include only from .cpp files: it pulls in CAF headers.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <chrono>
#include <string_view>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/scoped_actor.hpp>

#include "gearmesh/actors/buyer.hpp"
#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/capacity.hpp"
#include "gearmesh/actors/executor.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/node/caf_types.hpp"

namespace gearmesh::actors {

/// Asks `whom` (xs...) and waits up to `timeout` for its `Reply`; blocking,
/// for non-actor threads (the admin API, tests). `out` is returned on a
/// timeout; any other error gives http_status 503 and "<who> unavailable: ...".
/// Reply has `http_status` and `error` members.
template <class Reply, class... Ts>
Reply ask_blocking(caf::actor_system& sys, const caf::actor& whom,
                   std::chrono::milliseconds timeout, Reply out, std::string_view who, Ts&&... xs) {
  caf::scoped_actor self{sys};
  self->request(whom, timeout, std::forward<Ts>(xs)...)
      .receive([&](Reply& r) { out = std::move(r); },
               [&](caf::error& e) {
                 if (e != caf::sec::request_timeout) {
                   out.http_status = 503;
                   out.error = std::string(who) + " unavailable: " + to_string(e);
                 }
               });
  return out;
}

// Buyer.
/// (order_atom, order_request) -> order_reply
using order_atom = caf::atom_constant<caf::atom("order")>;
/// (deadline_atom, deadline_us): the buyer's timer; every order due by then.
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
/// (durable_atom, commit_seq, ok): every commit up to commit_seq completed.
using durable_atom = caf::atom_constant<caf::atom("durable")>;
/// (component_atom, component_request) -> component_quote, once decided.
using component_atom = caf::atom_constant<caf::atom("component")>;
/// (award_atom, order_id, need_by_us) -> component_award, once contracted
/// (or at once if it already was) or failed.
using award_atom = caf::atom_constant<caf::atom("award")>;
/// Buyer: (withdraw_atom, order_id, reason) cancels a component order (no
/// answer). Capacity broker: (withdraw_atom, offer_id) -> publish_reply.
using withdraw_atom = caf::atom_constant<caf::atom("withdraw")>;

// The participant's calendars, asked by the capacity broker (capacity.cpp).
// The participant changes the calendar in memory; the broker commits the
// hold and booking records with the step they belong to.
/// (hold_atom, resource, reservation_id, units, from_us, horizon_us, deadline_us) -> probe_result
using hold_atom = caf::atom_constant<caf::atom("hold")>;
/// (release_atom, resource, reservation_id): releases a hold or booking (no answer)
using release_atom = caf::atom_constant<caf::atom("release")>;
/// (expire_atom): the participant's timer: releases holds past their deadline.
using expire_atom = caf::atom_constant<caf::atom("expire")>;
/// (check_atom) -> std::string: "" if every calendar's invariant holds, else why.
using check_atom = caf::atom_constant<caf::atom("check")>;

/// Answer of probe/hold: where the work would go (or went).
struct probe_result {
  bool found = false;
  placement where;
};

// Capacity broker (capacity.cpp).
/// (split_atom, resource, hold_id, booking_id, units) -> offer_split: asked of
/// the participant; split_offer_hold on that calendar (in memory, like hold).
using split_atom = caf::atom_constant<caf::atom("split")>;
/// (publish_atom, publish_request) -> publish_reply
using publish_atom = caf::atom_constant<caf::atom("publish")>;
/// (reserve_atom, book_request) -> book_reply
using reserve_atom = caf::atom_constant<caf::atom("reserve")>;
/// (sweep_atom): the broker's timer; erases received offers that expired.
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
/// (broker_atom, caf::actor): tells the participant the node's capacity
/// broker (sent once by install_roles).
using broker_atom = caf::atom_constant<caf::atom("broker")>;
/// (capacity_cancel_atom, resource, reservation_ids, reason): the participant
/// tells the broker that these capacity bookings lie where `resource` is out
/// of service; the broker cancels the granted ones (no answer).
using capacity_cancel_atom = caf::atom_constant<caf::atom("capcancel")>;

// Executor (executor.cpp).
/// (execute_atom, execution_record): a contract the participant just recorded.
using execute_atom = caf::atom_constant<caf::atom("execute")>;
/// (post_atom, contract_id, posted_event) -> post_reply, once durable.
using post_atom = caf::atom_constant<caf::atom("post")>;
/// (progress_atom, parent_buyer, parent_order_id): the buyer recorded a
/// production event of a component contract of that upstream order.
using progress_atom = caf::atom_constant<caf::atom("progress")>;
/// (executor_atom, caf::actor): tells the participant and the buyer the
/// node's executor (sent once by install_roles).
using executor_atom = caf::atom_constant<caf::atom("executor")>;
/// (replan_atom, replan_record): the participant re-planned or cancelled a
/// sold contract and committed the record (table "replans"); the executor
/// reports it to the buyer and erases the record in one commit.
using replan_atom = caf::atom_constant<caf::atom("replan")>;

// Disruptions (outage.hpp).
/// (participant_atom, caf::actor): tells the buyer the node's participant.
using participant_atom = caf::atom_constant<caf::atom("particip")>;
/// (component_lost_atom, parent_buyer, parent_order_id, component_order_id,
/// reason): the buyer could not source a component order again after its
/// seller cancelled; the participant cancels the upstream contract it backs.
using component_lost_atom = caf::atom_constant<caf::atom("complost")>;
/// (outage_atom, outage_request) -> outage_reply, once durable.
using outage_atom = caf::atom_constant<caf::atom("outage")>;

}  // namespace gearmesh::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::order_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::order_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::probe_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::component_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::component_quote)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::component_award)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::offer_split)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::publish_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::publish_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::book_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::book_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::execution_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::posted_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::post_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::replan_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::outage_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::outage_reply)
