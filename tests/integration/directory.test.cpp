// Identifier resolution between real gearmesh-node processes over CurveZMQ on
// 127.0.0.1 (issue 5, item 7): velo asks its root directory (registry), which
// delegates "acme" to acme's enterprise directory (acme-dir), which delegates
// "acme.plant1" to the owning node. Every hop is a committed, acknowledged
// Resolve/Resolution over the real wire.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "node_process.hpp"
#include "reference_network.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using gearmesh::testing::free_port;
using gearmesh::testing::node_process;
using gearmesh::testing::temp_dir;
using nlohmann::json;

namespace gearmesh {
namespace {

class directory_network : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "registry", "acme-dir", "acme.plant1"})
      ports_[id] = gearmesh::testing::node_ports{free_port(), free_port()};
    keys_ = dir_.path() + "/keys";
    ASSERT_TRUE(gearmesh::testing::write_network_keys(keys_, ports_));
    const auto sections = [&](const std::string& id) {
      return gearmesh::testing::node_sections(id, ports_, timing_, keys_);
    };
    start("velo", sections("velo") + "\n[directory]\nroot = \"registry\"\n");
    start("registry", sections("registry") + R"(
[directory]
ttl_s = 600

[[directory.delegations]]
prefix = "acme"
node = "acme-dir"
capabilities = ["welding", "sawing", "coating", "FRAME"]
)");
    start("acme-dir", sections("acme-dir") + R"(
[directory]

[[directory.delegations]]
prefix = "acme.plant1"
node = "acme.plant1"
capabilities = ["welding", "sawing", "coating", "FRAME"]
)");
    gearmesh::testing::factory_shape f;
    start("acme.plant1", sections("acme.plant1") + "\n[directory]\nttl_s = 120\n" +
                             gearmesh::testing::factory_section(f, timing_));
  }

  void start(const std::string& id, const std::string& config) {
    auto n = std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                            ports_[id].admin);
    ASSERT_TRUE(n->start()) << id << " did not start:\n" << n->log();
    nodes_[id] = std::move(n);
  }

  node_process& at(const std::string& id) { return *nodes_.at(id); }

  std::string public_key(const std::string& id) {
    std::ifstream in(keys_ + "/" + id + "/node.pub");
    std::string key;
    in >> key;
    return key;
  }

  temp_dir dir_;
  std::map<std::string, gearmesh::testing::node_ports> ports_;
  gearmesh::testing::network_timing timing_;
  std::string keys_;
  std::map<std::string, std::unique_ptr<node_process>> nodes_;
};

TEST_F(directory_network, resolves_over_two_hops_caches_and_finds_partners) {
  // 1. Two hops below the root, answered by the owner.
  json r = at("velo").api("GET", "/v1/resolve/acme.plant1%2Fmachine%2Fweld1");
  ASSERT_EQ(r["_http_status"], 200) << r.dump() << "\n" << at("velo").log();
  EXPECT_EQ(r["status"], "found");
  EXPECT_EQ(r["identifier"], "acme.plant1/machine/weld1");
  EXPECT_EQ(r["cached"], false);
  EXPECT_EQ(r["ttl_s"], 120);
  ASSERT_EQ(r["entries"].size(), 1u);
  const json& e = r["entries"][0];
  EXPECT_EQ(e["node_id"], "acme.plant1");
  EXPECT_EQ(e["endpoint"], "tcp://127.0.0.1:" + std::to_string(ports_["acme.plant1"].zmq));
  EXPECT_EQ(e["public_key"], public_key("acme.plant1"));
  EXPECT_EQ(e["referral"], false);
  EXPECT_NE(std::find(e["capabilities"].begin(), e["capabilities"].end(), "welding"),
            e["capabilities"].end());
  json registry = at("registry").api("GET", "/v1/directory");
  EXPECT_EQ(registry["queries_remote"], 1);
  EXPECT_EQ(registry["forwarded"], 1);
  EXPECT_EQ(at("acme-dir").api("GET", "/v1/directory")["forwarded"], 1);
  EXPECT_EQ(at("acme.plant1").api("GET", "/v1/directory")["answered_authoritative"], 1);

  // 2. Within the TTL: from velo's cache; the registry is not asked again.
  r = at("velo").api("GET", "/v1/resolve/acme.plant1%2Fmachine%2Fweld1");
  ASSERT_EQ(r["_http_status"], 200) << r.dump();
  EXPECT_EQ(r["cached"], true);
  EXPECT_EQ(r["entries"][0]["node_id"], "acme.plant1");
  json velo = at("velo").api("GET", "/v1/directory");
  EXPECT_EQ(velo["cache_hits"], 1);
  EXPECT_EQ(velo["forwarded"], 1);
  EXPECT_EQ(at("registry").api("GET", "/v1/directory")["queries_remote"], 1);

  // 3. Unknown identifiers: not_found from the owner, or from the root.
  r = at("velo").api("GET", "/v1/resolve/acme.plant1%2Fmachine%2Fm99");
  EXPECT_EQ(r["_http_status"], 404) << r.dump();
  EXPECT_EQ(r["status"], "not_found");
  EXPECT_EQ(r["reason"], "no machine m99 at acme.plant1");
  r = at("velo").api("GET", "/v1/resolve/zeta%2Forder%2F1");
  EXPECT_EQ(r["_http_status"], 404) << r.dump();
  EXPECT_EQ(r["reason"], "registry knows no directory for zeta");
  r = at("velo").api("GET", "/v1/resolve/zeta%2F%2F1");
  EXPECT_EQ(r["_http_status"], 400) << r.dump();

  // 4. Partners by capability, through the same tree.
  r = at("velo").api("GET", "/v1/partners?capability=welding");
  ASSERT_EQ(r["_http_status"], 200) << r.dump();
  EXPECT_EQ(r["status"], "found");
  ASSERT_EQ(r["entries"].size(), 1u);
  EXPECT_EQ(r["entries"][0]["node_id"], "acme.plant1");
  EXPECT_EQ(r["entries"][0]["public_key"], public_key("acme.plant1"));
  r = at("velo").api("GET", "/v1/partners?capability=painting");
  EXPECT_EQ(r["_http_status"], 404) << r.dump();

  // Every hop was a committed message that got acknowledged.
  for (const auto& [id, n] : nodes_) {
    bool drained = false;
    for (int i = 0; i < 100 && !drained; ++i) {
      json m = n->api("GET", "/v1/metrics");
      drained = m.is_object() && m.value("outbox_pending", 1) == 0;
      if (!drained) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(drained) << id;
  }
}

}  // namespace
}  // namespace gearmesh
