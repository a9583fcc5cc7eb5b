#include "gearmesh/actors/scheduling.hpp"

#include <algorithm>
#include <sstream>

#include <gtest/gtest.h>

namespace gearmesh::actors {
namespace {

constexpr timestamp_us hour = us_per_hour;
constexpr timestamp_us minute = us_per_min;
// A day boundary, so that bucket numbers are easy to read.
constexpr timestamp_us t0 = 1000 * us_per_day;
constexpr std::int64_t b0 = t0 / hour;
constexpr reservation_terms booking{reservation_kind::booking, 0};

/// Machines with hour buckets of `capacity` minutes.
calendar_set machines(std::initializer_list<std::pair<const char*, std::int64_t>> ms) {
  calendar_set out;
  for (const auto& [id, capacity] : ms) out.emplace(id, capacity_calendar(hour, capacity));
  return out;
}

std::size_t entries(const calendar_set& cals) {
  std::size_t n = 0;
  for (const auto& [id, c] : cals) n += c.entries().size();
  return n;
}

TEST(scheduling, operations_follow_each_other_on_the_machine_that_ends_them_earliest) {
  auto cals = machines({{"saw1", 60}, {"weld1", 60}, {"weld2", 30}, {"paint1", 60}});
  work_plan plan;
  plan.from_us = t0;
  plan.horizon_us = t0 + 10 * hour;
  plan.operations = {{{"saw1"}, 30}, {{"weld1", "weld2"}, 45}, {{"paint1"}, 20}};
  // weld1 is busy for the first two hours: weld2 (half as fast) ends earlier.
  ASSERT_TRUE(cals.at("weld1").book("other", {t0, t0 + 2 * hour, {{b0, 60}, {b0 + 1, 60}}}));
  auto steps = place(cals, plan, "p1", {reservation_kind::hold, t0 + minute});
  ASSERT_TRUE(steps) << steps.error().to_string();
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].resource, "saw1");
  EXPECT_EQ((*steps)[0].reservation_id, "p1#0");
  EXPECT_EQ((*steps)[0].where.start_us, t0);
  EXPECT_EQ((*steps)[0].where.end_us, t0 + 30 * minute);
  // weld2: 30 minutes per hour bucket. From :30 of bucket 0 it may take
  // half the remaining share (15 units), then 30 in bucket 1: ends at 2:00.
  EXPECT_EQ((*steps)[1].resource, "weld2");
  EXPECT_GE((*steps)[1].where.start_us, (*steps)[0].where.end_us);
  EXPECT_EQ((*steps)[1].where.units(), 45);
  EXPECT_EQ((*steps)[2].resource, "paint1");
  EXPECT_GE((*steps)[2].where.start_us, (*steps)[1].where.end_us);
  // Reserved as holds with the deadline given.
  const auto* e = cals.at("paint1").find("p1#2");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, reservation_kind::hold);
  EXPECT_EQ(e->deadline_us, t0 + minute);
  for (const auto& [id, c] : cals) EXPECT_TRUE(c.check().is_ok()) << id;
}

TEST(scheduling, ties_go_to_the_candidate_listed_first) {
  auto cals = machines({{"a", 60}, {"b", 60}});
  std::vector<operation_plan> ops{{{"b", "a"}, 30}};
  auto steps = place_forward(cals, ops, 0, t0, t0 + hour, "p", booking);
  ASSERT_TRUE(steps);
  EXPECT_EQ((*steps)[0].resource, "b");
}

TEST(scheduling, work_goes_around_bookings_and_holds) {
  auto cals = machines({{"m", 60}});
  auto& m = cals.at("m");
  ASSERT_TRUE(m.book("x", {t0, t0 + hour, {{b0, 60}}}));
  ASSERT_TRUE(m.hold("y", {t0 + hour, t0 + hour + 40 * minute, {{b0 + 1, 40}}}, t0 + hour));
  std::vector<operation_plan> ops{{{"m"}, 50}};
  auto steps = place_forward(cals, ops, 0, t0, t0 + 5 * hour, "p", booking);
  ASSERT_TRUE(steps);
  // 20 free minutes after the hold in bucket 1, the rest in bucket 2.
  EXPECT_EQ((*steps)[0].where.start_us, t0 + hour + 40 * minute);
  EXPECT_EQ((*steps)[0].where.allocations, (std::vector<allocation>{{b0 + 1, 20}, {b0 + 2, 30}}));
  EXPECT_EQ((*steps)[0].where.end_us, t0 + 2 * hour + 30 * minute);
  EXPECT_TRUE(m.check().is_ok());
}

