// The HTML report: a self-contained page with every booking and order, text
// escaped, bounded charts, and errors for a directory that cannot be made.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "gearmesh/sim/report.hpp"
#include "gearmesh/sim/scenario.hpp"
#include "gearmesh/sim/simulator.hpp"
#include "temp_dir.hpp"

namespace gearmesh::sim {
namespace {

constexpr timestamp_us t0 = 1'767'592'800 * us_per_s;  // 2026-01-05T06:00:00Z

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// The `<svg id="ID" ...>...</svg>` element, or "" if there is none.
std::string svg(const std::string& page, const std::string& id) {
  const auto begin = page.find("<svg id=\"" + id + "\"");
  if (begin == std::string::npos) return {};
  const auto end = page.find("</svg>", begin);
  if (end == std::string::npos) return {};
  return page.substr(begin, end + 6 - begin);
}

/// True if the page loads nothing: the only URL is the SVG namespace.
bool self_contained(std::string page) {
  const std::string ns = "xmlns=\"http://www.w3.org/2000/svg\"";
  for (auto at = page.find(ns); at != std::string::npos; at = page.find(ns))
    page.erase(at, ns.size());
  return page.find("http://") == std::string::npos && page.find("https://") == std::string::npos &&
         page.find("<script") == std::string::npos && page.find("<link") == std::string::npos;
}

/// Every opened element of these kinds is closed.
void expect_balanced(const std::string& page) {
  for (const char* tag : {"svg", "g", "table", "tr", "p", "pre", "h2", "title", "text"})
    EXPECT_EQ(count(page, std::string("<") + tag + " ") + count(page, std::string("<") + tag + ">"),
              count(page, std::string("</") + tag + ">"))
        << tag;
}

order_span order(std::string id, std::string state, timestamp_us created, timestamp_us contracted,
                 timestamp_us due, timestamp_us promised) {
  return {std::move(id),
          "velo",
          state == "contracted" ? "framecraft" : "",
          std::move(state),
          created,
          contracted,
          due,
          promised};
}

sim_result synthetic() {
  sim_result r;
  r.scenario = "two-tier & friends";
  r.seed = 42;
  r.ok = true;
  r.quiesced = true;
  r.trace_hash = 0xdeadbeef01234567ULL;
  r.state_hash = 0x0123456789abcdefULL;
  r.start_us = t0;
  r.end_us = t0 + 9 * us_per_hour;
  r.wall_seconds = 1.5;
  r.frames_sent = 900;
  r.frames_delivered = 880;
  r.frames_lost = 20;
  r.frames_duplicated = 7;
  r.crashes = 2;
  r.partitions = 1;
  r.invariant_checks = 540;
  r.actor_jobs = 12345;
  r.k.orders_placed = 4;
  r.k.orders_refused = 1;
  r.k.contracted = 2;
  r.k.failed = 1;
  r.k.open = 1;
  r.k.on_time_pct = 50;
  r.k.utilization = {{"framecraft/saw1", 0.25}, {"framecraft/weld1", 0.5}, {"alloyframe/cnc", 1}};
  r.bookings = {
      {"framecraft", "saw1", t0 + us_per_hour, t0 + 2 * us_per_hour},
      {"framecraft", "weld1", t0 + 2 * us_per_hour, t0 + 4 * us_per_hour},
      {"framecraft", "saw1", t0 + 3 * us_per_hour, t0 + 3 * us_per_hour + 30 * us_per_min},
      {"alloyframe", "cnc", t0 + 5 * us_per_hour, t0 + 30 * us_per_hour},
  };
  r.orders = {
      order("velo-on-time", "contracted", t0 + 10 * us_per_min, t0 + 10 * us_per_min + 900'000,
            t0 + 2 * us_per_day, t0 + 30 * us_per_hour),
      order("velo-late", "contracted", t0 + 20 * us_per_min, t0 + 20 * us_per_min + 1'200'000,
            t0 + 10 * us_per_hour, t0 + 14 * us_per_hour),
      order("velo-failed", "failed", t0 + 30 * us_per_min, 0, t0 + us_per_day, 0),
      order("velo<script>", "negotiating", t0 + 40 * us_per_min, 0, t0 + us_per_day, 0),
  };
  return r;
}

TEST(report, draws_every_booking_and_order_in_one_self_contained_page) {
  testing::temp_dir dir;
  const auto r = synthetic();
  ASSERT_TRUE(write_report(r, dir.path())) << "write_report failed";
  const auto page = slurp(dir.sub("index.html"));
  ASSERT_FALSE(page.empty());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(self_contained(page));
  expect_balanced(page);

  // Header.
  EXPECT_NE(page.find("two-tier &amp; friends"), std::string::npos);
  EXPECT_NE(page.find("deadbeef01234567"), std::string::npos);
  EXPECT_NE(page.find("0123456789abcdef"), std::string::npos);
  EXPECT_NE(page.find("2026-01-05T06:00:00Z"), std::string::npos);
  EXPECT_NE(page.find("2026-01-05T15:00:00Z"), std::string::npos);
  EXPECT_NE(page.find("21600&times;"), std::string::npos);  // 9 h simulated in 1.5 s
  EXPECT_EQ(page.find("<pre class=\"failure\">"), std::string::npos);

  // Gantt: one bar per booking, one row per machine.
  const auto gantt = svg(page, "gantt");
  ASSERT_FALSE(gantt.empty());
  EXPECT_EQ(count(gantt, "<rect "), r.bookings.size());
  EXPECT_NE(gantt.find(">framecraft/weld1<"), std::string::npos);
  EXPECT_NE(gantt.find(">alloyframe/cnc<"), std::string::npos);

  // Orders: one row each, coloured by outcome.
  const auto orders = svg(page, "orders");
  ASSERT_FALSE(orders.empty());
  EXPECT_EQ(count(orders, "<g class=\"order "), r.orders.size());
  EXPECT_EQ(count(orders, "<g class=\"order on-time\""), 1u);
  EXPECT_EQ(count(orders, "<g class=\"order late\""), 1u);
  EXPECT_EQ(count(orders, "<g class=\"order failed\""), 1u);
  EXPECT_EQ(count(orders, "<g class=\"order open\""), 1u);
  for (const char* id : {"velo-on-time", "velo-late", "velo-failed"})
    EXPECT_NE(orders.find(id), std::string::npos) << id;

  // KPI charts.
  const auto util = svg(page, "utilization");
  EXPECT_NE(util.find(">50.0%<"), std::string::npos);
  EXPECT_NE(util.find(">100.0%<"), std::string::npos);
  EXPECT_FALSE(svg(page, "outcomes").empty());
}

TEST(report, escapes_text_from_the_scenario) {
  testing::temp_dir dir;
  auto r = synthetic();
  r.ok = false;
  r.failure = "no over-commitment: <framecraft/saw1> & \"more\"";
  ASSERT_TRUE(write_report(r, dir.path()));
  const auto page = slurp(dir.sub("index.html"));
  EXPECT_NE(page.find("velo&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(page.find("velo<script>"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(page.find("violation"), std::string::npos);
  EXPECT_NE(page.find("<pre class=\"failure\">no over-commitment: &lt;framecraft/saw1&gt; &amp; "
                      "&quot;more&quot;</pre>"),
            std::string::npos);
}

TEST(report, draws_machine_outages_behind_the_bookings) {
  testing::temp_dir dir;
  auto r = synthetic();
  r.outages = {
      {"framecraft", "weld1", "framecraft/outage/1", "breakdown", t0 + 3 * us_per_hour,
       t0 + 5 * us_per_hour, "servo <fault>"},
      // A machine with no booking gets its row too.
      {"alloyframe", "paint1", "alloyframe/outage/1", "maintenance", t0 + 6 * us_per_hour,
       t0 + 8 * us_per_hour, ""},
  };
  ASSERT_TRUE(write_report(r, dir.path()));
  const auto gantt = svg(slurp(dir.sub("index.html")), "gantt");
  EXPECT_EQ(count(gantt, "class=\"outage\""), 2u);
  EXPECT_NE(gantt.find("framecraft/weld1 breakdown framecraft/outage/1&#10;"), std::string::npos);
  EXPECT_NE(gantt.find("servo &lt;fault&gt;"), std::string::npos);
  EXPECT_NE(gantt.find(">alloyframe/paint1<"), std::string::npos);
  // The outages come before the bookings, which are drawn over them.
  EXPECT_LT(gantt.rfind("class=\"outage\""), gantt.find("<rect x="));
}

TEST(report, lists_outage_and_capacity_kpis_when_the_run_had_them) {
  testing::temp_dir dir;
  auto r = synthetic();
  ASSERT_TRUE(write_report(r, dir.sub("plain")));
  auto page = slurp(dir.sub("plain/index.html"));
  EXPECT_EQ(page.find("Machine outages"), std::string::npos);
  EXPECT_EQ(page.find("Capacity offers"), std::string::npos);
  r.k.outages = 3;
  r.k.outage_delayed = 2;
  r.k.outage_cancelled = 1;
  r.k.orders_resourced = 1;
  r.k.capacity_offers = 1;
  r.k.capacity_booked = 1;
  r.k.capacity_cancelled = 1;
  ASSERT_TRUE(write_report(r, dir.sub("faults")));
  page = slurp(dir.sub("faults/index.html"));
  EXPECT_NE(page.find("<td class=\"num\">3: 0 / 2 / 1 (1 orders sourced again)</td>"),
            std::string::npos);
  EXPECT_NE(page.find("<td class=\"num\">1: 1 / 0 / 1 (0 not asked)</td>"), std::string::npos);
}

TEST(report, an_empty_run_still_writes_a_page) {
  testing::temp_dir dir;
  sim_result r;
  r.scenario = "empty";
  r.start_us = r.end_us = t0;
  ASSERT_TRUE(write_report(r, dir.sub("a/b")));  // the directory is created
  const auto page = slurp(dir.sub("a/b/index.html"));
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("</html>"), std::string::npos);
  EXPECT_TRUE(self_contained(page));
  expect_balanced(page);
  EXPECT_TRUE(svg(page, "gantt").empty());
  EXPECT_TRUE(svg(page, "orders").empty());
  EXPECT_NE(page.find("No order in this run."), std::string::npos);
}

TEST(report, bounds_the_gantt_chart) {
  testing::temp_dir dir;
  auto r = synthetic();
  r.bookings.clear();
  for (int i = 0; i < 2500; ++i)
    r.bookings.push_back({"framecraft", "saw1", t0 + i * us_per_min, t0 + (i + 1) * us_per_min});
  ASSERT_TRUE(write_report(r, dir.path()));
  const auto page = slurp(dir.sub("index.html"));
  EXPECT_EQ(count(svg(page, "gantt"), "<rect "), 2000u);
  EXPECT_NE(page.find("Only the 2000 earliest bookings are drawn."), std::string::npos);
}

TEST(report, a_directory_that_cannot_be_made_is_a_storage_error) {
  testing::temp_dir dir;
  std::ofstream(dir.sub("file")) << "x";  // a file where a directory should go
  auto st = write_report(synthetic(), dir.sub("file/report"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), errc::storage);
  EXPECT_NE(st.message().find("file/report"), std::string::npos) << st.message();
}

TEST(report, reports_a_real_run_of_the_example) {
  auto s = load_scenario(GEARMESH_SCENARIOS "/two_tier.toml");
  ASSERT_TRUE(s) << s.error().to_string();
  sim_options o;
  o.seed = 3;
  auto r = run_simulation(*s, o);
  ASSERT_TRUE(r) << r.error().to_string();
  testing::temp_dir dir;
  ASSERT_TRUE(write_report(*r, dir.path()));
  const auto page = slurp(dir.sub("index.html"));
  EXPECT_GT(page.size(), 20'000u);
  EXPECT_TRUE(self_contained(page));
  expect_balanced(page);
  EXPECT_EQ(count(svg(page, "gantt"), "<rect "), std::min<std::size_t>(r->bookings.size(), 2000));
  EXPECT_EQ(count(svg(page, "orders"), "<g class=\"order "),
            std::min<std::size_t>(r->orders.size(), 300));
}

}  // namespace
}  // namespace gearmesh::sim
