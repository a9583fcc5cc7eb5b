#include "gearmesh/wire/bundle.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "gearmesh/wire/bundle_generated.h"
#include "gearmesh/wire/codec.hpp"

namespace gearmesh::wire {
namespace {

namespace fb = ::flatbuffers;

/// A real Envelope frame: an Ack from `sender`, acknowledging `id`.
bytes ack_frame(const std::string& sender, std::uint64_t id) {
  envelope env;
  env.header.sender = sender;
  env.header.receiver = "velo";
  env.header.causation_id = id;
  env.header.timestamp_us = 1'767'225'600'000'000;
  env.payload = ack{id};
  return encode(env);
}

using frames = std::vector<std::vector<std::uint8_t>>;

std::vector<std::span<const std::uint8_t>> spans(const frames& f) {
  return {f.begin(), f.end()};
}

/// What for_each_bundled hands out, copied.
result<frames> unbundle(std::span<const std::uint8_t> message) {
  frames out;
  auto st = for_each_bundled(
      message, [&](std::span<const std::uint8_t> f) { out.emplace_back(f.begin(), f.end()); });
  if (!st) return st;
  return out;
}

TEST(bundle, round_trips_frames_in_order_and_aligned) {
  const frames in = {
      ack_frame("framecraft", 1), ack_frame("framecraft", 2), {0x47}, ack_frame("framecraft", 3)};
  std::vector<std::uint8_t> message;
  encode_bundle(spans(in), message);
  ASSERT_TRUE(is_bundle(message));
  EXPECT_FALSE(is_bundle(in[0]));

  std::vector<std::size_t> offsets;
  auto st = for_each_bundled(message, [&](std::span<const std::uint8_t> f) {
    offsets.push_back(static_cast<std::size_t>(f.data() - message.data()));
  });
  ASSERT_TRUE(st) << st.message();
  ASSERT_EQ(offsets.size(), in.size());
  for (auto o : offsets) EXPECT_EQ(o % 8, 0u) << "frame at offset " << o;

  auto out = unbundle(message);
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, in);
  // The frames inside are the Envelopes, unchanged.
  auto env = decode((*out)[3]);
  ASSERT_TRUE(env) << env.error().message();
  EXPECT_EQ(std::get<ack>(env->payload).acked_message_id, 3u);
}

TEST(bundle, stays_within_its_size_bound) {
  std::vector<std::uint8_t> message;
  for (std::size_t count : {1u, 2u, 7u, 100u, 1024u}) {
    for (std::size_t size : {1u, 3u, 8u, 161u, 1000u}) {
      const frames in(count, std::vector<std::uint8_t>(size, 0xab));
      encode_bundle(spans(in), message);
      EXPECT_LE(message.size(), bundle_bytes_bound(count, count * size))
          << count << " frames of " << size << " bytes";
      auto out = unbundle(message);
      ASSERT_TRUE(out) << out.error().message();
      EXPECT_EQ(out->size(), count);
    }
  }
}

TEST(bundle, reads_a_bundle_at_an_unaligned_address) {
  const frames in = {ack_frame("framecraft", 1), ack_frame("framecraft", 2)};
  std::vector<std::uint8_t> message;
  encode_bundle(spans(in), message);
  std::vector<std::uint8_t> shifted(message.size() + 1);
  std::memcpy(shifted.data() + 1, message.data(), message.size());
  auto out = unbundle(std::span<const std::uint8_t>(shifted).subspan(1));
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, in);
}

/// A bundle built with the generated code, so it can break the rules.
std::vector<std::uint8_t> raw_bundle(const frames& in) {
  fb::FlatBufferBuilder b;
  std::vector<fb::Offset<BundledFrame>> offsets;
  for (const auto& f : in) offsets.push_back(CreateBundledFrame(b, b.CreateVector(f)));
  FinishBundleBuffer(b, CreateBundle(b, b.CreateVector(offsets)));
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

void expect_malformed(std::span<const std::uint8_t> message, const std::string& what) {
  bool called = false;
  auto st = for_each_bundled(message, [&](std::span<const std::uint8_t>) { called = true; });
  EXPECT_EQ(st.code(), errc::malformed_frame) << what;
  EXPECT_NE(st.message().find("bundle: "), std::string::npos) << st.message();
  EXPECT_FALSE(called) << what << ": no frame of a malformed bundle is handed out";
}

TEST(bundle, rejects_malformed_bundles_whole) {
  expect_malformed(ack_frame("framecraft", 1), "an Envelope");
  expect_malformed({}, "nothing");
  expect_malformed(raw_bundle({}), "no frame");
  expect_malformed(raw_bundle({ack_frame("framecraft", 1), {}}), "an empty frame");
  expect_malformed(raw_bundle(frames(bundle_frames_max + 1, {1})), "too many frames");

  std::vector<std::uint8_t> good;
  const frames in = {ack_frame("framecraft", 1), ack_frame("framecraft", 2)};
  encode_bundle(spans(in), good);
  // (The last up to 7 bytes may be alignment padding.)
  for (std::size_t cut = 8; cut + 8 <= good.size(); cut += 7) {
    expect_malformed(std::span<const std::uint8_t>(good).first(cut),
                     "cut to " + std::to_string(cut) + " bytes");
  }
  // The length of the second frame's bytes, pointed past the end.
  auto broken = good;
  bool found = false;
  for (std::size_t i = 0; i + 4 <= broken.size(); i += 4) {
    std::uint32_t v = 0;
    std::memcpy(&v, broken.data() + i, 4);
    if (v == in[1].size()) {
      v = 0x7fffffff;
      std::memcpy(broken.data() + i, &v, 4);
      found = true;
    }
  }
  ASSERT_TRUE(found);
  expect_malformed(broken, "a frame longer than the bundle");
}

}  // namespace
}  // namespace gearmesh::wire
