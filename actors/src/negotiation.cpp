#include "gearmesh/actors/negotiation.hpp"

#include <algorithm>
#include <utility>

namespace gearmesh::actors {

// --- ranking ----------------------------------------------------------------

bool ranks_before(const proposal_record& a, const proposal_record& b, timestamp_us due_us) {
  const bool a_on_time = a.promised_due_us <= due_us;
  const bool b_on_time = b.promised_due_us <= due_us;
  if (a_on_time != b_on_time) return a_on_time;
  if (a.price_cents != b.price_cents) return a.price_cents < b.price_cents;
  if (a.promised_due_us != b.promised_due_us) return a.promised_due_us < b.promised_due_us;
  if (a.seller != b.seller) return a.seller < b.seller;
  return a.proposal_id < b.proposal_id;
}

std::vector<std::size_t> rank(const order_record& order, timestamp_us now) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < order.proposals.size(); ++i) {
    const auto& p = order.proposals[i];
    if (p.state != proposal_state::received) continue;
    if (now > p.valid_until_us) continue;
    if (order.max_price_cents > 0 && p.price_cents > order.max_price_cents) continue;
    idx.push_back(i);
  }
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return ranks_before(order.proposals[a], order.proposals[b], order.due_us);
  });
  return idx;
}

std::string contract_id_for(std::string_view order_id, std::uint32_t n) {
  std::string s(order_id);
  s += "/c";
  s += std::to_string(n);
  return s;
}

// --- initiator --------------------------------------------------------------

initiator::initiator(order_record order, std::string buyer)
    : order_(std::move(order)), buyer_(std::move(buyer)) {}

void initiator::send_cfps(initiator_step& out) const {
  const auto& o = order_;
  for (const auto& s : o.sellers) {
    wire::cfp c;
    c.order_id = o.order_id;
    c.item = o.item;
    c.quantity = o.quantity;
    c.earliest_start_us = o.earliest_start_us;
    c.due_us = o.due_us;
    c.max_price_cents = o.max_price_cents;
    c.reply_by_us = o.reply_by_us;
    c.currency = o.currency;
    c.attributes = o.attributes;
    out.messages.push_back({s, std::move(c)});
  }
}

initiator initiator::start(order_record order, std::string buyer, initiator_step& out) {
  order.state = order_state::negotiating;
  initiator ini(std::move(order), std::move(buyer));
  out.changed = true;
  ini.send_cfps(out);
  if (ini.order_.sellers.empty()) ini.fail("no sellers for item " + ini.order_.item, out);
  return ini;
}

bool initiator::terminal() const noexcept {
  return order_.state == order_state::contracted || order_.state == order_state::failed ||
         order_.state == order_state::cancelled;
}

std::optional<timestamp_us> initiator::next_deadline() const {
  switch (order_.state) {
    case order_state::negotiating:
      return order_.reply_by_us;
    case order_state::awarded:
      return order_.confirm_deadline_us;
    case order_state::ready:
      return order_.award_by_us;
    default:
      return std::nullopt;
  }
}

bool initiator::invited(std::string_view seller) const {
  return std::find(order_.sellers.begin(), order_.sellers.end(), seller) != order_.sellers.end();
}

bool initiator::all_answered() const {
  for (const auto& s : order_.sellers) {
    bool answered = std::any_of(
        order_.proposals.begin(), order_.proposals.end(),
        [&](const proposal_record& p) { return p.seller == s && p.round == order_.round; });
    if (!answered) return false;
  }
  return true;
}

proposal_record* initiator::find(std::string_view seller, std::string_view proposal_id) {
  for (auto& p : order_.proposals)
    if (p.seller == seller && p.proposal_id == proposal_id && !proposal_id.empty()) return &p;
  return nullptr;
}

