// Durable contract-net negotiations per second between real processes:
// group commit versus one sync per commit, and CurveZMQ versus plain TCP,
// measured in the same run.
//
//   bench_negotiation [--seconds S] [--warmup S] [--window W] [--gather-us U] [--latency-orders N]
//                     [--modes group,curve,one_sync] [--node-binary PATH] [--dir DIR]
//
// Network (per mode, fresh data directories): three factories run as real
// `gearmesh-node` processes on 127.0.0.1; the buyer is a node embedded in
// this process (node::open + the buyer actor, as an application embeds it),
// so this process is the buyer's real process. Every node stores synced
// ([store] sync = true); mode `group` uses group commit, mode `one_sync` sets
// [store] group_commit = false on all four nodes (one transaction and one
// fsync per commit). Both run plain TCP links ([security] insecure = true);
// mode `curve` is `group` with CurveZMQ on every link (keys generated for the
// run), which is how nodes are deployed.
//
// One negotiation = CFP to the three factories -> three Proposes (each backed
// by durable capacity holds) -> Accept to the best, Reject to the others ->
// Confirm. Every message is committed by its receiver with the state change
// it causes and acknowledged only after that commit. A negotiation counts as
// done when the buyer's commit that records the contract is durable.
//
// Per mode: the unloaded latency (one order in flight; order request to
// durable contract, p50/p99), then the throughput with `W` orders in flight
// over a fixed wall-clock window after a warm-up. Factory capacity is sized so
// that it never runs out, so every order should end contracted; failed orders
// and refused proposals are counted and printed (expected 0).
//
// DIR must be on a real disk (not tmpfs) for fsync to mean anything; by
// default a fresh directory under /tmp is used and removed. DESIGN.md targets:
// ratio >= 10x, >= 10,000 negotiations/s, p50 <= 3 ms. Never a timed test.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <caf/all.hpp>

#include "caf_messages.hpp"  // actors/src: order_atom, order_request/reply message types
#include "gearmesh/actors/buyer.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/keys/keys.hpp"
#include "gearmesh/node/admin.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/node/node.hpp"
#include "gearmesh/wire/records_generated.h"
#include "node_process.hpp"  // tests/integration: real gearmesh-node child processes

