// The offline invariant checker: one pass per table of each store, then the
// agreement check across stores.
#include "gearmesh/actors/verify.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>

#include "gearmesh/actors/capacity.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/string_hash.hpp"

namespace gearmesh::actors {

namespace {

namespace fs = std::filesystem;

/// Units of one allocation above this are corrupt: no calendar offers more
/// per bucket (capacity_calendar's bound), which also keeps the sums of a
/// bucket far from overflowing.
constexpr std::int64_t allocation_units_max = 1'000'000'000;

/// "2026-12-01T08:00Z" (UTC, to the minute).
std::string iso_minute(timestamp_us us) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds(us)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto minutes = duration_cast<std::chrono::minutes>(t - day).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(minutes / 60), static_cast<long long>(minutes % 60));
  return buf;
}

/// Start of `bucket`, as capacity_calendar::bucket_start.
std::int64_t bucket_start_us(std::int64_t bucket, timestamp_us bucket_us) {
  return bucket * bucket_us;
}

/// The part of `key` before `marker` ("velo/order/3" -> "velo"), or empty.
std::string prefix_before(std::string_view key, std::string_view marker) {
  const auto at = key.find(marker);
  return at == std::string_view::npos || at == 0 ? std::string{} : std::string(key.substr(0, at));
}

/// The last path component of `path`, ignoring trailing separators.
std::string directory_name(const std::string& path) {
  auto p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  auto name = p.filename().string();
  return name.empty() ? path : name;
}

/// The fields in which two records of one contract differ, e.g.
/// "price_cents 1000 vs 1200".
std::string term_differences(const contract_record& a, const contract_record& b) {
  std::string out;
  auto field = [&](const char* name, const auto& x, const auto& y) {
    if (x == y) return;
    if (!out.empty()) out += ", ";
    out += name;
    out += ' ';
    if constexpr (std::is_convertible_v<decltype(x), std::string_view>) {
      out += '"' + std::string(x) + "\" vs \"" + std::string(y) + '"';
    } else {
      out += std::to_string(x) + " vs " + std::to_string(y);
    }
  };
  field("order_id", a.order_id, b.order_id);
  field("buyer", a.buyer, b.buyer);
  field("seller", a.seller, b.seller);
  field("item", a.item, b.item);
  field("quantity", a.quantity, b.quantity);
  field("price_cents", a.price_cents, b.price_cents);
  field("currency", a.currency, b.currency);
  field("promised_start_us", a.promised_start_us, b.promised_start_us);
  field("promised_due_us", a.promised_due_us, b.promised_due_us);
  if (a.state != b.state) {
    if (!out.empty()) out += ", ";
    out += std::string("state ") + to_string(a.state) + " vs " + to_string(b.state);
  }
  field("proposal_id", a.proposal_id, b.proposal_id);
  return out;
}

/// Whether lookup() found a value.
enum class found : std::uint8_t { no, yes, undecodable };

/// Reads and decodes the value of `key` in `t` into `out`. LMDB errors are
/// returned; a value that fails to decode reads as found::undecodable (its
/// table's own pass reports it).
template <class T>
status lookup(const store::environment& env, const store::table<T>& t, std::string_view key,
              found& f, T& out) {
  f = found::no;
  auto raw = env.get(t.name(), key);
  if (!raw) return raw.error();
  if (!raw->has_value()) return status::ok();
  auto v = store::codec<T>::decode(**raw);
  if (!v) {
    f = found::undecodable;
    return status::ok();
  }
  out = std::move(*v);
  f = found::yes;
  return status::ok();
}

/// Load of one bucket, summed over the stored reservations.
struct load {
  std::int64_t held = 0;
  std::int64_t booked = 0;
};

/// One input store while it is checked.
struct input {
  store_ref ref;
  store_summary summary;
};

}  // namespace

/// See verify.hpp. Loads count only records that passed their checks, as in
/// a full pass.
struct check_index::state {
  /// A stored hold or booking, or a hold a held offer carries.
  struct reservation {
    std::string resource;
    reservation_kind kind = reservation_kind::hold;
    std::vector<allocation> allocations;
  };
  struct carried {
    std::string key;  // "<resource>/<reservation id>"
    reservation r;
    bool counted = false;  // false while a "holds" record has the same key
  };
  struct held_offer {
    timestamp_us deadline_us = 0;  // carries nothing once now is past it
    std::vector<carried> holds;
  };
  bool primed = false;
  timestamp_us now_us = 0;
  std::map<std::string, resource_record, std::less<>> resources;  // valid definitions
  std::map<std::string, reservation, std::less<>> holds, bookings;
  /// Keys of every "holds" record that decodes (a carried hold with the
  /// same key is counted with the table, not again).
  std::set<std::string, std::less<>> stored_holds;
  std::map<std::string, held_offer, std::less<>> offers;          // by offer key
  std::multimap<std::string, std::string, std::less<>> carriers;  // hold key -> offer key
  std::multimap<timestamp_us, std::string> deadlines;             // -> offer key
  std::map<std::string, std::map<std::int64_t, load>, std::less<>> loads;
  std::map<std::string, std::uint64_t, std::less<>> counts;  // reservations per resource
};

check_index::check_index() : state_(std::make_unique<state>()) {}
check_index::~check_index() = default;

namespace {

class checker {
 public:
  checker(const verify_options& opts, verify_report& report) : opts_(opts), report_(report) {}

  void add(violation_kind kind, const std::string& node, std::string_view table,
           std::string_view key, std::string message) {
    ++report_.violations_total;
    if (report_.violations.size() < opts_.violations_max)
      report_.violations.push_back(
          {kind, node, std::string(table), std::string(key), std::move(message)});
  }

