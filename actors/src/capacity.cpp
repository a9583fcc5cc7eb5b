// The capacity broker: publishes capacity offers, grants and asks for
// bookings (capacity.hpp, docs/protocol.md section 6.5).
//
// Concurrency: the broker handles one message at a time, to the end. Where it
// asks the participant, which owns the calendars (hold an offer, split a
// booking off it), it uses request(...).await, which keeps every other message in the mailbox until
// the answer arrived: two BookCapacity for one offer are decided one after
// the other, each on the `remaining` the previous one left (read through the
// pending_writes overlay, so a commit still in flight counts).
//
// Durability: as for the participant's own reservations, the participant
// changes the calendar in memory only; the broker writes the hold and booking records in the same
// commit as the offer or booking they back and the messages they imply.
#include "gearmesh/actors/capacity.hpp"

#include <algorithm>
#include <ctime>
#include <functional>
#include <limits>
#include <map>
#include <optional>

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "ask_async.hpp"
#include "caf_messages.hpp"
#include "gearmesh/actors/records.hpp"
#include "pending_writes.hpp"

namespace gearmesh::actors {

// --- reservations of offers -------------------------------------------------

std::string offer_hold_id(std::string_view offer_id) {
  return std::string(offer_id) + "#open";
}

std::string offer_booking_id(std::string_view offer_id, std::uint32_t n) {
  return std::string(offer_id) + "#b" + std::to_string(n);
}

bool is_capacity_reservation(std::string_view rid) {
  const auto slash = rid.find('/');
  return slash != std::string_view::npos && rid.substr(slash + 1).starts_with("capacity/");
}

result<bool> capacity_reservation_backed(const store::environment& env, std::string_view rid,
                                         reservation_kind kind) {
  const auto hash = rid.rfind('#');
  if (hash == std::string_view::npos) return false;
  const auto offer_id = rid.substr(0, hash);
  const auto suffix = rid.substr(hash + 1);
  auto o = tables::capacity_offers.get(env, offer_id);
  if (!o) return o.error();
  if (!*o) return false;
  if (suffix == "open")
    return kind == reservation_kind::hold && (*o)->state == capacity_offer_state::open;
  if (suffix.size() < 2 || suffix[0] != 'b' || kind != reservation_kind::booking) return false;
  std::uint64_t n = 0;
  for (char c : suffix.substr(1)) {
    if (c < '0' || c > '9' || n > std::numeric_limits<std::uint32_t>::max()) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n >= 1 && n <= (*o)->bookings;
}

offer_split split_offer_hold(capacity_calendar& cal, const std::string& hold_id,
                             const std::string& booking_id, std::int64_t units) {
  offer_split out;
  const auto* e = cal.find(hold_id);
  if (!e || e->kind != reservation_kind::hold) {
    out.reason = "offer expired";
    return out;
  }
  const placement whole = e->where;
  const auto held = whole.units();
  if (units <= 0 || units > held) {
    out.reason = "only " + std::to_string(held) + " units remain";
    return out;
  }
  out.deadline_us = e->deadline_us;
  std::int64_t left = units;
  for (const auto& a : whole.allocations) {
    const auto take = std::min(left, a.units);
    if (take > 0) out.booked.allocations.push_back({a.bucket, take});
    if (a.units > take) out.rest.allocations.push_back({a.bucket, a.units - take});
    left -= take;
  }
  // The machine broke down (or is in maintenance) in part of what would be
  // sold: capacity that is not there is never sold. The offer stays; a
  // smaller booking that ends before the outage may still fit.
  const auto down = std::find_if(out.booked.allocations.begin(), out.booked.allocations.end(),
                                 [&](const allocation& a) { return cal.blocked(a.bucket); });
  if (down != out.booked.allocations.end()) {
    const auto from = static_cast<std::time_t>(cal.bucket_start(down->bucket) / 1'000'000);
    out = offer_split{};  // `down` points into it: read first
    out.reason = fmt::format(
        "the machine is out of service from {:%Y-%m-%dT%H:%MZ}, inside the "
        "units asked for",
        fmt::gmtime(from));
    return out;
  }
  // Times follow the buckets: the booking starts where the offer does and
  // ends with its last bucket; the rest starts at its first bucket.
  const auto bucket_end = [&](std::int64_t b) { return cal.bucket_start(b) + cal.bucket_us(); };
  out.booked.start_us = whole.start_us;
  out.booked.end_us = std::min(whole.end_us, bucket_end(out.booked.allocations.back().bucket));
  if (!out.rest.allocations.empty()) {
    out.rest.start_us =
        std::max(whole.start_us, cal.bucket_start(out.rest.allocations.front().bucket));
    out.rest.end_us = whole.end_us;
  }
  // Release, then reserve the same units again in two parts: both fit
  // because exactly these units were just freed, and nothing else runs in
  // between (one actor, one step).
  cal.release(hold_id);
  auto booked = cal.book(booking_id, out.booked);
  auto rest =
      out.rest.allocations.empty() ? status::ok() : cal.hold(hold_id, out.rest, out.deadline_us);
  if (!booked || !rest) {
    // Cannot happen (a bug): restore the hold as it was.
    cal.release(booking_id);
    cal.release(hold_id);
    if (auto s = cal.hold(hold_id, whole, out.deadline_us); !s)
      spdlog::critical("capacity: restoring hold {} failed: {}", hold_id, s.to_string());
    out = offer_split{};
    out.reason = "internal error: " + (booked ? rest : booked).to_string();
    return out;
  }
  out.ok = true;
  return out;
}

namespace {

/// Most units one offer or booking names.
constexpr std::uint32_t offer_units_max = 1'000'000'000;
/// Most cents one unit may cost (so units * price stays far from overflow).
constexpr std::int64_t unit_price_cents_max = 1'000'000'000;

// --- broker actor -----------------------------------------------------------

struct broker_state {
  node_context* ctx = nullptr;
  capacity_config cfg;
  std::uint64_t next_offer = 1;
  std::uint64_t next_booking = 1;
  pending_writes pending;
  std::uint64_t commit_seq = 0;
  /// Run once commit `seq` is durable (ok) or failed.
  std::multimap<std::uint64_t, std::function<void(bool)>> after;
  /// Received offers by deadline, for the sweep timer.
  std::multimap<timestamp_us, std::string> received_expiry;
  timestamp_us sweep_armed_us = 0;  // 0 = no timer pending
  /// Admin requests waiting for the publisher's answer, by booking id.
  std::map<std::string, caf::response_promise, std::less<>> waiting;
  /// Publisher: granted bookings by reservation id ("<offer id>#b<n>") ->
  /// their capacity_sold key, so an outage can find what it covers.
  std::map<std::string, std::string, std::less<>> sold_by_reservation;
  static inline const char* name = "gearmesh.capacity";
};

using broker_actor = caf::stateful_actor<broker_state>;

std::chrono::microseconds delay_until(timestamp_us deadline, timestamp_us now) {
  return std::chrono::microseconds(std::max<timestamp_us>(0, deadline - now) + us_per_ms);
}

template <class T>
std::optional<T> read(broker_actor* self, const store::table<T>& t, std::string_view key) {
  auto& st = self->state;
  auto v = st.pending.get(st.ctx->store(), t, key);
  if (!v) {
    spdlog::error("capacity: reading {} {}: {}", t.name(), key, v.error().to_string());
    return std::nullopt;
  }
  return std::move(*v);
}

/// Commits `writes` (read back through the overlay), `reservations` (never
/// read back), the inbound `cause` and `msgs` in one step; `then(ok)` runs on
/// the broker once it is durable.
void commit(broker_actor* self, store::write_batch writes, const wire::envelope* cause,
            std::vector<outbound> msgs, store::write_batch reservations = {},
            std::function<void(bool)> then = {}) {
  auto& st = self->state;
  effects fx;
  fx.writes = std::move(writes);
  if (cause) {
    fx.cause = inbound_ref{cause->header.sender, cause->header.message_id};
    for (auto& m : msgs) m.causation_id = cause->header.message_id;
  }
  fx.messages = std::move(msgs);
  if (!fx.writes.empty() || then) {
    const auto seq = ++st.commit_seq;
    st.pending.record(fx.writes, seq);
    if (then) st.after.emplace(seq, std::move(then));
    fx.on_durable = [h = caf::actor_cast<caf::actor>(self), seq](const status& s) {
      if (!s) spdlog::error("capacity: commit {} failed: {}", seq, s.to_string());
      caf::anon_send(h, durable_atom::value, seq, s.is_ok());
    };
  }
  fx.writes.append(std::move(reservations));
  st.ctx->commit(std::move(fx));
}

void on_durable(broker_actor* self, std::uint64_t seq, bool ok) {
  auto& st = self->state;
  st.pending.durable(seq);
  while (!st.after.empty() && st.after.begin()->first <= seq) {
    auto f = std::move(st.after.begin()->second);
    st.after.erase(st.after.begin());
    f(ok);
  }
}

wire::capacity_offer wire_offer(const capacity_offer_record& o) {
  return wire::capacity_offer{o.offer_id,
                              o.capability,
                              o.window_start_us,
                              o.window_end_us,
                              o.units,
                              o.remaining,
                              o.unit_price_cents,
                              o.currency,
                              o.valid_until_us,
                              o.revision,
                              o.state == capacity_offer_state::withdrawn};
}

/// The offer (a new revision) to every partner of its audience.
void announce(const capacity_offer_record& o, std::vector<outbound>& msgs) {
  for (const auto& peer : o.audience) msgs.push_back(outbound{peer, o.offer_id, 0, wire_offer(o)});
}

std::string sold_key(std::string_view booker, std::string_view booking_id) {
  std::string k(booker);
  k.push_back('/');
  k.append(booking_id);
  return k;
}

// --- publisher ----------------------------------------------------------------

struct publish_job {
  publish_request req;
  std::vector<std::string> candidates;
  std::size_t next = 0;
  std::string offer_id;
  std::uint64_t n = 0;
  caf::response_promise rp;
};

void try_next_resource(broker_actor* self, std::shared_ptr<publish_job> j);

void publish_on(broker_actor* self, std::shared_ptr<publish_job> j, const std::string& resource,
                const placement& where) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  capacity_offer_record o;
  o.offer_id = j->offer_id;
  o.publisher = st.ctx->node_id();
  o.capability = j->req.capability;
  o.window_start_us = j->req.window_start_us;
  o.window_end_us = j->req.window_end_us;
  o.units = j->req.units;
  o.remaining = j->req.units;
  o.unit_price_cents = j->req.unit_price_cents;
  o.currency = st.cfg.currency;
  o.valid_until_us = j->req.valid_until_us;
  o.revision = 1;
  o.state = capacity_offer_state::open;
  o.resource = resource;
  o.audience = st.cfg.audience;
  o.updated_us = now;
  store::write_batch b;
  tables::seq.put(b, "capacity_offer", counter_record{j->n});
  tables::capacity_offers.put(b, o.offer_id, o);
  store::write_batch holds;
  const auto hold_id = offer_hold_id(o.offer_id);
  tables::holds.put(
      holds, reservation_key(resource, hold_id),
      reservation_of(resource, hold_id, reservation_kind::hold, o.valid_until_us, where));
  std::vector<outbound> msgs;
  announce(o, msgs);
  spdlog::info("{}: published capacity offer {}: {} units of {} on {}, to {} partners",
               st.ctx->node_id(), o.offer_id, o.units, o.capability, resource, o.audience.size());
  commit(self, std::move(b), nullptr, std::move(msgs), std::move(holds),
         [rp = j->rp, o](bool ok) mutable {
           if (ok)
             rp.deliver(publish_reply{201, {}, o});
           else
             rp.deliver(publish_reply{500, "the store failed to commit the offer", {}});
         });
}

void try_next_resource(broker_actor* self, std::shared_ptr<publish_job> j) {
  auto& st = self->state;
  if (j->next == j->candidates.size()) {
    // The number is spent anyway; keep the counter ahead of it.
    store::write_batch b;
    tables::seq.put(b, "capacity_offer", counter_record{j->n});
    commit(self, std::move(b), nullptr, {});
    j->rp.deliver(publish_reply{409,
                                "no machine with " + j->req.capability + " has " +
                                    std::to_string(j->req.units) + " free units in the window",
                                {}});
    return;
  }
  const auto resource = j->candidates[j->next++];
  self->request(st.cfg.participant, caf::infinite, hold_atom::value, resource,
                offer_hold_id(j->offer_id), static_cast<std::int64_t>(j->req.units),
                j->req.window_start_us, j->req.window_end_us, j->req.valid_until_us)
      .await(
          [=](probe_result& r) {
            if (r.found) return publish_on(self, j, resource, r.where);
            try_next_resource(self, j);
          },
          [=](caf::error&) { try_next_resource(self, j); });
}

caf::response_promise on_publish(broker_actor* self, publish_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  const auto now = st.ctx->clock().now();
  auto bad = [&](unsigned code, std::string why) {
    rp.deliver(publish_reply{code, std::move(why), {}});
    return rp;
  };
  if (!st.cfg.participant || st.cfg.resources.empty())
    return bad(404, "this node has no factory role: it cannot publish capacity");
  if (req.valid_until_us == 0) req.valid_until_us = req.window_start_us;
  if (req.capability.empty()) return bad(400, "capability is required");
  if (req.units == 0 || req.units > offer_units_max)
    return bad(400, "units must be in 1.." + std::to_string(offer_units_max));
  if (req.unit_price_cents < 0 || req.unit_price_cents > unit_price_cents_max)
    return bad(400, "unit_price_cents must be in 0.." + std::to_string(unit_price_cents_max));
  if (req.window_end_us <= req.window_start_us)
    return bad(400, "window_end_us must be after window_start_us");
  if (req.valid_until_us <= now) return bad(400, "valid_until_us must be in the future");
  if (req.valid_until_us > req.window_end_us)
    return bad(400, "valid_until_us must not be after window_end_us");
  auto j = std::make_shared<publish_job>();
  for (const auto& r : st.cfg.resources) {
    const bool capable = std::find(r.capabilities.begin(), r.capabilities.end(), req.capability) !=
                         r.capabilities.end();
    if (capable && (req.resource.empty() || req.resource == r.id)) j->candidates.push_back(r.id);
  }
  if (j->candidates.empty())
    return bad(400, req.resource.empty()
                        ? "no machine has capability " + req.capability
                        : "machine " + req.resource + " does not exist or lacks " + req.capability);
  // Work starts no earlier than now.
  req.window_start_us = std::max(req.window_start_us, now);
  j->n = st.next_offer++;
  j->offer_id = st.ctx->node_id() + "/capacity/" + std::to_string(j->n);
  j->req = std::move(req);
  j->rp = rp;
  try_next_resource(self, j);
  return rp;
}

caf::response_promise on_withdraw(broker_actor* self, const std::string& offer_id) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto o = read(self, tables::capacity_offers, offer_id);
  if (!o) {
    rp.deliver(publish_reply{404, "no offer " + offer_id + " was published here", {}});
    return rp;
  }
  if (o->state == capacity_offer_state::withdrawn) {
    rp.deliver(publish_reply{200, {}, *o});
    return rp;
  }
  // The unbooked units go back to the calendar; granted bookings stay.
  const auto hold_id = offer_hold_id(o->offer_id);
  if (st.cfg.participant) self->send(st.cfg.participant, release_atom::value, o->resource, hold_id);
  o->state = capacity_offer_state::withdrawn;
  o->remaining = 0;
  ++o->revision;
  o->updated_us = st.ctx->clock().now();
  store::write_batch b;
  tables::capacity_offers.put(b, o->offer_id, *o);
  store::write_batch res;
  tables::holds.erase(res, reservation_key(o->resource, hold_id));
  std::vector<outbound> msgs;
  announce(*o, msgs);
  commit(self, std::move(b), nullptr, std::move(msgs), std::move(res),
         [rp, o = *o](bool ok) mutable {
           if (ok)
             rp.deliver(publish_reply{200, {}, o});
           else
             rp.deliver(publish_reply{500, "the store failed to commit the withdrawal", {}});
         });
  return rp;
}

void refuse_booking(broker_actor* self, const wire::envelope& env, const wire::book_capacity& m,
                    std::string reason, std::uint32_t remaining,
                    const capacity_offer_record* offer = nullptr) {
  auto& st = self->state;
  capacity_booking_record r;
  if (offer) {
    r.capability = offer->capability;
    r.currency = offer->currency;
    r.window_start_us = offer->window_start_us;
    r.window_end_us = offer->window_end_us;
  }
  r.booking_id = m.booking_id;
  r.offer_id = m.offer_id;
  r.publisher = st.ctx->node_id();
  r.booker = env.header.sender;
  r.state = capacity_booking_state::refused;
  r.reason = reason;
  r.units = m.units;
  r.remaining = remaining;
  r.created_us = st.ctx->clock().now();
  store::write_batch b;
  // Remembered, so the same booking id asked again gets the same answer.
  tables::capacity_sold.put(b, sold_key(r.booker, r.booking_id), r);
  commit(
      self, std::move(b), &env,
      {outbound{r.booker, m.offer_id, 0,
                wire::capacity_refused{m.offer_id, m.booking_id, std::move(reason), remaining}}});
}

wire::capacity_booked booked_message(const capacity_booking_record& r) {
  return wire::capacity_booked{r.offer_id,        r.booking_id,    r.units,
                               r.price_cents,     r.currency,      r.capability,
                               r.window_start_us, r.window_end_us, r.remaining};
}

void on_book(broker_actor* self, const wire::envelope& env, const wire::book_capacity& m) {
  auto& st = self->state;
  const auto& booker = env.header.sender;
  const auto now = st.ctx->clock().now();
  // The same booking id again: the answer it got.
  if (auto prior = read(self, tables::capacity_sold, sold_key(booker, m.booking_id))) {
    wire::payload answer =
        prior->state == capacity_booking_state::booked ? wire::payload{booked_message(*prior)}
        : prior->state == capacity_booking_state::cancelled
            ? wire::payload{wire::capacity_cancelled{prior->offer_id, prior->booking_id,
                                                     prior->reason}}
            : wire::payload{wire::capacity_refused{prior->offer_id, prior->booking_id,
                                                   prior->reason, prior->remaining}};
    return commit(self, {}, &env, {outbound{booker, m.offer_id, 0, std::move(answer)}});
  }
  if (m.booking_id.empty())
    return commit(self, {}, &env,
                  {outbound{booker, m.offer_id, 0,
                            wire::capacity_refused{m.offer_id, {}, "booking_id is empty", 0}}});
  auto o = read(self, tables::capacity_offers, m.offer_id);
  if (!o || std::find(o->audience.begin(), o->audience.end(), booker) == o->audience.end())
    return refuse_booking(self, env, m, "unknown offer " + m.offer_id, 0);
  if (o->state == capacity_offer_state::withdrawn)
    return refuse_booking(self, env, m, "offer withdrawn", 0, &*o);
  if (now > o->valid_until_us) return refuse_booking(self, env, m, "offer expired", 0, &*o);
  if (m.units == 0)
    return refuse_booking(self, env, m, "units must be at least 1", o->remaining, &*o);
  if (m.units > o->remaining)
    return refuse_booking(self, env, m, "only " + std::to_string(o->remaining) + " units remain",
                          o->remaining, &*o);
  if (!st.cfg.participant)
    return refuse_booking(self, env, m, "this node no longer has a factory role", 0, &*o);
  const auto n = o->bookings + 1;
  const auto booking_rid = offer_booking_id(o->offer_id, n);
  const auto hold_id = offer_hold_id(o->offer_id);
  self->request(st.cfg.participant, caf::infinite, split_atom::value, o->resource, hold_id,
                booking_rid, static_cast<std::int64_t>(m.units))
      .await(
          [=, o = std::move(*o)](offer_split& s) mutable {
            auto& st = self->state;
            if (!s.ok) {
              // The calendar's word wins: its hold expired (clock) or is gone.
              return refuse_booking(self, env, m, s.reason, 0, &o);
            }
            o.remaining -= m.units;
            o.bookings = n;
            ++o.revision;
            o.updated_us = st.ctx->clock().now();
            capacity_booking_record r;
            r.booking_id = m.booking_id;
            r.offer_id = o.offer_id;
            r.publisher = st.ctx->node_id();
            r.booker = booker;
            r.state = capacity_booking_state::booked;
            r.capability = o.capability;
            r.units = m.units;
            r.price_cents = static_cast<std::int64_t>(m.units) * o.unit_price_cents;
            r.currency = o.currency;
            r.window_start_us = o.window_start_us;
            r.window_end_us = o.window_end_us;
            r.remaining = o.remaining;
            r.resource = o.resource;
            r.reservation_id = booking_rid;
            r.created_us = o.updated_us;
            store::write_batch b;
            tables::capacity_offers.put(b, o.offer_id, o);
            tables::capacity_sold.put(b, sold_key(booker, r.booking_id), r);
            store::write_batch res;
            const auto hold_key = reservation_key(o.resource, hold_id);
            if (s.rest.allocations.empty())
              tables::holds.erase(res, hold_key);
            else
              tables::holds.put(res, hold_key,
                                reservation_of(o.resource, hold_id, reservation_kind::hold,
                                               s.deadline_us, s.rest));
            tables::bookings.put(
                res, reservation_key(o.resource, booking_rid),
                reservation_of(o.resource, booking_rid, reservation_kind::booking, 0, s.booked));
            std::vector<outbound> msgs;
            msgs.push_back(outbound{booker, o.offer_id, 0, booked_message(r)});
            announce(o, msgs);
            spdlog::info("{}: capacity booking {} of {}: {} units for {}, {} remain",
                         st.ctx->node_id(), r.booking_id, o.offer_id, r.units, booker, o.remaining);
            st.sold_by_reservation.insert_or_assign(booking_rid, sold_key(booker, r.booking_id));
            commit(self, std::move(b), &env, std::move(msgs), std::move(res));
          },
          [=](caf::error& e) {
            refuse_booking(self, env, m, "machine unavailable: " + to_string(e), 0);
          });
}

/// The participant found granted bookings `rids` where `resource` is out of
/// service (docs/protocol.md 6.5): each one still booked is cancelled, in
/// one commit: the booking record (cancelled, with the reason), its
/// reservation record erased, and a CapacityCancelled to its booker; once
/// that is durable the participant releases them from the calendar.
/// Bookings already cancelled, or not granted here, are skipped (the
/// participant names them again after a restart).
void on_capacity_cancel(broker_actor* self, const std::string& resource,
                        const std::vector<std::string>& rids, const std::string& reason) {
  auto& st = self->state;
  store::write_batch b;
  store::write_batch res;
  std::vector<outbound> msgs;
  std::vector<std::string> released;
  for (const auto& rid : rids) {
    auto key = st.sold_by_reservation.find(rid);
    if (key == st.sold_by_reservation.end()) continue;
    auto r = read(self, tables::capacity_sold, key->second);
    if (!r || r->state != capacity_booking_state::booked || r->resource != resource) continue;
    r->state = capacity_booking_state::cancelled;
    r->reason = reason;
    tables::capacity_sold.put(b, key->second, *r);
    tables::bookings.erase(res, reservation_key(resource, rid));
    msgs.push_back(outbound{r->booker, r->offer_id, 0,
                            wire::capacity_cancelled{r->offer_id, r->booking_id, reason}});
    spdlog::warn("{}: capacity booking {} of {} ({} units for {}) cancelled: {}", st.ctx->node_id(),
                 r->booking_id, r->offer_id, r->units, r->booker, reason);
    released.push_back(rid);
    st.sold_by_reservation.erase(key);
  }
  if (released.empty()) return;
  commit(self, std::move(b), nullptr, std::move(msgs), std::move(res),
         [participant = st.cfg.participant, resource, released = std::move(released)](bool ok) {
           if (!ok || !participant) return;  // a failed store stops the node
           for (const auto& rid : released)
             caf::anon_send(participant, release_atom::value, resource, rid);
         });
}

// --- partner ------------------------------------------------------------------

void arm_sweep(broker_actor* self) {
  auto& st = self->state;
  if (st.received_expiry.empty()) return;
  const auto d = st.received_expiry.begin()->first;
  if (st.sweep_armed_us != 0 && st.sweep_armed_us <= d) return;
  st.sweep_armed_us = d;
  self->delayed_send(self, delay_until(d, st.ctx->clock().now()), sweep_atom::value);
}

/// Erases received offers past their deadline ("expired offers vanish").
void sweep(broker_actor* self) {
  auto& st = self->state;
  const auto now = st.ctx->clock().now();
  store::write_batch b;
  while (!st.received_expiry.empty() && st.received_expiry.begin()->first < now) {
    const auto id = st.received_expiry.begin()->second;
    st.received_expiry.erase(st.received_expiry.begin());
    auto o = read(self, tables::capacity_received, id);
    if (o && o->valid_until_us < now) tables::capacity_received.erase(b, id);
  }
  if (!b.empty()) commit(self, std::move(b), nullptr, {});
}

void on_offer(broker_actor* self, const wire::envelope& env, const wire::capacity_offer& m) {
  auto& st = self->state;
  const auto& publisher = env.header.sender;
  const auto now = st.ctx->clock().now();
  store::write_batch b;
  auto known = read(self, tables::capacity_received, m.offer_id);
  // Offer ids are the publisher's: another partner cannot replace them.
  const bool mine = !known || known->publisher == publisher;
  if (mine && (!known || m.revision > known->revision)) {
    if (now > m.valid_until_us) {
      if (known) tables::capacity_received.erase(b, m.offer_id);
    } else {
      capacity_offer_record o;
      o.offer_id = m.offer_id;
      o.publisher = publisher;
      o.capability = m.capability;
      o.window_start_us = m.window_start_us;
      o.window_end_us = m.window_end_us;
      o.units = m.units;
      o.remaining = std::min(m.remaining, m.units);
      o.unit_price_cents = m.unit_price_cents;
      o.currency = m.currency;
      o.valid_until_us = m.valid_until_us;
      o.revision = m.revision;
      o.state = m.withdrawn ? capacity_offer_state::withdrawn : capacity_offer_state::open;
      o.updated_us = now;
      tables::capacity_received.put(b, o.offer_id, o);
      if (!known || known->valid_until_us != o.valid_until_us) {
        st.received_expiry.emplace(o.valid_until_us, o.offer_id);
        arm_sweep(self);
      }
    }
  } else if (!mine) {
    spdlog::warn("{}: ignored capacity offer {} from {}: {} published it", st.ctx->node_id(),
                 m.offer_id, publisher, known->publisher);
  }
  commit(self, std::move(b), &env, {});
}

caf::response_promise on_reserve(broker_actor* self, book_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  const auto now = st.ctx->clock().now();
  auto o = read(self, tables::capacity_received, req.offer_id);
  if (!o) {
    rp.deliver(book_reply{404, "no offer " + req.offer_id + " was received", {}});
    return rp;
  }
  if (o->state == capacity_offer_state::withdrawn || now > o->valid_until_us) {
    rp.deliver(
        book_reply{410,
                   "offer " + req.offer_id + " is " +
                       (o->state == capacity_offer_state::withdrawn ? "withdrawn" : "expired"),
                   {}});
    return rp;
  }
  if (req.units == 0 || req.units > offer_units_max) {
    rp.deliver(book_reply{400, "units must be in 1.." + std::to_string(offer_units_max), {}});
    return rp;
  }
  if (o->unit_price_cents < 0 || o->unit_price_cents > unit_price_cents_max) {
    rp.deliver(book_reply{400,
                          "offer " + req.offer_id + " has a unit price out of range (" +
                              std::to_string(o->unit_price_cents) + " cents)",
                          {}});
    return rp;
  }
  const auto n = st.next_booking++;
  capacity_booking_record r;
  r.booking_id = st.ctx->node_id() + "/booking/" + std::to_string(n);
  r.offer_id = o->offer_id;
  r.publisher = o->publisher;
  r.booker = st.ctx->node_id();
  r.state = capacity_booking_state::requested;
  r.capability = o->capability;
  r.units = req.units;
  r.price_cents = static_cast<std::int64_t>(req.units) * o->unit_price_cents;
  r.currency = o->currency;
  r.window_start_us = o->window_start_us;
  r.window_end_us = o->window_end_us;
  r.created_us = now;
  store::write_batch b;
  tables::seq.put(b, "capacity_booking", counter_record{n});
  tables::capacity_bookings.put(b, r.booking_id, r);
  st.waiting.emplace(r.booking_id, rp);
  commit(self, std::move(b), nullptr,
         {outbound{r.publisher, r.offer_id, 0,
                   wire::book_capacity{r.offer_id, r.booking_id, r.units}}},
         {}, [self, id = r.booking_id](bool ok) {
           if (ok) return;
           auto& w = self->state.waiting;
           if (auto it = w.find(id); it != w.end()) {
             it->second.deliver(book_reply{500, "the store failed to commit the booking", {}});
             w.erase(it);
           }
         });
  return rp;
}

/// Records the publisher's answer to one of our bookings; answers the waiting
/// admin request once that is durable. `after_booked`: the answer may also
/// follow a CapacityBooked (a cancellation).
void on_answer(broker_actor* self, const wire::envelope& env, const std::string& booking_id,
               const std::function<void(capacity_booking_record&)>& apply,
               bool after_booked = false) {
  auto r = read(self, tables::capacity_bookings, booking_id);
  if (!r || r->publisher != env.header.sender ||
      !(r->state == capacity_booking_state::requested ||
        (after_booked && r->state == capacity_booking_state::booked))) {
    // Unknown, someone else's, or already answered (a re-sent answer).
    return commit(self, {}, &env, {});
  }
  apply(*r);
  store::write_batch b;
  tables::capacity_bookings.put(b, r->booking_id, *r);
  commit(self, std::move(b), &env, {}, {}, [self, rec = *r](bool ok) {
    auto& w = self->state.waiting;
    auto it = w.find(rec.booking_id);
    if (it == w.end()) return;
    if (!ok)
      it->second.deliver(book_reply{500, "the store failed to commit the answer", {}});
    else if (rec.state == capacity_booking_state::booked)
      it->second.deliver(book_reply{201, {}, rec});
    else
      it->second.deliver(book_reply{409, rec.reason, rec});
    w.erase(it);
  });
}

caf::behavior broker(broker_actor* self, node_context* ctx, capacity_config cfg,
                     std::uint64_t next_offer, std::uint64_t next_booking,
                     std::vector<std::pair<timestamp_us, std::string>> received,
                     std::map<std::string, std::string, std::less<>> sold_by_reservation) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = std::move(cfg);
  st.sold_by_reservation = std::move(sold_by_reservation);
  st.next_offer = next_offer;
  st.next_booking = next_booking;
  for (auto& [t, id] : received) st.received_expiry.emplace(t, std::move(id));
  arm_sweep(self);
  if (st.cfg.participant) self->link_to(st.cfg.participant);
  return {
      [=](inbound_atom, const wire::envelope& env) {
        std::visit(
            [&](const auto& m) {
              using T = std::decay_t<decltype(m)>;
              if constexpr (std::is_same_v<T, wire::capacity_offer>)
                on_offer(self, env, m);
              else if constexpr (std::is_same_v<T, wire::book_capacity>)
                on_book(self, env, m);
              else if constexpr (std::is_same_v<T, wire::capacity_booked>)
                on_answer(self, env, m.booking_id, [&m](capacity_booking_record& r) {
                  r.state = capacity_booking_state::booked;
                  r.units = m.units;
                  r.price_cents = m.price_cents;
                  r.currency = m.currency;
                  r.capability = m.capability;
                  r.window_start_us = m.window_start_us;
                  r.window_end_us = m.window_end_us;
                  r.remaining = m.remaining;
                });
              else if constexpr (std::is_same_v<T, wire::capacity_refused>)
                on_answer(self, env, m.booking_id, [&m](capacity_booking_record& r) {
                  r.state = capacity_booking_state::refused;
                  r.reason = m.reason;
                  r.remaining = m.remaining;
                });
              else if constexpr (std::is_same_v<T, wire::capacity_cancelled>)
                // Booked, or still requested (the cancellation overtook the
                // CapacityBooked, which then changes nothing): the terms stay.
                on_answer(
                    self, env, m.booking_id,
                    [&m](capacity_booking_record& r) {
                      r.state = capacity_booking_state::cancelled;
                      r.reason = m.reason;
                    },
                    /*after_booked=*/true);
              else  // not routed here; still acknowledge it
                commit(self, {}, &env, {});
            },
            env.payload);
      },
      [=](publish_atom, publish_request& req) { return on_publish(self, req); },
      [=](reserve_atom, book_request& req) { return on_reserve(self, req); },
      [=](withdraw_atom, const std::string& id) { return on_withdraw(self, id); },
      [=](durable_atom, std::uint64_t seq, bool ok) { on_durable(self, seq, ok); },
      [=](capacity_cancel_atom, const std::string& resource, const std::vector<std::string>& rids,
          const std::string& reason) { on_capacity_cancel(self, resource, rids, reason); },
      [=](sweep_atom) {
        self->state.sweep_armed_us = 0;
        sweep(self);
        arm_sweep(self);
      },
  };
}

}  // namespace

