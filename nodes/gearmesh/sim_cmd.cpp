// `gearmesh sim` (see sim_cmd.hpp).
#include "sim_cmd.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cli.hpp"
#include "gearmesh/sim/report.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/sim/simulator.hpp"

namespace gearmesh::cli {
namespace {

using nlohmann::json;

/// Set by SIGINT and SIGTERM while a `sim` command runs (lock-free, so a
/// signal handler may set it).
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

/// SIGBUS while a `sim` command runs: the stores are written through
/// LMDB's write map, and a write to a full file system faults. The runs
/// look at the free space every few thousand steps and stop with a clear
/// error first (sim_options::free_bytes_min); this says what happened if a
/// burst of writes got there in between.
[[noreturn]] void on_bus_error(int) {
  static constexpr char msg[] =
      "gearmesh sim: bus error (SIGBUS) writing a store: the file system holding the stores "
      "($TMPDIR, /dev/shm or /tmp, or --work-dir) is most likely full. Free some space; remove "
      "the gearmesh-sim-* directories left there.\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(exit_unreachable);
}

/// While it lives: SIGINT and SIGTERM set `interrupted`, so runs stop at
/// their next step and remove their temporary stores (in /dev/shm they would
/// hold memory until a reboot) instead of the process dying with them; and
/// SIGBUS says why the process dies (on_bus_error).
class signal_guard {
 public:
  signal_guard() {
    interrupted.store(false);
    struct sigaction sa {};
    sa.sa_handler = [](int) { interrupted.store(true, std::memory_order_relaxed); };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    struct sigaction bus {};
    bus.sa_handler = on_bus_error;
    sigemptyset(&bus.sa_mask);
    ::sigaction(SIGBUS, &bus, &old_bus_);
  }
  ~signal_guard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGBUS, &old_bus_, nullptr);
  }
  signal_guard(const signal_guard&) = delete;
  signal_guard& operator=(const signal_guard&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  struct sigaction old_bus_ {};
};

bool parse_u64(std::string_view s, std::uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size();
}

std::string hex(std::uint64_t v) {
  return fmt::format("{:016x}", v);
}

json to_json(const sim::sim_result& r) {
  json util = json::object();
  for (const auto& [m, u] : r.k.utilization) util[m] = u;
  return json{{"scenario", r.scenario},
              {"seed", r.seed},
              {"ok", r.ok},
              {"quiesced", r.quiesced},
              {"failure", r.failure},
              {"trace_hash", hex(r.trace_hash)},
              {"state_hash", hex(r.state_hash)},
              {"simulated_s", static_cast<double>(r.end_us - r.start_us) / us_per_s},
              {"wall_s", r.wall_seconds},
              {"frames",
               {{"sent", r.frames_sent},
                {"delivered", r.frames_delivered},
                {"lost", r.frames_lost},
                {"duplicated", r.frames_duplicated}}},
              {"crashes", r.crashes},
              {"mid_step_crashes", r.mid_step_crashes},
              {"crash_point_crashes", r.crash_point_crashes},
              {"fault_points", r.fault_points},
              {"disruptions", r.disruptions},
              {"breakdowns", r.breakdowns},
              {"partitions", r.partitions},
              {"invariant_checks", r.invariant_checks},
              {"actor_jobs", r.actor_jobs},
              {"kpis",
               {{"orders_placed", r.k.orders_placed},
                {"orders_refused", r.k.orders_refused},
                {"contracted", r.k.contracted},
                {"failed", r.k.failed},
                {"open", r.k.open},
                {"component_orders", r.k.component_orders},
                {"component_contracted", r.k.component_contracted},
                {"on_time_pct", r.k.on_time_pct},
                {"lead_time_mean_h", r.k.lead_time_mean_h},
                {"lead_time_p95_h", r.k.lead_time_p95_h},
                {"negotiation_ms_mean", r.k.negotiation_ms_mean},
                {"negotiation_ms_p95", r.k.negotiation_ms_p95},
                {"messages_per_order", r.k.messages_per_order},
                {"outages",
                 {{"outages", r.k.outages},
                  {"rescheduled", r.k.outage_rescheduled},
                  {"delayed", r.k.outage_delayed},
                  {"cancelled", r.k.outage_cancelled},
                  {"orders_resourced", r.k.orders_resourced}}},
                {"capacity",
                 {{"offers", r.k.capacity_offers},
                  {"booked", r.k.capacity_booked},
                  {"refused", r.k.capacity_refused},
                  {"cancelled", r.k.capacity_cancelled},
                  {"not_asked", r.k.capacity_not_asked}}},
                {"utilization", util}}}};
}

void print_one(const sim::sim_result& r, std::ostream& out) {
  const double sim_s = static_cast<double>(r.end_us - r.start_us) / us_per_s;
  out << fmt::format("scenario   {}\nseed       {}\nresult     {}\n", r.scenario, r.seed,
                     r.ok ? "ok: every invariant held" : "VIOLATION");
  out << fmt::format("trace      {}\nstate      {}\n", hex(r.trace_hash), hex(r.state_hash));
  out << fmt::format("simulated  {:.0f} s in {:.2f} s wall ({:.0f}x), {} actor jobs\n", sim_s,
                     r.wall_seconds, r.wall_seconds > 0 ? sim_s / r.wall_seconds : 0.0,
                     r.actor_jobs);
  out << fmt::format(
      "network    {} frames sent, {} delivered ({:.0f}/s wall), {} lost, {} duplicated\n",
      r.frames_sent, r.frames_delivered,
      r.wall_seconds > 0 ? static_cast<double>(r.frames_delivered) / r.wall_seconds : 0.0,
      r.frames_lost, r.frames_duplicated);
  out << fmt::format(
      "faults     {} crashes ({} in the middle of a step, {} at fault points), {} partitions, {} "
      "disruptions; {} invariant checks\n",
      r.crashes, r.mid_step_crashes, r.crash_point_crashes, r.partitions, r.disruptions,
      r.invariant_checks);
  if (!r.fault_points.empty()) {
    std::string armed;
    for (const auto& [name, n] : r.fault_points) armed += fmt::format(" {} ({}x)", name, n);
    out << "buggify   " << armed << '\n';
  }
  const auto& k = r.k;
  out << fmt::format(
      "orders     {} placed, {} contracted, {} failed, {} open, {} refused\n"
      "on time    {:.1f}% of contracted\n"
      "lead time  mean {:.1f} h, p95 {:.1f} h (placed -> promised due)\n"
      "negotiate  mean {:.0f} ms, p95 {:.0f} ms (placed -> Confirm at the buyer)\n"
      "messages   {:.1f} per order\n"
      "components {} orders for bought components, {} contracted\n",
      k.orders_placed, k.contracted, k.failed, k.open, k.orders_refused, k.on_time_pct,
      k.lead_time_mean_h, k.lead_time_p95_h, k.negotiation_ms_mean, k.negotiation_ms_p95,
      k.messages_per_order, k.component_orders, k.component_contracted);
  if (r.breakdowns > 0 || k.outages > 0)
    out << fmt::format(
        "breakdowns {} machine outages: {} contracts rescheduled, {} delayed, {} cancelled by "
        "their seller; {} orders sourced again\n",
        k.outages, k.outage_rescheduled, k.outage_delayed, k.outage_cancelled, k.orders_resourced);
  if (k.capacity_offers > 0 || k.capacity_not_asked > 0)
    out << fmt::format(
        "capacity   {} offers; bookings: {} booked, {} refused, {} cancelled by an outage, {} not "
        "asked\n",
        k.capacity_offers, k.capacity_booked, k.capacity_refused, k.capacity_cancelled,
        k.capacity_not_asked);
  if (!k.utilization.empty()) {
    // The busiest machines; --json and the report list all of them.
    constexpr std::size_t shown_max = 20;
    std::vector<std::pair<std::string, double>> busiest(k.utilization.begin(), k.utilization.end());
    std::stable_sort(busiest.begin(), busiest.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    out << (busiest.size() > shown_max
                ? fmt::format("utilization (the {} busiest of {} machines)\n", shown_max,
                              busiest.size())
                : std::string("utilization\n"));
    for (std::size_t i = 0; i < busiest.size() && i < shown_max; ++i)
      out << fmt::format("  {:<28} {:5.1f}%\n", busiest[i].first, 100 * busiest[i].second);
  }
  if (!r.ok) out << "\n" << r.failure;
}

}  // namespace

int sim_command(const sim_command_options& o, std::ostream& out, std::ostream& err) {
  auto s = sim::load_scenario(o.scenario);
  if (!s) {
    err << "gearmesh sim: " << s.error().message() << '\n';
    return exit_usage;
  }
  std::uint64_t first = 0, last = 0;
  const auto dots = o.seeds.find("..");
  const bool sweep = dots != std::string::npos;
  if (sweep ? !parse_u64(std::string_view(o.seeds).substr(0, dots), first) ||
                  !parse_u64(std::string_view(o.seeds).substr(dots + 2), last) || last < first
            : !parse_u64(o.seeds, first)) {
    err << "gearmesh sim: --seeds: expected N or A..B with A <= B, got \"" << o.seeds << "\"\n";
    return exit_usage;
  }
  signal_guard guard;
  if (!sweep) {
    sim::sim_options so;
    so.seed = first;
    so.work_dir = o.work_dir;
    so.check_every_us = static_cast<timestamp_us>(o.check_every_s * us_per_s);
    so.interrupted = &interrupted;
    so.write_behind = (o.threads ? o.threads : std::thread::hardware_concurrency()) >= 2;
    auto r = sim::run_simulation(*s, so);
    if (!r) {
      err << "gearmesh sim: " << r.error().message() << '\n';
      if (interrupted) return exit_interrupted;
      return r.error().code() == errc::storage ? exit_unreachable : exit_usage;
    }
    if (o.json)
      out << to_json(*r).dump(2) << '\n';
    else
      print_one(*r, out);
    if (!o.report_dir.empty()) {
      if (auto st = sim::write_report(*r, o.report_dir); !st) {
        err << "gearmesh sim: " << st.message() << '\n';
        return exit_unreachable;
      }
      if (!o.json) out << "report     " << o.report_dir << "/index.html\n";
    }
    return r->ok ? exit_ok : exit_api_error;
  }

  // A sweep: seeds handed out to workers; each run is independent and
  // single-threaded, so results do not depend on which worker ran them.
  const std::uint64_t count = last - first + 1;
  unsigned jobs = o.jobs ? o.jobs : std::max(1U, std::thread::hardware_concurrency());
  jobs = static_cast<unsigned>(std::min<std::uint64_t>(jobs, count));
  std::atomic<std::uint64_t> next{first};
  std::mutex mx;
  std::map<std::uint64_t, sim::sim_result> results;
  std::map<std::uint64_t, std::string> errors;
  const auto wall_start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < jobs; ++w) {
    workers.emplace_back([&] {
      for (std::uint64_t seed; !interrupted && (seed = next.fetch_add(1)) <= last;) {
        sim::sim_options so;
        so.seed = seed;
        so.check_every_us = static_cast<timestamp_us>(o.check_every_s * us_per_s);
        so.interrupted = &interrupted;
        auto r = sim::run_simulation(*s, so);
        std::lock_guard<std::mutex> g{mx};
        if (interrupted) break;  // unfinished: neither a result nor a failure
        if (!r) {
          errors[seed] = r.error().message();
          continue;
        }
        if (!o.json)
          out << fmt::format(
                     "seed {:>6}  {}  trace {}  {} orders, {} contracted, {} crashes, "
                     "{:.2f} s\n",
                     seed, r->ok ? "ok       " : "VIOLATION", hex(r->trace_hash),
                     r->k.orders_placed, r->k.contracted, r->crashes, r->wall_seconds)
              << std::flush;
        results.emplace(seed, std::move(*r));
      }
    });
  }
  for (auto& t : workers) t.join();
  if (interrupted) {
    err << fmt::format("gearmesh sim: interrupted after {} of {} seeds ({} failing so far)\n",
                       results.size() + errors.size(), count,
                       std::count_if(results.begin(), results.end(), [](const auto& r) {
                         return !r.second.ok;
                       }) + errors.size());
    return exit_interrupted;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  std::vector<std::uint64_t> failing;
  for (const auto& [seed, r] : results)
    if (!r.ok) failing.push_back(seed);
  for (const auto& [seed, e] : errors) failing.push_back(seed);
  std::sort(failing.begin(), failing.end());
  if (o.json) {
    json runs = json::array();
    for (const auto& [seed, r] : results) runs.push_back(to_json(r));
    out << json{{"scenario", s->name.empty() ? s->path : s->name},
                {"seeds", count},
                {"failing", failing},
                {"errors", errors},
                {"wall_s", wall},
                {"runs", runs}}
               .dump(2)
        << '\n';
  } else {
    out << fmt::format("\n{} seeds in {:.1f} s on {} workers: {} failing{}\n", count, wall, jobs,
                       failing.size(), failing.empty() ? "" : ":");
    for (auto seed : failing) {
      out << "  seed " << seed << ": replay with gearmesh sim " << o.scenario << " --seed " << seed
          << '\n';
    }
    if (!failing.empty()) {
      auto it = results.find(failing.front());
      out << '\n' << (it != results.end() ? it->second.failure : errors[failing.front()]) << '\n';
    }
  }
  return failing.empty() ? exit_ok : exit_api_error;
}

}  // namespace gearmesh::cli
