// string_hash: one hash for std::string and std::string_view, so unordered
// containers keyed by std::string can be searched with a view (no copy):
//   std::unordered_map<std::string, T, gearmesh::string_hash, std::equal_to<>>
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace gearmesh {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace gearmesh