result<caf::actor> spawn_capacity_broker(caf::actor_system& sys, node_context& ctx,
                                         capacity_config cfg) {
  const auto& env = ctx.store();
  auto offers = tables::seq.get(env, "capacity_offer");
  if (!offers) return offers.error();
  auto bookings = tables::seq.get(env, "capacity_booking");
  if (!bookings) return bookings.error();
  std::vector<std::pair<timestamp_us, std::string>> received;
  auto st =
      tables::capacity_received.for_each(env, [&](std::string_view key, capacity_offer_record&& o) {
        received.emplace_back(o.valid_until_us, std::string(key));
        return true;
      });
  if (!st) return st;
  std::map<std::string, std::string, std::less<>> sold_by_reservation;
  st = tables::capacity_sold.for_each(env, [&](std::string_view key, capacity_booking_record&& b) {
    if (b.state == capacity_booking_state::booked && !b.reservation_id.empty())
      sold_by_reservation.emplace(std::move(b.reservation_id), std::string(key));
    return true;
  });
  if (!st) return st;
  return sys.spawn(broker, &ctx, std::move(cfg), *offers ? (*offers)->value + 1 : 1,
                   *bookings ? (*bookings)->value + 1 : 1, std::move(received),
                   std::move(sold_by_reservation));
}

