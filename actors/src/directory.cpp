// Identifier resolution: directory_logic (pure) and the actor around it.
// Procedure: docs/protocol.md section 7.
#include "gearmesh/actors/directory.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/actors/roles_config.hpp"
#include "gearmesh/keys/keys.hpp"
#include "gearmesh/node/caf_types.hpp"

namespace gearmesh::actors {

namespace {

constexpr timestamp_us us_per_s = 1'000'000;
constexpr timestamp_us us_per_ms = 1'000;

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

wire::resolution not_found(const wire::resolve& q, std::string reason, std::uint32_t ttl_s = 0) {
  wire::resolution r;
  r.status = wire::resolution_status::not_found;
  r.identifier = q.identifier;
  r.capability = q.capability;
  r.reason = std::move(reason);
  r.ttl_s = ttl_s;
  return r;
}

/// Adds `e` unless an entry for the same node is there already; bounded.
void merge_entry(std::vector<wire::directory_entry>& into, const wire::directory_entry& e) {
  if (into.size() >= answer_entries_max) return;
  for (auto& x : into) {
    if (x.node_id != e.node_id) continue;
    if (x.referral && !e.referral) x = e;  // an answer beats a referral to the same node
    return;
  }
  into.push_back(e);
}

}  // namespace

// ---------------------------------------------------------------- logic

directory_logic::directory_logic(directory_self self, directory_config cfg,
                                 std::vector<transport::peer> peers, entity_lookup lookup,
                                 std::uint64_t first_query_id)
    : self_(std::move(self)),
      cfg_(std::move(cfg)),
      peers_(std::move(peers)),
      lookup_(std::move(lookup)),
      next_query_id_(first_query_id == 0 ? 1 : first_query_id) {}

std::string directory_logic::key_of(const wire::resolve& q) {
  return q.identifier.empty() ? "capability:" + q.capability : "id:" + q.identifier;
}

wire::directory_entry directory_logic::entry_for(const std::string& node_id,
                                                 const std::vector<std::string>& capabilities,
                                                 bool referral) const {
  wire::directory_entry e;
  e.node_id = node_id;
  e.referral = referral;
  if (node_id == self_.node_id) {
    e.endpoint = self_.endpoint;
    e.public_key = self_.public_key;
  } else {
    for (const auto& p : peers_) {
      if (p.id != node_id) continue;
      e.endpoint = p.endpoint;
      e.public_key = p.public_key;
    }
  }
  const auto n = std::min(capabilities.size(), entry_capabilities_max);
  e.capabilities.assign(capabilities.begin(), capabilities.begin() + static_cast<long>(n));
  return e;
}

const delegation_config* directory_logic::delegation_for(std::string_view authority) const {
  const delegation_config* best = nullptr;
  for (const auto& d : cfg_.delegations) {
    if (d.node == self_.node_id || !ident::covers(d.prefix, authority)) continue;
    if (!best || ident::label_count(d.prefix) > ident::label_count(best->prefix)) best = &d;
  }
  return best;
}

bool directory_logic::owns(const ident::identifier& id, std::string& reason) const {
  const std::string text = ident::format(id);
  auto missing = [&](const char* what) {
    reason = std::string("no ") + what + " " + id.local + " at " + self_.node_id;
    return false;
  };
  switch (id.kind) {
    case ident::kind::node:
      if (id.local.empty() || id.local == self_.node_id) return true;
      return missing("node");
    case ident::kind::enterprise:
      if (id.local == self_.node_id) return true;
      return missing("enterprise");
    case ident::kind::machine:
      if (contains(self_.machines, id.local)) return true;
      return missing("machine");
    case ident::kind::item:
      if (self_.items.count(id.local)) return true;
      return missing("item");
    case ident::kind::operation: {
      // <item>.<n>, n = 1.. the routing's length
      const auto dot = id.local.rfind('.');
      if (dot != std::string::npos) {
        auto it = self_.items.find(id.local.substr(0, dot));
        const auto n = id.local.substr(dot + 1);
        if (it != self_.items.end() && !n.empty() && n.size() < 6 &&
            std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          const auto i = std::stoul(n);
          if (i >= 1 && i <= it->second) return true;
        }
      }
      return missing("operation");
    }
    case ident::kind::order:
      if (lookup_ && lookup_(id.kind, text)) return true;
      return missing("order");
    case ident::kind::contract:
      if (lookup_ && lookup_(id.kind, text)) return true;
      reason = "no contract " + text + " at " + self_.node_id;
      return false;
    case ident::kind::proposal:
      if (lookup_ && lookup_(id.kind, text)) return true;
      return missing("proposal");
  }
  return missing("entity");
}

wire::resolution directory_logic::authoritative(const wire::resolve& q) const {
  wire::resolution r;
  r.identifier = q.identifier;
  r.capability = q.capability;
  r.ttl_s = cfg_.ttl_s;
  if (!q.identifier.empty()) {
    auto id = ident::parse(q.identifier);
    if (!id) {
      r.reason = id.error().message();
      return r;
    }
    if (id->authority == self_.node_id) {
      std::string reason;
      if (owns(*id, reason)) {
        r.status = wire::resolution_status::found;
        r.entries.push_back(entry_for(self_.node_id, self_.capabilities, false));
      } else {
        r.reason = std::move(reason);
      }
      return r;
    }
    if (const auto* d = delegation_for(id->authority)) {
      r.status = wire::resolution_status::referral;
      r.entries.push_back(entry_for(d->node, d->capabilities, true));
      return r;
    }
    r.reason = self_.node_id + " knows no directory for " + id->authority;
    return r;
  }
  if (contains(self_.capabilities, q.capability))
    r.entries.push_back(entry_for(self_.node_id, self_.capabilities, false));
  for (const auto& d : cfg_.delegations) {
    if (d.node == self_.node_id || !contains(d.capabilities, q.capability)) continue;
    merge_entry(r.entries, entry_for(d.node, d.capabilities, true));
  }
  const bool any_answer =
      std::any_of(r.entries.begin(), r.entries.end(), [](const auto& e) { return !e.referral; });
  r.status = any_answer          ? wire::resolution_status::found
             : r.entries.empty() ? wire::resolution_status::not_found
                                 : wire::resolution_status::referral;
  if (r.entries.empty()) r.reason = "no node known to " + self_.node_id + " offers " + q.capability;
  return r;
}

void directory_logic::answer(const waiter& w, wire::resolution r, bool cached, bool local,
                             actions& out) {
  if (w.local) {
    out.done.emplace_back(w.request_id, lookup_result{std::move(r), cached, local});
    return;
  }
  r.query_id = w.asker_query_id;
  out.sends.push_back(send{w.asker, std::move(r)});
}

void directory_logic::lookup(std::uint64_t request_id, const wire::resolve& q, timestamp_us now,
                             actions& out) {
  ++stats_.queries_local;
  waiter w;
  w.local = true;
  w.request_id = request_id;
  start(w, q, cfg_.hops_max, now, out);
}

void directory_logic::on_resolve(const std::string& sender, const wire::resolve& q,
                                 timestamp_us now, actions& out) {
  ++stats_.queries_remote;
  waiter w;
  w.local = false;
  w.asker = sender;
  w.asker_query_id = q.query_id;
  // A peer's budget never exceeds ours: a delegation cycle between
  // misconfigured directories ends after hops_max forwards.
  start(w, q, std::min<std::uint32_t>(q.hops, cfg_.hops_max), now, out);
}

std::uint64_t directory_logic::forward(pending_query& p, const std::string& to, std::uint32_t hops,
                                       actions& out) {
  const auto id = next_query_id_++;
  wire::resolve fwd;
  fwd.query_id = id;
  fwd.identifier = p.query.identifier;
  fwd.capability = p.query.capability;
  fwd.hops = static_cast<std::uint8_t>(std::min<std::uint32_t>(hops, 255));
  out.sends.push_back(send{to, fwd});
  p.outstanding.push_back(id);
  p.asked.push_back(to);
  ++stats_.forwarded;
  return id;
}

void directory_logic::start(const waiter& w, const wire::resolve& q, std::uint32_t hops,
                            timestamp_us now, actions& out) {
  if (q.identifier.empty() == q.capability.empty()) {
    answer(w, not_found(q, "a Resolve names either an identifier or a capability"), false, true,
           out);
    return;
  }
  wire::resolution own = authoritative(q);
  const bool is_id = !q.identifier.empty();
  // What this node answers for itself never depends on others: no cache.
  if (is_id && own.status != wire::resolution_status::referral) {
    auto id = ident::parse(q.identifier);
    if (!id || id->authority == self_.node_id) {
      ++stats_.answered_authoritative;
      answer(w, std::move(own), false, true, out);
      return;
    }
  }

  const std::string key = key_of(q);
  if (auto it = cache_.find(key); it != cache_.end()) {
    if (it->second.expires > now) {
      ++stats_.cache_hits;
      wire::resolution r = it->second.answer;
      r.ttl_s = static_cast<std::uint32_t>((it->second.expires - now + us_per_s - 1) / us_per_s);
      answer(w, std::move(r), true, false, out);
      return;
    }
    cache_.erase(it);
    stats_.cache_entries = cache_.size();
  }
  ++stats_.cache_misses;

  // The same question is already on its way: wait for that answer.
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    auto& p = pending_.at(it->second);
    if (p.waiters.size() < waiters_per_query_max) {
      p.waiters.push_back(w);
      return;
    }
  }

