// directory_logic as a pure state machine: four nodes wired by a message pump.
#include "gearmesh/actors/directory.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>

namespace gearmesh::actors {
namespace {

constexpr timestamp_us t0 = 1'767'225'600'000'000;
constexpr timestamp_us s = 1'000'000;

transport::peer peer(std::string id, std::string key = "") {
  return transport::peer{id, "tcp://127.0.0.1:7" + std::to_string(id.size()), std::move(key)};
}

/// velo (asks registry) -> registry (acme -> acme-dir) -> acme-dir
/// (acme.plant1 -> acme.plant1) -> acme.plant1 (a factory).
struct network {
  std::map<std::string, std::unique_ptr<directory_logic>> nodes;
  std::set<std::string> orders{"acme.plant1/order/3", "acme.plant1/order/3/c1"};
  std::set<std::string> silent;                 // nodes that drop what they receive
  std::map<std::uint64_t, lookup_result> done;  // by request id, at velo
  std::size_t messages = 0;

  explicit network(std::uint32_t velo_hops = 4, std::size_t velo_cache = 16) {
    directory_config velo;
    velo.root = "registry";
    velo.hops_max = velo_hops;
    velo.cache_entries_max = velo_cache;
    add({"velo", "tcp://127.0.0.1:7100", "VELOKEY", {}, {}, {}}, velo, {peer("registry")});

    directory_config registry;
    registry.ttl_s = 600;
    registry.delegations = {{"acme", "acme-dir", {"welding", "FRAME"}},
                            {"tubeco", "tubeco", {"TUBE-SET"}}};
    add({"registry", "tcp://127.0.0.1:7200", "REGKEY", {}, {}, {}}, registry,
        {peer("velo"), peer("acme-dir", "ACMEDIRKEY"), peer("tubeco", "TUBEKEY")});

    directory_config acme;
    acme.delegations = {{"acme.plant1", "acme.plant1", {"welding", "sawing", "FRAME"}}};
    add({"acme-dir", "tcp://127.0.0.1:7300", "ACMEDIRKEY", {}, {}, {}}, acme,
        {peer("registry"), peer("acme.plant1", "PLANTKEY")});

    directory_config plant;
    plant.ttl_s = 60;
    directory_self ps{"acme.plant1",  "tcp://127.0.0.1:7400",
                      "PLANTKEY",     {"welding", "sawing", "FRAME"},
                      {"m7", "saw1"}, {{"FRAME", 3}}};
    add(ps, plant, {peer("acme-dir")});
  }

  void add(directory_self self, directory_config cfg, std::vector<transport::peer> peers) {
    auto id = self.node_id;
    entity_lookup lookup = [this](ident::kind, const std::string& x) {
      return orders.count(x) > 0;
    };
    nodes[id] = std::make_unique<directory_logic>(std::move(self), std::move(cfg), std::move(peers),
                                                  lookup, 1000);
  }

  directory_logic& at(const std::string& id) { return *nodes.at(id); }

  /// Delivers messages until none is left (bounded).
  void pump(const std::string& from, directory_logic::actions a, timestamp_us now) {
    std::deque<std::pair<std::string, directory_logic::send>> q;
    for (auto& x : a.sends) q.emplace_back(from, std::move(x));
    for (auto& [id, r] : a.done) done[id] = std::move(r);
    for (int i = 0; i < 100 && !q.empty(); ++i) {
      auto [sender, m] = std::move(q.front());
      q.pop_front();
      ++messages;
      if (silent.count(m.receiver) || !nodes.count(m.receiver)) continue;
      directory_logic::actions b;
      if (auto* rq = std::get_if<wire::resolve>(&m.payload))
        at(m.receiver).on_resolve(sender, *rq, now, b);
      else
        at(m.receiver).on_resolution(sender, std::get<wire::resolution>(m.payload), now, b);
      for (auto& x : b.sends) q.emplace_back(m.receiver, std::move(x));
      // Only velo has local callers.
      if (m.receiver != "velo") {
        EXPECT_TRUE(b.done.empty());
      }
      for (auto& [id, r] : b.done) done[id] = std::move(r);
    }
    ASSERT_TRUE(q.empty()) << "message loop";
  }

  lookup_result resolve(std::uint64_t request, std::string id, timestamp_us now = t0) {
    directory_logic::actions a;
    wire::resolve q;
    q.identifier = std::move(id);
    at("velo").lookup(request, q, now, a);
    pump("velo", std::move(a), now);
    EXPECT_TRUE(done.count(request)) << "no answer";
    return done[request];
  }

