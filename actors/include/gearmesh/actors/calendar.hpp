// A resource's capacity calendar in fixed time buckets.
//
// Time is cut into buckets of `bucket_us` (1 hour for a machine, 1 day for a
// supplier's item); bucket b covers [b * bucket_us, (b + 1) * bucket_us). Each
// bucket offers `capacity` units (60 machine-minutes per hour, N units per
// day). The calendar stores, sparsely, how many units of each bucket are
// held (soft, expiring reservations backing proposals) and booked (hard
// reservations backing contracts).
//
// Invariant (DESIGN.md invariant 1): in every bucket 0 <= booked + held <=
// capacity. Every mutation checks it for the buckets it touches and aborts the
// process if it is ever broken (a bug, never an input error); `check()`
// verifies the whole calendar against its reservations.
//
// Time inside a bucket follows a fill-level model: the units of a bucket are
// consumed from its start, so a bucket whose load is L starts new work at
// bucket_start + L/capacity of the bucket. Work may be split over several
// buckets; full buckets are skipped (the work pauses).
//
// Pure logic: no clock, no I/O. Not thread-safe; owned by one actor.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/string_hash.hpp"

namespace gearmesh::actors {

/// Where `units` of work would go: the buckets used and the resulting times.
struct placement {
  timestamp_us start_us = 0;            // when the work starts
  timestamp_us end_us = 0;              // when the work is done
  std::vector<allocation> allocations;  // ascending buckets, units > 0
  std::int64_t units() const;
  bool operator==(const placement&) const = default;
};

/// Load of one bucket.
struct bucket_load {
  std::int64_t booked = 0;
  std::int64_t held = 0;
  bool operator==(const bucket_load&) const = default;
};

/// One reservation in the calendar.
struct calendar_entry {
  reservation_kind kind = reservation_kind::hold;
  timestamp_us deadline_us = 0;  // holds only: expired once now > deadline_us
  placement where;
};

/// The record of a reservation of `id` on `resource` placed at `where` as
/// `kind`; holds carry `deadline_us`, bookings 0.
reservation_record reservation_of(std::string_view resource, std::string_view id,
                                  reservation_kind kind, timestamp_us deadline_us,
                                  const placement& where);

/// The holds offer `o` carries (reservation_ref::carried), as hold records
/// with the offer's deadline (valid_until_us); none unless `o` is held and
/// `now` is not past that deadline (a lapsed hold takes no capacity).
std::vector<reservation_record> carried_holds(const offer_record& o, timestamp_us now);

class capacity_calendar {
 public:
  /// Reservations by id. Not ordered: a busy resource keeps thousands of
  /// bookings whose ids share long prefixes, and a tree compared them at
  /// every level of every insertion. What is listed from it is sorted.
  using entry_map = std::unordered_map<std::string, calendar_entry, string_hash, std::equal_to<>>;

  /// Most buckets one search examines (bounds find_earliest).
  static constexpr std::int64_t scan_buckets_max = 200'000;
  /// Most reservations one calendar keeps (holds + bookings).
  static constexpr std::size_t entries_max = 1'000'000;

  /// `bucket_us` > 0 and 0 < `capacity` <= 1e9 (checked; aborts otherwise).
  capacity_calendar(timestamp_us bucket_us, std::int64_t capacity);

  timestamp_us bucket_us() const noexcept { return bucket_us_; }
  std::int64_t capacity() const noexcept { return capacity_; }
  /// floor(t / bucket_us).
  std::int64_t bucket_of(timestamp_us t) const noexcept;
  timestamp_us bucket_start(std::int64_t bucket) const noexcept { return bucket * bucket_us_; }

  /// The earliest placement of `units` (> 0) units of work that starts no
  /// earlier than `from` and ends no later than `horizon_us`: walks the
  /// buckets from the one holding `from`, taking the free capacity of each
  /// (in the first bucket only the share after `from`) until all units are
  /// placed. std::nullopt if it does not fit, if `units` <= 0, or if the search
  /// would examine more than scan_buckets_max buckets.
  std::optional<placement> find_earliest(std::int64_t units, timestamp_us from,
                                         timestamp_us horizon_us) const;

