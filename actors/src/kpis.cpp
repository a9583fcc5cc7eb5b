// A node's KPIs from its store: one pass per table, then the figures that
// join tables (energy of contracts through their offers' bookings).
#include "gearmesh/actors/kpis.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/records.hpp"

namespace gearmesh::actors {

namespace {

using json = nlohmann::json;

/// Visits every decodable value of `t`; undecodable ones are counted in
/// `corrupt` and skipped. `fn(key, T&&)` returns nothing.
template <class T, class Fn>
status each(const store::environment& env, const store::table<T>& t, std::uint64_t& corrupt,
            Fn&& fn) {
  return env.for_each(t.name(), [&](std::string_view key, std::string_view value) {
    auto v = store::codec<T>::decode(value);
    if (!v) {
      ++corrupt;
      return true;
    }
    fn(key, std::move(*v));
    return true;
  });
}

std::optional<double> percent(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) return std::nullopt;
  return 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

std::optional<double> percent(std::int64_t part, std::int64_t whole) {
  if (whole <= 0) return std::nullopt;
  return 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

duration_stats stats_of(std::vector<timestamp_us>& samples) {
  duration_stats s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.count = samples.size();
  // Mean without overflow: durations are bounded by the clock, the count by memory.
  long double sum = 0;
  for (auto v : samples) sum += static_cast<long double>(v);
  s.mean_us = static_cast<timestamp_us>(std::llround(sum / static_cast<long double>(s.count)));
  auto rank = [&](double p) {
    auto idx = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(s.count)));
    return samples[std::clamp<std::size_t>(idx, 1, s.count) - 1];
  };
  s.p50_us = rank(50);
  s.p95_us = rank(95);
  s.max_us = samples.back();
  return s;
}

/// floor(a / b) for b > 0.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && (a < 0) ? 1 : 0);
}

struct resource_state {
  resource_kpis k;
  std::int64_t capacity = 0;  // units per bucket
  timestamp_us bucket_us = 0;
  std::int64_t first_bucket = 0;  // buckets [first, last) overlap the utilization window
  std::int64_t last_bucket = 0;
};

struct order_samples {
  std::vector<timestamp_us> lead, quote;
};

}  // namespace

down_span down_span_of(std::int64_t first_bucket, std::int64_t last_bucket, timestamp_us ended_us,
                       timestamp_us bucket_us) {
  down_span d{first_bucket, last_bucket + 1};
  if (ended_us != 0 && bucket_us > 0)
    d.end = std::min(d.end, floor_div(ended_us - 1, bucket_us) + 1);
  return d;
}

std::int64_t down_buckets(std::vector<down_span> spans, std::int64_t first, std::int64_t end) {
  std::sort(spans.begin(), spans.end(),
            [](const down_span& a, const down_span& b) { return a.first < b.first; });
  std::int64_t buckets = 0;
  std::int64_t covered_to = first;  // buckets before it are counted or outside
  for (const auto& d : spans) {
    const auto from = std::max(d.first, covered_to);
    const auto to = std::min(d.end, end);
    if (to > from) buckets += to - from;
    covered_to = std::max(covered_to, to);
  }
  return buckets;
}

