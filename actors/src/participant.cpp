// The participant actor (factory or supplier).
//
// Concurrency: the participant owns its calendars (one per machine or item)
// and handles one inbound message at a time; placing and booking work are
// plain calls into the scheduling module (scheduling.hpp), so a CFP's holds
// never interleave with another CFP's. It waits only for the node's buyer
// (nested negotiation), with request(...).then, handling other messages in
// between. The capacity broker reserves capacity offers on the same
// calendars by asking the participant (hold_atom, split_atom, release_atom).
//
// Durability: calendars change in memory; the participant writes the hold
// and booking records in the same commit as the step they belong to (holds
// with the offer and its Propose, bookings with the contract and its
// Confirm, releases with the Reject or Cancel that ended the offer). So a
// Propose is never durable without its holds, nor a Confirm without its
// bookings, and one inbound message costs one commit. Only holds that expire
// by themselves are erased by a commit of their own.
#include "gearmesh/actors/participant.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "ask_async.hpp"
#include "caf_messages.hpp"
#include "gearmesh/actors/capacity.hpp"
#include "gearmesh/actors/execution.hpp"
#include "gearmesh/actors/negotiation.hpp"
#include "gearmesh/actors/outage.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/string_hash.hpp"
#include "pending_writes.hpp"

namespace gearmesh::actors {

namespace {

std::chrono::microseconds delay_until(timestamp_us deadline, timestamp_us now) {
  // +1 ms: a hold is valid while now <= deadline, so expire strictly after it.
  return std::chrono::microseconds(std::max<timestamp_us>(0, deadline - now) + us_per_ms);
}

// --- participant actor ------------------------------------------------------

struct participant_state {
  node_context* ctx = nullptr;
  std::shared_ptr<const participant_policy> policy;
  /// The calendars, by resource id (machines or items).
  calendar_set cals;
  timestamp_us expiry_armed_us = 0;  // the pending hold-expiry timer, 0 = none
  std::uint64_t next_proposal = 1;
  pending_writes pending;
  std::uint64_t commit_seq = 0;
  /// With commits that are done on return (node_context::commits_inline):
  /// whether the last one that wrote something succeeded.
  bool last_commit_ok = true;
  /// Offers as this participant last proposed or read them, by proposal id:
  /// reads of "offers" are answered from here (a Reject or Accept reads the
  /// offer its Propose wrote). commit() drops the offers it writes, so an
  /// entry is always what a read of the store would give. Cleared when it
  /// reaches offers_known_max.
  std::unordered_map<std::string, offer_record, string_hash, std::equal_to<>> offers_known;
  static constexpr std::size_t offers_known_max = 4096;
  /// The contract ids of the "tombstones" table (a Cancel that came before
  /// its contract: few, and never erased), read at start and added to with
  /// every tombstone put: an Accept looks here, not in the store.
  std::unordered_set<std::string, string_hash, std::equal_to<>> tombstones;
  /// Held proposals by (buyer, order id): answers a repeated CFP and a Cancel
  /// without contract id. Entries leave when the offer leaves `held` or expires
  /// (offers with component orders: only when they leave `held`).
  /// (By buyer, then order id: hashed, and searched without copying keys.)
  struct held_entry {
    std::string proposal_id;
    timestamp_us until_us = 0;
  };
  using held_orders = std::unordered_map<std::string, held_entry, string_hash, std::equal_to<>>;
  std::unordered_map<std::string, held_orders, string_hash, std::equal_to<>> held;
  std::multimap<timestamp_us, std::pair<std::string, std::string>> held_expiry;
  /// The node's buyer: sources bought components (nested negotiation).
  caf::actor buyer;
  /// The node's executor: carries out the contracts (executor.hpp).
  caf::actor executor;
  /// Machine outages not ended and not past, by id (outage.hpp).
  std::map<std::string, outage_record, std::less<>> outages;
  std::uint64_t next_outage = 1;
  std::uint64_t next_replan = 1;
  /// Outage replies waiting for their commit to be durable, by commit number.
  std::multimap<std::uint64_t, std::pair<caf::response_promise, outage_reply>> replies;
  /// Re-plans committed, to hand to the executor (it may not be known yet).
  std::vector<replan_record> unsent_replans;
  /// The node's capacity broker: cancels capacity bookings an outage covers.
  caf::actor broker;
  /// (resource, reservation ids, reason) for the broker, until it is known.
  std::vector<std::tuple<std::string, std::vector<std::string>, std::string>> unsent_cancels;
  /// Held offers whose Accept waits for their component awards (their holds
  /// are bookings in memory already): an outage leaves them to the contract.
  std::set<std::string, std::less<>> awarding;
  static inline const char* name = "gearmesh.participant";
};

using participant_actor = caf::stateful_actor<participant_state>;

/// Commits `writes`, the inbound `cause` (may be null) and `msgs` in one step,
/// together with `reservations` (hold and booking records, which the
/// participant never reads back and so keeps out of its pending overlay).
/// Returns the commit number (0: nothing the participant reads back).
std::uint64_t commit(participant_actor* self, store::write_batch writes,
                     const wire::envelope* cause, std::vector<message_to> msgs,
                     std::string_view conversation, store::write_batch reservations = {}) {
  auto& st = self->state;
  if (!st.offers_known.empty())
    for (const auto& op : writes.ops())
      if (op.table == tables::offers.name())
        if (auto it = st.offers_known.find(op.key); it != st.offers_known.end())
          st.offers_known.erase(it);
  effects fx;
  fx.writes = std::move(writes);
  if (cause) fx.cause = inbound_ref{cause->header.sender, cause->header.message_id};
  fx.messages.reserve(msgs.size());
  for (auto& m : msgs)
    fx.messages.push_back(outbound{std::move(m.receiver), std::string(conversation),
                                   cause ? cause->header.message_id : 0, std::move(m.payload)});
  std::uint64_t seq = 0;
  if (!fx.writes.empty()) {
    // Only commits that wrote something the participant reads back need to
    // tell it when they are durable.
    seq = ++st.commit_seq;
    if (st.ctx->commits_inline()) {
      // Done when ctx->commit() returns, and on_durable runs inside it: reads
      // see the writes at once, so `pending` need not keep them, and no
      // notice is needed (reply_after looks at last_commit_ok).
      fx.on_durable = [&st, seq](const status& s) {
        if (!s) spdlog::error("participant: commit {} failed: {}", seq, s.to_string());
        st.last_commit_ok = s.is_ok();
      };
    } else {
      st.pending.record(fx.writes, seq);
      fx.on_durable = [h = caf::actor_cast<caf::actor>(self), seq](const status& s) {
        if (!s) spdlog::error("participant: commit {} failed: {}", seq, s.to_string());
        caf::anon_send(h, durable_atom::value, seq, s.is_ok());
      };
    }
  }
  fx.writes.append(std::move(reservations));
  st.ctx->commit(std::move(fx));
  return seq;
}

/// Commit `seq` is durable (ok) or failed: what waited for it goes on.
void on_durable(participant_actor* self, std::uint64_t seq, bool ok) {
  auto& st = self->state;
  st.pending.durable(seq);
  while (!st.replies.empty() && st.replies.begin()->first <= seq) {
    auto [rp, reply] = std::move(st.replies.begin()->second);
    st.replies.erase(st.replies.begin());
    if (!ok) reply = outage_reply{500, "the outage could not be stored", {}};
    rp.deliver(std::move(reply));
  }
}

/// Erases the hold records of `refs` (a held offer's: it has no bookings).
/// A hold the offer carries has no record: the offer's new state ends it.
void erase_holds(store::write_batch& b, const std::vector<reservation_ref>& refs) {
  for (const auto& r : refs)
    if (!r.carried()) tables::holds.erase(b, reservation_key(r.resource, r.reservation_id));
}

/// Erases the hold and booking records of `refs` (a release).
void erase_reservations(store::write_batch& b, const std::vector<reservation_ref>& refs) {
  erase_holds(b, refs);
  for (const auto& r : refs)
    tables::bookings.erase(b, reservation_key(r.resource, r.reservation_id));
}

void forget_held(participant_actor* self, std::string_view buyer, std::string_view order_id) {
  auto& held = self->state.held;
  auto b = held.find(buyer);
  if (b == held.end()) return;
  if (auto it = b->second.find(order_id); it != b->second.end()) b->second.erase(it);
  if (b->second.empty()) held.erase(b);
}

/// The proposal held for `buyer`'s order `order_id`, or null.
const participant_state::held_entry* find_held(participant_actor* self, std::string_view buyer,
                                               std::string_view order_id) {
  const auto& held = self->state.held;
  auto b = held.find(buyer);
  if (b == held.end()) return nullptr;
  auto it = b->second.find(order_id);
  return it == b->second.end() ? nullptr : &it->second;
}

void remember_held(participant_actor* self, const offer_record& o) {
  auto& st = self->state;
  st.held[o.buyer].insert_or_assign(o.order_id,
                                    participant_state::held_entry{o.proposal_id, o.valid_until_us});
  // An offer with component orders stays until it leaves `held`, past its
  // deadline too: a Cancel for it must still withdraw them (they may have
  // been contracted by an award the node crashed in the middle of).
  if (o.sub_orders.empty())
    st.held_expiry.emplace(o.valid_until_us, std::make_pair(o.buyer, o.order_id));
}

void sweep_held(participant_actor* self, timestamp_us now) {
  auto& st = self->state;
  while (!st.held_expiry.empty() && st.held_expiry.begin()->first < now) {
    auto key = st.held_expiry.begin()->second;
    auto deadline = st.held_expiry.begin()->first;
    st.held_expiry.erase(st.held_expiry.begin());
    if (const auto* h = find_held(self, key.first, key.second); h && h->until_us == deadline)
      forget_held(self, key.first, key.second);
  }
}

/// Releases `refs` in the calendars (memory); the caller erases their records
/// in the commit of the same step (erase_reservations).
void release_all(participant_actor* self, const std::vector<reservation_ref>& refs) {
  for (const auto& r : refs)
    if (auto it = self->state.cals.find(r.resource); it != self->state.cals.end())
      it->second.release(r.reservation_id);
}

/// Releases the holds past their deadline and erases their records (the one
/// write the participant commits that no inbound step causes).
void expire_holds(participant_actor* self) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  effects fx;
  for (auto& [id, cal] : st.cals)
    for (const auto& rid : cal.expire(now))
      tables::holds.erase(fx.writes, reservation_key(id, rid));
  if (fx.writes.empty()) return;
  fx.on_durable = [](const status& s) {
    if (!s) spdlog::error("participant: committing expired holds failed: {}", s.to_string());
  };
  st.ctx->commit(std::move(fx));
}

/// Keeps one timer for the earliest hold deadline of all calendars.
void arm_expiry(participant_actor* self) {
  auto& st = self->state;
  std::optional<timestamp_us> d;
  for (const auto& [id, cal] : st.cals)
    if (auto n = cal.next_deadline(); n && (!d || *n < *d)) d = n;
  if (!d || (st.expiry_armed_us != 0 && st.expiry_armed_us <= *d)) return;
  st.expiry_armed_us = *d;
  self->delayed_send(self, delay_until(*d, st.ctx->clock().now()), expire_atom::value);
}

std::vector<reservation_ref> refs_of(const std::vector<chosen_step>& steps) {
  std::vector<reservation_ref> out;
  out.reserve(steps.size());
  for (const auto& s : steps) out.push_back({s.resource, s.reservation_id});
  return out;
}

/// `steps` held for an offer, as references that carry their placements:
/// the offer record is then the holds' only record (records.hpp).
std::vector<reservation_ref> carried_refs_of(const std::vector<chosen_step>& steps) {
  auto out = refs_of(steps);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    out[i].start_us = steps[i].where.start_us;
    out[i].end_us = steps[i].where.end_us;
    out[i].allocations = steps[i].where.allocations;
  }
  return out;
}

