// The simulator: scenario parsing, determinism, invariants under faults.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <unistd.h>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/verify.hpp"
#include "gearmesh/node/node.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/sim/simulator.hpp"
#include "temp_dir.hpp"

namespace gearmesh::sim {
namespace {

const std::string two_tier = std::string(GEARMESH_SCENARIOS) + "/two_tier.toml";

class quiet : public ::testing::Environment {
 public:
  void SetUp() override { spdlog::set_level(spdlog::level::err); }
};
const auto* const quiet_env = ::testing::AddGlobalTestEnvironment(new quiet);

TEST(scenario, the_example_parses_with_derived_peers) {
  auto s = load_scenario(two_tier);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->name, "two-tier demo");
  ASSERT_EQ(s->nodes.size(), 4u);
  EXPECT_EQ(s->nodes[0].id, "velo");
  EXPECT_EQ(s->nodes[0].peers, (std::vector<std::string>{"alloyframe", "cellpack", "framecraft"}));
  EXPECT_EQ(s->nodes[1].peers, std::vector<std::string>{"velo"});
  EXPECT_NE(s->nodes[1].roles_toml.find("[factory]"), std::string::npos);
  ASSERT_EQ(s->demand.size(), 2u);
  EXPECT_EQ(s->demand[0].orders, 60u);
  EXPECT_EQ(s->demand[0].gap_us.lo, 2 * us_per_min);
  EXPECT_EQ(s->network.latency_us.hi, 40 * us_per_ms);
  EXPECT_DOUBLE_EQ(s->faults.crashes_per_node_day, 3);
  EXPECT_EQ(s->max_us, 24 * us_per_hour);
}

TEST(scenario, errors_name_the_line_and_field) {
  auto err = [](std::string text) {
    auto s = parse_scenario(text, "s.toml");
    return s ? std::string("ok") : s.error().message();
  };
  EXPECT_EQ(err("[sim]\nname = 1\n"), "s.toml:2: sim.name: expected a string, got an integer");
  EXPECT_EQ(err("[[nodes]]\nid = \"a\"\n"), "s.toml:1: nodes[0].id: node 'a' has no role section");
  EXPECT_EQ(err("[network]\nloss = 2\n[[nodes]]\nid = \"a\"\n[nodes.supplier]\n"),
            "s.toml:2: network.loss: expected a probability in 0..1");
  EXPECT_EQ(err("[[nodes]]\nid = \"a\"\n[nodes.buyer]\n[[nodes.buyer.sources]]\nitem = \"X\"\n"
                "sellers = [\"zz\"]\n"),
            "s.toml: node 'a' buys from 'zz', which is not a node of the scenario");
  EXPECT_EQ(err("[[nodes]]\nid = \"a\"\n[nodes.supplier]\n[[demand]]\nbuyer = \"b\"\nitem = "
                "\"X\"\norders = 1\n"),
            "s.toml:5: demand[0].buyer: no node \"b\"");
  EXPECT_EQ(err("[network]\nlatency_ms = [5, 1]\n[[nodes]]\nid = \"a\"\n[nodes.supplier]\n"),
            "s.toml:2: network.latency_ms: expected [low, high] with 0 <= low <= high, or one "
            "number >= 0");
}

/// The example with its demand cut down, for quick runs.
scenario small(double crashes_per_day = 3, double partitions_per_day = 6) {
  auto s = load_scenario(two_tier);
  EXPECT_TRUE(s) << s.error().to_string();
  s->demand_us = 3 * us_per_hour;
  s->max_us = 12 * us_per_hour;
  s->demand[0].orders = 15;
  s->demand[1].orders = 5;
  s->faults.crashes_per_node_day = crashes_per_day;
  s->faults.partitions_per_day = partitions_per_day;
  return *s;
}

TEST(simulator, a_clean_network_contracts_orders_and_keeps_every_invariant) {
  auto s = small(0, 0);
  s.network.loss = 0;
  s.network.duplicate = 0;
  s.faults.buggify = false;
  sim_options o;
  o.seed = 7;
  auto r = run_simulation(s, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->ok) << r->failure;
  EXPECT_TRUE(r->quiesced);
  EXPECT_GT(r->k.orders_placed, 10u);
  EXPECT_EQ(r->k.contracted + r->k.failed, r->k.orders_placed);
  EXPECT_GT(r->k.contracted, 0u);
  EXPECT_EQ(r->k.open, 0u);
  EXPECT_EQ(r->crashes, 0u);
  EXPECT_EQ(r->frames_lost, 0u);
  EXPECT_GT(r->k.messages_per_order, 4);
  EXPECT_GT(r->k.negotiation_ms_mean, 0);
  EXPECT_FALSE(r->k.utilization.empty());
  EXPECT_GE(r->invariant_checks, 10u);
}

TEST(simulator, the_same_seed_replays_exactly_and_another_seed_differs) {
  auto s = small();
  sim_options o;
  o.seed = 42;
  auto a = run_simulation(s, o);
  auto b = run_simulation(s, o);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->ok) << a->failure;
  EXPECT_EQ(a->trace_hash, b->trace_hash);
  EXPECT_EQ(a->state_hash, b->state_hash);
  EXPECT_EQ(a->frames_delivered, b->frames_delivered);
  EXPECT_EQ(a->crashes, b->crashes);
  EXPECT_EQ(a->end_us, b->end_us);
  o.seed = 43;
  auto c = run_simulation(s, o);
  ASSERT_TRUE(c);
  EXPECT_NE(a->trace_hash, c->trace_hash);
}

