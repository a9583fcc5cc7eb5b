#include "gearmesh/actors/negotiation.hpp"

#include <gtest/gtest.h>

namespace gearmesh::actors {
namespace {

constexpr timestamp_us t0 = 1'700'000'000 * us_per_s;
constexpr timestamp_us ms = us_per_ms;

order_record make_order(std::vector<std::string> sellers) {
  order_record o;
  o.order_id = "velo/order/1";
  o.item = "FRAME";
  o.quantity = 5;
  o.earliest_start_us = t0;
  o.due_us = t0 + 10 * us_per_day;
  o.max_price_cents = 100'000;
  o.currency = "EUR";
  o.attributes = {{"colour", "red"}};
  o.created_us = t0;
  o.reply_by_us = t0 + 800 * ms;
  o.confirm_timeout_us = 2000 * ms;
  o.sellers = std::move(sellers);
  return o;
}

wire::propose proposal(std::string id, std::int64_t price, timestamp_us due,
                       timestamp_us valid_until = t0 + 5 * us_per_s) {
  return {"velo/order/1", std::move(id), price, t0, due, valid_until};
}

template <class T>
std::vector<std::pair<std::string, T>> sent(const initiator_step& s) {
  std::vector<std::pair<std::string, T>> out;
  for (const auto& m : s.messages)
    if (const auto* v = std::get_if<T>(&m.payload)) out.emplace_back(m.receiver, *v);
  return out;
}

wire::confirm confirm_of(const initiator& ini, std::string_view proposal_id) {
  for (const auto& p : ini.order().proposals) {
    if (p.proposal_id != proposal_id) continue;
    return {ini.order().order_id, p.proposal_id,     p.contract_id,        p.price_cents,
            p.promised_start_us,  p.promised_due_us, ini.order().quantity, ini.order().item};
  }
  return {};
}

const proposal_record& entry(const initiator& ini, std::string_view seller) {
  for (const auto& p : ini.order().proposals)
    if (p.seller == seller) return p;
  throw std::runtime_error("no entry");
}

TEST(negotiation, start_sends_one_cfp_per_seller) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  EXPECT_TRUE(s.changed);
  auto cfps = sent<wire::cfp>(s);
  ASSERT_EQ(cfps.size(), 2u);
  EXPECT_EQ(cfps[0].first, "a");
  EXPECT_EQ(cfps[1].first, "b");
  EXPECT_EQ(cfps[0].second.reply_by_us, t0 + 800 * ms);
  EXPECT_EQ(cfps[0].second.attributes, (std::vector<wire::attribute>{{"colour", "red"}}));
  EXPECT_EQ(cfps[0].second.currency, "EUR");
  EXPECT_EQ(ini.order().state, order_state::negotiating);
  EXPECT_EQ(ini.next_deadline(), t0 + 800 * ms);
}

TEST(negotiation, no_sellers_fails_at_once) {
  initiator_step s;
  auto ini = initiator::start(make_order({}), "velo", s);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_FALSE(ini.order().reason.empty());
}

TEST(negotiation, ranking_rule) {
  auto o = make_order({"a", "b", "c", "d", "e", "f", "g"});
  auto add = [&](std::string seller, std::string id, std::int64_t price, timestamp_us due,
                 timestamp_us valid) {
    proposal_record p;
    p.seller = std::move(seller);
    p.proposal_id = std::move(id);
    p.price_cents = price;
    p.promised_due_us = due;
    p.valid_until_us = valid;
    o.proposals.push_back(p);
  };
  const auto ok_due = o.due_us - us_per_day, late = o.due_us + 1, valid = t0 + us_per_s;
  add("a", "a1", 50'000, late, valid);        // late: after every on-time one
  add("b", "b1", 80'000, ok_due, valid);      // on time, expensive
  add("c", "c1", 60'000, ok_due, valid);      // on time, cheap
  add("d", "d1", 60'000, ok_due - 1, valid);  // same price, earlier due -> before c
  add("e", "e1", 10'000, ok_due, t0 - 1);     // expired
  add("f", "f1", 100'001, ok_due, valid);     // over the ceiling
  add("g", "g1", 60'000, ok_due, valid);      // ties with c: seller id decides
  auto r = rank(o, t0);
  std::vector<std::string> order;
  for (auto i : r) order.push_back(o.proposals[i].seller);
  EXPECT_EQ(order, (std::vector<std::string>{"d", "c", "g", "b", "a"}));
  // Without a ceiling the expensive one takes part; refused/rejected never do.
  o.max_price_cents = 0;
  o.proposals[1].state = proposal_state::rejected;
  order.clear();
  for (auto i : rank(o, t0)) order.push_back(o.proposals[i].seller);
  EXPECT_EQ(order, (std::vector<std::string>{"d", "c", "g", "f", "a"}));
}

TEST(negotiation, decides_when_all_answered_then_contracts_and_rejects_others) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b", "c"}), "velo", s);
  const auto due = t0 + us_per_day;
  s = ini.on_propose("a", proposal("a/p/1", 70'000, due), t0 + 10 * ms);
  EXPECT_TRUE(s.messages.empty());
  s = ini.on_refuse("b", {"velo/order/1", "no capacity"}, t0 + 20 * ms);
  EXPECT_TRUE(s.messages.empty());
  EXPECT_EQ(ini.order().state, order_state::negotiating);
  s = ini.on_propose("c", proposal("c/p/1", 60'000, due), t0 + 30 * ms);
  // All three answered: c is cheaper and wins.
  auto accepts = sent<wire::accept>(s);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "c");
  EXPECT_EQ(accepts[0].second.contract_id, "velo/order/1/c1");
  EXPECT_EQ(ini.order().state, order_state::awarded);
  EXPECT_EQ(ini.next_deadline(), t0 + 30 * ms + 2000 * ms);
  EXPECT_EQ(entry(ini, "b").state, proposal_state::refused);
  EXPECT_EQ(entry(ini, "b").reason, "no capacity");

  s = ini.on_confirm("c", confirm_of(ini, "c/p/1"), t0 + 40 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  ASSERT_EQ(s.contracts.size(), 1u);
  const auto& c = s.contracts[0];
  EXPECT_EQ(c.contract_id, "velo/order/1/c1");
  EXPECT_EQ(c.buyer, "velo");
  EXPECT_EQ(c.seller, "c");
  EXPECT_EQ(c.role, contract_role::buyer);
  EXPECT_EQ(c.price_cents, 60'000);
  EXPECT_EQ(c.currency, "EUR");
  EXPECT_EQ(c.state, contract_state::active);
  auto rejects = sent<wire::reject>(s);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].first, "a");
  EXPECT_EQ(entry(ini, "a").state, proposal_state::rejected);
  EXPECT_EQ(entry(ini, "c").state, proposal_state::accepted);
  EXPECT_TRUE(ini.terminal());
  EXPECT_FALSE(ini.next_deadline());
  // A duplicate confirm changes nothing.
  s = ini.on_confirm("c", confirm_of(ini, "c/p/1"), t0 + 50 * ms);
  EXPECT_FALSE(s.changed);
  EXPECT_TRUE(s.messages.empty());
  EXPECT_TRUE(s.contracts.empty());
}

TEST(negotiation, decides_at_reply_by_without_all_answers) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "silent"}), "velo", s);
  s = ini.on_propose("a", proposal("a/p/1", 70'000, t0 + us_per_day), t0 + 10 * ms);
  EXPECT_EQ(ini.order().state, order_state::negotiating);
  s = ini.on_time(t0 + 799 * ms);
  EXPECT_FALSE(s.changed);
  s = ini.on_time(t0 + 800 * ms);
  ASSERT_EQ(sent<wire::accept>(s).size(), 1u);
  EXPECT_EQ(ini.order().state, order_state::awarded);
}

TEST(negotiation, late_proposal_is_rejected) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  s = ini.on_propose("a", proposal("a/p/1", 70'000, t0 + us_per_day), t0 + 10 * ms);
  // b answers after reply_by, before the timer fired: the deadline applies first.
  s = ini.on_propose("b", proposal("b/p/1", 10'000, t0 + us_per_day), t0 + 900 * ms);
  auto accepts = sent<wire::accept>(s);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "a");
  auto rejects = sent<wire::reject>(s);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].first, "b");
  EXPECT_EQ(rejects[0].second.proposal_id, "b/p/1");
  EXPECT_EQ(entry(ini, "b").state, proposal_state::rejected);
  EXPECT_NE(entry(ini, "b").reason.find("late"), std::string::npos);
}

TEST(negotiation, duplicate_proposal_is_ignored_and_second_offer_rejected) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  s = ini.on_propose("a", proposal("a/p/1", 70'000, t0 + us_per_day), t0 + 10 * ms);
  EXPECT_TRUE(s.changed);
  s = ini.on_propose("a", proposal("a/p/1", 70'000, t0 + us_per_day), t0 + 20 * ms);
  EXPECT_FALSE(s.changed);
  EXPECT_TRUE(s.messages.empty());
  EXPECT_EQ(ini.order().proposals.size(), 1u);
  s = ini.on_propose("a", proposal("a/p/2", 60'000, t0 + us_per_day), t0 + 30 * ms);
  auto rejects = sent<wire::reject>(s);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].second.reason, "duplicate proposal");
  EXPECT_EQ(ini.order().state, order_state::negotiating);  // b has not answered
  // Uninvited sellers are rejected and not recorded.
  s = ini.on_propose("x", proposal("x/p/1", 1, t0 + us_per_day), t0 + 40 * ms);
  ASSERT_EQ(sent<wire::reject>(s).size(), 1u);
  EXPECT_FALSE(s.changed);
}

TEST(negotiation, all_refuse_fails_with_reason) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  s = ini.on_refuse("a", {"velo/order/1", "unknown item"}, t0 + 10 * ms);
  s = ini.on_refuse("b", {"velo/order/1", "no capacity"}, t0 + 20 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_NE(ini.order().reason.find("2 refused"), std::string::npos) << ini.order().reason;
  EXPECT_TRUE(ini.terminal());
  EXPECT_TRUE(s.messages.empty());
}

TEST(negotiation, no_answers_fail_at_reply_by) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a"}), "velo", s);
  s = ini.on_time(t0 + 800 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_NE(ini.order().reason.find("1 no answer"), std::string::npos) << ini.order().reason;
}

TEST(negotiation, expired_and_overpriced_proposals_are_discarded) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  s = ini.on_propose("a", proposal("a/p/1", 1, t0 + us_per_day, t0 + 100 * ms), t0 + 10 * ms);
  s = ini.on_propose("b", proposal("b/p/1", 100'001, t0 + us_per_day), t0 + 20 * ms);
  // Both answered at 20 ms: a is valid and cheapest.
  ASSERT_EQ(sent<wire::accept>(s).size(), 1u);
  EXPECT_EQ(sent<wire::accept>(s)[0].first, "a");
  // a fails; b is over the ceiling: the order fails and b is rejected.
  s = ini.on_failure("a", {"velo/order/1", "a/p/1", "velo/order/1/c1", "machine broke"},
                     t0 + 30 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_EQ(entry(ini, "a").state, proposal_state::failed);
  EXPECT_EQ(entry(ini, "a").reason, "machine broke");
  ASSERT_EQ(sent<wire::reject>(s).size(), 1u);
  EXPECT_EQ(sent<wire::reject>(s)[0].first, "b");
}

TEST(negotiation, failure_falls_back_to_next_best) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b", "c"}), "velo", s);
  const auto due = t0 + us_per_day;
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, due), t0 + 1 * ms);
  (void)ini.on_propose("b", proposal("b/p/1", 60'000, due), t0 + 2 * ms);
  s = ini.on_propose("c", proposal("c/p/1", 70'000, due), t0 + 3 * ms);
  ASSERT_EQ(sent<wire::accept>(s)[0].first, "a");
  // A failure naming another contract is ignored.
  s = ini.on_failure("a", {"velo/order/1", "a/p/1", "velo/order/1/c9", "x"}, t0 + 4 * ms);
  EXPECT_FALSE(s.changed);
  s = ini.on_failure("a", {"velo/order/1", "a/p/1", "velo/order/1/c1", "hold expired"},
                     t0 + 5 * ms);
  auto accepts = sent<wire::accept>(s);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "b");
  EXPECT_EQ(accepts[0].second.contract_id, "velo/order/1/c2");
  EXPECT_EQ(ini.order().contract_id, "velo/order/1/c2");
  s = ini.on_confirm("b", confirm_of(ini, "b/p/1"), t0 + 6 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  ASSERT_EQ(sent<wire::reject>(s).size(), 1u);
  EXPECT_EQ(sent<wire::reject>(s)[0].first, "c");
}

TEST(negotiation, confirm_timeout_cancels_and_falls_back) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, due), t0 + 1 * ms);
  s = ini.on_propose("b", proposal("b/p/1", 60'000, due), t0 + 2 * ms);
  ASSERT_EQ(sent<wire::accept>(s)[0].first, "a");
  EXPECT_EQ(ini.next_deadline(), t0 + 2002 * ms);
  s = ini.on_time(t0 + 2001 * ms);
  EXPECT_FALSE(s.changed);
  auto stale = confirm_of(ini, "a/p/1");
  s = ini.on_time(t0 + 2002 * ms);
  auto cancels = sent<wire::cancel>(s);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].first, "a");
  EXPECT_EQ(cancels[0].second.contract_id, "velo/order/1/c1");
  ASSERT_EQ(sent<wire::accept>(s).size(), 1u);
  EXPECT_EQ(sent<wire::accept>(s)[0].first, "b");
  EXPECT_EQ(entry(ini, "a").state, proposal_state::failed);
  // a's confirm arrives after all: the contract is recorded cancelled and cancelled again.
  s = ini.on_confirm("a", stale, t0 + 2100 * ms);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  EXPECT_EQ(s.contracts[0].contract_id, "velo/order/1/c1");
  ASSERT_EQ(sent<wire::cancel>(s).size(), 1u);
  EXPECT_EQ(ini.order().state, order_state::awarded);
  s = ini.on_confirm("b", confirm_of(ini, "b/p/1"), t0 + 2200 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  EXPECT_EQ(s.contracts.at(0).seller, "b");
}

TEST(negotiation, expired_fallback_is_skipped) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, due), t0 + 1 * ms);
  s = ini.on_propose("b", proposal("b/p/1", 60'000, due, t0 + 1000 * ms), t0 + 2 * ms);
  s = ini.on_time(t0 + 2002 * ms);  // a timed out; b expired at 1000 ms
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_EQ(sent<wire::cancel>(s).size(), 1u);
  EXPECT_EQ(sent<wire::reject>(s).size(), 1u);  // b's hold is released too
}

TEST(negotiation, confirm_with_other_terms_is_cancelled) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, due), t0 + 1 * ms);
  s = ini.on_propose("b", proposal("b/p/1", 60'000, due), t0 + 2 * ms);
  auto c = confirm_of(ini, "a/p/1");
  c.price_cents += 1;
  s = ini.on_confirm("a", c, t0 + 3 * ms);
  EXPECT_EQ(sent<wire::cancel>(s).size(), 1u);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  EXPECT_EQ(s.contracts[0].price_cents, 50'001);
  EXPECT_EQ(sent<wire::accept>(s).at(0).first, "b");
}

TEST(negotiation, cancel_releases_everything) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, due), t0 + 1 * ms);
  s = ini.on_propose("b", proposal("b/p/1", 60'000, due), t0 + 2 * ms);
  (void)ini.on_confirm("a", confirm_of(ini, "a/p/1"), t0 + 3 * ms);
  ASSERT_EQ(ini.order().state, order_state::contracted);
  s = ini.cancel("customer withdrew", t0 + 4 * ms);
  EXPECT_EQ(ini.order().state, order_state::cancelled);
  ASSERT_EQ(sent<wire::cancel>(s).size(), 1u);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  s = ini.cancel("again", t0 + 5 * ms);
  EXPECT_FALSE(s.changed);
}

TEST(negotiation, restored_initiator_continues) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  (void)ini.on_propose("a", proposal("a/p/1", 50'000, t0 + us_per_day), t0 + 1 * ms);
  initiator again(ini.order(), "velo");
  s = again.on_time(t0 + 800 * ms);
  EXPECT_EQ(sent<wire::accept>(s).at(0).first, "a");
}

TEST(participant, accept_decisions) {
  offer_record o;
  o.proposal_id = "f/proposal/1";
  o.order_id = "velo/order/1";
  o.buyer = "velo";
  o.valid_until_us = t0 + 100;
  wire::accept a{"velo/order/1", "f/proposal/1", "velo/order/1/c1"};
  EXPECT_EQ(decide_accept(nullptr, false, "velo", a, t0).verdict, accept_verdict::fail);
  EXPECT_EQ(decide_accept(&o, false, "velo", a, t0 + 100).verdict, accept_verdict::confirm);
  EXPECT_EQ(decide_accept(&o, false, "velo", a, t0 + 101).verdict, accept_verdict::replace);
  EXPECT_EQ(decide_accept(&o, false, "mallory", a, t0).verdict, accept_verdict::fail);
  EXPECT_EQ(decide_accept(&o, true, "velo", a, t0).verdict, accept_verdict::fail);
  o.state = offer_state::rejected;
  EXPECT_EQ(decide_accept(&o, false, "velo", a, t0).verdict, accept_verdict::fail);
  o.state = offer_state::contracted;
  o.contract_id = "velo/order/1/c1";
  EXPECT_EQ(decide_accept(&o, false, "velo", a, t0 + 999).verdict, accept_verdict::resend_confirm);
  a.contract_id = "velo/order/1/c2";
  EXPECT_EQ(decide_accept(&o, false, "velo", a, t0).verdict, accept_verdict::fail);
}

TEST(participant, hold_validity_and_contract_terms) {
  offer_record o;
  o.proposal_id = "f/proposal/1";
  o.order_id = "velo/order/1";
  o.buyer = "velo";
  o.item = "FRAME";
  o.quantity = 5;
  o.currency = "EUR";
  o.price_cents = 123;
  o.promised_start_us = t0;
  o.promised_due_us = t0 + 9;
  o.valid_until_us = hold_deadline(t0, 5 * us_per_s);
  EXPECT_EQ(o.valid_until_us, t0 + 5 * us_per_s);
  EXPECT_TRUE(hold_valid(o, t0 + 5 * us_per_s));
  EXPECT_FALSE(hold_valid(o, t0 + 5 * us_per_s + 1));
  o.state = offer_state::contracted;
  o.contract_id = "velo/order/1/c1";
  EXPECT_FALSE(hold_valid(o, t0));
  auto c = confirm_for(o);
  EXPECT_EQ(c.contract_id, "velo/order/1/c1");
  EXPECT_EQ(c.price_cents, 123);
  EXPECT_EQ(c.item, "FRAME");
  auto sc = seller_contract(o, "framecraft");
  EXPECT_EQ(sc.role, contract_role::seller);
  EXPECT_EQ(sc.seller, "framecraft");
  // The buyer's contract built from the same confirm has the same terms.
  initiator_step s;
  auto order = make_order({"framecraft"});
  order.quantity = 5;
  auto ini = initiator::start(order, "velo", s);
  (void)ini.on_propose("framecraft",
                       {"velo/order/1", "f/proposal/1", 123, t0, t0 + 9, t0 + us_per_s}, t0 + 1);
  s = ini.on_confirm("framecraft", c, t0 + 2);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_TRUE(s.contracts[0].same_terms(sc)) << s.contracts[0].contract_id;
}

// --- component orders (nested negotiation) -----------------------------------

order_record component_order(std::vector<std::string> sellers) {
  auto o = make_order(std::move(sellers));
  o.parent_buyer = "velo";
  o.parent_order_id = "dealer/order/7";
  o.award_by_us = t0 + 6 * us_per_s;
  return o;
}

TEST(negotiation, component_order_waits_ready_for_the_award) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a", "b"}), "framecraft", s);
  ini.on_propose("a", proposal("a/p1", 900, t0 + 3 * us_per_day), t0 + 10 * ms);
  auto step = ini.on_propose("b", proposal("b/p1", 800, t0 + 4 * us_per_day), t0 + 20 * ms);
  // All answered: decided, but nothing accepted yet.
  EXPECT_EQ(ini.order().state, order_state::ready);
  EXPECT_TRUE(step.changed);
  EXPECT_TRUE(sent<wire::accept>(step).empty());
  EXPECT_TRUE(sent<wire::reject>(step).empty());
  EXPECT_EQ(ini.next_deadline(), t0 + 6 * us_per_s);
  ASSERT_NE(ini.best(t0 + 30 * ms), nullptr);
  EXPECT_EQ(ini.best(t0 + 30 * ms)->seller, "b");
  EXPECT_FALSE(ini.terminal());
  // A late proposal is rejected as for any decided order.
  auto late = ini.on_propose("a", proposal("a/p2", 100, t0 + us_per_day), t0 + 40 * ms);
  EXPECT_EQ(sent<wire::reject>(late).size(), 1u);

  auto award = ini.award(t0 + 5 * us_per_day, t0 + 50 * ms);
  EXPECT_EQ(ini.order().state, order_state::awarded);
  auto accepts = sent<wire::accept>(award);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "b");
  auto done = ini.on_confirm("b", confirm_of(ini, "b/p1"), t0 + 60 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  ASSERT_EQ(done.contracts.size(), 1u);
  EXPECT_EQ(done.contracts[0].seller, "b");
  // The loser's hold is released once the contract stands.
  auto rejects = sent<wire::reject>(done);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].first, "a");
}

TEST(negotiation, component_award_skips_proposals_later_than_needed) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a", "b"}), "framecraft", s);
  ini.on_propose("a", proposal("a/p1", 900, t0 + 3 * us_per_day), t0 + 10 * ms);
  ini.on_propose("b", proposal("b/p1", 800, t0 + 4 * us_per_day), t0 + 20 * ms);
  // The upstream proposal was planned on delivery within 3 days: only "a" fits.
  auto award = ini.award(t0 + 3 * us_per_day, t0 + 50 * ms);
  auto accepts = sent<wire::accept>(award);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "a");
  // "a" fails: "b" is too late, so the order fails instead of breaking the promise.
  auto f =
      ini.on_failure("a", {"velo/order/1", "a/p1", ini.order().contract_id, "gone"}, t0 + 60 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_EQ(sent<wire::reject>(f).size(), 1u);
}

TEST(negotiation, component_order_not_awarded_in_time_is_cancelled) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a"}), "framecraft", s);
  ini.on_propose("a", proposal("a/p1", 900, t0 + 3 * us_per_day), t0 + 10 * ms);
  ASSERT_EQ(ini.order().state, order_state::ready);
  EXPECT_TRUE(ini.on_time(t0 + 5 * us_per_s).messages.empty());
  auto step = ini.on_time(t0 + 6 * us_per_s);
  EXPECT_EQ(ini.order().state, order_state::cancelled);
  EXPECT_TRUE(ini.terminal());
  auto rejects = sent<wire::reject>(step);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].second.proposal_id, "a/p1");
  // An award after that changes nothing.
  EXPECT_TRUE(ini.award(t0 + 9 * us_per_day, t0 + 7 * us_per_s).messages.empty());
  EXPECT_EQ(ini.order().state, order_state::cancelled);
}

TEST(negotiation, component_order_without_proposals_fails_at_the_decision) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a"}), "framecraft", s);
  ini.on_refuse("a", {"velo/order/1", "no stock"}, t0 + 10 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_EQ(ini.best(t0 + 20 * ms), nullptr);
}

TEST(negotiation, withdrawn_ready_order_rejects_its_proposals) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a", "b"}), "framecraft", s);
  ini.on_propose("a", proposal("a/p1", 900, t0 + 3 * us_per_day), t0 + 10 * ms);
  ini.on_propose("b", proposal("b/p1", 800, t0 + 4 * us_per_day), t0 + 20 * ms);
  auto step = ini.cancel("upstream rejected", t0 + 30 * ms);
  EXPECT_EQ(ini.order().state, order_state::cancelled);
  EXPECT_EQ(sent<wire::reject>(step).size(), 2u);
  EXPECT_TRUE(sent<wire::cancel>(step).empty());
}

// --- re-sourcing after a seller cancelled ------------------------------------

/// An order contracted with `a` (cheaper), `b` the loser.
initiator contracted_with_a(initiator_step& s) {
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  ini.on_propose("a", proposal("a/p/1", 60'000, due), t0 + 10 * ms);
  ini.on_propose("b", proposal("b/p/1", 70'000, due), t0 + 20 * ms);
  s = ini.on_confirm("a", confirm_of(ini, "a/p/1"), t0 + 30 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  return ini;
}

TEST(negotiation, a_seller_cancellation_sources_the_order_again) {
  initiator_step s;
  auto ini = contracted_with_a(s);
  const auto now = t0 + us_per_hour;
  // Not this contract, or not its seller: nothing happens.
  EXPECT_FALSE(ini.on_seller_cancel("a", "velo/order/1/c9", "x", 800 * ms, now).changed);
  EXPECT_FALSE(ini.on_seller_cancel("b", "velo/order/1/c1", "x", 800 * ms, now).changed);
  s = ini.on_seller_cancel("a", "velo/order/1/c1", "weld1 broke down", 800 * ms, now);
  EXPECT_TRUE(s.changed);
  EXPECT_FALSE(s.resourced);
  // The contract is kept as cancelled with its terms, at the buyer too.
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].contract_id, "velo/order/1/c1");
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  EXPECT_EQ(s.contracts[0].price_cents, 60'000);
  EXPECT_EQ(entry(ini, "a").state, proposal_state::failed);
  // A new round: CFPs to every seller, negotiating again.
  EXPECT_EQ(ini.order().state, order_state::negotiating);
  EXPECT_EQ(ini.order().round, 1u);
  EXPECT_EQ(ini.order().reason, "seller a cancelled contract velo/order/1/c1: weld1 broke down");
  auto cfps = sent<wire::cfp>(s);
  ASSERT_EQ(cfps.size(), 2u);
  EXPECT_EQ(cfps[0].second.reply_by_us, now + 800 * ms);
  EXPECT_EQ(cfps[0].second.order_id, "velo/order/1");
  EXPECT_EQ(ini.next_deadline(), now + 800 * ms);
  // A second cancellation event changes nothing.
  EXPECT_FALSE(ini.on_seller_cancel("a", "velo/order/1/c1", "again", 800 * ms, now).changed);

  // The round's answers count on their own: b answers again (a new
  // proposal id), a refuses; b wins under a new contract id.
  const auto due = t0 + us_per_day;
  s = ini.on_propose("b", proposal("b/p/2", 71'000, due, now + 5 * us_per_s), now + 10 * ms);
  EXPECT_TRUE(sent<wire::reject>(s).empty());  // not a duplicate of round 0
  s = ini.on_refuse("a", {"velo/order/1", "weld1 is down"}, now + 20 * ms);
  auto accepts = sent<wire::accept>(s);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "b");
  EXPECT_EQ(accepts[0].second.contract_id, "velo/order/1/c2");
  s = ini.on_confirm("b", confirm_of(ini, "b/p/2"), now + 30 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
  EXPECT_TRUE(s.resourced);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].contract_id, "velo/order/1/c2");
  EXPECT_EQ(s.contracts[0].state, contract_state::active);
}

TEST(negotiation, a_cancelled_order_that_cannot_be_sourced_again_fails_with_both_reasons) {
  initiator_step s;
  auto ini = contracted_with_a(s);
  const auto now = t0 + us_per_hour;
  ini.on_seller_cancel("a", "velo/order/1/c1", "weld1 broke down", 800 * ms, now);
  ini.on_refuse("a", {"velo/order/1", "weld1 is down"}, now + 10 * ms);
  s = ini.on_refuse("b", {"velo/order/1", "no capacity"}, now + 20 * ms);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_TRUE(s.resourced);
  EXPECT_EQ(ini.order().reason,
            "seller a cancelled contract velo/order/1/c1: weld1 broke down; sourcing again: no "
            "acceptable proposal: 2 refused, 0 no answer, 0 failed, 0 expired or over the price "
            "ceiling");
}

TEST(negotiation, no_time_or_no_round_left_fails_at_once) {
  initiator_step s;
  auto ini = contracted_with_a(s);
  // The due date (t0 + 10 days) is within the proposal window: too late.
  s = ini.on_seller_cancel("a", "velo/order/1/c1", "fire", us_per_day, t0 + 9 * us_per_day + 1);
  EXPECT_EQ(ini.order().state, order_state::failed);
  EXPECT_TRUE(s.resourced);
  EXPECT_TRUE(sent<wire::cfp>(s).empty());
  EXPECT_EQ(s.contracts.size(), 1u);
  EXPECT_NE(ini.order().reason.find("too late to source it again"), std::string::npos);

  auto o = make_order({"a"});
  o.state = order_state::contracted;
  o.round = sourcing_rounds_max;
  o.contract_id = "velo/order/1/c4";
  proposal_record p;
  p.seller = "a";
  p.proposal_id = "a/p/4";
  p.state = proposal_state::accepted;
  p.contract_id = "velo/order/1/c4";
  p.round = sourcing_rounds_max;
  o.proposals = {p};
  initiator last(o, "velo");
  s = last.on_seller_cancel("a", "velo/order/1/c4", "fire", 800 * ms, t0 + us_per_hour);
  EXPECT_EQ(last.order().state, order_state::failed);
  EXPECT_NE(last.order().reason.find("no sourcing round left"), std::string::npos);
}

TEST(negotiation, a_cancellation_that_overtakes_the_confirm_falls_back_to_the_next_best) {
  initiator_step s;
  auto ini = initiator::start(make_order({"a", "b"}), "velo", s);
  const auto due = t0 + us_per_day;
  ini.on_propose("a", proposal("a/p/1", 60'000, due), t0 + 10 * ms);
  ini.on_propose("b", proposal("b/p/1", 70'000, due), t0 + 20 * ms);
  ASSERT_EQ(ini.order().state, order_state::awarded);
  const auto c1 = ini.order().contract_id;
  const auto confirm = confirm_of(ini, "a/p/1");
  // a confirmed, broke down and cancelled; its Cancelled event comes first.
  s = ini.on_seller_cancel("a", c1, "saw1 broke down", 800 * ms, t0 + 30 * ms);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].contract_id, c1);
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  auto accepts = sent<wire::accept>(s);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0].first, "b");
  EXPECT_EQ(ini.order().state, order_state::awarded);
  EXPECT_EQ(ini.order().round, 0u);
  // The Confirm arrives late: cancelled again at this end, and a Cancel.
  s = ini.on_confirm("a", confirm, t0 + 40 * ms);
  ASSERT_EQ(s.contracts.size(), 1u);
  EXPECT_EQ(s.contracts[0].state, contract_state::cancelled);
  EXPECT_EQ(sent<wire::cancel>(s).size(), 1u);
  s = ini.on_confirm("b", confirm_of(ini, "b/p/1"), t0 + 50 * ms);
  EXPECT_EQ(ini.order().state, order_state::contracted);
}

TEST(negotiation, a_component_order_sourced_again_awards_at_once) {
  initiator_step s;
  auto ini = initiator::start(component_order({"a", "b"}), "framecraft", s);
  ini.on_propose("a", proposal("a/p1", 900, t0 + 3 * us_per_day), t0 + 10 * ms);
  ini.on_propose("b", proposal("b/p1", 800, t0 + 4 * us_per_day), t0 + 20 * ms);
  ini.award(t0 + 5 * us_per_day, t0 + 30 * ms);
  ini.on_confirm("b", confirm_of(ini, "b/p1"), t0 + 40 * ms);
  ASSERT_EQ(ini.order().state, order_state::contracted);
  s = ini.on_seller_cancel("b", ini.order().contract_id, "furnace", 400 * ms, t0 + us_per_hour);
  EXPECT_EQ(ini.order().state, order_state::negotiating);
  EXPECT_EQ(ini.order().award_by_us, 0);
  // Only a later proposal: still awarded (the delay travels upward).
  const auto later = t0 + 8 * us_per_day;
  ini.on_propose("a", proposal("a/p2", 900, later, t0 + 2 * us_per_hour), t0 + us_per_hour + 1);
  s = ini.on_refuse("b", {"velo/order/1", "furnace"}, t0 + us_per_hour + 2);
  EXPECT_EQ(ini.order().state, order_state::awarded);
  ASSERT_EQ(sent<wire::accept>(s).size(), 1u);
}

}  // namespace
}  // namespace gearmesh::actors