result<kpi_report> compute_kpis(const store::environment& env, const kpi_options& opts) {
  if (opts.from_us < 0 || opts.to_us < 0 || opts.from_us > kpi_time_max_us ||
      opts.to_us > kpi_time_max_us || opts.now_us < 0 || opts.now_us > kpi_time_max_us)
    return status(errc::invalid_argument, "window bounds must be in 0.." +
                                              std::to_string(kpi_time_max_us) +
                                              " (microseconds since the epoch)");
  if (opts.from_us != 0 && opts.to_us != 0 && opts.from_us >= opts.to_us)
    return status(errc::invalid_argument, "window is empty: from_us must be before to_us");
  kpi_report r;
  r.now_us = opts.now_us;
  r.from_us = opts.from_us;
  r.to_us = opts.to_us;
  auto in_window = [&](timestamp_us t) {
    return (opts.from_us == 0 || t >= opts.from_us) && (opts.to_us == 0 || t < opts.to_us);
  };

  if (auto id = env.get("meta", meta_node_id_key); !id) {
    return id.error();
  } else if (id->has_value()) {
    r.node_id = **id;
  }

  // Utilization window: the report's window, else a fortnight around now.
  r.utilization_from_us =
      opts.from_us != 0 ? opts.from_us
                        : std::max<timestamp_us>(0, opts.now_us - kpi_utilization_half_window_us);
  r.utilization_to_us = opts.to_us != 0 ? opts.to_us : opts.now_us + kpi_utilization_half_window_us;
  if (r.utilization_to_us <= r.utilization_from_us) {  // one bound given, far from now
    if (opts.from_us != 0)
      r.utilization_to_us = r.utilization_from_us + 2 * kpi_utilization_half_window_us;
    else
      r.utilization_from_us =
          std::max<timestamp_us>(0, r.utilization_to_us - 2 * kpi_utilization_half_window_us);
  }

  // --- resources, then their bookings and holds ------------------------------
  std::map<std::string, resource_state> resources;
  auto st = each(env, tables::resources, r.corrupt_records,
                 [&](std::string_view key, resource_record&& rec) {
                   if (rec.bucket_us <= 0 || rec.capacity < 0 || rec.energy_wh_per_hour < 0) {
                     ++r.corrupt_records;
                     return;
                   }
                   resource_state s;
                   s.k.id = std::string(key);
                   s.k.energy_wh_per_hour = rec.energy_wh_per_hour;
                   s.capacity = rec.capacity;
                   s.bucket_us = rec.bucket_us;
                   s.first_bucket = floor_div(r.utilization_from_us, rec.bucket_us);
                   s.last_bucket = floor_div(r.utilization_to_us - 1, rec.bucket_us) + 1;
                   // Saturates rather than overflows (a 1 us bucket over centuries).
                   if (__builtin_mul_overflow(rec.capacity, s.last_bucket - s.first_bucket,
                                              &s.k.capacity_units))
                     s.k.capacity_units = std::numeric_limits<std::int64_t>::max();
                   resources.emplace(std::string(key), std::move(s));
                 });
  if (!st) return st;

  // Buckets a machine was out of service (breakdowns, maintenance; up to the
  // bucket it came back up in) are no capacity: utilization is of the time
  // the machine could work.
  std::map<std::string, std::vector<down_span>> down;
  st = each(env, tables::outages, r.corrupt_records, [&](std::string_view, outage_record&& o) {
    auto it = resources.find(o.resource);
    if (it == resources.end()) return;
    down[o.resource].push_back(
        down_span_of(o.first_bucket, o.last_bucket, o.ended_us, it->second.bucket_us));
  });
  if (!st) return st;
  for (auto& [id, spans] : down) {
    auto& s = resources.at(id);
    const auto buckets = down_buckets(std::move(spans), s.first_bucket, s.last_bucket);
    if (__builtin_mul_overflow(s.capacity, buckets, &s.k.down_units))
      s.k.down_units = s.k.capacity_units;
    s.k.capacity_units -= std::min(s.k.down_units, s.k.capacity_units);
  }

  // Units of every booking by key, for the energy of contracts.
  std::unordered_map<std::string, std::int64_t> booked_units_by_key;
  auto load = [&](const reservation_record& rec, bool booked) {
    auto it = resources.find(rec.resource);
    if (it == resources.end()) return;
    auto& s = it->second;
    for (const auto& a : rec.allocations) {
      if (a.bucket < s.first_bucket || a.bucket >= s.last_bucket || a.units <= 0) continue;
      (booked ? s.k.booked_units : s.k.held_units) += a.units;
    }
  };
  st = each(env, tables::bookings, r.corrupt_records,
            [&](std::string_view key, reservation_record&& rec) {
              std::int64_t units = 0;
              for (const auto& a : rec.allocations)
                if (a.units > 0) units += a.units;
              booked_units_by_key[std::string(key)] = units;
              load(rec, true);
            });
  if (!st) return st;
  std::unordered_set<std::string> hold_keys;
  st = each(env, tables::holds, r.corrupt_records,
            [&](std::string_view key, reservation_record&& rec) {
              hold_keys.emplace(key);
              // An expired hold no longer takes capacity, whether or not it was erased yet.
              if (rec.deadline_us >= opts.now_us) load(rec, false);
            });
  if (!st) return st;

  // --- offers (seller) --------------------------------------------------------
  std::unordered_map<std::string, std::vector<reservation_ref>> contracted_offers;
  // One pass: the seller's figures, and the holds held offers carry
  // (records.hpp) into the loads, unless also stored in "holds" above.
  st = each(env, tables::offers, r.corrupt_records, [&](std::string_view, offer_record&& o) {
    for (const auto& h : carried_holds(o, opts.now_us))
      if (!hold_keys.contains(reservation_key(h.resource, h.reservation_id))) load(h, false);
    if (o.state == offer_state::contracted)
      contracted_offers.emplace(o.proposal_id, o.reservations);
    if (!in_window(o.promised_due_us)) return;
    auto& k = r.seller;
    ++k.offers;
    if (o.state == offer_state::contracted) {
      ++k.offers_contracted;
      if (o.promised_due_us <= o.due_us) ++k.promised_on_time;
    } else if (o.state == offer_state::held && o.valid_until_us >= opts.now_us) {
      ++k.offers_pending;
    } else {
      ++k.offers_lost;
    }
  });
  if (!st) return st;
  r.seller.win_rate_pct =
      percent(r.seller.offers_contracted, r.seller.offers - r.seller.offers_pending);
  r.seller.promised_on_time_pct = percent(r.seller.promised_on_time, r.seller.offers_contracted);

  for (auto& [id, s] : resources) {
    s.k.utilization_pct = percent(s.k.booked_units, s.k.capacity_units);
    s.k.held_pct = percent(s.k.held_units, s.k.capacity_units);
    s.k.energy_wh =
        static_cast<double>(s.k.booked_units) * static_cast<double>(s.k.energy_wh_per_hour) / 60.0;
    r.resources.push_back(s.k);
  }

  // --- contracts ------------------------------------------------------------
  std::unordered_map<std::string, contract_record> buyer_contracts;
  std::vector<contract_record> seller_contracts;  // active, due in the window
  st = each(env, tables::contracts, r.corrupt_records, [&](std::string_view, contract_record&& c) {
    if (c.role == contract_role::buyer) {
      buyer_contracts.emplace(c.contract_id, std::move(c));
    } else if (c.state == contract_state::active && in_window(c.promised_due_us)) {
      ++r.seller.contracts;
      r.seller.units += c.quantity;
      r.seller.revenue_cents[c.currency] += c.price_cents;
      seller_contracts.push_back(std::move(c));
    }
  });
  if (!st) return st;

  // --- orders (buyer) ---------------------------------------------------------
  order_samples customer, component;
  st = each(env, tables::orders, r.corrupt_records, [&](std::string_view, order_record&& o) {
    if (!in_window(o.created_us)) return;
    const bool is_component = !o.parent_order_id.empty();
    auto& k = is_component ? r.component_orders : r.customer_orders;
    auto& samples = is_component ? component : customer;
    ++k.orders;
    switch (o.state) {
      case order_state::contracted:
        ++k.contracted;
        break;
      case order_state::failed:
        ++k.failed;
        break;
      case order_state::cancelled:
        ++k.cancelled;
        break;
      default:
        ++k.open;
        break;
    }
    if (o.state != order_state::contracted) return;
    // Promised delivery: the contract's, else the winning proposal's.
    const proposal_record* won = nullptr;
    for (const auto& p : o.proposals)
      if (!o.awarded_proposal_id.empty() && p.proposal_id == o.awarded_proposal_id) won = &p;
    std::optional<timestamp_us> delivery;
    auto c = buyer_contracts.find(o.contract_id);
    if (c != buyer_contracts.end()) {
      delivery = c->second.promised_due_us;
      if (c->second.state == contract_state::active)
        k.spend_cents[c->second.currency] += c->second.price_cents;
    } else if (won) {
      delivery = won->promised_due_us;
    }
    if (opts.delivered_us && !o.contract_id.empty()) {
      if (auto actual = opts.delivered_us(o.contract_id)) {
        delivery = *actual;
        ++k.delivered_actual;
        r.delivery_basis = "actual";
      }
    }
    if (delivery) {
      ++(*delivery <= o.due_us ? k.on_time : k.late);
      samples.lead.push_back(std::max<timestamp_us>(0, *delivery - o.created_us));
    }
    if (won) samples.quote.push_back(std::max<timestamp_us>(0, won->received_us - o.created_us));
  });
  if (!st) return st;
  auto finish = [](buyer_order_kpis& k, order_samples& s) {
    k.on_time_pct = percent(k.on_time, k.contracted);
    k.lead_time = stats_of(s.lead);
    k.quote_time = stats_of(s.quote);
  };
  finish(r.customer_orders, customer);
  finish(r.component_orders, component);

  // --- energy per unit: seller contracts through their offers' bookings -------
  for (const auto& c : seller_contracts) {
    auto o = contracted_offers.find(c.proposal_id);
    if (o == contracted_offers.end()) continue;
    double wh = 0;
    bool rated = false;
    for (const auto& ref : o->second) {
      auto res = resources.find(ref.resource);
      if (res == resources.end() || res->second.k.energy_wh_per_hour <= 0) continue;
      auto b = booked_units_by_key.find(reservation_key(ref.resource, ref.reservation_id));
      if (b == booked_units_by_key.end()) continue;
      rated = true;
      wh += static_cast<double>(b->second) * static_cast<double>(res->second.k.energy_wh_per_hour) /
            60.0;
    }
    if (!rated) continue;  // no machine with a known rate did its work (e.g. a supplier)
    for (auto* e : {&r.energy, &r.energy_by_item[c.item]}) {
      ++e->contracts;
      e->units += c.quantity;
      e->energy_wh += wh;
    }
  }
  auto per_unit = [](energy_kpis& e) {
    if (e.units > 0) e.wh_per_unit = e.energy_wh / static_cast<double>(e.units);
  };
  per_unit(r.energy);
  for (auto& [item, e] : r.energy_by_item) per_unit(e);
  return r;
}

