// A Gearmesh node in a process: the embedding API.
//
// Lifecycle, all from one controlling thread:
//   auto n = node::open(cfg);          // store, actor system, gateway, context
//   actors::install_roles(**n, file);  // spawn role actors, route(), admin routes
//   n->serve();                        // transport, outbox resend, admin API
//   ...                                // runs; actors work on CAF's threads
//   n->stop();                         // clean stop: everything committed is synced
//
// Threads: CAF scheduler ([node] scheduler_threads workers, default 1), the
// transport's I/O thread, the store's writer thread, the admin HTTP thread.
// See docs/architecture.md.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "gearmesh/clock.hpp"
#include "gearmesh/node/admin.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/transport/transport.hpp"
#include "gearmesh/wire/codec.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh {

/// Counters of a node, for /v1/metrics and tests.
struct node_stats {
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t dropped_malformed = 0;        // failed verification
  std::uint64_t dropped_unknown_sender = 0;   // connection of no trusted peer (plain links)
  std::uint64_t dropped_sender_mismatch = 0;  // envelope sender != authenticated connection
  std::uint64_t dropped_unauthorized = 0;     // type not in the peer's receive list
  std::uint64_t dropped_rate_limited = 0;     // above peer_messages_per_s (not acked)
  std::uint64_t dropped_overload = 0;         // peer_queue_max in process (not acked)
  std::uint64_t withheld_by_policy = 0;       // outbound type not in the peer's send list
  std::uint64_t dropped_wrong_receiver = 0;   // envelope not addressed to this node
  std::uint64_t dropped_unroutable = 0;       // no actor handles that message type
  std::uint64_t duplicates = 0;               // already processed (re-acked) or in flight
  std::uint64_t duplicate_replies = 0;        // replies re-sent at once for a duplicate
  std::uint64_t dropped_replayed = 0;         // stamped before the replay window (acked, no effect)
  std::uint64_t dropped_clock_skew = 0;       // stamped too far in the future (not acked)
  std::uint64_t inbox_pruned = 0;             // inbox entries forgotten after the window
  std::uint64_t retransmits = 0;              // outbox frames re-sent
  std::uint64_t retransmits_parked = 0;       // re-sends held back: the partner was silent
  std::uint64_t acks_in = 0;
  std::uint64_t outbox_pending = 0;  // unacknowledged messages now
  std::uint64_t commits = 0;         // effects committed
  std::uint64_t commit_failures = 0;
  std::uint64_t store_transactions = 0;  // LMDB write transactions (one sync each, group commit)
  std::uint64_t store_batches = 0;       // commits and deferred writes they carried
};

/// What node::update_peers changed, by peer id.
struct peers_update {
  std::vector<std::string> added;
  std::vector<std::string> removed;         // revoked: connections closed
  std::vector<std::string> changed;         // new key or endpoint: reconnected
  std::vector<std::string> policy_changed;  // receive/send lists only
};

/// How a node runs its actors and store writes.
enum class execution {
  /// Production: CAF worker threads, a group-commit writer thread.
  threaded,
  /// Simulation: no thread of the node's own. Actor jobs run only inside
  /// run_ready(), timers fire only through advance_time_us(), store writes
  /// are applied inline when a step commits. With a deterministic transport
  /// and clock the node's behaviour is a function of its inputs.
  deterministic,
};

class node {
 public:
  /// Opens the store at cfg.data_dir and starts the actor system. Errors name
  /// what failed (data dir, format version, key files, ...). Nothing listens yet.
  ///
  /// `net` replaces the ZeroMQ transport the node would build from `cfg`
  /// (listen endpoint, [security] keys): the simulator's network and the
  /// fuzz target use this seam. The node still applies every check of its
  /// own to what `net` delivers (sender binding, authorization, limits).
  ///
  /// `mode` = execution::deterministic is the simulator's (see run_ready).
  static result<std::unique_ptr<node>> open(node_config cfg,
                                            const gearmesh::clock& clk = system_clock(),
                                            std::unique_ptr<transport::transport> net = nullptr,
                                            execution mode = execution::threaded);

  ~node();  // stop()

  const node_config& config() const noexcept;
  caf::actor_system& system();
  node_context& context();

  /// Inbound messages of the given types are delivered to `handler` as the CAF
  /// message (inbound_atom, wire::envelope) -- see runtime/include/gearmesh/node/caf_types.hpp.
  /// Call before serve().
  void route(std::initializer_list<wire::message_type> types, const caf::actor& handler);

