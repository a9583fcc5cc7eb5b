// The buyer actor: one initiator per order, persisted step by step.
#include "gearmesh/actors/buyer.hpp"

#include <map>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "ask_async.hpp"
#include "caf_messages.hpp"
#include "gearmesh/actors/negotiation.hpp"
#include "gearmesh/actors/records.hpp"

namespace gearmesh::actors {

namespace {

constexpr std::size_t attributes_max = 32;
constexpr std::size_t attribute_bytes_max = 256;
constexpr std::uint32_t quantity_max = 1'000'000;

struct buyer_state {
  node_context* ctx = nullptr;
  buyer_config cfg;
  /// Open orders, plus closed ones whose last commit is still in flight.
  std::map<std::string, initiator, std::less<>> orders;
  /// Closed orders in `orders`, with the number of their last commit, and
  /// the same by commit number (each durable notice drops a prefix).
  std::map<std::string, std::uint64_t, std::less<>> closing;
  std::multimap<std::uint64_t, std::string> closing_by_seq;
  /// Deadlines of the open orders: one entry per order at its next deadline.
  /// One CAF timer runs for the earliest (`wake_us`), not one per order: every
  /// delayed message costs a round trip through CAF's clock thread.
  std::multimap<timestamp_us, std::string> deadlines;
  std::map<std::string, std::multimap<timestamp_us, std::string>::iterator, std::less<>> armed;
  timestamp_us wake_us = 0;  // deadline the pending timer is for, 0 = none
  std::uint64_t next_order = 1;
  std::uint64_t commit_seq = 0;
  /// POST replies waiting for their commit to be durable, by commit number.
  std::map<std::uint64_t, std::pair<caf::response_promise, order_reply>> replies;
  /// Component orders (nested negotiation): the participant's requests
  /// waiting for the decision, and its awards waiting for the contract.
  std::map<std::string, caf::response_promise, std::less<>> quotes;
  std::multimap<std::string, caf::response_promise, std::less<>> awards;
  /// The node's executor, told about production events of component
  /// contracts (executor.hpp); null on a node without a participant.
  caf::actor executor;
  /// The node's participant, told when a component order it contracted
  /// cannot be sourced again after its seller cancelled (component_lost_atom).
  caf::actor participant;
  /// Sequence of the latest production event committed per contract (the
  /// store may not show it yet).
  std::map<std::string, std::uint32_t, std::less<>> event_seq;
  std::size_t open() const { return orders.size() - closing.size(); }
  static inline const char* name = "gearmesh.buyer";
};

using buyer_actor = caf::stateful_actor<buyer_state>;

/// Commits one initiator step (plus `extra` writes) with its cause, if any.
/// Returns the commit number, 0 if nothing needed committing.
std::uint64_t commit_step(buyer_actor* self, const initiator& ini, initiator_step& step,
                          const wire::envelope* cause, store::write_batch extra = {},
                          bool notify_durable = false, std::function<void()> once_durable = {}) {
  auto& st = self->state;
  if (!cause && !step.changed && step.messages.empty() && step.contracts.empty() && extra.empty())
    return 0;
  const auto& order_id = ini.order().order_id;
  effects fx;
  fx.writes = std::move(extra);
  if (step.changed) tables::orders.put(fx.writes, order_id, ini.order());
  for (const auto& c : step.contracts) tables::contracts.put(fx.writes, c.contract_id, c);
  if (cause) fx.cause = inbound_ref{cause->header.sender, cause->header.message_id};
  for (auto& m : step.messages)
    fx.messages.push_back(outbound{std::move(m.receiver), order_id,
                                   cause ? cause->header.message_id : 0, std::move(m.payload)});
  const auto seq = ++st.commit_seq;
  if (ini.terminal()) {
    st.closing[order_id] = seq;
    st.closing_by_seq.emplace(seq, order_id);
  }
  // Durable notices matter only for a closing order and for a reply waiting
  // on the order's first commit (notify_durable); they cover every commit
  // numbered up to theirs, so the other commits send none.
  if (ini.terminal() || notify_durable) {
    fx.on_durable = [h = caf::actor_cast<caf::actor>(self), seq](const status& s) {
      if (!s) spdlog::error("buyer: commit {} failed: {}", seq, s.to_string());
      caf::anon_send(h, durable_atom::value, seq, s.is_ok());
    };
  } else {
    fx.on_durable = [seq](const status& s) {
      if (!s) spdlog::error("buyer: commit {} failed: {}", seq, s.to_string());
    };
  }
  // A component order sourced again after its seller cancelled: the
  // upstream contract it backs hears of the outcome once it is durable (the
  // executor reads the new contract back; the participant cancels upstream
  // if it failed). A crash before that is covered when the node starts
  // (spawn_participant looks for contracts whose components are gone).
  const auto& o = ini.order();
  if (step.resourced && !o.parent_order_id.empty()) {
    if (o.state == order_state::contracted && st.executor) {
      once_durable = [next = std::move(once_durable), x = st.executor, b = o.parent_buyer,
                      id = o.parent_order_id] {
        if (next) next();
        caf::anon_send(x, progress_atom::value, b, id);
      };
    } else if (o.state == order_state::failed && st.participant) {
      once_durable = [next = std::move(once_durable), p = st.participant, b = o.parent_buyer,
                      id = o.parent_order_id, sub = o.order_id, why = o.reason] {
        if (next) next();
        caf::anon_send(p, component_lost_atom::value, b, id, sub, why);
      };
    }
  }
  if (once_durable)
    fx.on_durable = [first = std::move(fx.on_durable),
                     then = std::move(once_durable)](const status& s) {
      if (first) first(s);
      if (s) then();
    };
  st.ctx->commit(std::move(fx));
  return seq;
}

/// (Re)starts the timer for the earliest deadline if it is earlier than the
/// one pending.
void schedule_wake(buyer_actor* self) {
  auto& st = self->state;
  if (st.deadlines.empty()) return;
  const auto d = st.deadlines.begin()->first;
  if (st.wake_us != 0 && st.wake_us <= d) return;
  st.wake_us = d;
  const auto now = st.ctx->clock().now();
  // +1 ms so that the deadline has passed when the timer runs.
  const auto delay = std::chrono::microseconds(std::max<timestamp_us>(0, d - now) + us_per_ms);
  self->delayed_send(self, delay, deadline_atom::value, d);
}

/// Keeps one entry per open order at its next deadline.
void arm(buyer_actor* self, const initiator& ini) {
  auto& st = self->state;
  const auto& id = ini.order().order_id;
  auto d = ini.next_deadline();
  auto it = st.armed.find(id);
  if (!d || ini.terminal()) {
    if (it != st.armed.end()) {
      st.deadlines.erase(it->second);
      st.armed.erase(it);
    }
    return;
  }
  if (it != st.armed.end()) {
    if (it->second->first == *d) return;
    st.deadlines.erase(it->second);
    it->second = st.deadlines.emplace(*d, id);
  } else {
    st.armed.emplace(id, st.deadlines.emplace(*d, id));
  }
  schedule_wake(self);
}

/// The initiator of `order_id`: in memory, else loaded from the store.
initiator* find_order(buyer_actor* self, const std::string& order_id) {
  auto& st = self->state;
  if (auto it = st.orders.find(order_id); it != st.orders.end()) return &it->second;
  auto rec = tables::orders.get(st.ctx->store(), order_id);
  if (!rec) {
    spdlog::error("buyer: reading order {}: {}", order_id, rec.error().to_string());
    return nullptr;
  }
  if (!*rec) return nullptr;
  return &st.orders.emplace(order_id, initiator(std::move(**rec), st.ctx->node_id())).first->second;
}

void settle(buyer_actor* self, const initiator& ini);
std::pair<initiator*, std::uint64_t> open_order(buyer_actor* self, order_record o,
                                                bool notify_durable);

std::string order_id_of(const wire::payload& p) {
  return std::visit(
      [](const auto& m) -> std::string {
        if constexpr (requires { m.order_id; })
          return m.order_id;
        else
          return {};
      },
      p);
}

/// A production event for one of our contracts: kept if it is from the
/// contract's seller and newer than the one we have (protocol.md 6.7). A
/// Cancelled event ends the contract and sources the order again, or fails
/// it (6.8). Acknowledged in any case.
void on_production_event(buyer_actor* self, const wire::envelope& env,
                         const wire::production_event& m) {
  auto& st = self->state;
  auto ack_only = [&] {
    effects fx;
    fx.cause = inbound_ref{env.header.sender, env.header.message_id};
    st.ctx->commit(std::move(fx));
  };
  // The order as we last changed it (in memory if loaded, possibly not yet
  // durable), else as stored; a closed order is loaded for a cancellation.
  const bool cancels = m.kind == wire::production_event_kind::cancelled ||
                       m.state == wire::contract_progress::cancelled;
  initiator* ini = nullptr;
  std::optional<order_record> o;
  if (auto it = st.orders.find(m.order_id); it != st.orders.end()) {
    ini = &it->second;
  } else if (cancels) {
    ini = find_order(self, m.order_id);
  } else if (auto r = tables::orders.get(st.ctx->store(), m.order_id); r && *r) {
    o = std::move(**r);
  }
  if (ini) o = ini->order();
  bool ours = false;
  if (o && !m.contract_id.empty())
    for (const auto& p : o->proposals)
      if (p.contract_id == m.contract_id && p.seller == env.header.sender &&
          p.state == proposal_state::accepted)
        ours = true;
  if (!ours) {
    spdlog::warn("buyer: production event for {} from {} ignored: not a contract with it",
                 m.contract_id, env.header.sender);
    if (ini && ini->terminal() && !st.closing.contains(m.order_id))
      st.orders.erase(m.order_id);  // loaded just for this
    return ack_only();
  }
  std::uint32_t latest = 0;
  if (auto it = st.event_seq.find(m.contract_id); it != st.event_seq.end()) {
    latest = it->second;
  } else if (auto p = tables::progress.get(st.ctx->store(), m.contract_id); p && *p) {
    latest = (*p)->event.sequence;
  }
  store::write_batch writes;
  std::function<void()> once_durable;
  if (m.sequence > latest) {
    st.event_seq[m.contract_id] = m.sequence;
    tables::progress.put(
        writes, m.contract_id,
        progress_record{m.contract_id, env.header.sender, st.ctx->clock().now(), m});
    // The executor reads the record back: tell it once it is durable.
    if (st.executor && !o->parent_order_id.empty())
      once_durable = [x = st.executor, b = o->parent_buyer, id = o->parent_order_id] {
        caf::anon_send(x, progress_atom::value, b, id);
      };
  }
  if (cancels && ini) {
    auto step = ini->on_seller_cancel(env.header.sender, m.contract_id,
                                      m.reason.empty() ? std::string("no reason given") : m.reason,
                                      st.cfg.proposal_window_ms * us_per_ms, st.ctx->clock().now());
    if (step.changed)
      spdlog::info("buyer: {} cancelled {} ({}): order {} is {}", env.header.sender, m.contract_id,
                   m.reason, m.order_id, to_string(ini->order().state));
    commit_step(self, *ini, step, &env, std::move(writes), false, std::move(once_durable));
    arm(self, *ini);
    settle(self, *ini);
    return;
  }
  effects fx;
  fx.cause = inbound_ref{env.header.sender, env.header.message_id};
  fx.writes = std::move(writes);
  if (once_durable)
    fx.on_durable = [f = std::move(once_durable)](const status& s) {
      if (s) f();
    };
  st.ctx->commit(std::move(fx));
}

void on_inbound(buyer_actor* self, const wire::envelope& env) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  const auto& seller = env.header.sender;
  if (const auto* pe = std::get_if<wire::production_event>(&env.payload))
    return on_production_event(self, env, *pe);
  auto* ini = find_order(self, order_id_of(env.payload));
  if (!ini) {
    // Not one of our orders (or unreadable): acknowledge and drop.
    effects fx;
    fx.cause = inbound_ref{env.header.sender, env.header.message_id};
    st.ctx->commit(std::move(fx));
    return;
  }
  initiator_step step = std::visit(
      [&](const auto& m) -> initiator_step {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::propose>)
          return ini->on_propose(seller, m, now);
        else if constexpr (std::is_same_v<T, wire::refuse>)
          return ini->on_refuse(seller, m, now);
        else if constexpr (std::is_same_v<T, wire::confirm>)
          return ini->on_confirm(seller, m, now);
        else if constexpr (std::is_same_v<T, wire::failure>)
          return ini->on_failure(seller, m, now);
        else
          return {};
      },
      env.payload);
  commit_step(self, *ini, step, &env);
  arm(self, *ini);
  settle(self, *ini);
}

