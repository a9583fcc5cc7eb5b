// The node host: wires store, transport, clock and the CAF actor system, and
// runs the gateway actor that sits between the transport and the role actors.
//
// Reliability lives here, above the transport:
//   outbound  node_context::commit() assigns message ids, encodes the frames,
//             and writes them to the outbox in the same batch as the state
//             change. Only when that batch is durable does the gateway send
//             them; it re-sends each one with exponential backoff until the
//             receiver's Ack arrives, then erases it from the outbox.
//   inbound   frames are verified (wire::decode) on the transport thread; the
//             gateway drops frames for other receivers or from unknown
//             senders, drops duplicates by (sender, message_id), routes the
//             rest to the role actor for that message type, and sends the Ack
//             once the actor's commit naming the message is durable.
//   duplicates a message already processed is answered with its stored reply:
//             the Ack again, and at once every message its step sent that
//             the partner has not acknowledged yet (the inbox entry lists
//             their ids). One still being committed is dropped: its Ack and
//             replies follow when the commit is durable.
//   failure   a commit that fails (disk full, I/O error) stops the node from
//             committing, sending and acknowledging anything more (fail-stop);
//             see node::on_fatal. Partners keep retrying; nothing is lost.
#include "gearmesh/node/node.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <nlohmann/json.hpp>

#include "gearmesh/fault.hpp"
#include "gearmesh/keys/keys.hpp"
#include "gearmesh/node/caf_types.hpp"
#include "gearmesh/store/store.hpp"
#include "gearmesh/string_hash.hpp"
#include "gearmesh/transport/zmq_transport.hpp"
#include "gearmesh/wire/codec.hpp"

namespace gearmesh {
namespace {

/// A frame committed to the outbox, ready to leave.
struct committed_frame {
  std::uint64_t message_id = 0;
  std::string receiver;
  wire::bytes frame;
};

/// What a durable commit asks the gateway to do.
struct commit_done {
  bool ok = false;
  std::optional<inbound_ref> cause;
  timestamp_us at = 0;  // commit time, for the inbox entry of `cause`
  std::string replies;  // ids of `frames`, ','-separated (see inbox_value)
  std::vector<committed_frame> frames;
  /// One of `frames` goes to the cause's sender and carries the cause's Ack
  /// (Envelope.acks): no Ack frame of its own is needed.
  bool cause_acked_by_reply = false;
};

/// What the node knows of one partner at run time. Entries are created from
/// the trust store and never destroyed while the node runs (a revoked
/// partner's entry is marked untrusted), so pointers to them stay valid.
struct peer_state {
  std::atomic<bool> trusted{true};
  std::atomic<message_type_set> receive{all_message_types};
  std::atomic<message_type_set> send{all_message_types};
  /// Messages from this peer accepted and not yet finished (peer_queue_max).
  std::atomic<std::int64_t> queued{0};
  // Token bucket of the inbound rate limit; only the receiving thread.
  double tokens = 0;
  timestamp_us refilled_us = 0;
};

/// Inbound message that passed verification, for the gateway.
struct verified_frame {
  peer_state* peer = nullptr;  // counted in peer->queued until the gateway is done
  wire::envelope env;
};

/// Work handed to the gateway from another thread (the transport's, the
/// writer's), taken in batches: whoever adds to an empty queue rings the
/// gateway with one CAF message, and the gateway takes everything queued by
/// then. Under load one message carries many frames or commits. Thread-safe.
template <class T>
class doorbell_queue {
 public:
  /// Adds `x`; true if the queue was empty (the caller rings).
  bool push(T x) {
    std::lock_guard<std::mutex> guard{mx_};
    items_.push_back(std::move(x));
    return items_.size() == 1;
  }
  /// Everything queued, oldest first, into `out` (emptied first); the
  /// queue keeps `out`'s buffer, so taking over and over does not allocate.
  void take(std::vector<T>& out) {
    out.clear();
    std::lock_guard<std::mutex> guard{mx_};
    out.swap(items_);
  }

 private:
  std::mutex mx_;
  std::vector<T> items_;
};

bool allows(message_type_set set, wire::message_type t) {
  return (set >> static_cast<unsigned>(t) & 1U) != 0;
}

using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using committed_atom = caf::atom_constant<caf::atom("committed")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using flush_acks_atom = caf::atom_constant<caf::atom("flushacks")>;

/// Shortest gap between two gateway ticks (re-sends and inbox pruning run on
/// ticks). Ticks are scheduled only for when there is work -- the earliest
/// re-send or prune due -- so an idle node does not wake up.
constexpr timestamp_us tick_interval_min_us = 25 * us_per_ms;

std::string inbox_key(const std::string& sender, std::uint64_t id) {
  return sender + "/" + store::key_u64(id);
}

/// The ids of the messages a step sent, as decimal numbers separated by ','
/// (empty when it sent nothing).
std::string reply_ids(const std::vector<committed_frame>& frames) {
  std::string out;
  for (const auto& f : frames) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(f.message_id);
  }
  return out;
}

/// Inbox value: "<commit time, µs>|<reply ids>".
std::string inbox_value(timestamp_us at, std::string_view replies) {
  return fmt::format("{}|{}", at, replies);
}

/// What the gateway remembers of a processed message.
struct inbox_entry {
  timestamp_us at = 0;  // when it was committed (this node's clock)
  std::string replies;  // reply ids, ','-separated
};

inbox_entry parse_inbox_value(std::string_view v, timestamp_us fallback) {
  inbox_entry e{fallback, {}};
  auto bar = v.find('|');
  if (bar == std::string_view::npos) {
    e.replies = std::string(v);  // written before commit times were recorded
    return e;
  }
  std::int64_t at = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + bar, at);
  if (ec == std::errc{} && p == v.data() + bar) e.at = at;
  e.replies = std::string(v.substr(bar + 1));
  return e;
}

template <class F>
void for_each_reply_id(std::string_view ids, F&& f) {
  while (!ids.empty()) {
    auto comma = ids.find(',');
    auto one = ids.substr(0, comma);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(one.data(), one.data() + one.size(), v);
    if (ec == std::errc{} && p == one.data() + one.size()) f(v);
    ids = comma == std::string_view::npos ? std::string_view{} : ids.substr(comma + 1);
  }
}

/// Bad input is counted always but logged at most once per second, so a
/// hostile or broken peer cannot flood the log; the line says how many
/// similar events were not logged. Thread-safe.
class throttled_warning {
 public:
  template <class... Ts>
  void operator()(fmt::format_string<Ts...> f, Ts&&... xs) {
    auto now = std::chrono::steady_clock::now();
    std::uint64_t suppressed = 0;
    {
      std::lock_guard<std::mutex> guard{mx_};
      if (now < next_) {
        ++suppressed_;
        return;
      }
      next_ = now + std::chrono::seconds(1);
      suppressed = std::exchange(suppressed_, 0);
    }
    auto msg = fmt::format(f, std::forward<Ts>(xs)...);
    if (suppressed > 0)
      spdlog::warn("{} ({} similar not logged in the last second)", msg, suppressed);
    else
      spdlog::warn("{}", msg);
  }

 private:
  std::mutex mx_;
  std::chrono::steady_clock::time_point next_{};
  std::uint64_t suppressed_ = 0;
};

