// Wiring of the role actors into a node: spawn, route, admin API.
#include "gearmesh/actors/install.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>
#include <caf/actor.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>

#include "caf_messages.hpp"
#include "gearmesh/actors/buyer.hpp"
#include "gearmesh/actors/capacity.hpp"
#include "gearmesh/actors/directory.hpp"
#include "gearmesh/actors/executor.hpp"
#include "gearmesh/actors/factory.hpp"
#include "gearmesh/actors/kpis.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/actors/supplier.hpp"
#include "gearmesh/ident.hpp"
#include "gearmesh/node/node.hpp"

namespace gearmesh::actors {

namespace {

using json = nlohmann::json;

/// Most entries one list response carries (?limit=N lowers it).
constexpr std::size_t list_entries_max = 10'000;

json contract_json(const contract_record& c) {
  return json{{"contract_id", c.contract_id},
              {"order_id", c.order_id},
              {"buyer", c.buyer},
              {"seller", c.seller},
              {"role", to_string(c.role)},
              {"item", c.item},
              {"quantity", c.quantity},
              {"price_cents", c.price_cents},
              {"currency", c.currency},
              {"promised_start_us", c.promised_start_us},
              {"promised_due_us", c.promised_due_us},
              {"state", to_string(c.state)}};
}

json component_json(const wire::component_status& c) {
  json below = json::array();
  for (const auto& x : c.components) below.push_back(component_json(x));
  return json{{"contract_id", c.contract_id},
              {"seller", c.seller},
              {"item", c.item},
              {"quantity", c.quantity},
              {"state", wire::to_string(c.state)},
              {"promised_due_us", c.promised_due_us},
              {"expected_due_us", c.expected_due_us},
              {"started_us", c.started_us},
              {"delivered_us", c.delivered_us},
              {"components", std::move(below)}};
}

json event_json(const wire::production_event& e) {
  json comps = json::array();
  for (const auto& c : e.components) comps.push_back(component_json(c));
  return json{{"contract_id", e.contract_id},
              {"order_id", e.order_id},
              {"sequence", e.sequence},
              {"kind", wire::to_string(e.kind)},
              {"at_us", e.at_us},
              {"state", wire::to_string(e.state)},
              {"expected_due_us", e.expected_due_us},
              {"started_us", e.started_us},
              {"completed_us", e.completed_us},
              {"delivered_us", e.delivered_us},
              {"reason", e.reason},
              {"components", std::move(comps)}};
}

/// PROGRESS of a contract (protocol.md section 9): the latest production
/// event received (buyer) or sent (seller), or null.
json progress_json(const contract_record& c, const store::environment& env) {
  if (c.role == contract_role::buyer) {
    auto p = tables::progress.get(env, c.contract_id);
    if (!p || !*p) return nullptr;
    auto j = event_json((*p)->event);
    j["received_us"] = (*p)->received_us;
    return j;
  }
  auto e = tables::executions.get(env, c.contract_id);
  if (!e || !*e) return nullptr;
  const auto& x = **e;
  return json{{"sequence", x.sequence},
              {"state", wire::to_string(x.state)},
              {"expected_due_us", expected_due_us(x)},
              {"started_us", x.started_us},
              {"completed_us", x.completed_us},
              {"delivered_us", x.delivered_us},
              {"delay_us", x.delay_us},
              {"reason", x.reason},
              {"planned_start_us", x.planned_start_us},
              {"planned_end_us", x.planned_end_us},
              {"shop_floor", x.shop_floor}};
}

json order_json(const order_record& o, const store::environment& env) {
  json proposals = json::array();
  for (const auto& p : o.proposals)
    proposals.push_back(json{{"seller", p.seller},
                             {"proposal_id", p.proposal_id},
                             {"price_cents", p.price_cents},
                             {"promised_start_us", p.promised_start_us},
                             {"promised_due_us", p.promised_due_us},
                             {"valid_until_us", p.valid_until_us},
                             {"state", to_string(p.state)},
                             {"reason", p.reason},
                             {"round", p.round}});
  json contract = nullptr;
  if (!o.contract_id.empty()) {
    auto c = tables::contracts.get(env, o.contract_id);
    if (c && *c) {
      contract = contract_json(**c);
      contract["progress"] = progress_json(**c, env);
    }
  }
  return json{{"order_id", o.order_id},
              {"item", o.item},
              {"quantity", o.quantity},
              {"due_us", o.due_us},
              {"earliest_start_us", o.earliest_start_us},
              {"max_price_cents", o.max_price_cents},
              {"state", to_string(o.state)},
              {"reason", o.reason},
              {"round", o.round},
              {"parent_buyer", o.parent_buyer},
              {"parent_order_id", o.parent_order_id},
              {"contract", std::move(contract)},
              {"proposals", std::move(proposals)}};
}

admin::response json_response(unsigned status, const json& body) {
  admin::response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

std::size_t limit_of(const admin::request& req) {
  auto it = req.query.find("limit");
  if (it == req.query.end()) return list_entries_max;
  try {
    auto n = std::stoull(it->second);
    return std::min<std::size_t>(n, list_entries_max);
  } catch (...) {
    return list_entries_max;
  }
}

/// Parses the body of POST /v1/orders; an error message on bad input.
result<order_request> parse_order(const std::string& body) {
  auto bad = [](std::string what) { return status(errc::invalid_argument, std::move(what)); };
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("body must be a JSON object");
  order_request r;
  auto integer = [&](const char* key, bool required, std::int64_t min,
                     std::int64_t& out) -> std::optional<status> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) return bad(std::string(key) + " is required");
      return std::nullopt;
    }
    if (!it->is_number_integer()) return bad(std::string(key) + " must be an integer");
    if (it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return bad(std::string(key) + " is too large");
    out = it->get<std::int64_t>();
    if (out < min) return bad(std::string(key) + " must be >= " + std::to_string(min));
    return std::nullopt;
  };
  auto item = j.find("item");
  if (item == j.end() || !item->is_string() || item->get<std::string>().empty())
    return bad("item is required (a string)");
  r.item = item->get<std::string>();
  std::int64_t quantity = 0;
  if (auto e = integer("quantity", true, 0, quantity)) return *e;
  if (quantity == 0) return bad("quantity must be at least 1");
  if (quantity > std::numeric_limits<std::uint32_t>::max()) return bad("quantity is too large");
  r.quantity = static_cast<std::uint32_t>(quantity);
  if (auto e = integer("due_us", true, 0, r.due_us)) return *e;
  if (auto e = integer("earliest_start_us", false, 0, r.earliest_start_us)) return *e;
  if (auto e = integer("max_price_cents", false, 0, r.max_price_cents)) return *e;
  if (auto a = j.find("attributes"); a != j.end() && !a->is_null()) {
    if (!a->is_object()) return bad("attributes must be an object of strings");
    for (const auto& [k, v] : a->items()) {
      if (!v.is_string()) return bad("attribute " + k + " must be a string");
      r.attributes.push_back({k, v.get<std::string>()});
    }
  }
  return r;
}

json capacity_offer_json(const capacity_offer_record& o, timestamp_us now) {
  const bool expired = now > o.valid_until_us;
  return json{
      {"offer_id", o.offer_id},
      {"publisher", o.publisher},
      {"capability", o.capability},
      {"window_start_us", o.window_start_us},
      {"window_end_us", o.window_end_us},
      {"units", o.units},
      {"remaining", expired ? 0u : o.remaining},
      {"unit_price_cents", o.unit_price_cents},
      {"currency", o.currency},
      {"valid_until_us", o.valid_until_us},
      {"revision", o.revision},
      {"state", o.state == capacity_offer_state::open && expired ? std::string("expired")
                                                                 : std::string(to_string(o.state))},
      {"booked_units", o.units - o.remaining}};
}

json capacity_booking_json(const capacity_booking_record& b, const char* role) {
  return json{{"booking_id", b.booking_id},
              {"offer_id", b.offer_id},
              {"publisher", b.publisher},
              {"booker", b.booker},
              {"role", role},
              {"state", to_string(b.state)},
              {"reason", b.reason},
              {"capability", b.capability},
              {"units", b.units},
              {"price_cents", b.price_cents},
              {"currency", b.currency},
              {"window_start_us", b.window_start_us},
              {"window_end_us", b.window_end_us},
              {"remaining", b.remaining}};
}

/// Reads an integer field of `j` into `out` (>= min); an error status, or
/// nullopt when fine (absent and not required leaves `out` as it is).
std::optional<status> json_integer(const json& j, const char* key, bool required, std::int64_t min,
                                   std::int64_t max, std::int64_t& out) {
  auto bad = [](std::string what) { return status(errc::invalid_argument, std::move(what)); };
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return bad(std::string(key) + " is required");
    return std::nullopt;
  }
  if (!it->is_number_integer()) return bad(std::string(key) + " must be an integer");
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(max))
    return bad(std::string(key) + " is too large");
  out = it->get<std::int64_t>();
  if (out < min) return bad(std::string(key) + " must be >= " + std::to_string(min));
  if (out > max) return bad(std::string(key) + " is too large");
  return std::nullopt;
}

