// Capacity sharing (capacity.hpp): the pure split of an offer's hold, and
// publisher, partners and bookings end to end in one process (real CAF actor
// system, real LMDB stores, real encoded frames), as in actors.test.cpp.
#include "gearmesh/actors/capacity.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "caf_messages.hpp"
#include "gearmesh/actors/factory.hpp"
#include "gearmesh/actors/install.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/actors/verify.hpp"
#include "gearmesh/wire/codec.hpp"
#include "temp_dir.hpp"
#include "test_network.hpp"

namespace gearmesh::actors {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// --- split_offer_hold -------------------------------------------------------

TEST(capacity_split, never_sells_units_where_the_machine_is_down) {
  capacity_calendar cal(us_per_hour, 60);
  auto p = cal.find_earliest(100, 10 * us_per_hour + 30 * us_per_min, 20 * us_per_hour);
  ASSERT_TRUE(p);  // 30 units in bucket 10, 60 in 11, 10 in 12
  ASSERT_TRUE(cal.hold("fc/capacity/1#open", *p, 5'000));
  // A breakdown blocks bucket 11 after the offer was published.
  ASSERT_TRUE(cal.block("fc/outage/1", 11, 11));
  auto s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b1", 50);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason,
            "the machine is out of service from 1970-01-01T11:00Z, inside the units asked for");
  EXPECT_FALSE(cal.find("fc/capacity/1#b1"));
  EXPECT_EQ(cal.find("fc/capacity/1#open")->where, *p);  // the offer is untouched
  // What lies before the outage can still be sold.
  s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b1", 30);
  ASSERT_TRUE(s.ok) << s.reason;
  EXPECT_EQ(s.booked.allocations, (std::vector<allocation>{{10, 30}}));
  // Repaired: the rest is for sale again.
  ASSERT_TRUE(cal.unblock("fc/outage/1"));
  s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b2", 70);
  ASSERT_TRUE(s.ok) << s.reason;
  EXPECT_TRUE(cal.check());
}

TEST(capacity_split, moves_the_first_units_into_a_booking) {
  capacity_calendar cal(us_per_hour, 60);
  auto p = cal.find_earliest(100, 10 * us_per_hour + 30 * us_per_min, 20 * us_per_hour);
  ASSERT_TRUE(p);  // 30 units in bucket 10, 60 in 11, 10 in 12
  ASSERT_TRUE(cal.hold("fc/capacity/1#open", *p, 5'000));
  auto s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b1", 50);
  ASSERT_TRUE(s.ok) << s.reason;
  EXPECT_EQ(s.booked.allocations, (std::vector<allocation>{{10, 30}, {11, 20}}));
  EXPECT_EQ(s.rest.allocations, (std::vector<allocation>{{11, 40}, {12, 10}}));
  EXPECT_EQ(s.deadline_us, 5'000);
  EXPECT_EQ(cal.find("fc/capacity/1#b1")->kind, reservation_kind::booking);
  EXPECT_EQ(cal.find("fc/capacity/1#open")->deadline_us, 5'000);
  EXPECT_EQ(cal.load(11), (bucket_load{20, 40}));
  EXPECT_TRUE(cal.check());

  // More than is left: nothing changes.
  s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b2", 51);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, "only 50 units remain");
  EXPECT_FALSE(cal.find("fc/capacity/1#b2"));
  // Everything that is left: the hold is gone.
  s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b2", 50);
  ASSERT_TRUE(s.ok);
  EXPECT_TRUE(s.rest.allocations.empty());
  EXPECT_FALSE(cal.find("fc/capacity/1#open"));
  EXPECT_EQ(cal.load(11), (bucket_load{60, 0}));
  EXPECT_TRUE(cal.check());
  // Expired (released by the calendar): refused.
  s = split_offer_hold(cal, "fc/capacity/1#open", "fc/capacity/1#b3", 1);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, "offer expired");
}

TEST(capacity_ids, are_told_apart_from_proposal_reservations) {
  EXPECT_EQ(offer_hold_id("fc/capacity/3"), "fc/capacity/3#open");
  EXPECT_EQ(offer_booking_id("fc/capacity/3", 2), "fc/capacity/3#b2");
  EXPECT_TRUE(is_capacity_reservation("fc/capacity/3#open"));
  EXPECT_TRUE(is_capacity_reservation("fc/capacity/3#b2"));
  EXPECT_FALSE(is_capacity_reservation("fc/proposal/3#0"));
  EXPECT_FALSE(is_capacity_reservation("capacity/3#0"));
}

// --- in-process network -----------------------------------------------------

using testing::test_network;
using testing::test_node;

// --- nodes ------------------------------------------------------------------

const char* framecraft_toml = R"(
[factory]
bucket_minutes = 60
[[factory.machines]]
id = "saw1"
capabilities = ["sawing"]
rate_cents_per_hour = 3000
[[factory.machines]]
id = "paint1"
capabilities = ["coating"]
rate_cents_per_hour = 4000
[[factory.items]]
id = "PANEL"
[[factory.items.operations]]
capability = "coating"
minutes_per_unit = 10
)";

const std::vector<std::string> partners{"velo", "alloyframe", "motorworks"};

/// framecraft (factory, publishes) and partners that only book.
class cap_world {
 public:
  /// `broker_told`: false leaves framecraft's participant without its broker
  /// (as a node that stops before install_roles told it): outages then
  /// cancel no capacity booking until the next start.
  explicit cap_world(std::filesystem::path dir, timestamp_us partner_clock_offset_us = 0,
                     bool broker_told = true)
      : dir_(std::move(dir)) {
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    auto file = config_file::parse(framecraft_toml, "framecraft.toml");
    EXPECT_TRUE(file.has_value());
    auto roles = parse_roles(*file);
    EXPECT_TRUE(roles.has_value()) << roles.error().to_string();
    factory_ = *roles->factory;
    auto& fc = add("framecraft", 0);
    auto p = spawn_factory(*sys_, fc, factory_, caf::actor{});
    EXPECT_TRUE(p.has_value()) << p.error().to_string();
    participant_ = *p;
    actors_.push_back(participant_);
    net_.route("framecraft",
               {wire::message_type::cfp, wire::message_type::accept, wire::message_type::reject,
                wire::message_type::cancel},
               participant_);
    capacity_config cc;
    cc.currency = factory_.currency;
    for (const auto& m : factory_.machines) cc.resources.push_back({m.id, m.capabilities});
    cc.audience = partners;
    cc.participant = participant_;
    spawn_broker("framecraft", std::move(cc));
    for (const auto& id : partners) {
      add(id, partner_clock_offset_us);
      spawn_broker(id, {});
    }
    // Last: cancellations it sends at once find every partner routed (the
    // test network sends a frame once; a node's outbox would re-send it).
    if (broker_told) caf::anon_send(participant_, broker_atom::value, brokers_.at("framecraft"));
  }

  ~cap_world() {
    for (auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors_.clear();
    brokers_.clear();
    participant_ = nullptr;
    sys_->await_all_actors_done();
    for (auto& [id, n] : nodes_) n->stop();
    nodes_.clear();
    sys_.reset();
  }

  test_node& node(const std::string& id) { return *nodes_.at(id); }
  caf::actor_system& system() { return *sys_; }
  const caf::actor& broker(const std::string& id) { return brokers_.at(id); }
  const caf::actor& participant() { return participant_; }
  const factory_config& factory() const { return factory_; }

  admin::router admin(const std::string& id) {
    admin::router r;
    add_capacity_routes(r, node(id), *sys_, broker(id));
    return r;
  }

 private:
  test_node& add(const std::string& id, timestamp_us offset) {
    auto& n = nodes_[id];
    n = std::make_unique<test_node>(id, (dir_ / id).string(), net_, offset);
    return *n;
  }
  void spawn_broker(const std::string& id, capacity_config cc) {
    auto b = spawn_capacity_broker(*sys_, node(id), std::move(cc));
    EXPECT_TRUE(b.has_value()) << b.error().to_string();
    net_.route(id,
               {wire::message_type::capacity_offer, wire::message_type::book_capacity,
                wire::message_type::capacity_booked, wire::message_type::capacity_refused,
                wire::message_type::capacity_cancelled},
               *b);
    brokers_[id] = *b;
    actors_.push_back(*b);
  }

  std::filesystem::path dir_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_network net_;
  factory_config factory_;
  std::map<std::string, std::unique_ptr<test_node>> nodes_;
  std::map<std::string, caf::actor> brokers_;
  caf::actor participant_;
  std::vector<caf::actor> actors_;
};

class capacity_test : public ::testing::Test {
 protected:
  gearmesh::testing::temp_dir tmp_;
  std::filesystem::path dir_{tmp_.path()};
};

using testing::all;
using testing::eventually;

admin::response call(const admin::router& r, std::string method, std::string path,
                     std::string body = {}) {
  admin::request req;
  req.method = std::move(method);
  req.path = path;
  req.target = std::move(path);
  req.body = std::move(body);
  return r.dispatch(req);
}

/// Publishes `units` of coating tomorrow, valid for `valid_ms`; the offer id.
std::string publish(cap_world& w, std::uint32_t units, std::int64_t valid_ms = 60'000) {
  const auto now = system_clock().now();
  const auto start = (now / us_per_day + 1) * us_per_day;
  json body{{"capability", "coating"},
            {"units", units},
            {"unit_price_cents", 150},
            {"window_start_us", start},
            {"window_end_us", start + 8 * us_per_hour},
            {"valid_until_us", now + valid_ms * us_per_ms}};
  auto resp = call(w.admin("framecraft"), "POST", "/v1/capacity/offers", body.dump());
  EXPECT_EQ(resp.status, 201u) << resp.body;
  auto j = json::parse(resp.body, nullptr, false);
  if (!j.is_object() || !j.contains("offer_id")) return {};
  EXPECT_EQ(j.at("remaining"), units);
  return j.at("offer_id").get<std::string>();
}

bool received(cap_world& w, const std::string& node, const std::string& offer,
              std::uint32_t remaining) {
  auto o = tables::capacity_received.get(w.node(node).store(), offer);
  return o && *o && (*o)->remaining == remaining;
}

/// The calendars of framecraft satisfy booked + held <= capacity.
void expect_calendars_ok(cap_world& w) {
  for (const auto& s : make_factory_policy(w.factory())->resources()) {
    auto cal = load_calendar(w.node("framecraft").store(), s);
    ASSERT_TRUE(cal.has_value()) << cal.error().to_string();
    EXPECT_TRUE(cal->check().is_ok()) << s.id << ": " << cal->check().to_string();
  }
}

/// Every booking granted at framecraft is recorded with the same terms at its
/// booker, and every booked booking at a booker is granted at framecraft.
void expect_booking_agreement(cap_world& w) {
  auto sold = all(w.node("framecraft").store(), tables::capacity_sold);
  std::size_t booked = 0;
  for (const auto& [key, s] : sold) {
    if (s.state != capacity_booking_state::booked) continue;
    ++booked;
    auto b = tables::capacity_bookings.get(w.node(s.booker).store(), s.booking_id);
    ASSERT_TRUE(b && *b) << s.booking_id;
    EXPECT_EQ((*b)->state, capacity_booking_state::booked);
    EXPECT_EQ((*b)->units, s.units);
    EXPECT_EQ((*b)->price_cents, s.price_cents);
    EXPECT_EQ((*b)->offer_id, s.offer_id);
    EXPECT_EQ((*b)->window_start_us, s.window_start_us);
  }
  std::size_t at_bookers = 0;
  for (const auto& id : partners)
    for (const auto& [k, b] : all(w.node(id).store(), tables::capacity_bookings))
      at_bookers += b.state == capacity_booking_state::booked;
  EXPECT_EQ(at_bookers, booked);
}

/// `gearmesh verify` over framecraft's and the partners' stores finds nothing.
void expect_verify_clean(cap_world& w) {
  verify_options vo;
  vo.now_us = system_clock().now();
  std::vector<store_ref> stores{{"framecraft", &w.node("framecraft").store()}};
  for (const auto& id : partners) stores.push_back({id, &w.node(id).store()});
  auto report = verify_stores(stores, vo);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  for (const auto& v : report->violations) ADD_FAILURE() << to_string(v.kind) << ": " << v.message;
}

/// Stores `b` at its booker behind the broker's back; verify must then find
/// exactly one capacity_booking_mismatch, saying `message`.
void expect_mismatch_found(cap_world& w, const capacity_booking_record& b,
                           const std::string& message) {
  store::write_batch batch;
  tables::capacity_bookings.put(batch, b.booking_id, b);
  ASSERT_TRUE(const_cast<store::environment&>(w.node(b.booker).store()).apply(batch));
  verify_options vo;
  vo.now_us = system_clock().now();
  std::vector<store_ref> stores{{"framecraft", &w.node("framecraft").store()}};
  for (const auto& id : partners) stores.push_back({id, &w.node(id).store()});
  auto report = verify_stores(stores, vo);
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->violations.size(), 1u);
  EXPECT_EQ(report->violations[0].kind, violation_kind::capacity_booking_mismatch);
  EXPECT_EQ(report->violations[0].message, message);
}

/// paint1 breaks down over the second hour of `offer`'s window ("pump
/// failure"); the HTTP status of the outage.
unsigned break_paint1_in_second_hour(cap_world& w, const std::string& offer) {
  const auto o = **tables::capacity_offers.get(w.node("framecraft").store(), offer);
  outage_request down;
  down.machine = "paint1";
  down.from_us = o.window_start_us + us_per_hour;
  down.until_us = o.window_start_us + 2 * us_per_hour;
  down.reason = "pump failure";
  return machine_outage(w.system(), w.participant(), down, 5s).http_status;
}

// --- tests ------------------------------------------------------------------

TEST_F(capacity_test, partners_book_an_offer_until_it_is_sold_out) {
  cap_world w(dir_);
  const auto offer = publish(w, 120);
  ASSERT_EQ(offer, "framecraft/capacity/1");
  for (const auto& id : partners)
    ASSERT_TRUE(eventually([&] { return received(w, id, offer, 120); }));

  // The offered units are held on paint1: a CFP quoting the same window
  // cannot promise them (invariant 1 per bucket).
  auto& fc = w.node("framecraft").store();
  auto holds = all(fc, tables::holds);
  ASSERT_EQ(holds.count("paint1/framecraft/capacity/1#open"), 1u);
  EXPECT_EQ(holds.begin()->second.allocations.size(), 2u);  // 60 + 60 minutes

  auto velo = w.admin("velo");
  auto r =
      call(velo, "POST", "/v1/capacity/bookings", json{{"offer_id", offer}, {"units", 50}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j.at("state"), "booked");
  EXPECT_EQ(j.at("price_cents"), 50 * 150);
  EXPECT_EQ(j.at("remaining"), 70);
  EXPECT_EQ(j.at("booking_id"), "velo/booking/1");
  // Every partner hears the new remaining units.
  for (const auto& id : partners)
    ASSERT_TRUE(eventually([&] { return received(w, id, offer, 70); }));

  auto alloy = w.admin("alloyframe");
  r = call(alloy, "POST", "/v1/capacity/bookings", json{{"offer_id", offer}, {"units", 80}}.dump());
  ASSERT_EQ(r.status, 409u) << r.body;
  EXPECT_NE(r.body.find("only 70 units remain"), std::string::npos) << r.body;
  r = call(alloy, "POST", "/v1/capacity/bookings", json{{"offer_id", offer}, {"units", 70}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  r = call(w.admin("motorworks"), "POST", "/v1/capacity/bookings",
           json{{"offer_id", offer}, {"units", 1}}.dump());
  ASSERT_EQ(r.status, 409u) << r.body;

  auto o = **tables::capacity_offers.get(fc, offer);
  EXPECT_EQ(o.remaining, 0u);
  EXPECT_EQ(o.bookings, 2u);
  holds = all(fc, tables::holds);
  EXPECT_EQ(holds.count("paint1/framecraft/capacity/1#open"), 0u);
  auto bookings = all(fc, tables::bookings);
  ASSERT_EQ(bookings.size(), 2u);
  std::int64_t units = 0;
  for (const auto& [k, b] : bookings)
    for (const auto& a : b.allocations) units += a.units;
  EXPECT_EQ(units, 120);
  expect_calendars_ok(w);
  expect_booking_agreement(w);

  auto list = json::parse(call(w.admin("framecraft"), "GET", "/v1/capacity/offers").body);
  ASSERT_EQ(list.at("published").size(), 1u);
  EXPECT_EQ(list.at("published")[0].at("booked_units"), 120);
  auto vlist = json::parse(call(velo, "GET", "/v1/capacity/bookings").body);
  ASSERT_EQ(vlist.at("bookings").size(), 1u);
  auto flist = json::parse(call(w.admin("framecraft"), "GET", "/v1/capacity/bookings").body);
  EXPECT_EQ(flist.at("bookings").size(), 4u);  // 2 booked, 2 refused

  // `gearmesh verify` over all stores: bookings agree at publisher and bookers...
  expect_verify_clean(w);
  // ...and notice when a booker records other terms than its publisher.
  auto vb = **tables::capacity_bookings.get(w.node("velo").store(), "velo/booking/1");
  vb.units = 49;
  expect_mismatch_found(w, vb, "terms differ between framecraft and velo");
}

TEST_F(capacity_test, concurrent_bookings_never_over_sell) {
  cap_world w(dir_);
  const auto offer = publish(w, 100);
  for (const auto& id : partners)
    ASSERT_TRUE(eventually([&] { return received(w, id, offer, 100); }));
  // 3 partners x 6 bookings of 7 units = 126 asked for, 100 offered.
  std::vector<std::thread> threads;
  std::atomic<int> booked{0}, refused{0};
  for (const auto& id : partners) {
    threads.emplace_back([&, id] {
      auto api = w.admin(id);
      for (int i = 0; i < 6; ++i) {
        auto r = call(api, "POST", "/v1/capacity/bookings",
                      json{{"offer_id", offer}, {"units", 7}}.dump());
        if (r.status == 201)
          ++booked;
        else if (r.status == 409)
          ++refused;
        else
          ADD_FAILURE() << r.status << " " << r.body;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(booked.load(), 14);  // 14 * 7 = 98 <= 100
  EXPECT_EQ(refused.load(), 4);
  auto o = **tables::capacity_offers.get(w.node("framecraft").store(), offer);
  EXPECT_EQ(o.remaining, 2u);
  expect_calendars_ok(w);
  expect_booking_agreement(w);

  // `gearmesh verify` finds nothing wrong with offers and their reservations...
  verify_options vo;
  vo.now_us = system_clock().now();
  auto& fc = w.node("framecraft").store();
  auto report = verify_stores({{"framecraft", &fc}}, vo);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->clean()) << (report->violations.empty() ? std::string{}
                                                              : report->violations[0].message);
  // ...and notices an offer whose bookings exceed what it offered.
  o.units = 90;
  o.remaining = 0;
  store::write_batch b;
  tables::capacity_offers.put(b, offer, o);
  ASSERT_TRUE(const_cast<store::environment&>(fc).apply(b));  // as a bug would
  report = verify_stores({{"framecraft", &fc}}, vo);
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->violations.size(), 1u);
  EXPECT_EQ(report->violations[0].kind, violation_kind::capacity_oversold);
  EXPECT_EQ(report->violations[0].message,
            "offered 90 units, 0 remaining, bookings granted for 98");
}

TEST_F(capacity_test, expired_offers_vanish_and_release_their_units) {
  // The partners' clocks lag 10 s: they still believe in the offer, the
  // publisher's clock decides.
  cap_world w(dir_, -10 * us_per_s);
  const auto offer = publish(w, 60, 300);
  ASSERT_TRUE(eventually([&] { return received(w, "velo", offer, 60); }));
  auto& fc = w.node("framecraft").store();
  // The calendar releases the hold by itself at the deadline.
  ASSERT_TRUE(eventually([&] { return all(fc, tables::holds).empty(); }, 5s));
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 10}}.dump());
  ASSERT_EQ(r.status, 409u) << r.body;
  EXPECT_NE(r.body.find("offer expired"), std::string::npos) << r.body;
  EXPECT_TRUE(all(fc, tables::bookings).empty());
  auto list = json::parse(call(w.admin("framecraft"), "GET", "/v1/capacity/offers").body);
  EXPECT_EQ(list.at("published")[0].at("state"), "expired");
  expect_calendars_ok(w);
}

TEST_F(capacity_test, received_offers_vanish_when_they_expire) {
  cap_world w(dir_);
  const auto offer = publish(w, 60, 300);
  ASSERT_TRUE(eventually([&] { return received(w, "velo", offer, 60); }));
  ASSERT_TRUE(eventually(
      [&] { return all(w.node("velo").store(), tables::capacity_received).empty(); }, 5s));
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 10}}.dump());
  EXPECT_EQ(r.status, 404u) << r.body;
}

TEST_F(capacity_test, a_withdrawn_offer_releases_its_units_and_keeps_its_bookings) {
  cap_world w(dir_);
  const auto offer = publish(w, 60);
  ASSERT_TRUE(eventually([&] { return received(w, "velo", offer, 60); }));
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 20}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  r = call(w.admin("framecraft"), "DELETE", "/v1/capacity/offers/" + offer);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(json::parse(r.body).at("state"), "withdrawn");
  EXPECT_EQ(
      call(w.admin("framecraft"), "DELETE", "/v1/capacity/offers/framecraft/capacity/9").status,
      404u);
  ASSERT_TRUE(eventually([&] {
    auto o = tables::capacity_received.get(w.node("alloyframe").store(), offer);
    return o && *o && (*o)->state == capacity_offer_state::withdrawn;
  }));
  r = call(w.admin("alloyframe"), "POST", "/v1/capacity/bookings",
           json{{"offer_id", offer}, {"units", 1}}.dump());
  EXPECT_EQ(r.status, 410u) << r.body;
  auto& fc = w.node("framecraft").store();
  EXPECT_TRUE(all(fc, tables::holds).empty());
  EXPECT_EQ(all(fc, tables::bookings).size(), 1u);
  expect_calendars_ok(w);
  // The released units can be offered again.
  EXPECT_EQ(publish(w, 40), "framecraft/capacity/2");
}

TEST_F(capacity_test, a_breakdown_cancels_the_bookings_it_covers_and_tells_their_bookers) {
  auto wp = std::make_unique<cap_world>(dir_);
  auto& w = *wp;
  const auto offer = publish(w, 120);  // paint1: 60 units in each of the first two hours
  for (const auto& id : partners)
    ASSERT_TRUE(eventually([&] { return received(w, id, offer, 120); }));
  // velo's 50 units lie in the first hour; alloyframe's 70 in both.
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 50}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  r = call(w.admin("alloyframe"), "POST", "/v1/capacity/bookings",
           json{{"offer_id", offer}, {"units", 70}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  auto& fc = w.node("framecraft").store();
  ASSERT_EQ(break_paint1_in_second_hour(w, offer), 201u);

  // alloyframe hears it and records the booking as cancelled, terms kept.
  capacity_booking_record cancelled;
  ASSERT_TRUE(eventually([&] {
    auto b = tables::capacity_bookings.get(w.node("alloyframe").store(), "alloyframe/booking/1");
    if (!b || !*b || (*b)->state != capacity_booking_state::cancelled) return false;
    cancelled = **b;
    return true;
  }));
  EXPECT_EQ(cancelled.reason, "paint1 broke down (pump failure)");
  EXPECT_EQ(cancelled.units, 70u);
  EXPECT_EQ(cancelled.price_cents, 70 * 150);
  // The publisher agrees, and the booking no longer reserves the machine.
  auto sold = **tables::capacity_sold.get(fc, "alloyframe/alloyframe/booking/1");
  EXPECT_EQ(sold.state, capacity_booking_state::cancelled);
  EXPECT_EQ(sold.reason, cancelled.reason);
  ASSERT_TRUE(
      eventually([&] { return all(fc, tables::bookings).count("paint1/" + offer + "#b2") == 0; }));
  // velo's booking, before the breakdown, stands.
  EXPECT_EQ((**tables::capacity_bookings.get(w.node("velo").store(), "velo/booking/1")).state,
            capacity_booking_state::booked);
  EXPECT_EQ(all(fc, tables::bookings).count("paint1/" + offer + "#b1"), 1u);
  // The offer keeps its count: cancelled units do not return to it.
  EXPECT_EQ((**tables::capacity_offers.get(fc, offer)).remaining, 0u);
  auto api = json::parse(call(w.admin("alloyframe"), "GET", "/v1/capacity/bookings").body);
  ASSERT_EQ(api.at("bookings").size(), 1u);
  EXPECT_EQ(api.at("bookings")[0].at("state"), "cancelled");
  expect_calendars_ok(w);
  ASSERT_TRUE(eventually([&] {
    auto s = caf::scoped_actor(w.system());
    std::string why = "no answer";
    s->request(w.participant(), 5s, check_atom::value)
        .receive([&](std::string& v) { why = v; }, [](caf::error&) {});
    return why.empty();
  }));

  // A restart reconciles the open outage again: nothing more is cancelled.
  const auto sold_before = all(fc, tables::capacity_sold);
  const auto booked_before = all(w.node("alloyframe").store(), tables::capacity_bookings);
  wp.reset();
  wp = std::make_unique<cap_world>(dir_);
  std::this_thread::sleep_for(200ms);
  auto& fc2 = wp->node("framecraft").store();
  EXPECT_EQ(all(fc2, tables::capacity_sold), sold_before);
  EXPECT_EQ(all(wp->node("alloyframe").store(), tables::capacity_bookings), booked_before);
  EXPECT_EQ(all(fc2, tables::bookings).count("paint1/" + offer + "#b1"), 1u);

  // `gearmesh verify`: both ends agree, the offer is not over-sold...
  expect_verify_clean(*wp);
  // ...and a booker that missed the cancellation is a disagreement.
  auto still = cancelled;
  still.state = capacity_booking_state::booked;
  expect_mismatch_found(*wp, still, "booked at alloyframe, cancelled at framecraft");
}

TEST_F(capacity_test, bookings_an_outage_covered_before_a_stop_are_cancelled_at_the_next_start) {
  std::string offer;
  {
    // The outage is committed, the broker never hears of it (the node
    // stops between the two commits, as a crash could).
    cap_world w(dir_, 0, /*broker_told=*/false);
    offer = publish(w, 120);
    ASSERT_TRUE(eventually([&] { return received(w, "alloyframe", offer, 120); }));
    auto r = call(w.admin("alloyframe"), "POST", "/v1/capacity/bookings",
                  json{{"offer_id", offer}, {"units", 70}}.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
    ASSERT_EQ(break_paint1_in_second_hour(w, offer), 201u);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(
        (**tables::capacity_bookings.get(w.node("alloyframe").store(), "alloyframe/booking/1"))
            .state,
        capacity_booking_state::booked);
  }
  cap_world w(dir_);  // the next start reconciles the open outage
  ASSERT_TRUE(eventually([&] {
    auto b = tables::capacity_bookings.get(w.node("alloyframe").store(), "alloyframe/booking/1");
    return b && *b && (*b)->state == capacity_booking_state::cancelled &&
           (*b)->reason == "paint1 broke down (pump failure)";
  }));
  auto& fc = w.node("framecraft").store();
  EXPECT_EQ((**tables::capacity_sold.get(fc, "alloyframe/alloyframe/booking/1")).state,
            capacity_booking_state::cancelled);
  ASSERT_TRUE(
      eventually([&] { return all(fc, tables::bookings).count("paint1/" + offer + "#b1") == 0; }));
  expect_calendars_ok(w);
}

TEST_F(capacity_test, rejects_bad_publications) {
  cap_world w(dir_);
  auto api = w.admin("framecraft");
  const auto start = (system_clock().now() / us_per_hour + 24) * us_per_hour;
  auto post = [&](json body) { return call(api, "POST", "/v1/capacity/offers", body.dump()); };
  json ok{{"capability", "coating"},
          {"units", 60},
          {"unit_price_cents", 100},
          {"window_start_us", start},
          {"window_end_us", start + us_per_hour}};
  auto b = ok;
  b["capability"] = "welding";
  EXPECT_EQ(post(b).status, 400u);
  b = ok;
  b["units"] = 0;
  EXPECT_EQ(post(b).status, 400u);
  b = ok;
  b["window_end_us"] = start;
  EXPECT_EQ(post(b).status, 400u);
  b = ok;
  b["units"] = 61;  // one hour of one machine holds 60 minutes
  EXPECT_EQ(post(b).status, 409u);
  EXPECT_EQ(post(ok).status, 201u);
  EXPECT_EQ(post(ok).status, 409u);  // the hour is offered already
  // Partners have no factory: they cannot publish.
  EXPECT_EQ(call(w.admin("velo"), "POST", "/v1/capacity/offers", ok.dump()).status, 404u);
  // An offer id nobody sent: 404 at the booker.
  EXPECT_EQ(call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                 json{{"offer_id", "framecraft/capacity/99"}, {"units", 1}}.dump())
                .status,
            404u);
}

TEST_F(capacity_test, restart_keeps_offer_reservations) {
  std::string offer;
  {
    cap_world w(dir_);
    offer = publish(w, 120);
    ASSERT_TRUE(eventually([&] { return received(w, "velo", offer, 120); }));
    auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                  json{{"offer_id", offer}, {"units", 30}}.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
  }
  cap_world w(dir_);
  auto& fc = w.node("framecraft").store();
  // The participant's start released nothing of the offer's (orphans()).
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(all(fc, tables::holds).count("paint1/" + offer + "#open"), 1u);
  EXPECT_EQ(all(fc, tables::bookings).count("paint1/" + offer + "#b1"), 1u);
  // Counters survive: the next offer and booking get new ids.
  const auto second = publish(w, 10);
  EXPECT_EQ(second, "framecraft/capacity/2");
  EXPECT_TRUE(received(w, "velo", offer, 90));
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 90}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(json::parse(r.body).at("booking_id"), "velo/booking/2");
  EXPECT_EQ(json::parse(r.body).at("remaining"), 0);
  expect_calendars_ok(w);
  expect_booking_agreement(w);
}

TEST_F(capacity_test, the_same_booking_id_gets_the_same_answer) {
  cap_world w(dir_);
  const auto offer = publish(w, 60);
  ASSERT_TRUE(eventually([&] { return received(w, "velo", offer, 60); }));
  auto r = call(w.admin("velo"), "POST", "/v1/capacity/bookings",
                json{{"offer_id", offer}, {"units", 20}}.dump());
  ASSERT_EQ(r.status, 201u) << r.body;
  // A partner sends BookCapacity for velo/booking/1 again in a new message
  // (a new message id, so no transport dedup): answered, nothing booked twice.
  wire::envelope env;
  env.header.message_id = 1000;
  env.header.sender = "velo";
  env.header.receiver = "framecraft";
  env.header.conversation_id = offer;
  env.header.timestamp_us = system_clock().now();
  env.payload = wire::book_capacity{offer, "velo/booking/1", 20};
  caf::anon_send(w.broker("framecraft"), inbound_atom::value, env);
  ASSERT_TRUE(eventually([&] {
    auto in = w.node("framecraft").store().get("inbox", "velo/" + store::key_u64(1000));
    return in && in->has_value();
  }));
  auto o = **tables::capacity_offers.get(w.node("framecraft").store(), offer);
  EXPECT_EQ(o.remaining, 40u);
  EXPECT_EQ(o.bookings, 1u);
  // A partner outside the audience cannot book it.
  env.header.message_id = 1001;
  env.header.sender = "mallory";
  env.payload = wire::book_capacity{offer, "mallory/booking/1", 20};
  caf::anon_send(w.broker("framecraft"), inbound_atom::value, env);
  ASSERT_TRUE(eventually([&] {
    auto s = tables::capacity_sold.get(w.node("framecraft").store(), "mallory/mallory/booking/1");
    return s && *s && (*s)->state == capacity_booking_state::refused;
  }));
  EXPECT_EQ((**tables::capacity_offers.get(w.node("framecraft").store(), offer)).remaining, 40u);
}

}  // namespace
}  // namespace gearmesh::actors
