#include "gearmesh/store/store.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace gearmesh::store {
namespace {

using gearmesh::testing::temp_dir;

options test_options(const std::string& path) {
  options o;
  o.path = path;
  o.sync = false;
  o.map_bytes_initial = std::size_t{1} << 20;
  return o;
}

std::unique_ptr<environment> open_ok(const options& o) {
  auto env = environment::open(o);
  EXPECT_TRUE(env) << env.error().to_string();
  if (!env) return nullptr;
  return std::move(*env);
}

std::map<std::string, std::string> dump(const environment& env, std::string_view table) {
  std::map<std::string, std::string> out;
  auto st = env.for_each(table, [&](std::string_view k, std::string_view v) {
    out.emplace(k, v);
    return true;
  });
  EXPECT_TRUE(st) << st.to_string();
  return out;
}

std::optional<std::string> get_ok(const environment& env, std::string_view table,
                                  std::string_view key) {
  auto r = env.get(table, key);
  EXPECT_TRUE(r) << r.error().to_string();
  if (!r) return std::nullopt;
  return *r;
}

TEST(store, key_u64_is_20_digit_zero_padded) {
  EXPECT_EQ(key_u64(0), "00000000000000000000");
  EXPECT_EQ(key_u64(42), "00000000000000000042");
  EXPECT_EQ(key_u64(UINT64_MAX), "18446744073709551615");
  EXPECT_LT(key_u64(9), key_u64(10));
}

TEST(store, write_batch_append_keeps_order) {
  write_batch a, b;
  a.put("t", "1", "a");
  b.erase("t", "2");
  b.put("u", "3", "c");
  a.append(std::move(b));
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a.ops()[1].op, write_op::kind::erase);
  EXPECT_EQ(a.ops()[2].table, "u");
  EXPECT_TRUE(b.empty());
}

TEST(store, a_key_log_gives_each_key_once_by_table) {
  using key_set = std::set<std::string, std::less<>>;
  key_log a;
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(a.keys().empty());
  a.add("orders", "o2");
  a.add("orders", "o1");
  a.add("offers", "p1");
  a.add("orders", "o2");  // again
  a.add("offers", "");    // an empty key is a key
  EXPECT_EQ(a.size(), 5u);
  key_log b;
  b.add("holds", "m/1");
  b.add("orders", "o3");
  b.add("offers", "p1");
  a.append(std::move(b));
  EXPECT_EQ(a.size(), 8u);
  EXPECT_EQ(a.keys(), (written_keys{{"holds", key_set{"m/1"}},
                                    {"offers", key_set{"", "p1"}},
                                    {"orders", key_set{"o1", "o2", "o3"}}}));
  key_log c;  // appended to an empty log: taken whole
  c.append(std::move(a));
  EXPECT_EQ(c.size(), 8u);
  EXPECT_EQ(c.keys().at("orders").size(), 3u);

  // Ignored tables: skipped by add, also after take; append takes all.
  key_log d;
  d.ignore("inbox");
  d.add("inbox", "a/1");
  d.add("orders", "o1");
  EXPECT_EQ(d.size(), 1u);
  const auto taken = d.take();
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(taken.keys(), (written_keys{{"orders", key_set{"o1"}}}));
  d.add("inbox", "a/2");
  d.add("orders", "o2");
  EXPECT_EQ(d.keys(), (written_keys{{"orders", key_set{"o2"}}}));
  key_log e;
  e.ignore("orders");
  e.add("orders", "o0");
  e.append(d.take());
  EXPECT_EQ(e.keys(), (written_keys{{"orders", key_set{"o2"}}}));
}

