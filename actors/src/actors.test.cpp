// The role actors end to end in one process: a real CAF actor system, one
// test node_context per node (real LMDB store, sync off, real group commit
// writer) and a tiny in-process network that carries the real encoded frames
// from a node's durable commit to the receiving node's routed actor.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "caf_messages.hpp"
#include "gearmesh/actors/buyer.hpp"
#include "gearmesh/actors/directory.hpp"
#include "gearmesh/actors/executor.hpp"
#include "gearmesh/actors/factory.hpp"
#include "gearmesh/actors/install.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/actors/supplier.hpp"
#include "gearmesh/actors/verify.hpp"
#include "gearmesh/wire/codec.hpp"
#include "temp_dir.hpp"
#include "test_network.hpp"

namespace gearmesh::actors {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// --- in-process network -----------------------------------------------------

using testing::test_network;
using testing::test_node;

// --- the reference network, small -------------------------------------------

const char* velo_toml = R"(
[buyer]
currency = "EUR"
proposal_window_ms = 3000
confirm_timeout_ms = 3000
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft", "alloyframe"]
[[buyer.sources]]
item = "BATTERY"
sellers = ["cellpack"]
)";

/// A buyer sourcing `item` from `sellers` (TOML array items, e.g. "\"a\", \"b\"").
std::string buyer_toml(int proposal_window_ms, const std::string& item,
                       const std::string& sellers) {
  return "[buyer]\nproposal_window_ms = " + std::to_string(proposal_window_ms) +
         "\n[[buyer.sources]]\nitem = \"" + item + "\"\nsellers = [" + sellers + "]\n";
}

std::string factory_toml(int saw, int weld, int paint, int hold_ttl_ms) {
  return "[factory]\nhold_ttl_ms = " + std::to_string(hold_ttl_ms) + R"(
bucket_minutes = 60
margin_pct = 15
[[factory.machines]]
id = "saw1"
capabilities = ["sawing"]
energy_wh_per_hour = 6000
rate_cents_per_hour = )" +
         std::to_string(saw) + R"(
[[factory.machines]]
id = "weld1"
capabilities = ["welding"]
rate_cents_per_hour = )" +
         std::to_string(weld) + R"(
[[factory.machines]]
id = "weld2"
capabilities = ["welding"]
rate_cents_per_hour = )" +
         std::to_string(weld + 500) + R"(
capacity_per_bucket = 30
[[factory.machines]]
id = "paint1"
capabilities = ["coating"]
rate_cents_per_hour = )" +
         std::to_string(paint) + R"(
[[factory.items]]
id = "FRAME"
[[factory.items.operations]]
capability = "sawing"
minutes_per_unit = 6
[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 10
setup_minutes = 5
[[factory.items.operations]]
capability = "coating"
minutes_per_unit = 8
)";
}

const char* cellpack_toml = R"(
[supplier]
hold_ttl_ms = 5000
[[supplier.items]]
id = "BATTERY"
unit_price_cents = 18000
lead_time_days = 3
daily_capacity = 40
)";

roles_config roles_of(const std::string& text, const std::string& name) {
  auto file = config_file::parse(text, name);
  EXPECT_TRUE(file.has_value()) << file.error().to_string();
  auto roles = parse_roles(*file);
  EXPECT_TRUE(roles.has_value()) << roles.error().to_string();
  return *roles;
}

