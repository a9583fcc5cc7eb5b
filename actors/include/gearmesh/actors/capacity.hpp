// Capacity sharing: a factory publishes spare capacity, partners book it.
//
// One capacity broker actor per node (docs/protocol.md section 6.5) plays
// both sides:
//
// Publisher (a node with a factory role). publish(): reserves the offered
//   units on one machine with the capability, as the hold "<offer id>#open"
//   in that machine's calendar (deadline = valid_until_us), so CFP quoting at
//   the same factory can never promise them again (invariant 1). Commits the
//   offer ("capacity_offers"), the hold record and one CapacityOffer per
//   partner of the audience (the [[peers]] whose send list allows
//   capacity_offer) in one step. BookCapacity from a partner of the audience:
//   the participant (which owns the calendars) moves `units` of the hold into the booking
//   "<offer id>#b<n>" (one atomic step of that actor: split_offer_hold); the
//   broker commits the decremented offer, the booking ("capacity_sold"), the
//   reservation records, the CapacityBooked reply and a CapacityOffer with the
//   new `remaining` to every partner of the audience, all in the commit that
//   records the inbound BookCapacity (exactly-once: a duplicate is answered
//   by the runtime with the stored reply; a new message naming the same
//   booking id gets the stored answer again). The broker handles one
//   BookCapacity at a time, to the end (request(...).await), so two bookings
//   never see the same `remaining`: no offer is ever over-sold.
//   An offer past valid_until_us is expired: the machine's calendar releases
//   the hold by itself (timer, and lazily), bookings after it are refused.
//   An outage of the machine (outage.hpp) over a granted booking cancels it:
//   the participant names the bookings its window covers, and the broker
//   commits each as cancelled (the reason kept, its reservation record
//   erased) with a CapacityCancelled to the booker, then has the participant
//   release them from the calendar. The units do not return to the offer.
//
// Partner. Stores received offers ("capacity_received", highest revision
//   wins, expired ones are erased by a timer), and books them: book() commits
//   the booking as requested ("capacity_bookings", id "<node id>/booking/<n>")
//   with the BookCapacity, then records the publisher's answer (booked with
//   its terms, or refused with the reason) when it arrives, and a later
//   CapacityCancelled (cancelled with the reason, terms kept).
//
// Threading: spawn and the blocking helpers are called from one controlling
// thread (install, admin handlers); the actor runs on CAF's scheduler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::actors {

/// A calendar that can carry capacity offers, and what it can do.
struct capacity_resource {
  std::string id;  // resource id of the participant's calendar
  std::vector<std::string> capabilities;
};

struct capacity_config {
  /// Currency of the offers' prices (the factory's).
  std::string currency = "EUR";
  /// Machines offers may reserve on; empty: this node publishes nothing.
  std::vector<capacity_resource> resources;
  /// Partners every offer is sent to: the [[peers]] whose send list allows
  /// capacity_offer. Only they may book it.
  std::vector<std::string> audience;
  /// The participant owning the calendars (null: no publishing).
  caf::actor participant;
};

/// POST /v1/capacity/offers.
struct publish_request {
  std::string capability;
  timestamp_us window_start_us = 0;
  timestamp_us window_end_us = 0;
  std::uint32_t units = 0;
  std::int64_t unit_price_cents = 0;
  timestamp_us valid_until_us = 0;  // 0 = window_start_us
  std::string resource;             // empty = the first capable machine where it fits
};

struct publish_reply {
  unsigned http_status = 504;  // 201 once the offer and its messages are durable
  std::string error;
  capacity_offer_record offer;
};

/// POST /v1/capacity/bookings.
struct book_request {
  std::string offer_id;
  std::uint32_t units = 0;
};

struct book_reply {
  /// 201 booked, 409 refused (booking.reason), 404 unknown offer, 410 offer
  /// expired or withdrawn, 400 bad input, 504 no answer in time.
  unsigned http_status = 504;
  std::string error;
  capacity_booking_record booking;
};

/// Spawns the broker; rebuilds its state from the store. `ctx` must outlive it.
/// Errors: errc::storage if stored state cannot be read.
result<caf::actor> spawn_capacity_broker(caf::actor_system& sys, node_context& ctx,
                                         capacity_config cfg);

/// Asks `broker` to publish an offer; blocks up to `timeout`.
publish_reply publish_offer(caf::actor_system& sys, const caf::actor& broker, publish_request req,
                            std::chrono::milliseconds timeout);

/// Asks `broker` to withdraw an offer it published: its unbooked units go
/// back to the calendar, partners get the withdrawn revision; granted
/// bookings stay. 200 (also if already withdrawn), 404 unknown offer.
publish_reply withdraw_offer(caf::actor_system& sys, const caf::actor& broker, std::string offer_id,
                             std::chrono::milliseconds timeout);

/// Asks `broker` to book an offer it received; blocks until the publisher's
/// answer is durable here, or up to `timeout` (504: the booking stays
/// "requested" and is completed when the answer arrives).
book_reply book_offer(caf::actor_system& sys, const caf::actor& broker, book_request req,
                      std::chrono::milliseconds timeout);

/// publish_offer and book_offer for a caller that must not block (the
/// simulator): `done` runs on an actor of `sys` with the reply (504 once
/// `timeout` passes, 503 if the broker is gone).
void submit_publish(caf::actor_system& sys, const caf::actor& broker, publish_request req,
                    std::chrono::milliseconds timeout, std::function<void(publish_reply)> done);
void submit_book(caf::actor_system& sys, const caf::actor& broker, book_request req,
                 std::chrono::milliseconds timeout, std::function<void(book_reply)> done);

// --- reservations of offers (pure) -----------------------------------------

/// "<offer id>#open": the unbooked units of an offer (a hold).
std::string offer_hold_id(std::string_view offer_id);
/// "<offer id>#b<n>": the n-th booking granted on an offer (a booking).
std::string offer_booking_id(std::string_view offer_id, std::uint32_t n);
/// Whether `reservation_id` belongs to a capacity offer ("<node>/capacity/...";
/// node ids never contain '/', proposal reservations are "<node>/proposal/...").
bool is_capacity_reservation(std::string_view reservation_id);
/// Whether the stored records still back capacity reservation `reservation_id`
/// of kind `kind` (used on start to release orphans, and by `gearmesh verify`):
/// "#open" holds need an open offer, "#b<n>" bookings an offer with >= n bookings.
result<bool> capacity_reservation_backed(const store::environment& env,
                                         std::string_view reservation_id, reservation_kind kind);

/// What split_offer_hold did.
struct offer_split {
  bool ok = false;
  std::string reason;  // why not
  placement booked;    // the new booking
  placement rest;      // the hold left (no allocations: the hold is gone)
  timestamp_us deadline_us = 0;
};

/// Moves the first `units` units of hold `hold_id` into the booking
/// `booking_id` and keeps the rest as the same hold (same deadline); drops
/// the hold if nothing is left. Atomic: on error nothing changes. The units
/// stay on the same buckets, so booked + held never grows.
offer_split split_offer_hold(capacity_calendar& cal, const std::string& hold_id,
                             const std::string& booking_id, std::int64_t units);

}  // namespace gearmesh::actors