TEST(store, put_get_erase_scan_in_key_order) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  write_batch b;
  b.put("t", "b", "2");
  b.put("t", "a", "1");
  b.put("t", "d", "4");
  b.put("t", "c", "3");
  b.put("t", "c", "3bis");  // later op in the batch wins
  ASSERT_TRUE(env->apply(b));

  EXPECT_EQ(get_ok(*env, "t", "a"), "1");
  EXPECT_EQ(get_ok(*env, "t", "c"), "3bis");
  EXPECT_EQ(get_ok(*env, "t", "zz"), std::nullopt);
  EXPECT_EQ(get_ok(*env, "t", ""), std::nullopt);

  std::vector<std::string> keys;
  ASSERT_TRUE(env->scan("t", "b", [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  }));
  EXPECT_EQ(keys, (std::vector<std::string>{"b", "c", "d"}));

  keys.clear();
  ASSERT_TRUE(env->for_each("t", [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return keys.size() < 2;  // stop early
  }));
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));

  keys.clear();
  ASSERT_TRUE(env->scan("t", "bb", [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  }));
  EXPECT_EQ(keys, (std::vector<std::string>{"c", "d"}));

  write_batch e;
  e.erase("t", "a");
  e.erase("t", "missing");  // erasing a missing key is fine
  e.erase("never_created", "x");
  ASSERT_TRUE(env->apply(e));
  EXPECT_EQ(get_ok(*env, "t", "a"), std::nullopt);
  EXPECT_EQ(dump(*env, "t").size(), 3u);
  // Erase does not create tables.
  auto s = env->stats();
  ASSERT_TRUE(s);
  for (const auto& t : *s) EXPECT_NE(t.name, "never_created");
}

TEST(store, missing_table_reads_empty) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  EXPECT_EQ(get_ok(*env, "nope", "k"), std::nullopt);
  int visits = 0;
  ASSERT_TRUE(env->for_each("nope", [&](std::string_view, std::string_view) {
    ++visits;
    return true;
  }));
  EXPECT_EQ(visits, 0);
  // A table created after a miss becomes visible.
  write_batch b;
  b.put("nope", "k", "v");
  ASSERT_TRUE(env->apply(b));
  EXPECT_EQ(get_ok(*env, "nope", "k"), "v");
}

TEST(store, invalid_table_name_is_rejected_and_nothing_applied) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  write_batch b;
  b.put("t", "k", "v");
  b.put("", "k", "v");
  auto st = env->apply(b);
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_EQ(get_ok(*env, "t", "k"), std::nullopt);
}

TEST(store, reopen_returns_exactly_what_was_committed) {
  temp_dir dir;
  std::map<std::string, std::map<std::string, std::string>> expected;
  {
    auto env = open_ok(test_options(dir.path()));
    ASSERT_TRUE(env);
    for (int round = 0; round < 10; ++round) {
      write_batch b;
      for (int i = 0; i < 500; ++i) {
        std::string table = "table" + std::to_string(i % 5);
        std::string key = key_u64(static_cast<std::uint64_t>(round * 500 + i));
        std::string value = "value-" + std::to_string(round) + "-" + std::to_string(i);
        b.put(table, key, value);
        expected[table][key] = value;
      }
      // Erase a few earlier keys.
      if (round > 0) {
        std::string key = key_u64(static_cast<std::uint64_t>((round - 1) * 500));
        b.erase("table0", key);
        expected["table0"].erase(key);
      }
      ASSERT_TRUE(env->apply(b));
    }
  }
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  for (const auto& [table, rows] : expected) EXPECT_EQ(dump(*env, table), rows) << table;
  EXPECT_EQ(get_ok(*env, "meta", "format_version"), std::to_string(format_version));
}

TEST(store, open_twice_in_one_process_is_refused) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  auto again = environment::open(test_options(dir.path()));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), errc::storage);
}

TEST(store, format_version_mismatch_is_a_storage_error) {
  temp_dir dir;
  {
    auto env = open_ok(test_options(dir.path()));
    ASSERT_TRUE(env);
    write_batch b;
    b.put("meta", "format_version", std::to_string(format_version + 1));
    ASSERT_TRUE(env->apply(b));
  }
  auto env = environment::open(test_options(dir.path()));
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code(), errc::storage);
  const std::string& msg = env.error().message();
  EXPECT_NE(msg.find(dir.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(format_version + 1)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(format_version)), std::string::npos) << msg;
  // After the failed open the path is free to open again (and fails again).
  EXPECT_FALSE(environment::open(test_options(dir.path())));
}

