#include "gearmesh/transport/zmq_transport.hpp"

#include <gtest/gtest.h>
#include <zmq.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/wire/codec.hpp"

namespace gearmesh::transport {
namespace {

using namespace std::chrono_literals;

constexpr auto wait_max = 5s;
constexpr const char* any_port = "tcp://127.0.0.1:*";

/// Polls `pred` until it holds or `wait_max` passes.
bool eventually(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + wait_max;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

std::vector<std::uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

/// Records every inbound frame; thread-safe.
class inbox {
 public:
  transport::receive_fn handler() {
    return [this](const std::string& from, std::span<const std::uint8_t> frame) {
      std::lock_guard lock(mutex_);
      received_.push_back({from, std::string(frame.begin(), frame.end())});
      cv_.notify_all();
    };
  }

  /// Waits (bounded) until at least `n` frames arrived.
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_max, [&] { return received_.size() >= n; });
  }

  struct entry {
    std::string from;
    std::string frame;
  };
  std::vector<entry> snapshot() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return received_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<entry> received_;
};

zmq_options options(const std::string& id, const std::string& endpoint = any_port) {
  zmq_options o;
  o.node_id = id;
  o.listen_endpoint = endpoint;
  return o;
}

/// A started transport with an inbox.
struct node {
  explicit node(zmq_options o) : t(make_zmq_transport(std::move(o))) {
    t->on_receive(box.handler());
  }
  status start() { return t->start(); }
  inbox box;
  std::unique_ptr<transport> t;
};

/// Sends pings until one arrives, so later frames find a live connection.
bool connect_and_ping(node& from, node& to, const std::string& to_id) {
  const std::size_t before = to.box.size();
  for (int attempt = 0; attempt < 50; ++attempt) {
    from.t->send(to_id, bytes_of("ping"));
    std::this_thread::sleep_for(20ms);
    if (to.box.size() > before) return true;
  }
  return false;
}

/// A fresh CURVE keypair (Z85).
curve_keys new_keys() {
  char pub[41] = {}, sec[41] = {};
  EXPECT_EQ(zmq_curve_keypair(pub, sec), 0);
  return curve_keys{pub, sec};
}

zmq_options curve_options(const std::string& id, const curve_keys& k) {
  auto o = options(id);
  o.curve = k;
  return o;
}

// CURVE: frames flow between peers that know each other's keys, and `from`
// is the identity ZAP authenticated (the key's owner), whatever routing id
// the client claims.
TEST(zmq_transport, curve_links_carry_frames_from_the_authenticated_peer) {
  const auto kv = new_keys(), kf = new_keys(), kc = new_keys();
  node velo(curve_options("velo", kv));
  node framecraft(curve_options("framecraft", kf));
  ASSERT_TRUE(velo.start());
  ASSERT_TRUE(framecraft.start());
  velo.t->add_peer({"framecraft", framecraft.t->listen_endpoint(), kf.public_key});
  framecraft.t->add_peer({"velo", velo.t->listen_endpoint(), kv.public_key});
  framecraft.t->add_peer({"cellpack", "tcp://127.0.0.1:1", kc.public_key});
  ASSERT_TRUE(connect_and_ping(velo, framecraft, "framecraft"));
  ASSERT_TRUE(connect_and_ping(framecraft, velo, "velo"));
  EXPECT_EQ(framecraft.box.snapshot().back().from, "velo");
  EXPECT_EQ(velo.box.snapshot().back().from, "framecraft");

  // Cellpack's key, but the routing id "velo": it is still cellpack.
  node liar(curve_options("velo", kc));
  ASSERT_TRUE(liar.start());
  liar.t->add_peer({"framecraft", framecraft.t->listen_endpoint(), kf.public_key});
  ASSERT_TRUE(connect_and_ping(liar, framecraft, "framecraft"));
  EXPECT_EQ(framecraft.box.snapshot().back().from, "cellpack");
  EXPECT_EQ(framecraft.t->stats().auth_denied, 0u);
}

TEST(zmq_transport, curve_refuses_unknown_keys_and_wrong_server_keys) {
  const auto kv = new_keys(), kf = new_keys(), stranger = new_keys();
  node framecraft(curve_options("framecraft", kf));
  ASSERT_TRUE(framecraft.start());
  framecraft.t->add_peer({"velo", "tcp://127.0.0.1:1", kv.public_key});

  // A client whose key is no peer's: the handshake fails, nothing arrives.
  node intruder(curve_options("velo", stranger));
  ASSERT_TRUE(intruder.start());
  intruder.t->add_peer({"framecraft", framecraft.t->listen_endpoint(), kf.public_key});
  EXPECT_FALSE(connect_and_ping(intruder, framecraft, "framecraft"));
  EXPECT_GE(framecraft.t->stats().auth_denied, 1u);

  // A plain (non-CURVE) client gets nowhere either.
  node plain(options("velo"));
  ASSERT_TRUE(plain.start());
  plain.t->add_peer({"framecraft", framecraft.t->listen_endpoint()});
  EXPECT_FALSE(connect_and_ping(plain, framecraft, "framecraft"));

  // The right client key but the server pinned to another key: the client
  // refuses the server (no man in the middle), nothing arrives.
  node velo(curve_options("velo", kv));
  ASSERT_TRUE(velo.start());
  velo.t->add_peer({"framecraft", framecraft.t->listen_endpoint(), stranger.public_key});
  EXPECT_FALSE(connect_and_ping(velo, framecraft, "framecraft"));
  EXPECT_EQ(framecraft.box.size(), 0u);
}

TEST(zmq_transport, curve_keys_must_be_z85) {
  auto o = options("velo");
  o.curve = curve_keys{"short", "short"};
  node n(o);
  EXPECT_EQ(n.start().code(), errc::invalid_argument);
}

TEST(zmq_transport, resolves_wildcard_listen_endpoint) {
  node a(options("a"));
  EXPECT_EQ(a.t->listen_endpoint(), "");
  ASSERT_TRUE(a.start()) << "start";
  const std::string ep = a.t->listen_endpoint();
  EXPECT_EQ(ep.rfind("tcp://127.0.0.1:", 0), 0u) << ep;
  EXPECT_EQ(ep.find('*'), std::string::npos) << ep;
  EXPECT_NE(ep, "tcp://127.0.0.1:0");
}

TEST(zmq_transport, exchanges_frames_both_ways_with_sender_identity) {
  node a(options("velo"));
  node b(options("framecraft"));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  a.t->add_peer({"framecraft", b.t->listen_endpoint()});
  b.t->add_peer({"velo", a.t->listen_endpoint()});

  a.t->send("framecraft", bytes_of("cfp from velo"));
  b.t->send("velo", bytes_of("proposal from framecraft"));
  ASSERT_TRUE(b.box.wait_for(1));
  ASSERT_TRUE(a.box.wait_for(1));

  const auto at_b = b.box.snapshot();
  EXPECT_EQ(at_b[0].from, "velo");
  EXPECT_EQ(at_b[0].frame, "cfp from velo");
  const auto at_a = a.box.snapshot();
  EXPECT_EQ(at_a[0].from, "framecraft");
  EXPECT_EQ(at_a[0].frame, "proposal from framecraft");

  EXPECT_TRUE(eventually([&] { return a.t->stats().frames_received == 1; }));
  const auto sa = a.t->stats();
  EXPECT_EQ(sa.frames_sent, 1u);
  EXPECT_EQ(sa.bytes_sent, std::strlen("cfp from velo"));
  EXPECT_EQ(sa.bytes_received, std::strlen("proposal from framecraft"));
}

TEST(zmq_transport, carries_encoded_envelopes) {
  node a(options("velo"));
  node b(options("framecraft"));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  a.t->add_peer({"framecraft", b.t->listen_endpoint()});
  wire::envelope env;
  env.header.sender = "velo";
  env.header.receiver = "framecraft";
  env.header.message_id = 7;
  env.payload = wire::cfp{"velo/order/1", "FRAME", 3, 0, 0, 0, 0, "EUR", {{"colour", "red"}}};
  a.t->send("framecraft", wire::encode(env));
  ASSERT_TRUE(b.box.wait_for(1));
  const auto got = b.box.snapshot()[0];
  auto decoded = wire::decode(
      std::span(reinterpret_cast<const std::uint8_t*>(got.frame.data()), got.frame.size()));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, env);
  EXPECT_EQ(got.from, decoded->header.sender);
}