TEST(scheduling, the_first_operation_waits_for_the_components) {
  auto cals = machines({{"saw", 60}, {"weld", 60}});
  work_plan plan;
  plan.from_us = t0 + 26 * hour;  // the tube sets arrive the next day, 2:00
  plan.horizon_us = t0 + 10 * us_per_day;
  plan.operations = {{{"saw"}, 30}, {{"weld"}, 30}};
  auto steps = place(cals, plan, "p", booking);
  ASSERT_TRUE(steps);
  EXPECT_EQ(steps->front().where.start_us, t0 + 26 * hour);
  EXPECT_EQ(steps->back().where.end_us, t0 + 27 * hour);
}

TEST(scheduling, nothing_is_reserved_when_the_work_does_not_fit_by_the_horizon) {
  auto cals = machines({{"saw", 60}, {"weld", 60}});
  std::vector<operation_plan> ops{{{"saw"}, 60}, {{"weld"}, 90}};
  // The sawing fits, the welding would end at 2:30.
  auto steps = place_forward(cals, ops, 0, t0, t0 + 2 * hour, "p", booking);
  ASSERT_FALSE(steps);
  EXPECT_EQ(steps.error().code(), errc::overloaded);
  EXPECT_NE(steps.error().message().find("operation 1 fits on none of weld"), std::string::npos)
      << steps.error().message();
  EXPECT_EQ(entries(cals), 0u);
  EXPECT_TRUE(place_forward(cals, ops, 0, t0, t0 + 3 * hour, "p", booking));
}

TEST(scheduling, operations_on_one_machine_never_overlap) {
  // Assemble, test, assemble again on one machine: each waits for the last.
  auto cals = machines({{"m", 60}});
  std::vector<operation_plan> ops{{{"m"}, 20}, {{"m"}, 20}, {{"m"}, 50}};
  auto steps = place_forward(cals, ops, 0, t0 + 10 * minute, t0 + 5 * hour, "p", booking);
  ASSERT_TRUE(steps);
  for (std::size_t k = 1; k < steps->size(); ++k)
    EXPECT_GE((*steps)[k].where.start_us, (*steps)[k - 1].where.end_us);
  EXPECT_EQ(cals.at("m").load(b0).booked, 50);  // 10 minutes before the start stay free
  EXPECT_TRUE(cals.at("m").check().is_ok());
}

TEST(scheduling, malformed_plans_are_errors) {
  auto cals = machines({{"m", 60}});
  EXPECT_EQ(place_forward(cals, {{{"m"}, 0}}, 0, t0, t0 + hour, "p", booking).error().code(),
            errc::invalid_argument);
  EXPECT_EQ(place_forward(cals, {{{"nope"}, 10}}, 0, t0, t0 + hour, "p", booking).error().code(),
            errc::invalid_argument);
  // A reservation id that exists.
  ASSERT_TRUE(place_forward(cals, {{{"m"}, 10}}, 0, t0, t0 + hour, "p", booking));
  EXPECT_EQ(place_forward(cals, {{{"m"}, 10}}, 0, t0, t0 + hour, "p", booking).error().code(),
            errc::invalid_argument);
  EXPECT_EQ(entries(cals), 1u);
}

// --- re-planning ------------------------------------------------------------

struct frame_shop {
  calendar_set cals = machines({{"saw1", 60}, {"weld1", 60}, {"weld2", 60}, {"paint1", 60}});
  std::vector<operation_plan> ops{{{"saw1"}, 60}, {{"weld1", "weld2"}, 120}, {{"paint1"}, 60}};
  std::vector<chosen_step> steps;
  frame_shop() {
    auto placed = place_forward(cals, ops, 0, t0, t0 + 2 * us_per_day, "p", booking);
    EXPECT_TRUE(placed);
    steps = *placed;
  }
};

TEST(scheduling, a_plan_off_the_blocked_buckets_is_left_alone) {
  frame_shop f;
  ASSERT_EQ(f.steps[1].resource, "weld1");
  ASSERT_TRUE(f.cals.at("weld1").block("down", b0 + 5, b0 + 8));
  auto r = replan_blocked(f.cals, f.ops, f.steps, t0, t0 + 2 * us_per_day, "p", booking);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_moved, 3u);
  EXPECT_EQ(r->steps, f.steps);
  EXPECT_EQ(first_blocked(f.cals, f.steps, t0), std::nullopt);
}