TEST(simulator, faults_are_injected_and_no_invariant_breaks) {
  auto s = small(12, 24);
  s.network.loss = 0.1;
  s.network.duplicate = 0.1;
  sim_options o;
  o.seed = 3;
  auto r = run_simulation(s, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->ok) << r->failure;
  EXPECT_GT(r->crashes, 0u);
  EXPECT_GT(r->mid_step_crashes, 0u);  // some between a commit and its sends
  EXPECT_GT(r->partitions, 0u);
  EXPECT_GT(r->frames_lost, 0u);
  EXPECT_GT(r->frames_duplicated, 0u);
  EXPECT_EQ(r->k.open, 0u);
}

// BUGGIFY: runs arm seeded subsets of the runtime's fault points; crash
// points kill a node at that exact place of its step (a commit durable, its
// messages not sent, ...), and no invariant breaks.
TEST(simulator, runtime_fault_points_strike_and_no_invariant_breaks) {
  auto s = small(0, 0);
  ASSERT_TRUE(s.faults.buggify);  // on in the example
  std::uint64_t crash_points = 0, armed_runs = 0;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    sim_options o;
    o.seed = seed;
    auto r = run_simulation(s, o);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_TRUE(r->ok) << r->failure;
    crash_points += r->crash_point_crashes;
    armed_runs += r->fault_points.empty() ? 0 : 1;
    EXPECT_EQ(r->crashes, r->crash_point_crashes);  // the only crashes in this profile
  }
  EXPECT_GT(armed_runs, 6u);
  EXPECT_GT(crash_points, 0u);
}

/// Points $TMPDIR at a fresh directory of its own while it lives.
class scratch_tmpdir {
 public:
  scratch_tmpdir() {
    EXPECT_FALSE(dir_.path().empty());
    if (const char* t = std::getenv("TMPDIR")) old_ = t;
    ::setenv("TMPDIR", dir_.path().c_str(), 1);
  }
  ~scratch_tmpdir() {
    if (old_)
      ::setenv("TMPDIR", old_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
  }
  const std::string& dir() const { return dir_.path(); }

 private:
  gearmesh::testing::temp_dir dir_;
  std::optional<std::string> old_;
};

TEST(simulator, runs_store_in_tmpdir_and_an_interrupted_run_removes_its_stores) {
  // On one thread and writing the stores behind on a second.
  for (bool behind : {false, true}) {
    SCOPED_TRACE(behind ? "write_behind" : "one thread");
    scratch_tmpdir tmp;
    EXPECT_EQ(scratch_root(1), tmp.dir());
    auto s = small();
    EXPECT_EQ(store_bytes_estimate(s), 4 * (128u << 10) + 20 * (8u << 10));  // 4 nodes, 20 orders
    std::atomic<bool> stop{false};
    sim_options o;
    o.seed = 3;
    o.interrupted = &stop;
    o.write_behind = behind;
    // Mid-run, the nodes' stores are in a directory of their own under $TMPDIR.
    bool seen = false;
    o.inject = [&](timestamp_us, const std::string& node_id, node&) {
      for (const auto& d : std::filesystem::directory_iterator(tmp.dir()))
        seen = seen || std::filesystem::exists(d.path() / node_id / "data.mdb");
      stop = true;
    };
    auto r = run_simulation(s, o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), errc::shutting_down);
    EXPECT_NE(r.error().message().find("interrupted at simulated time 2026-"), std::string::npos)
        << r.error().message();
    EXPECT_TRUE(seen);
    EXPECT_TRUE(std::filesystem::is_empty(tmp.dir()));
  }
}

