// The HTML report of a simulation run: one self-contained page, built as a
// string (inline CSS and SVG, no script, nothing fetched) and then written in
// one go. Every text that comes from a scenario or a store (ids, the failure
// report) goes through `esc`. Charts are bounded (bars, rows) so that a long
// run still gives a page a browser opens quickly.
#include "gearmesh/sim/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace gearmesh::sim {
namespace {

namespace fs = std::filesystem;

// Limits: beyond these, a chart draws the first ones and says so.
constexpr std::size_t gantt_bars_max = 2000;
constexpr std::size_t order_rows_max = 300;

// Geometry shared by the charts (SVG user units, ~px).
constexpr double label_w = 190;
constexpr double plot_w = 900;
constexpr double right_pad = 40;
constexpr double chart_w = label_w + plot_w + right_pad;
constexpr double axis_h = 34;  // room above a timeline for the tick labels

// ---------------------------------------------------------------- text

/// Escapes text for HTML element content and attribute values.
std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// Shortens a label for a chart's left column (the full text is in the tooltip).
std::string clip(std::string_view s, std::size_t n = 28) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n - 1)) + "\u2026";
}

template <class... Args>
void put(std::string& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
}

// ---------------------------------------------------------------- time

struct civil_time {
  int year = 0;
  unsigned month = 0, day = 0;
  long hour = 0, minute = 0, second = 0, milli = 0;
};

civil_time to_civil(timestamp_us t) {
  using namespace std::chrono;
  const auto tp = sys_time<microseconds>(microseconds(t));
  const auto d = floor<days>(tp);
  const year_month_day ymd(d);
  const hh_mm_ss hms(floor<milliseconds>(tp - d));
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          static_cast<long>(hms.hours().count()),
          static_cast<long>(hms.minutes().count()),
          static_cast<long>(hms.seconds().count()),
          static_cast<long>(hms.subseconds().count())};
}

/// "2026-01-05T06:00:00Z", with ".123" before the Z if there are milliseconds.
std::string iso_utc(timestamp_us t) {
  const auto c = to_civil(t);
  std::string s = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour,
                              c.minute, c.second);
  if (c.milli != 0) put(s, ".{:03}", c.milli);
  return s + "Z";
}

/// "2 d 3 h", "4 h 05 min", "2 h", "12 min 30 s", "850 ms".
std::string span_text(timestamp_us d) {
  if (d < 0) return "-" + span_text(-d);
  if (d < us_per_s) return fmt::format("{} ms", d / us_per_ms);
  if (d < us_per_min) return fmt::format("{:.1f} s", static_cast<double>(d) / us_per_s);
  // Two units, the smaller one left out when it is zero.
  struct unit {
    timestamp_us us;
    const char* name;
    const char* minor_name;
    timestamp_us minor_us;
  };
  static constexpr unit units[] = {{us_per_day, "d", "h", us_per_hour},
                                   {us_per_hour, "h", "min", us_per_min},
                                   {us_per_min, "min", "s", us_per_s}};
  for (const auto& u : units) {
    if (d < u.us) continue;
    const timestamp_us minor = d % u.us / u.minor_us;
    if (minor == 0) return fmt::format("{} {}", d / u.us, u.name);
    return fmt::format("{} {} {} {}", d / u.us, u.name, minor, u.minor_name);
  }
  return {};
}

/// Maps simulated time [t0, t1] onto [x0, x0 + w].
struct time_axis {
  timestamp_us t0 = 0;
  timestamp_us t1 = 1;
  double x0 = label_w;
  double w = plot_w;

  double x(timestamp_us t) const {
    t = std::clamp(t, t0, t1);
    return x0 + w * static_cast<double>(t - t0) / static_cast<double>(t1 - t0);
  }
};

time_axis make_axis(timestamp_us t0, timestamp_us t1) {
  return {t0, std::max(t1, t0 + us_per_hour), label_w, plot_w};
}

/// A round tick step that gives at most ~12 ticks over `span`.
timestamp_us tick_step(timestamp_us span) {
  static constexpr timestamp_us steps[] = {
      us_per_min,       5 * us_per_min,  15 * us_per_min, 30 * us_per_min,
      us_per_hour,      2 * us_per_hour, 3 * us_per_hour, 6 * us_per_hour,
      12 * us_per_hour, us_per_day,      2 * us_per_day,  7 * us_per_day,
      14 * us_per_day,  28 * us_per_day, 91 * us_per_day, 364 * us_per_day};
  for (auto s : steps)
    if (span / s <= 12) return s;
  return (span / 12 / us_per_day + 1) * us_per_day;
}

