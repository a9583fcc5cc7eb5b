#include "gearmesh/node/config.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gearmesh/keys/keys.hpp"
#include "gearmesh/wire/messages.hpp"

namespace gearmesh {
namespace {

constexpr std::string_view valid_config = R"(# velo: the OEM
[node]
id = "velo"
enterprise = "velo-bikes"
listen = "tcp://127.0.0.1:7100"
data_dir = "data/velo"
log_level = "debug"

[admin]
address = "127.0.0.1"
port = 8100

[store]
sync = false
group_commit = false
gather_us = 250
map_mib = 128

[transport]
frame_bytes_max = 32768
retry_initial_ms = 100
retry_max_ms = 2000
replay_window_hours = 48
clock_skew_max_s = 600

peer_messages_per_s = 500
peer_burst = 1000
peer_queue_max = 64

[security]
secret_key_file = "keys/velo/node.key"

[[peers]]
id = "framecraft"
endpoint = "tcp://127.0.0.1:7101"
public_key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
receive = ["propose", "refuse", "confirm", "failure"]
send = ["cfp", "accept", "reject", "cancel"]

[[peers]]
id = "alloyframe"
endpoint = "tcp://127.0.0.1:7102"
public_key = "  rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7  "

[buyer]
anything = "is ignored here"

[[items]]
id = "E-BIKE"
)";

/// `text` with "[security] insecure = true" appended unless it has a
/// [security] section: the line numbers of everything before stay the same.
std::string with_security(std::string_view text) {
  std::string s(text);
  if (s.find("[security]") == std::string::npos) s += "\n[security]\ninsecure = true\n";
  return s;
}

/// Parses `text` (see with_security) as "velo.toml" and returns the error
/// message of parse_node_config.
std::string config_error(std::string_view text) {
  auto file = config_file::parse(with_security(text), "velo.toml");
  if (!file) return file.error().message();
  auto cfg = parse_node_config(*file);
  if (cfg) return "ok";
  EXPECT_EQ(cfg.error().code(), errc::bad_config);
  return cfg.error().message();
}

constexpr std::string_view minimal_node = R"([node]
id = "velo"
listen = "tcp://127.0.0.1:7100"
data_dir = "/var/lib/gearmesh/velo"
)";

