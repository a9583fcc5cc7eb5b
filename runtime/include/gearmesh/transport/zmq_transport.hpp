// ZeroMQ transport: one ROUTER socket bound at the node's listen endpoint for
// inbound frames, one DEALER per peer (routing id = own node id) for outbound
// frames. One I/O thread owns all sockets; send() from any thread enqueues and
// wakes it (eventfd in the zmq_poll set).
#pragma once

#include <memory>
#include <string>

#include "gearmesh/transport/transport.hpp"

namespace gearmesh::transport {

struct zmq_options {
  std::string node_id;          // sent as routing id on every outbound connection
  std::string listen_endpoint;  // e.g. "tcp://127.0.0.1:7101"
  std::size_t frame_bytes_max = 64 * 1024;  // ZMQ_MAXMSGSIZE on the ROUTER
  int send_hwm = 10000;         // per peer
  std::size_t send_queue_max = 100000;  // frames waiting for the I/O thread
};

/// Creates a ZeroMQ transport; nothing is opened until start().
std::unique_ptr<transport> make_zmq_transport(zmq_options opts);

}  // namespace gearmesh::transport