constexpr std::string_view inbox_table = "inbox";
constexpr std::string_view outbox_table = "outbox";
constexpr std::string_view meta_table = "meta";
constexpr std::uint64_t msg_id_block = std::uint64_t{1} << 20;

}  // namespace

struct node::impl final : node_context {
  node_config cfg;
  const gearmesh::clock& clk;
  std::unique_ptr<store::environment> env;
  /// group_commit_writer (threaded) or inline_writer (deterministic).
  std::unique_ptr<store::commit_queue> writer;
  /// `writer` when it is an inline_writer (deterministic), else null; reset with it.
  store::inline_writer* inline_w = nullptr;
  execution mode = execution::threaded;
  /// The deterministic scheduler; null when threaded.
  caf::scheduler::test_coordinator* sched = nullptr;
  /// Deterministic: the keys the inline writer recorded, kept by stop()
  /// for take_written_keys().
  store::key_log keys_at_stop;
  std::unique_ptr<transport::transport> net;
  std::unique_ptr<caf::actor_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor gateway;
  /// Verified inbound frames (transport thread) and finished commits
  /// (writer thread) for the gateway (deliver_atom, committed_atom).
  doorbell_queue<verified_frame> inbound;
  doorbell_queue<commit_done> durable;
  std::array<caf::actor, wire::message_type_count> routes;
  std::shared_ptr<admin::router> router = std::make_shared<admin::router>();
  std::unique_ptr<admin::server> admin;
  /// The trust store at run time: guarded by peers_mutex (shared for
  /// lookups on the receive and commit paths, exclusive for update_peers).
  mutable std::shared_mutex peers_mutex;
  std::unordered_map<std::string, std::unique_ptr<peer_state>> peers;
  wire::limits limits;
  std::atomic<bool> serving{false};
  bool stopped = false;
  std::mutex update_mutex;  // serialises update_peers

  // Message ids: allocated under commit_mutex so that the high-water mark
  // that makes them unique across restarts is durable before any id above
  // the previous mark can be (batches are durable in submission order).
  std::mutex commit_mutex;
  std::uint64_t next_msg_id = 1;
  std::uint64_t msg_id_hw = 0;

  // Counters (node_stats).
  throttled_warning warn_malformed, warn_wrong_receiver, warn_unknown_sender, warn_unroutable;

  std::atomic<std::uint64_t> frames_in{0}, frames_out{0}, dropped_malformed{0},
      dropped_unknown_sender{0}, dropped_sender_mismatch{0}, dropped_unauthorized{0},
      dropped_rate_limited{0}, dropped_overload{0}, withheld_by_policy{0},
      dropped_wrong_receiver{0}, dropped_unroutable{0}, duplicates{0}, duplicate_replies{0},
      dropped_replayed{0}, dropped_clock_skew{0}, inbox_pruned{0}, retransmits{0},
      retransmits_parked{0}, acks_in{0}, outbox_pending{0}, commits{0}, commit_failures{0};
  throttled_warning warn_clock_skew, warn_sender_mismatch, warn_unauthorized, warn_rate_limited,
      warn_overload, warn_withheld, warn_bad_effect;

  // Fail-stop (node::on_fatal): set once by the first failed commit.
  std::atomic<bool> failed{false};
  mutable std::mutex failure_mutex;
  status failure_status;
  std::function<void(const status&)> fatal_handler;

  impl(node_config c, const gearmesh::clock& k) : cfg(std::move(c)), clk(k) {
    limits.frame_bytes_max = cfg.frame_bytes_max;
  }

  // node_context
  const std::string& node_id() const override { return cfg.node_id; }
  const gearmesh::clock& clock() const override { return clk; }
  const store::environment& store() const override { return *env; }
  void commit(effects fx) override;
  bool commits_inline() const override { return inline_w != nullptr; }

  /// `decoded`: what wire::decode(frame, limits) gave, if the caller
  /// decoded it already (node::receive_decoded); null: decoded here.
  void on_frame(const std::string& from, std::span<const std::uint8_t> frame,
                result<wire::envelope>* decoded = nullptr);
  bool take_token(peer_state& p);
  /// The partner's run-time state, or null if it is not in the trust store.
  peer_state* find_peer(const std::string& id) const {
    std::shared_lock guard{peers_mutex};
    auto it = peers.find(id);
    return it == peers.end() ? nullptr : it->second.get();
  }
  /// Adds or updates the run-time state of the trust store's partners and
  /// marks the others untrusted. Returns the ids no longer trusted.
  std::vector<std::string> apply_peers(const std::vector<peer_config>& list);
  /// Sends Ack frames acknowledging `ids` to `to`: the first id in the Ack
  /// payload, up to limits.acks_max more in Envelope.acks, per frame.
  void send_acks(const std::string& to, std::span<const std::uint64_t> ids);
  void fail(const status& st);

  /// Sends an outbox frame. Fault points net.drop / net.duplicate lose or
  /// double it (tests only): the outbox retry and the receiver's dedup must
  /// make either invisible.
  void transmit(const std::string& to, const wire::bytes& frame) {
    if (fault::fires("net.drop")) return;
    net->send(to, frame);
    if (fault::fires("net.duplicate")) net->send(to, frame);
  }
};

void node::impl::fail(const status& st) {
  if (failed.exchange(true)) return;
  {
    std::lock_guard<std::mutex> guard{failure_mutex};
    failure_status = st;
  }
  spdlog::critical(
      "{}: the store in {} failed to commit: {}. The node stops: it commits, sends and "
      "acknowledges nothing more, so partners keep their unacknowledged messages and resend "
      "them. Fix the cause (free disk space, check the device) and restart; the node resumes "
      "from its last durable state.",
      cfg.node_id, cfg.data_dir, st.to_string());
  if (fatal_handler) fatal_handler(st);
}

