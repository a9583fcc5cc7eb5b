// End to end: real gearmesh-node processes over real ZeroMQ sockets on
// 127.0.0.1, each with its own LMDB store. A buyer negotiates orders with two
// competing factories and a supplier; every order must end with a contract
// recorded identically at the buyer and at the seller.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/verify.hpp"
#include "node_process.hpp"
#include "reference_network.hpp"

#include <fmt/format.h>

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

/// The reference network of DESIGN.md, cut to what the runtime core needs.
class network : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "framecraft", "alloyframe", "cellpack"})
      ports_[id] = gearmesh::testing::node_ports{free_port(), free_port()};
    // CurveZMQ on every link, as deployed.
    keys_ = dir_.path() + "/keys";
    ASSERT_TRUE(gearmesh::testing::write_network_keys(keys_, ports_));
  }

  std::string buyer_config() {
    return node_sections("velo", ports_, timing_, keys_) + buyer_section(timing_);
  }

  std::string factory_config(const std::string& id, int rate_cents_per_hour) {
    gearmesh::testing::factory_shape f;
    f.rate_cents_per_hour = rate_cents_per_hour;
    return node_sections(id, ports_, timing_, keys_) + factory_section(f, timing_);
  }

  std::string supplier_config() {
    return node_sections("cellpack", ports_, timing_, keys_) + supplier_section(timing_);
  }

  std::unique_ptr<node_process> make(const std::string& id, const std::string& config) {
    return std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                          ports_[id].admin);
  }

  /// Polls the buyer until every order is in a terminal state (bounded).
  json wait_terminal(node_process& buyer, std::size_t expected,
                     std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    json orders;
    while (std::chrono::steady_clock::now() < deadline) {
      orders = buyer.api("GET", "/v1/orders");
      if (orders.is_object() && orders["orders"].size() == expected) {
        bool done = true;
        for (auto& o : orders["orders"]) {
          auto s = o["state"].get<std::string>();
          done = done && (s == "contracted" || s == "failed" || s == "cancelled");
        }
        if (done) return orders;
      }
      std::this_thread::sleep_for(100ms);
    }
    return orders;
  }

  /// Contracts of a node by contract id.
  std::map<std::string, json> contracts(node_process& n) {
    std::map<std::string, json> out;
    auto j = n.api("GET", "/v1/contracts");
    if (!j.is_object()) return out;
    for (auto& c : j["contracts"]) out[c["contract_id"].get<std::string>()] = c;
    return out;
  }

  temp_dir dir_;
  std::map<std::string, gearmesh::testing::node_ports> ports_;
  gearmesh::testing::network_timing timing_;
  std::string keys_;
};

/// The terms both sides must agree on (everything but the viewpoint).
json terms(json c) {
  c.erase("role");
  return c;
}

