#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/store/store.hpp"
#include "temp_dir.hpp"

namespace gearmesh::store {
namespace {

using namespace std::chrono_literals;

using gearmesh::testing::temp_dir;

std::unique_ptr<environment> open_env(const std::string& path, bool sync) {
  options o;
  o.path = path;
  o.sync = sync;
  o.map_bytes_initial = std::size_t{1} << 20;
  auto env = environment::open(o);
  EXPECT_TRUE(env) << env.error().to_string();
  if (!env) return nullptr;
  return std::move(*env);
}

write_batch one_put(std::uint64_t n) {
  write_batch b;
  b.put("w", key_u64(n), "v" + std::to_string(n));
  return b;
}

/// A one-shot gate a completion can wait on (tests only: real completions must not block).
class latch {
 public:
  void open() {
    std::lock_guard lk(m_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, 10s, [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(group_commit_writer, many_threads_complete_once_in_submission_order_and_group) {
  temp_dir dir;
  // sync = true: each commit takes a real fsync, so batches pile up behind it
  // and grouping happens.
  auto env = open_env(dir.path(), true);
  ASSERT_TRUE(env);
  constexpr int threads = 8;
  constexpr int per_thread = 150;
  constexpr int total = threads * per_thread;

  std::mutex order_mutex;  // makes "submission order" well defined across threads
  std::uint64_t next_seq = 0;
  std::mutex results_mutex;
  std::vector<std::uint64_t> completed;
  std::vector<int> calls(total, 0);
  std::atomic<int> not_ok{0};
  {
    group_commit_writer writer(*env);
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) {
          std::lock_guard lk(order_mutex);
          std::uint64_t seq = next_seq++;
          writer.submit(one_put(seq), [&, seq](const status& st) {
            if (!st) ++not_ok;
            std::lock_guard rl(results_mutex);
            completed.push_back(seq);
            ++calls[seq];
          });
        }
      });
    }
    for (auto& s : submitters) s.join();
    writer.stop();
    auto stats = writer.stats();
    EXPECT_EQ(stats.batches, static_cast<std::uint64_t>(total));
    EXPECT_LT(stats.transactions, stats.batches);
    EXPECT_GE(stats.transactions, 1u);
    EXPECT_EQ(stats.failures, 0u);
  }
  EXPECT_EQ(not_ok.load(), 0);
  ASSERT_EQ(completed.size(), static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) {
    EXPECT_EQ(completed[i], static_cast<std::uint64_t>(i));
    EXPECT_EQ(calls[i], 1);
  }
  for (std::uint64_t i = 0; i < total; i += 97) {
    auto v = env->get("w", key_u64(i));
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, "v" + std::to_string(i));
  }
}

TEST(group_commit_writer, batches_queued_during_a_commit_share_one_transaction) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer writer(*env);
  latch release;
  std::atomic<int> ok{0};
  writer.submit(one_put(0), [&](const status& st) {
    release.wait();  // holds the writer thread while the others queue up
    if (st) ++ok;
  });
  for (std::uint64_t i = 1; i <= 100; ++i) {
    writer.submit(one_put(i), [&](const status& st) {
      if (st) ++ok;
    });
  }
  release.open();
  writer.stop();
  EXPECT_EQ(ok.load(), 101);
  auto s = writer.stats();
  EXPECT_EQ(s.batches, 101u);
  // The first batch may be committed alone or with some of the others. With
  // pipelined syncs (the default), batches already waiting then are committed
  // before the first one's completion runs; the rest queue behind that
  // blocked completion and go in one transaction: three at most.
  EXPECT_LE(s.transactions, 3u);
}

/// Makes the writer's last group `big` batches (they queue while a
/// completion holds the writer thread), so its next transaction may gather.
/// Returns once all `big` + 1 batches completed.
void make_last_group_large(group_commit_writer& writer, int big) {
  latch release;
  std::promise<void> holding;
  std::atomic<int> done{0};
  std::promise<void> all;
  writer.submit(one_put(0), [&](const status&) {
    holding.set_value();
    release.wait();
    if (++done == big + 1) all.set_value();
  });
  ASSERT_EQ(holding.get_future().wait_for(10s), std::future_status::ready);
  for (int i = 1; i <= big; ++i)
    writer.submit(one_put(static_cast<std::uint64_t>(i)), [&](const status&) {
      if (++done == big + 1) all.set_value();
    });
  release.open();
  ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready);
}