/// "06:00", with the date ("01-05 06:00") at the first tick and at each new day.
std::string tick_label(timestamp_us t, timestamp_us step, bool new_day) {
  const auto c = to_civil(t);
  if (step >= us_per_day) return fmt::format("{:02}-{:02}", c.month, c.day);
  if (new_day) return fmt::format("{:02}-{:02} {:02}:{:02}", c.month, c.day, c.hour, c.minute);
  return fmt::format("{:02}:{:02}", c.hour, c.minute);
}

/// Vertical grid lines with UTC labels above `top`, down to `bottom`.
void draw_time_grid(std::string& out, const time_axis& a, double top, double bottom) {
  const timestamp_us step = tick_step(a.t1 - a.t0);
  // Ticks on multiples of the step since the epoch: whole hours, midnights.
  timestamp_us t = (a.t0 / step + (a.t0 % step != 0 ? 1 : 0)) * step;
  timestamp_us prev_day = -1;
  for (; t <= a.t1; t += step) {
    const timestamp_us day = t / us_per_day;
    const double x = a.x(t);
    put(out, R"(<line class="grid" x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}"/>)", x, top,
        bottom);
    put(out, R"(<text class="tick" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", x,
        top - 6, tick_label(t, step, day != prev_day));
    prev_day = day;
  }
  put(out, R"(<text class="axis-note" x="{:.1f}" y="12">UTC, step {}</text>)", a.x0,
      esc(span_text(step)));
}

// ---------------------------------------------------------------- colours

/// A distinct colour per index: a fixed palette, then golden-angle hues.
std::string colour(std::size_t i) {
  static constexpr const char* palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  constexpr std::size_t n = std::size(palette);
  if (i < n) return palette[i];
  return fmt::format("hsl({:.0f},55%,50%)", std::fmod(static_cast<double>(i) * 137.508, 360.0));
}

// Order outcomes, in the order they are drawn.
enum class outcome { on_time, late, failed, open, refused };
constexpr outcome outcomes[] = {outcome::on_time, outcome::late, outcome::failed, outcome::open,
                                outcome::refused};

struct outcome_style {
  const char* name;   // legend and tooltips
  const char* klass;  // CSS class: the colour
};

const outcome_style& style(outcome o) {
  static constexpr outcome_style styles[] = {{"contracted on time", "on-time"},
                                             {"contracted late", "late"},
                                             {"failed / cancelled", "failed"},
                                             {"open", "open"},
                                             {"refused", "refused"}};
  return styles[static_cast<std::size_t>(o)];
}

const char* outcome_name(outcome o) {
  return style(o).name;
}
const char* outcome_class(outcome o) {
  return style(o).klass;
}

outcome outcome_of(const order_span& o) {
  if (o.state == "contracted")
    return o.promised_due_us <= o.due_us ? outcome::on_time : outcome::late;
  if (o.state == "failed" || o.state == "cancelled") return outcome::failed;
  return outcome::open;
}

// ---------------------------------------------------------------- page parts

constexpr std::string_view css = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;
 color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:0 24px}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:600}