  /// Every table of one store except the agreement check. Errors: LMDB reads.
  status check_store(input& in) {
    node_ = in.summary.node_id;
    env_ = in.ref.env;
    resources_.clear();
    component_orders_.clear();
    backing_.clear();
    loads_.clear();
    reservation_counts_.clear();
    stored_holds_.clear();
    carried_.clear();
    offers_read_.clear();
    contracts_read_.clear();
    if (auto st = check_resources(in.summary); !st) return st;
    if (auto st = check_orders(in.summary); !st) return st;
    if (auto st = check_offers(in.summary); !st) return st;
    check_components();
    if (auto st = check_contracts(in.summary); !st) return st;
    if (auto st = check_reservations(tables::holds, reservation_kind::hold, in.summary.holds); !st)
      return st;
    add_carried(in.summary.holds);  // after the hold records: counted once
    if (auto st =
            check_reservations(tables::bookings, reservation_kind::booking, in.summary.bookings);
        !st)
      return st;
    if (auto st = decode_all(tables::tombstones); !st) return st;
    if (auto st = decode_all(tables::seq); !st) return st;
    if (auto st = check_capacity_offers(); !st) return st;
    if (auto st = decode_all(tables::capacity_received); !st) return st;
    if (auto st = decode_all(tables::capacity_bookings); !st) return st;
    // Production events (executor.hpp): only checked to decode; their
    // states are reports, not commitments, so no cross-node rule applies.
    if (auto st = decode_all(tables::executions); !st) return st;
    if (auto st = decode_all(tables::progress); !st) return st;
    // Outages and pending re-plans (outage.hpp): what they did shows in the
    // contracts and reservations checked above; here they must decode.
    if (auto st = decode_all(tables::outages); !st) return st;
    if (auto st = decode_all(tables::replans); !st) return st;
    check_capacity();
    return status::ok();
  }

  /// Invariant 2 for the contracts of `inputs` (a part of them all);
  /// `by_node` maps node ids to all the inputs.
  status check_agreement(std::span<const input> inputs,
                         const std::map<std::string, const input*, std::less<>>& by_node) {
    for (const auto& in : inputs) {
      const auto& node = in.summary.node_id;
      auto st = for_each_decoded(
          *in.ref.env, tables::contracts,
          [&](std::string_view key, contract_record&& c) {
            if (key != c.contract_id) return status::ok();  // reported as corrupt
            const auto& other = c.role == contract_role::buyer ? c.seller : c.buyer;
            auto it = by_node.find(other);
            if (other == node || it == by_node.end()) {
              ++report_.contracts_unchecked;
              return status::ok();
            }
            contract_record t;
            found f;
            if (auto st = lookup(*it->second->ref.env, tables::contracts, key, f, t); !st)
              return st;
            if (f == found::undecodable) return status::ok();
            if (f == found::no) {
              add(violation_kind::contract_missing, node, tables::contracts.name(), key,
                  "recorded at " + node + " as " + to_string(c.role) + " (" + to_string(c.state) +
                      "), missing at " + other);
              return status::ok();
            }
            // Report a pair once: from the buyer's side, or from the first
            // side in node order when both claim the same role.
            const bool same_role = t.role == c.role;
            if (same_role ? node > other : c.role != contract_role::buyer) return status::ok();
            std::string diff = term_differences(c, t);
            if (same_role) {
              diff = "both " + node + " and " + other + " record it as " + to_string(c.role) +
                     (diff.empty() ? std::string{} : "; " + diff);
            } else if (diff.empty()) {
              return status::ok();
            }
            add(violation_kind::contract_mismatch, node, tables::contracts.name(), key,
                "terms differ between " + node + " and " + other + ": " + diff);
            return status::ok();
          },
          /*report_corrupt=*/false);
      if (!st) return st;
    }
    return status::ok();
  }

  /// Capacity bookings (capacity.hpp): booked at the publisher <=> booked at
  /// the booker, with the same terms.
  status check_capacity_agreement(std::span<const input> inputs,
                                  const std::map<std::string, const input*, std::less<>>& by_node) {
    auto terms = [](const capacity_booking_record& b) {
      return std::tie(b.offer_id, b.publisher, b.booker, b.units, b.price_cents, b.currency,
                      b.capability, b.window_start_us, b.window_end_us);
    };
    for (const auto& in : inputs) {
      const auto& node = in.summary.node_id;
      // As publisher.
      auto st = for_each_decoded(
          *in.ref.env, tables::capacity_sold,
          [&](std::string_view key, capacity_booking_record&& b) {
            if (b.state != capacity_booking_state::booked) return status::ok();
            auto it = by_node.find(b.booker);
            if (b.booker == node || it == by_node.end()) return status::ok();
            capacity_booking_record t;
            found f;
            if (auto st =
                    lookup(*it->second->ref.env, tables::capacity_bookings, b.booking_id, f, t);
                !st)
              return st;
            if (f == found::undecodable) return status::ok();
            if (f == found::no || t.state != capacity_booking_state::booked)
              add(violation_kind::capacity_booking_mismatch, node, tables::capacity_sold.name(),
                  key,
                  "booked at " + node + ", " +
                      (f == found::no ? std::string("missing") : std::string(to_string(t.state))) +
                      " at " + b.booker);
            else if (terms(t) != terms(b))
              add(violation_kind::capacity_booking_mismatch, node, tables::capacity_sold.name(),
                  key, "terms differ between " + node + " and " + b.booker);
            return status::ok();
          },
          /*report_corrupt=*/false);
      if (!st) return st;
      // As booker: what the publisher does not record as booked.
      st = for_each_decoded(
          *in.ref.env, tables::capacity_bookings,
          [&](std::string_view key, capacity_booking_record&& b) {
            if (b.state != capacity_booking_state::booked) return status::ok();
            auto it = by_node.find(b.publisher);
            if (b.publisher == node || it == by_node.end()) return status::ok();
            capacity_booking_record t;
            found f;
            std::string sold_key = node + "/" + b.booking_id;
            if (auto st = lookup(*it->second->ref.env, tables::capacity_sold, sold_key, f, t); !st)
              return st;
            if (f == found::no || (f == found::yes && t.state != capacity_booking_state::booked))
              add(violation_kind::capacity_booking_mismatch, node, tables::capacity_bookings.name(),
                  key,
                  "booked at " + node + ", " +
                      (f == found::no ? std::string("missing") : std::string(to_string(t.state))) +
                      " at " + b.publisher);
            return status::ok();
          },
          /*report_corrupt=*/false);
      if (!st) return st;
    }
    return status::ok();
  }

  /// verify_changes for one store (see verify.hpp); without an index of
  /// the caller's, one that lives for this check.
  status check_changes(const store_changes& in) {
    node_ = in.node_id;
    env_ = in.store.env;
    if (in.index) return check_indexed(in.keys, in.index->get());
    check_index once;
    return check_indexed(in.keys, once.get());
  }