/// Reads a required, non-empty string field of `j` into `out`; an error
/// status, or nullopt when fine.
std::optional<status> json_string(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    return status(errc::invalid_argument, std::string(key) + " is required (a string)");
  out = it->get<std::string>();
  return std::nullopt;
}

/// Parses the body of POST /v1/capacity/offers.
result<publish_request> parse_publish(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return status(errc::invalid_argument, "body must be a JSON object");
  publish_request r;
  if (auto e = json_string(j, "capability", r.capability)) return *e;
  if (auto m = j.find("machine"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) return status(errc::invalid_argument, "machine must be a string");
    r.resource = m->get<std::string>();
  }
  constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
  std::int64_t units = 0;
  if (auto e = json_integer(j, "units", true, 1, std::numeric_limits<std::uint32_t>::max(), units))
    return *e;
  r.units = static_cast<std::uint32_t>(units);
  if (auto e = json_integer(j, "unit_price_cents", true, 0, i64_max, r.unit_price_cents)) return *e;
  if (auto e = json_integer(j, "window_start_us", true, 0, i64_max, r.window_start_us)) return *e;
  if (auto e = json_integer(j, "window_end_us", true, 0, i64_max, r.window_end_us)) return *e;
  if (auto e = json_integer(j, "valid_until_us", false, 0, i64_max, r.valid_until_us)) return *e;
  return r;
}

