// The durable records of the domain actors and the tables holding them.
//
// Values are FlatBuffers tables of schemas/records.fbs (file identifier
// "GMRC"), encoded and verified by the store::codec<T> specialisations below;
// FlatBuffers types never leave records.cpp. Tables (LMDB sub-databases):
//
//   "orders"     key = order id ("velo/order/17")          value = order_record   (buyer)
//   "contracts"  key = contract id ("velo/order/17/c1")     value = contract_record (both)
//   "offers"     key = proposal id ("framecraft/proposal/4") value = offer_record  (seller)
//   "holds"      key = "<resource>/<reservation id>"       value = reservation_record, kind hold
//   "bookings"   key = "<resource>/<reservation id>"       value = reservation_record, kind booking
//   "tombstones" key = contract id                          value = tombstone_record (seller)
//   "seq"        key = counter name ("order", "proposal")   value = counter_record
//   "resources"  key = resource id ("saw1", "BATTERY")       value = resource_record (seller)
//   "capacity_offers"   key = offer id ("framecraft/capacity/2")  value = capacity_offer_record
//   (publisher) "capacity_received" key = offer id                        value =
//   capacity_offer_record (partner) "capacity_bookings" key = booking id ("velo/booking/4")   value
//   = capacity_booking_record (booker) "capacity_sold"     key = "<booker>/<booking id>" value =
//   capacity_booking_record (publisher)
//   "executions" key = contract id   value = execution_record (seller: production events sent)
//   "progress"   key = contract id   value = progress_record  (buyer: latest event received)
//   "outages"    key = outage id ("framecraft/outage/3")  value = outage_record (factory)
//   "replans"    key = "<contract id>#<n, 20 digits>"     value = replan_record (seller:
//                re-plans the executor has not yet reported to the buyer)
//
// The holds a participant places for a proposal are carried by its offer
// (reservation_ref::carried: placement in the offer, deadline its
// valid_until_us) and have no "holds" record: one write per proposal instead
// of one per machine, and nothing to erase when the offer is rejected or
// lapses. A held offer's carried holds are put back into the calendars at
// start and count for verify and the KPIs until its deadline. Stores written
// before that keep their "holds" records, which still load and count (a hold
// in both places counts once). Bookings always have their records.
// Capacity offers (capacity.hpp) reserve their unbooked units as the hold
// "<offer id>#open" and each granted booking n as the booking "<offer id>#b<n>"
// in the calendars' "holds"/"bookings" tables.
// "resources" holds each calendar's capacity and bucket length as configured
// when the node last started, and the runtime's "meta" table holds the node's
// id under key "node_id" (meta_node_id_key); install_roles writes both at
// start, only when they changed. The actors never read them back: they are
// for `gearmesh verify` (verify.hpp) and the KPIs (kpis.hpp: capacities and
// machines' energy rates), online (GET /v1/kpis) and offline.
//
// A resource is a machine id (factory) or an item id (supplier); resource ids
// never contain '/', so "<resource>/" is the key prefix of one calendar.
//
// Threading: these are plain values; codecs are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/store/store.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

/// Buyer-side state of an order (the initiator's negotiation).
/// `ready`: a component order (nested negotiation) whose proposals are in and
/// ranked; it awards only when told (initiator::award) and gives up at award_by_us.
enum class order_state : std::uint8_t {
  negotiating,
  awarded,
  contracted,
  failed,
  cancelled,
  ready
};
/// Buyer-side state of one seller's answer.
enum class proposal_state : std::uint8_t { received, accepted, rejected, failed, refused };
enum class contract_role : std::uint8_t { buyer, seller };
enum class contract_state : std::uint8_t { active, cancelled };
/// Seller-side state of a proposal. A held offer past valid_until_us is
/// expired; that is computed, not stored.
enum class offer_state : std::uint8_t { held, contracted, rejected, cancelled, failed };
enum class reservation_kind : std::uint8_t { hold, booking };

/// Lower-case names as used by the admin API ("negotiating", "received", ...).
const char* to_string(order_state s) noexcept;
const char* to_string(proposal_state s) noexcept;
const char* to_string(contract_role r) noexcept;
const char* to_string(contract_state s) noexcept;
const char* to_string(offer_state s) noexcept;
const char* to_string(reservation_kind k) noexcept;

/// One seller's answer to a CFP as the buyer recorded it.
struct proposal_record {
  std::string seller;
  std::string proposal_id;  // empty for a refusal
  std::int64_t price_cents = 0;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  timestamp_us valid_until_us = 0;
  timestamp_us received_us = 0;
  proposal_state state = proposal_state::received;
  std::string reason;
  std::string contract_id;  // set once an Accept named this proposal
  std::uint32_t round = 0;  // the order's sourcing round it answers
  bool operator==(const proposal_record&) const = default;
};

