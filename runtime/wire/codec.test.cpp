#include "gearmesh/wire/codec.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gearmesh/wire/gearmesh_generated.h"

namespace gearmesh::wire {
namespace {

header sample_header() {
  header h;
  h.message_id = 0x1122334455667788ULL;
  h.sender = "framecraft";
  h.receiver = "velo";
  h.conversation_id = "velo/order/17";
  h.causation_id = 42;
  h.timestamp_us = 1'767'225'600'000'000;
  return h;
}

cfp sample_cfp() {
  cfp m;
  m.order_id = "velo/order/17";
  m.item = "FRAME";
  m.quantity = 250;
  m.earliest_start_us = 1'767'225'600'000'000;
  m.due_us = 1'767'830'400'000'000;
  m.max_price_cents = 1'250'000;
  m.reply_by_us = 1'767'226'000'000'000;
  m.currency = "EUR";
  // Deliberately not sorted by key: the codec must preserve order.
  m.attributes = {{"size", "M"}, {"colour", "teal"}, {"jig", ""}};
  return m;
}

resolution sample_resolution() {
  resolution m;
  m.query_id = 7;
  m.status = resolution_status::found;
  m.identifier = "acme.plant1/machine/m7";
  m.entries = {
      {"acme.plant1",
       "tcp://10.0.0.7:7100",
       "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
       {"welding", "", "FRAME"},
       false},
      {"acme-dir", "tcp://10.0.0.2:7100", "", {}, true},
  };
  m.ttl_s = 300;
  m.reason = "";
  return m;
}

production_event sample_production_event() {
  production_event m;
  m.contract_id = "velo/order/17/c1";
  m.order_id = "velo/order/17";
  m.sequence = 3;
  m.kind = production_event_kind::delayed;
  m.at_us = 1'767'300'000'000'000;
  m.state = contract_progress::executing;
  m.expected_due_us = 1'767'900'000'000'000;
  m.started_us = 1'767'290'000'000'000;
  m.reason = "component TUBE-SET late by 24 h";
  component_status tube{"framecraft/order/4/c1",
                        "tubeco",
                        "TUBE-SET",
                        250,
                        contract_progress::executing,
                        1'767'280'000'000'000,
                        1'767'366'400'000'000,
                        1'767'250'000'000'000,
                        0,
                        {}};
  tube.components.push_back(component_status{"tubeco/order/1/c1",
                                             "steelmill",
                                             "STEEL",
                                             500,
                                             contract_progress::delivered,
                                             1,
                                             0,
                                             2,
                                             3,
                                             {}});
  m.components = {tube, component_status{}};
  return m;
}

/// One sample of every message type, in variant order.
std::vector<payload> every_payload() {
  return {
      sample_cfp(),
      propose{"velo/order/17", "fc/hold/9", 990'000, 1'767'300'000'000'000, 1'767'800'000'000'000,
              1'767'230'000'000'000},
      refuse{"velo/order/17", "no welding capacity before due date"},
      accept{"velo/order/17", "fc/hold/9", "velo/contract/3"},
      reject{"velo/order/17", "af/hold/2", "another proposal won"},
      confirm{"velo/order/17", "fc/hold/9", "velo/contract/3", 990'000, 1'767'300'000'000'000,
              1'767'800'000'000'000, 250, "FRAME"},
      failure{"velo/order/17", "fc/hold/9", "velo/contract/3", "hold expired"},
      cancel{"velo/order/17", "", "customer withdrew"},
      ack{0xFFFFFFFFFFFFFFFFULL},
      capacity_offer{"framecraft/capacity/3", "coating", 1'767'300'000'000'000,
                     1'767'400'000'000'000, 480, 360, 125, "EUR", 1'767'250'000'000'000, 2, false},
      book_capacity{"framecraft/capacity/3", "velo/booking/1", 120},
      capacity_booked{"framecraft/capacity/3", "velo/booking/1", 120, 15'000, "EUR", "coating",
                      1'767'300'000'000'000, 1'767'400'000'000'000, 240},
      capacity_refused{"framecraft/capacity/3", "velo/booking/2", "only 240 units remain", 240},
      resolve{7, "acme.plant1/machine/m7", "", 3},
      sample_resolution(),
      sample_production_event(),
      capacity_cancelled{"framecraft/capacity/3", "velo/booking/1",
                         "paint1 broke down (pump failure)"},
  };
}

envelope sample_envelope(payload p = sample_cfp()) {
  return envelope{sample_header(), std::move(p)};
}

/// Asserts a decode (or peek_type) failed with `code` and a message
/// containing `needle`.
template <class T>
void expect_error(const result<T>& r, errc code, const std::string& needle) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), code) << r.error().to_string();
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().to_string();
}

bytes finish(flatbuffers::FlatBufferBuilder& b, flatbuffers::Offset<Envelope> root) {
  FinishEnvelopeBuffer(b, root);
  return bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

TEST(message_type, names) {
  EXPECT_STREQ(to_string(message_type::cfp), "cfp");
  EXPECT_STREQ(to_string(message_type::confirm), "confirm");
  EXPECT_STREQ(to_string(message_type::ack), "ack");
  EXPECT_STREQ(to_string(message_type::resolve), "resolve");
  EXPECT_STREQ(to_string(message_type::resolution), "resolution");
  EXPECT_STREQ(to_string(resolution_status::referral), "referral");
  EXPECT_STREQ(to_string(static_cast<message_type>(200)), "unknown");
  const auto all = every_payload();
  ASSERT_EQ(all.size(), message_type_count);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(type_of(all[i])), i);
  }
}

