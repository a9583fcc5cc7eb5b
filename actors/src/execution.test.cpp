#include "gearmesh/actors/execution.hpp"

#include <gtest/gtest.h>

namespace gearmesh::actors {
namespace {

using wire::contract_progress;
using wire::production_event_kind;

constexpr timestamp_us h = us_per_hour;

offer_record contracted_offer() {
  offer_record o;
  o.proposal_id = "framecraft/proposal/4";
  o.order_id = "velo/order/1";
  o.buyer = "velo";
  o.item = "FRAME";
  o.quantity = 5;
  o.promised_start_us = 10 * h;
  o.promised_due_us = 30 * h;
  o.state = offer_state::contracted;
  o.contract_id = "velo/order/1/c1";
  o.sub_orders = {"framecraft/order/2"};
  return o;
}

std::vector<reservation_record> bookings() {
  reservation_record a;
  a.start_us = 12 * h;
  a.end_us = 14 * h;
  reservation_record b;
  b.start_us = 15 * h;
  b.end_us = 20 * h;
  return {b, a};
}

TEST(execution, plan_follows_the_bookings) {
  const auto e = execution_of(contracted_offer(), bookings(), false);
  EXPECT_EQ(e.contract_id, "velo/order/1/c1");
  EXPECT_EQ(e.planned_start_us, 12 * h);
  EXPECT_EQ(e.planned_end_us, 20 * h);
  EXPECT_EQ(e.state, contract_progress::contracted);
  EXPECT_EQ(e.sub_orders, std::vector<std::string>{"framecraft/order/2"});
  EXPECT_EQ(next_step_us(e), 12 * h);
  EXPECT_EQ(expected_due_us(e), 30 * h);
  // Without bookings (a supplier from stock): promised start to due.
  const auto s = execution_of(contracted_offer(), {}, false);
  EXPECT_EQ(s.planned_start_us, 10 * h);
  EXPECT_EQ(s.planned_end_us, 30 * h);
}

TEST(execution, the_clock_advances_step_by_step) {
  auto e = execution_of(contracted_offer(), bookings(), false);
  EXPECT_TRUE(advance(e, 11 * h).empty());
  auto steps = advance(e, 12 * h);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].first, production_event_kind::started);
  EXPECT_EQ(e.state, contract_progress::executing);
  EXPECT_EQ(e.started_us, 12 * h);
  EXPECT_EQ(e.sequence, 1u);
  EXPECT_EQ(next_step_us(e), 20 * h);
  // A node that was down catches up, each step at its own time.
  steps = advance(e, 40 * h);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0], std::make_pair(production_event_kind::completed, 20 * h));
  EXPECT_EQ(steps[1], std::make_pair(production_event_kind::delivered, 30 * h));
  EXPECT_EQ(e.state, contract_progress::delivered);
  EXPECT_EQ(e.sequence, 3u);
  EXPECT_EQ(next_step_us(e), std::nullopt);
  EXPECT_EQ(expected_due_us(e), 30 * h);
  const auto ev = event_of(e, production_event_kind::delivered, 30 * h, {});
  EXPECT_EQ(ev.sequence, 3u);
  EXPECT_EQ(ev.state, contract_progress::delivered);
  EXPECT_EQ(ev.delivered_us, 30 * h);
  EXPECT_EQ(ev.completed_us, 20 * h);
}

TEST(execution, shop_floor_moves_only_by_posted_events) {
  auto e = execution_of(contracted_offer(), bookings(), true);
  EXPECT_EQ(next_step_us(e), std::nullopt);
  EXPECT_TRUE(advance(e, 100 * h).empty());
  ASSERT_TRUE(post(e, {production_event_kind::started, 13 * h, 0, ""}, 14 * h).is_ok());
  EXPECT_EQ(e.started_us, 13 * h);
  EXPECT_EQ(e.state, contract_progress::executing);
  auto again = post(e, {production_event_kind::started, 0, 0, ""}, 14 * h);
  EXPECT_FALSE(again.is_ok());
  EXPECT_EQ(e.sequence, 1u);
  ASSERT_TRUE(post(e, {production_event_kind::delivered, 0, 0, "by truck"}, 29 * h).is_ok());
  EXPECT_EQ(e.state, contract_progress::delivered);
  EXPECT_EQ(e.completed_us, 29 * h);
  EXPECT_EQ(e.delivered_us, 29 * h);
  EXPECT_EQ(expected_due_us(e), 29 * h);
  EXPECT_FALSE(post(e, {production_event_kind::completed, 0, 0, ""}, 30 * h).is_ok());
}