  // Whom to ask.
  std::vector<std::string> targets;
  if (is_id) {
    if (own.status == wire::resolution_status::referral)
      targets.push_back(own.entries[0].node_id);
    else if (w.local && !cfg_.root.empty() && cfg_.root != self_.node_id)
      targets.push_back(cfg_.root);
  } else {
    for (const auto& e : own.entries)
      if (e.referral && e.node_id != w.asker) targets.push_back(e.node_id);
    if (w.local && !cfg_.root.empty() && cfg_.root != self_.node_id &&
        !contains(targets, cfg_.root))
      targets.push_back(cfg_.root);
  }
  if (targets.empty() || hops == 0) {
    // Nothing (more) to ask: a referral names the delegate that was not asked.
    if (is_id && own.status == wire::resolution_status::not_found && hops == 0 && w.local)
      own.reason += " (hop budget 0)";
    ++stats_.answered_authoritative;
    answer(w, std::move(own), false, true, out);
    return;
  }
  if (pending_.size() >= pending_queries_max) {
    ++stats_.busy;
    answer(w, not_found(q, self_.node_id + " has too many queries in flight, retry later"), false,
           true, out);
    return;
  }

  pending_query p;
  p.key = key;
  p.query = q;
  p.waiters.push_back(w);
  p.deadline = now + cfg_.query_timeout_ms * us_per_ms;
  if (!is_id) {
    // This node's own offer, if any, is part of the answer.
    for (const auto& e : own.entries)
      if (!e.referral) merge_entry(p.partial.entries, e);
  }
  p.partial.identifier = q.identifier;
  p.partial.capability = q.capability;
  p.partial.ttl_s = cfg_.ttl_s;
  const auto first = next_query_id_;
  for (const auto& t : targets) {
    const auto id = forward(p, t, hops - 1, out);
    by_query_id_[id] = first;
  }
  by_key_[key] = first;
  pending_.emplace(first, std::move(p));
  stats_.pending = pending_.size();
}