// Stores are written through LMDB's write map: a full file system would kill
// the process with SIGBUS. A run looks at the free space first and stops with
// a clear error, removing its stores.
TEST(simulator, a_run_stops_with_a_clear_error_when_its_file_system_is_nearly_full) {
  scratch_tmpdir tmp;
  sim_options o;
  o.free_bytes_min = std::uint64_t{1} << 62;  // more than any file system has
  auto r = run_simulation(small(), o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::storage);
  EXPECT_NE(r.error().message().find("stopped at simulated time 2026-01-05T06:00:00.000Z: the "
                                     "file system of the stores (" +
                                     tmp.dir() + "/gearmesh-sim-"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("MiB free, less than the 4398046511104 MiB a run keeps free"),
            std::string::npos)
      << r.error().message();
  EXPECT_TRUE(std::filesystem::is_empty(tmp.dir()));
}

/// Commits a booking far beyond weld1's capacity behind the actors' back.
void overbook_weld1(timestamp_us now, node& n) {
  actors::reservation_record b;
  b.resource = "weld1";
  b.reservation_id = "sabotage";
  b.kind = actors::reservation_kind::booking;
  b.start_us = now;
  b.end_us = now + us_per_hour;
  b.allocations = {{now / us_per_hour, 1'000'000}};
  effects fx;
  actors::tables::bookings.put(fx.writes, actors::reservation_key("weld1", "sabotage"), b);
  n.context().commit(std::move(fx));
}

// The checker is live: a store broken mid-run (a booking far beyond a
// machine's capacity, written behind the actors' back) stops the run with
// the seed, the simulated time, the invariant and the node's last events.
TEST(simulator, a_broken_invariant_stops_the_run_with_seed_time_and_events) {
  // The check sees a write still queued for the second thread, too.
  for (bool behind : {false, true}) {
    SCOPED_TRACE(behind ? "write_behind" : "one thread");
    auto s = small(0, 0);
    sim_options o;
    o.seed = 5;
    o.write_behind = behind;
    // Only in the first run (a check on the second thread finds it one
    // check late and the seed runs again, where it does not happen again:
    // the first run's report stands).
    bool done = false;
    o.inject = [&](timestamp_us now, const std::string& id, node& n) {
      if (done || id != "framecraft" || now < s.start_us + us_per_hour) return;
      done = true;
      overbook_weld1(now, n);
    };
    auto r = run_simulation(s, o);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_TRUE(done);
    EXPECT_FALSE(r->ok);
    EXPECT_NE(
        r->failure.find("VIOLATION in two-tier demo with seed 5 at simulated time 2026-01-05T07:0"),
        std::string::npos)
        << r->failure;
    EXPECT_NE(r->failure.find("over_commitment (invariant 1"), std::string::npos) << r->failure;
    EXPECT_NE(r->failure.find("at node framecraft"), std::string::npos) << r->failure;
    EXPECT_NE(r->failure.find("last events of framecraft:"), std::string::npos) << r->failure;
    EXPECT_LT(r->end_us, s.start_us + 2 * us_per_hour);  // stopped at once, not at the end
  }
}

// Writing behind, a mid-run check runs on the second thread while the run
// goes on, and finds a violation one check late; the seed then runs again
// with checks that wait. The report, the trace and the stores are exactly
// those of a run on one thread.
TEST(simulator, a_violation_found_on_the_second_thread_is_reported_as_on_one_thread) {
  auto s = small(0, 0);
  std::vector<sim_result> runs;
  for (bool behind : {false, true}) {
    SCOPED_TRACE(behind ? "write_behind" : "one thread");
    sim_options o;
    o.seed = 5;
    o.write_behind = behind;
    int injected = 0;
    o.inject = [&](timestamp_us now, const std::string& id, node& n) {
      // At the check one simulated hour in, in every run.
      const auto at = s.start_us + us_per_hour;
      if (id != "framecraft" || now < at || now >= at + o.check_every_us) return;
      ++injected;
      overbook_weld1(now, n);
    };
    auto r = run_simulation(s, o);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(injected, behind ? 2 : 1);
    EXPECT_FALSE(r->ok);
    runs.push_back(std::move(*r));
  }
  EXPECT_NE(runs[0].failure.find(
                "VIOLATION in two-tier demo with seed 5 at simulated time 2026-01-05T07:00:00"),
            std::string::npos)
      << runs[0].failure;
  EXPECT_EQ(runs[1].failure, runs[0].failure);
  EXPECT_EQ(runs[1].end_us, runs[0].end_us);
  EXPECT_EQ(runs[1].trace_hash, runs[0].trace_hash);
  EXPECT_EQ(runs[1].state_hash, runs[0].state_hash);
  EXPECT_EQ(runs[1].invariant_checks, runs[0].invariant_checks);
}

// Nested negotiation over every tier: each contracted e-bike has a contract
// at Velo backed by contracted component orders (frame, motor, battery),
// each frame and motor contract backed in turn by a contracted tier-2 order,
// and the stores agree at every tier (the run's own checks include
// component_mismatch).
TEST(simulator, multi_tier_orders_cascade_contracts_down_every_tier) {
  auto s = load_scenario(std::string(GEARMESH_SCENARIOS) + "/multi_tier.toml");
  ASSERT_TRUE(s) << s.error().to_string();
  s->network.loss = 0;
  s->network.duplicate = 0;
  s->faults.crashes_per_node_day = 0;
  s->faults.partitions_per_day = 0;
  s->demand[0].orders = 10;
  sim_options o;
  o.seed = 11;
  const auto dir =
      std::filesystem::temp_directory_path() / ("gearmesh-mt-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  o.work_dir = dir.string();
  auto r = run_simulation(*s, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->ok) << r->failure;
  EXPECT_EQ(r->k.orders_placed, 10u);
  EXPECT_EQ(r->k.contracted, 10u);
  // Velo: 3 per e-bike; framecraft and alloyframe both quote every frame (1
  // tube-set order each), motorworks every motor.
  EXPECT_EQ(r->k.component_orders, 10u * 3 + 10u * 2 + 10u);
  EXPECT_EQ(r->k.component_contracted, 10u * 3 + 10u + 10u);

  std::map<std::string, std::unique_ptr<store::environment>> stores;
  for (const auto& n : s->nodes) {
    auto env = actors::open_existing_store((dir / n.id).string());
    ASSERT_TRUE(env) << env.error().to_string();
    stores[n.id] = std::move(*env);
  }
  auto contract_at = [&](const std::string& node, const std::string& id) {
    auto c = actors::tables::contracts.get(*stores.at(node), id);
    EXPECT_TRUE(c && *c) << node << " " << id;
    return c && *c ? **c : actors::contract_record{};
  };
  // Follows one seller contract down: its offer's component orders must be
  // contracted, and each of their contracts recorded at the seller below.
  std::function<int(const actors::contract_record&)> depth =
      [&](const actors::contract_record& c) -> int {
    auto offer = actors::tables::offers.get(*stores.at(c.seller), c.proposal_id);
    EXPECT_TRUE(offer && *offer) << c.seller << " " << c.proposal_id;
    if (!offer || !*offer) return 0;
    EXPECT_EQ((*offer)->state, actors::offer_state::contracted);
    int deepest = 0;
    for (const auto& sub : (*offer)->sub_orders) {
      auto order = actors::tables::orders.get(*stores.at(c.seller), sub);
      EXPECT_TRUE(order && *order) << sub;
      if (!order || !*order) continue;
      EXPECT_EQ((*order)->parent_buyer, c.buyer);
      EXPECT_EQ((*order)->parent_order_id, c.order_id);
      EXPECT_EQ((*order)->state, actors::order_state::contracted) << sub;
      auto at_buyer = contract_at(c.seller, (*order)->contract_id);
      auto at_seller = contract_at(at_buyer.seller, (*order)->contract_id);
      EXPECT_TRUE(at_buyer.same_terms(at_seller)) << (*order)->contract_id;
      // The component arrives before the work that needs it starts.
      EXPECT_LE(at_buyer.promised_due_us, c.promised_start_us) << (*order)->contract_id;
      deepest = std::max(deepest, depth(at_seller));
    }
    return deepest + 1;
  };
  std::size_t bikes = 0;
  (void)actors::tables::orders.for_each(
      *stores.at("dealer"), [&](std::string_view, actors::order_record&& order) {
        EXPECT_EQ(order.state, actors::order_state::contracted) << order.order_id;
        auto c = contract_at("velo", order.contract_id);
        EXPECT_EQ(depth(c), 3) << order.order_id;  // velo -> frame/motor factory -> supplier
        ++bikes;
        return true;
      });
  EXPECT_EQ(bikes, 10u);
  stores.clear();
  std::filesystem::remove_all(dir);
}

// Clock skew: every node's clock is off by its own seeded offset (here up to
// 5 s, far beyond NTP); holds, deadlines and message stamps follow each
// node's own clock, and no invariant breaks.
TEST(simulator, skewed_node_clocks_break_no_invariant) {
  auto s = small(6, 12);
  s.faults.clock_skew_us = 5 * us_per_s;
  std::uint64_t contracted = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    sim_options o;
    o.seed = seed;
    auto r = run_simulation(s, o);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_TRUE(r->ok) << r->failure;
    EXPECT_EQ(r->k.open, 0u);
    contracted += r->k.contracted;
  }
  EXPECT_GT(contracted, 0u);
  // The skews are part of the seed: the same seed replays exactly.
  sim_options o;
  o.seed = 3;
  auto a = run_simulation(s, o);
  auto b = run_simulation(s, o);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->trace_hash, b->trace_hash);
  s.faults.clock_skew_us = 0;
  auto c = run_simulation(s, o);
  ASSERT_TRUE(c);
  EXPECT_NE(a->trace_hash, c->trace_hash);
}

