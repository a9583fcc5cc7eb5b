#include "gearmesh/fault.hpp"

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>

#include <unistd.h>

#include <fmt/format.h>

namespace gearmesh::fault {
namespace {

struct registry {
  std::mutex mx;
  std::map<std::string, double, std::less<>> points;
  std::mt19937_64 rng;
  std::atomic<bool> armed{false};

  registry() {
    const char* text = std::getenv("GEARMESH_CRASH_POINTS");
    if (!text || !*text) return;
    std::string error;
    if (!parse(text, points, error)) {
      std::fprintf(stderr, "gearmesh: ignoring GEARMESH_CRASH_POINTS: %s\n", error.c_str());
      points.clear();
      return;
    }
    std::uint64_t seed = 0;
    if (const char* s = std::getenv("GEARMESH_FAULT_SEED"))
      seed = std::strtoull(s, nullptr, 10);
    else
      seed =
          static_cast<std::uint64_t>(::getpid()) ^
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    rng.seed(seed);
    armed = !points.empty();
    if (armed)
      std::fprintf(stderr, "gearmesh: crash points armed: %s (seed %llu)\n", text,
                   static_cast<unsigned long long>(seed));
  }
};

registry& reg() {
  static registry r;
  return r;
}

thread_local scope* current_scope = nullptr;

}  // namespace

bool parse(std::string_view text, std::map<std::string, double, std::less<>>& out,
           std::string& error) {
  while (!text.empty()) {
    auto comma = text.find(',');
    auto entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (entry.empty()) continue;
    auto colon = entry.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      error = fmt::format("'{}': expected name:probability", entry);
      return false;
    }
    auto num = std::string(entry.substr(colon + 1));
    char* end = nullptr;
    double p = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(p >= 0.0 && p <= 1.0)) {
      error = fmt::format("'{}': probability must be a number from 0 to 1", entry);
      return false;
    }
    out[std::string(entry.substr(0, colon))] = p;
  }
  return true;
}

scope::scope(std::map<std::string, double, std::less<>> probabilities, std::uint64_t seed,
             std::function<void(std::string_view)> on_crash)
    : points_(std::move(probabilities)), rng_(seed), on_crash_(std::move(on_crash)) {
  current_scope = this;
}

scope::~scope() {
  current_scope = nullptr;
}

bool scope::fires(std::string_view name) noexcept {
  auto it = points_.find(name);
  if (it == points_.end()) return false;
  if (rng_.unit() >= it->second) return false;
  ++fired_[it->first];
  return true;
}

bool fires(std::string_view name) noexcept {
  if (current_scope) return current_scope->fires(name);
  auto& r = reg();
  if (!r.armed.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> guard{r.mx};
  auto it = r.points.find(name);
  if (it == r.points.end()) return false;
  return std::uniform_real_distribution<double>(0.0, 1.0)(r.rng) < it->second;
}

void crash_point(std::string_view name) noexcept {
  if (!fires(name)) return;
  if (current_scope) {
    current_scope->crashed(name);
    return;
  }
  std::fprintf(stderr, "gearmesh: crash point %.*s fired, SIGKILL\n", static_cast<int>(name.size()),
               name.data());
  ::kill(::getpid(), SIGKILL);
  std::_Exit(137);  // not reached
}

void configure(const std::map<std::string, double, std::less<>>& probabilities,
               std::uint64_t seed) {
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mx};
  r.points = probabilities;
  r.rng.seed(seed);
  r.armed = !r.points.empty();
}

}  // namespace gearmesh::fault