  /// Routes of the admin API; add before serve(). The runtime adds
  /// GET /v1/health and GET /v1/metrics itself.
  admin::router& admin_routes();

  /// Starts the transport (bind + connect to peers), re-sends the committed
  /// but unacknowledged outbox, starts the admin API if configured.
  status serve();

  /// Replaces the trust store ([[peers]]) while the node runs -- how a
  /// partner is onboarded or revoked without a restart (gearmesh-node calls
  /// it on SIGHUP and POST /v1/reload). A removed partner is untrusted at
  /// once (nothing more from it has an effect), its key is no longer
  /// admitted and its open connections are closed (transport::remove_peer);
  /// a partner with a new key or endpoint is reconnected; policy changes
  /// apply to the next message. Messages to a removed partner stay in the
  /// outbox and are delivered if it is trusted again. Thread-safe.
  /// Errors: errc::bad_config (own id, duplicate id, missing key with CURVE).
  result<peers_update> update_peers(std::vector<peer_config> peers);

  /// The admin API's bound port (0 if none).
  std::uint16_t admin_port() const;

  node_stats stats() const;

  /// Runs once, on an internal thread, when the node can no longer work
  /// safely: its store failed to commit (disk full, I/O error). From then on
  /// the node commits, sends and acknowledges nothing -- partners keep
  /// retrying, so nothing they sent is lost -- and /v1/health answers 503.
  /// The owner should log, stop() and exit (gearmesh-node exits 1); after the
  /// cause is fixed, a restart resumes from the last durable state. The
  /// handler must not call stop() itself. Set before serve().
  void on_fatal(std::function<void(const status&)> handler);

  /// The failure that stopped the node; ok while it is healthy.
  status failure() const;

  // -- execution::deterministic only ---------------------------------------

  /// Runs actor jobs that are ready, including those the jobs make ready,
  /// in a fixed order, until none is left or `max_jobs` ran; returns how
  /// many ran. (Stopping after a few jobs is how the simulator crashes a
  /// node in the middle of a step, e.g. after a commit and before its sends.)
  std::size_t run_ready(std::size_t max_jobs = static_cast<std::size_t>(-1));

  /// Microseconds from the actor clock's now to its earliest pending timer
  /// (0 if one is due), or -1 if none is pending.
  std::int64_t next_timer_in_us() const;

  /// Moves the actor clock forward by `us`; timers due by then fire (their
  /// jobs become ready for run_ready()). The node's gearmesh::clock is the
  /// caller's and must be moved in step.
  void advance_time_us(std::int64_t us);

  /// Whether deferred store writes (erases of acknowledged outbox entries,
  /// inbox pruning) wait for the node's next commit, and applies them now
  /// in one transaction: in production the writer does so after
  /// group_commit_writer::options::deferred_delay_ms; the simulator calls
  /// flush_deferred() that long after they were queued.
  bool deferred_writes_pending() const;
  void flush_deferred_writes();

  /// Keys of the actors' tables (every table but the runtime's inbox,
  /// outbox and meta) that applied commits wrote since open() or since the
  /// last call, as written (store::key_log::keys() sorts them by table):
  /// what an incremental invariant check must look at
  /// (actors::verify_changes). Also after stop(), for what the node wrote
  /// until then. Empty when threaded.
  store::key_log take_written_keys();

  /// The limits inbound frames are decoded with ([transport]
  /// frame_bytes_max, the rest wire::limits' defaults).
  const wire::limits& wire_limits() const;

  /// A frame from `from`, handled as if its transport had received it
  /// (dropped unless the node serves), except that it is not decoded here:
  /// `decoded` is what wire::decode(frame, wire_limits()) gave. The
  /// simulator decodes the frames it carries ahead, on its second thread.
  void receive_decoded(const std::string& from, std::span<const std::uint8_t> frame,
                       result<wire::envelope> decoded);

  /// Hands the node's store transactions to `t` to apply on its thread
  /// while the caller goes on (store::environment::write_behind); null:
  /// applied at once again. The simulator's way to use a second core for
  /// one run. Results do not change: reads see every commit at once, and
  /// the store is complete when the node is stopped or killed.
  void write_store_behind(store::apply_thread* t);

  /// A simulated kill -9 at this instant: nothing more is committed (later
  /// steps fail unapplied) and nothing more is sent. The caller then stops
  /// and discards the node, and may open its store again.
  void kill_now();

  /// Stops admin API and transport, lets actors finish, commits and syncs
  /// everything queued, closes the store. Idempotent.
  void stop();

  /// Opaque implementation (runtime/node/node.cpp).
  struct impl;

 private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gearmesh