/// Parses the body of POST /v1/capacity/bookings.
result<book_request> parse_booking(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return status(errc::invalid_argument, "body must be a JSON object");
  book_request r;
  if (auto e = json_string(j, "offer_id", r.offer_id)) return *e;
  std::int64_t units = 0;
  if (auto e = json_integer(j, "units", true, 1, std::numeric_limits<std::uint32_t>::max(), units))
    return *e;
  r.units = static_cast<std::uint32_t>(units);
  return r;
}

/// Parses the body of POST /v1/events.
result<std::pair<std::string, posted_event>> parse_event(const std::string& body) {
  auto bad = [](std::string what) { return status(errc::invalid_argument, std::move(what)); };
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("body must be a JSON object");
  std::string contract_id;
  if (auto e = json_string(j, "contract_id", contract_id)) return *e;
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string())
    return bad("kind is required: started, completed, delayed or delivered");
  posted_event p;
  const auto k = kind->get<std::string>();
  if (k == "started")
    p.kind = wire::production_event_kind::started;
  else if (k == "completed")
    p.kind = wire::production_event_kind::completed;
  else if (k == "delayed")
    p.kind = wire::production_event_kind::delayed;
  else if (k == "delivered")
    p.kind = wire::production_event_kind::delivered;
  else
    return bad("kind must be started, completed, delayed or delivered, got \"" + k + "\"");
  constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
  if (auto e = json_integer(j, "at_us", false, 0, i64_max, p.at_us)) return *e;
  if (auto e = json_integer(j, "expected_due_us", false, 0, i64_max, p.expected_due_us)) return *e;
  if (auto r = j.find("reason"); r != j.end() && !r->is_null()) {
    if (!r->is_string() || r->get<std::string>().size() > 1024)
      return bad("reason must be a string of at most 1024 bytes");
    p.reason = r->get<std::string>();
  }
  return std::make_pair(std::move(contract_id), std::move(p));
}

const char* outage_state(const outage_record& o, timestamp_us now) {
  if (o.ended_us != 0) return o.ended_us <= o.from_us ? "cancelled" : "ended";
  if (now >= o.until_us) return "over";
  return now < o.from_us ? "planned" : "active";
}

json outage_json(const outage_record& o, timestamp_us now) {
  json effects = json::array();
  for (const auto& e : o.effects)
    effects.push_back(json{{"contract_id", e.contract_id},
                           {"outcome", to_string(e.outcome)},
                           {"expected_due_us", e.expected_due_us}});
  return json{{"outage_id", o.outage_id},
              {"machine", o.resource},
              {"kind", to_string(o.kind)},
              {"from_us", o.from_us},
              {"until_us", o.until_us},
              {"state", outage_state(o, now)},
              {"reason", o.reason},
              {"health_score", o.health_score < 0 ? json(nullptr) : json(o.health_score)},
              {"created_us", o.created_us},
              {"ended_us", o.ended_us},
              {"holds_moved", o.holds_moved},
              {"holds_released", o.holds_released},
              {"effects", std::move(effects)}};
}

/// Parses the body of POST /v1/machines/<id>/down|maintenance.
result<outage_request> parse_outage(const std::string& body, timestamp_us now) {
  auto bad = [](std::string what) { return status(errc::invalid_argument, std::move(what)); };
  json j = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("body must be a JSON object");
  outage_request r;
  constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
  if (auto e = json_integer(j, "from_us", false, 0, i64_max, r.from_us)) return *e;
  if (auto e = json_integer(j, "until_us", false, 0, i64_max, r.until_us)) return *e;
  std::int64_t for_s = 0;
  if (auto e = json_integer(j, "for_s", false, 1, outage_length_max_us / us_per_s, for_s))
    return *e;
  if ((r.until_us != 0) == (for_s != 0)) return bad("give until_us or for_s (seconds), not both");
  if (for_s != 0) r.until_us = (r.from_us != 0 ? r.from_us : now) + for_s * us_per_s;
  if (auto it = j.find("reason"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().size() > 1024)
      return bad("reason must be a string of at most 1024 bytes");
    r.reason = it->get<std::string>();
  }
  return r;
}

