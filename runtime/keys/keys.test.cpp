#include "gearmesh/keys/keys.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gearmesh::keys {
namespace {

namespace fs = std::filesystem;

// The example keypair of zmq_curve(7) and libzmq's tests.
constexpr const char* doc_public = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
constexpr const char* doc_secret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";

class keys_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(curve_available()) << curve_available().to_string();
    dir_ = fs::temp_directory_path() /
           ("gearmesh-keys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    ::chmod(p.c_str(), mode);
    return p;
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static mode_t mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  static std::string secret_file(const std::string& key) {
    return "-----BEGIN GEARMESH CURVE SECRET KEY-----\n" + key +
           "\n-----END GEARMESH CURVE SECRET KEY-----\n";
  }

  fs::path dir_;
};

TEST_F(keys_test, z85_round_trip_and_known_keypair) {
  auto secret = from_z85(doc_secret);
  ASSERT_TRUE(secret) << secret.error().to_string();
  EXPECT_EQ(to_z85(*secret), doc_secret);
  auto pub = public_key_of(*secret);
  ASSERT_TRUE(pub) << pub.error().to_string();
  EXPECT_EQ(to_z85(*pub), doc_public);

  auto kp = generate();
  ASSERT_TRUE(kp);
  EXPECT_NE(kp->public_key, kp->secret_key);
  EXPECT_EQ(*public_key_of(kp->secret_key), kp->public_key);
  EXPECT_EQ(*from_z85(to_z85(kp->public_key)), kp->public_key);
}

TEST_F(keys_test, generate_then_load_round_trip) {
  const fs::path key_dir = dir_ / "etc" / "keys";
  auto pub = write_keypair(key_dir, /*force=*/false);
  ASSERT_TRUE(pub) << pub.error().to_string();

  EXPECT_EQ(mode_of(key_dir), 0700u);
  EXPECT_EQ(mode_of(key_dir / "node.key"), 0600u);
  EXPECT_EQ(mode_of(key_dir / "node.pub"), 0644u);
  EXPECT_EQ(read(key_dir / "node.pub"), to_z85(*pub) + "\n");
  const std::string key_text = read(key_dir / "node.key");
  EXPECT_EQ(key_text.rfind("-----BEGIN GEARMESH CURVE SECRET KEY-----\n", 0), 0u) << key_text;
  // Only node.key and node.pub are left: no temporary files.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(key_dir)) ++entries;
  EXPECT_EQ(entries, 2u);

  auto kp = load_secret_key(key_dir / "node.key");
  ASSERT_TRUE(kp) << kp.error().to_string();
  EXPECT_EQ(kp->public_key, *pub);
  EXPECT_EQ(*load_public_key(key_dir / "node.pub"), *pub);
  EXPECT_EQ(*public_key_from_file(key_dir / "node.key"), *pub);
  EXPECT_EQ(*public_key_from_file(key_dir / "node.pub"), *pub);
  EXPECT_EQ(*parse_public_key("  " + to_z85(*pub) + "\n"), *pub);
}

TEST_F(keys_test, creates_the_directory_0700_also_with_a_trailing_slash) {
  ASSERT_TRUE(write_keypair((dir_ / "a" / "keys").string() + "/", false));
  EXPECT_EQ(mode_of(dir_ / "a" / "keys"), 0700u);
  EXPECT_TRUE(load_secret_key(dir_ / "a" / "keys" / "node.key"));
}

TEST_F(keys_test, modes_do_not_depend_on_the_umask) {
  for (mode_t mask : {mode_t{0}, mode_t{0777}}) {
    const mode_t old = ::umask(mask);
    const fs::path key_dir = dir_ / ("umask" + std::to_string(mask));
    auto pub = write_keypair(key_dir, false);
    ::umask(old);
    ASSERT_TRUE(pub) << pub.error().to_string();
    EXPECT_EQ(mode_of(key_dir), 0700u) << "umask " << mask;
    EXPECT_EQ(mode_of(key_dir / "node.key"), 0600u) << "umask " << mask;
    EXPECT_EQ(mode_of(key_dir / "node.pub"), 0644u) << "umask " << mask;
    EXPECT_TRUE(load_secret_key(key_dir / "node.key"));
  }
}

TEST_F(keys_test, refuses_a_secret_key_open_to_group_or_others) {
  ASSERT_TRUE(write_keypair(dir_, false));
  const fs::path key = dir_ / "node.key";
  for (mode_t mode : {0640, 0604, 0660, 0644, 0610, 0601, 0666}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    auto kp = load_secret_key(key);
    ASSERT_FALSE(kp) << std::oct << mode;
    EXPECT_EQ(kp.error().code(), errc::bad_config);
    std::ostringstream want;
    want << "permissions 0" << std::oct << mode << " are too open";
    EXPECT_NE(kp.error().message().find(key.string()), std::string::npos) << kp.error().message();
    EXPECT_NE(kp.error().message().find(want.str()), std::string::npos) << kp.error().message();
    EXPECT_NE(kp.error().message().find("chmod 600"), std::string::npos);
    EXPECT_FALSE(public_key_from_file(key));  // `keys show` applies the same rule
  }
  for (mode_t mode : {0600, 0400, 0700}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    EXPECT_TRUE(load_secret_key(key)) << std::oct << mode;
  }
  // A public key file may be world-readable.
  EXPECT_TRUE(load_public_key(dir_ / "node.pub"));
}

TEST_F(keys_test, rejects_malformed_secret_key_files) {
  const std::string key = doc_secret;
  struct bad_case {
    const char* name;
    std::string content;
    const char* message;
  };
  const bad_case cases[] = {
      {"empty", "", "empty"},
      {"bare_key", key + "\n", "form of a public key file"},
      {"garbage", "hello\n", "first line must be -----BEGIN GEARMESH CURVE SECRET KEY-----"},
      {"no_end", "-----BEGIN GEARMESH CURVE SECRET KEY-----\n" + key + "\n", "one line between"},
      {"two_keys", secret_file(key + "\n" + key), "one line between"},
      {"short", secret_file(key.substr(1)), "a key is 40 Z85 characters, got 39"},
      {"long", secret_file(key + "0"), "got 41"},
      {"quote", secret_file(std::string(1, '"').append(key, 1)), "character 1 ('\"') is not Z85"},
      {"nul", secret_file(key.substr(0, 5) + std::string(1, '\0') + key.substr(6)),
       "character 6 (byte 0) is not Z85"},
      {"overflow", secret_file("#####" + key.substr(5)), "more than 32 bits"},
      {"too_large", std::string(5000, 'a'), "too large for a key file"},
  };
  for (const auto& c : cases) {
    const fs::path p = write(c.name, c.content);
    auto kp = load_secret_key(p);
    ASSERT_FALSE(kp) << c.name;
    EXPECT_EQ(kp.error().code(), errc::bad_config) << c.name;
    EXPECT_NE(kp.error().message().find(p.string()), std::string::npos)
        << c.name << ": " << kp.error().message();
    EXPECT_NE(kp.error().message().find(c.message), std::string::npos)
        << c.name << ": " << kp.error().message();
  }
  // Windows line ends and surrounding blank lines are fine.
  EXPECT_TRUE(
      load_secret_key(write("crlf", "\r\n-----BEGIN GEARMESH CURVE SECRET KEY-----\r\n" + key +
                                        "\r\n-----END GEARMESH CURVE SECRET KEY-----\r\n\r\n")));

  auto missing = load_secret_key(dir_ / "nope.key");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::not_found);
  EXPECT_NE(missing.error().message().find("nope.key"), std::string::npos);