TEST(store, map_grows_on_map_full) {
  temp_dir dir;
  options o = test_options(dir.path());
  o.map_bytes_initial = std::size_t{1} << 20;
  const std::string value(4000, 'x');
  constexpr int count = 2000;  // ~8 MiB
  {
    auto env = open_ok(o);
    ASSERT_TRUE(env);
    // One big transaction, then many small ones.
    write_batch big;
    for (int i = 0; i < count / 2; ++i) big.put("blob", key_u64(i), value);
    auto st = env->apply(big);
    ASSERT_TRUE(st) << st.to_string();
    for (int i = count / 2; i < count; i += 100) {
      write_batch b;
      for (int j = i; j < i + 100; ++j) b.put("blob", key_u64(j), value);
      st = env->apply(b);
      ASSERT_TRUE(st) << st.to_string();
    }
  }
  auto env = open_ok(o);
  ASSERT_TRUE(env);
  auto rows = dump(*env, "blob");
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(count));
  for (const auto& [k, v] : rows) ASSERT_EQ(v, value);
  // Still writable after reopening with the small initial size.
  write_batch b;
  b.put("blob", "zz", value);
  EXPECT_TRUE(env->apply(b));
}

TEST(store, map_bytes_max_reached_is_an_error_and_applies_nothing) {
  temp_dir dir;
  options o = test_options(dir.path());
  o.map_bytes_initial = std::size_t{1} << 20;
  o.map_bytes_max = std::size_t{2} << 20;
  auto env = open_ok(o);
  ASSERT_TRUE(env);
  write_batch small;
  small.put("t", "before", "1");
  ASSERT_TRUE(env->apply(small));

  const std::string value(4000, 'y');
  write_batch big;
  big.put("t", "first", "should not appear");
  for (int i = 0; i < 1500; ++i) big.put("blob", key_u64(i), value);  // ~6 MiB
  auto st = env->apply(big);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), errc::storage);
  EXPECT_NE(st.message().find("map full"), std::string::npos) << st.message();
  EXPECT_EQ(get_ok(*env, "t", "first"), std::nullopt);
  EXPECT_EQ(get_ok(*env, "t", "before"), "1");
  EXPECT_TRUE(dump(*env, "blob").empty());
  // Smaller writes still succeed.
  write_batch after;
  after.put("t", "after", "2");
  EXPECT_TRUE(env->apply(after));
  EXPECT_EQ(get_ok(*env, "t", "after"), "2");
}

TEST(store, failing_op_applies_nothing) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  write_batch ok;
  ok.put("t", "existing", "old");
  ASSERT_TRUE(env->apply(ok));

  write_batch first, second;
  first.put("t", "a", "1");
  first.put("new_table", "x", "y");
  first.erase("t", "existing");
  second.put("t", "b", "2");
  second.put("t", std::string(4096, 'k'), "too long a key");  // > mdb_env_get_maxkeysize
  auto st = env->apply(std::vector<const write_batch*>{&first, &second});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), errc::invalid_argument);  // refused before the transaction
  EXPECT_FALSE(env->check(second));
  EXPECT_TRUE(env->check(first));
  write_batch empty_key;
  empty_key.put("t", "", "v");
  EXPECT_EQ(env->check(empty_key).code(), errc::invalid_argument);
  EXPECT_EQ(env->key_bytes_max(), 511u);
  EXPECT_NE(st.message().find(dir.path()), std::string::npos) << st.message();

  EXPECT_EQ(get_ok(*env, "t", "a"), std::nullopt);
  EXPECT_EQ(get_ok(*env, "t", "b"), std::nullopt);
  EXPECT_EQ(get_ok(*env, "t", "existing"), "old");
  EXPECT_EQ(get_ok(*env, "new_table", "x"), std::nullopt);
  // The table opened by the aborted transaction is usable afterwards.
  ASSERT_TRUE(env->apply(first));
  EXPECT_EQ(get_ok(*env, "new_table", "x"), "y");
}

