// Forward loading and re-planning on capacity calendars (scheduling.hpp).
#include "gearmesh/actors/scheduling.hpp"

#include <algorithm>

namespace gearmesh::actors {

namespace {

std::string candidates_text(const operation_plan& op) {
  std::string s;
  for (const auto& c : op.candidates) {
    if (!s.empty()) s += ", ";
    s += c;
  }
  return s.empty() ? std::string("no machine") : s;
}

status reserve(capacity_calendar& cal, const std::string& id, const placement& where,
               const reservation_terms& terms) {
  return terms.kind == reservation_kind::hold ? cal.hold(id, where, terms.deadline_us)
                                              : cal.book(id, where);
}

}  // namespace

std::string operation_reservation_id(std::string_view owner, std::size_t index) {
  std::string s(owner);
  s += '#';
  s += std::to_string(index);
  return s;
}

void release(calendar_set& cals, const std::vector<chosen_step>& steps) {
  for (const auto& s : steps)
    if (auto it = cals.find(s.resource); it != cals.end()) it->second.release(s.reservation_id);
}

result<std::vector<chosen_step>> place_forward(calendar_set& cals,
                                               const std::vector<operation_plan>& ops,
                                               std::size_t first, timestamp_us from_us,
                                               timestamp_us horizon_us, std::string_view owner,
                                               const reservation_terms& terms) {
  std::vector<chosen_step> chosen;
  auto fail = [&](errc code, std::string why) -> result<std::vector<chosen_step>> {
    release(cals, chosen);
    return status(code, std::move(why));
  };
  timestamp_us from = from_us;
  for (std::size_t k = first; k < ops.size(); ++k) {
    const auto& op = ops[k];
    if (op.units <= 0)
      return fail(errc::invalid_argument, "operation " + std::to_string(k) + " has no units");
    // The candidate on which the operation ends earliest; ties: listed first.
    capacity_calendar* best_cal = nullptr;
    const std::string* best_id = nullptr;
    std::optional<placement> best;
    bool known = false;
    for (const auto& rid : op.candidates) {
      auto it = cals.find(rid);
      if (it == cals.end()) continue;
      known = true;
      auto p = it->second.find_earliest(op.units, from, horizon_us);
      if (p && (!best || p->end_us < best->end_us)) {
        best = std::move(p);
        best_cal = &it->second;
        best_id = &it->first;
      }
    }
    if (!known)
      return fail(errc::invalid_argument,
                  "operation " + std::to_string(k) + ": no calendar for " + candidates_text(op));
    if (!best)
      return fail(errc::overloaded, "operation " + std::to_string(k) + " fits on none of " +
                                        candidates_text(op) + " by the horizon");
    auto id = operation_reservation_id(owner, k);
    if (auto s = reserve(*best_cal, id, *best, terms); !s) return fail(s.code(), s.message());
    from = best->end_us;
    chosen.push_back({*best_id, std::move(id), std::move(*best)});
  }
  return chosen;
}

result<std::vector<chosen_step>> place(calendar_set& cals, const work_plan& plan,
                                       std::string_view owner, const reservation_terms& terms) {
  return place_forward(cals, plan.operations, 0, plan.from_us, plan.horizon_us, owner, terms);
}

std::optional<std::size_t> first_blocked(const calendar_set& cals,
                                         const std::vector<chosen_step>& steps,
                                         timestamp_us now_us) {
  for (std::size_t k = 0; k < steps.size(); ++k) {
    if (steps[k].where.end_us <= now_us) continue;  // done: nothing to move
    auto it = cals.find(steps[k].resource);
    if (it != cals.end() && it->second.blocked(steps[k].where)) return k;
  }
  return std::nullopt;
}

result<replan> replan_blocked(calendar_set& cals, const std::vector<operation_plan>& ops,
                              const std::vector<chosen_step>& steps, timestamp_us now_us,
                              timestamp_us horizon_us, std::string_view owner,
                              const reservation_terms& terms) {
  if (ops.size() != steps.size())
    return status(errc::invalid_argument, "the plan has " + std::to_string(ops.size()) +
                                              " operations, the reservations " +
                                              std::to_string(steps.size()));
  replan out;
  out.steps = steps;
  out.first_moved = steps.size();
  out.end_us = steps.empty() ? 0 : steps.back().where.end_us;
  const auto first = first_blocked(cals, steps, now_us);
  if (!first) return out;
  // What is released, to put back if the new plan does not fit.
  std::vector<calendar_entry> old;
  for (std::size_t k = *first; k < steps.size(); ++k) {
    auto it = cals.find(steps[k].resource);
    const calendar_entry* e = it == cals.end() ? nullptr : it->second.find(steps[k].reservation_id);
    if (!e)
      return status(errc::invalid_argument,
                    "reservation " + steps[k].reservation_id + " is not in its calendar");
    old.push_back(*e);
  }
  for (std::size_t k = *first; k < steps.size(); ++k)
    cals.at(steps[k].resource).release(steps[k].reservation_id);
  std::vector<operation_plan> moved = ops;
  for (std::size_t k = *first; k < steps.size(); ++k) moved[k].units = steps[k].where.units();
  const timestamp_us from =
      std::max(now_us, *first > 0 ? steps[*first - 1].where.end_us : steps.front().where.start_us);
  auto placed = place_forward(cals, moved, *first, from, horizon_us, owner, terms);
  if (!placed) {
    for (std::size_t k = *first; k < steps.size(); ++k) {
      const auto& e = old[k - *first];
      auto& cal = cals.at(steps[k].resource);
      // The units were just freed: putting them back cannot fail.
      (void)(e.kind == reservation_kind::hold
                 ? cal.hold(steps[k].reservation_id, e.where, e.deadline_us)
                 : cal.book(steps[k].reservation_id, e.where));
    }
    return placed.error();
  }
  for (std::size_t k = *first; k < steps.size(); ++k)
    out.steps[k] = std::move((*placed)[k - *first]);
  out.first_moved = *first;
  out.end_us = out.steps.back().where.end_us;
  return out;
}

}  // namespace gearmesh::actors
