// Crash test harness (DESIGN.md invariant 6): a real four-node network under
// order load, kill -9 of a random node at random moments, restart, quiesce,
// then check that no order was lost and nothing was double-booked.
//
//   gearmesh_crash_harness [--seed N] [--kills K] [--orders-per-second R] ...
//
// The network is the reference network cut to one buyer (velo), two competing
// factories (framecraft, alloyframe) and one supplier (cellpack), each a
// `gearmesh-node` process on 127.0.0.1 with its own LMDB store, with deadlines
// short enough that the network settles within seconds.
//
// Run:
//   1. A loader thread submits orders to the buyer at a steady rate. Every
//      order the buyer answered 201 for is "acknowledged" and must never be
//      lost. Errors while the buyer is down are expected and not retried (the
//      next order is a new one).
//   2. The main loop sleeps a seeded random 20-400 ms, then SIGKILLs a seeded
//      random node and restarts it on the same data directory and ports. Some
//      lifetimes run with the runtime's crash points armed
//      (GEARMESH_CRASH_POINTS, seeded from --seed), so nodes also kill
//      themselves at exact places such as between a durable commit and the
//      sending of its messages; such self-kills are noticed (waitpid WNOHANG),
//      counted as kills and restarted too. Until K kills.
//   3. Load stops; the harness waits (bounded) until every acknowledged order
//      is terminal at the buyer, every node's outbox is empty and every hold
//      deadline has passed.
//   4. Checks through the admin API: every acknowledged order exists and is
//      terminal; buyer and seller contracts agree (same terms, same state);
//      no order has more than one active contract; a contracted order's
//      contract is active at its seller. Then every node is stopped with
//      SIGTERM (must exit 0) and `gearmesh verify` checks the stores offline
//      (over-commitment, agreement, holds past deadline, orphan bookings).
//
// Exit code 0 only if all of it is clean; 1 on a violation or a node failure;
// 2 on bad arguments. On failure the work directory (configs, stores, logs) is
// kept and its path printed with the tail of every node's log.
//
// The seed fixes the harness's choices (sleeps, victims, which lifetimes are
// armed, the crash points' own seeds, the orders); process scheduling is real,
// so two runs with one seed kill at the same choices, not the same instants.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "../integration/node_process.hpp"
#include "../integration/reference_network.hpp"

namespace {

using namespace std::chrono_literals;
using namespace gearmesh::testing;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

constexpr std::int64_t us_per_day = 86'400'000'000;

// Deadlines of the network. The hold outlives the proposal window and the
// confirm timeout, so an Accept normally finds its hold; kills stretch that.
constexpr gearmesh::testing::network_timing timing{/*proposal_window_ms=*/400,
                                                   /*confirm_timeout_ms=*/800,
                                                   /*hold_ttl_ms=*/1500,
                                                   /*retry_initial_ms=*/50,
                                                   /*retry_max_ms=*/500};

constexpr const char* default_crash_points =
    "commit.after_durable:0.01,commit.before_submit:0.005,send.after_frames:0.01,"
    "ack.before_erase:0.01";

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

struct options {
  std::uint64_t seed = 1;
  int kills = 50;
  double orders_per_second = 25;
  double armed_fraction = 0.5;
  std::string crash_points = default_crash_points;
  int quiesce_timeout_s = 60;
  int run_timeout_s = 0;  // 0: derived from kills
  std::string work_dir;
  std::string node_bin = GEARMESH_NODE_BIN;
  std::string cli_bin = GEARMESH_CLI_BIN;
  bool keep_dir = false;
  bool verbose = false;
};

/// Everything that went wrong; the run fails if it is not empty.
class findings {
 public:
  void add(std::string what) {
    std::lock_guard<std::mutex> guard{mx_};
    if (list_.size() < list_max_) list_.push_back(std::move(what));
    ++count_;
  }
  std::size_t count() const {
    std::lock_guard<std::mutex> guard{mx_};
    return count_;
  }
  void print() const {
    std::lock_guard<std::mutex> guard{mx_};
    for (const auto& f : list_) std::printf("  VIOLATION %s\n", f.c_str());
    if (count_ > list_.size())
      std::printf("  ... and %zu more\n", static_cast<std::size_t>(count_ - list_.size()));
  }