/// Places `plan` with holds for `proposal_id` (scheduling.hpp). The holds
/// exist in memory only until the caller commits their records.
result<std::vector<chosen_step>> place_holds(participant_actor* self, const work_plan& plan,
                                             const std::string& proposal_id,
                                             timestamp_us deadline_us) {
  expire_holds(self);
  auto placed = place(self->state.cals, plan, proposal_id,
                      reservation_terms{reservation_kind::hold, deadline_us});
  arm_expiry(self);
  return placed;
}

/// Turns every reservation of `refs` into a booking. Returns the booking
/// records in the order of `refs`, or nothing if one is missing (those
/// converted stay converted: the caller releases them all).
std::optional<std::vector<reservation_record>> book_all(participant_actor* self,
                                                        const std::vector<reservation_ref>& refs) {
  auto& st = self->state;
  expire_holds(self);
  std::vector<reservation_record> records;
  records.reserve(refs.size());
  for (const auto& r : refs) {
    auto it = st.cals.find(r.resource);
    if (it == st.cals.end()) return std::nullopt;
    const auto* e = it->second.find(r.reservation_id);
    if (!e) return std::nullopt;
    if (e->kind == reservation_kind::hold && !it->second.convert(r.reservation_id))
      return std::nullopt;
    records.push_back(
        reservation_of(r.resource, r.reservation_id, reservation_kind::booking, 0, e->where));
  }
  return records;
}

wire::cfp cfp_of(const offer_record& o) {
  wire::cfp c;
  c.order_id = o.order_id;
  c.item = o.item;
  c.quantity = o.quantity;
  c.earliest_start_us = o.earliest_start_us;
  c.due_us = o.due_us;
  c.currency = o.currency;
  return c;
}

template <class T>
std::optional<T> read(participant_actor* self, const store::table<T>& t, std::string_view key) {
  auto& st = self->state;
  auto v = st.pending.get(st.ctx->store(), t, key);
  if (!v) {
    spdlog::error("participant: reading {} {}: {}", t.name(), key, v.error().to_string());
    return std::nullopt;
  }
  return std::move(*v);
}

/// Remembers offer `o` as the store has it (participant_state::offers_known).
void know_offer(participant_actor* self, offer_record o) {
  auto& known = self->state.offers_known;
  if (known.size() >= participant_state::offers_known_max) known.clear();
  known.insert_or_assign(o.proposal_id, std::move(o));
}

/// Offers are read through offers_known.
std::optional<offer_record> read(participant_actor* self, const store::table<offer_record>& t,
                                 std::string_view key) {
  auto& known = self->state.offers_known;
  if (auto it = known.find(key); it != known.end()) return it->second;
  auto o = read<offer_record>(self, t, key);
  if (o && o->proposal_id == key) know_offer(self, *o);
  return o;
}

void refuse(participant_actor* self, const wire::envelope& env, const wire::cfp& c,
            std::string reason) {
  commit(self, {}, &env, {{env.header.sender, wire::refuse{c.order_id, std::move(reason)}}},
         c.order_id);
}

/// Asks the buyer to withdraw component orders (their proposals are rejected,
/// a contract is cancelled). No answer; a crash before the buyer commits is
/// covered at restart (spawn_participant) and by the orders' award deadline.
void withdraw(participant_actor* self, const std::vector<std::string>& orders,
              const std::string& reason) {
  for (const auto& id : orders) self->send(self->state.buyer, withdraw_atom::value, id, reason);
}

/// What the bought components of a proposal add (nested negotiation).
struct sourced_components {
  std::vector<std::string> orders;  // the component orders, ready to award
  std::int64_t cents = 0;           // their best prices
  timestamp_us arrival_us = 0;      // the latest promised delivery
  timestamp_us valid_until_us = std::numeric_limits<timestamp_us>::max();
};