TEST(scenario, breakdowns_name_a_node_and_one_of_its_machines) {
  const std::string head =
      "[faults]\nbreakdowns_per_day = 3\nbreakdown_hours = [2, 5]\n"
      "[[nodes]]\nid = \"f\"\n[nodes.factory]\n[[nodes.factory.machines]]\nid = \"weld1\"\n"
      "capabilities = [\"welding\"]\nrate_cents_per_hour = 1\n[[nodes.factory.items]]\nid = "
      "\"X\"\n[[nodes.factory.items.operations]]\ncapability = \"welding\"\n"
      "minutes_per_unit = 1\n";
  auto s = parse_scenario(head +
                              "[[breakdowns]]\nnode = \"f\"\nmachine = \"weld1\"\nat_hours = 2\n"
                              "for_hours = 1.5\nkind = \"maintenance\"\nreason = \"oil\"\n",
                          "s.toml");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->nodes[0].machines, std::vector<std::string>{"weld1"});
  EXPECT_DOUBLE_EQ(s->faults.breakdowns_per_day, 3);
  EXPECT_EQ(s->faults.breakdown_us.lo, 2 * us_per_hour);
  ASSERT_EQ(s->breakdowns.size(), 1u);
  EXPECT_EQ(s->breakdowns[0].machine, "weld1");
  EXPECT_EQ(s->breakdowns[0].at_us, 2 * us_per_hour);
  EXPECT_EQ(s->breakdowns[0].for_us, 90 * us_per_min);
  EXPECT_TRUE(s->breakdowns[0].maintenance);
  EXPECT_EQ(s->breakdowns[0].reason, "oil");
  auto err = [&](const std::string& tail) {
    auto r = parse_scenario(head + tail, "s.toml");
    return r ? std::string("ok") : r.error().message();
  };
  EXPECT_EQ(err("[[breakdowns]]\nnode = \"f\"\nmachine = \"weld9\"\nat_hours = 1\n"
                "for_hours = 1\n"),
            "s.toml:18: breakdowns[0].machine: node \"f\" has no machine \"weld9\"");
  EXPECT_EQ(err("[[breakdowns]]\nnode = \"g\"\nmachine = \"weld1\"\nat_hours = 1\n"
                "for_hours = 1\n"),
            "s.toml:17: breakdowns[0].node: no node \"g\"");
  EXPECT_EQ(err("[[breakdowns]]\nnode = \"f\"\nmachine = \"weld1\"\nat_hours = 1\n"),
            "s.toml:16: breakdowns[0].for_hours: missing required field");
  EXPECT_EQ(err("[[breakdowns]]\nnode = \"f\"\nmachine = \"weld1\"\nat_hours = 1\n"
                "for_hours = 1\nkind = \"fire\"\n"),
            "s.toml:21: breakdowns[0].kind: expected \"breakdown\" or \"maintenance\"");
}