json resolution_json(const lookup_result& r) {
  json entries = json::array();
  for (const auto& e : r.answer.entries)
    entries.push_back(json{{"node_id", e.node_id},
                           {"endpoint", e.endpoint},
                           {"public_key", e.public_key},
                           {"capabilities", e.capabilities},
                           {"referral", e.referral}});
  json j{{"status", wire::to_string(r.answer.status)},
         {"entries", std::move(entries)},
         {"ttl_s", r.answer.ttl_s},
         {"reason", r.answer.reason},
         {"cached", r.cached},
         {"local", r.local}};
  if (!r.answer.identifier.empty()) j["identifier"] = r.answer.identifier;
  if (!r.answer.capability.empty()) j["capability"] = r.answer.capability;
  if (r.answer.status == wire::resolution_status::not_found) j["error"] = r.answer.reason;
  return j;
}

/// Asks the directory and answers 200 (found, referral), 404 (not_found,
/// with the same body plus "error"), 504 or 503.
admin::response resolve_response(caf::actor_system& sys, const caf::actor& dir, wire::resolve q,
                                 int timeout_ms) {
  auto r = directory_lookup(sys, dir, std::move(q), std::chrono::milliseconds(timeout_ms));
  if (!r) {
    return admin::error_response(r.error().code() == errc::timeout ? 504 : 503,
                                 r.error().message());
  }
  const unsigned code = r->answer.status == wire::resolution_status::not_found ? 404 : 200;
  return json_response(code, resolution_json(*r));
}

}  // namespace

void record_identity(node_context& ctx, const std::vector<resource_spec>& specs) {
  const auto& env = ctx.store();
  store::write_batch b;
  auto id = env.get("meta", meta_node_id_key);
  if (!id || !id->has_value() || **id != ctx.node_id())
    b.put("meta", meta_node_id_key, ctx.node_id());
  for (const auto& s : specs) {
    const resource_record r{s.id, s.capacity, s.bucket_us, s.energy_wh_per_hour};
    // Unreadable (corrupt) records are overwritten too.
    auto stored = tables::resources.get(env, s.id);
    if (!stored || !stored->has_value() || **stored != r) tables::resources.put(b, s.id, r);
  }
  if (b.empty()) return;
  effects fx;
  fx.writes = std::move(b);
  fx.on_durable = [node = ctx.node_id()](const status& st) {
    if (!st) spdlog::error("{}: recording node id and resources failed: {}", node, st.to_string());
  };
  ctx.commit(std::move(fx));
}

void add_directory_routes(admin::router& r, caf::actor_system& sys, const caf::actor& directory,
                          int lookup_timeout_ms) {
  r.add("GET", "/v1/resolve/", [&sys, directory, lookup_timeout_ms](const admin::request& req) {
    const std::string prefix = "/v1/resolve/";
    const auto id = req.path.substr(prefix.size());
    if (id.empty()) return admin::error_response(400, "no identifier: GET /v1/resolve/<id>");
    auto parsed = ident::parse(id);
    if (!parsed) return admin::error_response(400, parsed.error().message());
    wire::resolve q;
    q.identifier = id;
    return resolve_response(sys, directory, std::move(q), lookup_timeout_ms);
  });
  r.add("GET", "/v1/partners", [&sys, directory, lookup_timeout_ms](const admin::request& req) {
    if (req.path != "/v1/partners" && req.path != "/v1/partners/")
      return admin::error_response(404, "no such resource");
    auto it = req.query.find("capability");
    if (it == req.query.end() || it->second.empty() || it->second.size() > 128)
      return admin::error_response(400, "capability is required: GET /v1/partners?capability=X");
    wire::resolve q;
    q.capability = it->second;
    return resolve_response(sys, directory, std::move(q), lookup_timeout_ms);
  });
  r.add("GET", "/v1/directory", [&sys, directory](const admin::request& req) {
    if (req.path != "/v1/directory" && req.path != "/v1/directory/")
      return admin::error_response(404, "no such resource");
    auto s = directory_counters(sys, directory, std::chrono::milliseconds(2000));
    if (!s) return admin::error_response(503, s.error().message());
    return json_response(200, json{{"queries_local", s->queries_local},
                                   {"queries_remote", s->queries_remote},
                                   {"answered_authoritative", s->answered_authoritative},
                                   {"cache_hits", s->cache_hits},
                                   {"cache_misses", s->cache_misses},
                                   {"forwarded", s->forwarded},
                                   {"resolutions_in", s->resolutions_in},
                                   {"stale_resolutions", s->stale_resolutions},
                                   {"timeouts", s->timeouts},
                                   {"busy", s->busy},
                                   {"cache_entries", s->cache_entries},
                                   {"pending", s->pending}});
  });
}

