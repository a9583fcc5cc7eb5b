// Nested negotiation between real gearmesh-node processes over CurveZMQ on
// 127.0.0.1: Velo orders frames from Framecraft, which buys a tube set per
// frame from Tubeco or Tubeco-2 before it proposes. Every contracted frame
// order must have a contract at every tier, recorded identically at both ends
// of each link, and the stores of all four nodes must pass `gearmesh verify`
// (including its check that component orders agree with the offers they back).
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

class multi_tier : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "framecraft", "tubeco", "tubeco2"})
      ports_[id] = node_ports{free_port(), free_port()};
    keys_ = dir_.path() + "/keys";
    ASSERT_TRUE(write_network_keys(keys_, ports_));
  }

  std::string velo_config() {
    return node_sections("velo", ports_, timing_, keys_) + R"(
[buyer]
proposal_window_ms = 1500
confirm_timeout_ms = 4000
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft"]
)";
  }

  /// Framecraft makes FRAME (saw, weld, paint) from one bought TUBE-SET.
  std::string framecraft_config() {
    auto factory = factory_section(factory_shape{}, timing_);
    factory.replace(factory.find("[factory]\n"), 10, "[factory]\ncomponent_window_ms = 400\n");
    return node_sections("framecraft", ports_, timing_, keys_) + R"(
[buyer]
proposal_window_ms = 400
confirm_timeout_ms = 2000
[[buyer.sources]]
item = "TUBE-SET"
sellers = ["tubeco", "tubeco2"]
)" + factory +
           R"(
