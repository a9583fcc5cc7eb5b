// Node configuration, read from a TOML file.
//
// The runtime parses the sections it owns ([node], [store], [transport],
// [security], [admin], [[peers]]) into `node_config`; role sections ([buyer], [factory],
// [supplier]) are parsed by the actors library from `config_file::root()`.
// Every error names the file, the line and the field:
//   "examples/demo/velo.toml:7: node.listen: expected a string like tcp://127.0.0.1:7100"
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gearmesh/status.hpp"
#include "gearmesh/transport/transport.hpp"

namespace toml {
inline namespace v3 {
class table;
class node;
}  // namespace v3
}  // namespace toml

namespace gearmesh {

/// A set of message types (bit i = wire::message_type i).
using message_type_set = std::uint32_t;
constexpr message_type_set all_message_types = ~message_type_set{0};

/// A partner in the trust store: how to reach it, the key it proves itself
/// with, and what it may do ([[peers]] in the config file).
struct peer_config : transport::peer {
  /// [[peers]] receive: message types this node accepts from the partner;
  /// others are dropped without effect or acknowledgement (counted as
  /// dropped_unauthorized). Default: all. Acks are always accepted.
  message_type_set receive = all_message_types;
  /// [[peers]] send: message types this node may send the partner -- its
  /// sharing policy (a partner without "cfp" never sees order requests).
  /// A step that would send another type to it sends nothing to it
  /// (counted as withheld_by_policy). Default: all. Acks are always sent.
  message_type_set send = all_message_types;
};

struct node_config {
  std::string node_id;     // [node] id
  std::string enterprise;  // [node] enterprise
  std::string listen;      // [node] listen, ZeroMQ endpoint
  std::string data_dir;    // [node] data_dir; relative to the config file's directory
  std::string admin_address = "127.0.0.1";  // [admin] address
  std::uint16_t admin_port = 0;             // [admin] port; 0 = no admin API
  bool store_sync = true;                   // [store] sync
  /// [store] group_commit: true batches every commit queued while the
  /// previous transaction was syncing into one transaction and one sync;
  /// false gives each commit its own transaction and sync (the slow baseline
  /// the benchmarks compare against). Durability is the same either way.
  bool store_group_commit = true;
  /// [store] gather_us: under load (the last transaction held at least 16
  /// commits) the writer gathers commits this long before the next
  /// transaction, so each flush carries more of them: less CPU and disk
  /// traffic per commit for up to this much latency per commit. A lone
  /// commit never waits. 0 turns it off.
  std::uint32_t store_gather_us = 1000;
  std::size_t store_map_bytes_initial = std::size_t{64} << 20;  // [store] map_mib
  std::size_t frame_bytes_max = 64 * 1024;                      // [transport] frame_bytes_max
  std::int64_t retry_initial_ms = 200;                          // [transport] retry_initial_ms
  std::int64_t retry_max_ms = 5000;                             // [transport] retry_max_ms
  /// [transport] bundle: frames ready for the same peer at once leave in one
  /// ZeroMQ message (schemas/bundle.fbs); inbound bundles are always accepted.
  bool transport_bundle = true;
  /// [transport] replay_window_hours: an inbound message stamped earlier than
  /// this is acknowledged without effect (a replay), and the inbox remembers
  /// processed messages this long plus clock_skew_max_us, then forgets them:
  /// what bounds the inbox. A sender gives a message this long to arrive.
  std::int64_t replay_window_us = 7 * 24 * 3'600'000'000LL;
  /// [transport] clock_skew_max_s: messages stamped further than this in the
  /// future are dropped unacknowledged (a partner's clock is wrong).
  std::int64_t clock_skew_max_us = 3'600'000'000LL;
  std::string log_level = "info";  // [node] log_level
  /// [node] scheduler_threads: CAF worker threads running the node's actors.
  /// One is enough for a node's actors (the fsync, ZeroMQ and admin work
  /// runs on threads of its own) and avoids cross-worker wake-ups; more only
  /// pay off for CPU-heavy role actors on a machine with cores to spare.
  std::size_t scheduler_threads = 1;
  /// [transport] peer_messages_per_s / peer_burst: inbound frames a peer may
  /// send per second on average / at once (token bucket); the excess is
  /// dropped unacknowledged (dropped_rate_limited), so the partner resends
  /// it later and nothing is lost.
  std::int64_t peer_messages_per_s = 50'000;
  std::int64_t peer_burst = 50'000;
  /// [transport] peer_queue_max: messages from one peer being processed at
  /// once (queued for or in the actors, or committing); above it new ones
  /// are dropped unacknowledged (dropped_overload). Bounds memory per peer.
  std::int64_t peer_queue_max = 4096;
  /// [security] insecure = true: plain TCP without authentication or
  /// encryption, for local demos and tests only (a warning at start).
  /// Otherwise CurveZMQ on every link and secret_key_file is required.
  bool insecure = false;
  /// [security] secret_key_file: this node's node.key (`gearmesh keys
  /// generate`), relative to the config file's directory.
  std::string secret_key_file;
  /// [[peers]]: id, endpoint, public_key (or public_key_file), receive, send.
  std::vector<peer_config> peers;
};

/// A parsed TOML file that remembers its name for error messages.
class config_file {
 public:
  /// Parses `path`. Errors: errc::bad_config "<path>:<line>:<col>: <toml error>"
  /// or "<path>: cannot read".
  static result<config_file> load(const std::string& path);
  /// Parses TOML text; `name` appears in errors.
  static result<config_file> parse(std::string_view text, std::string name);

  const toml::table& root() const;
  const std::string& path() const noexcept { return path_; }
  /// Directory of the file, for resolving relative paths.
  std::string directory() const;

  /// "<path>:<line>: <field>: <what>" with the line of `where` (or of the file start).
  status error(const toml::node* where, std::string_view field, std::string_view what) const;

  config_file(config_file&&) noexcept;
  config_file& operator=(config_file&&) noexcept;
  ~config_file();

 private:
  config_file();
  std::string path_;
  std::unique_ptr<toml::table> root_;
};

/// The TOML type of `n` for error messages: "a string", "an integer", ...
const char* toml_type_name(const toml::node& n) noexcept;

/// Reads the runtime sections. Unknown keys in runtime sections are errors.
result<node_config> parse_node_config(const config_file& file);

}  // namespace gearmesh