TEST(config, valid_file_round_trip) {
  auto file = config_file::parse(valid_config, "examples/demo/velo.toml");
  ASSERT_TRUE(file) << file.error().to_string();
  EXPECT_EQ(file->path(), "examples/demo/velo.toml");
  EXPECT_EQ(file->directory(), "examples/demo");
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->node_id, "velo");
  EXPECT_EQ(cfg->enterprise, "velo-bikes");
  EXPECT_EQ(cfg->listen, "tcp://127.0.0.1:7100");
  EXPECT_EQ(cfg->data_dir, "examples/demo/data/velo");
  EXPECT_EQ(cfg->log_level, "debug");
  EXPECT_EQ(cfg->admin_address, "127.0.0.1");
  EXPECT_EQ(cfg->admin_port, 8100);
  EXPECT_FALSE(cfg->store_sync);
  EXPECT_FALSE(cfg->store_group_commit);
  EXPECT_EQ(cfg->store_map_bytes_initial, std::size_t{128} << 20);
  EXPECT_EQ(cfg->frame_bytes_max, 32768u);
  EXPECT_EQ(cfg->retry_initial_ms, 100);
  EXPECT_EQ(cfg->retry_max_ms, 2000);
  EXPECT_EQ(cfg->store_gather_us, 250u);
  EXPECT_EQ(cfg->replay_window_us, 48LL * 3'600'000'000LL);
  EXPECT_EQ(cfg->clock_skew_max_us, 600LL * 1'000'000);
  ASSERT_EQ(cfg->peers.size(), 2u);
  EXPECT_EQ(cfg->peers[0].id, "framecraft");
  EXPECT_EQ(cfg->peers[0].endpoint, "tcp://127.0.0.1:7101");
  EXPECT_EQ(cfg->peers[1].id, "alloyframe");
  EXPECT_EQ(cfg->peer_messages_per_s, 500);
  EXPECT_EQ(cfg->peer_burst, 1000);
  EXPECT_EQ(cfg->peer_queue_max, 64);
  EXPECT_FALSE(cfg->insecure);
  EXPECT_EQ(cfg->secret_key_file, "examples/demo/keys/velo/node.key");
  EXPECT_EQ(cfg->peers[0].public_key, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
  EXPECT_EQ(cfg->peers[1].public_key, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
  auto bit = [](wire::message_type t) { return message_type_set{1} << static_cast<unsigned>(t); };
  using wire::message_type;
  EXPECT_EQ(cfg->peers[0].receive, bit(message_type::propose) | bit(message_type::refuse) |
                                       bit(message_type::confirm) | bit(message_type::failure) |
                                       bit(message_type::ack));
  EXPECT_EQ(cfg->peers[0].send, bit(message_type::cfp) | bit(message_type::accept) |
                                    bit(message_type::reject) | bit(message_type::cancel) |
                                    bit(message_type::ack));
  EXPECT_EQ(cfg->peers[1].receive, all_message_types);
  EXPECT_EQ(cfg->peers[1].send, all_message_types);
  // Role sections stay available to the actors library.
  EXPECT_EQ(file->root()["buyer"]["anything"].value_or(std::string{}), "is ignored here");
}

TEST(config, defaults) {
  auto file = config_file::parse(with_security(minimal_node), "velo.toml");
  ASSERT_TRUE(file);
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  node_config defaults;
  EXPECT_EQ(cfg->enterprise, "velo");  // defaults to the id
  EXPECT_EQ(cfg->data_dir, "/var/lib/gearmesh/velo");
  EXPECT_EQ(cfg->log_level, "info");
  EXPECT_EQ(cfg->scheduler_threads, 1u);
  EXPECT_EQ(cfg->admin_address, "127.0.0.1");
  EXPECT_EQ(cfg->admin_port, 0);
  EXPECT_EQ(cfg->store_sync, defaults.store_sync);
  EXPECT_TRUE(cfg->store_group_commit);
  EXPECT_EQ(cfg->store_map_bytes_initial, defaults.store_map_bytes_initial);
  EXPECT_EQ(cfg->frame_bytes_max, defaults.frame_bytes_max);
  EXPECT_EQ(cfg->retry_initial_ms, defaults.retry_initial_ms);
  EXPECT_EQ(cfg->retry_max_ms, defaults.retry_max_ms);
  EXPECT_EQ(cfg->replay_window_us, defaults.replay_window_us);
  EXPECT_EQ(cfg->clock_skew_max_us, defaults.clock_skew_max_us);
  EXPECT_EQ(cfg->peer_messages_per_s, defaults.peer_messages_per_s);
  EXPECT_EQ(cfg->peer_burst, defaults.peer_messages_per_s);  // one second's worth
  EXPECT_EQ(cfg->peer_queue_max, defaults.peer_queue_max);
  EXPECT_TRUE(cfg->insecure);
  EXPECT_TRUE(cfg->secret_key_file.empty());
  EXPECT_TRUE(cfg->peers.empty());
}

TEST(config, relative_data_dir_resolves_against_config_directory) {
  auto dir = std::filesystem::temp_directory_path() /
             ("gearmesh-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "etc");
  auto path = dir / "etc" / "velo.toml";
  {
    std::ofstream out(path);
    out << "[node]\nid = \"velo\"\nlisten = \"ipc:///tmp/velo\"\ndata_dir = \"../data/./velo\"\n"
        << "[security]\nsecret_key_file = \"../keys/velo/node.key\"\n";
  }
  auto file = config_file::load(path.string());
  ASSERT_TRUE(file) << file.error().to_string();
  EXPECT_EQ(file->directory(), (dir / "etc").string());
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->data_dir, (dir / "data" / "velo").string());
  EXPECT_EQ(cfg->secret_key_file, (dir / "keys" / "velo" / "node.key").string());

  // A file name without a directory resolves against ".".
  auto bare = config_file::parse(
      with_security("[node]\nid = \"v\"\nlisten = \"inproc://v\"\ndata_dir = \"d\"\n"),
      "velo.toml");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->directory(), ".");
  EXPECT_EQ(parse_node_config(*bare)->data_dir, "d");
  std::filesystem::remove_all(dir);
}

TEST(config, unreadable_file) {
  auto file = config_file::load("/nonexistent/gearmesh/velo.toml");
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code(), errc::bad_config);
  EXPECT_EQ(file.error().message(),
            "/nonexistent/gearmesh/velo.toml: cannot read: No such file or directory");
}