void node::impl::commit(effects fx) {
  commit_done done;
  done.cause = fx.cause;
  store::write_batch batch = std::move(fx.writes);
  if (auto st = env->check(batch); !st) {
    // A step built keys LMDB cannot hold, from a partner's input (an empty or
    // 600-byte id, say): that step has no effect and its message is not
    // acknowledged, but the node keeps working -- this is not a store failure.
    commit_failures.fetch_add(1, std::memory_order_relaxed);
    warn_bad_effect("{}: a step caused by {} was not committed: {}", cfg.node_id,
                    fx.cause ? fx.cause->sender + "/" + std::to_string(fx.cause->message_id)
                             : std::string("this node"),
                    st.message());
    if (fx.on_durable) fx.on_durable(st);
    if (durable.push(std::move(done))) caf::anon_send(gateway, committed_atom::value);
    return;
  }
  std::lock_guard<std::mutex> guard{commit_mutex};
  for (auto& out : fx.messages) {
    const auto type = wire::type_of(out.payload);
    if (const peer_state* peer = find_peer(out.receiver);
        peer && !allows(peer->send.load(std::memory_order_relaxed), type)) {
      // The sharing policy keeps this from that partner; the step's other
      // effects stand (the partner simply never takes part).
      withheld_by_policy.fetch_add(1, std::memory_order_relaxed);
      warn_withheld("{}: withheld {} for '{}': its [[peers]] send list does not allow it",
                    cfg.node_id, wire::to_string(type), out.receiver);
      continue;
    }
    wire::envelope env;
    env.header.message_id = next_msg_id++;
    env.header.sender = cfg.node_id;
    env.header.receiver = out.receiver;
    env.header.conversation_id = std::move(out.conversation_id);
    env.header.causation_id = out.causation_id;
    env.header.timestamp_us = clk.now();
    if (fx.cause && !done.cause_acked_by_reply && out.receiver == fx.cause->sender) {
      // The reply carries the Ack of the message it answers: it leaves only
      // once this commit, which records that message in the inbox, is durable.
      env.header.acks.push_back(fx.cause->message_id);
      done.cause_acked_by_reply = true;
    }
    env.payload = std::move(out.payload);
    committed_frame cf{env.header.message_id, out.receiver, wire::encode(env)};
    std::string value = out.receiver;
    value.push_back('\0');
    value.append(cf.frame.begin(), cf.frame.end());
    batch.put_owned(outbox_table, store::key_u64(cf.message_id), std::move(value));
    done.frames.push_back(std::move(cf));
  }
  if (fx.cause) {
    done.at = clk.now();
    done.replies = reply_ids(done.frames);
    batch.put_owned(inbox_table, inbox_key(fx.cause->sender, fx.cause->message_id),
                    inbox_value(done.at, done.replies));
  }
  if (next_msg_id > msg_id_hw) {
    msg_id_hw += msg_id_block;
    batch.put(meta_table, store::meta_message_id_high_water, store::key_u64(msg_id_hw));
  }
  commits.fetch_add(1, std::memory_order_relaxed);
  fault::crash_point("commit.before_submit");
  writer->submit(std::move(batch), [this, done = std::move(done), gw = gateway,
                                    cb = std::move(fx.on_durable)](const status& st) mutable {
    if (!st) {
      commit_failures.fetch_add(1, std::memory_order_relaxed);
      if (st.code() != errc::shutting_down) fail(st);
    }
    done.ok = st.is_ok();
    if (cb) cb(st);
    if (durable.push(std::move(done))) caf::anon_send(gw, committed_atom::value);
  });
}

/// Inbound checks, cheapest first, on the transport's thread. Everything
/// dropped here is counted and has no effect; only the malformed, wrong-
/// receiver and unknown-sender cases can never become valid, the others (rate,
/// overload, policy) are simply not acknowledged, so a partner resends them.
void node::impl::on_frame(const std::string& from, std::span<const std::uint8_t> frame,
                          result<wire::envelope>* decoded) {
  frames_in.fetch_add(1, std::memory_order_relaxed);
  peer_state* peer = find_peer(from);
  if (!peer || !peer->trusted.load(std::memory_order_relaxed)) {
    // Plain links only: with CURVE, ZAP admits the trust store's keys alone.
    dropped_unknown_sender.fetch_add(1, std::memory_order_relaxed);
    warn_unknown_sender("{}: dropped a frame of {} bytes on connection '{}': not a trusted peer",
                        cfg.node_id, frame.size(), from);
    return;
  }
  if (!take_token(*peer)) {
    dropped_rate_limited.fetch_add(1, std::memory_order_relaxed);
    warn_rate_limited("{}: '{}' sends faster than peer_messages_per_s {} (burst {}): dropped",
                      cfg.node_id, from, cfg.peer_messages_per_s, cfg.peer_burst);
    return;
  }
  auto env = decoded ? std::move(*decoded) : wire::decode(frame, limits);
  if (!env) {
    dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    warn_malformed("{}: dropped frame of {} bytes from '{}': {}", cfg.node_id, frame.size(), from,
                   env.error().to_string());
    return;
  }
  const auto& h = env->header;
  const auto type = wire::type_of(env->payload);
  if (h.receiver != cfg.node_id) {
    dropped_wrong_receiver.fetch_add(1, std::memory_order_relaxed);
    warn_wrong_receiver("{}: dropped {} addressed to '{}' from '{}'", cfg.node_id,
                        wire::to_string(type), h.receiver, from);
    return;
  }
  if (h.sender != from) {
    dropped_sender_mismatch.fetch_add(1, std::memory_order_relaxed);
    warn_sender_mismatch(
        "{}: dropped {} claiming sender '{}' on a connection authenticated as '{}' (forged "
        "sender)",
        cfg.node_id, wire::to_string(type), h.sender, from);
    return;
  }
  if (!allows(peer->receive.load(std::memory_order_relaxed), type)) {
    dropped_unauthorized.fetch_add(1, std::memory_order_relaxed);
    warn_unauthorized("{}: dropped {} from '{}': its [[peers]] receive list does not allow it",
                      cfg.node_id, wire::to_string(type), from);
    return;
  }
  if (peer->queued.fetch_add(1, std::memory_order_relaxed) >= cfg.peer_queue_max) {
    peer->queued.fetch_sub(1, std::memory_order_relaxed);
    dropped_overload.fetch_add(1, std::memory_order_relaxed);
    warn_overload("{}: '{}' has {} messages in process (peer_queue_max): dropped {}", cfg.node_id,
                  from, cfg.peer_queue_max, wire::to_string(type));
    return;
  }
  if (inbound.push(verified_frame{peer, std::move(*env)}))
    caf::anon_send(gateway, deliver_atom::value);
}

bool node::impl::take_token(peer_state& p) {
  const auto now = clk.now();
  const auto burst = static_cast<double>(cfg.peer_burst);
  if (p.refilled_us == 0) {
    p.tokens = burst;
  } else if (now > p.refilled_us) {
    p.tokens = std::min(burst, p.tokens + static_cast<double>(now - p.refilled_us) *
                                              static_cast<double>(cfg.peer_messages_per_s) /
                                              static_cast<double>(us_per_s));
  }
  p.refilled_us = now;
  if (p.tokens < 1) return false;
  p.tokens -= 1;
  return true;
}

std::vector<std::string> node::impl::apply_peers(const std::vector<peer_config>& list) {
  std::unique_lock guard{peers_mutex};
  std::set<std::string> listed;
  for (const auto& pc : list) {
    listed.insert(pc.id);
    auto& entry = peers[pc.id];
    if (!entry) entry = std::make_unique<peer_state>();
    entry->receive = pc.receive;
    entry->send = pc.send;
    entry->trusted = true;
  }
  std::vector<std::string> revoked;
  for (auto& [id, entry] : peers) {
    if (!listed.contains(id) && entry->trusted.exchange(false)) revoked.push_back(id);
  }
  return revoked;
}

void node::impl::send_acks(const std::string& to, std::span<const std::uint64_t> ids) {
  while (!ids.empty()) {
    const auto n = std::min(ids.size(), limits.acks_max + 1);
    wire::envelope ack;
    ack.header.sender = cfg.node_id;
    ack.header.receiver = to;
    ack.header.causation_id = ids.front();
    ack.header.timestamp_us = clk.now();
    ack.header.acks.assign(ids.begin() + 1, ids.begin() + static_cast<std::ptrdiff_t>(n));
    ack.payload = wire::ack{ids.front()};
    ids = ids.subspan(n);
    frames_out.fetch_add(1, std::memory_order_relaxed);
    if (fault::fires("net.drop_ack")) continue;
    net->send(to, wire::encode(ack));
  }
}