  lookup_result search(std::uint64_t request, std::string capability, timestamp_us now = t0) {
    directory_logic::actions a;
    wire::resolve q;
    q.capability = std::move(capability);
    at("velo").lookup(request, q, now, a);
    pump("velo", std::move(a), now);
    EXPECT_TRUE(done.count(request)) << "no answer";
    return done[request];
  }
};

TEST(directory, answers_for_its_own_entities) {
  network n;
  auto& plant = n.at("acme.plant1");
  auto q = [](std::string id) {
    wire::resolve r;
    r.identifier = std::move(id);
    return r;
  };
  for (const char* id : {"acme.plant1", "acme.plant1/node/acme.plant1", "acme.plant1/machine/m7",
                         "acme.plant1/item/FRAME", "acme.plant1/operation/FRAME.3",
                         "acme.plant1/order/3", "acme.plant1/order/3/c1"}) {
    SCOPED_TRACE(id);
    auto r = plant.authoritative(q(id));
    EXPECT_EQ(r.status, wire::resolution_status::found) << r.reason;
    ASSERT_EQ(r.entries.size(), 1u);
    EXPECT_EQ(r.entries[0].node_id, "acme.plant1");
    EXPECT_EQ(r.entries[0].endpoint, "tcp://127.0.0.1:7400");
    EXPECT_EQ(r.entries[0].public_key, "PLANTKEY");
    EXPECT_FALSE(r.entries[0].referral);
    EXPECT_EQ(r.ttl_s, 60u);
  }
  for (auto [id, reason] : std::vector<std::pair<const char*, const char*>>{
           {"acme.plant1/machine/m9", "no machine m9 at acme.plant1"},
           {"acme.plant1/operation/FRAME.4", "no operation FRAME.4"},
           {"acme.plant1/order/4", "no order 4 at acme.plant1"},
           {"acme.plant1/order/3/c2", "no contract acme.plant1/order/3/c2"},
           {"acme.plant1/proposal/1", "no proposal 1"},
           {"acme.plant1/order/a b", "allows only"},
           {"acme.plant2/machine/m7", "knows no directory for acme.plant2"}}) {
    SCOPED_TRACE(id);
    auto r = plant.authoritative(q(id));
    EXPECT_EQ(r.status, wire::resolution_status::not_found);
    EXPECT_NE(r.reason.find(reason), std::string::npos) << r.reason;
  }
}

TEST(directory, delegates_by_longest_label_prefix) {
  network n;
  wire::resolve q;
  q.identifier = "acme.plant1/machine/m7";
  auto r = n.at("registry").authoritative(q);
  EXPECT_EQ(r.status, wire::resolution_status::referral);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].node_id, "acme-dir");
  EXPECT_EQ(r.entries[0].public_key, "ACMEDIRKEY");
  EXPECT_TRUE(r.entries[0].referral);
  q.identifier = "acmecorp/order/1";
  EXPECT_EQ(n.at("registry").authoritative(q).status, wire::resolution_status::not_found);
}

TEST(directory, resolves_over_two_hops_then_from_the_cache) {
  network n;
  auto r = n.resolve(1, "acme.plant1/machine/m7");
  EXPECT_EQ(r.answer.status, wire::resolution_status::found) << r.answer.reason;
  ASSERT_EQ(r.answer.entries.size(), 1u);
  EXPECT_EQ(r.answer.entries[0].node_id, "acme.plant1");
  EXPECT_EQ(r.answer.entries[0].endpoint, "tcp://127.0.0.1:7400");
  EXPECT_EQ(r.answer.entries[0].public_key, "PLANTKEY");
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(n.messages, 6u);  // 3 Resolve, 3 Resolution
  EXPECT_EQ(n.at("velo").stats().forwarded, 1u);
  EXPECT_EQ(n.at("registry").stats().forwarded, 1u);
  EXPECT_EQ(n.at("acme-dir").stats().forwarded, 1u);
  EXPECT_EQ(n.at("acme.plant1").stats().answered_authoritative, 1u);

  // Within the TTL (the owner's 60 s): from velo's cache, nothing sent.
  auto again = n.resolve(2, "acme.plant1/machine/m7", t0 + 30 * s);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.answer.entries, r.answer.entries);
  EXPECT_EQ(again.answer.ttl_s, 30u);
  EXPECT_EQ(n.messages, 6u);
  EXPECT_EQ(n.at("velo").stats().cache_hits, 1u);

  // After it: asked again; the directories on the way cached it as well.
  auto later = n.resolve(3, "acme.plant1/machine/m7", t0 + 61 * s);
  EXPECT_FALSE(later.cached);
  EXPECT_EQ(later.answer.status, wire::resolution_status::found);
  EXPECT_EQ(n.at("velo").stats().cache_misses, 2u);
}