void directory_logic::on_resolution(const std::string& sender, const wire::resolution& r,
                                    timestamp_us now, actions& out) {
  ++stats_.resolutions_in;
  auto idx = by_query_id_.find(r.query_id);
  if (idx == by_query_id_.end()) {
    ++stats_.stale_resolutions;
    return;
  }
  auto pit = pending_.find(idx->second);
  if (pit == pending_.end()) {
    by_query_id_.erase(idx);
    ++stats_.stale_resolutions;
    return;
  }
  auto& p = pit->second;
  // Only the node a query went to may answer it.
  const auto pos = std::find(p.outstanding.begin(), p.outstanding.end(), r.query_id);
  const auto target = p.asked.begin() + (pos - p.outstanding.begin());
  if (pos == p.outstanding.end() || *target != sender) {
    ++stats_.stale_resolutions;
    return;
  }
  p.outstanding.erase(pos);
  p.asked.erase(target);
  by_query_id_.erase(idx);

  if (!p.query.identifier.empty()) {
    p.partial = r;
  } else {
    for (const auto& e : r.entries) merge_entry(p.partial.entries, e);
    if (r.ttl_s < p.partial.ttl_s) p.partial.ttl_s = r.ttl_s;
  }
  if (p.outstanding.empty()) finish(pit->first, now, out);
}

