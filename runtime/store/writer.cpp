// Group commit: one writer thread turns everything queued since its last commit
// into one LMDB transaction (one sync), then runs the completions in order.
//
// Pipelined syncs (options::pipeline_syncs): LMDB makes a commit durable with
// two flushes, one for the data pages and one for the meta page. When more
// work is queued, the writer commits the next group before it reports the
// previous one durable: the next commit's data flush also carries the
// previous meta page, so under load a transaction costs one flush. Idle, it
// flushes at once (environment::sync), so latency is that of a plain commit.
//
// Gathering (options::gather_us): after a large group the writer waits a
// little before it takes the next one, so under load a flush covers more
// batches; after a small group it takes what is queued at once.
//
// Deferred batches (submit_deferred) ride along: they wait in the same queue,
// in submission order, but only a submit() wakes the writer for a
// transaction; deferred batches alone are committed once the oldest has
// waited deferred_delay_ms. So an outbox entry erased after its Ack costs no
// sync of its own, and never delays a commit on the critical path.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gearmesh/store/store.hpp"

namespace gearmesh::store {

struct group_commit_writer::impl {
  using clock_type = std::chrono::steady_clock;

  struct entry {
    write_batch batch;
    completion done;
    bool deferred = false;
    clock_type::time_point queued_at{};  // deferred entries only
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
  std::size_t urgent = 0;             // entries in `queue` queued by submit()
  bool stopping = false;
  std::once_flag joined;
  std::thread thread;

  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> transactions{0};
  std::atomic<std::uint64_t> failures{0};
  /// fail_stop: the first failure; every later batch completes with it.
  status stopped_by;
  /// pipeline_syncs: the last group, committed but not yet known durable
  /// (its meta page waits for the next flush). Its completions run once the
  /// next commit or a sync() flushed it; writer thread only.
  std::vector<entry> unsynced;
  /// Batches in the last group taken (gather_us); writer thread only.
  std::size_t last_group = 0;
  /// The writer is in gather(): a submit does not wake it (each wake-up
  /// would cost a context switch) unless the queue holds a transaction's worth.
  bool gathering = false;

  static void complete(entry& e, const status& st) {
    if (e.done) e.done(st);
  }

  /// Runs the completions of `unsynced` with `st`.
  void complete_unsynced(const status& st) {
    for (entry& e : unsynced) complete(e, st);
    unsynced.clear();
  }

  /// Makes `unsynced` durable with one sync, then runs its completions.
  void flush_unsynced() {
    if (unsynced.empty()) return;
    status st = env.sync();
    if (!st) {
      failures.fetch_add(1, std::memory_order_relaxed);
      if (opts.fail_stop && stopped_by.is_ok())
        stopped_by = status(st.code(),
                            st.message() + " (the store stopped taking writes after this failure)");
    }
    complete_unsynced(st);
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
      flush_unsynced();
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
      // Nothing to write: no transaction. Completions stay in order: what
      // is still unsynced completes first.
      flush_unsynced();
      batches.fetch_add(group.size(), std::memory_order_relaxed);
      for (entry& e : group) complete(e, status{});
      return;
    }
    if (opts.pipeline_syncs) {
      bool earlier_durable = false;
      status st = env.apply_pipelined(ptrs, earlier_durable);
      transactions.fetch_add(1, std::memory_order_relaxed);
      if (st) {
        batches.fetch_add(ptrs.size(), std::memory_order_relaxed);
        if (earlier_durable)
          complete_unsynced(status{});
        else
          flush_unsynced();
        // This group's completions wait for the next flush (swap: both
        // vectors keep their capacity).
        unsynced.swap(group);
        return;
      }
      failures.fetch_add(1, std::memory_order_relaxed);
      // Nothing of this group was applied; settle the earlier one first.
      flush_unsynced();
      handle_failure(group, st);
      return;
    }
    flush_unsynced();
    handle_failure(group, commit(ptrs));
  }