 private:
  static constexpr std::size_t list_max_ = 50;
  mutable std::mutex mx_;
  std::vector<std::string> list_;
  std::size_t count_ = 0;
};

// --- the network ------------------------------------------------------------

/// One node of the network and the bookkeeping of its current lifetime.
struct member {
  std::string id;
  std::unique_ptr<node_process> proc;
  bool armed = false;             // this lifetime has crash points armed
  std::uintmax_t log_offset = 0;  // log size when this lifetime started
  int lifetimes = 0;
};

class network {
 public:
  network(const options& o, std::string dir) : opts_(o), dir_(std::move(dir)) {
    for (auto id : {"velo", "framecraft", "alloyframe", "cellpack"})
      ports_[id] = gearmesh::testing::node_ports{free_port(), free_port()};
    // CurveZMQ on every link, as deployed: restarts re-handshake each time.
    keys_ = dir_ + "/keys";
    if (auto st = gearmesh::testing::write_network_keys(keys_, ports_); !st)
      throw std::runtime_error("writing keys: " + st.to_string());
    add("velo", buyer_config());
    add("framecraft", factory_config("framecraft", 3600, 30));
    add("alloyframe", factory_config("alloyframe", 3800, 60));
    add("cellpack", supplier_config());
  }

  std::vector<member>& members() { return members_; }
  member& buyer() { return members_.front(); }
  const std::string& dir() const { return dir_; }

  std::vector<std::string> data_dirs() const {
    std::vector<std::string> out;
    for (const auto& m : members_) out.push_back(m.proc->data_dir());
    return out;
  }

 private:
  void add(const std::string& id, const std::string& config) {
    member m;
    m.id = id;
    m.proc = std::make_unique<node_process>(opts_.node_bin, id, dir_ + "/" + id, config,
                                            ports_[id].admin);
    members_.push_back(std::move(m));
  }

  std::string buyer_config() {
    return node_sections("velo", ports_, timing, keys_) + buyer_section(timing);
  }

  // Welding is the bottleneck (12 min per frame, `weld_capacity` minutes per
  // hour bucket on each of two robots), so the factories compete for it and
  // calendars fill up.
  std::string factory_config(const std::string& id, int rate, int weld_capacity) {
    gearmesh::testing::factory_shape f;
    f.rate_cents_per_hour = rate;
    f.welders = 2;
    f.weld_capacity = weld_capacity;
    f.margin_pct = 12;
    f.horizon_days = 30;
    return node_sections(id, ports_, timing, keys_) + factory_section(f, timing);
  }

  std::string supplier_config() {
    return node_sections("cellpack", ports_, timing, keys_) +
           supplier_section(timing, /*lead_time_days=*/1, /*horizon_days=*/30);
  }

  const options& opts_;
  std::string dir_;
  std::map<std::string, gearmesh::testing::node_ports> ports_;
  std::string keys_;
  std::vector<member> members_;
};

// --- kills and restarts -----------------------------------------------------

struct kill_counts {
  int external = 0;
  std::map<std::string, int> by_point;  // self-kills at crash points
  int self() const {
    int n = 0;
    for (const auto& [p, k] : by_point) n += k;
    return n;
  }
  int total() const { return external + self(); }
};

/// The crash point named in a lifetime's log ("crash point NAME fired"), if any.
std::string crash_point_of(const std::string& log) {
  static const std::string marker = "crash point ";
  auto at = log.rfind(marker);
  if (at == std::string::npos) return {};
  auto begin = at + marker.size();
  auto end = log.find(' ', begin);
  if (end == std::string::npos || log.compare(end, 7, " fired,") != 0) return {};
  return log.substr(begin, end - begin);
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return fmt::format("exit code {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("signal {} ({})", WTERMSIG(st), strsignal(WTERMSIG(st)));
  return fmt::format("wait status {}", st);
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
    if (n == lines) return text.substr(nl + 1);
  }
  return text.substr(pos);
}

/// The environment of a lifetime without crash points, even if the harness's
/// own environment arms some.
std::map<std::string, std::string> disarmed_environment() {
  return {{"GEARMESH_CRASH_POINTS", ""}, {"GEARMESH_FAULT_SEED", ""}};
}

class chaos {
 public:
  chaos(const options& o, network& net, findings& f)
      : opts_(o), net_(net), findings_(f), rng_(o.seed) {}

