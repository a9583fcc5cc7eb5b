// Test fixture: a real gearmesh-node process on 127.0.0.1.
//
// Writes the node's config into a temporary directory, starts the binary with
// fork/exec, waits (bounded) until its admin API answers, and stops it with
// SIGTERM (or SIGKILL on request) when the fixture goes away.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
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

#include "gearmesh/node/admin.hpp"

namespace gearmesh::testing {

/// A TCP port on 127.0.0.1 that was free a moment ago.
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A temporary directory removed with its content at destruction.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gearmesh-it-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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

  /// Starts the process and waits up to `timeout` for GET /v1/health.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string cfg = config_path(), data = data_dir();
      ::execl(binary_.c_str(), binary_.c_str(), "--config", cfg.c_str(), "--data-dir", data.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = admin::call("127.0.0.1", admin_port_, "GET", "/v1/health", {}, 500);
      if (r && r->status == 200) return true;
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  /// SIGTERM (clean stop) or SIGKILL; waits for exit. Returns the exit status.
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }

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

  std::string log() const {
    std::ifstream in(log_path());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::string binary_;
  std::string id_;
  std::string dir_;
  std::uint16_t admin_port_;
  pid_t pid_ = -1;
};

}  // namespace gearmesh::testing