/// Table "orders": the buyer's whole state of one order.
struct order_record {
  std::string order_id;
  std::string item;
  std::uint32_t quantity = 0;
  timestamp_us due_us = 0;
  timestamp_us earliest_start_us = 0;
  std::int64_t max_price_cents = 0;  // 0 = no ceiling
  std::string currency;
  std::vector<wire::attribute> attributes;
  timestamp_us created_us = 0;
  timestamp_us reply_by_us = 0;
  timestamp_us confirm_timeout_us = 0;
  order_state state = order_state::negotiating;
  std::string reason;
  std::vector<std::string> sellers;        // asked with a CFP
  std::vector<proposal_record> proposals;  // arrival order
  std::string contract_id;                 // of the current/last Accept
  std::string awarded_proposal_id;
  timestamp_us confirm_deadline_us = 0;
  std::uint32_t accepts_sent = 0;
  /// Nested negotiation: the upstream buyer and order this component order
  /// serves (empty for a top-level order), and until when it waits for the
  /// award in state `ready` (0: it awards the best proposal at once).
  std::string parent_buyer;
  std::string parent_order_id;
  timestamp_us award_by_us = 0;
  /// Set by initiator::award: a proposal promising delivery later than this
  /// is not accepted (the upstream proposal was planned on that arrival).
  timestamp_us need_by_us = 0;
  /// Sourcing rounds started after the first because a seller cancelled the
  /// contract (docs/protocol.md 6.8); proposals carry the round they answer.
  std::uint32_t round = 0;
  bool operator==(const order_record&) const = default;
};

/// Table "contracts": the agreed terms. Buyer and seller store the same terms
/// (all fields but `role` are equal at both ends).
struct contract_record {
  std::string contract_id;
  std::string order_id;
  std::string buyer;
  std::string seller;
  contract_role role = contract_role::buyer;
  std::string item;
  std::uint32_t quantity = 0;
  std::int64_t price_cents = 0;
  std::string currency;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  contract_state state = contract_state::active;
  std::string proposal_id;
  bool operator==(const contract_record&) const = default;
  /// Equal terms, ignoring `role` (the agreement invariant).
  bool same_terms(const contract_record& o) const;
};

/// Capacity units taken from one calendar bucket.
struct allocation {
  std::int64_t bucket = 0;  // floor(time / bucket length)
  std::int64_t units = 0;
  bool operator==(const allocation&) const = default;
};

/// Names one reservation in one resource's calendar. A hold placed for a
/// held offer is carried by the offer itself: `allocations` (with `start_us`
/// and `end_us`) is its placement and the offer's valid_until_us its
/// deadline, and "holds" has no record of it. Empty `allocations`: the
/// reservation's record is in "holds" or "bookings".
struct reservation_ref {
  std::string resource;
  std::string reservation_id;
  timestamp_us start_us = 0;
  timestamp_us end_us = 0;
  std::vector<allocation> allocations{};
  bool carried() const noexcept { return !allocations.empty(); }
  bool operator==(const reservation_ref&) const = default;
};

/// Table "offers": a participant's proposal and the reservations backing it.
struct offer_record {
  std::string proposal_id;
  std::string order_id;
  std::string buyer;
  std::string item;
  std::uint32_t quantity = 0;
  std::string currency;
  timestamp_us earliest_start_us = 0;
  timestamp_us due_us = 0;
  std::int64_t price_cents = 0;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  timestamp_us valid_until_us = 0;  // hold deadline
  offer_state state = offer_state::held;
  std::string contract_id;
  std::string reason;
  std::vector<reservation_ref> reservations;
  /// Component orders of this node's buyer that back the proposal (nested
  /// negotiation): awarded with it, cancelled when it ends otherwise.
  std::vector<std::string> sub_orders;
  /// When the seller itself cancelled the contract (a breakdown, a component
  /// it could not source again); 0 otherwise.
  timestamp_us ended_us = 0;
  bool operator==(const offer_record&) const = default;
};

/// Tables "holds" and "bookings": one reservation in one resource's calendar.
struct reservation_record {
  std::string resource;
  std::string reservation_id;
  reservation_kind kind = reservation_kind::hold;
  timestamp_us deadline_us = 0;  // holds only
  timestamp_us start_us = 0;
  timestamp_us end_us = 0;
  std::vector<allocation> allocations;
  bool operator==(const reservation_record&) const = default;
};

/// Table "seq": a next-id counter.
struct counter_record {
  std::uint64_t value = 0;
  bool operator==(const counter_record&) const = default;
};

/// Table "tombstones": a Cancel for a contract this participant never confirmed.
struct tombstone_record {
  std::string contract_id;
  std::string buyer;
  std::string order_id;
  timestamp_us at_us = 0;
  bool operator==(const tombstone_record&) const = default;
};