TEST(group_commit_writer, under_load_gathers_batches_into_one_transaction) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.gather_us = 60'000'000;  // a minute: the gather must end by the batch count
  o.gather_after_batches = 4;
  o.batches_per_txn_max = 10;
  group_commit_writer writer(*env, o);
  make_last_group_large(writer, 9);
  const auto before = writer.stats().transactions;
  // Submitted one by one: without gathering the first would be committed
  // alone as soon as the writer woke.
  std::atomic<int> ok{0};
  for (std::uint64_t i = 100; i < 110; ++i)
    writer.submit(one_put(i), [&](const status& st) {
      if (st) ++ok;
    });
  writer.stop();
  EXPECT_EQ(ok.load(), 10);
  EXPECT_EQ(writer.stats().transactions - before, 1u);
}

TEST(group_commit_writer, a_lone_batch_does_not_wait_to_gather) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.gather_us = 60'000'000;
  o.gather_after_batches = 4;
  group_commit_writer writer(*env, o);
  // Idle writer, last group empty: committed at once, not after a minute.
  std::promise<bool> first;
  writer.submit(one_put(1), [&](const status& st) { first.set_value(st.is_ok()); });
  auto f1 = first.get_future();
  ASSERT_EQ(f1.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f1.get());
  // After a large group the next transaction gathers; stop() ends the
  // gather and commits what waits.
  make_last_group_large(writer, 9);
  std::promise<bool> gathered;
  writer.submit(one_put(2), [&](const status& st) { gathered.set_value(st.is_ok()); });
  auto f2 = gathered.get_future();
  EXPECT_EQ(f2.wait_for(100ms), std::future_status::timeout);  // gathering
  writer.stop();
  ASSERT_EQ(f2.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f2.get());
}

TEST(group_commit_writer, batches_per_txn_max_one_commits_each_batch) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.batches_per_txn_max = 1;
  group_commit_writer writer(*env, o);
  std::atomic<int> ok{0};
  for (std::uint64_t i = 0; i < 50; ++i) {
    writer.submit(one_put(i), [&](const status& st) {
      if (st) ++ok;
    });
  }
  writer.stop();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(writer.stats().transactions, 50u);
  EXPECT_EQ(writer.stats().batches, 50u);
}

TEST(group_commit_writer, stop_drains_then_submit_reports_shutting_down) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer writer(*env);
  std::atomic<int> ok{0};
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) {
    writer.submit(one_put(i), [&](const status& st) {
      if (st) ++ok;
    });
  }
  writer.stop();
  EXPECT_EQ(ok.load(), n);  // everything submitted before stop() committed
  auto rows = 0;
  ASSERT_TRUE(env->for_each("w", [&](std::string_view, std::string_view) {
    ++rows;
    return true;
  }));
  EXPECT_EQ(rows, n);

  bool called = false;
  errc code = errc::ok;
  writer.submit(one_put(n), [&](const status& st) {
    called = true;
    code = st.code();
  });
  EXPECT_TRUE(called);  // completes before submit returns
  EXPECT_EQ(code, errc::shutting_down);
  writer.stop();  // idempotent
  EXPECT_EQ(writer.stats().batches, static_cast<std::uint64_t>(n));
  auto late = env->get("w", key_u64(n));
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->has_value());
}

TEST(group_commit_writer, a_failing_batch_fails_alone) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer writer(*env);
  latch release;
  std::vector<errc> codes(5, errc::internal);
  writer.submit(one_put(0), [&](const status& st) {
    release.wait();
    codes[0] = st.code();
  });
  writer.submit(one_put(1), [&](const status& st) { codes[1] = st.code(); });
  write_batch bad;
  bad.put("w", "ok-part", "x");
  bad.put("w", std::string(4096, 'k'), "key too long");
  writer.submit(std::move(bad), [&](const status& st) { codes[2] = st.code(); });
  writer.submit(one_put(3), [&](const status& st) { codes[3] = st.code(); });
  writer.submit(write_batch{}, [&](const status& st) { codes[4] = st.code(); });
  release.open();
  writer.stop();
  EXPECT_EQ(codes[0], errc::ok);
  EXPECT_EQ(codes[1], errc::ok);
  EXPECT_EQ(codes[2], errc::invalid_argument);
  EXPECT_EQ(codes[3], errc::ok);
  EXPECT_EQ(codes[4], errc::ok);
  EXPECT_GE(writer.stats().failures, 1u);
  EXPECT_EQ(writer.stats().batches, 4u);  // all but the bad one
  auto part = env->get("w", "ok-part");
  ASSERT_TRUE(part);
  EXPECT_FALSE(part->has_value());
  auto three = env->get("w", key_u64(3));
  ASSERT_TRUE(three);
  EXPECT_TRUE(three->has_value());
}

