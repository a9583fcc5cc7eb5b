// Contract-net negotiation as pure state machines (docs/protocol.md).
//
// No CAF, no I/O, no clock: every step takes the current time and returns what
// changed and the messages to send, as values. The actors persist the result
// and the messages in one commit (node_context::commit).
//
// Initiator (buyer side, one per order), states of order_record::state:
//
//   negotiating --(all asked sellers answered, or now >= reply_by)--> awarded | failed
//   awarded --(Confirm for the awarded proposal, terms as proposed)--> contracted
//   awarded --(Failure, or no Confirm by confirm_deadline)--> awarded (next best) | failed
//   negotiating | awarded --cancel()--> cancelled;  contracted --cancel()--> cancelled
//   contracted --on_seller_cancel()--> negotiating (a new sourcing round) | failed
//
// Re-sourcing (docs/protocol.md 6.8): when the seller of the contract ends
// it (a ProductionEvent of kind Cancelled), the contract is recorded as
// cancelled with its terms and the order is sourced again: round + 1, new
// CFPs to every seller, reply_by = now + window. A component order then
// awards at once (no `ready` state, no need_by limit: a later delivery
// reaches the upstream buyer as a delay). No round left
// (sourcing_rounds_max) or no time left before the due date: failed.
// Within a round, "answered" and "duplicate proposal" only count that
// round's proposals.
//
// A component order (award_by_us > 0, nested negotiation: a factory buying
// what its own proposal needs) does not award at the decision:
//   negotiating --(decision, some proposal acceptable)--> ready
//   ready --award(need_by)--> awarded (best proposal promising by need_by) | failed
//   ready --(now >= award_by_us)--> cancelled (its proposals rejected)
//   ready --cancel()--> cancelled
//
// Ranking rule (the best proposal is accepted first):
//   1. Only proposals in state `received` take part; a proposal is discarded
//      if its valid_until_us has passed (now > valid_until_us) or, when the
//      order has a ceiling (max_price_cents > 0), if price_cents > max_price_cents.
//   2. Proposals feasible by the due date (promised_due_us <= due_us) rank
//      before late ones.
//   3. Then the lowest price_cents.
//   4. Then the earliest promised_due_us.
//   5. Then the lowest seller id, then the lowest proposal id (byte order), so
//      the ranking is total and deterministic.
//
// Messages the initiator answers with:
//   - Propose after the decision (state != negotiating) or after reply_by: Reject "late".
//   - Propose from a seller that was not asked: Reject "not invited" (not recorded).
//   - A second, different Propose from a seller that already answered: Reject
//     "duplicate proposal"; the exact same proposal again is ignored.
//   - Confirm for a contract the initiator gave up on (confirm deadline passed,
//     or terms differ from the proposal): Cancel; the contract is recorded as
//     cancelled at the buyer too, so both sides agree.
//   - When a contract is confirmed, every other proposal still `received` gets
//     a Reject; when the order fails, every proposal still `received` does.
// Every event first applies the deadlines that have passed (as on_time would),
// so the outcome does not depend on whether a timer or a message came first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gearmesh/actors/records.hpp"
#include "gearmesh/clock.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

/// A message for another node.
struct message_to {
  std::string receiver;
  wire::payload payload;
  bool operator==(const message_to&) const = default;
};

/// What one step of the initiator decided.
struct initiator_step {
  /// The order record changed and must be persisted.
  bool changed = false;
  /// Messages to send, committed with the order.
  std::vector<message_to> messages;
  /// Contract records (role buyer) to persist: created or updated.
  std::vector<contract_record> contracts;
  /// A sourcing round after a seller's cancellation ended in this step
  /// (contracted again, or failed): a component order tells its upstream.
  bool resourced = false;
};

/// Most sourcing rounds an order runs after its first (sellers cancelling).
constexpr std::uint32_t sourcing_rounds_max = 3;

/// Most proposal entries one order records (refusals included); further
/// proposals are rejected without being recorded.
constexpr std::size_t proposals_per_order_max = 256;

/// The initiator of one order. Owns its order_record.
class initiator {
 public:
  /// Restores an initiator from its record (on actor start). `buyer` is this node's id.
  initiator(order_record order, std::string buyer);

  /// Starts a negotiation. `order` must have order_id, item, quantity, due_us,
  /// earliest_start_us, max_price_cents, currency, attributes, created_us,
  /// reply_by_us, confirm_timeout_us and sellers set; the step holds one CFP per
  /// seller. With no sellers the order fails at once.
  static initiator start(order_record order, std::string buyer, initiator_step& out);

