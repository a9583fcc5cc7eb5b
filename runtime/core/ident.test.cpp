#include "gearmesh/ident.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gearmesh::ident {
namespace {

identifier ok(std::string_view text) {
  auto r = parse(text);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().to_string());
  return r ? *r : identifier{};
}

void rejects(std::string_view text, const std::string& needle) {
  auto r = parse(text);
  ASSERT_FALSE(r.has_value()) << text;
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().to_string();
}

TEST(ident, parses_the_ids_nodes_already_mint) {
  EXPECT_EQ(ok("velo/order/17"), (identifier{"velo", kind::order, "17"}));
  EXPECT_EQ(ok("velo/order/17/c2"), (identifier{"velo", kind::contract, "17/c2"}));
  EXPECT_EQ(ok("framecraft/proposal/311"), (identifier{"framecraft", kind::proposal, "311"}));
  EXPECT_EQ(ok("framecraft"), (identifier{"framecraft", kind::node, ""}));
}

TEST(ident, parses_hierarchical_authorities_and_every_kind) {
  EXPECT_EQ(ok("acme.plant1/machine/m7"), (identifier{"acme.plant1", kind::machine, "m7"}));
  EXPECT_EQ(ok("acme/order/2026-000123"), (identifier{"acme", kind::order, "2026-000123"}));
  EXPECT_EQ(ok("framecraft/item/FRAME"), (identifier{"framecraft", kind::item, "FRAME"}));
  EXPECT_EQ(ok("acme/enterprise/acme").kind, kind::enterprise);
  EXPECT_EQ(ok("acme.plant1/node/acme.plant1").kind, kind::node);
  EXPECT_EQ(ok("framecraft/operation/FRAME.2").kind, kind::operation);
  EXPECT_EQ(ok("velo/contract/x1").kind, kind::contract);
  // An order local that is not <n>/c<k> stays an order with an opaque local.
  EXPECT_EQ(ok("velo/order/17/x").kind, kind::order);
  EXPECT_EQ(ok("velo/order/17/c").kind, kind::order);
}

TEST(ident, format_round_trips) {
  for (const char* text :
       {"velo/order/17", "velo/order/17/c2", "framecraft", "acme.plant1/machine/m7",
        "acme/enterprise/acme", "velo/contract/x1", "framecraft/proposal/311#1"}) {
    EXPECT_EQ(format(ok(text)), text);
  }
  EXPECT_EQ(format(identifier{"velo", kind::contract, "17/c2"}), "velo/order/17/c2");
}

TEST(ident, rejects_malformed_identifiers) {
  rejects("", "is empty");
  rejects(std::string(256, 'a'), "256 bytes, more than 255");
  rejects("Velo/order/1", "is not a node id");
  rejects(".acme/order/1", "is not a node id");
  rejects("acme..p/order/1", "is not a node id");
  rejects("acme./order/1", "is not a node id");
  rejects(std::string(129, 'a') + "/order/1", "is not a node id");
  rejects("/order/1", "is not a node id");
  rejects("velo/order", "expected authority/kind/id");
  rejects("velo/order/", "empty segment");
  rejects("velo/order//1", "empty segment");
  rejects("velo/order/1/", "empty segment");
  rejects("velo/widget/1", "unknown kind \"widget\"");
  rejects("velo/order/a b", "allows only");
  rejects("velo/contract/17/c2", "a contract id is");
}

TEST(ident, prefixes_match_label_by_label) {
  EXPECT_TRUE(covers("acme", "acme"));
  EXPECT_TRUE(covers("acme", "acme.plant1"));
  EXPECT_TRUE(covers("acme.plant1", "acme.plant1"));
  EXPECT_FALSE(covers("acme", "acmecorp"));
  EXPECT_FALSE(covers("acme.plant1", "acme"));
  EXPECT_FALSE(covers("acme.plant", "acme.plant1"));
  EXPECT_TRUE(covers("", "anything"));
  EXPECT_EQ(label_count(""), 0u);
  EXPECT_EQ(label_count("acme"), 1u);
  EXPECT_EQ(label_count("acme.plant1"), 2u);
  EXPECT_EQ(enterprise_of("acme.plant1"), "acme");
  EXPECT_EQ(enterprise_of("velo"), "velo");
}

TEST(ident, kind_names) {
  for (auto k : {kind::node, kind::enterprise, kind::machine, kind::item, kind::order,
                 kind::contract, kind::operation, kind::proposal}) {
    EXPECT_EQ(kind_from_string(to_string(k)), k);
  }
  EXPECT_FALSE(kind_from_string("capability").has_value());
}

}  // namespace
}  // namespace gearmesh::ident