// Disk full, for real: the child process gets a file size limit just above
// what the store holds (writes past it fail with EFBIG, as they would with
// ENOSPC on a full disk) and writes until a commit fails.
TEST(store, disk_full_fails_with_a_clear_error_and_keeps_the_last_durable_state) {
  temp_dir dir;
  const std::string data = dir.sub("db");
  const std::string report = dir.sub("report");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: no gtest macros; the exit code tells the parent what went wrong.
    std::signal(SIGXFSZ, SIG_IGN);
    auto o = test_options(data);
    o.sync = true;
    auto env = environment::open(o);
    if (!env) ::_exit(10);
    write_batch first;
    first.put("t", "before", "x");
    if (!(*env)->apply(first)) ::_exit(11);
    auto size = std::filesystem::file_size(data + "/data.mdb");
    rlimit rl{size + 64 * 1024, size + 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(12);
    int ok = 0;
    status failure;
    for (int i = 0; i < 1000; ++i) {
      write_batch b;
      b.put("t", key_u64(static_cast<std::uint64_t>(i)), std::string(16 * 1024, 'v'));
      auto st = (*env)->apply(b);
      if (!st) {
        failure = st;
        break;
      }
      ++ok;
    }
    std::ofstream(report) << ok << "\n" << failure.message() << "\n";
    if (failure.is_ok()) ::_exit(13);
    if (failure.code() != errc::storage) ::_exit(14);
    ::_exit(0);
  }
  int wst = 0;
  ASSERT_EQ(::waitpid(pid, &wst, 0), pid);
  ASSERT_TRUE(WIFEXITED(wst));
  std::ifstream in(report);
  int ok = -1;
  std::string line, message;
  in >> ok;
  std::getline(in, line);
  std::getline(in, message);
  ASSERT_EQ(WEXITSTATUS(wst), 0) << message;
  EXPECT_NE(message.find("disk holding the store is full"), std::string::npos) << message;
  EXPECT_NE(message.find("nothing of this transaction was applied"), std::string::npos) << message;
  EXPECT_NE(message.find(data), std::string::npos) << message;
  ASSERT_GE(ok, 0);
  // Reopened without the limit: exactly the commits that succeeded.
  auto env = open_ok(test_options(data));
  ASSERT_TRUE(env);
  auto all = dump(*env, "t");
  EXPECT_EQ(all.count("before"), 1u);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(ok) + 1);
  EXPECT_EQ(all.count(key_u64(static_cast<std::uint64_t>(ok))), 0u);
}

TEST(store, stats_lists_every_table) {
  temp_dir dir;
  auto env = open_ok(test_options(dir.path()));
  ASSERT_TRUE(env);
  write_batch b;
  for (int i = 0; i < 10; ++i) b.put("alpha", key_u64(i), "v");
  b.put("beta", "k", "v");
  ASSERT_TRUE(env->apply(b));
  auto s = env->stats();
  ASSERT_TRUE(s) << s.error().to_string();
  std::map<std::string, table_stats> by_name;
  for (const auto& t : *s) by_name[t.name] = t;
  ASSERT_EQ(by_name.size(), 3u);  // alpha, beta, meta
  EXPECT_EQ(by_name["alpha"].entries, 10u);
  EXPECT_EQ(by_name["beta"].entries, 1u);
  EXPECT_EQ(by_name["meta"].entries, 1u);
  EXPECT_GT(by_name["alpha"].bytes, 0u);
}