/// Table "resources": one calendar's definition (see the top of this file).
struct resource_record {
  std::string id;
  std::int64_t capacity = 0;   // units per bucket
  timestamp_us bucket_us = 0;  // bucket length
  /// Energy one hour of work on the resource takes (a factory machine's
  /// energy_wh_per_hour; 0 = unknown, and always 0 for a supplier's items).
  /// Read by the KPIs (kpis.hpp): a booked unit of a machine is one minute.
  std::int64_t energy_wh_per_hour = 0;
  bool operator==(const resource_record&) const = default;
};

/// A published capacity offer; a held offer past valid_until_us is expired
/// (computed, not stored).
enum class capacity_offer_state : std::uint8_t { open, withdrawn };
/// A capacity booking: asked for (booker only), booked, or refused.
/// cancelled: granted, then cancelled by its publisher (the machine went out
/// of service over the booked window); the terms stay as they were booked.
enum class capacity_booking_state : std::uint8_t { requested, booked, refused, cancelled };
const char* to_string(capacity_offer_state s) noexcept;
const char* to_string(capacity_booking_state s) noexcept;

/// Tables "capacity_offers" and "capacity_received" (see the top of this file).
struct capacity_offer_record {
  std::string offer_id;
  std::string publisher;
  std::string capability;
  timestamp_us window_start_us = 0;
  timestamp_us window_end_us = 0;
  std::uint32_t units = 0;
  std::uint32_t remaining = 0;
  std::int64_t unit_price_cents = 0;
  std::string currency;
  timestamp_us valid_until_us = 0;
  std::uint32_t revision = 0;
  capacity_offer_state state = capacity_offer_state::open;
  std::string resource;               // publisher only
  std::uint32_t bookings = 0;         // publisher only
  std::vector<std::string> audience;  // publisher only
  timestamp_us updated_us = 0;
  bool operator==(const capacity_offer_record&) const = default;
};

/// Tables "capacity_bookings" and "capacity_sold" (see the top of this file).
/// Booker and publisher store the same terms once booked (agreement).
struct capacity_booking_record {
  std::string booking_id;
  std::string offer_id;
  std::string publisher;
  std::string booker;
  capacity_booking_state state = capacity_booking_state::requested;
  std::string reason;
  std::string capability;
  std::uint32_t units = 0;
  std::int64_t price_cents = 0;
  std::string currency;
  timestamp_us window_start_us = 0;
  timestamp_us window_end_us = 0;
  std::uint32_t remaining = 0;
  std::string resource;        // publisher only
  std::string reservation_id;  // publisher only
  timestamp_us created_us = 0;
  bool operator==(const capacity_booking_record&) const = default;
};

/// Table "executions" (seller): the execution of one contract this node sold
/// (actors/include/gearmesh/actors/execution.hpp has the rules).
struct execution_record {
  std::string contract_id;
  std::string order_id;
  std::string buyer;
  std::string proposal_id;
  std::string item;
  std::uint32_t quantity = 0;
  timestamp_us planned_start_us = 0;  // first booking's start, as contracted
  timestamp_us planned_end_us = 0;    // last booking's end, as contracted
  timestamp_us promised_due_us = 0;
  wire::contract_progress state = wire::contract_progress::contracted;
  std::uint32_t sequence = 0;  // of the last event sent
  timestamp_us started_us = 0;
  timestamp_us completed_us = 0;
  timestamp_us delivered_us = 0;
  timestamp_us delay_us = 0;  // the plan slipped by this much (>= 0)
  std::string reason;         // of the last delay
  bool shop_floor = false;    // only posted events advance it
  std::vector<std::string> sub_orders;
  bool operator==(const execution_record&) const = default;
};

/// Table "progress" (buyer): the latest production event received for a
/// contract this node bought (the one with the highest sequence).
struct progress_record {
  std::string contract_id;
  std::string seller;
  timestamp_us received_us = 0;
  wire::production_event event;
  bool operator==(const progress_record&) const = default;
};

/// A machine breakdown or a maintenance window.
enum class outage_kind : std::uint8_t { breakdown, maintenance };
/// What an outage did to a contract it touched.
enum class replan_outcome : std::uint8_t { rescheduled, delayed, cancelled };
/// What the executor reports for a re-plan: a new plan (Progress or
/// Delayed, by when the work now ends) or the end of the contract.
enum class replan_kind : std::uint8_t { rescheduled, cancelled };
const char* to_string(outage_kind k) noexcept;
const char* to_string(replan_outcome o) noexcept;

/// One contract an outage touched.
struct outage_effect {
  std::string contract_id;
  replan_outcome outcome = replan_outcome::rescheduled;
  timestamp_us expected_due_us = 0;  // 0 if cancelled
  bool operator==(const outage_effect&) const = default;
};