TEST(scenario, capacity_offers_name_a_factory_and_other_nodes_as_bookers) {
  const std::string nodes =
      "[[nodes]]\nid = \"fc\"\n[nodes.factory]\n[[nodes.factory.machines]]\nid = \"paint1\"\n"
      "capabilities = [\"coating\"]\n[[nodes]]\nid = \"velo\"\n[nodes.supplier]\n";
  auto err = [&](std::string capacity) {
    auto s = parse_scenario(nodes + capacity, "s.toml");
    return s ? std::string("ok") : s.error().message();
  };
  const std::string offer =
      "[[capacity]]\npublisher = \"fc\"\ncapability = \"coating\"\nunits = 60\n"
      "window_hours = [2, 4]\n";
  EXPECT_EQ(err(offer + "[[capacity.bookings]]\nbooker = \"velo\"\nat_hours = 1\nunits = 30\n"),
            "ok");
  auto s = parse_scenario(
      nodes + offer + "[[capacity.bookings]]\nbooker = \"velo\"\nat_hours = 1\nunits = 30\n",
      "s.toml");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->capacity.size(), 1u);
  EXPECT_EQ(s->capacity[0].window_us.lo, 2 * us_per_hour);
  EXPECT_EQ(s->capacity[0].bookings[0].units, 30u);
  EXPECT_EQ(s->nodes[1].peers, std::vector<std::string>{"fc"});  // bookers become peers
  EXPECT_EQ(err("[[capacity]]\npublisher = \"velo\"\ncapability = \"coating\"\nunits = 60\n"
                "window_hours = [2, 4]\n"),
            "s.toml:11: capacity[0].publisher: no factory node \"velo\" (capacity is a "
            "machine's)");
  EXPECT_EQ(err(offer + "[[capacity.bookings]]\nbooker = \"fc\"\nunits = 1\n"),
            "s.toml:15: capacity[0].bookings[0].booker: no other node \"fc\"");
  EXPECT_EQ(err("[[capacity]]\npublisher = \"fc\"\ncapability = \"coating\"\nunits = 60\n"
                "window_hours = [4, 2]\n"),
            "s.toml:14: capacity[0].window_hours: expected [low, high] with 0 <= low <= high, or "
            "one number >= 0");
}

