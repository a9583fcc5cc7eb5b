// KPIs against real LMDB stores written with the real tables and codecs.
#include "gearmesh/actors/kpis.hpp"

#include <filesystem>
#include <functional>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/verify.hpp"
#include "temp_dir.hpp"

namespace gearmesh::actors {
namespace {

namespace fs = std::filesystem;

// 2026-12-01T00:00Z.
constexpr timestamp_us t0 = 1'796'083'200'000'000;
constexpr std::int64_t hour0 = t0 / us_per_hour;

class kpis_test : public ::testing::Test {
 protected:
  gearmesh::testing::temp_dir tmp_;
  std::string dir_{(fs::path(tmp_.path()) / "node").string()};

  void write(const std::function<void(store::write_batch&)>& fill) {
    store::options opts;
    opts.path = dir_;
    opts.sync = false;
    auto env = store::environment::open(opts);
    ASSERT_TRUE(env) << env.error().to_string();
    store::write_batch b;
    fill(b);
    ASSERT_TRUE((*env)->apply(b));
  }

  kpi_report kpis(kpi_options opts) {
    auto env = open_existing_store(dir_);
    EXPECT_TRUE(env) << env.error().to_string();
    if (!env) return {};
    auto r = compute_kpis(**env, opts);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(*r) : kpi_report{};
  }

  static kpi_options at(timestamp_us now, timestamp_us from = 0, timestamp_us to = 0) {
    kpi_options o;
    o.now_us = now;
    o.from_us = from;
    o.to_us = to;
    return o;
  }

  /// A contracted buyer order created at `created`, due at `due`, whose
  /// contract promises `promised`; the winning proposal arrived `quote` after creation.
  static void contracted_order(store::write_batch& b, int n, timestamp_us created, timestamp_us due,
                               timestamp_us promised, timestamp_us quote,
                               const std::string& parent = {}) {
    order_record o;
    o.order_id = "velo/order/" + std::to_string(n);
    o.item = "E-BIKE";
    o.quantity = 2;
    o.created_us = created;
    o.due_us = due;
    o.state = order_state::contracted;
    o.contract_id = o.order_id + "/c1";
    o.awarded_proposal_id = "framecraft/proposal/" + std::to_string(n);
    o.parent_order_id = parent;
    proposal_record p;
    p.seller = "framecraft";
    p.proposal_id = o.awarded_proposal_id;
    p.promised_due_us = promised;
    p.received_us = created + quote;
    p.state = proposal_state::accepted;
    o.proposals = {p};
    tables::orders.put(b, o.order_id, o);
    contract_record c;
    c.contract_id = o.contract_id;
    c.order_id = o.order_id;
    c.buyer = "velo";
    c.seller = "framecraft";
    c.role = contract_role::buyer;
    c.item = o.item;
    c.quantity = o.quantity;
    c.price_cents = 1000 * n;
    c.currency = "EUR";
    c.promised_due_us = promised;
    c.proposal_id = p.proposal_id;
    tables::contracts.put(b, c.contract_id, c);
  }

  static void order_in_state(store::write_batch& b, int n, timestamp_us created, order_state s) {
    order_record o;
    o.order_id = "velo/order/" + std::to_string(n);
    o.item = "E-BIKE";
    o.quantity = 1;
    o.created_us = created;
    o.due_us = created + us_per_day;
    o.state = s;
    tables::orders.put(b, o.order_id, o);
  }

  static void booking(store::write_batch& b, const std::string& resource, const std::string& id,
                      reservation_kind kind, std::int64_t bucket, std::int64_t units,
                      timestamp_us deadline = 0) {
    reservation_record r;
    r.resource = resource;
    r.reservation_id = id;
    r.kind = kind;
    r.deadline_us = deadline;
    r.start_us = bucket * us_per_hour;
    r.end_us = r.start_us + us_per_hour;
    r.allocations = {{bucket, units}};
    (kind == reservation_kind::hold ? tables::holds : tables::bookings)
        .put(b, reservation_key(resource, id), r);
  }