TEST_F(network, every_order_ends_with_a_contract_recorded_identically_at_buyer_and_seller) {
  auto velo = make("velo", buyer_config());
  auto framecraft = make("framecraft", factory_config("framecraft", 4000));
  auto alloyframe = make("alloyframe", factory_config("alloyframe", 5200));
  auto cellpack = make("cellpack", supplier_config());
  for (auto* n : {velo.get(), framecraft.get(), alloyframe.get(), cellpack.get()})
    ASSERT_TRUE(n->start()) << n->log();

  auto now = now_us();
  std::vector<std::string> order_ids;
  for (int i = 0; i < 12; ++i) {
    json req = {{"item", i % 4 == 3 ? "BATTERY" : "FRAME"},
                {"quantity", 2 + i},
                {"due_us", now + (10 + i) * us_per_day},
                {"attributes", {{"colour", i % 2 ? "red" : "black"}}}};
    auto r = velo->api("POST", "/v1/orders", req.dump());
    ASSERT_EQ(r["_http_status"], 201) << r.dump() << velo->log();
    order_ids.push_back(r["order_id"].get<std::string>());
  }
  EXPECT_EQ(std::set<std::string>(order_ids.begin(), order_ids.end()).size(), order_ids.size());

  auto orders = wait_terminal(*velo, order_ids.size());
  ASSERT_TRUE(orders.is_object()) << velo->log();
  auto at_buyer = contracts(*velo);
  std::map<std::string, std::map<std::string, json>> at_seller = {
      {"framecraft", contracts(*framecraft)},
      {"alloyframe", contracts(*alloyframe)},
      {"cellpack", contracts(*cellpack)}};

  for (auto& o : orders["orders"]) {
    ASSERT_EQ(o["state"], "contracted") << o.dump(2);
    ASSERT_TRUE(o["contract"].is_object()) << o.dump(2);
    auto id = o["contract"]["contract_id"].get<std::string>();
    ASSERT_TRUE(at_buyer.contains(id)) << id;
    auto& c = at_buyer[id];
    EXPECT_EQ(c["role"], "buyer");
    EXPECT_EQ(c["buyer"], "velo");
    EXPECT_EQ(c["order_id"], o["order_id"]);
    auto seller = c["seller"].get<std::string>();
    ASSERT_TRUE(at_seller.contains(seller)) << seller;
    ASSERT_TRUE(at_seller[seller].contains(id)) << "contract " << id << " missing at " << seller;
    EXPECT_EQ(at_seller[seller][id]["role"], "seller");
    EXPECT_EQ(terms(c), terms(at_seller[seller][id]));
    if (o["item"] == "FRAME") {
      // Same routing, lower machine rate: Framecraft is cheaper while it can meet the date.
      EXPECT_TRUE(seller == "framecraft" || seller == "alloyframe") << seller;
    } else {
      EXPECT_EQ(seller, "cellpack");
    }
  }
  // No seller holds a contract the buyer does not know.
  std::size_t seller_total = 0;
  for (auto& [seller, cs] : at_seller) {
    seller_total += cs.size();
    for (auto& [id, c] : cs) EXPECT_TRUE(at_buyer.contains(id)) << id << " at " << seller;
  }
  EXPECT_EQ(seller_total, at_buyer.size());
  EXPECT_EQ(at_buyer.size(), order_ids.size());

  // The cheaper factory wins at least one FRAME order.
  EXPECT_GT(contracts(*framecraft).size(), 0u);

  // Every node's KPIs (GET /v1/kpis) agree with the contracts above.
  auto vk = velo->api("GET", "/v1/kpis");
  ASSERT_EQ(vk["_http_status"], 200) << vk.dump();
  const auto& customer = vk["buyer"]["customer_orders"];
  EXPECT_EQ(customer["orders"], order_ids.size());
  EXPECT_EQ(customer["contracted"], order_ids.size());
  EXPECT_EQ(customer["on_time"], order_ids.size());  // promised by the due date
  EXPECT_EQ(customer["on_time_pct"], 100.0);
  EXPECT_EQ(customer["lead_time"]["count"], order_ids.size());
  std::int64_t spend = 0, sold_cents = 0;
  for (auto& [id, c] : at_buyer) spend += c["price_cents"].get<std::int64_t>();
  EXPECT_EQ(customer["spend_cents"]["EUR"], spend);
  std::uint64_t sold_contracts = 0;
  for (auto* n : {framecraft.get(), alloyframe.get(), cellpack.get()}) {
    auto k = n->api("GET", "/v1/kpis");
    ASSERT_EQ(k["_http_status"], 200) << k.dump();
    sold_contracts += k["seller"]["contracts"].get<std::uint64_t>();
    if (k["seller"]["contracts"] != 0)
      sold_cents += k["seller"]["revenue_cents"]["EUR"].get<std::int64_t>();
    EXPECT_FALSE(k["utilization"]["resources"].empty()) << k.dump();
  }
  EXPECT_EQ(sold_contracts, order_ids.size());
  EXPECT_EQ(sold_cents, spend);

  // Clean stop exits 0 and everything committed is there after a restart.
  for (auto* n : {velo.get(), framecraft.get(), alloyframe.get(), cellpack.get()}) {
    int st = n->stop();
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n->log();
  }
  // The stopped stores together satisfy every invariant the offline checker knows.
  {
    gearmesh::actors::verify_options opts;
    opts.now_us = now_us();
    auto report = gearmesh::actors::verify_data_dirs(
        {velo->data_dir(), framecraft->data_dir(), alloyframe->data_dir(), cellpack->data_dir()},
        opts);
    ASSERT_TRUE(report) << report.error().to_string();
    for (const auto& v : report->violations)
      ADD_FAILURE() << to_string(v.kind) << " at " << v.node << ", " << v.table << " " << v.key
                    << ": " << v.message;
    EXPECT_EQ(report->contracts_unchecked, 0u);
    // Every node recorded its id, and every seller its resources, at start.
    EXPECT_EQ(report->reservations_unchecked, 0u);
    std::uint64_t contracts = 0, bookings = 0;
    for (const auto& s : report->stores) {
      EXPECT_EQ(s.id_source, gearmesh::actors::node_id_source::meta) << s.path;
      contracts += s.contracts;
      bookings += s.bookings;
    }
    ASSERT_EQ(report->stores.size(), 4u);
    EXPECT_EQ(report->stores[0].node_id, "velo");
    EXPECT_EQ(report->stores[0].orders, order_ids.size());
    EXPECT_EQ(contracts, 2 * order_ids.size());
    EXPECT_GE(bookings, order_ids.size());
  }
  ASSERT_TRUE(velo->start()) << velo->log();
  EXPECT_EQ(contracts(*velo).size(), at_buyer.size());
  for (auto& [id, c] : contracts(*velo)) EXPECT_EQ(c, at_buyer[id]);
}

