// Key performance indicators of one node, computed from its committed store
// (DESIGN.md, "digital management": on-time delivery, lead time, utilization,
// energy per unit). Served by every node at GET /v1/kpis and printed by
// `gearmesh kpis` (online, or offline with --data-dir).
//
// Definitions (docs/operations.md, "KPIs", says the same for operators):
//
//   as buyer      orders of the "orders" table created in the window, customer
//                 orders (order_record::parent_order_id empty) and component
//                 orders of nested negotiation apart:
//                 on-time delivery  contracted orders whose delivery is <= the
//                                   order's due_us, in % of the contracted ones;
//                                   delivery = the contract's promised_due_us
//                                   until execution tracking records actual
//                                   deliveries (kpi_options::delivered_us)
//                 lead time         created_us -> delivery of contracted orders
//                 quote time        created_us -> received_us of the proposal
//                                   that won (how long sourcing took)
//                 spend             sum of the active buyer contracts' prices
//   as seller     offers ("offers") and seller contracts whose promised_due_us
//                 is in the window (the work delivered in it):
//                 win rate          contracted offers in % of the decided ones
//                                   (all but those still held and not expired)
//                 on-time promises  contracted offers promising delivery by the
//                                   buyer's due date, in %
//                 revenue           sum of the active seller contracts' prices
//   utilization   per resource of the "resources" table: units booked
//                 ("bookings") and held ("holds", including capacity offers'
//                 unbooked "#open" units) in the buckets overlapping the
//                 utilization window, in % of capacity x those buckets
//   energy        a machine's booked minutes x its energy_wh_per_hour / 60
//                 (resource_record; 0 when unknown). Energy per unit = the
//                 energy of the bookings of the active seller contracts in the
//                 window (through their offers' reservations) / their units,
//                 in total and per item.
//
// A window bound of 0 means unbounded. Utilization needs a finite window: a
// missing bound defaults to now - 7 days / now + 7 days, or to 14 days from
// the given bound when that would leave the window empty.
//
// Pure reading: no CAF, no clock (the caller passes `now`), nothing is
// written; one pass per table. Memory grows with the number of orders and
// contracts in the window (one 8-byte sample per lead time and per quote
// time, one map entry per contract) and with the number of resources.
// Threading: reentrant; `env` must stay open while it runs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/store/store.hpp"