std::optional<std::string> validate(const buyer_config& cfg, const order_request& r,
                                    timestamp_us now) {
  if (r.item.empty()) return "item is required";
  if (!cfg.source(r.item)) return "unknown item " + r.item + ": no sources configured";
  if (r.quantity == 0) return "quantity must be at least 1";
  if (r.quantity > quantity_max) return "quantity must be at most " + std::to_string(quantity_max);
  if (r.due_us <= now) return "due_us is in the past";
  if (r.earliest_start_us != 0 && r.earliest_start_us >= r.due_us)
    return "earliest_start_us must be before due_us";
  if (r.max_price_cents < 0) return "max_price_cents must be >= 0 (0 = no ceiling)";
  if (r.attributes.size() > attributes_max)
    return "at most " + std::to_string(attributes_max) + " attributes";
  for (const auto& a : r.attributes)
    if (a.key.empty() || a.key.size() > attribute_bytes_max || a.value.size() > attribute_bytes_max)
      return "attribute keys must be 1 to 256 bytes, values at most 256 bytes";
  return std::nullopt;
}

caf::response_promise on_new_order(buyer_actor* self, order_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  const auto now = st.ctx->clock().now();
  if (auto err = validate(st.cfg, req, now)) {
    rp.deliver(order_reply{400, {}, {}, *err});
    return rp;
  }
  if (st.open() >= open_orders_max) {
    rp.deliver(order_reply{503, {}, {}, "too many open orders"});
    return rp;
  }
  order_record o;
  o.item = req.item;
  o.quantity = req.quantity;
  o.due_us = req.due_us;
  o.earliest_start_us = req.earliest_start_us != 0 ? req.earliest_start_us : now;
  o.max_price_cents = req.max_price_cents;
  o.attributes = std::move(req.attributes);
  o.reply_by_us = now + st.cfg.proposal_window_ms * us_per_ms;
  auto [placed, seq] = open_order(self, std::move(o), true);
  st.replies.emplace(
      seq,
      std::make_pair(
          rp, order_reply{201, placed->order().order_id, to_string(placed->order().state), {}}));
  return rp;
}