TEST(scheduling, a_broken_machine_sends_its_work_to_another_capable_one) {
  frame_shop f;
  // Welding on weld1 from 1:00 to 3:00; weld1 breaks down at 1:30 for 4 hours.
  ASSERT_EQ(f.steps[1].resource, "weld1");
  const auto old_end = f.steps.back().where.end_us;
  ASSERT_TRUE(f.cals.at("weld1").block("down", b0 + 1, b0 + 5));
  EXPECT_EQ(first_blocked(f.cals, f.steps, t0), std::optional<std::size_t>{1});
  // Finished work never moves: at 3:00 the welding is done.
  EXPECT_EQ(first_blocked(f.cals, f.steps, t0 + 3 * hour), std::nullopt);
  auto r =
      replan_blocked(f.cals, f.ops, f.steps, t0 + 90 * minute, t0 + 2 * us_per_day, "p", booking);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->first_moved, 1u);
  EXPECT_EQ(r->steps[0], f.steps[0]);  // the sawing is done
  EXPECT_EQ(r->steps[1].resource, "weld2");
  EXPECT_EQ(r->steps[1].reservation_id, "p#1");
  EXPECT_EQ(r->steps[1].where.start_us, t0 + 90 * minute);  // not before now
  EXPECT_EQ(r->steps[1].where.units(), 120);
  EXPECT_EQ(r->steps[2].resource, "paint1");
  EXPECT_GE(r->steps[2].where.start_us, r->steps[1].where.end_us);
  EXPECT_EQ(r->end_us, r->steps[2].where.end_us);
  EXPECT_EQ(r->end_us, old_end + 30 * minute);  // half an hour lost to the breakdown
  EXPECT_EQ(f.cals.at("weld1").find("p#1"), nullptr);
  EXPECT_EQ(f.cals.at("weld2").find("p#1")->kind, reservation_kind::booking);
  for (const auto& [id, c] : f.cals) EXPECT_TRUE(c.check().is_ok()) << id;
}

TEST(scheduling, with_no_other_machine_the_work_waits_for_the_repair) {
  frame_shop f;
  f.ops[1].candidates = {"weld1"};
  ASSERT_TRUE(f.cals.at("weld1").block("down", b0 + 1, b0 + 3));
  auto r = replan_blocked(f.cals, f.ops, f.steps, t0 + hour, t0 + 2 * us_per_day, "p", booking);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->steps[1].resource, "weld1");
  EXPECT_EQ(r->steps[1].where.start_us, t0 + 4 * hour);
  EXPECT_EQ(r->end_us, t0 + 7 * hour);
}

TEST(scheduling, a_plan_that_no_longer_fits_is_put_back_as_it_was) {
  frame_shop f;
  ASSERT_TRUE(f.cals.at("weld1").block("down1", b0, b0 + 100));
  ASSERT_TRUE(f.cals.at("weld2").block("down2", b0, b0 + 100));
  auto r = replan_blocked(f.cals, f.ops, f.steps, t0, t0 + 2 * us_per_day, "p", booking);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::overloaded);
  for (const auto& s : f.steps) {
    const auto* e = f.cals.at(s.resource).find(s.reservation_id);
    ASSERT_NE(e, nullptr) << s.reservation_id;
    EXPECT_EQ(e->where, s.where);
  }
  EXPECT_EQ(entries(f.cals), 3u);
  // A step whose reservation is missing is an error, nothing changes.
  auto steps = f.steps;
  steps[2].reservation_id = "p#9";
  r = replan_blocked(f.cals, f.ops, steps, t0, t0 + 2 * us_per_day, "p", booking);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_EQ(entries(f.cals), 3u);
}

TEST(scheduling, held_work_is_moved_as_holds_with_their_deadline) {
  auto cals = machines({{"a", 60}, {"b", 60}});
  std::vector<operation_plan> ops{{{"a", "b"}, 30}};
  const reservation_terms hold{reservation_kind::hold, t0 + 5 * minute};
  auto steps = place_forward(cals, ops, 0, t0, t0 + hour, "p", hold);
  ASSERT_TRUE(steps && (*steps)[0].resource == "a");
  ASSERT_TRUE(cals.at("a").block("down", b0, b0));
  auto r = replan_blocked(cals, ops, *steps, t0, t0 + hour, "p", hold);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->steps[0].resource, "b");
  const auto* e = cals.at("b").find("p#0");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, reservation_kind::hold);
  EXPECT_EQ(e->deadline_us, t0 + 5 * minute);
}

// --- job-shop instances -------------------------------------------------------