  /// Completes `group` after its commit returned `st` (ok, or failed and
  /// nothing applied).
  void handle_failure(std::vector<entry>& group, status st) noexcept {
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

  /// Waits until a transaction is due: a submit()ted batch is queued, the
  /// oldest deferred batch waited long enough, or the writer is stopping.
  void wait_for_work(std::unique_lock<std::mutex>& lk) {
    const auto delay = std::chrono::milliseconds(opts.deferred_delay_ms);
    for (;;) {
      if (urgent > 0 || stopping) return;
      if (queue.empty()) {
        not_empty.wait(lk);
        continue;
      }
      // Only deferred batches; the front one is the oldest.
      const auto due = queue.front().queued_at + delay;
      if (queue.size() >= opts.batches_per_txn_max || clock_type::now() >= due) return;
      not_empty.wait_until(lk, due);
    }
  }

  /// After a large group, lets more batches queue for up to gather_us
  /// (returns early when a transaction's worth is queued or on stop).
  void gather(std::unique_lock<std::mutex>& lk) {
    if (opts.gather_us == 0 || last_group < opts.gather_after_batches) return;
    const auto until = clock_type::now() + std::chrono::microseconds(opts.gather_us);
    gathering = true;
    while (!stopping && queue.size() < opts.batches_per_txn_max && clock_type::now() < until)
      not_empty.wait_until(lk, until);
    gathering = false;
  }

  void run() noexcept {
    pthread_setname_np(pthread_self(), "gearmesh-writer");  // visible in top/perf
    std::vector<entry> group;
    group.reserve(opts.batches_per_txn_max);
    for (;;) {
      {
        std::unique_lock lk(mutex);
        if (!unsynced.empty() && (idle() || (stopping && queue.empty()))) {
          // No transaction to pipeline with: flush now, without the lock.
          lk.unlock();
          flush_unsynced();
          continue;
        }
        wait_for_work(lk);
        if (queue.empty()) return;  // stopping and drained (unsynced flushed above)
        gather(lk);
        std::size_t n = std::min(queue.size(), opts.batches_per_txn_max);
        for (std::size_t i = 0; i < n; ++i) {
          if (!queue.front().deferred) --urgent;
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      not_full.notify_all();
      last_group = group.size();
      commit_group(group);
      group.clear();
    }
  }

  /// true if nothing queued asks for a transaction now (so the unsynced
  /// group should be flushed rather than wait for one). Lock held.
  bool idle() const { return urgent == 0 && !stopping; }
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
      ++impl_->urgent;
      const bool wake = !impl_->gathering || impl_->queue.size() >= impl_->opts.batches_per_txn_max;
      lk.unlock();
      if (wake) impl_->not_empty.notify_one();
      return;
    }
  }
  // Completes on the caller's thread: there is no writer thread any more.
  if (done) done(status(errc::shutting_down, "store writer stopped"));
}

void group_commit_writer::submit_deferred(write_batch batch, completion done) {
  {
    std::unique_lock lk(impl_->mutex);
    impl_->not_full.wait(
        lk, [&] { return impl_->stopping || impl_->queue.size() < impl_->opts.queue_max; });
    if (!impl_->stopping) {
      // The writer waits without a deadline only while the queue is empty:
      // only then must it learn of this batch (to wait for its due time).
      const bool was_empty = impl_->queue.empty();
      impl_->queue.push_back(
          impl::entry{std::move(batch), std::move(done), true, impl::clock_type::now()});
      lk.unlock();
      if (was_empty) impl_->not_empty.notify_one();
      return;
    }
  }
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

void inline_writer::submit(write_batch batch, completion done) {
  apply(&batch, &done);
}

void inline_writer::submit_deferred(write_batch batch, completion done) {
  if (!stopped_by_.is_ok()) {
    if (done) done(stopped_by_);
    return;
  }
  deferred_.emplace_back(std::move(batch), std::move(done));
}

void inline_writer::flush_deferred() {
  if (!deferred_.empty()) apply(nullptr, nullptr);
}

void inline_writer::kill() {
  stopped_by_ = status(errc::shutting_down, "the process was killed");
  auto lost = std::exchange(deferred_, {});
  for (auto& [b, done] : lost)
    if (done) done(stopped_by_);
}

void inline_writer::apply(write_batch* batch, completion* done) {
  auto waiting = std::exchange(deferred_, {});
  status st = stopped_by_;
  if (st.is_ok()) {
    // One transaction: applied now, or handed to the apply thread when the
    // environment writes behind (reads see it at once either way).
    std::vector<write_batch> batches;
    batches.reserve(waiting.size() + 1);
    for (auto& [b, d] : waiting) batches.push_back(std::move(b));
    if (batch) batches.push_back(std::move(*batch));
    st = env_.apply_later(std::move(batches),
                          [this](const std::vector<write_batch>& taken) { record(taken); });
    if (!st && fail_stop_)
      stopped_by_ =
          status(st.code(), st.message() + " (the store stopped taking writes after this failure)");
  }
  for (auto& [b, d] : waiting)
    if (d) d(st);
  if (done && *done) (*done)(st);
}

void inline_writer::record(const std::vector<write_batch>& batches) {
  if (!recording_) return;
  for (const write_batch& b : batches)
    for (const write_op& op : b.ops()) keys_.add(op.table, op.key);
}

}  // namespace gearmesh::store
