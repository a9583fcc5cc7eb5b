// Execution rules (execution.hpp): pure functions of an execution_record.
#include "gearmesh/actors/execution.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace gearmesh::actors {

using wire::contract_progress;
using wire::production_event_kind;

execution_record execution_of(const offer_record& offer,
                              const std::vector<reservation_record>& bookings, bool shop_floor) {
  execution_record e;
  e.contract_id = offer.contract_id;
  e.order_id = offer.order_id;
  e.buyer = offer.buyer;
  e.proposal_id = offer.proposal_id;
  e.item = offer.item;
  e.quantity = offer.quantity;
  e.promised_due_us = offer.promised_due_us;
  e.shop_floor = shop_floor;
  e.sub_orders = offer.sub_orders;
  if (bookings.empty()) {
    e.planned_start_us = offer.promised_start_us;
    e.planned_end_us = offer.promised_due_us;
  } else {
    e.planned_start_us = std::numeric_limits<timestamp_us>::max();
    e.planned_end_us = std::numeric_limits<timestamp_us>::min();
    for (const auto& b : bookings) {
      e.planned_start_us = std::min(e.planned_start_us, b.start_us);
      e.planned_end_us = std::max(e.planned_end_us, b.end_us);
    }
  }
  // The work never ends after the promised due as contracted.
  e.planned_end_us = std::min(e.planned_end_us, e.promised_due_us);
  e.planned_start_us = std::min(e.planned_start_us, e.planned_end_us);
  return e;
}

timestamp_us expected_due_us(const execution_record& e) {
  if (e.delivered_us != 0) return e.delivered_us;
  return e.promised_due_us + e.delay_us;
}

std::optional<timestamp_us> next_step_us(const execution_record& e) {
  if (e.shop_floor) return std::nullopt;
  switch (e.state) {
    case contract_progress::contracted:
      return e.planned_start_us + e.delay_us;
    case contract_progress::executing:
      return e.planned_end_us + e.delay_us;
    case contract_progress::completed:
      return e.promised_due_us + e.delay_us;
    case contract_progress::delivered:
    case contract_progress::cancelled:
      return std::nullopt;
  }
  return std::nullopt;
}

wire::production_event event_of(const execution_record& e, production_event_kind kind,
                                timestamp_us at_us,
                                std::vector<wire::component_status> components) {
  wire::production_event m;
  m.contract_id = e.contract_id;
  m.order_id = e.order_id;
  m.sequence = e.sequence;
  m.kind = kind;
  m.at_us = at_us;
  m.state = e.state;
  m.expected_due_us = expected_due_us(e);
  m.started_us = e.started_us;
  m.completed_us = e.completed_us;
  m.delivered_us = e.delivered_us;
  m.reason = e.reason;
  m.components = std::move(components);
  return m;
}

namespace {

void apply(execution_record& e, production_event_kind kind, timestamp_us at) {
  switch (kind) {
    case production_event_kind::started:
      e.state = contract_progress::executing;
      e.started_us = at;
      break;
    case production_event_kind::completed:
      if (e.started_us == 0) e.started_us = at;
      e.state = contract_progress::completed;
      e.completed_us = at;
      break;
    case production_event_kind::delivered:
      if (e.started_us == 0) e.started_us = at;
      if (e.completed_us == 0) e.completed_us = at;
      e.state = contract_progress::delivered;
      e.delivered_us = at;
      break;
    case production_event_kind::cancelled:
      e.state = contract_progress::cancelled;
      break;
    case production_event_kind::delayed:
    case production_event_kind::progress:
      break;
  }
  ++e.sequence;
}

}  // namespace

std::optional<std::pair<production_event_kind, timestamp_us>> advance_one(execution_record& e,
                                                                          timestamp_us now) {
  const auto due = next_step_us(e);
  if (!due || *due > now) return std::nullopt;
  production_event_kind kind = production_event_kind::started;
  if (e.state == contract_progress::executing) kind = production_event_kind::completed;
  if (e.state == contract_progress::completed) kind = production_event_kind::delivered;
  apply(e, kind, *due);
  return std::make_pair(kind, *due);
}