 private:
  /// Visits every value of `t`; a value that fails to decode is skipped, and
  /// reported as a corrupt_record of the current store if `report_corrupt`.
  /// `fn` returns a status: an error stops the scan and is returned.
  template <class T, class Fn>
  status for_each_decoded(const store::environment& env, const store::table<T>& t, Fn&& fn,
                          bool report_corrupt = true) {
    status err;
    auto st = env.for_each(t.name(), [&](std::string_view key, std::string_view value) {
      auto v = store::codec<T>::decode(value);
      if (!v) {
        if (report_corrupt)
          add(violation_kind::corrupt_record, node_, t.name(), key, v.error().message());
        return true;
      }
      err = fn(key, std::move(*v));
      return err.is_ok();
    });
    if (!st) return st;
    return err;
  }

  /// Records of the store being checked as its scans decoded them, by key,
  /// for the lookups of later steps (the offer of every booking, say): at
  /// most memo_max of each; a key not kept is read from the store.
  template <class T>
  using read_records = std::unordered_map<std::string, T, string_hash, std::equal_to<>>;
  static constexpr std::size_t memo_max = std::size_t{1} << 16;

  template <class T>
  static void keep_read(read_records<T>& read, std::string_view key, T&& v) {
    if (read.size() < memo_max) read.emplace(std::string(key), std::move(v));
  }

  /// lookup(), answered from `read` if it holds `key`: `out` points at the
  /// record, in `read` or in `stored`.
  template <class T>
  status read_back(const read_records<T>& read, const store::table<T>& t, std::string_view key,
                   found& f, T& stored, const T*& out) {
    if (auto it = read.find(key); it != read.end()) {
      f = found::yes;
      out = &it->second;
      return status::ok();
    }
    out = &stored;
    return lookup(*env_, t, key, f, stored);
  }

  template <class T>
  status decode_all(const store::table<T>& t) {
    return for_each_decoded(*env_, t, [](std::string_view, T&&) { return status::ok(); });
  }

  /// Reads the value of `key` in `t`, if any: a value that fails to decode
  /// is a corrupt_record, one that decodes goes to `fn`.
  template <class T, class Fn>
  status check_one(const store::table<T>& t, std::string_view key, Fn&& fn) {
    auto raw = env_->get(t.name(), key);
    if (!raw) return raw.error();
    if (!raw->has_value()) return status::ok();  // erased since
    auto v = store::codec<T>::decode(**raw);
    if (!v) {
      add(violation_kind::corrupt_record, node_, t.name(), key, v.error().message());
      return status::ok();
    }
    fn(std::move(*v));
    return status::ok();
  }

  void key_mismatch(std::string_view table, std::string_view key, std::string_view field,
                    std::string_view value) {
    add(violation_kind::corrupt_record, node_, table, key,
        "key does not match the record's " + std::string(field) + " \"" + std::string(value) +
            "\"");
  }

  /// Checks a resource record against its key; a valid one defines its
  /// resource's capacity for check_capacity().
  void check_resource(std::string_view key, resource_record&& r) {
    if (valid_resource(key, r, /*report=*/true))
      resources_.insert_or_assign(std::string(key), std::move(r));
  }

  /// Whether `r` is a valid definition stored under `key`; if not and
  /// `report`, a corrupt_record.
  bool valid_resource(std::string_view key, const resource_record& r, bool report) {
    if (key != r.id) {
      if (report) key_mismatch(tables::resources.name(), key, "id", r.id);
      return false;
    }
    if (r.capacity <= 0 || r.bucket_us <= 0) {
      if (report)
        add(violation_kind::corrupt_record, node_, tables::resources.name(), key,
            "capacity " + std::to_string(r.capacity) + " and bucket_us " +
                std::to_string(r.bucket_us) + " must be > 0");
      return false;
    }
    return true;
  }

  status check_resources(store_summary& s) {
    return for_each_decoded(*env_, tables::resources,
                            [&](std::string_view key, resource_record&& r) {
                              ++s.resources;
                              check_resource(key, std::move(r));
                              return status::ok();
                            });
  }

  status check_orders(store_summary& s) {
    return for_each_decoded(*env_, tables::orders, [&](std::string_view key, order_record&& o) {
      ++s.orders;
      if (key != o.order_id) {
        key_mismatch(tables::orders.name(), key, "order_id", o.order_id);
        return status::ok();
      }
      if (o.state == order_state::negotiating) {
        add(violation_kind::order_not_terminal, node_, tables::orders.name(), key,
            "still negotiating (created " + iso_minute(o.created_us) + ", proposals due " +
                iso_minute(o.reply_by_us) + ")");
      } else if (o.state == order_state::awarded) {
        add(violation_kind::order_not_terminal, node_, tables::orders.name(), key,
            "still awarded to " + o.awarded_proposal_id + " (contract " + o.contract_id +
                ", confirm due " + iso_minute(o.confirm_deadline_us) + ")");
      } else if (o.state == order_state::ready) {
        add(violation_kind::order_not_terminal, node_, tables::orders.name(), key,
            "component order still waiting for its award (until " + iso_minute(o.award_by_us) +
                ")");
      }
      if (!o.parent_order_id.empty()) component_orders_.emplace(o.order_id, o.state);
      return status::ok();
    });
  }

  status check_offers(store_summary& s) {
    return for_each_decoded(*env_, tables::offers, [&](std::string_view key, offer_record&& o) {
      ++s.offers;
      if (key != o.proposal_id) {
        key_mismatch(tables::offers.name(), key, "proposal_id", o.proposal_id);
        return status::ok();
      }
      for (const auto& sub : o.sub_orders)
        backing_.emplace(sub, std::make_pair(o.proposal_id, o.state));
      collect_carried(key, o);
      keep_read(offers_read_, key, std::move(o));
      return status::ok();
    });
  }

  static bool valid_resource_name(std::string_view resource) {
    return !resource.empty() && resource.find('/') == std::string_view::npos;
  }

  void bad_carried_name(std::string_view offer_key, std::string_view resource) {
    add(violation_kind::corrupt_record, node_, tables::offers.name(), offer_key,
        "a hold it carries names resource \"" + std::string(resource) + "\"");
  }

  /// Keeps the live holds offer `key` carries (records.hpp) for add_carried.
  void collect_carried(std::string_view key, const offer_record& o) {
    for (auto& h : carried_holds(o, opts_.now_us)) {
      if (!valid_resource_name(h.resource)) {
        bad_carried_name(key, h.resource);
        continue;
      }
      carried_.emplace_back(std::string(key), std::move(h));
    }
  }

