// The world fuzz_dispatch runs in, shared by the target (fuzz_dispatch.cpp)
// and the seed generator (seed_corpus.cpp) so that seeds name real state.
//
// One node, "framecraft", hosts two roles: a factory that makes FRAMEs for
// the buyer "velo", and a buyer of TUBEs from the sellers "tubeco" and
// "alloyframe". Its clock is a manual clock that stays at `t0_us`, so every
// run is deterministic and seeds stamped near t0 never age out of the replay
// window.
//
// A session starts from an empty store and drives the node into a state
// where every message type has something to act on (`setup_orders`, then
// `setup_frames`, all through the node's real inbound path):
//   framecraft/order/1   TUBE, negotiating: tubeco and alloyframe have not answered
//   framecraft/order/2   TUBE, awarded to tubeco/proposal/1: Accept sent with
//                        contract framecraft/order/2/c1, waiting for Confirm
//   velo/order/1         framecraft/proposal/1 held for velo (Propose sent)
//   velo/order/2         framecraft/proposal/2 accepted: contract velo/order/2/c1
//
// Fuzz input: byte 0 picks the connection identity the frame arrives on
// (`identities[byte % 4]`, the last one not a configured peer), the rest is
// the frame, as the ZeroMQ transport would hand it to the node.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gearmesh/wire/codec.hpp"

