// Identifiers of Gearmesh entities: `authority[/kind/local]`.
//
//   acme.plant1/machine/m7     a machine of node acme.plant1
//   velo/order/17              an order minted by node velo
//   velo/order/17/c2           a contract of that order (ids minted by buyers)
//   framecraft/proposal/311    a proposal minted by node framecraft
//   framecraft                 the node itself (same as framecraft/node/framecraft)
//
// The *authority* is the id of the node that minted the identifier and owns
// the entity; node ids read as `enterprise[.node...]`, so `acme.plant1` is
// node `plant1` of enterprise `acme` and a one-label node id like `velo` is
// its enterprise's only node. Existing ids therefore are identifiers as they
// are. Directories delegate by authority prefix, label by label: prefix
// `acme` covers `acme` and `acme.plant1`, never `acmecorp`
// (docs/protocol.md section 7).
//
// Pure functions, thread-safe, no allocation beyond the returned values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gearmesh/status.hpp"

namespace gearmesh::ident {

/// Longest identifier: the wire's identifier bound (wire::limits::id_bytes_max).
constexpr std::size_t identifier_bytes_max = 255;
/// Longest authority (= node id, docs/protocol.md section 1).
constexpr std::size_t authority_bytes_max = 128;

/// What an identifier names.
enum class kind : std::uint8_t {
  /// The node itself (a bare authority, or `<authority>/node/<authority>`).
  node,
  /// An enterprise (`acme/enterprise/acme`); owned by the node named `acme`.
  enterprise,
  /// A machine or work centre of a factory node.
  machine,
  /// An item a node makes or sells (`framecraft/item/FRAME`).
  item,
  /// An order, minted by the buyer (`velo/order/17`).
  order,
  /// A contract: `<order id>/c<k>` as buyers mint them (local `17/c2`), or
  /// `<authority>/contract/<local>` with a one-segment local.
  contract,
  /// An operation of an item's routing (`framecraft/operation/FRAME.2`).
  operation,
  /// A proposal, minted by the seller (`framecraft/proposal/311`).
  proposal,
};

/// "node", "machine", ...
const char* to_string(kind k) noexcept;
/// The kind named `name`, if it is one.
std::optional<kind> kind_from_string(std::string_view name) noexcept;

/// A parsed identifier.
struct identifier {
  std::string authority;  // node id of the owner, e.g. "acme.plant1"
  ident::kind kind = kind::node;
  std::string local;  // after "<kind>/"; empty for a bare authority
  bool operator==(const identifier&) const = default;
};

/// True for 1..128 characters of [a-z0-9_.-] that neither start nor end with
/// '.' nor contain "..": a node id usable as an authority.
bool is_valid_authority(std::string_view s) noexcept;

/// Parses `text` (at most identifier_bytes_max bytes). The local part is one
/// or more segments separated by '/', each 1 or more characters of
/// [A-Za-z0-9_.:#+-]. An order local of two segments whose second is
/// `c<digits>` is a contract (kind contract, local `17/c2`); an explicit
/// `contract` local has one segment, so every contract has one text form.
/// Errors: errc::invalid_argument with a message that names the problem.
result<identifier> parse(std::string_view text);

/// The text form; parse(format(x)) == x for every parsed x. A contract that
/// was written `<order id>/c<k>` keeps that form.
std::string format(const identifier& id);

/// The first label of an authority: its enterprise ("acme" of "acme.plant1").
std::string_view enterprise_of(std::string_view authority) noexcept;

/// True if `prefix` covers `authority` label by label: equal, or `authority`
/// starts with `prefix` followed by '.'. The empty prefix covers everything.
bool covers(std::string_view prefix, std::string_view authority) noexcept;

/// Labels of a prefix, for picking the longest matching delegation.
std::size_t label_count(std::string_view prefix) noexcept;

}  // namespace gearmesh::ident