/// A few nodes, their actors and the network, in one actor system.
class world {
 public:
  explicit world(std::filesystem::path dir) : dir_(std::move(dir)) {
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  ~world() {
    for (auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors_.clear();
    buyers_.clear();
    executors_.clear();
    participants_.clear();
    sys_->await_all_actors_done();
    for (auto& [id, n] : nodes_) n->stop();
    nodes_.clear();
    sys_.reset();
  }

  test_node& add_node(const std::string& id, const std::string& toml,
                      timestamp_us clock_offset_us = 0) {
    auto& n = nodes_[id];
    n = std::make_unique<test_node>(id, (dir_ / id).string(), net_, clock_offset_us);
    auto roles = roles_of(toml, id + ".toml");
    if (roles.buyer) {
      auto b = spawn_buyer(*sys_, *n, *roles.buyer);
      EXPECT_TRUE(b.has_value()) << b.error().to_string();
      net_.route(
          id,
          {wire::message_type::propose, wire::message_type::refuse, wire::message_type::confirm,
           wire::message_type::failure, wire::message_type::production_event},
          *b);
      buyers_[id] = *b;
      actors_.push_back(*b);
    }
    std::optional<result<caf::actor>> p;
    caf::actor own_buyer;
    // Nested negotiation only when asked for (a factory with a [buyer] section).
    if (roles.factory && roles.buyer && nested_) own_buyer = buyers_.at(id);
    if (roles.factory) p.emplace(spawn_factory(*sys_, *n, *roles.factory, own_buyer));
    if (roles.supplier) p.emplace(spawn_supplier(*sys_, *n, *roles.supplier));
    if (p) {
      EXPECT_TRUE(p->has_value()) << p->error().to_string();
      net_.route(id,
                 {wire::message_type::cfp, wire::message_type::accept, wire::message_type::reject,
                  wire::message_type::cancel},
                 **p);
      actors_.push_back(**p);
      // The executor, as install_roles wires it.
      executor_config xc;
      xc.shop_floor = roles.factory ? roles.factory->shop_floor : roles.supplier->shop_floor;
      auto x = spawn_executor(*sys_, *n, xc);
      EXPECT_TRUE(x.has_value()) << x.error().to_string();
      caf::anon_send(**p, executor_atom::value, *x);
      if (roles.buyer) caf::anon_send(buyers_.at(id), executor_atom::value, *x);
      if (roles.buyer) caf::anon_send(buyers_.at(id), participant_atom::value, **p);
      executors_[id] = *x;
      participants_[id] = **p;
      actors_.push_back(*x);
    }
    // As install_roles: the node id and calendars (with energy rates) for the KPIs.
    std::vector<resource_spec> specs;
    if (roles.factory) specs = make_factory_policy(*roles.factory)->resources();
    if (roles.supplier) specs = make_supplier_policy(*roles.supplier)->resources();
    record_identity(*n, specs);
    roles_[id] = roles;
    return *n;
  }

  /// Factories with a [buyer] section source their components through it.
  void nested(bool on) { nested_ = on; }
  const caf::actor& executor(const std::string& id) { return executors_.at(id); }

  /// Spawns `id`'s directory (as install_roles does) and routes to it.
  caf::actor add_directory(const std::string& id, directory_config cfg,
                           std::vector<transport::peer> peers) {
    node_config nc;
    nc.node_id = id;
    nc.listen = "tcp://" + id + ":7100";
    nc.insecure = true;
    auto self = make_directory_self(nc, cfg, roles_.at(id));
    EXPECT_TRUE(self.has_value()) << self.error().to_string();
    auto a = spawn_directory(*sys_, node(id), std::move(*self), std::move(cfg), std::move(peers));
    net_.route(id, {wire::message_type::resolve, wire::message_type::resolution}, a);
    actors_.push_back(a);
    return a;
  }

  test_node& node(const std::string& id) { return *nodes_.at(id); }
  test_network& network() { return net_; }
  caf::actor_system& system() { return *sys_; }
  const caf::actor& buyer(const std::string& id) { return buyers_.at(id); }
  const roles_config& roles(const std::string& id) { return roles_.at(id); }

  admin::router admin(const std::string& id) {
    admin::router r;
    auto it = buyers_.find(id);
    add_admin_routes(r, node(id), *sys_, it == buyers_.end() ? nullptr : &it->second);
    auto p = participants_.find(id);
    const auto& roles = roles_.at(id);
    add_machine_routes(r, node(id), *sys_, p == participants_.end() ? nullptr : &p->second,
                       roles.factory ? roles.factory->machines : std::vector<machine_config>{});
    return r;
  }
  const caf::actor& participant(const std::string& id) { return participants_.at(id); }

 private:
  std::filesystem::path dir_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_network net_;
  std::map<std::string, std::unique_ptr<test_node>> nodes_;
  std::map<std::string, caf::actor> buyers_;
  std::map<std::string, caf::actor> executors_;
  std::map<std::string, caf::actor> participants_;
  bool nested_ = false;
  std::map<std::string, roles_config> roles_;
  std::vector<caf::actor> actors_;
};

class actors_test : public ::testing::Test {
 protected:
  gearmesh::testing::temp_dir tmp_;
  std::filesystem::path dir_{tmp_.path()};
};

// --- helpers ----------------------------------------------------------------

using testing::all;
using testing::eventually;
using testing::kept_holds;

bool terminal(order_state s) {
  return s == order_state::contracted || s == order_state::failed || s == order_state::cancelled;
}

admin::response call(const admin::router& r, std::string method, std::string path,
                     std::string body = {}) {
  admin::request req;
  req.method = std::move(method);
  req.path = path;
  req.target = std::move(path);
  req.body = std::move(body);
  return r.dispatch(req);
}

std::string post_order(const admin::router& r, const std::string& item, int quantity,
                       timestamp_us due_us) {
  json body{{"item", item},
            {"quantity", quantity},
            {"due_us", due_us},
            {"attributes", {{"colour", "red"}}}};
  auto resp = call(r, "POST", "/v1/orders", body.dump());
  EXPECT_EQ(resp.status, 201u) << resp.body;
  auto j = json::parse(resp.body);
  EXPECT_EQ(j.at("state"), "negotiating");
  return j.at("order_id").get<std::string>();
}

/// Every contract at a buyer exists with the same terms at its seller, and
/// every contract at a seller exists at its buyer (DESIGN.md invariant 2).
void expect_agreement(world& w, const std::vector<std::string>& nodes) {
  std::map<std::string, std::map<std::string, contract_record>> by_node;
  for (const auto& n : nodes) by_node[n] = all(w.node(n).store(), tables::contracts);
  for (const auto& [n, contracts] : by_node) {
    for (const auto& [id, c] : contracts) {
      const auto& other = c.role == contract_role::buyer ? c.seller : c.buyer;
      ASSERT_TRUE(by_node.count(other)) << other;
      auto it = by_node[other].find(id);
      ASSERT_NE(it, by_node[other].end()) << id << " recorded at " << n << " missing at " << other;
      EXPECT_TRUE(it->second.same_terms(c)) << id;
      EXPECT_NE(it->second.role, c.role);
    }
  }
}

/// Every calendar of `node` satisfies booked + held <= capacity (invariant 1).
void expect_calendars_ok(world& w, const std::string& node) {
  std::vector<resource_spec> specs;
  const auto& roles = w.roles(node);
  if (roles.factory) specs = make_factory_policy(*roles.factory)->resources();
  if (roles.supplier) specs = make_supplier_policy(*roles.supplier)->resources();
  for (const auto& s : specs) {
    auto cal = load_calendar(w.node(node).store(), s);
    ASSERT_TRUE(cal.has_value()) << cal.error().to_string();
    EXPECT_TRUE(cal->check().is_ok()) << node << "/" << s.id << ": " << cal->check().to_string();
  }
}

/// Every order of `buyer` is terminal, no node keeps a hold, and `gearmesh
/// verify`'s checker finds nothing wrong over `nodes`' stores.
void expect_quiet_and_clean(world& w, const std::vector<std::string>& nodes,
                            const std::vector<std::string>& buyers) {
  ASSERT_TRUE(eventually([&] {
    for (const auto& b : buyers)
      for (const auto& [id, o] : all(w.node(b).store(), tables::orders))
        if (!terminal(o.state)) return false;
    for (const auto& n : nodes)
      if (!kept_holds(w.node(n).store(), system_clock().now()).empty() ||
          !all(w.node(n).store(), tables::replans).empty())
        return false;
    return true;
  }));
  std::this_thread::sleep_for(200ms);  // the last acks and events
  std::vector<store_ref> refs;
  for (const auto& n : nodes) refs.push_back({n, &w.node(n).store()});
  verify_options opts;
  opts.now_us = system_clock().now();
  auto report = verify_stores(refs, opts);
  ASSERT_TRUE(report) << report.error().to_string();
  for (const auto& v : report->violations)
    ADD_FAILURE() << to_string(v.kind) << " at " << v.node << " " << v.table << " " << v.key << ": "
                  << v.message;
  expect_agreement(w, nodes);
  for (const auto& n : nodes) expect_calendars_ok(w, n);
}

// --- tests ------------------------------------------------------------------

TEST(policies, factory_and_supplier_pricing) {
  auto f = roles_of(factory_toml(3000, 5000, 4000, 5000), "f.toml");
  ASSERT_TRUE(f.factory);
  auto fp = make_factory_policy(*f.factory);
  wire::cfp c;
  c.item = "FRAME";
  c.quantity = 5;
  c.earliest_start_us = 0;
  auto plan = fp->plan(c, 1000 * us_per_day);
  ASSERT_TRUE(plan.has_value());
  ASSERT_EQ(plan->operations.size(), 3u);
  EXPECT_EQ(plan->operations[0].units, 30);
  EXPECT_EQ(plan->operations[1].units, 55);
  EXPECT_EQ(plan->operations[1].candidates, (std::vector<std::string>{"weld1", "weld2"}));
  EXPECT_EQ(plan->from_us, 1000 * us_per_day);
  std::vector<chosen_step> steps{{"saw1", "p#0", {0, 0, {{0, 30}}}},
                                 {"weld1", "p#1", {0, 0, {{0, 55}}}},
                                 {"paint1", "p#2", {0, 0, {{0, 40}}}}};
  // (30*3000 + 55*5000 + 40*4000) / 60 * 1.15 = 525000 / 60 * 1.15 = 10062.5 -> 10063
  EXPECT_EQ(fp->price(c, steps, 0), 10063);
  c.item = "NOPE";
  EXPECT_FALSE(fp->plan(c, 0).has_value());

  auto s = roles_of(cellpack_toml, "s.toml");
  auto sp = make_supplier_policy(*s.supplier);
  c.item = "BATTERY";
  c.quantity = 10;
  auto sp_plan = sp->plan(c, 1000 * us_per_day);
  ASSERT_TRUE(sp_plan.has_value());
  EXPECT_EQ(sp_plan->from_us, 1003 * us_per_day);
  EXPECT_EQ(sp->price(c, {}, 0), 180000);
  EXPECT_EQ(sp->resources().at(0).capacity, 40);
}

TEST(policies, factory_bill_of_materials) {
  // BIKE: a FRAME made here (its operations first), 2 WHEELs and a SADDLE bought.
  auto f = roles_of(R"(
[buyer]
[[buyer.sources]]
item = "WHEEL"
sellers = ["wheelco"]
[[buyer.sources]]
item = "SADDLE"
sellers = ["saddleco"]
[factory]
margin_pct = 10
component_window_ms = 250
[[factory.machines]]
id = "m1"
capabilities = ["welding", "assembly"]
rate_cents_per_hour = 6000
[[factory.items]]
id = "FRAME"
[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 10
[[factory.items.components]]
item = "WHEEL"
quantity = 1
[[factory.items]]
id = "BIKE"
[[factory.items.operations]]
capability = "assembly"
minutes_per_unit = 5
setup_minutes = 3
[[factory.items.components]]
item = "FRAME"
[[factory.items.components]]
item = "WHEEL"
quantity = 2
[[factory.items.components]]
item = "SADDLE"
)",
                    "bom.toml");
  ASSERT_TRUE(f.factory);
  EXPECT_EQ(f.factory->component_window_ms, 250);
  auto fp = make_factory_policy(*f.factory);
  EXPECT_EQ(fp->component_window_us(), 250 * us_per_ms);
  wire::cfp c;
  c.item = "BIKE";
  c.quantity = 4;
  auto plan = fp->plan(c, 1000 * us_per_day);
  ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
  ASSERT_EQ(plan->operations.size(), 2u);
  EXPECT_EQ(plan->operations[0].units, 40);  // the frames, welded first
  EXPECT_EQ(plan->operations[1].units, 23);  // then the bikes assembled
  // Wheels: 1 per frame + 2 per bike = 12; one saddle per bike.
  EXPECT_EQ(plan->components, (std::vector<component_need>{{"SADDLE", 4}, {"WHEEL", 12}}));
  EXPECT_EQ(plan->min_lead_us, 63 * us_per_min);
  std::vector<chosen_step> steps{{"m1", "p#0", {0, 0, {{0, 60}}}}};
  // (60 min * 6000 / 60 + 5000 components) * 1.10 = (6000 + 5000) * 1.1 = 12100
  EXPECT_EQ(fp->price(c, steps, 5000), 12100);
  c.quantity = 600'000;  // 1.2 M wheels: more than one order may ask for
  EXPECT_FALSE(fp->plan(c, 0).has_value());
}

TEST(roles_config, components_must_be_made_or_bought_and_not_cycle) {
  auto parse = [](const std::string& text) {
    auto f = config_file::parse(text, "x.toml");
    EXPECT_TRUE(f.has_value());
    return parse_roles(*f);
  };
  const std::string head =
      "[factory]\n[[factory.machines]]\nid=\"m1\"\ncapabilities=[\"a\"]\n"
      "rate_cents_per_hour=1\n";
  auto r = parse(head +
                 "[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
                 "minutes_per_unit=1\n[[factory.items.components]]\nitem=\"TUBE\"\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("x.toml:12: factory.items[0].components[0].item: \"TUBE\" "
                                     "is neither made here"),
            std::string::npos)
      << r.error().message();
  r = parse(head +
            "[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
            "minutes_per_unit=1\n[[factory.items.components]]\nitem=\"Y\"\n"
            "[[factory.items]]\nid=\"Y\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
            "minutes_per_unit=1\n[[factory.items.components]]\nitem=\"X\"\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("is its own component"), std::string::npos)
      << r.error().message();
  r = parse(head +
            "[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
            "minutes_per_unit=1\n[[factory.items.components]]\nitem=\"X\"\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cannot be its own component"), std::string::npos)
      << r.error().message();
  r = parse(head +
            "[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
            "minutes_per_unit=1\n[[factory.items.components]]\nitem=\"T\"\nquantity=0\n"
            "[buyer]\n[[buyer.sources]]\nitem=\"T\"\nsellers=[\"s\"]\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("components[0].quantity"), std::string::npos)
      << r.error().message();
}

TEST(roles_config, machines_carry_an_energy_rate) {
  auto parse = [](const std::string& machine_keys) {
    auto f = config_file::parse(
        "[factory]\n[[factory.machines]]\nid=\"m1\"\ncapabilities=[\"a\"]\n"
        "rate_cents_per_hour=1\n" +
            machine_keys +
            "[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\ncapability=\"a\"\n"
            "minutes_per_unit=1\n",
        "e.toml");
    EXPECT_TRUE(f.has_value());
    return parse_roles(*f);
  };
  auto r = parse("");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->factory->machines.at(0).energy_wh_per_hour, 0);
  r = parse("energy_wh_per_hour = 7500\n");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->factory->machines.at(0).energy_wh_per_hour, 7500);
  // The rate reaches the "resources" record through the calendar's spec.
  auto spec = make_factory_policy(*r->factory)->resources();
  EXPECT_EQ(spec.at(0).energy_wh_per_hour, 7500);
  r = parse("energy_wh_per_hour = -1\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("e.toml:6: factory.machines[0].energy_wh_per_hour: expected "
                                     "an integer in 0..1000000000, got -1"),
            std::string::npos)
      << r.error().message();
  r = parse("energy_wh_per_hour = 7.5\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("e.toml:6: factory.machines[0].energy_wh_per_hour: expected "
                                     "an integer"),
            std::string::npos)
      << r.error().message();
  r = parse("energy_kwh = 7\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("factory.machines[0].energy_kwh: unknown key"),
            std::string::npos)
      << r.error().message();
}