  /// Adds the kept carried holds to the bucket loads (counting them in
  /// `count`), once the hold records were scanned: one also stored in
  /// "holds" (a store written before offers carried their holds) was
  /// counted with its table.
  void add_carried(std::uint64_t& count) {
    for (const auto& [key, h] : carried_)
      if (!stored_holds_.contains(reservation_key(h.resource, h.reservation_id)) &&
          add_load(tables::offers.name(), key, h))
        ++count;
    carried_.clear();
  }

  /// Nested negotiation within this store: component orders against the
  /// offers they back (after check_orders and check_offers).
  void check_components() {
    for (const auto& [sub, offer] : backing_) {
      if (offer.second != offer_state::contracted) continue;
      auto it = component_orders_.find(sub);
      if (it == component_orders_.end() || it->second != order_state::contracted)
        add(violation_kind::component_mismatch, node_, tables::offers.name(), offer.first,
            "contracted, but its component order " + sub + " is " +
                (it == component_orders_.end() ? std::string("missing") : to_string(it->second)));
    }
    for (const auto& [id, state] : component_orders_) {
      if (state != order_state::contracted) continue;
      auto it = backing_.find(id);
      if (it == backing_.end() || it->second.second != offer_state::contracted)
        add(violation_kind::component_mismatch, node_, tables::orders.name(), id,
            "contracted component order, but " +
                (it == backing_.end() ? std::string("no offer names it")
                                      : "the offer it backs (" + it->second.first + ") is " +
                                            to_string(it->second.second)) +
                ": a leaked sub-contract");
    }
  }

  /// Counts contracts; an active seller contract must have every booking its
  /// contracted offer names.
  status check_contracts(store_summary& s) {
    return for_each_decoded(
        *env_, tables::contracts, [&](std::string_view key, contract_record&& c) -> status {
          ++s.contracts;
          if (key != c.contract_id) {
            key_mismatch(tables::contracts.name(), key, "contract_id", c.contract_id);
            return status::ok();
          }
          auto st = check_bookings_of(key, c);
          keep_read(contracts_read_, key, std::move(c));
          return st;
        });
  }

  /// check_contracts for contract `c` at `key`.
  status check_bookings_of(std::string_view key, const contract_record& c) {
    if (c.role != contract_role::seller || c.state != contract_state::active) return status::ok();
    auto missing = [&](std::string why) {
      add(violation_kind::missing_booking, node_, tables::contracts.name(), key,
          "active contract: " + why);
    };
    offer_record stored;
    const offer_record* offer = nullptr;
    found f;
    if (auto st = read_back(offers_read_, tables::offers, c.proposal_id, f, stored, offer); !st)
      return st;
    if (f == found::undecodable) return status::ok();
    if (f == found::no) {
      missing("its offer " + c.proposal_id + " is missing");
      return status::ok();
    }
    if (offer->state != offer_state::contracted || offer->contract_id != c.contract_id) {
      missing(
          "its offer " + c.proposal_id + " is " + to_string(offer->state) +
          (offer->contract_id.empty() ? std::string{} : " under contract " + offer->contract_id));
      return status::ok();
    }
    if (offer->reservations.empty())
      missing("its offer " + c.proposal_id + " names no reservation");
    for (const auto& r : offer->reservations) {
      const auto rkey = reservation_key(r.resource, r.reservation_id);
      auto b = env_->get(tables::bookings.name(), rkey);
      if (!b) return b.error();
      if (!b->has_value()) missing("booking " + rkey + " is missing");
    }
    return status::ok();
  }

  /// Checks each reservation of `t` against its key and table, the hold
  /// deadline, and (bookings) the offer and contract it backs; adds its
  /// allocations to the bucket loads.
  status check_reservations(const store::table<reservation_record>& t, reservation_kind kind,
                            std::uint64_t& count) {
    return for_each_decoded(*env_, t, [&](std::string_view key, reservation_record&& r) -> status {
      ++count;
      if (!check_reservation(t, kind, key, r)) return status::ok();
      if (kind == reservation_kind::hold) {
        if (r.deadline_us < opts_.now_us)
          add(violation_kind::expired_hold, node_, t.name(), key,
              "deadline " + iso_minute(r.deadline_us) + " (" + std::to_string(r.deadline_us) +
                  ") passed");
        return status::ok();
      }
      return check_booking(key, r);
    });
  }

  /// Checks a reservation of table `t` against its key and table and adds
  /// its allocations to its resource's buckets; false (and a corrupt_record)
  /// if it is malformed.
  bool check_reservation(const store::table<reservation_record>& t, reservation_kind kind,
                         std::string_view key, const reservation_record& r) {
    if (t.name() == tables::holds.name()) stored_holds_.emplace(key);
    if (key != reservation_key(r.resource, r.reservation_id) ||
        r.resource.find('/') != std::string::npos) {
      key_mismatch(t.name(), key, "resource and reservation id",
                   reservation_key(r.resource, r.reservation_id));
      return false;
    }
    if (r.kind != kind) {
      add(violation_kind::corrupt_record, node_, t.name(), key,
          std::string("a ") + to_string(r.kind) + " stored in table " + std::string(t.name()));
      return false;
    }
    return add_load(t.name(), key, r);
  }

  /// Adds `r`'s allocations to its resource's buckets; false (and a
  /// corrupt_record) if they are malformed.
  bool add_load(std::string_view table, std::string_view key, const reservation_record& r) {
    if (!valid_allocations(r.allocations)) {
      report_allocations(table, key);
      return false;
    }
    ++reservation_counts_[r.resource];
    auto& buckets = loads_[r.resource];
    for (const auto& a : r.allocations) {
      auto& l = buckets[a.bucket];
      (r.kind == reservation_kind::hold ? l.held : l.booked) += a.units;
    }
    return true;
  }

  /// No capacity offer is over-sold: its granted bookings (booked, or
  /// cancelled since: their units do not return to the offer) add up to
  /// units - remaining <= units.
  status check_capacity_offers() {
    std::map<std::string, std::uint64_t, std::less<>> sold;
    auto st = for_each_decoded(*env_, tables::capacity_sold,
                               [&](std::string_view, capacity_booking_record&& b) {
                                 if (b.state == capacity_booking_state::booked ||
                                     b.state == capacity_booking_state::cancelled)
                                   sold[b.offer_id] += b.units;
                                 return status::ok();
                               });
    if (!st) return st;
    return for_each_decoded(
        *env_, tables::capacity_offers, [&](std::string_view key, capacity_offer_record&& o) {
          if (key != o.offer_id) {
            key_mismatch(tables::capacity_offers.name(), key, "offer_id", o.offer_id);
            return status::ok();
          }
          auto it = sold.find(key);
          const std::uint64_t booked = it == sold.end() ? 0 : it->second;
          if (o.remaining > o.units || booked > o.units || booked != o.units - o.remaining)
            add(violation_kind::capacity_oversold, node_, tables::capacity_offers.name(), key,
                "offered " + std::to_string(o.units) + " units, " + std::to_string(o.remaining) +
                    " remaining, bookings granted for " + std::to_string(booked));
          return status::ok();
        });
  }

