// Writes the seed corpora:
//   fuzz_frame (fuzz/corpus/frame/): real encoded envelopes of every message
//     type, the limits' edge cases, frames that each fail one check of the
//     decoder, and bundles of them (valid and not);
//   fuzz_dispatch (fuzz/corpus/dispatch/): identity byte + frame for every
//     message type acting on the state a session starts from, and one per
//     drop reason of the node (fuzz/dispatch_scenario.hpp).
// Run by `fuzz/run.sh --seed-corpus`.
//
// Every seed is checked against the decoder before it is written: valid seeds
// must decode, invalid ones must fail, so the corpus keeps covering both.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "dispatch_scenario.hpp"
#include "gearmesh/wire/bundle.hpp"
#include "gearmesh/wire/bundle_generated.h"
#include "gearmesh/wire/codec.hpp"
#include "gearmesh/wire/gearmesh_generated.h"

namespace {

using namespace gearmesh;
namespace fs = std::filesystem;
namespace fb = ::flatbuffers;

constexpr std::int64_t t0_us = 1'767'225'600'000'000;  // 2026-01-01T00:00Z
constexpr std::int64_t ms_us = 1'000;
constexpr std::int64_t day_us = 86'400'000'000;

wire::envelope envelope(std::uint64_t id, const char* from, const char* to, wire::payload p,
                        std::uint64_t cause = 0) {
  wire::envelope env;
  env.header.message_id = id;
  env.header.sender = from;
  env.header.receiver = to;
  env.header.conversation_id = "velo/order/1";
  env.header.causation_id = cause;
  env.header.timestamp_us = t0_us + static_cast<std::int64_t>(id) * ms_us;
  env.payload = std::move(p);
  return env;
}

wire::cfp sample_cfp() {
  return wire::cfp{"velo/order/1",
                   "FRAME",
                   5,
                   t0_us,
                   t0_us + 14 * day_us,
                   0,
                   t0_us + 800 * ms_us,
                   "EUR",
                   {{"colour", "red"}, {"size", "M"}}};
}

/// The conversation of docs/protocol.md section 10, one frame per type.
std::vector<std::pair<std::string, wire::bytes>> valid_seeds() {
  const std::int64_t start = t0_us + 2 * day_us, due = t0_us + 9 * day_us;
  std::vector<std::pair<std::string, wire::bytes>> s;
  const auto add = [&](const char* name, const wire::envelope& env) {
    s.emplace_back(name, wire::encode(env));
  };
  add("cfp", envelope(1, "velo", "framecraft", sample_cfp()));
  add("propose", envelope(7, "framecraft", "velo",
                          wire::propose{"velo/order/1", "framecraft/proposal/1", 9584, start, due,
                                        t0_us + 5'000 * ms_us},
                          1));
  add("refuse",
      envelope(3, "tubeco", "velo", wire::refuse{"velo/order/1", "unknown item FRAME"}, 2));
  add("accept",
      envelope(4, "velo", "framecraft",
               wire::accept{"velo/order/1", "framecraft/proposal/1", "velo/order/1/c1"}, 7));
  add("reject",
      envelope(5, "velo", "alloyframe",
               wire::reject{"velo/order/1", "alloyframe/proposal/1", "another proposal won"}, 8));
  add("confirm", envelope(9, "framecraft", "velo",
                          wire::confirm{"velo/order/1", "framecraft/proposal/1", "velo/order/1/c1",
                                        9584, start, due, 5, "FRAME"},
                          4));
  add("failure", envelope(10, "framecraft", "velo",
                          wire::failure{"velo/order/1", "framecraft/proposal/1", "velo/order/1/c1",
                                        "holds lapsed and no capacity before the due date"},
                          4));
  add("cancel", envelope(6, "velo", "framecraft",
                         wire::cancel{"velo/order/1", "velo/order/1/c1", "customer withdrew"}));
  wire::envelope ack = envelope(0, "framecraft", "velo", wire::ack{4}, 4);
  ack.header.conversation_id.clear();
  add("ack", ack);
  ack.header.acks = {5, 6, 9};  // one Ack frame acknowledging four messages
  add("ack-batch", ack);
  auto answered = envelope(8, "framecraft", "velo",
                           wire::refuse{"velo/order/2", "no capacity before the due date"}, 2);
  answered.header.acks = {2};  // a reply carrying the Ack of what it answers
  add("refuse-with-ack", answered);
  add("capacity_offer",
      envelope(11, "framecraft", "velo",
               wire::capacity_offer{"framecraft/capacity/1", "coating", start, due, 480, 480, 125,
                                    "EUR", t0_us + day_us, 1, false}));
  add("book_capacity",
      envelope(12, "velo", "framecraft",
               wire::book_capacity{"framecraft/capacity/1", "velo/booking/1", 120}, 11));
  add("capacity_booked",
      envelope(13, "framecraft", "velo",
               wire::capacity_booked{"framecraft/capacity/1", "velo/booking/1", 120, 15'000, "EUR",
                                     "coating", start, due, 360},
               12));
  add("capacity_refused", envelope(14, "framecraft", "velo",
                                   wire::capacity_refused{"framecraft/capacity/1", "velo/booking/2",
                                                          "only 360 units remain", 360},
                                   12));
  add("capacity_cancelled",
      envelope(17, "framecraft", "velo",
               wire::capacity_cancelled{"framecraft/capacity/1", "velo/booking/1",
                                        "paint1 broke down (pump failure)"}));
  add("empty-fields", envelope(1, "", "", wire::cfp{}));
  add("resolve", envelope(12, "velo", "registry", wire::resolve{3, "acme.plant1/machine/m7", ""}));
  add("resolve-capability", envelope(13, "velo", "registry", wire::resolve{4, "", "welding"}));
  add("resolution", envelope(14, "registry", "velo",
                             wire::resolution{3,
                                              wire::resolution_status::referral,
                                              "acme.plant1/machine/m7",
                                              "",
                                              {{"acme-dir",
                                                "tcp://127.0.0.1:7300",
                                                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                                                {"welding", "FRAME"},
                                                true}},
                                              300,
                                              ""},
                             12));

  wire::production_event delayed{"velo/order/1/c1",
                                 "velo/order/1",
                                 3,
                                 wire::production_event_kind::delayed,
                                 t0_us + day_us,
                                 wire::contract_progress::executing,
                                 t0_us + 4 * day_us,
                                 t0_us + day_us,
                                 0,
                                 0,
                                 "weld-robot1 broke down (servo fault)",
                                 {}};
  wire::component_status tubes;
  tubes.contract_id = "framecraft/order/1/c1";
  tubes.seller = "tubeco";
  tubes.item = "TUBE-SET";
  tubes.quantity = 5;
  tubes.state = wire::contract_progress::completed;
  tubes.promised_due_us = t0_us + day_us;
  tubes.started_us = t0_us;
  delayed.components.push_back(tubes);
  add("production_event-delayed", envelope(15, "framecraft", "velo", delayed));
  wire::production_event cancelled = delayed;
  cancelled.sequence = 4;
  cancelled.kind = wire::production_event_kind::cancelled;
  cancelled.state = wire::contract_progress::cancelled;
  cancelled.reason = "weld-robot1 broke down: the work would end 3892 min late";
  cancelled.components.clear();
  add("production_event-cancelled", envelope(16, "framecraft", "velo", cancelled));

  // At the limits: 32 attributes, 1024-byte strings.
  wire::cfp full = sample_cfp();
  full.attributes.clear();
  for (int i = 0; i < 32; ++i) {
    full.attributes.push_back({"k" + std::to_string(i), std::string(i == 0 ? 1024 : 8, 'v')});
  }
  add("cfp-32-attributes", envelope(2, "velo", "framecraft", full));
  add("refuse-1024-byte-reason",
      envelope(3, "tubeco", "velo", wire::refuse{"velo/order/1", std::string(1024, 'r')}));

  // Legal FlatBuffers the codec never writes: every string field is one
  // shared string, so re-encoding makes the frame larger.
  fb::FlatBufferBuilder b;
  auto shared = b.CreateString(std::string(200, 's'));  // identifiers are <= 255 bytes
  std::vector<fb::Offset<wire::Attribute>> attrs;
  for (int i = 0; i < 32; ++i) attrs.push_back(wire::CreateAttribute(b, shared, shared));
  auto cfp = wire::CreateCfp(b, shared, shared, 5, t0_us, t0_us + day_us, 0, t0_us, shared,
                             b.CreateVector(attrs));
  b.Finish(wire::CreateEnvelope(b, wire::protocol_version, 11, shared, shared, shared, 0, t0_us,
                                wire::Payload::Cfp, cfp.Union()),
           wire::EnvelopeIdentifier());
  s.emplace_back("cfp-shared-strings",
                 wire::bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()));
  return s;
}

/// Frames that the decoder must refuse, each for one reason.
std::vector<std::pair<std::string, wire::bytes>> invalid_seeds(
    const std::vector<std::pair<std::string, wire::bytes>>& valid) {
  const wire::bytes& cfp = valid.at(0).second;
  const wire::bytes& confirm = valid.at(5).second;
  std::vector<std::pair<std::string, wire::bytes>> s;

  s.emplace_back("bad-truncated-cfp-half",
                 wire::bytes(cfp.begin(), cfp.begin() + static_cast<long>(cfp.size() / 2)));
  // The last bytes of a frame may be padding; cut into the data.
  s.emplace_back("bad-truncated-confirm", wire::bytes(confirm.begin(), confirm.end() - 16));
  s.emplace_back("bad-header-only", wire::bytes(cfp.begin(), cfp.begin() + 8));

  wire::bytes wrong_id = cfp;
  wrong_id[7] = 'X';  // "GMSH" -> "GMSX"
  s.emplace_back("bad-wrong-identifier", wrong_id);

  wire::bytes root_out_of_range = cfp;
  root_out_of_range[0] = 0xff;
  root_out_of_range[1] = 0xff;
  s.emplace_back("bad-root-offset", root_out_of_range);

  wire::envelope v2 = envelope(1, "velo", "framecraft", sample_cfp());
  v2.header.protocol_version = 2;
  s.emplace_back("bad-version-2", wire::encode(v2));

  wire::cfp many = sample_cfp();
  many.attributes.assign(33, wire::attribute{"k", "v"});
  s.emplace_back("bad-cfp-33-attributes", wire::encode(envelope(1, "velo", "framecraft", many)));
  many.attributes.assign(300, wire::attribute{"k", "v"});
  s.emplace_back("bad-cfp-300-tables", wire::encode(envelope(1, "velo", "framecraft", many)));

  s.emplace_back("bad-reject-1025-byte-reason",
                 wire::encode(envelope(5, "velo", "alloyframe",
                                       wire::reject{"velo/order/1", "alloyframe/proposal/1",
                                                    std::string(1025, 'r')})));

  const auto raw = [](wire::Payload type, bool with_table) {
    fb::FlatBufferBuilder b;
    fb::Offset<void> body = 0;
    if (with_table) body = wire::CreateAck(b, 1).Union();
    auto sender = b.CreateString("velo");
    auto receiver = b.CreateString("framecraft");
    b.Finish(wire::CreateEnvelope(b, wire::protocol_version, 1, sender, receiver, 0, 0, t0_us, type,
                                  body),
             wire::EnvelopeIdentifier());
    return wire::bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  };
  s.emplace_back("bad-no-payload", raw(wire::Payload::NONE, false));
  s.emplace_back("bad-payload-type-missing-table", raw(wire::Payload::Cfp, false));
  s.emplace_back("bad-unknown-payload-type", raw(static_cast<wire::Payload>(10), true));
  return s;
}

/// Bundles of the frame seeds (several frames for one receiver in one
/// message), and bundles that fail one check each.
std::vector<std::pair<std::string, wire::bytes>> bundle_seeds(
    const std::vector<std::pair<std::string, wire::bytes>>& valid,
    const std::vector<std::pair<std::string, wire::bytes>>& invalid) {
  std::vector<std::pair<std::string, wire::bytes>> s;
  const auto bundle = [](const std::vector<const wire::bytes*>& frames) {
    std::vector<std::span<const std::uint8_t>> spans;
    for (const auto* f : frames) spans.emplace_back(*f);
    wire::bytes out;
    wire::encode_bundle(spans, out);
    return out;
  };
  std::vector<const wire::bytes*> conversation;
  for (std::size_t i = 0; i < 8 && i < valid.size(); ++i) conversation.push_back(&valid[i].second);
  s.emplace_back("bundle-conversation", bundle(conversation));
  s.emplace_back("bundle-valid-and-invalid-frames",
                 bundle({&valid.at(0).second, &invalid.at(0).second, &invalid.at(3).second}));
  const wire::bytes good = bundle({&valid.at(0).second, &valid.at(1).second});
  s.emplace_back("bad-bundle-truncated",
                 wire::bytes(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
  fb::FlatBufferBuilder b;
  b.Finish(wire::CreateBundle(b, b.CreateVector(std::vector<fb::Offset<wire::BundledFrame>>{})),
           wire::BundleIdentifier());
  s.emplace_back("bad-bundle-empty",
                 wire::bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()));
  return s;
}

/// Writes `seeds` to `out` (created), each checked to decode or not as expected.
bool write_seeds(const fs::path& out,
                 const std::vector<std::pair<std::string, wire::bytes>>& seeds) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", out.c_str(), ec.message().c_str());
    return false;
  }
  for (const auto& [name, data] : seeds) {
    std::ofstream f(out / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f) {
      std::fprintf(stderr, "%s: cannot write\n", (out / name).c_str());
      return false;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), out.c_str());
  return true;
}