TEST(roles_config, errors_name_file_line_and_field) {
  auto parse = [](const std::string& text) {
    auto f = config_file::parse(text, "x.toml");
    EXPECT_TRUE(f.has_value());
    return parse_roles(*f);
  };
  auto r =
      parse("[buyer]\ncurrency = \"EUR\"\n[[buyer.sources]]\nitem = \"FRAME\"\nsellers = []\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::bad_config);
  EXPECT_NE(r.error().message().find("x.toml:5: buyer.sources[0].sellers"), std::string::npos)
      << r.error().message();
  r = parse(
      "[supplier]\nhold_ttl = 5\n[[supplier.items]]\nid=\"A\"\nunit_price_cents=1\n"
      "lead_time_days=1\ndaily_capacity=1\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("supplier.hold_ttl: unknown key"), std::string::npos)
      << r.error().message();
  r = parse(
      "[factory]\n[[factory.machines]]\nid=\"m1\"\ncapabilities=[\"a\"]\n"
      "rate_cents_per_hour=1\n[[factory.items]]\nid=\"X\"\n[[factory.items.operations]]\n"
      "capability=\"b\"\nminutes_per_unit=1\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("x.toml:9: factory.items[0].operations[0].capability: no "
                                     "machine offers \"b\""),
            std::string::npos)
      << r.error().message();
  r = parse("[buyer]\nconfirm_timeout_ms = -1\n[[buyer.sources]]\nitem=\"A\"\nsellers=[\"s\"]\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("x.toml:2: buyer.confirm_timeout_ms"), std::string::npos);
  r = parse(std::string(velo_toml) + "[node]\nid = \"velo\"\n");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->buyer->sources.size(), 2u);
  EXPECT_FALSE(r->factory);
}

TEST_F(actors_test, orders_contract_with_the_cheapest_feasible_seller) {
  world w(dir_);
  w.add_node("velo", velo_toml);
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 5000));
  w.add_node("cellpack", cellpack_toml);
  auto api = w.admin("velo");
  const auto due = system_clock().now() + 30 * us_per_day;

  std::vector<std::string> frames, batteries;
  for (int i = 0; i < 6; ++i) frames.push_back(post_order(api, "FRAME", 5 + i, due));
  for (int i = 0; i < 2; ++i) batteries.push_back(post_order(api, "BATTERY", 30, due));
  EXPECT_EQ(frames.front(), "velo/order/1");

  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    for (const auto& [id, o] : all(velo, tables::orders))
      if (!terminal(o.state)) return false;
    return true;
  }));
  // Losers release their holds once rejected; winners' holds became bookings.
  ASSERT_TRUE(eventually([&] {
    return kept_holds(w.node("alloyframe").store(), system_clock().now()).empty() &&
           kept_holds(w.node("framecraft").store(), system_clock().now()).empty() &&
           kept_holds(w.node("cellpack").store(), system_clock().now()).empty();
  }));

  auto orders = all(velo, tables::orders);
  ASSERT_EQ(orders.size(), 8u);
  auto contracts = all(velo, tables::contracts);
  ASSERT_EQ(contracts.size(), 8u);
  for (const auto& [id, o] : orders) {
    ASSERT_EQ(o.state, order_state::contracted) << id << ": " << o.reason;
    const auto& c = contracts.at(o.contract_id);
    const bool frame = o.item == "FRAME";
    EXPECT_EQ(c.seller, frame ? "framecraft" : "cellpack") << id;
    EXPECT_EQ(c.state, contract_state::active);
    EXPECT_EQ(c.quantity, o.quantity);
    EXPECT_LE(c.promised_due_us, o.due_us);
    if (frame) {
      ASSERT_EQ(o.proposals.size(), 2u) << id;
      for (const auto& p : o.proposals) {
        if (p.seller == "alloyframe") {
          EXPECT_EQ(p.state, proposal_state::rejected);
          EXPECT_GT(p.price_cents, c.price_cents);
        } else {
          EXPECT_EQ(p.state, proposal_state::accepted);
        }
      }
    } else {
      // 30 units at 40/day from now + 3 days: two days of capacity.
      EXPECT_EQ(c.price_cents, 30 * 18000);
      EXPECT_GE(c.promised_start_us, o.created_us + 3 * us_per_day);
    }
  }
  expect_agreement(w, {"velo", "framecraft", "alloyframe", "cellpack"});
  for (const auto& n : {"framecraft", "alloyframe", "cellpack"}) expect_calendars_ok(w, n);
  EXPECT_EQ(all(w.node("framecraft").store(), tables::bookings).size(), 6u * 3u);
  EXPECT_TRUE(all(w.node("alloyframe").store(), tables::bookings).empty());
  for (const auto& [id, o] : all(w.node("alloyframe").store(), tables::offers))
    EXPECT_EQ(o.state, offer_state::rejected) << id;
  EXPECT_EQ(all(w.node("cellpack").store(), tables::bookings).size(), 2u);

  // The admin API reads the same state.
  auto list = call(api, "GET", "/v1/orders");
  ASSERT_EQ(list.status, 200u);
  auto lj = json::parse(list.body);
  ASSERT_EQ(lj.at("orders").size(), 8u);
  auto one = call(api, "GET", "/v1/orders/" + frames[2]);
  ASSERT_EQ(one.status, 200u) << one.body;
  auto oj = json::parse(one.body);
  EXPECT_EQ(oj.at("order_id"), frames[2]);
  EXPECT_EQ(oj.at("state"), "contracted");
  EXPECT_EQ(oj.at("quantity"), 7);
  EXPECT_EQ(oj.at("contract").at("seller"), "framecraft");
  EXPECT_EQ(oj.at("contract").at("role"), "buyer");
  EXPECT_EQ(oj.at("contract").at("currency"), "EUR");
  EXPECT_EQ(oj.at("contract").at("state"), "active");
  EXPECT_EQ(oj.at("proposals").size(), 2u);
  for (const auto* key : {"order_id", "item", "quantity", "due_us", "earliest_start_us",
                          "max_price_cents", "state", "reason", "contract", "proposals"})
    EXPECT_TRUE(oj.contains(key)) << key;
  for (const auto* key : {"seller", "proposal_id", "price_cents", "promised_start_us",
                          "promised_due_us", "valid_until_us", "state", "reason"})
    EXPECT_TRUE(oj.at("proposals").at(0).contains(key)) << key;
  EXPECT_EQ(call(api, "GET", "/v1/orders/velo/order/999").status, 404u);
  auto cl = json::parse(call(api, "GET", "/v1/contracts").body);
  EXPECT_EQ(cl.at("contracts").size(), 8u);
  auto seller_api = w.admin("framecraft");
  auto sl = json::parse(call(seller_api, "GET", "/v1/contracts").body);
  ASSERT_EQ(sl.at("contracts").size(), 6u);
  EXPECT_EQ(sl.at("contracts").at(0).at("role"), "seller");
  EXPECT_EQ(call(seller_api, "POST", "/v1/orders", "{}").status, 404u);

  // KPIs (kpis.hpp) on every node: the buyer's, and the two competing sellers'.
  auto kpi = [](const admin::router& r) {
    auto resp = call(r, "GET", "/v1/kpis");
    EXPECT_EQ(resp.status, 200u) << resp.body;
    return json::parse(resp.body);
  };
  auto vk = kpi(api);
  EXPECT_EQ(vk.at("node_id"), "velo");
  const auto& customer = vk.at("buyer").at("customer_orders");
  EXPECT_EQ(customer.at("orders"), 8);
  EXPECT_EQ(customer.at("contracted"), 8);
  EXPECT_EQ(customer.at("on_time"), 8);
  EXPECT_EQ(customer.at("on_time_pct"), 100.0);
  EXPECT_EQ(customer.at("lead_time").at("count"), 8);
  EXPECT_GT(customer.at("lead_time").at("p50_us").get<std::int64_t>(), 0);
  EXPECT_EQ(vk.at("buyer").at("component_orders").at("orders"), 0);
  std::int64_t spend = 0;
  for (const auto& [id, c] : contracts) spend += c.price_cents;
  EXPECT_EQ(customer.at("spend_cents").at("EUR"), spend);
  auto fk = kpi(seller_api);
  EXPECT_EQ(fk.at("seller").at("contracts"), 6);
  EXPECT_EQ(fk.at("seller").at("units"), 5 + 6 + 7 + 8 + 9 + 10);
  EXPECT_EQ(fk.at("seller").at("win_rate_pct"), 100.0);
  // Only saw1 has an energy rate: 6 minutes per frame at 6000 Wh per hour.
  EXPECT_EQ(fk.at("energy").at("wh_per_unit"), 600.0);
  EXPECT_EQ(fk.at("energy").at("by_item").at("FRAME").at("units"), 45);
  for (const auto& r : fk.at("utilization").at("resources"))
    if (r.at("id") == "saw1") {
      EXPECT_EQ(r.at("booked_units"), 6 * 45);
      EXPECT_EQ(r.at("energy_wh_per_hour"), 6000);
    }
  auto ak = kpi(w.admin("alloyframe"));
  EXPECT_EQ(ak.at("seller").at("offers_lost"), 6);
  EXPECT_EQ(ak.at("seller").at("win_rate_pct"), 0.0);
  EXPECT_TRUE(ak.at("energy").at("wh_per_unit").is_null());
  admin::request bad;
  bad.method = "GET";
  bad.path = bad.target = "/v1/kpis";
  bad.query = {{"from_us", "yesterday"}};
  EXPECT_EQ(api.dispatch(bad).status, 400u);
  bad.query = {{"from_us", "20"}, {"to_us", "10"}};
  EXPECT_EQ(api.dispatch(bad).status, 400u);
  bad.query = {{"from_us", "1"}, {"to_us", "2"}};
  auto empty = json::parse(api.dispatch(bad).body);
  EXPECT_EQ(empty.at("buyer").at("customer_orders").at("orders"), 0);

  // Bad input.
  EXPECT_EQ(call(api, "POST", "/v1/orders", "not json").status, 400u);
  EXPECT_EQ(call(api, "POST", "/v1/orders",
                 json{{"item", "WHEEL"}, {"quantity", 1}, {"due_us", due}}.dump())
                .status,
            400u);
  EXPECT_EQ(call(api, "POST", "/v1/orders",
                 json{{"item", "FRAME"}, {"quantity", 0}, {"due_us", due}}.dump())
                .status,
            400u);
  EXPECT_EQ(call(api, "POST", "/v1/orders",
                 json{{"item", "FRAME"}, {"quantity", 1}, {"due_us", 5}}.dump())
                .status,
            400u);
  EXPECT_EQ(call(api, "POST", "/v1/orders",
                 json{{"item", "FRAME"}, {"quantity", -1}, {"due_us", due}}.dump())
                .status,
            400u);
}