.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}
pre.failure{background:#fff3f3;border:1px solid #e0b4b4;padding:8px;overflow:auto;max-height:420px}
.note{color:#666;font-size:13px}.mono{font-family:ui-monospace,Menlo,monospace}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
svg{display:block;max-width:100%;height:auto;font-size:11px;margin:6px 0}
svg text{fill:#333}svg .tick{fill:#555}svg .axis-note{fill:#888}
svg .grid{stroke:#e4e4e4;stroke-width:1}svg .sep{stroke:#f2f2f2}svg .group{stroke:#bbb}
svg rect:hover,svg g.order:hover line{opacity:.75}
.on-time{fill:#2e7d32;stroke:#2e7d32;background:#2e7d32}
.late{fill:#ef8a00;stroke:#ef8a00;background:#ef8a00}
.failed{fill:#c62828;stroke:#c62828;background:#c62828}
.open{fill:#8e8e8e;stroke:#8e8e8e;background:#8e8e8e}
.refused{fill:#5d4037;stroke:#5d4037;background:#5d4037}
svg g.order text{stroke:none}svg line.due{stroke:#111;stroke-width:1.5}svg .track{fill:#f0f0f0}
)";

void row(std::string& out, std::string_view name, const std::string& value_html) {
  put(out, "<tr><th>{}</th><td>{}</td></tr>\n", name, value_html);
}

std::string hex(std::uint64_t h) {
  return fmt::format("<span class=\"mono\">{:016x}</span>", h);
}

std::string ratio_text(const sim_result& r) {
  if (r.wall_seconds <= 0) return "&ndash;";
  const double sim_s = static_cast<double>(r.end_us - r.start_us) / us_per_s;
  return fmt::format("{:.0f}&times;", sim_s / r.wall_seconds);
}

void write_header(std::string& out, const sim_result& r) {
  put(out, "<h1>Gearmesh simulation: {}</h1>\n", esc(r.scenario));
  put(out, "<p>seed <b>{}</b> &middot; <span class=\"badge {}\">{}</span> &middot; {}</p>\n",
      r.seed, r.ok ? "ok" : "bad", r.ok ? "ok" : "violation",
      r.quiesced ? "quiesced" : "not quiesced");
  if (!r.ok && !r.failure.empty()) put(out, "<pre class=\"failure\">{}</pre>\n", esc(r.failure));

  out += "<div class=\"grid2\"><table>\n";
  row(out, "Simulated span",
      fmt::format("{} &rarr; {} ({})", iso_utc(r.start_us), iso_utc(r.end_us),
                  esc(span_text(r.end_us - r.start_us))));
  row(out, "Wall time", fmt::format("{:.2f} s", r.wall_seconds));
  row(out, "Simulated / wall time", ratio_text(r));
  row(out, "Trace hash", hex(r.trace_hash));
  row(out, "State hash", hex(r.state_hash));
  row(out, "Invariant checks", fmt::format("{}", r.invariant_checks));
  row(out, "Actor jobs", fmt::format("{}", r.actor_jobs));
  out += "</table><table>\n";
  row(out, "Frames sent", fmt::format("{}", r.frames_sent));
  row(out, "Frames delivered", fmt::format("{}", r.frames_delivered));
  row(out, "Frames lost", fmt::format("{}", r.frames_lost));
  row(out, "Frames duplicated", fmt::format("{}", r.frames_duplicated));
  row(out, "Node crashes", fmt::format("{}", r.crashes));
  row(out, "Partitions", fmt::format("{}", r.partitions));
  out += "</table></div>\n";
}

void kpi_row(std::string& out, std::string_view name, const std::string& value) {
  put(out, "<tr><th>{}</th><td class=\"num\">{}</td></tr>\n", name, value);
}

void write_kpi_table(std::string& out, const kpis& k) {
  out += "<h2>KPIs</h2>\n<div class=\"grid2\"><table>\n";
  kpi_row(out, "Orders placed", fmt::format("{}", k.orders_placed));
  kpi_row(out, "Orders refused", fmt::format("{}", k.orders_refused));
  kpi_row(out, "Contracted", fmt::format("{}", k.contracted));
  kpi_row(out, "Failed / cancelled", fmt::format("{}", k.failed));
  kpi_row(out, "Open at the end", fmt::format("{}", k.open));
  kpi_row(out, "Component orders (contracted)",
          fmt::format("{} ({})", k.component_orders, k.component_contracted));
  out += "</table><table>\n";
  kpi_row(out, "On time", fmt::format("{:.1f} %", k.on_time_pct));
  kpi_row(out, "Lead time mean / p95",
          fmt::format("{:.1f} h / {:.1f} h", k.lead_time_mean_h, k.lead_time_p95_h));
  kpi_row(out, "Negotiation latency mean / p95",
          fmt::format("{:.0f} ms / {:.0f} ms", k.negotiation_ms_mean, k.negotiation_ms_p95));
  kpi_row(out, "Messages per order", fmt::format("{:.1f}", k.messages_per_order));
  if (k.outages > 0)
    kpi_row(
        out, "Machine outages: contracts rescheduled / delayed / cancelled",
        fmt::format("{}: {} / {} / {} ({} orders sourced again)", k.outages, k.outage_rescheduled,
                    k.outage_delayed, k.outage_cancelled, k.orders_resourced));
  if (k.capacity_offers > 0 || k.capacity_not_asked > 0)
    kpi_row(out, "Capacity offers: bookings booked / refused / cancelled by an outage",
            fmt::format("{}: {} / {} / {} ({} not asked)", k.capacity_offers, k.capacity_booked,
                        k.capacity_refused, k.capacity_cancelled, k.capacity_not_asked));
  out += "</table></div>\n";
}

// ---------------------------------------------------------------- Gantt

using machine_key = std::pair<std::string, std::string>;  // node, resource

/// Every machine that has a booking or a utilization figure, by node then resource.
std::vector<machine_key> machines_of(const sim_result& r) {
  std::vector<machine_key> m;
  for (const auto& b : r.bookings) m.emplace_back(b.node, b.resource);
  for (const auto& o : r.outages) m.emplace_back(o.node, o.resource);
  for (const auto& [id, u] : r.k.utilization) {
    const auto slash = id.find('/');
    if (slash != std::string::npos) m.emplace_back(id.substr(0, slash), id.substr(slash + 1));
  }
  std::sort(m.begin(), m.end());
  m.erase(std::unique(m.begin(), m.end()), m.end());
  return m;
}

/// Colour index of each node, in the order nodes first appear among `machines`.
std::map<std::string, std::size_t> node_colours(const std::vector<machine_key>& machines) {
  std::map<std::string, std::size_t> c;
  for (const auto& [node, res] : machines) c.emplace(node, c.size());
  return c;
}

void write_node_legend(std::string& out, const std::map<std::string, std::size_t>& colours) {
  out += "<p class=\"legend\">";
  for (const auto& [node, i] : colours)
    put(out, "<span><i style=\"background:{}\"></i>{}</span>", colour(i), esc(node));
  out += "</p>\n";
}

void write_gantt(std::string& out, const sim_result& r) {
  out += "<h2>Machine bookings</h2>\n";
  const auto machines = machines_of(r);
  if (machines.empty()) {
    out += "<p class=\"note\">No machine and no booking in this run.</p>\n";
    return;
  }
  std::vector<const booking_span*> bars;
  bars.reserve(r.bookings.size());
  timestamp_us t1 = r.start_us;
  for (const auto& b : r.bookings) {
    bars.push_back(&b);
    t1 = std::max(t1, b.end_us);
  }
  for (const auto& o : r.outages) t1 = std::max(t1, o.end_us);
  std::sort(bars.begin(), bars.end(), [](const booking_span* a, const booking_span* b) {
    return std::tie(a->start_us, a->node, a->resource, a->end_us) <
           std::tie(b->start_us, b->node, b->resource, b->end_us);
  });
  const bool truncated = bars.size() > gantt_bars_max;
  if (truncated) bars.resize(gantt_bars_max);

  const auto colours = node_colours(machines);
  write_node_legend(out, colours);
  put(out, "<p class=\"note\">{} bookings on {} machines, from {} to {}.", r.bookings.size(),
      machines.size(), iso_utc(r.start_us), iso_utc(t1));
  if (!r.outages.empty())
    put(out, " {} machine outages (breakdowns and maintenance) are the hatched red spans.",
        r.outages.size());
  if (truncated) put(out, " <b>Only the {} earliest bookings are drawn.</b>", gantt_bars_max);
  out += "</p>\n";

  constexpr double row_h = 20;
  const auto a = make_axis(r.start_us, t1);
  const double height = axis_h + row_h * static_cast<double>(machines.size()) + 8;
  std::map<machine_key, std::size_t> row_of;
  for (std::size_t i = 0; i < machines.size(); ++i) row_of.emplace(machines[i], i);

  put(out,
      R"(<svg id="gantt" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {0:.0f} {1:.0f}" )"
      R"(width="{0:.0f}" height="{1:.0f}" role="img" aria-label="machine bookings">)",
      chart_w, height);
  out += "\n";
  draw_time_grid(out, a, axis_h, height - 8);
  for (std::size_t i = 0; i < machines.size(); ++i) {
    const double y = axis_h + row_h * static_cast<double>(i);
    const bool new_node = i == 0 || machines[i].first != machines[i - 1].first;
    put(out, R"(<line class="{0}" x1="0" y1="{2:.1f}" x2="{1:.0f}" y2="{2:.1f}"/>)",
        new_node ? "group" : "sep", chart_w - right_pad, y);
    const std::string name = machines[i].first + "/" + machines[i].second;
    put(out, R"(<text x="{:.0f}" y="{:.1f}" text-anchor="end"><title>{}</title>{}</text>)",
        label_w - 8, y + 14, esc(name), esc(clip(name)));
    out += "\n";
  }
  // Outages behind the bookings: what was booked there was moved, delayed or cancelled.
  if (!r.outages.empty()) {
    out += R"(<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" )"
           R"svg(patternTransform="rotate(45)"><rect width="3" height="6" fill="#d62728" )svg"
           R"(fill-opacity="0.45"/></pattern></defs>)";
    out += "\n";
  }
  for (const auto& o : r.outages) {
    const auto i = row_of.at({o.node, o.resource});
    const double x = a.x(o.start_us);
    const double w = std::max(1.0, a.x(o.end_us) - x);
    put(out,
        R"(<rect class="outage" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.0f}" )"
        R"svg(fill="url(#down)" stroke="#d62728">)svg"
        R"(<title>{}/{} {} {}&#10;{} &rarr; {} ({}){}{}</title></rect>)",
        x, axis_h + row_h * static_cast<double>(i) + 1, w, row_h - 2, esc(o.node), esc(o.resource),
        esc(o.kind), esc(o.outage_id), iso_utc(o.start_us), iso_utc(o.end_us),
        esc(span_text(o.end_us - o.start_us)), o.reason.empty() ? "" : ": ", esc(o.reason));
    out += "\n";
  }
  for (const auto* b : bars) {
    const auto i = row_of.at({b->node, b->resource});
    const double x = a.x(b->start_us);
    const double w = std::max(1.0, a.x(b->end_us) - x);
    put(out,
        R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.0f}" fill="{}">)"
        R"(<title>{}/{}&#10;{} &rarr; {} ({})</title></rect>)",
        x, axis_h + row_h * static_cast<double>(i) + 3, w, row_h - 6, colour(colours.at(b->node)),
        esc(b->node), esc(b->resource), iso_utc(b->start_us), iso_utc(b->end_us),
        esc(span_text(b->end_us - b->start_us)));
    out += "\n";
  }
  out += "</svg>\n";
}

// ---------------------------------------------------------------- orders

void write_outcome_legend(std::string& out, bool with_refused) {
  out += "<p class=\"legend\">";
  for (auto o : outcomes) {
    if (o == outcome::refused && !with_refused) continue;
    put(out, "<span><i class=\"{}\"></i>{}</span>", outcome_class(o), outcome_name(o));
  }
  out += "</p>\n";
}

timestamp_us latest_time(const std::vector<const order_span*>& orders, timestamp_us t) {
  for (const auto* o : orders)
    t = std::max({t, o->created_us, o->contracted_us, o->due_us, o->promised_due_us});
  return t;
}

std::string order_tooltip(const order_span& o) {
  std::string t = fmt::format("{} ({})&#10;buyer {}", esc(o.order_id), esc(o.state), esc(o.buyer));
  if (!o.seller.empty()) put(t, ", seller {}", esc(o.seller));
  put(t, "&#10;placed {}", iso_utc(o.created_us));
  if (o.contracted_us != 0)
    put(t, "&#10;contracted {} (+{})", iso_utc(o.contracted_us),
        esc(span_text(o.contracted_us - o.created_us)));
  if (o.promised_due_us != 0) put(t, "&#10;promised {}", iso_utc(o.promised_due_us));
  put(t, "&#10;due {}", iso_utc(o.due_us));
  return t;
}

void draw_order_row(std::string& out, const order_span& o, const time_axis& a, double y,
                    double row_h, timestamp_us end_us) {
  const auto cls = outcome_class(outcome_of(o));
  const double mid = y + row_h / 2;
  put(out, R"(<g class="order {}"><title>{}</title>)", cls, order_tooltip(o));
  put(out, R"(<text x="{:.0f}" y="{:.1f}" text-anchor="end" class="lbl">{}</text>)", label_w - 8,
      mid + 4, esc(clip(o.order_id)));
  const double x_created = a.x(o.created_us);
  if (o.contracted_us != 0) {
    // Negotiation: placed -> Confirm at the buyer (thin), then the promised work (thick).
    put(out, R"(<line x1="{0:.1f}" y1="{2:.1f}" x2="{1:.1f}" y2="{2:.1f}" stroke-width="1.5"/>)",
        x_created, a.x(o.contracted_us), mid);
    if (o.promised_due_us != 0)
      put(out,
          R"(<line x1="{0:.1f}" y1="{2:.1f}" x2="{1:.1f}" y2="{2:.1f}" stroke-width="{3:.0f}"/>)",
          a.x(o.contracted_us), a.x(o.promised_due_us), mid, row_h - 6);
  } else if (outcome_of(o) == outcome::open) {
    put(out,
        R"(<line x1="{0:.1f}" y1="{2:.1f}" x2="{1:.1f}" y2="{2:.1f}" stroke-width="1.5" )"
        R"(stroke-dasharray="3 2"/>)",
        x_created, a.x(end_us), mid);
  }
  put(out, R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5"/>)", x_created, mid);
  const double x_due = a.x(o.due_us);
  put(out, R"(<line class="due" x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}"/>)", x_due,
      y + 1, y + row_h - 1);
  out += "</g>\n";
}

void write_orders(std::string& out, const sim_result& r) {
  out += "<h2>Orders</h2>\n";
  if (r.orders.empty()) {
    out += "<p class=\"note\">No order in this run.</p>\n";
    return;
  }
  std::vector<const order_span*> rows;
  rows.reserve(r.orders.size());
  for (const auto& o : r.orders) rows.push_back(&o);
  std::sort(rows.begin(), rows.end(), [](const order_span* a, const order_span* b) {
    return std::tie(a->created_us, a->order_id) < std::tie(b->created_us, b->order_id);
  });
  const bool truncated = rows.size() > order_rows_max;
  if (truncated) rows.resize(order_rows_max);

  write_outcome_legend(out, false);
  out +=
      "<p class=\"note\">One row per order, by time placed: a dot when placed, a thin line "
      "while negotiating, a bar from the contract to the promised due date, a black tick at "
      "the due date.";
  if (truncated)
    put(out, " <b>Only the first {} of {} orders are drawn.</b>", order_rows_max, r.orders.size());
  out += "</p>\n";

  constexpr double row_h = 14;
  const auto a = make_axis(r.start_us, latest_time(rows, r.end_us));
  const double height = axis_h + row_h * static_cast<double>(rows.size()) + 8;
  put(out,
      R"(<svg id="orders" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {0:.0f} {1:.0f}" )"
      R"(width="{0:.0f}" height="{1:.0f}" role="img" aria-label="order timelines">)",
      chart_w, height);
  out += "\n";
  draw_time_grid(out, a, axis_h, height - 8);
  for (std::size_t i = 0; i < rows.size(); ++i)
    draw_order_row(out, *rows[i], a, axis_h + row_h * static_cast<double>(i), row_h, r.end_us);
  out += "</svg>\n";
}

// ---------------------------------------------------------------- KPI charts

void write_utilization(std::string& out, const kpis& k) {
  out += "<h3>Utilization per machine</h3>\n";
  if (k.utilization.empty()) {
    out += "<p class=\"note\">No machine.</p>\n";
    return;
  }
  constexpr double row_h = 20;
  const double height = 24 + row_h * static_cast<double>(k.utilization.size()) + 4;
  put(out,
      R"(<svg id="utilization" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {0:.0f} {1:.0f}" )"
      R"(width="{0:.0f}" height="{1:.0f}" role="img" aria-label="utilization per machine">)",
      chart_w, height);
  out += "\n";
  for (int pct = 0; pct <= 100; pct += 25) {
    const double x = label_w + plot_w * pct / 100.0;
    put(out, R"(<line class="grid" x1="{0:.1f}" y1="20" x2="{0:.1f}" y2="{1:.1f}"/>)", x,
        height - 4);
    put(out, R"(<text class="tick" x="{:.1f}" y="14" text-anchor="middle">{}%</text>)", x, pct);
  }
  double y = 24;
  for (const auto& [id, u] : k.utilization) {
    const double frac = std::clamp(u, 0.0, 1.0);
    put(out,
        R"(<text x="{:.0f}" y="{:.1f}" text-anchor="end"><title>{}</title>{}</text>)"
        R"(<rect class="track" x="{:.0f}" y="{:.1f}" width="{:.0f}" height="{:.0f}"/>)"
        R"(<rect x="{:.0f}" y="{:.1f}" width="{:.1f}" height="{:.0f}" fill="#4e79a7">)"
        R"(<title>{}: {:.1f}%</title></rect>)"
        R"(<text x="{:.1f}" y="{:.1f}">{:.1f}%</text>)",
        label_w - 8, y + 13, esc(id), esc(clip(id)), label_w, y + 3, plot_w, row_h - 6, label_w,
        y + 3, plot_w * frac, row_h - 6, esc(id), u * 100, label_w + plot_w * frac + 4, y + 13,
        u * 100);
    out += "\n";
    y += row_h;
  }
  out += "</svg>\n";
}

std::map<outcome, std::uint64_t> outcome_counts(const kpis& k) {
  const auto on_time = std::min<std::uint64_t>(
      k.contracted, static_cast<std::uint64_t>(
                        std::llround(static_cast<double>(k.contracted) * k.on_time_pct / 100.0)));
  return {{outcome::on_time, on_time},
          {outcome::late, k.contracted - on_time},
          {outcome::failed, k.failed},
          {outcome::open, k.open},
          {outcome::refused, k.orders_refused}};
}

void write_outcomes(std::string& out, const kpis& k) {
  out += "<h3>Order outcomes</h3>\n";
  const auto counts = outcome_counts(k);
  std::uint64_t total = 0, most = 0;
  for (const auto& [o, n] : counts) {
    total += n;
    most = std::max(most, n);
  }
  if (total == 0) {
    out += "<p class=\"note\">No order.</p>\n";
    return;
  }
  constexpr double row_h = 22;
  constexpr double stack_h = 26;
  const double height = stack_h + 12 + row_h * static_cast<double>(std::size(outcomes));
  put(out,
      R"(<svg id="outcomes" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {0:.0f} {1:.0f}" )"
      R"(width="{0:.0f}" height="{1:.0f}" role="img" aria-label="order outcomes">)",
      chart_w, height);
  out += "\n";
  // One stacked bar of every order offered to a buyer...
  put(out, R"(<text x="{:.0f}" y="17" text-anchor="end">all {} orders</text>)", label_w - 8, total);
  double x = label_w;
  for (auto o : outcomes) {
    const double w = plot_w * static_cast<double>(counts.at(o)) / static_cast<double>(total);
    if (w <= 0) continue;
    put(out,
        R"(<rect class="{}" x="{:.1f}" y="2" width="{:.1f}" height="{:.0f}">)"
        R"(<title>{}: {} ({:.1f}%)</title></rect>)",
        outcome_class(o), x, w, stack_h - 4, outcome_name(o), counts.at(o),
        100.0 * static_cast<double>(counts.at(o)) / static_cast<double>(total));
    x += w;
  }
  out += "\n";
  // ... then one bar per outcome, scaled to the largest.
  double y = stack_h + 12;
  for (auto o : outcomes) {
    const auto n = counts.at(o);
    const double w = most ? plot_w * static_cast<double>(n) / static_cast<double>(most) : 0;
    put(out,
        R"(<text x="{:.0f}" y="{:.1f}" text-anchor="end">{}</text>)"
        R"(<rect class="{}" x="{:.0f}" y="{:.1f}" width="{:.1f}" height="{:.0f}">)"
        R"(<title>{}: {}</title></rect><text x="{:.1f}" y="{:.1f}">{}</text>)",
        label_w - 8, y + 15, outcome_name(o), outcome_class(o), label_w, y + 3, w, row_h - 6,
        outcome_name(o), n, label_w + w + 4, y + 15, n);
    out += "\n";
    y += row_h;
  }
  out += "</svg>\n";
}

void write_kpi_charts(std::string& out, const kpis& k) {
  out += "<h2>KPI charts</h2>\n";
  write_utilization(out, k);
  write_outcomes(out, k);
}

std::string render(const sim_result& r) {
  std::string out;
  out.reserve(64 * 1024 + 256 * (r.bookings.size() + r.orders.size()));
  put(out,
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>Gearmesh sim: {} (seed {})</title>\n<style>{}</style>\n</head>\n<body>\n",
      esc(r.scenario), r.seed, css);
  write_header(out, r);
  write_kpi_table(out, r.k);
  write_gantt(out, r);
  write_orders(out, r);
  write_kpi_charts(out, r.k);
  out +=
      "<p class=\"note\">Generated by gearmesh sim. Times are simulated, in UTC.</p>\n"
      "</body>\n</html>\n";
  return out;
}

status write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return status(errc::storage, path.string() + ": " + std::strerror(errno));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) return status(errc::storage, path.string() + ": write failed");
  return status::ok();
}

}  // namespace

status write_report(const sim_result& r, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return status(errc::storage, dir + ": " + ec.message());
  return write_file(fs::path(dir) / "index.html", render(r));
}

}  // namespace gearmesh::sim