/// Places `plan` with holds and proposes (or refuses); commits with `env` as
/// cause.
void place_and_propose(participant_actor* self, const wire::envelope& env, const wire::cfp& c,
                       work_plan plan, const sourced_components& comps) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  plan.from_us = std::max(plan.from_us, comps.arrival_us);
  const auto n = st.next_proposal++;
  auto proposal_id = st.ctx->node_id() + "/proposal/" + std::to_string(n);
  const auto deadline =
      std::min(hold_deadline(now, st.policy->hold_ttl_us()), comps.valid_until_us);
  store::write_batch b;
  tables::seq.put(b, "proposal", counter_record{n});
  auto refuse_with = [&](std::string reason, const std::vector<chosen_step>& chosen) {
    release_all(self, refs_of(chosen));
    withdraw(self, comps.orders, "the proposal it was for was not made");
    commit(self, std::move(b), &env,
           {{env.header.sender, wire::refuse{c.order_id, std::move(reason)}}}, c.order_id);
  };
  if (deadline <= now) return refuse_with("component proposals lapsed", {});
  auto placed = place_holds(self, plan, proposal_id, deadline);
  if (!placed) {
    if (placed.error().code() != errc::overloaded)
      spdlog::warn("{}: placing {}: {}", st.ctx->node_id(), proposal_id, placed.error().message());
    return refuse_with("no capacity within the horizon", {});
  }
  const auto& chosen = *placed;
  const auto price = st.policy->price(c, chosen, comps.cents);
  if (c.max_price_cents > 0 && price > c.max_price_cents)
    return refuse_with("price " + std::to_string(price) + " above the ceiling " +
                           std::to_string(c.max_price_cents),
                       chosen);
  offer_record o;
  o.proposal_id = proposal_id;
  o.order_id = c.order_id;
  o.buyer = env.header.sender;
  o.item = c.item;
  o.quantity = c.quantity;
  o.currency = c.currency;
  o.earliest_start_us = c.earliest_start_us;
  o.due_us = c.due_us;
  o.price_cents = price;
  o.promised_start_us = chosen.front().where.start_us;
  o.promised_due_us = chosen.back().where.end_us;
  o.valid_until_us = deadline;
  o.state = offer_state::held;
  // The offer carries its holds (deadline valid_until_us): one record, in
  // the same commit as the Propose it backs.
  o.reservations = carried_refs_of(chosen);
  o.sub_orders = comps.orders;
  tables::offers.put(b, o.proposal_id, o);
  wire::propose p{o.order_id,          o.proposal_id,     o.price_cents,
                  o.promised_start_us, o.promised_due_us, o.valid_until_us};
  remember_held(self, o);
  commit(self, std::move(b), &env, {{o.buyer, p}}, o.order_id);
  know_offer(self, std::move(o));
}

/// Nested negotiation: the CFP needs bought components. The buyer runs one
/// component order per item (to the decision, not the award); once every one
/// has a best proposal the work is placed after the latest promised delivery
/// and proposed, the component prices included. The CFP stays uncommitted
/// meanwhile (the runtime drops its duplicates as in flight; after a crash it
/// is re-sent and sourced anew, the old component orders lapse by themselves).
void source_components(participant_actor* self, const wire::envelope& env, const wire::cfp& c,
                       work_plan plan) {
  auto& st = self->state;
  if (!st.buyer)
    return refuse(
        self, env, c,
        "cannot source " + plan.components.front().item + ": this node has no buyer role");
  const auto now = st.ctx->clock().now();
  auto reply_by = now + st.policy->component_window_us();
  // Leave the upstream buyer half of its remaining window for our proposal.
  if (c.reply_by_us > now) reply_by = std::min(reply_by, now + (c.reply_by_us - now) / 2);
  struct job {
    wire::envelope env;
    wire::cfp cfp;
    work_plan plan;
    std::vector<component_quote> quotes;
    std::size_t answers = 0;
  };
  auto j = std::make_shared<job>();
  j->env = env;
  j->cfp = c;
  j->quotes.resize(plan.components.size());
  j->plan = std::move(plan);
  const auto count = j->quotes.size();
  auto answered = [self, j, count] {
    if (++j->answers < count) return;
    sourced_components comps;
    std::string failed;
    for (std::size_t k = 0; k < count; ++k) {
      const auto& q = j->quotes[k];
      if (!q.order_id.empty()) comps.orders.push_back(q.order_id);
      if (!q.ok) {
        if (failed.empty()) failed = j->plan.components[k].item + ": " + q.reason;
        continue;
      }
      comps.cents += q.price_cents;
      comps.arrival_us = std::max(comps.arrival_us, q.promised_due_us);
      comps.valid_until_us = std::min(comps.valid_until_us, q.valid_until_us);
    }
    if (!failed.empty()) {
      withdraw(self, comps.orders, "another component could not be sourced");
      return refuse(self, j->env, j->cfp, "cannot source component " + failed);
    }
    place_and_propose(self, j->env, j->cfp, std::move(j->plan), std::move(comps));
  };
  for (std::size_t k = 0; k < count; ++k) {
    const auto& need = j->plan.components[k];
    component_request r;
    r.parent_buyer = env.header.sender;
    r.parent_order_id = c.order_id;
    r.item = need.item;
    r.quantity = need.quantity;
    r.earliest_start_us = c.earliest_start_us;
    r.due_us = std::max(now + 1, c.due_us - j->plan.min_lead_us);
    r.reply_by_us = reply_by;
    // Ready component orders wait as long as a proposal made from them can.
    r.award_by_us = reply_by + st.policy->hold_ttl_us() + us_per_s;
    self->request(st.buyer, caf::infinite, component_atom::value, std::move(r))
        .then(
            [j, k, answered](component_quote& q) {
              j->quotes[k] = std::move(q);
              answered();
            },
            [j, k, answered](caf::error& e) {
              j->quotes[k].reason = "buyer unavailable: " + to_string(e);
              answered();
            });
  }
}

void on_cfp(participant_actor* self, const wire::envelope& env, const wire::cfp& c) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  const auto& buyer = env.header.sender;
  sweep_held(self, now);
  // The same order again: answer with the proposal already held for it.
  if (const auto* h = find_held(self, buyer, c.order_id)) {
    auto o = read(self, tables::offers, h->proposal_id);
    if (o && hold_valid(*o, now)) {
      wire::propose p{o->order_id,          o->proposal_id,     o->price_cents,
                      o->promised_start_us, o->promised_due_us, o->valid_until_us};
      commit(self, {}, &env, {{buyer, p}}, c.order_id);
      return;
    }
  }
  if (c.quantity == 0) return refuse(self, env, c, "quantity is 0");
  if (c.currency != st.policy->currency())
    return refuse(self, env, c,
                  "currency " + c.currency + " not supported, prices are in " +
                      std::string(st.policy->currency()));
  auto plan = st.policy->plan(c, now);
  if (!plan) return refuse(self, env, c, plan.error().message());
  if (!plan->components.empty()) return source_components(self, env, c, std::move(*plan));
  place_and_propose(self, env, c, std::move(*plan), {});
}

void send_failure(participant_actor* self, const wire::envelope& env, const wire::accept& a,
                  std::string reason, store::write_batch writes = {},
                  store::write_batch reservations = {}) {
  commit(self, std::move(writes), &env,
         {{env.header.sender, wire::failure{a.order_id, a.proposal_id, a.contract_id, reason}}},
         a.order_id, std::move(reservations));
}

/// Records the contract with its bookings (`reservations`: the hold -> booking
/// record changes; `booked`: the bookings) and its execution, Confirms, and
/// hands the execution to the executor.
void contract(participant_actor* self, const wire::envelope& env, const wire::accept& a,
              offer_record o, store::write_batch reservations,
              const std::vector<reservation_record>& booked) {
  auto& st = self->state;
  o.state = offer_state::contracted;
  o.contract_id = a.contract_id;
  // Booked: each booking has its record now; the offer only names them.
  for (auto& r : o.reservations) r = reservation_ref{r.resource, r.reservation_id};
  store::write_batch b;
  tables::offers.put(b, o.proposal_id, o);
  tables::contracts.put(b, o.contract_id, seller_contract(o, st.ctx->node_id()));
  // Written once here, with the contract; afterwards only the executor writes it.
  auto e = execution_of(o, booked, false);
  tables::executions.put(reservations, e.contract_id, e);
  forget_held(self, o.buyer, o.order_id);
  commit(self, std::move(b), &env, {{o.buyer, confirm_for(o)}}, o.order_id,
         std::move(reservations));
  if (st.executor) self->send(st.executor, execute_atom::value, std::move(e));
}

/// The writes that turn the holds `held` (an offer's reservations) into the
/// bookings `records`: hold records erased (a carried hold has none), booking
/// records put.
store::write_batch bookings_of(const std::vector<reservation_ref>& held,
                               const std::vector<reservation_record>& records) {
  store::write_batch b;
  erase_holds(b, held);
  for (const auto& r : records)
    tables::bookings.put(b, reservation_key(r.resource, r.reservation_id), r);
  return b;
}

