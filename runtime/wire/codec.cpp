// Envelope <-> FlatBuffers. Every inbound byte is untrusted: decode() checks
// size, identifier and structure (flatbuffers::Verifier with explicit limits)
// before it reads a field, then checks the version, the payload type and the
// length of every string against `limits`.
#include "gearmesh/wire/codec.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "aligned.hpp"
#include "gearmesh/wire/gearmesh_generated.h"

namespace gearmesh::wire {
namespace {

namespace fb = ::flatbuffers;

// ---------------------------------------------------------------- encoding

/// Empty strings are omitted from the frame; decode maps absent to empty.
fb::Offset<fb::String> put(fb::FlatBufferBuilder& b, const std::string& s) {
  if (s.empty()) return 0;
  return b.CreateString(s.data(), s.size());
}

struct payload_encoder {
  fb::FlatBufferBuilder& b;

  fb::Offset<void> operator()(const cfp& m) const {
    fb::Offset<fb::Vector<fb::Offset<Attribute>>> attrs = 0;
    if (!m.attributes.empty()) {
      // Attribute offsets are collected first: tables cannot nest while a
      // vector is being built. Order is preserved (no key sort) so that
      // decode(encode(x)) == x.
      std::vector<fb::Offset<Attribute>> offsets;
      offsets.reserve(m.attributes.size());
      for (const auto& a : m.attributes) {
        // Attribute.key is a `(key)` field, which FlatBuffers makes required:
        // the verifier rejects an attribute without one, so an empty key is
        // written as an empty string, never omitted (found by fuzz_frame).
        auto k = b.CreateString(a.key.data(), a.key.size());
        auto v = put(b, a.value);
        offsets.push_back(CreateAttribute(b, k, v));
      }
      attrs = b.CreateVector(offsets);
    }
    auto order_id = put(b, m.order_id);
    auto item = put(b, m.item);
    auto currency = put(b, m.currency);
    return CreateCfp(b, order_id, item, m.quantity, m.earliest_start_us, m.due_us,
                     m.max_price_cents, m.reply_by_us, currency, attrs)
        .Union();
  }
  fb::Offset<void> operator()(const propose& m) const {
    auto order_id = put(b, m.order_id);
    auto proposal_id = put(b, m.proposal_id);
    return CreatePropose(b, order_id, proposal_id, m.price_cents, m.promised_start_us,
                         m.promised_due_us, m.valid_until_us)
        .Union();
  }
  fb::Offset<void> operator()(const refuse& m) const {
    auto order_id = put(b, m.order_id);
    auto reason = put(b, m.reason);
    return CreateRefuse(b, order_id, reason).Union();
  }
  fb::Offset<void> operator()(const accept& m) const {
    auto order_id = put(b, m.order_id);
    auto proposal_id = put(b, m.proposal_id);
    auto contract_id = put(b, m.contract_id);
    return CreateAccept(b, order_id, proposal_id, contract_id).Union();
  }
  fb::Offset<void> operator()(const reject& m) const {
    auto order_id = put(b, m.order_id);
    auto proposal_id = put(b, m.proposal_id);
    auto reason = put(b, m.reason);
    return CreateReject(b, order_id, proposal_id, reason).Union();
  }
  fb::Offset<void> operator()(const confirm& m) const {
    auto order_id = put(b, m.order_id);
    auto proposal_id = put(b, m.proposal_id);
    auto contract_id = put(b, m.contract_id);
    auto item = put(b, m.item);
    return CreateConfirm(b, order_id, proposal_id, contract_id, m.price_cents, m.promised_start_us,
                         m.promised_due_us, m.quantity, item)
        .Union();
  }
  fb::Offset<void> operator()(const failure& m) const {
    auto order_id = put(b, m.order_id);
    auto proposal_id = put(b, m.proposal_id);
    auto contract_id = put(b, m.contract_id);
    auto reason = put(b, m.reason);
    return CreateFailure(b, order_id, proposal_id, contract_id, reason).Union();
  }
  fb::Offset<void> operator()(const cancel& m) const {
    auto order_id = put(b, m.order_id);
    auto contract_id = put(b, m.contract_id);
    auto reason = put(b, m.reason);
    return CreateCancel(b, order_id, contract_id, reason).Union();
  }
  fb::Offset<void> operator()(const ack& m) const {
    return CreateAck(b, m.acked_message_id).Union();
  }
  fb::Offset<void> operator()(const capacity_offer& m) const {
    auto offer_id = put(b, m.offer_id);
    auto capability = put(b, m.capability);
    auto currency = put(b, m.currency);
    return CreateCapacityOffer(b, offer_id, capability, m.window_start_us, m.window_end_us, m.units,
                               m.remaining, m.unit_price_cents, currency, m.valid_until_us,
                               m.revision, m.withdrawn)
        .Union();
  }
  fb::Offset<void> operator()(const book_capacity& m) const {
    auto offer_id = put(b, m.offer_id);
    auto booking_id = put(b, m.booking_id);
    return CreateBookCapacity(b, offer_id, booking_id, m.units).Union();
  }
  fb::Offset<void> operator()(const capacity_booked& m) const {
    auto offer_id = put(b, m.offer_id);
    auto booking_id = put(b, m.booking_id);
    auto currency = put(b, m.currency);
    auto capability = put(b, m.capability);
    return CreateCapacityBooked(b, offer_id, booking_id, m.units, m.price_cents, currency,
                                capability, m.window_start_us, m.window_end_us, m.remaining)
        .Union();
  }
  fb::Offset<void> operator()(const capacity_refused& m) const {
    auto offer_id = put(b, m.offer_id);
    auto booking_id = put(b, m.booking_id);
    auto reason = put(b, m.reason);
    return CreateCapacityRefused(b, offer_id, booking_id, reason, m.remaining).Union();
  }
  fb::Offset<void> operator()(const capacity_cancelled& m) const {
    auto offer_id = put(b, m.offer_id);
    auto booking_id = put(b, m.booking_id);
    auto reason = put(b, m.reason);
    return CreateCapacityCancelled(b, offer_id, booking_id, reason).Union();
  }
  fb::Offset<void> operator()(const resolve& m) const {
    auto identifier = put(b, m.identifier);
    auto capability = put(b, m.capability);
    return CreateResolve(b, m.query_id, identifier, capability, m.hops).Union();
  }
  fb::Offset<void> operator()(const resolution& m) const {
    fb::Offset<fb::Vector<fb::Offset<DirectoryEntry>>> entries = 0;
    if (!m.entries.empty()) {
      std::vector<fb::Offset<DirectoryEntry>> offsets;
      offsets.reserve(m.entries.size());
      for (const auto& e : m.entries) {
        fb::Offset<fb::Vector<fb::Offset<fb::String>>> caps = 0;
        if (!e.capabilities.empty()) {
          std::vector<fb::Offset<fb::String>> c;
          c.reserve(e.capabilities.size());
          // Elements of a string vector must be present: empty ones are written.
          for (const auto& x : e.capabilities) c.push_back(b.CreateString(x.data(), x.size()));
          caps = b.CreateVector(c);
        }
        auto node_id = put(b, e.node_id);
        auto endpoint = put(b, e.endpoint);
        auto public_key = put(b, e.public_key);
        offsets.push_back(CreateDirectoryEntry(b, node_id, endpoint, public_key, caps, e.referral));
      }
      entries = b.CreateVector(offsets);
    }
    auto identifier = put(b, m.identifier);
    auto capability = put(b, m.capability);
    auto reason = put(b, m.reason);
    return CreateResolution(b, m.query_id, static_cast<ResolutionStatus>(m.status), identifier,
                            capability, entries, m.ttl_s, reason)
        .Union();
  }
  fb::Offset<fb::Vector<fb::Offset<ComponentStatus>>> components(
      const std::vector<component_status>& v) const {
    if (v.empty()) return 0;
    std::vector<fb::Offset<ComponentStatus>> offsets;
    offsets.reserve(v.size());
    for (const auto& c : v) {
      auto below = components(c.components);
      auto contract_id = put(b, c.contract_id);
      auto seller = put(b, c.seller);
      auto item = put(b, c.item);
      offsets.push_back(CreateComponentStatus(
          b, contract_id, seller, item, c.quantity, static_cast<ContractProgress>(c.state),
          c.promised_due_us, c.expected_due_us, c.started_us, c.delivered_us, below));
    }
    return b.CreateVector(offsets);
  }
  fb::Offset<void> operator()(const production_event& m) const {
    auto comps = components(m.components);
    auto contract_id = put(b, m.contract_id);
    auto order_id = put(b, m.order_id);
    auto reason = put(b, m.reason);
    return CreateProductionEvent(b, contract_id, order_id, m.sequence,
                                 static_cast<ProductionEventKind>(m.kind), m.at_us,
                                 static_cast<ContractProgress>(m.state), m.expected_due_us,
                                 m.started_us, m.completed_us, m.delivered_us, reason, comps)
        .Union();
  }
};

/// Schema union tag of a payload: variant index + 1 (0 is NONE).
Payload union_type(const payload& p) {
  return static_cast<Payload>(p.index() + 1);
}
static_assert(static_cast<std::size_t>(Payload::MAX) == message_type_count,
              "messages.hpp payload and the schema's Payload union disagree");

// ---------------------------------------------------------------- decoding

status malformed(std::string message) {
  return {errc::malformed_frame, std::move(message)};
}

/// Reads fields of a verified buffer, enforcing the per-field limits. Keeps
/// the first violation; reads after a violation return empty values.
class field_reader {
 public:
  explicit field_reader(const limits& lim) : lim_(lim) {}