  auto directory = load_secret_key(dir_);
  ASSERT_FALSE(directory);
  EXPECT_NE(directory.error().message().find("not a regular file"), std::string::npos);

  // A FIFO is refused without blocking.
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto from_fifo = load_secret_key(fifo);
  ASSERT_FALSE(from_fifo);
  EXPECT_NE(from_fifo.error().message().find("not a regular file"), std::string::npos);
}

TEST_F(keys_test, rejects_malformed_public_keys) {
  EXPECT_EQ(to_z85(*load_public_key(write("ok.pub", std::string(doc_public) + "\n", 0644))),
            doc_public);

  auto secret_given = load_public_key(write("node.key", secret_file(doc_secret)));
  ASSERT_FALSE(secret_given);
  EXPECT_EQ(secret_given.error().code(), errc::bad_config);
  EXPECT_NE(secret_given.error().message().find("is a secret key file"), std::string::npos)
      << secret_given.error().message();

  for (const std::string& bad :
       {std::string(""), std::string(doc_public).substr(2), std::string(doc_public) + " x",
        std::string("~") + (doc_public + 1)}) {
    auto k = load_public_key(write("bad.pub", bad, 0644));
    ASSERT_FALSE(k) << bad;
    EXPECT_EQ(k.error().code(), errc::bad_config);
    EXPECT_NE(k.error().message().find("bad.pub: not a public key file"), std::string::npos)
        << k.error().message();
    auto t = parse_public_key(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().code(), errc::invalid_argument);
  }
}

TEST_F(keys_test, refuses_to_overwrite_without_force) {
  auto first = write_keypair(dir_, false);
  ASSERT_TRUE(first);
  const std::string key_before = read(dir_ / "node.key");

  auto again = write_keypair(dir_, false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), errc::storage);
  EXPECT_NE(again.error().message().find("node.key already exists; pass --force"),
            std::string::npos)
      << again.error().message();
  EXPECT_EQ(read(dir_ / "node.key"), key_before);
  EXPECT_EQ(*load_public_key(dir_ / "node.pub"), *first);

  // A lone node.pub is not replaced either.
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  std::ofstream(other / "node.pub") << doc_public << "\n";
  auto lone = write_keypair(other, false);
  ASSERT_FALSE(lone);
  EXPECT_NE(lone.error().message().find("node.pub already exists"), std::string::npos);
  EXPECT_FALSE(fs::exists(other / "node.key"));

  auto forced = write_keypair(dir_, true);
  ASSERT_TRUE(forced) << forced.error().to_string();
  EXPECT_NE(*forced, *first);
  EXPECT_EQ(load_secret_key(dir_ / "node.key")->public_key, *forced);
  EXPECT_EQ(*load_public_key(dir_ / "node.pub"), *forced);
  EXPECT_EQ(mode_of(dir_ / "node.key"), 0600u);

  // The key directory must be a directory.
  auto not_dir = write_keypair(dir_ / "node.pub", false);
  ASSERT_FALSE(not_dir);
  EXPECT_NE(not_dir.error().message().find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace gearmesh::keys