TEST(directory, answers_unknown_identifiers_not_found) {
  network n;
  auto r = n.resolve(1, "acme.plant1/machine/m99");
  EXPECT_EQ(r.answer.status, wire::resolution_status::not_found);
  EXPECT_NE(r.answer.reason.find("no machine m99 at acme.plant1"), std::string::npos);
  r = n.resolve(2, "zeta/order/1");
  EXPECT_EQ(r.answer.status, wire::resolution_status::not_found);
  EXPECT_NE(r.answer.reason.find("registry knows no directory for zeta"), std::string::npos)
      << r.answer.reason;
  // Negative answers are cached too.
  r = n.resolve(3, "zeta/order/1", t0 + s);
  EXPECT_TRUE(r.cached);
  // A malformed identifier never leaves the node.
  const auto sent = n.messages;
  r = n.resolve(4, "zeta//1");
  EXPECT_EQ(r.answer.status, wire::resolution_status::not_found);
  EXPECT_TRUE(r.local);
  EXPECT_EQ(n.messages, sent);
}

TEST(directory, finds_partners_by_capability) {
  network n;
  auto r = n.search(1, "welding");
  EXPECT_EQ(r.answer.status, wire::resolution_status::found) << r.answer.reason;
  ASSERT_EQ(r.answer.entries.size(), 1u);
  EXPECT_EQ(r.answer.entries[0].node_id, "acme.plant1");
  EXPECT_FALSE(r.answer.entries[0].referral);
  EXPECT_EQ(r.answer.entries[0].endpoint, "tcp://127.0.0.1:7400");
  EXPECT_EQ(r.answer.capability, "welding");

  r = n.search(2, "painting");
  EXPECT_EQ(r.answer.status, wire::resolution_status::not_found);
  // TUBE-SET: the registry asks tubeco, which never answers (not a node
  // here); at its deadline the registry answers with what it has: nothing.
  directory_logic::actions a;
  wire::resolve q;
  q.capability = "TUBE-SET";
  n.at("velo").lookup(3, q, t0, a);
  n.pump("velo", std::move(a), t0);
  EXPECT_EQ(n.done.count(3), 0u);
  directory_logic::actions b;
  n.at("registry").expire(t0 + 3 * s, b);
  n.pump("registry", std::move(b), t0 + 3 * s);
  ASSERT_EQ(n.done.count(3), 1u);
  EXPECT_EQ(n.done[3].answer.status, wire::resolution_status::not_found);
  EXPECT_EQ(n.at("registry").stats().timeouts, 1u);
}

TEST(directory, times_out_a_silent_hop) {
  network n;
  n.silent.insert("acme.plant1");
  directory_logic::actions a;
  wire::resolve q;
  q.identifier = "acme.plant1/machine/m7";
  n.at("velo").lookup(1, q, t0, a);
  n.pump("velo", std::move(a), t0);
  EXPECT_EQ(n.done.count(1), 0u);
  ASSERT_TRUE(n.at("velo").next_deadline().has_value());
  EXPECT_EQ(*n.at("velo").next_deadline(), t0 + 3 * s);
  // acme-dir gives up first (same timeout, started a little later in reality):
  directory_logic::actions b;
  n.at("acme-dir").expire(t0 + 3 * s, b);
  n.pump("acme-dir", std::move(b), t0 + 3 * s);
  ASSERT_EQ(n.done.count(1), 1u);
  EXPECT_EQ(n.done[1].answer.status, wire::resolution_status::not_found);
  EXPECT_NE(n.done[1].answer.reason.find("no answer from acme.plant1"), std::string::npos)
      << n.done[1].answer.reason;
  EXPECT_EQ(n.at("acme-dir").stats().timeouts, 1u);
  // A timeout is not cached.
  EXPECT_EQ(n.at("velo").stats().cache_entries, 0u);
  EXPECT_FALSE(n.at("velo").next_deadline().has_value());
}

TEST(directory, hop_budget_ends_in_a_referral) {
  network n(/*velo_hops=*/1);
  auto r = n.resolve(1, "acme.plant1/machine/m7");
  EXPECT_EQ(r.answer.status, wire::resolution_status::referral);
  ASSERT_EQ(r.answer.entries.size(), 1u);
  EXPECT_EQ(r.answer.entries[0].node_id, "acme-dir");
  EXPECT_TRUE(r.answer.entries[0].referral);
}

TEST(directory, ignores_stale_and_misdirected_answers) {
  network n;
  n.silent.insert("registry");
  directory_logic::actions a;
  wire::resolve q;
  q.identifier = "acme.plant1/machine/m7";
  n.at("velo").lookup(1, q, t0, a);
  ASSERT_EQ(a.sends.size(), 1u);
  const auto id = std::get<wire::resolve>(a.sends[0].payload).query_id;
  wire::resolution fake;
  fake.query_id = id;
  fake.status = wire::resolution_status::found;
  directory_logic::actions b;
  n.at("velo").on_resolution("acme-dir", fake, t0, b);  // not the node asked
  fake.query_id = id + 100;
  n.at("velo").on_resolution("registry", fake, t0, b);  // no such query
  EXPECT_TRUE(b.done.empty());
  EXPECT_EQ(n.at("velo").stats().stale_resolutions, 2u);
}

