#include "cli.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "gearmesh/actors/kpis.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/node/admin.hpp"
#include "gearmesh/store/store.hpp"
#include "temp_dir.hpp"

namespace gearmesh::cli {
namespace {

// 2026-12-01T00:00:00Z in microseconds since the epoch.
constexpr std::int64_t dec1_us = 1'796'083'200'000'000;
constexpr std::int64_t hour_us = 3'600'000'000;

TEST(cli_time, parses_iso_dates_and_times) {
  EXPECT_EQ(*parse_time("2026-12-01", 0), dec1_us);
  EXPECT_EQ(*parse_time("2026-12-01T08:00:00Z", 0), dec1_us + 8 * hour_us);
  EXPECT_EQ(*parse_time("2026-12-01T08:00Z", 0), dec1_us + 8 * hour_us);
  EXPECT_EQ(*parse_time("2026-12-01T08:30:15", 0),
            dec1_us + 8 * hour_us + 30 * 60'000'000 + 15'000'000);
  EXPECT_EQ(*parse_time("2026-12-01T00:00:00.25Z", 0), dec1_us + 250'000);
  EXPECT_EQ(*parse_time("1970-01-01", 0), 0);
  EXPECT_EQ(*parse_time("2028-02-29", 0), *parse_time("2028-03-01", 0) - 24 * hour_us);
}

TEST(cli_time, parses_relative_times) {
  EXPECT_EQ(*parse_time("+3d", dec1_us), dec1_us + 72 * hour_us);
  EXPECT_EQ(*parse_time("+12h", dec1_us), dec1_us + 12 * hour_us);
  EXPECT_EQ(*parse_time("+30m", dec1_us), dec1_us + hour_us / 2);
  EXPECT_EQ(*parse_time("+2w", dec1_us), dec1_us + 14 * 24 * hour_us);
}

TEST(cli_time, rejects_malformed_times) {
  for (const char* bad :
       {"", "tomorrow", "2026-13-01", "2026-02-30", "2026-12-1", "2026-12-01T8:00",
        "2026-12-01T24:00Z", "2026-12-01T08:00+02:00", "+3", "+d", "+3y", "+-3d", "+99999999w",
        "2026-12-01T08:00:00.Z", "12/01/2026"}) {
    auto r = parse_time(bad, dec1_us);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), errc::invalid_argument) << bad;
    }
  }
}

TEST(cli_format, times_and_prices) {
  EXPECT_EQ(format_time(dec1_us + 8 * hour_us + 59'999'999), "2026-12-01T08:00Z");
  EXPECT_EQ(format_time(0), "1970-01-01T00:00Z");
  EXPECT_EQ(format_time(-60'000'000), "1969-12-31T23:59Z");
  EXPECT_EQ(format_price(123456), "1234.56");
  EXPECT_EQ(format_price(123456, "EUR"), "1234.56 EUR");
  EXPECT_EQ(format_price(5), "0.05");
  EXPECT_EQ(format_price(-5), "-0.05");
  EXPECT_EQ(format_price(0), "0.00");
  EXPECT_EQ(format_price(INT64_MIN), "-92233720368547758.08");
  EXPECT_EQ(percent_encode("velo/order/1"), "velo%2Forder%2F1");
  EXPECT_EQ(percent_encode("a b~c-d_e.f?"), "a%20b~c-d_e.f%3F");
}

// --- End to end against a real admin server ---------------------------------

constexpr const char* order_json = R"({
  "order_id": "velo/order/1", "item": "FRAME", "quantity": 5,
  "due_us": 1796083200000000, "earliest_start_us": 1795478400000000, "max_price_cents": 0,
  "state": "contracted", "reason": "",
  "contract": {"contract_id": "velo/contract/1", "order_id": "velo/order/1", "buyer": "velo",
               "seller": "framecraft", "role": "buyer", "item": "FRAME", "quantity": 5,
               "price_cents": 123456, "currency": "EUR",
               "promised_start_us": 1795507200000000, "promised_due_us": 1795996800000000,
               "state": "active"},
  "proposals": [
    {"seller": "framecraft", "proposal_id": "framecraft/proposal/7", "price_cents": 123456,
     "promised_start_us": 1795507200000000, "promised_due_us": 1795996800000000,
     "valid_until_us": 1795482000000000, "state": "accepted", "reason": ""},
    {"seller": "alloyframe", "proposal_id": "alloyframe/proposal/3", "price_cents": 130000,
     "promised_start_us": 1795507200000000, "promised_due_us": 1796000400000000,
     "valid_until_us": 1795482000000000, "state": "rejected", "reason": "higher price"}
  ]})";

/// An order whose contract has production progress, two tiers deep.
constexpr const char* tracked_order_json = R"({
  "order_id": "velo/order/2", "item": "FRAME", "quantity": 5,
  "due_us": 1796083200000000, "earliest_start_us": 1795478400000000, "max_price_cents": 0,
  "state": "contracted", "reason": "",
  "contract": {"contract_id": "velo/contract/2", "order_id": "velo/order/2", "buyer": "velo",
               "seller": "framecraft", "role": "buyer", "item": "FRAME", "quantity": 5,
               "price_cents": 123456, "currency": "EUR",
               "promised_start_us": 1795507200000000, "promised_due_us": 1795996800000000,
               "state": "active",
               "progress": {"contract_id": "velo/contract/2", "sequence": 3, "kind": "delayed",
                 "state": "executing", "expected_due_us": 1796169600000000,
                 "started_us": 1795507200000000, "completed_us": 0, "delivered_us": 0,
                 "reason": "component TUBE-SET from tubeco arrives late",
                 "components": [
                   {"contract_id": "framecraft/order/3/c1", "seller": "tubeco",
                    "item": "TUBE-SET", "quantity": 5, "state": "contracted",
                    "promised_due_us": 1795478400000000, "expected_due_us": 1795651200000000,
                    "started_us": 0, "delivered_us": 0,
                    "components": [
                      {"contract_id": "tubeco/order/1/c1", "seller": "steelmill",
                       "item": "STEEL", "quantity": 10, "state": "delivered",
                       "promised_due_us": 1795392000000000,
                       "expected_due_us": 1795392000000000, "started_us": 0,
                       "delivered_us": 1795392000000000, "components": []}]}]}},
  "proposals": []})";

