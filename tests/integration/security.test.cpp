// Hostile partners against real gearmesh-node processes over CurveZMQ on
// 127.0.0.1 (issue: secure partner links).
//
// The network: velo (buyer) and framecraft (factory) run as real processes;
// this test plays alloyframe, a partner both trust, with alloyframe's real
// keypair -- so it can misbehave from inside the trust store -- and a
// stranger whose key no one trusts. Every "no effect" is checked against the
// effect the same message has when sent honestly: an Ack and an answer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/keys/keys.hpp"
#include "gearmesh/transport/zmq_transport.hpp"
#include "gearmesh/wire/codec.hpp"
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

constexpr timestamp_us us_per_day = 86'400'000'000;

/// Waits up to `timeout` for `pred`.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

/// A partner played by the test: a ZeroMQ transport with some identity's
/// keypair, listening where the nodes send that identity's frames.
class partner {
 public:
  partner(const std::string& id, const transport::curve_keys& keys, std::uint16_t port,
          const std::map<std::string, std::pair<std::uint16_t, std::string>>& peers) {
    transport::zmq_options o;
    o.node_id = id;
    o.listen_endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    o.curve = keys;
    net_ = transport::make_zmq_transport(o);
    net_->on_receive([this](const std::string&, std::span<const std::uint8_t> f) {
      if (auto e = wire::decode(f)) {
        std::lock_guard<std::mutex> g{mx_};
        got_.push_back(std::move(*e));
      }
    });
    for (const auto& [peer, where] : peers)
      net_->add_peer({peer, "tcp://127.0.0.1:" + std::to_string(where.first), where.second});
    auto started = net_->start();
    EXPECT_TRUE(started) << started.to_string();
  }

  void send(const std::string& to, const wire::bytes& frame) { net_->send(to, frame); }

  /// Frames received that acknowledge message `id` (an Ack, or a reply
  /// carrying it in acks; re-sent replies count again).
  long acks_for(std::uint64_t id) {
    std::lock_guard<std::mutex> g{mx_};
    return std::count_if(got_.begin(), got_.end(), [&](const wire::envelope& e) {
      auto ids = wire::acknowledged_ids(e);
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    });
  }

  /// Answers (Propose or Refuse) received for order `order_id`, re-sent ones
  /// included (this partner never acknowledges them).
  long answers_for(const std::string& order_id) {
    std::lock_guard<std::mutex> g{mx_};
    return std::count_if(got_.begin(), got_.end(), [&](const wire::envelope& e) {
      auto* p = std::get_if<wire::propose>(&e.payload);
      auto* r = std::get_if<wire::refuse>(&e.payload);
      return (p && p->order_id == order_id) || (r && r->order_id == order_id);
    });
  }

  ~partner() { net_->stop(); }

 private:
  std::unique_ptr<transport::transport> net_;
  std::mutex mx_;
  std::vector<wire::envelope> got_;
};

/// A CFP for FRAME from `sender` to `receiver`, message id `id`.
wire::envelope cfp(const std::string& sender, const std::string& receiver, std::uint64_t id) {
  wire::envelope e;
  e.header.message_id = id;
  e.header.sender = sender;
  e.header.receiver = receiver;
  e.header.conversation_id = sender + "/order/" + std::to_string(id);
  e.header.timestamp_us = system_clock().now();
  wire::cfp c;
  c.order_id = e.header.conversation_id;
  c.item = "FRAME";
  c.quantity = 2;
  c.due_us = e.header.timestamp_us + 10 * us_per_day;
  c.reply_by_us = e.header.timestamp_us + 60'000'000;
  c.currency = "EUR";
  e.payload = c;
  return e;
}