  kill_counts& kills() { return kills_; }
  int restarts() const { return restarts_; }

  /// Starts every node for the first time (crash points disarmed: the network
  /// must come up before the chaos starts).
  bool start_all() {
    for (auto& m : net_.members()) {
      m.armed = false;
      m.proc->set_environment(disarmed_environment());
      m.log_offset = m.proc->log_size();
      ++m.lifetimes;
      if (!m.proc->start(20s)) {
        findings_.add(fmt::format("{} did not start: {}", m.id, tail(m.proc->log(), 20)));
        return false;
      }
    }
    return true;
  }

  /// Reaps nodes that died by themselves, counts and restarts them. Each death
  /// without a crash point is a finding (a node must not die on its own).
  void reap(bool allow_arming) {
    for (auto& m : net_.members()) {
      if (auto st = m.proc->poll()) {
        account(m, *st, false);
        restart(m, allow_arming);
      }
    }
  }

  /// SIGKILLs `m` (if running), counts it and restarts it.
  void kill(member& m, bool allow_arming) {
    if (!m.proc->running()) return restart(m, allow_arming);
    if (opts_.verbose)
      std::printf("[%7.3f] kill -9 %s (pid %d)\n", seconds_since(t0_), m.id.c_str(), m.proc->pid());
    int st = m.proc->stop(SIGKILL);
    account(m, st, true);
    restart(m, allow_arming);
  }

  /// Sleeps `d`, reaping and restarting self-killed nodes every 10 ms.
  void sleep_watching(std::chrono::milliseconds d, bool allow_arming) {
    auto until = steady::now() + d;
    while (steady::now() < until) {
      reap(allow_arming);
      std::this_thread::sleep_for(std::min<steady::duration>(10ms, until - steady::now()));
    }
  }

  /// Restarts every node whose lifetime has crash points armed without them:
  /// a clean stop (SIGTERM) and a start, so the final phase runs disarmed. A
  /// crash point that fires during the stop counts as a kill.
  void disarm_all() {
    for (auto& m : net_.members()) {
      if (!m.armed || !m.proc->running()) continue;
      int st = m.proc->stop(SIGTERM);
      if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) account(m, st, false);
      restart(m, false);
    }
  }

  std::mt19937_64& rng() { return rng_; }
  void set_t0(steady::time_point t) { t0_ = t; }

 private:
  void account(member& m, int st, bool killed_by_us) {
    auto point = crash_point_of(m.proc->log_since(m.log_offset));
    if (!point.empty()) {
      ++kills_.by_point[point];
      if (opts_.verbose)
        std::printf("[%7.3f] %s killed itself at crash point %s\n", seconds_since(t0_),
                    m.id.c_str(), point.c_str());
      return;
    }
    if (killed_by_us) {
      ++kills_.external;
      return;
    }
    findings_.add(fmt::format("{} died by itself ({}), not at a crash point; log tail:\n{}", m.id,
                              describe_status(st), tail(m.proc->log_since(m.log_offset), 15)));
  }