TEST(codec, round_trips_every_message_type) {
  for (const payload& p : every_payload()) {
    SCOPED_TRACE(to_string(type_of(p)));
    const envelope in = sample_envelope(p);
    const bytes frame = encode(in);
    ASSERT_GE(frame.size(), 8u);
    EXPECT_EQ(std::memcmp(frame.data() + 4, "GMSH", 4), 0);
    auto out = decode(frame);
    ASSERT_TRUE(out.has_value()) << out.error().to_string();
    EXPECT_EQ(out->header, in.header);
    EXPECT_EQ(out->payload, in.payload);
    EXPECT_EQ(type_of(out->payload), type_of(in.payload));
    EXPECT_EQ(*out, in);
  }
}

TEST(codec, peek_type_reads_the_type_of_every_message) {
  for (const payload& p : every_payload()) {
    SCOPED_TRACE(to_string(type_of(p)));
    const bytes frame = encode(sample_envelope(p));
    auto t = peek_type(frame);
    ASSERT_TRUE(t.has_value()) << t.error().to_string();
    EXPECT_EQ(*t, type_of(p));
    // At an odd address too (peek_type copies, as decode does).
    bytes shifted(frame.size() + 1);
    std::memcpy(shifted.data() + 1, frame.data(), frame.size());
    auto u = peek_type(std::span<const std::uint8_t>(shifted).subspan(1));
    ASSERT_TRUE(u.has_value()) << u.error().to_string();
    EXPECT_EQ(*u, type_of(p));
  }
}

