// libFuzzer target over a node's whole inbound path: frame -> wire::decode ->
// receiver and sender checks (node::impl::on_frame) -> the gateway actor (acks,
// dedup, clock skew, replay window) -> the role actors (factory and buyer) ->
// commits to LMDB -> the replies and acks the node sends.
//
// The node is real (node::open, actors::install_roles, node::serve) except
// for two seams: an in-memory transport replaces ZeroMQ, and a manual clock
// that never moves replaces the wall clock, so a run is deterministic and the
// seed corpus never ages. fuzz/dispatch_scenario.hpp describes the node, its
// peers, the state every session starts from and the input format (byte 0:
// connection identity; the rest: the frame).
//
// Sessions: one node serves `session_inputs` inputs (default 256; env
// GEARMESH_FUZZ_SESSION_INPUTS, 1 = a fresh node per input), then is stopped
// and replaced by a fresh one with an empty store. That bounds the state
// (inbox, outbox, LMDB map) and how many earlier inputs a crash can depend on.
//
// Backlog bound: every input is settled before the next one runs. The target
// predicts the node's verdict on the frame from its own decode and the inputs
// it already delivered (a model of node.cpp's on_frame and gateway), then
// waits (at most settle_timeout) until the node shows it: the drop counter
// for frames dropped on the transport thread, acks_in for an Ack,
// dropped_clock_skew, or -- for a duplicate, a replay or a newly processed
// message -- the Ack the node sends for it (sent only after the role actor's
// commit is durable). So at most one frame is ever in flight, memory stays
// bounded, and a crash is attributed to the input that caused it.
//
// Besides the sanitizers' findings, these are crashes (abort):
//   - the node fails (node::failure() not ok) or a commit fails;
//   - the node does not settle within settle_timeout;
//   - its counters differ from the model: frames_in, every drop counter,
//     acks_in, duplicates (every frame is counted exactly once, as predicted);
//     retransmits, inbox_pruned and dropped_unroutable stay 0 (the clock
//     stands still and both roles route every message type);
//   - a processed message is not acknowledged exactly once (by an Ack frame
//     or on a reply, Envelope.acks), a duplicate or replayed one not by
//     exactly one Ack frame, or anything else is acknowledged;
//   - the node sends a frame that a conforming partner could not decode (with
//     the default wire::limits), or one not from itself, or to a non-peer.
// A failed check prints the session's inputs (GEARMESH_FUZZ_SESSION_DIR: also
// writes them there as files 0000, 0001, ... to replay in order).
//
// Run it with fuzz/run.sh; docs/security.md explains the CI run and the long
// one. GEARMESH_FUZZ_VERBOSE=1 prints every input's verdict and the frames
// the node sent in reply.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "dispatch_scenario.hpp"
#include "gearmesh/actors/install.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/node/admin.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/node.hpp"
#include "gearmesh/transport/transport.hpp"
#include "gearmesh/wire/codec.hpp"

namespace {

using namespace gearmesh;
namespace fs = std::filesystem;

/// How long one frame may take to be settled before the node counts as stuck.
constexpr auto settle_timeout = std::chrono::seconds(3);
constexpr std::size_t session_inputs_default = 256;

/// The inputs of the current session, printed when a check fails.
std::vector<wire::bytes> session_log;

void dump_session() {
  std::fprintf(stderr, "fuzz_dispatch: the session's %zu inputs (the last one failed):\n",
               session_log.size());
  const char* dir = std::getenv("GEARMESH_FUZZ_SESSION_DIR");
  for (std::size_t i = 0; i < session_log.size(); ++i) {
    const auto& in = session_log[i];
    std::fprintf(stderr, "  %04zu: %zu bytes, identity %s\n", i, in.size(),
                 in.empty() ? "-" : fuzz::identities[in[0] % fuzz::identities.size()]);
    if (!dir) continue;
    std::error_code ec;
    fs::create_directories(dir, ec);
    char name[16];
    std::snprintf(name, sizeof name, "%04zu", i);
    std::ofstream f(fs::path(dir) / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(in.data()), static_cast<std::streamsize>(in.size()));
  }
  if (dir) std::fprintf(stderr, "  written to %s; replay: fuzz_dispatch %s/*\n", dir, dir);
}

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_dispatch: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  dump_session();
  std::abort();
}