TEST_F(actors_test, shop_floor_events_reach_the_buyer) {
  world w(dir_);
  w.add_node("velo", velo_toml);
  std::string cellpack = cellpack_toml;
  cellpack.replace(cellpack.find("[supplier]\n"), 11, "[supplier]\nexecution = \"shop_floor\"\n");
  w.add_node("cellpack", cellpack);
  auto api = w.admin("velo");
  const auto due = system_clock().now() + 30 * us_per_day;
  const auto id = post_order(api, "BATTERY", 10, due);
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && (*o)->state == order_state::contracted;
  }));
  const auto order = **tables::orders.get(velo, id);
  const auto contract = **tables::contracts.get(velo, order.contract_id);
  auto& x = w.executor("cellpack");
  auto post = [&](wire::production_event_kind k, timestamp_us expected, std::string reason = {}) {
    return post_production_event(w.system(), x, order.contract_id,
                                 posted_event{k, 0, expected, std::move(reason)}, 5s);
  };
  // The seller recorded the execution with the contract.
  ASSERT_TRUE(eventually([&] {
    return tables::executions.get(w.node("cellpack").store(), order.contract_id)->has_value();
  }));
  auto r = post(wire::production_event_kind::started, 0);
  ASSERT_EQ(r.http_status, 201u) << r.error;
  EXPECT_EQ(r.event.sequence, 1u);
  EXPECT_EQ(post(wire::production_event_kind::started, 0).http_status, 400u);
  EXPECT_EQ(post_production_event(w.system(), x, "velo/order/99/c1", {}, 5s).http_status, 404u);
  const auto late = contract.promised_due_us + 2 * us_per_day;
  r = post(wire::production_event_kind::delayed, late, "truck broke down");
  ASSERT_EQ(r.http_status, 201u) << r.error;
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(velo, order.contract_id);
    return p && *p && (*p)->event.sequence == 2;
  }));
  auto p = **tables::progress.get(velo, order.contract_id);
  EXPECT_EQ(p.seller, "cellpack");
  EXPECT_EQ(p.event.kind, wire::production_event_kind::delayed);
  EXPECT_EQ(p.event.state, wire::contract_progress::executing);
  EXPECT_EQ(p.event.expected_due_us, late);
  EXPECT_EQ(p.event.reason, "truck broke down");
  EXPECT_NE(p.event.started_us, 0);
  r = post(wire::production_event_kind::delivered, 0);
  ASSERT_EQ(r.http_status, 201u) << r.error;
  ASSERT_TRUE(eventually([&] {
    auto q = tables::progress.get(velo, order.contract_id);
    return q && *q && (*q)->event.state == wire::contract_progress::delivered;
  }));
  // The admin API shows it with the order.
  auto oj = json::parse(call(api, "GET", "/v1/orders/" + id).body);
  const auto& progress = oj.at("contract").at("progress");
  EXPECT_EQ(progress.at("state"), "delivered");
  EXPECT_EQ(progress.at("sequence"), 3);
  EXPECT_NE(progress.at("delivered_us"), 0);
  // A stale event (lower sequence) changes nothing; neither does one from
  // a node that is not the contract's seller.
  wire::envelope stale;
  stale.header = {wire::protocol_version, 999, "cellpack", "velo", id, 0, system_clock().now(), {}};
  wire::production_event old;
  old.contract_id = order.contract_id;
  old.order_id = id;
  old.sequence = 1;
  old.state = wire::contract_progress::executing;
  stale.payload = old;
  w.network().deliver(wire::encode(stale));
  stale.header.sender = "alloyframe";
  stale.header.message_id = 1000;
  old.sequence = 9;
  stale.payload = old;
  w.network().deliver(wire::encode(stale));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ((*tables::progress.get(velo, order.contract_id))->event.sequence, 3u);
  EXPECT_EQ((*tables::progress.get(velo, order.contract_id))->event.state,
            wire::contract_progress::delivered);
}

TEST_F(actors_test, a_component_delay_cascades_up_the_tiers) {
  world w(dir_);
  w.nested(true);
  w.add_node("velo", R"(
[buyer]
proposal_window_ms = 3000
confirm_timeout_ms = 4000
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft"]
)");
  w.add_node("framecraft", R"(
[buyer]
proposal_window_ms = 300
confirm_timeout_ms = 1000
[[buyer.sources]]
item = "TUBE-SET"
sellers = ["tubeco"]
[factory]
hold_ttl_ms = 10000
component_window_ms = 400
[[factory.machines]]
id = "weld1"
capabilities = ["welding"]
rate_cents_per_hour = 5000
[[factory.items]]
id = "FRAME"
[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 10
[[factory.items.components]]
item = "TUBE-SET"
quantity = 1
)");
  w.add_node("tubeco", R"(
[supplier]
hold_ttl_ms = 10000
execution = "shop_floor"
[[supplier.items]]
id = "TUBE-SET"
unit_price_cents = 2000
lead_time_days = 1
daily_capacity = 100
)");
  auto api = w.admin("velo");
  const auto id = post_order(api, "FRAME", 5, system_clock().now() + 20 * us_per_day);
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && terminal((*o)->state);
  }));
  const auto order = **tables::orders.get(velo, id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  const auto top = **tables::contracts.get(velo, order.contract_id);
  // Framecraft's component contract with Tubeco.
  std::optional<contract_record> tube;
  for (const auto& [cid, c] : all(w.node("framecraft").store(), tables::contracts))
    if (c.role == contract_role::buyer) tube = c;
  ASSERT_TRUE(tube);
  EXPECT_EQ(tube->seller, "tubeco");
  const auto fc_exec = **tables::executions.get(w.node("framecraft").store(), top.contract_id);
  EXPECT_EQ(fc_exec.sub_orders.size(), 1u);
  EXPECT_GE(fc_exec.planned_start_us, tube->promised_due_us);

  // Tubeco will deliver two days late: after Framecraft planned to start.
  const auto tube_late = tube->promised_due_us + 2 * us_per_day;
  auto r = post_production_event(
      w.system(), w.executor("tubeco"), tube->contract_id,
      posted_event{wire::production_event_kind::delayed, 0, tube_late, "furnace down"}, 5s);
  ASSERT_EQ(r.http_status, 201u) << r.error;
  // Velo hears of it from Framecraft: its frames slip, and the tree shows why.
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(velo, top.contract_id);
    return p && *p && (*p)->event.kind == wire::production_event_kind::delayed;
  }));
  const auto p = **tables::progress.get(velo, top.contract_id);
  EXPECT_EQ(p.seller, "framecraft");
  const auto slip = tube_late - fc_exec.planned_start_us;
  EXPECT_EQ(p.event.expected_due_us, top.promised_due_us + slip);
  EXPECT_NE(p.event.reason.find("TUBE-SET"), std::string::npos) << p.event.reason;
  ASSERT_EQ(p.event.components.size(), 1u);
  const auto& c = p.event.components[0];
  EXPECT_EQ(c.contract_id, tube->contract_id);
  EXPECT_EQ(c.seller, "tubeco");
  EXPECT_EQ(c.item, "TUBE-SET");
  EXPECT_EQ(c.expected_due_us, tube_late);
  EXPECT_EQ(c.promised_due_us, tube->promised_due_us);
  // And Tubeco delivering shows up in Velo's tree as a progress update.
  r = post_production_event(w.system(), w.executor("tubeco"), tube->contract_id,
                            posted_event{wire::production_event_kind::delivered, 0, 0, ""}, 5s);
  ASSERT_EQ(r.http_status, 201u) << r.error;
  ASSERT_TRUE(eventually([&] {
    auto q = tables::progress.get(velo, top.contract_id);
    return q && *q && !(*q)->event.components.empty() &&
           (*q)->event.components[0].state == wire::contract_progress::delivered;
  }));
  auto oj = json::parse(call(api, "GET", "/v1/orders/" + id).body);
  EXPECT_EQ(oj.at("contract").at("progress").at("components").at(0).at("seller"), "tubeco");
  expect_agreement(w, {"velo", "framecraft", "tubeco"});
}

