// Machine breakdowns between real gearmesh-node processes over CurveZMQ on
// 127.0.0.1 (actors/include/gearmesh/actors/outage.hpp): Velo buys frames
// from Framecraft (cheaper) and Alloyframe. Framecraft's first welding robot
// breaks down mid-production: its booked work moves to the second robot.
// Then the second one breaks for days, and Framecraft is killed (kill -9)
// right after it recorded that: when it is back, it tells Velo, which gets
// the contracts it cannot keep back as cancelled and sources them again
// from Alloyframe. Every order ends contracted, both ends of every contract
// agree, and the stores of all three nodes pass `gearmesh verify`.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "gearmesh/actors/verify.hpp"
#include "node_process.hpp"
#include "reference_network.hpp"

using namespace std::chrono_literals;
using namespace gearmesh::testing;
using json = nlohmann::json;

namespace {

constexpr std::int64_t us_per_day = 86'400'000'000;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class breakdown : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "framecraft", "alloyframe"})
      ports_[id] = node_ports{free_port(), free_port()};
    keys_ = dir_.path() + "/keys";
    ASSERT_TRUE(write_network_keys(keys_, ports_));
    const std::string velo = node_sections("velo", ports_, timing_, keys_) + R"(
[buyer]
proposal_window_ms = 1500
confirm_timeout_ms = 4000
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft", "alloyframe"]
)";
    factory_shape fc;
    fc.rate_cents_per_hour = 3000;
    fc.welders = 2;
    auto framecraft = factory_section(fc, timing_);
    framecraft.replace(framecraft.find("[factory]\n"), 10,
                       "[factory]\nreschedule_delay_max_hours = 2\n");
    factory_shape af;
    af.rate_cents_per_hour = 5000;
    nodes_["velo"] = make("velo", velo);
    nodes_["framecraft"] =
        make("framecraft", node_sections("framecraft", ports_, timing_, keys_) + framecraft);
    nodes_["alloyframe"] = make("alloyframe", node_sections("alloyframe", ports_, timing_, keys_) +
                                                  factory_section(af, timing_));
    for (auto& [id, n] : nodes_) ASSERT_TRUE(n->start()) << n->log();
  }

  std::unique_ptr<node_process> make(const std::string& id, const std::string& config) {
    return std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                          ports_[id].admin);
  }

  /// Velo's orders once every one is terminal and has had `rounds` rounds
  /// at least (bounded wait), by id.
  std::map<std::string, json> wait_orders(std::size_t expected, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::map<std::string, json> out;
    while (std::chrono::steady_clock::now() < deadline) {
      out.clear();
      auto j = nodes_["velo"]->api("GET", "/v1/orders");
      bool done = j.is_object() && j["orders"].size() == expected;
      if (j.is_object())
        for (auto& o : j["orders"]) {
          auto s = o["state"].get<std::string>();
          done = done && (s == "contracted" || s == "failed" || s == "cancelled");
          out[o["order_id"].get<std::string>()] = o;
        }
      if (done) return out;
      std::this_thread::sleep_for(100ms);
    }
    return out;
  }

  std::map<std::string, json> contracts(const std::string& node) {
    std::map<std::string, json> out;
    auto j = nodes_[node]->api("GET", "/v1/contracts");
    if (j.is_object())
      for (auto& c : j["contracts"]) out[c["contract_id"].get<std::string>()] = c;
    return out;
  }

  void stop_and_verify() {
    std::vector<std::string> dirs;
    for (auto& [id, n] : nodes_) {
      if (n->running()) {
        int st = n->stop();
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n->log();
      }
      dirs.push_back(n->data_dir());
    }
    gearmesh::actors::verify_options opts;
    opts.now_us = now_us() + 60'000'000;  // past every hold deadline of the run
    auto report = gearmesh::actors::verify_data_dirs(dirs, opts);
    ASSERT_TRUE(report) << report.error().to_string();
    for (const auto& v : report->violations)
      ADD_FAILURE() << to_string(v.kind) << " at " << v.node << ", " << v.table << " " << v.key
                    << ": " << v.message;
    EXPECT_EQ(report->contracts_unchecked, 0u);
  }

  static json terms(json c) {
    c.erase("role");
    return c;
  }

  temp_dir dir_;
  std::map<std::string, node_ports> ports_;
  network_timing timing_;
  std::string keys_;
  std::map<std::string, std::unique_ptr<node_process>> nodes_;
};

