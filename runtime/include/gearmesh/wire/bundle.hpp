// Bundles: several frames for one receiver in one link message
// (schemas/bundle.fbs, docs/protocol.md section 2).
//
// The transport bundles the frames it has ready for the same peer at once
// and unbundles what it receives; the frames inside are the unchanged
// Envelope bytes, which the node checks and decodes one by one as usual.
// Thread-safe: encode_bundle keeps one FlatBuffers builder per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "gearmesh/status.hpp"

namespace gearmesh::wire {

/// Most frames in one bundle.
inline constexpr std::size_t bundle_frames_max = 1024;
/// Largest bundle: senders stay within it (and within their own frame size
/// limit); receivers accept bundles up to it whatever their frame size limit,
/// which applies to each frame inside.
inline constexpr std::size_t bundle_bytes_max = 16 * 1024;

/// An upper bound of the encoded size of a bundle holding frames of these
/// sizes, so a sender can keep bundles within the link's size limit before
/// encoding them.
inline constexpr std::size_t bundle_bytes_fixed = 64;
inline constexpr std::size_t bundle_bytes_per_frame = 24;
constexpr std::size_t bundle_bytes_bound(std::size_t frames, std::size_t frame_bytes) noexcept {
  return bundle_bytes_fixed + frames * bundle_bytes_per_frame + frame_bytes;
}

/// True if `message` carries the bundle file identifier "GMSB" (it may still
/// be malformed: for_each_bundled verifies it).
bool is_bundle(std::span<const std::uint8_t> message) noexcept;

/// Encodes 1..bundle_frames_max non-empty frames, in order, as one bundle
/// into `out` (replacing its contents; its capacity is reused). Each frame
/// starts 8-byte aligned relative to the start of the bundle.
void encode_bundle(std::span<const std::span<const std::uint8_t>> frames,
                   std::vector<std::uint8_t>& out);

/// Verifies a bundle whole, then calls `fn` with each of its frames in order
/// (spans into `message`). Errors, before any call: errc::malformed_frame --
/// not a bundle, rejected by the FlatBuffers verifier, no frame or more than
/// bundle_frames_max, an empty frame. The frames themselves are not checked
/// here: each is an untrusted frame for wire::decode.
status for_each_bundled(std::span<const std::uint8_t> message,
                        const std::function<void(std::span<const std::uint8_t>)>& fn);

}  // namespace gearmesh::wire
