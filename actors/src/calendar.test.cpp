#include "gearmesh/actors/calendar.hpp"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

namespace gearmesh::actors {
namespace {

constexpr timestamp_us hour = us_per_hour;
// A day boundary, so that bucket numbers are easy to read.
constexpr timestamp_us t0 = 1000 * us_per_day;
constexpr std::int64_t b0 = t0 / hour;

TEST(calendar, empty_calendar_places_from_the_requested_time) {
  capacity_calendar cal(hour, 60);
  auto p = cal.find_earliest(90, t0, t0 + 10 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0);
  EXPECT_EQ(p->end_us, t0 + 90 * us_per_min);
  ASSERT_EQ(p->allocations.size(), 2u);
  EXPECT_EQ(p->allocations[0], (allocation{b0, 60}));
  EXPECT_EQ(p->allocations[1], (allocation{b0 + 1, 30}));
  EXPECT_EQ(p->units(), 90);
}

TEST(calendar, mid_bucket_start_uses_only_the_rest_of_the_bucket) {
  capacity_calendar cal(hour, 60);
  auto p = cal.find_earliest(30, t0 + 45 * us_per_min, t0 + 10 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0 + 45 * us_per_min);
  ASSERT_EQ(p->allocations.size(), 2u);
  EXPECT_EQ(p->allocations[0], (allocation{b0, 15}));
  EXPECT_EQ(p->allocations[1], (allocation{b0 + 1, 15}));
  EXPECT_EQ(p->end_us, t0 + hour + 15 * us_per_min);
}

TEST(calendar, spills_over_and_skips_full_buckets) {
  capacity_calendar cal(hour, 60);
  auto full = cal.find_earliest(60, t0 + hour, t0 + 10 * hour);
  ASSERT_TRUE(full);
  ASSERT_TRUE(cal.book("b1", *full).is_ok());
  auto partial = cal.find_earliest(20, t0, t0 + 10 * hour);
  ASSERT_TRUE(partial);
  ASSERT_TRUE(cal.hold("h1", *partial, t0 + 5 * us_per_min).is_ok());
  // 40 free in bucket 0, bucket 1 full, so the rest goes to bucket 2.
  auto p = cal.find_earliest(70, t0, t0 + 10 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0 + 20 * us_per_min);
  ASSERT_EQ(p->allocations.size(), 2u);
  EXPECT_EQ(p->allocations[0], (allocation{b0, 40}));
  EXPECT_EQ(p->allocations[1], (allocation{b0 + 2, 30}));
  EXPECT_EQ(p->end_us, t0 + 2 * hour + 30 * us_per_min);
  EXPECT_TRUE(cal.check().is_ok());
}

TEST(calendar, respects_the_horizon_and_bad_amounts) {
  capacity_calendar cal(hour, 60);
  EXPECT_FALSE(cal.find_earliest(121, t0, t0 + 2 * hour));
  EXPECT_TRUE(cal.find_earliest(120, t0, t0 + 2 * hour));
  EXPECT_FALSE(cal.find_earliest(0, t0, t0 + 2 * hour));
  EXPECT_FALSE(cal.find_earliest(-5, t0, t0 + 2 * hour));
  EXPECT_FALSE(cal.find_earliest(10, t0, t0));
  // More buckets than a search may examine.
  EXPECT_FALSE(cal.find_earliest(10, t0, t0 + (capacity_calendar::scan_buckets_max + 1) * hour));
}

TEST(calendar, hold_book_convert_release) {
  capacity_calendar cal(hour, 60);
  auto p = *cal.find_earliest(50, t0, t0 + 10 * hour);
  ASSERT_TRUE(cal.hold("h", p, t0 + us_per_min).is_ok());
  EXPECT_EQ(cal.load(b0), (bucket_load{0, 50}));
  EXPECT_EQ(cal.hold("h", p, t0).code(), errc::invalid_argument);  // id exists
  // The same buckets cannot be held twice beyond capacity.
  EXPECT_EQ(cal.hold("h2", p, t0).code(), errc::overloaded);
  EXPECT_EQ(cal.load(b0), (bucket_load{0, 50}));
  ASSERT_TRUE(cal.convert("h").is_ok());
  EXPECT_EQ(cal.load(b0), (bucket_load{50, 0}));
  EXPECT_TRUE(cal.convert("h").is_ok());  // idempotent
  EXPECT_EQ(cal.convert("nope").code(), errc::not_found);
  EXPECT_EQ(cal.find("h")->kind, reservation_kind::booking);
  EXPECT_TRUE(cal.release("h"));
  EXPECT_FALSE(cal.release("h"));
  EXPECT_EQ(cal.load(b0), (bucket_load{0, 0}));
  EXPECT_TRUE(cal.entries().empty());
  EXPECT_TRUE(cal.check().is_ok());
}

TEST(calendar, malformed_placements_are_refused) {
  capacity_calendar cal(hour, 60);
  EXPECT_EQ(cal.hold("e", placement{}, t0).code(), errc::invalid_argument);
  placement zero{t0, t0, {{b0, 0}}};
  EXPECT_EQ(cal.book("z", zero).code(), errc::invalid_argument);
  placement unordered{t0, t0, {{b0 + 1, 1}, {b0, 1}}};
  EXPECT_EQ(cal.book("u", unordered).code(), errc::invalid_argument);
  placement too_big{t0, t0, {{b0, 61}}};
  EXPECT_EQ(cal.book("b", too_big).code(), errc::overloaded);
  EXPECT_TRUE(cal.entries().empty());
}

TEST(calendar, holds_expire_after_their_deadline) {
  capacity_calendar cal(hour, 60);
  ASSERT_TRUE(cal.hold("a", *cal.find_earliest(10, t0, t0 + hour), t0 + 100).is_ok());
  ASSERT_TRUE(cal.hold("b", *cal.find_earliest(10, t0, t0 + hour), t0 + 200).is_ok());
  ASSERT_TRUE(cal.book("c", *cal.find_earliest(10, t0, t0 + hour)).is_ok());
  EXPECT_EQ(cal.next_deadline(), t0 + 100);
  EXPECT_TRUE(cal.expire(t0 + 100).empty());  // valid while now <= deadline
  EXPECT_EQ(cal.expire(t0 + 150), std::vector<std::string>{"a"});
  EXPECT_EQ(cal.next_deadline(), t0 + 200);
  EXPECT_EQ(cal.expire(t0 + 10 * hour), std::vector<std::string>{"b"});
  EXPECT_FALSE(cal.next_deadline());
  EXPECT_EQ(cal.load(b0), (bucket_load{10, 0}));
  EXPECT_TRUE(cal.check().is_ok());
}

TEST(calendar, records_round_trip) {
  capacity_calendar cal(hour, 60);
  ASSERT_TRUE(cal.hold("h", *cal.find_earliest(70, t0, t0 + 5 * hour), t0 + 9).is_ok());
  ASSERT_TRUE(cal.book("b", *cal.find_earliest(20, t0, t0 + 5 * hour)).is_ok());
  auto h = cal.to_record("saw1", "h");
  auto b = cal.to_record("saw1", "b");
  ASSERT_TRUE(h && b);
  EXPECT_EQ(h->kind, reservation_kind::hold);
  EXPECT_EQ(h->deadline_us, t0 + 9);
  EXPECT_FALSE(cal.to_record("saw1", "x"));
  capacity_calendar again(hour, 60);
  ASSERT_TRUE(again.restore(*h).is_ok());
  ASSERT_TRUE(again.restore(*b).is_ok());
  for (auto bucket = b0; bucket < b0 + 5; ++bucket) EXPECT_EQ(again.load(bucket), cal.load(bucket));
  EXPECT_EQ(*again.to_record("saw1", "h"), *h);
}

TEST(calendar, negative_times_use_floor_buckets) {
  capacity_calendar cal(hour, 60);
  EXPECT_EQ(cal.bucket_of(-1), -1);
  EXPECT_EQ(cal.bucket_of(0), 0);
  EXPECT_EQ(cal.bucket_of(hour - 1), 0);
  EXPECT_EQ(cal.bucket_of(-hour), -1);
}

/// Reserves `p` as "r<i>": a hold with a deadline up to 2 h after `now` if
/// `as_hold`, else a booking; its id goes to `ids`.
void reserve(capacity_calendar& cal, std::vector<std::string>& ids, int i, bool as_hold,
             timestamp_us now, const placement& p, std::mt19937_64& rng) {
  auto id = "r" + std::to_string(i);
  auto st = as_hold ? cal.hold(id, p, now + static_cast<timestamp_us>(rng() % (2 * hour)))
                    : cal.book(id, p);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ids.push_back(id);
}

TEST(calendar, random_operations_never_overcommit) {
  capacity_calendar cal(hour, 60);
  std::mt19937_64 rng(42);
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) {
    const auto op = rng() % 5;
    const timestamp_us now = t0 + static_cast<timestamp_us>(i) * us_per_min;
    if (op <= 1) {
      auto from = now + static_cast<timestamp_us>(rng() % (48 * hour));
      auto p =
          cal.find_earliest(1 + static_cast<std::int64_t>(rng() % 200), from, from + 72 * hour);
      if (!p) continue;
      ASSERT_NO_FATAL_FAILURE(reserve(cal, ids, i, op == 0, now, *p, rng));
    } else if (op == 2 && !ids.empty()) {
      cal.release(ids[rng() % ids.size()]);
    } else if (op == 3 && !ids.empty()) {
      (void)cal.convert(ids[rng() % ids.size()]);
    } else {
      cal.expire(now);
    }
    if (i % 100 == 0) {
      ASSERT_TRUE(cal.check().is_ok()) << cal.check().to_string();
    }
  }
  ASSERT_TRUE(cal.check().is_ok());
  for (const auto& [id, e] : cal.entries())
    for (const auto& a : e.where.allocations) {
      EXPECT_LE(cal.load(a.bucket).booked + cal.load(a.bucket).held, 60);
    }
}

// find_earliest remembers the first run of full buckets it met and steps
// over it next time; a release in the run makes it forget. Every search of
// a calendar that has lived through holds, bookings, releases, expiries and
// blocks must give what the same search gives on a calendar rebuilt from
// its entries (which remembers nothing).
TEST(calendar, searches_over_remembered_full_runs_find_what_a_fresh_calendar_finds) {
  capacity_calendar cal(hour, 60);
  std::mt19937_64 rng(7);
  std::vector<std::string> ids;
  int searched = 0, blocked = 0;
  auto rebuilt = [&] {
    capacity_calendar fresh(hour, 60);
    for (const auto& [id, e] : cal.entries()) {
      auto r = cal.to_record("m", id);
      EXPECT_TRUE(r && fresh.restore(*r).is_ok()) << id;
    }
    for (const auto& [id, r] : cal.blocks())
      EXPECT_TRUE(fresh.block(id, r.first_bucket, r.last_bucket).is_ok());
    return fresh;
  };
  for (int i = 0; i < 3000; ++i) {
    const timestamp_us now = t0 + static_cast<timestamp_us>(i) * us_per_min;
    const auto op = rng() % 10;
    // Mostly large bookings from about now: the near future fills up.
    if (op <= 5) {
      const auto from = now + static_cast<timestamp_us>(rng() % (4 * hour));
      const auto units = 30 + static_cast<std::int64_t>(rng() % 400);
      auto p = cal.find_earliest(units, from, from + 400 * hour);
      if (i % 10 == 0) {
        ++searched;
        auto fresh = rebuilt();
        auto q = fresh.find_earliest(units, from, from + 400 * hour);
        ASSERT_EQ(p.has_value(), q.has_value()) << i;
        if (p) {
          ASSERT_EQ(p->start_us, q->start_us) << i;
          ASSERT_EQ(p->end_us, q->end_us) << i;
          ASSERT_EQ(p->allocations, q->allocations) << i;
        }
      }
      if (!p) continue;
      ASSERT_NO_FATAL_FAILURE(reserve(cal, ids, i, op == 0, now, *p, rng));
    } else if (op <= 7 && !ids.empty()) {
      cal.release(ids[rng() % ids.size()]);
    } else if (op == 8) {
      cal.expire(now);
    } else if (blocked < 20) {
      const auto first = cal.bucket_of(now) + static_cast<std::int64_t>(rng() % 48);
      ASSERT_TRUE(cal.block("o" + std::to_string(i), first, first + 3).is_ok());
      ++blocked;
    } else if (!cal.blocks().empty()) {
      cal.unblock(cal.blocks().begin()->first);
    }
  }
  EXPECT_GE(searched, 100);
  ASSERT_TRUE(cal.check().is_ok());
}

TEST(calendar, daily_buckets_for_suppliers) {
  capacity_calendar cal(us_per_day, 40);
  auto p = cal.find_earliest(100, t0 + 3 * us_per_day, t0 + 30 * us_per_day);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->allocations.size(), 3u);
  EXPECT_EQ(p->allocations[2].units, 20);
  EXPECT_EQ(p->start_us, t0 + 3 * us_per_day);
  EXPECT_EQ(p->end_us, t0 + 5 * us_per_day + us_per_day / 2);
}

