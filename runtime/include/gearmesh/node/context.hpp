// What an actor may use from the node that hosts it.
//
// Actors never touch ZeroMQ or LMDB: they read committed state through
// `store()`, and make every change through `commit()`, which writes the state
// change, the inbound message id that caused it (inbox) and the messages it
// must send (outbox) in ONE transaction. Messages leave only after that
// transaction is durable; the inbound message is acknowledged to its sender
// only then. The same interface is implemented by the production node host
// and by the simulator.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/store/store.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh {

/// A message an actor wants sent to another node.
struct outbound {
  std::string receiver;            // node id
  std::string conversation_id;     // normally the order id
  std::uint64_t causation_id = 0;  // message_id of the inbound message that caused it
  wire::payload payload;
};

/// Identifies an inbound message for the inbox (dedup) and its ack.
struct inbound_ref {
  std::string sender;
  std::uint64_t message_id = 0;
};

/// Everything one step of an actor changes, committed atomically.
struct effects {
  store::write_batch writes;
  /// The inbound message this step processed, if any. EVERY inbound message an
  /// actor receives must come back through exactly one commit() naming it
  /// here, even if the step changes nothing: that is what records it in the
  /// inbox and acknowledges it to the sender.
  std::optional<inbound_ref> cause;
  std::vector<outbound> messages;
  /// Runs once the transaction is durable (ok) or failed, on the writer's
  /// thread; must not block (send a CAF message, fulfil a promise).
  std::function<void(const status&)> on_durable;
};

/// Services of the hosting node. Thread-safe; outlives the actors it serves.
class node_context {
 public:
  virtual ~node_context() = default;

  /// This node's id, e.g. "framecraft"; the sender of everything it commits.
  virtual const std::string& node_id() const = 0;

  /// The node's clock. Domain logic reads time only here.
  virtual const gearmesh::clock& clock() const = 0;

  /// Read-only access to committed state (snapshot per call).
  virtual const store::environment& store() const = 0;

  /// Commits `fx` (see `effects`). Never blocks for long (bounded queue).
  virtual void commit(effects fx) = 0;

  /// Whether commit() is done when it returns: `on_durable` has run, on the
  /// calling thread, and store() shows the writes. So in the simulator's
  /// deterministic execution (commits are durable as far as the simulated
  /// node is concerned once queued); never with the group-commit writer of
  /// a production node, whose commits complete on its own thread.
  virtual bool commits_inline() const { return false; }
};

}  // namespace gearmesh