  /// Restarts `m` on its data directory; crash points armed for a seeded
  /// share of lifetimes. A node that dies while starting (a crash point during
  /// recovery) is counted and started again, bounded.
  void restart(member& m, bool allow_arming) {
    constexpr int attempts_max = 10;
    for (int attempt = 0; attempt < attempts_max; ++attempt) {
      const bool arm =
          allow_arming && attempt < 3 && std::bernoulli_distribution(opts_.armed_fraction)(rng_);
      const auto fault_seed = rng_();
      m.armed = arm;
      if (arm)
        m.proc->set_environment({{"GEARMESH_CRASH_POINTS", opts_.crash_points},
                                 {"GEARMESH_FAULT_SEED", std::to_string(fault_seed)}});
      else
        m.proc->set_environment(disarmed_environment());
      m.log_offset = m.proc->log_size();
      ++m.lifetimes;
      ++restarts_;
      if (m.proc->start(20s)) return;
      if (m.proc->running()) {
        // Alive but its admin API never answered: a hang is a finding.
        findings_.add(
            fmt::format("{} did not answer /v1/health within 20 s after a restart; "
                        "log tail:\n{}",
                        m.id, tail(m.proc->log_since(m.log_offset), 15)));
        m.proc->stop(SIGKILL);
        continue;
      }
      account(m, m.proc->exit_status(), false);
    }
    findings_.add(fmt::format("{} could not be restarted in {} attempts", m.id, attempts_max));
  }

  const options& opts_;
  network& net_;
  findings& findings_;
  std::mt19937_64 rng_;
  kill_counts kills_;
  int restarts_ = 0;
  steady::time_point t0_ = steady::now();
};

// --- order load -------------------------------------------------------------

struct load_counts {
  std::uint64_t acknowledged = 0;
  std::uint64_t refused = 0;      // 4xx/5xx answers (503 while busy, ...)
  std::uint64_t unreachable = 0;  // connection errors and timeouts
  std::uint64_t bad_request = 0;  // 400: a harness bug
};