[[factory.items.components]]
item = "TUBE-SET"
quantity = 1
)";
  }

  std::string tube_supplier_config(const std::string& id, int unit_price_cents) {
    return node_sections(id, ports_, timing_, keys_) + fmt::format(R"(
[supplier]
hold_ttl_ms = {}
[[supplier.items]]
id = "TUBE-SET"
unit_price_cents = {}
lead_time_days = 2
daily_capacity = 50
)",
                                                                   timing_.hold_ttl_ms,
                                                                   unit_price_cents);
  }

  void start_all() {
    nodes_["velo"] = make("velo", velo_config());
    nodes_["framecraft"] = make("framecraft", framecraft_config());
    nodes_["tubeco"] = make("tubeco", tube_supplier_config("tubeco", 4000));
    nodes_["tubeco2"] = make("tubeco2", tube_supplier_config("tubeco2", 4800));
    for (auto& [id, n] : nodes_) ASSERT_TRUE(n->start()) << n->log();
  }

  std::unique_ptr<node_process> make(const std::string& id, const std::string& config) {
    return std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                          ports_[id].admin);
  }

  /// Places `count` FRAME orders at Velo; their ids.
  std::vector<std::string> order_frames(int count) {
    std::vector<std::string> ids;
    const auto now = now_us();
    for (int i = 0; i < count; ++i) {
      json req = {{"item", "FRAME"}, {"quantity", 2 + i}, {"due_us", now + (8 + i) * us_per_day}};
      auto r = nodes_["velo"]->api("POST", "/v1/orders", req.dump());
      EXPECT_EQ(r["_http_status"], 201) << r.dump();
      ids.push_back(r.value("order_id", ""));
    }
    return ids;
  }

  /// Velo's orders once all are terminal (bounded wait), by id.
  std::map<std::string, json> wait_terminal(std::size_t expected,
                                            std::chrono::seconds timeout = 60s) {
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

  /// Stops every node cleanly and runs the offline checker over the stores.
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

TEST_F(multi_tier, a_three_tier_order_has_agreeing_contracts_at_every_tier) {
  start_all();
  auto ids = order_frames(4);
  auto orders = wait_terminal(ids.size());
  ASSERT_EQ(orders.size(), ids.size()) << nodes_["velo"]->log();
  auto at_velo = contracts("velo");
  auto at_framecraft = contracts("framecraft");
  auto at_tubeco = contracts("tubeco");
  auto components = nodes_["framecraft"]->api("GET", "/v1/orders");
  ASSERT_TRUE(components.is_object());
  std::map<std::string, json> by_parent;
  for (auto& c : components["orders"]) by_parent[c["parent_order_id"].get<std::string>()] = c;

  for (const auto& id : ids) {
    const auto& o = orders[id];
    ASSERT_EQ(o["state"], "contracted") << o.dump(2) << nodes_["framecraft"]->log();
    // Tier 1: Velo <-> Framecraft.
    auto frame_contract = o["contract"]["contract_id"].get<std::string>();
    ASSERT_TRUE(at_framecraft.contains(frame_contract));
    EXPECT_EQ(terms(at_velo[frame_contract]), terms(at_framecraft[frame_contract]));
    // Tier 2: Framecraft's component order for this frame order, contracted
    // with the cheaper tube supplier, for the same quantity, delivered
    // before the frame work starts, and priced into the frame.
    ASSERT_TRUE(by_parent.contains(id)) << components.dump(2);
    const auto& sub = by_parent[id];
    EXPECT_EQ(sub["parent_buyer"], "velo");
    EXPECT_EQ(sub["item"], "TUBE-SET");
    EXPECT_EQ(sub["quantity"], o["quantity"]);
    ASSERT_EQ(sub["state"], "contracted") << sub.dump(2);
    auto tube_contract = sub["contract"]["contract_id"].get<std::string>();
    EXPECT_EQ(sub["contract"]["seller"], "tubeco");
    ASSERT_TRUE(at_tubeco.contains(tube_contract));
    EXPECT_EQ(terms(at_framecraft[tube_contract]), terms(at_tubeco[tube_contract]));
    EXPECT_LE(sub["contract"]["promised_due_us"].get<std::int64_t>(),
              at_framecraft[frame_contract]["promised_start_us"].get<std::int64_t>());
    EXPECT_GT(at_velo[frame_contract]["price_cents"].get<std::int64_t>(),
              sub["contract"]["price_cents"].get<std::int64_t>());
  }
  // The losing tube supplier holds nothing: its proposals were rejected.
  EXPECT_TRUE(contracts("tubeco2").empty());
  stop_and_verify();
}

// A supplier that does not answer (killed) is replaced: the component order
// decides at its reply-by with the other supplier's proposal.
TEST_F(multi_tier, a_silent_supplier_is_replaced) {
  start_all();
  nodes_["tubeco"]->stop(SIGKILL);
  auto ids = order_frames(2);
  auto orders = wait_terminal(ids.size());
  ASSERT_EQ(orders.size(), ids.size());
  auto components = nodes_["framecraft"]->api("GET", "/v1/orders");
  for (const auto& id : ids) ASSERT_EQ(orders[id]["state"], "contracted") << orders[id].dump(2);
  for (auto& c : components["orders"]) {
    EXPECT_EQ(c["state"], "contracted") << c.dump(2);
    EXPECT_EQ(c["contract"]["seller"], "tubeco2");
  }
  // Tubeco comes back and gets the CFPs it missed, which are long decided:
  // its late proposals are rejected and nothing stays held.
  ASSERT_TRUE(nodes_["tubeco"]->start()) << nodes_["tubeco"]->log();
  std::this_thread::sleep_for(1500ms);
  stop_and_verify();
}

// No tube supplier at all: Framecraft refuses (saying why), Velo's order
// fails with that reason, and no tier keeps a hold or a booking.
TEST_F(multi_tier, a_component_that_cannot_be_sourced_fails_the_order_upward) {
  start_all();
  nodes_["tubeco"]->stop(SIGKILL);
  nodes_["tubeco2"]->stop(SIGKILL);
  auto ids = order_frames(1);
  auto orders = wait_terminal(ids.size());
  ASSERT_EQ(orders.size(), 1u);
  const auto& o = orders[ids[0]];
  EXPECT_EQ(o["state"], "failed") << o.dump(2);
  ASSERT_EQ(o["proposals"].size(), 1u) << o.dump(2);
  EXPECT_EQ(o["proposals"][0]["state"], "refused");
  EXPECT_NE(o["proposals"][0]["reason"].get<std::string>().find("cannot source component TUBE-SET"),
            std::string::npos)
      << o.dump(2);
  EXPECT_TRUE(contracts("framecraft").empty());
  stop_and_verify();
}

// Tubeco reports that a tube set will be three days late (a shop-floor event
// posted to its admin API). Framecraft, whose frame work was planned to start
// when the tubes arrive, passes a delay upward; Velo's order shows its
// contract delayed and, below it, Tubeco's contract with the new date.
TEST_F(multi_tier, a_delay_at_tier_two_reaches_the_top_buyer) {
  start_all();
  auto ids = order_frames(1);
  auto orders = wait_terminal(ids.size());
  ASSERT_EQ(orders.size(), 1u);
  const auto& o = orders[ids[0]];
  ASSERT_EQ(o["state"], "contracted") << o.dump(2);
  auto components = nodes_["framecraft"]->api("GET", "/v1/orders");
  json sub;
  for (auto& c : components["orders"])
    if (c["parent_order_id"] == ids[0]) sub = c;
  ASSERT_TRUE(sub.is_object()) << components.dump(2);
  ASSERT_EQ(sub["state"], "contracted") << sub.dump(2);
  const auto tube_contract = sub["contract"]["contract_id"].get<std::string>();
  const auto tube_seller = sub["contract"]["seller"].get<std::string>();
  const auto tube_due = sub["contract"]["promised_due_us"].get<std::int64_t>();
  const auto tube_late = tube_due + 3 * us_per_day;

  json event = {{"contract_id", tube_contract},
                {"kind", "delayed"},
                {"expected_due_us", tube_late},
                {"reason", "furnace down"}};
  auto r = nodes_[tube_seller]->api("POST", "/v1/events", event.dump());
  ASSERT_EQ(r["_http_status"], 201) << r.dump();
  EXPECT_EQ(r["kind"], "delayed");
  EXPECT_EQ(r["expected_due_us"], tube_late);
  // Bad input is refused, saying why.
  auto bad = nodes_[tube_seller]->api(
      "POST", "/v1/events", json{{"contract_id", tube_contract}, {"kind", "late"}}.dump());
  EXPECT_EQ(bad["_http_status"], 400) << bad.dump();
  bad = nodes_[tube_seller]->api(
      "POST", "/v1/events", json{{"contract_id", "nope/order/1/c1"}, {"kind", "started"}}.dump());
  EXPECT_EQ(bad["_http_status"], 404) << bad.dump();

  json progress;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto j = nodes_["velo"]->api("GET", "/v1/orders/" + ids[0]);
    if (j.is_object() && j["contract"].is_object() && j["contract"]["progress"].is_object() &&
        j["contract"]["progress"]["kind"] == "delayed") {
      progress = j["contract"]["progress"];
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(progress.is_object()) << nodes_["framecraft"]->log();
  EXPECT_GT(progress["expected_due_us"].get<std::int64_t>(),
            o["contract"]["promised_due_us"].get<std::int64_t>());
  EXPECT_NE(progress["reason"].get<std::string>().find("TUBE-SET"), std::string::npos)
      << progress.dump(2);
  ASSERT_EQ(progress["components"].size(), 1u) << progress.dump(2);
  const auto& tube = progress["components"][0];
  EXPECT_EQ(tube["contract_id"], tube_contract);
  EXPECT_EQ(tube["seller"], tube_seller);
  EXPECT_EQ(tube["item"], "TUBE-SET");
  EXPECT_EQ(tube["promised_due_us"], tube_due);
  EXPECT_EQ(tube["expected_due_us"], tube_late);
  stop_and_verify();
}

}  // namespace