TEST_F(breakdown, booked_work_moves_and_what_cannot_wait_is_sourced_again_after_a_crash) {
  const auto now = now_us();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    json req = {{"item", "FRAME"}, {"quantity", 3 + i}, {"due_us", now + 3 * us_per_day}};
    auto r = nodes_["velo"]->api("POST", "/v1/orders", req.dump());
    ASSERT_EQ(r["_http_status"], 201) << r.dump();
    ids.push_back(r["order_id"].get<std::string>());
  }
  auto orders = wait_orders(ids.size(), 60s);
  ASSERT_EQ(orders.size(), ids.size()) << nodes_["velo"]->log();
  std::set<std::string> first_contracts;
  for (const auto& id : ids) {
    ASSERT_EQ(orders[id]["state"], "contracted") << orders[id].dump(2);
    ASSERT_EQ(orders[id]["contract"]["seller"], "framecraft") << orders[id].dump(2);
    first_contracts.insert(orders[id]["contract"]["contract_id"].get<std::string>());
  }
  auto& fc = *nodes_["framecraft"];
  // Bad input changes nothing.
  EXPECT_EQ(fc.api("POST", "/v1/machines/weld7/down", json{{"for_s", 60}}.dump())["_http_status"],
            404);
  EXPECT_EQ(fc.api("POST", "/v1/machines/weld1/down",
                   json{{"until_us", now - 1'000'000}}.dump())["_http_status"],
            400);
  EXPECT_EQ(nodes_["velo"]->api("POST", "/v1/machines/weld1/down",
                                json{{"for_s", 60}}.dump())["_http_status"],
            404);

  // weld1 breaks down for four days: what was booked on it moves to weld2.
  auto out = fc.api("POST", "/v1/machines/weld1/down",
                    json{{"for_s", 4 * 86400}, {"reason", "servo fault"}}.dump());
  ASSERT_EQ(out["_http_status"], 201) << out.dump(2);
  EXPECT_EQ(out["machine"], "weld1");
  std::size_t moved = 0;
  for (const auto& e : out["effects"]) {
    EXPECT_TRUE(first_contracts.contains(e["contract_id"].get<std::string>())) << out.dump(2);
    EXPECT_NE(e["outcome"], "cancelled") << out.dump(2);  // weld2 can take it, a bit later at most
    ++moved;
  }
  EXPECT_GT(moved, 0u) << out.dump(2);
  // Velo hears why (a Progress or Delayed event per contract that moved).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::size_t told = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    told = 0;
    auto j = nodes_["velo"]->api("GET", "/v1/contracts?progress=1");
    if (j.is_object())
      for (const auto& c : j["contracts"])
        if (c["progress"].is_object() && c["progress"]["reason"].get<std::string>().find(
                                             "weld1 broke down (servo fault)") != std::string::npos)
          ++told;
    if (told == moved) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(told, moved);

  // weld2 breaks for four days: nothing can wait that long (at most 2 hours
  // late). Framecraft is killed right after it recorded the breakdown.
  out = fc.api("POST", "/v1/machines/weld2/down",
               json{{"for_s", 4 * 86400}, {"reason", "flooded hall"}}.dump());
  ASSERT_EQ(out["_http_status"], 201) << out.dump(2);
  std::set<std::string> cancelled;
  for (const auto& e : out["effects"]) {
    EXPECT_EQ(e["outcome"], "cancelled") << out.dump(2);
    cancelled.insert(e["contract_id"].get<std::string>());
  }
  EXPECT_EQ(cancelled, first_contracts) << out.dump(2);
  fc.stop(SIGKILL);
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(fc.start()) << fc.log();

  // Velo records each as cancelled and sources the order again: Alloyframe
  // wins (Framecraft's welders are down past the due date).
  std::map<std::string, json> again;
  const auto until = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < until) {
    again = wait_orders(ids.size(), 30s);
    bool all = again.size() == ids.size();
    for (const auto& id : ids)
      all = all && again[id]["contract"].is_object() &&
            again[id]["contract"]["seller"] == "alloyframe";
    if (all) break;
    std::this_thread::sleep_for(200ms);
  }
  auto at_velo = contracts("velo");
  auto at_fc = contracts("framecraft");
  auto at_af = contracts("alloyframe");
  for (const auto& id : ids) {
    const auto& o = again[id];
    ASSERT_EQ(o["state"], "contracted") << o.dump(2) << nodes_["velo"]->log();
    EXPECT_EQ(o["contract"]["seller"], "alloyframe") << o.dump(2);
    EXPECT_NE(o["reason"].get<std::string>().find("flooded hall"), std::string::npos) << o.dump(2);
    const auto c2 = o["contract"]["contract_id"].get<std::string>();
    ASSERT_TRUE(at_af.contains(c2));
    EXPECT_EQ(terms(at_velo[c2]), terms(at_af[c2]));
  }
  for (const auto& c : first_contracts) {
    ASSERT_TRUE(at_velo.contains(c) && at_fc.contains(c)) << c;
    EXPECT_EQ(at_velo[c]["state"], "cancelled") << c;
    EXPECT_EQ(terms(at_velo[c]), terms(at_fc[c])) << c;
  }
  // Framecraft's machine list shows both robots down and what happened.
  auto ml = fc.api("GET", "/v1/machines");
  ASSERT_EQ(ml["_http_status"], 200) << ml.dump();
  EXPECT_EQ(ml["totals"]["outages"], 2);
  EXPECT_EQ(ml["totals"]["cancelled"], static_cast<int>(first_contracts.size()));
  stop_and_verify();
}

}  // namespace