/// What must come out the same however the messages travelled: the domain
/// state of every store, without wall-clock times (those move with the run).
json store_projection(const std::string& data_dir) {
  namespace t = gearmesh::actors::tables;
  using namespace gearmesh::actors;
  auto env = gearmesh::actors::open_existing_store(data_dir);
  if (!env) return json{{"error", env.error().to_string()}};
  json out = json::object();
  json orders = json::object();
  (void)t::orders.for_each(**env, [&](std::string_view k, order_record&& o) {
    json proposals = json::array();
    for (const auto& p : o.proposals)
      proposals.push_back({p.seller, p.proposal_id, p.price_cents, to_string(p.state)});
    std::sort(proposals.begin(), proposals.end());  // arrival order is the network's
    orders[std::string(k)] = {{"state", to_string(o.state)},      {"item", o.item},
                              {"quantity", o.quantity},           {"contract", o.contract_id},
                              {"awarded", o.awarded_proposal_id}, {"proposals", proposals},
                              {"accepts", o.accepts_sent}};
    return true;
  });
  out["orders"] = orders;
  json contracts = json::object();
  (void)t::contracts.for_each(**env, [&](std::string_view k, contract_record&& c) {
    contracts[std::string(k)] = {c.buyer,    c.seller,      to_string(c.role),  c.item,
                                 c.quantity, c.price_cents, to_string(c.state), c.proposal_id,
                                 c.order_id};
    return true;
  });
  out["contracts"] = contracts;
  json offers = json::object();
  (void)t::offers.for_each(**env, [&](std::string_view k, offer_record&& o) {
    offers[std::string(k)] = {o.order_id,    o.buyer,       to_string(o.state),
                              o.price_cents, o.contract_id, o.reservations.size()};
    return true;
  });
  out["offers"] = offers;
  for (const auto* table : {&t::bookings, &t::holds}) {
    json r = json::object();
    (void)table->for_each(**env, [&](std::string_view k, reservation_record&& v) {
      std::int64_t units = 0;
      for (const auto& a : v.allocations) units += a.units;
      r[std::string(k)] = units;
      return true;
    });
    out[std::string(table->name())] = r;
  }
  return out;
}

