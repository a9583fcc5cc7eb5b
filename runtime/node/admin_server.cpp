// The admin HTTP server: Boost.Beast over Asio on one thread.
//
// One io_context runs on the server's own thread; every session, the acceptor
// and the session registry live on that thread only, so nothing here needs a
// lock. Handlers run on that thread too: a slow handler delays every other
// admin request, which is acceptable for an operator API on loopback.
//
// Limits: request body 1 MiB, headers 16 KiB, 30 s per read or write,
// 64 concurrent connections (further connections are closed at once).
// stop() must not be called from a handler (it joins the server thread).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "gearmesh/node/admin.hpp"

namespace gearmesh::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint64_t body_bytes_max = 1024 * 1024;
constexpr std::uint32_t header_bytes_max = 16 * 1024;
constexpr auto io_timeout = std::chrono::seconds(30);
constexpr std::size_t connections_max = 64;
constexpr auto linger_timeout = std::chrono::seconds(5);
constexpr std::size_t linger_bytes_max = 8 * 1024 * 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Percent-decodes `in`; with `plus_is_space`, '+' becomes ' ' (query strings).
/// False on a malformed escape.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

/// Splits the target into a decoded path and query map. False if malformed.
bool parse_target(std::string_view target, request& req) {
  std::string_view path = target;
  std::string_view query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  if (auto f = query.find('#'); f != std::string_view::npos) query = query.substr(0, f);
  if (!percent_decode(path, false, req.path)) return false;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string key, value;
    if (!percent_decode(pair.substr(0, eq), true, key)) return false;
    if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), true, value)) {
      return false;
    }
    req.query[std::move(key)] = std::move(value);
  }
  return true;
}

/// Whether `prefix` matches `path` on a segment boundary: "/v1/orders"
/// matches "/v1/orders" and "/v1/orders/x" but not "/v1/ordersx".
bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (path.substr(0, prefix.size()) != prefix) return false;
  if (path.size() == prefix.size()) return true;
  return prefix.empty() || prefix.back() == '/' || path[prefix.size()] == '/';
}

class server_impl;

/// One HTTP/1.1 connection with keep-alive.
class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, server_impl& owner);
  ~session();
  void start() { read(); }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  void read();
  void on_read(beast::error_code ec);
  void write(http::response<http::string_body> res);
  void on_write(beast::error_code ec, bool keep_alive);
  void linger();
  void drain();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::array<char, 16 * 1024> drain_buffer_;
  std::size_t drained_bytes_ = 0;
  server_impl& owner_;
};

class server_impl final : public server {
 public:
  explicit server_impl(std::shared_ptr<const router> r) : router_(std::move(r)), acceptor_(ioc_) {}

  ~server_impl() override { stop(); }

  status bind(const std::string& address, std::uint16_t port) {
    std::string where = address + ":" + std::to_string(port);
    beast::error_code ec;
    tcp::endpoint ep;
    if (auto ip = asio::ip::make_address(address, ec); !ec) {
      ep = tcp::endpoint(ip, port);
    } else {
      // Not a literal address: resolve a host name such as "localhost".
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(address, std::to_string(port), ec);
      if (ec || results.empty()) {
        return status(errc::transport, "admin API " + where + ": cannot resolve address: " +
                                           (ec ? ec.message() : std::string("no results")));
      }
      ep = results.begin()->endpoint();
    }
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return status(errc::transport, "admin API " + where + ": bind: " + ec.message());
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return status(errc::transport, "admin API " + where + ": " + ec.message());
    return {};
  }

  void run() {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  std::uint16_t port() const override { return port_; }

  void stop() override {
    std::lock_guard lock(stop_mutex_);
    if (stopped_) return;
    stopped_ = true;
    if (!thread_.joinable()) return;
    asio::post(ioc_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      accept_backoff_.cancel();
      // close() only cancels; the aborted handlers run later, so the
      // registry does not change while we iterate.
      for (auto& [ptr, weak] : sessions_) {
        if (auto s = weak.lock()) s->close();
      }
    });
    thread_.join();
  }

  const router& routes() const { return *router_; }

  void add(session* s, const std::shared_ptr<session>& sp) { sessions_[s] = sp; }
  void remove(session* s) { sessions_.erase(s); }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // For example out of file descriptors: back off instead of spinning.
        accept_backoff_.expires_after(std::chrono::milliseconds(100));
        accept_backoff_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec && acceptor_.is_open()) accept();
        });
        return;
      }
      if (sessions_.size() >= connections_max) {
        socket.close(ec);
      } else {
        auto s = std::make_shared<session>(std::move(socket), *this);
        add(s.get(), s);
        s->start();
      }
      accept();
    });
  }

  std::shared_ptr<const router> router_;
  // Declared before ioc_ so that it outlives handlers destroyed with ioc_.
  std::unordered_map<session*, std::weak_ptr<session>> sessions_;
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_{ioc_};
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