namespace gearmesh::fuzz {

constexpr std::int64_t t0_us = 1'767'225'600'000'000;  // 2026-01-01T00:00Z, the node's clock
constexpr std::int64_t s_us = 1'000'000;
constexpr std::int64_t hour_us = 3'600 * s_us;
constexpr std::int64_t day_us = 24 * hour_us;

constexpr const char* node_id = "framecraft";

enum identity : std::uint8_t { velo, tubeco, alloyframe, mallory };
/// Connection identities, indexed by `identity`; all but "mallory" are peers.
constexpr std::array<const char*, 4> identities = {"velo", "tubeco", "alloyframe", "mallory"};

/// One frame of a scenario or seed: who sends it and on which connection.
struct scripted_frame {
  std::string name;
  identity from = velo;  // the connection identity
  wire::bytes frame;
};

/// A fresh envelope from `sender` to the node, stamped one second before t0.
inline wire::envelope envelope(const char* sender, std::uint64_t id, wire::payload p,
                               const char* conversation = "") {
  wire::envelope env;
  env.header.message_id = id;
  env.header.sender = sender;
  env.header.receiver = node_id;
  env.header.conversation_id = conversation;
  env.header.timestamp_us = t0_us - s_us;
  env.payload = std::move(p);
  return env;
}

inline wire::cfp frame_cfp(std::string order_id, std::uint32_t quantity) {
  return wire::cfp{std::move(order_id), "FRAME", quantity,           t0_us, t0_us + 14 * day_us, 0,
                   t0_us + 800'000,     "EUR",   {{"colour", "red"}}};
}

/// tubeco's proposal for framecraft/order/2, the one the node awards.
inline wire::propose tubeco_proposal() {
  return wire::propose{"framecraft/order/2", "tubeco/proposal/1", 40'000,
                       t0_us + 2 * day_us,   t0_us + 5 * day_us,  t0_us + day_us};
}

/// The orders the session places through the admin API (POST /v1/orders bodies).
inline std::vector<std::string> setup_orders() {
  const std::string due = std::to_string(t0_us + 10 * day_us);
  return {R"({"item":"TUBE","quantity":50,"due_us":)" + due + "}",
          R"({"item":"TUBE","quantity":20,"max_price_cents":100000,"due_us":)" + due + "}"};
}

/// Delivered after the orders are placed; see the state list above.
inline std::vector<scripted_frame> setup_frames() {
  const auto f = [](const char* name, identity from, const wire::envelope& env) {
    return scripted_frame{name, from, wire::encode(env)};
  };
  return {
      f("propose order/2", tubeco, envelope("tubeco", 1, tubeco_proposal(), "framecraft/order/2")),
      f("refuse order/2", alloyframe,
        envelope("alloyframe", 1, wire::refuse{"framecraft/order/2", "no stock"},
                 "framecraft/order/2")),
      f("cfp velo/order/1", velo, envelope("velo", 1, frame_cfp("velo/order/1", 5))),
      f("cfp velo/order/2", velo, envelope("velo", 2, frame_cfp("velo/order/2", 3))),
      f("accept velo/order/2", velo,
        envelope("velo", 3,
                 wire::accept{"velo/order/2", "framecraft/proposal/2", "velo/order/2/c1"})),
  };
}

/// Message ids the node gives its own messages in the setup, which the seeds
/// acknowledge (fuzz_dispatch checks them when a session starts).
constexpr std::uint64_t accept_to_tubeco_id = 5;  // accept framecraft/order/2/c1
constexpr std::uint64_t propose_to_velo_id = 6;   // framecraft/proposal/1

/// The seed corpus of fuzz_dispatch: one or more frames of every message type
/// that act on the setup state, and one per drop reason of the node.
inline std::vector<scripted_frame> seeds() {
  std::vector<scripted_frame> s;
  const auto add = [&](const char* name, identity from, const wire::envelope& env) {
    s.push_back({name, from, wire::encode(env)});
  };
  // velo -> the factory role.
  add("cfp-new", velo, envelope("velo", 100, frame_cfp("velo/order/3", 4)));
  add("cfp-held-again", velo, envelope("velo", 101, frame_cfp("velo/order/1", 5)));
  wire::cfp usd = frame_cfp("velo/order/4", 2);
  usd.currency = "USD";
  add("cfp-other-currency", velo, envelope("velo", 102, usd));
  wire::cfp seat = frame_cfp("velo/order/5", 2);
  seat.item = "SEAT";
  add("cfp-unknown-item", velo, envelope("velo", 103, seat));
  wire::cfp rush = frame_cfp("velo/order/6", 500);
  rush.due_us = t0_us + hour_us;
  add("cfp-no-capacity", velo, envelope("velo", 104, rush));
  wire::cfp cheap = frame_cfp("velo/order/7", 2);
  cheap.max_price_cents = 1;
  add("cfp-price-ceiling", velo, envelope("velo", 113, cheap));
  add("accept", velo,
      envelope("velo", 105,
               wire::accept{"velo/order/1", "framecraft/proposal/1", "velo/order/1/c1"}));
  add("accept-unknown-proposal", velo,
      envelope("velo", 106,
               wire::accept{"velo/order/1", "framecraft/proposal/99", "velo/order/1/c1"}));
  add("accept-again", velo,
      envelope("velo", 114,
               wire::accept{"velo/order/2", "framecraft/proposal/2", "velo/order/2/c1"}));
  add("reject", velo,
      envelope("velo", 107,
               wire::reject{"velo/order/1", "framecraft/proposal/1", "another proposal won"}));
  add("cancel-contract", velo,
      envelope("velo", 108, wire::cancel{"velo/order/2", "velo/order/2/c1", "customer withdrew"}));
  add("cancel-order", velo,
      envelope("velo", 109, wire::cancel{"velo/order/1", "", "order withdrawn"}));
  add("cancel-unknown-contract", velo,
      envelope("velo", 115, wire::cancel{"velo/order/9", "velo/order/9/c1", "tombstone"}));
  add("ack-propose", velo, envelope("velo", 0, wire::ack{propose_to_velo_id}));
  {
    // An Accept carrying the Ack of the Propose it answers.
    auto accept = envelope(
        "velo", 116, wire::accept{"velo/order/3", "framecraft/proposal/3", "velo/order/3/c1"});
    accept.header.acks = {propose_to_velo_id, propose_to_velo_id + 1000};
    add("accept-with-acks", velo, accept);
  }

  // tubeco and alloyframe -> the buyer role.
  add("propose", tubeco,
      envelope("tubeco", 100,
               wire::propose{"framecraft/order/1", "tubeco/proposal/2", 90'000, t0_us + day_us,
                             t0_us + 4 * day_us, t0_us + day_us},
               "framecraft/order/1"));
  add("propose-alloyframe", alloyframe,
      envelope("alloyframe", 100,
               wire::propose{"framecraft/order/1", "alloyframe/proposal/1", 80'000, t0_us + day_us,
                             t0_us + 3 * day_us, t0_us + day_us}));
  add("refuse", alloyframe,
      envelope("alloyframe", 101, wire::refuse{"framecraft/order/1", "no stock"}));
  // -> the capacity broker: a cancellation of a booking this node never made.
  add("capacity-cancelled-unknown", tubeco,
      envelope("tubeco", 120,
               wire::capacity_cancelled{"tubeco/capacity/1", "framecraft/booking/9",
                                        "saw1 broke down"}));
  const wire::propose p = tubeco_proposal();
  add("confirm", tubeco,
      envelope("tubeco", 101,
               wire::confirm{"framecraft/order/2", p.proposal_id, "framecraft/order/2/c1",
                             p.price_cents, p.promised_start_us, p.promised_due_us, 20, "TUBE"}));
  add("confirm-other-terms", tubeco,
      envelope(
          "tubeco", 103,
          wire::confirm{"framecraft/order/2", p.proposal_id, "framecraft/order/2/c1",
                        p.price_cents + 1, p.promised_start_us, p.promised_due_us, 20, "TUBE"}));
  add("failure", tubeco,
      envelope("tubeco", 102,
               wire::failure{"framecraft/order/2", p.proposal_id, "framecraft/order/2/c1",
                             "machine broke"}));
  add("confirm-not-awarded", alloyframe,
      envelope("alloyframe", 102,
               wire::confirm{"framecraft/order/2", "alloyframe/proposal/1", "framecraft/order/2/c1",
                             1, t0_us, t0_us + day_us, 20, "TUBE"}));
  add("ack-accept", tubeco, envelope("tubeco", 0, wire::ack{accept_to_tubeco_id}));
  // The seller's production events for the contract the node awarded.
  wire::production_event started{"framecraft/order/2/c1",
                                 "framecraft/order/2",
                                 1,
                                 wire::production_event_kind::started,
                                 t0_us - s_us,
                                 wire::contract_progress::executing,
                                 0,
                                 t0_us - s_us,
                                 0,
                                 0,
                                 "",
                                 {}};
  add("production-started", tubeco, envelope("tubeco", 106, started, "framecraft/order/2"));
  wire::production_event cancelled = started;
  cancelled.sequence = 2;
  cancelled.kind = wire::production_event_kind::cancelled;
  cancelled.state = wire::contract_progress::cancelled;
  cancelled.reason = "saw1 broke down";
  add("production-cancelled", tubeco, envelope("tubeco", 107, cancelled, "framecraft/order/2"));
  add("production-not-the-seller", alloyframe,
      envelope("alloyframe", 103, cancelled, "framecraft/order/2"));
  add("reject-not-the-buyer", tubeco,
      envelope("tubeco", 104, wire::reject{"velo/order/1", "framecraft/proposal/1", "spoofed"}));

  // One per drop reason of the node.
  add("duplicate", velo, envelope("velo", 1, frame_cfp("velo/order/1", 5)));
  wire::envelope old = envelope("velo", 110, frame_cfp("velo/order/8", 1));
  old.header.timestamp_us = t0_us - 8 * day_us;
  add("replayed", velo, old);
  wire::envelope future = envelope("velo", 111, frame_cfp("velo/order/8", 1));
  future.header.timestamp_us = t0_us + 2 * hour_us;
  add("clock-skew", velo, future);
  wire::envelope elsewhere = envelope("velo", 112, frame_cfp("velo/order/8", 1));
  elsewhere.header.receiver = "alloyframe";
  add("wrong-receiver", velo, elsewhere);
  add("spoofed-sender", velo,
      envelope("tubeco", 105, wire::refuse{"framecraft/order/1", "spoofed"}));
  add("unknown-peer", mallory, envelope("mallory", 1, frame_cfp("mallory/order/1", 1)));
  wire::bytes cut = wire::encode(envelope("velo", 116, frame_cfp("velo/order/8", 1)));
  cut.resize(cut.size() / 2);
  s.push_back({"malformed", velo, std::move(cut)});
  return s;
}

/// The fuzz input that delivers `f`.
inline wire::bytes input_of(const scripted_frame& f) {
  wire::bytes in;
  in.reserve(f.frame.size() + 1);
  in.push_back(f.from);
  in.insert(in.end(), f.frame.begin(), f.frame.end());
  return in;
}

}  // namespace gearmesh::fuzz
