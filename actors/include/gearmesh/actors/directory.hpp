// Identifier resolution: the directory every node runs.
//
// Every node answers authoritatively for the identifiers it minted or owns
// (gearmesh/ident.hpp): itself, its machines, the items it makes or sells,
// their operations, its orders, contracts (as buyer) and proposals. A node
// configured as a directory (root or enterprise) also holds *delegations*
// (authority prefix -> node id) and resolves recursively: it forwards a query
// it cannot answer to the delegate of the longest covering prefix and relays
// the answer, so only neighbours in the delegation tree need to trust each
// other (they are [[peers]] anyway). Answers that came from another node are
// cached with their TTL, on every node they pass through. Procedure and
// messages: docs/protocol.md section 7; config and admin API:
// docs/operations.md.
//
//   [directory]                    # optional; without it the node only answers for itself
//   root = "registry"              # asked for what this node neither owns nor delegates
//   endpoint = "tcp://10.0.0.7:7100"  # advertised endpoint   (default [node] listen)
//   ttl_s = 300                    # TTL of this node's own answers          (default 300)
//   cache_entries_max = 4096       # answers cached from others            (default 4096)
//   query_timeout_ms = 3000        # a forwarded query fails after this    (default 3000)
//   hops_max = 4                   # directories a local query may pass    (default 4)
//   capabilities = ["welding"]     # advertised beyond machines and items  (default none)
//   [[directory.delegations]]      # this node is a directory for these prefixes
//   prefix = "acme"                # covers acme and acme.*, label by label
//   node = "acme-dir"              # a configured peer that answers for them
//   capabilities = ["welding"]     # what the subtree offers: capability searches go there
//
// Threading: `directory_logic` is a plain value owned by one actor; the
// admin helpers may be called from any thread (they ask the actor).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/fwd.hpp>

#include "gearmesh/clock.hpp"
#include "gearmesh/ident.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh::actors {

struct roles_config;  // roles_config.hpp

struct delegation_config {
  std::string prefix;  // authority prefix, e.g. "acme"
  std::string node;    // the node that answers for it
  std::vector<std::string> capabilities;
};

struct directory_config {
  std::string root;
  std::string endpoint;  // empty = [node] listen
  std::uint32_t ttl_s = 300;
  std::size_t cache_entries_max = 4096;
  std::int64_t query_timeout_ms = 3000;
  std::uint32_t hops_max = 4;
  std::vector<std::string> capabilities;
  std::vector<delegation_config> delegations;
};

/// Parses [directory] of `file` (absent: defaults). Checks that `root` and
/// every delegation's node are configured peers of `node` (their endpoint and
/// key are what the directory hands out). Errors: errc::bad_config naming
/// file, line and field.
result<directory_config> parse_directory(const config_file& file, const node_config& node);

/// Most entries in one answer (below wire::limits::entries_max).
constexpr std::size_t answer_entries_max = 32;
/// Most capability names advertised per entry (below wire::limits::capabilities_max).
constexpr std::size_t entry_capabilities_max = 32;
/// Queries waiting for an answer from another node at once; more are
/// answered not_found ("directory busy") at once.
constexpr std::size_t pending_queries_max = 1024;
/// Local callers or remote askers waiting on one pending query.
constexpr std::size_t waiters_per_query_max = 64;

/// Counters of a node's directory (GET /v1/directory).
struct directory_stats {
  std::uint64_t queries_local = 0;           // lookups from this node's admin API
  std::uint64_t queries_remote = 0;          // Resolve messages received
  std::uint64_t answered_authoritative = 0;  // answered from this node's own entities
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;       // looked up, not cached (forwarded or answered here)
  std::uint64_t forwarded = 0;          // Resolve messages sent
  std::uint64_t resolutions_in = 0;     // Resolution messages received
  std::uint64_t stale_resolutions = 0;  // answers to no pending query (late, after a restart)
  std::uint64_t timeouts = 0;           // forwarded queries that got no answer in time
  std::uint64_t busy = 0;               // refused: pending_queries_max reached
  std::uint64_t cache_entries = 0;      // now
  std::uint64_t pending = 0;            // now
};

/// What this node knows about itself, for authoritative answers.
struct directory_self {
  std::string node_id;
  std::string endpoint;
  std::string public_key;                 // Z85; empty on plain links
  std::vector<std::string> capabilities;  // machine capabilities, item ids, configured extras
  std::vector<std::string> machines;
  /// item id -> number of operations of its routing (0 for a supplier's item)
  std::map<std::string, std::size_t> items;
};

/// Whether this node's store holds an entity: (kind, full identifier).
/// Only orders, contracts and proposals are asked.
using entity_lookup = std::function<bool(ident::kind, const std::string&)>;

/// The answer to a local lookup.
struct lookup_result {
  wire::resolution answer;
  bool cached = false;  // served from this node's cache
  bool local = false;   // answered by this node from its own entities
};

/// The directory as a pure state machine: input events in, messages to send
/// and answers for local callers out. No clock, no I/O: the caller passes
/// `now` and commits the sends (directory.cpp, the tests).
class directory_logic {
 public:
  /// A message to send: receiver and payload (resolve or resolution).
  struct send {
    std::string receiver;
    wire::payload payload;
  };
  /// What one event produced.
  struct actions {
    std::vector<send> sends;
    /// (local request id, result) for lookups that completed.
    std::vector<std::pair<std::uint64_t, lookup_result>> done;
  };

