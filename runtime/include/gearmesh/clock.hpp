// Time as the runtime sees it.
//
// Domain logic never reads the wall clock: it asks the `clock` it was given.
// A production node wires `system_clock()`; the simulator wires a clock it
// advances itself. All times are microseconds since the Unix epoch (UTC).
#pragma once

#include <atomic>
#include <cstdint>

namespace gearmesh {

/// Microseconds since the Unix epoch, UTC. Wire format uses the same unit.
using timestamp_us = std::int64_t;

constexpr timestamp_us us_per_ms = 1'000;
constexpr timestamp_us us_per_s = 1'000'000;
constexpr timestamp_us us_per_min = 60 * us_per_s;
constexpr timestamp_us us_per_hour = 60 * us_per_min;
constexpr timestamp_us us_per_day = 24 * us_per_hour;

/// Source of the current time. Implementations are thread-safe.
class clock {
 public:
  virtual ~clock() = default;
  /// Current time. Monotonic non-decreasing for a given clock instance.
  virtual timestamp_us now() const = 0;
};

/// The process-wide wall clock (std::chrono::system_clock, made monotonic).
const clock& system_clock();

/// A clock that only moves when told to. Thread-safe. For tests and the simulator.
class manual_clock final : public clock {
 public:
  explicit manual_clock(timestamp_us start) : now_(start) {}
  timestamp_us now() const override;
  void set(timestamp_us t);
  void advance(timestamp_us delta);

 private:
  std::atomic<timestamp_us> now_;
};

}  // namespace gearmesh
