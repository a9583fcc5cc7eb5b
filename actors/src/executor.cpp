// The executor actor (executor.hpp): clock- or shop-floor-driven execution
// of sold contracts, one commit of record + ProductionEvent per change.
#include "gearmesh/actors/executor.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "caf_messages.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/string_hash.hpp"
#include "gearmesh/wire/codec.hpp"

namespace gearmesh::actors {

namespace {

using wire::contract_progress;
using wire::production_event_kind;

struct executor_state {
  node_context* ctx = nullptr;
  executor_config cfg;
  /// Executions that may still change (not delivered, not cancelled), by
  /// contract id. Unordered (a busy seller keeps thousands); what goes out
  /// of it in a batch is sorted by id first.
  std::unordered_map<std::string, execution_record, string_hash, std::equal_to<>> open;
  /// Next clock step of each open execution; one CAF timer for the earliest
  /// (`wake_us`), not one per contract (see buyer.cpp, schedule_wake).
  std::multimap<timestamp_us, std::string> steps;
  std::unordered_map<std::string, std::multimap<timestamp_us, std::string>::iterator, string_hash,
                     std::equal_to<>>
      armed;
  timestamp_us wake_us = 0;
  std::uint64_t commit_seq = 0;
  /// Posted events waiting for their commit to be durable.
  std::map<std::uint64_t, std::pair<caf::response_promise, post_reply>> replies;
  static inline const char* name = "gearmesh.executor";
};

using executor_actor = caf::stateful_actor<executor_state>;

/// The component summary of `e`: its component orders' contracts as this
/// node's buyer recorded them, with the latest events received for them.
std::vector<wire::component_status> components_of(const store::environment& env,
                                                  const execution_record& e) {
  std::vector<wire::component_status> out;
  for (const auto& sub : e.sub_orders) {
    auto o = tables::orders.get(env, sub);
    if (!o || !*o || (*o)->contract_id.empty() || (*o)->state != order_state::contracted) continue;
    auto c = tables::contracts.get(env, (*o)->contract_id);
    if (!c || !*c) continue;
    auto p = tables::progress.get(env, (*c)->contract_id);
    const progress_record* latest = (p && *p) ? &**p : nullptr;
    out.push_back(component_of(**c, latest));
  }
  // Our own event is one level above these: leave room for it.
  const wire::limits lim;
  prune(out, lim.component_depth_max, lim.components_max);
  return out;
}

/// (Re)starts the timer for the earliest step if earlier than the pending one.
void schedule_wake(executor_actor* self) {
  auto& st = self->state;
  if (st.steps.empty()) return;
  const auto d = st.steps.begin()->first;
  if (st.wake_us != 0 && st.wake_us <= d) return;
  st.wake_us = d;
  const auto now = st.ctx->clock().now();
  const auto delay = std::chrono::microseconds(std::max<timestamp_us>(0, d - now) + us_per_ms);
  self->delayed_send(self, delay, deadline_atom::value, d);
}

/// Keeps one entry per open execution at its next clock step.
void arm(executor_actor* self, const execution_record& e) {
  auto& st = self->state;
  auto it = st.armed.find(e.contract_id);
  if (it != st.armed.end()) {
    st.steps.erase(it->second);
    st.armed.erase(it);
  }
  auto d = next_step_us(e);
  if (!d) return;
  st.armed.emplace(e.contract_id, st.steps.emplace(*d, e.contract_id));
  schedule_wake(self);
}

/// Commits `e` with `events` to its buyer (and `extra` writes). Returns the
/// commit number.
std::uint64_t commit(executor_actor* self, const execution_record& e,
                     std::vector<wire::production_event> events, store::write_batch extra = {}) {
  auto& st = self->state;
  effects fx;
  fx.writes = std::move(extra);
  tables::executions.put(fx.writes, e.contract_id, e);
  for (auto& ev : events) fx.messages.push_back(outbound{e.buyer, e.order_id, 0, std::move(ev)});
  const auto seq = ++st.commit_seq;
  fx.on_durable = [h = caf::actor_cast<caf::actor>(self), seq](const status& s) {
    if (!s) spdlog::error("executor: commit {} failed: {}", seq, s.to_string());
    caf::anon_send(h, durable_atom::value, seq, s.is_ok());
  };
  st.ctx->commit(std::move(fx));
  return seq;
}

/// Keeps `e` in memory while it may change, arms its timer.
void keep(executor_actor* self, const execution_record& e) {
  auto& st = self->state;
  if (e.state == contract_progress::delivered || e.state == contract_progress::cancelled) {
    st.open.erase(e.contract_id);
    if (auto it = st.armed.find(e.contract_id); it != st.armed.end()) {
      st.steps.erase(it->second);
      st.armed.erase(it);
    }
    return;
  }
  st.open.insert_or_assign(e.contract_id, e);
  arm(self, e);
}

/// Whether the participant committed a re-plan of `contract_id` that is
/// not reported yet (its replan_atom is on its way, or the node restarted).
bool replan_pending(const store::environment& env, const std::string& contract_id) {
  const auto prefix = contract_id + "#";
  bool found = false;
  (void)env.scan(tables::replans.name(), prefix, [&](std::string_view key, std::string_view) {
    found = key.substr(0, prefix.size()) == prefix;
    return false;
  });
  return found;
}

/// False (and the execution cancelled, committed without a message) if the
/// contract was cancelled meanwhile: the buyer knows, it cancelled it. If the
/// seller cancelled it (a re-plan is pending), false and nothing else: the
/// re-plan reports the cancellation.
bool still_active(executor_actor* self, execution_record& e) {
  auto c = tables::contracts.get(self->state.ctx->store(), e.contract_id);
  // Unreadable, or not visible yet (the participant's commit is still on its
  // way to the store): do not guess, keep going.
  if (!c || !*c || (*c)->state == contract_state::active) return true;
  if (replan_pending(self->state.ctx->store(), e.contract_id)) return false;
  e.state = contract_progress::cancelled;
  commit(self, e, {});
  keep(self, e);
  return false;
}

/// Takes every clock step of `e` that is due by `now`.
void step(executor_actor* self, execution_record e, timestamp_us now) {
  if (!still_active(self, e)) return;
  std::vector<wire::production_event> events;
  std::optional<std::vector<wire::component_status>> comps;
  while (auto s = advance_one(e, now)) {
    if (!comps) comps = components_of(self->state.ctx->store(), e);
    events.push_back(event_of(e, s->first, s->second, *comps));
  }
  if (events.empty()) return keep(self, e);
  commit(self, e, std::move(events));
  keep(self, e);
}

void on_deadline(executor_actor* self, timestamp_us at) {
  auto& st = self->state;
  if (st.wake_us == at) st.wake_us = 0;
  std::vector<std::string> due;
  while (!st.steps.empty() && st.steps.begin()->first <= at) {
    due.push_back(std::move(st.steps.begin()->second));
    st.armed.erase(due.back());
    st.steps.erase(st.steps.begin());
  }
  const auto now = std::max(at, st.ctx->clock().now());
  for (const auto& id : due)
    if (auto it = st.open.find(id); it != st.open.end()) step(self, it->second, now);
  schedule_wake(self);
}

void on_execute(executor_actor* self, execution_record e) {
  auto& st = self->state;
  if (st.open.contains(e.contract_id)) return;
  e.shop_floor = st.cfg.shop_floor;
  keep(self, e);
  // Steps already due (a contract confirmed late) are taken at once.
  if (auto d = next_step_us(e); d && *d <= st.ctx->clock().now()) step(self, e, *d);
}

/// The execution of `contract_id`: in memory, else from the store.
std::optional<execution_record> find(executor_actor* self, const std::string& contract_id) {
  auto& st = self->state;
  if (auto it = st.open.find(contract_id); it != st.open.end()) return it->second;
  auto r = tables::executions.get(st.ctx->store(), contract_id);
  if (!r || !*r) return std::nullopt;
  return std::move(**r);
}

caf::response_promise on_post(executor_actor* self, const std::string& contract_id,
                              const posted_event& p) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto e = find(self, contract_id);
  if (!e) {
    rp.deliver(post_reply{404, "no contract " + contract_id + " sold by this node", {}});
    return rp;
  }
  if (e->state != contract_progress::cancelled && !still_active(self, *e)) {
    rp.deliver(post_reply{400, "contract " + contract_id + " is cancelled", {}});
    return rp;
  }
  const auto now = st.ctx->clock().now();
  if (p.at_us > now + us_per_hour) {
    rp.deliver(post_reply{400, "at_us lies more than an hour in the future", {}});
    return rp;
  }
  auto s = post(*e, p, now);
  if (!s) {
    rp.deliver(post_reply{400, s.message(), {}});
    return rp;
  }
  auto ev = event_of(*e, p.kind, p.at_us != 0 ? p.at_us : now, components_of(st.ctx->store(), *e));
  const auto seq = commit(self, *e, {ev});
  keep(self, *e);
  st.replies.emplace(seq, std::make_pair(rp, post_reply{201, {}, std::move(ev)}));
  return rp;
}

/// A component contract of order `parent_order_id` (for `parent_buyer`) has
/// news: send the executions it backs a new summary, delayed if it now
/// arrives after their planned start.
void on_progress(executor_actor* self, const std::string& parent_buyer,
                 const std::string& parent_order_id) {
  auto& st = self->state;
  std::vector<execution_record> hit;
  for (const auto& [id, e] : st.open)
    if (e.buyer == parent_buyer && e.order_id == parent_order_id) hit.push_back(e);
  std::sort(hit.begin(), hit.end(), [](const execution_record& a, const execution_record& b) {
    return a.contract_id < b.contract_id;
  });
  for (auto& e : hit) {
    if (!still_active(self, e)) continue;
    auto comps = components_of(st.ctx->store(), e);
    const auto now = st.ctx->clock().now();
    auto kind = production_event_kind::progress;
    if (auto arrival = arrival_of(comps)) {
      std::string why = "a component arrives late";
      for (const auto& c : comps)
        if (c.expected_due_us == *arrival || c.delivered_us == *arrival)
          why = "component " + c.item + " from " + c.seller + " arrives late";
      if (component_arrival(e, *arrival, std::move(why))) kind = production_event_kind::delayed;
    }
    if (kind == production_event_kind::progress) ++e.sequence;
    commit(self, e, {event_of(e, kind, now, std::move(comps))});
    keep(self, e);
  }
}

/// A re-plan the participant committed (breakdown, maintenance, a component
/// that could not be sourced again): reported to the buyer with the
/// execution's change, and its record erased, in one commit.
void on_replan(executor_actor* self, const replan_record& r) {
  auto& st = self->state;
  store::write_batch done;
  tables::replans.erase(done, replan_key(r.contract_id, r.number));
  auto e = find(self, r.contract_id);
  auto erase_only = [&] {
    effects fx;
    fx.writes = std::move(done);
    st.ctx->commit(std::move(fx));
  };
  if (!e) {
    spdlog::error("executor: re-plan of {}: no execution record", r.contract_id);
    return erase_only();
  }
  const auto now = st.ctx->clock().now();
  wire::production_event_kind kind = wire::production_event_kind::progress;
  if (r.kind == replan_kind::cancelled) {
    // Reported even if the execution had ended otherwise: the seller's
    // contract is cancelled, and the buyer must record it so (agreement).
    e->state = contract_progress::cancelled;
    e->reason = r.reason;
    kind = wire::production_event_kind::cancelled;
  } else {
    if (e->state == contract_progress::completed || e->state == contract_progress::delivered ||
        e->state == contract_progress::cancelled)
      return erase_only();  // nothing left to plan
    auto c = tables::contracts.get(st.ctx->store(), e->contract_id);
    if (c && *c && (*c)->state == contract_state::cancelled) {
      // The buyer cancelled it meanwhile; it knows.
      e->state = contract_progress::cancelled;
      commit(self, *e, {}, std::move(done));
      return keep(self, *e);
    }
    if (e->state == contract_progress::contracted)
      e->planned_start_us = std::min(r.planned_start_us, e->promised_due_us);
    e->planned_end_us = std::min(r.planned_end_us, e->promised_due_us);
    e->planned_start_us = std::min(e->planned_start_us, e->planned_end_us);
    const timestamp_us late = std::max<timestamp_us>(0, r.planned_end_us - e->promised_due_us);
    if (late > e->delay_us) {
      e->delay_us = late;
      kind = wire::production_event_kind::delayed;
    }
    e->reason = r.reason;
  }
  ++e->sequence;
  auto ev = event_of(*e, kind, now, components_of(st.ctx->store(), *e));
  if (kind == wire::production_event_kind::cancelled) ev.expected_due_us = 0;
  spdlog::info("executor: {} {}: {}", r.contract_id, wire::to_string(kind), r.reason);
  commit(self, *e, {std::move(ev)}, std::move(done));
  keep(self, *e);
}

void on_durable(executor_actor* self, std::uint64_t seq, bool ok) {
  auto& st = self->state;
  while (!st.replies.empty() && st.replies.begin()->first <= seq) {
    auto [rp, reply] = std::move(st.replies.begin()->second);
    st.replies.erase(st.replies.begin());
    if (!ok) reply = post_reply{500, "the event could not be stored", {}};
    rp.deliver(std::move(reply));
  }
}

caf::behavior executor(executor_actor* self, node_context* ctx, executor_config cfg,
                       std::vector<execution_record> open, std::vector<replan_record> replans) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = cfg;
  for (auto& e : open) {
    e.shop_floor = cfg.shop_floor;
    keep(self, e);  // a step that fell due while we were down fires at once
  }
  // Re-plans committed before a stop and not reported yet, in their order.
  for (const auto& r : replans) on_replan(self, r);
  return {
      [=](execute_atom, execution_record& e) { on_execute(self, std::move(e)); },
      [=](deadline_atom, timestamp_us at) { on_deadline(self, at); },
      [=](post_atom, const std::string& id, const posted_event& p) { return on_post(self, id, p); },
      [=](progress_atom, const std::string& buyer, const std::string& order_id) {
        on_progress(self, buyer, order_id);
      },
      [=](durable_atom, std::uint64_t seq, bool ok) { on_durable(self, seq, ok); },
      [=](replan_atom, const replan_record& r) { on_replan(self, r); },
  };
}

}  // namespace