TEST(codec, peek_type_rejects_what_it_cannot_read) {
  expect_error(peek_type({}), errc::malformed_frame, "frame of 0 bytes is shorter than 8");
  const std::uint8_t header_only[8] = {8, 0, 0, 0, 'G', 'M', 'S', 'H'};
  expect_error(peek_type(header_only), errc::malformed_frame, "verifier rejected frame");
  bytes frame = encode(sample_envelope());
  expect_error(peek_type(bytes(70'000, 0)), errc::malformed_frame, "exceeds 65536");
  bytes wrong = frame;
  std::memcpy(wrong.data() + 4, "XXXX", 4);
  expect_error(peek_type(wrong), errc::malformed_frame, "bad file identifier");
  // Every prefix: read as the full type, or rejected, never past its end
  // (each prefix is a copy, so ASan sees reads beyond it).
  for (std::size_t n = 0; n < frame.size(); ++n) {
    const bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    auto t = peek_type(prefix);
    if (t) {
      EXPECT_EQ(*t, message_type::cfp);
    } else {
      EXPECT_EQ(t.error().code(), errc::malformed_frame);
    }
  }
}

TEST(codec, round_trips_defaults_and_empty_strings) {
  for (const payload& p : every_payload()) {
    envelope in;
    // Default-constructed alternative of the same type.
    in.payload =
        std::visit([](const auto& m) -> payload { return std::decay_t<decltype(m)>{}; }, p);
    auto out = decode(encode(in));
    ASSERT_TRUE(out.has_value()) << out.error().to_string();
    EXPECT_EQ(*out, in);
  }
}

// Attribute.key is a FlatBuffers `(key)` field, hence required: an empty key
// must still be written. Found by fuzz/fuzz_frame (a partner's Cfp with a
// present but empty key decoded, and its re-encoding did not).
TEST(codec, round_trips_attributes_with_empty_keys) {
  cfp m = sample_cfp();
  m.attributes = {{"", "teal"}, {"", ""}, {"size", ""}};
  const envelope in = sample_envelope(m);
  const bytes frame = encode(in);
  auto out = decode(frame);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, in);
  EXPECT_EQ(encode(*out), frame);
}

TEST(codec, round_trips_at_the_limits) {
  const limits lim;
  cfp m = sample_cfp();
  m.order_id = std::string(lim.id_bytes_max, 'o');
  m.attributes.clear();
  for (std::size_t i = 0; i < lim.attributes_max; ++i) {
    m.attributes.push_back({"k" + std::to_string(i), std::string(lim.string_bytes_max, 'v')});
  }
  const envelope in = sample_envelope(m);
  const bytes frame = encode(in);
  ASSERT_LE(frame.size(), lim.frame_bytes_max);
  auto out = decode(frame, lim);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, in);
}

TEST(codec, decodes_misaligned_frames) {
  const bytes frame = encode(sample_envelope());
  for (std::size_t shift = 1; shift < 8; ++shift) {
    std::vector<std::uint8_t> storage(frame.size() + shift);
    std::memcpy(storage.data() + shift, frame.data(), frame.size());
    auto out = decode(std::span(storage.data() + shift, frame.size()));
    ASSERT_TRUE(out.has_value()) << "shift " << shift << ": " << out.error().to_string();
    EXPECT_EQ(*out, sample_envelope());
  }
  // Above the stack-copy size too.
  cfp big = sample_cfp();
  big.attributes.assign(8, attribute{"key", std::string(500, 'x')});
  const bytes large = encode(sample_envelope(big));
  ASSERT_GT(large.size(), 2048u);
  std::vector<std::uint8_t> storage(large.size() + 3);
  std::memcpy(storage.data() + 3, large.data(), large.size());
  auto out = decode(std::span(storage.data() + 3, large.size()));
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, sample_envelope(big));
}

TEST(codec, rejects_truncated_frames_at_every_length) {
  for (const payload& p : every_payload()) {
    SCOPED_TRACE(to_string(type_of(p)));
    const bytes frame = encode(sample_envelope(p));
    int padding_cuts = 0;
    for (std::size_t n = 0; n < frame.size(); ++n) {
      // Copy so ASan sees reads past the prefix.
      const bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
      auto out = decode(prefix);
      if (out.has_value()) {
        // Only trailing alignment padding may be cut without harm.
        ++padding_cuts;
        EXPECT_EQ(*out, sample_envelope(p)) << "prefix of " << n << " of " << frame.size();
        EXPECT_GE(n + 8, frame.size()) << "prefix of " << n << " of " << frame.size();
      } else {
        EXPECT_EQ(out.error().code(), errc::malformed_frame);
      }
    }
    EXPECT_LT(padding_cuts, 8);
  }
}