class loader {
 public:
  loader(const options& o, node_process& buyer) : opts_(o), buyer_(buyer), rng_(o.seed ^ 0x5eed) {}
  ~loader() { stop(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// The acknowledged order ids (call after stop()).
  const std::vector<std::string>& acknowledged() const { return acked_; }
  const load_counts& counts() const { return counts_; }

 private:
  void run() {
    const auto period = std::chrono::duration_cast<steady::duration>(
        std::chrono::duration<double>(1.0 / std::max(0.1, opts_.orders_per_second)));
    auto next = steady::now();
    std::uint64_t n = 0;
    while (!stop_) {
      auto now = steady::now();
      if (now < next) {
        std::this_thread::sleep_for(std::min<steady::duration>(next - now, 50ms));
        continue;
      }
      // No catching up after a stall: a down buyer does not cause a burst.
      next = std::max(next + period, now);
      submit(n++);
    }
  }

  void submit(std::uint64_t n) {
    const bool battery = std::uniform_int_distribution<int>(0, 3)(rng_) == 0;
    const auto days = std::uniform_int_distribution<int>(2, 25)(rng_);
    json req = {
        {"item", battery ? "BATTERY" : "FRAME"},
        {"quantity", std::uniform_int_distribution<int>(1, 4)(rng_)},
        {"due_us", now_us() + days * us_per_day},
        {"attributes", {{"colour", n % 3 == 0 ? "red" : "black"}, {"seq", std::to_string(n)}}}};
    auto r = gearmesh::admin::call("127.0.0.1", buyer_.admin_port(), "POST", "/v1/orders",
                                   req.dump(), 3000);
    if (!r) {
      ++counts_.unreachable;
      return;
    }
    if (r->status == 201) {
      auto j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.contains("order_id") && j["order_id"].is_string()) {
        acked_.push_back(j["order_id"].get<std::string>());
        ++counts_.acknowledged;
        return;
      }
      ++counts_.bad_request;
      return;
    }
    if (r->status == 400)
      ++counts_.bad_request;
    else
      ++counts_.refused;
  }

  const options& opts_;
  node_process& buyer_;
  std::mt19937_64 rng_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::string> acked_;
  load_counts counts_;
};

// --- quiescence and checks --------------------------------------------------

bool terminal(const std::string& state) {
  return state == "contracted" || state == "failed" || state == "cancelled";
}

struct outcome {
  std::map<std::string, std::string> state_of;  // acknowledged order -> final state
  std::set<std::string> missing;                // acknowledged, 404 at the buyer
  std::map<std::string, int> failure_reasons;   // failed orders by reason
};

/// Polls until every acknowledged order is terminal (or missing) at the buyer
/// and every node's outbox is empty, then waits out the hold deadlines and
/// checks the outboxes again. Dead nodes are restarted (disarmed) meanwhile.
bool quiesce(const options& o, network& net, chaos& ch, const std::vector<std::string>& acked,
             outcome& out, findings& f) {
  const auto deadline = steady::now() + std::chrono::seconds(o.quiesce_timeout_s);
  std::set<std::string> open(acked.begin(), acked.end());
  auto& buyer = *net.buyer().proc;
  auto outboxes_empty = [&](std::string* why) {
    for (auto& m : net.members()) {
      auto j = m.proc->api("GET", "/v1/metrics");
      if (!j.is_object() || j["_http_status"] != 200) {
        if (why) *why = m.id + ": no metrics";
        return false;
      }
      auto pending = j.value("outbox_pending", std::uint64_t{1});
      if (pending != 0) {
        if (why) *why = fmt::format("{}: outbox_pending {}", m.id, pending);
        return false;
      }
    }
    return true;
  };
  auto orders_settled = [&](std::string* why) {
    // Acknowledged orders, one by one, until each is terminal (terminal is final).
    for (auto it = open.begin(); it != open.end();) {
      auto j = buyer.api("GET", "/v1/orders/" + *it);
      if (!j.is_object()) {
        if (why) *why = "buyer unreachable";
        return false;
      }
      if (j["_http_status"] == 404) {
        out.missing.insert(*it);
        it = open.erase(it);
        continue;
      }
      auto state = j.value("state", std::string{});
      if (j["_http_status"] != 200 || !terminal(state)) {
        if (why) *why = fmt::format("{} open orders, e.g. {} {}", open.size(), *it, state);
        return false;
      }
      out.state_of[*it] = state;
      if (state == "failed") {
        ++out.failure_reasons[j.value("reason", std::string{})];
      }
      it = open.erase(it);
    }
    // Orders placed but not acknowledged (the reply was lost) must end too.
    auto all = buyer.api("GET", "/v1/orders");
    if (!all.is_object() || !all.contains("orders")) {
      if (why) *why = "buyer unreachable";
      return false;
    }
    for (auto& ord : all["orders"])
      if (!terminal(ord.value("state", std::string{}))) {
        if (why)
          *why = fmt::format("order {} {}", ord.value("order_id", std::string{}),
                             ord.value("state", std::string{}));
        return false;
      }
    return true;
  };
  std::string why;
  auto wait_settled = [&] {
    while (steady::now() < deadline) {
      ch.reap(false);
      if (orders_settled(&why) && outboxes_empty(&why)) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  };
  bool settled = wait_settled();
  if (settled) {
    // Nothing is in flight, so no hold is taken from now on: one TTL and every
    // hold deadline has passed. Then the outboxes must still be empty (expiry
    // sends nothing) and no node may have died.
    ch.sleep_watching(std::chrono::milliseconds(timing.hold_ttl_ms + 500), false);
    settled = wait_settled();
  }
  if (!settled)
    f.add(fmt::format("the network did not quiesce within {} s: {}", o.quiesce_timeout_s, why));
  for (const auto& id : out.missing) f.add("LOST order " + id + ": acknowledged, unknown at buyer");
  return settled;
}

/// Contracts of a node by id (the admin API lists at most 10,000).
std::map<std::string, json> contracts_of(node_process& n, bool& complete) {
  std::map<std::string, json> out;
  auto j = n.api("GET", "/v1/contracts");
  if (!j.is_object() || !j.contains("contracts")) {
    complete = false;
    return out;
  }
  for (auto& c : j["contracts"]) out[c.value("contract_id", std::string{})] = c;
  if (out.size() >= 10'000) complete = false;
  return out;
}

/// Buyer/seller agreement and one active contract per order, via the admin API.
void check_contracts(network& net, const outcome& out, findings& f, int& active_contracts,
                     int& cancelled_contracts) {
  bool complete = true;
  auto at_buyer = contracts_of(*net.buyer().proc, complete);
  std::map<std::string, std::map<std::string, json>> at_seller;
  for (auto& m : net.members())
    if (m.id != net.buyer().id) at_seller[m.id] = contracts_of(*m.proc, complete);
  if (!complete) f.add("could not list every contract through the admin API");
  auto terms = [](json c) {
    c.erase("role");
    c.erase("_http_status");
    return c;
  };
  std::map<std::string, int> active_per_order;
  active_contracts = 0;
  cancelled_contracts = 0;
  for (auto& [id, c] : at_buyer) {
    if (c.value("role", "") != "buyer") f.add("contract " + id + " at velo has role " + c.dump());
    auto seller = c.value("seller", std::string{});
    auto s = at_seller.find(seller);
    if (s == at_seller.end() || !s->second.contains(id)) {
      f.add(fmt::format("DISAGREEMENT contract {} ({}) at velo, missing at {}", id,
                        c.value("state", ""), seller));
      continue;
    }
    if (terms(c) != terms(s->second[id]))
      f.add(fmt::format("DISAGREEMENT contract {}: velo {} vs {} {}", id, terms(c).dump(), seller,
                        terms(s->second[id]).dump()));
    if (c.value("state", "") == "active") {
      ++active_contracts;
      ++active_per_order[c.value("order_id", std::string{})];
    } else {
      ++cancelled_contracts;
    }
  }
  for (auto& [seller, cs] : at_seller)
    for (auto& [id, c] : cs) {
      if (!at_buyer.contains(id))
        f.add(fmt::format("DISAGREEMENT contract {} ({}) at {}, missing at velo", id,
                          c.value("state", ""), seller));
      if (c.value("state", "") == "active" && !at_buyer.contains(id))
        ++active_per_order[c.value("order_id", std::string{})];
    }
  for (auto& [order, n] : active_per_order)
    if (n > 1) f.add(fmt::format("DOUBLE-BOOKED order {}: {} active contracts", order, n));
  // A contracted order's contract is active at the buyer.
  auto& buyer = *net.buyer().proc;
  for (auto& [order, state] : out.state_of) {
    if (state != "contracted") continue;
    auto j = buyer.api("GET", "/v1/orders/" + order);
    auto c = j.is_object() ? j["contract"] : json{};
    if (!c.is_object() || c.value("state", "") != "active")
      f.add("order " + order + " contracted without an active contract: " + j.dump());
  }
}

/// Runs `gearmesh --json verify` over every store; the report goes to
/// `report_path`, stderr to `report_path`.err. Returns the exit code: 0 clean,
/// 1 violations, anything else = verify could not run.
int run_verify(const options& o, network& net, const std::string& report_path) {
  std::vector<std::string> args{o.cli_bin, "--json", "verify"};
  for (auto& d : net.data_dirs()) args.push_back(d);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err_path = report_path + ".err";
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(report_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Turns verify's exit code and JSON report into findings; returns a one-line
/// summary. A store whose reservations or contracts verify could not check is
/// a finding too: the harness gives it every store and every capacity.
std::string judge_verify(int rc, const std::string& report, const std::string& errors,
                         findings& f) {
  auto j = json::parse(report, nullptr, false);
  if ((rc != 0 && rc != 1) || !j.is_object()) {
    f.add(fmt::format("gearmesh verify could not run (exit {}): {}{}", rc, tail(errors, 5),
                      tail(report, 5)));
    return fmt::format("could not run (exit {})", rc);
  }
  std::uint64_t orders = 0, contracts = 0, bookings = 0, holds = 0;
  for (auto& st : j["stores"]) {
    orders += st.value("orders", std::uint64_t{0});
    contracts += st.value("contracts", std::uint64_t{0});
    bookings += st.value("bookings", std::uint64_t{0});
    holds += st.value("holds", std::uint64_t{0});
  }
  for (auto& v : j["violations"])
    f.add(fmt::format("verify: {} at {}, {} {}: {}", v.value("kind", std::string{}),
                      v.value("node", std::string{}), v.value("table", std::string{}),
                      v.value("key", std::string{}), v.value("message", std::string{})));
  const auto total = j.value("violations_total", std::uint64_t{0});
  if (rc == 1 && total == 0) f.add("gearmesh verify exited 1 without listing a violation");
  const auto unchecked_contracts = j["unchecked"].value("contracts", std::uint64_t{0});
  const auto unchecked_reservations = j["unchecked"].value("reservations", std::uint64_t{0});
  if (unchecked_contracts + unchecked_reservations > 0)
    f.add(fmt::format("gearmesh verify left {} contracts and {} reservations unchecked",
                      unchecked_contracts, unchecked_reservations));
  return fmt::format("{} ({} violations; {} orders, {} contracts, {} bookings, {} holds)",
                     rc == 0 ? "clean" : "VIOLATIONS", total, orders, contracts, bookings, holds);
}

std::string make_work_dir(const options& o) {
  if (!o.work_dir.empty()) {
    std::filesystem::create_directories(o.work_dir);
    return o.work_dir;
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "gearmesh-crash-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return {};
  return tmpl;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"gearmesh_crash_harness: kill -9 nodes of a real network under order load"};
  app.add_option("--seed", o.seed, "seed of every choice the harness makes");
  app.add_option("--kills", o.kills, "kills (external kill -9 + self-kills at crash points)")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--orders-per-second", o.orders_per_second, "order load on the buyer")
      ->check(CLI::Range(0.1, 10'000.0));
  app.add_option("--armed-fraction", o.armed_fraction,
                 "share of node lifetimes with crash points armed")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--crash-points", o.crash_points, "GEARMESH_CRASH_POINTS of armed lifetimes");
  app.add_option("--quiesce-timeout", o.quiesce_timeout_s, "seconds to wait for quiescence")
      ->check(CLI::Range(1, 3600));
  app.add_option("--run-timeout", o.run_timeout_s,
                 "seconds the kill phase may take (default: 2 per kill + 60)")
      ->check(CLI::Range(0, 86'400));
  app.add_option("--work-dir", o.work_dir,
                 "directory for configs, stores and logs "
                 "(default: a new temporary directory)");
  app.add_option("--node-bin", o.node_bin, "gearmesh-node binary");
  app.add_option("--cli-bin", o.cli_bin, "gearmesh CLI binary (runs verify)");
  app.add_flag("--keep-dir", o.keep_dir, "keep the work directory after a clean run");
  app.add_flag("-v,--verbose", o.verbose, "log every kill and restart");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  const auto t0 = steady::now();
  const auto dir = make_work_dir(o);
  if (dir.empty()) {
    std::fprintf(stderr, "gearmesh_crash_harness: cannot create a work directory\n");
    return 1;
  }
  std::printf("crash harness: seed %llu, %d kills, %.1f orders/s, work dir %s\n",
              static_cast<unsigned long long>(o.seed), o.kills, o.orders_per_second, dir.c_str());

  findings f;
  network net(o, dir);
  chaos ch(o, net, f);
  ch.set_t0(t0);
  loader load(o, *net.buyer().proc);
  outcome out;
  int active_contracts = 0;
  int cancelled_contracts = 0;
  int verify_rc = -1;
  std::string verify_summary = "not run";
  bool quiet = false;

  if (ch.start_all()) {
    // 1-2. Load and chaos until K kills (bounded in time).
    load.start();
    const auto run_limit =
        std::chrono::seconds(o.run_timeout_s > 0 ? o.run_timeout_s : 2 * o.kills + 60);
    const auto run_deadline = steady::now() + run_limit;
    auto& members = net.members();
    while (ch.kills().total() < o.kills && steady::now() < run_deadline) {
      ch.sleep_watching(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(ch.rng())), true);
      if (ch.kills().total() >= o.kills) break;
      auto& victim =
          members[std::uniform_int_distribution<std::size_t>(0, members.size() - 1)(ch.rng())];
      ch.kill(victim, true);
    }
    if (ch.kills().total() < o.kills)
      f.add(fmt::format("only {} of {} kills within {} s", ch.kills().total(), o.kills,
                        run_limit.count()));
    load.stop();
    ch.disarm_all();
    if (o.verbose)
      std::printf("[%7.3f] load stopped after %llu acknowledged orders; quiescing\n",
                  seconds_since(t0), static_cast<unsigned long long>(load.counts().acknowledged));

    // 3-4. Quiesce, check through the admin API, stop, verify offline.
    quiet = quiesce(o, net, ch, load.acknowledged(), out, f);
    if (quiet) check_contracts(net, out, f, active_contracts, cancelled_contracts);
    for (auto& m : net.members()) {
      if (auto st = m.proc->poll())
        f.add(m.id + " died before the final stop: " + describe_status(*st));
      int st = m.proc->stop(SIGTERM);
      if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        f.add(fmt::format("{} did not stop cleanly on SIGTERM: {}", m.id, describe_status(st)));
    }
    const auto report_path = dir + "/verify.json";
    verify_rc = run_verify(o, net, report_path);
    verify_summary =
        judge_verify(verify_rc, read_file(report_path), read_file(report_path + ".err"), f);
  }

  // Summary.
  std::map<std::string, int> states;
  for (auto& [id, s] : out.state_of) ++states[s];
  const auto& k = ch.kills();
  std::string points;
  for (auto& [p, n] : k.by_point) points += fmt::format(" {}={}", p, n);
  std::string reasons;
  for (auto& [r, n] : out.failure_reasons) reasons += fmt::format("\n    {:5} {}", n, r);
  const auto& lc = load.counts();
  std::printf(
      "crash harness summary\n"
      "  seed             %llu\n"
      "  kills            %d (external kill -9 %d, crash points %d:%s)\n"
      "  restarts         %d\n"
      "  orders           %llu acknowledged (%llu refused, %llu while unreachable)\n"
      "  outcomes         %d contracted, %d failed, %d cancelled, %zu lost\n"
      "  contracts        %d active, %d cancelled (at the buyer)\n"
      "  failure reasons%s\n"
      "  verify           %s\n"
      "  wall time        %.1f s\n",
      static_cast<unsigned long long>(o.seed), k.total(), k.external, k.self(),
      points.empty() ? " none" : points.c_str(), ch.restarts(),
      static_cast<unsigned long long>(lc.acknowledged), static_cast<unsigned long long>(lc.refused),
      static_cast<unsigned long long>(lc.unreachable), states["contracted"], states["failed"],
      states["cancelled"], out.missing.size(), active_contracts, cancelled_contracts,
      reasons.empty() ? " none" : reasons.c_str(), verify_summary.c_str(), seconds_since(t0));
  if (lc.bad_request > 0)
    f.add(fmt::format("{} orders were answered 400 or without an order id", lc.bad_request));
  if (lc.acknowledged == 0) f.add("no order was acknowledged: the load did not reach the buyer");

  if (f.count() == 0) {
    std::printf("crash harness: PASS\n");
    if (!o.keep_dir && o.work_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    return 0;
  }
  std::printf("crash harness: FAIL (seed %llu), %zu finding(s); work dir kept: %s\n",
              static_cast<unsigned long long>(o.seed), f.count(), dir.c_str());
  f.print();
  for (auto& m : net.members())
    std::printf("--- %s log (tail) ---\n%s\n", m.id.c_str(), tail(m.proc->log(), 30).c_str());
  return 1;
}