TEST_F(actors_test, failed_accept_falls_back_and_silent_seller_is_waited_for) {
  world w(dir_);
  w.add_node("velo", R"(
[buyer]
proposal_window_ms = 500
confirm_timeout_ms = 3000
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft", "alloyframe", "ghost"]
)");
  w.add_node("bikeco", buyer_toml(3000, "FRAME", R"("framecraft")"));
  // framecraft is cheaper, but its clock runs 2 s ahead and its holds last
  // 100 ms: to velo its proposal still looks valid at the decision (at
  // reply_by, as ghost never answers), while at framecraft the hold lapsed and
  // the capacity went to bikeco's order meanwhile. Re-planning misses the
  // promised due date, so framecraft answers velo's Accept with Failure.
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 100), 2 * us_per_s);
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 10000));
  auto api = w.admin("velo");
  const auto due = system_clock().now() + 30 * us_per_day;
  const auto id = post_order(api, "FRAME", 5, due);
  std::this_thread::sleep_for(150ms);
  const auto other = post_order(w.admin("bikeco"), "FRAME", 5, due);
  EXPECT_EQ(other, "bikeco/order/1");
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(w.node("bikeco").store(), other);
    return o && *o && (*o)->state == order_state::contracted;
  }));
  auto& velo = w.node("velo").store();
  // Both factories answered within milliseconds, but velo waits for ghost.
  {
    auto o = tables::orders.get(velo, id);
    ASSERT_TRUE(o && *o);
    EXPECT_EQ((*o)->state, order_state::negotiating);
  }
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && terminal((*o)->state);
  }));
  auto o = **tables::orders.get(velo, id);
  ASSERT_EQ(o.state, order_state::contracted) << o.reason;
  auto c = **tables::contracts.get(velo, o.contract_id);
  EXPECT_EQ(c.seller, "alloyframe");
  EXPECT_EQ(o.contract_id, id + "/c2");
  ASSERT_EQ(o.proposals.size(), 2u);  // ghost never answered
  for (const auto& p : o.proposals) {
    if (p.seller == "framecraft") {
      EXPECT_EQ(p.state, proposal_state::failed);
      EXPECT_NE(p.reason.find("hold expired"), std::string::npos) << p.reason;
    } else {
      EXPECT_EQ(p.state, proposal_state::accepted);
    }
  }
  ASSERT_TRUE(eventually([&] {
    return kept_holds(w.node("framecraft").store(), system_clock().now()).empty() &&
           kept_holds(w.node("alloyframe").store(), system_clock().now()).empty();
  }));
  EXPECT_EQ(all(w.node("framecraft").store(), tables::bookings).size(), 3u);  // bikeco's
  EXPECT_EQ(all(w.node("framecraft").store(), tables::contracts).size(), 1u);
  expect_agreement(w, {"velo", "bikeco", "framecraft", "alloyframe"});
  expect_calendars_ok(w, "framecraft");
  expect_calendars_ok(w, "alloyframe");
}

TEST_F(actors_test, late_confirm_is_cancelled_on_both_sides) {
  world w(dir_);
  w.add_node("velo", R"(
[buyer]
proposal_window_ms = 3000
confirm_timeout_ms = 300
[[buyer.sources]]
item = "FRAME"
sellers = ["framecraft", "alloyframe"]
)");
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 10000));
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 10000));
  // framecraft's Confirm takes longer than velo's confirm timeout.
  w.network().delay("framecraft", wire::message_type::confirm, 800ms);
  const auto id = post_order(w.admin("velo"), "FRAME", 5, system_clock().now() + 30 * us_per_day);
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    if (!o || !*o || (*o)->state != order_state::contracted) return false;
    // ... and the late confirm has been answered with a Cancel on both sides.
    auto c1 = tables::contracts.get(velo, id + "/c1");
    auto s1 = tables::contracts.get(w.node("framecraft").store(), id + "/c1");
    return c1 && *c1 && s1 && *s1 && (*s1)->state == contract_state::cancelled;
  }));
  auto o = **tables::orders.get(velo, id);
  EXPECT_EQ(o.contract_id, id + "/c2");
  EXPECT_EQ((**tables::contracts.get(velo, id + "/c2")).seller, "alloyframe");
  EXPECT_EQ((**tables::contracts.get(velo, id + "/c1")).state, contract_state::cancelled);
  ASSERT_TRUE(eventually([&] {
    return all(w.node("framecraft").store(), tables::bookings).empty() &&
           kept_holds(w.node("framecraft").store(), system_clock().now()).empty();
  }));
  expect_agreement(w, {"velo", "framecraft", "alloyframe"});
  expect_calendars_ok(w, "framecraft");
  expect_calendars_ok(w, "alloyframe");
}

TEST_F(actors_test, no_answer_at_all_fails_at_reply_by) {
  world w(dir_);
  w.add_node("velo", buyer_toml(300, "BATTERY", R"("ghost")"));
  auto api = w.admin("velo");
  const auto id = post_order(api, "BATTERY", 5, system_clock().now() + us_per_day);
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(w.node("velo").store(), id);
    return o && *o && terminal((*o)->state);
  }));
  auto o = **tables::orders.get(w.node("velo").store(), id);
  EXPECT_EQ(o.state, order_state::failed);
  EXPECT_NE(o.reason.find("1 no answer"), std::string::npos) << o.reason;
  EXPECT_GE(system_clock().now(), o.reply_by_us);
}

TEST_F(actors_test, restart_rebuilds_counters_and_calendars) {
  const auto due = system_clock().now() + 30 * us_per_day;
  std::string first;
  {
    world w(dir_);
    w.add_node("velo", velo_toml);
    w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
    w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 5000));
    auto api = w.admin("velo");
    first = post_order(api, "FRAME", 50, due);
    ASSERT_TRUE(eventually([&] {
      auto o = tables::orders.get(w.node("velo").store(), first);
      return o && *o && (*o)->state == order_state::contracted;
    }));
  }
  world w(dir_);
  w.add_node("velo", velo_toml);
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 5000));
  auto api = w.admin("velo");
  const auto second = post_order(api, "FRAME", 50, due);
  EXPECT_EQ(second, "velo/order/2");
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(w.node("velo").store(), second);
    return o && *o && (*o)->state == order_state::contracted;
  }));
  auto& velo = w.node("velo").store();
  auto c1 = **tables::contracts.get(velo, (**tables::orders.get(velo, first)).contract_id);
  auto c2 = **tables::contracts.get(velo, (**tables::orders.get(velo, second)).contract_id);
  // The restarted factory saw its bookings: the second order comes after the first.
  EXPECT_EQ(c2.seller, "framecraft");
  EXPECT_GT(c2.promised_due_us, c1.promised_due_us);
  EXPECT_NE(c1.proposal_id, c2.proposal_id);
  ASSERT_TRUE(eventually(
      [&] { return kept_holds(w.node("alloyframe").store(), system_clock().now()).empty(); }));
  expect_agreement(w, {"velo", "framecraft", "alloyframe"});
  expect_calendars_ok(w, "framecraft");
}

// A held offer carries its holds (records.hpp): no hold records are written,
// and a restart puts the holds back into the calendars, so capacity promised
// to a buyer still deciding is not sold again.
TEST_F(actors_test, a_restart_keeps_the_holds_that_held_offers_carry) {
  const auto due = system_clock().now() + 30 * us_per_day;
  timestamp_us held_due = 0;
  {
    world w(dir_);
    // velo waits for ghost, which never answers: framecraft's offer stays held.
    w.add_node("velo", buyer_toml(60000, "FRAME", R"("framecraft", "ghost")"));
    w.add_node("framecraft", factory_toml(3000, 5000, 4000, 600000));
    post_order(w.admin("velo"), "FRAME", 50, due);
    auto& fc = w.node("framecraft").store();
    ASSERT_TRUE(eventually([&] { return all(fc, tables::offers).size() == 1; }));
    const auto o = all(fc, tables::offers).begin()->second;
    ASSERT_EQ(o.state, offer_state::held);
    ASSERT_EQ(o.reservations.size(), 3u);
    for (const auto& r : o.reservations) EXPECT_TRUE(r.carried()) << r.reservation_id;
    EXPECT_TRUE(all(fc, tables::holds).empty());
    EXPECT_EQ(kept_holds(fc, system_clock().now()).size(), 3u);
    held_due = o.promised_due_us;
  }
  // framecraft restarts (velo does not); bikeco orders the same work.
  world w(dir_);
  w.add_node("bikeco", buyer_toml(3000, "FRAME", R"("framecraft")"));
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 600000));
  const auto id = post_order(w.admin("bikeco"), "FRAME", 50, due);
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(w.node("bikeco").store(), id);
    return o && *o && (*o)->state == order_state::contracted;
  }));
  auto& bikeco = w.node("bikeco").store();
  auto c = **tables::contracts.get(bikeco, (**tables::orders.get(bikeco, id)).contract_id);
  // Without the held capacity it would be planned exactly like the held offer.
  EXPECT_GT(c.promised_due_us, held_due);
  EXPECT_EQ(kept_holds(w.node("framecraft").store(), system_clock().now()).size(), 3u);
  expect_calendars_ok(w, "framecraft");
}

// A crash between the commit that ends an offer and the resource's commit that
// releases its capacity leaves reservations nothing backs; so does a crash in
// the middle of placing a proposal's holds. A restart releases them.
TEST_F(actors_test, restart_releases_reservations_no_offer_backs) {
  const auto due = system_clock().now() + 30 * us_per_day;
  std::string proposal;
  {
    world w(dir_);
    w.add_node("velo", velo_toml);
    w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
    w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 5000));  // bids higher
    auto api = w.admin("velo");
    const auto id = post_order(api, "FRAME", 50, due);
    ASSERT_TRUE(eventually([&] {
      auto o = tables::orders.get(w.node("velo").store(), id);
      return o && *o && (*o)->state == order_state::contracted;
    }));
    auto& fc = w.node("framecraft").store();
    auto offers = all(fc, tables::offers);
    ASSERT_EQ(offers.size(), 1u);
    proposal = offers.begin()->first;
    ASSERT_FALSE(all(fc, tables::bookings).empty());
  }
  {
    // What the crash left: the offer cancelled, its bookings still there; and
    // a hold for a proposal that was never written.
    store::options so;
    so.path = (dir_ / "framecraft").string();
    so.sync = false;
    auto env = store::environment::open(so);
    ASSERT_TRUE(env) << env.error().to_string();
    auto o = **tables::offers.get(**env, proposal);
    o.state = offer_state::cancelled;
    store::write_batch b;
    tables::offers.put(b, proposal, o);
    reservation_record h;
    h.resource = "saw1";
    h.reservation_id = "framecraft/proposal/999#0";
    h.kind = reservation_kind::hold;
    h.deadline_us = system_clock().now() + us_per_hour;
    h.start_us = due - us_per_day;
    h.end_us = h.start_us + 10 * 60 * us_per_s;
    h.allocations = {{h.start_us / us_per_hour, 10}};
    tables::holds.put(b, reservation_key(h.resource, h.reservation_id), h);
    ASSERT_TRUE((*env)->apply(b));
  }
  world w(dir_);
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
  auto& fc = w.node("framecraft").store();
  ASSERT_TRUE(eventually([&] {
    return all(fc, tables::bookings).empty() && kept_holds(fc, system_clock().now()).empty();
  }));
  expect_calendars_ok(w, "framecraft");
}

}  // namespace
}  // namespace gearmesh::actors