void directory_logic::finish(std::uint64_t pending_id, timestamp_us now, actions& out) {
  auto& p = pending_.at(pending_id);
  wire::resolution r = std::move(p.partial);
  r.identifier = p.query.identifier;
  r.capability = p.query.capability;
  if (!p.query.capability.empty()) {
    const bool any_answer =
        std::any_of(r.entries.begin(), r.entries.end(), [](const auto& e) { return !e.referral; });
    r.status = any_answer          ? wire::resolution_status::found
               : r.entries.empty() ? wire::resolution_status::not_found
                                   : wire::resolution_status::referral;
    if (r.entries.empty() && r.reason.empty()) r.reason = "no node offers " + p.query.capability;
  }
  remember(p.key, r, now);
  for (const auto& w : p.waiters) answer(w, r, false, false, out);
  for (auto id : p.outstanding) by_query_id_.erase(id);
  if (auto k = by_key_.find(p.key); k != by_key_.end() && k->second == pending_id) by_key_.erase(k);
  pending_.erase(pending_id);
  stats_.pending = pending_.size();
}

void directory_logic::remember(const std::string& key, const wire::resolution& r,
                               timestamp_us now) {
  if (cfg_.cache_entries_max == 0 || r.ttl_s == 0) return;
  const timestamp_us expires = now + static_cast<timestamp_us>(r.ttl_s) * us_per_s;
  wire::resolution stored = r;
  stored.query_id = 0;
  cache_[key] = cache_entry{std::move(stored), expires};
  cache_order_.emplace_back(key, expires);
  // Evict the oldest insertions first; records of overwritten entries are skipped.
  while (cache_.size() > cfg_.cache_entries_max ||
         cache_order_.size() > 2 * cfg_.cache_entries_max + 16) {
    auto [k, e] = std::move(cache_order_.front());
    cache_order_.pop_front();
    auto it = cache_.find(k);
    if (it != cache_.end() && it->second.expires == e && cache_.size() > cfg_.cache_entries_max)
      cache_.erase(it);
  }
  stats_.cache_entries = cache_.size();
}

void directory_logic::expire(timestamp_us now, actions& out) {
  std::vector<std::uint64_t> due;
  for (const auto& [id, p] : pending_)
    if (p.deadline <= now) due.push_back(id);
  for (auto id : due) {
    auto& p = pending_.at(id);
    ++stats_.timeouts;
    if (!p.query.identifier.empty()) {
      const std::string who = p.asked.empty() ? "the directory" : p.asked.front();
      auto r = not_found(p.query, "no answer from " + who + " within " +
                                      std::to_string(cfg_.query_timeout_ms) + " ms");
      for (const auto& w : p.waiters) answer(w, r, false, false, out);
      for (auto q : p.outstanding) by_query_id_.erase(q);
      if (auto k = by_key_.find(p.key); k != by_key_.end() && k->second == id) by_key_.erase(k);
      pending_.erase(id);
    } else {
      // A capability search answers with what arrived; not cached.
      wire::resolution r = std::move(p.partial);
      r.identifier.clear();
      r.capability = p.query.capability;
      r.ttl_s = 0;
      const bool any = !r.entries.empty();
      r.status = any ? wire::resolution_status::found : wire::resolution_status::not_found;
      if (!any)
        r.reason = "no answer in time from " + std::to_string(p.outstanding.size()) + " nodes";
      for (const auto& w : p.waiters) answer(w, r, false, false, out);
      for (auto q : p.outstanding) by_query_id_.erase(q);
      if (auto k = by_key_.find(p.key); k != by_key_.end() && k->second == id) by_key_.erase(k);
      pending_.erase(id);
    }
  }
  // Expired cache entries leave lazily; drop those at the front of the order.
  while (!cache_order_.empty() && cache_order_.front().second <= now) {
    auto it = cache_.find(cache_order_.front().first);
    if (it != cache_.end() && it->second.expires <= now) cache_.erase(it);
    cache_order_.pop_front();
  }
  stats_.cache_entries = cache_.size();
  stats_.pending = pending_.size();
}

