// Test fixture: a real gearmesh-node process on 127.0.0.1.
//
// Writes the node's config into a temporary directory, starts the binary with
// fork/exec, waits (bounded) until its admin API answers, and stops it with
// SIGTERM (or SIGKILL on request) when the fixture goes away. A stopped or
// dead node can be started again: it reuses its config, data directory, ports
// and log file (appended to), like an operator restarting it.
//
// Threading: one fixture is used by one thread at a time, except api(), which
// only reads immutable members and may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

extern char** environ;

#include "../support/free_port.hpp"
#include "../support/temp_dir.hpp"
#include "gearmesh/node/admin.hpp"

namespace gearmesh::testing {

class node_process {
 public:
  /// `config` is the node's whole TOML text; `dir` holds config, data and log.
  node_process(std::string binary, std::string id, std::string dir, std::string config,
               std::uint16_t admin_port)
      : binary_(std::move(binary)),
        id_(std::move(id)),
        dir_(std::move(dir)),
        admin_port_(admin_port) {
    std::filesystem::create_directories(dir_);
    std::ofstream(config_path()) << config;
  }
  ~node_process() { stop(); }

  std::string config_path() const { return dir_ + "/" + id_ + ".toml"; }
  std::string log_path() const { return dir_ + "/" + id_ + ".log"; }
  std::string data_dir() const { return dir_ + "/data-" + id_; }
  std::uint16_t admin_port() const { return admin_port_; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  /// Extra environment variables for the processes started from now on, on
  /// top of (and overriding) this process's environment. Replaces the
  /// previous set; an empty map starts children with the plain environment.
  void set_environment(std::map<std::string, std::string> vars) { env_ = std::move(vars); }

  /// Starts the process and waits up to `timeout` for GET /v1/health. False if
  /// it exited meanwhile (exit_status() says how) or did not answer in time
  /// (it is then still running).
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    // Everything the child needs is built before fork: after fork in a
    // threaded process only async-signal-safe calls are allowed.
    const std::string log = log_path(), cfg = config_path(), data = data_dir();
    std::vector<std::string> env_strings;
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      auto name = kv.substr(0, kv.find('='));
      if (!env_.contains(std::string(name))) env_strings.emplace_back(kv);
    }
    for (const auto& [k, v] : env_) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> argv{const_cast<char*>(binary_.c_str()), const_cast<char*>("--config"),
                            const_cast<char*>(cfg.c_str()),     const_cast<char*>("--data-dir"),
                            const_cast<char*>(data.c_str()),    nullptr};
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      // The parent's sockets (admin client connections) must not outlive it here.
      ::close_range(3, ~0U, 0);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = admin::call("127.0.0.1", admin_port_, "GET", "/v1/health", {}, 500);
      if (r && r->status == 200) return true;
      if (poll()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  /// Non-blocking: if the process has exited (by itself or by a signal),
  /// reaps it and returns its wait status (see exit_status()); else nullopt.
  std::optional<int> poll() {
    if (pid_ <= 0) return std::nullopt;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return std::nullopt;
    pid_ = -1;
    status_ = st;
    return st;
  }

  /// SIGTERM (clean stop) or SIGKILL; waits for exit. Returns the exit status
  /// (0 when it was not running).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = st;
    return st;
  }

  /// The wait status of the last process that exited (waitpid format).
  int exit_status() const { return status_; }

  /// GET/POST against the node's admin API; parsed JSON or null on failure.
  nlohmann::json api(const std::string& method, const std::string& target,
                     const std::string& body = {}) const {
    auto r = admin::call("127.0.0.1", admin_port_, method, target, body, 5000);
    if (!r) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return nullptr;
    j["_http_status"] = r->status;
    return j;
  }

  std::string log() const { return log_since(0); }

  /// Bytes in the log file so far (an offset for log_since()).
  std::uintmax_t log_size() const {
    std::error_code ec;
    auto n = std::filesystem::file_size(log_path(), ec);
    return ec ? 0 : n;
  }

  /// The log from byte `offset` on, e.g. what one lifetime of the process wrote.
  std::string log_since(std::uintmax_t offset) const {
    std::ifstream in(log_path());
    in.seekg(static_cast<std::streamoff>(offset));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::string binary_;
  std::string id_;
  std::string dir_;
  std::uint16_t admin_port_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int status_ = 0;
};

}  // namespace gearmesh::testing