void add_admin_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                      const caf::actor* buyer, int order_timeout_ms) {
  std::optional<caf::actor> b;
  if (buyer) b = *buyer;
  r.add("POST", "/v1/orders", [&sys, b, order_timeout_ms](const admin::request& req) {
    if (req.path != "/v1/orders") return admin::error_response(404, "no such resource");
    if (!b) return admin::error_response(404, "this node has no buyer role");
    auto parsed = parse_order(req.body);
    if (!parsed) return admin::error_response(400, parsed.error().message());
    auto reply =
        place_order(sys, *b, std::move(*parsed), std::chrono::milliseconds(order_timeout_ms));
    if (reply.http_status != 201) return admin::error_response(reply.http_status, reply.error);
    return json_response(201, json{{"order_id", reply.order_id}, {"state", reply.state}});
  });
  r.add("GET", "/v1/orders", [&ctx](const admin::request& req) {
    if (req.path != "/v1/orders" && req.path != "/v1/orders/")
      return admin::error_response(404, "no such resource");
    json list = json::array();
    const auto limit = limit_of(req);
    auto st = tables::orders.for_each(ctx.store(), [&](std::string_view, order_record&& o) {
      list.push_back(order_json(o, ctx.store()));
      return list.size() < limit;
    });
    if (!st) return admin::error_response(500, st.to_string());
    return json_response(200, json{{"orders", std::move(list)}});
  });
  r.add("GET", "/v1/orders/", [&ctx](const admin::request& req) {
    const std::string prefix = "/v1/orders/";
    const auto id = req.path.substr(prefix.size());
    if (id.empty()) return admin::error_response(404, "no order id");
    auto o = tables::orders.get(ctx.store(), id);
    if (!o) return admin::error_response(500, o.error().to_string());
    if (!*o) return admin::error_response(404, "no order " + id);
    return json_response(200, order_json(**o, ctx.store()));
  });
  r.add("GET", "/v1/kpis", [&ctx](const admin::request& req) {
    if (req.path != "/v1/kpis" && req.path != "/v1/kpis/")
      return admin::error_response(404, "no such resource");
    kpi_options opts;
    opts.now_us = ctx.clock().now();
    for (auto [key, out] : {std::pair{"from_us", &opts.from_us}, std::pair{"to_us", &opts.to_us}}) {
      auto it = req.query.find(key);
      if (it == req.query.end()) continue;
      const auto& text = it->second;
      const auto* end = text.data() + text.size();
      auto [ptr, ec] = std::from_chars(text.data(), end, *out);
      if (ec != std::errc{} || ptr != end || text.empty() || *out <= 0)
        return admin::error_response(400, std::string(key) +
                                              ": expected microseconds since the epoch (> 0), "
                                              "got \"" +
                                              text + "\"");
    }
    auto k = compute_kpis(ctx.store(), opts);
    if (!k)
      return admin::error_response(k.error().code() == errc::invalid_argument ? 400 : 500,
                                   k.error().message());
    admin::response resp;
    resp.status = 200;
    resp.body = kpis_to_json(*k);
    return resp;
  });
  r.add("GET", "/v1/contracts", [&ctx](const admin::request& req) {
    if (req.path != "/v1/contracts" && req.path != "/v1/contracts/")
      return admin::error_response(404, "no such resource");
    json list = json::array();
    const auto limit = limit_of(req);
    // Execution progress only on request: both ends' terms stay comparable.
    const bool with_progress = req.query.contains("progress");
    auto st = tables::contracts.for_each(ctx.store(), [&](std::string_view, contract_record&& c) {
      list.push_back(contract_json(c));
      if (with_progress) list.back()["progress"] = progress_json(c, ctx.store());
      return list.size() < limit;
    });
    if (!st) return admin::error_response(500, st.to_string());
    return json_response(200, json{{"contracts", std::move(list)}});
  });
}

void add_execution_routes(admin::router& r, caf::actor_system& sys, const caf::actor* executor,
                          int timeout_ms) {
  std::optional<caf::actor> x;
  if (executor) x = *executor;
  r.add("POST", "/v1/events", [&sys, x, timeout_ms](const admin::request& req) {
    if (req.path != "/v1/events") return admin::error_response(404, "no such resource");
    if (!x) return admin::error_response(404, "this node sells nothing (no factory or supplier)");
    auto parsed = parse_event(req.body);
    if (!parsed) return admin::error_response(400, parsed.error().message());
    auto reply = post_production_event(sys, *x, std::move(parsed->first), std::move(parsed->second),
                                       std::chrono::milliseconds(timeout_ms));
    if (reply.http_status != 201) return admin::error_response(reply.http_status, reply.error);
    return json_response(201, event_json(reply.event));
  });
}

