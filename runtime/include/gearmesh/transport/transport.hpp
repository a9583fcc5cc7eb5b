// Moving frames between nodes.
//
// A transport carries opaque frames (encoded envelopes) between node ids. It
// does not interpret them and does not retry: reliability (outbox, acks,
// dedup) is the node host's job, so the simulator can replace the transport
// with a simulated network without touching anything above it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gearmesh/status.hpp"

namespace gearmesh::transport {

/// A partner node this node may exchange frames with.
struct peer {
  std::string id;        // node id, e.g. "framecraft"
  std::string endpoint;  // e.g. "tcp://127.0.0.1:7101"
  /// The peer's CURVE public key (Z85, 40 characters). With CURVE on it is
  /// both the server key this node expects when it connects to the peer and
  /// the client key the peer must present when it connects here.
  std::string public_key = {};
};

/// Counters; monotonically increasing.
struct transport_stats {
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  /// send() to a peer not added (or removed); an inbound frame from a peer
  /// removed since its connection was admitted.
  std::uint64_t dropped_unknown_peer = 0;
  std::uint64_t dropped_queue_full = 0;  // peer not keeping up (HWM) or queue bound hit
  std::uint64_t dropped_oversized = 0;   // inbound frame above the size limit
  std::uint64_t dropped_malformed =
      0;                          // inbound message with unexpected parts, or a malformed bundle
  std::uint64_t auth_denied = 0;  // CURVE handshakes refused: key of no peer
  /// Revocations: remove_peer() of a known peer, or add_peer() changing a
  /// known peer's key. Each closes the inbound connections (see remove_peer).
  std::uint64_t peers_removed = 0;
  /// Revocations after which the listen endpoint could not be bound again
  /// within 100 ms (its port taken meanwhile): no inbound frames until a
  /// retry (at least once a second) succeeds.
  std::uint64_t listen_rebind_late = 0;
  /// CURVE: handshakes of this node's outbound links that the peer refused
  /// (its ZAP handler does not admit this node's key, yet or any more).
  std::uint64_t handshakes_refused = 0;
  /// CURVE: outbound handshakes that ended in a protocol error (a peer that
  /// breaks the CURVE or ZMTP rules).
  std::uint64_t handshakes_protocol_error = 0;
  /// Outbound links opened again after a refusal or protocol error, which
  /// end a ZeroMQ connection for good. Frames queued on the old link (counted
  /// in frames_sent) are lost; the node's outbox re-sends them.
  std::uint64_t links_recreated = 0;
  /// Bundles (several frames for one peer in one message; their frames
  /// count in frames_sent / frames_received). A malformed bundle counts in
  /// dropped_malformed, and none of its frames is received.
  std::uint64_t bundles_sent = 0;
  std::uint64_t bundles_received = 0;
};

class transport {
 public:
  /// Called for every inbound frame, on the transport's thread. `from` is the
  /// identity the connection presented (routing id; the CURVE-authenticated
  /// identity once security is on). The span is valid only during the call.
  using receive_fn =
      std::function<void(const std::string& from, std::span<const std::uint8_t> frame)>;

  virtual ~transport() = default;

  /// Sets the inbound handler. Call before start().
  virtual void on_receive(receive_fn fn) = 0;

  /// Starts listening and connecting. Errors: errc::transport (bind failed, ...).
  virtual status start() = 0;

  /// Stops; no receive_fn call is in progress or follows when this returns. Idempotent.
  virtual void stop() = 0;

  /// Adds a peer and connects to it; adding a peer id again with another
  /// endpoint or key replaces it (as remove_peer, then add), and with the
  /// same ones changes nothing. Thread-safe.
  virtual void add_peer(const peer& p) = 0;

  /// Forgets a peer (revocation): frames for it are dropped (counted as
  /// dropped_unknown_peer), its key is no longer admitted, and every open
  /// connection it has to this node is closed within a bounded time (well
  /// under a second), so it has to pass authentication again -- and fails.
  /// Other peers' connections may be re-established too; frames in flight on
  /// them can be lost, which the node's outbox retries cover. Thread-safe;
  /// unknown ids are ignored.
  virtual void remove_peer(const std::string& peer_id) = 0;

  /// Queues `frame` for `peer_id`. Thread-safe, never blocks. Best effort: a
  /// frame can be dropped (counted); callers retry from their outbox.
  virtual void send(const std::string& peer_id, std::vector<std::uint8_t> frame) = 0;

  virtual transport_stats stats() const = 0;

  /// The endpoint actually listened on once start() succeeded, with wildcards
  /// resolved (a "tcp://127.0.0.1:*" bind reports its port). Empty before.
  virtual std::string listen_endpoint() const = 0;
};

}  // namespace gearmesh::transport
