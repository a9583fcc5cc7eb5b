// The offline checker against real LMDB stores written with the real tables
// and codecs: a consistent buyer/seller pair is clean, and each kind of
// violation is found where it was planted.
#include "gearmesh/actors/verify.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "gearmesh/actors/records.hpp"
#include "temp_dir.hpp"

namespace gearmesh::actors {
namespace {

namespace fs = std::filesystem;

// 2026-12-01T00:00Z.
constexpr timestamp_us t0 = 1'796'083'200'000'000;
constexpr std::int64_t hour0 = t0 / us_per_hour;

class verify_test : public ::testing::Test {
 protected:
  gearmesh::testing::temp_dir tmp_;
  fs::path root_{tmp_.path()};

  std::string dir(const std::string& name) const { return (root_ / name).string(); }

  /// Applies what `fill` writes to the store `name` (created if missing), then closes it.
  void write(const std::string& name, const std::function<void(store::write_batch&)>& fill) {
    store::options opts;
    opts.path = dir(name);
    opts.sync = false;
    auto env = store::environment::open(opts);
    ASSERT_TRUE(env) << env.error().to_string();
    store::write_batch b;
    fill(b);
    ASSERT_TRUE((*env)->apply(b));
  }

  /// Opens the store `name` (created if missing) and keeps it open.
  std::unique_ptr<store::environment> open_store(const std::string& name) const {
    store::options opts;
    opts.path = dir(name);
    opts.sync = false;
    auto env = store::environment::open(opts);
    EXPECT_TRUE(env) << env.error().to_string();
    return env ? std::move(*env) : nullptr;
  }

  /// Verifies on one thread, and again on two: the reports must be the same.
  verify_report verify(const std::vector<std::string>& names, timestamp_us now = t0,
                       std::size_t violations_max = 10'000) {
    std::vector<std::string> dirs;
    for (const auto& n : names) dirs.push_back(dir(n));
    verify_options opts;
    opts.now_us = now;
    opts.violations_max = violations_max;
    auto r = verify_data_dirs(dirs, opts);
    EXPECT_TRUE(r) << r.error().to_string();
    opts.threads = 2;
    auto two = verify_data_dirs(dirs, opts);
    EXPECT_TRUE(two) << two.error().to_string();
    if (r && two) {
      EXPECT_EQ(dump(*two), dump(*r));
      EXPECT_EQ(two->violations_total, r->violations_total);
      EXPECT_EQ(two->contracts_unchecked, r->contracts_unchecked);
      EXPECT_EQ(two->reservations_unchecked, r->reservations_unchecked);
      EXPECT_EQ(two->stores.size(), r->stores.size());
      for (std::size_t i = 0; i < std::min(r->stores.size(), two->stores.size()); ++i) {
        EXPECT_EQ(two->stores[i].node_id, r->stores[i].node_id);
        EXPECT_EQ(two->stores[i].orders, r->stores[i].orders);
        EXPECT_EQ(two->stores[i].contracts, r->stores[i].contracts);
        EXPECT_EQ(two->stores[i].holds, r->stores[i].holds);
        EXPECT_EQ(two->stores[i].bookings, r->stores[i].bookings);
      }
    }
    return r ? std::move(*r) : verify_report{};
  }

  static contract_record contract(const std::string& id, contract_role role) {
    contract_record c;
    c.contract_id = id;
    c.order_id = "velo/order/1";
    c.buyer = "velo";
    c.seller = "framecraft";
    c.role = role;
    c.item = "FRAME";
    c.quantity = 5;
    c.price_cents = 12'345;
    c.currency = "EUR";
    c.promised_start_us = t0 + us_per_hour;
    c.promised_due_us = t0 + 3 * us_per_hour;
    c.state = contract_state::active;
    c.proposal_id = "framecraft/proposal/1";
    return c;
  }

  static reservation_record reservation(const std::string& resource, const std::string& id,
                                        reservation_kind kind, std::int64_t bucket,
                                        std::int64_t units, timestamp_us deadline = 0) {
    reservation_record r;
    r.resource = resource;
    r.reservation_id = id;
    r.kind = kind;
    r.deadline_us = deadline;
    r.start_us = bucket * us_per_hour;
    r.end_us = r.start_us + us_per_hour;
    r.allocations = {{bucket, units}};
    return r;
  }

  static void put_reservation(store::write_batch& b, const reservation_record& r) {
    const auto& t = r.kind == reservation_kind::hold ? tables::holds : tables::bookings;
    t.put(b, reservation_key(r.resource, r.reservation_id), r);
  }

  /// The buyer "velo" with one contracted order.
  void write_buyer() {
    write("velo", [](store::write_batch& b) {
      b.put("meta", meta_node_id_key, "velo");
      order_record o;
      o.order_id = "velo/order/1";
      o.item = "FRAME";
      o.quantity = 5;
      o.state = order_state::contracted;
      o.contract_id = "velo/order/1/c1";
      tables::orders.put(b, o.order_id, o);
      tables::contracts.put(b, "velo/order/1/c1",
                            contract("velo/order/1/c1", contract_role::buyer));
      tables::seq.put(b, "order", counter_record{1});
    });
  }