namespace gearmesh::actors {
namespace {

TEST_F(actors_test, directory_resolves_the_ids_nodes_mint) {
  world w(dir_);
  w.add_node("velo", velo_toml);
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 5000));
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 5000));
  w.add_node("cellpack", cellpack_toml);
  directory_config velo_dir;
  velo_dir.delegations = {{"framecraft", "framecraft", {"welding"}}};
  auto velo = w.add_directory("velo", velo_dir, {{"framecraft", "tcp://framecraft:7100", ""}});
  w.add_directory("framecraft", {}, {{"velo", "tcp://velo:7100", ""}});

  auto api = w.admin("velo");
  const auto due = system_clock().now() + 30 * us_per_day;
  const auto order = post_order(api, "FRAME", 5, due);
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(w.node("velo").store(), order);
    return o && *o && (*o)->state == order_state::contracted;
  }));
  auto o = tables::orders.get(w.node("velo").store(), order);
  const std::string contract = (*o)->contract_id;
  std::string proposal;
  for (const auto& p : (*o)->proposals)
    if (p.seller == "framecraft") proposal = p.proposal_id;
  ASSERT_FALSE(proposal.empty());

  auto resolve = [&](const std::string& id) {
    wire::resolve q;
    q.identifier = id;
    auto r = directory_lookup(w.system(), velo, q, 5s);
    EXPECT_TRUE(r.has_value()) << id;
    return r ? *r : lookup_result{};
  };
  // Velo's own order and contract, from its store.
  for (const auto& id : {order, contract}) {
    auto r = resolve(id);
    EXPECT_EQ(r.answer.status, wire::resolution_status::found) << id << ": " << r.answer.reason;
    EXPECT_TRUE(r.local);
    ASSERT_EQ(r.answer.entries.size(), 1u);
    EXPECT_EQ(r.answer.entries[0].node_id, "velo");
    EXPECT_EQ(r.answer.entries[0].endpoint, "tcp://velo:7100");
  }
  EXPECT_EQ(resolve("velo/order/99").answer.status, wire::resolution_status::not_found);
  // Framecraft's proposal and machine, over the (test) wire.
  auto r = resolve(proposal);
  EXPECT_EQ(r.answer.status, wire::resolution_status::found) << r.answer.reason;
  EXPECT_FALSE(r.local);
  ASSERT_EQ(r.answer.entries.size(), 1u);
  EXPECT_EQ(r.answer.entries[0].node_id, "framecraft");
  EXPECT_NE(std::find(r.answer.entries[0].capabilities.begin(),
                      r.answer.entries[0].capabilities.end(), "welding"),
            r.answer.entries[0].capabilities.end());
  EXPECT_TRUE(resolve(proposal).cached);
  auto none = resolve("framecraft/machine/nope");
  EXPECT_EQ(none.answer.status, wire::resolution_status::not_found);
  EXPECT_EQ(none.answer.reason, "no machine nope at framecraft");
  auto stats = directory_counters(w.system(), velo, 5s);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->cache_hits, 1u);
  EXPECT_EQ(stats->forwarded, 2u);
  EXPECT_EQ(stats->resolutions_in, 2u);
}

// --- disruptions (outage.hpp) -------------------------------------------------

/// Velo buying FRAME from `sellers` only.
std::string velo_buying_frames(const std::string& sellers) {
  return R"(
[buyer]
proposal_window_ms = 1500
confirm_timeout_ms = 3000
[[buyer.sources]]
item = "FRAME"
sellers = [)" +
         sellers + "]\n";
}

/// The contract of `order_id` at `buyer` once the order is terminal.
std::pair<order_record, std::optional<contract_record>> settled(world& w, const std::string& buyer,
                                                                const std::string& order_id) {
  auto& env = w.node(buyer).store();
  EXPECT_TRUE(eventually([&] {
    auto o = tables::orders.get(env, order_id);
    return o && *o && terminal((*o)->state);
  }));
  auto o = **tables::orders.get(env, order_id);
  std::optional<contract_record> c;
  if (auto k = tables::contracts.get(env, o.contract_id); k && *k) c = **k;
  return {o, c};
}

/// The booking of operation `op` of the seller's offer for `contract_id`.
reservation_record booking_of(world& w, const std::string& seller, const std::string& contract_id,
                              std::size_t op) {
  auto& env = w.node(seller).store();
  auto k = **tables::contracts.get(env, contract_id);
  auto o = **tables::offers.get(env, k.proposal_id);
  const auto& ref = o.reservations.at(op);
  auto b = tables::bookings.get(env, reservation_key(ref.resource, ref.reservation_id));
  EXPECT_TRUE(b && *b) << ref.resource << "/" << ref.reservation_id;
  return b && *b ? **b : reservation_record{};
}

json post_machine(const admin::router& r, const std::string& path, const json& body,
                  unsigned expected) {
  auto resp = call(r, "POST", path, body.dump());
  EXPECT_EQ(resp.status, expected) << path << ": " << resp.body;
  return json::parse(resp.body, nullptr, false);
}

// Framecraft's weld1 breaks down while a frame order is booked on it: the
// welding moves to weld2, which is as fast, and the frames are still
// delivered as promised; Velo gets a Progress event saying why. A second
// order then lands on weld2 (weld1 is down), and when weld2 breaks too, the
// welding waits for weld1's repair: that contract is delayed.
TEST_F(actors_test, a_breakdown_moves_booked_work_to_another_welder_or_delays_it) {
  world w(dir_);
  w.add_node("velo", velo_buying_frames("\"framecraft\""));
  auto factory = factory_toml(3000, 5000, 4000, 10000);
  const std::string slow = "capacity_per_bucket = 30";
  factory.replace(factory.find(slow), slow.size(), "capacity_per_bucket = 60");
  w.add_node("framecraft", factory);
  auto api = w.admin("velo");
  auto fc = w.admin("framecraft");
  const auto now = system_clock().now();
  const auto id = post_order(api, "FRAME", 5, now + 10 * us_per_day);
  auto [order, contract] = settled(w, "velo", id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  ASSERT_TRUE(contract);
  const auto weld = booking_of(w, "framecraft", contract->contract_id, 1);
  ASSERT_EQ(weld.resource, "weld1");  // the tie goes to the machine listed first

  // Bad input first: nothing changes.
  post_machine(fc, "/v1/machines/weld9/down", {{"for_s", 3600}}, 404);
  post_machine(fc, "/v1/machines/weld1/down", {{"until_us", now - us_per_hour}}, 400);
  post_machine(fc, "/v1/machines/weld1/down",
               {{"from_us", now + 2 * us_per_hour}, {"until_us", now + us_per_hour}}, 400);
  post_machine(fc, "/v1/machines/weld1/down", {{"for_s", 60}, {"until_us", now + us_per_hour}},
               400);
  post_machine(fc, "/v1/machines/weld1/down", {{"for_s", 91 * 86400}}, 400);
  post_machine(fc, "/v1/machines/weld1/sideways", json::object(), 404);
  EXPECT_EQ(call(api, "POST", "/v1/machines/weld1/down", json{{"for_s", 60}}.dump()).status, 404u);

  auto out = post_machine(fc, "/v1/machines/weld1/down",
                          {{"for_s", 3 * 24 * 3600}, {"reason", "servo fault"}}, 201);
  EXPECT_EQ(out.at("kind"), "breakdown");
  EXPECT_EQ(out.at("machine"), "weld1");
  EXPECT_EQ(out.at("state"), "active");
  ASSERT_EQ(out.at("effects").size(), 1u) << out.dump(2);
  EXPECT_EQ(out.at("effects").at(0).at("contract_id"), contract->contract_id);
  EXPECT_EQ(out.at("effects").at(0).at("outcome"), "rescheduled");
  EXPECT_EQ(out.at("effects").at(0).at("expected_due_us"), contract->promised_due_us);
  // The booking moved; the contract is unchanged at both ends.
  const auto moved = booking_of(w, "framecraft", contract->contract_id, 1);
  EXPECT_EQ(moved.resource, "weld2");
  EXPECT_EQ(moved.reservation_id, weld.reservation_id);
  EXPECT_FALSE(tables::bookings
                   .get(w.node("framecraft").store(), reservation_key("weld1", weld.reservation_id))
                   ->has_value());
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(velo, contract->contract_id);
    return p && *p && (*p)->event.reason.find("weld1 broke down") != std::string::npos;
  }));
  auto p = **tables::progress.get(velo, contract->contract_id);
  EXPECT_EQ(p.event.kind, wire::production_event_kind::progress);
  EXPECT_EQ(p.event.expected_due_us, contract->promised_due_us);
  EXPECT_NE(p.event.reason.find("servo fault"), std::string::npos) << p.event.reason;
  EXPECT_NE(p.event.reason.find("moved to weld2"), std::string::npos) << p.event.reason;
  EXPECT_EQ((**tables::contracts.get(velo, contract->contract_id)).state, contract_state::active);

  // While weld1 is down, new work goes to weld2 only.
  const auto id2 = post_order(api, "FRAME", 5, now + 10 * us_per_day);
  auto [order2, contract2] = settled(w, "velo", id2);
  ASSERT_EQ(order2.state, order_state::contracted) << order2.reason;
  EXPECT_EQ(booking_of(w, "framecraft", contract2->contract_id, 1).resource, "weld2");
  // weld2 goes down for maintenance for two hours: both contracts' welding
  // waits (weld1 is down for days), delayed by less than a day.
  out = post_machine(fc, "/v1/machines/weld2/maintenance", {{"for_s", 2 * 3600}}, 201);
  EXPECT_EQ(out.at("kind"), "maintenance");
  ASSERT_EQ(out.at("effects").size(), 2u) << out.dump(2);
  for (const auto& e : out.at("effects")) EXPECT_EQ(e.at("outcome"), "delayed") << out.dump(2);
  ASSERT_TRUE(eventually([&] {
    auto q = tables::progress.get(velo, contract2->contract_id);
    return q && *q && (*q)->event.kind == wire::production_event_kind::delayed;
  }));
  auto q = **tables::progress.get(velo, contract2->contract_id);
  EXPECT_GT(q.event.expected_due_us, contract2->promised_due_us);
  EXPECT_LT(q.event.expected_due_us, contract2->promised_due_us + us_per_day);
  EXPECT_NE(q.event.reason.find("weld2 is down for maintenance"), std::string::npos);
  EXPECT_GE(booking_of(w, "framecraft", contract2->contract_id, 1).start_us,
            now + 2 * us_per_hour - us_per_hour);  // after the window (whole buckets)

  // The machine list shows both down, and the totals.
  auto ml = json::parse(call(fc, "GET", "/v1/machines").body);
  EXPECT_EQ(ml.at("totals").at("outages"), 2);
  EXPECT_EQ(ml.at("totals").at("rescheduled"), 1);
  EXPECT_EQ(ml.at("totals").at("delayed"), 2);
  for (const auto& m : ml.at("machines"))
    if (m.at("id") == "weld1" || m.at("id") == "weld2") {
      EXPECT_EQ(m.at("state"), "down");
    }
  // weld1 is repaired early.
  auto up = post_machine(fc, "/v1/machines/weld1/up", json::object(), 200);
  ASSERT_EQ(up.at("ended").size(), 1u);
  EXPECT_EQ(up.at("ended").at(0).at("state"), "ended");
  ml = json::parse(call(fc, "GET", "/v1/machines").body);
  for (const auto& m : ml.at("machines"))
    if (m.at("id") == "weld1") {
      EXPECT_EQ(m.at("state"), "up");
    }
  expect_quiet_and_clean(w, {"velo", "framecraft"}, {"velo"});
}