// Exactly-once effects (DESIGN.md invariant 4): the same orders, once over a
// clean network and once with every link duplicating, dropping and losing
// acks at random and with nodes killed (-9) and restarted between orders,
// leave every store with identical domain state.
TEST_F(network, duplicates_losses_and_restarts_leave_the_same_stores_as_a_clean_run) {
  const std::vector<std::string> ids = {"velo", "framecraft", "alloyframe", "cellpack"};
  auto run = [&](const std::string& name, bool faults) {
    std::map<std::string, std::unique_ptr<node_process>> nodes;
    for (const auto& id : ids) {
      auto cfg = id == "velo"       ? buyer_config()
                 : id == "cellpack" ? supplier_config()
                                    : factory_config(id, id == "framecraft" ? 4000 : 5200);
      nodes[id] = std::make_unique<node_process>(
          GEARMESH_NODE_BIN, id, dir_.path() + "/" + name + "/" + id, cfg, ports_[id].admin);
      if (faults)
        nodes[id]->set_environment(
            {{"GEARMESH_CRASH_POINTS", "net.duplicate:0.5,net.drop:0.2,net.drop_ack:0.3"},
             {"GEARMESH_FAULT_SEED", std::to_string(ids.size() + id.size())}});
      EXPECT_TRUE(nodes[id]->start()) << nodes[id]->log();
    }
    auto& velo = *nodes["velo"];
    const auto now = now_us();
    for (int i = 0; i < 6; ++i) {
      json req = {{"item", i % 3 == 2 ? "BATTERY" : "FRAME"},
                  {"quantity", 3 + i},
                  {"due_us", now + (12 + i) * us_per_day}};
      auto r = velo.api("POST", "/v1/orders", req.dump());
      EXPECT_EQ(r["_http_status"], 201) << r.dump();
      auto orders = wait_terminal(velo, static_cast<std::size_t>(i + 1));
      EXPECT_TRUE(orders.is_object()) << velo.log();
      if (faults && (i == 1 || i == 3)) {
        // Killed with answers and acks still in flight; back at once.
        auto& victim = *nodes[i == 1 ? "framecraft" : "velo"];
        victim.stop(SIGKILL);
        EXPECT_TRUE(victim.start()) << victim.log();
      }
    }
    // Quiescence: every outbox drained (rejects, confirms and their acks).
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (const auto& id : ids) {
      while (std::chrono::steady_clock::now() < deadline) {
        auto m = nodes[id]->api("GET", "/v1/metrics");
        if (m.is_object() && m["outbox_pending"] == 0) break;
        std::this_thread::sleep_for(50ms);
      }
    }
    std::uint64_t duplicates = 0;
    for (const auto& id : ids) {
      auto m = nodes[id]->api("GET", "/v1/metrics");
      if (m.is_object()) duplicates += m["duplicates"].get<std::uint64_t>();
    }
    // The faults did happen (counters restart with a killed node: a lower bound).
    if (faults) {
      EXPECT_GT(duplicates, 0u);
    }
    json out = json::object();
    for (const auto& id : ids) {
      EXPECT_EQ(nodes[id]->stop(), 0) << nodes[id]->log();
      out[id] = store_projection(nodes[id]->data_dir());
    }
    return out;
  };
  auto clean = run("clean", false);
  auto faulty = run("faulty", true);
  ASSERT_EQ(clean["velo"]["orders"].size(), 6u) << clean.dump(1);
  for (const auto& id : ids)
    EXPECT_EQ(clean[id], faulty[id])
        << id << "\nclean:  " << clean[id].dump() << "\nfaulty: " << faulty[id].dump();
}

TEST_F(network, a_factory_that_is_down_does_not_stop_the_negotiation) {
  auto velo = make("velo", buyer_config());
  auto alloyframe = make("alloyframe", factory_config("alloyframe", 5200));
  // framecraft is configured as a peer but never started.
  ASSERT_TRUE(velo->start()) << velo->log();
  ASSERT_TRUE(alloyframe->start()) << alloyframe->log();

  json req = {{"item", "FRAME"}, {"quantity", 4}, {"due_us", now_us() + 14 * us_per_day}};
  auto r = velo->api("POST", "/v1/orders", req.dump());
  ASSERT_EQ(r["_http_status"], 201) << r.dump();
  auto orders = wait_terminal(*velo, 1);
  ASSERT_TRUE(orders.is_object());
  auto& o = orders["orders"][0];
  EXPECT_EQ(o["state"], "contracted") << o.dump(2);
  EXPECT_EQ(o["contract"]["seller"], "alloyframe") << o.dump(2);
  auto at_seller = contracts(*alloyframe);
  auto id = o["contract"]["contract_id"].get<std::string>();
  ASSERT_TRUE(at_seller.contains(id));
  EXPECT_EQ(terms(at_seller[id]), terms(contracts(*velo)[id]));
}

TEST_F(network, a_bad_config_is_refused_with_file_line_and_field) {
  auto bad = make("velo", "[node]\nid = \"velo\"\nlisten = 7\n");
  EXPECT_FALSE(bad->start(3s));
  auto log = bad->log();
  EXPECT_NE(log.find("velo.toml:3"), std::string::npos) << log;
  EXPECT_NE(log.find("node.listen"), std::string::npos) << log;
}

}  // namespace
