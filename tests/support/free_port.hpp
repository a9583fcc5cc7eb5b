// Test helper: a TCP port on 127.0.0.1 for a node a test is about to start.
//
// Not from bind(0): the kernel hands those out of its ephemeral range
// (ip_local_port_range), which is also where the source ports of outgoing
// connections come from, so under `ctest -j` another test's node could
// connect from the port before ours binds it ("Address already in use").
// The port is drawn at random below that range and checked bindable; two
// tests drawing the same one at the same moment is the remaining (rare) race.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>

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
      if (port_is_free(port)) return port;
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