TEST(store, copy_to_produces_an_equal_store) {
  temp_dir dir;
  std::map<std::string, std::string> rows;
  auto env = open_ok(test_options(dir.sub("src")));
  ASSERT_TRUE(env);
  write_batch b;
  for (int i = 0; i < 1000; ++i) {
    rows[key_u64(i)] = std::string(100, static_cast<char>('a' + i % 26));
    b.put("t", key_u64(i), rows[key_u64(i)]);
  }
  ASSERT_TRUE(env->apply(b));
  write_batch e;
  for (int i = 0; i < 1000; i += 2) {
    e.erase("t", key_u64(i));
    rows.erase(key_u64(i));
  }
  ASSERT_TRUE(env->apply(e));

  std::filesystem::create_directories(dir.sub("copy"));
  auto st = env->copy_to(dir.sub("copy"));
  ASSERT_TRUE(st) << st.to_string();
  // Copying into a directory that already holds a store fails.
  EXPECT_FALSE(env->copy_to(dir.sub("copy")));

  auto copy = open_ok(test_options(dir.sub("copy")));
  ASSERT_TRUE(copy);
  EXPECT_EQ(dump(*copy, "t"), rows);
  EXPECT_EQ(get_ok(*copy, "meta", "format_version"), std::to_string(format_version));
}

TEST(store, concurrent_reads_during_writes_and_map_growth) {
  temp_dir dir;
  options o = test_options(dir.path());
  o.map_bytes_initial = std::size_t{1} << 20;
  auto env = open_ok(o);
  ASSERT_TRUE(env);
  std::atomic<bool> done{false};
  std::atomic<int> read_errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        std::uint64_t previous = 0;
        bool first = true;
        auto st = env->for_each("grow", [&](std::string_view k, std::string_view v) {
          // Nested read inside a scan must not deadlock with a pending resize.
          auto inner = env->get("grow", k);
          if (!inner || !inner->has_value() || **inner != v) ++read_errors;
          std::uint64_t n = std::stoull(std::string(k));
          if (!first && n <= previous) ++read_errors;
          previous = n;
          first = false;
          return n < 50;
        });
        if (!st) ++read_errors;
      }
    });
  }
  const std::string value(2000, 'z');
  for (int i = 0; i < 40; ++i) {
    write_batch b;
    for (int j = 0; j < 100; ++j) b.put("grow", key_u64(i * 100 + j), value);
    auto st = env->apply(b);
    if (!st) {
      ADD_FAILURE() << st.to_string();
      break;
    }
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(dump(*env, "grow").size(), 4000u);
}

// -- writing behind (environment::write_behind) ------------------------------

TEST(write_behind, reads_see_queued_writes_and_the_stores_end_as_if_applied_at_once) {
  temp_dir dir;
  using model = std::map<std::pair<std::string, std::string>, std::string>;
  std::vector<model> expect(2);
  std::vector<options> opts;
  for (int e = 0; e < 2; ++e) opts.push_back(test_options(dir.path() + "/s" + std::to_string(e)));
  {
    apply_thread t(20);
    std::vector<std::unique_ptr<environment>> envs;
    for (const auto& o : opts) {
      envs.push_back(open_ok(o));
      ASSERT_TRUE(envs.back());
      envs.back()->write_behind(&t);
      EXPECT_TRUE(envs.back()->writes_behind());
    }
    std::uint64_t x = 7;
    auto next = [&](std::uint64_t n) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      return (x >> 33) % n;
    };
    const char* tables[] = {"a", "b", "c"};
    for (int step = 0; step < 3000; ++step) {
      const auto e = next(2);
      auto& m = expect[e];
      std::vector<write_batch> batches(1 + next(2));
      for (auto& b : batches) {
        for (auto ops = 1 + next(4); ops > 0; --ops) {
          const std::string table = tables[next(3)];
          const std::string key = key_u64(next(40));
          if (next(3) == 0) {
            b.erase(table, key);
            m.erase({table, key});
          } else {
            const std::string value = std::to_string(step) + (next(2) ? std::string(600, 'v') : "");
            b.put(table, key, value);
            m[{table, key}] = value;
          }
        }
      }
      ASSERT_TRUE(envs[e]->apply_later(std::move(batches)));
      // Point reads right after: they must see this write and every one before.
      for (int r = 0; r < 3; ++r) {
        const std::string table = tables[next(3)];
        const std::string key = key_u64(next(40));
        auto it = m.find({table, key});
        const auto want = it == m.end() ? std::nullopt : std::optional<std::string>(it->second);
        ASSERT_EQ(get_ok(*envs[e], table, key), want)
            << "step " << step << " " << table << "/" << key;
      }
      if (step % 500 == 0) {  // a scan waits for the queue
        const std::string table = tables[next(3)];
        std::map<std::string, std::string> want;
        for (const auto& [k, v] : m)
          if (k.first == table) want.emplace(k.second, v);
        ASSERT_EQ(dump(*envs[e], table), want) << "step " << step;
      }
    }
    t.drain();
    EXPECT_GT(t.transactions(), 2000u);
    EXPECT_TRUE(t.failure());
    // Destroyed with transactions possibly still queued: closing waits for them.
  }
  for (int e = 0; e < 2; ++e) {
    auto env = open_ok(opts[static_cast<std::size_t>(e)]);
    ASSERT_TRUE(env);
    model got;
    for (const char* table : {"a", "b", "c"})
      for (auto& [k, v] : dump(*env, table)) got[{table, k}] = v;
    EXPECT_EQ(got, expect[static_cast<std::size_t>(e)]) << "store " << e;
  }
}