contract_record initiator::contract_for(const proposal_record& p, contract_state st) const {
  contract_record c;
  c.contract_id = p.contract_id;
  c.order_id = order_.order_id;
  c.buyer = buyer_;
  c.seller = p.seller;
  c.role = contract_role::buyer;
  c.item = order_.item;
  c.quantity = order_.quantity;
  c.price_cents = p.price_cents;
  c.currency = order_.currency;
  c.promised_start_us = p.promised_start_us;
  c.promised_due_us = p.promised_due_us;
  c.state = st;
  c.proposal_id = p.proposal_id;
  return c;
}

void initiator::reject_remaining(std::string_view reason, initiator_step& out) {
  for (auto& p : order_.proposals) {
    if (p.state != proposal_state::received) continue;
    p.state = proposal_state::rejected;
    p.reason = std::string(reason);
    out.messages.push_back({p.seller, wire::reject{order_.order_id, p.proposal_id, p.reason}});
    out.changed = true;
  }
}

void initiator::fail(std::string reason, initiator_step& out) {
  order_.state = order_state::failed;
  if (order_.round > 0) {
    // Failing a later round: say first why the order was sourced again.
    out.resourced = true;
    order_.reason = order_.reason.empty() ? "sourcing again: " + reason
                                          : order_.reason + "; sourcing again: " + reason;
  } else {
    order_.reason = std::move(reason);
  }
  order_.awarded_proposal_id.clear();
  order_.confirm_deadline_us = 0;
  out.changed = true;
  reject_remaining("order failed", out);
}

void initiator::award_next(timestamp_us now, initiator_step& out) {
  auto ranked = rank(order_, now);
  if (order_.need_by_us > 0)
    std::erase_if(ranked, [&](std::size_t i) {
      return order_.proposals[i].promised_due_us > order_.need_by_us;
    });
  if (ranked.empty()) {
    std::size_t refused = 0, unusable = 0, failed = 0;
    for (const auto& p : order_.proposals) {
      if (p.round != order_.round) continue;
      if (p.state == proposal_state::refused)
        ++refused;
      else if (p.state == proposal_state::failed)
        ++failed;
      else if (p.state == proposal_state::received)
        ++unusable;
    }
    std::size_t silent = 0;
    for (const auto& s : order_.sellers)
      if (std::none_of(
              order_.proposals.begin(), order_.proposals.end(),
              [&](const proposal_record& p) { return p.seller == s && p.round == order_.round; }))
        ++silent;
    fail("no acceptable proposal: " + std::to_string(refused) + " refused, " +
             std::to_string(silent) + " no answer, " + std::to_string(failed) + " failed, " +
             std::to_string(unusable) + " expired or over the price ceiling",
         out);
    return;
  }
  auto& p = order_.proposals[ranked.front()];
  order_.accepts_sent += 1;
  p.state = proposal_state::accepted;
  p.contract_id = contract_id_for(order_.order_id, order_.accepts_sent);
  order_.state = order_state::awarded;
  order_.contract_id = p.contract_id;
  order_.awarded_proposal_id = p.proposal_id;
  order_.confirm_deadline_us = now + order_.confirm_timeout_us;
  out.changed = true;
  out.messages.push_back({p.seller, wire::accept{order_.order_id, p.proposal_id, p.contract_id}});
}

void initiator::decide(timestamp_us now, initiator_step& out) {
  if (order_.state != order_state::negotiating) return;
  if (order_.award_by_us > 0 && !rank(order_, now).empty()) {
    order_.state = order_state::ready;  // the award waits for award()
    out.changed = true;
    return;
  }
  award_next(now, out);
}

const proposal_record* initiator::best(timestamp_us now) const {
  auto ranked = rank(order_, now);
  return ranked.empty() ? nullptr : &order_.proposals[ranked.front()];
}

initiator_step initiator::award(timestamp_us need_by_us, timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  if (order_.state != order_state::ready) return out;
  order_.need_by_us = need_by_us;
  award_next(now, out);
  return out;
}