/// Ends offer `o` as failed: releases its reservations, withdraws its
/// component orders and answers Accept `a` with Failure.
void fail_offer(participant_actor* self, const wire::envelope& env, const wire::accept& a,
                offer_record o, std::string why) {
  release_all(self, o.reservations);
  withdraw(self, o.sub_orders, "the proposal it backed failed: " + why);
  o.state = offer_state::failed;
  o.reason = why;
  store::write_batch b;
  tables::offers.put(b, o.proposal_id, o);
  store::write_batch released;
  erase_reservations(released, o.reservations);
  forget_held(self, o.buyer, o.order_id);
  send_failure(self, env, a, why, std::move(b), std::move(released));
}

/// The holds lapsed: reserve the same terms again, or fail.
void replace(participant_actor* self, const wire::envelope& env, const wire::accept& a,
             offer_record o) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  // Component proposals lapsed with the holds: nothing to rebuild them from.
  if (!o.sub_orders.empty())
    return fail_offer(self, env, a, std::move(o), "hold expired with its component proposals");
  release_all(self, o.reservations);
  auto fail = [=](std::string why) { fail_offer(self, env, a, o, std::move(why)); };
  auto c = cfp_of(o);
  auto plan = st.policy->plan(c, now);
  if (!plan) return fail(plan.error().message());
  expire_holds(self);
  auto placed = place(st.cals, *plan, o.proposal_id, reservation_terms{reservation_kind::booking});
  if (!placed || placed->back().where.end_us > o.promised_due_us) {
    if (placed) release(st.cals, *placed);
    return fail("hold expired and the promised due date can no longer be met");
  }
  std::vector<reservation_record> records;
  for (const auto& s : *placed)
    records.push_back(
        reservation_of(s.resource, s.reservation_id, reservation_kind::booking, 0, s.where));
  // The old reservations go, the new bookings come (same ids when the plan
  // is the same: erase first, then put).
  store::write_batch b;
  erase_reservations(b, o.reservations);
  b.append(bookings_of({}, records));
  auto n = o;
  n.reservations = refs_of(*placed);
  contract(self, env, a, std::move(n), std::move(b), records);
}

void reconcile_resources(participant_actor* self, const std::vector<reservation_ref>& refs);

/// Nested negotiation, on Accept: the own holds are booked (in memory); now
/// every component order is awarded, and once all are contracted the
/// contract is recorded and confirmed. The Accept stays uncommitted meanwhile
/// (its duplicates are dropped as in flight; after a crash it is re-sent, and
/// awarding an order that is already contracted answers at once).
void award_components(participant_actor* self, const wire::envelope& env, const wire::accept& a,
                      offer_record o, std::vector<reservation_record> records) {
  struct job {
    std::vector<component_award> awards;
    std::size_t answers = 0;
  };
  auto j = std::make_shared<job>();
  j->awards.resize(o.sub_orders.size());
  self->state.awarding.insert(o.proposal_id);
  auto answered = [=] {
    if (++j->answers < j->awards.size()) return;
    self->state.awarding.erase(o.proposal_id);
    // Whatever happened meanwhile (a Cancel) is in the offer and tombstones.
    auto now_o = read(self, tables::offers, o.proposal_id);
    const bool tombstoned = self->state.tombstones.contains(a.contract_id);
    std::string why;
    if (!now_o || now_o->state != offer_state::held || tombstoned)
      why = "contract was cancelled while its components were awarded";
    for (std::size_t k = 0; k < j->awards.size() && why.empty(); ++k)
      if (!j->awards[k].ok) why = "component order " + o.sub_orders[k] + ": " + j->awards[k].reason;
    if (why.empty()) {
      contract(self, env, a, o, bookings_of(o.reservations, records), records);
      // A machine that went down meanwhile: re-plan the new contract now.
      return reconcile_resources(self, o.reservations);
    }
    if (now_o && now_o->state == offer_state::held) return fail_offer(self, env, a, o, why);
    // The offer already ended (and released what it held): just answer.
    withdraw(self, o.sub_orders, why);
    send_failure(self, env, a, why);
  };
  // Components must arrive by the start the proposal promised.
  const auto need_by = o.promised_start_us;
  for (std::size_t k = 0; k < o.sub_orders.size(); ++k)
    self->request(self->state.buyer, caf::infinite, award_atom::value, o.sub_orders[k], need_by)
        .then(
            [j, k, answered](component_award& w) {
              j->awards[k] = std::move(w);
              answered();
            },
            [j, k, answered](caf::error& e) {
              j->awards[k].reason = "buyer unavailable: " + to_string(e);
              answered();
            });
}

void on_accept(participant_actor* self, const wire::envelope& env, const wire::accept& a) {
  const auto now = self->state.ctx->clock().now();
  auto o = read(self, tables::offers, a.proposal_id);
  const bool tombstoned = self->state.tombstones.contains(a.contract_id);
  auto d = decide_accept(o ? &*o : nullptr, tombstoned, env.header.sender, a, now);
  switch (d.verdict) {
    case accept_verdict::fail:
      // A held offer (e.g. its contract was cancelled first) ends with it.
      if (tombstoned && o && o->state == offer_state::held && o->buyer == env.header.sender &&
          o->order_id == a.order_id)
        return fail_offer(self, env, a, std::move(*o), d.reason);
      return send_failure(self, env, a, d.reason);
    case accept_verdict::resend_confirm:
      commit(self, {}, &env, {{env.header.sender, confirm_for(*o)}}, a.order_id);
      return;
    case accept_verdict::replace:
      return replace(self, env, a, std::move(*o));
    case accept_verdict::confirm: {
      auto records = book_all(self, o->reservations);
      if (records && !o->sub_orders.empty())
        return award_components(self, env, a, std::move(*o), std::move(*records));
      if (records) {
        auto b = bookings_of(o->reservations, *records);
        return contract(self, env, a, std::move(*o), std::move(b), *records);
      }
      return replace(self, env, a, std::move(*o));
    }
  }
}

void on_reject(participant_actor* self, const wire::envelope& env, const wire::reject& r) {
  auto o = read(self, tables::offers, r.proposal_id);
  store::write_batch b;
  store::write_batch released;
  if (o && o->buyer == env.header.sender && o->order_id == r.order_id &&
      o->state == offer_state::held) {
    release_all(self, o->reservations);
    erase_holds(released, o->reservations);
    withdraw(self, o->sub_orders, "the proposal it backed was rejected: " + r.reason);
    o->state = offer_state::rejected;
    o->reason = r.reason;
    tables::offers.put(b, o->proposal_id, *o);
    forget_held(self, o->buyer, o->order_id);
  }
  commit(self, std::move(b), &env, {}, r.order_id, std::move(released));
}

void on_cancel(participant_actor* self, const wire::envelope& env, const wire::cancel& c) {
  auto& st = self->state;
  const auto& buyer = env.header.sender;
  store::write_batch b;
  store::write_batch released;
  auto cancel_offer = [&](offer_record o) {
    release_all(self, o.reservations);
    erase_reservations(released, o.reservations);
    withdraw(self, o.sub_orders, "the order it served was cancelled: " + c.reason);
    o.state = offer_state::cancelled;
    o.reason = c.reason;
    tables::offers.put(b, o.proposal_id, o);
    forget_held(self, o.buyer, o.order_id);
    return o;
  };
  if (!c.contract_id.empty()) {
    auto k = read(self, tables::contracts, c.contract_id);
    if (k && k->buyer == buyer && k->role == contract_role::seller) {
      if (k->state == contract_state::active) {
        if (auto o = read(self, tables::offers, k->proposal_id)) cancel_offer(std::move(*o));
        k->state = contract_state::cancelled;
        tables::contracts.put(b, k->contract_id, *k);
      }
      commit(self, std::move(b), &env, {}, c.order_id, std::move(released));
      return;
    }
    if (!k) {
      // Cancelled before we confirmed it: a late Accept for it must fail.
      tables::tombstones.put(
          b, c.contract_id,
          tombstone_record{c.contract_id, buyer, c.order_id, st.ctx->clock().now()});
      st.tombstones.insert(c.contract_id);
    }
  }
  // Release the order's held proposal, if any.
  if (const auto* h = find_held(self, buyer, c.order_id)) {
    auto o = read(self, tables::offers, h->proposal_id);
    if (o && o->state == offer_state::held) cancel_offer(std::move(*o));
  }
  commit(self, std::move(b), &env, {}, c.order_id, std::move(released));
}