void add_machine_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                        const caf::actor* participant, std::vector<machine_config> machines,
                        int timeout_ms) {
  std::optional<caf::actor> p;
  if (participant) p = *participant;
  r.add("POST", "/v1/machines/", [&ctx, &sys, p, timeout_ms](const admin::request& req) {
    const std::string prefix = "/v1/machines/";
    const auto rest = req.path.substr(prefix.size());
    const auto slash = rest.rfind('/');
    if (slash == std::string::npos || slash == 0)
      return admin::error_response(
          404, "no such resource: POST /v1/machines/<id>/down|maintenance|up|health|cancel");
    outage_request o;
    o.machine = rest.substr(0, slash);
    const auto what = rest.substr(slash + 1);
    const auto now = ctx.clock().now();
    if (what == "down" || what == "maintenance") {
      auto parsed = parse_outage(req.body, now);
      if (!parsed) return admin::error_response(400, parsed.error().message());
      o.from_us = parsed->from_us;
      o.until_us = parsed->until_us;
      o.reason = std::move(parsed->reason);
      o.what = outage_request::action::down;
      o.kind = what == "down" ? outage_kind::breakdown : outage_kind::maintenance;
    } else if (what == "up") {
      o.what = outage_request::action::up;
    } else if (what == "cancel") {
      json j = json::parse(req.body, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return admin::error_response(400, "body must be a JSON object");
      if (auto e = json_string(j, "outage_id", o.outage_id))
        return admin::error_response(400, e->message());
      o.what = outage_request::action::cancel;
    } else if (what == "health") {
      json j = json::parse(req.body, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return admin::error_response(400, "body must be a JSON object");
      std::int64_t score = -1;
      if (auto e = json_integer(j, "score", true, 0, 100, score))
        return admin::error_response(400, e->message());
      o.what = outage_request::action::health;
      o.health_score = static_cast<std::int32_t>(score);
    } else {
      return admin::error_response(
          404,
          "no such action " + what + ": POST /v1/machines/<id>/down|maintenance|up|health|cancel");
    }
    if (!p) return admin::error_response(404, "this node has no factory role: it has no machines");
    const auto action = o.what;
    auto reply = machine_outage(sys, *p, std::move(o), std::chrono::milliseconds(timeout_ms));
    if (reply.http_status != 200 && reply.http_status != 201)
      return admin::error_response(reply.http_status, reply.error);
    const auto after = ctx.clock().now();
    if (action == outage_request::action::up) {
      json ended = json::array();
      for (const auto& x : reply.outages) ended.push_back(outage_json(x, after));
      return json_response(200, json{{"ended", std::move(ended)}});
    }
    if (action == outage_request::action::cancel && !reply.outages.empty())
      return json_response(200, json{{"cancelled", outage_json(reply.outages.front(), after)}});
    if (reply.outages.empty()) return json_response(200, json{{"outage", nullptr}});
    return json_response(reply.http_status, outage_json(reply.outages.front(), after));
  });
  r.add("GET", "/v1/machines", [&ctx, machines](const admin::request& req) {
    if (req.path != "/v1/machines" && req.path != "/v1/machines/")
      return admin::error_response(404, "no such resource");
    const auto now = ctx.clock().now();
    const auto limit = limit_of(req);
    std::map<std::string, json> by_machine;
    for (const auto& m : machines)
      by_machine[m.id] = json{{"id", m.id},
                              {"capabilities", m.capabilities},
                              {"health_threshold", m.health_threshold},
                              {"maintenance_hours", m.maintenance_hours},
                              {"state", "up"},
                              {"outages", json::array()}};
    json outages = json::array();
    std::uint64_t rescheduled = 0, delayed = 0, cancelled = 0, moved = 0, released = 0, total = 0;
    auto st = tables::outages.for_each(ctx.store(), [&](std::string_view, outage_record&& o) {
      ++total;
      moved += o.holds_moved;
      released += o.holds_released;
      for (const auto& e : o.effects) {
        if (e.outcome == replan_outcome::rescheduled) ++rescheduled;
        if (e.outcome == replan_outcome::delayed) ++delayed;
        if (e.outcome == replan_outcome::cancelled) ++cancelled;
      }
      const std::string state = outage_state(o, now);
      if (auto it = by_machine.find(o.resource);
          it != by_machine.end() && (state == "active" || state == "planned")) {
        if (state == "active") it->second["state"] = "down";
        it->second["outages"].push_back(o.outage_id);
      }
      if (outages.size() < limit) outages.push_back(outage_json(o, now));
      return true;
    });
    if (!st) return admin::error_response(500, st.to_string());
    json list = json::array();
    for (auto& [id, m] : by_machine) list.push_back(std::move(m));
    return json_response(200, json{{"machines", std::move(list)},
                                   {"outages", std::move(outages)},
                                   {"totals", json{{"outages", total},
                                                   {"rescheduled", rescheduled},
                                                   {"delayed", delayed},
                                                   {"cancelled", cancelled},
                                                   {"holds_moved", moved},
                                                   {"holds_released", released}}}});
  });
}

void add_capacity_routes(admin::router& r, node_context& ctx, caf::actor_system& sys,
                         const caf::actor& broker, int timeout_ms) {
  r.add("POST", "/v1/capacity/offers", [&sys, broker, timeout_ms](const admin::request& req) {
    if (req.path != "/v1/capacity/offers") return admin::error_response(404, "no such resource");
    auto parsed = parse_publish(req.body);
    if (!parsed) return admin::error_response(400, parsed.error().message());
    auto reply =
        publish_offer(sys, broker, std::move(*parsed), std::chrono::milliseconds(timeout_ms));
    if (reply.http_status != 201) return admin::error_response(reply.http_status, reply.error);
    return json_response(201, capacity_offer_json(reply.offer, 0));
  });
  r.add("DELETE", "/v1/capacity/offers/", [&sys, broker, timeout_ms](const admin::request& req) {
    const std::string prefix = "/v1/capacity/offers/";
    const auto id = req.path.substr(prefix.size());
    if (id.empty()) return admin::error_response(404, "no offer id");
    auto reply = withdraw_offer(sys, broker, id, std::chrono::milliseconds(timeout_ms));
    if (reply.http_status != 200) return admin::error_response(reply.http_status, reply.error);
    return json_response(200, capacity_offer_json(reply.offer, 0));
  });
  r.add("GET", "/v1/capacity/offers", [&ctx](const admin::request& req) {
    if (req.path != "/v1/capacity/offers" && req.path != "/v1/capacity/offers/")
      return admin::error_response(404, "no such resource");
    const auto now = ctx.clock().now();
    const auto limit = limit_of(req);
    json published = json::array(), received = json::array();
    auto st = tables::capacity_offers.for_each(ctx.store(),
                                               [&](std::string_view, capacity_offer_record&& o) {
                                                 published.push_back(capacity_offer_json(o, now));
                                                 return published.size() < limit;
                                               });
    if (!st) return admin::error_response(500, st.to_string());
    st = tables::capacity_received.for_each(ctx.store(),
                                            [&](std::string_view, capacity_offer_record&& o) {
                                              // Expired offers vanish (the broker erases them;
                                              // until then, hidden).
                                              if (now <= o.valid_until_us)
                                                received.push_back(capacity_offer_json(o, now));
                                              return received.size() < limit;
                                            });
    if (!st) return admin::error_response(500, st.to_string());
    return json_response(
        200, json{{"published", std::move(published)}, {"received", std::move(received)}});
  });
  r.add("POST", "/v1/capacity/bookings", [&sys, broker, timeout_ms](const admin::request& req) {
    if (req.path != "/v1/capacity/bookings") return admin::error_response(404, "no such resource");
    auto parsed = parse_booking(req.body);
    if (!parsed) return admin::error_response(400, parsed.error().message());
    auto reply = book_offer(sys, broker, std::move(*parsed), std::chrono::milliseconds(timeout_ms));
    if (reply.http_status == 201)
      return json_response(201, capacity_booking_json(reply.booking, "booker"));
    if (reply.http_status == 409 && !reply.booking.booking_id.empty()) {
      auto body = capacity_booking_json(reply.booking, "booker");
      body["error"] = "refused: " + reply.error;
      return json_response(409, body);
    }
    return admin::error_response(reply.http_status, reply.error);
  });
  r.add("GET", "/v1/capacity/bookings", [&ctx](const admin::request& req) {
    if (req.path != "/v1/capacity/bookings" && req.path != "/v1/capacity/bookings/")
      return admin::error_response(404, "no such resource");
    const auto limit = limit_of(req);
    json list = json::array();
    auto st = tables::capacity_bookings.for_each(
        ctx.store(), [&](std::string_view, capacity_booking_record&& b) {
          list.push_back(capacity_booking_json(b, "booker"));
          return list.size() < limit;
        });
    if (!st) return admin::error_response(500, st.to_string());
    std::size_t sold = 0;
    st = tables::capacity_sold.for_each(ctx.store(),
                                        [&](std::string_view, capacity_booking_record&& b) {
                                          list.push_back(capacity_booking_json(b, "publisher"));
                                          return ++sold < limit;
                                        });
    if (!st) return admin::error_response(500, st.to_string());
    return json_response(200, json{{"bookings", std::move(list)}});
  });
}

status install_roles(node& n, const config_file& file) {
  auto installed = install_roles_with_handles(n, file);
  return installed ? status::ok() : installed.error();
}

result<installed_roles> install_roles_with_handles(node& n, const config_file& file) {
  auto roles = parse_roles(file);
  if (!roles) return roles.error();
  auto& sys = n.system();
  auto& ctx = n.context();
  std::optional<caf::actor> buyer;
  if (roles->buyer) {
    auto b = spawn_buyer(sys, ctx, *roles->buyer);
    if (!b) return b.error();
    buyer = *b;
    n.route({wire::message_type::propose, wire::message_type::refuse, wire::message_type::confirm,
             wire::message_type::failure, wire::message_type::production_event},
            *buyer);
  }
  std::optional<caf::actor> participant;
  std::vector<resource_spec> resources;  // machines of a factory, items of a supplier
  if (roles->factory) {
    resources = make_factory_policy(*roles->factory)->resources();
    auto p = spawn_factory(sys, ctx, *roles->factory, buyer ? *buyer : caf::actor{});
    if (!p) return p.error();
    participant = *p;
  } else if (roles->supplier) {
    resources = make_supplier_policy(*roles->supplier)->resources();
    auto p = spawn_supplier(sys, ctx, *roles->supplier);
    if (!p) return p.error();
    participant = *p;
  }
  // The executor carries out what the participant sells (executor.hpp).
  std::optional<caf::actor> executor;
  if (participant) {
    executor_config xc;
    xc.shop_floor = roles->factory ? roles->factory->shop_floor : roles->supplier->shop_floor;
    auto x = spawn_executor(sys, ctx, xc);
    if (!x) return x.error();
    executor = *x;
    caf::anon_send(*participant, executor_atom::value, *executor);
    if (buyer) caf::anon_send(*buyer, executor_atom::value, *executor);
    // A component order that cannot be sourced again ends the contract it backs.
    if (buyer) caf::anon_send(*buyer, participant_atom::value, *participant);
  }
  add_machine_routes(n.admin_routes(), ctx, sys, participant ? &*participant : nullptr,
                     roles->factory ? roles->factory->machines : std::vector<machine_config>{});
  add_execution_routes(n.admin_routes(), sys, executor ? &*executor : nullptr);
  // After the roles started: a config their stored state rejects changes nothing.
  record_identity(ctx, resources);
  if (participant)
    n.route({wire::message_type::cfp, wire::message_type::accept, wire::message_type::reject,
             wire::message_type::cancel},
            *participant);
  // Every node runs a directory: it answers for its own identifiers.
  auto dir_cfg = parse_directory(file, n.config());
  if (!dir_cfg) return dir_cfg.error();
  auto self = make_directory_self(n.config(), *dir_cfg, *roles);
  if (!self) return self.error();
  std::vector<transport::peer> peers(n.config().peers.begin(), n.config().peers.end());
  // A lookup waits for every hop's timeout at most, plus a margin.
  const int lookup_timeout_ms =
      static_cast<int>(std::min<std::int64_t>(dir_cfg->query_timeout_ms + 1000, 600'000));
  auto directory = spawn_directory(sys, ctx, std::move(*self), *dir_cfg, std::move(peers));
  n.route({wire::message_type::resolve, wire::message_type::resolution}, directory);
  add_directory_routes(n.admin_routes(), sys, directory, lookup_timeout_ms);

  add_admin_routes(n.admin_routes(), ctx, sys, buyer ? &*buyer : nullptr);
  // Capacity sharing: every node can receive and book offers; a factory
  // also publishes them, on its machines' calendars.
  capacity_config cap;
  if (roles->factory) {
    cap.currency = roles->factory->currency;
    for (const auto& m : roles->factory->machines) cap.resources.push_back({m.id, m.capabilities});
    if (participant) cap.participant = *participant;
  }
  const auto offer_bit = message_type_set{1}
                         << static_cast<unsigned>(wire::message_type::capacity_offer);
  for (const auto& p : n.config().peers)
    if (p.send & offer_bit) cap.audience.push_back(p.id);
  auto broker = spawn_capacity_broker(sys, ctx, std::move(cap));
  if (!broker) return broker.error();
  n.route({wire::message_type::capacity_offer, wire::message_type::book_capacity,
           wire::message_type::capacity_booked, wire::message_type::capacity_refused,
           wire::message_type::capacity_cancelled},
          *broker);
  // Outages cancel the capacity bookings they cover through the broker.
  if (participant) caf::anon_send(*participant, broker_atom::value, *broker);
  add_capacity_routes(n.admin_routes(), ctx, sys, *broker);
  installed_roles out;
  out.directory = directory;
  if (buyer) out.buyer = *buyer;
  if (participant) out.participant = *participant;
  if (executor) out.executor = *executor;
  out.capacity = *broker;
  return out;
}

}  // namespace gearmesh::actors