TEST(zmq_transport, ten_thousand_frames_arrive_in_order) {
  // A burst of 10,000 into an HWM of 10,000 can hit the HWM: libzmq returns
  // pipe credit in batches of half the HWM. Give the burst room; the
  // HWM drop path is covered by hwm_overflow_is_counted.
  zmq_options oa = options("a");
  oa.send_hwm = 40'000;
  node a(oa);
  node b(options("b"));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  a.t->add_peer({"b", b.t->listen_endpoint()});
  ASSERT_TRUE(connect_and_ping(a, b, "b"));
  const std::size_t pings = b.box.size();

  constexpr int count = 10'000;
  for (int i = 0; i < count; ++i) a.t->send("b", bytes_of("frame " + std::to_string(i)));
  ASSERT_TRUE(b.box.wait_for(pings + count))
      << "got " << b.box.size() - pings << ", dropped " << a.t->stats().dropped_queue_full;

  const auto got = b.box.snapshot();
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(got[pings + static_cast<std::size_t>(i)].frame, "frame " + std::to_string(i));
  }
  const auto s = a.t->stats();
  EXPECT_EQ(s.dropped_queue_full, 0u);
  EXPECT_EQ(s.frames_sent, pings + count);
}

TEST(zmq_transport, hwm_overflow_is_counted) {
  // A peer that never comes up: frames queue in the DEALER up to the HWM,
  // the rest are dropped and counted, and nothing blocks.
  zmq_options oa = options("a");
  oa.send_hwm = 100;
  node a(oa);
  ASSERT_TRUE(a.start());
  a.t->add_peer({"b", "tcp://127.0.0.1:1"});  // nobody listens on port 1
  for (int i = 0; i < 500; ++i) a.t->send("b", bytes_of("x"));
  EXPECT_TRUE(eventually([&] {
    const auto s = a.t->stats();
    return s.frames_sent + s.dropped_queue_full == 500;
  }));
  const auto s = a.t->stats();
  EXPECT_GT(s.dropped_queue_full, 0u);
  EXPECT_LE(s.frames_sent, 200u);
}

