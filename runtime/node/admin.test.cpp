#include "gearmesh/node/admin.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace gearmesh::admin {
namespace {

/// Echoes what the server saw, as plain text lines.
std::string describe(const request& req) {
  std::string s = req.method + " " + req.path + "\n";
  for (const auto& [k, v] : req.query) s += k + "=" + v + "\n";
  s += "body=" + req.body;
  return s;
}

response text(std::string body, unsigned status = 200) {
  response r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "text/plain";
  return r;
}

std::shared_ptr<router> test_routes() {
  auto r = std::make_shared<router>();
  r->add("GET", "/v1/health", [](const request&) {
    response res;
    res.body = R"({"node":"velo","status":"ok"})";
    return res;
  });
  r->add("GET", "/v1/orders", [](const request& req) { return text("list " + describe(req)); });
  r->add("POST", "/v1/orders",
         [](const request& req) { return text("create " + describe(req), 201); });
  r->add("GET", "/v1/orders/special",
         [](const request& req) { return text("special " + describe(req)); });
  r->add("GET", "/v1/throw",
         [](const request&) -> response { throw std::runtime_error("handler exploded"); });
  r->add("GET", "/v1/slow", [](const request&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return text("slow");
  });
  return r;
}

class admin_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = server::start("127.0.0.1", 0, test_routes());
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  result<response> get(const std::string& target) {
    return call("127.0.0.1", port_, "GET", target, {}, 5000);
  }

  std::unique_ptr<server> server_;
  std::uint16_t port_ = 0;
};

TEST(admin_router, longest_prefix_and_methods) {
  auto r = test_routes();
  request req;
  req.method = "GET";
  req.path = "/v1/orders/special/x";
  EXPECT_EQ(r->dispatch(req).body.rfind("special", 0), 0u);
  req.path = "/v1/orders/velo/order/1";
  EXPECT_EQ(r->dispatch(req).body.rfind("list", 0), 0u);
  req.path = "/v1/ordersx";  // prefixes match on segment boundaries
  EXPECT_EQ(r->dispatch(req).status, 404u);
  req.method = "DELETE";
  req.path = "/v1/orders/special";
  response res = r->dispatch(req);
  EXPECT_EQ(res.status, 405u);
  EXPECT_EQ(res.body,
            R"j({"error":"method DELETE not allowed for /v1/orders/special (allowed: GET)"})j");
}

TEST(admin_router, error_response_is_json) {
  response r = error_response(400, "bad \"quantity\"");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"error":"bad \"quantity\""})");
}

TEST_F(admin_test, get_and_post_round_trip) {
  auto health = get("/v1/health");
  ASSERT_TRUE(health) << health.error().to_string();
  EXPECT_EQ(health->status, 200u);
  EXPECT_EQ(health->content_type, "application/json");
  EXPECT_EQ(health->body, R"({"node":"velo","status":"ok"})");

  auto created = call("127.0.0.1", port_, "POST", "/v1/orders", R"({"item":"FRAME"})", 5000);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ(created->status, 201u);
  EXPECT_EQ(created->content_type, "text/plain");
  EXPECT_EQ(created->body, "create POST /v1/orders\nbody={\"item\":\"FRAME\"}");
}

TEST_F(admin_test, not_found_and_method_not_allowed) {
  auto missing = get("/v2/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404u);
  EXPECT_EQ(missing->body, R"({"error":"no such resource: /v2/nothing"})");

  auto wrong = call("127.0.0.1", port_, "PUT", "/v1/orders", "{}", 5000);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 405u);
  EXPECT_NE(wrong->body.find("GET, POST"), std::string::npos) << wrong->body;
}

TEST_F(admin_test, handler_exception_is_500) {
  auto r = get("/v1/throw");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500u);
  EXPECT_EQ(r->body, R"({"error":"internal error: handler exploded"})");
  // The server keeps serving.
  auto health = get("/v1/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200u);
}