  std::string str(const fb::String* s, const char* field) {
    if (s == nullptr || !ok_) return {};
    if (s->size() > lim_.string_bytes_max) {
      fail("string field " + std::string(field) + " of " + std::to_string(s->size()) +
           " bytes exceeds " + std::to_string(lim_.string_bytes_max));
      return {};
    }
    return std::string(s->c_str(), s->size());
  }

  /// An identifier field (ids, item, currency): at most id_bytes_max bytes,
  /// so that every id fits in a store key with room to spare.
  std::string id(const fb::String* s, const char* field) {
    if (s != nullptr && ok_ && s->size() > lim_.id_bytes_max) {
      fail("identifier field " + std::string(field) + " of " + std::to_string(s->size()) +
           " bytes exceeds " + std::to_string(lim_.id_bytes_max));
      return {};
    }
    return str(s, field);
  }

  std::vector<attribute> attributes(const fb::Vector<fb::Offset<Attribute>>* v) {
    std::vector<attribute> out;
    if (v == nullptr || !ok_) return out;
    if (v->size() > lim_.attributes_max) {
      fail("cfp has " + std::to_string(v->size()) + " attributes, more than " +
           std::to_string(lim_.attributes_max));
      return out;
    }
    out.reserve(v->size());
    for (const Attribute* a : *v) {
      // Vector elements are offsets, which the verifier checked; never null.
      out.push_back(attribute{str(a->key(), "attribute.key"), str(a->value(), "attribute.value")});
    }
    return out;
  }