TEST(zmq_transport, counts_sends_to_unknown_peers) {
  node a(options("a"));
  ASSERT_TRUE(a.start());
  a.t->send("nobody", bytes_of("lost"));
  a.t->send("nobody", bytes_of("lost too"));
  EXPECT_TRUE(eventually([&] { return a.t->stats().dropped_unknown_peer == 2; }));
  EXPECT_EQ(a.t->stats().frames_sent, 0u);
}

TEST(zmq_transport, queues_frames_while_the_peer_is_not_up_yet) {
  // Find a free port, then release it for the late peer.
  std::string endpoint;
  {
    node probe(options("b"));
    ASSERT_TRUE(probe.start());
    endpoint = probe.t->listen_endpoint();
  }
  node a(options("a"));
  ASSERT_TRUE(a.start());
  a.t->add_peer({"b", endpoint});
  a.t->send("b", bytes_of("before b started"));
  std::this_thread::sleep_for(150ms);  // let a try (and fail) to connect

  node b(options("b", endpoint));
  ASSERT_TRUE(b.start());
  a.t->send("b", bytes_of("after b started"));
  ASSERT_TRUE(b.box.wait_for(2)) << "got " << b.box.size();
  const auto got = b.box.snapshot();
  EXPECT_EQ(got[0].frame, "before b started");
  EXPECT_EQ(got[1].frame, "after b started");
  EXPECT_EQ(got[1].from, "a");
}

TEST(zmq_transport, start_on_a_used_port_fails) {
  node a(options("a"));
  ASSERT_TRUE(a.start());
  node b(options("b", a.t->listen_endpoint()));
  const status s = b.start();
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), errc::transport);
  EXPECT_NE(s.message().find("bind"), std::string::npos) << s.to_string();
  b.t->stop();  // harmless on a transport that never started
}

TEST(zmq_transport, start_twice_and_bad_node_id_are_rejected) {
  node a(options("a"));
  ASSERT_TRUE(a.start());
  EXPECT_EQ(a.start().code(), errc::invalid_argument);
  node nameless(options(""));
  EXPECT_EQ(nameless.start().code(), errc::invalid_argument);
}