session::session(tcp::socket socket, server_impl& owner)
    : stream_(std::move(socket)), owner_(owner) {}

session::~session() {
  owner_.remove(this);
}

void session::read() {
  parser_.emplace();
  parser_->body_limit(body_bytes_max);
  parser_->header_limit(header_bytes_max);
  stream_.expires_after(io_timeout);
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
}

void session::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted) {
    close();
    return;
  }
  if (ec == http::error::body_limit) {
    response r =
        error_response(413, "request body exceeds " + std::to_string(body_bytes_max) + " bytes");
    http::response<http::string_body> res{http::status::payload_too_large, 11};
    res.set(http::field::content_type, r.content_type);
    res.body() = std::move(r.body);
    res.keep_alive(false);
    write(std::move(res));
    return;
  }
  if (ec) {
    close();
    return;
  }

  const auto& msg = parser_->get();
  request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.body = msg.body();
  response r = parse_target(req.target, req)
                   ? owner_.routes().dispatch(req)
                   : error_response(400, "malformed request target \"" + req.target + "\"");

  http::response<http::string_body> res;
  res.version(msg.version());
  if (r.status < 100 || r.status > 599) {
    r = error_response(500, "handler returned HTTP status " + std::to_string(r.status));
  }
  res.result(r.status);
  res.set(http::field::server, "gearmesh");
  res.set(http::field::content_type, r.content_type);
  res.keep_alive(msg.keep_alive());
  res.body() = std::move(r.body);
  write(std::move(res));
}

void session::write(http::response<http::string_body> res) {
  res_ = std::move(res);
  res_.prepare_payload();
  bool keep_alive = res_.keep_alive();
  stream_.expires_after(io_timeout);
  http::async_write(stream_, res_,
                    [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                      self->on_write(ec, keep_alive);
                    });
}

void session::on_write(beast::error_code ec, bool keep_alive) {
  if (ec) {
    close();
    return;
  }
  if (!keep_alive) {
    linger();
    return;
  }
  read();
}

// A lingering close: stop sending, then discard what the client still sends
// (for example the rest of a body that was too large) until it closes, so
// that it reads our response instead of a connection reset. Bounded in time
// and bytes.
void session::linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    close();
    return;
  }
  stream_.expires_after(linger_timeout);
  drain();
}

void session::drain() {
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            self->drained_bytes_ += n;
                            if (ec || self->drained_bytes_ > linger_bytes_max) {
                              self->close();
                            } else {
                              self->drain();
                            }
                          });
}

}  // namespace

response error_response(unsigned http_status, std::string_view message) {
  nlohmann::json j = {{"error", std::string(message)}};
  response r;
  r.status = http_status;
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

void router::add(std::string method, std::string path_prefix, handler h) {
  routes_.push_back(route{std::move(method), std::move(path_prefix), std::move(h)});
}

response router::dispatch(const request& req) const {
  // The longest matching prefix names the resource; the method must be one
  // that resource accepts.
  std::size_t best = 0;
  bool found = false;
  for (const auto& r : routes_) {
    if (prefix_matches(r.prefix, req.path) && (!found || r.prefix.size() > best)) {
      best = r.prefix.size();
      found = true;
    }
  }
  if (!found) return error_response(404, "no such resource: " + req.path);
  std::string allowed;
  for (const auto& r : routes_) {
    if (r.prefix.size() != best || !prefix_matches(r.prefix, req.path)) continue;
    if (r.method == req.method) {
      try {
        return r.h(req);
      } catch (const std::exception& e) {
        return error_response(500, std::string("internal error: ") + e.what());
      } catch (...) {
        return error_response(500, "internal error: unknown exception");
      }
    }
    if (!allowed.empty()) allowed += ", ";
    allowed += r.method;
  }
  return error_response(
      405, "method " + req.method + " not allowed for " + req.path + " (allowed: " + allowed + ")");
}

result<std::unique_ptr<server>> server::start(std::string address, std::uint16_t port,
                                              std::shared_ptr<const router> r) {
  if (!r) return status(errc::invalid_argument, "admin API: no router");
  try {
    auto s = std::make_unique<server_impl>(std::move(r));
    if (status st = s->bind(address, port); !st.is_ok()) return st;
    s->run();
    return std::unique_ptr<server>(std::move(s));
  } catch (const std::exception& e) {
    return status(errc::transport,
                  "admin API " + address + ":" + std::to_string(port) + ": " + e.what());
  }
}

}  // namespace gearmesh::admin