result<caf::actor> spawn_executor(caf::actor_system& sys, node_context& ctx, executor_config cfg) {
  std::vector<execution_record> open;
  auto st = tables::executions.for_each(ctx.store(), [&](std::string_view, execution_record&& e) {
    if (e.state != contract_progress::delivered && e.state != contract_progress::cancelled)
      open.push_back(std::move(e));
    return true;
  });
  if (!st) return st;
  std::vector<replan_record> replans;
  st = tables::replans.for_each(ctx.store(), [&](std::string_view, replan_record&& r) {
    replans.push_back(std::move(r));
    return true;
  });
  if (!st) return st;
  std::sort(replans.begin(), replans.end(),
            [](const replan_record& a, const replan_record& b) { return a.number < b.number; });
  return sys.spawn(executor, &ctx, cfg, std::move(open), std::move(replans));
}

post_reply post_production_event(caf::actor_system& sys, const caf::actor& executor,
                                 std::string contract_id, posted_event ev,
                                 std::chrono::milliseconds timeout) {
  post_reply out{504, "no answer from the executor in time", {}};
  caf::scoped_actor self{sys};
  self->request(executor, timeout, post_atom::value, std::move(contract_id), std::move(ev))
      .receive([&](post_reply& r) { out = std::move(r); },
               [&](caf::error& e) {
                 if (e != caf::sec::request_timeout) {
                   out.http_status = 503;
                   out.error = "executor unavailable: " + to_string(e);
                 }
               });
  return out;
}

}  // namespace gearmesh::actors