  /// A booking must back an active seller contract through its contracted
  /// offer ("<proposal id>#<operation>" names the offer), or be a booking
  /// granted on a capacity offer ("<offer id>#b<n>", capacity.hpp).
  status check_booking(std::string_view key, const reservation_record& r) {
    auto orphan = [&](std::string why) {
      add(violation_kind::orphan_booking, node_, tables::bookings.name(), key, std::move(why));
    };
    if (is_capacity_reservation(r.reservation_id)) {
      auto backed = capacity_reservation_backed(*env_, r.reservation_id, reservation_kind::booking);
      if (!backed) {
        // An undecodable offer record is reported by check_capacity_offers.
        if (backed.error().code() == errc::storage) return status::ok();
        return backed.error();
      }
      if (!*backed) orphan("no capacity offer in capacity_offers granted it");
      return status::ok();
    }
    const auto hash = r.reservation_id.rfind('#');
    if (hash == std::string::npos || hash == 0) {
      orphan("reservation id names no proposal (\"<proposal id>#<operation>\")");
      return status::ok();
    }
    const auto proposal_id = r.reservation_id.substr(0, hash);
    offer_record stored_offer;
    const offer_record* offer = nullptr;
    found f;
    if (auto st = read_back(offers_read_, tables::offers, proposal_id, f, stored_offer, offer); !st)
      return st;
    if (f == found::undecodable) return status::ok();
    if (f == found::no) {
      orphan("its offer " + proposal_id + " is missing");
      return status::ok();
    }
    if (offer->state != offer_state::contracted) {
      orphan("its offer " + proposal_id + " is " + to_string(offer->state));
      return status::ok();
    }
    bool named = false;
    for (const auto& ref : offer->reservations)
      named = named || (ref.resource == r.resource && ref.reservation_id == r.reservation_id);
    if (!named) {
      orphan("its offer " + proposal_id + " does not name it");
      return status::ok();
    }
    contract_record stored_contract;
    const contract_record* c = nullptr;
    if (auto st = read_back(contracts_read_, tables::contracts, offer->contract_id, f,
                            stored_contract, c);
        !st)
      return st;
    if (f == found::no) {
      orphan("contract " + offer->contract_id + " of offer " + proposal_id + " is missing");
    } else if (f == found::yes &&
               (c->state != contract_state::active || c->role != contract_role::seller)) {
      orphan("contract " + offer->contract_id + " is " + to_string(c->state) + " (" +
             to_string(c->role) + ")");
    }
    return status::ok();
  }

  /// Invariant 1 for every resource with a definition; the others count as unchecked.
  void check_capacity() {
    for (const auto& [resource, buckets] : loads_) {
      auto it = resources_.find(resource);
      if (it == resources_.end()) {
        report_.reservations_unchecked += reservation_counts_[resource];
        continue;
      }
      for (const auto& [bucket, l] : buckets) check_bucket(resource, it->second, bucket, l);
    }
  }

  /// Invariant 1 for one bucket of a defined resource.
  void check_bucket(std::string_view resource, const resource_record& def, std::int64_t bucket,
                    const load& l) {
    if (l.held + l.booked <= def.capacity) return;
    add(violation_kind::over_commitment, node_, tables::resources.name(), resource,
        "bucket " + std::to_string(bucket) + " (from " +
            iso_minute(bucket_start_us(bucket, def.bucket_us)) + "): held " +
            std::to_string(l.held) + " + booked " + std::to_string(l.booked) + " = " +
            std::to_string(l.held + l.booked) + " units > capacity " +
            std::to_string(def.capacity));
  }

  /// A changed key of a table other than holds, bookings, resources and
  /// offers: decoded and checked against its key.
  status check_other(std::string_view table, const std::string& key) {
    if (table == tables::orders.name()) {
      return check_one(tables::orders, key, [&](order_record&& o) {
        if (key != o.order_id) key_mismatch(table, key, "order_id", o.order_id);
      });
    }
    if (table == tables::contracts.name()) {
      return check_one(tables::contracts, key, [&](contract_record&& c) {
        if (key != c.contract_id) key_mismatch(table, key, "contract_id", c.contract_id);
      });
    }
    if (table == tables::capacity_offers.name()) {
      return check_one(tables::capacity_offers, key, [&](capacity_offer_record&& o) {
        if (key != o.offer_id) key_mismatch(table, key, "offer_id", o.offer_id);
      });
    }
    // The rest need only decode.
    auto decodes = [&](const auto& t) { return check_one(t, key, [](auto&&) {}); };
    if (table == tables::tombstones.name()) return decodes(tables::tombstones);
    if (table == tables::seq.name()) return decodes(tables::seq);
    if (table == tables::capacity_received.name()) return decodes(tables::capacity_received);
    if (table == tables::capacity_bookings.name()) return decodes(tables::capacity_bookings);
    if (table == tables::capacity_sold.name()) return decodes(tables::capacity_sold);
    if (table == tables::executions.name()) return decodes(tables::executions);
    if (table == tables::progress.name()) return decodes(tables::progress);
    return status::ok();
  }

  // --- verify_changes with a check_index ----------------------------------

  using index_state = check_index::state;

