#include "gearmesh/actors/calendar.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace gearmesh::actors {

namespace {

// Assertions stay on in release builds: a broken calendar invariant means
// over-committed capacity, which must never be written anywhere.
#define GM_CAL_ASSERT(cond)                                                                      \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "%s:%d: calendar invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (false)

/// ceil(a * b / c) for non-negative values without overflow.
std::int64_t mul_div_ceil(std::int64_t a, std::int64_t b, std::int64_t c) {
  const __int128 p = static_cast<__int128>(a) * b;
  return static_cast<std::int64_t>((p + c - 1) / c);
}

std::int64_t mul_div_floor(std::int64_t a, std::int64_t b, std::int64_t c) {
  return static_cast<std::int64_t>(static_cast<__int128>(a) * b / c);
}

}  // namespace

std::int64_t placement::units() const {
  std::int64_t n = 0;
  for (const auto& a : allocations) n += a.units;
  return n;
}

capacity_calendar::capacity_calendar(timestamp_us bucket_us, std::int64_t capacity)
    : bucket_us_(bucket_us), capacity_(capacity) {
  GM_CAL_ASSERT(bucket_us_ > 0);
  GM_CAL_ASSERT(capacity_ > 0 && capacity_ <= 1'000'000'000);
}

std::int64_t capacity_calendar::bucket_of(timestamp_us t) const noexcept {
  auto q = t / bucket_us_;
  if (t % bucket_us_ != 0 && t < 0) --q;
  return q;
}

bucket_load capacity_calendar::load(std::int64_t bucket) const {
  auto it = buckets_.find(bucket);
  return it == buckets_.end() ? bucket_load{} : it->second;
}

std::int64_t capacity_calendar::free_units(std::int64_t bucket) const {
  auto l = load(bucket);
  return capacity_ - l.booked - l.held;
}

std::optional<placement> capacity_calendar::find_earliest(std::int64_t units, timestamp_us from,
                                                          timestamp_us horizon_us) const {
  if (units <= 0 || horizon_us <= from) return std::nullopt;
  const auto first = bucket_of(from);
  const auto last = bucket_of(horizon_us - 1);
  if (last - first >= scan_buckets_max) return std::nullopt;
  placement p;
  std::int64_t remaining = units;
  // Buckets are visited in order: walk the map alongside instead of one
  // lookup per bucket (a search may examine thousands of empty buckets).
  auto loaded = buckets_.lower_bound(first);
  // The run of full buckets this search meets first (full_from_/full_to_).
  std::int64_t run_from = 0, run_to = 0;
  bool in_run = false;
  for (auto b = first; b <= last && remaining > 0; ++b) {
    if (b >= full_from_ && b < full_to_) {
      // Full: nothing to take there (what the walk below would find). The
      // run goes on from there if the buckets after it are full too.
      if (!in_run && run_to == 0) {
        run_from = full_from_;
        in_run = true;
      }
      b = full_to_ - 1;
      loaded = buckets_.lower_bound(full_to_);
      continue;
    }
    if (auto run_end = blocked_run_end(b)) {
      b = *run_end;  // the machine is down: the work waits
      in_run = false;
      continue;
    }
    const auto begin = bucket_start(b);
    while (loaded != buckets_.end() && loaded->first < b) ++loaded;
    const auto l = loaded != buckets_.end() && loaded->first == b ? loaded->second : bucket_load{};
    const auto used = l.booked + l.held;
    if (used == capacity_ && run_to == 0) {
      if (!in_run) run_from = b;
      in_run = true;
    } else if (in_run) {
      run_to = b;  // the first run only
      in_run = false;
    }
    std::int64_t free = capacity_ - used;
    // Earliest moment in this bucket where new work may begin.
    const timestamp_us fill_at = begin + mul_div_ceil(used, bucket_us_, capacity_);
    const timestamp_us start_at = std::max(fill_at, from);
    if (from > begin) {
      // Only the share of the bucket after `from` can be used.
      const auto share = mul_div_floor(capacity_, begin + bucket_us_ - from, bucket_us_);
      free = std::min(free, share);
    }
    if (free <= 0) continue;
    const auto take = std::min(free, remaining);
    const auto end_at =
        std::min(begin + bucket_us_, start_at + mul_div_ceil(take, bucket_us_, capacity_));
    if (end_at > horizon_us) return std::nullopt;
    if (p.allocations.empty()) p.start_us = start_at;
    p.allocations.push_back({b, take});
    p.end_us = end_at;
    remaining -= take;
  }
  // Remember a run long enough to be worth it (it ended before the search
  // did, so its end is known).
  if (run_to - run_from >= full_run_min) {
    full_from_ = run_from;
    full_to_ = run_to;
  }
  if (remaining > 0) return std::nullopt;
  return p;
}

void capacity_calendar::apply(const placement& p, reservation_kind kind, std::int64_t sign) {
  for (const auto& a : p.allocations) {
    // A release frees capacity in a bucket the full run may hold.
    if (sign < 0 && a.bucket >= full_from_ && a.bucket < full_to_) full_to_ = full_from_;
    auto& l = buckets_[a.bucket];
    (kind == reservation_kind::hold ? l.held : l.booked) += sign * a.units;
    GM_CAL_ASSERT(l.held >= 0 && l.booked >= 0);
    GM_CAL_ASSERT(l.held + l.booked <= capacity_);
    if (l.held == 0 && l.booked == 0) buckets_.erase(a.bucket);
  }
}

status capacity_calendar::add(const std::string& id, calendar_entry e) {
  if (entries_.contains(id)) return {errc::invalid_argument, "reservation " + id + " exists"};
  if (entries_.size() >= entries_max)
    return {errc::overloaded, "calendar holds too many reservations"};
  if (e.where.allocations.empty()) return {errc::invalid_argument, "empty placement"};
  std::int64_t prev = 0;
  bool first = true;
  for (const auto& a : e.where.allocations) {
    if (a.units <= 0 || (!first && a.bucket <= prev))
      return {errc::invalid_argument, "malformed placement for " + id};
    if (free_units(a.bucket) < a.units)
      return {errc::overloaded, "bucket " + std::to_string(a.bucket) + " lacks capacity for " + id};
    prev = a.bucket;
    first = false;
  }
  apply(e.where, e.kind, +1);
  if (e.kind == reservation_kind::hold) hold_deadlines_.emplace(e.deadline_us, id);
  entries_.emplace(id, std::move(e));
  return status::ok();
}

status capacity_calendar::hold(const std::string& id, const placement& where,
                               timestamp_us deadline_us) {
  return add(id, calendar_entry{reservation_kind::hold, deadline_us, where});
}

status capacity_calendar::book(const std::string& id, const placement& where) {
  return add(id, calendar_entry{reservation_kind::booking, 0, where});
}

status capacity_calendar::convert(std::string_view id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return {errc::not_found, "no hold " + std::string(id)};
  if (it->second.kind == reservation_kind::booking) return status::ok();
  apply(it->second.where, reservation_kind::hold, -1);
  // Re-adding the same units as booked cannot exceed capacity: they were just freed.
  apply(it->second.where, reservation_kind::booking, +1);
  hold_deadlines_.erase({it->second.deadline_us, it->first});
  it->second.kind = reservation_kind::booking;
  it->second.deadline_us = 0;
  return status::ok();
}

bool capacity_calendar::release(std::string_view id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  apply(it->second.where, it->second.kind, -1);
  if (it->second.kind == reservation_kind::hold)
    hold_deadlines_.erase({it->second.deadline_us, it->first});
  entries_.erase(it);
  return true;
}

std::vector<std::string> capacity_calendar::expire(timestamp_us now) {
  std::vector<std::string> gone;
  for (auto it = hold_deadlines_.begin(); it != hold_deadlines_.end() && it->first < now; ++it)
    gone.push_back(it->second);
  std::sort(gone.begin(), gone.end());  // ascending ids, as documented
  for (const auto& id : gone) release(id);
  return gone;
}

std::optional<timestamp_us> capacity_calendar::next_deadline() const {
  if (hold_deadlines_.empty()) return std::nullopt;
  return hold_deadlines_.begin()->first;
}

const calendar_entry* capacity_calendar::find(std::string_view id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

status capacity_calendar::check() const {
  std::map<std::int64_t, bucket_load> sum;
  for (const auto& [id, e] : entries_)
    for (const auto& a : e.where.allocations)
      (e.kind == reservation_kind::hold ? sum[a.bucket].held : sum[a.bucket].booked) += a.units;
  for (const auto& [b, l] : sum) {
    if (l.held < 0 || l.booked < 0 || l.held + l.booked > capacity_)
      return {errc::internal, "bucket " + std::to_string(b) + " over capacity: booked " +
                                  std::to_string(l.booked) + " + held " + std::to_string(l.held) +
                                  " > " + std::to_string(capacity_)};
  }
  for (const auto& [b, l] : buckets_) {
    auto it = sum.find(b);
    if (it == sum.end() || !(it->second == l))
      return {errc::internal,
              "bucket " + std::to_string(b) + " load differs from its reservations"};
  }
  if (sum.size() != buckets_.size()) return {errc::internal, "bucket index incomplete"};
  std::size_t holds = 0;
  for (const auto& [id, e] : entries_) {
    if (e.kind != reservation_kind::hold) continue;
    ++holds;
    if (!hold_deadlines_.count(std::pair<timestamp_us, std::string>{e.deadline_us, id}))
      return {errc::internal, "hold " + id + " missing from the deadline index"};
  }
  if (holds != hold_deadlines_.size()) return {errc::internal, "deadline index has extra entries"};
  return status::ok();
}

status capacity_calendar::block(const std::string& id, std::int64_t first_bucket,
                                std::int64_t last_bucket) {
  if (blocks_.count(id)) return {errc::invalid_argument, "block " + id + " exists"};
  if (first_bucket > last_bucket)
    return {errc::invalid_argument, "block " + id + " ends before it starts"};
  if (blocks_.size() >= blocks_max) return {errc::overloaded, "calendar holds too many blocks"};
  blocks_.emplace(id, block_range{first_bucket, last_bucket});
  merge_blocks();
  return status::ok();
}

bool capacity_calendar::unblock(std::string_view id) {
  auto it = blocks_.find(id);
  if (it == blocks_.end()) return false;
  blocks_.erase(it);
  merge_blocks();
  return true;
}

void capacity_calendar::merge_blocks() {
  std::vector<block_range> all;
  all.reserve(blocks_.size());
  for (const auto& [id, r] : blocks_) all.push_back(r);
  std::sort(all.begin(), all.end(), [](const block_range& a, const block_range& b) {
    return a.first_bucket < b.first_bucket;
  });
  blocked_.clear();
  for (const auto& r : all) {
    if (!blocked_.empty()) {
      auto last = std::prev(blocked_.end());
      if (r.first_bucket <= last->second + 1) {
        last->second = std::max(last->second, r.last_bucket);
        continue;
      }
    }
    blocked_.emplace(r.first_bucket, r.last_bucket);
  }
}

std::optional<std::int64_t> capacity_calendar::blocked_run_end(std::int64_t bucket) const {
  auto it = blocked_.upper_bound(bucket);
  if (it == blocked_.begin()) return std::nullopt;
  --it;
  if (it->second < bucket) return std::nullopt;
  return it->second;
}

bool capacity_calendar::blocked(std::int64_t bucket) const {
  return blocked_run_end(bucket).has_value();
}

bool capacity_calendar::blocked(const placement& where) const {
  if (blocked_.empty()) return false;
  return std::any_of(where.allocations.begin(), where.allocations.end(),
                     [&](const allocation& a) { return blocked(a.bucket); });
}

std::vector<std::string> capacity_calendar::overlapping(std::int64_t first_bucket,
                                                        std::int64_t last_bucket) const {
  std::vector<std::string> out;
  for (const auto& [id, e] : entries_)
    if (std::any_of(e.where.allocations.begin(), e.where.allocations.end(),
                    [&](const allocation& a) {
                      return a.bucket >= first_bucket && a.bucket <= last_bucket;
                    }))
      out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

reservation_record reservation_of(std::string_view resource, std::string_view id,
                                  reservation_kind kind, timestamp_us deadline_us,
                                  const placement& where) {
  reservation_record r;
  r.resource = std::string(resource);
  r.reservation_id = std::string(id);
  r.kind = kind;
  r.deadline_us = kind == reservation_kind::hold ? deadline_us : 0;
  r.start_us = where.start_us;
  r.end_us = where.end_us;
  r.allocations = where.allocations;
  return r;
}

std::vector<reservation_record> carried_holds(const offer_record& o, timestamp_us now) {
  std::vector<reservation_record> out;
  if (o.state != offer_state::held || now > o.valid_until_us) return out;
  for (const auto& r : o.reservations)
    if (r.carried())
      out.push_back(reservation_of(r.resource, r.reservation_id, reservation_kind::hold,
                                   o.valid_until_us,
                                   placement{r.start_us, r.end_us, r.allocations}));
  return out;
}

std::optional<reservation_record> capacity_calendar::to_record(std::string_view resource,
                                                               std::string_view id) const {
  const auto* e = find(id);
  if (!e) return std::nullopt;
  return reservation_of(resource, id, e->kind, e->deadline_us, e->where);
}

status capacity_calendar::restore(const reservation_record& r) {
  placement p{r.start_us, r.end_us, r.allocations};
  return r.kind == reservation_kind::hold ? hold(r.reservation_id, p, r.deadline_us)
                                          : book(r.reservation_id, p);
}

}  // namespace gearmesh::actors