publish_reply publish_offer(caf::actor_system& sys, const caf::actor& broker, publish_request req,
                            std::chrono::milliseconds timeout) {
  return ask_blocking(sys, broker, timeout,
                      publish_reply{504, "no answer from the capacity broker in time", {}},
                      "capacity broker", publish_atom::value, std::move(req));
}

publish_reply withdraw_offer(caf::actor_system& sys, const caf::actor& broker, std::string offer_id,
                             std::chrono::milliseconds timeout) {
  return ask_blocking(sys, broker, timeout,
                      publish_reply{504, "no answer from the capacity broker in time", {}},
                      "capacity broker", withdraw_atom::value, std::move(offer_id));
}

void submit_publish(caf::actor_system& sys, const caf::actor& broker, publish_request req,
                    std::chrono::milliseconds timeout, std::function<void(publish_reply)> done) {
  ask_async<publish_atom>(sys, broker, timeout,
                          publish_reply{504, "no answer from the capacity broker in time", {}},
                          "capacity broker", std::move(req), std::move(done));
}

void submit_book(caf::actor_system& sys, const caf::actor& broker, book_request req,
                 std::chrono::milliseconds timeout, std::function<void(book_reply)> done) {
  ask_async<reserve_atom>(
      sys, broker, timeout,
      book_reply{504, "no answer from the publisher in time; the booking stays requested", {}},
      "capacity broker", std::move(req), std::move(done));
}

book_reply book_offer(caf::actor_system& sys, const caf::actor& broker, book_request req,
                      std::chrono::milliseconds timeout) {
  return ask_blocking(
      sys, broker, timeout,
      book_reply{504, "no answer from the publisher in time; the booking stays requested", {}},
      "capacity broker", reserve_atom::value, std::move(req));
}

}  // namespace gearmesh::actors