void initiator::time_passes(timestamp_us now, initiator_step& out) {
  if (order_.state == order_state::negotiating && now >= order_.reply_by_us) decide(now, out);
  if (order_.state == order_state::ready && now >= order_.award_by_us) {
    reject_remaining("not awarded upstream in time", out);
    order_.state = order_state::cancelled;
    order_.reason = "the upstream proposal it backed was not accepted in time";
    out.changed = true;
    return;
  }
  if (order_.state == order_state::awarded && now >= order_.confirm_deadline_us) {
    // Give up on the awarded seller; a Confirm that still arrives is cancelled.
    for (auto& p : order_.proposals) {
      if (p.state != proposal_state::accepted || p.proposal_id != order_.awarded_proposal_id)
        continue;
      p.state = proposal_state::failed;
      p.reason = "no confirm by the deadline";
      out.messages.push_back(
          {p.seller, wire::cancel{order_.order_id, p.contract_id, "no confirm by the deadline"}});
    }
    out.changed = true;
    award_next(now, out);
  }
}

initiator_step initiator::on_time(timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  return out;
}

initiator_step initiator::on_propose(std::string_view seller, const wire::propose& m,
                                     timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  if (m.order_id != order_.order_id) return out;
  if (!invited(seller)) {
    out.messages.push_back(
        {std::string(seller), wire::reject{m.order_id, m.proposal_id, "not invited"}});
    return out;
  }
  for (const auto& p : order_.proposals)
    if (p.seller == seller && p.proposal_id == m.proposal_id) return out;  // duplicate
  proposal_record rec;
  rec.seller = std::string(seller);
  rec.proposal_id = m.proposal_id;
  rec.price_cents = m.price_cents;
  rec.promised_start_us = m.promised_start_us;
  rec.promised_due_us = m.promised_due_us;
  rec.valid_until_us = m.valid_until_us;
  rec.received_us = now;
  rec.round = order_.round;
  const bool answered = std::any_of(
      order_.proposals.begin(), order_.proposals.end(),
      [&](const proposal_record& p) { return p.seller == seller && p.round == order_.round; });
  std::string why;
  if (order_.state != order_state::negotiating)
    why = std::string("late: order already ") + to_string(order_.state);
  else if (answered)
    why = "duplicate proposal";
  if (!why.empty()) {
    rec.state = proposal_state::rejected;
    rec.reason = why;
    out.messages.push_back({rec.seller, wire::reject{m.order_id, m.proposal_id, why}});
    if (order_.proposals.size() < proposals_per_order_max) {
      order_.proposals.push_back(std::move(rec));
      out.changed = true;
    }
    return out;
  }
  rec.state = proposal_state::received;
  order_.proposals.push_back(std::move(rec));
  out.changed = true;
  if (all_answered()) decide(now, out);
  return out;
}

initiator_step initiator::on_refuse(std::string_view seller, const wire::refuse& m,
                                    timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  if (m.order_id != order_.order_id || !invited(seller)) return out;
  if (std::any_of(order_.proposals.begin(), order_.proposals.end(), [&](const proposal_record& p) {
        return p.seller == seller && p.round == order_.round;
      }))
    return out;
  proposal_record rec;
  rec.seller = std::string(seller);
  rec.received_us = now;
  rec.round = order_.round;
  rec.state = proposal_state::refused;
  rec.reason = m.reason;
  order_.proposals.push_back(std::move(rec));
  out.changed = true;
  if (order_.state == order_state::negotiating && all_answered()) decide(now, out);
  return out;
}