TEST(codec, rejects_empty_and_tiny_frames) {
  expect_error(decode({}), errc::malformed_frame, "frame of 0 bytes is shorter than 8");
  const std::uint8_t four[4] = {8, 0, 0, 0};
  expect_error(decode(four), errc::malformed_frame, "shorter than");
  const std::uint8_t header_only[8] = {8, 0, 0, 0, 'G', 'M', 'S', 'H'};
  expect_error(decode(header_only), errc::malformed_frame, "verifier rejected frame");
}

TEST(codec, random_bytes_never_decode_or_crash) {
  std::mt19937_64 rng(20260101);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 600);
  int accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    bytes junk(length(rng));
    for (auto& b : junk) b = static_cast<std::uint8_t>(byte(rng));
    // Half of the inputs carry the right identifier, so the verifier runs.
    if (i % 2 == 0 && junk.size() >= 8) std::memcpy(junk.data() + 4, "GMSH", 4);
    auto out = decode(junk);
    if (out.has_value()) {
      ++accepted;
    } else {
      EXPECT_TRUE(out.error().code() == errc::malformed_frame ||
                  out.error().code() == errc::unsupported_version);
    }
  }
  EXPECT_EQ(accepted, 0);
}

TEST(codec, mutated_frames_never_crash) {
  std::mt19937_64 rng(7);
  const auto all = every_payload();
  for (int i = 0; i < 20'000; ++i) {
    bytes frame = encode(sample_envelope(all[static_cast<std::size_t>(i) % all.size()]));
    std::uniform_int_distribution<std::size_t> pos(0, frame.size() - 1);
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) frame[pos(rng)] = static_cast<std::uint8_t>(rng());
    auto out = decode(frame);
    // peek_type checks a part of what decode does: it agrees with every
    // frame decode accepts.
    auto type = peek_type(frame);
    if (!type) {
      EXPECT_EQ(type.error().code(), errc::malformed_frame);
    }
    // Either outcome is fine; a decoded value must respect the limits.
    if (out.has_value()) {
      ASSERT_TRUE(type.has_value());
      EXPECT_EQ(*type, type_of(out->payload));
      EXPECT_LE(out->header.sender.size(), limits{}.string_bytes_max);
      EXPECT_EQ(out->header.protocol_version, protocol_version);
    }
  }
}

TEST(codec, rejects_oversized_frames_before_parsing) {
  bytes frame(70'000, 0);
  expect_error(decode(frame), errc::malformed_frame, "frame of 70000 bytes exceeds 65536");
  // Even a valid frame is rejected by a tighter limit.
  const bytes ok = encode(sample_envelope());
  limits lim;
  lim.frame_bytes_max = ok.size() - 1;
  expect_error(decode(ok, lim), errc::malformed_frame,
               "frame of " + std::to_string(ok.size()) + " bytes exceeds");
  lim.frame_bytes_max = ok.size();
  EXPECT_TRUE(decode(ok, lim).has_value());
}

TEST(codec, rejects_wrong_identifier) {
  bytes frame = encode(sample_envelope());
  std::memcpy(frame.data() + 4, "GMSX", 4);
  expect_error(decode(frame), errc::malformed_frame, "bad file identifier");
}

TEST(codec, rejects_wrong_version) {
  envelope env = sample_envelope();
  env.header.protocol_version = 2;
  expect_error(decode(encode(env)), errc::unsupported_version, "protocol version 2");
  env.header.protocol_version = 0;  // absent field
  expect_error(decode(encode(env)), errc::unsupported_version, "protocol version 0");
}

TEST(codec, rejects_missing_payload) {
  {
    flatbuffers::FlatBufferBuilder b;
    auto sender = b.CreateString("framecraft");
    const bytes frame = finish(b, CreateEnvelope(b, protocol_version, 1, sender));
    expect_error(decode(frame), errc::malformed_frame, "no payload");
  }
  {
    // Type says Cfp, but no table.
    flatbuffers::FlatBufferBuilder b;
    const bytes frame =
        finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, Payload::Cfp, 0));
    expect_error(decode(frame), errc::malformed_frame, "no payload");
  }
  {
    // Table present, type NONE.
    flatbuffers::FlatBufferBuilder b;
    auto a = CreateAck(b, 5).Union();
    const bytes frame =
        finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, Payload::NONE, a));
    expect_error(decode(frame), errc::malformed_frame, "no payload");
  }
}