TEST(write_behind, closing_an_environment_waits_for_what_it_queued) {
  temp_dir dir;
  const auto o = test_options(dir.path());
  apply_thread t;
  {
    auto env = open_ok(o);
    ASSERT_TRUE(env);
    env->write_behind(&t);
    for (int i = 0; i < 2000; ++i) {
      std::vector<write_batch> one(1);
      one[0].put("t", key_u64(static_cast<std::uint64_t>(i)), std::string(300, 'x'));
      ASSERT_TRUE(env->apply_later(std::move(one)));
    }
  }
  auto env = open_ok(o);
  ASSERT_TRUE(env);
  EXPECT_EQ(dump(*env, "t").size(), 2000u);
}

/// A store writing behind on an apply_thread of its own (closed first).
struct behind_store {
  temp_dir dir;
  apply_thread t;
  std::unique_ptr<environment> env = open_ok(test_options(dir.path()));
  behind_store() {
    if (env) env->write_behind(&t);
  }
};

TEST(write_behind, a_table_read_as_missing_is_seen_once_a_queued_write_creates_it) {
  behind_store store;
  ASSERT_TRUE(store.env);
  auto& env = store.env;
  EXPECT_EQ(get_ok(*env, "later", "k"), std::nullopt);  // missing, and remembered so
  for (int i = 0; i < 200; ++i) {
    write_batch b;
    b.put("later", "k" + std::to_string(i), "v");
    ASSERT_TRUE(env->apply_later({std::move(b)}, nullptr));
    // Every read, whether the thread has applied the write yet or not.
    ASSERT_EQ(get_ok(*env, "later", "k" + std::to_string(i)), "v") << i;
    ASSERT_EQ(get_ok(*env, "later", "k0"), "v") << i;
  }
  store.t.drain();
  EXPECT_EQ(get_ok(*env, "later", "k199"), "v");
  EXPECT_EQ(dump(*env, "later").size(), 200u);
}

TEST(write_behind, an_invalid_batch_is_refused_at_once_and_nothing_is_queued) {
  behind_store store;
  ASSERT_TRUE(store.env);
  auto& env = store.env;
  auto& t = store.t;
  std::vector<write_batch> bad(2);
  bad[0].put("t", "fine", "1");
  bad[1].put("t", "", "empty key");
  auto st = env->apply_later(std::move(bad));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_EQ(get_ok(*env, "t", "fine"), std::nullopt);
  EXPECT_TRUE(dump(*env, "t").empty());
  EXPECT_TRUE(t.failure());
}

