// Simulator speed: simulated messages per second, and simulated time per
// wall time, on generated networks of growing size, in one run.
//
//   bench_sim [--sizes 16,100,400] [--orders-per-node 100] [--seed 1] [--jobs 2] [--repeat 3]
//   bench_sim --floor-only STORES     (the two floors only, the second over STORES stores)
//
// Each size is a network from `gearmesh scenario generate` (a quarter
// buyers, a quarter suppliers, half factories; a supplier disruption; 1 %
// loss) with `orders-per-node` x nodes orders over 24 simulated hours, run
// once with an invariant check every simulated hour.
//
// A simulated message is a frame the simulated network delivered to a live
// node (sim_result::frames_delivered): the real encoded bytes of one
// envelope -- a negotiation message, a production event, a batch of acks or
// an Ack -- which the receiving node verifies and decodes, checks, routes
// to an actor, commits to its LMDB store and acknowledges as in production.
// Frames lost on the way (loss, partitions, a node down) are not counted.
//
// Rates are given per second of wall time and per second of CPU time of
// the run (getrusage; the run is single-threaded, so on a machine shared
// with other work the CPU figure is the steadier one). The baseline,
// measured in the same run, is the floor of the production path for one
// frame without any actor: encode an envelope, verify and decode it, and
// commit one LMDB write transaction with its inbox and outbox records to an
// unsynced store -- "floor" frames/s; each size's ratio is its frames per
// CPU second over the floor's. The floor is measured a second time with
// the frames spread over as many stores as the largest network has nodes,
// each holding 600 KB (what a 1,000-node network's stores hold on average
// at its end), in random order: where stores are cold, as in a large
// network, the LMDB transaction alone costs several times as much, and
// that bounds what any size can reach. With --jobs 2 the largest size also runs
// with two seeds at once on two threads (what `gearmesh sim --seeds` does):
// the aggregate is sweep throughput, not the speed of one run.
//
// Each size also runs a second time writing its stores behind
// (sim_options::write_behind, what `gearmesh sim --seed N` does on two
// cores): the LMDB transactions go to a second thread. Its ratio is the
// one-thread run's wall time over its own; its CPU time is the process's,
// both threads, the second one's polling included.
//
// Each run is repeated (--repeat, one and two threads in turn): a line
// shows the fastest of its runs -- the one the machine's other work
// disturbed least -- and the median rate of all of them.
// DESIGN.md target: >= 200,000 simulated messages per second. Never a
// timed test.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "gearmesh/sim/generate.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/sim/simulator.hpp"
#include "gearmesh/store/store.hpp"
#include "gearmesh/wire/codec.hpp"