namespace gearmesh::actors {

/// Latest time a window bound or `now` may name (about the year 148,000):
/// keeps the window arithmetic far from overflowing.
inline constexpr timestamp_us kpi_time_max_us = std::int64_t{1} << 62;

/// Half of the default utilization window (either side of now).
inline constexpr timestamp_us kpi_utilization_half_window_us = 7 * us_per_day;

struct kpi_options {
  timestamp_us now_us = 0;
  timestamp_us from_us = 0;  // window [from_us, to_us); 0 = unbounded
  timestamp_us to_us = 0;
  /// Hook for execution tracking: the actual delivery time of a contract
  /// (by contract id), or nullopt while it is not delivered. Unset, or
  /// nullopt for a contract, and its promised_due_us stands in for it.
  std::function<std::optional<timestamp_us>(const std::string& contract_id)> delivered_us;
};

/// Distribution of a duration; all 0 when count is 0. Percentiles are
/// nearest-rank.
struct duration_stats {
  std::uint64_t count = 0;
  timestamp_us mean_us = 0;
  timestamp_us p50_us = 0;
  timestamp_us p95_us = 0;
  timestamp_us max_us = 0;
  bool operator==(const duration_stats&) const = default;
};

/// Buyer KPIs of one kind of order (customer or component orders).
struct buyer_order_kpis {
  std::uint64_t orders = 0;  // created in the window
  std::uint64_t contracted = 0;
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t open = 0;  // negotiating, awarded or ready
  std::uint64_t on_time = 0;
  std::uint64_t late = 0;
  /// on_time / contracted in %, nullopt without contracted orders.
  std::optional<double> on_time_pct;
  /// Contracted orders whose delivery is actual (delivered_us), not promised.
  std::uint64_t delivered_actual = 0;
  duration_stats lead_time;
  duration_stats quote_time;
  std::map<std::string, std::int64_t> spend_cents;  // by currency
  bool operator==(const buyer_order_kpis&) const = default;
};

struct seller_kpis {
  std::uint64_t offers = 0;  // proposals made (due in the window)
  std::uint64_t offers_contracted = 0;
  std::uint64_t offers_lost = 0;     // rejected, failed, cancelled or expired
  std::uint64_t offers_pending = 0;  // held and not expired
  std::optional<double> win_rate_pct;
  std::uint64_t promised_on_time = 0;  // contracted offers promising <= the buyer's due
  std::optional<double> promised_on_time_pct;
  std::uint64_t contracts = 0;                        // active seller contracts
  std::uint64_t units = 0;                            // their quantities
  std::map<std::string, std::int64_t> revenue_cents;  // by currency
  bool operator==(const seller_kpis&) const = default;
};

struct resource_kpis {
  std::string id;
  std::int64_t capacity_units = 0;  // capacity x buckets in service in the window
  std::int64_t booked_units = 0;
  std::int64_t held_units = 0;
  std::optional<double> utilization_pct;  // booked / capacity
  std::optional<double> held_pct;         // held / capacity
  std::int64_t energy_wh_per_hour = 0;
  double energy_wh = 0;  // of the booked units in the window
  /// capacity x buckets out of service (outages), not in capacity_units
  std::int64_t down_units = 0;
  bool operator==(const resource_kpis&) const = default;
};

/// Energy of the active seller contracts of one item (or all of them).
struct energy_kpis {
  std::uint64_t contracts = 0;
  std::uint64_t units = 0;
  double energy_wh = 0;
  std::optional<double> wh_per_unit;  // nullopt without units
  bool operator==(const energy_kpis&) const = default;
};

struct kpi_report {
  std::string node_id;  // "meta"/"node_id", empty if not recorded
  timestamp_us now_us = 0;
  timestamp_us from_us = 0;
  timestamp_us to_us = 0;
  timestamp_us utilization_from_us = 0;
  timestamp_us utilization_to_us = 0;
  /// "promised" or "actual" (some delivery came from kpi_options::delivered_us).
  std::string delivery_basis = "promised";
  buyer_order_kpis customer_orders;
  buyer_order_kpis component_orders;
  seller_kpis seller;
  std::vector<resource_kpis> resources;  // by id
  energy_kpis energy;
  std::map<std::string, energy_kpis> energy_by_item;
  /// Records that failed to decode (skipped; `gearmesh verify` names them).
  std::uint64_t corrupt_records = 0;
};

/// Computes the KPIs of the store `env` at `opts.now_us`. Errors:
/// errc::invalid_argument if a window bound or now_us is outside
/// 0..kpi_time_max_us, or from_us >= to_us with both set; errc::storage if LMDB fails to read a
/// table. Values that fail to decode are counted in corrupt_records, not errors.
result<kpi_report> compute_kpis(const store::environment& env, const kpi_options& opts);

/// One outage of a machine in its calendar's buckets: [first, end), where
/// `end` is one past the last blocked bucket, or the bucket after the one the
/// machine came back up in if that was earlier.
struct down_span {
  std::int64_t first = 0;
  std::int64_t end = 0;
};
/// The span of outage [first_bucket, last_bucket] (inclusive) that ended at
/// `ended_us` (0: not early) on a calendar of `bucket_us`.
down_span down_span_of(std::int64_t first_bucket, std::int64_t last_bucket, timestamp_us ended_us,
                       timestamp_us bucket_us);
/// Buckets in [first, end) inside at least one of `spans` (overlaps count once).
std::int64_t down_buckets(std::vector<down_span> spans, std::int64_t first, std::int64_t end);

/// The report as the JSON object of GET /v1/kpis (docs/operations.md).
std::string kpis_to_json(const kpi_report& r);

}  // namespace gearmesh::actors