std::optional<timestamp_us> directory_logic::next_deadline() const {
  std::optional<timestamp_us> d;
  for (const auto& [id, p] : pending_)
    if (!d || p.deadline < *d) d = p.deadline;
  return d;
}

// ---------------------------------------------------------------- self

result<directory_self> make_directory_self(const node_config& node, const directory_config& dir,
                                           const roles_config& roles) {
  directory_self s;
  s.node_id = node.node_id;
  s.endpoint = dir.endpoint.empty() ? node.listen : dir.endpoint;
  if (!node.insecure && !node.secret_key_file.empty()) {
    auto kp = keys::load_secret_key(node.secret_key_file);
    if (!kp) return kp.error();
    s.public_key = keys::to_z85(kp->public_key);
  }
  std::set<std::string> caps;
  auto add = [&](const std::string& c) {
    if (caps.insert(c).second) s.capabilities.push_back(c);
  };
  if (roles.factory) {
    for (const auto& m : roles.factory->machines) {
      s.machines.push_back(m.id);
      for (const auto& c : m.capabilities) add(c);
    }
    for (const auto& i : roles.factory->items) {
      s.items[i.id] = i.operations.size();
      add(i.id);
    }
  }
  if (roles.supplier) {
    for (const auto& i : roles.supplier->items) {
      s.items[i.id] = 0;
      add(i.id);
    }
  }
  for (const auto& c : dir.capabilities) add(c);
  return s;
}

// ---------------------------------------------------------------- actor

namespace {

/// (dir_lookup_atom, wire::resolve) -> lookup_result
using dir_lookup_atom = caf::atom_constant<caf::atom("dirlookup")>;
/// (dir_expire_atom): pending deadlines
using dir_expire_atom = caf::atom_constant<caf::atom("direxpire")>;
/// (dir_stats_atom) -> directory_stats
using dir_stats_atom = caf::atom_constant<caf::atom("dirstats")>;

}  // namespace
}  // namespace gearmesh::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::wire::resolve)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::lookup_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gearmesh::actors::directory_stats)

