// `gearmesh sim` and `gearmesh scenario generate` through the CLI's entry point.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "gearmesh/sim/scenario.hpp"

namespace gearmesh::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string two_tier = std::string(GEARMESH_SCENARIOS) + "/two_tier.toml";

class cli_sim : public ::testing::Test {
 protected:
  int cli(std::vector<std::string> args) {
    out_.str({});
    err_.str({});
    args.insert(args.begin(), "gearmesh");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return run(static_cast<int>(argv.size()), argv.data(), out_, err_);
  }
  std::ostringstream out_, err_;
};

TEST_F(cli_sim, one_run_as_json_replays_and_keeps_every_invariant) {
  ASSERT_EQ(cli({"--json", "sim", two_tier, "--seed", "4"}), exit_ok) << err_.str();
  auto a = json::parse(out_.str());
  EXPECT_EQ(a["seed"], 4);
  EXPECT_EQ(a["ok"], true);
  EXPECT_EQ(a["quiesced"], true);
  EXPECT_EQ(a["trace_hash"].get<std::string>().size(), 16u);
  EXPECT_GT(a["kpis"]["orders_placed"].get<int>(), 0);
  EXPECT_TRUE(a["kpis"]["utilization"].contains("framecraft/weld1"));
  ASSERT_EQ(cli({"--json", "sim", two_tier, "--seed", "4"}), exit_ok);
  auto b = json::parse(out_.str());
  EXPECT_EQ(a["trace_hash"], b["trace_hash"]);
  EXPECT_EQ(a["state_hash"], b["state_hash"]);
}

TEST_F(cli_sim, a_sweep_lists_its_seeds_and_the_failing_ones) {
  ASSERT_EQ(cli({"sim", two_tier, "--seeds", "10..12", "--jobs", "2"}), exit_ok) << err_.str();
  for (auto seed : {"10", "11", "12"})
    EXPECT_NE(out_.str().find(std::string("seed     ") + seed), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("3 seeds in"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("0 failing"), std::string::npos) << out_.str();
}

TEST_F(cli_sim, the_report_is_written) {
  const auto dir = fs::temp_directory_path() / ("gearmesh-sim-cli-" + std::to_string(::getpid()));
  ASSERT_EQ(cli({"sim", two_tier, "--seed", "2", "--report", dir.string()}), exit_ok) << err_.str();
  EXPECT_TRUE(fs::exists(dir / "index.html"));
  EXPECT_NE(out_.str().find("index.html"), std::string::npos);
  fs::remove_all(dir);
}

TEST_F(cli_sim, usage_errors_are_exit_2) {
  EXPECT_EQ(cli({"sim", two_tier, "--seeds", "5..2"}), exit_usage);
  EXPECT_NE(err_.str().find("--seeds: expected N or A..B"), std::string::npos) << err_.str();
  EXPECT_EQ(cli({"sim", "/nonexistent/scenario.toml"}), exit_usage);
  EXPECT_NE(err_.str().find("/nonexistent/scenario.toml: cannot read"), std::string::npos);
  EXPECT_EQ(cli({"sim", two_tier, "--seed", "1", "--seeds", "1..2"}), exit_usage);
}

TEST_F(cli_sim, generate_writes_a_scenario_that_parses) {
  ASSERT_EQ(cli({"scenario", "generate", "--out", "-", "--buyers", "3", "--factories", "5",
                 "--suppliers", "2", "--orders", "50"}),
            exit_ok)
      << err_.str();
  auto s = sim::parse_scenario(out_.str(), "generated");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->nodes.size(), 10u);
  std::uint64_t orders = 0;
  for (const auto& d : s->demand) orders += d.orders;
  EXPECT_EQ(orders, 50u);
  ASSERT_EQ(s->disruptions.size(), 1u);
  EXPECT_EQ(s->disruptions[0].node, "supplier0001");
  const std::string first = out_.str();
  ASSERT_EQ(cli({"scenario", "generate", "--out", "-", "--buyers", "3", "--factories", "5",
                 "--suppliers", "2", "--orders", "50"}),
            exit_ok);
  EXPECT_EQ(out_.str(), first);  // the same options give the same file
  EXPECT_EQ(cli({"scenario", "generate", "--out", "-", "--buyers", "0"}), exit_usage);
}

}  // namespace
}  // namespace gearmesh::cli