initiator_step initiator::on_confirm(std::string_view seller, const wire::confirm& m,
                                     timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  // Every Accept names a contract; a Confirm without one answers none of
  // ours and is ignored (recording it would need a contract id to key on).
  if (m.order_id != order_.order_id || m.contract_id.empty()) return out;
  auto* p = find(seller, m.proposal_id);
  if (!p) return out;
  const bool current = order_.state == order_state::awarded &&
                       order_.awarded_proposal_id == m.proposal_id &&
                       p->state == proposal_state::accepted && p->contract_id == m.contract_id;
  if (order_.state == order_state::contracted && order_.contract_id == m.contract_id &&
      p->contract_id == m.contract_id)
    return out;  // duplicate confirm
  // Terms as the seller confirmed them; recorded as cancelled if we decline.
  auto as_confirmed = [&] {
    proposal_record q = *p;
    q.contract_id = m.contract_id;
    q.price_cents = m.price_cents;
    q.promised_start_us = m.promised_start_us;
    q.promised_due_us = m.promised_due_us;
    auto c = contract_for(q, contract_state::cancelled);
    c.item = m.item;
    c.quantity = m.quantity;
    return c;
  };
  if (!current) {
    out.contracts.push_back(as_confirmed());
    out.messages.push_back(
        {p->seller, wire::cancel{order_.order_id, m.contract_id, "confirm arrived too late"}});
    return out;
  }
  const bool terms_match = m.price_cents == p->price_cents &&
                           m.promised_start_us == p->promised_start_us &&
                           m.promised_due_us == p->promised_due_us &&
                           m.quantity == order_.quantity && m.item == order_.item;
  if (!terms_match) {
    out.contracts.push_back(as_confirmed());
    p->state = proposal_state::failed;
    p->reason = "confirmed terms differ from the proposal";
    out.messages.push_back({p->seller, wire::cancel{order_.order_id, m.contract_id, p->reason}});
    out.changed = true;
    award_next(now, out);
    return out;
  }
  order_.state = order_state::contracted;
  order_.confirm_deadline_us = 0;
  out.changed = true;
  out.resourced = order_.round > 0;
  out.contracts.push_back(contract_for(*p, contract_state::active));
  reject_remaining("another proposal won", out);
  return out;
}

initiator_step initiator::on_failure(std::string_view seller, const wire::failure& m,
                                     timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  if (m.order_id != order_.order_id) return out;
  auto* p = find(seller, m.proposal_id);
  if (!p || order_.state != order_state::awarded || order_.awarded_proposal_id != m.proposal_id ||
      p->state != proposal_state::accepted || p->contract_id != m.contract_id)
    return out;
  p->state = proposal_state::failed;
  p->reason = m.reason.empty() ? "seller failed" : m.reason;
  out.changed = true;
  award_next(now, out);
  return out;
}

initiator_step initiator::cancel(std::string_view reason, timestamp_us now) {
  initiator_step out;
  if (order_.state == order_state::failed || order_.state == order_state::cancelled) return out;
  for (auto& p : order_.proposals) {
    if (p.state != proposal_state::accepted || p.proposal_id != order_.awarded_proposal_id)
      continue;
    out.messages.push_back(
        {p.seller, wire::cancel{order_.order_id, p.contract_id, std::string(reason)}});
    if (order_.state == order_state::contracted)
      out.contracts.push_back(contract_for(p, contract_state::cancelled));
  }
  reject_remaining("order cancelled", out);
  order_.state = order_state::cancelled;
  order_.reason = std::string(reason);
  order_.confirm_deadline_us = 0;
  out.changed = true;
  return out;
}