/// The timer for deadline `at` ran: every order due by then takes its step.
void on_deadline(buyer_actor* self, timestamp_us at) {
  auto& st = self->state;
  if (st.wake_us == at) st.wake_us = 0;
  std::vector<std::string> due;
  while (!st.deadlines.empty() && st.deadlines.begin()->first <= at) {
    due.push_back(std::move(st.deadlines.begin()->second));
    st.armed.erase(due.back());
    st.deadlines.erase(st.deadlines.begin());
  }
  for (const auto& id : due) {
    auto it = st.orders.find(id);
    if (it == st.orders.end() || it->second.terminal()) continue;
    auto step = it->second.on_time(st.ctx->clock().now());
    commit_step(self, it->second, step, nullptr);
    arm(self, it->second);
    settle(self, it->second);
  }
  schedule_wake(self);
}

/// Answers the participant's requests that order `ini` is now able to answer.
void settle(buyer_actor* self, const initiator& ini) {
  auto& st = self->state;
  const auto& o = ini.order();
  if (auto it = st.quotes.find(o.order_id); it != st.quotes.end()) {
    component_quote q;
    q.order_id = o.order_id;
    if (o.state == order_state::negotiating) return;
    const auto* best = o.state == order_state::ready ? ini.best(st.ctx->clock().now()) : nullptr;
    if (best) {
      q.ok = true;
      q.seller = best->seller;
      q.price_cents = best->price_cents;
      q.promised_start_us = best->promised_start_us;
      q.promised_due_us = best->promised_due_us;
      q.valid_until_us = best->valid_until_us;
    } else {
      q.reason = o.reason.empty() ? std::string("no acceptable proposal") : o.reason;
    }
    it->second.deliver(std::move(q));
    st.quotes.erase(it);
  }
  auto [from, to] = st.awards.equal_range(o.order_id);
  if (from == to) return;
  component_award a;
  a.order_id = o.order_id;
  if (o.state == order_state::contracted) {
    for (const auto& p : o.proposals) {
      if (p.contract_id != o.contract_id || p.state != proposal_state::accepted) continue;
      a.ok = true;
      a.contract_id = p.contract_id;
      a.seller = p.seller;
      a.price_cents = p.price_cents;
      a.promised_due_us = p.promised_due_us;
    }
    if (!a.ok) a.reason = "contract not found in order " + o.order_id;
  } else if (o.state == order_state::failed || o.state == order_state::cancelled) {
    a.reason = o.reason.empty() ? std::string("component order ended") : o.reason;
  } else if (o.state == order_state::negotiating) {
    a.reason = "component order not decided yet";
  } else {
    return;  // ready or awarded: the answer comes with the Confirm (or Failure)
  }
  for (auto it = from; it != to; ++it) it->second.deliver(a);
  st.awards.erase(from, to);
}

