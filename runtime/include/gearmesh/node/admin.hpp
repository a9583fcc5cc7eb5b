// The node's admin API: HTTP/1.1 + JSON on a loopback address.
//
// The runtime serves it (Boost.Beast over Asio, one thread); roles register
// their routes. Handlers run on the admin thread and may block briefly (for
// example to ask an actor and wait for its answer with a timeout).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gearmesh/status.hpp"

namespace gearmesh::admin {

struct request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // full target, e.g. "/v1/orders/velo%2Forder%2F1?x=y"
  std::string path;    // decoded path without query, e.g. "/v1/orders/velo/order/1"
  std::map<std::string, std::string> query;  // decoded query parameters
  std::string body;
};

struct response {
  unsigned status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string content_type = "application/json";
};

/// Builds {"error": message} with the given HTTP status.
response error_response(unsigned http_status, std::string_view message);

using handler = std::function<response(const request&)>;

/// Routes by method and path prefix; the longest matching prefix wins.
class router {
 public:
  void add(std::string method, std::string path_prefix, handler h);
  response dispatch(const request& req) const;

 private:
  struct route {
    std::string method;
    std::string prefix;
    handler h;
  };
  std::vector<route> routes_;
};

/// A running admin HTTP server.
class server {
 public:
  /// Binds `address:port` (port 0 = any free port) and serves `r` on its own
  /// thread. Errors: errc::transport with the address.
  static result<std::unique_ptr<server>> start(std::string address, std::uint16_t port,
                                               std::shared_ptr<const router> r);
  virtual ~server() = default;
  /// The bound port.
  virtual std::uint16_t port() const = 0;
  /// Stops accepting, closes connections, joins the thread. Idempotent.
  virtual void stop() = 0;
};

/// Blocking HTTP client for the CLI and tests. Errors: errc::transport
/// (cannot connect), errc::timeout.
result<response> call(const std::string& host, std::uint16_t port, const std::string& method,
                      const std::string& target, const std::string& body = {},
                      int timeout_ms = 10000);

}  // namespace gearmesh::admin