class security : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto id : {"velo", "framecraft", "alloyframe", "cellpack"})
      ports_[id] = gearmesh::testing::node_ports{free_port(), free_port()};
    keys_dir_ = dir_.path() + "/keys";
    ASSERT_TRUE(gearmesh::testing::write_network_keys(keys_dir_, ports_));
  }

  transport::curve_keys keys_of(const std::string& id) {
    auto kp = keys::load_secret_key(keys_dir_ + "/" + id + "/node.key");
    EXPECT_TRUE(kp) << kp.error().to_string();
    return {keys::to_z85(kp->public_key), keys::to_z85(kp->secret_key)};
  }

  std::string framecraft_config() {
    gearmesh::testing::factory_shape f;
    return gearmesh::testing::node_sections("framecraft", ports_, timing_, keys_dir_) +
           gearmesh::testing::factory_section(f, timing_);
  }

  std::unique_ptr<node_process> start(const std::string& id, const std::string& config) {
    auto n = std::make_unique<node_process>(GEARMESH_NODE_BIN, id, dir_.path() + "/" + id, config,
                                            ports_[id].admin);
    EXPECT_TRUE(n->start()) << n->log();
    return n;
  }

  /// The test as alloyframe (trusted by everyone), talking to framecraft and velo.
  std::unique_ptr<partner> alloyframe() {
    return std::make_unique<partner>(
        "alloyframe", keys_of("alloyframe"), ports_["alloyframe"].zmq,
        std::map<std::string, std::pair<std::uint16_t, std::string>>{
            {"framecraft", {ports_["framecraft"].zmq, keys_of("framecraft").public_key}},
            {"velo", {ports_["velo"].zmq, keys_of("velo").public_key}}});
  }

  /// Sends CFP `id` to framecraft every 250 ms, as an outbox would, until it
  /// is acknowledged or `timeout` passes.
  static bool resend_until_acked(partner& p, std::uint64_t id, std::chrono::seconds timeout) {
    const auto frame = wire::encode(cfp("alloyframe", "framecraft", id));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      p.send("framecraft", frame);
      if (eventually([&] { return p.acks_for(id) >= 1; }, 250ms)) return true;
    }
    return false;
  }

  static std::uint64_t metric(node_process& n, const char* name) {
    auto m = n.api("GET", "/v1/metrics");
    return m.is_object() && m.contains(name) ? m[name].get<std::uint64_t>() : 0;
  }

  temp_dir dir_;
  std::string keys_dir_;
  std::map<std::string, gearmesh::testing::node_ports> ports_;
  gearmesh::testing::network_timing timing_;
};

TEST_F(security, an_unknown_key_cannot_connect_and_has_no_effect) {
  auto framecraft = start("framecraft", framecraft_config());
  const auto commits_before = metric(*framecraft, "commits");  // installing its roles
  // A stranger with a key of its own, claiming to be alloyframe.
  auto stranger_keys = keys::generate();
  ASSERT_TRUE(stranger_keys);
  partner stranger(
      "alloyframe",
      {keys::to_z85(stranger_keys->public_key), keys::to_z85(stranger_keys->secret_key)},
      free_port(), {{"framecraft", {ports_["framecraft"].zmq, keys_of("framecraft").public_key}}});
  for (std::uint64_t id = 1; id <= 5; ++id)
    stranger.send("framecraft", wire::encode(cfp("alloyframe", "framecraft", id)));
  ASSERT_TRUE(eventually([&] { return metric(*framecraft, "transport_auth_denied") >= 1; }))
      << framecraft->log();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(metric(*framecraft, "frames_in"), 0u);
  EXPECT_EQ(metric(*framecraft, "commits"), commits_before);
  EXPECT_EQ(stranger.acks_for(1), 0);
  EXPECT_EQ(stranger.answers_for("alloyframe/order/1"), 0);

  // The same frames with alloyframe's real key have their effect.
  auto honest = alloyframe();
  honest->send("framecraft", wire::encode(cfp("alloyframe", "framecraft", 1)));
  ASSERT_TRUE(eventually([&] { return honest->acks_for(1) >= 1; })) << framecraft->log();
  ASSERT_TRUE(eventually([&] { return honest->answers_for("alloyframe/order/1") >= 1; }))
      << framecraft->log() << framecraft->api("GET", "/v1/metrics").dump();
}