namespace {

/// Rounded to 2 decimals, or null.
json number(std::optional<double> v) {
  if (!v) return nullptr;
  return std::round(*v * 100.0) / 100.0;
}

json bound(timestamp_us t) {
  return t == 0 ? json(nullptr) : json(t);
}

json duration_json(const duration_stats& s) {
  return json{{"count", s.count},
              {"mean_us", s.mean_us},
              {"p50_us", s.p50_us},
              {"p95_us", s.p95_us},
              {"max_us", s.max_us}};
}

json buyer_json(const buyer_order_kpis& k) {
  return json{{"orders", k.orders},
              {"contracted", k.contracted},
              {"failed", k.failed},
              {"cancelled", k.cancelled},
              {"open", k.open},
              {"on_time", k.on_time},
              {"late", k.late},
              {"on_time_pct", number(k.on_time_pct)},
              {"delivered_actual", k.delivered_actual},
              {"lead_time", duration_json(k.lead_time)},
              {"quote_time", duration_json(k.quote_time)},
              {"spend_cents", k.spend_cents}};
}

json energy_json(const energy_kpis& e) {
  return json{{"contracts", e.contracts},
              {"units", e.units},
              {"energy_wh", number(e.energy_wh)},
              {"wh_per_unit", number(e.wh_per_unit)}};
}

}  // namespace