TEST(calendar, blocked_buckets_are_skipped_like_full_ones) {
  capacity_calendar cal(hour, 60);
  ASSERT_TRUE(cal.block("down1", b0 + 1, b0 + 2).is_ok());
  EXPECT_FALSE(cal.blocked(b0));
  EXPECT_TRUE(cal.blocked(b0 + 1));
  EXPECT_TRUE(cal.blocked(b0 + 2));
  EXPECT_FALSE(cal.blocked(b0 + 3));
  // 90 minutes from t0: 60 in bucket 0, the rest after the outage.
  auto p = cal.find_earliest(90, t0, t0 + 10 * hour);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->allocations.size(), 2u);
  EXPECT_EQ(p->allocations[0], (allocation{b0, 60}));
  EXPECT_EQ(p->allocations[1], (allocation{b0 + 3, 30}));
  EXPECT_EQ(p->end_us, t0 + 3 * hour + 30 * us_per_min);
  EXPECT_FALSE(cal.blocked(*p));
  EXPECT_TRUE(cal.blocked(placement{t0, t0 + 2 * hour, {{b0, 60}, {b0 + 1, 60}}}));
  // Starting inside the outage: the work waits for its end.
  p = cal.find_earliest(30, t0 + hour + 10 * us_per_min, t0 + 10 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0 + 3 * hour);
  EXPECT_FALSE(cal.blocked(*p));
  // Overlapping and adjacent blocks merge; the horizon still counts.
  ASSERT_TRUE(cal.block("down2", b0 + 2, b0 + 4).is_ok());
  ASSERT_TRUE(cal.block("down3", b0 + 5, b0 + 5).is_ok());
  EXPECT_FALSE(cal.find_earliest(30, t0 + hour, t0 + 6 * hour));
  p = cal.find_earliest(30, t0 + hour, t0 + 7 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0 + 6 * hour);
  // Unblocking one leaves the others.
  EXPECT_TRUE(cal.unblock("down2"));
  EXPECT_FALSE(cal.unblock("down2"));
  EXPECT_TRUE(cal.blocked(b0 + 2));
  EXPECT_FALSE(cal.blocked(b0 + 3));
  EXPECT_TRUE(cal.blocked(b0 + 5));
  p = cal.find_earliest(30, t0 + hour, t0 + 7 * hour);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->start_us, t0 + 3 * hour);
  // Errors change nothing.
  EXPECT_EQ(cal.block("down1", b0, b0).code(), errc::invalid_argument);
  EXPECT_EQ(cal.block("x", b0 + 2, b0 + 1).code(), errc::invalid_argument);
  EXPECT_EQ(cal.blocks().size(), 2u);
}