  /// The seller "framecraft": the contract of write_buyer() backed by two
  /// bookings, and a valid hold for another offer.
  void write_seller() {
    write("framecraft", [](store::write_batch& b) {
      b.put("meta", meta_node_id_key, "framecraft");
      tables::resources.put(b, "saw1", resource_record{"saw1", 60, us_per_hour});
      tables::resources.put(b, "weld1", resource_record{"weld1", 60, us_per_hour});
      offer_record o;
      o.proposal_id = "framecraft/proposal/1";
      o.order_id = "velo/order/1";
      o.buyer = "velo";
      o.item = "FRAME";
      o.quantity = 5;
      o.state = offer_state::contracted;
      o.contract_id = "velo/order/1/c1";
      o.reservations = {{"saw1", "framecraft/proposal/1#0"}, {"weld1", "framecraft/proposal/1#1"}};
      tables::offers.put(b, o.proposal_id, o);
      put_reservation(b, reservation("saw1", "framecraft/proposal/1#0", reservation_kind::booking,
                                     hour0 + 1, 40));
      put_reservation(b, reservation("weld1", "framecraft/proposal/1#1", reservation_kind::booking,
                                     hour0 + 2, 60));
      tables::contracts.put(b, "velo/order/1/c1",
                            contract("velo/order/1/c1", contract_role::seller));
      offer_record held;
      held.proposal_id = "framecraft/proposal/2";
      held.order_id = "alpha/order/9";
      held.buyer = "alpha";
      held.state = offer_state::held;
      held.valid_until_us = t0 + 5 * us_per_min;
      held.reservations = {{"saw1", "framecraft/proposal/2#0"}};
      tables::offers.put(b, held.proposal_id, held);
      put_reservation(b, reservation("saw1", "framecraft/proposal/2#0", reservation_kind::hold,
                                     hour0 + 1, 20, held.valid_until_us));
      tables::seq.put(b, "proposal", counter_record{2});
    });
  }

  /// The violations of `r` of kind `k`.
  static std::vector<violation> of_kind(const verify_report& r, violation_kind k) {
    std::vector<violation> out;
    for (const auto& v : r.violations)
      if (v.kind == k) out.push_back(v);
    return out;
  }

  static std::string dump(const verify_report& r) {
    std::string s;
    for (const auto& v : r.violations)
      s += std::string(to_string(v.kind)) + " " + v.node + " " + v.table + " " + v.key + ": " +
           v.message + "\n";
    return s;
  }
};

TEST_F(verify_test, a_consistent_buyer_and_seller_are_clean) {
  write_buyer();
  write_seller();
  auto r = verify({"velo", "framecraft"});
  EXPECT_TRUE(r.clean()) << dump(r);
  EXPECT_EQ(r.violations_total, 0u);
  EXPECT_EQ(r.now_us, t0);
  EXPECT_EQ(r.contracts_unchecked, 0u);
  EXPECT_EQ(r.reservations_unchecked, 0u);
  ASSERT_EQ(r.stores.size(), 2u);
  EXPECT_EQ(r.stores[0].node_id, "velo");
  EXPECT_EQ(r.stores[0].id_source, node_id_source::meta);
  EXPECT_EQ(r.stores[0].path, dir("velo"));
  EXPECT_EQ(r.stores[0].orders, 1u);
  EXPECT_EQ(r.stores[0].contracts, 1u);
  EXPECT_EQ(r.stores[1].node_id, "framecraft");
  EXPECT_EQ(r.stores[1].contracts, 1u);
  EXPECT_EQ(r.stores[1].offers, 2u);
  EXPECT_EQ(r.stores[1].holds, 1u);
  EXPECT_EQ(r.stores[1].bookings, 2u);
  EXPECT_EQ(r.stores[1].resources, 2u);
  // A bucket exactly at capacity (weld1: 60 of 60) is fine.
}

TEST_F(verify_test, a_store_without_its_counterpart_leaves_contracts_unchecked) {
  write_buyer();
  write_seller();
  auto buyer_only = verify({"velo"});
  EXPECT_TRUE(buyer_only.clean()) << dump(buyer_only);
  EXPECT_EQ(buyer_only.contracts_unchecked, 1u);
  auto seller_only = verify({"framecraft"});
  EXPECT_TRUE(seller_only.clean()) << dump(seller_only);
  EXPECT_EQ(seller_only.contracts_unchecked, 1u);
}

TEST_F(verify_test, over_commitment_is_found_per_bucket) {
  write_buyer();
  write_seller();
  // Another held offer whose hold lands on the bucket already holding 40 + 20.
  write("framecraft", [](store::write_batch& b) {
    offer_record o;
    o.proposal_id = "framecraft/proposal/3";
    o.state = offer_state::held;
    o.valid_until_us = t0 + us_per_hour;
    tables::offers.put(b, o.proposal_id, o);
    put_reservation(b, reservation("saw1", "framecraft/proposal/3#0", reservation_kind::hold,
                                   hour0 + 1, 10, t0 + us_per_hour));
  });
  auto r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::over_commitment);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(r.violations_total, 1u) << dump(r);
  EXPECT_EQ(v[0].node, "framecraft");
  EXPECT_EQ(v[0].table, "resources");
  EXPECT_EQ(v[0].key, "saw1");
  EXPECT_NE(v[0].message.find("bucket " + std::to_string(hour0 + 1)), std::string::npos)
      << v[0].message;
  EXPECT_NE(v[0].message.find("2026-12-01T01:00Z"), std::string::npos) << v[0].message;
  EXPECT_NE(v[0].message.find("held 30 + booked 40 = 70 units > capacity 60"), std::string::npos)
      << v[0].message;
}

// A held offer carries its holds (records.hpp): they count against capacity
// until the offer's deadline, a hold also stored in "holds" counts once, and
// an incremental check sums a resource again when such an offer changes.
TEST_F(verify_test, holds_that_held_offers_carry_count_until_their_deadline) {
  write_buyer();
  write_seller();  // saw1, bucket hour0 + 1: booked 40 + held 20 (a record) of 60
  auto carrying = [](const std::string& id, std::int64_t units, timestamp_us until) {
    offer_record o;
    o.proposal_id = id;
    o.order_id = "alpha/order/" + id.substr(id.rfind('/') + 1);
    o.buyer = "alpha";
    o.state = offer_state::held;
    o.valid_until_us = until;
    const auto h = reservation("saw1", id + "#0", reservation_kind::hold, hour0 + 1, units, until);
    o.reservations = {{h.resource, h.reservation_id, h.start_us, h.end_us, h.allocations}};
    return o;
  };
  // The record's hold carried by its offer as well: counted once, clean.
  write("framecraft", [&](store::write_batch& b) {
    auto o = carrying("framecraft/proposal/2", 20, t0 + 5 * us_per_min);
    tables::offers.put(b, o.proposal_id, o);
  });
  auto r = verify({"velo", "framecraft"});
  EXPECT_TRUE(r.clean()) << dump(r);
  // A carried hold of 10 more units: over capacity until its deadline.
  write("framecraft", [&](store::write_batch& b) {
    auto o = carrying("framecraft/proposal/3", 10, t0 + us_per_hour);
    tables::offers.put(b, o.proposal_id, o);
  });
  r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::over_commitment);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(v[0].key, "saw1");
  EXPECT_NE(v[0].message.find("held 30 + booked 40 = 70 units > capacity 60"), std::string::npos)
      << v[0].message;
  EXPECT_EQ(r.violations_total, 1u) << dump(r);
  EXPECT_EQ(r.stores[1].holds, 2u);  // the record and the carried one
  // Past the offer's deadline it holds nothing, and no "expired hold" is
  // left behind: there is no record to erase (the record's own hold is).
  r = verify({"velo", "framecraft"}, t0 + us_per_hour + 1);
  EXPECT_TRUE(of_kind(r, violation_kind::over_commitment).empty()) << dump(r);
  for (const auto& x : of_kind(r, violation_kind::expired_hold))
    EXPECT_EQ(x.table, "holds") << dump(r);
  // Incrementally: the change of the offer's key alone finds it.
  auto env = open_store("framecraft");
  ASSERT_TRUE(env);
  verify_options vo;
  vo.now_us = t0;
  auto changed = verify_changes(
      {{{dir("framecraft"), env.get()}, "framecraft", {{"offers", {"framecraft/proposal/3"}}}}},
      vo);
  ASSERT_TRUE(changed) << changed.error().to_string();
  ASSERT_EQ(of_kind(*changed, violation_kind::over_commitment).size(), 1u) << dump(*changed);
  // Rejected, the offer carries no hold any more.
  store::write_batch b;
  auto o = carrying("framecraft/proposal/3", 10, t0 + us_per_hour);
  o.state = offer_state::rejected;
  tables::offers.put(b, o.proposal_id, o);
  ASSERT_TRUE(env->apply(b));
  changed = verify_changes(
      {{{dir("framecraft"), env.get()}, "framecraft", {{"offers", {"framecraft/proposal/3"}}}}},
      vo);
  ASSERT_TRUE(changed) << changed.error().to_string();
  EXPECT_TRUE(changed->clean()) << dump(*changed);
}