namespace gearmesh::actors {
namespace {

struct directory_state {
  node_context* ctx = nullptr;
  std::optional<directory_logic> logic;
  std::uint64_t next_request = 1;
  std::map<std::uint64_t, caf::response_promise> waiting;
  timestamp_us wake_us = 0;  // armed timer, 0 = none
};
using directory_actor = caf::stateful_actor<directory_state>;

void arm(directory_actor* self) {
  auto& st = self->state;
  const auto d = st.logic->next_deadline();
  if (!d || (st.wake_us != 0 && st.wake_us <= *d)) return;
  st.wake_us = *d;
  const auto now = st.ctx->clock().now();
  const auto delay = std::chrono::microseconds(std::max<timestamp_us>(0, *d - now) + us_per_ms);
  self->delayed_send(self, delay, dir_expire_atom::value);
}

/// Commits what one event produced (with `cause`, the inbound message it
/// processed, if any) and answers local callers.
void apply(directory_actor* self, directory_logic::actions& a, std::optional<inbound_ref> cause,
           std::uint64_t causation_id) {
  auto& st = self->state;
  if (cause || !a.sends.empty()) {
    effects fx;
    fx.cause = std::move(cause);
    for (auto& s : a.sends) {
      outbound o;
      o.receiver = std::move(s.receiver);
      o.causation_id = causation_id;
      if (const auto* q = std::get_if<wire::resolve>(&s.payload))
        o.conversation_id = q->identifier.empty() ? q->capability : q->identifier;
      else if (const auto* r = std::get_if<wire::resolution>(&s.payload))
        o.conversation_id = r->identifier.empty() ? r->capability : r->identifier;
      o.payload = std::move(s.payload);
      fx.messages.push_back(std::move(o));
    }
    st.ctx->commit(std::move(fx));
  }
  for (auto& [id, result] : a.done) {
    auto it = st.waiting.find(id);
    if (it == st.waiting.end()) continue;
    it->second.deliver(std::move(result));
    st.waiting.erase(it);
  }
  arm(self);
}

caf::behavior directory_behavior(directory_actor* self, node_context* ctx, directory_self me,
                                 directory_config cfg, std::vector<transport::peer> peers) {
  auto& st = self->state;
  st.ctx = ctx;
  const auto& env = ctx->store();
  entity_lookup lookup = [&env](ident::kind k, const std::string& id) {
    const auto table = k == ident::kind::order      ? tables::orders.name()
                       : k == ident::kind::contract ? tables::contracts.name()
                                                    : tables::offers.name();
    auto v = env.get(table, id);
    return v && v->has_value();
  };
  st.logic.emplace(std::move(me), std::move(cfg), std::move(peers), std::move(lookup),
                   static_cast<std::uint64_t>(std::max<timestamp_us>(1, ctx->clock().now())));
  return {
      [=](inbound_atom, const wire::envelope& e) {
        auto& s = self->state;
        directory_logic::actions a;
        const auto now = s.ctx->clock().now();
        if (const auto* q = std::get_if<wire::resolve>(&e.payload))
          s.logic->on_resolve(e.header.sender, *q, now, a);
        else if (const auto* r = std::get_if<wire::resolution>(&e.payload))
          s.logic->on_resolution(e.header.sender, *r, now, a);
        apply(self, a, inbound_ref{e.header.sender, e.header.message_id}, e.header.message_id);
      },
      [=](dir_lookup_atom, wire::resolve& q) -> caf::result<lookup_result> {
        auto& s = self->state;
        auto rp = self->make_response_promise<lookup_result>();
        const auto id = s.next_request++;
        s.waiting.emplace(id, rp);
        directory_logic::actions a;
        s.logic->lookup(id, q, s.ctx->clock().now(), a);
        apply(self, a, std::nullopt, 0);
        return rp;
      },
      [=](dir_expire_atom) {
        auto& s = self->state;
        s.wake_us = 0;
        directory_logic::actions a;
        s.logic->expire(s.ctx->clock().now(), a);
        apply(self, a, std::nullopt, 0);
      },
      [=](dir_stats_atom) { return self->state.logic->stats(); },
  };
}

}  // namespace

caf::actor spawn_directory(caf::actor_system& sys, node_context& ctx, directory_self self,
                           directory_config cfg, std::vector<transport::peer> peers) {
  return sys.spawn(directory_behavior, &ctx, std::move(self), std::move(cfg), std::move(peers));
}

result<lookup_result> directory_lookup(caf::actor_system& sys, const caf::actor& directory,
                                       wire::resolve q, std::chrono::milliseconds timeout) {
  result<lookup_result> out = status{errc::timeout, "no answer from the directory in time"};
  caf::scoped_actor self{sys};
  self->request(directory, timeout, dir_lookup_atom::value, std::move(q))
      .receive([&](lookup_result& r) { out = std::move(r); },
               [&](caf::error& e) {
                 if (e != caf::sec::request_timeout)
                   out = status{errc::shutting_down, "directory unavailable: " + to_string(e)};
               });
  return out;
}

result<directory_stats> directory_counters(caf::actor_system& sys, const caf::actor& directory,
                                           std::chrono::milliseconds timeout) {
  result<directory_stats> out = status{errc::timeout, "no answer from the directory in time"};
  caf::scoped_actor self{sys};
  self->request(directory, timeout, dir_stats_atom::value)
      .receive([&](directory_stats& s) { out = s; },
               [&](caf::error& e) {
                 if (e != caf::sec::request_timeout)
                   out = status{errc::shutting_down, "directory unavailable: " + to_string(e)};
               });
  return out;
}

}  // namespace gearmesh::actors