TEST(codec, rejects_bogus_union_type) {
  flatbuffers::FlatBufferBuilder b;
  auto a = CreateAck(b, 5).Union();
  const bytes frame =
      finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, static_cast<Payload>(42), a));
  expect_error(decode(frame), errc::malformed_frame, "unknown payload type 42");
}

TEST(codec, rejects_mismatched_union_table) {
  // Type says Cfp but the table is an Ack whose uint64 sits where Cfp keeps
  // order_id: the verifier must catch the bogus string offset.
  flatbuffers::FlatBufferBuilder b;
  auto a = CreateAck(b, 0xFFFFFFF0).Union();
  const bytes frame =
      finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, Payload::Cfp, a));
  expect_error(decode(frame), errc::malformed_frame, "verifier rejected frame");
}

TEST(codec, rejects_too_long_strings) {
  limits lim;
  lim.string_bytes_max = 16;
  envelope env = sample_envelope();
  env.header.sender = std::string(17, 's');
  expect_error(decode(encode(env), lim), errc::malformed_frame,
               "string field sender of 17 bytes exceeds 16");

  env = sample_envelope(refuse{"o", std::string(100, 'r')});
  expect_error(decode(encode(env), lim), errc::malformed_frame, "string field reason of 100");

  cfp m = sample_cfp();
  m.attributes.push_back({"colour", std::string(17, 'v')});
  expect_error(decode(encode(sample_envelope(m)), lim), errc::malformed_frame,
               "attribute.value of 17 bytes");

  // Default limits: 1024 for text, 255 for identifiers.
  env = sample_envelope(refuse{"o", std::string(1025, 'r')});
  expect_error(decode(encode(env)), errc::malformed_frame, "reason of 1025 bytes exceeds 1024");
  env = sample_envelope(accept{std::string(256, 'o'), "p", "c"});
  expect_error(decode(encode(env)), errc::malformed_frame,
               "identifier field order_id of 256 bytes exceeds 255");
}

// Identifiers become store keys (LMDB: at most 511 bytes) and are quoted in
// reasons; every one of them is bounded (found by fuzz_dispatch: a 600-byte
// contract id stopped a node, a 1000-byte currency made an undecodable Refuse).
TEST(codec, bounds_every_identifier_field) {
  limits lim;
  lim.id_bytes_max = 40;  // longer than every id of the samples
  const std::string id(41, 'i');
  auto rejects = [&](envelope env, const std::string& field) {
    SCOPED_TRACE(field);
    expect_error(decode(encode(env), lim), errc::malformed_frame,
                 "identifier field " + field + " of 41 bytes exceeds 40");
  };
  auto with_header = [&](void (*set)(header&, const std::string&)) {
    envelope env = sample_envelope();
    set(env.header, id);
    return env;
  };
  rejects(with_header([](header& h, const std::string& v) { h.sender = v; }), "sender");
  rejects(with_header([](header& h, const std::string& v) { h.receiver = v; }), "receiver");
  rejects(with_header([](header& h, const std::string& v) { h.conversation_id = v; }),
          "conversation_id");
  cfp c = sample_cfp();
  c.order_id = "o";
  c.item = id;
  rejects(sample_envelope(c), "item");
  c.item = "i";
  c.currency = id;
  rejects(sample_envelope(c), "currency");
  rejects(sample_envelope(propose{"o", id, 1, 2, 3, 4}), "proposal_id");
  rejects(sample_envelope(accept{"o", "p", id}), "contract_id");
  rejects(sample_envelope(confirm{"o", "p", "c", 1, 2, 3, 4, id}), "item");
  rejects(sample_envelope(failure{"o", "p", id, "r"}), "contract_id");
  rejects(sample_envelope(cancel{id, "c", "r"}), "order_id");
  rejects(sample_envelope(capacity_offer{id, "c", 1, 2, 3, 3, 4, "EUR", 5, 1, false}), "offer_id");
  rejects(sample_envelope(capacity_offer{"o", id, 1, 2, 3, 3, 4, "EUR", 5, 1, false}),
          "capability");
  rejects(sample_envelope(capacity_offer{"o", "c", 1, 2, 3, 3, 4, id, 5, 1, false}), "currency");
  rejects(sample_envelope(book_capacity{"o", id, 1}), "booking_id");
  rejects(sample_envelope(capacity_booked{"o", "b", 1, 2, "EUR", id, 3, 4, 0}), "capability");
  rejects(sample_envelope(capacity_refused{id, "b", "r", 0}), "offer_id");
}