TEST(execution, posted_delay_shifts_the_rest_of_the_plan) {
  auto e = execution_of(contracted_offer(), bookings(), false);
  EXPECT_FALSE(post(e, {production_event_kind::delayed, 0, 0, "x"}, h).is_ok());
  EXPECT_FALSE(post(e, {production_event_kind::delayed, 0, 29 * h, "x"}, h).is_ok());
  EXPECT_FALSE(post(e, {production_event_kind::progress, 0, 0, ""}, h).is_ok());
  ASSERT_TRUE(
      post(e, {production_event_kind::delayed, 0, 34 * h, "saw1 broke down"}, 2 * h).is_ok());
  EXPECT_EQ(e.delay_us, 4 * h);
  EXPECT_EQ(e.reason, "saw1 broke down");
  EXPECT_EQ(e.state, contract_progress::contracted);
  EXPECT_EQ(e.sequence, 1u);
  EXPECT_EQ(expected_due_us(e), 34 * h);
  EXPECT_EQ(next_step_us(e), 16 * h);
  const auto steps = advance(e, 100 * h);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[2].second, 34 * h);
}

TEST(execution, a_late_component_delays_the_contract) {
  auto e = execution_of(contracted_offer(), bookings(), false);
  // Arriving before the planned start: nothing changes.
  EXPECT_FALSE(component_arrival(e, 11 * h, "TUBE-SET"));
  EXPECT_EQ(e.sequence, 0u);
  // Three hours after it: everything slips by three hours.
  EXPECT_TRUE(component_arrival(e, 15 * h, "component TUBE-SET from tubeco late"));
  EXPECT_EQ(e.delay_us, 3 * h);
  EXPECT_EQ(expected_due_us(e), 33 * h);
  EXPECT_EQ(e.sequence, 1u);
  EXPECT_EQ(e.reason, "component TUBE-SET from tubeco late");
  // The same arrival again is no news.
  EXPECT_FALSE(component_arrival(e, 15 * h, "again"));
  // Once started, a component is no longer waited for.
  (void)advance(e, 15 * h);
  EXPECT_EQ(e.state, contract_progress::executing);
  EXPECT_FALSE(component_arrival(e, 50 * h, "too late to matter"));
}

TEST(execution, component_status_from_the_latest_event) {
  contract_record c;
  c.contract_id = "framecraft/order/2/c1";
  c.seller = "tubeco";
  c.item = "TUBE-SET";
  c.quantity = 10;
  c.promised_due_us = 9 * h;
  auto s = component_of(c, nullptr);
  EXPECT_EQ(s.state, contract_progress::contracted);
  EXPECT_EQ(s.expected_due_us, 0);
  progress_record p;
  p.event.state = contract_progress::executing;
  p.event.expected_due_us = 12 * h;
  p.event.started_us = 5 * h;
  wire::component_status x;
  x.contract_id = "x";
  p.event.components = {x};
  s = component_of(c, &p);
  EXPECT_EQ(s.state, contract_progress::executing);
  EXPECT_EQ(s.expected_due_us, 12 * h);
  EXPECT_EQ(s.components.size(), 1u);
  c.state = contract_state::cancelled;
  EXPECT_EQ(component_of(c, &p).state, contract_progress::cancelled);
}

TEST(execution, records_round_trip) {
  auto e = execution_of(contracted_offer(), bookings(), true);
  e.delay_us = 7;
  e.reason = "r";
  auto back = store::codec<execution_record>::decode(store::codec<execution_record>::encode(e));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, e);
  progress_record p;
  p.contract_id = "velo/order/1/c1";
  p.seller = "framecraft";
  p.received_us = 3;
  p.event = event_of(e, production_event_kind::delayed, 5, {wire::component_status{}});
  wire::component_status below;
  below.seller = "tubeco";
  p.event.components[0].components.push_back(below);
  auto pb = store::codec<progress_record>::decode(store::codec<progress_record>::encode(p));
  ASSERT_TRUE(pb.has_value());
  EXPECT_EQ(*pb, p);
}

}  // namespace
}  // namespace gearmesh::actors

namespace gearmesh::actors {
namespace {

TEST(execution, arrival_and_prune) {
  using wire::component_status;
  std::vector<component_status> v(3);
  v[0].promised_due_us = 5;
  v[1].promised_due_us = 4;
  v[1].expected_due_us = 9;
  v[2].promised_due_us = 20;
  v[2].state = wire::contract_progress::cancelled;
  EXPECT_EQ(arrival_of(v), 9);
  v[1].delivered_us = 3;
  EXPECT_EQ(arrival_of(v), 5);
  EXPECT_EQ(arrival_of({}), std::nullopt);
  v[0].components.resize(2);
  v[0].components[0].components.resize(4);
  auto a = v;
  prune(a, 2, 100);
  EXPECT_EQ(a[0].components.size(), 2u);
  EXPECT_TRUE(a[0].components[0].components.empty());
  a = v;
  prune(a, 6, 4);
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].components.size(), 1u);
  EXPECT_TRUE(a[0].components[0].components.empty());
}

}  // namespace
}  // namespace gearmesh::actors