TEST_F(admin_test, path_is_percent_decoded) {
  auto r = get("/v1/orders/velo%2Forder%2F1%20a");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "list GET /v1/orders/velo/order/1 a\nbody=");

  auto bad = get("/v1/orders/%zz");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400u);
  auto truncated = get("/v1/orders/%2");
  ASSERT_TRUE(truncated);
  EXPECT_EQ(truncated->status, 400u);
}

TEST_F(admin_test, query_is_parsed) {
  auto r = get("/v1/orders?state=failed&item=E-BIKE%2FX&note=a+b&flag&=empty");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body,
            "list GET /v1/orders\n=empty\nflag=\nitem=E-BIKE/X\nnote=a b\nstate=failed\nbody=");
}

TEST_F(admin_test, body_limit) {
  std::string ok_body(1024 * 1024, 'x');
  auto ok = call("127.0.0.1", port_, "POST", "/v1/orders", ok_body, 10000);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->status, 201u);

  std::string big(2 * 1024 * 1024, 'x');
  auto r = call("127.0.0.1", port_, "POST", "/v1/orders", big, 10000);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 413u);
  EXPECT_NE(r->body.find("request body exceeds"), std::string::npos);
}

TEST_F(admin_test, keep_alive_connection_serves_several_requests) {
  // A raw socket sending two pipelined requests on one connection.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string reqs =
      "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::write(fd, reqs.data(), reqs.size()), static_cast<ssize_t>(reqs.size()));
  std::string got;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::size_t first = got.find("HTTP/1.1 200 OK");
  ASSERT_NE(first, std::string::npos) << got;
  EXPECT_NE(got.find("HTTP/1.1 200 OK", first + 1), std::string::npos) << got;
}

TEST_F(admin_test, concurrent_clients) {
  constexpr int threads_count = 4;
  constexpr int calls_per_thread = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_count; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls_per_thread; ++i) {
        std::string target = (i % 5 == 0) ? "/v1/slow" : "/v1/orders?n=" + std::to_string(i);
        auto r = call("127.0.0.1", port_, "GET", target, {}, 5000);
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), threads_count * calls_per_thread);
}

TEST_F(admin_test, stop_is_idempotent_and_closes_port) {
  server_->stop();
  server_->stop();
  auto r = get("/v1/health");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::transport);
}

TEST(admin_client, closed_port_is_transport_error) {
  // Bind and close a server to find a port that is very likely free.
  std::uint16_t port = 0;
  {
    auto s = server::start("127.0.0.1", 0, std::make_shared<router>());
    ASSERT_TRUE(s);
    port = (*s)->port();
    (*s)->stop();
  }
  auto r = call("127.0.0.1", port, "GET", "/v1/health", {}, 2000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::transport);
  EXPECT_EQ(r.error().message(),
            "cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST(admin_client, timeout) {
  // A listening socket that never answers: connect succeeds, the read times out.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto r = call("127.0.0.1", ntohs(addr.sin_port), "GET", "/v1/health", {}, 200);
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::timeout);
}

TEST(admin_client, invalid_arguments) {
  auto r = call("127.0.0.1", 1, "FROB", "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  auto t = call("127.0.0.1", 1, "GET", "x");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code(), errc::invalid_argument);
}

TEST(admin_server, bind_failure_names_address) {
  auto first = server::start("127.0.0.1", 0, std::make_shared<router>());
  ASSERT_TRUE(first);
  std::uint16_t port = (*first)->port();
  auto second = server::start("127.0.0.1", port, std::make_shared<router>());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), errc::transport);
  EXPECT_NE(second.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << second.error().message();

  // A documentation address (RFC 5737) that no local interface has.
  auto foreign = server::start("192.0.2.1", 8100, std::make_shared<router>());
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code(), errc::transport);
  EXPECT_NE(foreign.error().message().find("192.0.2.1:8100"), std::string::npos)
      << foreign.error().message();
}

TEST(admin_server, destructor_stops_with_open_connection) {
  auto s = server::start("127.0.0.1", 0, test_routes());
  ASSERT_TRUE(s);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((*s)->port());
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the session start
  (*s).reset();  // must not hang on the idle keep-alive connection
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);  // closed by the server
  ::close(fd);
}

}  // namespace
}  // namespace gearmesh::admin