  /// check_changes with `ix`: the changed records update the index, then
  /// the buckets whose load grew are checked.
  status check_indexed(const store::written_keys& keys, index_state& ix) {
    grown_.clear();
    if (!ix.primed || opts_.now_us < ix.now_us) {
      if (auto st = prime(ix); !st) return st;
    } else {
      expire_carried(ix);
    }
    ix.now_us = opts_.now_us;
    for (const auto& [table, changed] : keys) {
      for (const auto& key : changed) {
        status st;
        if (table == tables::holds.name()) {
          st = update_reservation(ix, tables::holds, reservation_kind::hold, key);
        } else if (table == tables::bookings.name()) {
          st = update_reservation(ix, tables::bookings, reservation_kind::booking, key);
        } else if (table == tables::resources.name()) {
          st = update_resource(ix, key);
        } else if (table == tables::offers.name()) {
          st = update_offer(ix, key);
        } else {
          st = check_other(table, key);
        }
        if (!st) return st;
      }
    }
    for (const auto& [resource, buckets] : grown_) {
      auto loads = ix.loads.find(resource);
      if (loads == ix.loads.end()) continue;  // released again
      auto def = ix.resources.find(resource);
      if (def == ix.resources.end()) {
        report_.reservations_unchecked += ix.counts[resource];
        continue;
      }
      if (!buckets) {
        for (const auto& [bucket, l] : loads->second)
          check_bucket(resource, def->second, bucket, l);
        continue;
      }
      for (auto bucket : *buckets)
        if (auto l = loads->second.find(bucket); l != loads->second.end())
          check_bucket(resource, def->second, bucket, l->second);
    }
    return status::ok();
  }

  /// Builds `ix` from the store (nothing is reported: the store is taken
  /// to be clean up to the changes that follow), and marks every resource
  /// to be checked whole.
  status prime(index_state& ix) {
    ix = index_state{};
    ix.primed = true;
    ix.now_us = opts_.now_us;
    auto st = env_->for_each(tables::resources.name(), [&](std::string_view k, std::string_view v) {
      auto r = store::codec<resource_record>::decode(v);
      if (r && valid_resource(k, *r, /*report=*/false))
        ix.resources.emplace(std::string(k), std::move(*r));
      return true;
    });
    if (!st) return st;
    for (const auto* t : {&tables::holds, &tables::bookings}) {
      const auto kind = t == &tables::holds ? reservation_kind::hold : reservation_kind::booking;
      st = env_->for_each(t->name(), [&](std::string_view k, std::string_view v) {
        auto r = store::codec<reservation_record>::decode(v);
        if (!r) return true;
        if (kind == reservation_kind::hold) ix.stored_holds.emplace(k);
        if (valid_reservation(kind, k, *r))
          (kind == reservation_kind::hold ? ix.holds : ix.bookings)
              .emplace(std::string(k),
                       index_state::reservation{r->resource, kind, std::move(r->allocations)});
        return true;
      });
      if (!st) return st;
    }
    for (auto& [key, r] : ix.holds) count(ix, r, +1);
    for (auto& [key, r] : ix.bookings) count(ix, r, +1);
    st = env_->for_each(tables::offers.name(), [&](std::string_view k, std::string_view v) {
      if (!offer_held_at(v, opts_.now_us)) return true;
      auto o = store::codec<offer_record>::decode(v);
      if (o && k == o->proposal_id) add_offer(ix, k, *o, /*report=*/false);
      return true;
    });
    if (!st) return st;
    grown_.clear();
    for (const auto& [resource, buckets] : ix.loads) grown_[resource] = std::nullopt;
    return status::ok();
  }

  /// Whether a decoded reservation of table kind `kind` stored under `key`
  /// passes check_reservation's checks (without reporting).
  static bool valid_reservation(reservation_kind kind, std::string_view key,
                                const reservation_record& r) {
    return r.kind == kind && key == reservation_key(r.resource, r.reservation_id) &&
           r.resource.find('/') == std::string::npos && valid_allocations(r.allocations);
  }

  static bool valid_allocations(const std::vector<allocation>& a) {
    bool ok = !a.empty();
    for (std::size_t i = 0; ok && i < a.size(); ++i)
      ok = a[i].units > 0 && a[i].units <= allocation_units_max &&
           (i == 0 || a[i].bucket > a[i - 1].bucket);
    return ok;
  }

  void report_allocations(std::string_view table, std::string_view key) {
    add(violation_kind::corrupt_record, node_, table, key,
        "malformed allocations (empty, units outside 1.." + std::to_string(allocation_units_max) +
            ", or buckets not ascending)");
  }

  /// Adds (`sign` +1) or takes away (-1) `r`'s allocations from the loads;
  /// buckets that grow are checked at the end of the check.
  void count(index_state& ix, const index_state::reservation& r, int sign) {
    auto& buckets = ix.loads[r.resource];
    for (const auto& a : r.allocations) {
      auto& l = buckets[a.bucket];
      (r.kind == reservation_kind::hold ? l.held : l.booked) += sign * a.units;
      if (l.held == 0 && l.booked == 0) buckets.erase(a.bucket);
    }
    auto& n = ix.counts[r.resource];
    n = sign > 0 ? n + 1 : n - 1;
    if (n == 0) {
      ix.counts.erase(r.resource);
      ix.loads.erase(r.resource);
      return;
    }
    if (sign < 0) return;
    // An entry without buckets stands for the whole resource.
    auto [grown, fresh] = grown_.try_emplace(r.resource, std::set<std::int64_t>{});
    if (grown->second)
      for (const auto& a : r.allocations) grown->second->insert(a.bucket);
  }

  /// Counts or stops counting the carried holds with key `hold_key`, as a
  /// "holds" record with that key disappears or appears.
  void recount_carried(index_state& ix, std::string_view hold_key, bool counted) {
    auto [lo, hi] = ix.carriers.equal_range(hold_key);
    for (auto it = lo; it != hi; ++it)
      for (auto& c : ix.offers.at(it->second).holds)
        if (c.key == hold_key && c.counted != counted) {
          c.counted = counted;
          count(ix, c.r, counted ? +1 : -1);
        }
  }

  status update_reservation(index_state& ix, const store::table<reservation_record>& t,
                            reservation_kind kind, const std::string& key) {
    auto& records = kind == reservation_kind::hold ? ix.holds : ix.bookings;
    if (auto it = records.find(key); it != records.end()) {
      count(ix, it->second, -1);
      records.erase(it);
    }
    const bool was_stored = kind == reservation_kind::hold && ix.stored_holds.erase(key) > 0;
    bool stored = false;
    auto st = check_one(t, key, [&](reservation_record&& r) {
      stored = kind == reservation_kind::hold;
      if (stored) ix.stored_holds.insert(key);
      if (key != reservation_key(r.resource, r.reservation_id) ||
          r.resource.find('/') != std::string::npos) {
        key_mismatch(t.name(), key, "resource and reservation id",
                     reservation_key(r.resource, r.reservation_id));
      } else if (r.kind != kind) {
        add(violation_kind::corrupt_record, node_, t.name(), key,
            std::string("a ") + to_string(r.kind) + " stored in table " + std::string(t.name()));
      } else if (!valid_allocations(r.allocations)) {
        report_allocations(t.name(), key);
      } else {
        auto& e = records[key] = {r.resource, kind, std::move(r.allocations)};
        count(ix, e, +1);
      }
    });
    if (!st) return st;
    if (was_stored != stored) recount_carried(ix, key, !stored);
    return status::ok();
  }

