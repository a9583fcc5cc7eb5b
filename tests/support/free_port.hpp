// Test helper: a TCP port on 127.0.0.1 for a node a test is about to start.
//
// Not from bind(0): the kernel hands those out of its ephemeral range
// (ip_local_port_range), which is also where the source ports of outgoing
// connections come from, so under `ctest -j` another test's node could
// connect from the port before ours binds it ("Address already in use").
// The port is drawn at random below that range, claimed for this process
// and checked bindable. The claim (a file /tmp/gearmesh-test-ports/<port>
// holding the claimer's pid, created exclusively) keeps two tests running at
// the same time from drawing the same port, which a bind check alone cannot:
// both see it free until the first node binds it. Claims are released at
// exit; one whose process is gone is taken over.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace gearmesh::testing {

/// True if a TCP socket can bind 127.0.0.1:`port` now.
inline bool port_is_free(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

/// The claim files of this process, removed when it exits.
struct port_claims {
  std::vector<std::string> paths;
  ~port_claims() {
    for (const auto& p : paths) ::unlink(p.c_str());
  }
};

inline port_claims& claimed_ports() {
  static port_claims claims;
  return claims;
}

/// Claims `port` for this process among the tests running on this machine;
/// false if a live process (this one included) holds it.
inline bool claim_port(std::uint16_t port) {
  const std::string dir = "/tmp/gearmesh-test-ports";
  ::mkdir(dir.c_str(), 01777);  // shared; may exist already
  const std::string path = dir + "/" + std::to_string(port);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const auto pid = std::to_string(::getpid());
      const bool written = ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
      ::close(fd);
      claimed_ports().paths.push_back(path);
      return written;
    }
    if (errno != EEXIST) return true;  // no claims possible: the bind check alone decides
    long owner = 0;
    std::ifstream(path) >> owner;
    // Empty: its claimer is writing it. Alive (or not ours to signal): taken.
    if (owner <= 0 || owner == ::getpid()) return false;
    if (::kill(static_cast<pid_t>(owner), 0) == 0 || errno == EPERM) return false;
    ::unlink(path.c_str());  // its process is gone
  }
  return false;
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range.
inline std::uint16_t free_port() {
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  constexpr int low = 10'000;  // above the well-known and the demo's ports
  if (ephemeral_low > low + 1000) {
    std::uniform_int_distribution<int> pick(low, ephemeral_low - 1);
    for (int i = 0; i < 1000; ++i) {
      const auto port = static_cast<std::uint16_t>(pick(rng));
      if (claim_port(port) && port_is_free(port)) return port;
    }
  }
  // No room below the ephemeral range: let the kernel choose.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace gearmesh::testing