  const order_record& order() const noexcept { return order_; }
  /// True in contracted, failed and cancelled.
  bool terminal() const noexcept;
  /// When on_time() next has something to do, if ever.
  std::optional<timestamp_us> next_deadline() const;

  initiator_step on_propose(std::string_view seller, const wire::propose& p, timestamp_us now);
  initiator_step on_refuse(std::string_view seller, const wire::refuse& r, timestamp_us now);
  initiator_step on_confirm(std::string_view seller, const wire::confirm& c, timestamp_us now);
  initiator_step on_failure(std::string_view seller, const wire::failure& f, timestamp_us now);
  /// Applies passed deadlines: decides at reply_by, gives up at confirm_deadline.
  initiator_step on_time(timestamp_us now);
  /// Cancels the order (and its contract, if any). No-op when failed/cancelled.
  initiator_step cancel(std::string_view reason, timestamp_us now);
  /// The seller `seller` ended contract `contract_id` of this order (a
  /// ProductionEvent of kind Cancelled) for `reason`: the contract is
  /// recorded as cancelled and the order sourced again with proposals due
  /// within `window_us`, or failed (see the top of this file). An order
  /// still awarded under that contract (the Cancelled event overtook the
  /// Confirm) records it as cancelled and falls back to the next best
  /// proposal, as on a Failure. No-op unless the order is contracted or
  /// awarded under that contract with that seller.
  initiator_step on_seller_cancel(std::string_view seller, std::string_view contract_id,
                                  std::string_view reason, timestamp_us window_us,
                                  timestamp_us now);
  /// A ready component order awards its best proposal that promises delivery
  /// by `need_by_us`. No-op in other states.
  initiator_step award(timestamp_us need_by_us, timestamp_us now);
  /// The proposal a ready order would award first at `now`, if any.
  const proposal_record* best(timestamp_us now) const;

  /// The buyer's contract record for proposal `p` of this order.
  contract_record contract_for(const proposal_record& p, contract_state st) const;

 private:
  void time_passes(timestamp_us now, initiator_step& out);
  void decide(timestamp_us now, initiator_step& out);
  void award_next(timestamp_us now, initiator_step& out);
  void fail(std::string reason, initiator_step& out);
  void reject_remaining(std::string_view reason, initiator_step& out);
  void send_cfps(initiator_step& out) const;
  bool all_answered() const;
  bool invited(std::string_view seller) const;
  proposal_record* find(std::string_view seller, std::string_view proposal_id);

  order_record order_;
  std::string buyer_;
};

/// Indices into order.proposals of the proposals that may be accepted at
/// `now`, best first, by the ranking rule above.
std::vector<std::size_t> rank(const order_record& order, timestamp_us now);

/// True if `a` ranks before `b` for an order due at `due_us` (rules 2-5).
bool ranks_before(const proposal_record& a, const proposal_record& b, timestamp_us due_us);

/// The contract id of the n-th Accept (1-based) of an order: "<order id>/c<n>".
std::string contract_id_for(std::string_view order_id, std::uint32_t n);

// --- participant side -------------------------------------------------------

/// A participant's hold deadline for a proposal made at `now`.
constexpr timestamp_us hold_deadline(timestamp_us now, timestamp_us hold_ttl_us) {
  return now + hold_ttl_us;
}

/// A hold backs its proposal while now <= valid_until_us.
inline bool hold_valid(const offer_record& o, timestamp_us now) {
  return o.state == offer_state::held && now <= o.valid_until_us;
}

/// What a participant does with an Accept.
enum class accept_verdict {
  /// The holds are valid: book them, record the contract, Confirm.
  confirm,
  /// Already contracted under this contract id: send the Confirm again.
  resend_confirm,
  /// The holds lapsed: try to reserve the same terms again, else Failure.
  replace,
  /// Answer with Failure (reason given).
  fail,
};

struct accept_decision {
  accept_verdict verdict = accept_verdict::fail;
  std::string reason;  // for fail
};

/// Decides on Accept `a` from node `sender` for `offer` (nullptr if unknown).
/// `tombstoned`: a Cancel for a.contract_id arrived before.
accept_decision decide_accept(const offer_record* offer, bool tombstoned, std::string_view sender,
                              const wire::accept& a, timestamp_us now);

/// The Confirm a participant sends for a contracted offer.
wire::confirm confirm_for(const offer_record& o);

/// The seller's contract record for a contracted offer.
contract_record seller_contract(const offer_record& o, std::string_view seller);

}  // namespace gearmesh::actors