// A maintenance window planned by mistake is cancelled before it begins:
// it no longer counts as an outage of the machine, it is listed and stored
// as cancelled, and one that has begun cannot be cancelled (it ends with
// `up`).
TEST_F(actors_test, a_planned_maintenance_window_is_cancelled_before_it_begins) {
  world w(dir_);
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 10000));
  auto fc = w.admin("framecraft");
  const auto now = system_clock().now();
  auto planned = post_machine(fc, "/v1/machines/weld1/maintenance",
                              {{"from_us", now + 2 * us_per_day},
                               {"until_us", now + 3 * us_per_day},
                               {"reason", "booked by mistake"}},
                              201);
  const std::string id = planned.at("outage_id");
  EXPECT_EQ(planned.at("state"), "planned");
  auto begun = post_machine(fc, "/v1/machines/weld2/down", {{"for_s", 3600}}, 201);

  // Bad input: nothing changes.
  post_machine(fc, "/v1/machines/weld1/cancel", json::object(), 400);
  post_machine(fc, "/v1/machines/weld1/cancel", {{"outage_id", "framecraft/outage/99"}}, 404);
  post_machine(fc, "/v1/machines/weld2/cancel", {{"outage_id", id}}, 404);  // not weld2's
  auto refused =
      post_machine(fc, "/v1/machines/weld2/cancel", {{"outage_id", begun.at("outage_id")}}, 409);
  EXPECT_NE(refused.dump().find("has begun"), std::string::npos) << refused.dump();

  auto done = post_machine(fc, "/v1/machines/weld1/cancel", {{"outage_id", id}}, 200);
  EXPECT_EQ(done.at("cancelled").at("outage_id"), id);
  EXPECT_EQ(done.at("cancelled").at("state"), "cancelled");
  // Twice: it is no longer open.
  post_machine(fc, "/v1/machines/weld1/cancel", {{"outage_id", id}}, 404);

  auto ml = json::parse(call(fc, "GET", "/v1/machines").body);
  for (const auto& m : ml.at("machines")) {
    if (m.at("id") == "weld1") {
      EXPECT_TRUE(m.at("outages").empty()) << m.dump();
    }
  }
  for (const auto& o : ml.at("outages")) {
    if (o.at("outage_id") == id) {
      EXPECT_EQ(o.at("state"), "cancelled");
    }
  }
  // Recorded: a restart does not block the window again.
  auto rec = tables::outages.get(w.node("framecraft").store(), id);
  ASSERT_TRUE(rec && *rec);
  EXPECT_NE((*rec)->ended_us, 0);
  EXPECT_LE((*rec)->ended_us, (*rec)->from_us);
}

// A breakdown Framecraft cannot absorb (both welders down for a week, at
// most an hour late accepted): the contract is cancelled with the reason,
// Velo records it as cancelled and sources the order again; Alloyframe wins
// the new round under a new contract id.
TEST_F(actors_test, a_breakdown_that_cannot_be_absorbed_is_re_sourced_by_the_buyer) {
  world w(dir_);
  w.add_node("velo", velo_buying_frames("\"framecraft\", \"alloyframe\""));
  auto factory = factory_toml(3000, 5000, 4000, 10000);
  factory.replace(factory.find("[factory]\n"), 10, "[factory]\nreschedule_delay_max_hours = 1\n");
  w.add_node("framecraft", factory);
  w.add_node("alloyframe", factory_toml(4000, 6000, 5000, 10000));
  auto api = w.admin("velo");
  auto fc = w.admin("framecraft");
  const auto now = system_clock().now();
  const auto id = post_order(api, "FRAME", 5, now + 3 * us_per_day);
  auto [order, contract] = settled(w, "velo", id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  ASSERT_EQ(contract->seller, "framecraft");
  for (const auto* m : {"weld1", "weld2"})
    post_machine(fc, std::string("/v1/machines/") + m + "/down",
                 {{"for_s", 7 * 24 * 3600}, {"reason", "flooded hall"}}, 201);
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && (*o)->round == 1 && terminal((*o)->state);
  }));
  auto again = **tables::orders.get(velo, id);
  ASSERT_EQ(again.state, order_state::contracted) << again.reason;
  EXPECT_NE(again.contract_id, contract->contract_id);
  EXPECT_EQ(again.contract_id, id + "/c2");
  EXPECT_NE(again.reason.find("seller framecraft cancelled contract " + contract->contract_id),
            std::string::npos)
      << again.reason;
  EXPECT_NE(again.reason.find("flooded hall"), std::string::npos) << again.reason;
  auto c2 = **tables::contracts.get(velo, again.contract_id);
  EXPECT_EQ(c2.seller, "alloyframe");
  // The first contract is cancelled at both ends, with the same terms.
  auto old_at_velo = **tables::contracts.get(velo, contract->contract_id);
  auto old_at_fc = **tables::contracts.get(w.node("framecraft").store(), contract->contract_id);
  EXPECT_EQ(old_at_velo.state, contract_state::cancelled);
  EXPECT_TRUE(old_at_velo.same_terms(old_at_fc));
  auto p = **tables::progress.get(velo, contract->contract_id);
  EXPECT_EQ(p.event.kind, wire::production_event_kind::cancelled);
  EXPECT_EQ(p.event.state, wire::contract_progress::cancelled);
  // Framecraft keeps no booking for it; its offer says why it ended.
  for (const auto& [key, b] : all(w.node("framecraft").store(), tables::bookings))
    ADD_FAILURE() << "framecraft still books " << key;
  auto offer = **tables::offers.get(w.node("framecraft").store(), old_at_fc.proposal_id);
  EXPECT_EQ(offer.state, offer_state::cancelled);
  EXPECT_GT(offer.ended_us, 0);
  auto oj = json::parse(call(api, "GET", "/v1/orders/" + id).body);
  EXPECT_EQ(oj.at("contract").at("seller"), "alloyframe");
  expect_quiet_and_clean(w, {"velo", "framecraft", "alloyframe"}, {"velo"});
}

