#include "pending_writes.hpp"

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace gearmesh {
namespace {
/// A value type of this test only.
struct note {
  std::string text;
};
}  // namespace

template <>
struct store::codec<note> {
  static std::string encode(const note& v) { return v.text; }
  static result<note> decode(std::string_view bytes) { return note{std::string(bytes)}; }
};

namespace actors {
namespace {

const store::table<note> things{"things"};

TEST(pending_writes, reads_through_until_durable_and_keeps_later_writes) {
  testing::temp_dir dir;
  store::options so;
  so.path = dir.path();
  so.sync = false;
  auto env = store::environment::open(so);
  ASSERT_TRUE(env) << env.error().to_string();

  pending_writes p;
  store::write_batch b1, b2, b3;
  things.put(b1, "a", {"1"});
  things.put(b1, "a", {"1b"});  // the same key twice in one batch
  things.put(b1, "b", {"1"});
  things.put(b2, "a", {"2"});
  things.erase(b3, "b");
  p.record(b1, 1);
  p.record(b2, 2);
  p.record(b3, 3);
  EXPECT_EQ(p.get(**env, things, "a")->value().text, "2");
  EXPECT_FALSE(p.get(**env, things, "b")->has_value());  // erased by commit 3
  EXPECT_EQ(p.size(), 2u);

  p.durable(1);  // "a" was written again by 2, "b" by 3: both stay
  EXPECT_EQ(p.size(), 2u);
  EXPECT_EQ(p.get(**env, things, "a")->value().text, "2");
  p.durable(2);
  EXPECT_EQ(p.size(), 1u);
  // Not in the overlay any more: read from the store (which lacks it here).
  EXPECT_FALSE(p.get(**env, things, "a")->has_value());
  p.durable(5);
  EXPECT_EQ(p.size(), 0u);
  p.durable(6);  // nothing left: no effect
  EXPECT_EQ(p.size(), 0u);
}

}  // namespace
}  // namespace actors
}  // namespace gearmesh