  /// `peers` gives the endpoint and key of delegates; `first_query_id` seeds
  /// the ids of forwarded queries (the actor passes its clock, so that answers
  /// to queries of an earlier run never match a new one).
  directory_logic(directory_self self, directory_config cfg, std::vector<transport::peer> peers,
                  entity_lookup lookup, std::uint64_t first_query_id);

  /// A lookup from this node (admin API), identified by `request_id`; its
  /// answer appears in `out.done` now or with a later event (a Resolution,
  /// or expire() at the latest). Exactly one of q.identifier and
  /// q.capability should be set (else answered not_found at once).
  void lookup(std::uint64_t request_id, const wire::resolve& q, timestamp_us now, actions& out);

  /// A Resolve from node `sender`; q.hops (capped at hops_max) is how many
  /// more directories may be asked. Its Resolution is in `out.sends` now or
  /// after a later event, exactly once.
  void on_resolve(const std::string& sender, const wire::resolve& q, timestamp_us now,
                  actions& out);

  /// A Resolution from node `sender`: matched to the query sent to that
  /// node with that id, else counted as stale and ignored.
  void on_resolution(const std::string& sender, const wire::resolution& r, timestamp_us now,
                     actions& out);

  /// Fails pending queries whose deadline passed (their waiters get
  /// not_found "no answer from X in time"); drops expired cache entries.
  void expire(timestamp_us now, actions& out);

  /// Earliest pending deadline, if any.
  std::optional<timestamp_us> next_deadline() const;

  /// This node's own answer to `q`, without cache or forwarding: found or
  /// not_found for what it owns, referral to the delegate that covers the
  /// identifier, not_found otherwise. For capability searches: this node if
  /// it offers the capability, plus every matching delegate as a referral.
  wire::resolution authoritative(const wire::resolve& q) const;

  const directory_stats& stats() const noexcept { return stats_; }
  const directory_self& self() const noexcept { return self_; }

 private:
  struct waiter {
    bool local = true;
    std::uint64_t request_id = 0;  // local
    std::string asker;             // remote: node id
    std::uint64_t asker_query_id = 0;
  };
  struct pending_query {
    std::string key;  // cache key of the query
    wire::resolve query;
    std::vector<waiter> waiters;
    std::vector<std::uint64_t> outstanding;  // forwarded query ids not answered yet
    std::vector<std::string> asked;          // node ids asked (capability fan-out)
    wire::resolution partial;                // merged answers so far
    timestamp_us deadline = 0;
  };
  struct cache_entry {
    wire::resolution answer;
    timestamp_us expires = 0;
  };

  static std::string key_of(const wire::resolve& q);
  void start(const waiter& w, const wire::resolve& q, std::uint32_t hops, timestamp_us now,
             actions& out);
  void finish(std::uint64_t pending_id, timestamp_us now, actions& out);
  void answer(const waiter& w, wire::resolution r, bool cached, bool local, actions& out);
  std::uint64_t forward(pending_query& p, const std::string& to, std::uint32_t hops, actions& out);
  void remember(const std::string& key, const wire::resolution& r, timestamp_us now);
  wire::directory_entry entry_for(const std::string& node_id,
                                  const std::vector<std::string>& capabilities,
                                  bool referral) const;
  const delegation_config* delegation_for(std::string_view authority) const;
  bool owns(const ident::identifier& id, std::string& reason) const;

  directory_self self_;
  directory_config cfg_;
  std::vector<transport::peer> peers_;
  entity_lookup lookup_;
  std::uint64_t next_query_id_;
  directory_stats stats_;
  std::unordered_map<std::string, cache_entry> cache_;
  std::deque<std::pair<std::string, timestamp_us>> cache_order_;  // insertion order, for eviction
  std::map<std::uint64_t, pending_query> pending_;                // by the first forwarded query id
  std::unordered_map<std::uint64_t, std::uint64_t> by_query_id_;  // forwarded id -> pending key
  std::unordered_map<std::string, std::uint64_t> by_key_;  // query key -> pending (coalescing)
};

/// Builds the node's self description from its config and roles: endpoint
/// ([directory] endpoint or [node] listen), public key (read from
/// [security] secret_key_file; empty if insecure), machines, items and
/// capabilities. Errors: those of keys::load_secret_key.
result<directory_self> make_directory_self(const node_config& node, const directory_config& dir,
                                           const roles_config& roles);

/// Spawns the directory actor of a node. Route resolve and resolution to it.
caf::actor spawn_directory(caf::actor_system& sys, node_context& ctx, directory_self self,
                           directory_config cfg, std::vector<transport::peer> peers);

/// Asks the directory actor (from a non-actor thread, e.g. the admin API)
/// and waits at most `timeout`. Errors: errc::timeout, errc::shutting_down.
result<lookup_result> directory_lookup(caf::actor_system& sys, const caf::actor& directory,
                                       wire::resolve q, std::chrono::milliseconds timeout);

/// The directory's counters (waits at most `timeout`).
result<directory_stats> directory_counters(caf::actor_system& sys, const caf::actor& directory,
                                           std::chrono::milliseconds timeout);

}  // namespace gearmesh::actors