  /// A seller contract of `quantity` units of `item`, backed by an offer whose
  /// bookings take `saw_min` minutes of saw1 and `weld_min` of weld1 in hour0 + 1.
  static void sold(store::write_batch& b, int n, const std::string& item, std::uint32_t quantity,
                   std::int64_t saw_min, std::int64_t weld_min, timestamp_us promised,
                   timestamp_us due) {
    const std::string pid = "framecraft/proposal/" + std::to_string(n);
    const std::string cid = "alpha/order/" + std::to_string(n) + "/c1";
    offer_record o;
    o.proposal_id = pid;
    o.order_id = "alpha/order/" + std::to_string(n);
    o.buyer = "alpha";
    o.item = item;
    o.quantity = quantity;
    o.due_us = due;
    o.promised_due_us = promised;
    o.state = offer_state::contracted;
    o.contract_id = cid;
    o.reservations = {{"saw1", pid + "#0"}, {"weld1", pid + "#1"}};
    tables::offers.put(b, pid, o);
    booking(b, "saw1", pid + "#0", reservation_kind::booking, hour0 + 1, saw_min);
    booking(b, "weld1", pid + "#1", reservation_kind::booking, hour0 + 1, weld_min);
    contract_record c;
    c.contract_id = cid;
    c.order_id = o.order_id;
    c.buyer = "alpha";
    c.seller = "framecraft";
    c.role = contract_role::seller;
    c.item = item;
    c.quantity = quantity;
    c.price_cents = 50'000;
    c.currency = "EUR";
    c.promised_due_us = promised;
    c.proposal_id = pid;
    tables::contracts.put(b, cid, c);
  }

