// Simulator speed: simulated messages per second of wall time, and simulated
// time per wall time, on generated networks of growing size, in one run.
//
//   bench_sim [--sizes 16,100,400] [--orders-per-node 100] [--seed 1]
//
// Each size is a network from `gearmesh scenario generate` (a quarter
// buyers, a quarter suppliers, half factories; a supplier disruption; 1 %
// loss) with `orders-per-node` x nodes orders over 24 simulated hours, run
// once with an invariant check every simulated hour. "frames/s" counts
// frames delivered to a node -- each is decoded, checked, routed to an
// actor, committed to that node's LMDB store and acknowledged, as in
// production. The ratio column is each size's frames/s against the
// smallest network's, measured in the same run (how the simulator scales).
// DESIGN.md target: >= 200,000 frames/s. Never a timed test.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gearmesh/sim/generate.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/sim/simulator.hpp"

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes = {16, 100, 400};
  std::uint64_t orders_per_node = 100;
  std::uint64_t seed = 1;
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
    } else {
      std::fprintf(stderr,
                   "usage: bench_sim [--sizes 16,100,400] [--orders-per-node N] [--seed S]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  std::printf("%8s %8s %10s %12s %10s %14s %12s %8s\n", "nodes", "orders", "wall s", "frames",
              "frames/s", "sim/wall", "jobs/s", "ratio");
  double baseline = 0;
  bool ok = true;
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
    gearmesh::sim::sim_options o;
    o.seed = seed;
    o.check_every_us = gearmesh::us_per_hour;
    auto r = gearmesh::sim::run_simulation(*s, o);
    if (!r) {
      std::fprintf(stderr, "%s\n", r.error().to_string().c_str());
      return 1;
    }
    const double fps = static_cast<double>(r->frames_delivered) / r->wall_seconds;
    if (baseline == 0) baseline = fps;
    std::printf("%8zu %8llu %10.2f %12llu %10.0f %14.0f %12.0f %8.2f%s\n", n,
                static_cast<unsigned long long>(r->k.orders_placed), r->wall_seconds,
                static_cast<unsigned long long>(r->frames_delivered), fps,
                static_cast<double>(r->end_us - r->start_us) / 1e6 / r->wall_seconds,
                static_cast<double>(r->actor_jobs) / r->wall_seconds, fps / baseline,
                r->ok ? "" : "  VIOLATION");
    std::fflush(stdout);
    ok = ok && r->ok;
  }
  return ok ? 0 : 1;
}
