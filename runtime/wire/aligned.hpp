// Reading FlatBuffers at an aligned address (codec.cpp, bundle.cpp).
//
// FlatBuffers reads scalars through typed pointers, so a buffer must start
// at an address aligned for its widest scalar (8 bytes). Received bytes may
// not (a frame at an odd offset of a receive buffer): they are copied.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace gearmesh::wire::detail {

inline constexpr std::size_t buffer_alignment = alignof(std::uint64_t);
/// Copies up to this size use the stack.
inline constexpr std::size_t stack_copy_bytes_max = 1024;

/// fn(bytes) with `bytes` in place if aligned, else with an aligned copy
/// (valid during the call only).
template <class Fn>
auto with_aligned(std::span<const std::uint8_t> bytes, Fn&& fn) {
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % buffer_alignment == 0) return fn(bytes);
  if (bytes.size() <= stack_copy_bytes_max) {
    alignas(buffer_alignment) std::array<std::uint8_t, stack_copy_bytes_max> copy;
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    return fn(std::span<const std::uint8_t>(copy.data(), bytes.size()));
  }
  // operator new[] returns memory aligned for any scalar type.
  auto copy = std::make_unique_for_overwrite<std::uint8_t[]>(bytes.size());
  std::memcpy(copy.get(), bytes.data(), bytes.size());
  return fn(std::span<const std::uint8_t>(copy.get(), bytes.size()));
}

}  // namespace gearmesh::wire::detail
