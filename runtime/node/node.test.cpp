// The node host over real ZeroMQ sockets and real LMDB stores: commit-then-send,
// acks, retries from the outbox, dedup, and dropping of bad input.
#include "gearmesh/node/node.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <caf/all.hpp>

#include "free_port.hpp"
#include "gearmesh/keys/keys.hpp"
#include "gearmesh/node/caf_types.hpp"
#include "gearmesh/transport/zmq_transport.hpp"
#include "gearmesh/wire/codec.hpp"

using namespace std::chrono_literals;

namespace gearmesh {
namespace {

using testing::free_port;

/// Waits up to 10 s for `pred`.
bool eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

/// Everything test actors saw, shared with the test thread.
struct journal {
  std::mutex mx;
  std::vector<wire::envelope> seen;
  void add(const wire::envelope& e) {
    std::lock_guard<std::mutex> g{mx};
    seen.push_back(e);
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g{mx};
    return seen.size();
  }
  wire::envelope at(std::size_t i) {
    std::lock_guard<std::mutex> g{mx};
    return seen.at(i);
  }
};

/// Answers every CFP with a Refuse, committing the inbound message.
caf::behavior refuser(caf::event_based_actor*, node_context* ctx, journal* j) {
  return {[=](inbound_atom, const wire::envelope& e) {
    j->add(e);
    effects fx;
    fx.cause = inbound_ref{e.header.sender, e.header.message_id};
    fx.writes.put("seen", e.header.sender + "/" + store::key_u64(e.header.message_id), "");
    fx.messages.push_back(outbound{e.header.sender, e.header.conversation_id, e.header.message_id,
                                   wire::refuse{std::get<wire::cfp>(e.payload).order_id, "busy"}});
    ctx->commit(std::move(fx));
  }};
}

/// Records every message and commits it.
caf::behavior recorder(caf::event_based_actor*, node_context* ctx, journal* j) {
  return {[=](inbound_atom, const wire::envelope& e) {
    j->add(e);
    effects fx;
    fx.cause = inbound_ref{e.header.sender, e.header.message_id};
    ctx->commit(std::move(fx));
  }};
}

class node_host : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gearmesh-node-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    port_a_ = free_port();
    port_b_ = free_port();
    // Every link in these tests is CurveZMQ, as in production.
    for (const char* id : {"a", "b"}) {
      auto pub = keys::write_keypair(dir_ + "/keys/" + id, false);
      ASSERT_TRUE(pub) << pub.error().to_string();
      auto kp = keys::load_secret_key(dir_ + "/keys/" + id + "/node.key");
      ASSERT_TRUE(kp) << kp.error().to_string();
      keys_[id] = transport::curve_keys{keys::to_z85(kp->public_key), keys::to_z85(kp->secret_key)};
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  node_config config(const std::string& id) {
    node_config c;
    c.node_id = id;
    bool a = id == "a";
    c.listen = "tcp://127.0.0.1:" + std::to_string(a ? port_a_ : port_b_);
    c.data_dir = dir_ + "/" + id;
    c.store_sync = false;
    c.retry_initial_ms = 50;
    c.retry_max_ms = 200;
    c.secret_key_file = dir_ + "/keys/" + id + "/node.key";
    peer_config peer;
    peer.id = a ? "b" : "a";
    peer.endpoint = "tcp://127.0.0.1:" + std::to_string(a ? port_b_ : port_a_);
    peer.public_key = keys_[peer.id].public_key;
    c.peers.push_back(peer);
    return c;
  }

  /// A raw transport that holds a's key and listens on a's port, where b
  /// sends its acks: it sends hand-made frames to b as partner "a" would.
  /// `got` receives every decodable frame from b.
  std::unique_ptr<transport::transport> fake_a(std::function<void(wire::envelope)> got) {
    transport::zmq_options zo;
    zo.node_id = "a";
    zo.listen_endpoint = "tcp://127.0.0.1:" + std::to_string(port_a_);
    zo.curve = keys_["a"];
    auto fake = transport::make_zmq_transport(zo);
    fake->on_receive([got = std::move(got)](const std::string&, std::span<const std::uint8_t> f) {
      if (auto e = wire::decode(f)) got(std::move(*e));
    });
    fake->add_peer({"b", "tcp://127.0.0.1:" + std::to_string(port_b_), keys_["b"].public_key});
    EXPECT_TRUE(fake->start());
    return fake;
  }

  /// A CFP from "a" to b with message id `id`, stamped `ts` (now if 0).
  static wire::envelope cfp_from_a(std::uint64_t id, timestamp_us ts = 0) {
    wire::envelope e;
    e.header.message_id = id;
    e.header.sender = "a";
    e.header.receiver = "b";
    e.header.conversation_id = "a/order/" + std::to_string(id);
    e.header.timestamp_us = ts != 0 ? ts : system_clock().now();
    wire::cfp c;
    c.order_id = e.header.conversation_id;
    c.item = "FRAME";
    c.quantity = 1;
    e.payload = c;
    return e;
  }

  /// Node b from `cfg`, serving, with CFPs routed to the actor `handler` spawns.
  std::unique_ptr<node> start_b(node_config cfg, const std::function<caf::actor(node&)>& handler) {
    auto n = node::open(std::move(cfg));
    EXPECT_TRUE(n) << n.error().to_string();
    if (!n) return nullptr;
    (*n)->route({wire::message_type::cfp}, handler(**n));
    EXPECT_TRUE((*n)->serve());
    return std::move(*n);
  }

  /// Node b (`cfg`, default config("b")) with a refuser for CFPs.
  std::unique_ptr<node> start_b(journal& j, std::optional<node_config> cfg = std::nullopt) {
    return start_b(cfg ? std::move(*cfg) : config("b"),
                   [&j](node& n) { return n.system().spawn(refuser, &n.context(), &j); });
  }

  /// Node a with a recorder for refusals.
  std::unique_ptr<node> start_a(journal& j) {
    auto n = node::open(config("a"));
    EXPECT_TRUE(n) << n.error().to_string();
    auto& ctx = (*n)->context();
    (*n)->route({wire::message_type::refuse}, (*n)->system().spawn(recorder, &ctx, &j));
    EXPECT_TRUE((*n)->serve());
    return std::move(*n);
  }

  static effects cfp_to_b(const std::string& order) {
    effects fx;
    wire::cfp c;
    c.order_id = order;
    c.item = "FRAME";
    c.quantity = 3;
    fx.messages.push_back(outbound{"b", order, 0, c});
    return fx;
  }

  std::string dir_;
  std::uint16_t port_a_ = 0;
  std::uint16_t port_b_ = 0;
  std::map<std::string, transport::curve_keys> keys_;
};

TEST_F(node_host, message_is_answered_and_both_outboxes_drain) {
  journal ja, jb;
  auto b = start_b(jb);
  auto a = start_a(ja);
  a->context().commit(cfp_to_b("a/order/1"));
  ASSERT_TRUE(eventually([&] { return ja.size() == 1; }));
  auto refusal = ja.at(0);
  auto cfp = jb.at(0);
  EXPECT_EQ(refusal.header.sender, "b");
  EXPECT_EQ(refusal.header.conversation_id, "a/order/1");
  EXPECT_EQ(refusal.header.causation_id, cfp.header.message_id);
  EXPECT_EQ(std::get<wire::refuse>(refusal.payload).reason, "busy");
  EXPECT_TRUE(
      eventually([&] { return a->stats().outbox_pending == 0 && b->stats().outbox_pending == 0; }));
  // b recorded the CFP in its inbox in the same transaction as its own write.
  auto key = "a/" + store::key_u64(cfp.header.message_id);
  auto seen = b->context().store().get("seen", key);
  auto inbox = b->context().store().get("inbox", key);
  ASSERT_TRUE(seen && inbox);
  EXPECT_TRUE(seen->has_value());
  EXPECT_TRUE(inbox->has_value());
}

/// A transport that keeps what the node sends; frames come in by deliver().
class captured_transport final : public transport::transport {
 public:
  explicit captured_transport(std::vector<wire::envelope>* sent) : sent_(sent) {}
  void on_receive(receive_fn fn) override { fn_ = std::move(fn); }
  status start() override { return status::ok(); }
  void stop() override {}
  void add_peer(const gearmesh::transport::peer&) override {}
  void remove_peer(const std::string&) override {}
  void send(const std::string&, std::vector<std::uint8_t> frame) override {
    auto e = wire::decode(frame);
    ASSERT_TRUE(e) << e.error().to_string();
    sent_->push_back(std::move(*e));
  }
  gearmesh::transport::transport_stats stats() const override { return {}; }
  std::string listen_endpoint() const override { return "inproc://captured"; }
  void deliver(const std::string& from, const wire::envelope& e) {
    auto frame = wire::encode(e);
    fn_(from, frame);
  }

