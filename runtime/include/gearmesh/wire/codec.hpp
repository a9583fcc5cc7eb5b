// Encoding and verified decoding of Gearmesh frames (schemas/gearmesh.fbs).
//
// Thread-safe: all functions are pure. `decode` never trusts its input: it
// runs flatbuffers::Verifier with the explicit limits below before reading a
// single field, and checks the file identifier and protocol version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gearmesh/status.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::wire {

/// Limits applied to every inbound frame before use.
struct limits {
  /// Frames larger than this are rejected without parsing.
  std::size_t frame_bytes_max = 64 * 1024;
  /// flatbuffers::Verifier max_depth.
  std::uint32_t depth_max = 16;
  /// flatbuffers::Verifier max_tables.
  std::uint32_t tables_max = 256;
  /// Longest string field accepted (reasons, attribute values).
  std::size_t string_bytes_max = 1024;
  /// Longest identifier field accepted: sender, receiver, conversation_id,
  /// order_id, proposal_id, contract_id, item, currency; in production
  /// events each component's contract_id, seller and item; and in directory
  /// messages identifier, capability, node_id, endpoint, public_key.
  std::size_t id_bytes_max = 255;
  /// Most personalisation attributes in one CFP.
  std::size_t attributes_max = 32;
  /// Most entries in one Resolution.
  std::size_t entries_max = 64;
  /// Most capability names in one Resolution entry.
  std::size_t capabilities_max = 64;
  /// Most component statuses in one ProductionEvent, counted over the whole
  /// tree (every tier below the sender).
  std::size_t components_max = 64;
  /// Deepest component tree in one ProductionEvent (1 = the sender's own
  /// component contracts only).
  std::size_t component_depth_max = 6;
  /// Most acknowledgements carried in one envelope's `acks`.
  std::size_t acks_max = 1024;
};

/// A contiguous encoded frame.
using bytes = std::vector<std::uint8_t>;

/// Encodes `env` as one frame. Never fails for values within `limits{}`.
bytes encode(const envelope& env);

/// Verifies and decodes a frame. Errors: errc::malformed_frame (size, verifier,
/// identifier, missing payload, string too long), errc::unsupported_version.
result<envelope> decode(std::span<const std::uint8_t> frame, const limits& lim = {});

/// The payload type of a frame, reading only what that needs: its size,
/// identifier, root offset and the envelope's payload_type field are
/// checked, nothing else. For a look at a frame that is not otherwise used
/// (the simulator's statistics); a frame acted upon goes through decode().
/// Errors: errc::malformed_frame.
result<message_type> peek_type(std::span<const std::uint8_t> frame, const limits& lim = {});

}  // namespace gearmesh::wire
