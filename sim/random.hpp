// The simulator's random numbers (see gearmesh/splitmix64.hpp). Internal to sim/.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "gearmesh/clock.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/splitmix64.hpp"

namespace gearmesh::sim {

/// The simulator's draws, on the platform-independent splitmix64.
class random : public splitmix64 {
 public:
  using splitmix64::splitmix64;
  /// Uniform in [lo, hi] (lo when hi <= lo).
  std::int64_t in(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  std::int64_t in(const range& r) { return in(r.lo, r.hi); }
  /// Uniform in [0, n) (0 when n is 0).
  std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
  /// Time to the next event of a Poisson process with `per_day` events a
  /// day; "never" (a time beyond any run) for a rate of 0.
  timestamp_us exponential(double per_day) {
    if (per_day <= 0) return std::numeric_limits<timestamp_us>::max() / 2;
    const double mean_us = static_cast<double>(us_per_day) / per_day;
    return static_cast<timestamp_us>(-std::log(1.0 - unit()) * mean_us) + 1;
  }
};

}  // namespace gearmesh::sim
