#include "gearmesh/clock.hpp"

#include <atomic>
#include <chrono>

namespace gearmesh {
namespace {

class wall_clock final : public clock {
 public:
  timestamp_us now() const override {
    auto t = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    // Never go backwards, even if the system clock is stepped back.
    auto prev = last_.load(std::memory_order_relaxed);
    while (t > prev && !last_.compare_exchange_weak(prev, t, std::memory_order_relaxed)) {
    }
    return t > prev ? t : prev;
  }

 private:
  mutable std::atomic<timestamp_us> last_{0};
};

}  // namespace

const clock& system_clock() {
  static const wall_clock instance;
  return instance;
}

timestamp_us manual_clock::now() const {
  return now_.load(std::memory_order_acquire);
}

void manual_clock::set(timestamp_us t) {
  now_.store(t, std::memory_order_release);
}

void manual_clock::advance(timestamp_us delta) {
  now_.fetch_add(delta, std::memory_order_acq_rel);
}

}  // namespace gearmesh