// Machine breakdowns in the three-tier example, with crashes, partitions,
// lost and duplicated frames and clock skew: over a bounded seed sweep every
// run quiesces with every invariant kept (agreement of the contracts a
// seller cancelled, no booking left behind, every order terminal), and the
// breakdowns did what they are for: work delayed, contracts cancelled by
// their seller and orders sourced again.
TEST(simulator, breakdowns_move_delay_or_cancel_work_and_break_no_invariant) {
  auto s = load_scenario(std::string(GEARMESH_SCENARIOS) + "/breakdowns.toml");
  ASSERT_TRUE(s) << s.error().to_string();
  kpis sum;
  std::uint64_t breakdowns = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    sim_options o;
    o.seed = seed;
    auto r = run_simulation(*s, o);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_TRUE(r->ok) << r->failure;
    EXPECT_TRUE(r->quiesced);
    EXPECT_EQ(r->k.open, 0u);
    // Each order is placed, or refused by a buyer that crashed just then.
    EXPECT_EQ(r->k.orders_placed + r->k.orders_refused, 30u);
    breakdowns += r->breakdowns;
    sum.outages += r->k.outages;
    sum.outage_delayed += r->k.outage_delayed + r->k.outage_rescheduled;
    sum.outage_cancelled += r->k.outage_cancelled;
    sum.orders_resourced += r->k.orders_resourced;
    sum.contracted += r->k.contracted;
    sum.capacity_offers += r->k.capacity_offers;
    sum.capacity_booked += r->k.capacity_booked;
    sum.capacity_cancelled += r->k.capacity_cancelled;
    // Every booking asked for ends booked, refused or cancelled.
    EXPECT_EQ(r->k.capacity_booked + r->k.capacity_refused + r->k.capacity_cancelled +
                  r->k.capacity_not_asked,
              2u);
  }
  EXPECT_GE(breakdowns, 6u * 3u);  // the three scheduled ones, at least
  EXPECT_GE(sum.outages, 6u * 3u);
  EXPECT_GT(sum.outage_delayed, 0u);
  EXPECT_GT(sum.outage_cancelled, 0u);
  EXPECT_GT(sum.orders_resourced, 0u);
  EXPECT_GT(sum.contracted, 6u * 25u);
  // Framecraft's coating capacity: paint1's breakdown cancels the booking
  // it covers (both ends agree: verify's capacity checks are part of the
  // end-of-run invariants) and keeps the other.
  EXPECT_GE(sum.capacity_offers, 5u);
  EXPECT_GT(sum.capacity_booked, 0u);
  EXPECT_GT(sum.capacity_cancelled, 0u);
  // A breakdown is part of the seed: the same seed replays exactly.
  sim_options o;
  o.seed = 4;
  auto a = run_simulation(*s, o);
  auto b = run_simulation(*s, o);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->trace_hash, b->trace_hash);
  EXPECT_EQ(a->state_hash, b->state_hash);
}