TEST(codec, bounds_capacity_refused_reason) {
  auto env = sample_envelope(capacity_refused{"o", "b", std::string(1025, 'r'), 0});
  expect_error(decode(encode(env)), errc::malformed_frame, "reason of 1025 bytes exceeds 1024");
}

TEST(codec, bounds_directory_fields) {
  limits lim;
  lim.id_bytes_max = 40;
  const std::string id(41, 'i');
  auto rejects = [&](const payload& p, const std::string& field) {
    SCOPED_TRACE(field);
    expect_error(decode(encode(sample_envelope(p)), lim), errc::malformed_frame,
                 "identifier field " + field + " of 41 bytes exceeds 40");
  };
  rejects(resolve{1, id, ""}, "identifier");
  rejects(resolve{1, "", id}, "capability");
  auto r = sample_resolution();
  r.entries[0].node_id = id;
  rejects(r, "entries.node_id");
  r = sample_resolution();
  r.entries[1].endpoint = id;
  rejects(r, "entries.endpoint");
  r = sample_resolution();
  r.entries[0].public_key = id;
  rejects(r, "entries.public_key");
  r = sample_resolution();
  r.entries[0].capabilities.push_back(id);
  rejects(r, "entries.capabilities");

  r = sample_resolution();
  r.entries.assign(65, r.entries[0]);
  expect_error(decode(encode(sample_envelope(r))), errc::malformed_frame,
               "resolution has 65 entries, more than 64");
  r = sample_resolution();
  r.entries[0].capabilities.assign(65, "welding");
  expect_error(decode(encode(sample_envelope(r))), errc::malformed_frame,
               "65 capabilities, more than 64");
}

TEST(codec, production_event_limits) {
  // Too many components over the whole tree.
  auto m = sample_production_event();
  limits lim;
  lim.components_max = 2;
  expect_error(decode(encode(sample_envelope(m)), lim), errc::malformed_frame,
               "more than 2 components");
  // Too deep.
  lim = limits{};
  lim.component_depth_max = 1;
  expect_error(decode(encode(sample_envelope(m)), lim), errc::malformed_frame,
               "component tree deeper than 1");
  // Identifiers in components are identifiers.
  m = sample_production_event();
  m.components[0].components[0].seller = std::string(256, 's');
  expect_error(decode(encode(sample_envelope(m))), errc::malformed_frame,
               "identifier field components.seller of 256 bytes");
  EXPECT_STREQ(to_string(message_type::production_event), "production_event");
  EXPECT_STREQ(to_string(production_event_kind::delivered), "delivered");
  EXPECT_STREQ(to_string(contract_progress::executing), "executing");
  // A seller's cancellation (kind appended in protocol 1, section 6.8).
  m = sample_production_event();
  m.kind = production_event_kind::cancelled;
  m.state = contract_progress::cancelled;
  m.reason = "weld1 broke down";
  auto back = decode(encode(sample_envelope(m)));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(std::get<production_event>(back->payload), m);
  EXPECT_STREQ(to_string(production_event_kind::cancelled), "cancelled");
}