namespace {

/// An unacknowledged outbox message.
struct pending_frame {
  std::string receiver;
  wire::bytes frame;
  timestamp_us next_send_us = 0;
  timestamp_us backoff_us = 0;
  timestamp_us sent_us = 0;  // last transmission (0: not since this start)
};

/// What the gateway knows of one partner it sends to. A partner is silent
/// for a message if no frame of its has been handled since that message was
/// last sent: it may be down or cut off. Then only one of the messages due
/// to it is re-sent (the probe, on its own backoff); the others are parked
/// and go out at once when the partner is heard again. So a partner that is
/// down for hours gets one frame per retry_max_ms, not one per message.
struct peer_link {
  timestamp_us heard_us = 0;
  std::uint64_t probe_id = 0;
  std::deque<std::uint64_t> parked;  // oldest first
};

/// What the gateway knows of the messages from one sender, by message id
/// (integer keys: every inbound message is looked up here).
struct sender_inbox {
  /// Processed and durable, with the ids of the replies sent (inbox value):
  /// a duplicate is answered with the Ack and its unacknowledged replies.
  /// Entries older than the replay window plus the clock skew bound are
  /// pruned: their duplicates are stale by then and get no effect anyway.
  std::unordered_map<std::uint64_t, inbox_entry> committed;
  /// Delivered to an actor, commit not yet durable: drop duplicates (the ack
  /// follows). The sender's queued count is released when the commit is done.
  std::unordered_map<std::uint64_t, peer_state*> in_flight;
};

/// An entry of some sender_inbox::committed, for pruning by age.
struct committed_ref {
  timestamp_us at = 0;
  const std::string* sender = nullptr;  // the key of gateway_state::inboxes
  sender_inbox* inbox = nullptr;
  std::uint64_t message_id = 0;
  bool operator<(const committed_ref& o) const { return at < o.at; }
};

struct gateway_state {
  node::impl* host = nullptr;
  /// By sender. Entries are never erased while the node runs, so pointers
  /// to them and to their keys stay valid.
  std::unordered_map<std::string, sender_inbox, string_hash, std::equal_to<>> inboxes;
  /// Every committed entry by commit time, oldest first: a prune pops what
  /// aged out instead of scanning every entry of the window.
  std::deque<committed_ref> committed_by_time;
  timestamp_us next_prune_us = 0;
  /// Outbox messages waiting for their Ack, by message id.
  std::map<std::uint64_t, pending_frame> pending;
  /// By partner (see peer_link).
  std::unordered_map<std::string, peer_link, string_hash, std::equal_to<>> links;
  /// (next_send_us, message id) of every pending message: a tick touches
  /// only what is due. Entries of acknowledged messages are dropped lazily.
  std::set<std::pair<timestamp_us, std::uint64_t>> due;
  /// When the ticks scheduled will run (each tick message carries its
  /// time). A tick is scheduled only if none runs by the time it is wanted:
  /// every tick schedules the next one needed (schedule_next_tick), so an
  /// earlier tick covers what a later one was wanted for.
  std::multiset<timestamp_us> ticks;
  /// Acks to send, by partner: gathered while the gateway handles a message
  /// and sent when it is done, or, if more messages wait, by one flush_acks
  /// message queued behind them (flush_acks_soon), so the Acks of one group
  /// commit leave as one frame per partner.
  std::map<std::string, std::vector<std::uint64_t>, std::less<>> acks_due;
  bool acks_flush_queued = false;
  /// What the last deliver / committed message took from its queue (kept
  /// for their buffers: see doorbell_queue::take).
  std::vector<verified_frame> inbound_taken;
  std::vector<commit_done> durable_taken;
  static inline const char* name = "gearmesh.gateway";
};

/// A sender's inbox with its name (the key of gateway_state::inboxes).
struct sender_ref {
  const std::string* name = nullptr;
  sender_inbox* inbox = nullptr;
};

/// The inbox of `sender`, created on first use.
sender_ref inbox_of(gateway_state& st, std::string_view sender) {
  auto it = st.inboxes.find(sender);
  if (it == st.inboxes.end()) it = st.inboxes.emplace(std::string(sender), sender_inbox{}).first;
  return {&it->first, &it->second};
}

/// Records message `id` of `from` as committed (unless it is already).
void remember_committed(gateway_state& st, sender_ref from, std::uint64_t id, inbox_entry e) {
  const auto at = e.at;
  if (from.inbox->committed.emplace(id, std::move(e)).second)
    st.committed_by_time.push_back(committed_ref{at, from.name, from.inbox, id});
}

/// Forgets inbox entries older than the replay window plus the skew bound.
void prune_inbox(gateway_state& st, timestamp_us now) {
  auto* host = st.host;
  const auto window = host->cfg.replay_window_us + host->cfg.clock_skew_max_us;
  st.next_prune_us = now + std::clamp<timestamp_us>(window / 4, us_per_ms, 10 * us_per_min);
  const auto cutoff = now - window;
  store::write_batch b;
  while (!st.committed_by_time.empty() && st.committed_by_time.front().at < cutoff) {
    const auto r = st.committed_by_time.front();
    st.committed_by_time.pop_front();
    b.erase(inbox_table, inbox_key(*r.sender, r.message_id));
    r.inbox->committed.erase(r.message_id);
  }
  if (b.empty()) return;
  host->inbox_pruned.fetch_add(b.size(), std::memory_order_relaxed);
  // Deferred: a prune lost in a crash is redone by the next one.
  host->writer->submit_deferred(std::move(b), nullptr);
}

using gateway_actor_type = caf::stateful_actor<gateway_state>;

/// Queues the Ack of message `id` from `to` (see gateway_state::acks_due);
/// flush_acks_soon sends it.
void queue_ack(gateway_actor_type* self, const std::string& to, std::uint64_t id) {
  self->state.acks_due[to].push_back(id);
}

/// Sends the Acks queued, one frame per partner (up to limits.acks_max ids).
void flush_acks(gateway_actor_type* self) {
  auto& st = self->state;
  st.acks_flush_queued = false;
  auto due = std::exchange(st.acks_due, {});
  // A failed node acknowledges nothing more (node::on_fatal).
  if (st.host->failed.load(std::memory_order_relaxed)) return;
  for (const auto& [to, ids] : due) st.host->send_acks(to, ids);
}

/// At the end of a message that may have queued Acks: sends them now if no
/// message waits in the gateway's mailbox, else queues one flush_acks
/// message behind those that wait, so their Acks leave with these.
void flush_acks_soon(gateway_actor_type* self) {
  auto& st = self->state;
  if (st.acks_due.empty() || st.acks_flush_queued) return;
  if (self->mailbox().empty()) {
    flush_acks(self);
    return;
  }
  st.acks_flush_queued = true;
  self->send(self, flush_acks_atom::value);
}

/// Acknowledgements from `from` (an Ack payload or Envelope.acks): erases the
/// acknowledged messages it received from the outbox.
void take_acks(gateway_state& st, const std::string& from, std::span<const std::uint64_t> ids) {
  auto* host = st.host;
  store::write_batch b;
  for (auto id : ids) {
    auto it = st.pending.find(id);
    // Only the receiver of a message may acknowledge it.
    if (it == st.pending.end() || it->second.receiver != from) continue;
    fault::crash_point("ack.before_erase");
    st.pending.erase(it);
    b.erase(outbox_table, store::key_u64(id));
  }
  if (b.empty()) return;
  host->outbox_pending = st.pending.size();
  // Deferred: rides with the next commit instead of costing a sync of its
  // own; if a crash loses it, the message is re-sent and the receiver drops
  // it as a duplicate.
  host->writer->submit_deferred(std::move(b), nullptr);
}

/// Makes sure a tick runs at `due_us` (or at most tick_interval_min_us
/// from now): schedules one unless one is scheduled by then.
void schedule_tick(gateway_actor_type* self, timestamp_us due_us) {
  auto& st = self->state;
  const auto now = st.host->clk.now();
  const auto at = std::max(due_us, now + tick_interval_min_us);
  if (!st.ticks.empty() && *st.ticks.begin() <= at) return;  // it schedules the next
  st.ticks.insert(at);
  self->delayed_send(self, std::chrono::microseconds(at - now), tick_atom::value, at);
}

/// After a tick: schedules the one that is needed next, for the first
/// message due to be sent again or the next prune with something to
/// forget, if any.
void schedule_next_tick(gateway_actor_type* self) {
  auto& st = self->state;
  auto next = std::numeric_limits<timestamp_us>::max();
  if (!st.due.empty()) next = st.due.begin()->first;
  if (!st.committed_by_time.empty()) {
    const auto window = st.host->cfg.replay_window_us + st.host->cfg.clock_skew_max_us;
    next = std::min(next, std::max(st.next_prune_us, st.committed_by_time.front().at + window + 1));
  }
  if (next != std::numeric_limits<timestamp_us>::max()) schedule_tick(self, next);
}

/// A frame of `sender` was handled (after the acks it carries): it is not
/// silent (peer_link), and what was parked for it goes out now.
void heard_from(gateway_actor_type* self, const std::string& sender) {
  auto& st = self->state;
  auto* host = st.host;
  const auto now = host->clk.now();
  auto& link = st.links[sender];
  link.heard_us = now;
  // The probe too: it was last sent while the partner was silent.
  const auto probe = std::exchange(link.probe_id, 0);
  if (probe != 0 && st.pending.contains(probe)) link.parked.push_front(probe);
  const auto initial = host->cfg.retry_initial_ms * us_per_ms;
  for (auto id : link.parked) {
    auto p = st.pending.find(id);
    if (p == st.pending.end()) continue;  // acknowledged meanwhile
    auto& f = p->second;
    host->retransmits.fetch_add(1, std::memory_order_relaxed);
    host->transmit(f.receiver, f.frame);
    f.sent_us = now;
    f.backoff_us = initial;
    f.next_send_us = now + initial;
    st.due.emplace(f.next_send_us, id);
    schedule_tick(self, f.next_send_us);
  }
  link.parked.clear();
}

void on_deliver(gateway_actor_type* self, verified_frame& vf) {
  auto* host = self->state.host;
  auto& st = self->state;
  // Every path but delivery to an actor is done with the message here.
  struct release_unless_kept {
    peer_state* peer;
    bool kept = false;
    ~release_unless_kept() {
      if (!kept) peer->queued.fetch_sub(1, std::memory_order_relaxed);
    }
  } release{vf.peer};
  // Failed: take nothing more in; the sender keeps it and retries.
  if (host->failed.load(std::memory_order_relaxed)) return;
  auto& env = vf.env;
  const auto& h = env.header;
  if (!h.acks.empty()) {
    host->acks_in.fetch_add(h.acks.size(), std::memory_order_relaxed);
    take_acks(st, h.sender, h.acks);
  }
  if (auto* a = std::get_if<wire::ack>(&env.payload)) {
    host->acks_in.fetch_add(1, std::memory_order_relaxed);
    take_acks(st, h.sender, std::span(&a->acked_message_id, 1));
    heard_from(self, h.sender);
    return;
  }
  heard_from(self, h.sender);
  auto* inbox = inbox_of(st, h.sender).inbox;
  if (auto it = inbox->committed.find(h.message_id); it != inbox->committed.end()) {
    host->duplicates.fetch_add(1, std::memory_order_relaxed);
    queue_ack(self, h.sender, h.message_id);
    for_each_reply_id(it->second.replies, [&](std::uint64_t id) {
      auto p = st.pending.find(id);
      if (p == st.pending.end()) return;  // acknowledged already
      host->duplicate_replies.fetch_add(1, std::memory_order_relaxed);
      host->frames_out.fetch_add(1, std::memory_order_relaxed);
      host->transmit(p->second.receiver, p->second.frame);
      p->second.sent_us = host->clk.now();
    });
    return;
  }
  if (inbox->in_flight.contains(h.message_id)) {
    host->duplicates.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto now = host->clk.now();
  if (h.timestamp_us > now + host->cfg.clock_skew_max_us) {
    // Not acked: the partner's clock is wrong; once fixed, its retries pass.
    host->dropped_clock_skew.fetch_add(1, std::memory_order_relaxed);
    host->warn_clock_skew(
        "{}: dropped {} from '{}' stamped {:.1f} s in the future (clock_skew_max_s {:.1f}): "
        "check that partner's clock",
        host->cfg.node_id, wire::to_string(wire::type_of(env.payload)), h.sender,
        static_cast<double>(h.timestamp_us - now) / us_per_s,
        static_cast<double>(host->cfg.clock_skew_max_us) / us_per_s);
    return;
  }
  if (h.timestamp_us < now - host->cfg.replay_window_us) {
    // Older than the window: possibly processed and forgotten. Acked so
    // the sender stops, and no effect.
    host->dropped_replayed.fetch_add(1, std::memory_order_relaxed);
    queue_ack(self, h.sender, h.message_id);
    return;
  }
  inbox->in_flight.emplace(h.message_id, vf.peer);
  release.kept = true;  // until the commit naming it is done
  auto& target = host->routes[static_cast<std::size_t>(wire::type_of(env.payload))];
  if (!target) {
    // Nobody here handles it: record it as processed so the sender stops retrying.
    host->dropped_unroutable.fetch_add(1, std::memory_order_relaxed);
    host->warn_unroutable("{}: no actor handles {} from '{}'", host->cfg.node_id,
                          wire::to_string(wire::type_of(env.payload)), h.sender);
    effects fx;
    fx.cause = inbound_ref{h.sender, h.message_id};
    host->commit(std::move(fx));
    return;
  }
  self->send(target, inbound_atom::value, std::move(env));
}

void on_committed(gateway_actor_type* self, commit_done& done) {
  auto* host = self->state.host;
  auto& st = self->state;
  const sender_ref from = done.cause ? inbox_of(st, done.cause->sender) : sender_ref{};
  if (done.cause) {
    auto it = from.inbox->in_flight.find(done.cause->message_id);
    if (it != from.inbox->in_flight.end()) {
      it->second->queued.fetch_sub(1, std::memory_order_relaxed);
      from.inbox->in_flight.erase(it);
    }
  }
  if (!done.ok || host->failed.load(std::memory_order_relaxed)) return;
  fault::crash_point("commit.after_durable");
  auto now = host->clk.now();
  for (auto& f : done.frames) {
    host->frames_out.fetch_add(1, std::memory_order_relaxed);
    if (host->serving) host->transmit(f.receiver, f.frame);
    pending_frame p{std::move(f.receiver), std::move(f.frame), 0,
                    host->cfg.retry_initial_ms * us_per_ms};
    p.next_send_us = host->serving ? now + p.backoff_us : now;
    if (host->serving) p.sent_us = now;
    schedule_tick(self, p.next_send_us);
    st.due.emplace(p.next_send_us, f.message_id);
    st.pending.emplace(f.message_id, std::move(p));
  }
  host->outbox_pending = st.pending.size();
  if (done.cause) {
    // After the replies are pending, so a duplicate finds them.
    fault::crash_point("send.after_frames");
    // Commit times only grow (the clock is monotonic): committed_by_time
    // stays sorted.
    remember_committed(st, from, done.cause->message_id,
                       inbox_entry{done.at, std::move(done.replies)});
    if (!done.cause_acked_by_reply) queue_ack(self, done.cause->sender, done.cause->message_id);
  }
}

caf::behavior gateway_actor(gateway_actor_type* self, node::impl* host) {
  self->state.host = host;
  auto& st = self->state;
  // Rebuild dedup and retry state from the store.
  auto now = host->clk.now();
  std::uint64_t unreadable = 0;
  auto s = host->env->for_each(inbox_table, [&](std::string_view k, std::string_view v) {
    // "<sender>/<message id, 20 digits>" (inbox_key)
    const auto slash = k.rfind('/');
    std::uint64_t id = 0;
    if (slash == std::string_view::npos ||
        std::from_chars(k.data() + slash + 1, k.data() + k.size(), id).ptr != k.data() + k.size()) {
      ++unreadable;
      return true;
    }
    remember_committed(st, inbox_of(st, k.substr(0, slash)), id, parse_inbox_value(v, now));
    return true;
  });
  std::stable_sort(st.committed_by_time.begin(), st.committed_by_time.end());
  if (unreadable > 0)
    spdlog::warn("{}: {} inbox keys not of the form sender/message-id were ignored",
                 host->cfg.node_id, unreadable);
  if (!s) spdlog::error("{}: reading inbox: {}", host->cfg.node_id, s.to_string());
  s = host->env->for_each(outbox_table, [&](std::string_view k, std::string_view v) {
    auto sep = v.find('\0');
    if (sep == std::string_view::npos) return true;
    pending_frame p;
    p.receiver = std::string(v.substr(0, sep));
    auto body = v.substr(sep + 1);
    p.frame.assign(body.begin(), body.end());
    p.next_send_us = now;
    p.backoff_us = host->cfg.retry_initial_ms * us_per_ms;
    const auto id = std::stoull(std::string(k));
    st.due.emplace(p.next_send_us, id);
    st.pending.emplace(id, std::move(p));
    return true;
  });
  if (!s) spdlog::error("{}: reading outbox: {}", host->cfg.node_id, s.to_string());
  host->outbox_pending = st.pending.size();
  return {
      [=](deliver_atom) {
        auto& taken = self->state.inbound_taken;
        host->inbound.take(taken);
        for (auto& vf : taken) on_deliver(self, vf);
        taken.clear();
        flush_acks_soon(self);
      },
      [=](committed_atom) {
        auto& taken = self->state.durable_taken;
        host->durable.take(taken);
        for (auto& done : taken) on_committed(self, done);
        taken.clear();
        flush_acks_soon(self);
      },
      [=](flush_acks_atom) { flush_acks(self); },
      [=](tick_atom, timestamp_us at) {
        auto& st = self->state;
        if (auto it = st.ticks.find(at); it != st.ticks.end()) st.ticks.erase(it);
        if (host->failed.load(std::memory_order_relaxed)) return;
        auto now = host->clk.now();
        if (now >= st.next_prune_us) prune_inbox(st, now);
        auto max_backoff = host->cfg.retry_max_ms * us_per_ms;
        while (!st.due.empty() && st.due.begin()->first <= now) {
          const auto [at, id] = *st.due.begin();
          st.due.erase(st.due.begin());
          auto it = st.pending.find(id);
          if (it == st.pending.end() || it->second.next_send_us != at) continue;  // acked
          auto send = it;  // the message that goes out
          auto& link = st.links[it->second.receiver];
          if (it->second.sent_us != 0 && link.heard_us < it->second.sent_us) {  // silent
            if (link.probe_id != id && st.pending.contains(link.probe_id)) {
              host->retransmits_parked.fetch_add(1, std::memory_order_relaxed);
              link.parked.push_back(id);
              continue;
            }
            // This is the probe (peer_link). If others are parked, the one
            // parked longest goes out in its place and it is parked: every
            // message goes out in turn, so one the partner never
            // acknowledges (its policy refuses the type, say) cannot hold
            // back the others.
            while (!link.parked.empty() && send == it) {
              auto next = st.pending.find(link.parked.front());
              link.parked.pop_front();
              if (next != st.pending.end()) send = next;
            }
            if (send != it) {
              host->retransmits_parked.fetch_add(1, std::memory_order_relaxed);
              link.parked.push_back(id);
              send->second.backoff_us = it->second.backoff_us;
            }
            link.probe_id = send->first;
          }
          auto& p = send->second;
          host->retransmits.fetch_add(1, std::memory_order_relaxed);
          host->transmit(p.receiver, p.frame);
          p.sent_us = now;
          p.next_send_us = now + p.backoff_us;
          p.backoff_us = std::min(p.backoff_us * 2, max_backoff);
          st.due.emplace(p.next_send_us, send->first);
        }
        // Drop what acknowledged messages left at the front.
        while (!st.due.empty() && !st.pending.contains(st.due.begin()->second))
          st.due.erase(st.due.begin());
        schedule_next_tick(self);
      },
  };
}

}  // namespace

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() {
  stop();
}

result<std::unique_ptr<node>> node::open(node_config cfg, const gearmesh::clock& clk,
                                         std::unique_ptr<transport::transport> net,
                                         execution mode) {
  auto p = std::make_unique<impl>(std::move(cfg), clk);
  p->mode = mode;
  auto& c = p->cfg;
  store::options so;
  so.path = c.data_dir;
  so.sync = c.store_sync;
  so.map_bytes_initial = c.store_map_bytes_initial;
  auto env = store::environment::open(so);
  if (!env) return env.error();
  p->env = std::move(*env);

  // Message ids continue above the last durable high-water mark.
  auto hw = p->env->get(meta_table, store::meta_message_id_high_water);
  if (!hw) return hw.error();
  if (hw->has_value()) p->msg_id_hw = std::stoull(**hw);
  p->next_msg_id = p->msg_id_hw + 1;

  store::group_commit_writer::options wo;
  wo.fail_stop = true;  // see node::impl::fail
  wo.gather_us = c.store_gather_us;
  // [store] group_commit = false: one transaction per commit, each synced
  // completely before the next (the baseline the benchmarks compare with).
  if (!c.store_group_commit) {
    wo.batches_per_txn_max = 1;
    wo.pipeline_syncs = false;
  }
  if (mode == execution::deterministic) {
    auto w = std::make_unique<store::inline_writer>(*p->env, wo.fail_stop);
    w->record_keys({std::string(inbox_table), std::string(outbox_table), std::string(meta_table)});
    p->inline_w = w.get();
    p->writer = std::move(w);
  } else
    p->writer = std::make_unique<store::group_commit_writer>(*p->env, wo);

  if (net) {
    p->net = std::move(net);
  } else {
    transport::zmq_options zo;
    zo.node_id = c.node_id;
    zo.listen_endpoint = c.listen;
    zo.frame_bytes_max = c.frame_bytes_max;
    zo.bundle = c.transport_bundle;
    zo.send_queue_max = std::max<std::size_t>(zo.send_queue_max, c.peers.size() * 1024);
    if (!c.insecure) {
      if (c.secret_key_file.empty()) {
        return status(errc::bad_config, c.node_id +
                                            ": no secret key: set [security] secret_key_file, or "
                                            "insecure = true for plain TCP in a local demo");
      }
      auto kp = keys::load_secret_key(c.secret_key_file);
      if (!kp) return kp.error();
      for (const auto& peer : c.peers) {
        if (peer.public_key.size() != keys::key_z85_chars) {
          return status(errc::bad_config,
                        c.node_id + ": peer '" + peer.id + "' has no public key (CurveZMQ on)");
        }
      }
      zo.curve = transport::curve_keys{keys::to_z85(kp->public_key), keys::to_z85(kp->secret_key)};
    }
    p->net = transport::make_zmq_transport(std::move(zo));
  }
  p->apply_peers(c.peers);

  p->sys_cfg = std::make_unique<caf::actor_system_config>();
  p->sys_cfg->set("scheduler.max-threads", c.scheduler_threads);
  // By default an idle CAF worker polls its queue every 50 us for 25 ms
  // before it blocks: thousands of wake-ups per idle spell, which on a
  // machine shared with other nodes cost more CPU than the actors. Block
  // after the short spin instead.
  p->sys_cfg->set("work-stealing.moderate-poll-attempts", std::size_t{0});
  p->sys_cfg->set("logger.console-verbosity", caf::atom("quiet"));
  p->sys_cfg->set("logger.file-verbosity", caf::atom("quiet"));
  if (mode == execution::deterministic) p->sys_cfg->set("scheduler.policy", caf::atom("testing"));
  p->sys = std::make_unique<caf::actor_system>(*p->sys_cfg);
  if (mode == execution::deterministic) {
    p->sched = &dynamic_cast<caf::scheduler::test_coordinator&>(p->sys->scheduler());
    // CAF's test clock starts at its epoch; timers compute from differences only.
    p->sched->clock().current_time += std::chrono::hours(1);
  }
  // The gateway rebuilds its retry state on a CAF worker, some time after
  // open() returns; count the outbox here so that stats() is right at once.
  std::uint64_t outbox_entries = 0;
  auto counted = p->env->for_each(outbox_table, [&](std::string_view, std::string_view) {
    ++outbox_entries;
    return true;
  });
  if (!counted) return counted;
  p->outbox_pending = outbox_entries;
  p->gateway = p->sys->spawn(gateway_actor, p.get());

  auto* host = p.get();
  p->router->add("GET", "/v1/health", [host](const admin::request&) {
    if (host->failed.load()) {
      std::lock_guard<std::mutex> guard{host->failure_mutex};
      nlohmann::json j{{"node", host->cfg.node_id},
                       {"status", "failed"},
                       {"error", host->failure_status.to_string()}};
      return admin::response{503, j.dump()};
    }
    return admin::response{200, R"({"node":")" + host->cfg.node_id + R"(","status":"ok"})"};
  });
  auto self = std::unique_ptr<node>(new node(std::move(p)));
  auto* n = self.get();
  n->impl_->router->add("GET", "/v1/metrics", [n](const admin::request&) {
    auto s = n->stats();
    auto t = n->impl_->net->stats();
    std::string body = "{";
    auto field = [&body](const char* name, std::uint64_t v) {
      if (body.size() > 1) body += ",";
      body += "\"" + std::string(name) + "\":" + std::to_string(v);
    };
    field("frames_in", s.frames_in);
    field("frames_out", s.frames_out);
    field("dropped_malformed", s.dropped_malformed);
    field("dropped_unknown_sender", s.dropped_unknown_sender);
    field("dropped_sender_mismatch", s.dropped_sender_mismatch);
    field("dropped_unauthorized", s.dropped_unauthorized);
    field("dropped_rate_limited", s.dropped_rate_limited);
    field("dropped_overload", s.dropped_overload);
    field("withheld_by_policy", s.withheld_by_policy);
    field("dropped_wrong_receiver", s.dropped_wrong_receiver);
    field("dropped_unroutable", s.dropped_unroutable);
    field("duplicates", s.duplicates);
    field("duplicate_replies", s.duplicate_replies);
    field("dropped_replayed", s.dropped_replayed);
    field("dropped_clock_skew", s.dropped_clock_skew);
    field("inbox_pruned", s.inbox_pruned);
    field("retransmits", s.retransmits);
    field("retransmits_parked", s.retransmits_parked);
    field("acks_in", s.acks_in);
    field("outbox_pending", s.outbox_pending);
    field("commits", s.commits);
    field("commit_failures", s.commit_failures);
    field("store_transactions", s.store_transactions);
    field("store_batches", s.store_batches);
    field("transport_dropped_queue_full", t.dropped_queue_full);
    field("transport_dropped_oversized", t.dropped_oversized);
    field("transport_dropped_unknown_peer", t.dropped_unknown_peer);
    field("transport_dropped_malformed", t.dropped_malformed);
    field("transport_auth_denied", t.auth_denied);
    field("transport_bundles_sent", t.bundles_sent);
    field("transport_bundles_received", t.bundles_received);
    body += "}";
    return admin::response{200, body};
  });
  return self;
}

const node_config& node::config() const noexcept {
  return impl_->cfg;
}
caf::actor_system& node::system() {
  return *impl_->sys;
}
node_context& node::context() {
  return *impl_;
}
admin::router& node::admin_routes() {
  return *impl_->router;
}

void node::route(std::initializer_list<wire::message_type> types, const caf::actor& handler) {
  for (auto t : types) impl_->routes[static_cast<std::size_t>(t)] = handler;
}

status node::serve() {
  auto& p = *impl_;
  if (p.serving) return status::ok();
  p.net->on_receive([host = &p](const std::string& from, std::span<const std::uint8_t> frame) {
    host->on_frame(from, frame);
  });
  for (auto& peer : p.cfg.peers) p.net->add_peer(peer);
  if (auto st = p.net->start(); !st) return st;
  p.serving = true;
  // The first tick sends everything the outbox held at start.
  caf::anon_send(p.gateway, tick_atom::value, timestamp_us{0});
  if (p.cfg.admin_port != 0) {
    auto srv = admin::server::start(p.cfg.admin_address, p.cfg.admin_port, p.router);
    if (!srv) return srv.error();
    p.admin = std::move(*srv);
  }
  if (p.cfg.insecure) {
    spdlog::warn(
        "{}: [security] insecure = true: links are plain TCP, neither authenticated nor "
        "encrypted, and anyone who can reach {} can claim a partner's id. Local demos only.",
        p.cfg.node_id, p.net->listen_endpoint());
  }
  spdlog::info("{}: serving on {} ({}) with {} peers{}", p.cfg.node_id, p.net->listen_endpoint(),
               p.cfg.insecure ? "plain TCP" : "CurveZMQ", p.cfg.peers.size(),
               p.admin
                   ? ", admin API on " + p.cfg.admin_address + ":" + std::to_string(p.admin->port())
                   : std::string{});
  return status::ok();
}

result<peers_update> node::update_peers(std::vector<peer_config> peers) {
  auto& p = *impl_;
  std::lock_guard<std::mutex> serialised{p.update_mutex};
  std::set<std::string> seen;
  for (const auto& peer : peers) {
    if (peer.id == p.cfg.node_id)
      return status(errc::bad_config, "a node cannot be its own peer (\"" + peer.id + "\")");
    if (!seen.insert(peer.id).second)
      return status(errc::bad_config, "duplicate peer id \"" + peer.id + "\"");
    if (!p.cfg.insecure && peer.public_key.size() != keys::key_z85_chars)
      return status(errc::bad_config, "peer '" + peer.id + "' has no public key (CurveZMQ on)");
  }
  peers_update u;
  std::map<std::string, const peer_config*> before;
  for (const auto& old : p.cfg.peers) before.emplace(old.id, &old);
  for (const auto& peer : peers) {
    auto it = before.find(peer.id);
    if (it == before.end()) {
      u.added.push_back(peer.id);
    } else if (it->second->endpoint != peer.endpoint || it->second->public_key != peer.public_key) {
      u.changed.push_back(peer.id);
    } else if (it->second->receive != peer.receive || it->second->send != peer.send) {
      u.policy_changed.push_back(peer.id);
    }
  }
  // Policy first, so nothing a new list forbids is accepted after the
  // transport admits the new keys; revoked partners are untrusted at once.
  u.removed = p.apply_peers(peers);
  if (p.serving) {
    for (const auto& id : u.removed) p.net->remove_peer(id);
    // Re-adding an unchanged peer changes nothing (transport::add_peer).
    for (const auto& peer : peers) p.net->add_peer(peer);
  }
  p.cfg.peers = std::move(peers);
  spdlog::info(
      "{}: trust store updated: {} added, {} removed, {} changed key or endpoint, {} "
      "changed policy",
      p.cfg.node_id, u.added.size(), u.removed.size(), u.changed.size(), u.policy_changed.size());
  return u;
}

std::uint16_t node::admin_port() const {
  return impl_->admin ? impl_->admin->port() : 0;
}

node_stats node::stats() const {
  auto& p = *impl_;
  node_stats s;
  s.frames_in = p.frames_in;
  s.frames_out = p.frames_out;
  s.dropped_malformed = p.dropped_malformed;
  s.dropped_unknown_sender = p.dropped_unknown_sender;
  s.dropped_sender_mismatch = p.dropped_sender_mismatch;
  s.dropped_unauthorized = p.dropped_unauthorized;
  s.dropped_rate_limited = p.dropped_rate_limited;
  s.dropped_overload = p.dropped_overload;
  s.withheld_by_policy = p.withheld_by_policy;
  s.dropped_wrong_receiver = p.dropped_wrong_receiver;
  s.dropped_unroutable = p.dropped_unroutable;
  s.duplicates = p.duplicates;
  s.duplicate_replies = p.duplicate_replies;
  s.dropped_replayed = p.dropped_replayed;
  s.dropped_clock_skew = p.dropped_clock_skew;
  s.inbox_pruned = p.inbox_pruned;
  s.retransmits = p.retransmits;
  s.retransmits_parked = p.retransmits_parked;
  s.acks_in = p.acks_in;
  s.outbox_pending = p.outbox_pending;
  s.commits = p.commits;
  s.commit_failures = p.commit_failures;
  if (const auto* w = dynamic_cast<const store::group_commit_writer*>(p.writer.get())) {
    const auto ws = w->stats();
    s.store_transactions = ws.transactions;
    s.store_batches = ws.batches;
  }
  return s;
}

std::size_t node::run_ready(std::size_t max_jobs) {
  return impl_->sched ? impl_->sched->run(max_jobs) : 0;
}

std::int64_t node::next_timer_in_us() const {
  if (!impl_->sched) return -1;
  const auto& clk = impl_->sched->clock();
  if (!clk.has_pending_timeout()) return -1;
  auto due = clk.schedule().begin()->first;
  if (due <= clk.current_time) return 0;
  auto d = std::chrono::duration_cast<std::chrono::microseconds>(due - clk.current_time).count();
  return std::max<std::int64_t>(d, 1);  // round up: a timer 400 ns away is not due yet
}

void node::advance_time_us(std::int64_t us) {
  if (impl_->sched && us > 0) impl_->sched->advance_time(std::chrono::microseconds(us));
}

bool node::deferred_writes_pending() const {
  auto* w = impl_->inline_w;
  return w && w->deferred_pending();
}

void node::flush_deferred_writes() {
  if (auto* w = impl_->inline_w) w->flush_deferred();
}

store::key_log node::take_written_keys() {
  auto* w = impl_->inline_w;
  return w ? w->take_keys() : std::exchange(impl_->keys_at_stop, {});
}

void node::write_store_behind(store::apply_thread* t) {
  impl_->env->write_behind(t);
}

const wire::limits& node::wire_limits() const {
  return impl_->limits;
}

void node::receive_decoded(const std::string& from, std::span<const std::uint8_t> frame,
                           result<wire::envelope> decoded) {
  if (impl_->serving) impl_->on_frame(from, frame, &decoded);
}

void node::kill_now() {
  auto& p = *impl_;
  if (auto* w = p.inline_w) w->kill();
  if (p.net) p.net->stop();
}

void node::on_fatal(std::function<void(const status&)> handler) {
  impl_->fatal_handler = std::move(handler);
}

status node::failure() const {
  std::lock_guard<std::mutex> guard{impl_->failure_mutex};
  return impl_->failure_status;
}

void node::stop() {
  if (!impl_ || impl_->stopped) return;
  auto& p = *impl_;
  p.stopped = true;
  if (p.admin) p.admin->stop();
  // No new inbound work; what actors have not committed yet was not acked and
  // will be re-sent by its sender.
  if (p.net) p.net->stop();
  std::set<caf::actor> actors;
  for (auto& a : p.routes)
    if (a) actors.insert(a);
  actors.insert(p.gateway);
  for (auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  p.routes = {};
  p.gateway = nullptr;
  // Role actors link their children; wait until every actor is gone, then
  // flush every queued commit to disk.
  if (p.sched) {
    // Deterministic: the exits run here. An actor may still wait for a
    // timer (a request's timeout): fire pending timers until none is left
    // alive, as time would go on for them.
    p.sched->run();
    while (p.sys->registry().running() > 0 && p.sched->trigger_timeouts() > 0) p.sched->run();
  }
  p.sys->await_all_actors_done();
  p.writer->stop();
  if (auto* w = p.inline_w) p.keys_at_stop = w->take_keys();
  p.sys.reset();
  p.inline_w = nullptr;
  p.writer.reset();
  p.env.reset();
  spdlog::info("{}: stopped", p.cfg.node_id);
}

}  // namespace gearmesh