std::vector<std::pair<production_event_kind, timestamp_us>> advance(execution_record& e,
                                                                    timestamp_us now) {
  std::vector<std::pair<production_event_kind, timestamp_us>> out;
  while (auto s = advance_one(e, now)) out.push_back(*s);
  return out;
}

std::optional<timestamp_us> arrival_of(const std::vector<wire::component_status>& components) {
  std::optional<timestamp_us> out;
  for (const auto& c : components) {
    if (c.state == contract_progress::cancelled) continue;
    timestamp_us at = c.promised_due_us;
    if (c.expected_due_us != 0) at = c.expected_due_us;
    if (c.delivered_us != 0) at = c.delivered_us;
    out = out ? std::max(*out, at) : at;
  }
  return out;
}

void prune(std::vector<wire::component_status>& components, std::size_t depth_max,
           std::size_t total_max) {
  // Breadth first: count level by level, cut what does not fit.
  std::vector<std::vector<wire::component_status>*> level{&components};
  std::size_t total = 0;
  for (std::size_t depth = 1; !level.empty(); ++depth) {
    std::vector<std::vector<wire::component_status>*> next;
    for (auto* v : level) {
      if (depth > depth_max || total >= total_max) {
        v->clear();
        continue;
      }
      if (v->size() > total_max - total) v->resize(total_max - total);
      total += v->size();
      for (auto& c : *v) next.push_back(&c.components);
    }
    level = std::move(next);
  }
}

status post(execution_record& e, const posted_event& p, timestamp_us now) {
  const auto bad = [](std::string why) { return status{errc::invalid_argument, std::move(why)}; };
  if (e.state == contract_progress::cancelled)
    return bad("contract " + e.contract_id + " is cancelled");
  if (e.state == contract_progress::delivered)
    return bad("contract " + e.contract_id + " is already delivered");
  const timestamp_us at = p.at_us != 0 ? p.at_us : now;
  switch (p.kind) {
    case production_event_kind::started:
      if (e.state != contract_progress::contracted)
        return bad("contract " + e.contract_id + " has already started");
      break;
    case production_event_kind::completed:
      if (e.state == contract_progress::completed)
        return bad("contract " + e.contract_id + " is already completed");
      break;
    case production_event_kind::delivered:
      break;
    case production_event_kind::delayed:
      if (p.expected_due_us == 0)
        return bad("a delay needs expected_due_us, the new expected delivery");
      if (p.expected_due_us < now) return bad("expected_due_us lies in the past");
      if (p.expected_due_us < e.promised_due_us)
        return bad("expected_due_us is before the promised due; that is no delay");
      e.delay_us = p.expected_due_us - e.promised_due_us;
      e.reason = p.reason;
      break;
    case production_event_kind::progress:
    case production_event_kind::cancelled:
      return bad("kind must be started, completed, delayed or delivered");
  }
  if (p.kind != production_event_kind::delayed && !p.reason.empty()) e.reason = p.reason;
  apply(e, p.kind, at);
  return {};
}

bool component_arrival(execution_record& e, timestamp_us arrival_us, std::string reason) {
  if (e.state != contract_progress::contracted) return false;
  const timestamp_us slip = arrival_us - e.planned_start_us;
  if (slip <= e.delay_us) return false;
  e.delay_us = slip;
  e.reason = std::move(reason);
  ++e.sequence;
  return true;
}

wire::component_status component_of(const contract_record& c, const progress_record* latest) {
  wire::component_status s;
  s.contract_id = c.contract_id;
  s.seller = c.seller;
  s.item = c.item;
  s.quantity = c.quantity;
  s.promised_due_us = c.promised_due_us;
  if (latest != nullptr) {
    s.state = latest->event.state;
    s.expected_due_us = latest->event.expected_due_us;
    s.started_us = latest->event.started_us;
    s.delivered_us = latest->event.delivered_us;
    s.components = latest->event.components;
  }
  if (c.state == contract_state::cancelled) s.state = contract_progress::cancelled;
  return s;
}

}  // namespace gearmesh::actors