TEST(config, toml_syntax_error_names_line_and_column) {
  auto file = config_file::parse("[node]\nid = \"velo\"\nlisten = tcp://x\n", "velo.toml");
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code(), errc::bad_config);
  EXPECT_EQ(file.error().message().rfind("velo.toml:3:11: Error while parsing", 0), 0u)
      << file.error().message();
}

TEST(config, wrong_type_names_file_line_and_field) {
  EXPECT_EQ(config_error("[node]\nid = \"velo\"\nlisten = 7100\ndata_dir = \"d\"\n"),
            "velo.toml:3: node.listen: expected a string like tcp://127.0.0.1:7100, got an "
            "integer");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[admin]\nport = \"8100\"\n"),
            "velo.toml:6: admin.port: expected an integer, got a string");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[store]\nsync = 1\n"),
            "velo.toml:6: store.sync: expected a boolean, got an integer");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[store]\ngroup_commit = \"no\"\n"),
            "velo.toml:6: store.group_commit: expected a boolean, got a string");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[transport]\nretry_max_ms = 1.5\n"),
            "velo.toml:6: transport.retry_max_ms: expected an integer, got a float");
  EXPECT_EQ(config_error("store = 3\n" + std::string(minimal_node)),
            "velo.toml:1: store: expected a table, got an integer");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[peers]\nid = \"x\"\n"),
            "velo.toml:5: peers: expected an array of tables [[peers]], got a table");
}

TEST(config, missing_required_fields) {
  EXPECT_EQ(config_error("[buyer]\nx = 1\n"), "velo.toml:1: node: missing required section [node]");
  EXPECT_EQ(
      config_error("# comment\n[node]\nlisten = \"tcp://127.0.0.1:7100\"\ndata_dir = \"d\"\n"),
      "velo.toml:2: node.id: missing required field");
  EXPECT_EQ(config_error("[node]\nid = \"velo\"\ndata_dir = \"d\"\n"),
            "velo.toml:1: node.listen: missing required field");
  EXPECT_EQ(config_error("[node]\nid = \"velo\"\nlisten = \"tcp://127.0.0.1:7100\"\n"),
            "velo.toml:1: node.data_dir: missing required field");
  EXPECT_EQ(config_error(std::string(minimal_node) + "\n[[peers]]\nid = \"framecraft\"\n"),
            "velo.toml:6: peers[0].endpoint: missing required field");
}

TEST(config, unknown_keys_in_runtime_sections) {
  EXPECT_EQ(config_error("[node]\nid = \"velo\"\nlisen = \"tcp://127.0.0.1:7100\"\n"
                         "listen = \"tcp://127.0.0.1:7100\"\ndata_dir = \"d\"\n"),
            "velo.toml:3: node.lisen: unknown key");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[transport]\npeer_rate = 5\n"),
            "velo.toml:6: transport.peer_rate: unknown key");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[admin]\nport = 1\nhost = \"x\"\n"),
            "velo.toml:7: admin.host: unknown key");
  EXPECT_EQ(config_error(std::string(minimal_node) +
                         "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\nkey = \"k\"\n"),
            "velo.toml:8: peers[0].key: unknown key");
  // Unknown top-level sections belong to roles and are not errors here.
  EXPECT_EQ(config_error(std::string(minimal_node) + "[factory]\nfoo = 1\n[[machines]]\nid = 1\n"),
            "ok");
}

TEST(config, invalid_values) {
  EXPECT_EQ(config_error("[node]\nid = \"Velo!\"\nlisten = \"tcp://h:1\"\ndata_dir = \"d\"\n"),
            "velo.toml:2: node.id: expected 1 to 128 characters from [a-z0-9_.-], got \"Velo!\"");
  EXPECT_EQ(config_error("[node]\nid = \"velo\"\nlisten = \"http://h:1\"\ndata_dir = \"d\"\n"),
            "velo.toml:3: node.listen: expected a ZeroMQ endpoint starting with tcp://, ipc:// "
            "or inproc://, got \"http://h:1\"");
  EXPECT_EQ(config_error(std::string(minimal_node) + "log_level = \"loud\"\n"),
            "velo.toml:5: node.log_level: expected one of trace, debug, info, warn, error, got "
            "\"loud\"");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[admin]\nport = 70000\n"),
            "velo.toml:6: admin.port: expected an integer in 0..65535, got 70000");
  EXPECT_EQ(config_error(std::string(minimal_node) + "scheduler_threads = 0\n"),
            "velo.toml:5: node.scheduler_threads: expected an integer in 1..64, got 0");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[store]\ngather_us = -1\n"),
            "velo.toml:6: store.gather_us: expected an integer in 0..100000, got -1");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[store]\nmap_mib = 0\n"),
            "velo.toml:6: store.map_mib: expected an integer in 1..1048576, got 0");
  EXPECT_EQ(config_error(std::string(minimal_node) + "[transport]\nframe_bytes_max = -1\n"),
            "velo.toml:6: transport.frame_bytes_max: expected an integer in 1..1073741824, got -1");
  EXPECT_EQ(config_error(std::string(minimal_node) +
                         "[transport]\nretry_initial_ms = 500\nretry_max_ms = 100\n"),
            "velo.toml:7: transport.retry_max_ms: must be at least retry_initial_ms (500)");
}