TEST_F(security, a_trusted_partner_forging_another_sender_has_no_effect) {
  auto framecraft = start("framecraft", framecraft_config());
  const auto commits_before = metric(*framecraft, "commits");
  auto liar = alloyframe();
  // alloyframe's authenticated connection, velo's name in the envelope.
  liar->send("framecraft", wire::encode(cfp("velo", "framecraft", 7)));
  ASSERT_TRUE(eventually([&] { return metric(*framecraft, "dropped_sender_mismatch") == 1; }))
      << framecraft->log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(metric(*framecraft, "commits"), commits_before);
  EXPECT_EQ(liar->acks_for(7), 0);
  EXPECT_NE(framecraft->log().find("forged sender"), std::string::npos) << framecraft->log();
}

// Garbage from a trusted partner while the node serves another one: every
// bad frame is counted and dropped; velo's orders still end in contracts.
TEST_F(security, bad_frames_are_dropped_while_the_node_keeps_serving_others) {
  auto framecraft = start("framecraft", framecraft_config());
  auto velo = start("velo", gearmesh::testing::node_sections("velo", ports_, timing_, keys_dir_) +
                                gearmesh::testing::buyer_section(timing_));
  auto attacker = alloyframe();  // also velo's second FRAME seller: it never answers

  const auto valid = wire::encode(cfp("alloyframe", "framecraft", 100));
  auto wrong_version = cfp("alloyframe", "framecraft", 101);
  wrong_version.header.protocol_version = wire::protocol_version + 1;
  std::mt19937_64 rng(42);
  int truncated = 0, random = 0, versions = 0, oversized = 0;
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    for (int round = 0; round < 200 && !stop; ++round) {
      // Cut into the content: the last bytes of a FlatBuffer can be
      // alignment padding, and without them it is still the same message.
      auto cut = valid;
      cut.resize(1 + rng() % (valid.size() - 8));
      attacker->send("framecraft", cut);
      ++truncated;
      wire::bytes noise(1 + rng() % 2048);
      for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
      attacker->send("framecraft", noise);
      ++random;
      attacker->send("framecraft", wire::encode(wrong_version));
      ++versions;
      if (round % 20 == 0) {
        attacker->send("framecraft", wire::bytes(100 * 1024, 0x5a));  // frame_bytes_max is 64 KiB
        ++oversized;
      }
      std::this_thread::sleep_for(5ms);
    }
  });

  std::vector<std::string> orders;
  const auto now = system_clock().now();
  for (int i = 0; i < 4; ++i) {
    json req = {{"item", "FRAME"}, {"quantity", 2 + i}, {"due_us", now + (10 + i) * us_per_day}};
    auto r = velo->api("POST", "/v1/orders", req.dump());
    ASSERT_EQ(r["_http_status"], 201) << r.dump();
    orders.push_back(r["order_id"].get<std::string>());
  }
  ASSERT_TRUE(eventually(
      [&] {
        auto list = velo->api("GET", "/v1/orders");
        if (!list.is_object() || list["orders"].size() != orders.size()) return false;
        for (auto& o : list["orders"])
          if (o["state"] != "contracted") return false;
        return true;
      },
      60s))
      << velo->api("GET", "/v1/orders").dump(2) << framecraft->log();
  stop = true;
  flood.join();
  // Truncated, random and wrong-version frames fail verification; oversized
  // ones are dropped by the transport before that.
  ASSERT_TRUE(eventually([&] {
    return metric(*framecraft, "dropped_malformed") ==
               static_cast<std::uint64_t>(truncated + random + versions) &&
           metric(*framecraft, "transport_dropped_oversized") ==
               static_cast<std::uint64_t>(oversized);
  })) << json(framecraft->api("GET", "/v1/metrics")).dump(2);
  EXPECT_EQ(metric(*framecraft, "dropped_sender_mismatch"), 0u);
  EXPECT_EQ(framecraft->poll(), std::nullopt);  // still running
  // The honest message still works afterwards.
  attacker->send("framecraft", valid);
  EXPECT_TRUE(eventually([&] { return attacker->acks_for(100) >= 1; }));
}

