#include "gearmesh/actors/records.hpp"

#include <gtest/gtest.h>

namespace gearmesh::actors {
namespace {

template <class T>
T round_trip(const T& v) {
  auto bytes = store::codec<T>::encode(v);
  auto back = store::codec<T>::decode(bytes);
  EXPECT_TRUE(back.has_value()) << back.error().to_string();
  // Misaligned input (LMDB values are only 2-byte aligned) decodes too.
  std::string shifted = " " + bytes;
  auto back2 = store::codec<T>::decode(std::string_view(shifted).substr(1));
  EXPECT_TRUE(back2.has_value()) << back2.error().to_string();
  if (back2) {
    EXPECT_EQ(*back2, v);
  }
  return back ? *back : T{};
}

TEST(records, order_round_trips) {
  order_record o;
  o.order_id = "velo/order/17";
  o.item = "FRAME";
  o.quantity = 5;
  o.due_us = 1'700'000'000'000'000;
  o.earliest_start_us = 1'600'000'000'000'000;
  o.max_price_cents = 123'456;
  o.currency = "EUR";
  o.attributes = {{"colour", "red"}, {"size", "M"}};
  o.created_us = 1;
  o.reply_by_us = 2;
  o.confirm_timeout_us = 3;
  o.state = order_state::awarded;
  o.reason = "why";
  o.sellers = {"framecraft", "alloyframe"};
  proposal_record p;
  p.seller = "framecraft";
  p.proposal_id = "framecraft/proposal/3";
  p.price_cents = 99;
  p.promised_start_us = 4;
  p.promised_due_us = 5;
  p.valid_until_us = 6;
  p.received_us = 7;
  p.state = proposal_state::accepted;
  p.reason = "r";
  p.contract_id = "velo/order/17/c1";
  p.round = 2;
  proposal_record refusal;
  refusal.seller = "alloyframe";
  refusal.state = proposal_state::refused;
  o.proposals = {p, refusal};
  o.contract_id = "velo/order/17/c1";
  o.awarded_proposal_id = "framecraft/proposal/3";
  o.confirm_deadline_us = 8;
  o.accepts_sent = 1;
  o.round = 2;
  EXPECT_EQ(round_trip(o), o);
  EXPECT_EQ(round_trip(order_record{}), order_record{});
}

TEST(records, contract_offer_reservation_counter_tombstone_round_trip) {
  contract_record c{"velo/order/1/c1",
                    "velo/order/1",
                    "velo",
                    "framecraft",
                    contract_role::seller,
                    "FRAME",
                    5,
                    1000,
                    "EUR",
                    10,
                    20,
                    contract_state::cancelled,
                    "fc/proposal/1"};
  EXPECT_EQ(round_trip(c), c);
  offer_record o;
  o.proposal_id = "framecraft/proposal/1";
  o.order_id = "velo/order/1";
  o.buyer = "velo";
  o.item = "FRAME";
  o.quantity = 5;
  o.currency = "EUR";
  o.earliest_start_us = 1;
  o.due_us = 2;
  o.price_cents = 3;
  o.promised_start_us = 4;
  o.promised_due_us = 5;
  o.valid_until_us = 6;
  o.state = offer_state::contracted;
  o.contract_id = "velo/order/1/c1";
  o.reason = "x";
  o.reservations = {{"saw1", "framecraft/proposal/1#0"}, {"weld1", "framecraft/proposal/1#1"}};
  EXPECT_EQ(round_trip(o), o);
  // A held offer carrying its holds' placements (records.hpp).
  o.state = offer_state::held;
  o.reservations[0].start_us = 7;
  o.reservations[0].end_us = 8;
  o.reservations[0].allocations = {{100, 60}, {101, 5}};
  EXPECT_TRUE(o.reservations[0].carried());
  EXPECT_FALSE(o.reservations[1].carried());
  EXPECT_EQ(round_trip(o), o);
  EXPECT_TRUE(offer_held_at(store::codec<offer_record>::encode(o), 6));
  EXPECT_FALSE(offer_held_at(store::codec<offer_record>::encode(o), 7));  // past valid_until
  EXPECT_FALSE(offer_held_at("not an offer", 0));
  reservation_record r{"saw1", "fc/proposal/1#0",    reservation_kind::booking, 0, 10,
                       20,     {{100, 60}, {101, 5}}};
  EXPECT_EQ(round_trip(r), r);
  EXPECT_EQ(round_trip(counter_record{42}), counter_record{42});
  tombstone_record t{"velo/order/1/c2", "velo", "velo/order/1", 77};
  EXPECT_EQ(round_trip(t), t);
}

TEST(records, outage_and_replan_round_trip) {
  outage_record o;
  o.outage_id = "framecraft/outage/3";
  o.resource = "weld1";
  o.kind = outage_kind::maintenance;
  o.from_us = 10;
  o.until_us = 20;
  o.first_bucket = -1;
  o.last_bucket = 7;
  o.reason = "health 31 below 40";
  o.health_score = 31;
  o.created_us = 9;
  o.ended_us = 15;
  o.holds_moved = 2;
  o.holds_released = 1;
  o.effects = {{"velo/order/1/c1", replan_outcome::delayed, 99},
               {"velo/order/2/c1", replan_outcome::cancelled, 0}};
  EXPECT_EQ(round_trip(o), o);
  EXPECT_EQ(round_trip(outage_record{}), outage_record{});
  replan_record r;
  r.contract_id = "velo/order/1/c1";
  r.number = 12;
  r.kind = replan_kind::cancelled;
  r.planned_start_us = 1;
  r.planned_end_us = 2;
  r.reason = "weld1 broke down";
  r.at_us = 3;
  EXPECT_EQ(round_trip(r), r);
  EXPECT_EQ(replan_key("velo/order/1/c1", 12), "velo/order/1/c1#00000000000000000012");
  EXPECT_STREQ(to_string(replan_outcome::delayed), "delayed");
  EXPECT_STREQ(to_string(outage_kind::breakdown), "breakdown");
}

TEST(records, resource_round_trips) {
  resource_record r{"saw1", 60, 3'600'000'000, 7500};
  EXPECT_EQ(round_trip(r), r);
  // Written before energy rates existed: the field reads as 0 (unknown).
  EXPECT_EQ(round_trip(resource_record{"saw1", 60, 3'600'000'000}).energy_wh_per_hour, 0);
  EXPECT_EQ(round_trip(resource_record{}), resource_record{});
  EXPECT_EQ(tables::resources.name(), "resources");
  EXPECT_FALSE(store::codec<resource_record>::decode("not a flatbuffer"));
}

TEST(records, corrupt_values_are_errors) {
  EXPECT_FALSE(store::codec<order_record>::decode(""));
  EXPECT_FALSE(store::codec<order_record>::decode("garbage that is not a flatbuffer"));
  contract_record c;
  c.contract_id = "x";
  auto bytes = store::codec<contract_record>::encode(c);
  auto bad = bytes;
  bad[bad.size() / 2] ^= 0x7f;
  bad.resize(bad.size() - 3);
  auto r = store::codec<contract_record>::decode(bad);
  EXPECT_FALSE(r);
  if (!r) {
    EXPECT_EQ(r.error().code(), errc::storage);
  }
}

TEST(records, names_and_keys) {
  EXPECT_STREQ(to_string(order_state::contracted), "contracted");
  EXPECT_STREQ(to_string(proposal_state::refused), "refused");
  EXPECT_STREQ(to_string(contract_role::seller), "seller");
  EXPECT_STREQ(to_string(contract_state::active), "active");
  EXPECT_EQ(reservation_key("saw1", "fc/proposal/1#0"), "saw1/fc/proposal/1#0");
  EXPECT_EQ(tables::orders.name(), "orders");
  EXPECT_EQ(tables::seq.name(), "seq");
  contract_record a;
  a.contract_id = "c";
  auto b = a;
  b.role = contract_role::seller;
  EXPECT_TRUE(a.same_terms(b));
  b.price_cents = 1;
  EXPECT_FALSE(a.same_terms(b));
}

}  // namespace
}  // namespace gearmesh::actors