// Three tiers: Framecraft buys its tube sets from Tubeworks, a factory with
// one bender. The bender breaks down for longer than the horizon: Tubeworks
// cancels the tube contract, Framecraft cannot source the tubes again, so it
// cancels the frame contract, and Velo (no other frame seller) fails the
// order -- each tier saying why. Nothing stays booked or contracted.
TEST_F(actors_test, a_component_that_cannot_be_re_sourced_cancels_the_tier_above) {
  world w(dir_);
  w.nested(true);
  w.add_node("velo", velo_buying_frames("\"framecraft\""));
  w.add_node("framecraft", R"(
[buyer]
proposal_window_ms = 300
confirm_timeout_ms = 1000
[[buyer.sources]]
item = "TUBE-SET"
sellers = ["tubeworks"]
[factory]
hold_ttl_ms = 10000
component_window_ms = 400
[[factory.machines]]
id = "weld1"
capabilities = ["welding"]
rate_cents_per_hour = 5000
[[factory.items]]
id = "FRAME"
[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 10
[[factory.items.components]]
item = "TUBE-SET"
quantity = 1
)");
  w.add_node("tubeworks", R"(
[factory]
hold_ttl_ms = 10000
horizon_days = 20
[[factory.machines]]
id = "bender1"
capabilities = ["bending"]
rate_cents_per_hour = 3000
health_threshold = 40
maintenance_hours = 2
[[factory.items]]
id = "TUBE-SET"
[[factory.items.operations]]
capability = "bending"
minutes_per_unit = 5
)");
  auto api = w.admin("velo");
  auto tw = w.admin("tubeworks");
  const auto now = system_clock().now();
  const auto id = post_order(api, "FRAME", 4, now + 5 * us_per_day);
  auto [order, contract] = settled(w, "velo", id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  // A health score above the threshold opens nothing; one below opens a
  // two-hour maintenance window that delays the tube contract a little
  // (Framecraft planned to start after the tubes arrive: it passes a delay up).
  auto h = post_machine(tw, "/v1/machines/bender1/health", {{"score", 80}}, 200);
  EXPECT_TRUE(h.at("outage").is_null());
  post_machine(tw, "/v1/machines/bender1/health", {{"score", 101}}, 400);
  h = post_machine(tw, "/v1/machines/bender1/health", {{"score", 31}}, 201);
  EXPECT_EQ(h.at("kind"), "maintenance");
  EXPECT_EQ(h.at("health_score"), 31);
  EXPECT_EQ(h.at("reason"), "health 31 below 40");
  ASSERT_EQ(h.at("effects").size(), 1u) << h.dump(2);
  EXPECT_EQ(h.at("effects").at(0).at("outcome"), "delayed");
  // Already down: a second low score opens nothing more.
  EXPECT_TRUE(
      post_machine(tw, "/v1/machines/bender1/health", {{"score", 20}}, 200).at("outage").is_null());
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(velo, contract->contract_id);
    return p && *p && (*p)->event.kind == wire::production_event_kind::delayed;
  }));
  // Then the bender breaks for 60 days: beyond Tubeworks' horizon.
  post_machine(tw, "/v1/machines/bender1/down", {{"for_s", 60 * 24 * 3600}}, 201);
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && (*o)->state == order_state::failed;
  }));
  auto failed = **tables::orders.get(velo, id);
  EXPECT_EQ(failed.round, 1u);
  EXPECT_NE(failed.reason.find("seller framecraft cancelled contract"), std::string::npos)
      << failed.reason;
  EXPECT_NE(failed.reason.find("could not be sourced again"), std::string::npos) << failed.reason;
  EXPECT_NE(failed.reason.find("bender1 broke down"), std::string::npos) << failed.reason;
  // Framecraft's component order: sourced again, failed.
  for (const auto& [oid, o] : all(w.node("framecraft").store(), tables::orders)) {
    EXPECT_TRUE(o.state == order_state::failed || o.state == order_state::cancelled)
        << oid << " " << to_string(o.state);
  }
  for (const auto& n : {"velo", "framecraft", "tubeworks"})
    for (const auto& [cid, c] : all(w.node(n).store(), tables::contracts))
      EXPECT_EQ(c.state, contract_state::cancelled) << n << " " << cid;
  expect_quiet_and_clean(w, {"velo", "framecraft", "tubeworks"}, {"velo", "framecraft"});
}

// An outage survives a restart: the machine stays blocked for new work, and
// a re-plan committed but not yet reported is reported when the node starts.
TEST_F(actors_test, outages_and_unreported_re_plans_survive_a_restart) {
  const auto now = system_clock().now();
  std::string contract_id;
  {
    world w(dir_);
    w.add_node("velo", velo_buying_frames("\"framecraft\""));
    w.add_node("framecraft", factory_toml(3000, 5000, 4000, 10000));
    auto api = w.admin("velo");
    const auto id = post_order(api, "FRAME", 5, now + 10 * us_per_day);
    auto [order, contract] = settled(w, "velo", id);
    ASSERT_EQ(order.state, order_state::contracted);
    contract_id = contract->contract_id;
    for (const auto* m : {"weld1", "weld2"})
      post_machine(w.admin("framecraft"), std::string("/v1/machines/") + m + "/maintenance",
                   {{"from_us", now + us_per_day}, {"for_s", 5 * 3600}}, 201);
    ASSERT_TRUE(eventually(
        [&] { return kept_holds(w.node("framecraft").store(), system_clock().now()).empty(); }));
  }
  // A re-plan record the executor never reported (as if the node stopped
  // right after the participant's commit).
  {
    store::options so;
    so.path = (dir_ / "framecraft").string();
    auto env = store::environment::open(so);
    ASSERT_TRUE(env) << env.error().to_string();
    store::write_batch b;
    replan_record r;
    r.contract_id = contract_id;
    r.number = 99;
    r.kind = replan_kind::rescheduled;
    r.planned_start_us = now;
    r.planned_end_us = now + 2 * us_per_hour;
    r.reason = "weld1 broke down: work moved to weld2, delivery as promised";
    tables::replans.put(b, replan_key(contract_id, 99), r);
    ASSERT_TRUE((*env)->apply(b).is_ok());
  }
  world w(dir_);
  w.add_node("velo", velo_buying_frames("\"framecraft\""));
  w.add_node("framecraft", factory_toml(3000, 5000, 4000, 10000));
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(w.node("velo").store(), contract_id);
    return p && *p && (*p)->event.reason.find("moved to weld2") != std::string::npos;
  }));
  EXPECT_TRUE(all(w.node("framecraft").store(), tables::replans).empty());
  // Welding a frame order that would fall in the window waits for its end.
  auto api = w.admin("velo");
  std::string id;
  json body{{"item", "FRAME"},
            {"quantity", 5},
            {"due_us", now + 10 * us_per_day},
            {"earliest_start_us", now + us_per_day + us_per_hour}};
  auto resp = call(api, "POST", "/v1/orders", body.dump());
  ASSERT_EQ(resp.status, 201u) << resp.body;
  id = json::parse(resp.body).at("order_id");
  auto [order, contract] = settled(w, "velo", id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  const auto weld = booking_of(w, "framecraft", contract->contract_id, 1);
  EXPECT_GE(weld.start_us, now + us_per_day + 5 * us_per_hour - us_per_hour);
  auto ml = json::parse(call(w.admin("framecraft"), "GET", "/v1/machines").body);
  EXPECT_EQ(ml.at("outages").size(), 2u);
  EXPECT_EQ(ml.at("outages").at(0).at("state"), "planned");
  expect_quiet_and_clean(w, {"velo", "framecraft"}, {"velo"});
}

// A machine goes down while an Accept waits for its component awards (the
// holds are already bookings in memory, nothing recorded yet): the outage
// leaves that offer alone, and once the contract is recorded its work is
// moved off the broken machine in a step of its own.
TEST_F(actors_test, a_breakdown_during_an_award_moves_the_new_contract_once_it_is_recorded) {
  world w(dir_);
  w.nested(true);
  w.add_node("velo", velo_buying_frames("\"framecraft\""));
  w.add_node("framecraft", R"(
[buyer]
proposal_window_ms = 300
confirm_timeout_ms = 5000
[[buyer.sources]]
item = "TUBE-SET"
sellers = ["tubeco"]
[factory]
hold_ttl_ms = 20000
component_window_ms = 400
[[factory.machines]]
id = "weld1"
capabilities = ["welding"]
rate_cents_per_hour = 5000
[[factory.machines]]
id = "weld2"
capabilities = ["welding"]
rate_cents_per_hour = 5000
[[factory.items]]
id = "FRAME"
[[factory.items.operations]]
capability = "welding"
minutes_per_unit = 10
[[factory.items.components]]
item = "TUBE-SET"
quantity = 1
)");
  w.add_node("tubeco", R"(
[supplier]
hold_ttl_ms = 20000
[[supplier.items]]
id = "TUBE-SET"
unit_price_cents = 2000
lead_time_days = 0
daily_capacity = 100
)");
  // Tubeco confirms slowly: Framecraft's award is in flight for 1.5 s.
  w.network().delay("tubeco", wire::message_type::confirm, 1500ms);
  auto api = w.admin("velo");
  const auto id = post_order(api, "FRAME", 3, system_clock().now() + 10 * us_per_day);
  auto& velo = w.node("velo").store();
  ASSERT_TRUE(eventually([&] {
    auto o = tables::orders.get(velo, id);
    return o && *o && (*o)->state == order_state::awarded;
  }));
  std::this_thread::sleep_for(300ms);  // the Accept reached Framecraft
  auto held = all(w.node("framecraft").store(), tables::offers);
  ASSERT_EQ(held.size(), 1u);
  const auto machine = held.begin()->second.reservations.at(0).resource;
  auto out = post_machine(w.admin("framecraft"), "/v1/machines/" + machine + "/down",
                          {{"for_s", 10 * 24 * 3600}}, 201);
  EXPECT_TRUE(out.at("effects").empty()) << out.dump(2);  // nothing recorded there yet
  auto [order, contract] = settled(w, "velo", id);
  ASSERT_EQ(order.state, order_state::contracted) << order.reason;
  // The contract's welding moved off the broken machine, and Velo knows.
  ASSERT_TRUE(eventually(
      [&] { return booking_of(w, "framecraft", contract->contract_id, 0).resource != machine; }));
  ASSERT_TRUE(eventually([&] {
    auto p = tables::progress.get(velo, contract->contract_id);
    return p && *p && (*p)->event.reason.find(machine + " broke down") != std::string::npos;
  }));
  auto ml = json::parse(call(w.admin("framecraft"), "GET", "/v1/machines").body);
  EXPECT_EQ(ml.at("outages").at(0).at("effects").size(), 1u) << ml.dump(2);
  expect_quiet_and_clean(w, {"velo", "framecraft", "tubeco"}, {"velo", "framecraft"});
}

}  // namespace
}  // namespace gearmesh::actors