admin::response json_response(std::string body, unsigned status = 200) {
  admin::response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

class cli_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = std::make_shared<admin::router>();
    r->add("GET", "/v1/health",
           [](const admin::request&) { return json_response(R"({"node":"velo","status":"ok"})"); });
    r->add("GET", "/v1/metrics", [](const admin::request&) {
      return json_response(R"({"frames_in":12,"commits":7,"node":"velo"})");
    });
    r->add("POST", "/v1/orders", [this](const admin::request& req) {
      std::lock_guard lock(mutex_);
      posted_.push_back(req.body);
      if (req.body.find("\"item\":\"NOPE\"") != std::string::npos) {
        return admin::error_response(400, "unknown item NOPE");
      }
      return json_response(R"({"order_id":"velo/order/1","state":"negotiating"})", 201);
    });
    r->add("GET", "/v1/orders", [](const admin::request& req) {
      if (req.path == "/v1/orders") {
        return json_response(std::string(R"({"orders":[)") + order_json + "]}");
      }
      if (req.path == "/v1/orders/velo/order/1") return json_response(order_json);
      if (req.path == "/v1/orders/velo/order/2") return json_response(tracked_order_json);
      return admin::error_response(404, "no order " + req.path.substr(11));
    });
    r->add("POST", "/v1/events", [this](const admin::request& req) {
      std::lock_guard lock(mutex_);
      posted_.push_back(req.body);
      return json_response(
          R"({"contract_id":"velo/contract/2","kind":"delayed","sequence":4,"state":"contracted",)"
          R"("expected_due_us":1796169600000000})",
          201);
    });
    r->add("GET", "/v1/contracts", [](const admin::request&) {
      return json_response(R"({"contracts":[
        {"contract_id":"velo/contract/1","order_id":"velo/order/1","buyer":"velo",
         "seller":"framecraft","role":"buyer","item":"FRAME","quantity":5,"price_cents":123456,
         "currency":"EUR","promised_start_us":0,"promised_due_us":1795996800000000,
         "state":"active"},
        {"contract_id":"tubeco/contract/9","order_id":"framecraft/order/2","buyer":"framecraft",
         "seller":"velo","role":"seller","item":"TUBE-SET","quantity":10,"price_cents":9900,
         "currency":"","promised_start_us":0,"promised_due_us":1795996800000000,
         "state":"cancelled"}]})");
    });
    r->add("GET", "/v1/resolve/", [](const admin::request& req) {
      if (req.path == "/v1/resolve/acme.plant1/machine/weld1")
        return json_response(R"({"identifier":"acme.plant1/machine/weld1","status":"found",
          "entries":[{"node_id":"acme.plant1","endpoint":"tcp://10.0.0.7:7100",
          "public_key":"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
          "capabilities":["welding","FRAME"],"referral":false}],
          "ttl_s":120,"reason":"","cached":true,"local":false})");
      return json_response(R"({"identifier":"acme.plant1/machine/m99","status":"not_found",
          "entries":[],"ttl_s":120,"reason":"no machine m99 at acme.plant1",
          "error":"no machine m99 at acme.plant1","cached":false,"local":false})",
                           404);
    });
    r->add("GET", "/v1/partners", [](const admin::request& req) {
      auto it = req.query.find("capability");
      std::string cap = it == req.query.end() ? "" : it->second;
      return json_response(R"({"capability":")" + cap + R"(","status":"found",
          "entries":[{"node_id":"acme.plant1","endpoint":"tcp://10.0.0.7:7100",
          "public_key":"","capabilities":["welding"],"referral":false},
          {"node_id":"bolt-dir","endpoint":"tcp://10.0.0.9:7100","public_key":"",
          "capabilities":["welding"],"referral":true}],
          "ttl_s":300,"reason":"","cached":false,"local":false})");
    });
    r->add("POST", "/v1/capacity/offers", [this](const admin::request& req) {
      std::lock_guard lock(mutex_);
      posted_.push_back(req.body);
      return json_response(R"({"offer_id":"framecraft/capacity/1","remaining":240})", 201);
    });
    r->add("GET", "/v1/capacity/offers", [](const admin::request&) {
      return json_response(R"({"published":[
        {"offer_id":"framecraft/capacity/1","publisher":"framecraft","capability":"coating",
         "window_start_us":1796083200000000,"window_end_us":1796112000000000,"units":240,
         "remaining":180,"unit_price_cents":150,"currency":"EUR",
         "valid_until_us":1796083200000000,"revision":2,"state":"open","booked_units":60}],
        "received":[]})");
    });
    r->add("POST", "/v1/capacity/bookings", [this](const admin::request& req) {
      std::lock_guard lock(mutex_);
      posted_.push_back(req.body);
      if (req.body.find("\"units\":999") != std::string::npos)
        return json_response(
            R"({"booking_id":"velo/booking/2","state":"refused","error":"refused: only 180 units remain"})",
            409);
      return json_response(R"({"booking_id":"velo/booking/1","offer_id":"framecraft/capacity/1",
        "publisher":"framecraft","booker":"velo","role":"booker","state":"booked","reason":"",
        "capability":"coating","units":60,"price_cents":9000,"currency":"EUR",
        "window_start_us":1796083200000000,"window_end_us":1796112000000000,"remaining":180})",
                           201);
    });
    r->add("GET", "/v1/capacity/bookings", [](const admin::request&) {
      return json_response(R"({"bookings":[
        {"booking_id":"velo/booking/1","offer_id":"framecraft/capacity/1","publisher":"framecraft",
         "booker":"velo","role":"booker","state":"booked","reason":"","capability":"coating",
         "units":60,"price_cents":9000,"currency":"EUR","window_start_us":1796083200000000,
         "window_end_us":1796112000000000,"remaining":180}]})");
    });
    r->add("DELETE", "/v1/capacity/offers/", [](const admin::request& req) {
      if (req.path != "/v1/capacity/offers/framecraft/capacity/1")
        return admin::error_response(404, "no offer " + req.path.substr(20));
      return json_response(
          R"({"offer_id":"framecraft/capacity/1","state":"withdrawn","booked_units":60})");
    });
    r->add("GET", "/v1/kpis", [this](const admin::request& req) {
      {
        std::lock_guard lock(mutex_);
        std::string q;
        for (const auto& [k, v] : req.query) q += k + "=" + v + ";";
        posted_.push_back(q);
      }
      return json_response(actors::kpis_to_json(sample_kpis()));
    });
    r->add("POST", "/v1/machines/", [this](const admin::request& req) {
      {
        std::lock_guard lock(mutex_);
        posted_.push_back(req.path + " " + req.body);
      }
      if (req.path == "/v1/machines/weld9/down")
        return admin::error_response(404, "no machine weld9 at framecraft");
      if (req.path == "/v1/machines/weld1/up")
        return json_response(R"({"ended":[{"outage_id":"framecraft/outage/1"}]})");
      if (req.path == "/v1/machines/weld1/cancel")
        return json_response(R"({"cancelled":{"outage_id":"framecraft/outage/2"}})");
      if (req.path == "/v1/machines/weld1/health" && req.body.find("90") != std::string::npos)
        return json_response(R"({"outage":null})");
      return json_response(R"({"outage_id":"framecraft/outage/1","machine":"weld1",
        "kind":"breakdown","from_us":1796083200000000,"until_us":1796104800000000,
        "state":"active","reason":"servo fault","holds_moved":1,"holds_released":0,
        "effects":[{"contract_id":"velo/order/1/c1","outcome":"rescheduled",
                    "expected_due_us":1796112000000000},
                   {"contract_id":"velo/order/2/c1","outcome":"cancelled","expected_due_us":0}]})",
                           201);
    });
    r->add("GET", "/v1/machines", [](const admin::request&) {
      return json_response(R"({"machines":[
        {"id":"weld1","capabilities":["welding"],"health_threshold":40,"state":"down",
         "outages":["framecraft/outage/1"]},
        {"id":"weld2","capabilities":["welding"],"health_threshold":0,"state":"up","outages":[]}],
        "outages":[{"outage_id":"framecraft/outage/1","machine":"weld1","kind":"breakdown",
         "from_us":1796083200000000,"until_us":1796104800000000,"state":"active","reason":"",
         "holds_moved":0,"holds_released":0,"effects":[]}],
        "totals":{"outages":1,"rescheduled":2,"delayed":1,"cancelled":1,"holds_moved":0,
                  "holds_released":0}})");
    });
    r->add("GET", "/v1/broken", [](const admin::request&) { return json_response("not json"); });
    auto s = admin::server::start("127.0.0.1", 0, r);
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
    node_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  /// What the fake node answers to GET /v1/kpis, in the real format.
  static actors::kpi_report sample_kpis() {
    actors::kpi_report k;
    k.node_id = "velo";
    k.now_us = dec1_us;
    k.utilization_from_us = dec1_us - 7 * 24 * hour_us;
    k.utilization_to_us = dec1_us + 7 * 24 * hour_us;
    auto& c = k.customer_orders;
    c.orders = 10;
    c.contracted = 8;
    c.failed = 1;
    c.open = 1;
    c.on_time = 7;
    c.late = 1;
    c.on_time_pct = 87.5;
    c.lead_time = {8, 36 * hour_us, 24 * hour_us, 96 * hour_us, 96 * hour_us};
    c.quote_time = {8, 800'000, 750'000, 2'000'000, 2'000'000};
    c.spend_cents = {{"EUR", 123'456}};
    k.seller.offers = 4;
    k.seller.offers_contracted = 3;
    k.seller.offers_lost = 1;
    k.seller.win_rate_pct = 75;
    k.seller.contracts = 3;
    k.seller.units = 12;
    k.seller.revenue_cents = {{"EUR", 99'00}};
    k.energy = {3, 12, 7200, 600};
    k.energy_by_item["FRAME"] = {3, 12, 7200, 600};
    k.resources.push_back(
        {"saw1", 20'160, 72, 6, 72.0 * 100 / 20'160, 6.0 * 100 / 20'160, 6000, 7200, 480});
    return k;
  }

  /// Runs the CLI with `--node <server>` prepended to `args`.
  int cli(std::vector<std::string> args, bool with_node = true) {
    out_.str({});
    err_.str({});
    std::vector<std::string> all = {"gearmesh"};
    if (with_node) {
      all.push_back("--node");
      all.push_back(node_);
    }
    all.insert(all.end(), args.begin(), args.end());
    std::vector<const char*> argv;
    for (const auto& a : all) argv.push_back(a.c_str());
    return run(static_cast<int>(argv.size()), argv.data(), out_, err_);
  }

  std::unique_ptr<admin::server> server_;
  std::string node_;
  std::ostringstream out_, err_;
  std::mutex mutex_;
  std::vector<std::string> posted_;
};

TEST_F(cli_e2e, order_submit_posts_json_and_prints_id) {
  ASSERT_EQ(cli({"order", "submit", "--item", "FRAME", "--qty", "5", "--due", "2026-12-01",
                 "--earliest", "2026-11-24T08:00:00Z", "--max-price", "150000", "--attr",
                 "colour=red", "--attr", "size=L"}),
            exit_ok)
      << err_.str();
  EXPECT_EQ(out_.str(), "velo/order/1\n");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(posted_.size(), 1u);
  EXPECT_EQ(posted_[0],
            R"({"attributes":{"colour":"red","size":"L"},"due_us":1796083200000000,)"
            R"("earliest_start_us":1795507200000000,"item":"FRAME","max_price_cents":150000,)"
            R"("quantity":5})");
}

TEST_F(cli_e2e, order_submit_minimal_and_relative_due) {
  ASSERT_EQ(cli({"order", "submit", "--item", "FRAME", "--qty", "2", "--due", "+3d"}), exit_ok)
      << err_.str();
  std::lock_guard lock(mutex_);
  ASSERT_EQ(posted_.size(), 1u);
  EXPECT_EQ(posted_[0].find("earliest_start_us"), std::string::npos);
  EXPECT_EQ(posted_[0].find("max_price_cents"), std::string::npos);
  EXPECT_NE(posted_[0].find("\"due_us\":"), std::string::npos);
}

TEST_F(cli_e2e, order_submit_api_error_is_exit_1) {
  EXPECT_EQ(cli({"order", "submit", "--item", "NOPE", "--qty", "1", "--due", "+1d"}),
            exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: unknown item NOPE (HTTP 400)\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(cli_e2e, usage_errors_are_exit_2) {
  EXPECT_EQ(cli({"order", "submit", "--qty", "1", "--due", "+1d"}), exit_usage);  // no --item
  EXPECT_NE(err_.str().find("--item"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"order", "submit", "--item", "X", "--qty", "0", "--due", "+1d"}), exit_usage);
  EXPECT_EQ(cli({"order", "submit", "--item", "X", "--qty", "1", "--due", "someday"}), exit_usage);
  EXPECT_NE(err_.str().find("--due: invalid time \"someday\""), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"order", "submit", "--item", "X", "--qty", "1", "--due", "+1d", "--attr", "x"}),
            exit_usage);
  EXPECT_EQ(cli({"frobnicate"}), exit_usage);
  EXPECT_EQ(cli({}), exit_usage);
  EXPECT_EQ(cli({"--node", "nonsense", "health"}, false), exit_usage);
  EXPECT_EQ(cli({"--help"}), exit_ok);
  EXPECT_NE(out_.str().find("order"), std::string::npos);
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(posted_.empty());
}

TEST_F(cli_e2e, order_status_shows_the_contract_tree) {
  ASSERT_EQ(cli({"order", "status", "velo/order/2"}), exit_ok) << err_.str();
  const auto out = out_.str();
  EXPECT_NE(out.find("  execution       executing\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  expected due    2026-12-02T00:00Z (late 2d)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  last news       component TUBE-SET from tubeco arrives late\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("contracts\n"
                     "velo/contract/2  framecraft  FRAME x5  executing  promised 2026-11-30T00:00Z"
                     "  expected 2026-12-02T00:00Z  (late 2d)\n"
                     "└─ framecraft/order/3/c1  tubeco  TUBE-SET x5  contracted  promised "
                     "2026-11-24T00:00Z  expected 2026-11-26T00:00Z  (late 2d)\n"
                     "   └─ tubeco/order/1/c1  steelmill  STEEL x10  delivered  promised "
                     "2026-11-23T00:00Z  delivered 2026-11-23T00:00Z  (on time)\n"),
            std::string::npos)
      << out;
}

TEST_F(cli_e2e, event_posts_a_production_event) {
  ASSERT_EQ(cli({"event", "velo/contract/2", "delayed", "--expected-due", "2026-12-02", "--reason",
                 "furnace down"}),
            exit_ok)
      << err_.str();
  EXPECT_EQ(out_.str(), "velo/contract/2  delayed  #4  contracted  expected 2026-12-02T00:00Z\n");
  EXPECT_EQ(cli({"event", "velo/contract/2", "delayed"}), exit_usage);  // no --expected-due
  EXPECT_EQ(cli({"event", "velo/contract/2", "late"}), exit_usage);
  std::lock_guard lock(mutex_);
  ASSERT_EQ(posted_.size(), 1u);
  EXPECT_EQ(posted_[0], R"({"contract_id":"velo/contract/2","expected_due_us":1796169600000000,)"
                        R"("kind":"delayed","reason":"furnace down"})");
}

TEST_F(cli_e2e, order_status_human_output) {
  ASSERT_EQ(cli({"order", "status", "velo/order/1"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "order             velo/order/1\n"
            "item              FRAME\n"
            "quantity          5\n"
            "earliest          2026-11-24T00:00Z\n"
            "due               2026-12-01T00:00Z\n"
            "max price         none\n"
            "state             contracted\n"
            "contract          velo/contract/1\n"
            "  seller          framecraft\n"
            "  price           1234.56 EUR\n"
            "  promised start  2026-11-24T08:00Z\n"
            "  promised due    2026-11-30T00:00Z\n"
            "  contract state  active\n"
            "\n"
            "contracts\n"
            "velo/contract/1  framecraft  FRAME x5  contracted  promised 2026-11-30T00:00Z\n"
            "\n"
            "proposals\n"
            "SELLER      PROPOSAL               PRICE        START              DUE              "
            "  VALID UNTIL        STATE     REASON\n"
            "framecraft  framecraft/proposal/7  1234.56 EUR  2026-11-24T08:00Z  2026-11-30T00:00Z"
            "  2026-11-24T01:00Z  accepted  \n"
            "alloyframe  alloyframe/proposal/3  1300.00 EUR  2026-11-24T08:00Z  2026-11-30T01:00Z"
            "  2026-11-24T01:00Z  rejected  higher price\n");
}

TEST_F(cli_e2e, resolve_prints_the_owner) {
  ASSERT_EQ(cli({"resolve", "acme.plant1/machine/weld1"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "acme.plant1/machine/weld1: found, from this node's cache (ttl 120 s)\n"
            "NODE         ENDPOINT             PUBLIC KEY                                "
            "CAPABILITIES\n"
            "acme.plant1  tcp://10.0.0.7:7100  rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7  "
            "welding,FRAME\n");
  ASSERT_EQ(cli({"resolve", "acme.plant1/machine/weld1", "--json"}), exit_ok);
  EXPECT_NE(out_.str().find("\"public_key\": \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\""),
            std::string::npos)
      << out_.str();
}

TEST_F(cli_e2e, resolve_not_found_is_exit_1_and_bad_ids_exit_2) {
  EXPECT_EQ(cli({"resolve", "acme.plant1/machine/m99"}), exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: no machine m99 at acme.plant1 (HTTP 404)\n");
  EXPECT_EQ(cli({"resolve", "acme//m7"}), exit_usage);
  EXPECT_NE(err_.str().find("unknown kind"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"resolve"}), exit_usage);
  EXPECT_EQ(cli({"resolve", "velo", "--capability", "welding"}), exit_usage);
}

TEST_F(cli_e2e, resolve_capability_lists_partners) {
  ASSERT_EQ(cli({"resolve", "--capability", "welding"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "capability welding: found (ttl 300 s)\n"
            "NODE         ENDPOINT             PUBLIC KEY  CAPABILITIES  \n"
            "acme.plant1  tcp://10.0.0.7:7100  -           welding       \n"
            "bolt-dir     tcp://10.0.0.9:7100  -           welding       (directory to ask)\n");
}

TEST_F(cli_e2e, order_status_unknown_is_exit_1) {
  EXPECT_EQ(cli({"order", "status", "velo/order/99"}), exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: no order velo/order/99 (HTTP 404)\n");
}

TEST_F(cli_e2e, json_flag_prints_raw_answer) {
  ASSERT_EQ(cli({"--json", "health"}), exit_ok);
  EXPECT_EQ(out_.str(), "{\n  \"node\": \"velo\",\n  \"status\": \"ok\"\n}\n");
  // Global options may also follow the subcommand.
  ASSERT_EQ(cli({"order", "status", "velo/order/1", "--json"}), exit_ok) << err_.str();
  EXPECT_NE(out_.str().find("\"order_id\": \"velo/order/1\""), std::string::npos);
}

TEST_F(cli_e2e, order_list_and_contracts_tables) {
  ASSERT_EQ(cli({"order", "list"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "ORDER         ITEM   QTY  DUE                STATE       SELLER      PRICE\n"
            "velo/order/1  FRAME  5    2026-12-01T00:00Z  contracted  framecraft  1234.56 EUR\n");
  ASSERT_EQ(cli({"contracts"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "CONTRACT           ORDER               ROLE    COUNTERPARTY  ITEM      QTY  PRICE     "
            "   PROMISED DUE       STATE\n"
            "velo/contract/1    velo/order/1        buyer   framecraft    FRAME     5    1234.56 "
            "EUR  2026-11-30T00:00Z  active\n"
            "tubeco/contract/9  framecraft/order/2  seller  framecraft    TUBE-SET  10   99.00   "
            "     2026-11-30T00:00Z  cancelled\n");
}

TEST_F(cli_e2e, kpis_prints_each_figure_and_passes_the_window) {
  ASSERT_EQ(cli({"kpis"}), exit_ok) << err_.str();
  const auto text = out_.str();
  for (const char* line :
       {"KPIs of velo at 2026-12-01T00:00Z, window: all records, deliveries: promised\n",
        "customer orders     10 placed: 8 contracted, 1 failed, 0 cancelled, 1 open\n",
        "  on-time delivery  87.5 % (7 on time, 1 late)\n",
        "  lead time         mean 1.5 d, p50 1 d, p95 4 d, max 4 d (8 orders)\n",
        "  quote time        mean 0.8 s, p50 0.75 s, p95 2 s, max 2 s (8 orders)\n",
        "  spend             1234.56 EUR\n",
        "seller              4 offers: 3 contracted, 1 lost, 0 pending\n",
        "  win rate          75.0 %\n", "  revenue           99.00 EUR\n",
        "energy per unit     600.0 Wh (7200.0 Wh for 12 units of 3 contracts)\n",
        "  FRAME             600.0 Wh per unit (12 units)\n",
        "utilization 2026-11-24T00:00Z .. 2026-12-08T00:00Z\n",
        "RESOURCE  CAPACITY  DOWN  BOOKED  HELD  UTILIZATION  HELD %  WH/H  ENERGY WH\n",
        "saw1      20160     480   72      6     0.4 %        0.0 %   6000  7200.0\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "in:\n" << text;
  EXPECT_EQ(text.find("component orders"), std::string::npos) << text;  // none placed
  {
    std::lock_guard lock(mutex_);
    ASSERT_EQ(posted_.size(), 1u);
    EXPECT_EQ(posted_.back(), "");
  }
  ASSERT_EQ(cli({"kpis", "--from", "2026-12-01", "--to", "2026-12-02T12:00Z"}), exit_ok)
      << err_.str();
  {
    std::lock_guard lock(mutex_);
    EXPECT_EQ(posted_.back(), "from_us=" + std::to_string(dec1_us) +
                                  ";to_us=" + std::to_string(dec1_us + 36 * hour_us) + ";");
  }
  // Relative times before now, and raw JSON.
  ASSERT_EQ(cli({"kpis", "--from=-7d", "--json"}), exit_ok) << err_.str();
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j.at("buyer").at("customer_orders").at("on_time_pct"), 87.5);
  {
    std::lock_guard lock(mutex_);
    EXPECT_EQ(posted_.back().rfind("from_us=", 0), 0u) << posted_.back();
  }
  EXPECT_EQ(cli({"kpis", "--from", "2026-12-02", "--to", "2026-12-01"}), exit_usage);
  EXPECT_EQ(cli({"kpis", "--from", "yesterday"}), exit_usage);
}

TEST_F(cli_e2e, capacity_publish_posts_json_and_prints_the_offer_id) {
  ASSERT_EQ(cli({"capacity", "publish", "--capability", "coating", "--units", "240", "--unit-price",
                 "150", "--start", "2026-12-01", "--end", "2026-12-01T08:00Z", "--valid-until",
                 "2026-11-30T12:00Z", "--machine", "paint1"}),
            exit_ok)
      << err_.str();
  EXPECT_EQ(out_.str(), "framecraft/capacity/1\n");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(posted_.size(), 1u);
  EXPECT_EQ(posted_[0],
            R"({"capability":"coating","machine":"paint1","unit_price_cents":150,"units":240,)"
            R"("valid_until_us":1796040000000000,"window_end_us":1796112000000000,)"
            R"("window_start_us":1796083200000000})");
}

TEST_F(cli_e2e, machine_down_up_health_and_list) {
  ASSERT_EQ(cli({"machine", "down", "weld1", "--for", "6h", "--from", "2026-12-01", "--reason",
                 "servo fault"}),
            exit_ok)
      << err_.str();
  EXPECT_NE(out_.str().find("framecraft/outage/1: weld1 breakdown 2026-12-01T00:00Z .. "
                            "2026-12-01T06:00Z (active): servo fault"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("velo/order/1/c1  rescheduled  2026-12-01T08:00Z"), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("velo/order/2/c1  cancelled    -"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("1 moved, 0 released"), std::string::npos) << out_.str();
  ASSERT_EQ(cli({"machine", "maintenance", "weld1", "--from", "2026-12-01", "--until",
                 "2026-12-01T06:00Z"}),
            exit_ok)
      << err_.str();
  ASSERT_EQ(cli({"machine", "up", "weld1"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(), "weld1 is up; 1 outage ended\n");
  ASSERT_EQ(cli({"machine", "health", "weld1", "90"}), exit_ok) << err_.str();
  EXPECT_NE(out_.str().find("no outage opened"), std::string::npos);
  ASSERT_EQ(cli({"machine", "cancel", "weld1", "framecraft/outage/2"}), exit_ok) << err_.str();
  EXPECT_NE(out_.str().find("framecraft/outage/2 cancelled"), std::string::npos) << out_.str();
  {
    std::lock_guard lock(mutex_);
    ASSERT_EQ(posted_.size(), 5u);
    EXPECT_EQ(posted_[4], R"(/v1/machines/weld1/cancel {"outage_id":"framecraft/outage/2"})");
    EXPECT_EQ(posted_[0], R"(/v1/machines/weld1/down {"from_us":1796083200000000,)"
                          R"("reason":"servo fault","until_us":1796104800000000})");
    EXPECT_EQ(posted_[1], R"(/v1/machines/weld1/maintenance {"from_us":1796083200000000,)"
                          R"("until_us":1796104800000000})");
    EXPECT_EQ(posted_[2], "/v1/machines/weld1/up {}");
    EXPECT_EQ(posted_[3], R"(/v1/machines/weld1/health {"score":90})");
  }
  ASSERT_EQ(cli({"machine", "list"}), exit_ok) << err_.str();
  EXPECT_NE(out_.str().find("weld1    welding       down   40                framecraft/outage/1"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("1 outages: 2 contracts rescheduled, 1 delayed, 1 cancelled"),
            std::string::npos)
      << out_.str();
  // Errors: the node's (exit 1), usage (exit 2).
  EXPECT_EQ(cli({"machine", "down", "weld9", "--for", "1h"}), exit_api_error);
  EXPECT_NE(err_.str().find("no machine weld9 at framecraft (HTTP 404)"), std::string::npos);
  EXPECT_EQ(cli({"machine", "down", "weld1"}), exit_usage);
  EXPECT_NE(err_.str().find("give --for or --until"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"machine", "down", "weld1", "--for", "6x"}), exit_usage);
  EXPECT_EQ(cli({"machine", "down", "weld1", "--for", "1h", "--until", "+2h"}), exit_usage);
  EXPECT_EQ(cli({"machine", "health", "weld1", "101"}), exit_usage);
  EXPECT_EQ(cli({"machine"}), exit_usage);
}

TEST_F(cli_e2e, capacity_offers_book_and_bookings) {
  ASSERT_EQ(cli({"capacity", "offers"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "published\n"
            "OFFER                  PUBLISHER   CAPABILITY  WINDOW START       WINDOW END         "
            "UNITS  REMAINING  UNIT PRICE  VALID UNTIL        STATE\n"
            "framecraft/capacity/1  framecraft  coating     2026-12-01T00:00Z  2026-12-01T08:00Z  "
            "240    180        1.50 EUR    2026-12-01T00:00Z  open\n");
  ASSERT_EQ(cli({"capacity", "book", "framecraft/capacity/1", "--units", "60"}), exit_ok)
      << err_.str();
  EXPECT_EQ(out_.str(),
            "velo/booking/1 booked: 60 units of coating for 90.00 EUR, 180 units left\n");
  {
    std::lock_guard lock(mutex_);
    ASSERT_EQ(posted_.size(), 1u);
    EXPECT_EQ(posted_[0], R"({"offer_id":"framecraft/capacity/1","units":60})");
  }
  EXPECT_EQ(cli({"capacity", "book", "framecraft/capacity/1", "--units", "999"}), exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: refused: only 180 units remain (HTTP 409)\n");
  EXPECT_EQ(cli({"capacity", "book", "framecraft/capacity/1", "--units", "0"}), exit_usage);
  EXPECT_EQ(cli({"capacity", "publish", "--capability", "coating", "--units", "1", "--unit-price",
                 "1", "--start", "tomorrow", "--end", "+2d"}),
            exit_usage);
  ASSERT_EQ(cli({"capacity", "withdraw", "framecraft/capacity/1"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(), "framecraft/capacity/1 withdrawn; 60 units stay booked\n");
  EXPECT_EQ(cli({"capacity", "withdraw", "framecraft/capacity/7"}), exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: no offer framecraft/capacity/7 (HTTP 404)\n");
  ASSERT_EQ(cli({"capacity", "bookings"}), exit_ok) << err_.str();
  EXPECT_EQ(out_.str(),
            "BOOKING         OFFER                  ROLE    COUNTERPARTY  CAPABILITY  UNITS  "
            "PRICE      WINDOW START       STATE   REASON\n"
            "velo/booking/1  framecraft/capacity/1  booker  framecraft    coating     60     "
            "90.00 EUR  2026-12-01T00:00Z  booked  \n");
}

TEST_F(cli_e2e, health_and_metrics_print_key_values) {
  ASSERT_EQ(cli({"health"}), exit_ok);
  EXPECT_EQ(out_.str(), "node: velo\nstatus: ok\n");
  ASSERT_EQ(cli({"metrics"}), exit_ok);
  EXPECT_EQ(out_.str(), "commits: 7\nframes_in: 12\nnode: velo\n");
}

TEST_F(cli_e2e, unreachable_node_is_exit_3) {
  std::string address = node_;
  server_->stop();
  EXPECT_EQ(cli({"health"}), exit_unreachable);
  EXPECT_EQ(err_.str(), "gearmesh: cannot reach the node's admin API: cannot connect to " +
                            address +
                            ": Connection refused (is gearmesh-node running? set --node or "
                            "GEARMESH_NODE)\n");
}

// --- Offline store tools -----------------------------------------------------

namespace fs = std::filesystem;
using table_contents = std::map<std::string, std::map<std::string, std::string>>;

class cli_store : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (root_ / "data").string();
    store::write_batch b;
    for (int i = 0; i < 3; ++i) {
      b.put("orders", store::key_u64(static_cast<std::uint64_t>(i)), "order-" + std::to_string(i));
    }
    b.put("contracts", "velo/contract/1", std::string(1000, 'c'));
    b.put("contracts", "velo/contract/2", "two");
    store::options opts;
    opts.path = data_;
    opts.sync = false;
    auto env = store::environment::open(opts);
    ASSERT_TRUE(env) << env.error().to_string();
    ASSERT_TRUE((*env)->apply(b));
  }

  int cli(std::vector<std::string> args) {
    out_.str({});
    err_.str({});
    std::vector<std::string> all = {"gearmesh"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<const char*> argv;
    for (const auto& a : all) argv.push_back(a.c_str());
    return run(static_cast<int>(argv.size()), argv.data(), out_, err_);
  }

  /// Every entry of every table, read through a freshly opened environment.
  static table_contents contents(const std::string& dir) {
    table_contents c;
    store::options opts;
    opts.path = dir;
    opts.sync = false;
    auto env = store::environment::open(opts);
    EXPECT_TRUE(env) << env.error().to_string();
    if (!env) return c;
    auto tables = (*env)->stats();
    EXPECT_TRUE(tables);
    if (!tables) return c;
    for (const auto& t : *tables) {
      auto& m = c[t.name];
      EXPECT_TRUE((*env)->for_each(t.name, [&](std::string_view k, std::string_view v) {
        m.emplace(std::string(k), std::string(v));
        return true;
      }));
    }
    return c;
  }

  gearmesh::testing::temp_dir tmp_;
  fs::path root_{tmp_.path()};
  std::string data_;
  std::ostringstream out_, err_;
};

TEST_F(cli_store, inspect_human_table) {
  ASSERT_EQ(cli({"store", "inspect", "--data-dir", data_}), exit_ok) << err_.str();
  std::istringstream lines(out_.str());
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("path: ", 0), 0u) << out_.str();
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("TABLE", 0), 0u) << out_.str();
  std::map<std::string, std::uint64_t> entries;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name;
    std::uint64_t count = 0, bytes = 0;
    ASSERT_TRUE(fields >> name >> count >> bytes) << line;
    entries[name] = count;
    EXPECT_GT(bytes, 0u) << line;
  }
  EXPECT_EQ(entries["orders"], 3u) << out_.str();
  EXPECT_EQ(entries["contracts"], 2u) << out_.str();
}

TEST_F(cli_store, inspect_json) {
  ASSERT_EQ(cli({"--json", "store", "inspect", "--data-dir", data_}), exit_ok) << err_.str();
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_TRUE(j["path"].is_string());
  EXPECT_FALSE(j["path"].get<std::string>().empty());
  std::map<std::string, std::uint64_t> entries;
  for (const auto& t : j["tables"]) {
    entries[t["name"].get<std::string>()] = t["entries"].get<std::uint64_t>();
    EXPECT_GT(t["bytes"].get<std::uint64_t>(), 0u);
  }
  EXPECT_EQ(entries["orders"], 3u) << out_.str();
  EXPECT_EQ(entries["contracts"], 2u) << out_.str();
  // --json may also follow the subcommand.
  ASSERT_EQ(cli({"store", "inspect", "--data-dir", data_, "--json"}), exit_ok) << err_.str();
  EXPECT_FALSE(nlohmann::json::parse(out_.str(), nullptr, false).is_discarded()) << out_.str();
}

TEST_F(cli_store, inspect_missing_dir_is_exit_1) {
  std::string missing = (root_ / "missing").string();
  EXPECT_EQ(cli({"store", "inspect", "--data-dir", missing}), exit_api_error);
  EXPECT_EQ(err_.str(), "gearmesh: " + missing + ": no such directory\n");
  EXPECT_FALSE(fs::exists(missing));  // not created
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(cli({"store", "inspect", "--data-dir", (root_ / "empty").string()}), exit_api_error);
  EXPECT_NE(err_.str().find("not a Gearmesh store"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"store", "inspect"}), exit_usage);
}

TEST_F(cli_store, backup_then_restore_round_trips) {
  table_contents original = contents(data_);
  ASSERT_EQ(original["orders"].size(), 3u);
  ASSERT_EQ(original["contracts"].size(), 2u);

  std::string backup = (root_ / "backups" / "b1").string();
  ASSERT_EQ(cli({"store", "backup", "--data-dir", data_, "--to", backup}), exit_ok) << err_.str();
  EXPECT_TRUE(fs::exists(fs::path(backup) / "data.mdb"));

  std::string fresh = (root_ / "fresh").string();
  ASSERT_EQ(cli({"store", "restore", "--from", backup, "--data-dir", fresh}), exit_ok)
      << err_.str();
  EXPECT_NE(out_.str().find("must be stopped"), std::string::npos) << out_.str();
  auto restored = contents(fresh);
  // Restore skips message ids far ahead so partners never see one twice.
  EXPECT_EQ(restored["meta"][std::string(store::meta_message_id_high_water)],
            store::key_u64(store::restore_message_id_skip));
  restored["meta"].erase(std::string(store::meta_message_id_high_water));
  EXPECT_EQ(restored, original);
  EXPECT_EQ(contents(backup), original);
}

TEST_F(cli_store, backup_into_non_empty_dir_is_refused) {
  fs::path target = root_ / "occupied";
  fs::create_directories(target);
  std::ofstream(target / "something") << "x";
  EXPECT_EQ(cli({"store", "backup", "--data-dir", data_, "--to", target.string()}), exit_api_error);
  EXPECT_NE(err_.str().find("not empty"), std::string::npos) << err_.str();
  EXPECT_FALSE(fs::exists(target / "data.mdb"));
  // An existing empty directory is fine.
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(cli({"store", "backup", "--data-dir", data_, "--to", (root_ / "empty").string()}),
            exit_ok)
      << err_.str();
  // A missing source is an error, and the target is not created.
  EXPECT_EQ(cli({"store", "backup", "--data-dir", (root_ / "nope").string(), "--to",
                 (root_ / "b2").string()}),
            exit_api_error);
  EXPECT_FALSE(fs::exists(root_ / "b2"));
}

TEST_F(cli_store, restore_over_existing_requires_force) {
  std::string backup = (root_ / "b").string();
  ASSERT_EQ(cli({"store", "backup", "--data-dir", data_, "--to", backup}), exit_ok) << err_.str();
  table_contents original = contents(data_);

  // Make the live store differ from the backup.
  std::string other = (root_ / "other").string();
  {
    store::options opts;
    opts.path = other;
    opts.sync = false;
    auto env = store::environment::open(opts);
    ASSERT_TRUE(env) << env.error().to_string();
    store::write_batch b;
    b.put("orders", "x", "y");
    ASSERT_TRUE((*env)->apply(b));
  }
  table_contents before = contents(other);
  EXPECT_EQ(cli({"store", "restore", "--from", backup, "--data-dir", other}), exit_api_error);
  EXPECT_NE(err_.str().find("--force"), std::string::npos) << err_.str();
  EXPECT_EQ(contents(other), before);

  ASSERT_EQ(cli({"store", "restore", "--from", backup, "--data-dir", other, "--force"}), exit_ok)
      << err_.str();
  auto after = contents(other);
  after["meta"].erase(std::string(store::meta_message_id_high_water));
  EXPECT_EQ(after, original);
}

TEST_F(cli_store, restore_from_non_store_is_refused) {
  fs::create_directories(root_ / "junk");
  std::ofstream(root_ / "junk" / "data.mdb") << std::string(8192, 'j');
  std::string target = (root_ / "t").string();
  EXPECT_EQ(cli({"store", "restore", "--from", (root_ / "junk").string(), "--data-dir", target}),
            exit_api_error);
  EXPECT_EQ(err_.str().rfind("gearmesh: --from: ", 0), 0u) << err_.str();
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(cli({"store", "restore", "--from", (root_ / "missing").string(), "--data-dir", target}),
            exit_api_error);
  EXPECT_FALSE(fs::exists(target));
}

// --- verify -------------------------------------------------------------------

/// A buyer ("velo") and a seller ("framecraft") store agreeing on one contract,
/// the seller's two bookings within capacity, and a hold due at dec1 + 1h.
class cli_verify : public cli_store {
 protected:
  void SetUp() override {
    cli_store::SetUp();
    using namespace actors;
    velo_ = (root_ / "velo").string();
    framecraft_ = (root_ / "framecraft").string();
    contract_record c;
    c.contract_id = "velo/order/1/c1";
    c.order_id = "velo/order/1";
    c.buyer = "velo";
    c.seller = "framecraft";
    c.item = "FRAME";
    c.quantity = 2;
    c.price_cents = 5000;
    c.currency = "EUR";
    c.state = contract_state::active;
    c.proposal_id = "framecraft/proposal/1";
    write(velo_, [&](store::write_batch& b) {
      b.put("meta", meta_node_id_key, "velo");
      order_record o;
      o.order_id = "velo/order/1";
      o.state = order_state::contracted;
      tables::orders.put(b, o.order_id, o);
      c.role = contract_role::buyer;
      tables::contracts.put(b, c.contract_id, c);
    });
    write(framecraft_, [&](store::write_batch& b) {
      b.put("meta", meta_node_id_key, "framecraft");
      tables::resources.put(b, "saw1", resource_record{"saw1", 60, hour_us});
      offer_record o;
      o.proposal_id = "framecraft/proposal/1";
      o.state = offer_state::contracted;
      o.contract_id = c.contract_id;
      o.reservations = {{"saw1", "framecraft/proposal/1#0"}};
      tables::offers.put(b, o.proposal_id, o);
      reservation_record r;
      r.resource = "saw1";
      r.reservation_id = "framecraft/proposal/1#0";
      r.kind = reservation_kind::booking;
      r.allocations = {{dec1_us / hour_us, 50}};
      tables::bookings.put(b, reservation_key(r.resource, r.reservation_id), r);
      o.proposal_id = "framecraft/proposal/2";
      o.state = offer_state::held;
      o.contract_id.clear();
      o.reservations = {{"saw1", "framecraft/proposal/2#0"}};
      tables::offers.put(b, o.proposal_id, o);
      r.reservation_id = "framecraft/proposal/2#0";
      r.kind = reservation_kind::hold;
      r.deadline_us = dec1_us + hour_us;
      r.allocations = {{dec1_us / hour_us, 10}};
      tables::holds.put(b, reservation_key(r.resource, r.reservation_id), r);
      c.role = contract_role::seller;
      tables::contracts.put(b, c.contract_id, c);
    });
  }

  static void write(const std::string& dir, const std::function<void(store::write_batch&)>& fill) {
    store::options opts;
    opts.path = dir;
    opts.sync = false;
    auto env = store::environment::open(opts);
    ASSERT_TRUE(env) << env.error().to_string();
    store::write_batch b;
    fill(b);
    ASSERT_TRUE((*env)->apply(b));
  }

  std::string velo_, framecraft_;
};

TEST_F(cli_verify, consistent_stores_are_exit_0) {
  ASSERT_EQ(cli({"verify", velo_, framecraft_, "--now", "2026-12-01T00:30Z"}), exit_ok)
      << out_.str() << err_.str();
  EXPECT_EQ(err_.str(), "");
  EXPECT_NE(out_.str().find(velo_ + ": node velo (id from meta): 1 order, 1 contract"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(
                "verified 2 stores: 1 order, 2 contracts, 1 hold, 1 booking; no violations\n"),
            std::string::npos)
      << out_.str();
}

TEST_F(cli_verify, kpis_offline_from_a_data_directory) {
  ASSERT_EQ(cli({"kpis", "--data-dir", framecraft_, "--json"}), exit_ok) << err_.str();
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j.at("node_id"), "framecraft");
  EXPECT_EQ(j.at("seller").at("contracts"), 1);
  EXPECT_EQ(j.at("seller").at("revenue_cents").at("EUR"), 5000);
  // The first of December: saw1 booked 50 of 24 x 60 minutes.
  ASSERT_EQ(cli({"kpis", "--data-dir", framecraft_, "--from", "2026-12-01", "--to", "2026-12-02",
                 "--json"}),
            exit_ok)
      << err_.str();
  j = nlohmann::json::parse(out_.str());
  const auto& saw = j.at("utilization").at("resources").at(0);
  EXPECT_EQ(saw.at("id"), "saw1");
  EXPECT_EQ(saw.at("capacity_units"), 24 * 60);
  EXPECT_EQ(saw.at("booked_units"), 50);
  ASSERT_EQ(cli({"kpis", "--data-dir", velo_}), exit_ok) << err_.str();
  EXPECT_NE(out_.str().find("KPIs of velo at "), std::string::npos) << out_.str();
  EXPECT_EQ(cli({"kpis", "--data-dir", (root_ / "nothing").string()}), exit_api_error);
  EXPECT_NE(err_.str().find("no such directory"), std::string::npos) << err_.str();
}

TEST_F(cli_verify, violations_are_exit_1_with_one_line_each) {
  // An hour after its deadline the hold has outlived it (invariant 5).
  ASSERT_EQ(cli({"verify", velo_, framecraft_, "--now", "2026-12-01T02:00Z"}), exit_api_error)
      << out_.str() << err_.str();
  EXPECT_NE(out_.str().find("expired_hold at framecraft, holds saw1/framecraft/proposal/2#0: "),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("[invariant 5 (holds expire)]"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("; 1 violation\n"), std::string::npos) << out_.str();
  // Only the buyer: its contract cannot be checked, nothing else is wrong.
  ASSERT_EQ(cli({"verify", velo_}), exit_ok) << out_.str() << err_.str();
  EXPECT_NE(out_.str().find("1 contract unchecked for agreement"), std::string::npos) << out_.str();
}

TEST_F(cli_verify, json_report) {
  // Over capacity: a second hold of 10 units on the same bucket (50 + 10 + 10 > 60).
  write(framecraft_, [](store::write_batch& b) {
    actors::reservation_record r;
    r.resource = "saw1";
    r.reservation_id = "framecraft/proposal/3#0";
    r.kind = actors::reservation_kind::hold;
    r.deadline_us = dec1_us + hour_us;
    r.allocations = {{dec1_us / hour_us, 10}};
    actors::offer_record o;
    o.proposal_id = "framecraft/proposal/3";
    actors::tables::offers.put(b, o.proposal_id, o);
    actors::tables::holds.put(b, actors::reservation_key(r.resource, r.reservation_id), r);
  });
  const std::string now = std::to_string(dec1_us);
  ASSERT_EQ(cli({"--json", "verify", velo_, framecraft_, "--now", now}), exit_api_error)
      << out_.str() << err_.str();
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["now_us"], dec1_us);
  EXPECT_EQ(j["clean"], false);
  EXPECT_EQ(j["violations_total"], 1);
  ASSERT_EQ(j["violations"].size(), 1u) << j.dump(2);
  auto& v = j["violations"][0];
  EXPECT_EQ(v["kind"], "over_commitment");
  EXPECT_EQ(v["invariant"], "invariant 1 (no over-commitment)");
  EXPECT_EQ(v["node"], "framecraft");
  EXPECT_EQ(v["table"], "resources");
  EXPECT_EQ(v["key"], "saw1");
  ASSERT_EQ(j["stores"].size(), 2u);
  EXPECT_EQ(j["stores"][1]["node_id"], "framecraft");
  EXPECT_EQ(j["stores"][1]["node_id_source"], "meta");
  EXPECT_EQ(j["stores"][1]["holds"], 2);
  EXPECT_EQ(j["unchecked"]["contracts"], 0);
  EXPECT_EQ(j["unchecked"]["reservations"], 0);
}

TEST_F(cli_verify, usage_errors_are_exit_2) {
  EXPECT_EQ(cli({"verify"}), exit_usage);
  EXPECT_EQ(cli({"verify", velo_, "--now", "yesterday"}), exit_usage);
  EXPECT_NE(err_.str().find("--now: invalid time"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"verify", velo_, velo_}), exit_usage);
  EXPECT_NE(err_.str().find("given twice"), std::string::npos) << err_.str();
}

TEST_F(cli_verify, a_store_that_cannot_be_opened_is_exit_3) {
  const std::string missing = (root_ / "missing").string();
  EXPECT_EQ(cli({"verify", velo_, missing}), exit_unreachable);
  EXPECT_EQ(err_.str(), "gearmesh: " + missing + ": no such directory\n");
  EXPECT_FALSE(fs::exists(missing));
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(cli({"verify", (root_ / "empty").string()}), exit_unreachable);
  EXPECT_NE(err_.str().find("not a Gearmesh store"), std::string::npos) << err_.str();
  EXPECT_FALSE(fs::exists(root_ / "empty" / "data.mdb"));
}

}  // namespace
}  // namespace gearmesh::cli