TEST(calendar, blocking_keeps_reservations_and_names_those_it_overlaps) {
  capacity_calendar cal(hour, 60);
  auto a = cal.find_earliest(90, t0, t0 + 10 * hour);  // buckets 0, 1
  ASSERT_TRUE(a && cal.book("a", *a).is_ok());
  auto b = cal.find_earliest(60, t0 + 3 * hour, t0 + 10 * hour);  // bucket 3
  ASSERT_TRUE(b && cal.hold("b", *b, t0 + hour).is_ok());
  ASSERT_TRUE(cal.block("down", b0 + 1, b0 + 3).is_ok());
  EXPECT_EQ(cal.overlapping(b0 + 1, b0 + 3), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cal.overlapping(b0 + 2, b0 + 2), std::vector<std::string>{});
  EXPECT_EQ(cal.overlapping(b0 + 3, b0 + 9), std::vector<std::string>{"b"});
  // The reservations are untouched (the caller moves them), the invariant holds.
  EXPECT_EQ(cal.load(b0 + 1).booked, 30);
  EXPECT_EQ(cal.load(b0 + 3).held, 60);
  EXPECT_TRUE(cal.check().is_ok());
  EXPECT_TRUE(cal.convert("b").is_ok());
  EXPECT_TRUE(cal.release("a"));
  EXPECT_TRUE(cal.check().is_ok());
}

// The reservations are kept unordered; what is listed from them comes in
// ascending id order however they were made (an outage moves them in that
// order, so a run's trace depends on it).
TEST(calendar, reservations_are_listed_in_ascending_id_order) {
  capacity_calendar cal(hour, 60);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back("offer-" + std::to_string(i * 7919 % 1000) + "#0");
  std::mt19937_64 rng(3);
  std::shuffle(ids.begin(), ids.end(), rng);
  for (const auto& id : ids) {
    auto p = cal.find_earliest(1, t0, t0 + 100 * hour);
    ASSERT_TRUE(p && cal.book(id, *p).is_ok()) << id;
  }
  auto listed = cal.overlapping(b0, b0 + 100);
  auto sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(listed, sorted);
  EXPECT_EQ(cal.entries().size(), ids.size());
  EXPECT_TRUE(cal.check().is_ok());
}

}  // namespace
}  // namespace gearmesh::actors
