// CAF message vocabulary shared by the runtime and the actors. Include only
// from .cpp files: it pulls in CAF headers.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "gearmesh/wire/messages.hpp"

namespace gearmesh {

/// (inbound_atom, wire::envelope): a verified, deduplicated inbound message
/// for the actor that handles its type. The actor must commit it (effects::cause).
using inbound_atom = caf::atom_constant<caf::atom("inbound")>;

}  // namespace gearmesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::wire::envelope)