#define FUZZ_CHECK(cond, ...)                                             \
  do {                                                                    \
    if (!(cond)) fail("check failed: " #cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (false)

bool verbose() {
  static const bool on = std::getenv("GEARMESH_FUZZ_VERBOSE") != nullptr;
  return on;
}

std::string describe(const wire::envelope& env) {
  const auto& h = env.header;
  return std::string(wire::to_string(wire::type_of(env.payload))) + " " + h.sender + " -> " +
         h.receiver + " #" + std::to_string(h.message_id);
}

/// Replaces ZeroMQ: hands the fuzz input to the node as the ZeroMQ transport
/// would (receive_fn on one thread, the harness's), and checks and discards
/// what the node sends. send() runs on CAF's threads; everything else on the
/// harness thread.
class memory_transport final : public transport::transport {
 public:
  explicit memory_transport(std::string node_id) : node_id_(std::move(node_id)) {}

  void on_receive(receive_fn fn) override { receive_ = std::move(fn); }
  status start() override {
    started_ = true;
    return status::ok();
  }
  void stop() override { started_ = false; }
  void add_peer(const gearmesh::transport::peer& p) override {
    std::lock_guard<std::mutex> guard{mx_};
    peers_.insert(p.id);
  }
  void remove_peer(const std::string& peer_id) override {
    std::lock_guard<std::mutex> guard{mx_};
    peers_.erase(peer_id);
  }
  void send(const std::string& peer_id, std::vector<std::uint8_t> frame) override;
  gearmesh::transport::transport_stats stats() const override {
    std::lock_guard<std::mutex> guard{mx_};
    return stats_;
  }
  std::string listen_endpoint() const override { return started_ ? "inproc://fuzz" : ""; }

  /// Delivers one inbound frame (harness thread).
  void deliver(const std::string& from, std::span<const std::uint8_t> frame) {
    FUZZ_CHECK(started_ && receive_, "the node did not start its transport");
    {
      std::lock_guard<std::mutex> guard{mx_};
      ++stats_.frames_received;
      stats_.bytes_received += frame.size();
    }
    receive_(from, frame);
  }

  /// Acknowledgements the node sent for (receiver, message id): in Ack
  /// frames and on replies (Envelope.acks) together, or in Ack frames only.
  std::uint64_t acks_for(const std::string& to, std::uint64_t id,
                         bool ack_frames_only = false) const {
    std::lock_guard<std::mutex> guard{mx_};
    const auto& m = ack_frames_only ? ack_frames_ : acks_;
    auto it = m.find({to, id});
    return it == m.end() ? 0 : it->second;
  }
  /// Acknowledged ids in all.
  std::uint64_t acks_sent() const {
    std::lock_guard<std::mutex> guard{mx_};
    return acks_sent_;
  }

  /// The first frame the node should not have sent, or empty.
  std::string violation() const {
    std::lock_guard<std::mutex> guard{mx_};
    return violation_;
  }

  /// Envelopes sent since the last call (kept while `record` is on).
  std::vector<wire::envelope> take_sent() {
    std::lock_guard<std::mutex> guard{mx_};
    return std::exchange(sent_, {});
  }
  void record(bool on) {
    std::lock_guard<std::mutex> guard{mx_};
    record_ = on;
  }

  /// Waits until `done()` or `deadline`; wakes on every send and polls
  /// otherwise (the gateway's counters change without a send).
  template <class Pred>
  bool wait_until(Pred done, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock{mx_};
    for (;;) {
      lock.unlock();
      if (done()) return true;
      lock.lock();
      if (std::chrono::steady_clock::now() >= deadline) return false;
      cv_.wait_for(lock, std::chrono::microseconds(100));
    }
  }

 private:
  const std::string node_id_;
  receive_fn receive_;
  std::atomic<bool> started_{false};
  mutable std::mutex mx_;
  std::condition_variable cv_;
  std::set<std::string> peers_;
  gearmesh::transport::transport_stats stats_;
  std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> acks_, ack_frames_;
  std::uint64_t acks_sent_ = 0;
  std::string violation_;
  bool record_ = false;
  std::vector<wire::envelope> sent_;
};

void memory_transport::send(const std::string& peer_id, std::vector<std::uint8_t> frame) {
  // What a conforming partner does with it first: decode with the defaults.
  auto env = wire::decode(frame, wire::limits{});
  std::lock_guard<std::mutex> guard{mx_};
  if (!peers_.contains(peer_id)) {
    ++stats_.dropped_unknown_peer;
    if (violation_.empty()) violation_ = "sent a frame to '" + peer_id + "', not a peer";
  }
  ++stats_.frames_sent;
  stats_.bytes_sent += frame.size();
  if (!env) {
    if (violation_.empty())
      violation_ = "sent a frame of " + std::to_string(frame.size()) + " bytes to '" + peer_id +
                   "' that its partner cannot decode: " + env.error().to_string();
  } else {
    const auto& h = env->header;
    if (violation_.empty() && (h.sender != node_id_ || h.receiver != peer_id))
      violation_ = "sent " + describe(*env) + " on the connection to '" + peer_id + "'";
    const bool ack_frame = std::holds_alternative<wire::ack>(env->payload);
    for (auto id : wire::acknowledged_ids(*env)) {
      ++acks_[{h.receiver, id}];
      if (ack_frame) ++ack_frames_[{h.receiver, id}];
      ++acks_sent_;
    }
    if (verbose())
      std::fprintf(stderr, "fuzz_dispatch:   node sent %s (%zu bytes)\n", describe(*env).c_str(),
                   frame.size());
    if (record_) sent_.push_back(std::move(*env));
  }
  cv_.notify_all();
}

/// The node's verdict on one inbound frame (node.cpp: on_frame, gateway).
enum class verdict {
  malformed,        // dropped_malformed
  wrong_receiver,   // dropped_wrong_receiver
  unknown_sender,   // dropped_unknown_sender
  sender_mismatch,  // dropped_sender_mismatch
  ack,              // acks_in
  duplicate,        // duplicates, re-acked
  clock_skew,       // dropped_clock_skew, not acked
  replayed,         // dropped_replayed, acked
  processed,        // routed to a role actor, acked once its commit is durable
};

const char* to_string(verdict v) {
  switch (v) {
    case verdict::malformed:
      return "malformed";
    case verdict::wrong_receiver:
      return "wrong_receiver";
    case verdict::unknown_sender:
      return "unknown_sender";
    case verdict::sender_mismatch:
      return "sender_mismatch";
    case verdict::ack:
      return "ack";
    case verdict::duplicate:
      return "duplicate";
    case verdict::clock_skew:
      return "clock_skew";
    case verdict::replayed:
      return "replayed";
    case verdict::processed:
      return "processed";
  }
  return "?";
}

/// The node's TOML; "@DATA_DIR@" becomes the session's (absolute) store
/// directory. The endpoints are never used (no ZeroMQ socket is opened), and
/// there is no admin port: the target calls the admin router directly.
constexpr std::string_view config_template = R"([node]
id = "framecraft"
enterprise = "framecraft"
listen = "inproc://fuzz"
data_dir = "@DATA_DIR@"
log_level = "error"

# No CURVE keys: the in-memory transport has nothing to secure.
[security]
insecure = true

[store]
sync = false   # nothing here has to survive a crash: no fsync per commit

# The clock stands still, so the rate limit's bucket never refills: make it
# larger than any session, so every frame reaches the checks behind it.
[transport]
peer_burst = 1000000000

[[peers]]
id = "velo"
endpoint = "inproc://velo"

[[peers]]
id = "tubeco"
endpoint = "inproc://tubeco"

[[peers]]
id = "alloyframe"
endpoint = "inproc://alloyframe"

[buyer]
currency = "EUR"

[[buyer.sources]]
item = "TUBE"
sellers = ["tubeco", "alloyframe"]

[factory]
hold_ttl_ms = 10000
bucket_minutes = 60
margin_pct = 10

[[factory.machines]]
id = "saw1"
capabilities = ["sawing"]
rate_cents_per_hour = 3600
capacity_per_bucket = 60

[[factory.machines]]
id = "weld1"
capabilities = ["welding"]
rate_cents_per_hour = 4800
capacity_per_bucket = 10

[[factory.machines]]
id = "weld2"
capabilities = ["welding"]
rate_cents_per_hour = 5000
capacity_per_bucket = 5

[[factory.machines]]
id = "paint1"
capabilities = ["coating"]
rate_cents_per_hour = 3600
capacity_per_bucket = 60

[[factory.items]]
id = "FRAME"

[[factory.items.operations]]
capability = "sawing"
minutes_per_unit = 6

[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 12
setup_minutes = 30

[[factory.items.operations]]
capability = "coating"
minutes_per_unit = 8
)";

std::string config_toml(const std::string& data_dir) {
  std::string toml(config_template);
  const std::string_view placeholder = "@DATA_DIR@";
  toml.replace(toml.find(placeholder), placeholder.size(), data_dir);
  return toml;
}

/// One node from an empty store to stop(): the unit of state between inputs.
class session {
 public:
  explicit session(fs::path dir) : dir_(std::move(dir)) {}
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() {
    if (node_) node_->stop();
    node_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Opens the node and drives it into the scenario's start state.
  void start();

  /// Delivers one frame on connection `from` and waits until the node settled it.
  void deliver(const std::string& from, std::span<const std::uint8_t> frame);

 private:
  verdict predict(const std::string& from, std::span<const std::uint8_t> frame,
                  std::pair<std::string, std::uint64_t>& key);
  void check_stats(const char* after);

  const fs::path dir_;
  manual_clock clock_{fuzz::t0_us};  // outlives node_
  memory_transport* net_ = nullptr;  // owned by node_
  std::unique_ptr<node> node_;
  wire::limits limits_;
  std::set<std::string> peers_;
  /// Messages the gateway has recorded as processed ("sender/id").
  std::set<std::string> known_;
  /// What node::stats() must show (the fields the model predicts).
  node_stats want_;
};

void session::start() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  FUZZ_CHECK(!ec, dir_.string() + ": " + ec.message());
  auto file = config_file::parse(config_toml(dir_.string()), "fuzz_dispatch.toml");
  FUZZ_CHECK(file.has_value(), file.error().to_string());
  auto cfg = parse_node_config(*file);
  FUZZ_CHECK(cfg.has_value(), cfg.error().to_string());
  limits_.frame_bytes_max = cfg->frame_bytes_max;
  for (const auto& p : cfg->peers) peers_.insert(p.id);
  auto net = std::make_unique<memory_transport>(cfg->node_id);
  net_ = net.get();
  auto n = node::open(std::move(*cfg), clock_, std::move(net));
  FUZZ_CHECK(n.has_value(), n.error().to_string());
  node_ = std::move(*n);
  auto st = actors::install_roles(*node_, *file);
  FUZZ_CHECK(st.is_ok(), st.to_string());
  st = node_->serve();
  FUZZ_CHECK(st.is_ok(), st.to_string());

  net_->record(true);
  for (const auto& body : fuzz::setup_orders()) {
    admin::request req;
    req.method = "POST";
    req.target = req.path = "/v1/orders";
    req.body = body;
    auto resp = node_->admin_routes().dispatch(req);
    FUZZ_CHECK(resp.status == 201,
               "POST /v1/orders " + body + ": " + std::to_string(resp.status) + " " + resp.body);
  }
  for (const auto& f : fuzz::setup_frames()) deliver(fuzz::identities[f.from], f.frame);
  // The seeds acknowledge these by id: a change here makes them miss.
  const auto sent = net_->take_sent();
  net_->record(false);
  const auto sent_one = [&](std::uint64_t id, const char* to, auto match) {
    return std::any_of(sent.begin(), sent.end(), [&](const wire::envelope& e) {
      return e.header.message_id == id && e.header.receiver == to && match(e.payload);
    });
  };
  FUZZ_CHECK(sent_one(fuzz::accept_to_tubeco_id, "tubeco",
                      [](const wire::payload& p) {
                        const auto* a = std::get_if<wire::accept>(&p);
                        return a && a->contract_id == "framecraft/order/2/c1";
                      }),
             "the scenario changed: no accept framecraft/order/2/c1 to tubeco with message id " +
                 std::to_string(fuzz::accept_to_tubeco_id));
  FUZZ_CHECK(sent_one(fuzz::propose_to_velo_id, "velo",
                      [](const wire::payload& p) {
                        const auto* a = std::get_if<wire::propose>(&p);
                        return a && a->proposal_id == "framecraft/proposal/1";
                      }),
             "the scenario changed: no propose framecraft/proposal/1 to velo with message id " +
                 std::to_string(fuzz::propose_to_velo_id));
  FUZZ_CHECK(std::any_of(sent.begin(), sent.end(),
                         [](const wire::envelope& e) {
                           const auto* c = std::get_if<wire::confirm>(&e.payload);
                           return c && c->contract_id == "velo/order/2/c1";
                         }),
             "the scenario changed: no confirm velo/order/2/c1 to velo");
}

verdict session::predict(const std::string& from, std::span<const std::uint8_t> frame,
                         std::pair<std::string, std::uint64_t>& key) {
  ++want_.frames_in;
  if (!peers_.contains(from)) {  // checked before decoding (node.cpp: on_frame)
    ++want_.dropped_unknown_sender;
    return verdict::unknown_sender;
  }
  auto env = wire::decode(frame, limits_);
  if (!env) {
    ++want_.dropped_malformed;
    return verdict::malformed;
  }
  const auto& h = env->header;
  if (h.receiver != fuzz::node_id) {
    ++want_.dropped_wrong_receiver;
    return verdict::wrong_receiver;
  }
  if (h.sender != from) {
    ++want_.dropped_sender_mismatch;
    return verdict::sender_mismatch;
  }
  // Acknowledgements on any frame that passed the checks above are taken.
  want_.acks_in += h.acks.size();
  if (std::holds_alternative<wire::ack>(env->payload)) {
    ++want_.acks_in;
    return verdict::ack;
  }
  key = {h.sender, h.message_id};
  const auto id = h.sender + "/" + std::to_string(h.message_id);
  if (known_.contains(id)) {
    ++want_.duplicates;
    return verdict::duplicate;
  }
  const auto now = clock_.now();
  const auto& cfg = node_->config();
  if (h.timestamp_us > now + cfg.clock_skew_max_us) {
    ++want_.dropped_clock_skew;
    return verdict::clock_skew;
  }
  if (h.timestamp_us < now - cfg.replay_window_us) {
    ++want_.dropped_replayed;
    return verdict::replayed;
  }
  known_.insert(id);
  return verdict::processed;
}

void session::deliver(const std::string& from, std::span<const std::uint8_t> frame) {
  const auto before = node_->stats();
  const auto acks_before = net_->acks_sent();
  std::pair<std::string, std::uint64_t> key;
  const verdict v = predict(from, frame, key);
  const bool acked = v == verdict::duplicate || v == verdict::replayed || v == verdict::processed;
  const auto key_acks_before = acked ? net_->acks_for(key.first, key.second) : 0;
  const auto key_ack_frames_before = acked ? net_->acks_for(key.first, key.second, true) : 0;
  if (verbose())
    std::fprintf(stderr, "fuzz_dispatch: %zu bytes from '%s': expect %s\n", frame.size(),
                 from.c_str(), to_string(v));

  net_->deliver(from, frame);

  // Frames dropped on the transport thread are counted before receive_fn
  // returns; the rest settle when the gateway shows its verdict.
  const bool settled = net_->wait_until(
      [&] {
        if (!node_->failure().is_ok()) return true;
        // Acks the frame carries are counted before its own Ack is sent. A
        // processed message is acknowledged on a reply or by an Ack frame; a
        // duplicate's re-sent replies may carry its acknowledgement before
        // its Ack frame leaves.
        if (v == verdict::processed) return net_->acks_for(key.first, key.second) > key_acks_before;
        if (acked) return net_->acks_for(key.first, key.second, true) > key_ack_frames_before;
        const auto s = node_->stats();
        return s.dropped_malformed + s.dropped_wrong_receiver + s.dropped_unknown_sender +
                   s.dropped_sender_mismatch + s.acks_in + s.dropped_clock_skew +
                   net_->acks_sent() >
               before.dropped_malformed + before.dropped_wrong_receiver +
                   before.dropped_unknown_sender + before.dropped_sender_mismatch + before.acks_in +
                   before.dropped_clock_skew + acks_before;
      },
      std::chrono::steady_clock::now() + settle_timeout);
  if (!settled) {
    const auto s = node_->stats();
    fail("the node did not settle the frame within 3 s",
         std::string("expected ") + to_string(v) + "; frames_in " + std::to_string(s.frames_in) +
             ", commits " + std::to_string(s.commits) + ", duplicates " +
             std::to_string(s.duplicates) + ", dropped_replayed " +
             std::to_string(s.dropped_replayed));
  }
  check_stats(to_string(v));
  // A processed message is acknowledged exactly once: by an Ack frame or on
  // a reply. A duplicate or a replay gets exactly one Ack frame; a duplicate's
  // stored replies, re-sent, may carry its acknowledgement again. Nothing
  // else is acknowledged.
  const auto acks = net_->acks_sent() - acks_before;
  const auto key_acks = acked ? net_->acks_for(key.first, key.second) - key_acks_before : 0;
  FUZZ_CHECK(acks == key_acks, std::string(to_string(v)) + ": " + std::to_string(acks) +
                                   " acks sent, " + std::to_string(key_acks) + " for " + key.first +
                                   " #" + std::to_string(key.second));
  if (v == verdict::processed)
    FUZZ_CHECK(key_acks == 1,
               std::string("processed: acknowledged ") + std::to_string(key_acks) + " times");
  if (v == verdict::duplicate || v == verdict::replayed)
    FUZZ_CHECK(net_->acks_for(key.first, key.second, true) == key_ack_frames_before + 1,
               std::string(to_string(v)) + ": not answered by exactly one Ack frame");
  if (!acked) FUZZ_CHECK(acks == 0, std::string(to_string(v)) + ": acknowledged something");
}

void session::check_stats(const char* after) {
  const auto st = node_->failure();
  FUZZ_CHECK(st.is_ok(), std::string(after) + ": " + st.to_string());
  const auto violation = net_->violation();
  FUZZ_CHECK(violation.empty(), std::string(after) + ": " + violation);
  const auto s = node_->stats();
  const auto same = [&](const char* name, std::uint64_t got, std::uint64_t want) {
    if (got != want)
      fail("node_stats differ from the model", std::string("after a frame judged ") + after + ": " +
                                                   name + " is " + std::to_string(got) +
                                                   ", expected " + std::to_string(want));
  };
  same("frames_in", s.frames_in, want_.frames_in);
  same("dropped_malformed", s.dropped_malformed, want_.dropped_malformed);
  same("dropped_wrong_receiver", s.dropped_wrong_receiver, want_.dropped_wrong_receiver);
  same("dropped_unknown_sender", s.dropped_unknown_sender, want_.dropped_unknown_sender);
  same("dropped_sender_mismatch", s.dropped_sender_mismatch, want_.dropped_sender_mismatch);
  // Policy and limits are wide open in this config: none of these may trigger.
  same("dropped_unauthorized", s.dropped_unauthorized, 0);
  same("dropped_rate_limited", s.dropped_rate_limited, 0);
  same("dropped_overload", s.dropped_overload, 0);
  same("withheld_by_policy", s.withheld_by_policy, 0);
  same("acks_in", s.acks_in, want_.acks_in);
  same("duplicates", s.duplicates, want_.duplicates);
  same("dropped_clock_skew", s.dropped_clock_skew, want_.dropped_clock_skew);
  same("dropped_replayed", s.dropped_replayed, want_.dropped_replayed);
  same("dropped_unroutable", s.dropped_unroutable, 0);
  same("retransmits", s.retransmits, 0);
  same("inbox_pruned", s.inbox_pruned, 0);
  same("commit_failures", s.commit_failures, 0);
}

void cleanup_at_exit();

/// The process's state between inputs.
struct harness {
  fs::path base;  // temp dir holding the sessions' stores
  std::size_t session_inputs = session_inputs_default;
  std::size_t inputs = 0;  // in the current session
  std::uint64_t sessions = 0;
  std::unique_ptr<session> current;

  void next_session() {
    current.reset();  // stop the old node before the new one opens
    session_log.clear();
    inputs = 0;
    current = std::make_unique<session>(base / ("s" + std::to_string(sessions++)));
    current->start();
  }
};

harness* the_harness = nullptr;

void cleanup_at_exit() {
  if (!the_harness) return;
  // Not on this thread: exit() destroyed its thread_local objects already,
  // CAF's among them, which ~actor_system touches.
  std::thread([] { the_harness->current.reset(); }).join();
  std::error_code ec;
  fs::remove_all(the_harness->base, ec);
}

harness& get_harness() {
  if (the_harness) return *the_harness;
  spdlog::set_level(spdlog::level::err);
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/gearmesh-fuzz-dispatch-XXXXXX";
  FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, pattern);
  static harness h;
  h.base = pattern;
  if (const char* n = std::getenv("GEARMESH_FUZZ_SESSION_INPUTS")) {
    h.session_inputs = std::max<std::size_t>(1, std::strtoull(n, nullptr, 10));
  }
  the_harness = &h;
  h.next_session();
  // After the first node opened, so that it runs before the destructors of
  // the statics the node uses (spdlog's, CAF's).
  std::atexit(cleanup_at_exit);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  get_harness();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  harness& h = get_harness();
  if (h.inputs == h.session_inputs) h.next_session();
  ++h.inputs;
  session_log.emplace_back(data, data + size);
  const std::string from = fuzz::identities[data[0] % fuzz::identities.size()];
  h.current->deliver(from, std::span(data + 1, size - 1));
  return 0;
}
