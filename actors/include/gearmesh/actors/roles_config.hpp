// The role sections of a node's TOML file.
//
// A node hosts any of: a buyer (initiator), and at most one participant role
// (factory or supplier). Unknown keys are errors; every error names the file,
// the line and the field ("velo.toml:12: buyer.sources[1].sellers: expected a
// non-empty array of node ids").
//
//   [buyer]                        # this node places orders
//   currency = "EUR"               # ISO 4217 code of its CFPs           (default "EUR")
//   proposal_window_ms = 800       # reply_by = now + window              (default 800)
//   confirm_timeout_ms = 2000      # Accept -> Confirm deadline           (default 2000)
//   [[buyer.sources]]              # who is asked for an item; required, >= 1
//   item = "FRAME"
//   sellers = ["framecraft", "alloyframe"]
//
//   [factory]                      # this node makes items on machines
//   currency = "EUR"               # CFPs in another currency are refused (default "EUR")
//   hold_ttl_ms = 5000             # hold deadline = now + ttl            (default 5000)
//   bucket_minutes = 60            # calendar bucket length               (default 60)
//   margin_pct = 15                # price = cost * (1 + margin/100)      (default 15)
//   horizon_days = 60              # refuse what does not fit this soon   (default 60)
//   [[factory.machines]]           # required, >= 1
//   id = "saw1"                    # [a-z0-9_.-], unique
//   capabilities = ["sawing"]      # required, >= 1
//   rate_cents_per_hour = 4000     # cost of one machine hour
//   capacity_per_bucket = 60       # machine-minutes per bucket           (default =
//   bucket_minutes)
//   energy_wh_per_hour = 7500      # energy one machine hour takes, in Wh (default 0 =
//                                  # unknown); feeds the energy-per-unit KPI (kpis.hpp)
//   health_threshold = 40          # a health score posted below this opens a maintenance
//                                  # window (outage.hpp); 0..100     (default 0 = never)
//   maintenance_hours = 4          # how long that window lasts       (default 4)
//   [[factory.items]]              # required, >= 1
//   id = "FRAME"
//   [[factory.items.operations]]   # the routing, in order; required, >= 1
//   capability = "sawing"          # some machine must offer it
//   minutes_per_unit = 6
//   setup_minutes = 0              # once per order                       (default 0)
//   [[factory.items.components]]   # the bill of materials; optional
//   item = "TUBE-SET"              # made here if listed in [[factory.items]] (its
//                                  # operations run first), else bought: needs a
//                                  # [[buyer.sources]] entry for it
//   quantity = 1                   # per unit of the item                 (default 1)
//
//   [factory] component_window_ms = 300  # how long a CFP waits for component
//                                  # proposals (nested negotiation)       (default 300)
//   [factory] reschedule_delay_max_hours = 24  # a machine outage may make a contract
//                                  # this late at most; later, the contract is cancelled and
//                                  # the buyer sources it again (outage.hpp)  (default 24)
//   [factory] execution = "clock"  # who advances sold contracts: "clock" (the node
//                                  # clock, at the booked times) or "shop_floor"
//                                  # (only POST /v1/events)              (default "clock")
//
//   [supplier]                     # this node sells items from stock
//   currency = "EUR"               #                                      (default "EUR")
//   hold_ttl_ms = 5000             #                                      (default 5000)
//   horizon_days = 90              #                                      (default 90)
//   execution = "clock"            # as for [factory]                     (default "clock")
//   [[supplier.items]]             # required, >= 1
//   id = "BATTERY"
//   unit_price_cents = 18000
//   lead_time_days = 3             # earliest delivery = now + lead time
//   daily_capacity = 40            # units shipped per day
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/status.hpp"

namespace gearmesh::actors {

struct source_config {
  std::string item;
  std::vector<std::string> sellers;
};

struct buyer_config {
  std::string currency = "EUR";
  std::int64_t proposal_window_ms = 800;
  std::int64_t confirm_timeout_ms = 2000;
  std::vector<source_config> sources;
  /// The sellers asked for `item`, or nullptr.
  const source_config* source(std::string_view item) const;
};

struct machine_config {
  std::string id;
  std::vector<std::string> capabilities;
  std::int64_t rate_cents_per_hour = 0;
  std::int64_t capacity_per_bucket = 0;
  std::int64_t energy_wh_per_hour = 0;
  std::int64_t health_threshold = 0;  // 0 = health scores open no window
  std::int64_t maintenance_hours = 4;
};

struct operation_config {
  std::string capability;
  std::int64_t minutes_per_unit = 0;
  std::int64_t setup_minutes = 0;
};

/// One line of an item's bill of materials.
struct component_config {
  std::string item;
  std::int64_t quantity = 1;  // per unit of the parent item
};

struct factory_item_config {
  std::string id;
  std::vector<operation_config> operations;
  std::vector<component_config> components;
};

struct factory_config {
  std::string currency = "EUR";
  std::int64_t hold_ttl_ms = 5000;
  std::int64_t bucket_minutes = 60;
  std::int64_t margin_pct = 15;
  std::int64_t horizon_days = 60;
  std::int64_t component_window_ms = 300;
  std::int64_t reschedule_delay_max_hours = 24;
  bool shop_floor = false;  // execution = "shop_floor": only posted events advance contracts
  std::vector<machine_config> machines;
  std::vector<factory_item_config> items;
  const factory_item_config* item(std::string_view id) const;
};

struct supplier_item_config {
  std::string id;
  std::int64_t unit_price_cents = 0;
  std::int64_t lead_time_days = 0;
  std::int64_t daily_capacity = 0;
};

struct supplier_config {
  std::string currency = "EUR";
  std::int64_t hold_ttl_ms = 5000;
  std::int64_t horizon_days = 90;
  bool shop_floor = false;  // execution = "shop_floor"
  std::vector<supplier_item_config> items;
  const supplier_item_config* item(std::string_view id) const;
};

/// The roles a node hosts; absent sections stay empty.
struct roles_config {
  std::optional<buyer_config> buyer;
  std::optional<factory_config> factory;
  std::optional<supplier_config> supplier;
};

/// Parses [buyer], [factory] and [supplier] of `file`. Other sections are
/// ignored (the runtime owns them). Errors: errc::bad_config naming file, line
/// and field.
result<roles_config> parse_roles(const config_file& file);

}  // namespace gearmesh::actors
