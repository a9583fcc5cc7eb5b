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
/// (listen_rebind_late). libzmq 4.3.4 does not retry a connection whose
/// handshake was refused, so a revoked peer stays off even if it is added
/// again, until its node reconnects (restart, or its add_peer with a changed
/// endpoint or key). Without CURVE the routing id is the client's own claim:
/// dropping a removed id's frames is a courtesy, not a security boundary.
std::unique_ptr<transport> make_zmq_transport(zmq_options opts);

}  // namespace gearmesh::transport