  status update_resource(index_state& ix, const std::string& key) {
    ix.resources.erase(key);
    auto st = check_one(tables::resources, key, [&](resource_record&& r) {
      if (valid_resource(key, r, /*report=*/true)) ix.resources.insert_or_assign(key, std::move(r));
    });
    if (!st) return st;
    grown_[key] = std::nullopt;  // a changed capacity: every bucket
    return status::ok();
  }

  status update_offer(index_state& ix, const std::string& key) {
    if (auto it = ix.offers.find(key); it != ix.offers.end()) {
      drop_offer(ix, it);
    }
    return check_one(tables::offers, key, [&](offer_record&& o) {
      if (key != o.proposal_id) {
        key_mismatch(tables::offers.name(), key, "proposal_id", o.proposal_id);
        return;
      }
      add_offer(ix, key, o, /*report=*/true);
    });
  }

  /// Indexes the holds offer `key` carries now (reporting malformed ones if
  /// `report`).
  void add_offer(index_state& ix, std::string_view key, const offer_record& o, bool report) {
    index_state::held_offer held;
    held.deadline_us = o.valid_until_us;
    for (auto& h : carried_holds(o, opts_.now_us)) {
      if (!valid_resource_name(h.resource)) {
        if (report) bad_carried_name(key, h.resource);
        continue;
      }
      if (!valid_allocations(h.allocations)) {
        if (report) report_allocations(tables::offers.name(), key);
        continue;
      }
      auto hold_key = reservation_key(h.resource, h.reservation_id);
      held.holds.push_back(
          {hold_key,
           {std::move(h.resource), reservation_kind::hold, std::move(h.allocations)},
           !ix.stored_holds.contains(hold_key)});
    }
    if (held.holds.empty()) return;
    auto [it, fresh] = ix.offers.emplace(std::string(key), std::move(held));
    if (!fresh) return;  // cannot be: update_offer dropped it
    for (auto& c : it->second.holds) {
      ix.carriers.emplace(c.key, it->first);
      if (c.counted) count(ix, c.r, +1);
    }
    ix.deadlines.emplace(it->second.deadline_us, it->first);
  }

  void drop_offer(index_state& ix, decltype(index_state::offers)::iterator it) {
    for (auto& c : it->second.holds) {
      if (c.counted) count(ix, c.r, -1);
      auto [lo, hi] = ix.carriers.equal_range(c.key);
      for (auto k = lo; k != hi; ++k)
        if (k->second == it->first) {
          ix.carriers.erase(k);
          break;
        }
    }
    ix.offers.erase(it);
  }

  /// Offers whose deadline is behind now carry nothing any more.
  void expire_carried(index_state& ix) {
    while (!ix.deadlines.empty() && ix.deadlines.begin()->first < opts_.now_us) {
      auto [deadline, key] = *ix.deadlines.begin();
      ix.deadlines.erase(ix.deadlines.begin());
      auto it = ix.offers.find(key);
      if (it != ix.offers.end() && it->second.deadline_us == deadline) drop_offer(ix, it);
    }
  }

  const verify_options& opts_;
  verify_report& report_;
  // The store being checked.
  std::string node_;
  const store::environment* env_ = nullptr;
  std::map<std::string, resource_record, std::less<>> resources_;
  /// Component orders of the current store, and the offer naming each one.
  std::map<std::string, order_state, std::less<>> component_orders_;
  std::map<std::string, std::pair<std::string, offer_state>, std::less<>> backing_;
  std::map<std::string, std::map<std::int64_t, load>, std::less<>> loads_;
  std::map<std::string, std::uint64_t, std::less<>> reservation_counts_;
  /// Keys of the "holds" records scanned, and the holds offers carry
  /// (offer key, hold) waiting for add_carried.
  std::set<std::string, std::less<>> stored_holds_;
  std::vector<std::pair<std::string, reservation_record>> carried_;
  /// The offers and contracts of the store being checked (read_back).
  read_records<offer_record> offers_read_;
  read_records<contract_record> contracts_read_;
  /// check_indexed: the buckets whose load grew this check, by resource;
  /// none (std::nullopt) for every bucket of the resource.
  std::map<std::string, std::optional<std::set<std::int64_t>>, std::less<>> grown_;
};

/// The node id of a store: "meta"/"node_id", else the ids its records name,
/// else the directory name.
result<std::pair<std::string, node_id_source>> node_id_of(const store_ref& s) {
  auto meta = s.env->get("meta", meta_node_id_key);
  if (!meta) return meta.error();
  if (meta->has_value() && !(*meta)->empty())
    return std::make_pair(std::move(**meta), node_id_source::meta);
  std::string id;
  auto st = s.env->for_each(tables::contracts.name(), [&](std::string_view, std::string_view v) {
    auto c = store::codec<contract_record>::decode(v);
    if (c) id = c->role == contract_role::buyer ? c->buyer : c->seller;
    return id.empty();
  });
  if (!st) return st;
  const std::pair<std::string_view, std::string_view> by_key[] = {{"orders", "/order/"},
                                                                  {"offers", "/proposal/"}};
  for (const auto& [table, marker] : by_key) {
    if (!id.empty()) break;
    st = s.env->for_each(table, [&, marker = marker](std::string_view k, std::string_view) {
      id = prefix_before(k, marker);
      return id.empty();
    });
    if (!st) return st;
  }
  if (!id.empty()) return std::make_pair(std::move(id), node_id_source::records);
  return std::make_pair(directory_name(s.path), node_id_source::directory);
}

}  // namespace

const char* to_string(violation_kind k) noexcept {
  switch (k) {
    case violation_kind::over_commitment:
      return "over_commitment";
    case violation_kind::contract_missing:
      return "contract_missing";
    case violation_kind::contract_mismatch:
      return "contract_mismatch";
    case violation_kind::expired_hold:
      return "expired_hold";
    case violation_kind::order_not_terminal:
      return "order_not_terminal";
    case violation_kind::orphan_booking:
      return "orphan_booking";
    case violation_kind::missing_booking:
      return "missing_booking";
    case violation_kind::corrupt_record:
      return "corrupt_record";
    case violation_kind::component_mismatch:
      return "component_mismatch";
    case violation_kind::capacity_oversold:
      return "capacity_oversold";
    case violation_kind::capacity_booking_mismatch:
      return "capacity_booking_mismatch";
  }
  return "unknown";
}