TEST(codec, rejects_unknown_production_event_kind) {
  flatbuffers::FlatBufferBuilder b;
  auto m = CreateProductionEvent(b, 0, 0, 1, static_cast<ProductionEventKind>(9))
               .Union();  // 6.. are unknown
  auto frame =
      finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, Payload::ProductionEvent, m));
  expect_error(decode(frame), errc::malformed_frame, "production event kind 9 is unknown");
}

TEST(codec, rejects_unknown_resolution_status) {
  flatbuffers::FlatBufferBuilder b;
  auto m = CreateResolution(b, 1, static_cast<ResolutionStatus>(9)).Union();
  const bytes frame =
      finish(b, CreateEnvelope(b, protocol_version, 1, 0, 0, 0, 0, 0, Payload::Resolution, m));
  expect_error(decode(frame), errc::malformed_frame, "resolution status 9 is unknown");
}

TEST(codec, rejects_too_many_attributes) {
  cfp m = sample_cfp();
  m.attributes.assign(33, attribute{"k", "v"});
  expect_error(decode(encode(sample_envelope(m))), errc::malformed_frame,
               "cfp has 33 attributes, more than 32");
  limits lim;
  lim.attributes_max = 2;
  m.attributes.resize(3);
  expect_error(decode(encode(sample_envelope(m)), lim), errc::malformed_frame, "3 attributes");
}

TEST(codec, round_trips_and_bounds_piggybacked_acks) {
  envelope in = sample_envelope(ack{7});
  in.header.acks = {8, 9, std::numeric_limits<std::uint64_t>::max()};
  auto out = decode(encode(in));
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, in);
  EXPECT_EQ(acknowledged_ids(*out), (std::vector<std::uint64_t>{7, 8, 9, in.header.acks[2]}));
  // On a reply: only the header's ids are acknowledged.
  envelope reply = sample_envelope(sample_cfp());
  reply.header.acks = {3};
  EXPECT_EQ(acknowledged_ids(reply), std::vector<std::uint64_t>{3});
  // At the limit and beyond.
  const limits lim;
  in.header.acks.assign(lim.acks_max, 1);
  ASSERT_TRUE(decode(encode(in)).has_value());
  in.header.acks.push_back(2);
  expect_error(decode(encode(in)), errc::malformed_frame, "acks holds 1025 ids, more than 1024");
}

TEST(codec, verifier_limits_apply) {
  cfp m = sample_cfp();
  m.attributes.assign(20, attribute{"k", "v"});
  const bytes frame = encode(sample_envelope(m));
  limits lim;
  lim.tables_max = 10;  // envelope + cfp + 20 attributes > 10
  expect_error(decode(frame, lim), errc::malformed_frame, "verifier rejected frame");
  lim = limits{};
  lim.depth_max = 2;
  expect_error(decode(frame, lim), errc::malformed_frame, "verifier rejected frame");
  EXPECT_TRUE(decode(frame).has_value());
}

TEST(codec, decode_cost_is_small) {
  // Reports the cost; never asserts on time (shared machines are noisy).
  const bytes frame = encode(sample_envelope());
  constexpr int iterations = 100'000;
  std::size_t checksum = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    auto out = decode(frame);
    checksum += out.has_value() ? out->header.sender.size() : 0;
  }
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(checksum, std::size_t{iterations} * sample_header().sender.size());
  const double ns =
      std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(iterations);
  std::printf("decode (verify + copy out) of a %zu-byte cfp frame: %.0f ns\n", frame.size(), ns);
  RecordProperty("decode_ns", static_cast<int>(ns));
}

}  // namespace
}  // namespace gearmesh::wire
