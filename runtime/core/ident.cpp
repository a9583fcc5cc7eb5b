// Identifier syntax; the grammar is in gearmesh/ident.hpp and docs/protocol.md.
#include "gearmesh/ident.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace gearmesh::ident {
namespace {

constexpr std::array<std::pair<kind, std::string_view>, 8> kind_names{{
    {kind::node, "node"},
    {kind::enterprise, "enterprise"},
    {kind::machine, "machine"},
    {kind::item, "item"},
    {kind::order, "order"},
    {kind::contract, "contract"},
    {kind::operation, "operation"},
    {kind::proposal, "proposal"},
}};

bool is_authority_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool is_local_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '#' || c == '+' || c == '-';
}

status bad(std::string_view text, std::string_view what) {
  std::string shown(text.substr(0, 64));
  if (text.size() > 64) shown += "...";
  return {errc::invalid_argument, "identifier \"" + shown + "\": " + std::string(what)};
}

/// `c<digits>`: the per-order contract suffix buyers mint (docs/protocol.md 7).
bool is_contract_suffix(std::string_view s) noexcept {
  return s.size() >= 2 && s[0] == 'c' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

const char* to_string(kind k) noexcept {
  for (const auto& [value, name] : kind_names)
    if (value == k) return name.data();
  return "unknown";
}

std::optional<kind> kind_from_string(std::string_view name) noexcept {
  for (const auto& [value, n] : kind_names)
    if (n == name) return value;
  return std::nullopt;
}

bool is_valid_authority(std::string_view s) noexcept {
  if (s.empty() || s.size() > authority_bytes_max) return false;
  if (s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos) return false;
  return std::all_of(s.begin(), s.end(), is_authority_char);
}

result<identifier> parse(std::string_view text) {
  if (text.empty()) return bad(text, "is empty");
  if (text.size() > identifier_bytes_max)
    return bad(text, "is " + std::to_string(text.size()) + " bytes, more than " +
                         std::to_string(identifier_bytes_max));
  identifier id;
  const auto slash = text.find('/');
  id.authority = std::string(text.substr(0, slash));
  if (!is_valid_authority(id.authority))
    return bad(text, "authority \"" + id.authority +
                         "\" is not a node id (1 to 128 characters of [a-z0-9_.-], labels "
                         "separated by single dots)");
  if (slash == std::string_view::npos) return id;  // the node itself

  const std::string_view rest = text.substr(slash + 1);
  const auto slash2 = rest.find('/');
  if (slash2 == std::string_view::npos)
    return bad(text, "expected authority/kind/id, e.g. acme.plant1/machine/m7");
  const auto k = kind_from_string(rest.substr(0, slash2));
  if (!k)
    return bad(text, "unknown kind \"" + std::string(rest.substr(0, slash2)) +
                         "\" (node, enterprise, machine, item, order, contract, operation, "
                         "proposal)");
  id.kind = *k;
  id.local = std::string(rest.substr(slash2 + 1));

  // Segments of the local part.
  std::size_t segments = 0;
  std::string_view last;
  std::string_view local = id.local;
  while (true) {
    const auto end = local.find('/');
    const std::string_view seg = local.substr(0, end);
    if (seg.empty()) return bad(text, "empty segment in the id part");
    if (!std::all_of(seg.begin(), seg.end(), is_local_char))
      return bad(text, "the id part allows only [A-Za-z0-9_.:#+-] between slashes");
    ++segments;
    last = seg;
    if (end == std::string_view::npos) break;
    local.remove_prefix(end + 1);
  }
  if (id.kind == kind::order && segments == 2 && is_contract_suffix(last))
    id.kind = kind::contract;
  else if (id.kind == kind::contract && segments != 1)
    return bad(text, "a contract id is <order id>/c<k> or authority/contract/<one segment>");
  return id;
}

std::string format(const identifier& id) {
  if (id.kind == kind::node && id.local.empty()) return id.authority;
  if (id.kind == kind::contract && id.local.find('/') != std::string::npos)
    return id.authority + "/order/" + id.local;
  return id.authority + "/" + to_string(id.kind) + "/" + id.local;
}

std::string_view enterprise_of(std::string_view authority) noexcept {
  return authority.substr(0, authority.find('.'));
}

bool covers(std::string_view prefix, std::string_view authority) noexcept {
  if (prefix.empty()) return true;
  if (!authority.starts_with(prefix)) return false;
  return authority.size() == prefix.size() || authority[prefix.size()] == '.';
}

std::size_t label_count(std::string_view prefix) noexcept {
  if (prefix.empty()) return 0;
  return static_cast<std::size_t>(std::count(prefix.begin(), prefix.end(), '.')) + 1;
}

}  // namespace gearmesh::ident
