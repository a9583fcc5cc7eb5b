// Capacity sharing end to end (docs/protocol.md section 6.5): real
// gearmesh-node processes on 127.0.0.1, CurveZMQ on every link. Framecraft
// publishes spare coating capacity to the partners its sharing policy allows
// (velo and alloyframe, not cellpack); the partners book it at the same time
// through their admin APIs; no offer is ever over-sold, both ends record
// every booking alike, and a booking that reaches the publisher after the
// offer expired is refused.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/actors/verify.hpp"
#include "node_process.hpp"
#include "reference_network.hpp"

using namespace std::chrono_literals;
using namespace gearmesh::testing;
using json = nlohmann::json;

namespace {

constexpr std::int64_t us_per_hour = 3'600'000'000;
constexpr std::int64_t us_per_day = 24 * us_per_hour;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

class capacity : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "framecraft", "alloyframe", "cellpack"})
      ports_[id] = node_ports{free_port(), free_port()};
    keys_ = dir_.path() + "/keys";
    ASSERT_TRUE(write_network_keys(keys_, ports_));
    timing_.retry_initial_ms = 100;
    timing_.retry_max_ms = 500;
  }

  /// Framecraft's sharing policy: cellpack (a supplier) never sees offers.
  std::string framecraft_config() {
    factory_shape f;
    auto cfg = node_sections("framecraft", ports_, timing_, keys_) + factory_section(f, timing_);
    const std::string peer = "[[peers]]\nid = \"cellpack\"\n";
    auto at = cfg.find(peer);
    EXPECT_NE(at, std::string::npos);
    cfg.insert(at + peer.size(), "send = [\"propose\", \"refuse\", \"confirm\", \"failure\"]\n");
    return cfg;
  }

  /// A partner that only books (no role of its own needed).
  std::string partner_config(const std::string& id) {
    return node_sections(id, ports_, timing_, keys_);
  }

  std::unique_ptr<node_process> make(const std::string& id, const std::string& config) {
    return std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                          ports_[id].admin);
  }

  void start_all() {
    framecraft_ = make("framecraft", framecraft_config());
    velo_ = make("velo", partner_config("velo"));
    alloyframe_ = make("alloyframe", partner_config("alloyframe"));
    cellpack_ = make("cellpack", partner_config("cellpack"));
    for (auto* n : nodes()) ASSERT_TRUE(n->start()) << n->log();
  }

  std::vector<node_process*> nodes() {
    return {framecraft_.get(), velo_.get(), alloyframe_.get(), cellpack_.get()};
  }

  /// Publishes `units` of coating in tomorrow's first 8 hours; the offer.
  json publish(std::uint32_t units, std::int64_t valid_until_us) {
    const auto start = (now_us() / us_per_day + 1) * us_per_day;
    json body{{"capability", "coating"},
              {"units", units},
              {"unit_price_cents", 150},
              {"window_start_us", start},
              {"window_end_us", start + 8 * us_per_hour},
              {"valid_until_us", valid_until_us}};
    return framecraft_->api("POST", "/v1/capacity/offers", body.dump());
  }

  /// The offer as `n` received it, or null.
  static json received(node_process& n, const std::string& offer_id) {
    auto j = n.api("GET", "/v1/capacity/offers");
    if (!j.is_object()) return nullptr;
    for (auto& o : j["received"])
      if (o["offer_id"] == offer_id) return o;
    return nullptr;
  }

  static json bookings(node_process& n) {
    auto j = n.api("GET", "/v1/capacity/bookings");
    return j.is_object() ? j["bookings"] : json::array();
  }

  temp_dir dir_;
  std::map<std::string, node_ports> ports_;
  network_timing timing_;
  std::string keys_;
  std::unique_ptr<node_process> framecraft_, velo_, alloyframe_, cellpack_;
};

