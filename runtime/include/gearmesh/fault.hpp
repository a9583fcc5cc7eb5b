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
#include <map>
#include <string>
#include <string_view>

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

/// Parses "name:p,name:p". Errors name the bad entry; empty text is no points.
bool parse(std::string_view text, std::map<std::string, double, std::less<>>& out,
           std::string& error);

}  // namespace gearmesh::fault
