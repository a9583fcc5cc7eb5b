// Fault points: rarely taken failure paths that tests switch on.
//
// A fault point is a named place in the runtime where a test may make the
// process fail on purpose, at a precise moment no external kill can hit
// reliably (for example after a commit is durable and before its messages
// leave). Production never arms any: points are armed only by `configure`
// (the simulator, from its seed) or, for real processes, by the environment:
//
//   GEARMESH_CRASH_POINTS="commit.after_durable:0.002,net.duplicate:0.3"
//   GEARMESH_FAULT_SEED=42        (optional; default: from pid and time)
//
// Each entry is name:probability. A crash point that fires writes one line to
// stderr and kills the process with SIGKILL: the same as `kill -9`, nothing
// is flushed or unwound. Points the runtime has:
//
//   crash points
//   commit.before_submit   a step's batch was built but not queued for commit
//   commit.after_durable   the batch is durable; its messages and acks not sent
//   send.after_frames      messages sent, the inbound message not yet acked
//   ack.before_erase       a receiver's Ack arrived; the outbox entry not erased
//   network faults (the outbox retry and the receiver's dedup hide them)
//   net.drop               an outbox frame is not sent this time
//   net.duplicate          an outbox frame is sent twice
//   net.drop_ack           an Ack is not sent
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "gearmesh/splitmix64.hpp"

namespace gearmesh::fault {

/// True with the probability armed for `name`; false when it is not armed.
/// Thread-safe; one relaxed atomic load when no point is armed.
bool fires(std::string_view name) noexcept;

/// SIGKILLs this process when `name` fires.
void crash_point(std::string_view name) noexcept;

/// Arms exactly the points in `probabilities` (an empty map disarms all),
/// replacing what the environment armed. Seeded: the same seed and the same
/// sequence of calls give the same outcomes.
void configure(const std::map<std::string, double, std::less<>>& probabilities, std::uint64_t seed);

/// Fault points for the calling thread only, while the scope lives -- how
/// the simulator arms them: one run per thread, each from its own seed, so
/// parallel runs stay deterministic. Inside a scope, fires() and
/// crash_point() on this thread use the scope's points and generator and
/// never the process's; a crash point that fires calls `on_crash(name)` and
/// returns instead of killing the process (the simulator kills the node
/// whose step is running). Scopes do not nest.
class scope {
 public:
  scope(std::map<std::string, double, std::less<>> probabilities, std::uint64_t seed,
        std::function<void(std::string_view)> on_crash);
  ~scope();
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

  /// Internal: fires() for this scope.
  bool fires(std::string_view name) noexcept;
  void crashed(std::string_view name) { on_crash_(name); }

  /// How often each armed point fired so far.
  const std::map<std::string, std::uint64_t, std::less<>>& fired() const { return fired_; }

 private:
  std::map<std::string, double, std::less<>> points_;
  std::map<std::string, std::uint64_t, std::less<>> fired_;
  splitmix64 rng_;
  std::function<void(std::string_view)> on_crash_;
};

/// Parses "name:p,name:p". Errors name the bad entry; empty text is no points.
bool parse(std::string_view text, std::map<std::string, double, std::less<>>& out,
           std::string& error);

}  // namespace gearmesh::fault