initiator_step initiator::on_seller_cancel(std::string_view seller, std::string_view contract_id,
                                           std::string_view reason, timestamp_us window_us,
                                           timestamp_us now) {
  initiator_step out;
  time_passes(now, out);
  const bool contracted = order_.state == order_state::contracted;
  const bool awarded = order_.state == order_state::awarded;
  if ((!contracted && !awarded) || order_.contract_id != contract_id) return out;
  auto it =
      std::find_if(order_.proposals.begin(), order_.proposals.end(), [&](const proposal_record& p) {
        return p.contract_id == contract_id && p.seller == seller &&
               p.state == proposal_state::accepted;
      });
  if (it == order_.proposals.end()) return out;
  out.contracts.push_back(contract_for(*it, contract_state::cancelled));
  it->state = proposal_state::failed;
  it->reason = "the seller cancelled the contract: " + std::string(reason);
  out.changed = true;
  if (awarded) {
    // The seller confirmed and cancelled, and its Confirm is still on the
    // way (messages overtake each other): as a Failure, with the contract
    // recorded as cancelled; the Confirm, when it comes, gets a Cancel.
    award_next(now, out);
    return out;
  }
  order_.reason = "seller " + std::string(seller) + " cancelled contract " +
                  std::string(contract_id) + ": " + std::string(reason);
  order_.awarded_proposal_id.clear();
  order_.confirm_deadline_us = 0;
  if (order_.round >= sourcing_rounds_max || order_.sellers.empty() ||
      now + window_us >= order_.due_us) {
    order_.state = order_state::failed;
    order_.reason += order_.round >= sourcing_rounds_max ? "; no sourcing round left"
                     : order_.sellers.empty()            ? "; no sellers to ask again"
                                                         : "; too late to source it again";
    out.resourced = true;
    return out;
  }
  ++order_.round;
  order_.state = order_state::negotiating;
  order_.reply_by_us = now + window_us;
  // A component order awards at once: the upstream contract already exists.
  order_.award_by_us = 0;
  order_.need_by_us = 0;
  send_cfps(out);
  return out;
}

// --- participant ------------------------------------------------------------

accept_decision decide_accept(const offer_record* o, bool tombstoned, std::string_view sender,
                              const wire::accept& a, timestamp_us now) {
  if (!o) return {accept_verdict::fail, "unknown proposal"};
  if (o->buyer != sender || o->order_id != a.order_id)
    return {accept_verdict::fail, "proposal belongs to another order"};
  if (o->state == offer_state::contracted) {
    if (o->contract_id == a.contract_id) return {accept_verdict::resend_confirm, {}};
    return {accept_verdict::fail, "proposal already contracted as " + o->contract_id};
  }
  if (tombstoned) return {accept_verdict::fail, "contract was cancelled"};
  if (a.contract_id.empty()) return {accept_verdict::fail, "accept without a contract id"};
  switch (o->state) {
    case offer_state::held:
      return {now <= o->valid_until_us ? accept_verdict::confirm : accept_verdict::replace, {}};
    case offer_state::rejected:
      return {accept_verdict::fail, "proposal was rejected"};
    case offer_state::cancelled:
      return {accept_verdict::fail, "proposal was cancelled"};
    case offer_state::failed:
      return {accept_verdict::fail, o->reason.empty() ? "proposal failed" : o->reason};
    case offer_state::contracted:
      break;
  }
  return {accept_verdict::fail, "proposal not available"};
}

wire::confirm confirm_for(const offer_record& o) {
  wire::confirm c;
  c.order_id = o.order_id;
  c.proposal_id = o.proposal_id;
  c.contract_id = o.contract_id;
  c.price_cents = o.price_cents;
  c.promised_start_us = o.promised_start_us;
  c.promised_due_us = o.promised_due_us;
  c.quantity = o.quantity;
  c.item = o.item;
  return c;
}

contract_record seller_contract(const offer_record& o, std::string_view seller) {
  contract_record c;
  c.contract_id = o.contract_id;
  c.order_id = o.order_id;
  c.buyer = o.buyer;
  c.seller = std::string(seller);
  c.role = contract_role::seller;
  c.item = o.item;
  c.quantity = o.quantity;
  c.price_cents = o.price_cents;
  c.currency = o.currency;
  c.promised_start_us = o.promised_start_us;
  c.promised_due_us = o.promised_due_us;
  c.state = o.state == offer_state::cancelled ? contract_state::cancelled : contract_state::active;
  c.proposal_id = o.proposal_id;
  return c;
}

}  // namespace gearmesh::actors
