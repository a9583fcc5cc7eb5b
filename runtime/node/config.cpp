// Node configuration: the runtime sections of a node's TOML file.
//
// Every error names the file, the line and the field, so an operator can fix
// the file without reading code. Unknown keys in runtime sections are errors
// (a typo such as `lisen` must not silently fall back to a default).

#include "gearmesh/node/config.hpp"

#include <toml++/toml.h>

#include "gearmesh/keys/keys.hpp"
#include "gearmesh/wire/messages.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace gearmesh {

namespace {

// Limits on what a config file may ask for.
constexpr std::size_t id_length_max = 128;
constexpr std::size_t peers_count_max = 1024;
constexpr std::int64_t map_mib_max = std::int64_t{1} << 20;            // 1 TiB
constexpr std::int64_t frame_bytes_max_limit = std::int64_t{1} << 30;  // 1 GiB
constexpr std::int64_t retry_ms_max_limit = std::int64_t{24} * 3600 * 1000;
constexpr std::int64_t scheduler_threads_max = 64;

constexpr std::array<std::string_view, 5> log_levels = {"trace", "debug", "info", "warn", "error"};

bool is_valid_id(std::string_view s) {
  if (s.empty() || s.size() > id_length_max) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_endpoint(std::string_view s) {
  for (std::string_view scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (s.size() > scheme.size() && s.substr(0, scheme.size()) == scheme) return true;
  }
  return false;
}

/// Reads the keys of one runtime table, remembering which keys it knows so
/// that the rest can be reported as unknown. The first error sticks.
class section_reader {
 public:
  section_reader(const config_file& file, const toml::table& table, std::string prefix)
      : file_(file), table_(table), prefix_(std::move(prefix)) {}

  std::string field(std::string_view key) const { return prefix_ + "." + std::string(key); }

  /// Reads a string; `hint` completes "expected a string".
  void read_string(std::string_view key, bool required, std::string& out,
                   std::string_view hint = {}) {
    const toml::node* n = lookup(key, required);
    if (!n) return;
    if (const auto* v = n->as_string()) {
      out = v->get();
      return;
    }
    fail(n, key, expected("a string", hint, *n));
  }

  void read_bool(std::string_view key, bool& out) {
    const toml::node* n = lookup(key, false);
    if (!n) return;
    if (n->is_boolean()) {
      out = n->as_boolean()->get();
      return;
    }
    fail(n, key, expected("a boolean", {}, *n));
  }

  /// Reads an integer in [min, max].
  void read_int(std::string_view key, std::int64_t min, std::int64_t max, std::int64_t& out) {
    const toml::node* n = lookup(key, false);
    if (!n) return;
    if (!n->is_integer()) {
      fail(n, key, expected("an integer", {}, *n));
      return;
    }
    std::int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      fail(n, key,
           "expected an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
               std::to_string(v));
      return;
    }
    out = v;
  }

  /// Reads an array of message type names ("cfp", "propose", ...) into a set.
  /// Acks are plumbing, always allowed: "ack" may be listed but changes nothing.
  void read_type_set(std::string_view key, message_type_set& out) {
    const toml::node* n = lookup(key, false);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      fail(n, key, expected("an array of message types", "[\"cfp\", \"accept\"]", *n));
      return;
    }
    message_type_set set = message_type_set{1} << static_cast<unsigned>(wire::message_type::ack);
    for (const toml::node& element : *a) {
      const auto* name = element.as_string();
      bool known = false;
      for (std::size_t t = 0; name && t < wire::message_type_count; ++t) {
        if (name->get() == wire::to_string(static_cast<wire::message_type>(t))) {
          set |= message_type_set{1} << t;
          known = true;
        }
      }
      if (!known) {
        std::string names;
        for (std::size_t t = 0; t < wire::message_type_count; ++t) {
          if (!names.empty()) names += ", ";
          names += wire::to_string(static_cast<wire::message_type>(t));
        }
        fail(&element, key,
             "expected message type names (" + names + "), got " +
                 (name ? "\"" + name->get() + "\"" : std::string(toml_type_name(element))));
        return;
      }
    }
    out = set;
  }

  /// Reports the first key of the table that no read_* call asked for.
  void reject_unknown_keys() {
    if (!status_.is_ok()) return;
    for (const auto& [key, value] : table_) {
      if (!known_.count(std::string(key.str()))) {
        fail(&value, key.str(), "unknown key");
        return;
      }
    }
  }

  const toml::node* node_of(std::string_view key) const { return table_.get(key); }

  void fail(const toml::node* where, std::string_view key, std::string_view what) {
    if (status_.is_ok()) status_ = file_.error(where, field(key), what);
  }