TEST_F(verify_test, reservations_of_an_undefined_resource_are_unchecked) {
  write("old", [](store::write_batch& b) {
    // Written before "resources" existed: 500 units cannot be judged.
    offer_record o;
    o.proposal_id = "old/proposal/1";
    o.state = offer_state::held;
    tables::offers.put(b, o.proposal_id, o);
    put_reservation(b, reservation("saw1", "old/proposal/1#0", reservation_kind::hold, hour0, 500,
                                   t0 + us_per_hour));
  });
  auto r = verify({"old"});
  EXPECT_TRUE(r.clean()) << dump(r);
  EXPECT_EQ(r.reservations_unchecked, 1u);
}

TEST_F(verify_test, contracts_missing_at_either_end_are_found) {
  write_buyer();
  write_seller();
  // The buyer knows a contract the seller never recorded ...
  write("velo", [](store::write_batch& b) {
    auto c = contract("velo/order/2/c1", contract_role::buyer);
    c.order_id = "velo/order/2";
    tables::contracts.put(b, c.contract_id, c);
  });
  // ... and the seller one the buyer never recorded (cancelled: no bookings).
  write("framecraft", [](store::write_batch& b) {
    auto c = contract("velo/order/3/c1", contract_role::seller);
    c.state = contract_state::cancelled;
    c.proposal_id = "framecraft/proposal/9";
    tables::contracts.put(b, c.contract_id, c);
  });
  auto r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::contract_missing);
  ASSERT_EQ(v.size(), 2u) << dump(r);
  EXPECT_EQ(r.violations_total, 2u) << dump(r);
  EXPECT_EQ(v[0].node, "velo");
  EXPECT_EQ(v[0].key, "velo/order/2/c1");
  EXPECT_EQ(v[0].table, "contracts");
  EXPECT_NE(v[0].message.find("missing at framecraft"), std::string::npos) << v[0].message;
  EXPECT_EQ(v[1].node, "framecraft");
  EXPECT_EQ(v[1].key, "velo/order/3/c1");
  EXPECT_NE(v[1].message.find("missing at velo"), std::string::npos) << v[1].message;
}

TEST_F(verify_test, contracts_with_different_terms_are_found_once) {
  write_buyer();
  write_seller();
  write("framecraft", [](store::write_batch& b) {
    auto c = contract("velo/order/1/c1", contract_role::seller);
    c.price_cents = 99'999;
    tables::contracts.put(b, c.contract_id, c);
  });
  auto r = verify({"framecraft", "velo"});
  auto v = of_kind(r, violation_kind::contract_mismatch);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(r.violations_total, 1u) << dump(r);
  EXPECT_EQ(v[0].node, "velo");  // reported at the buyer
  EXPECT_EQ(v[0].key, "velo/order/1/c1");
  EXPECT_NE(v[0].message.find("price_cents 12345 vs 99999"), std::string::npos) << v[0].message;
}