// --- disruptions (outage.hpp) -------------------------------------------------

/// The steps of `o`'s reservations as the calendars hold them (operation k =
/// o.reservations[k]); nothing if one is missing.
std::optional<std::vector<chosen_step>> steps_of(participant_actor* self, const offer_record& o) {
  std::vector<chosen_step> out;
  for (const auto& r : o.reservations) {
    auto it = self->state.cals.find(r.resource);
    const calendar_entry* e =
        it == self->state.cals.end() ? nullptr : it->second.find(r.reservation_id);
    if (!e) return std::nullopt;
    out.push_back({r.resource, r.reservation_id, e->where});
  }
  return out;
}

/// One step of the participant that ends or re-plans sold contracts.
struct replan_step {
  store::write_batch writes;        // offers, contracts, replans, counters (read back)
  store::write_batch reservations;  // hold and booking records
  std::vector<replan_record> replans;
};

/// Adds a replan record for `contract_id` to `step`.
void add_replan(participant_actor* self, replan_step& step, const std::string& contract_id,
                replan_kind kind, timestamp_us start_us, timestamp_us end_us, std::string reason) {
  auto& st = self->state;
  replan_record r;
  r.contract_id = contract_id;
  r.number = st.next_replan++;
  r.kind = kind;
  r.planned_start_us = start_us;
  r.planned_end_us = end_us;
  r.reason = std::move(reason);
  r.at_us = st.ctx->clock().now();
  tables::replans.put(step.writes, replan_key(r.contract_id, r.number), r);
  tables::seq.put(step.writes, "replan", counter_record{r.number});
  step.replans.push_back(std::move(r));
}

/// The seller ends contract `k` of offer `o` (a breakdown it cannot recover
/// from, a component it could not source again): releases its
/// reservations, withdraws its component orders, records offer and contract
/// as cancelled and a replan that the executor reports to the buyer.
void cancel_sold(participant_actor* self, replan_step& step, offer_record o, contract_record k,
                 const std::string& reason) {
  auto& st = self->state;
  release_all(self, o.reservations);
  erase_reservations(step.reservations, o.reservations);
  withdraw(self, o.sub_orders, "the contract it backed was cancelled: " + reason);
  o.state = offer_state::cancelled;
  o.reason = reason;
  o.ended_us = st.ctx->clock().now();
  tables::offers.put(step.writes, o.proposal_id, o);
  k.state = contract_state::cancelled;
  tables::contracts.put(step.writes, k.contract_id, k);
  add_replan(self, step, k.contract_id, replan_kind::cancelled, 0, 0, reason);
  spdlog::info("{}: contract {} cancelled: {}", st.ctx->node_id(), k.contract_id, reason);
}

/// Commits `step` (with `extra` writes), then hands its re-plans to the
/// executor. Returns the commit number.
std::uint64_t commit_replans(participant_actor* self, replan_step step) {
  auto& st = self->state;
  const auto seq =
      commit(self, std::move(step.writes), nullptr, {}, {}, std::move(step.reservations));
  for (auto& r : step.replans) {
    if (st.executor)
      self->send(st.executor, replan_atom::value, std::move(r));
    else
      st.unsent_replans.push_back(std::move(r));  // sent once the executor is known
  }
  return seq;
}

/// Outages past their window leave memory and the calendars (bounded).
void prune_outages(participant_actor* self, timestamp_us now) {
  auto& st = self->state;
  for (auto it = st.outages.begin(); it != st.outages.end();) {
    if (it->second.until_us > now) {
      ++it;
      continue;
    }
    if (auto c = st.cals.find(it->second.resource); c != st.cals.end())
      c->second.unblock(it->first);
    it = st.outages.erase(it);
  }
}

std::string reason_of(const outage_record& out) {
  std::string s = out.resource +
                  (out.kind == outage_kind::breakdown ? " broke down" : " is down for maintenance");
  if (!out.reason.empty()) s += " (" + out.reason + ")";
  return s;
}

std::string minutes_text(timestamp_us us) {
  return std::to_string((us + us_per_min - 1) / us_per_min) + " min";
}

/// Hands capacity bookings `rids` on `resource`, which an outage covers, to
/// the broker to cancel (capacity.hpp); kept until the broker is known. The
/// broker's commit follows the outage's in the node's commit order.
void cancel_capacity(participant_actor* self, const std::string& resource,
                     std::vector<std::string> rids, const std::string& why) {
  auto& st = self->state;
  if (st.broker)
    self->send(st.broker, capacity_cancel_atom::value, resource, std::move(rids), why);
  else
    st.unsent_cancels.emplace_back(resource, std::move(rids), why);
}

