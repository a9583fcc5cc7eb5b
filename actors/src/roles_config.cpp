// Parsing of the role sections; the schema is documented in roles_config.hpp.
#include "gearmesh/actors/roles_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "gearmesh/actors/directory.hpp"
#include "gearmesh/ident.hpp"

namespace gearmesh::actors {

const source_config* buyer_config::source(std::string_view item) const {
  for (const auto& s : sources)
    if (s.item == item) return &s;
  return nullptr;
}

const factory_item_config* factory_config::item(std::string_view id) const {
  for (const auto& i : items)
    if (i.id == id) return &i;
  return nullptr;
}

const supplier_item_config* supplier_config::item(std::string_view id) const {
  for (const auto& i : items)
    if (i.id == id) return &i;
  return nullptr;
}

namespace {

constexpr std::size_t id_length_max = 128;
constexpr std::size_t list_length_max = 1024;
constexpr std::int64_t ms_per_day = 24 * 3600 * 1000;

/// Node ids, machine ids and item ids: 1..128 characters of [A-Za-z0-9_.-].
/// In particular never '/', which separates parts of keys and identifiers.
bool is_valid_id(std::string_view s) {
  if (s.empty() || s.size() > id_length_max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool contains_str(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// Reads one TOML table of a role section. The first error sticks; keys no
/// read asked for are reported as unknown by finish().
class reader {
 public:
  reader(const config_file& file, const toml::table& t, std::string prefix, status& st)
      : file_(file), table_(t), prefix_(std::move(prefix)), st_(st) {}

  std::string field(std::string_view key) const { return prefix_ + "." + std::string(key); }

  const toml::node* get(std::string_view key, bool required) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (!n && required) fail(nullptr, field(key), "missing required key");
    return n;
  }

  void id(std::string_view key, std::string& out) {
    const toml::node* n = get(key, true);
    if (!n || !ok()) return;
    if (!n->is_string())
      return fail(n, field(key), std::string("expected a string, got ") + toml_type_name(*n));
    out = n->as_string()->get();
    if (!is_valid_id(out))
      fail(n, field(key), "expected 1 to 128 characters from [A-Za-z0-9_.-], got \"" + out + "\"");
  }

  void currency(std::string_view key, std::string& out) {
    const toml::node* n = get(key, false);
    if (!n || !ok()) return;
    const auto* s = n->as_string();
    const bool valid =
        s && s->get().size() == 3 &&
        std::all_of(s->get().begin(), s->get().end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    if (!valid) return fail(n, field(key), "expected an ISO 4217 code like \"EUR\"");
    out = s->get();
  }

  /// "clock" (default) or "shop_floor": who advances the contracts sold.
  void execution(std::string_view key, bool& shop_floor) {
    const toml::node* n = get(key, false);
    if (!n || !ok()) return;
    const auto* s = n->as_string();
    if (!s || (s->get() != "clock" && s->get() != "shop_floor"))
      return fail(n, field(key), "expected \"clock\" or \"shop_floor\"");
    shop_floor = s->get() == "shop_floor";
  }

  void integer(std::string_view key, bool required, std::int64_t min, std::int64_t max,
               std::int64_t& out) {
    const toml::node* n = get(key, required);
    if (!n || !ok()) return;
    if (!n->is_integer())
      return fail(n, field(key), std::string("expected an integer, got ") + toml_type_name(*n));
    const auto v = n->as_integer()->get();
    if (v < min || v > max)
      return fail(n, field(key),
                  "expected an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                      ", got " + std::to_string(v));
    out = v;
  }

  void ids(std::string_view key, std::vector<std::string>& out, std::string_view what) {
    const toml::node* n = get(key, true);
    if (!n || !ok()) return;
    const auto* a = n->as_array();
    if (!a || a->empty() || a->size() > list_length_max)
      return fail(n, field(key), std::string("expected a non-empty array of ") + std::string(what));
    std::set<std::string> seen;
    for (const auto& e : *a) {
      const auto* s = e.as_string();
      if (!s || !is_valid_id(s->get()))
        return fail(&e, field(key),
                    std::string("expected ") + std::string(what) +
                        " of 1 to 128 characters from [A-Za-z0-9_.-]");
      if (!seen.insert(s->get()).second)
        return fail(&e, field(key), "duplicate \"" + s->get() + "\"");
      out.push_back(s->get());
    }
  }

  /// The tables of array-of-tables `key`, each with its field prefix.
  std::vector<std::pair<const toml::table*, std::string>> tables(std::string_view key,
                                                                 bool required = true) {
    std::vector<std::pair<const toml::table*, std::string>> out;
    const toml::node* n = get(key, required);
    if (!n || !ok()) return out;
    const auto* a = n->as_array();
    if (!a || a->empty() || a->size() > list_length_max) {
      fail(n, field(key), "expected one or more [[" + field(key) + "]] tables");
      return out;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto* t = (*a)[i].as_table();
      const auto name = field(key) + "[" + std::to_string(i) + "]";
      if (!t) {
        fail(&(*a)[i], name, "expected a table");
        return {};
      }
      out.emplace_back(t, name);
    }
    return out;
  }

  void finish() {
    if (!ok()) return;
    for (const auto& [key, value] : table_) {
      if (!known_.count(std::string(key.str())))
        return fail(&value, field(key.str()), "unknown key");
    }
  }

  void fail(const toml::node* where, std::string_view fld, std::string_view what) {
    if (st_.is_ok()) st_ = file_.error(where ? where : &table_, fld, what);
  }
  bool ok() const { return st_.is_ok(); }
  const toml::table& table() const { return table_; }

 private:
  const config_file& file_;
  const toml::table& table_;
  std::string prefix_;
  status& st_;
  std::set<std::string> known_;
};

buyer_config parse_buyer(const config_file& file, const toml::table& t, status& st) {
  buyer_config c;
  reader r(file, t, "buyer", st);
  r.currency("currency", c.currency);
  r.integer("proposal_window_ms", false, 1, 3600 * 1000, c.proposal_window_ms);
  r.integer("confirm_timeout_ms", false, 1, ms_per_day, c.confirm_timeout_ms);
  for (const auto& [tt, name] : r.tables("sources")) {
    reader s(file, *tt, name, st);
    source_config sc;
    s.id("item", sc.item);
    s.ids("sellers", sc.sellers, "node ids");
    s.finish();
    if (!st.is_ok()) break;
    if (c.source(sc.item)) {
      s.fail(tt->get("item"), name + ".item", "item \"" + sc.item + "\" is listed twice");
      break;
    }
    c.sources.push_back(std::move(sc));
  }
  r.finish();
  return c;
}

factory_config parse_factory(const config_file& file, const toml::table& t, status& st) {
  factory_config c;
  reader r(file, t, "factory", st);
  r.currency("currency", c.currency);
  r.integer("hold_ttl_ms", false, 1, ms_per_day, c.hold_ttl_ms);
  r.integer("bucket_minutes", false, 1, 7 * 24 * 60, c.bucket_minutes);
  r.integer("margin_pct", false, 0, 1000, c.margin_pct);
  r.integer("horizon_days", false, 1, 3650, c.horizon_days);
  r.integer("component_window_ms", false, 1, 3600 * 1000, c.component_window_ms);
  r.integer("reschedule_delay_max_hours", false, 0, 90 * 24, c.reschedule_delay_max_hours);
  r.execution("execution", c.shop_floor);
  std::set<std::string> capabilities;
  for (const auto& [tt, name] : r.tables("machines")) {
    reader m(file, *tt, name, st);
    machine_config mc;
    m.id("id", mc.id);
    m.ids("capabilities", mc.capabilities, "capability names");
    m.integer("rate_cents_per_hour", true, 0, std::int64_t{1} << 40, mc.rate_cents_per_hour);
    mc.capacity_per_bucket = c.bucket_minutes;
    m.integer("capacity_per_bucket", false, 1, 1'000'000, mc.capacity_per_bucket);
    m.integer("energy_wh_per_hour", false, 0, 1'000'000'000, mc.energy_wh_per_hour);
    m.integer("health_threshold", false, 0, 100, mc.health_threshold);
    m.integer("maintenance_hours", false, 1, 90 * 24, mc.maintenance_hours);
    m.finish();
    if (!st.is_ok()) break;
    if (std::any_of(c.machines.begin(), c.machines.end(),
                    [&](const machine_config& x) { return x.id == mc.id; })) {
      m.fail(tt->get("id"), name + ".id", "machine \"" + mc.id + "\" is listed twice");
      break;
    }
    capabilities.insert(mc.capabilities.begin(), mc.capabilities.end());
    c.machines.push_back(std::move(mc));
  }
  for (const auto& [tt, name] : r.tables("items")) {
    reader i(file, *tt, name, st);
    factory_item_config ic;
    i.id("id", ic.id);
    for (const auto& [ot, oname] : i.tables("operations")) {
      reader o(file, *ot, oname, st);
      operation_config oc;
      o.id("capability", oc.capability);
      o.integer("minutes_per_unit", true, 0, 100'000, oc.minutes_per_unit);
      o.integer("setup_minutes", false, 0, 100'000, oc.setup_minutes);
      o.finish();
      if (!st.is_ok()) break;
      if (!capabilities.count(oc.capability)) {
        o.fail(ot->get("capability"), oname + ".capability",
               "no machine offers \"" + oc.capability + "\"");
        break;
      }
      if (oc.minutes_per_unit == 0 && oc.setup_minutes == 0) {
        o.fail(ot, oname, "minutes_per_unit and setup_minutes are both 0");
        break;
      }
      ic.operations.push_back(std::move(oc));
    }
    for (const auto& [ct, cname] : i.tables("components", false)) {
      reader k(file, *ct, cname, st);
      component_config cc;
      k.id("item", cc.item);
      k.integer("quantity", false, 1, 10'000, cc.quantity);
      k.finish();
      if (!st.is_ok()) break;
      if (cc.item == ic.id) {
        k.fail(ct->get("item"), cname + ".item", "an item cannot be its own component");
        break;
      }
      ic.components.push_back(std::move(cc));
    }
    i.finish();
    if (!st.is_ok()) break;
    if (c.item(ic.id)) {
      i.fail(tt->get("id"), name + ".id", "item \"" + ic.id + "\" is listed twice");
      break;
    }
    c.items.push_back(std::move(ic));
  }
  r.finish();
  return c;
}

supplier_config parse_supplier(const config_file& file, const toml::table& t, status& st) {
  supplier_config c;
  reader r(file, t, "supplier", st);
  r.currency("currency", c.currency);
  r.integer("hold_ttl_ms", false, 1, ms_per_day, c.hold_ttl_ms);
  r.integer("horizon_days", false, 1, 3650, c.horizon_days);
  r.execution("execution", c.shop_floor);
  for (const auto& [tt, name] : r.tables("items")) {
    reader i(file, *tt, name, st);
    supplier_item_config ic;
    i.id("id", ic.id);
    i.integer("unit_price_cents", true, 0, std::int64_t{1} << 40, ic.unit_price_cents);
    i.integer("lead_time_days", true, 0, 3650, ic.lead_time_days);
    i.integer("daily_capacity", true, 1, 1'000'000, ic.daily_capacity);
    i.finish();
    if (!st.is_ok()) break;
    if (c.item(ic.id)) {
      i.fail(tt->get("id"), name + ".id", "item \"" + ic.id + "\" is listed twice");
      break;
    }
    c.items.push_back(std::move(ic));
  }
  r.finish();
  return c;
}

/// Every component is made here or bought, and nothing is (indirectly) its
/// own component.
status check_bill_of_materials(const config_file& file, const factory_config& f,
                               const std::optional<buyer_config>& buyer) {
  const auto* items = file.root().get("factory")->as_table()->get("items")->as_array();
  for (std::size_t i = 0; i < f.items.size(); ++i) {
    const auto* it = (*items)[i].as_table();
    for (std::size_t k = 0; k < f.items[i].components.size(); ++k) {
      const auto& c = f.items[i].components[k];
      if (f.item(c.item) || (buyer && buyer->source(c.item))) continue;
      const auto* node = (*it->get("components")->as_array())[k].as_table()->get("item");
      return file.error(
          node,
          "factory.items[" + std::to_string(i) + "].components[" + std::to_string(k) + "].item",
          "\"" + c.item +
              "\" is neither made here ([[factory.items]]) nor bought "
              "([[buyer.sources]])");
    }
  }
  // Cycles among the items made here: depth-first, 0 new, 1 on the path, 2 done.
  std::map<std::string, int> mark;
  std::function<std::optional<std::string>(const factory_item_config&)> visit =
      [&](const factory_item_config& item) -> std::optional<std::string> {
    auto& m = mark[item.id];
    if (m == 1) return item.id;
    if (m == 2) return std::nullopt;
    m = 1;
    for (const auto& c : item.components)
      if (const auto* sub = f.item(c.item))
        if (auto cycle = visit(*sub)) return cycle;
    mark[item.id] = 2;
    return std::nullopt;
  };
  for (const auto& item : f.items)
    if (auto cycle = visit(item))
      return file.error(file.root().get("factory"), "factory.items",
                        "item \"" + *cycle +
                            "\" is its own component (a cycle in the bill of "
                            "materials)");
  return status::ok();
}

/// Optional array of capability names (may be empty).
void capability_list(reader& r, std::string_view key, std::vector<std::string>& out) {
  const toml::node* n = r.get(key, false);
  if (!n || !r.ok()) return;
  const auto* a = n->as_array();
  if (!a || a->size() > entry_capabilities_max)
    return r.fail(n, r.field(key),
                  "expected an array of at most " + std::to_string(entry_capabilities_max) +
                      " capability names");
  for (const auto& e : *a) {
    const auto* s = e.as_string();
    if (!s || !is_valid_id(s->get()))
      return r.fail(&e, r.field(key),
                    "expected capability names of 1 to 128 characters from [A-Za-z0-9_.-]");
    if (!contains_str(out, s->get())) out.push_back(s->get());
  }
}

}  // namespace

result<directory_config> parse_directory(const config_file& file, const node_config& node) {
  directory_config c;
  const toml::node* n = file.root().get("directory");
  if (!n) return c;
  const auto* t = n->as_table();
  if (!t)
    return file.error(n, "directory", std::string("expected a table, got ") + toml_type_name(*n));
  status st;
  reader r(file, *t, "directory", st);
  auto is_peer = [&](const std::string& id) {
    return std::any_of(node.peers.begin(), node.peers.end(),
                       [&](const peer_config& p) { return p.id == id; });
  };
  if (const toml::node* root = r.get("root", false); root && r.ok()) {
    const auto* s = root->as_string();
    if (!s || !ident::is_valid_authority(s->get()))
      r.fail(root, "directory.root", "expected the node id of a directory, e.g. \"registry\"");
    else if (s->get() != node.node_id && !is_peer(s->get()))
      r.fail(root, "directory.root", "\"" + s->get() + "\" is not a configured [[peers]] id");
    else
      c.root = s->get();
  }
  if (const toml::node* e = r.get("endpoint", false); e && r.ok()) {
    const auto* s = e->as_string();
    if (!s || s->get().empty() || s->get().size() > 255 ||
        s->get().find("://") == std::string::npos)
      r.fail(e, "directory.endpoint", "expected a ZeroMQ endpoint like \"tcp://10.0.0.7:7100\"");
    else
      c.endpoint = s->get();
  }
  std::int64_t v = c.ttl_s;
  r.integer("ttl_s", false, 0, 7 * 24 * 3600, v);
  c.ttl_s = static_cast<std::uint32_t>(v);
  v = static_cast<std::int64_t>(c.cache_entries_max);
  r.integer("cache_entries_max", false, 0, 1'000'000, v);
  c.cache_entries_max = static_cast<std::size_t>(v);
  r.integer("query_timeout_ms", false, 1, 600'000, c.query_timeout_ms);
  v = c.hops_max;
  r.integer("hops_max", false, 0, 16, v);
  c.hops_max = static_cast<std::uint32_t>(v);
  capability_list(r, "capabilities", c.capabilities);
  if (t->get("delegations") && r.ok()) {
    for (const auto& [tt, name] : r.tables("delegations")) {
      reader d(file, *tt, name, st);
      delegation_config dc;
      if (const toml::node* p = d.get("prefix", true); p && d.ok()) {
        const auto* s = p->as_string();
        if (!s || !ident::is_valid_authority(s->get()))
          d.fail(p, name + ".prefix",
                 "expected an authority prefix like \"acme\" or \"acme.plant1\"");
        else
          dc.prefix = s->get();
      }
      if (const toml::node* p = d.get("node", true); p && d.ok()) {
        const auto* s = p->as_string();
        if (!s || !ident::is_valid_authority(s->get()))
          d.fail(p, name + ".node", "expected a node id");
        else if (s->get() != node.node_id && !is_peer(s->get()))
          d.fail(p, name + ".node", "\"" + s->get() + "\" is not a configured [[peers]] id");
        else
          dc.node = s->get();
      }
      capability_list(d, "capabilities", dc.capabilities);
      d.finish();
      if (!st.is_ok()) break;
      if (std::any_of(c.delegations.begin(), c.delegations.end(),
                      [&](const delegation_config& x) { return x.prefix == dc.prefix; })) {
        d.fail(tt->get("prefix"), name + ".prefix",
               "prefix \"" + dc.prefix + "\" is delegated twice");
        break;
      }
      c.delegations.push_back(std::move(dc));
    }
  }
  r.finish();
  if (!st.is_ok()) return st;
  return c;
}

result<roles_config> parse_roles(const config_file& file) {
  roles_config roles;
  status st;
  auto section = [&](const char* name) -> const toml::table* {
    const toml::node* n = file.root().get(name);
    if (!n || !st.is_ok()) return nullptr;
    if (const auto* t = n->as_table()) return t;
    st = file.error(n, name, std::string("expected a table, got ") + toml_type_name(*n));
    return nullptr;
  };
  if (const auto* t = section("buyer")) roles.buyer = parse_buyer(file, *t, st);
  if (const auto* t = section("factory")) roles.factory = parse_factory(file, *t, st);
  if (const auto* t = section("supplier")) roles.supplier = parse_supplier(file, *t, st);
  if (!st.is_ok()) return st;
  if (roles.factory && roles.supplier)
    return file.error(file.root().get("supplier"), "supplier",
                      "a node hosts at most one participant role: [factory] or [supplier]");
  if (roles.factory) {
    if (auto s = check_bill_of_materials(file, *roles.factory, roles.buyer); !s) return s;
  }
  return roles;
}

}  // namespace gearmesh::actors