  static void offer_in_state(store::write_batch& b, int n, offer_state s, timestamp_us promised,
                             timestamp_us valid_until) {
    offer_record o;
    o.proposal_id = "framecraft/proposal/" + std::to_string(n);
    o.order_id = "beta/order/" + std::to_string(n);
    o.buyer = "beta";
    o.item = "FRAME";
    o.quantity = 1;
    o.promised_due_us = promised;
    o.due_us = promised;
    o.valid_until_us = valid_until;
    o.state = s;
    tables::offers.put(b, o.proposal_id, o);
  }
};

TEST_F(kpis_test, an_empty_store_has_no_figures) {
  write([](store::write_batch&) {});
  auto r = kpis(at(t0));
  EXPECT_EQ(r.customer_orders.orders, 0u);
  EXPECT_FALSE(r.customer_orders.on_time_pct);
  EXPECT_FALSE(r.seller.win_rate_pct);
  EXPECT_FALSE(r.energy.wh_per_unit);
  EXPECT_TRUE(r.resources.empty());
  EXPECT_EQ(r.delivery_basis, "promised");
  EXPECT_EQ(r.utilization_from_us, t0 - 7 * us_per_day);
  EXPECT_EQ(r.utilization_to_us, t0 + 7 * us_per_day);
}

TEST_F(kpis_test, buyer_on_time_delivery_and_lead_time_of_customer_orders) {
  write([](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "velo");
    // On time: promised 2 days after creation, due after 3. Lead times 1, 2, 4 days.
    contracted_order(b, 1, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, 10 * us_per_s);
    contracted_order(b, 2, t0 + us_per_hour, t0 + 3 * us_per_day, t0 + us_per_hour + us_per_day,
                     20 * us_per_s);
    // Late: promised a day after the due date.
    contracted_order(b, 3, t0, t0 + 3 * us_per_day, t0 + 4 * us_per_day, 30 * us_per_s);
    order_in_state(b, 4, t0, order_state::failed);
    order_in_state(b, 5, t0, order_state::negotiating);
    order_in_state(b, 6, t0, order_state::cancelled);
    // A component order (nested negotiation) is counted apart.
    contracted_order(b, 7, t0, t0 + us_per_day, t0 + 2 * us_per_day, us_per_s, "alpha/order/1");
  });
  auto r = kpis(at(t0 + us_per_day));
  EXPECT_EQ(r.node_id, "velo");
  const auto& c = r.customer_orders;
  EXPECT_EQ(c.orders, 6u);
  EXPECT_EQ(c.contracted, 3u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.open, 1u);
  EXPECT_EQ(c.cancelled, 1u);
  EXPECT_EQ(c.on_time, 2u);
  EXPECT_EQ(c.late, 1u);
  ASSERT_TRUE(c.on_time_pct);
  EXPECT_NEAR(*c.on_time_pct, 200.0 / 3, 1e-9);
  EXPECT_EQ(c.lead_time.count, 3u);
  EXPECT_EQ(c.lead_time.p50_us, 2 * us_per_day);
  EXPECT_EQ(c.lead_time.p95_us, 4 * us_per_day);
  EXPECT_EQ(c.lead_time.max_us, 4 * us_per_day);
  EXPECT_EQ(c.lead_time.mean_us, 7 * us_per_day / 3);
  EXPECT_EQ(c.quote_time.p50_us, 20 * us_per_s);
  EXPECT_EQ(c.spend_cents.at("EUR"), 1000 + 2000 + 3000);
  const auto& k = r.component_orders;
  EXPECT_EQ(k.orders, 1u);
  EXPECT_EQ(k.contracted, 1u);
  EXPECT_EQ(k.late, 1u);
  ASSERT_TRUE(k.on_time_pct);
  EXPECT_EQ(*k.on_time_pct, 0.0);
  EXPECT_EQ(k.spend_cents.at("EUR"), 7000);
}

TEST_F(kpis_test, the_window_selects_orders_by_creation) {
  write([](store::write_batch& b) {
    contracted_order(b, 1, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
    contracted_order(b, 2, t0 + us_per_day, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
  });
  auto r = kpis(at(t0 + 2 * us_per_day, t0 + us_per_hour, t0 + 2 * us_per_day));
  EXPECT_EQ(r.customer_orders.orders, 1u);
  EXPECT_EQ(r.customer_orders.lead_time.max_us, us_per_day);
  EXPECT_EQ(r.from_us, t0 + us_per_hour);
  EXPECT_EQ(r.utilization_from_us, t0 + us_per_hour);
  EXPECT_EQ(r.utilization_to_us, t0 + 2 * us_per_day);
  // One bound far from now: utilization over the 14 days next to it.
  auto past = kpis(at(t0 + 100 * us_per_day, 0, t0));
  EXPECT_EQ(past.utilization_from_us, t0 - 14 * us_per_day);
  EXPECT_EQ(past.utilization_to_us, t0);
  auto future = kpis(at(t0, t0 + 100 * us_per_day));
  EXPECT_EQ(future.utilization_from_us, t0 + 100 * us_per_day);
  EXPECT_EQ(future.utilization_to_us, t0 + 114 * us_per_day);
}

TEST_F(kpis_test, actual_deliveries_replace_promised_ones) {
  write([](store::write_batch& b) {
    contracted_order(b, 1, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
    contracted_order(b, 2, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
  });
  auto opts = at(t0 + 5 * us_per_day);
  // Order 1 was delivered late, order 2 is not delivered yet (its promise stands).
  opts.delivered_us = [](const std::string& contract) -> std::optional<timestamp_us> {
    if (contract == "velo/order/1/c1") return t0 + 4 * us_per_day;
    return std::nullopt;
  };
  auto r = kpis(opts);
  EXPECT_EQ(r.delivery_basis, "actual");
  EXPECT_EQ(r.customer_orders.delivered_actual, 1u);
  EXPECT_EQ(r.customer_orders.on_time, 1u);
  EXPECT_EQ(r.customer_orders.late, 1u);
  EXPECT_EQ(r.customer_orders.lead_time.max_us, 4 * us_per_day);
}

TEST_F(kpis_test, seller_win_rate_revenue_utilization_and_energy_per_unit) {
  write([](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "framecraft");
    // saw1: 7.5 kWh per hour; weld1: 12 kWh per hour; coat1: no rate known.
    tables::resources.put(b, "saw1", resource_record{"saw1", 60, us_per_hour, 7500});
    tables::resources.put(b, "weld1", resource_record{"weld1", 60, us_per_hour, 12'000});
    tables::resources.put(b, "coat1", resource_record{"coat1", 30, us_per_hour, 0});
    // 4 frames: 20 saw minutes (2500 Wh) + 30 weld minutes (6000 Wh) = 8500 Wh.
    sold(b, 1, "FRAME", 4, 20, 30, t0 + us_per_day, t0 + us_per_day);
    // 1 fork: 10 saw minutes (1250 Wh) + 5 weld minutes (1000 Wh) = 2250 Wh; promised late.
    sold(b, 2, "FORK", 1, 10, 5, t0 + 2 * us_per_day, t0 + us_per_day);
    offer_in_state(b, 3, offer_state::rejected, t0 + us_per_day, t0);
    offer_in_state(b, 4, offer_state::held, t0 + us_per_day, t0 - us_per_s);    // expired
    offer_in_state(b, 5, offer_state::held, t0 + us_per_day, t0 + us_per_min);  // pending
    // A live hold of 15 minutes on weld1, and an expired one that no longer counts.
    booking(b, "weld1", "framecraft/proposal/5#0", reservation_kind::hold, hour0 + 2, 15,
            t0 + us_per_min);
    booking(b, "weld1", "framecraft/proposal/4#0", reservation_kind::hold, hour0 + 2, 15,
            t0 - us_per_s);
    // A capacity booking sold to a partner uses the machine too (no contract).
    booking(b, "coat1", "framecraft/capacity/1#b1", reservation_kind::booking, hour0 + 3, 30);
  });
  // Window: three days; utilization over their 72 one-hour buckets.
  auto r = kpis(at(t0, t0, t0 + 3 * us_per_day));
  EXPECT_EQ(r.node_id, "framecraft");
  const auto& s = r.seller;
  EXPECT_EQ(s.offers, 5u);
  EXPECT_EQ(s.offers_contracted, 2u);
  EXPECT_EQ(s.offers_lost, 2u);
  EXPECT_EQ(s.offers_pending, 1u);
  ASSERT_TRUE(s.win_rate_pct);
  EXPECT_DOUBLE_EQ(*s.win_rate_pct, 50.0);
  EXPECT_EQ(s.promised_on_time, 1u);
  EXPECT_DOUBLE_EQ(*s.promised_on_time_pct, 50.0);
  EXPECT_EQ(s.contracts, 2u);
  EXPECT_EQ(s.units, 5u);
  EXPECT_EQ(s.revenue_cents.at("EUR"), 100'000);

  ASSERT_EQ(r.resources.size(), 3u);  // by id
  const auto& coat = r.resources[0];
  const auto& saw = r.resources[1];
  const auto& weld = r.resources[2];
  EXPECT_EQ(saw.id, "saw1");
  EXPECT_EQ(saw.capacity_units, 60 * 72);
  EXPECT_EQ(saw.booked_units, 30);
  EXPECT_NEAR(*saw.utilization_pct, 100.0 * 30 / (60 * 72), 1e-9);
  EXPECT_DOUBLE_EQ(saw.energy_wh, 30 * 7500 / 60.0);
  EXPECT_EQ(weld.booked_units, 35);
  EXPECT_EQ(weld.held_units, 15);
  EXPECT_NEAR(*weld.held_pct, 100.0 * 15 / (60 * 72), 1e-9);
  EXPECT_EQ(coat.capacity_units, 30 * 72);
  EXPECT_EQ(coat.booked_units, 30);
  EXPECT_EQ(coat.energy_wh, 0.0);

  EXPECT_EQ(r.energy.contracts, 2u);
  EXPECT_EQ(r.energy.units, 5u);
  EXPECT_DOUBLE_EQ(r.energy.energy_wh, 8500 + 2250);
  ASSERT_TRUE(r.energy.wh_per_unit);
  EXPECT_DOUBLE_EQ(*r.energy.wh_per_unit, (8500 + 2250) / 5.0);
  ASSERT_EQ(r.energy_by_item.size(), 2u);
  EXPECT_DOUBLE_EQ(*r.energy_by_item.at("FRAME").wh_per_unit, 8500 / 4.0);
  EXPECT_DOUBLE_EQ(*r.energy_by_item.at("FORK").wh_per_unit, 2250.0);

  // Outside the window (all due on days 1 and 2): nothing sold, nothing booked.
  auto later = kpis(at(t0, t0 + 10 * us_per_day, t0 + 11 * us_per_day));
  EXPECT_EQ(later.seller.offers, 0u);
  EXPECT_EQ(later.energy.contracts, 0u);
  EXPECT_FALSE(later.energy.wh_per_unit);
  EXPECT_EQ(later.resources[1].booked_units, 0);
  EXPECT_EQ(*later.resources[1].utilization_pct, 0.0);
}

// Held offers carry their holds (records.hpp): live ones are held units, a
// lapsed one is not, and one also stored in "holds" counts once.
TEST_F(kpis_test, holds_that_held_offers_carry_are_held_units) {
  write([](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "framecraft");
    tables::resources.put(b, "weld1", resource_record{"weld1", 60, us_per_hour, 0});
    auto carrying = [&](int n, std::int64_t units, timestamp_us until) {
      offer_record o;
      o.proposal_id = "framecraft/proposal/" + std::to_string(n);
      o.state = offer_state::held;
      o.promised_due_us = t0 + us_per_day;
      o.valid_until_us = until;
      reservation_ref ref{"weld1", o.proposal_id + "#0"};
      ref.start_us = (hour0 + 2) * us_per_hour;
      ref.end_us = ref.start_us + units * us_per_min;
      ref.allocations = {{hour0 + 2, units}};
      o.reservations = {ref};
      tables::offers.put(b, o.proposal_id, o);
    };
    carrying(1, 15, t0 + us_per_min);  // live
    carrying(2, 7, t0 - us_per_s);     // lapsed
    carrying(3, 5, t0 + us_per_min);   // live, and also a record
    booking(b, "weld1", "framecraft/proposal/3#0", reservation_kind::hold, hour0 + 2, 5,
            t0 + us_per_min);
  });
  auto r = kpis(at(t0, t0, t0 + us_per_day));
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].held_units, 20);
  EXPECT_EQ(r.resources[0].booked_units, 0);
  EXPECT_EQ(r.corrupt_records, 0u);
}

TEST_F(kpis_test, time_a_machine_was_out_of_service_is_no_capacity) {
  write([](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "framecraft");
    tables::resources.put(b, "saw1", resource_record{"saw1", 60, us_per_hour, 6000});
    tables::resources.put(b, "weld1", resource_record{"weld1", 60, us_per_hour, 6000});
    booking(b, "saw1", "framecraft/proposal/1#0", reservation_kind::booking, hour0 + 1, 30);
    const auto outage = [&](const char* id, const char* resource, std::int64_t first,
                            std::int64_t last, timestamp_us ended) {
      outage_record o;
      o.outage_id = id;
      o.resource = resource;
      o.first_bucket = first;
      o.last_bucket = last;
      o.from_us = first * us_per_hour;
      o.until_us = (last + 1) * us_per_hour;
      o.ended_us = ended;
      tables::outages.put(b, id, o);
    };
    // saw1: down for hours 10..19, and (overlapping) 15..29 but up again
    // during hour 21: hours 10..21, 12 buckets. Hours before the window do not count.
    outage("framecraft/outage/1", "saw1", hour0 + 10, hour0 + 19, 0);
    outage("framecraft/outage/2", "saw1", hour0 + 15, hour0 + 29,
           (hour0 + 21) * us_per_hour + 30 * us_per_min);
    outage("framecraft/outage/3", "saw1", hour0 - 48, hour0 - 1, 0);
    // A machine this node no longer has.
    outage("framecraft/outage/4", "paint9", hour0, hour0 + 5, 0);
  });
  // Window: three days from t0, 72 one-hour buckets.
  auto r = kpis(at(t0, t0, t0 + 3 * us_per_day));
  ASSERT_EQ(r.resources.size(), 2u);
  const auto& saw = r.resources[0];
  EXPECT_EQ(saw.down_units, 60 * 12);
  EXPECT_EQ(saw.capacity_units, 60 * (72 - 12));
  EXPECT_NEAR(*saw.utilization_pct, 100.0 * 30 / (60 * 60), 1e-9);
  EXPECT_EQ(r.resources[1].down_units, 0);
  EXPECT_EQ(r.resources[1].capacity_units, 60 * 72);
  EXPECT_EQ(r.corrupt_records, 0u);
}

TEST_F(kpis_test, machines_without_energy_rate_give_no_energy_per_unit) {
  write([](store::write_batch& b) {
    tables::resources.put(b, "saw1", resource_record{"saw1", 60, us_per_hour});
    tables::resources.put(b, "weld1", resource_record{"weld1", 60, us_per_hour});
    sold(b, 1, "FRAME", 4, 20, 30, t0 + us_per_day, t0 + us_per_day);
  });
  auto r = kpis(at(t0));
  EXPECT_EQ(r.seller.contracts, 1u);
  EXPECT_EQ(r.energy.contracts, 0u);
  EXPECT_FALSE(r.energy.wh_per_unit);
}

TEST_F(kpis_test, corrupt_records_are_counted_and_skipped) {
  write([](store::write_batch& b) {
    contracted_order(b, 1, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
    b.put("orders", "velo/order/2", "not a flatbuffer");
  });
  auto r = kpis(at(t0));
  EXPECT_EQ(r.corrupt_records, 1u);
  EXPECT_EQ(r.customer_orders.orders, 1u);
}

TEST_F(kpis_test, an_empty_or_negative_window_is_an_error) {
  write([](store::write_batch& b) {
    tables::resources.put(b, "tick", resource_record{"tick", 1'000'000, 1});
  });
  auto env = open_existing_store(dir_);
  ASSERT_TRUE(env);
  EXPECT_EQ(compute_kpis(**env, at(t0, t0, t0)).error().code(), errc::invalid_argument);
  EXPECT_EQ(compute_kpis(**env, at(t0, -1, 0)).error().code(), errc::invalid_argument);
  EXPECT_EQ(compute_kpis(**env, at(t0, 0, kpi_time_max_us + 1)).error().code(),
            errc::invalid_argument);
  // The widest window allowed still computes (capacity saturates, nothing overflows).
  auto wide = compute_kpis(**env, at(t0, 1, kpi_time_max_us));
  ASSERT_TRUE(wide);
  EXPECT_EQ(wide->resources.at(0).capacity_units, std::numeric_limits<std::int64_t>::max());
}

TEST_F(kpis_test, json_names_every_figure) {
  write([](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "velo");
    contracted_order(b, 1, t0, t0 + 3 * us_per_day, t0 + 2 * us_per_day, us_per_s);
  });
  auto j = nlohmann::json::parse(kpis_to_json(kpis(at(t0))));
  EXPECT_EQ(j["node_id"], "velo");
  EXPECT_TRUE(j["from_us"].is_null());
  EXPECT_EQ(j["delivery_basis"], "promised");
  EXPECT_EQ(j["buyer"]["customer_orders"]["orders"], 1);
  EXPECT_EQ(j["buyer"]["customer_orders"]["on_time_pct"], 100.0);
  EXPECT_EQ(j["buyer"]["customer_orders"]["lead_time"]["p50_us"], 2 * us_per_day);
  EXPECT_EQ(j["buyer"]["customer_orders"]["spend_cents"]["EUR"], 1000);
  EXPECT_TRUE(j["buyer"]["component_orders"]["on_time_pct"].is_null());
  EXPECT_TRUE(j["seller"]["win_rate_pct"].is_null());
  EXPECT_TRUE(j["utilization"]["resources"].is_array());
  EXPECT_TRUE(j["energy"]["wh_per_unit"].is_null());
  EXPECT_TRUE(j["energy"]["by_item"].is_object());
}

}  // namespace
}  // namespace gearmesh::actors