TEST_F(capacity, concurrent_bookings_of_one_offer_never_over_sell_it) {
  start_all();
  auto offer = publish(100, now_us() + 60 * 1'000'000);
  ASSERT_EQ(offer["_http_status"], 201) << offer.dump() << framecraft_->log();
  const auto id = offer["offer_id"].get<std::string>();
  EXPECT_EQ(id, "framecraft/capacity/1");
  for (auto* n : {velo_.get(), alloyframe_.get()})
    ASSERT_TRUE(eventually([&] { return received(*n, id).is_object(); })) << n->log();

  // 2 partners x 2 threads x 4 bookings of 7 units: 112 units asked for, 100 offered.
  std::atomic<int> booked{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (auto* n : {velo_.get(), alloyframe_.get(), velo_.get(), alloyframe_.get()}) {
    threads.emplace_back([&, n] {
      for (int i = 0; i < 4; ++i) {
        auto r =
            n->api("POST", "/v1/capacity/bookings", json{{"offer_id", id}, {"units", 7}}.dump());
        const int code = r.is_object() ? r["_http_status"].get<int>() : 0;
        if (code == 201)
          ++booked;
        else if (code == 409)
          ++refused;
        else
          ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(booked.load(), 14);  // 14 x 7 = 98 <= 100; a 15th would over-sell
  EXPECT_EQ(refused.load(), 2);

  // The publisher: remaining dropped by exactly what it granted.
  auto list = framecraft_->api("GET", "/v1/capacity/offers");
  ASSERT_EQ(list["published"].size(), 1u);
  EXPECT_EQ(list["published"][0]["remaining"], 2);
  EXPECT_EQ(list["published"][0]["booked_units"], 98);
  // Both ends record every booking alike.
  std::map<std::string, json> sold;
  int sold_units = 0;
  for (auto& b : bookings(*framecraft_)) {
    if (b["state"] != "booked") continue;
    sold[b["booking_id"].get<std::string>()] = b;
    sold_units += b["units"].get<int>();
  }
  EXPECT_EQ(sold_units, 98);
  std::size_t at_bookers = 0;
  for (auto* n : {velo_.get(), alloyframe_.get()}) {
    for (auto& b : bookings(*n)) {
      EXPECT_NE(b["state"], "requested") << b.dump();
      if (b["state"] != "booked") continue;
      ++at_bookers;
      auto it = sold.find(b["booking_id"].get<std::string>());
      ASSERT_NE(it, sold.end()) << b.dump();
      for (auto key : {"offer_id", "publisher", "booker", "units", "price_cents", "currency",
                       "capability", "window_start_us", "window_end_us"})
        EXPECT_EQ(it->second[key], b[key]) << key;
    }
  }
  EXPECT_EQ(at_bookers, sold.size());
  // Every partner allowed to see the offer sees the last revision; cellpack never saw it.
  for (auto* n : {velo_.get(), alloyframe_.get()})
    EXPECT_TRUE(eventually([&] { return received(*n, id)["remaining"] == 2; })) << n->log();
  EXPECT_TRUE(received(*cellpack_, id).is_null());
  auto r =
      cellpack_->api("POST", "/v1/capacity/bookings", json{{"offer_id", id}, {"units", 1}}.dump());
  EXPECT_EQ(r["_http_status"], 404) << r.dump();

  // The stopped stores satisfy every invariant the offline checker knows,
  // booked + held <= capacity per bucket and "no offer over-sold" included.
  for (auto* n : nodes()) {
    int st = n->stop();
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n->log();
  }
  gearmesh::actors::verify_options opts;
  opts.now_us = now_us();
  auto report = gearmesh::actors::verify_data_dirs(
      {framecraft_->data_dir(), velo_->data_dir(), alloyframe_->data_dir(), cellpack_->data_dir()},
      opts);
  ASSERT_TRUE(report) << report.error().to_string();
  for (const auto& v : report->violations)
    ADD_FAILURE() << to_string(v.kind) << " at " << v.node << ", " << v.table << " " << v.key
                  << ": " << v.message;
  EXPECT_EQ(report->stores[0].bookings, 14u);
  EXPECT_EQ(report->stores[0].holds, 1u);  // the 2 units left
}

TEST_F(capacity, a_booking_after_expiry_is_refused) {
  start_all();
  auto offer = publish(60, now_us() + 1'500'000);
  ASSERT_EQ(offer["_http_status"], 201) << offer.dump();
  const auto id = offer["offer_id"].get<std::string>();
  ASSERT_TRUE(eventually([&] { return received(*velo_, id).is_object(); })) << velo_->log();

  // Framecraft pauses; velo, which still believes in the offer, books it;
  // the BookCapacity reaches framecraft only after the offer expired.
  ASSERT_EQ(::kill(framecraft_->pid(), SIGSTOP), 0);
  json answer;
  std::thread booker([&] {
    answer =
        velo_->api("POST", "/v1/capacity/bookings", json{{"offer_id", id}, {"units", 10}}.dump());
  });
  std::this_thread::sleep_for(2500ms);
  ASSERT_EQ(::kill(framecraft_->pid(), SIGCONT), 0);
  booker.join();
  ASSERT_TRUE(answer.is_object());
  EXPECT_EQ(answer["_http_status"], 409) << answer.dump();
  EXPECT_EQ(answer["state"], "refused") << answer.dump();
  EXPECT_EQ(answer["reason"], "offer expired") << answer.dump();
  // The refusal is recorded at both ends; nothing was booked, the hold is gone.
  auto at_velo = bookings(*velo_);
  ASSERT_EQ(at_velo.size(), 1u);
  EXPECT_EQ(at_velo[0]["state"], "refused");
  auto list = framecraft_->api("GET", "/v1/capacity/offers");
  EXPECT_EQ(list["published"][0]["state"], "expired");
  EXPECT_EQ(list["published"][0]["booked_units"], 0);
  // Expired offers vanish at the partners, and booking one is refused at once.
  ASSERT_TRUE(eventually([&] { return received(*velo_, id).is_null(); }));
  auto late =
      velo_->api("POST", "/v1/capacity/bookings", json{{"offer_id", id}, {"units", 1}}.dump());
  EXPECT_EQ(late["_http_status"], 404) << late.dump();

  for (auto* n : nodes()) n->stop();
  gearmesh::actors::verify_options opts;
  opts.now_us = now_us();
  auto report = gearmesh::actors::verify_data_dirs({framecraft_->data_dir()}, opts);
  ASSERT_TRUE(report) << report.error().to_string();
  for (const auto& v : report->violations)
    ADD_FAILURE() << to_string(v.kind) << " at " << v.node << ", " << v.table << " " << v.key
                  << ": " << v.message;
  EXPECT_EQ(report->stores[0].holds, 0u);
  EXPECT_EQ(report->stores[0].bookings, 0u);
}

}  // namespace
