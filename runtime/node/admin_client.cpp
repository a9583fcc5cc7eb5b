// Blocking admin API client: one request per connection.
//
// Asio's synchronous calls cannot time out, so the request runs as an async
// chain on a private io_context and the calling thread runs it; the
// tcp_stream's deadline covers connect, write and read together.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

#include "gearmesh/node/admin.hpp"

namespace gearmesh::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint64_t response_body_bytes_max = 64 * 1024 * 1024;

}  // namespace

result<response> call(const std::string& host, std::uint16_t port, const std::string& method,
                      const std::string& target, const std::string& body, int timeout_ms) {
  const std::string where = host + ":" + std::to_string(port);
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return status(errc::invalid_argument, "unknown HTTP method \"" + method + "\"");
  }
  if (target.empty() || target.front() != '/') {
    return status(errc::invalid_argument, "HTTP target must start with '/': \"" + target + "\"");
  }
  if (timeout_ms <= 0) return status(errc::invalid_argument, "timeout must be positive");

  try {
    asio::io_context ioc{1};
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return status(errc::transport, "cannot resolve " + where + ": " + ec.message());

    beast::tcp_stream stream(ioc);
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::user_agent, "gearmesh");
    req.set(http::field::accept, "application/json");
    req.keep_alive(false);
    if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(response_body_bytes_max);

    // Which step failed, and how.
    enum class step { connect, write, read, done } failed_at = step::done;
    beast::error_code failure;

    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    stream.async_connect(endpoints, [&](beast::error_code cec, const tcp::endpoint&) {
      if (cec) {
        failed_at = step::connect;
        failure = cec;
        return;
      }
      http::async_write(stream, req, [&](beast::error_code wec, std::size_t) {
        if (wec) {
          failed_at = step::write;
          failure = wec;
          return;
        }
        http::async_read(stream, buffer, parser, [&](beast::error_code rec, std::size_t) {
          if (rec) {
            failed_at = step::read;
            failure = rec;
          }
        });
      });
    });
    ioc.run();

    if (failed_at != step::done) {
      if (failure == beast::error::timeout) {
        return status(errc::timeout,
                      "no answer from " + where + " within " + std::to_string(timeout_ms) + " ms");
      }
      if (failed_at == step::connect) {
        return status(errc::transport, "cannot connect to " + where + ": " + failure.message());
      }
      return status(errc::transport,
                    std::string(failed_at == step::write ? "sending to " : "reading from ") +
                        where + ": " + failure.message());
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);

    const auto& msg = parser.get();
    response r;
    r.status = msg.result_int();
    r.body = msg.body();
    if (auto it = msg.find(http::field::content_type); it != msg.end()) {
      r.content_type = std::string(it->value());
    } else {
      r.content_type.clear();
    }
    return r;
  } catch (const std::exception& e) {
    return status(errc::transport, where + ": " + e.what());
  }
}

}  // namespace gearmesh::admin
