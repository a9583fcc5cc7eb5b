// The Gearmesh protocol messages as plain C++ values.
//
// Actors build and read these; only the codec (wire/codec.hpp) knows the
// FlatBuffers encoding in schemas/gearmesh.fbs. Field meanings and units are
// those of the schema: times in microseconds since the epoch, prices in cents.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "gearmesh/clock.hpp"

namespace gearmesh::wire {

/// Protocol version this build speaks (Envelope.protocol_version).
constexpr std::uint16_t protocol_version = 1;

struct attribute {
  std::string key;
  std::string value;
  bool operator==(const attribute&) const = default;
};

struct cfp {
  std::string order_id;
  std::string item;
  std::uint32_t quantity = 0;
  timestamp_us earliest_start_us = 0;
  timestamp_us due_us = 0;
  std::int64_t max_price_cents = 0;
  timestamp_us reply_by_us = 0;
  std::string currency;
  std::vector<attribute> attributes;
  bool operator==(const cfp&) const = default;
};

struct propose {
  std::string order_id;
  std::string proposal_id;
  std::int64_t price_cents = 0;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  timestamp_us valid_until_us = 0;
  bool operator==(const propose&) const = default;
};

struct refuse {
  std::string order_id;
  std::string reason;
  bool operator==(const refuse&) const = default;
};

struct accept {
  std::string order_id;
  std::string proposal_id;
  std::string contract_id;
  bool operator==(const accept&) const = default;
};

struct reject {
  std::string order_id;
  std::string proposal_id;
  std::string reason;
  bool operator==(const reject&) const = default;
};

struct confirm {
  std::string order_id;
  std::string proposal_id;
  std::string contract_id;
  std::int64_t price_cents = 0;
  timestamp_us promised_start_us = 0;
  timestamp_us promised_due_us = 0;
  std::uint32_t quantity = 0;
  std::string item;
  bool operator==(const confirm&) const = default;
};

struct failure {
  std::string order_id;
  std::string proposal_id;
  std::string contract_id;
  std::string reason;
  bool operator==(const failure&) const = default;
};

struct cancel {
  std::string order_id;
  std::string contract_id;
  std::string reason;
  bool operator==(const cancel&) const = default;
};

struct ack {
  std::uint64_t acked_message_id = 0;
  bool operator==(const ack&) const = default;
};

/// Capacity sharing (docs/protocol.md section 6.5): publisher -> partner.
struct capacity_offer {
  std::string offer_id;
  std::string capability;
  timestamp_us window_start_us = 0;
  timestamp_us window_end_us = 0;
  std::uint32_t units = 0;      // offered in total
  std::uint32_t remaining = 0;  // still bookable at this revision
  std::int64_t unit_price_cents = 0;
  std::string currency;
  timestamp_us valid_until_us = 0;
  std::uint32_t revision = 0;
  bool withdrawn = false;
  bool operator==(const capacity_offer&) const = default;
};

/// Partner -> publisher: book `units` of an offer.
struct book_capacity {
  std::string offer_id;
  std::string booking_id;  // booker-chosen
  std::uint32_t units = 0;
  bool operator==(const book_capacity&) const = default;
};

/// Publisher -> booker: the booking is durable.
struct capacity_booked {
  std::string offer_id;
  std::string booking_id;
  std::uint32_t units = 0;
  std::int64_t price_cents = 0;  // for all units
  std::string currency;
  std::string capability;
  timestamp_us window_start_us = 0;
  timestamp_us window_end_us = 0;
  std::uint32_t remaining = 0;
  bool operator==(const capacity_booked&) const = default;
};

/// Publisher -> booker: nothing was booked.
struct capacity_refused {
  std::string offer_id;
  std::string booking_id;
  std::string reason;
  std::uint32_t remaining = 0;
  bool operator==(const capacity_refused&) const = default;
};

/// Publisher -> booker: a granted booking is cancelled (its machine went out
/// of service over the booked window).
struct capacity_cancelled {
  std::string offer_id;
  std::string booking_id;
  std::string reason;
  bool operator==(const capacity_cancelled&) const = default;
};

/// Directory query (docs/protocol.md section 7): exactly one of `identifier`
/// and `capability` is set.
struct resolve {
  std::uint64_t query_id = 0;  // asker-chosen, non-zero; echoed by the answer
  std::string identifier;      // e.g. "acme.plant1/machine/m7"
  std::string capability;      // e.g. "welding": which nodes offer it
  std::uint8_t hops = 0;       // forwards the receiver may still make; 0 = answer itself
  bool operator==(const resolve&) const = default;
};

/// Outcome of a resolve; the values are those of the schema's enum.
enum class resolution_status : std::uint8_t { not_found = 0, found = 1, referral = 2 };

/// "found", "not_found" or "referral".
const char* to_string(resolution_status s) noexcept;

/// A node and how to reach it, as a directory knows it.
struct directory_entry {
  std::string node_id;
  std::string endpoint;                   // ZeroMQ endpoint
  std::string public_key;                 // CURVE public key, Z85; empty on plain links
  std::vector<std::string> capabilities;  // process kinds and item ids it offers
  bool referral = false;                  // a directory to ask next, not an answer
  bool operator==(const directory_entry&) const = default;
};

/// Directory answer to a resolve.
struct resolution {
  std::uint64_t query_id = 0;
  resolution_status status = resolution_status::not_found;
  std::string identifier;  // echoes the resolve
  std::string capability;  // echoes the resolve
  std::vector<directory_entry> entries;
  std::uint32_t ttl_s = 0;  // the asker may reuse the answer this long
  std::string reason;       // why not found
  bool operator==(const resolution&) const = default;
};

/// What a production event reports; values are those of the schema's enum.
enum class production_event_kind : std::uint8_t {
  progress = 0,  // only the component summary changed
  started = 1,
  completed = 2,
  delayed = 3,
  delivered = 4,
  cancelled = 5  // the seller ended the contract (a breakdown it cannot recover from)
};
/// Where a contract stands in execution; values are those of the schema's enum.
enum class contract_progress : std::uint8_t {
  contracted = 0,
  executing = 1,
  completed = 2,
  delivered = 3,
  cancelled = 4
};

/// "progress", "started", ... / "contracted", "executing", ...
const char* to_string(production_event_kind k) noexcept;
const char* to_string(contract_progress p) noexcept;

/// One component contract of the seller, with its own components below it.
struct component_status {
  std::string contract_id;
  std::string seller;
  std::string item;
  std::uint32_t quantity = 0;
  contract_progress state = contract_progress::contracted;
  timestamp_us promised_due_us = 0;
  timestamp_us expected_due_us = 0;  // 0 = as promised
  timestamp_us started_us = 0;       // 0 = not yet
  timestamp_us delivered_us = 0;     // 0 = not yet
  std::vector<component_status> components;
  bool operator==(const component_status&) const = default;
};

/// Seller -> buyer of a contract (docs/protocol.md section 6.7): the whole
/// current execution status; the receiver keeps the highest `sequence`.
struct production_event {
  std::string contract_id;
  std::string order_id;
  std::uint32_t sequence = 0;  // 1, 2, ... per contract
  production_event_kind kind = production_event_kind::progress;
  timestamp_us at_us = 0;
  contract_progress state = contract_progress::contracted;
  timestamp_us expected_due_us = 0;
  timestamp_us started_us = 0;
  timestamp_us completed_us = 0;
  timestamp_us delivered_us = 0;
  std::string reason;
  std::vector<component_status> components;
  bool operator==(const production_event&) const = default;
};

/// One protocol message. The alternative order matches the schema's union.
using payload = std::variant<cfp, propose, refuse, accept, reject, confirm, failure, cancel, ack,
                             capacity_offer, book_capacity, capacity_booked, capacity_refused,
                             resolve, resolution, production_event, capacity_cancelled>;

/// Message types, numbered as the alternatives of `payload` (variant index).
enum class message_type : std::uint8_t {
  cfp = 0,
  propose,
  refuse,
  accept,
  reject,
  confirm,
  failure,
  cancel,
  ack,
  capacity_offer,
  book_capacity,
  capacity_booked,
  capacity_refused,
  resolve,
  resolution,
  production_event,
  capacity_cancelled
};
constexpr std::size_t message_type_count = 17;

inline message_type type_of(const payload& p) noexcept {
  return static_cast<message_type>(p.index());
}

/// Name of a message type, e.g. "cfp".
const char* to_string(message_type t) noexcept;

/// Envelope fields other than the payload.
struct header {
  std::uint16_t protocol_version = wire::protocol_version;
  std::uint64_t message_id = 0;
  std::string sender;
  std::string receiver;
  std::string conversation_id;
  std::uint64_t causation_id = 0;
  std::int64_t timestamp_us = 0;  // microseconds since the epoch
  /// Piggybacked acknowledgements: ids of messages the receiver of this frame
  /// sent to its sender, durably processed by the sender (protocol.md section 4).
  std::vector<std::uint64_t> acks;
  bool operator==(const header&) const = default;
};

/// A decoded frame.
struct envelope {
  wire::header header;
  wire::payload payload;
  bool operator==(const envelope&) const = default;
};

/// Every message id `env` acknowledges (protocol.md section 4): an Ack
/// payload's acked_message_id, then the ids in header.acks.
inline std::vector<std::uint64_t> acknowledged_ids(const envelope& env) {
  std::vector<std::uint64_t> ids;
  if (const auto* a = std::get_if<ack>(&env.payload)) ids.push_back(a->acked_message_id);
  ids.insert(ids.end(), env.header.acks.begin(), env.header.acks.end());
  return ids;
}

}  // namespace gearmesh::wire