TEST(config, peer_ids_unique_and_not_self) {
  std::string base(minimal_node);
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n"
                                "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:2\"\n"),
            "velo.toml:9: peers[1].id: duplicate peer id \"a\"");
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"velo\"\nendpoint = \"tcp://h:1\"\n"),
            "velo.toml:6: peers[0].id: a node cannot be its own peer (\"velo\")");
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"b\"\nendpoint = \"udp://h:1\"\n"),
            "velo.toml:7: peers[0].endpoint: expected a ZeroMQ endpoint starting with tcp://, "
            "ipc:// or inproc://, got \"udp://h:1\"");
}

TEST(config, scheduler_threads) {
  auto file = config_file::parse(
      with_security(std::string(minimal_node) + "scheduler_threads = 2\n"), "velo.toml");
  ASSERT_TRUE(file);
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->scheduler_threads, 2u);
}

TEST(config, security_is_explicit) {
  // No [security] at all: the operator must choose.
  auto file = config_file::parse(minimal_node, "velo.toml");
  ASSERT_TRUE(file);
  auto cfg = parse_node_config(*file);
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().message(),
            "velo.toml:1: security: missing section [security]: set secret_key_file = "
            "\"<dir>/node.key\" (gearmesh keys generate --out <dir>) for CurveZMQ links, or "
            "insecure = true for plain TCP in a local demo");
  std::string base(minimal_node);
  EXPECT_EQ(config_error(base + "[security]\ninsecure = false\n"),
            "velo.toml:5: security.secret_key_file: required unless insecure = true (create one "
            "with gearmesh keys generate --out DIR)");
  EXPECT_EQ(config_error(base + "[security]\ninsecure = true\nsecret_key_file = \"k\"\n"),
            "velo.toml:7: security.secret_key_file: contradicts insecure = true: remove one of "
            "them");
  EXPECT_EQ(config_error(base + "[security]\ninsecure = \"yes\"\n"),
            "velo.toml:6: security.insecure: expected a boolean, got a string");
  EXPECT_EQ(config_error(base + "[security]\nsecret_key_file = \"k\"\nkey = \"x\"\n"),
            "velo.toml:7: security.key: unknown key");
}

TEST(config, peers_need_keys_with_curve_on) {
  std::string base = std::string(minimal_node) + "[security]\nsecret_key_file = \"k\"\n";
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n"),
            "velo.toml:7: peers[0].public_key: missing: with CurveZMQ on ([security] without "
            "insecure = true) every peer needs public_key = \"<Z85>\" or public_key_file = "
            "\"<its node.pub>\"");
  EXPECT_EQ(config_error(
                base + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\npublic_key = \"short\"\n"),
            "velo.toml:10: peers[0].public_key: a key is 40 Z85 characters, got 5");
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n"
                                "public_key = \"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\"\n"
                                "public_key_file = \"a.pub\"\n"),
            "velo.toml:11: peers[0].public_key_file: give public_key or public_key_file, not "
            "both");
  EXPECT_EQ(config_error(base + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n"
                                "public_key_file = \"/nonexistent/a.pub\"\n")
                .rfind("velo.toml:10: peers[0].public_key_file: ", 0),
            0u);
  // Insecure: keys are optional.
  EXPECT_EQ(
      config_error(std::string(minimal_node) + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n"),
      "ok");
}