TEST_F(verify_test, holds_past_their_deadline_are_found_relative_to_now) {
  write_buyer();
  write_seller();
  const auto deadline = t0 + 5 * us_per_min;
  EXPECT_TRUE(verify({"velo", "framecraft"}, deadline).clean());  // valid while now <= deadline
  auto r = verify({"velo", "framecraft"}, deadline + 1);
  auto v = of_kind(r, violation_kind::expired_hold);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(r.violations_total, 1u) << dump(r);
  EXPECT_EQ(v[0].node, "framecraft");
  EXPECT_EQ(v[0].table, "holds");
  EXPECT_EQ(v[0].key, "saw1/framecraft/proposal/2#0");
}

TEST_F(verify_test, orders_not_in_a_terminal_state_are_found) {
  write_buyer();
  write("velo", [](store::write_batch& b) {
    order_record o;
    o.order_id = "velo/order/2";
    o.state = order_state::negotiating;
    tables::orders.put(b, o.order_id, o);
    o.order_id = "velo/order/3";
    o.state = order_state::awarded;
    o.awarded_proposal_id = "framecraft/proposal/7";
    tables::orders.put(b, o.order_id, o);
    o.order_id = "velo/order/4";
    o.state = order_state::failed;
    tables::orders.put(b, o.order_id, o);
    o.order_id = "velo/order/5";
    o.state = order_state::cancelled;
    tables::orders.put(b, o.order_id, o);
  });
  auto r = verify({"velo"});
  auto v = of_kind(r, violation_kind::order_not_terminal);
  ASSERT_EQ(v.size(), 2u) << dump(r);
  EXPECT_EQ(r.violations_total, 2u) << dump(r);
  EXPECT_EQ(v[0].key, "velo/order/2");
  EXPECT_NE(v[0].message.find("negotiating"), std::string::npos) << v[0].message;
  EXPECT_EQ(v[1].key, "velo/order/3");
  EXPECT_NE(v[1].message.find("awarded to framecraft/proposal/7"), std::string::npos)
      << v[1].message;
  EXPECT_EQ(r.stores[0].orders, 5u);
}

TEST_F(verify_test, bookings_backing_no_active_contract_are_orphans) {
  write_buyer();
  write_seller();
  write("framecraft", [](store::write_batch& b) {
    // No offer at all.
    put_reservation(b, reservation("weld1", "framecraft/proposal/8#0", reservation_kind::booking,
                                   hour0 + 5, 10));
    // A crash after the booking, before the contract commit: offer still held.
    offer_record o;
    o.proposal_id = "framecraft/proposal/4";
    o.state = offer_state::held;
    o.valid_until_us = t0 + us_per_hour;
    o.reservations = {{"weld1", "framecraft/proposal/4#0"}};
    tables::offers.put(b, o.proposal_id, o);
    put_reservation(b, reservation("weld1", "framecraft/proposal/4#0", reservation_kind::booking,
                                   hour0 + 6, 10));
    // A crash after the cancel commit, before the release: contract cancelled.
    o.proposal_id = "framecraft/proposal/5";
    o.state = offer_state::contracted;
    o.contract_id = "velo/order/5/c1";
    o.reservations = {{"weld1", "framecraft/proposal/5#0"}};
    tables::offers.put(b, o.proposal_id, o);
    put_reservation(b, reservation("weld1", "framecraft/proposal/5#0", reservation_kind::booking,
                                   hour0 + 7, 10));
    auto c = contract("velo/order/5/c1", contract_role::seller);
    c.state = contract_state::cancelled;
    c.proposal_id = "framecraft/proposal/5";
    tables::contracts.put(b, c.contract_id, c);
  });
  auto r = verify({"framecraft"});
  auto v = of_kind(r, violation_kind::orphan_booking);
  ASSERT_EQ(v.size(), 3u) << dump(r);
  EXPECT_EQ(r.violations_total, 3u) << dump(r);
  EXPECT_EQ(v[0].table, "bookings");
  EXPECT_EQ(v[0].key, "weld1/framecraft/proposal/4#0");
  EXPECT_NE(v[0].message.find("is held"), std::string::npos) << v[0].message;
  EXPECT_EQ(v[1].key, "weld1/framecraft/proposal/5#0");
  EXPECT_NE(v[1].message.find("cancelled"), std::string::npos) << v[1].message;
  EXPECT_EQ(v[2].key, "weld1/framecraft/proposal/8#0");
  EXPECT_NE(v[2].message.find("missing"), std::string::npos) << v[2].message;
}

TEST_F(verify_test, active_contracts_without_their_bookings_are_found) {
  write_buyer();
  write_seller();
  write("framecraft", [](store::write_batch& b) {
    tables::bookings.erase(b, reservation_key("weld1", "framecraft/proposal/1#1"));
  });
  auto r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::missing_booking);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(r.violations_total, 1u) << dump(r);
  EXPECT_EQ(v[0].node, "framecraft");
  EXPECT_EQ(v[0].table, "contracts");
  EXPECT_EQ(v[0].key, "velo/order/1/c1");
  EXPECT_NE(v[0].message.find("weld1/framecraft/proposal/1#1"), std::string::npos) << v[0].message;
}

