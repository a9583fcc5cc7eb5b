// Group commit: one writer thread turns everything queued since its last commit
// into one LMDB transaction (one sync), then runs the completions in order.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gearmesh/store/store.hpp"

namespace gearmesh::store {

struct group_commit_writer::impl {
  struct entry {
    write_batch batch;
    completion done;
  };

  impl(environment& e, options o) : env(e), opts(o) {
    if (opts.batches_per_txn_max == 0) opts.batches_per_txn_max = 1;
    if (opts.queue_max == 0) opts.queue_max = 1;
  }

  environment& env;
  options opts;

  std::mutex mutex;
  std::condition_variable not_empty;  // writer waits for work or stop
  std::condition_variable not_full;   // submitters wait for room
  std::deque<entry> queue;            // at most opts.queue_max entries
  bool stopping = false;
  std::once_flag joined;
  std::thread thread;

  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> transactions{0};
  std::atomic<std::uint64_t> failures{0};
  /// fail_stop: the first failure; every later batch completes with it.
  status stopped_by;

  static void complete(entry& e, const status& st) {
    if (e.done) e.done(st);
  }

  /// Applies `ptrs` as one transaction and counts it.
  status commit(const std::vector<const write_batch*>& ptrs) {
    status st = env.apply(ptrs);
    transactions.fetch_add(1, std::memory_order_relaxed);
    if (st) {
      batches.fetch_add(ptrs.size(), std::memory_order_relaxed);
    } else {
      failures.fetch_add(1, std::memory_order_relaxed);
    }
    return st;
  }

  /// Commits one group and runs its completions in submission order.
  /// noexcept: a completion that throws terminates the process rather than
  /// silently losing the completions after it.
  void commit_group(std::vector<entry>& group) noexcept {
    if (!stopped_by.is_ok()) {
      for (entry& e : group) complete(e, stopped_by);
      return;
    }
    std::vector<const write_batch*> ptrs;
    ptrs.reserve(group.size());
    bool any_ops = false;
    for (const entry& e : group) {
      ptrs.push_back(&e.batch);
      any_ops = any_ops || !e.batch.empty();
    }
    if (!any_ops) {
      // Nothing to write: no transaction, no sync.
      batches.fetch_add(group.size(), std::memory_order_relaxed);
      for (entry& e : group) complete(e, status{});
      return;
    }
    status st = commit(ptrs);
    if (!st && opts.fail_stop) {
      stopped_by =
          status(st.code(), st.message() + " (the store stopped taking writes after this failure)");
      for (entry& e : group) complete(e, st);
      return;
    }
    if (st || group.size() == 1) {
      for (entry& e : group) complete(e, st);
      return;
    }
    // The group failed and nothing was applied. One bad batch (say, an
    // oversized key) must not fail the unrelated batches grouped with it:
    // apply each alone, in order, so every batch gets its own outcome.
    for (entry& e : group) {
      if (e.batch.empty()) {
        batches.fetch_add(1, std::memory_order_relaxed);
        complete(e, status{});
        continue;
      }
      complete(e, commit(std::vector<const write_batch*>{&e.batch}));
    }
  }

  void run() noexcept {
    std::vector<entry> group;
    group.reserve(opts.batches_per_txn_max);
    for (;;) {
      {
        std::unique_lock lk(mutex);
        not_empty.wait(lk, [&] { return !queue.empty() || stopping; });
        if (queue.empty()) return;  // stopping and drained
        std::size_t n = std::min(queue.size(), opts.batches_per_txn_max);
        for (std::size_t i = 0; i < n; ++i) {
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      not_full.notify_all();
      commit_group(group);
      group.clear();
    }
  }
};

group_commit_writer::group_commit_writer(environment& env, options opts)
    : impl_(std::make_unique<impl>(env, opts)) {
  impl_->thread = std::thread([p = impl_.get()] { p->run(); });
}

group_commit_writer::~group_commit_writer() {
  stop();
}

void group_commit_writer::submit(write_batch batch, completion done) {
  {
    std::unique_lock lk(impl_->mutex);
    impl_->not_full.wait(
        lk, [&] { return impl_->stopping || impl_->queue.size() < impl_->opts.queue_max; });
    if (!impl_->stopping) {
      impl_->queue.push_back(impl::entry{std::move(batch), std::move(done)});
      lk.unlock();
      impl_->not_empty.notify_one();
      return;
    }
  }
  // Completes on the caller's thread: there is no writer thread any more.
  if (done) done(status(errc::shutting_down, "store writer stopped"));
}

void group_commit_writer::stop() {
  {
    std::lock_guard lk(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->not_empty.notify_all();
  impl_->not_full.notify_all();
  // Called from a completion: the writer drains and exits by itself; it cannot
  // join itself. The destructor, on another thread, joins it.
  if (std::this_thread::get_id() == impl_->thread.get_id()) return;
  // Concurrent callers all return only after the drain and join.
  std::call_once(impl_->joined, [&] {
    if (impl_->thread.joinable()) impl_->thread.join();
  });
}

writer_stats group_commit_writer::stats() const {
  writer_stats s;
  s.batches = impl_->batches.load(std::memory_order_relaxed);
  s.transactions = impl_->transactions.load(std::memory_order_relaxed);
  s.failures = impl_->failures.load(std::memory_order_relaxed);
  return s;
}

}  // namespace gearmesh::store