TEST(config, peer_public_key_file_is_read_relative_to_the_config) {
  auto dir = std::filesystem::temp_directory_path() /
             ("gearmesh-config-key-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto key = keys::write_keypair(dir / "keys" / "a", false);
  ASSERT_TRUE(key) << key.error().to_string();
  {
    std::ofstream out(dir / "velo.toml");
    out << minimal_node << "[security]\nsecret_key_file = \"keys/velo/node.key\"\n"
        << "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\npublic_key_file = "
           "\"keys/a/node.pub\"\n";
  }
  auto file = config_file::load((dir / "velo.toml").string());
  ASSERT_TRUE(file);
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  ASSERT_EQ(cfg->peers.size(), 1u);
  EXPECT_EQ(cfg->peers[0].public_key, keys::to_z85(*key));
  std::filesystem::remove_all(dir);
}

TEST(config, peer_message_type_lists) {
  std::string base =
      std::string(minimal_node) + "[[peers]]\nid = \"a\"\nendpoint = \"tcp://h:1\"\n";
  EXPECT_EQ(config_error(base + "receive = [\"cfp\", \"proposal\"]\n"),
            "velo.toml:8: peers[0].receive: expected message type names (cfp, propose, refuse, "
            "accept, reject, confirm, failure, cancel, ack, capacity_offer, book_capacity, "
            "capacity_booked, capacity_refused, resolve, resolution, production_event, "
            "capacity_cancelled), got "
            "\"proposal\"");
  EXPECT_EQ(config_error(base + "send = \"cfp\"\n"),
            "velo.toml:8: peers[0].send: expected an array of message types like [\"cfp\", "
            "\"accept\"], got a string");
  EXPECT_EQ(config_error(base + "send = [1]\n"),
            "velo.toml:8: peers[0].send: expected message type names (cfp, propose, refuse, "
            "accept, reject, confirm, failure, cancel, ack, capacity_offer, book_capacity, "
            "capacity_booked, capacity_refused, resolve, resolution, production_event, "
            "capacity_cancelled), got an integer");
  // The directory messages are names like any other.
  auto lists = config_file::parse(
      with_security(base + "receive = [\"resolve\"]\nsend = [\"resolution\"]\n"), "velo.toml");
  ASSERT_TRUE(lists);
  auto parsed = parse_node_config(*lists);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_TRUE(parsed->peers[0].receive &
              (message_type_set{1} << static_cast<unsigned>(wire::message_type::resolve)));
  EXPECT_TRUE(parsed->peers[0].send &
              (message_type_set{1} << static_cast<unsigned>(wire::message_type::resolution)));
  // An empty list still lets acknowledgements through.
  auto file = config_file::parse(with_security(base + "receive = []\n"), "velo.toml");
  ASSERT_TRUE(file);
  auto cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->peers[0].receive,
            message_type_set{1} << static_cast<unsigned>(wire::message_type::ack));
  // The capacity sharing types (docs/protocol.md section 6.5) have names too.
  file = config_file::parse(
      with_security(base + "send = [\"capacity_offer\", \"capacity_booked\"]\n"
                           "receive = [\"book_capacity\", \"capacity_refused\"]\n"),
      "velo.toml");
  ASSERT_TRUE(file);
  cfg = parse_node_config(*file);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  auto bit = [](wire::message_type t) { return message_type_set{1} << static_cast<unsigned>(t); };
  EXPECT_EQ(cfg->peers[0].send, bit(wire::message_type::capacity_offer) |
                                    bit(wire::message_type::capacity_booked) |
                                    bit(wire::message_type::ack));
  EXPECT_EQ(cfg->peers[0].receive, bit(wire::message_type::book_capacity) |
                                       bit(wire::message_type::capacity_refused) |
                                       bit(wire::message_type::ack));
}

TEST(config, error_helper_uses_node_line) {
  auto file = config_file::parse(valid_config, "velo.toml");
  ASSERT_TRUE(file);
  const toml::node* port = file->root()["admin"]["port"].node();
  ASSERT_NE(port, nullptr);
  status st = file->error(port, "admin.port", "in use");
  EXPECT_EQ(st.code(), errc::bad_config);
  EXPECT_EQ(st.message(), "velo.toml:11: admin.port: in use");
  EXPECT_EQ(file->error(nullptr, "buyer", "missing").message(), "velo.toml:1: buyer: missing");
}

TEST(config, move_keeps_root) {
  auto file = config_file::parse(valid_config, "velo.toml");
  ASSERT_TRUE(file);
  config_file moved = std::move(*file);
  EXPECT_EQ(moved.root()["node"]["id"].value_or(std::string{}), "velo");
}

}  // namespace
}  // namespace gearmesh