// sim_options::write_behind moves the stores' transactions to a second
// thread; the run must not change at all: same trace, same stores, same
// KPIs, through crashes in the middle of steps, at fault points (BUGGIFY)
// and in the middle of queued transactions, restarts from the stores,
// partitions and breakdowns.
TEST(simulator, writing_the_stores_behind_changes_nothing) {
  auto breakdowns = load_scenario(std::string(GEARMESH_SCENARIOS) + "/breakdowns.toml");
  ASSERT_TRUE(breakdowns) << breakdowns.error().to_string();
  auto faulted = small(12, 24);
  faulted.network.loss = 0.1;
  faulted.network.duplicate = 0.1;
  auto buggified = small(0, 0);  // crashes only at fault points
  std::uint64_t crashes = 0, mid_step = 0, at_points = 0;
  for (const scenario* s : {&*breakdowns, &faulted, &buggified}) {
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
      sim_options o;
      o.seed = seed;
      auto a = run_simulation(*s, o);
      o.write_behind = true;
      auto b = run_simulation(*s, o);
      ASSERT_TRUE(a && b);
      EXPECT_TRUE(b->ok) << b->failure;
      EXPECT_EQ(a->ok, b->ok) << "seed " << seed;
      EXPECT_EQ(a->trace_hash, b->trace_hash) << "seed " << seed;
      EXPECT_EQ(a->state_hash, b->state_hash) << "seed " << seed;
      EXPECT_EQ(a->frames_delivered, b->frames_delivered);
      EXPECT_EQ(a->actor_jobs, b->actor_jobs);
      EXPECT_EQ(a->invariant_checks, b->invariant_checks);
      EXPECT_EQ(a->k.contracted, b->k.contracted);
      EXPECT_EQ(a->k.on_time_pct, b->k.on_time_pct);
      EXPECT_EQ(a->k.lead_time_p95_h, b->k.lead_time_p95_h);
      EXPECT_EQ(a->k.negotiation_ms_mean, b->k.negotiation_ms_mean);
      EXPECT_EQ(a->k.utilization, b->k.utilization);
      EXPECT_EQ(a->k.outages, b->k.outages);
      EXPECT_EQ(a->orders.size(), b->orders.size());
      EXPECT_EQ(a->bookings.size(), b->bookings.size());
      EXPECT_EQ(a->crashes, b->crashes);
      crashes += b->crashes;
      mid_step += b->mid_step_crashes;
      at_points += b->crash_point_crashes;
    }
  }
  EXPECT_GT(crashes, 0u);
  EXPECT_GT(mid_step, 0u);
  EXPECT_GT(at_points, 0u);
}

}  // namespace
}  // namespace gearmesh::sim