// A function queued after the failed transaction runs all the same, and
// sees what was applied.
TEST(write_behind, a_failed_transaction_stops_the_thread_and_reads_show_what_was_applied) {
  temp_dir dir;
  options o = test_options(dir.path());
  o.map_bytes_initial = std::size_t{1} << 20;
  o.map_bytes_max = std::size_t{2} << 20;
  apply_thread t;
  auto env = open_ok(o);
  ASSERT_TRUE(env);
  env->write_behind(&t);
  std::vector<write_batch> before(1);
  before[0].put("t", "before", "1");
  ASSERT_TRUE(env->apply_later(std::move(before)));
  std::vector<write_batch> big(1);
  big[0].put("t", "first", "should not appear");
  for (int i = 0; i < 1500; ++i) big[0].put("blob", key_u64(i), std::string(4000, 'y'));
  ASSERT_TRUE(env->apply_later(std::move(big)));  // fails later, on the thread
  std::map<std::string, std::string> seen;
  const auto job = t.run_in_order([&] { seen = dump(*env, "t"); });
  t.drain();
  ASSERT_TRUE(t.failed());
  EXPECT_TRUE(t.done(job));
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"before", "1"}}));
  const auto failure = t.failure();
  EXPECT_EQ(failure.code(), errc::storage);
  EXPECT_NE(failure.message().find("map full"), std::string::npos) << failure.message();
  EXPECT_NE(failure.message().find(dir.path()), std::string::npos) << failure.message();
  // Every later transaction fails with it, unapplied.
  std::vector<write_batch> after(1);
  after[0].put("t", "after", "2");
  EXPECT_EQ(env->apply_later(std::move(after)).message(), failure.message());
  EXPECT_EQ(get_ok(*env, "t", "before"), "1");
  EXPECT_EQ(get_ok(*env, "t", "first"), std::nullopt);
  EXPECT_EQ(get_ok(*env, "t", "after"), std::nullopt);
  EXPECT_TRUE(dump(*env, "blob").empty());
}

// A store that writes behind belongs to the thread that set it up (its
// reads forget applied transactions); another thread's use is refused, not
// a race. Once it stops writing behind, reads are thread-safe again.
TEST(write_behind, another_thread_is_refused_until_the_store_stops_writing_behind) {
  behind_store store;
  ASSERT_TRUE(store.env);
  auto& env = *store.env;
  std::vector<write_batch> one(1);
  one[0].put("t", "k", "v");
  ASSERT_TRUE(env.apply_later(std::move(one)));
  status get_st, scan_st, later_st;
  std::thread([&] {
    auto r = env.get("t", "k");
    get_st = r ? status{} : r.error();
    scan_st = env.for_each("t", [](std::string_view, std::string_view) { return true; });
    later_st = env.apply_later(std::vector<write_batch>(1));
  }).join();
  for (const auto* st : {&get_st, &scan_st, &later_st}) {
    EXPECT_EQ(st->code(), errc::internal);
    EXPECT_NE(st->message().find("used from another thread while it writes behind"),
              std::string::npos)
        << st->message();
  }
  env.write_behind(nullptr);
  std::optional<std::string> seen;
  std::thread([&] { seen = get_ok(env, "t", "k"); }).join();
  EXPECT_EQ(seen, "v");
}