  /// Reserves `where` as a hold that expires once now > `deadline_us`.
  /// Errors (nothing changes): errc::invalid_argument if `id` exists or the
  /// placement is malformed; errc::overloaded if a bucket lacks free capacity
  /// or entries_max is reached.
  status hold(const std::string& id, const placement& where, timestamp_us deadline_us);

  /// Reserves `where` as a booking (no deadline). Errors as for hold().
  status book(const std::string& id, const placement& where);

  /// Turns hold `id` into a booking on the same buckets. Errors:
  /// errc::not_found (no such hold); ok if `id` already is a booking.
  status convert(std::string_view id);

  /// Releases hold or booking `id`. false if there was none.
  bool release(std::string_view id);

  /// Releases every hold with deadline_us < now; returns their ids (ascending).
  std::vector<std::string> expire(timestamp_us now);

  /// Earliest deadline of any hold.
  std::optional<timestamp_us> next_deadline() const;

  const calendar_entry* find(std::string_view id) const;
  /// In no particular order.
  const entry_map& entries() const noexcept { return entries_; }
  /// Load of `bucket` (zero if untouched).
  bucket_load load(std::int64_t bucket) const;
  /// Free units of `bucket`.
  std::int64_t free_units(std::int64_t bucket) const;

  /// Verifies the invariant: every bucket within [0, capacity] and equal to the
  /// sum of the reservations on it. Error errc::internal naming the bucket.
  status check() const;

  /// Most blocks (outage windows) one calendar keeps.
  static constexpr std::size_t blocks_max = 4096;

  /// One blocked run of buckets.
  struct block_range {
    std::int64_t first_bucket = 0;
    std::int64_t last_bucket = 0;  // inclusive
    bool operator==(const block_range&) const = default;
  };

  /// Makes buckets [first_bucket, last_bucket] unavailable to find_earliest
  /// as block `id` (overlapping blocks are fine). Errors (nothing changes):
  /// errc::invalid_argument if `id` exists or first_bucket > last_bucket;
  /// errc::overloaded if blocks_max is reached.
  status block(const std::string& id, std::int64_t first_bucket, std::int64_t last_bucket);
  /// Removes block `id`. false if there was none.
  bool unblock(std::string_view id);
  /// Whether some block covers `bucket`.
  bool blocked(std::int64_t bucket) const;
  /// Whether some block covers a bucket of `where`.
  bool blocked(const placement& where) const;
  const std::map<std::string, block_range, std::less<>>& blocks() const noexcept { return blocks_; }
  /// Ids of the reservations (holds and bookings) with units in a bucket of
  /// [first_bucket, last_bucket], ascending. Linear in the number of entries.
  std::vector<std::string> overlapping(std::int64_t first_bucket, std::int64_t last_bucket) const;

  /// The record of entry `id` for the "holds"/"bookings" tables.
  std::optional<reservation_record> to_record(std::string_view resource, std::string_view id) const;
  /// Restores an entry from its record (on actor start).
  status restore(const reservation_record& r);

 private:
  status add(const std::string& id, calendar_entry e);
  void apply(const placement& p, reservation_kind kind, std::int64_t sign);

  timestamp_us bucket_us_;
  std::int64_t capacity_;
  std::map<std::int64_t, bucket_load> buckets_;
  entry_map entries_;
  /// The holds among entries_, by (deadline, id): expire() and
  /// next_deadline() stay O(log n) however many bookings accumulate.
  std::set<std::pair<timestamp_us, std::string>, std::less<>> hold_deadlines_;
  /// Blocks by id, and their union as disjoint runs (first -> last bucket).
  std::map<std::string, block_range, std::less<>> blocks_;
  std::map<std::int64_t, std::int64_t> blocked_;
  /// Buckets [full_from_, full_to_) are all full (held + booked ==
  /// capacity), as a search found them: a later search steps over them at
  /// once instead of one map node at a time (busy machines are full for
  /// days ahead). Only adding load can happen to a full bucket; apply()
  /// forgets the run when a release touches it.
  mutable std::int64_t full_from_ = 0;
  mutable std::int64_t full_to_ = 0;
  static constexpr std::int64_t full_run_min = 8;
  void merge_blocks();
  /// The last bucket of the blocked run holding `bucket`, if any.
  std::optional<std::int64_t> blocked_run_end(std::int64_t bucket) const;
};

}  // namespace gearmesh::actors