TEST_F(verify_test, corrupt_and_misplaced_records_are_found) {
  write_buyer();
  write_seller();
  write("framecraft", [](store::write_batch& b) {
    b.put("contracts", "velo/order/8/c1", "not a flatbuffer");
    b.put("seq", "order", "junk");
    // A hold under another key, and a booking moved into "holds".
    tables::holds.put(b, "saw1/elsewhere",
                      reservation("saw1", "framecraft/proposal/2#0", reservation_kind::hold,
                                  hour0 + 1, 1, t0 + us_per_hour));
    const auto key = reservation_key("saw1", "framecraft/proposal/1#0");
    tables::holds.put(
        b, key,
        reservation("saw1", "framecraft/proposal/1#0", reservation_kind::booking, hour0 + 1, 40));
    tables::bookings.erase(b, key);
  });
  auto r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::corrupt_record);
  ASSERT_EQ(v.size(), 4u) << dump(r);
  EXPECT_EQ(v[0].table, "contracts");
  EXPECT_EQ(v[0].key, "velo/order/8/c1");
  EXPECT_NE(v[0].message.find("corrupt"), std::string::npos) << v[0].message;
  EXPECT_EQ(v[1].table, "holds");
  EXPECT_EQ(v[1].key, "saw1/elsewhere");
  EXPECT_EQ(v[2].table, "holds");
  EXPECT_EQ(v[2].key, "saw1/framecraft/proposal/1#0");
  EXPECT_NE(v[2].message.find("a booking stored in table holds"), std::string::npos)
      << v[2].message;
  EXPECT_EQ(v[3].table, "seq");
  EXPECT_EQ(v[3].key, "order");
  // The contract's booking is not where it belongs either.
  EXPECT_EQ(of_kind(r, violation_kind::missing_booking).size(), 1u) << dump(r);
  EXPECT_EQ(r.violations_total, 5u) << dump(r);
}

TEST_F(verify_test, node_ids_fall_back_to_records_then_the_directory) {
  write("a", [](store::write_batch& b) {
    tables::contracts.put(b, "velo/order/1/c1", contract("velo/order/1/c1", contract_role::seller));
  });
  write("b", [](store::write_batch& b) {
    order_record o;
    o.order_id = "velo/order/1";
    o.state = order_state::contracted;
    tables::orders.put(b, o.order_id, o);
  });
  write("c", [](store::write_batch& b) {
    offer_record o;
    o.proposal_id = "cellpack/proposal/1";
    o.state = offer_state::rejected;
    tables::offers.put(b, o.proposal_id, o);
  });
  write("spare", [](store::write_batch&) {});
  verify_options opts;
  opts.now_us = t0;
  auto r = verify_data_dirs({dir("a"), dir("b"), dir("c"), dir("spare") + "/"}, opts);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->stores.size(), 4u);
  EXPECT_EQ(r->stores[0].node_id, "framecraft");
  EXPECT_EQ(r->stores[0].id_source, node_id_source::records);
  EXPECT_EQ(r->stores[1].node_id, "velo");
  EXPECT_EQ(r->stores[2].node_id, "cellpack");
  EXPECT_EQ(r->stores[3].node_id, "spare");
  EXPECT_EQ(r->stores[3].id_source, node_id_source::directory);
  // framecraft's seller contract has no offer: its bookings are missing; the
  // buyer's side (b, velo) holds no contract: missing there.
  EXPECT_EQ(of_kind(*r, violation_kind::missing_booking).size(), 1u) << dump(*r);
  EXPECT_EQ(of_kind(*r, violation_kind::contract_missing).size(), 1u) << dump(*r);
}

TEST_F(verify_test, stores_that_cannot_be_opened_are_errors_and_never_created) {
  write_buyer();
  verify_options opts;
  opts.now_us = t0;
  auto missing = verify_data_dirs({dir("velo"), dir("nope")}, opts);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::not_found);
  EXPECT_EQ(missing.error().message(), dir("nope") + ": no such directory");
  EXPECT_FALSE(fs::exists(dir("nope")));

  fs::create_directories(dir("empty"));
  auto empty = verify_data_dirs({dir("empty")}, opts);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), errc::not_found);
  EXPECT_NE(empty.error().message().find("not a Gearmesh store"), std::string::npos);
  EXPECT_FALSE(fs::exists(fs::path(dir("empty")) / "data.mdb"));

  auto twice = verify_data_dirs({dir("velo"), dir("velo") + "/"}, opts);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), errc::invalid_argument);

  auto none = verify_data_dirs({}, opts);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), errc::invalid_argument);

  // A copy of a store next to the original: both claim node "velo".
  fs::copy(dir("velo"), dir("velo-copy"));
  auto same_node = verify_data_dirs({dir("velo"), dir("velo-copy")}, opts);
  ASSERT_FALSE(same_node);
  EXPECT_EQ(same_node.error().code(), errc::invalid_argument);
  EXPECT_NE(same_node.error().message().find("both stores of node velo"), std::string::npos)
      << same_node.error().message();
}

TEST_F(verify_test, listed_violations_are_bounded_but_all_counted) {
  write("velo", [](store::write_batch& b) {
    b.put("meta", meta_node_id_key, "velo");
    for (int i = 0; i < 5; ++i) {
      order_record o;
      o.order_id = "velo/order/" + std::to_string(i);
      tables::orders.put(b, o.order_id, o);
    }
  });
  verify_options opts;
  opts.now_us = t0;
  opts.violations_max = 2;
  auto r = verify_data_dirs({dir("velo")}, opts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->violations.size(), 2u);
  EXPECT_EQ(r->violations_total, 5u);
  EXPECT_FALSE(r->clean());
}