namespace {

using steady = std::chrono::steady_clock;
namespace actors = gearmesh::actors;

constexpr long tmpfs_magic = 0x01021994;
constexpr int factories = 3;
constexpr std::int64_t us_per_day = 86'400'000'000;
/// Upper bound on waiting for a node to come up or for in-flight orders to drain.
constexpr auto drain_timeout = std::chrono::seconds(60);
/// Tries to start the factories (on fresh ports) before giving up.
constexpr int start_attempts_max = 3;
/// Longest warm-up (waiting for a full window of completions).
constexpr auto warmup_max = std::chrono::seconds(60);
/// The in-flight window opens in this many steps of ramp_step each.
constexpr int ramp_steps = 20;
constexpr auto ramp_step = std::chrono::milliseconds(50);
/// The measured span lasts until this many windows of orders completed
/// (at least --seconds, at most measure_max).
constexpr int measure_windows = 3;
constexpr auto measure_max = std::chrono::seconds(60);

struct config {
  double seconds = 5.0;
  double warmup = 2.0;
  /// Enough orders in flight to keep both cores busy: with 256 the chain of
  /// about five durable commits per negotiation leaves a quarter of the
  /// CPU idle (bench/README.md), so the figure would measure latency.
  int window = 1024;
  int latency_orders = 500;
  std::vector<std::string> modes = {"group", "curve", "one_sync"};
  std::string node_binary = GEARMESH_NODE_BIN;
  std::string dir;     // parent of the per-run directory
  int gather_us = -1;  // [store] gather_us on every node; -1: the node's default
};

// --- processes ------------------------------------------------------------

using gearmesh::testing::free_port;
using gearmesh::testing::node_process;

/// The last 2000 bytes of a log.
std::string tail(const std::string& log) {
  return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
}

/// CPU seconds (user + system, all threads) process `pid` used so far; 0 if unknown.
double cpu_seconds(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/stat") : fmt::format("/proc/{}/stat", pid));
  std::string line;
  std::getline(in, line);
  // Fields after the command name (which may hold spaces) start after ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// --- measuring at the buyer -----------------------------------------------

/// Counters shared by the driver actor and the main thread.
struct tally {
  std::atomic<std::uint64_t> placed{0};
  std::atomic<std::uint64_t> contracted{0};
  std::atomic<std::uint64_t> failed{0};         // orders ending failed or cancelled
  std::atomic<std::uint64_t> refused{0};        // proposals refused by a factory
  std::atomic<std::uint64_t> not_placed{0};     // order requests answered with an error
  std::atomic<std::uint64_t> commit_errors{0};  // buyer commits that failed
  std::atomic<std::int64_t> in_flight{0};
  std::mutex latency_mutex;
  std::vector<double> latencies_ms;  // filled while `record_latency`
  std::atomic<bool> record_latency{false};
};

using start_atom = caf::atom_constant<caf::atom("start")>;
using halt_atom = caf::atom_constant<caf::atom("halt")>;
using ended_atom = caf::atom_constant<caf::atom("ended")>;

/// The buyer's node_context with one addition: when a commit that ends an
/// order (contracted, failed, cancelled) is durable, the driver hears of it.
/// Everything else is passed through unchanged.
class observed_context final : public gearmesh::node_context {
 public:
  explicit observed_context(gearmesh::node_context& inner) : inner_(inner) {}
  void set_driver(caf::actor d) { driver_ = std::move(d); }

  const std::string& node_id() const override { return inner_.node_id(); }
  const gearmesh::clock& clock() const override { return inner_.clock(); }
  const gearmesh::store::environment& store() const override { return inner_.store(); }

  void commit(gearmesh::effects fx) override {
    for (const auto& op : fx.writes.ops()) {
      if (op.op != gearmesh::store::write_op::kind::put ||
          op.table != actors::tables::orders.name())
        continue;
      // Our own record, just encoded: read the fields we need in place
      // (a full decode would cost the buyer's thread more than the bench may).
      const auto* o = flatbuffers::GetRoot<gearmesh::records::Order>(op.value.data());
      using gearmesh::records::OrderState;
      if (o->state() == OrderState::Negotiating || o->state() == OrderState::Awarded) continue;
      std::uint32_t refused = 0;
      if (o->proposals())
        for (const auto* p : *o->proposals())
          refused += p->state() == gearmesh::records::ProposalState::Refused;
      const std::string id = o->order_id() ? o->order_id()->str() : std::string{};
      const bool contracted = o->state() == OrderState::Contracted;
      fx.on_durable = [inner = std::move(fx.on_durable), d = driver_, id, contracted,
                       refused](const gearmesh::status& st) {
        if (inner) inner(st);
        caf::anon_send(d, ended_atom::value, id, contracted && st.is_ok(), refused);
      };
      break;
    }
    inner_.commit(std::move(fx));
  }

 private:
  gearmesh::node_context& inner_;
  caf::actor driver_;
};

struct driver_state {
  static inline const char* name = "bench.driver";
  int window = 0;
  bool issuing = false;
  /// Request time of each placed order, by order id.
  std::unordered_map<std::string, steady::time_point> started;
  /// Outcomes that arrived before the order's reply (not expected; handled).
  std::unordered_map<std::string, bool> early;
};

void finish(caf::stateful_actor<driver_state>* self, tally& t, bool contracted,
            std::uint32_t refused, steady::time_point started);

void place_one(caf::stateful_actor<driver_state>* self, const caf::actor& buyer, tally& t) {
  actors::order_request req;
  req.item = "FRAME";
  req.quantity = 1;
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  req.due_us = now_us + 365 * us_per_day;
  t.in_flight.fetch_add(1);
  t.placed.fetch_add(1, std::memory_order_relaxed);
  const auto t0 = steady::now();
  self->request(buyer, caf::infinite, actors::order_atom::value, std::move(req))
      .then(
          [=, &t](actors::order_reply& r) {
            if (r.http_status != 201) {
              t.not_placed.fetch_add(1, std::memory_order_relaxed);
              t.in_flight.fetch_sub(1);
              if (self->state.issuing) place_one(self, buyer, t);
              return;
            }
            auto& st = self->state;
            if (auto it = st.early.find(r.order_id); it != st.early.end()) {
              bool ok = it->second;
              st.early.erase(it);
              finish(self, t, ok, 0, t0);
              if (st.issuing) place_one(self, buyer, t);
              return;
            }
            st.started.emplace(std::move(r.order_id), t0);
          },
          [=, &t](caf::error&) {
            t.not_placed.fetch_add(1, std::memory_order_relaxed);
            t.in_flight.fetch_sub(1);
            if (self->state.issuing) place_one(self, buyer, t);
          });
}

void finish(caf::stateful_actor<driver_state>*, tally& t, bool contracted, std::uint32_t refused,
            steady::time_point started) {
  if (contracted)
    t.contracted.fetch_add(1, std::memory_order_relaxed);
  else
    t.failed.fetch_add(1, std::memory_order_relaxed);
  t.refused.fetch_add(refused, std::memory_order_relaxed);
  if (t.record_latency.load(std::memory_order_relaxed)) {
    std::lock_guard lk(t.latency_mutex);
    t.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(steady::now() - started).count());
  }
  t.in_flight.fetch_sub(1);
}

caf::behavior driver(caf::stateful_actor<driver_state>* self, caf::actor buyer, tally* t) {
  return {
      [=](start_atom, int window) {
        auto& st = self->state;
        st.issuing = true;
        st.window = window;
        for (auto n = t->in_flight.load(); n < window; ++n) place_one(self, buyer, *t);
      },
      [=](halt_atom) { self->state.issuing = false; },
      [=](ended_atom, const std::string& id, bool contracted, std::uint32_t refused) {
        auto& st = self->state;
        auto it = st.started.find(id);
        if (it == st.started.end()) {
          st.early.emplace(id, contracted);
          return;
        }
        auto t0 = it->second;
        st.started.erase(it);
        finish(self, *t, contracted, refused, t0);
        if (st.issuing && t->in_flight.load() < st.window) place_one(self, buyer, *t);
      },
  };
}

// --- one mode ---------------------------------------------------------------

struct outcome {
  std::string mode;
  bool ok = true;
  std::uint64_t contracted = 0;
  double seconds = 0;
  std::uint64_t failed = 0;
  std::uint64_t refused = 0;
  std::uint64_t not_placed = 0;
  double p50_ms = 0, p99_ms = 0;
  double cpu_seconds = 0;  // all four processes during the measured window
  double warmup_seconds = 0;
  std::uint64_t latency_samples = 0;
  gearmesh::node_stats buyer;
  double rate() const { return seconds > 0 ? contracted / seconds : 0; }
};

/// The runtime sections of node `id`; `keys` is the run's key directory
/// with CurveZMQ on, empty for plain TCP.
std::string head(const std::string& id, std::uint16_t port, const std::string& data_dir,
                 std::uint16_t admin_port, bool group_commit, int gather_us,
                 const std::string& keys) {
  return fmt::format(
      "[node]\nid = \"{}\"\nlisten = \"tcp://127.0.0.1:{}\"\ndata_dir = \"{}\"\n"
      "log_level = \"warn\"\n\n[admin]\nport = {}\n\n[store]\nsync = true\ngroup_commit = {}\n{}\n"
      "[transport]\nretry_initial_ms = 1000\nretry_max_ms = 5000\n\n[security]\n{}\n\n",
      id, port, data_dir, admin_port, group_commit ? "true" : "false",
      gather_us >= 0 ? fmt::format("gather_us = {}\n", gather_us) : std::string{},
      keys.empty() ? std::string("insecure = true")
                   : fmt::format("secret_key_file = \"{}/{}/node.key\"", keys, id));
}

std::string peer(const std::string& id, std::uint16_t port, const std::string& keys) {
  return fmt::format("[[peers]]\nid = \"{}\"\nendpoint = \"tcp://127.0.0.1:{}\"\n{}\n", id, port,
                     keys.empty()
                         ? std::string{}
                         : fmt::format("public_key_file = \"{}/{}/node.pub\"\n", keys, id));
}

/// A frame factory whose capacity (10^6 machine-minutes per hour per
/// machine, 3 minutes of work per frame) cannot run out during a run.
/// Margins differ so that the ranking has a clear winner.
std::string factory_roles(int i) {
  std::string machines;
  for (auto [id, capability] : {std::pair{"saw1", "sawing"}, std::pair{"weld1", "welding"},
                                std::pair{"weld2", "welding"}, std::pair{"paint1", "coating"}})
    machines += fmt::format(
        "[[factory.machines]]\nid = \"{}\"\ncapabilities = [\"{}\"]\n"
        "rate_cents_per_hour = 4000\ncapacity_per_bucket = 1000000\n\n",
        id, capability);
  return fmt::format(
      "[factory]\nhold_ttl_ms = 60000\nbucket_minutes = 60\nmargin_pct = {}\nhorizon_days = "
      "3650\nexecution = \"shop_floor\"\n\n"
      "{}[[factory.items]]\nid = \"FRAME\"\n\n"
      "[[factory.items.operations]]\ncapability = \"sawing\"\nminutes_per_unit = 1\n\n"
      "[[factory.items.operations]]\ncapability = \"welding\"\nminutes_per_unit = 1\n\n"
      "[[factory.items.operations]]\ncapability = \"coating\"\nminutes_per_unit = 1\n",
      10 + i, machines);
}

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// Waits until no order is in flight (bounded).
bool drain(tally& t) {
  const auto deadline = steady::now() + drain_timeout;
  while (t.in_flight.load() > 0) {
    if (steady::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

outcome run_mode(const config& cfg, const std::string& root, const std::string& mode) {
  outcome out;
  out.mode = mode;
  const bool group = mode != "one_sync";
  const std::string dir = root + "/" + mode;
  std::filesystem::create_directories(dir);
  const std::string keys = mode == "curve" ? dir + "/keys" : std::string{};

  struct ports {
    std::uint16_t zmq, admin;
  };
  std::vector<std::string> ids = {"velo"};
  for (int i = 1; i <= factories; ++i) ids.push_back(fmt::format("factory{}", i));
  for (const auto& id : ids) {
    if (keys.empty()) break;
    if (auto key = gearmesh::keys::write_keypair(keys + "/" + id, true); !key) {
      std::fprintf(stderr, "%s: keys: %s\n", mode.c_str(), key.error().to_string().c_str());
      out.ok = false;
      return out;
    }
  }
  std::vector<ports> p;
  std::vector<std::unique_ptr<node_process>> procs;
  // A port picked as free can be taken before the node binds it: then start
  // the factories again on other ports (fresh data directories).
  for (int attempt = 1;; ++attempt) {
    p.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) p.push_back({free_port(), free_port()});
    procs.clear();
    bool started = true;
    for (int i = 1; i <= factories && started; ++i) {
      const auto data = dir + "/data-" + ids[i];
      std::filesystem::remove_all(data);
      auto text = head(ids[i], p[i].zmq, data, p[i].admin, group, cfg.gather_us, keys) +
                  peer(ids[0], p[0].zmq, keys) + factory_roles(i);
      procs.push_back(
          std::make_unique<node_process>(cfg.node_binary, ids[i], dir, text, p[i].admin));
      started = procs.back()->start();
    }
    if (started) break;
    if (attempt == start_attempts_max) {
      std::fprintf(stderr, "%s: %s did not start:\n%s\n", mode.c_str(), ids[procs.size()].c_str(),
                   tail(procs.back()->log()).c_str());
      out.ok = false;
      return out;
    }
  }

  // The buyer, embedded: its node in this process.
  std::string text = head(ids[0], p[0].zmq, dir + "/data-" + ids[0], 0, group, cfg.gather_us, keys);
  for (int i = 1; i <= factories; ++i) text += peer(ids[i], p[i].zmq, keys);
  text += fmt::format(
      "[buyer]\nproposal_window_ms = 60000\nconfirm_timeout_ms = 60000\n\n"
      "[[buyer.sources]]\nitem = \"FRAME\"\nsellers = [\"{}\", \"{}\", \"{}\"]\n",
      ids[1], ids[2], ids[3]);
  auto file = gearmesh::config_file::parse(text, dir + "/" + ids[0] + ".toml");
  auto ncfg = file ? gearmesh::parse_node_config(*file)
                   : gearmesh::result<gearmesh::node_config>(file.error());
  auto roles =
      file ? actors::parse_roles(*file) : gearmesh::result<actors::roles_config>(file.error());
  if (!ncfg || !roles) {
    std::fprintf(stderr, "buyer config: %s\n",
                 (!ncfg ? ncfg.error() : roles.error()).to_string().c_str());
    out.ok = false;
    return out;
  }
  auto n = gearmesh::node::open(*ncfg);
  if (!n) {
    std::fprintf(stderr, "buyer: %s\n", n.error().to_string().c_str());
    out.ok = false;
    return out;
  }
  auto& node = **n;
  tally t;
  observed_context ctx(node.context());
  auto buyer = actors::spawn_buyer(node.system(), ctx, *roles->buyer);
  if (!buyer) {
    std::fprintf(stderr, "buyer: %s\n", buyer.error().to_string().c_str());
    out.ok = false;
    return out;
  }
  node.route({gearmesh::wire::message_type::propose, gearmesh::wire::message_type::refuse,
              gearmesh::wire::message_type::confirm, gearmesh::wire::message_type::failure,
              gearmesh::wire::message_type::production_event},
             *buyer);
  auto drv = node.system().spawn(driver, *buyer, &t);
  ctx.set_driver(drv);
  if (auto st = node.serve(); !st) {
    std::fprintf(stderr, "buyer: %s\n", st.to_string().c_str());
    out.ok = false;
    return out;
  }

  // Unloaded latency: one order in flight; the first orders warm up the
  // connections and caches and are not recorded.
  const int latency_warmup = std::min(cfg.latency_orders, 50);
  if (cfg.latency_orders > 0) {
    caf::anon_send(drv, start_atom::value, 1);
    while (t.contracted.load() + t.failed.load() < static_cast<std::uint64_t>(latency_warmup))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    t.record_latency = true;
    const auto target = static_cast<std::uint64_t>(latency_warmup + cfg.latency_orders);
    const auto deadline = steady::now() + drain_timeout;
    while (t.contracted.load() + t.failed.load() < target && steady::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    t.record_latency = false;
    caf::anon_send(drv, halt_atom::value);
    if (!drain(t)) out.ok = false;
    std::lock_guard lk(t.latency_mutex);
    out.latency_samples = t.latencies_ms.size();
    out.p50_ms = percentile(t.latencies_ms, 0.50);
    out.p99_ms = percentile(t.latencies_ms, 0.99);
  }

  // Throughput: `window` orders in flight; count the contracts made durable
  // over a measured span after the warm-up. The window opens over ramp_steps
  // steps so that the orders do not move through the pipeline in lockstep
  // (in one_sync mode they would otherwise complete in waves of `window`).
  // Warm-up: at least `warmup` seconds and until a whole window of orders
  // completed, so the pipeline is full (one_sync mode needs far longer).
  const auto done_before = t.contracted.load() + t.failed.load();
  const auto warm_start = steady::now();
  for (int k = 1; k <= ramp_steps; ++k) {
    caf::anon_send(drv, start_atom::value, std::max(1, cfg.window * k / ramp_steps));
    std::this_thread::sleep_for(ramp_step);
  }
  const auto warm_min = std::chrono::duration<double>(cfg.warmup);
  while ((steady::now() - warm_start < warm_min ||
          t.contracted.load() + t.failed.load() < done_before + cfg.window) &&
         steady::now() - warm_start < warmup_max)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  out.warmup_seconds = std::chrono::duration<double>(steady::now() - warm_start).count();
  auto cpu_now = [&] {
    double sum = cpu_seconds(0);
    for (auto& proc : procs) sum += cpu_seconds(proc->pid());
    return sum;
  };
  // Measured span: at least `seconds`, and long enough for measure_windows
  // windows of orders to complete (bounded), so a slow mode is not judged by
  // a handful of completions.
  const auto c0 = t.contracted.load();
  const auto cpu0 = cpu_now();
  const auto t0 = steady::now();
  const auto span_min = std::chrono::duration<double>(cfg.seconds);
  const auto wanted = c0 + static_cast<std::uint64_t>(measure_windows) * cfg.window;
  while ((steady::now() - t0 < span_min || t.contracted.load() < wanted) &&
         steady::now() - t0 < measure_max)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto c1 = t.contracted.load();
  out.cpu_seconds = cpu_now() - cpu0;
  out.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  out.contracted = c1 - c0;
  caf::anon_send(drv, halt_atom::value);
  if (!drain(t)) {
    std::fprintf(stderr, "%s: %lld orders still in flight after %lld s\n", mode.c_str(),
                 static_cast<long long>(t.in_flight.load()),
                 static_cast<long long>(drain_timeout.count()));
    out.ok = false;
  }
  out.failed = t.failed.load();
  out.refused = t.refused.load();
  out.not_placed = t.not_placed.load();
  out.buyer = node.stats();
  caf::anon_send_exit(drv, caf::exit_reason::user_shutdown);
  node.stop();
  for (auto& proc : procs) {
    const int st = proc->stop();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "%s: a factory did not stop cleanly:\n%s\n", mode.c_str(),
                   tail(proc->log()).c_str());
      out.ok = false;
    }
  }
  return out;
}

bool parse(int argc, char** argv, config& cfg) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--seconds" && (v = value())) {
      cfg.seconds = std::atof(v);
    } else if (arg == "--warmup" && (v = value())) {
      cfg.warmup = std::atof(v);
    } else if (arg == "--gather-us" && (v = value())) {
      cfg.gather_us = std::atoi(v);
    } else if (arg == "--window" && (v = value())) {
      cfg.window = std::atoi(v);
    } else if (arg == "--latency-orders" && (v = value())) {
      cfg.latency_orders = std::atoi(v);
    } else if (arg == "--modes" && (v = value())) {
      cfg.modes.clear();
      std::string s = v;
      for (std::size_t b = 0; b <= s.size();) {
        auto e = s.find(',', b);
        if (e == std::string::npos) e = s.size();
        cfg.modes.push_back(s.substr(b, e - b));
        b = e + 1;
      }
    } else if (arg == "--node-binary" && (v = value())) {
      cfg.node_binary = v;
    } else if (arg == "--dir" && (v = value())) {
      cfg.dir = v;
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--seconds S] [--warmup S] [--window W] [--gather-us U] [--latency-orders N]\n"
          "          [--modes group,curve,one_sync] [--node-binary PATH] [--dir DIR]\n",
          argv[0]);
      return false;
    }
  }
  for (const auto& m : cfg.modes) {
    if (m != "group" && m != "curve" && m != "one_sync") {
      std::fprintf(stderr, "unknown mode %s (group, curve, one_sync)\n", m.c_str());
      return false;
    }
  }
  // Bounds: keep a run short and the in-flight set small.
  if (cfg.seconds <= 0 || cfg.seconds > 120 || cfg.warmup < 0 || cfg.warmup > 60 ||
      cfg.window < 1 || cfg.window > 10'000 || cfg.latency_orders < 0 ||
      cfg.latency_orders > 100'000 || cfg.modes.empty()) {
    std::fprintf(stderr,
                 "out of range: seconds (0,120], warmup [0,60], window [1,10000], "
                 "latency-orders [0,100000]\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse(argc, argv, cfg)) return 2;
  std::signal(SIGPIPE, SIG_IGN);
  std::string parent = cfg.dir.empty() ? std::filesystem::temp_directory_path().string() : cfg.dir;
  std::filesystem::create_directories(parent);
  std::string tmpl = parent + "/gearmesh-bench-negotiation-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  struct statfs fs;
  if (statfs(root.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == tmpfs_magic)
    std::fprintf(stderr, "warning: %s is on tmpfs; fsync costs nothing there\n", root.c_str());
  std::printf(
      "durable negotiations: 1 buyer (in this process) + %d factory processes on 127.0.0.1, "
      "sync = true,\n%d orders in flight, %.1f s warm-up + %.1f s per mode, "
      "latency over %d orders one at a time, dir %s\n\n",
      factories, cfg.window, cfg.warmup, cfg.seconds, cfg.latency_orders, root.c_str());
  std::fflush(stdout);

  std::vector<outcome> results;
  for (const auto& m : cfg.modes) {
    results.push_back(run_mode(cfg, root, m));
    const auto& r = results.back();
    std::printf(
        "%-9s %9.0f negotiations/s (%llu in %.2f s after %.1f s warm-up, %.0f us CPU each)  "
        "latency p50 %.2f ms p99 %.2f ms (%llu)  "
        "failed %llu refused %llu not placed %llu  buyer: commits %llu in %llu transactions, "
        "frames in %llu out %llu, retransmits %llu%s\n",
        r.mode.c_str(), r.rate(), static_cast<unsigned long long>(r.contracted), r.seconds,
        r.warmup_seconds,
        r.contracted ? r.cpu_seconds * 1e6 / static_cast<double>(r.contracted) : 0.0, r.p50_ms,
        r.p99_ms, static_cast<unsigned long long>(r.latency_samples),
        static_cast<unsigned long long>(r.failed), static_cast<unsigned long long>(r.refused),
        static_cast<unsigned long long>(r.not_placed),
        static_cast<unsigned long long>(r.buyer.commits),
        static_cast<unsigned long long>(r.buyer.store_transactions),
        static_cast<unsigned long long>(r.buyer.frames_in),
        static_cast<unsigned long long>(r.buyer.frames_out),
        static_cast<unsigned long long>(r.buyer.retransmits), r.ok ? "" : "  [FAILED]");
    std::fflush(stdout);
  }
  std::filesystem::remove_all(root);

  bool ok = true;
  const outcome* group = nullptr;
  const outcome* one = nullptr;
  const outcome* curve = nullptr;
  for (const auto& r : results) {
    ok = ok && r.ok && r.contracted > 0 && r.failed == 0 && r.refused == 0 && r.not_placed == 0;
    if (r.mode == "group") group = &r;
    if (r.mode == "one_sync") one = &r;
    if (r.mode == "curve") curve = &r;
  }
  if (group && one && one->rate() > 0)
    std::printf("ratio group_commit/one_sync: %.1fx\n", group->rate() / one->rate());
  if (group && curve && group->rate() > 0) {
    std::printf("ratio curve/plain (both group commit): %.2f  (latency p50 %.2f vs %.2f ms)\n",
                curve->rate() / group->rate(), curve->p50_ms, group->p50_ms);
  }
  if (!ok) {
    std::fprintf(stderr, "a mode failed, or an order failed or was refused\n");
    return 1;
  }
  return 0;
}