/// Opens order `o` (id, item, quantity, dates, sellers set here), commits it
/// with its CFPs and counter, and arms its deadline. Returns the commit number.
std::pair<initiator*, std::uint64_t> open_order(buyer_actor* self, order_record o,
                                                bool notify_durable) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  const auto n = st.next_order++;
  o.order_id = st.ctx->node_id() + "/order/" + std::to_string(n);
  o.currency = st.cfg.currency;
  o.created_us = now;
  o.confirm_timeout_us = st.cfg.confirm_timeout_ms * us_per_ms;
  o.sellers = st.cfg.source(o.item)->sellers;
  initiator_step step;
  auto ini = initiator::start(std::move(o), st.ctx->node_id(), step);
  const auto id = ini.order().order_id;
  store::write_batch counter;
  tables::seq.put(counter, "order", counter_record{n});
  auto& placed = st.orders.emplace(id, std::move(ini)).first->second;
  const auto seq = commit_step(self, placed, step, nullptr, std::move(counter), notify_durable);
  arm(self, placed);
  return {&placed, seq};
}

caf::response_promise on_component(buyer_actor* self, component_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  const auto now = st.ctx->clock().now();
  auto refuse = [&](std::string why) {
    component_quote q;
    q.reason = std::move(why);
    rp.deliver(std::move(q));
    return rp;
  };
  if (!st.cfg.source(req.item)) return refuse("no sources configured for " + req.item);
  if (req.quantity == 0 || req.quantity > quantity_max) return refuse("bad component quantity");
  if (st.open() >= open_orders_max) return refuse("too many open orders");
  order_record o;
  o.item = req.item;
  o.quantity = req.quantity;
  o.due_us = std::max(req.due_us, now + 1);
  o.earliest_start_us = std::min(std::max<timestamp_us>(req.earliest_start_us, 0), o.due_us - 1);
  o.reply_by_us = std::max(req.reply_by_us, now);
  o.award_by_us = std::max(req.award_by_us, o.reply_by_us + 1);
  o.parent_buyer = std::move(req.parent_buyer);
  o.parent_order_id = std::move(req.parent_order_id);
  auto [ini, seq] = open_order(self, std::move(o), false);
  (void)seq;
  st.quotes.emplace(ini->order().order_id, rp);
  settle(self, *ini);  // no sellers: failed at once
  return rp;
}