// verify_options::threads: the second half of the stores on a thread of
// its own gives the report of one thread, in the same order, with the same
// listing when it is bounded (verify() compares the two).
TEST_F(verify_test, two_threads_give_the_report_of_one) {
  write_buyer();
  write_seller();
  write("velo", [](store::write_batch& b) {
    auto c = contract("velo/order/2/c1", contract_role::buyer);
    c.order_id = "velo/order/2";
    tables::contracts.put(b, c.contract_id, c);  // missing at framecraft
  });
  std::vector<std::string> names;
  for (int s = 0; s < 5; ++s) {
    const std::string name = "n" + std::to_string(s);
    write(name, [&](store::write_batch& b) {
      b.put("meta", meta_node_id_key, name);
      for (int i = 0; i <= s; ++i) {
        order_record o;
        o.order_id = name + "/order/" + std::to_string(i);  // not terminal
        tables::orders.put(b, o.order_id, o);
      }
    });
    names.push_back(name);
  }
  names.insert(names.begin() + 1, "velo");
  names.insert(names.begin() + 4, "framecraft");  // n0 velo n1 n2 | framecraft n3 n4
  for (std::size_t max : {10'000u, 7u, 3u}) {
    SCOPED_TRACE(max);
    auto r = verify(names, t0, max);
    EXPECT_EQ(r.violations_total, 16u) << dump(r);  // 15 orders, 1 contract
    EXPECT_EQ(r.violations.size(), std::min<std::size_t>(max, 16)) << dump(r);
  }
}

TEST_F(verify_test, verifies_environments_that_are_already_open) {
  write_buyer();
  auto env = open_store("velo");
  ASSERT_TRUE(env);
  verify_options vo;
  vo.now_us = t0;
  auto r = verify_stores({{"velo-in-memory", env.get()}}, vo);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->clean()) << dump(*r);
  EXPECT_EQ(r->stores[0].path, "velo-in-memory");
  EXPECT_FALSE(verify_stores({{"null", nullptr}}, vo));
}

// The simulator's mid-run check: only what changed is read, and it finds
// the same over_commitment and corrupt_record violations as a full check.
TEST_F(verify_test, changes_find_what_a_full_check_finds_of_the_instant_invariants) {
  write_buyer();
  write_seller();
  auto env = open_store("framecraft");
  ASSERT_TRUE(env);
  verify_options vo;
  vo.now_us = t0;
  auto changes = [&](store::written_keys keys) {
    auto r = verify_changes({{{dir("framecraft"), env.get()}, "framecraft", std::move(keys)}}, vo);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(*r) : verify_report{};
  };
  auto full = [&] {
    auto r = verify_stores({{dir("framecraft"), env.get()}}, vo);
    EXPECT_TRUE(r) << r.error().to_string();
    verify_report out;
    if (!r) return out;
    for (auto& v : r->violations)
      if (v.kind == violation_kind::over_commitment || v.kind == violation_kind::corrupt_record)
        out.violations.push_back(v);
    return out;
  };
  // Nothing changed, or only tables the checker does not know: clean.
  EXPECT_TRUE(changes({}).clean());
  EXPECT_TRUE(changes({{"inbox", {"x"}}, {"unknown", {"y"}}}).clean());
  // A new hold pushes saw1's bucket hour0 + 1 over capacity: the change of
  // that one key finds it.
  store::write_batch b;
  put_reservation(b, reservation("saw1", "framecraft/proposal/3#0", reservation_kind::hold,
                                 hour0 + 1, 10, t0 + us_per_hour));
  ASSERT_TRUE(env->apply(b));
  auto r = changes({{"holds", {reservation_key("saw1", "framecraft/proposal/3#0")}}});
  auto v = of_kind(r, violation_kind::over_commitment);
  ASSERT_EQ(v.size(), 1u) << dump(r);
  EXPECT_EQ(v[0].node, "framecraft");
  EXPECT_EQ(v[0].key, "saw1");
  EXPECT_EQ(r.violations, full().violations);
  // Releasing it again: clean; so is an erased key.
  store::write_batch release;
  tables::holds.erase(release, reservation_key("saw1", "framecraft/proposal/3#0"));
  ASSERT_TRUE(env->apply(release));
  EXPECT_TRUE(changes({{"holds", {reservation_key("saw1", "framecraft/proposal/3#0")}}}).clean());
  // A lower capacity is a change of the resource: all its buckets are checked.
  store::write_batch shrink;
  tables::resources.put(shrink, "weld1", resource_record{"weld1", 10, us_per_hour});
  ASSERT_TRUE(env->apply(shrink));
  r = changes({{"resources", {"weld1"}}});
  ASSERT_EQ(of_kind(r, violation_kind::over_commitment).size(), 1u) << dump(r);
  EXPECT_EQ(r.violations, full().violations);
  store::write_batch restore;
  tables::resources.put(restore, "weld1", resource_record{"weld1", 60, us_per_hour});
  ASSERT_TRUE(env->apply(restore));
  // Corrupt and misplaced records among the changed keys.
  store::write_batch bad;
  bad.put("contracts", "velo/order/8/c1", "not a flatbuffer");
  bad.put("seq", "order", "junk");
  tables::holds.put(bad, "saw1/elsewhere",
                    reservation("saw1", "framecraft/proposal/2#0", reservation_kind::hold,
                                hour0 + 1, 1, t0 + us_per_hour));
  tables::offers.put(bad, "framecraft/proposal/9", offer_record{});
  ASSERT_TRUE(env->apply(bad));
  r = changes({{"contracts", {"velo/order/8/c1"}},
               {"seq", {"order"}},
               {"holds", {"saw1/elsewhere"}},
               {"offers", {"framecraft/proposal/9"}}});
  EXPECT_EQ(of_kind(r, violation_kind::corrupt_record).size(), 4u) << dump(r);
  EXPECT_EQ(r.violations_total, 4u) << dump(r);
  auto all = full();
  auto sorted = [](std::vector<violation> x) {
    std::sort(x.begin(), x.end(), [](const violation& a, const violation& b) {
      return std::tie(a.table, a.key) < std::tie(b.table, b.key);
    });
    return x;
  };
  EXPECT_EQ(sorted(r.violations), sorted(all.violations));
  EXPECT_FALSE(verify_changes({{{"null", nullptr}, "x", {}}}, vo));
}