 private:
  std::vector<wire::envelope>* sent_;
  receive_fn fn_;
};

// Acknowledgements (protocol.md section 4): a step that answers the sender
// carries the Ack on its reply; the others committed together leave as one
// Ack frame. Deterministic execution makes "together" exact.
TEST_F(node_host, acks_ride_on_replies_and_are_batched_per_partner) {
  std::vector<wire::envelope> sent;
  auto owned = std::make_unique<captured_transport>(&sent);
  auto* net = owned.get();
  manual_clock clk(system_clock().now());
  auto cfg = config("b");
  auto n = node::open(cfg, clk, std::move(owned), execution::deterministic);
  ASSERT_TRUE(n) << n.error().to_string();
  journal j;
  auto& b = **n;
  b.route({wire::message_type::cfp}, b.system().spawn(refuser, &b.context(), &j));
  b.route({wire::message_type::cancel}, b.system().spawn(recorder, &b.context(), &j));
  ASSERT_TRUE(b.serve());
  b.run_ready();
  sent.clear();  // nothing is due yet; the first tick only looks at the outbox

  auto cancel = [&](std::uint64_t id) {
    auto e = cfp_from_a(id, clk.now());
    e.payload = wire::cancel{e.header.conversation_id, "", "withdrawn"};
    return e;
  };
  for (std::uint64_t id : {1, 2, 3}) net->deliver("a", cancel(id));
  for (std::uint64_t id : {4, 5}) net->deliver("a", cfp_from_a(id, clk.now()));
  b.run_ready();
  ASSERT_EQ(j.size(), 5u);

  std::vector<wire::envelope> refusals, ack_frames;
  for (auto& e : sent)
    (std::holds_alternative<wire::ack>(e.payload) ? ack_frames : refusals).push_back(e);
  ASSERT_EQ(refusals.size(), 2u);
  EXPECT_EQ(refusals[0].header.acks, std::vector<std::uint64_t>{4});
  EXPECT_EQ(refusals[1].header.acks, std::vector<std::uint64_t>{5});
  ASSERT_EQ(ack_frames.size(), 1u);
  EXPECT_EQ(wire::acknowledged_ids(ack_frames[0]), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(ack_frames[0].header.message_id, 0u);
  EXPECT_EQ(ack_frames[0].header.causation_id, 1u);

  // a's Ack of both refusals, in one frame, empties b's outbox.
  ASSERT_EQ(b.stats().outbox_pending, 2u);
  wire::envelope ack;
  ack.header = {wire::protocol_version, 0, "a", "b", "", 0, clk.now(), {}};
  ack.payload = wire::ack{refusals[0].header.message_id};
  ack.header.acks = {refusals[1].header.message_id, 999};  // 999: not b's, ignored
  net->deliver("a", ack);
  b.run_ready();
  EXPECT_EQ(b.stats().outbox_pending, 0u);
  EXPECT_EQ(b.stats().acks_in, 3u);

  // A duplicate is answered with an Ack frame and its unacknowledged replies
  // (none left here).
  sent.clear();
  net->deliver("a", cfp_from_a(4, clk.now()));
  b.run_ready();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(wire::acknowledged_ids(sent[0]), std::vector<std::uint64_t>{4});
  EXPECT_TRUE(std::holds_alternative<wire::ack>(sent[0].payload));
  b.stop();
}

// node::receive_decoded: a frame the caller decoded goes through every check
// of a received one, in the same order, and is not decoded again.
TEST_F(node_host, a_frame_decoded_by_the_caller_is_handled_as_a_received_one) {
  std::vector<wire::envelope> sent;
  auto owned = std::make_unique<captured_transport>(&sent);
  manual_clock clk(system_clock().now());
  auto n = node::open(config("b"), clk, std::move(owned), execution::deterministic);
  ASSERT_TRUE(n) << n.error().to_string();
  journal j;
  auto& b = **n;
  b.route({wire::message_type::cfp}, b.system().spawn(refuser, &b.context(), &j));
  EXPECT_EQ(b.wire_limits().frame_bytes_max, config("b").frame_bytes_max);
  auto receive = [&](const std::string& from, const wire::envelope& e) {
    const auto frame = wire::encode(e);
    b.receive_decoded(from, frame, wire::decode(frame, b.wire_limits()));
    b.run_ready();
  };
  receive("a", cfp_from_a(1, clk.now()));  // not serving yet: dropped
  EXPECT_EQ(b.stats().frames_in, 0u);
  ASSERT_TRUE(b.serve());
  b.run_ready();
  sent.clear();

  receive("a", cfp_from_a(1, clk.now()));
  ASSERT_EQ(j.size(), 1u);
  ASSERT_EQ(sent.size(), 1u);  // the Refuse, carrying the Ack of 1
  EXPECT_EQ(sent[0].header.acks, std::vector<std::uint64_t>{1});
  receive("a", cfp_from_a(1, clk.now()));  // a duplicate
  EXPECT_EQ(b.stats().duplicates, 1u);
  receive("mallory", cfp_from_a(2, clk.now()));  // checked before the decoded frame is read
  EXPECT_EQ(b.stats().dropped_unknown_sender, 1u);
  // What decode gave is what counts: a decoding error drops the frame.
  const auto frame = wire::encode(cfp_from_a(3, clk.now()));
  b.receive_decoded("a", frame, status(errc::malformed_frame, "verifier rejected frame"));
  b.run_ready();
  EXPECT_EQ(b.stats().dropped_malformed, 1u);
  EXPECT_EQ(j.size(), 1u);
  EXPECT_EQ(b.stats().frames_in, 4u);
  b.stop();
}

// Retries to a silent partner (node.cpp, peer_link): one message at a time
// probes it, on its backoff, in turn; once the partner is heard again the
// others go out at once.
TEST_F(node_host, a_silent_partner_gets_one_probe_at_a_time_and_the_rest_when_heard) {
  std::vector<wire::envelope> sent;
  auto owned = std::make_unique<captured_transport>(&sent);
  auto* net = owned.get();
  manual_clock clk(system_clock().now());
  auto n = node::open(config("a"), clk, std::move(owned), execution::deterministic);
  ASSERT_TRUE(n) << n.error().to_string();
  auto& a = **n;
  ASSERT_TRUE(a.serve());
  a.run_ready();
  for (int i = 1; i <= 4; ++i) a.context().commit(cfp_to_b("a/order/" + std::to_string(i)));
  a.run_ready();
  ASSERT_EQ(sent.size(), 4u);  // each sent once; b is down
  std::set<std::uint64_t> ids;
  for (const auto& e : sent) ids.insert(e.header.message_id);
  sent.clear();
  // Moves both clocks by `ms` and runs what is due.
  auto advance = [&](std::int64_t ms) {
    clk.advance(ms * us_per_ms);
    a.advance_time_us(ms * us_per_ms);
    a.run_ready();
  };
  // retry_initial_ms 50 doubling to retry_max_ms 200: over 2 s, one frame
  // per backoff, each of the four messages in turn.
  std::set<std::uint64_t> probed;
  for (int step = 0; step < 200; ++step) advance(10);
  for (const auto& e : sent) probed.insert(e.header.message_id);
  EXPECT_GE(sent.size(), 8u);
  EXPECT_LE(sent.size(), 12u);  // without probing: about 4 x 11
  EXPECT_EQ(probed, ids);
  EXPECT_GE(a.stats().retransmits_parked, 8u);
  // b is back: its Ack of one message makes the others go out at once.
  sent.clear();
  wire::envelope ack;
  ack.header = {wire::protocol_version, 0, "b", "a", "", 0, clk.now(), {}};
  ack.payload = wire::ack{*ids.begin()};
  net->deliver("b", ack);
  a.run_ready();
  advance(0);
  std::set<std::uint64_t> resent;
  for (const auto& e : sent) resent.insert(e.header.message_id);
  EXPECT_EQ(resent, std::set<std::uint64_t>(std::next(ids.begin()), ids.end()));
  EXPECT_EQ(a.stats().outbox_pending, 3u);
  // Acked, the outbox drains and nothing more is sent.
  ack.header.acks.assign(std::next(ids.begin()), ids.end());
  net->deliver("b", ack);
  a.run_ready();
  EXPECT_EQ(a.stats().outbox_pending, 0u);
  sent.clear();
  for (int step = 0; step < 50; ++step) advance(10);
  EXPECT_TRUE(sent.empty());
  a.stop();
}

TEST_F(node_host, committed_message_survives_restart_and_arrives_once) {
  journal ja, jb;
  std::uint64_t first_id = 0;
  {
    auto a = start_a(ja);  // b is down: the CFP stays in a's outbox
    a->context().commit(cfp_to_b("a/order/7"));
    ASSERT_TRUE(eventually([&] { return a->stats().outbox_pending == 1; }));
    a->stop();
  }
  auto a = start_a(ja);
  EXPECT_EQ(a->stats().outbox_pending, 1u);
  auto b = start_b(jb);
  ASSERT_TRUE(eventually([&] { return ja.size() == 1; }));
  first_id = jb.at(0).header.message_id;
  EXPECT_TRUE(eventually([&] { return a->stats().outbox_pending == 0; }));
  std::this_thread::sleep_for(300ms);  // retries that were in flight settle
  EXPECT_EQ(jb.size(), 1u);
  EXPECT_EQ(ja.size(), 1u);
  // Ids keep growing across the restart.
  a->context().commit(cfp_to_b("a/order/8"));
  ASSERT_TRUE(eventually([&] { return jb.size() == 2; }));
  EXPECT_GT(jb.at(1).header.message_id, first_id);
}

TEST_F(node_host, duplicates_malformed_frames_and_forged_senders_have_no_effect) {
  journal jb;
  auto b = start_b(jb);
  std::mutex mx;
  std::vector<wire::envelope> to_fake;
  auto fake = fake_a([&](wire::envelope e) {
    std::lock_guard<std::mutex> g{mx};
    to_fake.push_back(std::move(e));
  });
  auto e = cfp_from_a(42);
  auto frame = wire::encode(e);
  // Frames acknowledging `id`: Ack frames, or any frame carrying it in acks.
  auto acks_for = [&](std::uint64_t id, bool ack_frames_only = false) {
    std::lock_guard<std::mutex> g{mx};
    int n = 0;
    for (auto& m : to_fake) {
      if (ack_frames_only && !std::holds_alternative<wire::ack>(m.payload)) continue;
      auto ids = wire::acknowledged_ids(m);
      n += static_cast<int>(std::count(ids.begin(), ids.end(), id));
    }
    return n;
  };
  fake->send("b", frame);
  ASSERT_TRUE(eventually([&] { return jb.size() == 1 && acks_for(42) >= 1; }));
  {
    // b answers the CFP with a Refuse, which carries the CFP's Ack: no Ack frame.
    std::lock_guard<std::mutex> g{mx};
    ASSERT_TRUE(std::holds_alternative<wire::refuse>(to_fake.at(0).payload));
    EXPECT_EQ(to_fake.at(0).header.acks, std::vector<std::uint64_t>{42});
  }
  EXPECT_EQ(acks_for(42, true), 0);
  fake->send("b", frame);  // duplicate after the commit: acked again, no effect
  ASSERT_TRUE(eventually([&] { return b->stats().duplicates == 1 && acks_for(42, true) == 1; }));
  // ... and answered with its stored reply: the fake never acked b's Refuse,
  // so it is re-sent at once (not only on b's retry timer).
  EXPECT_EQ(b->stats().duplicate_replies, 1u);
  auto inbox = b->context().store().get("inbox", "a/" + store::key_u64(42));
  ASSERT_TRUE(inbox && inbox->has_value());
  EXPECT_FALSE((*inbox)->empty());  // the id of the Refuse

  // Garbage: every frame is counted (the log line is throttled to one per second).
  for (int i = 0; i < 20; ++i) fake->send("b", {0x01, 0x02, 0x03});
  auto forged = e;
  forged.header.sender = "c";  // claims another sender on a's authenticated connection
  forged.header.message_id = 43;
  fake->send("b", wire::encode(forged));
  auto wrong = e;
  wrong.header.receiver = "z";
  wrong.header.message_id = 44;
  fake->send("b", wire::encode(wrong));
  ASSERT_TRUE(eventually([&] {
    auto s = b->stats();
    return s.dropped_malformed == 20 && s.dropped_sender_mismatch == 1 &&
           s.dropped_wrong_receiver == 1;
  }));
  // b keeps serving: a fresh message still gets through.
  e.header.message_id = 45;
  fake->send("b", wire::encode(e));
  ASSERT_TRUE(eventually([&] { return jb.size() == 2; }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(jb.size(), 2u);

  // 45 is acked; b's refusals stay pending because the fake never acks them.
  ASSERT_TRUE(eventually([&] { return acks_for(45) >= 1; }));
  EXPECT_GE(b->stats().outbox_pending, 1u);
  fake->stop();
}

// Replays: a message stamped before the replay window is acknowledged with no
// effect; one stamped too far in the future is dropped unacknowledged; the
// inbox forgets entries after the window, and the forgotten message, sent
// again, still has no second effect.
TEST_F(node_host, replay_window_bounds_the_inbox_and_stale_frames_have_no_effect) {
  journal jb;
  auto cfg = config("b");
  cfg.replay_window_us = 400 * us_per_ms;
  cfg.clock_skew_max_us = 100 * us_per_ms;
  auto b = start_b(jb, cfg);
  ASSERT_TRUE(b);

  std::mutex mx;
  std::vector<std::uint64_t> acked;  // by Ack frames
  std::vector<std::uint64_t> acked_on_replies;
  auto fake = fake_a([&](wire::envelope e) {
    std::lock_guard<std::mutex> g{mx};
    auto& to = std::holds_alternative<wire::ack>(e.payload) ? acked : acked_on_replies;
    for (auto id : wire::acknowledged_ids(e)) to.push_back(id);
  });
  auto acks_for = [&](std::uint64_t id) {
    std::lock_guard<std::mutex> g{mx};
    return std::count(acked.begin(), acked.end(), id) +
           std::count(acked_on_replies.begin(), acked_on_replies.end(), id);
  };
  auto ack_frames_for = [&](std::uint64_t id) {
    std::lock_guard<std::mutex> g{mx};
    return std::count(acked.begin(), acked.end(), id);
  };
  auto cfp = [](std::uint64_t id, timestamp_us ts) { return wire::encode(cfp_from_a(id, ts)); };
  const auto now = system_clock().now();
  fake->send("b", cfp(1, now - 10 * us_per_s));  // a replay from long ago
  ASSERT_TRUE(eventually([&] { return acks_for(1) == 1; }));
  EXPECT_EQ(b->stats().dropped_replayed, 1u);
  fake->send("b", cfp(2, now + 10 * us_per_s));  // a partner clock far ahead
  ASSERT_TRUE(eventually([&] { return b->stats().dropped_clock_skew == 1; }));
  EXPECT_EQ(acks_for(2), 0);

  auto fresh = cfp(3, system_clock().now());
  fake->send("b", fresh);
  ASSERT_TRUE(eventually([&] { return jb.size() == 1 && acks_for(3) >= 1; }));
  const auto ack_frames_before = ack_frames_for(3);
  // Forgotten after window + skew bound (0.5 s)...
  ASSERT_TRUE(eventually([&] { return b->stats().inbox_pruned >= 1; }));
  auto key = "a/" + store::key_u64(3);
  ASSERT_TRUE(eventually([&] {
    auto v = b->context().store().get("inbox", key);
    return v && !v->has_value();
  }));
  // ... and the same frame again is a stale replay: acked, no second effect.
  fake->send("b", fresh);
  ASSERT_TRUE(eventually([&] { return ack_frames_for(3) == ack_frames_before + 1; }));
  EXPECT_EQ(b->stats().dropped_replayed, 2u);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(jb.size(), 1u);
  fake->stop();
}

/// Records every message and never commits: what it receives stays in process.
caf::behavior sink(caf::event_based_actor*, journal* j) {
  return {[=](inbound_atom, const wire::envelope& e) { j->add(e); }};
}

message_type_set types(std::initializer_list<wire::message_type> ts) {
  message_type_set set = 0;
  for (auto t : ts) set |= message_type_set{1} << static_cast<unsigned>(t);
  return set;
}

// Sharing policy and authorization per partner, changed while running: a
// reply type the partner may not see is withheld (the step still commits);
// a message type the partner may not send has no effect and no ack.
TEST_F(node_host, partner_policy_withholds_and_refuses_message_types) {
  journal jb;
  auto cfg = config("b");
  cfg.peers[0].send = ~types({wire::message_type::refuse});
  auto b = start_b(jb, cfg);
  ASSERT_TRUE(b);
  std::mutex mx;
  std::vector<wire::envelope> got;
  auto fake = fake_a([&](wire::envelope e) {
    std::lock_guard<std::mutex> g{mx};
    got.push_back(std::move(e));
  });
  auto count = [&](wire::message_type t) {
    std::lock_guard<std::mutex> g{mx};
    return std::count_if(got.begin(), got.end(),
                         [&](const wire::envelope& e) { return wire::type_of(e.payload) == t; });
  };
  fake->send("b", wire::encode(cfp_from_a(1)));
  ASSERT_TRUE(eventually([&] { return count(wire::message_type::ack) == 1; }));
  EXPECT_EQ(jb.size(), 1u);
  EXPECT_EQ(b->stats().withheld_by_policy, 1u);
  EXPECT_EQ(b->stats().outbox_pending, 0u);  // nothing stored for a to see
  EXPECT_EQ(count(wire::message_type::refuse), 0);

  // The trust store now lets "a" send acks only.
  auto peers = cfg.peers;
  peers[0].receive = types({wire::message_type::ack});
  auto u = b->update_peers(peers);
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_EQ(u->policy_changed, std::vector<std::string>{"a"});
  EXPECT_TRUE(u->removed.empty());
  fake->send("b", wire::encode(cfp_from_a(2)));
  ASSERT_TRUE(eventually([&] { return b->stats().dropped_unauthorized == 1; }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(jb.size(), 1u);
  EXPECT_EQ(count(wire::message_type::ack), 1);  // not acknowledged: no effect
  fake->stop();
}

// A partner sending faster than its rate is shed (counted, unacknowledged),
// and one with peer_queue_max messages in process gets nothing more in.
TEST_F(node_host, per_peer_rate_and_queue_bounds_shed_overload) {
  journal jb;
  auto cfg = config("b");
  cfg.peer_messages_per_s = 1;
  cfg.peer_burst = 5;
  cfg.peer_queue_max = 3;
  auto b = start_b(cfg, [&jb](node& n) { return n.system().spawn(sink, &jb); });
  ASSERT_TRUE(b);
  auto fake = fake_a([](wire::envelope) {});
  for (std::uint64_t id = 1; id <= 40; ++id) fake->send("b", wire::encode(cfp_from_a(id)));
  ASSERT_TRUE(eventually([&] { return b->stats().frames_in == 40; }));
  ASSERT_TRUE(eventually([&] { return jb.size() == 3; }));
  auto s = b->stats();
  // A burst of 5 (plus at most a token or two refilled) passed the rate
  // limit; 3 of those fill the queue bound, because the sink never commits.
  EXPECT_GE(s.dropped_rate_limited, 33u);
  EXPECT_EQ(s.dropped_rate_limited + s.dropped_overload + 3, 40u);
  EXPECT_GE(s.dropped_overload, 2u);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(jb.size(), 3u);
  fake->stop();
}

// Revoking a partner while running: nothing it sends has an effect any more.
TEST_F(node_host, revoked_partner_has_no_effect) {
  journal jb;
  auto cfg = config("b");
  auto b = start_b(cfg, [&jb](node& n) { return n.system().spawn(recorder, &n.context(), &jb); });
  ASSERT_TRUE(b);
  auto fake = fake_a([](wire::envelope) {});
  fake->send("b", wire::encode(cfp_from_a(1)));
  ASSERT_TRUE(eventually([&] { return jb.size() == 1; }));
  auto u = b->update_peers({});
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_EQ(u->removed, std::vector<std::string>{"a"});
  for (std::uint64_t id = 2; id <= 5; ++id) fake->send("b", wire::encode(cfp_from_a(id)));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(jb.size(), 1u);
  // Bad updates change nothing.
  auto self = cfg.peers;
  self[0].id = "b";
  EXPECT_FALSE(b->update_peers(self));
  auto keyless = cfg.peers;
  keyless[0].public_key.clear();
  EXPECT_FALSE(b->update_peers(keyless));
  fake->stop();
}

// A step whose keys LMDB cannot hold (built from a partner's input, say an
// empty or 600-byte id) fails alone; the node keeps working (found by
// fuzz_dispatch: such a step used to stop the node like a full disk).
TEST_F(node_host, a_step_with_invalid_keys_fails_alone) {
  auto opened = node::open(config("b"));
  ASSERT_TRUE(opened) << opened.error().to_string();
  auto& n = **opened;
  auto commit = [&](std::string key) {
    std::promise<status> done;
    auto f = done.get_future();
    effects fx;
    fx.writes.put("t", key, "v");
    fx.on_durable = [&done](const status& st) { done.set_value(st); };
    n.context().commit(std::move(fx));
    return f.get();
  };
  EXPECT_EQ(commit("").code(), errc::invalid_argument);
  EXPECT_EQ(commit(std::string(600, 'k')).code(), errc::invalid_argument);
  EXPECT_TRUE(commit("fine"));
  EXPECT_TRUE(n.failure().is_ok());
  EXPECT_EQ(n.stats().commit_failures, 2u);
}

// A full disk stops the node (fail-stop): the commit that hit it and every
// later one fail, nothing partial is stored, the fatal handler runs once and
// the node reports the failure. Runs in a child process with a file size limit.
TEST_F(node_host, store_failure_stops_the_node_and_keeps_the_last_durable_state) {
  const std::string report = dir_ + "/report";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    auto cfg = config("b");
    cfg.store_sync = true;
    auto opened = node::open(cfg);
    if (!opened) ::_exit(10);
    auto& n = **opened;
    std::atomic<int> fatal_calls{0};
    n.on_fatal([&](const status&) { ++fatal_calls; });
    auto commit_one = [&](std::string key, std::size_t bytes) {
      std::promise<status> done;
      auto f = done.get_future();
      effects fx;
      fx.writes.put("t", key, std::string(bytes, 'v'));
      fx.on_durable = [&done](const status& st) { done.set_value(st); };
      n.context().commit(std::move(fx));
      return f.get();
    };
    if (!commit_one("first", 10)) ::_exit(11);
    auto size = std::filesystem::file_size(cfg.data_dir + "/data.mdb");
    rlimit rl{size + 64 * 1024, size + 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(12);
    int ok = 0;
    for (; ok < 1000; ++ok)
      if (!commit_one(store::key_u64(static_cast<std::uint64_t>(ok)), 16 * 1024)) break;
    if (ok == 1000) ::_exit(13);
    // Fail-stop: even a tiny commit fails now, and the node says why.
    if (commit_one("after", 1)) ::_exit(14);
    std::this_thread::sleep_for(50ms);
    if (fatal_calls != 1) ::_exit(15);
    if (n.failure().is_ok()) ::_exit(16);
    std::ofstream(report) << ok << "\n" << n.failure().message() << "\n";
    n.stop();
    ::_exit(0);
  }
  int wst = 0;
  ASSERT_EQ(::waitpid(pid, &wst, 0), pid);
  ASSERT_TRUE(WIFEXITED(wst));
  ASSERT_EQ(WEXITSTATUS(wst), 0);
  std::ifstream in(report);
  int ok = -1;
  std::string rest, message;
  in >> ok;
  std::getline(in, rest);
  std::getline(in, message);
  EXPECT_NE(message.find("disk holding the store is full"), std::string::npos) << message;
  store::options so;
  so.path = dir_ + "/b";
  auto env = store::environment::open(so);
  ASSERT_TRUE(env) << env.error().to_string();
  std::size_t entries = 0;
  ASSERT_TRUE((*env)->for_each("t", [&](std::string_view, std::string_view) {
    ++entries;
    return true;
  }));
  EXPECT_EQ(entries, static_cast<std::size_t>(ok) + 1);  // "first" + the ones that succeeded
  auto after = (*env)->get("t", "after");
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->has_value());
}

}  // namespace
}  // namespace gearmesh
