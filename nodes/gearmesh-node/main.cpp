// gearmesh-node: one Gearmesh node process.
//
//   gearmesh-node --config FILE [--data-dir DIR] [--log-level LEVEL]
//
// Runs until SIGINT or SIGTERM, then stops cleanly: no new input is taken,
// everything queued is committed and synced, the store is closed. A store
// failure (disk full, I/O error) stops the node the same way and exits 1
// (see node::on_fatal). Exit codes: 0 clean stop, 1 runtime or store
// failure, 2 bad command line or config.
//
// SIGHUP, or POST /v1/reload on the admin API, re-reads FILE and applies its
// [[peers]] -- the trust store -- without a restart: partners added, revoked
// (their connections closed), re-keyed, or with new receive/send lists. Other
// changes take effect at the next start. A file that does not parse changes
// nothing; the error is logged (and returned by /v1/reload).
#include <pthread.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <mutex>

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gearmesh/actors/install.hpp"
#include "gearmesh/node/config.hpp"
#include "gearmesh/node/node.hpp"

namespace {

/// Re-reads the config file and applies its trust store. Serialised: SIGHUP
/// (main thread) and /v1/reload (admin thread) may race.
gearmesh::result<gearmesh::peers_update> reload(gearmesh::node& n, const std::string& path) {
  static std::mutex serialised;
  std::lock_guard<std::mutex> guard{serialised};
  auto file = gearmesh::config_file::load(path);
  if (!file) return file.error();
  auto cfg = gearmesh::parse_node_config(*file);
  if (!cfg) return cfg.error();
  if (cfg->insecure != n.config().insecure || cfg->secret_key_file != n.config().secret_key_file) {
    spdlog::warn("{}: [security] changes take effect at the next start", n.config().node_id);
  }
  return n.update_peers(std::move(cfg->peers));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gearmesh-node: a Gearmesh manufacturing collaboration node"};
  std::string config_path;
  std::string data_dir;
  std::string log_level;
  app.add_option("--config", config_path, "node configuration (TOML)")->required();
  app.add_option("--data-dir", data_dir, "overrides [node] data_dir");
  app.add_option("--log-level", log_level, "overrides [node] log_level");
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto file = gearmesh::config_file::load(config_path);
  if (!file) {
    std::fprintf(stderr, "gearmesh-node: %s\n", file.error().message().c_str());
    return 2;
  }
  auto cfg = gearmesh::parse_node_config(*file);
  if (!cfg) {
    std::fprintf(stderr, "gearmesh-node: %s\n", cfg.error().message().c_str());
    return 2;
  }
  if (!data_dir.empty()) cfg->data_dir = data_dir;
  if (!log_level.empty()) cfg->log_level = log_level;
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  auto n = gearmesh::node::open(*cfg);
  if (!n) {
    spdlog::error("{}: cannot open: {}", cfg->node_id, n.error().to_string());
    return 1;
  }
  if (auto st = gearmesh::actors::install_roles(**n, *file); !st) {
    spdlog::error("{}: {}", cfg->node_id, st.message());
    return st.code() == gearmesh::errc::bad_config ? 2 : 1;
  }
  // A store failure wakes the sigwait below; SIGTERM is how it is woken.
  static std::atomic<bool> fatal{false};
  (*n)->on_fatal([](const gearmesh::status&) {
    fatal = true;
    ::kill(::getpid(), SIGTERM);
  });
  gearmesh::node& node = **n;
  node.admin_routes().add(
      "POST", "/v1/reload", [&node, config_path](const gearmesh::admin::request&) {
        auto u = reload(node, config_path);
        if (!u) {
          spdlog::error("{}: reload: {}", node.config().node_id, u.error().message());
          return gearmesh::admin::error_response(400, u.error().message());
        }
        nlohmann::json j{{"added", u->added},
                         {"removed", u->removed},
                         {"changed", u->changed},
                         {"policy_changed", u->policy_changed}};
        return gearmesh::admin::response{200, j.dump()};
      });
  if (auto st = (*n)->serve(); !st) {
    spdlog::error("{}: cannot serve: {}", cfg->node_id, st.to_string());
    return 1;
  }

  int sig = 0;
  for (;;) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGHUP) break;
    spdlog::info("{}: SIGHUP: reloading the trust store from {}", cfg->node_id, config_path);
    if (auto u = reload(node, config_path); !u)
      spdlog::error("{}: reload: {} (nothing changed)", cfg->node_id, u.error().message());
  }
  if (fatal) {
    spdlog::error("{}: stopping after a store failure: {}", cfg->node_id,
                  (*n)->failure().to_string());
    (*n)->stop();
    return 1;
  }
  spdlog::info("{}: {} received, stopping", cfg->node_id, sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*n)->stop();
  return 0;
}