// The index verify_changes keeps between checks against a full check,
// through random writes: holds, bookings and offers carrying holds put and
// erased, capacities changed, records corrupted, time passing. After each
// write the changed keys are checked; whatever a full check finds of the
// instant invariants, the check of the changes finds too, and nothing else.
// Each write that broke one is then undone, so every check starts clean.
TEST_F(verify_test, an_index_finds_what_a_full_check_finds_through_random_changes) {
  // Not indexed: each check builds an index of its own.
  for (const bool indexed : {false, true}) {
    for (std::uint32_t seed = 1; seed <= 8; ++seed) {
      SCOPED_TRACE(::testing::Message() << "indexed " << indexed << ", seed " << seed);
      const std::string name = "random-" + std::to_string(indexed) + "-" + std::to_string(seed);
      auto env = open_store(name);
      ASSERT_TRUE(env);
      std::mt19937 rng(seed);
      auto below = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
      check_index index;
      verify_options vo;
      vo.now_us = t0;
      {
        store::write_batch b;
        b.put("meta", meta_node_id_key, name);
        tables::resources.put(b, "saw1", resource_record{"saw1", 10, us_per_hour});
        tables::resources.put(b, "weld1", resource_record{"weld1", 8, us_per_hour});
        ASSERT_TRUE(env->apply(b));
      }
      const std::vector<std::string> resources{"saw1", "weld1", "lathe1"};  // lathe1: undefined
      auto allocations = [&] {
        std::vector<allocation> a;
        for (std::int64_t bucket = hour0 + below(2); bucket < hour0 + 4 && a.size() < 2;
             bucket += 1 + below(2))
          a.push_back({bucket, 1 + below(6)});
        return a;
      };
      auto changes = [&](store::written_keys keys) {
        auto r = verify_changes(
            {{{name, env.get()}, name, std::move(keys), indexed ? &index : nullptr}}, vo);
        EXPECT_TRUE(r) << r.error().to_string();
        return r ? std::move(*r) : verify_report{};
      };
      auto full = [&] {
        auto r = verify_stores({{name, env.get()}}, vo);
        EXPECT_TRUE(r) << r.error().to_string();
        std::vector<violation> out;
        if (r)
          for (auto& v : r->violations)
            if (v.kind == violation_kind::over_commitment ||
                v.kind == violation_kind::corrupt_record)
              out.push_back(v);
        return out;
      };
      int broken = 0;
      for (int step = 0; step < 500; ++step) {
        SCOPED_TRACE(::testing::Message() << "step " << step);
        store::write_batch b;
        std::string table, key;
        const auto& resource = resources[static_cast<std::size_t>(below(3))];
        const std::string id = "p" + std::to_string(below(6)) + "#0";
        switch (below(9)) {
          case 0:
          case 1: {  // a hold or a booking
            const auto kind = below(2) ? reservation_kind::hold : reservation_kind::booking;
            auto r = reservation(resource, id, kind, hour0, 1,
                                 kind == reservation_kind::hold ? vo.now_us + us_per_hour : 0);
            r.allocations = allocations();
            table = kind == reservation_kind::hold ? "holds" : "bookings";
            key = reservation_key(resource, id);
            put_reservation(b, r);
            break;
          }
          case 2:  // erased
            table = below(2) ? "holds" : "bookings";
            key = reservation_key(resource, id);
            b.erase(table, key);
            break;
          case 3:
          case 4: {  // an offer carrying holds (some with a stored hold's key)
            offer_record o;
            o.proposal_id = "o" + std::to_string(below(4));
            o.state = below(4) ? offer_state::held : offer_state::rejected;
            o.valid_until_us = vo.now_us + below(90) * us_per_min;
            for (int i = below(3); i > 0; --i)
              o.reservations.push_back(
                  {below(2) ? resource : resources[static_cast<std::size_t>(below(3))],
                   below(2) ? o.proposal_id + "#" + std::to_string(i) : id, 0, 0, allocations()});
            if (below(20) == 0) o.reservations.push_back({"bad/name", "x#0", 0, 0, allocations()});
            if (below(20) == 0) o.reservations.push_back({"saw1", "y#0", 0, 0, {{hour0, 0}}});
            table = "offers";
            key = o.proposal_id;
            tables::offers.put(b, key, o);
            break;
          }
          case 5:  // an offer erased
            table = "offers";
            key = "o" + std::to_string(below(4));
            b.erase(table, key);
            break;
          case 6:  // a capacity changed, or a definition lost
            table = "resources";
            key = resource;
            if (below(5) == 0)
              b.erase(table, key);
            else
              tables::resources.put(b, key, resource_record{key, 4 + below(12), us_per_hour});
            break;
          case 7:  // a corrupt record
            table = below(2) ? "holds" : "offers";
            key = table == "holds" ? reservation_key(resource, id) : "o" + std::to_string(below(4));
            b.put(table, key, "not a flatbuffer");
            break;
          case 8:  // time passes: carried holds lapse
            vo.now_us += below(40) * us_per_min;
            break;
        }
        std::optional<std::string> before;
        if (!table.empty()) {
          auto old = env->get(table, key);
          ASSERT_TRUE(old);
          before = *old;
          ASSERT_TRUE(env->apply(b));
        }
        store::written_keys keys;
        if (!table.empty()) keys[table].insert(key);
        auto r = changes(keys);
        auto all = full();
        if (all.empty()) {
          EXPECT_TRUE(r.clean()) << dump(r);
          continue;
        }
        ++broken;
        EXPECT_FALSE(r.violations.empty()) << table << " " << key << " -> " << all[0].table << " "
                                           << all[0].key << ": " << all[0].message;
        for (const auto& v : r.violations)
          EXPECT_NE(std::find(all.begin(), all.end(), v), all.end())
              << v.table << " " << v.key << ": " << v.message;
        // Undone: clean again, at both.
        ASSERT_FALSE(table.empty());  // time alone only lets holds lapse
        store::write_batch undo;
        if (before)
          undo.put(table, key, *before);
        else
          undo.erase(table, key);
        ASSERT_TRUE(env->apply(undo));
        EXPECT_TRUE(changes(keys).clean());
        EXPECT_TRUE(full().empty());
      }
      EXPECT_GT(broken, 20);
    }
  }
}