caf::response_promise on_award(buyer_actor* self, const std::string& order_id,
                               timestamp_us need_by_us) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto* ini = find_order(self, order_id);
  if (!ini) {
    component_award a;
    a.order_id = order_id;
    a.reason = "unknown component order " + order_id;
    rp.deliver(std::move(a));
    return rp;
  }
  if (ini->order().state == order_state::ready) {
    auto step = ini->award(need_by_us, st.ctx->clock().now());
    commit_step(self, *ini, step, nullptr);
    arm(self, *ini);
  }
  st.awards.emplace(order_id, rp);
  settle(self, *ini);
  return rp;
}

void on_withdraw(buyer_actor* self, const std::string& order_id, const std::string& reason) {
  auto& st = self->state;
  auto* ini = find_order(self, order_id);
  if (!ini) return;
  const auto state = ini->order().state;
  if (state == order_state::failed || state == order_state::cancelled) {
    settle(self, *ini);
    if (!st.closing.contains(order_id)) st.orders.erase(order_id);  // loaded just for this
    return;
  }
  auto step = ini->cancel(reason, st.ctx->clock().now());
  commit_step(self, *ini, step, nullptr);
  arm(self, *ini);
  settle(self, *ini);
}

void on_durable(buyer_actor* self, std::uint64_t seq, bool ok) {
  auto& st = self->state;
  if (auto it = st.replies.find(seq); it != st.replies.end()) {
    auto [rp, reply] = std::move(it->second);
    st.replies.erase(it);
    if (!ok) reply = order_reply{500, {}, {}, "the order could not be stored"};
    rp.deliver(std::move(reply));
  }
  // Closed orders leave memory once everything they committed is durable.
  while (!st.closing_by_seq.empty() && st.closing_by_seq.begin()->first <= seq) {
    auto node = st.closing_by_seq.extract(st.closing_by_seq.begin());
    auto it = st.closing.find(node.mapped());
    // A later commit of the same order (it was closed again) keeps it.
    if (it == st.closing.end() || it->second != node.key()) continue;
    st.closing.erase(it);
    st.orders.erase(node.mapped());
    if (auto a = st.armed.find(node.mapped()); a != st.armed.end()) {
      st.deadlines.erase(a->second);
      st.armed.erase(a);
    }
  }
}

