// libFuzzer target over the inbound path: untrusted bytes -> wire::decode with
// the node's default limits -> everything the gateway reads from a decoded
// envelope (runtime/node/node.cpp: on_frame and the gateway actor). Input
// with the bundle identifier "GMSB" goes through wire::for_each_bundled first,
// as the transport reads it, and then each frame inside as above.
//
// Besides the sanitizers' findings, these are crashes (abort):
//   - decode fails with an error other than malformed_frame or
//     unsupported_version, or without a message;
//   - the same bytes decode differently at an unaligned address;
//   - peek_type fails for a frame decode accepts, or gives another type,
//     or fails with an error other than malformed_frame;
//   - a decoded envelope does not survive encode -> decode unchanged, or
//     encodes to different bytes the second time;
//   - a decoded payload's type does not index the gateway's route table;
//   - a bundle is read differently at an unaligned address, fails with an
//     error other than malformed_frame, or does not survive encode_bundle ->
//     for_each_bundled with the same frames.
//
// Run it with fuzz/run.sh; docs/security.md explains the CI run and the long
// one. Reproduce a crash: build-fuzz/fuzz/fuzz_frame CRASH_FILE.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "gearmesh/wire/bundle.hpp"
#include "gearmesh/wire/codec.hpp"

namespace {

using namespace gearmesh;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_frame: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, ...)                                             \
  do {                                                                    \
    if (!(cond)) fail("check failed: " #cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (false)

/// Folds a value into a sink the optimizer cannot drop, so every field read
/// below really happens (and ASan sees it).
std::uint64_t sink = 0;
void use(std::uint64_t v) {
  sink = sink * 1099511628211ULL ^ v;
}
void use(const std::string& s) {
  use(s.size());
  for (unsigned char c : s) use(c);
}

/// Reads every field of a payload, as the role actors and the gateway may.
struct payload_reader {
  void operator()(const wire::cfp& m) const {
    use(m.order_id);
    use(m.item);
    use(m.quantity);
    use(static_cast<std::uint64_t>(m.earliest_start_us));
    use(static_cast<std::uint64_t>(m.due_us));
    use(static_cast<std::uint64_t>(m.max_price_cents));
    use(static_cast<std::uint64_t>(m.reply_by_us));
    use(m.currency);
    FUZZ_CHECK(m.attributes.size() <= wire::limits{}.attributes_max);
    for (const auto& a : m.attributes) {
      use(a.key);
      use(a.value);
    }
  }
  void operator()(const wire::propose& m) const {
    use(m.order_id);
    use(m.proposal_id);
    use(static_cast<std::uint64_t>(m.price_cents));
    use(static_cast<std::uint64_t>(m.promised_start_us));
    use(static_cast<std::uint64_t>(m.promised_due_us));
    use(static_cast<std::uint64_t>(m.valid_until_us));
  }
  void operator()(const wire::refuse& m) const {
    use(m.order_id);
    use(m.reason);
  }
  void operator()(const wire::accept& m) const {
    use(m.order_id);
    use(m.proposal_id);
    use(m.contract_id);
  }
  void operator()(const wire::reject& m) const {
    use(m.order_id);
    use(m.proposal_id);
    use(m.reason);
  }
  void operator()(const wire::confirm& m) const {
    use(m.order_id);
    use(m.proposal_id);
    use(m.contract_id);
    use(static_cast<std::uint64_t>(m.price_cents));
    use(static_cast<std::uint64_t>(m.promised_start_us));
    use(static_cast<std::uint64_t>(m.promised_due_us));
    use(m.quantity);
    use(m.item);
  }
  void operator()(const wire::failure& m) const {
    use(m.order_id);
    use(m.proposal_id);
    use(m.contract_id);
    use(m.reason);
  }
  void operator()(const wire::cancel& m) const {
    use(m.order_id);
    use(m.contract_id);
    use(m.reason);
  }
  void operator()(const wire::ack& m) const { use(m.acked_message_id); }
  void operator()(const wire::capacity_offer& m) const {
    use(m.offer_id);
    use(m.capability);
    use(static_cast<std::uint64_t>(m.window_start_us));
    use(static_cast<std::uint64_t>(m.window_end_us));
    use(m.units);
    use(m.remaining);
    use(static_cast<std::uint64_t>(m.unit_price_cents));
    use(m.currency);
    use(static_cast<std::uint64_t>(m.valid_until_us));
    use(m.revision);
    use(m.withdrawn);
  }
  void operator()(const wire::book_capacity& m) const {
    use(m.offer_id);
    use(m.booking_id);
    use(m.units);
  }
  void operator()(const wire::capacity_booked& m) const {
    use(m.offer_id);
    use(m.booking_id);
    use(m.units);
    use(static_cast<std::uint64_t>(m.price_cents));
    use(m.currency);
    use(m.capability);
    use(static_cast<std::uint64_t>(m.window_start_us));
    use(static_cast<std::uint64_t>(m.window_end_us));
    use(m.remaining);
  }
  void operator()(const wire::capacity_refused& m) const {
    use(m.offer_id);
    use(m.booking_id);
    use(m.reason);
    use(m.remaining);
  }
  void operator()(const wire::capacity_cancelled& m) const {
    use(m.offer_id);
    use(m.booking_id);
    use(m.reason);
  }
  void operator()(const wire::resolve& m) const {
    use(m.query_id);
    use(m.identifier);
    use(m.capability);
  }
  void operator()(const wire::resolution& m) const {
    use(m.query_id);
    use(static_cast<std::uint64_t>(m.status));
    use(m.identifier);
    use(m.capability);
    for (const auto& e : m.entries) {
      use(e.node_id);
      use(e.endpoint);
      use(e.public_key);
      for (const auto& c : e.capabilities) use(c);
      use(e.referral);
    }
    use(m.ttl_s);
    use(m.reason);
  }
  void use_components(const std::vector<wire::component_status>& v) const {
    for (const auto& c : v) {
      use(c.contract_id);
      use(c.seller);
      use(c.item);
      use(c.quantity);
      use(static_cast<std::uint64_t>(c.state));
      use(static_cast<std::uint64_t>(c.expected_due_us));
      use_components(c.components);
    }
  }
  void operator()(const wire::production_event& m) const {
    use(m.contract_id);
    use(m.order_id);
    use(m.sequence);
    use(static_cast<std::uint64_t>(m.kind));
    use(static_cast<std::uint64_t>(m.state));
    use(static_cast<std::uint64_t>(m.expected_due_us));
    use(m.reason);
    use_components(m.components);
  }
};

/// What the gateway does with a verified envelope before an actor sees it.
void gateway_reads(const wire::envelope& env) {
  const auto& h = env.header;
  const wire::limits lim;
  FUZZ_CHECK(h.protocol_version == wire::protocol_version);
  for (const std::string* s : {&h.sender, &h.receiver, &h.conversation_id}) {
    FUZZ_CHECK(s->size() <= lim.string_bytes_max);
  }
  // on_frame: receiver and sender checks, and the log lines that name the type.
  use(h.receiver == "framecraft");
  use(h.sender == "velo");
  const wire::message_type type = wire::type_of(env.payload);
  const auto route = static_cast<std::size_t>(type);
  FUZZ_CHECK(route < wire::message_type_count, std::to_string(route));
  const char* name = wire::to_string(type);
  FUZZ_CHECK(name != nullptr && std::strcmp(name, "unknown") != 0, std::to_string(route));
  use(std::string(name));
  // gateway: ack lookup, inbox key, replay window and clock skew comparisons.
  if (const auto* a = std::get_if<wire::ack>(&env.payload)) use(a->acked_message_id);
  use(h.sender + "/" + std::to_string(h.message_id));
  constexpr std::int64_t now_us = 1'767'225'600'000'000;  // 2026-01-01
  constexpr std::int64_t skew_us = 3'600'000'000;
  constexpr std::int64_t window_us = 7 * 24 * 3'600'000'000LL;
  use(h.timestamp_us > now_us + skew_us);
  use(h.timestamp_us < now_us - window_us);
  use(h.causation_id);
  use(h.conversation_id);
  std::visit(payload_reader{}, env.payload);
}

std::string describe(const wire::envelope& env) {
  return std::string(wire::to_string(wire::type_of(env.payload))) + " message_id " +
         std::to_string(env.header.message_id);
}

/// One frame, as the node reads it (alone, or out of a bundle).
void check_frame(std::span<const std::uint8_t> frame) {
  const wire::limits lim;  // the node's defaults ([transport] frame_bytes_max = 64 KiB)
  const std::uint8_t* data = frame.data();
  const std::size_t size = frame.size();
  auto env = wire::decode(frame, lim);
  // peek_type reads a part of what decode verifies: it accepts every frame
  // decode accepts (with the decoded type), may accept others, and fails
  // only as malformed_frame.
  auto type = wire::peek_type(frame, lim);
  if (type) {
    use(static_cast<std::uint64_t>(*type));
  } else {
    FUZZ_CHECK(type.error().code() == errc::malformed_frame, type.error().to_string());
  }

  // The same bytes one byte off alignment (decode copies them) decode the same.
  std::vector<std::uint8_t> shifted(size + 1);
  if (size > 0) std::memcpy(shifted.data() + 1, data, size);
  auto env_shifted = wire::decode(std::span(shifted).subspan(1), lim);
  FUZZ_CHECK(env.has_value() == env_shifted.has_value());
  auto type_shifted = wire::peek_type(std::span(shifted).subspan(1), lim);
  FUZZ_CHECK(type.has_value() == type_shifted.has_value());

  if (!env) {
    const status& st = env.error();
    FUZZ_CHECK(st.code() == errc::malformed_frame || st.code() == errc::unsupported_version,
               st.to_string());
    FUZZ_CHECK(!st.message().empty());
    FUZZ_CHECK(env_shifted.error().code() == st.code(), env_shifted.error().to_string());
    use(st.to_string());
    return;
  }
  FUZZ_CHECK(*env == *env_shifted, describe(*env));
  FUZZ_CHECK(type && *type == wire::type_of(env->payload), describe(*env));
  gateway_reads(*env);

  // Round trip. A frame whose string fields share one copy (legal FlatBuffers)
  // re-encodes larger than it arrived, possibly above frame_bytes_max: the
  // size bound is the receiver's, so the second decode lifts only that one.
  const wire::bytes again = wire::encode(*env);
  wire::limits relaxed = lim;
  relaxed.frame_bytes_max = std::max(lim.frame_bytes_max, again.size());
  auto env2 = wire::decode(again, relaxed);
  FUZZ_CHECK(env2.has_value(), describe(*env) + ": " + env2.error().to_string());
  FUZZ_CHECK(*env2 == *env, describe(*env));
  FUZZ_CHECK(wire::encode(*env2) == again, describe(*env));
}

using frame_list = std::vector<std::vector<std::uint8_t>>;

/// The frames of a bundle, copied; the error if it is malformed.
result<frame_list> unbundle(std::span<const std::uint8_t> message) {
  frame_list out;
  const status st = wire::for_each_bundled(
      message, [&](std::span<const std::uint8_t> f) { out.emplace_back(f.begin(), f.end()); });
  if (!st) return st;
  return out;
}

/// A bundle, as the transport reads it: verified whole (the same at an
/// unaligned address), re-encoded to the same frames, each frame checked.
void check_bundle(std::span<const std::uint8_t> message) {
  auto frames = unbundle(message);
  std::vector<std::uint8_t> shifted(message.size() + 1);
  std::memcpy(shifted.data() + 1, message.data(), message.size());
  auto frames_shifted = unbundle(std::span(shifted).subspan(1));
  FUZZ_CHECK(frames.has_value() == frames_shifted.has_value());
  if (!frames) {
    FUZZ_CHECK(frames.error().code() == errc::malformed_frame, frames.error().to_string());
    FUZZ_CHECK(!frames.error().message().empty());
    use(frames.error().to_string());
    return;
  }
  FUZZ_CHECK(*frames == *frames_shifted);
  FUZZ_CHECK(!frames->empty() && frames->size() <= wire::bundle_frames_max);
  const std::vector<std::span<const std::uint8_t>> spans(frames->begin(), frames->end());
  std::vector<std::uint8_t> again;
  wire::encode_bundle(spans, again);
  auto frames2 = unbundle(again);
  FUZZ_CHECK(frames2.has_value(), frames2.error().to_string());
  FUZZ_CHECK(*frames2 == *frames);
  for (const auto& f : *frames) check_frame(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> message(data, size);
  if (wire::is_bundle(message))
    check_bundle(message);
  else
    check_frame(message);
  return 0;
}
