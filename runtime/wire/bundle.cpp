// Bundles (see bundle.hpp).
#include "gearmesh/wire/bundle.hpp"

#include <string>

#include "aligned.hpp"
#include "gearmesh/wire/bundle_generated.h"

namespace gearmesh::wire {
namespace {

namespace fb = ::flatbuffers;

/// Frames start at this alignment within a bundle, so an aligned bundle's
/// frames are read in place (aligned.hpp).
constexpr std::size_t frame_alignment = detail::buffer_alignment;

/// Depth: Bundle -> frames vector -> BundledFrame -> frame vector.
constexpr unsigned bundle_depth_max = 4;

status malformed(std::string message) {
  return {errc::malformed_frame, "bundle: " + std::move(message)};
}

/// for_each_bundled on a buffer aligned for FlatBuffers.
status for_each_aligned(std::span<const std::uint8_t> message,
                        const std::function<void(std::span<const std::uint8_t>)>& fn) {
  fb::Verifier::Options opts;
  opts.max_depth = bundle_depth_max;
  opts.max_tables = bundle_frames_max + 1;
  // Checks the offsets' alignment, not the frames' (bytes): decode copies a
  // frame that is not aligned.
  opts.check_alignment = true;
  fb::Verifier verifier(message.data(), message.size(), opts);
  if (!VerifyBundleBuffer(verifier)) return malformed("verifier rejected it");
  const auto* frames = GetBundle(message.data())->frames();
  if (frames->size() == 0) return malformed("no frame");
  if (frames->size() > bundle_frames_max) {
    return malformed(std::to_string(frames->size()) + " frames, more than " +
                     std::to_string(bundle_frames_max));
  }
  for (const auto* f : *frames) {
    if (f->frame()->size() == 0) return malformed("an empty frame");
  }
  for (const auto* f : *frames)
    fn(std::span<const std::uint8_t>(f->frame()->data(), f->frame()->size()));
  return status::ok();
}

}  // namespace

bool is_bundle(std::span<const std::uint8_t> message) noexcept {
  return message.size() >= sizeof(fb::uoffset_t) + fb::kFileIdentifierLength &&
         BundleBufferHasIdentifier(message.data());
}

void encode_bundle(std::span<const std::span<const std::uint8_t>> frames,
                   std::vector<std::uint8_t>& out) {
  thread_local fb::FlatBufferBuilder b(64 * 1024);
  thread_local std::vector<fb::Offset<BundledFrame>> offsets;
  b.Clear();
  offsets.clear();
  for (const auto& f : frames) {
    b.ForceVectorAlignment(f.size(), sizeof(std::uint8_t), frame_alignment);
    const auto bytes = b.CreateVector(f.data(), f.size());
    offsets.push_back(CreateBundledFrame(b, bytes));
  }
  const auto list = b.CreateVector(offsets);
  FinishBundleBuffer(b, CreateBundle(b, list));
  out.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

status for_each_bundled(std::span<const std::uint8_t> message,
                        const std::function<void(std::span<const std::uint8_t>)>& fn) {
  if (!is_bundle(message)) return malformed("no \"GMSB\" file identifier");
  // A bundle at an unaligned address (a receive buffer) is read from a copy.
  return detail::with_aligned(message, [&](std::span<const std::uint8_t> aligned) {
    return for_each_aligned(aligned, fn);
  });
}

}  // namespace gearmesh::wire