TEST(group_commit_writer, fail_stop_fails_everything_after_the_first_failure) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.fail_stop = true;
  group_commit_writer writer(*env, o);
  std::vector<errc> codes(4, errc::internal);
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  auto record = [&](int i) {
    return [&, i](const status& st) {
      std::lock_guard lk(m);
      codes[i] = st.code();
      ++done;
      cv.notify_all();
    };
  };
  auto wait_done = [&](int n) {
    std::unique_lock lk(m);
    cv.wait_for(lk, 10s, [&] { return done >= n; });
  };
  writer.submit(one_put(0), record(0));
  wait_done(1);
  write_batch bad;
  bad.put("w", std::string(4096, 'k'), "key too long");
  writer.submit(std::move(bad), record(1));
  wait_done(2);
  writer.submit(one_put(2), record(2));
  writer.submit(write_batch{}, record(3));
  writer.stop();
  EXPECT_EQ(codes[0], errc::ok);
  EXPECT_EQ(codes[1], errc::invalid_argument);
  EXPECT_EQ(codes[2], errc::invalid_argument);  // good on its own, but after the failure
  EXPECT_EQ(codes[3], errc::invalid_argument);
  auto two = env->get("w", key_u64(2));
  ASSERT_TRUE(two);
  EXPECT_FALSE(two->has_value());
}

TEST(group_commit_writer, deferred_batches_ride_with_the_next_transaction) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.deferred_delay_ms = 60'000;  // never due during the test
  group_commit_writer writer(*env, o);
  std::promise<status> deferred, urgent;
  writer.submit_deferred(one_put(1), [&](const status& st) { deferred.set_value(st); });
  auto deferred_done = deferred.get_future();
  EXPECT_EQ(deferred_done.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(writer.stats().transactions, 0u);
  writer.submit(one_put(2), [&](const status& st) { urgent.set_value(st); });
  ASSERT_EQ(deferred_done.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(deferred_done.get());
  EXPECT_TRUE(urgent.get_future().get());
  EXPECT_EQ(writer.stats().transactions, 1u);  // both in one transaction, in order
  EXPECT_EQ(writer.stats().batches, 2u);
  auto one = env->get("w", key_u64(1));
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->has_value());
}

TEST(group_commit_writer, deferred_batches_alone_commit_after_their_delay) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.deferred_delay_ms = 20;
  group_commit_writer writer(*env, o);
  std::promise<status> done;
  const auto t0 = std::chrono::steady_clock::now();
  writer.submit_deferred(one_put(1), [&](const status& st) { done.set_value(st); });
  writer.submit_deferred(one_put(2), nullptr);
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  writer.stop();
  EXPECT_EQ(writer.stats().batches, 2u);
}

TEST(group_commit_writer, stop_commits_deferred_batches) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.deferred_delay_ms = 60'000;
  {
    group_commit_writer writer(*env, o);
    writer.submit_deferred(one_put(7), nullptr);
  }  // destructor: stop() drains
  auto v = env->get("w", key_u64(7));
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->has_value());
}

