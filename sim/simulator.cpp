// The deterministic simulator (see simulator.hpp).
//
// One thread does everything, in this loop:
//   1. settle: run every ready actor job of every node woken since the last
//      settle, in scenario order, until none is left (a node's clock is
//      brought to now only when it is woken: by a frame, an order or its
//      own earliest timer, kept in one ordered set for all nodes);
//   2. check: invariants each check_every_us of simulated time; quiescence
//      once the demand window is over;
//   3. advance: to the earliest of the next network/fault/demand event and
//      the next actor timer of any node; wake the nodes whose timers are due;
//   4. fire the events due at that instant, in the order they were created.
// Randomness comes from one seeded generator, drawn in that same order.
#include "gearmesh/sim/simulator.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <sys/statfs.h>
#include <sys/statvfs.h>

#include "gearmesh/actors/buyer.hpp"
#include "gearmesh/actors/capacity.hpp"
#include "gearmesh/actors/install.hpp"
#include "gearmesh/actors/kpis.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/verify.hpp"
#include "gearmesh/fault.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/node.hpp"
#include "gearmesh/wire/codec.hpp"
#include "random.hpp"

namespace gearmesh::sim {

std::uint64_t hash_bytes(std::uint64_t h, const void* data, std::size_t n) {
  return XXH3_64bits_withSeed(data, n, h);
}

namespace {

constexpr long tmpfs_magic = 0x01021994;  // TMPFS_MAGIC, linux/magic.h

/// Bytes an unprivileged writer may still use on the file system of
/// `path`; std::nullopt if that cannot be told.
std::optional<std::uint64_t> free_bytes(const char* path) {
  struct statvfs vfs {};
  if (::statvfs(path, &vfs) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace

std::uint64_t store_bytes_estimate(const scenario& s) {
  std::uint64_t orders = 0;
  for (const auto& d : s.demand) orders += d.orders;
  return s.nodes.size() * (std::uint64_t{128} << 10) + orders * (std::uint64_t{8} << 10);
}

std::string scratch_root(std::uint64_t bytes_needed) {
  if (const char* t = std::getenv("TMPDIR"); t && *t) return t;
  struct statfs fsi {};
  const auto wanted = std::max(std::uint64_t{1} << 30, 2 * bytes_needed);
  if (::statfs("/dev/shm", &fsi) == 0 && fsi.f_type == tmpfs_magic &&
      free_bytes("/dev/shm").value_or(0) >= wanted)
    return "/dev/shm";
  return std::filesystem::temp_directory_path().string();
}

namespace {

namespace fs = std::filesystem;

std::uint64_t hash_u64(std::uint64_t h, std::uint64_t v) {
  return hash_bytes(h, &v, sizeof v);
}
std::uint64_t hash_str(std::uint64_t h, std::string_view s) {
  h = hash_u64(h, s.size());
  return hash_bytes(h, s.data(), s.size());
}

std::string iso(timestamp_us t) {
  auto secs = std::chrono::sys_seconds(std::chrono::seconds(t / us_per_s));
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", secs, (t % us_per_s) / us_per_ms);
}

class world;

/// A node's network: hands frames to the world, which delivers them later.
class sim_transport final : public transport::transport {
 public:
  sim_transport(world& w, std::size_t index) : world_(w), index_(index) {}
  void on_receive(receive_fn fn) override { fn_ = std::move(fn); }
  status start() override {
    up_ = true;
    return status::ok();
  }
  void stop() override { up_ = false; }
  void add_peer(const gearmesh::transport::peer&) override {}
  void remove_peer(const std::string&) override {}
  void send(const std::string& peer_id, std::vector<std::uint8_t> frame) override;
  gearmesh::transport::transport_stats stats() const override { return {}; }
  std::string listen_endpoint() const override { return "sim"; }

  void deliver(const std::string& from, const wire::bytes& frame) {
    if (up_ && fn_) fn_(from, std::span<const std::uint8_t>(frame.data(), frame.size()));
  }
  bool up() const noexcept { return up_; }

 private:
  world& world_;
  std::size_t index_;
  receive_fn fn_;
  bool up_ = false;
};

/// A node's clock: the simulator's, off by a fixed skew.
class skewed_clock final : public clock {
 public:
  skewed_clock(const clock& base, timestamp_us skew_us) : base_(base), skew_us_(skew_us) {}
  timestamp_us now() const override { return base_.now() + skew_us_; }
  timestamp_us skew_us() const noexcept { return skew_us_; }

 private:
  const clock& base_;
  timestamp_us skew_us_;
};

struct sim_node {
  node_spec spec;
  std::string data_dir;
  std::unique_ptr<config_file> file;
  std::unique_ptr<node> n;
  sim_transport* net = nullptr;  // owned by n
  caf::actor buyer;
  bool is_buyer = false;
  caf::actor participant;  // machine breakdowns go here
  caf::actor capacity;     // the capacity broker: publishes and books offers
  /// Last events, for violation reports: a line, or a frame delivered here
  /// (kept as bytes and decoded only if a report is printed).
  struct tail_entry {
    timestamp_us at = 0;
    std::string line;
    std::size_t from = 0;
    wire::bytes frame;
  };
  std::deque<tail_entry> tail;
  timestamp_us down_until = 0;  // a disruption: no restart before this
  timestamp_us clock_at = 0;    // simulated time the node's actor clock shows
  /// The node's clock: the simulated time plus its skew (faults.clock_skew_us).
  std::unique_ptr<skewed_clock> clock;
  /// A crash waiting for the node's next jobs: it happens after this many
  /// more (0 = none armed) -- between any two actor jobs, so also between a
  /// commit and the sends that follow it.
  std::size_t crash_in_jobs = 0;
  std::uint64_t timer_gen = 0;  // the latest entry of this node in the timer heap
  timestamp_us timer_due = -1;  // due time of that entry while it is in the heap
  /// Since when its store has deferred writes waiting (0 = none): they are
  /// applied with its next commit, or deferred_delay_us later.
  timestamp_us deferred_since = 0;
  std::set<std::size_t> peers;  // indices
  /// Keys its store's actor tables got since its last mid-run check (kept
  /// across a crash: a store is checked again once its node is back up).
  store::key_log unchecked;
  /// What the mid-run checks keep of this node's store between them.
  std::unique_ptr<actors::check_index> index;
};

/// Gives changed[i] the keys of logs[i], sorted by table (key_log::keys),
/// on the thread that runs the check.
void sort_keys(std::vector<actors::store_changes>& changed, std::vector<store::key_log>&& logs) {
  for (std::size_t i = 0; i < changed.size(); ++i) changed[i].keys = logs[i].keys();
  logs.clear();
}

/// The hash a delivered frame adds to the trace: XXH3 of its bytes.
std::uint64_t frame_hash(const wire::bytes& frame) {
  return XXH3_64bits(frame.data(), frame.size());
}

/// A frame decoded and hashed ahead of its delivery, on the apply thread
/// (apply_thread::run_aside), while the run goes on. Its delivery takes
/// the result, or, if the thread has not begun it, does the work itself:
/// decoding and hashing are pure, so the result is the same either way.
struct prepared_frame {
  prepared_frame(wire::bytes f, const wire::limits& l) : frame(std::move(f)), lim(l) {}
  enum : int { queued, taken, done, cancelled };
  wire::bytes frame;
  wire::limits lim;  // the receiving node's (node::wire_limits)
  std::atomic<int> state{queued};
  result<wire::envelope> env = wire::envelope{};
  std::uint64_t hash = 0;

  /// On the apply thread; nothing if the delivery came first.
  void prepare() {
    int s = queued;
    if (!state.compare_exchange_strong(s, taken, std::memory_order_acquire)) return;
    work();
    state.store(done, std::memory_order_release);
  }
  /// At the delivery: afterwards env and hash are set, and the apply
  /// thread no longer reads the frame.
  void finish() {
    int s = queued;
    if (state.compare_exchange_strong(s, cancelled, std::memory_order_acquire)) {
      work();
      return;
    }
    while (state.load(std::memory_order_acquire) != done) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

 private:
  void work() {
    env = wire::decode(frame, lim);
    hash = frame_hash(frame);
  }
};

struct event {
  enum class kind : std::uint8_t {
    deliver,
    order,
    crash,
    restart,
    partition,
    heal,
    disrupt,
    breakdown,
    publish,  // [[capacity]] a
    book      // [[capacity]] a, its booking b
  };
  timestamp_us at = 0;
  std::uint64_t seq = 0;
  kind what = kind::deliver;
  std::size_t a = 0;  // from / node / demand index
  std::size_t b = 0;  // to / peer / order number
  wire::bytes frame;  // deliver, unless prepared
  /// deliver: the frame, being decoded ahead (prepared_frame); null: not.
  std::shared_ptr<prepared_frame> prepared;
};

/// Events of the scenario's schedule that keep a run from quiescing.
bool scheduled(event::kind k) {
  return k == event::kind::breakdown || k == event::kind::publish || k == event::kind::book;
}

struct later {
  bool operator()(const event& x, const event& y) const {
    return x.at != y.at ? x.at > y.at : x.seq > y.seq;
  }
};

bool terminal(actors::order_state s) {
  return s == actors::order_state::contracted || s == actors::order_state::failed ||
         s == actors::order_state::cancelled;
}

/// A set of node indexes taken smallest first, as a bitmap: waking a node
/// is the most frequent thing a run does, and a std::set allocated a tree
/// node each time.
class node_set {
 public:
  void resize(std::size_t nodes) { words_.assign((nodes + 63) / 64, 0); }
  void insert(std::size_t i) {
    auto& w = words_[i / 64];
    const auto bit = std::uint64_t{1} << (i % 64);
    if ((w & bit) == 0) {
      w |= bit;
      ++count_;
      first_ = std::min(first_, i / 64);
    }
  }
  bool empty() const noexcept { return count_ == 0; }
  /// Removes and returns the smallest index. Not empty().
  std::size_t take_first() {
    while (words_[first_] == 0) ++first_;
    auto& w = words_[first_];
    const auto i = first_ * 64 + static_cast<std::size_t>(std::countr_zero(w));
    w &= w - 1;
    --count_;
    return i;
  }

 private:
  std::vector<std::uint64_t> words_;
  std::size_t count_ = 0;
  std::size_t first_ = 0;  // no word before it has a bit set
};

class world {
 public:
  /// `checks_behind`: with o.write_behind and no o.work_dir, the mid-run
  /// checks run on the apply thread too (see pending_check).
  world(const scenario& s, const sim_options& o, bool checks_behind)
      : s_(s),
        o_(o),
        rng_(o.seed ^ 0x6765617268ULL),
        clock_(s.start_us),
        checks_behind_(checks_behind && o.write_behind && o.work_dir.empty()) {}

  ~world() {
    for (auto& n : nodes_) stop_node(n, false);
    if (owns_dir_) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  result<sim_result> run();
  void send(std::size_t from, const std::string& to, wire::bytes frame);
  /// Whether the run stopped on a violation that a check on the apply
  /// thread found (its report then comes from a run with checks that wait).
  bool broken_behind() const noexcept { return broken_behind_; }

 private:
  status start_node(std::size_t i);
  /// errc::storage if the stores' file system has less than
  /// sim_options::free_bytes_min free.
  status enough_space() const;
  /// Turns of the run's loop (each runs one instant's jobs and events)
  /// between two looks at the free space: a few MB of writes at most.
  static constexpr std::uint64_t free_space_every = 4096;
  void stop_node(sim_node& n, bool crashed);
  void push(event e) {
    e.seq = next_seq_++;
    if (e.what == event::kind::deliver) ++in_flight_;
    if (scheduled(e.what)) ++scheduled_pending_;
    queue_.push(std::move(e));
  }
  /// Schedules an event that carries no frame (every kind but a delivery).
  void push_at(timestamp_us at, event::kind what, std::size_t a, std::size_t b) {
    push(event{at, 0, what, a, b, {}, {}});
  }
  void fire(event& e);
  void note(std::size_t i, std::string what, std::size_t from = 0, wire::bytes frame = {}) {
    auto& t = nodes_[i].tail;
    t.push_back({now_, std::move(what), from, std::move(frame)});
    while (t.size() > o_.trace_tail) t.pop_front();
  }
  /// A tail entry as a report line.
  std::string describe(const sim_node::tail_entry& e) const {
    std::string what = e.line;
    if (what.empty()) {
      auto env = wire::decode(e.frame);
      what = env ? fmt::format("<- {} {} #{} {}", nodes_[e.from].spec.id,
                               wire::to_string(wire::type_of(env->payload)), env->header.message_id,
                               env->header.conversation_id)
                 : fmt::format("<- {} undecodable frame: {}", nodes_[e.from].spec.id,
                               env.error().message());
    }
    return iso(e.at) + " " + what;
  }
  /// Adds an event to the trace; a delivery with its frame's hash.
  void trace(std::string_view kind, std::size_t a, std::size_t b,
             std::optional<std::uint64_t> frame = std::nullopt) {
    trace_ = hash_u64(trace_, static_cast<std::uint64_t>(now_));
    trace_ = hash_str(trace_, kind);
    trace_ = hash_u64(trace_, a);
    trace_ = hash_u64(trace_, b);
    if (frame) trace_ = hash_u64(trace_, *frame);
  }
  void place_order(std::size_t demand, std::size_t number);
  /// A machine breakdown: [[breakdowns]] number `b`, or a seeded one (b = none).
  void break_down(std::size_t b);
  /// [[capacity]] number `c`: published, or its booking `b` asked for.
  void publish(std::size_t c);
  void book(std::size_t c, std::size_t b);
  std::size_t settle();
  /// Crashes node i now and schedules its restart.
  void crash(std::size_t i, std::string_view why);
  /// Removes node `sn`'s entry from the timer heap (one per node, so the
  /// heap holds at most one entry per node).
  void drop_timer(sim_node& sn) {
    if (sn.timer_due >= 0)
      timers_.erase({sn.timer_due, static_cast<std::size_t>(&sn - nodes_.data()), sn.timer_gen});
    sn.timer_due = -1;
    ++sn.timer_gen;
  }
  /// Brings node i's actor clock to now (due timers fire) and marks it active.
  void wake(std::size_t i) {
    auto& sn = nodes_[i];
    if (!sn.n) return;
    if (sn.clock_at < now_) sn.n->advance_time_us(now_ - sn.clock_at);
    sn.clock_at = now_;
    active_.insert(i);
  }
  bool quiesced();
  /// Runs verify over the live stores; `all` = every invariant, else only
  /// those that hold at every instant. Empty if clean. With checks_behind_,
  /// a mid-run check is started on the apply thread, and what is returned
  /// is the report of the one before.
  std::string check(bool all);
  /// The violations of `rep` as the run's failure report (mid-run: only
  /// over-commitment and corrupt records); empty if none.
  std::string describe(result<actors::verify_report>&& rep, bool all) const;
  /// Waits for the mid-run check running on the apply thread, if any, and
  /// returns its report (empty if clean).
  std::string finish_check();
  /// Makes `report` (a check's, empty if clean) the run's failure, unless
  /// the run has failed already.
  void fail(std::string report) {
    if (report.empty() || !r_.failure.empty()) return;
    r_.ok = false;
    r_.failure = std::move(report);
  }
  void collect(sim_result& r);
  std::uint64_t state_hash();

  const scenario& s_;
  const sim_options& o_;
  random rng_;
  manual_clock clock_;
  timestamp_us max_skew_us_ = 0;  // largest |skew| of any node's clock
  timestamp_us now_ = 0;
  std::string dir_;
  bool owns_dir_ = false;
  std::vector<sim_node> nodes_;
  std::unordered_map<std::string, std::size_t> index_;
  std::priority_queue<event, std::vector<event>, later> queue_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t in_flight_ = 0;
  /// Breakdowns, capacity offers and bookings not yet fired: part of the run.
  std::uint64_t scheduled_pending_ = 0;
  std::set<std::pair<std::size_t, std::size_t>> cut_;  // partitioned links (lo, hi)
  std::uint64_t trace_ = hash_init;
  /// Nodes that may have ready jobs (woken since the last settle).
  node_set active_;
  /// buggify: the runtime's fault points, armed for this thread and run.
  std::unique_ptr<fault::scope> faults_;
  /// sim_options::write_behind: applies the stores' transactions on a
  /// second thread. Outlives the nodes (~world stops them first).
  std::unique_ptr<store::apply_thread> behind_;
  /// A mid-run check running on the apply thread (checks_behind_). It was
  /// queued after the transactions committed up to its simulated time, so it
  /// reads every store as it was then, while the run goes on. The run looks
  /// at its report at the next check, or before a node stops (its store and
  /// check index are in use until then), or at the end. A violation found
  /// this way is found one check late, so run_simulation runs the seed again
  /// with checks that wait, whose report is exactly a one-thread run's.
  struct pending_check {
    std::uint64_t job = 0;
    std::vector<actors::store_changes> changed;
    std::vector<store::key_log> logs;  // made into changed[i].keys on the apply thread
    actors::verify_options vo;
    result<actors::verify_report> report = actors::verify_report{};
  };
  std::unique_ptr<pending_check> pending_;
  const bool checks_behind_;
  bool broken_behind_ = false;
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  /// How long deferred store writes wait for a commit to ride with, as
  /// group_commit_writer::options::deferred_delay_ms in production.
  static constexpr timestamp_us deferred_delay_us = 50 * us_per_ms;
  std::size_t running_ = none;        // the node whose jobs are running
  std::size_t crash_pending_ = none;  // killed by a crash point in its current job
  std::string crash_point_;
  /// (due, node, generation): each live node's earliest actor timer.
  std::set<std::tuple<timestamp_us, std::size_t, std::uint64_t>> timers_;
  std::vector<std::string> offer_ids_;  // by [[capacity]] entry, once published
  /// Order id -> when the Confirm reached its buyer. Looked up by id only:
  /// a 100,000-order run put a tree insertion (a cache miss at each level)
  /// on every Confirm.
  std::unordered_map<std::string, timestamp_us> confirmed_at_;
  sim_result r_;
};

void sim_transport::send(const std::string& peer_id, std::vector<std::uint8_t> frame) {
  if (up_) world_.send(index_, peer_id, std::move(frame));
}

void world::send(std::size_t from, const std::string& to, wire::bytes frame) {
  ++r_.frames_sent;
  auto it = index_.find(to);
  if (it == index_.end() || rng_.unit() < s_.network.loss) {
    ++r_.frames_lost;
    return;
  }
  const auto dest = it->second;
  const bool twice = rng_.unit() < s_.network.duplicate;
  if (twice) {
    ++r_.frames_duplicated;
    push(event{
        now_ + rng_.in(s_.network.latency_us), 0, event::kind::deliver, from, dest, frame, {}});
  }
  event e{now_ + rng_.in(s_.network.latency_us), 0, event::kind::deliver, from, dest, {}, {}};
  if (behind_ && nodes_[dest].n) {
    // Decoded on the apply thread meanwhile, with the limits of the node
    // that will read it.
    e.prepared = std::make_shared<prepared_frame>(std::move(frame), nodes_[dest].n->wire_limits());
    behind_->run_aside([p = e.prepared] { p->prepare(); });
  } else {
    e.frame = std::move(frame);
  }
  push(std::move(e));
}

status world::enough_space() const {
  const auto free = free_bytes(dir_.c_str());
  if (!free || *free >= o_.free_bytes_min) return status::ok();  // or cannot tell: go on
  return status(errc::storage,
                fmt::format("stopped at simulated time {}: the file system of the stores ({}) "
                            "has {} MiB free, less than the {} MiB a run keeps free; free some "
                            "space, or put the stores elsewhere ($TMPDIR, --work-dir)",
                            iso(now_), dir_, *free >> 20, o_.free_bytes_min >> 20));
}

status world::start_node(std::size_t i) {
  auto& sn = nodes_[i];
  std::string text = fmt::format(
      "[node]\nid = \"{}\"\nlisten = \"inproc://sim-{}\"\ndata_dir = \"{}\"\nlog_level = "
      "\"warn\"\n\n[store]\nsync = false\n\n[security]\ninsecure = true\n\n"
      "[transport]\npeer_burst = 1000000000\n\n",
      sn.spec.id, sn.spec.id, sn.data_dir);
  for (const auto& p : sn.spec.peers)
    text += fmt::format("[[peers]]\nid = \"{}\"\nendpoint = \"inproc://sim-{}\"\n\n", p, p);
  text += sn.spec.roles_toml;
  auto file = config_file::parse(text, s_.path + " (node " + sn.spec.id + ")");
  if (!file) return file.error();
  auto cfg = parse_node_config(*file);
  if (!cfg) return cfg.error();
  auto net = std::make_unique<sim_transport>(*this, i);
  auto* raw = net.get();
  auto n = node::open(std::move(*cfg), *sn.clock, std::move(net), execution::deterministic);
  if (!n) return n.error();
  if (behind_) (*n)->write_store_behind(behind_.get());
  auto roles = actors::install_roles_with_handles(**n, *file);
  if (!roles) return roles.error();
  if (auto st = (*n)->serve(); !st) return st;
  sn.file = std::make_unique<config_file>(std::move(*file));
  sn.n = std::move(*n);
  sn.net = raw;
  sn.buyer = roles->buyer;
  sn.is_buyer = static_cast<bool>(roles->buyer);
  sn.participant = roles->participant;
  sn.capacity = roles->capacity;
  sn.clock_at = now_;
  active_.insert(i);
  return status::ok();
}

void world::stop_node(sim_node& sn, bool crashed) {
  if (!sn.n) return;
  // A check on the apply thread may be reading its store (stopping closes it).
  fail(finish_check());
  if (sn.clock_at < now_) sn.n->advance_time_us(now_ - sn.clock_at);
  drop_timer(sn);  // its timers die with it
  sn.deferred_since = 0;
  // A crash loses what was not committed yet, deferred writes included; a
  // clean stop (a disruption) commits them.
  if (crashed) sn.n->kill_now();
  // Deterministic execution applies every commit inline: what a step
  // committed is in the store; jobs not run yet never happen (a crash).
  sn.n->stop();
  sn.unchecked.append(sn.n->take_written_keys());
  sn.n.reset();
  sn.net = nullptr;
  sn.buyer = nullptr;
  sn.participant = nullptr;
  sn.capacity = nullptr;
  if (crashed) ++r_.crashes;
}

void world::place_order(std::size_t d, std::size_t number) {
  const auto& spec = s_.demand[d];
  const auto i = index_.at(spec.buyer);
  auto& sn = nodes_[i];
  actors::order_request req;
  req.item = spec.item;
  req.quantity = static_cast<std::uint32_t>(rng_.in(spec.quantity));
  req.due_us = now_ + rng_.in(spec.due_after_us);
  if (number + 1 < spec.orders) {
    const auto next = now_ + std::max<timestamp_us>(rng_.in(spec.gap_us), 1);
    if (next <= s_.start_us + s_.demand_us) push_at(next, event::kind::order, d, number + 1);
  }
  if (!sn.n || !sn.is_buyer) {
    ++r_.k.orders_refused;
    return;
  }
  wake(i);
  actors::submit_order(sn.n->system(), sn.buyer, std::move(req), std::chrono::seconds(30),
                       [this](actors::order_reply reply) {
                         if (reply.http_status == 201) {
                           ++r_.k.orders_placed;
                         } else {
                           ++r_.k.orders_refused;
                         }
                       });
}

void world::break_down(std::size_t b) {
  std::size_t i = 0;
  actors::outage_request req;
  timestamp_us length = 0;
  if (b != none) {
    const auto& spec = s_.breakdowns[b];
    i = index_.at(spec.node);
    req.machine = spec.machine;
    req.kind = spec.maintenance ? actors::outage_kind::maintenance : actors::outage_kind::breakdown;
    req.reason = spec.reason;
    length = spec.for_us;
  } else {
    // A seeded machine of a seeded factory, then the next one.
    std::vector<std::size_t> factories;
    for (std::size_t k = 0; k < nodes_.size(); ++k)
      if (!nodes_[k].spec.machines.empty()) factories.push_back(k);
    if (factories.empty()) return;
    i = factories[rng_.below(factories.size())];
    const auto& machines = nodes_[i].spec.machines;
    req.machine = machines[rng_.below(machines.size())];
    length = std::max<timestamp_us>(rng_.in(s_.faults.breakdown_us), us_per_min);
    req.reason = "seeded breakdown";
    const auto next = now_ + rng_.exponential(s_.faults.breakdowns_per_day);
    if (next <= s_.start_us + s_.demand_us) push_at(next, event::kind::breakdown, 0, none);
  }
  auto& sn = nodes_[i];
  trace("breakdown", i, b);
  note(i, fmt::format("BREAKDOWN of {} for {:.1f} h", req.machine,
                      static_cast<double>(length) / us_per_hour));
  if (!sn.n || !sn.participant) return;  // the node is down: so is the machine
  ++r_.breakdowns;
  req.what = actors::outage_request::action::down;
  req.until_us = sn.clock->now() + length;
  wake(i);
  actors::submit_outage(sn.n->system(), sn.participant, std::move(req), std::chrono::seconds(30),
                        [this, i](actors::outage_reply reply) {
                          if (reply.http_status != 201 && reply.http_status != 200)
                            note(i, "breakdown refused: " + reply.error);
                        });
}

void world::publish(std::size_t c) {
  const auto& spec = s_.capacity[c];
  const auto i = index_.at(spec.publisher);
  auto& sn = nodes_[i];
  trace("publish", i, c);
  if (!sn.n || !sn.capacity) {
    note(i, fmt::format("capacity offer {} not published: the node is down", c));
    return;
  }
  actors::publish_request req;
  req.capability = spec.capability;
  req.units = spec.units;
  req.unit_price_cents = spec.unit_price_cents;
  req.window_start_us = s_.start_us + spec.window_us.lo;
  req.window_end_us = s_.start_us + spec.window_us.hi;
  req.valid_until_us = spec.valid_us > 0 ? sn.clock->now() + spec.valid_us : 0;
  wake(i);
  actors::submit_publish(sn.n->system(), sn.capacity, std::move(req), std::chrono::seconds(30),
                         [this, i, c](actors::publish_reply reply) {
                           if (reply.http_status == 201) {
                             offer_ids_[c] = reply.offer.offer_id;
                             ++r_.k.capacity_offers;
                           } else {
                             note(i, "capacity offer refused: " + reply.error);
                           }
                         });
}

void world::book(std::size_t c, std::size_t b) {
  const auto& spec = s_.capacity[c].bookings[b];
  const auto i = index_.at(spec.booker);
  auto& sn = nodes_[i];
  trace("book", c, b);
  if (offer_ids_[c].empty() || !sn.n || !sn.capacity) {
    ++r_.k.capacity_not_asked;
    note(i, offer_ids_[c].empty() ? "capacity booking not asked: the offer is not published"
                                  : "capacity booking not asked: the node is down");
    return;
  }
  wake(i);
  actors::submit_book(
      sn.n->system(), sn.capacity, actors::book_request{offer_ids_[c], spec.units},
      std::chrono::seconds(30), [this, i](actors::book_reply reply) {
        // A booking the publisher answers ends in the store
        // (counted by collect); one never asked is counted here.
        if (reply.http_status == 404 || reply.http_status == 410 || reply.http_status == 400)
          ++r_.k.capacity_not_asked;
        if (reply.http_status != 201)
          note(i, fmt::format("capacity booking: {} {}", reply.http_status,
                              reply.error.empty() ? reply.booking.reason : reply.error));
      });
}

void world::crash(std::size_t i, std::string_view why) {
  auto& sn = nodes_[i];
  sn.crash_in_jobs = 0;
  if (!sn.n) return;
  trace("crash", i, 0);
  note(i, std::string(why));
  stop_node(sn, true);
  push_at(now_ + rng_.in(s_.faults.restart_after_us), event::kind::restart, i, 0);
}

void world::fire(event& e) {
  if (scheduled(e.what)) --scheduled_pending_;
  switch (e.what) {
    case event::kind::deliver: {
      --in_flight_;
      auto& to = nodes_[e.b];
      const auto link = std::minmax(e.a, e.b);
      if (!to.n || cut_.contains({link.first, link.second})) {
        ++r_.frames_lost;
        return;
      }
      ++r_.frames_delivered;
      // A frame decoded ahead comes with its decoding and hash.
      prepared_frame* p = e.prepared.get();
      if (p) p->finish();
      auto& frame = p ? p->frame : e.frame;
      trace("deliver", e.a, e.b, p ? p->hash : frame_hash(frame));
      // Only a buyer's frames are looked at here (a Confirm times its
      // negotiation); one not decoded yet only if it is a Confirm.
      if (to.is_buyer) {
        std::optional<result<wire::envelope>> decoded;
        const result<wire::envelope>* env = p ? &p->env : nullptr;
        if (!env)
          if (auto t = wire::peek_type(frame); t && *t == wire::message_type::confirm)
            env = &decoded.emplace(wire::decode(frame));
        if (env && *env)
          if (const auto* c = std::get_if<wire::confirm>(&(*env)->payload))
            confirmed_at_.emplace(c->order_id, now_);
      }
      wake(e.b);
      if (!p)
        to.net->deliver(nodes_[e.a].spec.id, frame);
      else if (to.net->up())
        to.n->receive_decoded(nodes_[e.a].spec.id, frame, std::move(p->env));
      note(e.b, {}, e.a, std::move(frame));
      return;
    }
    case event::kind::order:
      place_order(e.a, e.b);
      return;
    case event::kind::crash: {
      auto& sn = nodes_[e.a];
      if (!sn.n) return;
      // Half the crashes strike at once (the node is idle between steps),
      // half in the middle of its next activity, after 1..6 actor jobs.
      if (rng_.unit() < 0.5) {
        sn.crash_in_jobs = 1 + rng_.below(6);
        note(e.a, fmt::format("crash armed: after {} more jobs", sn.crash_in_jobs));
      } else {
        crash(e.a, "CRASH");
      }
      return;
    }
    case event::kind::restart: {
      if (nodes_[e.a].n) return;            // already up
      if (now_ < nodes_[e.a].down_until) {  // a disruption holds it down longer
        push_at(nodes_[e.a].down_until, event::kind::restart, e.a, 0);
        return;
      }
      trace("restart", e.a, 0);
      note(e.a, "RESTART from its store");
      if (auto st = start_node(e.a); !st) {
        r_.ok = false;
        r_.failure = "node " + nodes_[e.a].spec.id + " did not restart: " + st.to_string();
        return;
      }
      if (s_.faults.crashes_per_node_day > 0) {
        const auto next = now_ + rng_.exponential(s_.faults.crashes_per_node_day);
        if (next <= s_.start_us + s_.demand_us) push_at(next, event::kind::crash, e.a, 0);
      }
      return;
    }
    case event::kind::partition: {
      // A random link of a random node that has peers.
      const auto i = rng_.below(nodes_.size());
      if (!nodes_[i].peers.empty()) {
        auto it = nodes_[i].peers.begin();
        std::advance(it, static_cast<long>(rng_.below(nodes_[i].peers.size())));
        const auto link = std::minmax(i, *it);
        if (cut_.insert({link.first, link.second}).second) {
          ++r_.partitions;
          trace("partition", link.first, link.second);
          note(link.first, "PARTITION from " + nodes_[link.second].spec.id);
          note(link.second, "PARTITION from " + nodes_[link.first].spec.id);
          push_at(now_ + rng_.in(s_.faults.partition_us), event::kind::heal, link.first,
                  link.second);
        }
      }
      const auto next = now_ + rng_.exponential(s_.faults.partitions_per_day);
      if (next <= s_.start_us + s_.demand_us) push_at(next, event::kind::partition, 0, 0);
      return;
    }
    case event::kind::disrupt: {
      auto& sn = nodes_[e.a];
      const auto& d = s_.disruptions[e.b];
      sn.down_until = std::max(sn.down_until, now_ + d.for_us);
      trace("disrupt", e.a, e.b);
      note(e.a, fmt::format("DISRUPTION: down for {:.1f} h",
                            static_cast<double>(d.for_us) / us_per_hour));
      if (sn.n) {
        stop_node(sn, false);
        ++r_.disruptions;
      }
      push_at(sn.down_until, event::kind::restart, e.a, 0);
      return;
    }
    case event::kind::breakdown:
      break_down(e.b);
      return;
    case event::kind::publish:
      publish(e.a);
      return;
    case event::kind::book:
      book(e.a, e.b);
      return;
    case event::kind::heal:
      cut_.erase({e.a, e.b});
      trace("heal", e.a, e.b);
      note(e.a, "HEAL link to " + nodes_[e.b].spec.id);
      note(e.b, "HEAL link to " + nodes_[e.a].spec.id);
      return;
  }
}

std::size_t world::settle() {
  std::size_t total = 0;
  while (!active_.empty()) {
    const auto i = active_.take_first();
    auto& sn = nodes_[i];
    if (!sn.n) continue;
    if (sn.deferred_since != 0 && now_ >= sn.deferred_since + deferred_delay_us) {
      sn.n->flush_deferred_writes();
      sn.deferred_since = 0;
    }
    // One job at a time while a crash may strike between two of them.
    std::size_t ran = 0;
    running_ = i;
    if (!faults_ && sn.crash_in_jobs == 0) {
      ran = sn.n->run_ready();
    } else {
      const std::size_t budget = sn.crash_in_jobs > 0 ? sn.crash_in_jobs : none;
      while (ran < budget && crash_pending_ != i && sn.n->run_ready(1) == 1) ++ran;
    }
    running_ = none;
    total += ran;
    if (crash_pending_ == i) {
      crash_pending_ = none;
      ++r_.crash_point_crashes;
      crash(i, "CRASH at fault point " + crash_point_);
      continue;
    }
    if (sn.crash_in_jobs > 0) {
      sn.crash_in_jobs -= std::min(ran, sn.crash_in_jobs);
      if (sn.crash_in_jobs == 0) {
        ++r_.mid_step_crashes;
        crash(i, fmt::format("CRASH in the middle of a step ({} jobs after it was armed)", ran));
        continue;
      }
    }
    // Its timers changed only if it ran: re-register its earliest one, or
    // when its deferred writes are due if that is earlier.
    if (!sn.n->deferred_writes_pending())
      sn.deferred_since = 0;
    else if (sn.deferred_since == 0)
      sn.deferred_since = now_;
    auto d = sn.n->next_timer_in_us();
    if (sn.deferred_since != 0) {
      const auto flush_in = sn.deferred_since + deferred_delay_us - now_;
      d = d < 0 ? flush_in : std::min(d, flush_in);
    }
    drop_timer(sn);
    if (d >= 0) {
      sn.timer_due = now_ + d;
      timers_.emplace(sn.timer_due, i, sn.timer_gen);
    }
  }
  return total;
}

bool world::quiesced() {
  // A scheduled breakdown, capacity offer or booking still to come is part
  // of the run.
  if (in_flight_ != 0 || !cut_.empty() || scheduled_pending_ != 0) return false;
  for (auto& sn : nodes_) {
    if (!sn.n || sn.n->stats().outbox_pending != 0) return false;
    if (!sn.is_buyer) continue;
    bool open = false;
    auto st = actors::tables::orders.for_each(sn.n->context().store(),
                                              [&](std::string_view, actors::order_record&& o) {
                                                open = !terminal(o.state);
                                                return !open;
                                              });
    if (!st || open) return false;
  }
  return true;
}

std::string world::describe(result<actors::verify_report>&& rep, bool all) const {
  if (!rep) return "verify failed: " + rep.error().to_string() + "\n";
  std::string report;
  for (const auto& v : rep->violations) {
    if (!all && v.kind != actors::violation_kind::over_commitment &&
        v.kind != actors::violation_kind::corrupt_record)
      continue;
    report += fmt::format("  {} ({}) at node {}: {} {}: {}\n", actors::to_string(v.kind),
                          actors::invariant_of(v.kind), v.node, v.table, v.key, v.message);
    std::set<std::string> involved{v.node};
    for (const auto& sn : nodes_)
      if (v.message.find(sn.spec.id) != std::string::npos) involved.insert(sn.spec.id);
    for (const auto& id : involved) {
      report += fmt::format("    last events of {}:\n", id);
      for (const auto& entry : nodes_[index_.at(id)].tail)
        report += "      " + describe(entry) + "\n";
    }
  }
  return report;
}

std::string world::finish_check() {
  if (!pending_) return {};
  behind_->wait(pending_->job);
  auto report = describe(std::move(pending_->report), false);
  pending_.reset();
  if (!report.empty()) broken_behind_ = true;
  return report;
}

std::string world::check(bool all) {
  ++r_.invariant_checks;
  if (auto report = finish_check(); !report.empty()) return report;
  actors::verify_options vo;
  // A hold expires by its holder's clock: judge with the slowest one.
  vo.now_us = now_ - max_skew_us_;
  vo.violations_max = 20;
  std::vector<actors::store_changes> changed;
  std::vector<store::key_log> logs;  // changed[i]'s keys, as the nodes recorded them
  if (!all) {
    // Mid-run: only the invariants that hold at every instant, and only
    // over what each live store got since its last check (every store was
    // clean then, or the run would have stopped).
    for (auto& sn : nodes_) {
      if (!sn.n) continue;
      sn.unchecked.append(sn.n->take_written_keys());
      if (sn.unchecked.empty()) continue;
      if (!sn.index) sn.index = std::make_unique<actors::check_index>();
      changed.push_back({{sn.data_dir, &sn.n->context().store()}, sn.spec.id, {}, sn.index.get()});
      logs.push_back(std::exchange(sn.unchecked, {}));
    }
    if (changed.empty()) return {};
    if (checks_behind_) {
      // The keys are sorted by table there too.
      pending_ = std::make_unique<pending_check>();
      pending_->changed = std::move(changed);
      pending_->logs = std::move(logs);
      pending_->vo = vo;
      pending_->job = behind_->run_in_order([p = pending_.get()] {
        sort_keys(p->changed, std::move(p->logs));
        p->report = actors::verify_changes(p->changed, p->vo);
      });
      return {};
    }
    sort_keys(changed, std::move(logs));
  }
  // The checks read many stores, some inside a scan of another (agreement):
  // have every queued transaction applied first. A scan would wait for its
  // own store's anyway, but waiting while holding another store's read
  // could deadlock with the apply thread growing that store's map.
  if (behind_) behind_->drain();
  if (!all) return describe(actors::verify_changes(changed, vo), false);
  // The full check is the end's (the stores no longer write behind, and
  // their reads are thread-safe): with two threads allowed, on two.
  if (behind_) vo.threads = 2;
  std::string report;
  std::vector<actors::store_ref> stores;
  for (auto& sn : nodes_) {
    if (!sn.n) continue;
    stores.push_back({sn.data_dir, &sn.n->context().store()});
    if (stores.size() == actors::verify_stores_max) {
      report += describe(actors::verify_stores(stores, vo), true);
      stores.clear();
    }
  }
  if (!stores.empty()) report += describe(actors::verify_stores(stores, vo), true);
  return report;
}

std::uint64_t world::state_hash() {
  static constexpr std::string_view tables[] = {"meta",       "inbox",  "outbox",   "orders",
                                                "contracts",  "offers", "holds",    "bookings",
                                                "tombstones", "seq",    "resources"};
  std::uint64_t h = hash_init;
  for (auto& sn : nodes_) {
    h = hash_str(h, sn.spec.id);
    if (!sn.n) continue;
    for (auto t : tables) {
      h = hash_str(h, t);
      (void)sn.n->context().store().for_each(t, [&](std::string_view k, std::string_view v) {
        h = hash_str(hash_str(h, k), v);
        return true;
      });
    }
  }
  return h;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

void world::collect(sim_result& r) {
  auto& k = r.k;
  std::vector<double> lead_h, negotiation_ms;
  std::uint64_t on_time = 0;
  timestamp_us horizon_end = now_;
  struct capacity {
    std::int64_t per_bucket = 0;
    timestamp_us bucket_us = 0;
    std::int64_t booked = 0;
    std::vector<actors::outage_record> outages;
  };
  std::map<std::string, capacity> machines;
  for (auto& sn : nodes_) {
    if (!sn.n) continue;
    const auto& env = sn.n->context().store();
    (void)actors::tables::orders.for_each(env, [&](std::string_view, actors::order_record&& o) {
      order_span span{o.order_id, sn.spec.id, {}, {}, o.created_us, 0, o.due_us, 0};
      span.state = actors::to_string(o.state);
      if (o.round > 0) ++k.orders_resourced;
      if (!o.parent_order_id.empty()) {  // a component order: not customer demand
        ++k.component_orders;
        if (o.state == actors::order_state::contracted) ++k.component_contracted;
        r.orders.push_back(std::move(span));
        return true;
      }
      if (o.state == actors::order_state::contracted) {
        ++k.contracted;
        if (auto c = actors::tables::contracts.get(env, o.contract_id); c && *c) {
          span.seller = (*c)->seller;
          span.promised_due_us = (*c)->promised_due_us;
          if ((*c)->promised_due_us <= o.due_us) ++on_time;
          lead_h.push_back(static_cast<double>((*c)->promised_due_us - o.created_us) / us_per_hour);
        }
        if (auto it = confirmed_at_.find(o.order_id); it != confirmed_at_.end()) {
          span.contracted_us = it->second;
          negotiation_ms.push_back(static_cast<double>(it->second - o.created_us) / us_per_ms);
        }
      } else if (terminal(o.state)) {
        ++k.failed;
      } else {
        ++k.open;
      }
      r.orders.push_back(std::move(span));
      return true;
    });
    (void)actors::tables::outages.for_each(env, [&](std::string_view, actors::outage_record&& o) {
      ++k.outages;
      const auto end = o.ended_us != 0 ? std::min(o.ended_us, o.until_us) : o.until_us;
      if (end > o.from_us)  // not cancelled before it began
        r.outages.push_back({sn.spec.id, o.resource, o.outage_id, actors::to_string(o.kind),
                             o.from_us, end, o.reason});
      for (const auto& e : o.effects) {
        if (e.outcome == actors::replan_outcome::rescheduled) ++k.outage_rescheduled;
        if (e.outcome == actors::replan_outcome::delayed) ++k.outage_delayed;
        if (e.outcome == actors::replan_outcome::cancelled) ++k.outage_cancelled;
      }
      machines[sn.spec.id + "/" + o.resource].outages.push_back(std::move(o));
      return true;
    });
    (void)actors::tables::resources.for_each(env,
                                             [&](std::string_view, actors::resource_record&& res) {
                                               auto& m = machines[sn.spec.id + "/" + res.id];
                                               m.per_bucket = res.capacity;
                                               m.bucket_us = res.bucket_us;
                                               return true;
                                             });
    (void)actors::tables::capacity_bookings.for_each(
        env, [&](std::string_view, actors::capacity_booking_record&& b) {
          if (b.state == actors::capacity_booking_state::booked) ++k.capacity_booked;
          if (b.state == actors::capacity_booking_state::refused) ++k.capacity_refused;
          if (b.state == actors::capacity_booking_state::cancelled) ++k.capacity_cancelled;
          return true;
        });
    (void)actors::tables::bookings.for_each(
        env, [&](std::string_view, actors::reservation_record&& b) {
          auto& m = machines[sn.spec.id + "/" + b.resource];
          for (const auto& a : b.allocations) m.booked += a.units;
          horizon_end = std::max(horizon_end, b.end_us);
          r.bookings.push_back({sn.spec.id, b.resource, b.start_us, b.end_us});
          return true;
        });
  }
  for (const auto& [id, m] : machines) {
    if (m.per_bucket <= 0 || m.bucket_us <= 0) continue;
    // The run's buckets, less those the machine was out of service in.
    const auto first = r.start_us / m.bucket_us;
    const auto end = (horizon_end + m.bucket_us - 1) / m.bucket_us;
    std::vector<actors::down_span> down;
    for (const auto& o : m.outages)
      down.push_back(actors::down_span_of(o.first_bucket, o.last_bucket, o.ended_us, m.bucket_us));
    const auto buckets = end - first - actors::down_buckets(std::move(down), first, end);
    k.utilization[id] = buckets > 0
                            ? static_cast<double>(m.booked) /
                                  (static_cast<double>(buckets) * static_cast<double>(m.per_bucket))
                            : 0;
  }
  k.on_time_pct =
      k.contracted ? 100.0 * static_cast<double>(on_time) / static_cast<double>(k.contracted) : 0;
  k.lead_time_mean_h = mean(lead_h);
  k.lead_time_p95_h = percentile(lead_h, 0.95);
  k.negotiation_ms_mean = mean(negotiation_ms);
  k.negotiation_ms_p95 = percentile(negotiation_ms, 0.95);
  k.messages_per_order = k.orders_placed ? static_cast<double>(r.frames_delivered) /
                                               static_cast<double>(k.orders_placed)
                                         : 0;
}

result<sim_result> world::run() {
  const auto wall_start = std::chrono::steady_clock::now();
  r_.scenario = s_.name.empty() ? s_.path : s_.name;
  r_.seed = o_.seed;
  r_.start_us = s_.start_us;
  now_ = s_.start_us;
  if (o_.work_dir.empty()) {
    std::string tmpl =
        (fs::path(scratch_root(store_bytes_estimate(s_))) / "gearmesh-sim-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      return status(errc::storage, "cannot create a temporary directory: " + tmpl);
    dir_ = tmpl;
    owns_dir_ = true;
  } else {
    dir_ = o_.work_dir;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return status(errc::storage, dir_ + ": " + ec.message());
  }
  nodes_.resize(s_.nodes.size());
  active_.resize(nodes_.size());
  for (std::size_t i = 0; i < s_.nodes.size(); ++i) {
    nodes_[i].spec = s_.nodes[i];
    nodes_[i].data_dir = (fs::path(dir_) / s_.nodes[i].id).string();
    index_.emplace(s_.nodes[i].id, i);
  }
  for (auto& sn : nodes_)
    for (const auto& p : sn.spec.peers) sn.peers.insert(index_.at(p));
  if (s_.faults.buggify) {
    // Each point armed with probability 1/4 in this run, with a small rate:
    // seeds explore different combinations of rarely taken paths.
    static constexpr std::string_view crash_points[] = {
        "commit.before_submit", "commit.after_durable", "send.after_frames", "ack.before_erase"};
    static constexpr std::string_view net_points[] = {"net.drop", "net.duplicate", "net.drop_ack"};
    std::map<std::string, double, std::less<>> armed;
    for (auto p : crash_points)
      if (rng_.unit() < 0.25) armed.emplace(p, 0.0005 + 0.004 * rng_.unit());
    for (auto p : net_points)
      if (rng_.unit() < 0.25) armed.emplace(p, 0.005 + 0.05 * rng_.unit());
    for (const auto& [name, p] : armed) r_.fault_points.emplace(name, 0);
    faults_ = std::make_unique<fault::scope>(std::move(armed), rng_.next(),
                                             [this](std::string_view name) {
                                               if (running_ == none || !nodes_[running_].n) return;
                                               crash_pending_ = running_;
                                               crash_point_ = std::string(name);
                                               nodes_[running_].n->kill_now();
                                             });
  }
  // Seeded skews are drawn only when the scenario asks for them, so
  // scenarios without skew replay exactly as before.
  for (auto& sn : nodes_) {
    const auto skew = s_.faults.clock_skew_us > 0
                          ? rng_.in(-s_.faults.clock_skew_us, s_.faults.clock_skew_us)
                          : 0;
    max_skew_us_ = std::max<timestamp_us>(max_skew_us_, skew < 0 ? -skew : skew);
    sn.clock = std::make_unique<skewed_clock>(clock_, skew);
  }
  if (auto st = enough_space(); !st) return st;
  if (o_.write_behind) behind_ = std::make_unique<store::apply_thread>();
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (auto st = start_node(i); !st) return st;

  const timestamp_us demand_end = s_.start_us + s_.demand_us;
  const timestamp_us hard_end = s_.start_us + s_.max_us;
  for (std::size_t d = 0; d < s_.demand.size(); ++d)
    push_at(s_.start_us + rng_.in(s_.demand[d].gap_us), event::kind::order, d, 0);
  if (s_.faults.crashes_per_node_day > 0)
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      const auto at = s_.start_us + rng_.exponential(s_.faults.crashes_per_node_day);
      if (at <= demand_end) push_at(at, event::kind::crash, i, 0);
    }
  for (std::size_t d = 0; d < s_.disruptions.size(); ++d)
    push_at(s_.start_us + s_.disruptions[d].at_us, event::kind::disrupt,
            index_.at(s_.disruptions[d].node), d);
  if (s_.faults.partitions_per_day > 0) {
    const auto at = s_.start_us + rng_.exponential(s_.faults.partitions_per_day);
    if (at <= demand_end) push_at(at, event::kind::partition, 0, 0);
  }
  for (std::size_t b = 0; b < s_.breakdowns.size(); ++b)
    push_at(s_.start_us + s_.breakdowns[b].at_us, event::kind::breakdown, 0, b);
  offer_ids_.assign(s_.capacity.size(), {});
  for (std::size_t c = 0; c < s_.capacity.size(); ++c) {
    push_at(s_.start_us + s_.capacity[c].at_us, event::kind::publish, c, 0);
    for (std::size_t b = 0; b < s_.capacity[c].bookings.size(); ++b)
      push_at(s_.start_us + s_.capacity[c].bookings[b].at_us, event::kind::book, c, b);
  }
  if (s_.faults.breakdowns_per_day > 0) {
    const auto at = s_.start_us + rng_.exponential(s_.faults.breakdowns_per_day);
    if (at <= demand_end) push_at(at, event::kind::breakdown, 0, none);
  }

  timestamp_us next_check = s_.start_us + o_.check_every_us;
  std::uint64_t turns = 0;
  for (;;) {
    if (o_.interrupted && o_.interrupted->load(std::memory_order_relaxed))
      return status(errc::shutting_down, "interrupted at simulated time " + iso(now_));
    if (turns++ % free_space_every == 0)
      if (auto st = enough_space(); !st) return st;
    r_.actor_jobs += settle();
    if (behind_ && behind_->failed()) return behind_->failure();
    if (!r_.failure.empty()) break;
    if (now_ >= next_check) {
      next_check += o_.check_every_us;
      if (o_.inject) {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
          if (!nodes_[i].n) continue;
          wake(i);
          o_.inject(now_, nodes_[i].spec.id, *nodes_[i].n);
        }
        r_.actor_jobs += settle();
      }
      fail(check(false));
      if (!r_.failure.empty()) break;
      if (now_ >= demand_end && quiesced()) {
        r_.quiesced = true;
        break;
      }
    }
    // Stale timer entries (superseded or of a stopped node) go first.
    while (!timers_.empty()) {
      const auto& [due, i, gen] = *timers_.begin();
      if (nodes_[i].n && nodes_[i].timer_gen == gen) break;
      if (nodes_[i].timer_gen == gen) nodes_[i].timer_due = -1;
      timers_.erase(timers_.begin());
    }
    timestamp_us t = queue_.empty() ? hard_end + 1 : queue_.top().at;
    if (!timers_.empty()) t = std::min(t, std::get<0>(*timers_.begin()));
    t = std::min(t, next_check);
    if (t > hard_end) break;
    if (t > now_) {
      now_ = t;
      clock_.set(t);
    }
    // Timers first (node order for equal times), then the events due now.
    while (!timers_.empty() && std::get<0>(*timers_.begin()) <= now_) {
      const auto [due, i, gen] = *timers_.begin();
      timers_.erase(timers_.begin());
      if (nodes_[i].timer_gen == gen) nodes_[i].timer_due = -1;
      if (nodes_[i].n && nodes_[i].timer_gen == gen) wake(i);
    }
    while (!queue_.empty() && queue_.top().at <= now_) {
      // Moved out, not copied (a frame's bytes): the heap orders by `at`
      // and `seq` alone, which a move leaves as they are.
      event e = std::move(const_cast<event&>(queue_.top()));
      queue_.pop();
      fire(e);
    }
  }
  // The last mid-run check, when it ran on the apply thread.
  fail(finish_check());
  if (r_.failure.empty() && !r_.quiesced) {
    r_.ok = false;
    r_.failure = fmt::format(
        "  the network did not quiesce by max_hours ({}): {} frames in flight, {} links cut\n",
        iso(hard_end), in_flight_, cut_.size());
  }
  // Deferred writes (outbox erases of the last acknowledgements) would be
  // committed within deferred_delay_us: commit them before the stores are
  // checked and hashed.
  for (auto& sn : nodes_)
    if (sn.n) sn.n->flush_deferred_writes();
  // The state hash and the KPIs read the final stores like the full check:
  // with two threads allowed (write_behind), they run beside it. A store
  // that writes behind is one thread's alone (it forgets applied
  // transactions as it reads), so every store first stops writing behind:
  // that waits for its transactions and forgets them, and from then on its
  // reads are thread-safe. The two write other members of r_ (the check
  // only invariant_checks).
  std::uint64_t state = 0;
  std::thread side;
  if (behind_) {
    behind_->drain();
    if (behind_->failed()) return behind_->failure();
    for (auto& sn : nodes_)
      if (sn.n) sn.n->write_store_behind(nullptr);
    side = std::thread([this, &state] {
      state = state_hash();
      collect(r_);
    });
  }
  if (r_.failure.empty()) fail(check(true));
  if (side.joinable()) {
    side.join();
  } else {
    state = state_hash();
    collect(r_);
  }
  if (!r_.ok) {
    r_.failure = fmt::format("VIOLATION in {} with seed {} at simulated time {}:\n{}", r_.scenario,
                             o_.seed, iso(now_), r_.failure);
  }
  if (faults_)
    for (const auto& [name, n] : faults_->fired()) r_.fault_points[name] = n;
  r_.end_us = now_;
  r_.trace_hash = trace_;
  r_.state_hash = state;
  r_.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return r_;
}

}  // namespace

result<sim_result> run_simulation(const scenario& s, const sim_options& opts) {
  const auto start = std::chrono::steady_clock::now();
  result<sim_result> first = status(errc::internal, "not run");
  {
    world w(s, opts, true);
    first = w.run();
    if (!first || first->ok || !w.broken_behind()) return first;
  }
  // A violation found by a check on the apply thread is found one check
  // late, after the run went on. Run the seed again with checks that wait:
  // the same run up to that check, stopped there, with the report a run on
  // one thread gives. (Should the second run not break -- a test hook that
  // broke a store only once -- the first one's report stands.)
  world w(s, opts, false);
  auto again = w.run();
  if (!again || again->ok) return first;
  again->wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return again;
}

}  // namespace gearmesh::sim