TEST(zmq_transport, drops_oversized_inbound_frames_and_keeps_working) {
  zmq_options ob = options("b");
  ob.frame_bytes_max = 1024;
  node a(options("a"));
  node b(ob);
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  a.t->add_peer({"b", b.t->listen_endpoint()});
  ASSERT_TRUE(connect_and_ping(a, b, "b"));
  const std::size_t before = b.box.size();

  a.t->send("b", std::vector<std::uint8_t>(1025, 'x'));  // over the limit: counted
  a.t->send("b", std::vector<std::uint8_t>(1024, 'y'));  // at the limit: delivered
  ASSERT_TRUE(b.box.wait_for(before + 1));
  EXPECT_TRUE(eventually([&] { return b.t->stats().dropped_oversized == 1; }));
  EXPECT_EQ(b.box.snapshot()[before].frame, std::string(1024, 'y'));

  // Far above the limit libzmq cuts the connection; the DEALER reconnects and
  // the ROUTER hands the routing id over, so later frames still arrive.
  a.t->send("b", std::vector<std::uint8_t>(64 * 1024, 'z'));
  std::this_thread::sleep_for(50ms);
  const std::size_t mid = b.box.size();
  bool arrived = false;
  for (int attempt = 0; attempt < 100 && !arrived; ++attempt) {
    a.t->send("b", bytes_of("still here"));
    std::this_thread::sleep_for(20ms);
    arrived = b.box.size() > mid;
  }
  ASSERT_TRUE(arrived);
  for (const auto& e : b.box.snapshot()) EXPECT_LE(e.frame.size(), 1024u);
  EXPECT_EQ(b.box.snapshot().back().from, "a");
}

TEST(zmq_transport, drops_messages_with_unexpected_parts) {
  node b(options("b"));
  ASSERT_TRUE(b.start());
  void* ctx = zmq_ctx_new();
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  const int linger = 0;
  zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "raw", 3);
  ASSERT_EQ(zmq_connect(dealer, b.t->listen_endpoint().c_str()), 0);
  zmq_send(dealer, "one", 3, ZMQ_SNDMORE);
  zmq_send(dealer, "two", 3, ZMQ_SNDMORE);
  zmq_send(dealer, "three", 5, 0);
  zmq_send(dealer, "fine", 4, 0);
  ASSERT_TRUE(b.box.wait_for(1));
  EXPECT_EQ(b.box.snapshot()[0].frame, "fine");
  EXPECT_EQ(b.box.snapshot()[0].from, "raw");
  EXPECT_EQ(b.t->stats().dropped_malformed, 1u);
  zmq_close(dealer);
  zmq_ctx_term(ctx);
}

TEST(zmq_transport, restarted_peer_with_same_id_and_port_takes_over) {
  node b(options("b"));
  ASSERT_TRUE(b.start());
  auto a = std::make_unique<node>(options("a"));
  ASSERT_TRUE(a->start());
  const std::string a_endpoint = a->t->listen_endpoint();
  a->t->add_peer({"b", b.t->listen_endpoint()});
  b.t->add_peer({"a", a_endpoint});
  ASSERT_TRUE(connect_and_ping(*a, b, "b"));
  ASSERT_TRUE(connect_and_ping(b, *a, "a"));

  // Restart a: same id, same port.
  a.reset();
  a = std::make_unique<node>(options("a", a_endpoint));
  ASSERT_TRUE(a->start()) << "rebind " << a_endpoint;
  a->t->add_peer({"b", b.t->listen_endpoint()});

  const std::size_t at_b = b.box.size();
  ASSERT_TRUE(connect_and_ping(*a, b, "b"));
  EXPECT_EQ(b.box.snapshot()[at_b].from, "a");
  ASSERT_TRUE(connect_and_ping(b, *a, "a"));  // b's DEALER reconnected
  EXPECT_EQ(a->box.snapshot()[0].from, "b");
}

TEST(zmq_transport, stop_is_idempotent_and_later_sends_are_counted) {
  node a(options("a"));
  ASSERT_TRUE(a.start());
  a.t->stop();
  a.t->stop();
  a.t->send("b", bytes_of("too late"));
  EXPECT_EQ(a.t->stats().dropped_queue_full, 1u);
  EXPECT_EQ(a.t->start().code(), errc::invalid_argument);
}

TEST(zmq_transport, send_queue_bound_is_enforced) {
  zmq_options o = options("a");
  o.send_queue_max = 10;
  node a(o);  // not started: nothing drains the queue
  for (int i = 0; i < 15; ++i) a.t->send("b", bytes_of("x"));
  EXPECT_EQ(a.t->stats().dropped_queue_full, 5u);
}

TEST(zmq_transport, concurrent_senders) {
  node a(options("a"));
  node b(options("b"));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  a.t->add_peer({"b", b.t->listen_endpoint()});
  ASSERT_TRUE(connect_and_ping(a, b, "b"));
  const std::size_t pings = b.box.size();
  constexpr int threads = 4;
  constexpr int per_thread = 1000;
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) a.t->send("b", bytes_of(std::to_string(t)));
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(b.box.wait_for(pings + threads * per_thread));
  EXPECT_EQ(a.t->stats().dropped_queue_full, 0u);
}

}  // namespace
}  // namespace gearmesh::transport