/// Moves, delays or cancels what is reserved in the window of outage `out`
/// (its buckets are blocked already) and records what it did in `out`, all
/// in one commit with `out`. Held offers whose Accept is being completed
/// (awarding) are left: their contract is reconciled once recorded.
/// `opening`: `out` is new (always committed, with the outage counter).
/// Returns the commit number; 0 when not opening and nothing was there.
std::uint64_t reconcile(participant_actor* self, outage_record& out, bool opening) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  auto& cal = st.cals.at(out.resource);
  expire_holds(self);
  // What was reserved in the window, by offer.
  std::vector<std::string> proposals;
  std::vector<std::string> capacity_bookings;
  for (const auto& rid : cal.overlapping(out.first_bucket, out.last_bucket)) {
    if (is_capacity_reservation(rid)) {
      // Capacity offers are not moved; their granted bookings are cancelled
      // (below), their unbooked units stay held (bookings there are refused).
      if (const auto* e = cal.find(rid); e && e->kind == reservation_kind::booking)
        capacity_bookings.push_back(rid);
      continue;
    }
    auto pid = rid.substr(0, rid.rfind('#'));
    if (std::find(proposals.begin(), proposals.end(), pid) == proposals.end())
      proposals.push_back(std::move(pid));
  }
  std::vector<std::pair<offer_record, contract_record>> sold;
  std::vector<offer_record> held;
  for (const auto& pid : proposals) {
    auto o = read(self, tables::offers, pid);
    if (!o) continue;
    if (o->state == offer_state::contracted) {
      auto k = read(self, tables::contracts, o->contract_id);
      if (!k || k->state != contract_state::active) continue;
      // Work already completed needs no machine.
      auto e = tables::executions.get(st.ctx->store(), k->contract_id);
      if (e && *e &&
          ((*e)->state == wire::contract_progress::completed ||
           (*e)->state == wire::contract_progress::delivered))
        continue;
      sold.emplace_back(std::move(*o), std::move(*k));
    } else if (hold_valid(*o, now) && !st.awarding.contains(o->proposal_id)) {
      held.push_back(std::move(*o));
    }
  }
  const auto why = reason_of(out);
  if (!capacity_bookings.empty())
    cancel_capacity(self, out.resource, std::move(capacity_bookings), why);
  if (!opening && sold.empty() && held.empty()) return 0;
  std::sort(sold.begin(), sold.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second.promised_due_us, a.second.contract_id) <
           std::tie(b.second.promised_due_us, b.second.contract_id);
  });
  replan_step step;
  // Moves `o`'s steps off the blocked buckets; the new steps, or nothing
  // when they cannot be placed again. Only finished steps blocked: unchanged.
  auto move = [&](const offer_record& o, const std::vector<chosen_step>& steps,
                  const reservation_terms& terms) -> std::optional<replan> {
    if (!first_blocked(st.cals, steps, now)) return replan{steps, steps.size(), 0};
    auto plan = st.policy->plan(cfp_of(o), now);
    if (!plan || plan->operations.size() != steps.size()) return std::nullopt;
    auto r = replan_blocked(st.cals, plan->operations, steps, now, plan->horizon_us, o.proposal_id,
                            terms);
    if (!r) return std::nullopt;
    return std::move(*r);
  };
  // Records `o`'s moved steps as `kind` (erase the old keys, put the new).
  auto record_moved = [&](offer_record& o, const std::vector<chosen_step>& old_steps,
                          const replan& r, reservation_kind kind) {
    if (kind == reservation_kind::hold) {
      // A held offer carries all its holds, moved or not (records.hpp); a
      // record left from a store written before that goes.
      for (const auto& s : old_steps)
        tables::holds.erase(step.reservations, reservation_key(s.resource, s.reservation_id));
      o.reservations = carried_refs_of(r.steps);
      tables::offers.put(step.writes, o.proposal_id, o);
      return;
    }
    for (std::size_t k = r.first_moved; k < old_steps.size(); ++k) {
      const auto key = reservation_key(old_steps[k].resource, old_steps[k].reservation_id);
      tables::holds.erase(step.reservations, key);
      tables::bookings.erase(step.reservations, key);
    }
    for (std::size_t k = r.first_moved; k < r.steps.size(); ++k) {
      const auto& s = r.steps[k];
      tables::bookings.put(step.reservations, reservation_key(s.resource, s.reservation_id),
                           reservation_of(s.resource, s.reservation_id, kind, 0, s.where));
    }
    o.reservations = refs_of(r.steps);
    tables::offers.put(step.writes, o.proposal_id, o);
  };
  auto moved_to = [](const replan& r) {
    std::string s;
    for (std::size_t k = r.first_moved; k < r.steps.size(); ++k)
      if (s.find(r.steps[k].resource) == std::string::npos)
        s += (s.empty() ? "" : ", ") + r.steps[k].resource;
    return s;
  };
  for (auto& [o, k] : sold) {
    auto steps = steps_of(self, o);
    if (!steps) {
      spdlog::error("{}: contract {}: its bookings are not all in the calendars", st.ctx->node_id(),
                    k.contract_id);
      continue;
    }
    auto r = move(o, *steps, reservation_terms{reservation_kind::booking, 0});
    if (r && r->first_moved == steps->size()) continue;  // nothing unfinished was blocked
    const timestamp_us late = r ? r->end_us - o.promised_due_us : 0;
    if (r && late <= st.policy->reschedule_delay_max_us()) {
      auto old_steps = *steps;
      record_moved(o, old_steps, *r, reservation_kind::booking);
      std::string text = why + ": work moved to " + moved_to(*r) +
                         (late > 0 ? ", " + minutes_text(late) + " later than promised"
                                   : ", delivery as promised");
      add_replan(self, step, k.contract_id, replan_kind::rescheduled,
                 r->steps.front().where.start_us, r->end_us, text);
      out.effects.push_back({k.contract_id,
                             late > 0 ? replan_outcome::delayed : replan_outcome::rescheduled,
                             std::max(r->end_us, o.promised_due_us)});
      continue;
    }
    if (r)
      release(st.cals, r->steps);  // the new bookings; the old ones stay released
    else
      release_all(self, o.reservations);
    const std::string text = why + (r ? ": the work would end " + minutes_text(late) +
                                            " after the promised date, more than the seller accepts"
                                      : ": the work cannot be placed again within the horizon");
    // cancel_sold releases o.reservations again: those are gone, a no-op.
    cancel_sold(self, step, o, k, text);
    out.effects.push_back({k.contract_id, replan_outcome::cancelled, 0});
  }
  for (auto& o : held) {
    auto steps = steps_of(self, o);
    if (!steps) continue;
    const reservation_terms terms{reservation_kind::hold, o.valid_until_us};
    auto r = move(o, *steps, terms);
    if (r && r->first_moved == steps->size()) continue;
    if (r && r->end_us <= o.promised_due_us) {
      record_moved(o, *steps, *r, reservation_kind::hold);
      ++out.holds_moved;
      continue;
    }
    // Given up: an Accept re-places the work (or fails), as for a lapsed hold.
    if (r)
      release(st.cals, r->steps);
    else
      release_all(self, o.reservations);
    erase_reservations(step.reservations, o.reservations);
    ++out.holds_released;
  }
  if (opening) tables::seq.put(step.writes, "outage", counter_record{st.next_outage - 1});
  tables::outages.put(step.writes, out.outage_id, out);
  st.outages[out.outage_id] = out;
  spdlog::info("{}: outage {}: {} {}..{}: {} contracts touched, {} holds moved, {} released",
               st.ctx->node_id(), out.outage_id, why, out.from_us, out.until_us, out.effects.size(),
               out.holds_moved, out.holds_released);
  arm_expiry(self);
  return commit_replans(self, std::move(step));
}

/// Opens outage `out` (id, window, kind, reason set) on its machine: blocks
/// the calendar and reconciles the window. Returns the commit number.
std::uint64_t open_outage(participant_actor* self, outage_record& out) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  auto& cal = st.cals.at(out.resource);
  out.first_bucket = cal.bucket_of(std::max(out.from_us, now));
  out.last_bucket = cal.bucket_of(out.until_us - 1);
  out.created_us = now;
  (void)cal.block(out.outage_id, out.first_bucket, out.last_bucket);  // checked by the caller
  return reconcile(self, out, true);
}

/// Reconciles the open outages of the calendars `refs` use (a contract just
/// recorded may have been placed before an outage began).
void reconcile_resources(participant_actor* self, const std::vector<reservation_ref>& refs) {
  auto& st = self->state;
  std::vector<std::string> ids;
  for (const auto& [id, o] : st.outages)
    if (o.ended_us == 0 &&
        std::any_of(refs.begin(), refs.end(),
                    [&o = o](const reservation_ref& r) { return r.resource == o.resource; }))
      ids.push_back(id);
  for (const auto& id : ids)
    if (auto it = st.outages.find(id); it != st.outages.end()) {
      auto out = it->second;
      reconcile(self, out, false);
    }
}

caf::response_promise on_outage(participant_actor* self, outage_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  const auto now = st.ctx->clock().now();
  auto answer = [&](unsigned code, std::string error, std::vector<outage_record> outs = {}) {
    rp.deliver(outage_reply{code, std::move(error), std::move(outs)});
    return rp;
  };
  if (!st.policy->machines())
    return answer(404, "this node has no factory role: it has no machines");
  auto cal = st.cals.find(req.machine);
  if (cal == st.cals.end())
    return answer(404, "no machine " + req.machine + " at " + st.ctx->node_id());
  if (req.reason.size() > 1024) return answer(400, "reason must be at most 1024 bytes");
  prune_outages(self, now);
  auto open_here = [&] {
    std::vector<const outage_record*> v;
    for (const auto& [id, o] : st.outages)
      if (o.resource == req.machine && o.ended_us == 0) v.push_back(&o);
    return v;
  };
  auto reply_after = [&](std::uint64_t seq, unsigned code, std::vector<outage_record> outs) {
    st.replies.emplace(seq, std::make_pair(rp, outage_reply{code, {}, std::move(outs)}));
    // A commit done on return sends no notice: it is answered now.
    if (st.ctx->commits_inline()) on_durable(self, seq, seq == 0 || st.last_commit_ok);
    return rp;
  };
  switch (req.what) {
    case outage_request::action::up: {
      std::vector<outage_record> ended;
      store::write_batch b;
      for (const auto* o : open_here()) {
        if (o->from_us > now) continue;  // a planned window that has not begun stays
        auto copy = *o;
        copy.ended_us = now;
        tables::outages.put(b, copy.outage_id, copy);
        ended.push_back(copy);
      }
      for (const auto& o : ended) {
        cal->second.unblock(o.outage_id);
        st.outages.erase(o.outage_id);
      }
      if (ended.empty()) return answer(200, {}, {});
      spdlog::info("{}: {} is up again ({} outages ended)", st.ctx->node_id(), req.machine,
                   ended.size());
      return reply_after(commit(self, std::move(b), nullptr, {}, {}), 200, std::move(ended));
    }
    case outage_request::action::cancel: {
      auto it = st.outages.find(req.outage_id);
      if (it == st.outages.end() || it->second.resource != req.machine || it->second.ended_us != 0)
        return answer(404, "no open outage " + req.outage_id + " of " + req.machine);
      if (it->second.from_us <= now)
        return answer(
            409, "outage " + req.outage_id + " has begun: end it with `machine up` (POST .../up)");
      // What opening it moved, delayed or cancelled stays as it is; the
      // capacity is for sale again from now on.
      auto copy = it->second;
      copy.ended_us = now;
      store::write_batch b;
      tables::outages.put(b, copy.outage_id, copy);
      cal->second.unblock(copy.outage_id);
      st.outages.erase(it);
      spdlog::info("{}: planned outage {} of {} cancelled", st.ctx->node_id(), copy.outage_id,
                   req.machine);
      return reply_after(commit(self, std::move(b), nullptr, {}, {}), 200, {std::move(copy)});
    }
    case outage_request::action::health: {
      if (req.health_score < 0 || req.health_score > 100)
        return answer(400, "score must be in 0..100");
      const auto rule = st.policy->health(req.machine);
      if (rule.threshold == 0 || req.health_score >= rule.threshold) return answer(200, {}, {});
      for (const auto* o : open_here())
        if (o->from_us <= now) return answer(200, {}, {});  // already down
      req.kind = outage_kind::maintenance;
      req.from_us = now;
      req.until_us = now + rule.maintenance_us;
      if (req.reason.empty())
        req.reason = "health " + std::to_string(req.health_score) + " below " +
                     std::to_string(rule.threshold);
      break;
    }
    case outage_request::action::down:
      if (req.from_us == 0) req.from_us = now;
      if (req.until_us <= req.from_us) return answer(400, "until_us must be after from_us");
      if (req.until_us <= now) return answer(400, "the window lies in the past");
      if (req.until_us - req.from_us > outage_length_max_us)
        return answer(400, "an outage lasts at most " +
                               std::to_string(outage_length_max_us / us_per_day) + " days");
      break;
  }
  if (open_here().size() >= open_outages_per_machine_max ||
      cal->second.blocks().size() >= capacity_calendar::blocks_max)
    return answer(503, "machine " + req.machine + " has too many open outages");
  outage_record out;
  out.outage_id = st.ctx->node_id() + "/outage/" + std::to_string(st.next_outage++);
  out.resource = req.machine;
  out.kind = req.kind;
  out.from_us = req.from_us;
  out.until_us = req.until_us;
  out.reason = req.reason;
  out.health_score = req.what == outage_request::action::health ? req.health_score : -1;
  const auto seq = open_outage(self, out);
  return reply_after(seq, 201, {out});
}