// A function run in order reads every store as the transactions queued
// before it left it, while its owner goes on queueing and reading later ones
// (the simulator's mid-run checks), and it runs after a failure too.
TEST(write_behind, a_function_run_in_order_reads_the_stores_as_of_its_place_in_the_queue) {
  apply_thread t;  // destroyed after the stores
  behind_store a, b;
  ASSERT_TRUE(a.env && b.env);
  a.env->write_behind(&t);
  b.env->write_behind(&t);
  auto put = [](environment& env, std::string key, std::string value) {
    std::vector<write_batch> one(1);
    one[0].put("t", key, value);
    return env.apply_later(std::move(one));
  };
  ASSERT_TRUE(put(*a.env, "k", "1"));
  ASSERT_TRUE(put(*b.env, "k", "1"));
  std::promise<void> later_queued;
  std::optional<std::string> a_k, b_k, a_new;
  std::map<std::string, std::string> a_rows;
  status write_st;
  const auto job = t.run_in_order([&] {
    later_queued.get_future().wait();  // the owner has queued what follows
    a_k = get_ok(*a.env, "t", "k");
    b_k = get_ok(*b.env, "t", "k");
    a_new = get_ok(*a.env, "t", "new");
    a_rows = dump(*a.env, "t");
    write_st = put(*a.env, "from", "job");
  });
  ASSERT_TRUE(put(*a.env, "k", "2"));
  ASSERT_TRUE(put(*a.env, "new", "3"));
  ASSERT_TRUE(put(*b.env, "k", "2"));
  EXPECT_FALSE(t.done(job));
  // The owner sees its queued writes meanwhile.
  EXPECT_EQ(get_ok(*a.env, "t", "k"), "2");
  EXPECT_EQ(get_ok(*a.env, "t", "new"), "3");
  later_queued.set_value();
  t.wait(job);
  EXPECT_TRUE(t.done(job));
  EXPECT_EQ(a_k, "1");
  EXPECT_EQ(b_k, "1");
  EXPECT_EQ(a_new, std::nullopt);
  EXPECT_EQ(a_rows, (std::map<std::string, std::string>{{"k", "1"}}));
  EXPECT_EQ(write_st.code(), errc::internal);  // a function only reads
  t.drain();
  EXPECT_EQ(dump(*a.env, "t"), (std::map<std::string, std::string>{{"k", "2"}, {"new", "3"}}));
  EXPECT_EQ(get_ok(*b.env, "t", "k"), "2");
}

TEST(write_behind, side_jobs_run_on_the_thread_ahead_of_work_not_begun) {
  std::mutex m;
  std::vector<std::string> order;
  auto log = [&](std::string what) {
    std::lock_guard lk(m);
    order.push_back(std::move(what));
  };
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> first_running{false};
  {
    apply_thread t;
    const auto caller = std::this_thread::get_id();
    std::thread::id side_thread;
    // A side job on an idle thread runs (the thread polls, then sleeps).
    std::promise<void> ran;
    t.run_aside([&] {
      side_thread = std::this_thread::get_id();
      ran.set_value();
    });
    ASSERT_EQ(ran.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_NE(side_thread, caller);
    // f1 holds the thread; f2 is queued behind it; side jobs given meanwhile
    // run before f2, in the order given.
    t.run_in_order([&] {
      first_running = true;
      released.wait_for(std::chrono::seconds(10));
      log("f1");
    });
    const auto f2 = t.run_in_order([&] { log("f2"); });
    for (int i = 0; i < 200 && !first_running; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(first_running);
    t.run_aside([&] { log("s1"); });
    t.run_aside([&] { log("s2"); });
    release.set_value();
    t.wait(f2);
    EXPECT_EQ(order, (std::vector<std::string>{"f1", "s1", "s2", "f2"}));
    // Side jobs still waiting when the thread is destroyed run first.
    t.run_aside([&] { log("s3"); });
  }
  EXPECT_EQ(order.back(), "s3");
}

TEST(write_behind, an_inline_writer_completes_at_once_and_records_the_keys) {
  behind_store store;
  ASSERT_TRUE(store.env);
  auto& env = store.env;
  inline_writer w(*env, true);
  w.record_keys({"inbox"});
  int done = 0;
  write_batch deferred;
  deferred.erase("orders", "gone");
  w.submit_deferred(std::move(deferred), [&](const status& st) { done += st ? 1 : 100; });
  write_batch b;
  b.put("orders", "o1", "v1");
  b.put("inbox", "m1", "x");
  w.submit(std::move(b), [&](const status& st) { done += st ? 1 : 100; });
  EXPECT_EQ(done, 2);
  EXPECT_EQ(get_ok(*env, "orders", "o1"), "v1");
  const auto keys = w.take_keys().keys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys.at("orders"), (std::set<std::string, std::less<>>{"gone", "o1"}));
  env->write_behind(nullptr);  // waits, then applies at once again
  EXPECT_FALSE(env->writes_behind());
  EXPECT_EQ(dump(*env, "inbox").size(), 1u);
}

}  // namespace
}  // namespace gearmesh::store