namespace {

/// CPU seconds so far of the calling thread (RUSAGE_THREAD) or the process.
double cpu_s(int who = RUSAGE_THREAD) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double thread_cpu_s() {
  return cpu_s(RUSAGE_THREAD);
}

/// The per-frame floor: encode, verify + decode, one unsynced LMDB
/// transaction with an inbox and an outbox record, with the frames spread
/// over `stores` stores in a seeded random order, each store first given
/// `preload` records of 600 bytes (not timed). One store and no preload is
/// the floor of a small network, whose stores stay in the caches; 1,000
/// stores of 600 KB each (what the 1,000-node network's stores hold on
/// average at its end) is that of a large one, where each frame meets a
/// store that is cold. Frames per CPU second, and the share of the time in
/// the LMDB transactions.
struct floor_figures {
  double rate = 0;
  double store_share = 0;
};
floor_figures floor_rate(std::size_t frames, std::size_t stores = 1, std::size_t preload = 0) {
  namespace fs = std::filesystem;
  const auto dir = fs::path(gearmesh::sim::scratch_root(std::uint64_t{1} << 30)) /
                   ("gearmesh-bench-sim-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  floor_figures f;
  {
    std::vector<std::unique_ptr<gearmesh::store::environment>> envs;
    for (std::size_t k = 0; k < stores; ++k) {
      gearmesh::store::options so;
      so.path = (dir / std::to_string(k)).string();
      so.sync = false;
      auto env = gearmesh::store::environment::open(so);
      if (!env) {
        std::fprintf(stderr, "%s\n", env.error().to_string().c_str());
        std::exit(1);
      }
      gearmesh::store::write_batch b;
      for (std::size_t r = 0; r < preload; ++r)
        b.put("offers", gearmesh::store::key_u64(r), std::string(600, 'x'));
      if (preload > 0 && !(*env)->apply(b)) std::exit(1);
      envs.push_back(std::move(*env));
    }
    gearmesh::wire::envelope e;
    e.header.sender = "oem0001";
    e.header.receiver = "factory0042";
    e.header.conversation_id = "oem0001/order/123";
    e.header.timestamp_us = 1'796'083'200'000'000;
    e.payload = gearmesh::wire::cfp{"oem0001/order/123",
                                    "ITEM07",
                                    12,
                                    1'796'083'200'000'000,
                                    1'796'688'000'000'000,
                                    1'000'000,
                                    1'796'083'201'500'000,
                                    "EUR",
                                    {}};
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;  // xorshift: the order of the stores
    std::chrono::steady_clock::duration in_store{};
    const double start = thread_cpu_s();
    std::size_t ok = 0;
    for (std::size_t i = 0; i < frames; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      auto& env = *envs[x % stores];
      e.header.message_id = i + 1;
      auto frame = gearmesh::wire::encode(e);
      auto back = gearmesh::wire::decode(frame);
      if (!back) continue;
      gearmesh::store::write_batch b;
      b.put("inbox", "oem0001/" + gearmesh::store::key_u64(back->header.message_id), "0|");
      std::string out = back->header.receiver;
      out.push_back('\0');
      out.append(frame.begin(), frame.end());
      b.put("outbox", gearmesh::store::key_u64(i + 1), out);
      const auto t0 = std::chrono::steady_clock::now();
      if (env.apply(b)) ++ok;
      in_store += std::chrono::steady_clock::now() - t0;
    }
    const double cpu = thread_cpu_s() - start;
    f.rate = static_cast<double>(ok) / cpu;
    f.store_share = std::chrono::duration<double>(in_store).count() / cpu;
  }
  fs::remove_all(dir);
  return f;
}

struct run {
  gearmesh::sim::sim_result r;
  double cpu_s = 0;
};

/// One run; with `write_behind` its CPU time is the process's (both threads).
run simulate(const gearmesh::sim::scenario& s, std::uint64_t seed, bool write_behind = false) {
  gearmesh::sim::sim_options o;
  o.seed = seed;
  o.check_every_us = gearmesh::us_per_hour;
  o.write_behind = write_behind;
  const int who = write_behind ? RUSAGE_SELF : RUSAGE_THREAD;
  const double start = cpu_s(who);
  auto r = gearmesh::sim::run_simulation(s, o);
  if (!r) {
    std::fprintf(stderr, "%s\n", r.error().to_string().c_str());
    std::exit(1);
  }
  return {std::move(*r), cpu_s(who) - start};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes = {16, 100, 400};
  std::uint64_t orders_per_node = 100;
  std::uint64_t seed = 1;
  unsigned jobs = 1;
  unsigned repeat = 3;
  std::size_t floor_only = 0;  // --floor-only: the floors over this many stores, no network
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    if (arg == "--sizes") {
      sizes.clear();
      for (std::string list = argv[i + 1]; !list.empty();) {
        auto comma = list.find(',');
        sizes.push_back(std::stoul(list.substr(0, comma)));
        list = comma == std::string::npos ? "" : list.substr(comma + 1);
      }
    } else if (arg == "--orders-per-node") {
      orders_per_node = std::stoull(argv[i + 1]);
    } else if (arg == "--seed") {
      seed = std::stoull(argv[i + 1]);
    } else if (arg == "--jobs") {
      jobs = static_cast<unsigned>(std::stoul(argv[i + 1]));
    } else if (arg == "--repeat") {
      repeat = std::max(1u, static_cast<unsigned>(std::stoul(argv[i + 1])));
    } else if (arg == "--floor-only") {
      floor_only = std::max<std::size_t>(1, std::stoul(argv[i + 1]));
    } else {
      std::fprintf(stderr,
                   "usage: bench_sim [--sizes 16,100,400] [--orders-per-node N] [--seed S] "
                   "[--jobs 1|2] [--repeat N]\n       bench_sim --floor-only STORES\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  const auto small = floor_rate(20'000);
  const double floor = small.rate;
  std::printf(
      "baseline: floor of the production path per frame (encode, verify+decode, one "
      "unsynced LMDB commit): %.0f frames per CPU second (%.0f %% of it in LMDB)\n",
      floor, 100 * small.store_share);
  // The same with the frames spread over as many stores as the largest
  // network has nodes, each holding 600 KB: the floor where stores are cold.
  const auto most = floor_only > 0 ? floor_only : *std::max_element(sizes.begin(), sizes.end());
  const auto cold = floor_rate(std::max<std::size_t>(20'000, 100 * most), most, 1000);
  std::printf(
      "          the same over %zu stores of 600 KB in random order: %.0f frames per CPU "
      "second (%.0f %% in LMDB), %.2f of the first\n\n",
      most, cold.rate, 100 * cold.store_share, cold.rate / floor);
  if (floor_only > 0) return 0;
  std::printf("%d runs of each; the fastest, and the median rate\n", static_cast<int>(repeat));
  std::printf("%6s %7s %7s %9s %7s %7s %10s %10s %10s %10s %10s %7s\n", "nodes", "threads",
              "orders", "frames", "wall s", "cpu s", "frames/s", "median/s", "frames/cpu",
              "sim/wall", "jobs/s", "ratio");
  bool ok = true;
  std::optional<gearmesh::sim::scenario> largest;
  for (auto n : sizes) {
    gearmesh::sim::generator_options g;
    g.seed = seed;
    g.buyers = std::max<std::size_t>(1, n / 4);
    g.suppliers = std::max<std::size_t>(1, n / 4);
    g.factories = std::max<std::size_t>(1, n - g.buyers - g.suppliers);
    g.items = std::max<std::size_t>(2, n / 20);
    g.orders = orders_per_node * n;
    auto s = gearmesh::sim::parse_scenario(gearmesh::sim::generate_scenario(g), "generated");
    if (!s) {
      std::fprintf(stderr, "%s\n", s.error().to_string().c_str());
      return 1;
    }
    // One thread (ratio: frames per CPU second over the floor's), then the
    // same run writing its stores behind on a second thread (ratio: its wall
    // time over the first's; same trace, checked).
    std::vector<run> ones, twos;
    for (unsigned k = 0; k < repeat; ++k) {
      ones.push_back(simulate(*s, seed));
      twos.push_back(simulate(*s, seed, true));
    }
    auto fastest = [](const std::vector<run>& v) {
      return *std::min_element(v.begin(), v.end(), [](const run& a, const run& b) {
        return a.r.wall_seconds < b.r.wall_seconds;
      });
    };
    auto median_rate = [](const std::vector<run>& v) {
      std::vector<double> rates;
      for (const auto& x : v)
        rates.push_back(static_cast<double>(x.r.frames_delivered) / x.r.wall_seconds);
      std::sort(rates.begin(), rates.end());
      const auto m = rates.size() / 2;
      return rates.size() % 2 == 1 ? rates[m] : (rates[m - 1] + rates[m]) / 2;
    };
    const auto one = fastest(ones);
    const auto two = fastest(twos);
    for (const run* x : {&one, &two}) {
      const auto& r = x->r;
      const double frames = static_cast<double>(r.frames_delivered);
      const double ratio =
          x == &one ? frames / x->cpu_s / floor : one.r.wall_seconds / r.wall_seconds;
      std::printf("%6zu %7d %7llu %9llu %7.2f %7.2f %10.0f %10.0f %10.0f %10.0f %10.0f %6.3f%s\n",
                  n, x == &one ? 1 : 2, static_cast<unsigned long long>(r.k.orders_placed),
                  static_cast<unsigned long long>(r.frames_delivered), r.wall_seconds, x->cpu_s,
                  frames / r.wall_seconds, median_rate(x == &one ? ones : twos), frames / x->cpu_s,
                  static_cast<double>(r.end_us - r.start_us) / 1e6 / r.wall_seconds,
                  static_cast<double>(r.actor_jobs) / r.wall_seconds, ratio,
                  x == &one ? " /floor" : "x");
      std::fflush(stdout);
    }
    for (const auto* v : {&ones, &twos})
      for (const auto& x : *v) {
        if (!x.r.ok) {
          std::printf("  VIOLATION in a run: %s\n", x.r.failure.c_str());
          ok = false;
        }
        if (x.r.trace_hash != one.r.trace_hash || x.r.state_hash != one.r.state_hash) {
          std::printf(
              "  a run differs (trace or state hash): writing behind or repeating "
              "changed it\n");
          ok = false;
        }
      }
    largest = std::move(*s);
  }
  if (jobs > 1 && largest) {
    // Two seeds at once, one per thread (a sweep): aggregate throughput.
    std::vector<run> runs(jobs);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (unsigned j = 0; j < jobs; ++j)
      threads.emplace_back([&, j] { runs[j] = simulate(*largest, seed + j); });
    for (auto& t : threads) t.join();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double frames = 0, cpu = 0;
    for (const auto& x : runs) {
      frames += static_cast<double>(x.r.frames_delivered);
      cpu += x.cpu_s;
      ok = ok && x.r.ok;
    }
    std::printf(
        "\nsweep: %u seeds of the %zu-node network at once on %u threads: %.0f frames in "
        "%.2f s wall, %.2f s CPU: %.0f frames/s (aggregate, not one run)\n",
        jobs, sizes.back(), jobs, frames, wall, cpu, frames / wall);
  }
  return ok ? 0 : 1;
}
