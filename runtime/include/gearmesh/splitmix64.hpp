// splitmix64: a small, fast pseudo-random generator whose sequence is the
// same on every platform (std:: distributions are not), so a seed means the
// same run everywhere. Used by seeded fault points and the simulator. Not
// for anything secret.
#pragma once

#include <cstdint>

namespace gearmesh {

class splitmix64 {
 public:
  explicit splitmix64(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t s_;
};

}  // namespace gearmesh