/// Table "outages" (factory): a machine down for a window (outage.hpp).
struct outage_record {
  std::string outage_id;
  std::string resource;
  outage_kind kind = outage_kind::breakdown;
  timestamp_us from_us = 0;  // [from_us, until_us) as asked
  timestamp_us until_us = 0;
  std::int64_t first_bucket = 0;  // blocked buckets, inclusive
  std::int64_t last_bucket = 0;
  std::string reason;
  std::int32_t health_score = -1;  // the score that opened it; -1 = none
  timestamp_us created_us = 0;
  timestamp_us ended_us = 0;  // declared up early; 0 = not
  std::uint32_t holds_moved = 0;
  std::uint32_t holds_released = 0;
  std::vector<outage_effect> effects;
  bool operator==(const outage_record&) const = default;
};

/// Table "replans" (seller): a re-plan the executor has yet to report.
struct replan_record {
  std::string contract_id;
  std::uint64_t number = 0;
  replan_kind kind = replan_kind::rescheduled;
  timestamp_us planned_start_us = 0;
  timestamp_us planned_end_us = 0;
  std::string reason;
  timestamp_us at_us = 0;
  bool operator==(const replan_record&) const = default;
};

/// Key of a replan record: "<contract id>#<number, 20 digits>".
std::string replan_key(std::string_view contract_id, std::uint64_t number);

/// Key of the node's id in the runtime's "meta" table.
inline constexpr std::string_view meta_node_id_key = "node_id";

namespace tables {
inline constexpr store::table<order_record> orders{"orders"};
inline constexpr store::table<contract_record> contracts{"contracts"};
inline constexpr store::table<offer_record> offers{"offers"};
inline constexpr store::table<reservation_record> holds{"holds"};
inline constexpr store::table<reservation_record> bookings{"bookings"};
inline constexpr store::table<tombstone_record> tombstones{"tombstones"};
inline constexpr store::table<counter_record> seq{"seq"};
inline constexpr store::table<resource_record> resources{"resources"};
inline constexpr store::table<capacity_offer_record> capacity_offers{"capacity_offers"};
inline constexpr store::table<capacity_offer_record> capacity_received{"capacity_received"};
inline constexpr store::table<capacity_booking_record> capacity_bookings{"capacity_bookings"};
inline constexpr store::table<capacity_booking_record> capacity_sold{"capacity_sold"};
inline constexpr store::table<execution_record> executions{"executions"};
inline constexpr store::table<progress_record> progress{"progress"};
inline constexpr store::table<outage_record> outages{"outages"};
inline constexpr store::table<replan_record> replans{"replans"};
}  // namespace tables

/// Key of a reservation in "holds"/"bookings": "<resource>/<reservation id>".
std::string reservation_key(std::string_view resource, std::string_view reservation_id);

/// Whether the encoded offer `bytes` is held with its deadline not before
/// `now` (so it may carry live holds), read without decoding the whole
/// record; false if it does not verify. A filter for scans of "offers".
bool offer_held_at(std::string_view bytes, timestamp_us now);

}  // namespace gearmesh::actors

namespace gearmesh::store {

// Each codec: encode never fails; decode verifies the buffer (identifier
// "GMRC", flatbuffers::Verifier) and returns errc::storage on corruption.
template <>
struct codec<actors::order_record> {
  static std::string encode(const actors::order_record& v);
  static result<actors::order_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::contract_record> {
  static std::string encode(const actors::contract_record& v);
  static result<actors::contract_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::offer_record> {
  static std::string encode(const actors::offer_record& v);
  static result<actors::offer_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::reservation_record> {
  static std::string encode(const actors::reservation_record& v);
  static result<actors::reservation_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::counter_record> {
  static std::string encode(const actors::counter_record& v);
  static result<actors::counter_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::tombstone_record> {
  static std::string encode(const actors::tombstone_record& v);
  static result<actors::tombstone_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::resource_record> {
  static std::string encode(const actors::resource_record& v);
  static result<actors::resource_record> decode(std::string_view bytes);
};

template <>
struct codec<actors::capacity_offer_record> {
  static std::string encode(const actors::capacity_offer_record& v);
  static result<actors::capacity_offer_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::capacity_booking_record> {
  static std::string encode(const actors::capacity_booking_record& v);
  static result<actors::capacity_booking_record> decode(std::string_view bytes);
};

template <>
struct codec<actors::execution_record> {
  static std::string encode(const actors::execution_record& v);
  static result<actors::execution_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::progress_record> {
  static std::string encode(const actors::progress_record& v);
  static result<actors::progress_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::outage_record> {
  static std::string encode(const actors::outage_record& v);
  static result<actors::outage_record> decode(std::string_view bytes);
};
template <>
struct codec<actors::replan_record> {
  static std::string encode(const actors::replan_record& v);
  static result<actors::replan_record> decode(std::string_view bytes);
};

}  // namespace gearmesh::store