  /// A directory answer's entries: at most entries_max, each with at most
  /// capabilities_max capability names (identifiers).
  std::vector<directory_entry> entries(const fb::Vector<fb::Offset<DirectoryEntry>>* v) {
    std::vector<directory_entry> out;
    if (v == nullptr || !ok_) return out;
    if (v->size() > lim_.entries_max) {
      fail("resolution has " + std::to_string(v->size()) + " entries, more than " +
           std::to_string(lim_.entries_max));
      return out;
    }
    out.reserve(v->size());
    for (const DirectoryEntry* e : *v) {
      directory_entry d;
      d.node_id = id(e->node_id(), "entries.node_id");
      d.endpoint = id(e->endpoint(), "entries.endpoint");
      d.public_key = id(e->public_key(), "entries.public_key");
      d.referral = e->referral();
      if (const auto* caps = e->capabilities(); caps != nullptr && ok_) {
        if (caps->size() > lim_.capabilities_max) {
          fail("directory entry has " + std::to_string(caps->size()) + " capabilities, more than " +
               std::to_string(lim_.capabilities_max));
          return {};
        }
        d.capabilities.reserve(caps->size());
        for (const fb::String* c : *caps) d.capabilities.push_back(id(c, "entries.capabilities"));
      }
      out.push_back(std::move(d));
    }
    return out;
  }

