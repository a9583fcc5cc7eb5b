// Codecs of the actor records: plain structs <-> schemas/records.fbs.
#include "gearmesh/actors/records.hpp"

#include <cstring>
#include <memory>

#include <flatbuffers/flatbuffers.h>

#include "gearmesh/wire/codec.hpp"
#include "gearmesh/wire/records_generated.h"

namespace gearmesh::actors {

namespace fb = gearmesh::records;

const char* to_string(order_state s) noexcept {
  switch (s) {
    case order_state::negotiating:
      return "negotiating";
    case order_state::awarded:
      return "awarded";
    case order_state::contracted:
      return "contracted";
    case order_state::failed:
      return "failed";
    case order_state::cancelled:
      return "cancelled";
    case order_state::ready:
      return "ready";
  }
  return "unknown";
}

const char* to_string(proposal_state s) noexcept {
  switch (s) {
    case proposal_state::received:
      return "received";
    case proposal_state::accepted:
      return "accepted";
    case proposal_state::rejected:
      return "rejected";
    case proposal_state::failed:
      return "failed";
    case proposal_state::refused:
      return "refused";
  }
  return "unknown";
}

const char* to_string(contract_role r) noexcept {
  return r == contract_role::buyer ? "buyer" : "seller";
}

const char* to_string(contract_state s) noexcept {
  return s == contract_state::active ? "active" : "cancelled";
}

const char* to_string(offer_state s) noexcept {
  switch (s) {
    case offer_state::held:
      return "held";
    case offer_state::contracted:
      return "contracted";
    case offer_state::rejected:
      return "rejected";
    case offer_state::cancelled:
      return "cancelled";
    case offer_state::failed:
      return "failed";
  }
  return "unknown";
}

const char* to_string(reservation_kind k) noexcept {
  return k == reservation_kind::hold ? "hold" : "booking";
}

const char* to_string(capacity_offer_state s) noexcept {
  return s == capacity_offer_state::open ? "open" : "withdrawn";
}

const char* to_string(capacity_booking_state s) noexcept {
  switch (s) {
    case capacity_booking_state::requested:
      return "requested";
    case capacity_booking_state::booked:
      return "booked";
    case capacity_booking_state::cancelled:
      return "cancelled";
    case capacity_booking_state::refused:
      return "refused";
  }
  return "unknown";
}

bool contract_record::same_terms(const contract_record& o) const {
  auto a = *this;
  a.role = o.role;
  return a == o;
}

const char* to_string(outage_kind k) noexcept {
  return k == outage_kind::breakdown ? "breakdown" : "maintenance";
}

const char* to_string(replan_outcome o) noexcept {
  switch (o) {
    case replan_outcome::rescheduled:
      return "rescheduled";
    case replan_outcome::delayed:
      return "delayed";
    case replan_outcome::cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string replan_key(std::string_view contract_id, std::uint64_t number) {
  std::string k(contract_id);
  k += '#';
  k += store::key_u64(number);
  return k;
}

std::string reservation_key(std::string_view resource, std::string_view reservation_id) {
  std::string k;
  k.reserve(resource.size() + 1 + reservation_id.size());
  k.append(resource).push_back('/');
  k.append(reservation_id);
  return k;
}

namespace {

// Enum values of the schema and of records.hpp are numbered alike; these
// conversions check the range so that a value written by a newer version
// (an appended enum value) is reported instead of misread.
template <class To, class From>
bool enum_in_range(From v, To last) {
  return static_cast<unsigned>(v) <= static_cast<unsigned>(last);
}

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string{};
}

std::string finish(flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

status corrupt(const char* what) {
  return {errc::storage, std::string("corrupt ") + what + " record"};
}

/// The calling thread's builder, cleared: its buffer is kept from one
/// record to the next (encoding allocates only the result string).
flatbuffers::FlatBufferBuilder& builder() {
  thread_local flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.Clear();
  return fbb;
}

/// `s`, or no string at all if empty (as the object API's Pack does).
flatbuffers::Offset<flatbuffers::String> opt_string(flatbuffers::FlatBufferBuilder& fbb,
                                                    const std::string& s) {
  return s.empty() ? 0 : fbb.CreateString(s);
}

/// Verifies `bytes` as a T root and calls `read(const T&)`. LMDB values are
/// only 2-byte aligned, so misaligned input is copied first.
template <class T, class Read>
auto verified(std::string_view bytes, const char* what, Read&& read)
    -> decltype(read(std::declval<const T&>())) {
  std::unique_ptr<std::uint64_t[]> copy;
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(std::uint64_t) != 0) {
    copy = std::make_unique<std::uint64_t[]>(bytes.size() / 8 + 1);
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    data = reinterpret_cast<const std::uint8_t*>(copy.get());
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 8;
  opts.max_tables = 1u << 20;
  flatbuffers::Verifier v(data, bytes.size(), opts);
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(data, fb::OrderIdentifier()) ||
      !v.VerifyBuffer<T>(fb::OrderIdentifier()))
    return corrupt(what);
  return read(*flatbuffers::GetRoot<T>(data));
}

}  // namespace

bool offer_held_at(std::string_view bytes, timestamp_us now) {
  auto held = verified<fb::Offer>(bytes, "offer", [now](const fb::Offer& r) -> result<bool> {
    return r.state() == fb::OfferState::Held && now <= r.valid_until_us();
  });
  return held && *held;
}

}  // namespace gearmesh::actors

namespace gearmesh::store {

using namespace gearmesh::actors;

// --- order ---------------------------------------------------------------

std::string codec<order_record>::encode(const order_record& v) {
  // Built directly (no OrderT copy), in the order Order::Pack creates its
  // parts, so the bytes are those Pack would give.
  auto& fbb = builder();
  auto order_id = opt_string(fbb, v.order_id);
  auto item = opt_string(fbb, v.item);
  auto currency = opt_string(fbb, v.currency);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Attribute>>> attributes;
  if (!v.attributes.empty()) {
    std::vector<flatbuffers::Offset<fb::Attribute>> a;
    a.reserve(v.attributes.size());
    for (const auto& x : v.attributes) {
      auto key = opt_string(fbb, x.key);
      auto value = opt_string(fbb, x.value);
      a.push_back(fb::CreateAttribute(fbb, key, value));
    }
    attributes = fbb.CreateVector(a);
  }
  auto reason = opt_string(fbb, v.reason);
  auto sellers = v.sellers.empty() ? 0 : fbb.CreateVectorOfStrings(v.sellers);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Proposal>>> proposals;
  if (!v.proposals.empty()) {
    std::vector<flatbuffers::Offset<fb::Proposal>> ps;
    ps.reserve(v.proposals.size());
    for (const auto& p : v.proposals) {
      auto seller = opt_string(fbb, p.seller);
      auto proposal_id = opt_string(fbb, p.proposal_id);
      auto p_reason = opt_string(fbb, p.reason);
      auto contract_id = opt_string(fbb, p.contract_id);
      ps.push_back(fb::CreateProposal(fbb, seller, proposal_id, p.price_cents, p.promised_start_us,
                                      p.promised_due_us, p.valid_until_us, p.received_us,
                                      static_cast<fb::ProposalState>(p.state), p_reason,
                                      contract_id, p.round));
    }
    proposals = fbb.CreateVector(ps);
  }
  auto contract_id = opt_string(fbb, v.contract_id);
  auto awarded_proposal_id = opt_string(fbb, v.awarded_proposal_id);
  auto parent_buyer = opt_string(fbb, v.parent_buyer);
  auto parent_order_id = opt_string(fbb, v.parent_order_id);
  fbb.Finish(fb::CreateOrder(fbb, order_id, item, v.quantity, v.due_us, v.earliest_start_us,
                             v.max_price_cents, currency, attributes, v.created_us, v.reply_by_us,
                             v.confirm_timeout_us, static_cast<fb::OrderState>(v.state), reason,
                             sellers, proposals, contract_id, awarded_proposal_id,
                             v.confirm_deadline_us, v.accepts_sent, parent_buyer, parent_order_id,
                             v.award_by_us, v.need_by_us, v.round),
             fb::OrderIdentifier());
  return finish(fbb);
}

result<order_record> codec<order_record>::decode(std::string_view bytes) {
  return verified<fb::Order>(bytes, "order", [](const fb::Order& r) -> result<order_record> {
    if (!enum_in_range(r.state(), fb::OrderState::Ready)) return corrupt("order");
    order_record v;
    v.order_id = str(r.order_id());
    v.item = str(r.item());
    v.quantity = r.quantity();
    v.due_us = r.due_us();
    v.earliest_start_us = r.earliest_start_us();
    v.max_price_cents = r.max_price_cents();
    v.currency = str(r.currency());
    if (r.attributes())
      for (const auto* a : *r.attributes())
        v.attributes.push_back({str(a->key()), str(a->value())});
    v.created_us = r.created_us();
    v.reply_by_us = r.reply_by_us();
    v.confirm_timeout_us = r.confirm_timeout_us();
    v.state = static_cast<order_state>(r.state());
    v.reason = str(r.reason());
    if (r.sellers())
      for (const auto* s : *r.sellers()) v.sellers.push_back(str(s));
    if (r.proposals()) {
      for (const auto* p : *r.proposals()) {
        if (!enum_in_range(p->state(), fb::ProposalState::Refused)) return corrupt("order");
        proposal_record pr;
        pr.seller = str(p->seller());
        pr.proposal_id = str(p->proposal_id());
        pr.price_cents = p->price_cents();
        pr.promised_start_us = p->promised_start_us();
        pr.promised_due_us = p->promised_due_us();
        pr.valid_until_us = p->valid_until_us();
        pr.received_us = p->received_us();
        pr.state = static_cast<proposal_state>(p->state());
        pr.reason = str(p->reason());
        pr.contract_id = str(p->contract_id());
        pr.round = p->round();
        v.proposals.push_back(std::move(pr));
      }
    }
    v.contract_id = str(r.contract_id());
    v.awarded_proposal_id = str(r.awarded_proposal_id());
    v.confirm_deadline_us = r.confirm_deadline_us();
    v.accepts_sent = r.accepts_sent();
    v.parent_buyer = str(r.parent_buyer());
    v.parent_order_id = str(r.parent_order_id());
    v.award_by_us = r.award_by_us();
    v.need_by_us = r.need_by_us();
    v.round = r.round();
    return v;
  });
}

// --- contract ------------------------------------------------------------

std::string codec<contract_record>::encode(const contract_record& v) {
  fb::ContractT t;
  t.contract_id = v.contract_id;
  t.order_id = v.order_id;
  t.buyer = v.buyer;
  t.seller = v.seller;
  t.role = static_cast<fb::ContractRole>(v.role);
  t.item = v.item;
  t.quantity = v.quantity;
  t.price_cents = v.price_cents;
  t.currency = v.currency;
  t.promised_start_us = v.promised_start_us;
  t.promised_due_us = v.promised_due_us;
  t.state = static_cast<fb::ContractState>(v.state);
  t.proposal_id = v.proposal_id;
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::Contract::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<contract_record> codec<contract_record>::decode(std::string_view bytes) {
  return verified<fb::Contract>(bytes, "contract",
                                [](const fb::Contract& r) -> result<contract_record> {
                                  if (!enum_in_range(r.role(), fb::ContractRole::Seller) ||
                                      !enum_in_range(r.state(), fb::ContractState::Cancelled))
                                    return corrupt("contract");
                                  contract_record v;
                                  v.contract_id = str(r.contract_id());
                                  v.order_id = str(r.order_id());
                                  v.buyer = str(r.buyer());
                                  v.seller = str(r.seller());
                                  v.role = static_cast<contract_role>(r.role());
                                  v.item = str(r.item());
                                  v.quantity = r.quantity();
                                  v.price_cents = r.price_cents();
                                  v.currency = str(r.currency());
                                  v.promised_start_us = r.promised_start_us();
                                  v.promised_due_us = r.promised_due_us();
                                  v.state = static_cast<contract_state>(r.state());
                                  v.proposal_id = str(r.proposal_id());
                                  return v;
                                });
}

// --- offer ---------------------------------------------------------------

std::string codec<offer_record>::encode(const offer_record& v) {
  // Built directly, in Offer::Pack's order (see the order's encoder).
  auto& fbb = builder();
  auto proposal_id = opt_string(fbb, v.proposal_id);
  auto order_id = opt_string(fbb, v.order_id);
  auto buyer = opt_string(fbb, v.buyer);
  auto item = opt_string(fbb, v.item);
  auto currency = opt_string(fbb, v.currency);
  auto contract_id = opt_string(fbb, v.contract_id);
  auto reason = opt_string(fbb, v.reason);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::ReservationRef>>> reservations;
  if (!v.reservations.empty()) {
    std::vector<flatbuffers::Offset<fb::ReservationRef>> rs;
    rs.reserve(v.reservations.size());
    std::vector<fb::Allocation> allocs;
    for (const auto& r : v.reservations) {
      auto resource = opt_string(fbb, r.resource);
      auto reservation_id = opt_string(fbb, r.reservation_id);
      flatbuffers::Offset<flatbuffers::Vector<const fb::Allocation*>> allocations;
      if (!r.allocations.empty()) {
        allocs.clear();
        for (const auto& a : r.allocations) allocs.emplace_back(a.bucket, a.units);
        allocations = fbb.CreateVectorOfStructs(allocs);
      }
      rs.push_back(fb::CreateReservationRef(fbb, resource, reservation_id, r.start_us, r.end_us,
                                            allocations));
    }
    reservations = fbb.CreateVector(rs);
  }
  auto sub_orders = v.sub_orders.empty() ? 0 : fbb.CreateVectorOfStrings(v.sub_orders);
  fbb.Finish(
      fb::CreateOffer(fbb, proposal_id, order_id, buyer, item, v.quantity, currency,
                      v.earliest_start_us, v.due_us, v.price_cents, v.promised_start_us,
                      v.promised_due_us, v.valid_until_us, static_cast<fb::OfferState>(v.state),
                      contract_id, reason, reservations, sub_orders, v.ended_us),
      fb::OrderIdentifier());
  return finish(fbb);
}

result<offer_record> codec<offer_record>::decode(std::string_view bytes) {
  return verified<fb::Offer>(bytes, "offer", [](const fb::Offer& r) -> result<offer_record> {
    if (!enum_in_range(r.state(), fb::OfferState::Failed)) return corrupt("offer");
    offer_record v;
    v.proposal_id = str(r.proposal_id());
    v.order_id = str(r.order_id());
    v.buyer = str(r.buyer());
    v.item = str(r.item());
    v.quantity = r.quantity();
    v.currency = str(r.currency());
    v.earliest_start_us = r.earliest_start_us();
    v.due_us = r.due_us();
    v.price_cents = r.price_cents();
    v.promised_start_us = r.promised_start_us();
    v.promised_due_us = r.promised_due_us();
    v.valid_until_us = r.valid_until_us();
    v.state = static_cast<offer_state>(r.state());
    v.contract_id = str(r.contract_id());
    v.reason = str(r.reason());
    if (r.reservations())
      for (const auto* x : *r.reservations()) {
        reservation_ref ref{
            str(x->resource()), str(x->reservation_id()), x->start_us(), x->end_us(), {}};
        if (x->allocations())
          for (const auto* a : *x->allocations())
            ref.allocations.push_back({a->bucket(), a->units()});
        v.reservations.push_back(std::move(ref));
      }
    if (r.sub_orders())
      for (const auto* s : *r.sub_orders()) v.sub_orders.push_back(str(s));
    v.ended_us = r.ended_us();
    return v;
  });
}

// --- reservation ---------------------------------------------------------

std::string codec<reservation_record>::encode(const reservation_record& v) {
  fb::ReservationT t;
  t.resource = v.resource;
  t.reservation_id = v.reservation_id;
  t.kind = static_cast<fb::ReservationKind>(v.kind);
  t.deadline_us = v.deadline_us;
  t.start_us = v.start_us;
  t.end_us = v.end_us;
  for (const auto& a : v.allocations) t.allocations.emplace_back(a.bucket, a.units);
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::Reservation::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<reservation_record> codec<reservation_record>::decode(std::string_view bytes) {
  return verified<fb::Reservation>(bytes, "reservation",
                                   [](const fb::Reservation& r) -> result<reservation_record> {
                                     if (!enum_in_range(r.kind(), fb::ReservationKind::Booking))
                                       return corrupt("reservation");
                                     reservation_record v;
                                     v.resource = str(r.resource());
                                     v.reservation_id = str(r.reservation_id());
                                     v.kind = static_cast<reservation_kind>(r.kind());
                                     v.deadline_us = r.deadline_us();
                                     v.start_us = r.start_us();
                                     v.end_us = r.end_us();
                                     if (r.allocations())
                                       for (const auto* a : *r.allocations())
                                         v.allocations.push_back({a->bucket(), a->units()});
                                     return v;
                                   });
}

// --- counter, tombstone --------------------------------------------------

std::string codec<counter_record>::encode(const counter_record& v) {
  flatbuffers::FlatBufferBuilder fbb(64);
  fbb.Finish(fb::CreateCounter(fbb, v.value), fb::OrderIdentifier());
  return finish(fbb);
}

result<counter_record> codec<counter_record>::decode(std::string_view bytes) {
  return verified<fb::Counter>(
      bytes, "counter",
      [](const fb::Counter& r) -> result<counter_record> { return counter_record{r.value()}; });
}

std::string codec<tombstone_record>::encode(const tombstone_record& v) {
  fb::TombstoneT t;
  t.contract_id = v.contract_id;
  t.buyer = v.buyer;
  t.order_id = v.order_id;
  t.at_us = v.at_us;
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(fb::Tombstone::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<tombstone_record> codec<tombstone_record>::decode(std::string_view bytes) {
  return verified<fb::Tombstone>(
      bytes, "tombstone", [](const fb::Tombstone& r) -> result<tombstone_record> {
        return tombstone_record{str(r.contract_id()), str(r.buyer()), str(r.order_id()), r.at_us()};
      });
}

// --- resource ------------------------------------------------------------

std::string codec<resource_record>::encode(const resource_record& v) {
  fb::ResourceT t;
  t.id = v.id;
  t.capacity = v.capacity;
  t.bucket_us = v.bucket_us;
  t.energy_wh_per_hour = v.energy_wh_per_hour;
  flatbuffers::FlatBufferBuilder fbb(64);
  fbb.Finish(fb::Resource::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<resource_record> codec<resource_record>::decode(std::string_view bytes) {
  return verified<fb::Resource>(
      bytes, "resource", [](const fb::Resource& r) -> result<resource_record> {
        return resource_record{str(r.id()), r.capacity(), r.bucket_us(), r.energy_wh_per_hour()};
      });
}

// --- capacity offer, capacity booking ------------------------------------

std::string codec<capacity_offer_record>::encode(const capacity_offer_record& v) {
  fb::CapacityOfferT t;
  t.offer_id = v.offer_id;
  t.publisher = v.publisher;
  t.capability = v.capability;
  t.window_start_us = v.window_start_us;
  t.window_end_us = v.window_end_us;
  t.units = v.units;
  t.remaining = v.remaining;
  t.unit_price_cents = v.unit_price_cents;
  t.currency = v.currency;
  t.valid_until_us = v.valid_until_us;
  t.revision = v.revision;
  t.state = static_cast<fb::CapacityOfferState>(v.state);
  t.resource = v.resource;
  t.bookings = v.bookings;
  t.audience = v.audience;
  t.updated_us = v.updated_us;
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::CapacityOffer::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<capacity_offer_record> codec<capacity_offer_record>::decode(std::string_view bytes) {
  return verified<fb::CapacityOffer>(
      bytes, "capacity offer", [](const fb::CapacityOffer& r) -> result<capacity_offer_record> {
        if (!enum_in_range(r.state(), fb::CapacityOfferState::Withdrawn))
          return corrupt("capacity offer");
        capacity_offer_record v;
        v.offer_id = str(r.offer_id());
        v.publisher = str(r.publisher());
        v.capability = str(r.capability());
        v.window_start_us = r.window_start_us();
        v.window_end_us = r.window_end_us();
        v.units = r.units();
        v.remaining = r.remaining();
        v.unit_price_cents = r.unit_price_cents();
        v.currency = str(r.currency());
        v.valid_until_us = r.valid_until_us();
        v.revision = r.revision();
        v.state = static_cast<capacity_offer_state>(r.state());
        v.resource = str(r.resource());
        v.bookings = r.bookings();
        if (r.audience())
          for (const auto* a : *r.audience()) v.audience.push_back(str(a));
        v.updated_us = r.updated_us();
        return v;
      });
}

std::string codec<capacity_booking_record>::encode(const capacity_booking_record& v) {
  fb::CapacityBookingT t;
  t.booking_id = v.booking_id;
  t.offer_id = v.offer_id;
  t.publisher = v.publisher;
  t.booker = v.booker;
  t.state = static_cast<fb::CapacityBookingState>(v.state);
  t.reason = v.reason;
  t.capability = v.capability;
  t.units = v.units;
  t.price_cents = v.price_cents;
  t.currency = v.currency;
  t.window_start_us = v.window_start_us;
  t.window_end_us = v.window_end_us;
  t.remaining = v.remaining;
  t.resource = v.resource;
  t.reservation_id = v.reservation_id;
  t.created_us = v.created_us;
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::CapacityBooking::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<capacity_booking_record> codec<capacity_booking_record>::decode(std::string_view bytes) {
  return verified<fb::CapacityBooking>(
      bytes, "capacity booking",
      [](const fb::CapacityBooking& r) -> result<capacity_booking_record> {
        if (!enum_in_range(r.state(), fb::CapacityBookingState::Cancelled))
          return corrupt("capacity booking");
        capacity_booking_record v;
        v.booking_id = str(r.booking_id());
        v.offer_id = str(r.offer_id());
        v.publisher = str(r.publisher());
        v.booker = str(r.booker());
        v.state = static_cast<capacity_booking_state>(r.state());
        v.reason = str(r.reason());
        v.capability = str(r.capability());
        v.units = r.units();
        v.price_cents = r.price_cents();
        v.currency = str(r.currency());
        v.window_start_us = r.window_start_us();
        v.window_end_us = r.window_end_us();
        v.remaining = r.remaining();
        v.resource = str(r.resource());
        v.reservation_id = str(r.reservation_id());
        v.created_us = r.created_us();
        return v;
      });
}

// --- execution, progress ------------------------------------------------

std::string codec<execution_record>::encode(const execution_record& v) {
  fb::ExecutionT t;
  t.contract_id = v.contract_id;
  t.order_id = v.order_id;
  t.buyer = v.buyer;
  t.proposal_id = v.proposal_id;
  t.item = v.item;
  t.quantity = v.quantity;
  t.planned_start_us = v.planned_start_us;
  t.planned_end_us = v.planned_end_us;
  t.promised_due_us = v.promised_due_us;
  t.state = static_cast<std::uint8_t>(v.state);
  t.sequence = v.sequence;
  t.started_us = v.started_us;
  t.completed_us = v.completed_us;
  t.delivered_us = v.delivered_us;
  t.delay_us = v.delay_us;
  t.reason = v.reason;
  t.shop_floor = v.shop_floor;
  t.sub_orders = v.sub_orders;
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::Execution::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<execution_record> codec<execution_record>::decode(std::string_view bytes) {
  return verified<fb::Execution>(
      bytes, "execution", [](const fb::Execution& r) -> result<execution_record> {
        if (r.state() > static_cast<std::uint8_t>(wire::contract_progress::cancelled))
          return corrupt("execution");
        execution_record v;
        v.contract_id = str(r.contract_id());
        v.order_id = str(r.order_id());
        v.buyer = str(r.buyer());
        v.proposal_id = str(r.proposal_id());
        v.item = str(r.item());
        v.quantity = r.quantity();
        v.planned_start_us = r.planned_start_us();
        v.planned_end_us = r.planned_end_us();
        v.promised_due_us = r.promised_due_us();
        v.state = static_cast<wire::contract_progress>(r.state());
        v.sequence = r.sequence();
        v.started_us = r.started_us();
        v.completed_us = r.completed_us();
        v.delivered_us = r.delivered_us();
        v.delay_us = r.delay_us();
        v.reason = str(r.reason());
        v.shop_floor = r.shop_floor();
        if (r.sub_orders())
          for (const auto* s : *r.sub_orders()) v.sub_orders.push_back(str(s));
        return v;
      });
}

std::string codec<progress_record>::encode(const progress_record& v) {
  fb::ProgressT t;
  t.contract_id = v.contract_id;
  t.seller = v.seller;
  t.received_us = v.received_us;
  // The event is kept in its wire form: one codec, one set of limits.
  wire::envelope env;
  env.header.sender = v.seller;
  env.header.conversation_id = v.event.order_id;
  env.payload = v.event;
  t.frame = wire::encode(env);
  flatbuffers::FlatBufferBuilder fbb(256 + t.frame.size());
  fbb.Finish(fb::Progress::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<progress_record> codec<progress_record>::decode(std::string_view bytes) {
  return verified<fb::Progress>(
      bytes, "progress", [](const fb::Progress& r) -> result<progress_record> {
        progress_record v;
        v.contract_id = str(r.contract_id());
        v.seller = str(r.seller());
        v.received_us = r.received_us();
        if (r.frame() == nullptr) return corrupt("progress");
        auto env =
            wire::decode(std::span<const std::uint8_t>(r.frame()->data(), r.frame()->size()));
        if (!env) return corrupt("progress");
        auto* e = std::get_if<wire::production_event>(&env->payload);
        if (e == nullptr) return corrupt("progress");
        v.event = std::move(*e);
        return v;
      });
}

// --- outage, replan -------------------------------------------------------

std::string codec<outage_record>::encode(const outage_record& v) {
  fb::OutageT t;
  t.outage_id = v.outage_id;
  t.resource = v.resource;
  t.kind = static_cast<fb::OutageKind>(v.kind);
  t.from_us = v.from_us;
  t.until_us = v.until_us;
  t.first_bucket = v.first_bucket;
  t.last_bucket = v.last_bucket;
  t.reason = v.reason;
  t.health_score = v.health_score;
  t.created_us = v.created_us;
  t.ended_us = v.ended_us;
  t.holds_moved = v.holds_moved;
  t.holds_released = v.holds_released;
  for (const auto& e : v.effects) {
    auto et = std::make_unique<fb::OutageEffectT>();
    et->contract_id = e.contract_id;
    et->outcome = static_cast<fb::ReplanOutcome>(e.outcome);
    et->expected_due_us = e.expected_due_us;
    t.effects.push_back(std::move(et));
  }
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::Outage::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<outage_record> codec<outage_record>::decode(std::string_view bytes) {
  return verified<fb::Outage>(bytes, "outage", [](const fb::Outage& r) -> result<outage_record> {
    if (!enum_in_range(r.kind(), fb::OutageKind::Maintenance)) return corrupt("outage");
    outage_record v;
    v.outage_id = str(r.outage_id());
    v.resource = str(r.resource());
    v.kind = static_cast<outage_kind>(r.kind());
    v.from_us = r.from_us();
    v.until_us = r.until_us();
    v.first_bucket = r.first_bucket();
    v.last_bucket = r.last_bucket();
    v.reason = str(r.reason());
    v.health_score = r.health_score();
    v.created_us = r.created_us();
    v.ended_us = r.ended_us();
    v.holds_moved = r.holds_moved();
    v.holds_released = r.holds_released();
    if (r.effects())
      for (const auto* e : *r.effects()) {
        if (!enum_in_range(e->outcome(), fb::ReplanOutcome::Cancelled)) return corrupt("outage");
        v.effects.push_back({str(e->contract_id()), static_cast<replan_outcome>(e->outcome()),
                             e->expected_due_us()});
      }
    return v;
  });
}

std::string codec<replan_record>::encode(const replan_record& v) {
  fb::ReplanT t;
  t.contract_id = v.contract_id;
  t.number = v.number;
  t.kind = static_cast<fb::ReplanKind>(v.kind);
  t.planned_start_us = v.planned_start_us;
  t.planned_end_us = v.planned_end_us;
  t.reason = v.reason;
  t.at_us = v.at_us;
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(fb::Replan::Pack(fbb, &t), fb::OrderIdentifier());
  return finish(fbb);
}

result<replan_record> codec<replan_record>::decode(std::string_view bytes) {
  return verified<fb::Replan>(bytes, "replan", [](const fb::Replan& r) -> result<replan_record> {
    if (!enum_in_range(r.kind(), fb::ReplanKind::Cancelled)) return corrupt("replan");
    replan_record v;
    v.contract_id = str(r.contract_id());
    v.number = r.number();
    v.kind = static_cast<replan_kind>(r.kind());
    v.planned_start_us = r.planned_start_us();
    v.planned_end_us = r.planned_end_us();
    v.reason = str(r.reason());
    v.at_us = r.at_us();
    return v;
  });
}

}  // namespace gearmesh::store