TEST(directory, coalesces_and_bounds_the_cache) {
  network n(4, /*velo_cache=*/2);
  directory_logic::actions a;
  wire::resolve q;
  q.identifier = "acme.plant1/machine/m7";
  n.at("velo").lookup(1, q, t0, a);
  n.at("velo").lookup(2, q, t0, a);
  EXPECT_EQ(a.sends.size(), 1u);  // one query on the wire for both
  n.pump("velo", std::move(a), t0);
  EXPECT_EQ(n.done.size(), 2u);
  n.resolve(3, "acme.plant1/machine/saw1");
  n.resolve(4, "acme.plant1/item/FRAME");
  EXPECT_LE(n.at("velo").stats().cache_entries, 2u);
}

TEST(directory, rejects_a_query_naming_both_or_neither) {
  network n;
  directory_logic::actions a;
  wire::resolve q;
  q.query_id = 9;
  n.at("registry").on_resolve("velo", q, t0, a);
  ASSERT_EQ(a.sends.size(), 1u);
  const auto& r = std::get<wire::resolution>(a.sends[0].payload);
  EXPECT_EQ(r.query_id, 9u);
  EXPECT_EQ(r.status, wire::resolution_status::not_found);
  EXPECT_EQ(a.sends[0].receiver, "velo");
}

}  // namespace
}  // namespace gearmesh::actors

namespace gearmesh::actors {
namespace {

result<directory_config> parse_dir(const std::string& text) {
  auto f = config_file::parse(text, "d.toml");
  EXPECT_TRUE(f.has_value());
  node_config node;
  node.node_id = "registry";
  peer_config p;
  p.id = "acme-dir";
  node.peers.push_back(p);
  return parse_directory(*f, node);
}

void bad_config(const std::string& text, const std::string& needle) {
  auto r = parse_dir(text);
  ASSERT_FALSE(r.has_value()) << text;
  EXPECT_EQ(r.error().code(), errc::bad_config);
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().to_string();
}

TEST(directory_config, parses_the_section) {
  auto r = parse_dir(R"([directory]
root = "acme-dir"
endpoint = "tcp://10.0.0.2:7100"
ttl_s = 60
cache_entries_max = 10
query_timeout_ms = 500
hops_max = 2
capabilities = ["welding"]

[[directory.delegations]]
prefix = "acme"
node = "acme-dir"
capabilities = ["welding", "FRAME"]
)");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->root, "acme-dir");
  EXPECT_EQ(r->endpoint, "tcp://10.0.0.2:7100");
  EXPECT_EQ(r->ttl_s, 60u);
  EXPECT_EQ(r->cache_entries_max, 10u);
  EXPECT_EQ(r->query_timeout_ms, 500);
  EXPECT_EQ(r->hops_max, 2u);
  ASSERT_EQ(r->delegations.size(), 1u);
  EXPECT_EQ(r->delegations[0].prefix, "acme");
  EXPECT_EQ(r->delegations[0].capabilities.size(), 2u);
  // Absent: defaults.
  auto d = parse_dir("[node]\n");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->root.empty());
  EXPECT_EQ(d->ttl_s, 300u);
}

TEST(directory_config, errors_name_line_and_field) {
  bad_config("[directory]\nroot = \"nobody\"\n", "d.toml:2: directory.root: \"nobody\" is not");
  bad_config("[directory]\nfoo = 1\n", "d.toml:2: directory.foo: unknown key");
  bad_config("[directory]\nttl_s = -1\n", "directory.ttl_s: expected an integer");
  bad_config("[directory]\nendpoint = \"nowhere\"\n", "directory.endpoint");
  bad_config("[[directory.delegations]]\nprefix = \"Acme\"\nnode = \"acme-dir\"\n",
             "directory.delegations[0].prefix");
  bad_config("[[directory.delegations]]\nprefix = \"acme\"\nnode = \"x\"\n",
             "directory.delegations[0].node: \"x\" is not a configured [[peers]] id");
  bad_config("[[directory.delegations]]\nprefix = \"acme\"\n", "missing required key");
  bad_config(
      "[[directory.delegations]]\nprefix = \"acme\"\nnode = \"acme-dir\"\n"
      "[[directory.delegations]]\nprefix = \"acme\"\nnode = \"acme-dir\"\n",
      "delegated twice");
  bad_config("directory = 3\n", "directory: expected a table");
}

}  // namespace
}  // namespace gearmesh::actors