/// Checks that `frame` decodes (or not) as the seed's name promises.
bool decodes_as_expected(const std::string& name, const wire::bytes& frame, bool should_decode) {
  auto env = wire::decode(frame);
  if (env.has_value() == should_decode) return true;
  std::fprintf(stderr, "seed %s: expected decode to %s: %s\n", name.c_str(),
               should_decode ? "succeed" : "fail",
               env ? "it succeeded" : env.error().to_string().c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FRAME_DIR DISPATCH_DIR\n", argv[0]);
    return 2;
  }
  // fuzz_frame: bare frames.
  const auto valid = valid_seeds();
  const auto invalid = invalid_seeds(valid);
  std::vector<std::pair<std::string, wire::bytes>> frames;
  for (const auto& seed : valid) {
    if (!decodes_as_expected(seed.first, seed.second, true)) return 1;
    frames.push_back(seed);
  }
  for (const auto& seed : invalid) {
    if (!decodes_as_expected(seed.first, seed.second, false)) return 1;
    frames.push_back(seed);
  }
  for (const auto& seed : bundle_seeds(valid, invalid)) {
    const bool should_read = seed.first.rfind("bad-", 0) != 0;
    const bool read = wire::for_each_bundled(seed.second, [](auto) {}).is_ok();
    if (read != should_read) {
      std::fprintf(stderr, "seed %s: expected the bundle to be %s\n", seed.first.c_str(),
                   should_read ? "read" : "refused");
      return 1;
    }
    frames.push_back(seed);
  }
  if (!write_seeds(argv[1], frames)) return 1;

  // fuzz_dispatch: identity byte + frame (dispatch_scenario.hpp). Only the
  // seed named "malformed" fails to decode; the target checks what the node
  // does with the rest (GEARMESH_FUZZ_VERBOSE=1 shows each verdict).
  std::vector<std::pair<std::string, wire::bytes>> inputs;
  for (const auto& seed : gearmesh::fuzz::seeds()) {
    if (!decodes_as_expected(seed.name, seed.frame, seed.name != "malformed")) return 1;
    inputs.emplace_back(seed.name, gearmesh::fuzz::input_of(seed));
  }
  if (!write_seeds(argv[2], inputs)) return 1;
  return 0;
}