// Nested negotiation at one node (framecraft buys tube sets for its frames):
// a contracted offer needs contracted component orders, and a contracted
// component order needs the contracted offer it backs.
TEST_F(verify_test, component_orders_disagreeing_with_their_offers_are_found) {
  write_buyer();
  write_seller();
  write("framecraft", [](store::write_batch& b) {
    auto component = [&](const std::string& id, order_state st) {
      order_record c;
      c.order_id = id;
      c.item = "TUBE-SET";
      c.quantity = 5;
      c.state = st;
      c.parent_buyer = "velo";
      c.parent_order_id = "velo/order/1";
      c.award_by_us = t0;
      tables::orders.put(b, id, c);
    };
    component("framecraft/order/1", order_state::contracted);  // backs the contract: fine
    component("framecraft/order/2", order_state::cancelled);   // backs it too: not contracted
    component("framecraft/order/3", order_state::contracted);  // backs the held offer: leaked
    component("framecraft/order/4", order_state::contracted);  // backs nothing: leaked
    component("framecraft/order/5", order_state::ready);       // still waiting
    offer_record contracted;
    contracted.proposal_id = "framecraft/proposal/1";
    contracted.order_id = "velo/order/1";
    contracted.buyer = "velo";
    contracted.item = "FRAME";
    contracted.quantity = 5;
    contracted.state = offer_state::contracted;
    contracted.contract_id = "velo/order/1/c1";
    contracted.reservations = {{"saw1", "framecraft/proposal/1#0"},
                               {"weld1", "framecraft/proposal/1#1"}};
    contracted.sub_orders = {"framecraft/order/1", "framecraft/order/2"};
    tables::offers.put(b, contracted.proposal_id, contracted);
    offer_record held;
    held.proposal_id = "framecraft/proposal/2";
    held.order_id = "alpha/order/9";
    held.buyer = "alpha";
    held.state = offer_state::held;
    held.valid_until_us = t0 + 5 * us_per_min;
    held.reservations = {{"saw1", "framecraft/proposal/2#0"}};
    held.sub_orders = {"framecraft/order/3", "framecraft/order/5"};
    tables::offers.put(b, held.proposal_id, held);
  });
  auto r = verify({"velo", "framecraft"});
  auto v = of_kind(r, violation_kind::component_mismatch);
  ASSERT_EQ(v.size(), 3u) << dump(r);
  EXPECT_EQ(v[0].table, "offers");
  EXPECT_EQ(v[0].key, "framecraft/proposal/1");
  EXPECT_NE(v[0].message.find("framecraft/order/2 is cancelled"), std::string::npos)
      << v[0].message;
  EXPECT_EQ(v[1].key, "framecraft/order/3");
  EXPECT_NE(v[1].message.find("(framecraft/proposal/2) is held"), std::string::npos)
      << v[1].message;
  EXPECT_EQ(v[2].key, "framecraft/order/4");
  EXPECT_NE(v[2].message.find("no offer names it"), std::string::npos) << v[2].message;
  auto waiting = of_kind(r, violation_kind::order_not_terminal);
  ASSERT_EQ(waiting.size(), 1u) << dump(r);
  EXPECT_EQ(waiting[0].key, "framecraft/order/5");
  EXPECT_NE(waiting[0].message.find("waiting for its award"), std::string::npos);
}

TEST(verify_names, kinds_have_stable_names) {
  EXPECT_STREQ(to_string(violation_kind::over_commitment), "over_commitment");
  EXPECT_STREQ(to_string(violation_kind::contract_missing), "contract_missing");
  EXPECT_STREQ(to_string(violation_kind::contract_mismatch), "contract_mismatch");
  EXPECT_STREQ(to_string(violation_kind::expired_hold), "expired_hold");
  EXPECT_STREQ(to_string(violation_kind::order_not_terminal), "order_not_terminal");
  EXPECT_STREQ(to_string(violation_kind::orphan_booking), "orphan_booking");
  EXPECT_STREQ(to_string(violation_kind::missing_booking), "missing_booking");
  EXPECT_STREQ(to_string(violation_kind::corrupt_record), "corrupt_record");
  EXPECT_STREQ(to_string(violation_kind::component_mismatch), "component_mismatch");
  EXPECT_STREQ(invariant_of(violation_kind::component_mismatch),
               "invariant 2 (agreement across tiers)");
  EXPECT_STREQ(invariant_of(violation_kind::over_commitment), "invariant 1 (no over-commitment)");
  EXPECT_STREQ(to_string(node_id_source::directory), "directory");
}

}  // namespace
}  // namespace gearmesh::actors