  /// A production event's component tree: at most components_max statuses
  /// in all, at most component_depth_max levels.
  std::vector<component_status> components(const fb::Vector<fb::Offset<ComponentStatus>>* v,
                                           std::size_t depth) {
    std::vector<component_status> out;
    if (v == nullptr || !ok_) return out;
    if (depth > lim_.component_depth_max) {
      fail("production event component tree deeper than " +
           std::to_string(lim_.component_depth_max));
      return out;
    }
    components_seen_ += v->size();
    if (components_seen_ > lim_.components_max) {
      fail("production event has more than " + std::to_string(lim_.components_max) + " components");
      return out;
    }
    out.reserve(v->size());
    for (const ComponentStatus* c : *v) {
      component_status s;
      s.contract_id = id(c->contract_id(), "components.contract_id");
      s.seller = id(c->seller(), "components.seller");
      s.item = id(c->item(), "components.item");
      s.quantity = c->quantity();
      s.state = progress(static_cast<std::uint8_t>(c->state()));
      s.promised_due_us = c->promised_due_us();
      s.expected_due_us = c->expected_due_us();
      s.started_us = c->started_us();
      s.delivered_us = c->delivered_us();
      s.components = components(c->components(), depth + 1);
      if (!ok_) return {};
      out.push_back(std::move(s));
    }
    return out;
  }

  /// An enum value this build does not know (a newer peer) is a malformed
  /// frame, never silently read as one of ours.
  contract_progress progress(std::uint8_t v) {
    if (v > static_cast<std::uint8_t>(contract_progress::cancelled))
      fail("contract progress " + std::to_string(v) + " is unknown");
    return static_cast<contract_progress>(v);
  }

  void fail(std::string message) {
    if (!ok_) return;
    ok_ = false;
    error_ = malformed(std::move(message));
  }

  bool ok() const noexcept { return ok_; }
  status take_error() { return std::move(error_); }

