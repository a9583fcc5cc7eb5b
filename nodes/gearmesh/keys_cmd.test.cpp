#include "keys_cmd.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "gearmesh/keys/keys.hpp"
#include "temp_dir.hpp"

namespace gearmesh::cli {
namespace {

namespace fs = std::filesystem;

struct run_result {
  int rc = 0;
  std::string out, err;
};

run_result gearmesh(std::vector<std::string> args) {
  args.insert(args.begin(), "gearmesh");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  run_result r;
  r.rc = run(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

class cli_keys : public ::testing::Test {
 protected:
  gearmesh::testing::temp_dir tmp_;
  fs::path dir_{tmp_.sub("work")};  // not created: commands create it
};

TEST_F(cli_keys, generate_then_show_round_trip) {
  const auto keys_dir = dir_ / "keys";
  auto gen = gearmesh({"keys", "generate", "--out", keys_dir.string()});
  ASSERT_EQ(gen.rc, exit_ok) << gen.err;
  ASSERT_EQ(gen.out.size(), keys::key_z85_chars + 1) << gen.out;
  EXPECT_NE(gen.err.find("node.key (secret, mode 0600"), std::string::npos) << gen.err;

  auto from_secret = gearmesh({"keys", "show", "--key", (keys_dir / "node.key").string()});
  ASSERT_EQ(from_secret.rc, exit_ok) << from_secret.err;
  EXPECT_EQ(from_secret.out, gen.out);
  auto from_public = gearmesh({"keys", "show", "--key", (keys_dir / "node.pub").string()});
  ASSERT_EQ(from_public.rc, exit_ok) << from_public.err;
  EXPECT_EQ(from_public.out, gen.out);

  auto as_json = gearmesh({"keys", "show", "--key", (keys_dir / "node.key").string(), "--json"});
  ASSERT_EQ(as_json.rc, exit_ok) << as_json.err;
  auto j = nlohmann::json::parse(as_json.out);
  EXPECT_EQ(j["public_key"].get<std::string>() + "\n", gen.out);

  auto kp = keys::load_secret_key(keys_dir / "node.key");
  ASSERT_TRUE(kp) << kp.error().to_string();
  EXPECT_EQ(keys::to_z85(kp->public_key) + "\n", gen.out);
}

TEST_F(cli_keys, generate_json_names_the_files) {
  auto gen = gearmesh({"--json", "keys", "generate", "--out", dir_.string()});
  ASSERT_EQ(gen.rc, exit_ok) << gen.err;
  auto j = nlohmann::json::parse(gen.out);
  EXPECT_EQ(j["secret_key_file"], (dir_ / "node.key").string());
  EXPECT_EQ(j["public_key_file"], (dir_ / "node.pub").string());
  EXPECT_EQ(*keys::load_public_key(dir_ / "node.pub"),
            *keys::parse_public_key(j["public_key"].get<std::string>()));
}

TEST_F(cli_keys, refuses_overwrite_unless_forced) {
  auto first = gearmesh({"keys", "generate", "--out", dir_.string()});
  ASSERT_EQ(first.rc, exit_ok) << first.err;
  auto again = gearmesh({"keys", "generate", "--out", dir_.string()});
  EXPECT_EQ(again.rc, exit_api_error);
  EXPECT_NE(again.err.find("already exists; pass --force"), std::string::npos) << again.err;
  EXPECT_EQ(gearmesh({"keys", "show", "--key", (dir_ / "node.pub").string()}).out, first.out);

  auto forced = gearmesh({"keys", "generate", "--out", dir_.string(), "--force"});
  ASSERT_EQ(forced.rc, exit_ok) << forced.err;
  EXPECT_NE(forced.out, first.out);
  EXPECT_EQ(gearmesh({"keys", "show", "--key", (dir_ / "node.key").string()}).out, forced.out);
}

TEST_F(cli_keys, show_refuses_open_secret_keys_and_malformed_files) {
  ASSERT_EQ(gearmesh({"keys", "generate", "--out", dir_.string()}).rc, exit_ok);
  const auto key = (dir_ / "node.key").string();
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  auto open = gearmesh({"keys", "show", "--key", key});
  EXPECT_EQ(open.rc, exit_api_error);
  EXPECT_NE(open.err.find("permissions 0644 are too open"), std::string::npos) << open.err;
  EXPECT_NE(open.err.find("chmod 600 " + key), std::string::npos) << open.err;
  EXPECT_TRUE(open.out.empty());

  const auto junk = dir_ / "junk.pub";
  std::ofstream(junk) << "not a key\n";
  auto bad = gearmesh({"keys", "show", "--key", junk.string()});
  EXPECT_EQ(bad.rc, exit_api_error);
  EXPECT_NE(bad.err.find("junk.pub: not a public key file"), std::string::npos) << bad.err;

  auto missing = gearmesh({"keys", "show", "--key", (dir_ / "missing.key").string()});
  EXPECT_EQ(missing.rc, exit_api_error);
  EXPECT_NE(missing.err.find("no such key file"), std::string::npos) << missing.err;
}

TEST_F(cli_keys, usage_errors) {
  EXPECT_EQ(gearmesh({"keys"}).rc, exit_usage);
  EXPECT_EQ(gearmesh({"keys", "generate"}).rc, exit_usage);
  EXPECT_EQ(gearmesh({"keys", "show"}).rc, exit_usage);
  EXPECT_EQ(gearmesh({"keys", "rotate"}).rc, exit_usage);
  EXPECT_FALSE(fs::exists(dir_));
}

}  // namespace
}  // namespace gearmesh::cli