/// The buyer could not source component order `sub` again: the contract
/// sold to `parent_buyer` for `parent_order_id` that it backs is cancelled.
void on_component_lost(participant_actor* self, const std::string& parent_buyer,
                       const std::string& parent_order_id, const std::string& sub,
                       const std::string& why) {
  auto& st = self->state;
  const auto prefix = parent_order_id + "/";
  std::vector<contract_record> found;
  (void)st.ctx->store().scan(
      tables::contracts.name(), prefix, [&](std::string_view key, std::string_view value) {
        if (key.substr(0, prefix.size()) != prefix) return false;
        auto c = store::codec<contract_record>::decode(value);
        if (c && c->role == contract_role::seller && c->buyer == parent_buyer)
          found.push_back(std::move(*c));
        return true;
      });
  for (auto& k : found) {
    auto now_k = read(self, tables::contracts, k.contract_id);
    if (!now_k || now_k->state != contract_state::active) continue;
    auto o = read(self, tables::offers, now_k->proposal_id);
    if (!o || o->state != offer_state::contracted ||
        std::find(o->sub_orders.begin(), o->sub_orders.end(), sub) == o->sub_orders.end())
      continue;
    replan_step step;
    cancel_sold(self, step, std::move(*o), std::move(*now_k),
                "component order " + sub + " could not be sourced again: " + why);
    commit_replans(self, std::move(step));
  }
}

/// What spawn_participant rebuilt from the store.
struct participant_init {
  calendar_set cals;
  std::uint64_t next_proposal = 1;
  std::uint64_t next_outage = 1;
  std::uint64_t next_replan = 1;
  std::vector<offer_record> held;
  std::vector<std::string> withdrawn;
  std::vector<std::string> tombstones;  // their contract ids
  std::map<std::string, outage_record, std::less<>> outages;
  /// Sold contracts whose component order failed after its seller cancelled
  /// (the node stopped before it cancelled them): (offer, contract, reason).
  std::vector<std::tuple<offer_record, contract_record, std::string>> lost;
};

caf::behavior participant(participant_actor* self, node_context* ctx,
                          std::shared_ptr<const participant_policy> policy,
                          std::shared_ptr<participant_init> init, caf::actor buyer) {
  auto& st = self->state;
  st.ctx = ctx;
  st.buyer = std::move(buyer);
  // Component orders of offers that ended: withdrawn again, in case the node
  // stopped before the buyer committed the first withdrawal (no-op otherwise).
  if (st.buyer) withdraw(self, init->withdrawn, "the proposal it backed ended");
  st.policy = std::move(policy);
  st.cals = std::move(init->cals);
  st.next_proposal = init->next_proposal;
  st.next_outage = init->next_outage;
  st.next_replan = init->next_replan;
  st.outages = std::move(init->outages);
  st.tombstones.insert(init->tombstones.begin(), init->tombstones.end());
  for (const auto& o : init->held) remember_held(self, o);
  for (auto& [o, k, why] : init->lost) {
    replan_step step;
    cancel_sold(self, step, std::move(o), std::move(k), why);
    commit_replans(self, std::move(step));  // handed over once the executor is known
  }
  // Work placed on a machine before its outage began and not moved (the
  // node stopped in between): moved now. Usually nothing.
  {
    std::vector<std::string> ids;
    for (const auto& [id, o] : st.outages) ids.push_back(id);
    for (const auto& id : ids) {
      auto out = st.outages.at(id);
      reconcile(self, out, false);
    }
  }
  init.reset();
  arm_expiry(self);
  return {
      [=](inbound_atom, const wire::envelope& env) {
        std::visit(
            [&](const auto& m) {
              using T = std::decay_t<decltype(m)>;
              if constexpr (std::is_same_v<T, wire::cfp>)
                on_cfp(self, env, m);
              else if constexpr (std::is_same_v<T, wire::accept>)
                on_accept(self, env, m);
              else if constexpr (std::is_same_v<T, wire::reject>)
                on_reject(self, env, m);
              else if constexpr (std::is_same_v<T, wire::cancel>)
                on_cancel(self, env, m);
              else  // not routed here; still acknowledge it
                commit(self, {}, &env, {}, env.header.conversation_id);
            },
            env.payload);
      },
      [=](durable_atom, std::uint64_t seq, bool ok) { on_durable(self, seq, ok); },
      [=](outage_atom, outage_request& req) { return on_outage(self, req); },
      [=](component_lost_atom, const std::string& parent_buyer, const std::string& parent_order,
          const std::string& sub, const std::string& why) {
        on_component_lost(self, parent_buyer, parent_order, sub, why);
      },
      [=](expire_atom) {
        self->state.expiry_armed_us = 0;
        expire_holds(self);
        arm_expiry(self);
      },
      // The capacity broker (capacity.cpp) reserves offers on the same
      // calendars; it commits the records, as the participant does its own.
      [=](hold_atom, const std::string& resource, const std::string& rid, std::int64_t units,
          timestamp_us from, timestamp_us horizon, timestamp_us deadline) {
        auto& st = self->state;
        auto it = st.cals.find(resource);
        if (it == st.cals.end()) return probe_result{};
        expire_holds(self);
        auto p = it->second.find_earliest(units, from, horizon);
        if (!p) return probe_result{};
        if (auto s = it->second.hold(rid, *p, deadline); !s) {
          spdlog::warn("participant: hold {} on {}: {}", rid, resource, s.to_string());
          return probe_result{};
        }
        arm_expiry(self);
        return probe_result{true, std::move(*p)};
      },
      [=](split_atom, const std::string& resource, const std::string& hold_id,
          const std::string& booking_id, std::int64_t units) {
        auto& st = self->state;
        auto it = st.cals.find(resource);
        if (it == st.cals.end()) {
          offer_split out;
          out.reason = "machine " + resource + " is no longer configured";
          return out;
        }
        expire_holds(self);
        return split_offer_hold(it->second, hold_id, booking_id, units);
      },
      [=](release_atom, const std::string& resource, const std::string& rid) {
        if (auto it = self->state.cals.find(resource); it != self->state.cals.end())
          it->second.release(rid);
      },
      [=](check_atom) {
        for (const auto& [id, cal] : self->state.cals)
          if (auto s = cal.check(); !s) return id + ": " + s.message();
        return std::string{};
      },
      // The executor is our child: it exits with us (node::stop exits the routed actors).
      [=](broker_atom, const caf::actor& b) {
        auto& st = self->state;
        st.broker = b;
        for (auto& [resource, rids, why] : st.unsent_cancels)
          self->send(b, capacity_cancel_atom::value, resource, std::move(rids), std::move(why));
        st.unsent_cancels.clear();
      },
      [=](executor_atom, const caf::actor& e) {
        auto& st = self->state;
        st.executor = e;
        self->link_to(e);
        for (auto& r : st.unsent_replans) self->send(e, replan_atom::value, std::move(r));
        st.unsent_replans.clear();
      },
  };
}

}  // namespace