 private:
  const limits& lim_;
  bool ok_ = true;
  std::size_t components_seen_ = 0;
  status error_;
};

payload read(const Cfp& t, field_reader& r) {
  cfp m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.item = r.id(t.item(), "item");
  m.quantity = t.quantity();
  m.earliest_start_us = t.earliest_start_us();
  m.due_us = t.due_us();
  m.max_price_cents = t.max_price_cents();
  m.reply_by_us = t.reply_by_us();
  m.currency = r.id(t.currency(), "currency");
  m.attributes = r.attributes(t.attributes());
  return m;
}

payload read(const Propose& t, field_reader& r) {
  propose m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.proposal_id = r.id(t.proposal_id(), "proposal_id");
  m.price_cents = t.price_cents();
  m.promised_start_us = t.promised_start_us();
  m.promised_due_us = t.promised_due_us();
  m.valid_until_us = t.valid_until_us();
  return m;
}

payload read(const Refuse& t, field_reader& r) {
  refuse m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const Accept& t, field_reader& r) {
  accept m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.proposal_id = r.id(t.proposal_id(), "proposal_id");
  m.contract_id = r.id(t.contract_id(), "contract_id");
  return m;
}

payload read(const Reject& t, field_reader& r) {
  reject m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.proposal_id = r.id(t.proposal_id(), "proposal_id");
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const Confirm& t, field_reader& r) {
  confirm m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.proposal_id = r.id(t.proposal_id(), "proposal_id");
  m.contract_id = r.id(t.contract_id(), "contract_id");
  m.price_cents = t.price_cents();
  m.promised_start_us = t.promised_start_us();
  m.promised_due_us = t.promised_due_us();
  m.quantity = t.quantity();
  m.item = r.id(t.item(), "item");
  return m;
}

payload read(const Failure& t, field_reader& r) {
  failure m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.proposal_id = r.id(t.proposal_id(), "proposal_id");
  m.contract_id = r.id(t.contract_id(), "contract_id");
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const Cancel& t, field_reader& r) {
  cancel m;
  m.order_id = r.id(t.order_id(), "order_id");
  m.contract_id = r.id(t.contract_id(), "contract_id");
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const Ack& t, field_reader&) {
  return ack{t.acked_message_id()};
}

payload read(const CapacityOffer& t, field_reader& r) {
  capacity_offer m;
  m.offer_id = r.id(t.offer_id(), "offer_id");
  m.capability = r.id(t.capability(), "capability");
  m.window_start_us = t.window_start_us();
  m.window_end_us = t.window_end_us();
  m.units = t.units();
  m.remaining = t.remaining();
  m.unit_price_cents = t.unit_price_cents();
  m.currency = r.id(t.currency(), "currency");
  m.valid_until_us = t.valid_until_us();
  m.revision = t.revision();
  m.withdrawn = t.withdrawn();
  return m;
}

payload read(const BookCapacity& t, field_reader& r) {
  book_capacity m;
  m.offer_id = r.id(t.offer_id(), "offer_id");
  m.booking_id = r.id(t.booking_id(), "booking_id");
  m.units = t.units();
  return m;
}

payload read(const CapacityBooked& t, field_reader& r) {
  capacity_booked m;
  m.offer_id = r.id(t.offer_id(), "offer_id");
  m.booking_id = r.id(t.booking_id(), "booking_id");
  m.units = t.units();
  m.price_cents = t.price_cents();
  m.currency = r.id(t.currency(), "currency");
  m.capability = r.id(t.capability(), "capability");
  m.window_start_us = t.window_start_us();
  m.window_end_us = t.window_end_us();
  m.remaining = t.remaining();
  return m;
}

payload read(const CapacityRefused& t, field_reader& r) {
  capacity_refused m;
  m.offer_id = r.id(t.offer_id(), "offer_id");
  m.booking_id = r.id(t.booking_id(), "booking_id");
  m.reason = r.str(t.reason(), "reason");
  m.remaining = t.remaining();
  return m;
}

payload read(const CapacityCancelled& t, field_reader& r) {
  capacity_cancelled m;
  m.offer_id = r.id(t.offer_id(), "offer_id");
  m.booking_id = r.id(t.booking_id(), "booking_id");
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const Resolve& t, field_reader& r) {
  resolve m;
  m.query_id = t.query_id();
  m.identifier = r.id(t.identifier(), "identifier");
  m.capability = r.id(t.capability(), "capability");
  m.hops = t.hops();
  return m;
}

payload read(const Resolution& t, field_reader& r) {
  resolution m;
  m.query_id = t.query_id();
  const auto st = static_cast<std::uint8_t>(t.status());
  // An enum value this build does not know (a newer peer) is a malformed frame,
  // never silently read as one of ours.
  if (st > static_cast<std::uint8_t>(resolution_status::referral))
    r.fail("resolution status " + std::to_string(st) + " is unknown");
  m.status = static_cast<resolution_status>(st);
  m.identifier = r.id(t.identifier(), "identifier");
  m.capability = r.id(t.capability(), "capability");
  m.entries = r.entries(t.entries());
  m.ttl_s = t.ttl_s();
  m.reason = r.str(t.reason(), "reason");
  return m;
}

payload read(const ProductionEvent& t, field_reader& r) {
  production_event m;
  m.contract_id = r.id(t.contract_id(), "contract_id");
  m.order_id = r.id(t.order_id(), "order_id");
  m.sequence = t.sequence();
  const auto kind = static_cast<std::uint8_t>(t.kind());
  if (kind > static_cast<std::uint8_t>(production_event_kind::cancelled))
    r.fail("production event kind " + std::to_string(kind) + " is unknown");
  m.kind = static_cast<production_event_kind>(kind);
  m.at_us = t.at_us();
  m.state = r.progress(static_cast<std::uint8_t>(t.state()));
  m.expected_due_us = t.expected_due_us();
  m.started_us = t.started_us();
  m.completed_us = t.completed_us();
  m.delivered_us = t.delivered_us();
  m.reason = r.str(t.reason(), "reason");
  m.components = r.components(t.components(), 1);
  return m;
}

/// Smallest frame that can hold a root offset and the file identifier.
constexpr std::size_t frame_bytes_min = sizeof(fb::uoffset_t) + fb::kFileIdentifierLength;

/// Frames are read in place when suitably aligned, else from a copy
/// (aligned.hpp).
result<envelope> decode_aligned(const std::uint8_t* data, std::size_t size, const limits& lim) {
  fb::Verifier::Options opts;
  opts.max_depth = lim.depth_max;
  opts.max_tables = lim.tables_max;
  opts.check_alignment = true;
  opts.check_nested_flatbuffers = false;  // the schema has none
  fb::Verifier verifier(data, size, opts);
  if (!VerifyEnvelopeBuffer(verifier)) return malformed("verifier rejected frame");

  const Envelope* e = GetEnvelope(data);
  if (e->protocol_version() != protocol_version) {
    return status{errc::unsupported_version,
                  "frame has protocol version " + std::to_string(e->protocol_version()) +
                      ", this node speaks " + std::to_string(protocol_version)};
  }

  const Payload type = e->payload_type();
  if (type == Payload::NONE || e->payload() == nullptr) return malformed("frame has no payload");
  if (static_cast<std::uint8_t>(type) > static_cast<std::uint8_t>(Payload::MAX)) {
    return malformed("unknown payload type " + std::to_string(static_cast<unsigned>(type)));
  }

  field_reader r(lim);
  envelope env;
  env.header.protocol_version = e->protocol_version();
  env.header.message_id = e->message_id();
  env.header.sender = r.id(e->sender(), "sender");
  env.header.receiver = r.id(e->receiver(), "receiver");
  env.header.conversation_id = r.id(e->conversation_id(), "conversation_id");
  env.header.causation_id = e->causation_id();
  env.header.timestamp_us = e->timestamp_us();
  if (const auto* acks = e->acks()) {
    if (acks->size() > lim.acks_max) {
      return malformed("acks holds " + std::to_string(acks->size()) + " ids, more than " +
                       std::to_string(lim.acks_max));
    }
    // Element by element through memcpy: the Verifier checks the vector's
    // length field, not that a hostile frame keeps its 8-byte elements aligned.
    env.header.acks.resize(acks->size());
    const std::uint8_t* raw = acks->Data();
    for (std::size_t i = 0; i < acks->size(); ++i) {
      std::uint64_t v;
      std::memcpy(&v, raw + i * sizeof v, sizeof v);
      env.header.acks[i] = fb::EndianScalar(v);
    }
  }

  switch (type) {
    case Payload::Cfp:
      env.payload = read(*e->payload_as_Cfp(), r);
      break;
    case Payload::Propose:
      env.payload = read(*e->payload_as_Propose(), r);
      break;
    case Payload::Refuse:
      env.payload = read(*e->payload_as_Refuse(), r);
      break;
    case Payload::Accept:
      env.payload = read(*e->payload_as_Accept(), r);
      break;
    case Payload::Reject:
      env.payload = read(*e->payload_as_Reject(), r);
      break;
    case Payload::Confirm:
      env.payload = read(*e->payload_as_Confirm(), r);
      break;
    case Payload::Failure:
      env.payload = read(*e->payload_as_Failure(), r);
      break;
    case Payload::Cancel:
      env.payload = read(*e->payload_as_Cancel(), r);
      break;
    case Payload::Ack:
      env.payload = read(*e->payload_as_Ack(), r);
      break;
    case Payload::CapacityOffer:
      env.payload = read(*e->payload_as_CapacityOffer(), r);
      break;
    case Payload::BookCapacity:
      env.payload = read(*e->payload_as_BookCapacity(), r);
      break;
    case Payload::CapacityBooked:
      env.payload = read(*e->payload_as_CapacityBooked(), r);
      break;
    case Payload::CapacityRefused:
      env.payload = read(*e->payload_as_CapacityRefused(), r);
      break;
    case Payload::Resolve:
      env.payload = read(*e->payload_as_Resolve(), r);
      break;
    case Payload::Resolution:
      env.payload = read(*e->payload_as_Resolution(), r);
      break;
    case Payload::ProductionEvent:
      env.payload = read(*e->payload_as_ProductionEvent(), r);
      break;
    case Payload::CapacityCancelled:
      env.payload = read(*e->payload_as_CapacityCancelled(), r);
      break;
    case Payload::NONE:
      break;  // rejected above
  }
  if (!r.ok()) return r.take_error();
  return env;
}

}  // namespace

bytes encode(const envelope& env) {
  // The calling thread's builder, cleared: its buffer is kept from one
  // frame to the next, so encoding allocates only the frame it returns.
  // (Clear() leaves no state behind: the bytes are a fresh builder's.)
  thread_local fb::FlatBufferBuilder b(1024);
  b.Clear();
  const auto body = std::visit(payload_encoder{b}, env.payload);
  const auto sender = put(b, env.header.sender);
  const auto receiver = put(b, env.header.receiver);
  const auto conversation_id = put(b, env.header.conversation_id);
  const auto acks = env.header.acks.empty() ? fb::Offset<fb::Vector<std::uint64_t>>{}
                                            : b.CreateVector(env.header.acks);
  const auto root = CreateEnvelope(b, env.header.protocol_version, env.header.message_id, sender,
                                   receiver, conversation_id, env.header.causation_id,
                                   env.header.timestamp_us, union_type(env.payload), body, acks);
  FinishEnvelopeBuffer(b, root);
  const std::uint8_t* p = b.GetBufferPointer();
  return bytes(p, p + b.GetSize());
}

namespace {

/// The checks before any byte of `frame` is read as FlatBuffers: its size
/// and file identifier.
status check_frame_bounds(std::span<const std::uint8_t> frame, const limits& lim) {
  const std::size_t size_max =
      std::min<std::size_t>(lim.frame_bytes_max, FLATBUFFERS_MAX_BUFFER_SIZE - 1);
  if (frame.size() > size_max) {
    return malformed("frame of " + std::to_string(frame.size()) + " bytes exceeds " +
                     std::to_string(size_max));
  }
  if (frame.size() < frame_bytes_min) {
    return malformed("frame of " + std::to_string(frame.size()) + " bytes is shorter than " +
                     std::to_string(frame_bytes_min));
  }
  if (!EnvelopeBufferHasIdentifier(frame.data())) {
    return malformed("bad file identifier (want \"" + std::string(EnvelopeIdentifier()) + "\")");
  }
  return {};
}

}  // namespace

result<envelope> decode(std::span<const std::uint8_t> frame, const limits& lim) {
  if (auto st = check_frame_bounds(frame, lim); !st) return st;
  return detail::with_aligned(frame, [&](std::span<const std::uint8_t> aligned) {
    return decode_aligned(aligned.data(), aligned.size(), lim);
  });
}

result<message_type> peek_type(std::span<const std::uint8_t> frame, const limits& lim) {
  if (auto st = check_frame_bounds(frame, lim); !st) return st;
  return detail::with_aligned(
      frame, [&](std::span<const std::uint8_t> aligned) -> result<message_type> {
        // The root offset and the envelope's vtable and payload_type field
        // only: nothing the payload holds is read.
        fb::Verifier verifier(aligned.data(), aligned.size());
        const auto root = verifier.VerifyOffset(0);
        if (root == 0) return malformed("verifier rejected frame");
        const auto* t = fb::GetRoot<fb::Table>(aligned.data());
        if (!t->VerifyTableStart(verifier) ||
            !t->VerifyField<std::uint8_t>(verifier, Envelope::VT_PAYLOAD_TYPE, 1))
          return malformed("verifier rejected frame");
        const auto type =
            static_cast<Payload>(t->GetField<std::uint8_t>(Envelope::VT_PAYLOAD_TYPE, 0));
        if (type == Payload::NONE) return malformed("frame has no payload");
        if (static_cast<std::uint8_t>(type) > static_cast<std::uint8_t>(Payload::MAX))
          return malformed("unknown payload type " + std::to_string(static_cast<unsigned>(type)));
        return static_cast<message_type>(static_cast<std::uint8_t>(type) - 1);
      });
}

}  // namespace gearmesh::wire