  const status& state() const { return status_; }

 private:
  const toml::node* lookup(std::string_view key, bool required) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (!n && required) fail(&table_, key, "missing required field");
    return n;
  }

  static std::string expected(std::string_view what, std::string_view hint, const toml::node& n) {
    std::string s = "expected ";
    s += what;
    if (!hint.empty()) {
      s += " like ";
      s += hint;
    }
    s += ", got ";
    s += toml_type_name(n);
    return s;
  }

  const config_file& file_;
  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> known_;
  status status_;
};

/// The table of a top-level runtime section, or null if absent. A section
/// that is present but not a table is an error.
const toml::table* section(const config_file& file, std::string_view name, status& st) {
  const toml::node* n = file.root().get(name);
  if (!n) return nullptr;
  if (const toml::table* t = n->as_table()) return t;
  st = file.error(n, name, std::string("expected a table, got ") + toml_type_name(*n));
  return nullptr;
}

}  // namespace

config_file::config_file() = default;
config_file::config_file(config_file&&) noexcept = default;
config_file& config_file::operator=(config_file&&) noexcept = default;
config_file::~config_file() = default;

result<config_file> config_file::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int e = errno;
    return status(errc::bad_config, path + ": cannot read: " + std::strerror(e));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    int e = errno;
    return status(errc::bad_config, path + ": cannot read: " + std::strerror(e));
  }
  return parse(text.str(), path);
}

result<config_file> config_file::parse(std::string_view text, std::string name) {
  config_file file;
  try {
    file.root_ = std::make_unique<toml::table>(toml::parse(text, name));
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    return status(errc::bad_config, name + ":" + std::to_string(begin.line) + ":" +
                                        std::to_string(begin.column) + ": " +
                                        std::string(e.description()));
  } catch (const std::exception& e) {
    return status(errc::bad_config, name + ": " + e.what());
  }
  file.path_ = std::move(name);
  return file;
}

const toml::table& config_file::root() const {
  return *root_;
}

std::string config_file::directory() const {
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  return dir.empty() ? std::string(".") : dir.string();
}

status config_file::error(const toml::node* where, std::string_view field,
                          std::string_view what) const {
  std::uint32_t line = 1;
  if (where && where->source().begin.line > 0) line = where->source().begin.line;
  std::string msg = path_ + ":" + std::to_string(line) + ": ";
  msg += field;
  msg += ": ";
  msg += what;
  return status(errc::bad_config, std::move(msg));
}