result<capacity_calendar> load_calendar(const store::environment& env, const resource_spec& r) {
  capacity_calendar cal(r.bucket_us, r.capacity);
  const std::string prefix = r.id + "/";
  status err;
  for (const auto* t : {&tables::bookings, &tables::holds}) {
    auto st = env.scan(t->name(), prefix, [&](std::string_view key, std::string_view value) {
      if (key.substr(0, prefix.size()) != prefix) return false;
      auto rec = store::codec<reservation_record>::decode(value);
      if (!rec) {
        err = rec.error();
        return false;
      }
      if (auto s = cal.restore(*rec); !s) {
        err = status(errc::storage, "calendar of " + r.id + ": " + std::string(key) + ": " +
                                        s.message() +
                                        " (was its capacity or bucket length reduced?)");
        return false;
      }
      return true;
    });
    if (!st) return st;
    if (!err) return err;
  }
  return cal;
}

/// Reservations of `cal` that no live offer backs any more: left by a crash
/// between the commit that ended an offer (rejected, cancelled, failed) and
/// the resource's own commit releasing its capacity, or by a crash in the
/// middle of placing holds for a proposal that was never written. Nothing is
/// in progress when a node starts, so every such reservation is released.
/// A reservation id is "<proposal id>#<operation index>".
result<std::vector<std::string>> orphans(const store::environment& env,
                                         const capacity_calendar& cal) {
  std::vector<std::string> out;
  for (const auto& [rid, e] : cal.entries()) {
    if (is_capacity_reservation(rid)) {  // a capacity offer's (capacity.hpp)
      auto backed = capacity_reservation_backed(env, rid, e.kind);
      if (!backed) return backed.error();
      if (!*backed) out.push_back(rid);
      continue;
    }
    auto proposal_id = std::string_view(rid).substr(0, rid.rfind('#'));
    auto o = tables::offers.get(env, proposal_id);
    if (!o) return o.error();
    bool backed = false;
    if (*o) {
      const bool listed =
          std::any_of((*o)->reservations.begin(), (*o)->reservations.end(),
                      [&rid = rid](const reservation_ref& r) { return r.reservation_id == rid; });
      backed = (*o)->state == offer_state::contracted ||
               ((*o)->state == offer_state::held && e.kind == reservation_kind::hold && listed);
    }
    if (!backed) out.push_back(rid);
  }
  std::sort(out.begin(), out.end());  // released in this order
  return out;
}

result<caf::actor> spawn_participant(caf::actor_system& sys, node_context& ctx,
                                     std::shared_ptr<const participant_policy> policy,
                                     const caf::actor& buyer) {
  const auto& env = ctx.store();
  const auto now = ctx.clock().now();
  calendar_set cals;
  store::write_batch expired;
  for (const auto& spec : policy->resources()) {
    auto cal = load_calendar(env, spec);
    if (!cal) return cal.error();
    for (const auto& rid : cal->expire(now))
      tables::holds.erase(expired, reservation_key(spec.id, rid));
    auto stale = orphans(env, *cal);
    if (!stale) return stale.error();
    for (const auto& rid : *stale) {
      cal->release(rid);
      tables::holds.erase(expired, reservation_key(spec.id, rid));
      tables::bookings.erase(expired, reservation_key(spec.id, rid));
    }
    if (!stale->empty())
      spdlog::info("{}: released {} reservations of {} that no offer backs (left by a crash)",
                   ctx.node_id(), stale->size(), spec.id);
    cals.emplace(spec.id, std::move(*cal));
  }
  if (!expired.empty()) {
    effects fx;
    fx.writes = std::move(expired);
    ctx.commit(std::move(fx));
  }
  auto init = std::make_shared<participant_init>();
  for (auto [name, out] :
       {std::pair{"proposal", &init->next_proposal}, std::pair{"outage", &init->next_outage},
        std::pair{"replan", &init->next_replan}}) {
    auto counter = tables::seq.get(env, name);
    if (!counter) return counter.error();
    *out = *counter ? (*counter)->value + 1 : 1;
  }
  auto st = tables::tombstones.for_each(env, [&](std::string_view key, tombstone_record&&) {
    init->tombstones.emplace_back(key);
    return true;
  });
  if (!st) return st;
  // Outages still to come or going on block their machines again.
  st = tables::outages.for_each(env, [&](std::string_view, outage_record&& o) {
    if (o.ended_us != 0 || o.until_us <= now) return true;
    auto c = cals.find(o.resource);
    if (c == cals.end()) return true;  // the machine is no longer configured
    (void)c->second.block(o.outage_id, o.first_bucket, o.last_bucket);
    init->outages.emplace(o.outage_id, std::move(o));
    return true;
  });
  if (!st) return st;
  // Ended offers whose component orders may still be open: those of the last
  // week (a component order lapses by itself unless it was contracted).
  const auto recent = now - 7 * us_per_day;
  status carried_err;
  st = tables::offers.for_each(env, [&](std::string_view, offer_record&& o) {
    const bool ended = o.state == offer_state::rejected || o.state == offer_state::cancelled ||
                       o.state == offer_state::failed;
    if (ended && std::max(o.valid_until_us, o.ended_us) >= recent)
      init->withdrawn.insert(init->withdrawn.end(), o.sub_orders.begin(), o.sub_orders.end());
    // A sold contract whose component order failed after its seller
    // cancelled, and the node stopped before it ended the contract too.
    if (o.state == offer_state::contracted && !o.sub_orders.empty()) {
      auto k = tables::contracts.get(env, o.contract_id);
      auto e = tables::executions.get(env, o.contract_id);
      const bool open = e && *e && (*e)->state != wire::contract_progress::delivered &&
                        (*e)->state != wire::contract_progress::cancelled;
      if (k && *k && (*k)->state == contract_state::active && open) {
        for (const auto& sub : o.sub_orders) {
          auto so = tables::orders.get(env, sub);
          if (!so || !*so || (*so)->state != order_state::failed || (*so)->round == 0) continue;
          init->lost.emplace_back(
              o, **k, "component order " + sub + " could not be sourced again: " + (*so)->reason);
          break;
        }
      }
    }
    // The holds a held offer carries (records.hpp) come back with it; one
    // also stored in "holds" (written before offers carried them) is not
    // counted twice.
    for (const auto& h : carried_holds(o, now)) {
      auto c = cals.find(h.resource);
      if (c == cals.end() || c->second.find(h.reservation_id)) continue;
      if (auto s = c->second.restore(h); !s) {
        carried_err = status(errc::storage, "calendar of " + h.resource + ": offer " +
                                                o.proposal_id + ": " + s.message() +
                                                " (was its capacity or bucket length reduced?)");
        return false;
      }
    }
    if (hold_valid(o, now) ||
        (o.state == offer_state::held && !o.sub_orders.empty() && o.valid_until_us >= recent))
      init->held.push_back(std::move(o));
    return true;
  });
  if (!st) return st;
  if (!carried_err) return carried_err;
  init->cals = std::move(cals);
  return sys.spawn(participant, &ctx, std::move(policy), std::move(init), buyer);
}

outage_reply machine_outage(caf::actor_system& sys, const caf::actor& participant,
                            outage_request req, std::chrono::milliseconds timeout) {
  return ask_blocking(sys, participant, timeout,
                      outage_reply{504, "no answer from the participant in time", {}},
                      "participant", outage_atom::value, std::move(req));
}

void submit_outage(caf::actor_system& sys, const caf::actor& participant, outage_request req,
                   std::chrono::milliseconds timeout, std::function<void(outage_reply)> done) {
  ask_async<outage_atom>(sys, participant, timeout,
                         outage_reply{504, "no answer from the participant in time", {}},
                         "participant", std::move(req), std::move(done));
}

}  // namespace gearmesh::actors