caf::behavior buyer(buyer_actor* self, node_context* ctx, buyer_config cfg,
                    std::vector<order_record> open, std::uint64_t next_order) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = std::move(cfg);
  st.next_order = next_order;
  for (auto& o : open) {
    auto id = o.order_id;
    auto& ini = st.orders.emplace(id, initiator(std::move(o), ctx->node_id())).first->second;
    arm(self, ini);  // a deadline that passed while we were down fires at once
  }
  return {
      [=](inbound_atom, const wire::envelope& env) { on_inbound(self, env); },
      [=](order_atom, order_request& req) { return on_new_order(self, req); },
      [=](deadline_atom, timestamp_us at) { on_deadline(self, at); },
      [=](durable_atom, std::uint64_t seq, bool ok) { on_durable(self, seq, ok); },
      [=](component_atom, component_request& req) { return on_component(self, req); },
      [=](award_atom, const std::string& id, timestamp_us need_by) {
        return on_award(self, id, need_by);
      },
      [=](withdraw_atom, const std::string& id, const std::string& reason) {
        on_withdraw(self, id, reason);
      },
      [=](executor_atom, const caf::actor& x) { self->state.executor = x; },
      [=](participant_atom, const caf::actor& p) { self->state.participant = p; },
  };
}

}  // namespace

result<caf::actor> spawn_buyer(caf::actor_system& sys, node_context& ctx, buyer_config cfg) {
  // Reading the store here (not in the actor) lets install_roles report errors.
  std::vector<order_record> open;
  auto st = tables::orders.for_each(ctx.store(), [&](std::string_view, order_record&& o) {
    if (o.state == order_state::negotiating || o.state == order_state::awarded ||
        o.state == order_state::ready)
      open.push_back(std::move(o));
    return true;
  });
  if (!st) return st;
  auto counter = tables::seq.get(ctx.store(), "order");
  if (!counter) return counter.error();
  const std::uint64_t next = *counter ? (*counter)->value + 1 : 1;
  return sys.spawn(buyer, &ctx, std::move(cfg), std::move(open), next);
}

order_reply place_order(caf::actor_system& sys, const caf::actor& buyer, order_request req,
                        std::chrono::milliseconds timeout) {
  return ask_blocking(sys, buyer, timeout,
                      order_reply{504, {}, {}, "no answer from the buyer in time"}, "buyer",
                      order_atom::value, std::move(req));
}

void submit_order(caf::actor_system& sys, const caf::actor& buyer, order_request req,
                  std::chrono::milliseconds timeout, std::function<void(order_reply)> done) {
  ask_async<order_atom>(sys, buyer, timeout,
                        order_reply{504, {}, {}, "no answer from the buyer in time"}, "buyer",
                        std::move(req), std::move(done));
}

}  // namespace gearmesh::actors