std::string kpis_to_json(const kpi_report& r) {
  json resources = json::array();
  for (const auto& k : r.resources)
    resources.push_back(json{{"id", k.id},
                             {"capacity_units", k.capacity_units},
                             {"down_units", k.down_units},
                             {"booked_units", k.booked_units},
                             {"held_units", k.held_units},
                             {"utilization_pct", number(k.utilization_pct)},
                             {"held_pct", number(k.held_pct)},
                             {"energy_wh_per_hour", k.energy_wh_per_hour},
                             {"energy_wh", number(k.energy_wh)}});
  json by_item = json::object();
  for (const auto& [item, e] : r.energy_by_item) by_item[item] = energy_json(e);
  json energy = energy_json(r.energy);
  energy["by_item"] = std::move(by_item);
  const auto& s = r.seller;
  json j{{"node_id", r.node_id},
         {"now_us", r.now_us},
         {"from_us", bound(r.from_us)},
         {"to_us", bound(r.to_us)},
         {"delivery_basis", r.delivery_basis},
         {"buyer", json{{"customer_orders", buyer_json(r.customer_orders)},
                        {"component_orders", buyer_json(r.component_orders)}}},
         {"seller", json{{"offers", s.offers},
                         {"offers_contracted", s.offers_contracted},
                         {"offers_lost", s.offers_lost},
                         {"offers_pending", s.offers_pending},
                         {"win_rate_pct", number(s.win_rate_pct)},
                         {"promised_on_time", s.promised_on_time},
                         {"promised_on_time_pct", number(s.promised_on_time_pct)},
                         {"contracts", s.contracts},
                         {"units", s.units},
                         {"revenue_cents", s.revenue_cents}}},
         {"utilization", json{{"from_us", r.utilization_from_us},
                              {"to_us", r.utilization_to_us},
                              {"resources", std::move(resources)}}},
         {"energy", std::move(energy)},
         {"corrupt_records", r.corrupt_records}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gearmesh::actors