namespace {

/// A path from the config file, relative to the file's directory.
std::string resolve_path(const config_file& file, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(file.directory()) / p;
  return p.lexically_normal().string();
}

status read_node_section(const config_file& file, node_config& cfg) {
  status st;
  const toml::table* t = section(file, "node", st);
  if (!st.is_ok()) return st;
  if (!t) return file.error(nullptr, "node", "missing required section [node]");

  section_reader r(file, *t, "node");
  r.read_string("id", true, cfg.node_id);
  if (r.state().is_ok() && !is_valid_id(cfg.node_id)) {
    r.fail(r.node_of("id"), "id",
           "expected 1 to 128 characters from [a-z0-9_.-], got \"" + cfg.node_id + "\"");
  }
  r.read_string("enterprise", false, cfg.enterprise);
  if (r.state().is_ok()) {
    if (!r.node_of("enterprise")) {
      cfg.enterprise = cfg.node_id;
    } else if (!is_valid_id(cfg.enterprise)) {
      r.fail(r.node_of("enterprise"), "enterprise",
             "expected 1 to 128 characters from [a-z0-9_.-], got \"" + cfg.enterprise + "\"");
    }
  }
  r.read_string("listen", true, cfg.listen, "tcp://127.0.0.1:7100");
  if (r.state().is_ok() && !is_valid_endpoint(cfg.listen)) {
    r.fail(r.node_of("listen"), "listen",
           "expected a ZeroMQ endpoint starting with tcp://, ipc:// or inproc://, got \"" +
               cfg.listen + "\"");
  }
  std::string data_dir;
  r.read_string("data_dir", true, data_dir);
  if (r.state().is_ok()) {
    if (data_dir.empty()) {
      r.fail(r.node_of("data_dir"), "data_dir", "must not be empty");
    } else {
      cfg.data_dir = resolve_path(file, data_dir);
    }
  }
  r.read_string("log_level", false, cfg.log_level);
  if (r.state().is_ok()) {
    bool known = false;
    for (auto level : log_levels) known = known || cfg.log_level == level;
    if (!known) {
      r.fail(r.node_of("log_level"), "log_level",
             "expected one of trace, debug, info, warn, error, got \"" + cfg.log_level + "\"");
    }
  }
  auto threads = static_cast<std::int64_t>(cfg.scheduler_threads);
  r.read_int("scheduler_threads", 1, scheduler_threads_max, threads);
  cfg.scheduler_threads = static_cast<std::size_t>(threads);
  r.reject_unknown_keys();
  return r.state();
}

status read_admin_section(const config_file& file, node_config& cfg) {
  status st;
  const toml::table* t = section(file, "admin", st);
  if (!st.is_ok() || !t) return st;
  section_reader r(file, *t, "admin");
  r.read_string("address", false, cfg.admin_address, "127.0.0.1");
  if (r.state().is_ok() && cfg.admin_address.empty()) {
    r.fail(r.node_of("address"), "address", "must not be empty");
  }
  std::int64_t port = cfg.admin_port;
  r.read_int("port", 0, 65535, port);
  cfg.admin_port = static_cast<std::uint16_t>(port);
  r.reject_unknown_keys();
  return r.state();
}

status read_store_section(const config_file& file, node_config& cfg) {
  status st;
  const toml::table* t = section(file, "store", st);
  if (!st.is_ok() || !t) return st;
  section_reader r(file, *t, "store");
  r.read_bool("sync", cfg.store_sync);
  r.read_bool("group_commit", cfg.store_group_commit);
  std::int64_t gather_us = cfg.store_gather_us;
  r.read_int("gather_us", 0, 100'000, gather_us);
  cfg.store_gather_us = static_cast<std::uint32_t>(gather_us);
  std::int64_t map_mib = static_cast<std::int64_t>(cfg.store_map_bytes_initial >> 20);
  r.read_int("map_mib", 1, map_mib_max, map_mib);
  cfg.store_map_bytes_initial = static_cast<std::size_t>(map_mib) << 20;
  r.reject_unknown_keys();
  return r.state();
}

status read_transport_section(const config_file& file, node_config& cfg) {
  status st;
  const toml::table* t = section(file, "transport", st);
  if (!st.is_ok() || !t) return st;
  section_reader r(file, *t, "transport");
  auto frame = static_cast<std::int64_t>(cfg.frame_bytes_max);
  r.read_int("frame_bytes_max", 1, frame_bytes_max_limit, frame);
  cfg.frame_bytes_max = static_cast<std::size_t>(frame);
  r.read_int("retry_initial_ms", 1, retry_ms_max_limit, cfg.retry_initial_ms);
  r.read_int("retry_max_ms", 1, retry_ms_max_limit, cfg.retry_max_ms);
  r.read_bool("bundle", cfg.transport_bundle);
  std::int64_t replay_hours = cfg.replay_window_us / 3'600'000'000LL;
  r.read_int("replay_window_hours", 1, 24 * 365, replay_hours);
  cfg.replay_window_us = replay_hours * 3'600'000'000LL;
  std::int64_t skew_s = cfg.clock_skew_max_us / 1'000'000;
  r.read_int("clock_skew_max_s", 1, 24 * 3600, skew_s);
  cfg.clock_skew_max_us = skew_s * 1'000'000;
  r.read_int("peer_messages_per_s", 1, std::int64_t{1} << 30, cfg.peer_messages_per_s);
  cfg.peer_burst = cfg.peer_messages_per_s;
  r.read_int("peer_burst", 1, std::int64_t{1} << 30, cfg.peer_burst);
  r.read_int("peer_queue_max", 1, std::int64_t{1} << 24, cfg.peer_queue_max);
  if (r.state().is_ok() && cfg.retry_max_ms < cfg.retry_initial_ms) {
    const toml::node* where = r.node_of("retry_max_ms");
    r.fail(where ? where : r.node_of("retry_initial_ms"), "retry_max_ms",
           "must be at least retry_initial_ms (" + std::to_string(cfg.retry_initial_ms) + ")");
  }
  r.reject_unknown_keys();
  return r.state();
}

/// [[peers]] public_key = "<Z85>" or public_key_file = "<path>" (a node.pub):
/// required with CURVE on, optional with insecure = true.
void read_peer_key(const config_file& file, const node_config& cfg, const toml::table& t,
                   section_reader& r, peer_config& p) {
  std::string text;
  std::string path;
  r.read_string("public_key", false, text, "\"<40 Z85 characters>\"");
  r.read_string("public_key_file", false, path, "\"keys/partner.pub\"");
  if (!r.state().is_ok()) return;
  const toml::node* key_node = r.node_of("public_key");
  const toml::node* file_node = r.node_of("public_key_file");
  if (key_node && file_node) {
    r.fail(file_node, "public_key_file", "give public_key or public_key_file, not both");
    return;
  }
  if (key_node) {
    auto key = keys::parse_public_key(text);
    if (!key) return r.fail(key_node, "public_key", key.error().message());
    p.public_key = keys::to_z85(*key);
  } else if (file_node) {
    auto key = keys::load_public_key(resolve_path(file, path));
    if (!key) return r.fail(file_node, "public_key_file", key.error().message());
    p.public_key = keys::to_z85(*key);
  } else if (!cfg.insecure) {
    r.fail(&t, "public_key",
           "missing: with CurveZMQ on ([security] without insecure = true) every peer needs "
           "public_key = \"<Z85>\" or public_key_file = \"<its node.pub>\"");
  }
}

status read_security_section(const config_file& file, node_config& cfg) {
  status st;
  const toml::table* t = section(file, "security", st);
  if (!st.is_ok()) return st;
  if (!t) {
    return file.error(nullptr, "security",
                      "missing section [security]: set secret_key_file = \"<dir>/node.key\" "
                      "(gearmesh keys generate --out <dir>) for CurveZMQ links, or insecure = "
                      "true for plain TCP in a local demo");
  }
  section_reader r(file, *t, "security");
  r.read_bool("insecure", cfg.insecure);
  std::string key_file;
  r.read_string("secret_key_file", false, key_file, "\"keys/node.key\"");
  if (r.state().is_ok()) {
    if (cfg.insecure && r.node_of("secret_key_file")) {
      r.fail(r.node_of("secret_key_file"), "secret_key_file",
             "contradicts insecure = true: remove one of them");
    } else if (!cfg.insecure && key_file.empty()) {
      r.fail(r.node_of("secret_key_file") ? r.node_of("secret_key_file") : t, "secret_key_file",
             "required unless insecure = true (create one with gearmesh keys generate --out DIR)");
    } else if (!key_file.empty()) {
      cfg.secret_key_file = resolve_path(file, key_file);
    }
  }
  r.reject_unknown_keys();
  return r.state();
}

status read_peers(const config_file& file, node_config& cfg) {
  const toml::node* n = file.root().get("peers");
  if (!n) return {};
  const toml::array* peers = n->as_array();
  if (!peers) {
    return file.error(
        n, "peers",
        std::string("expected an array of tables [[peers]], got ") + toml_type_name(*n));
  }
  if (peers->size() > peers_count_max) {
    return file.error(n, "peers", "more than " + std::to_string(peers_count_max) + " peers");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < peers->size(); ++i) {
    const toml::node& element = (*peers)[i];
    std::string prefix = "peers[" + std::to_string(i) + "]";
    const toml::table* t = element.as_table();
    if (!t) {
      return file.error(&element, prefix,
                        std::string("expected a table, got ") + toml_type_name(element));
    }
    section_reader r(file, *t, prefix);
    peer_config p;
    r.read_string("id", true, p.id);
    if (r.state().is_ok()) {
      if (!is_valid_id(p.id)) {
        r.fail(r.node_of("id"), "id",
               "expected 1 to 128 characters from [a-z0-9_.-], got \"" + p.id + "\"");
      } else if (p.id == cfg.node_id) {
        r.fail(r.node_of("id"), "id", "a node cannot be its own peer (\"" + p.id + "\")");
      } else if (!seen.insert(p.id).second) {
        r.fail(r.node_of("id"), "id", "duplicate peer id \"" + p.id + "\"");
      }
    }
    r.read_string("endpoint", true, p.endpoint, "tcp://127.0.0.1:7101");
    if (r.state().is_ok() && !is_valid_endpoint(p.endpoint)) {
      r.fail(r.node_of("endpoint"), "endpoint",
             "expected a ZeroMQ endpoint starting with tcp://, ipc:// or inproc://, got \"" +
                 p.endpoint + "\"");
    }
    read_peer_key(file, cfg, *t, r, p);
    r.read_type_set("receive", p.receive);
    r.read_type_set("send", p.send);
    r.reject_unknown_keys();
    if (!r.state().is_ok()) return r.state();
    cfg.peers.push_back(std::move(p));
  }
  return {};
}

}  // namespace

result<node_config> parse_node_config(const config_file& file) {
  node_config cfg;
  for (auto* read : {read_node_section, read_admin_section, read_store_section,
                     read_transport_section, read_security_section, read_peers}) {
    if (status st = read(file, cfg); !st.is_ok()) return st;
  }
  return cfg;
}

const char* toml_type_name(const toml::node& n) noexcept {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

}  // namespace gearmesh
