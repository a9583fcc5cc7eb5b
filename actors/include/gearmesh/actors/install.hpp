// Wiring the domain actors into a node.
#pragma once

#include "gearmesh/node/config.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh {
class node;
}

namespace gearmesh::actors {

/// Reads the role sections of `file` ([buyer], [factory], [supplier]), spawns
/// the role actors in `n`'s actor system (rebuilding their state from the
/// store), routes inbound message types to them and registers their admin
/// routes. Call between node::open() and node::serve(). Errors: errc::bad_config
/// naming file, line and field; errc::storage if stored state cannot be read.
status install_roles(node& n, const config_file& file);

}  // namespace gearmesh::actors