// Revocation by SIGHUP closes the partner's connection and refuses its
// reconnects; onboarding it again (POST /v1/reload) lets it back in.
TEST_F(security, a_revoked_key_is_disconnected_and_can_be_onboarded_again) {
  auto framecraft = start("framecraft", framecraft_config());
  auto partner_a = alloyframe();
  partner_a->send("framecraft", wire::encode(cfp("alloyframe", "framecraft", 1)));
  ASSERT_TRUE(eventually([&] { return partner_a->acks_for(1) >= 1; })) << framecraft->log();

  // The operator deletes alloyframe's [[peers]] entry and sends SIGHUP.
  const std::string full = framecraft_config();
  std::string without =
      std::regex_replace(full, std::regex("\\[\\[peers\\]\\]\nid = \"alloyframe\"\n[^\\[]*"), "");
  ASSERT_NE(without, full);
  std::ofstream(framecraft->config_path()) << without;
  const auto denied_before = metric(*framecraft, "transport_auth_denied");
  ASSERT_EQ(::kill(framecraft->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return framecraft->log().find("1 removed") != std::string::npos; }))
      << framecraft->log();
  // Its open connection is closed: the reconnect is refused by ZAP...
  ASSERT_TRUE(
      eventually([&] { return metric(*framecraft, "transport_auth_denied") > denied_before; }, 5s))
      << framecraft->log();
  // ... and nothing it sends has an effect any more.
  const auto frames_before = metric(*framecraft, "frames_in");
  partner_a->send("framecraft", wire::encode(cfp("alloyframe", "framecraft", 2)));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(partner_a->acks_for(2), 0);
  EXPECT_EQ(metric(*framecraft, "frames_in"), frames_before);

  // Onboarded again through the admin API: its retries get through.
  std::ofstream(framecraft->config_path()) << full;
  auto r = framecraft->api("POST", "/v1/reload");
  ASSERT_EQ(r["_http_status"], 200) << r.dump();
  EXPECT_EQ(r["added"], json::array({"alloyframe"}));
  // Its link heals by itself (the refused DEALER is re-created with backoff,
  // at most 10 s apart); like an outbox, the partner re-sends until acked.
  EXPECT_TRUE(resend_until_acked(*partner_a, 3, 20s)) << framecraft->log();

  // A reload that does not parse changes nothing and says why.
  std::ofstream(framecraft->config_path()) << "[node\n";
  r = framecraft->api("POST", "/v1/reload");
  EXPECT_EQ(r["_http_status"], 400) << r.dump();
  EXPECT_TRUE(resend_until_acked(*partner_a, 4, 10s));
}

// A node with security on and no usable key does not start; plain links
// need insecure = true, which is logged as a warning.
TEST_F(security, a_node_without_its_key_refuses_to_start_and_insecure_is_loud) {
  std::filesystem::remove(keys_dir_ + "/framecraft/node.key");
  auto n =
      std::make_unique<node_process>(GEARMESH_NODE_BIN, "framecraft", dir_.path() + "/framecraft",
                                     framecraft_config(), ports_["framecraft"].admin);
  EXPECT_FALSE(n->start(5s));
  ASSERT_TRUE(WIFEXITED(n->exit_status()));
  EXPECT_NE(WEXITSTATUS(n->exit_status()), 0);
  EXPECT_NE(n->log().find("node.key"), std::string::npos) << n->log();

  gearmesh::testing::factory_shape f;
  auto plain = std::make_unique<node_process>(
      GEARMESH_NODE_BIN, "framecraft", dir_.path() + "/plain",
      gearmesh::testing::node_sections("framecraft", ports_, timing_, "") +
          gearmesh::testing::factory_section(f, timing_),
      ports_["framecraft"].admin);
  ASSERT_TRUE(plain->start()) << plain->log();
  EXPECT_NE(plain->log().find("insecure = true"), std::string::npos) << plain->log();
}

}  // namespace
}  // namespace gearmesh