const char* invariant_of(violation_kind k) noexcept {
  switch (k) {
    case violation_kind::over_commitment:
      return "invariant 1 (no over-commitment)";
    case violation_kind::contract_missing:
    case violation_kind::contract_mismatch:
      return "invariant 2 (agreement)";
    case violation_kind::component_mismatch:
      return "invariant 2 (agreement across tiers)";
    case violation_kind::order_not_terminal:
      return "invariant 3 (no lost orders)";
    case violation_kind::expired_hold:
      return "invariant 5 (holds expire)";
    case violation_kind::orphan_booking:
    case violation_kind::missing_booking:
      return "invariant 6 (crash safety)";
    case violation_kind::corrupt_record:
      return "store integrity";
    case violation_kind::capacity_oversold:
      return "invariant 1 (no over-commitment: capacity offers)";
    case violation_kind::capacity_booking_mismatch:
      return "invariant 2 (agreement: capacity bookings)";
  }
  return "unknown";
}

const char* to_string(node_id_source s) noexcept {
  switch (s) {
    case node_id_source::meta:
      return "meta";
    case node_id_source::records:
      return "records";
    case node_id_source::directory:
      return "directory";
  }
  return "unknown";
}

result<verify_report> verify_stores(const std::vector<store_ref>& stores,
                                    const verify_options& opts) {
  if (stores.empty()) return status(errc::invalid_argument, "no store to verify");
  if (stores.size() > verify_stores_max)
    return status(errc::invalid_argument, "at most " + std::to_string(verify_stores_max) +
                                              " stores can be verified at once, got " +
                                              std::to_string(stores.size()));
  verify_report report;
  report.now_us = opts.now_us;
  std::vector<input> inputs;
  std::map<std::string, const input*, std::less<>> by_node;
  inputs.reserve(stores.size());
  for (const auto& s : stores) {
    if (!s.env) return status(errc::invalid_argument, s.path + ": no environment");
    auto id = node_id_of(s);
    if (!id) return id.error();
    input in{s, {}};
    in.summary.path = s.path;
    in.summary.node_id = std::move(id->first);
    in.summary.id_source = id->second;
    inputs.push_back(std::move(in));
  }
  for (const auto& in : inputs) {
    auto [it, fresh] = by_node.emplace(in.summary.node_id, &in);
    if (!fresh)
      return status(errc::invalid_argument, it->second->summary.path + " and " + in.summary.path +
                                                " are both stores of node " + in.summary.node_id);
  }
  // Each store on its own, then the agreement across them, then the
  // capacity agreement: with opts.threads > 1, the inputs are split in two
  // halves checked on two threads, each part into reports of its own,
  // joined in the order (and with the listing) of one thread.
  struct part {
    verify_report stores, agreement, capacity;
    status st;
  };
  auto check_part = [&](std::span<input> mine, part& p) {
    checker cs(opts, p.stores);
    for (auto& in : mine)
      if (p.st = cs.check_store(in); !p.st) return;
    checker ca(opts, p.agreement);
    if (p.st = ca.check_agreement(mine, by_node); !p.st) return;
    checker cc(opts, p.capacity);
    p.st = cc.check_capacity_agreement(mine, by_node);
  };
  std::vector<part> parts(opts.threads > 1 && inputs.size() > 1 ? 2 : 1);
  const std::size_t half = parts.size() == 2 ? inputs.size() / 2 : inputs.size();
  std::thread helper;
  if (parts.size() == 2)
    helper = std::thread([&] { check_part(std::span<input>(inputs).subspan(half), parts[1]); });
  check_part(std::span<input>(inputs).first(half), parts[0]);
  if (helper.joinable()) helper.join();
  for (auto& p : parts)
    if (!p.st) return p.st;
  for (auto segment : {&part::stores, &part::agreement, &part::capacity}) {
    for (auto& p : parts) {
      const verify_report& r = p.*segment;
      report.violations_total += r.violations_total;
      report.contracts_unchecked += r.contracts_unchecked;
      report.reservations_unchecked += r.reservations_unchecked;
      for (const auto& v : r.violations)
        if (report.violations.size() < opts.violations_max) report.violations.push_back(v);
    }
  }
  for (auto& in : inputs) report.stores.push_back(std::move(in.summary));
  return report;
}

result<verify_report> verify_changes(const std::vector<store_changes>& stores,
                                     const verify_options& opts) {
  verify_report report;
  report.now_us = opts.now_us;
  checker c(opts, report);
  for (const auto& in : stores) {
    if (!in.store.env) return status(errc::invalid_argument, in.store.path + ": no environment");
    if (auto st = c.check_changes(in); !st) return st;
    store_summary summary;
    summary.path = in.store.path;
    summary.node_id = in.node_id;
    report.stores.push_back(std::move(summary));
  }
  return report;
}

result<std::unique_ptr<store::environment>> open_existing_store(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return status(errc::not_found, dir + ": no such directory");
  if (!fs::is_directory(dir, ec)) return status(errc::not_found, dir + ": not a directory");
  if (!fs::is_regular_file(fs::path(dir) / "data.mdb", ec))
    return status(errc::not_found, dir + ": not a Gearmesh store (no data.mdb)");
  store::options opts;
  opts.path = dir;
  return store::environment::open(opts);
}

result<verify_report> verify_data_dirs(const std::vector<std::string>& data_dirs,
                                       const verify_options& opts) {
  if (data_dirs.size() > verify_stores_max)
    return status(errc::invalid_argument, "at most " + std::to_string(verify_stores_max) +
                                              " stores can be verified at once, got " +
                                              std::to_string(data_dirs.size()));
  std::set<std::string> seen;
  std::vector<std::unique_ptr<store::environment>> envs;
  std::vector<store_ref> refs;
  for (const auto& dir : data_dirs) {
    std::error_code ec;
    auto canonical = fs::weakly_canonical(dir, ec);
    if (!ec && !seen.insert(canonical.string()).second)
      return status(errc::invalid_argument, dir + ": given twice");
    auto env = open_existing_store(dir);
    if (!env) return env.error();
    refs.push_back({dir, env->get()});
    envs.push_back(std::move(*env));
  }
  return verify_stores(refs, opts);
}

}  // namespace gearmesh::actors