// The simulator's writer: deferred batches ride with the next submit() in
// its transaction (completions in submission order), wait otherwise, are
// applied by flush_deferred() or stop(), and are lost by kill().
TEST(inline_writer, deferred_batches_ride_with_the_next_submit_and_die_with_a_kill) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  auto present = [&](std::uint64_t n) {
    auto v = env->get("w", key_u64(n));
    EXPECT_TRUE(v);
    return v && v->has_value();
  };
  inline_writer writer(*env, true);
  writer.record_keys({});
  std::vector<std::string> order;
  writer.submit_deferred(one_put(1), [&](const status& st) { order.push_back(st ? "d1" : "d1!"); });
  writer.submit_deferred(one_put(2), nullptr);
  EXPECT_TRUE(writer.deferred_pending());
  EXPECT_FALSE(present(1));
  EXPECT_TRUE(writer.take_keys().empty());  // nothing applied yet
  writer.submit(one_put(3), [&](const status& st) { order.push_back(st ? "s3" : "s3!"); });
  EXPECT_EQ(order, (std::vector<std::string>{"d1", "s3"}));
  EXPECT_FALSE(writer.deferred_pending());
  EXPECT_TRUE(present(1) && present(2) && present(3));
  EXPECT_EQ(writer.take_keys().keys()["w"].size(), 3u);
  writer.submit_deferred(one_put(4), nullptr);
  writer.flush_deferred();
  EXPECT_TRUE(present(4));
  writer.submit_deferred(one_put(5), [&](const status& st) { order.push_back(st ? "d5" : "d5!"); });
  writer.kill();
  EXPECT_FALSE(present(5));
  EXPECT_EQ(order.back(), "d5!");
  writer.submit(one_put(6), nullptr);
  writer.stop();
  EXPECT_FALSE(present(6));
}

TEST(group_commit_writer, pipelined_groups_complete_in_order_once_flushed) {
  temp_dir dir;
  auto env = open_env(dir.path(), true);  // real flushes
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.pipeline_syncs = true;
  group_commit_writer writer(*env, o);
  constexpr int n = 200;
  std::mutex m;
  std::vector<int> order;
  std::promise<void> all;
  for (int i = 0; i < n; ++i) {
    writer.submit(one_put(static_cast<std::uint64_t>(i)), [&, i](const status& st) {
      EXPECT_TRUE(st) << st.to_string();
      std::lock_guard lk(m);
      order.push_back(i);
      if (static_cast<int>(order.size()) == n) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(30s), std::future_status::ready);
  for (int i = 0; i < n; ++i) EXPECT_EQ(order[i], i);
  // Everything reported durable is in the store, also after a reopen.
  writer.stop();
  env.reset();
  auto again = open_env(dir.path(), true);
  ASSERT_TRUE(again);
  for (int i = 0; i < n; ++i) {
    auto v = again->get("w", key_u64(static_cast<std::uint64_t>(i)));
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->has_value()) << i;
  }
}

TEST(group_commit_writer, a_commit_that_changes_nothing_still_completes_the_one_before) {
  temp_dir dir;
  auto env = open_env(dir.path(), true);
  ASSERT_TRUE(env);
  group_commit_writer writer(*env);
  std::promise<status> first, second;
  writer.submit(one_put(1), [&](const status& st) { first.set_value(st); });
  write_batch nothing;
  nothing.erase("w", key_u64(999));  // absent: the transaction writes no page
  writer.submit(std::move(nothing), [&](const status& st) { second.set_value(st); });
  auto f1 = first.get_future();
  auto f2 = second.get_future();
  ASSERT_EQ(f1.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(f2.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f1.get());
  EXPECT_TRUE(f2.get());
}

TEST(group_commit_writer, submit_blocks_while_the_queue_is_full) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  group_commit_writer::options o;
  o.queue_max = 1;
  group_commit_writer writer(*env, o);
  latch release;
  latch first_running;
  std::atomic<int> ok{0};
  writer.submit(one_put(0), [&](const status& st) {
    first_running.open();
    release.wait();
    if (st) ++ok;
  });
  first_running.wait();  // the writer took batch 0: the queue is empty
  writer.submit(one_put(1), [&](const status& st) {
    if (st) ++ok;
  });  // fills the queue
  std::atomic<bool> third_returned{false};
  std::thread third([&] {
    writer.submit(one_put(2), [&](const status& st) {
      if (st) ++ok;
    });
    third_returned = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(third_returned.load());
  release.open();
  third.join();
  writer.stop();
  EXPECT_EQ(ok.load(), 3);
}

TEST(group_commit_writer, stop_from_a_completion_does_not_deadlock) {
  temp_dir dir;
  auto env = open_env(dir.path(), false);
  ASSERT_TRUE(env);
  auto writer = std::make_unique<group_commit_writer>(*env);
  std::promise<void> stopped;
  writer->submit(one_put(0), [&](const status&) {
    writer->stop();
    stopped.set_value();
  });
  ASSERT_EQ(stopped.get_future().wait_for(10s), std::future_status::ready);
  writer.reset();  // joins from this thread
}

}  // namespace
}  // namespace gearmesh::store
