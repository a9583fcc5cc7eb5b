// ZeroMQ transport: one ROUTER socket bound at the node's listen endpoint for
// inbound frames, one DEALER per peer (routing id = own node id) for outbound
// frames. One I/O thread owns all sockets; send() from any thread enqueues and
// wakes it (eventfd in the zmq_poll set).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "gearmesh/transport/transport.hpp"

namespace gearmesh::transport {

/// This node's CURVE keypair (Z85, 40 characters each).
struct curve_keys {
  std::string public_key;
  std::string secret_key;
};

struct zmq_options {
  std::string node_id;                      // sent as routing id on every outbound connection
  std::string listen_endpoint;              // e.g. "tcp://127.0.0.1:7101"
  std::size_t frame_bytes_max = 64 * 1024;  // ZMQ_MAXMSGSIZE on the ROUTER
  int send_hwm = 10000;                     // per peer
  std::size_t send_queue_max = 100000;      // frames waiting for the I/O thread
  /// CurveZMQ on every link when set: the ROUTER is a CURVE server whose ZAP
  /// handler (run by this transport, on its I/O thread, before anything is
  /// bound) admits only clients presenting the public key of a peer added
  /// with add_peer(); receive_fn's `from` is then that peer's id as ZAP
  /// authenticated it, not the routing id the client chose. Every DEALER is a
  /// CURVE client pinned to its peer's public key. Unset: plain TCP.
  std::optional<curve_keys> curve = {};
  /// Frames ready for the same peer at the same time leave in one bundle
  /// (schemas/bundle.fbs): one ZeroMQ message and one CurveZMQ box for
  /// several frames. Bundles stay within frame_bytes_max. Inbound bundles
  /// are always accepted.
  bool bundle = true;
};

/// Creates a ZeroMQ transport; nothing is opened until start().
///
/// remove_peer() and add_peer() with a changed key (CURVE) are revocations,
/// applied on the I/O thread in command order: sends queued before the call
/// still go out, later ones are dropped (dropped_unknown_peer), and so is
/// every inbound frame handled after it whose key (CURVE) or routing id
/// (plain) belongs to the removed peer. Since ZeroMQ cannot close a single
/// inbound connection, the listen endpoint is unbound and bound again at the
/// same resolved address (same port for a "*" bind): *every* peer's inbound
/// connection is closed within a few milliseconds and re-established by its
/// DEALER about 100-200 ms later, through ZAP again, which the revoked key
/// fails (auth_denied). Frames in flight on those connections may be lost;
/// the node's outbox retries them. Each revocation counts in peers_removed.
/// If the port is taken meanwhile, the transport keeps running without
/// inbound traffic and retries the bind at least once a second
/// (listen_rebind_late). Without CURVE the routing id is the client's own
/// claim: dropping a removed id's frames is a courtesy, not a security
/// boundary.
///
/// Outbound links heal by themselves (CURVE): libzmq 4.3.4 never reconnects
/// a connection whose handshake the peer refused (this node's key not
/// admitted yet, or revoked) or broke with a protocol error, so the I/O
/// thread watches each DEALER through a socket monitor and re-creates a dead
/// one (same endpoint and keys) 0.5 s after the failure; the wait doubles up
/// to 10 s while failures continue and returns to 0.5 s after a successful
/// handshake. A partner that admits this node late (onboarding order) or
/// again (re-admission) therefore gets its frames within that backoff,
/// without either node restarting. Frames queued on a dead link (counted as
/// sent) are lost with it; the node's outbox re-sends them. Counted in
/// handshakes_refused, handshakes_protocol_error and links_recreated. Plain
/// DEALERs need none of this: libzmq reconnects them.
std::unique_ptr<transport> make_zmq_transport(zmq_options opts);

}  // namespace gearmesh::transport