/// Two classic instances of the OR-Library (jobshop1.txt): per job, pairs of
/// machine (from 0) and processing time, in routing order.
struct jssp_instance {
  const char* name;
  std::int64_t optimum;  // proven optimal (non-preemptive) makespan
  const char* text;
};

const jssp_instance jssp_instances[] = {
    {"ft06", 55,
     "6 6\n"
     "2 1 0 3 1 6 3 7 5 3 4 6\n"
     "1 8 2 5 4 10 5 10 0 10 3 4\n"
     "2 5 3 4 5 8 0 9 1 1 4 7\n"
     "1 5 0 5 2 5 3 3 4 8 5 9\n"
     "2 9 1 3 4 5 5 4 0 3 3 1\n"
     "1 3 3 3 5 9 0 10 4 4 2 1\n"},
    {"la01", 666,
     "10 5\n"
     "1 21 0 53 4 95 3 55 2 34\n"
     "0 21 3 52 4 16 2 26 1 71\n"
     "3 39 4 98 1 42 2 31 0 12\n"
     "1 77 0 55 4 79 2 66 3 77\n"
     "0 83 3 34 2 64 1 19 4 37\n"
     "1 54 2 43 4 79 0 92 3 62\n"
     "3 69 4 77 1 87 2 87 0 93\n"
     "2 38 0 60 1 41 3 24 4 83\n"
     "3 17 1 49 4 25 0 44 2 98\n"
     "4 77 3 79 2 43 1 75 0 96\n"},
};

// Every job of an instance is placed as one order (its routing, one
// candidate machine per operation) on one-minute buckets of one unit, so the
// calendar model is exact time. The schedule must be feasible — every
// operation gets its minutes, in routing order, no machine does two things
// in one minute — and no shorter than the instance's lower bound.
TEST(scheduling, job_shop_instances_get_feasible_schedules) {
  for (const auto& inst : jssp_instances) {
    std::istringstream in(inst.text);
    std::size_t jobs = 0, machine_count = 0;
    in >> jobs >> machine_count;
    calendar_set cals;
    for (std::size_t m = 0; m < machine_count; ++m)
      cals.emplace("m" + std::to_string(m), capacity_calendar(minute, 1));
    std::vector<std::vector<operation_plan>> routings(jobs);
    std::int64_t lower_bound = 0;
    std::vector<std::int64_t> machine_load(machine_count, 0);
    for (auto& r : routings) {
      std::int64_t job_length = 0;
      for (std::size_t k = 0; k < machine_count; ++k) {
        std::size_t m = 0;
        std::int64_t t = 0;
        in >> m >> t;
        r.push_back({{"m" + std::to_string(m)}, t});
        job_length += t;
        machine_load[m] += t;
      }
      lower_bound = std::max(lower_bound, job_length);
    }
    for (auto l : machine_load) lower_bound = std::max(lower_bound, l);
    timestamp_us makespan_end = t0;
    for (std::size_t j = 0; j < jobs; ++j) {
      auto steps = place_forward(cals, routings[j], 0, t0, t0 + us_per_day,
                                 "job" + std::to_string(j), booking);
      ASSERT_TRUE(steps) << inst.name << " job " << j << ": " << steps.error().to_string();
      for (std::size_t k = 0; k < steps->size(); ++k) {
        const auto& s = (*steps)[k];
        EXPECT_EQ(s.resource, routings[j][k].candidates[0]);
        EXPECT_EQ(s.where.units(), routings[j][k].units);
        EXPECT_EQ(static_cast<std::int64_t>(s.where.allocations.back().bucket + 1) * minute,
                  s.where.end_us);
        if (k > 0) {
          EXPECT_GE(s.where.start_us, (*steps)[k - 1].where.end_us);
        }
      }
      makespan_end = std::max(makespan_end, steps->back().where.end_us);
    }
    for (const auto& [id, c] : cals) {
      ASSERT_TRUE(c.check().is_ok()) << inst.name << " " << id;  // <= 1 unit per minute
    }
    const auto makespan = (makespan_end - t0) / minute;
    EXPECT_GE(makespan, lower_bound) << inst.name;
    // Job after job, preemptive forward loading: within twice the optimum.
    EXPECT_LE(makespan, 2 * inst.optimum) << inst.name;
    std::printf(
        "%s: makespan %lld, optimum %lld, gap %.1f %%\n", inst.name,
        static_cast<long long>(makespan), static_cast<long long>(inst.optimum),
        100.0 * static_cast<double>(makespan - inst.optimum) / static_cast<double>(inst.optimum));
  }
}

}  // namespace
}  // namespace gearmesh::actors
