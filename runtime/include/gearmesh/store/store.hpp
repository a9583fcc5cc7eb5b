// Durable local state of a node: one LMDB environment per data directory.
//
// Layout: named tables (LMDB sub-databases) of byte keys to byte values. The
// runtime owns these tables:
//   "meta"   format version stamp, id counters and the node id ("node_id",
//            written at start by the actors library, read by `gearmesh verify`)
//   "inbox"  key = "<sender>/<message_id as 20-digit decimal>",
//            value = "<commit time µs>|<ids of the replies sent, ','-separated>";
//            the inbound messages already processed (dedup), kept for the
//            replay window
//   "outbox" key = <message_id as 20-digit decimal>, value = "<receiver>\0<frame bytes>";
//            messages committed but not yet acknowledged by their receiver
// Actor libraries own further tables (see actors/include/gearmesh/actors/records.hpp).
//
// Threading: `environment` reads are thread-safe (each call uses its own
// read-only snapshot transaction). All writes go through one `commit_queue`.
// Durability: a batch is on disk when its completion runs with an ok status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gearmesh/status.hpp"

namespace gearmesh::store {

/// "meta" key holding the node's message id high-water mark (20-digit decimal):
/// every message id the node used is below it. `gearmesh store restore` moves
/// it up by `restore_message_id_skip`, so a node restored from an old backup
/// never re-uses an id its partners have already seen (and would drop as a duplicate).
constexpr std::string_view meta_message_id_high_water = "message_id_high_water";
constexpr std::uint64_t restore_message_id_skip = std::uint64_t{1} << 40;

/// On-disk format version written to "meta"/"format_version"; open fails with
/// errc::storage on a mismatch.
constexpr std::uint32_t format_version = 1;

struct options {
  /// Directory holding data.mdb and lock.mdb; created if missing.
  std::string path;
  /// Initial LMDB map size; grows (doubling) on MDB_MAP_FULL up to map_bytes_max.
  std::size_t map_bytes_initial = std::size_t{64} << 20;
  std::size_t map_bytes_max = std::size_t{64} << 30;
  /// Maximum number of named tables.
  unsigned tables_max = 64;
  /// false: commits are not fsynced (MDB_NOSYNC). Only for tests and the simulator.
  bool sync = true;
};

/// One change inside a write batch.
struct write_op {
  enum class kind : std::uint8_t { put, erase };
  kind op = kind::put;
  std::string table;
  std::string key;
  std::string value;  // empty for erase
};

/// An ordered set of changes applied atomically (all or nothing).
class write_batch {
 public:
  void put(std::string_view table, std::string_view key, std::string_view value);
  /// The same, taking `value` over (an encoded record is not copied again).
  void put_owned(std::string_view table, std::string_view key, std::string value);
  void erase(std::string_view table, std::string_view key);
  /// Appends all ops of `other` after this batch's ops.
  void append(write_batch&& other);
  bool empty() const noexcept { return ops_.empty(); }
  std::size_t size() const noexcept { return ops_.size(); }
  const std::vector<write_op>& ops() const noexcept { return ops_; }

 private:
  std::vector<write_op> ops_;
};

/// Keys written (put or erased), by table name.
using written_keys = std::map<std::string, std::set<std::string, std::less<>>, std::less<>>;

/// Keys written (put or erased), in the order written, repeats included:
/// recording one is two appends, and whoever reads them makes them into
/// written_keys -- so the simulator records on its first thread and sorts
/// on the thread that runs the checks. A plain value: one thread at a time.
class key_log {
 public:
  /// From now on, add() skips the keys of `table` (a few tables at most).
  void ignore(std::string_view table) { ignored_.emplace_back(table); }
  /// Records `key` of `table`, unless that table is ignored.
  void add(std::string_view table, std::string_view key) {
    for (const auto& t : ignored_)
      if (t == table) return;
    bytes_.append(table).append(key);
    entries_.push_back({static_cast<std::uint32_t>(table.size()), bytes_.size()});
  }
  /// Records the keys of `other` after these, as they are (what this log
  /// ignores applies to add() only).
  void append(key_log&& other);
  /// The keys recorded so far (a log that ignores nothing); this log
  /// starts again empty, still ignoring what it ignored.
  key_log take();
  bool empty() const noexcept { return entries_.empty(); }
  /// Keys recorded, repeats included.
  std::size_t size() const noexcept { return entries_.size(); }
  /// The keys recorded, by table, each once.
  written_keys keys() const;

 private:
  struct entry {
    std::uint32_t table_bytes = 0;  // the table's name, then the key,
    std::size_t end = 0;            // are bytes_[previous end, end)
  };
  std::string bytes_;
  std::vector<entry> entries_;
  std::vector<std::string> ignored_;
};

/// Table statistics, for `gearmesh store inspect` and metrics.
struct table_stats {
  std::string name;
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;  // pages * page size
};

/// One thread that applies the write transactions of any number of
/// environments (environment::write_behind) in the order they were queued,
/// each in a transaction of its own: the LMDB work of a single-threaded
/// simulation moves to a second core, and the stores end up byte for byte
/// as if every transaction had been applied at once. When idle, it polls
/// for `spin_us` before it sleeps, so that a caller queueing a transaction
/// every few microseconds does not pay a wake-up each time. Destroy it after
/// the environments that use it.
class apply_thread {
 public:
  explicit apply_thread(std::uint32_t spin_us = 200);
  /// Applies what is queued, then joins.
  ~apply_thread();
  apply_thread(const apply_thread&) = delete;
  apply_thread& operator=(const apply_thread&) = delete;

  /// Ok while every transaction applied; else the first failure (errc::storage
  /// with the store's path). After it nothing more is applied.
  status failure() const;
  /// Whether a transaction failed (cheap: for a check at every step).
  bool failed() const noexcept;
  /// Waits until everything queued so far is applied (or skipped after a failure).
  void drain();
  /// Transactions applied so far.
  std::uint64_t transactions() const noexcept;

  /// Queues `fn` to run on the thread after every transaction queued before
  /// it and before any queued after it (even after a failure); returns its
  /// number for wait() and done(). Inside `fn`, the environments that write
  /// behind to this thread may be read (get, scan, stats, copy_to) from this
  /// thread: each shows its store exactly as the transactions before `fn`
  /// left it, while the caller goes on reading and queueing. `fn` must not
  /// write. While it runs, no transaction is applied. For work that reads a
  /// moment of the stores without stopping the caller (the simulator's
  /// mid-run checks). Same calling thread as the environments' owner.
  std::uint64_t run_in_order(std::function<void()> fn);
  /// Runs `fn` on the thread as soon as it can: before the transactions and
  /// functions queued but not begun, between two of them. Not ordered with
  /// them, so `fn` must not touch the stores; side jobs run in the order
  /// given. For work that only needs a spare core (the simulator decodes
  /// the frames it carries ahead of their delivery). Any thread.
  void run_aside(std::function<void()> fn);
  /// Waits until `n` (from run_in_order) has run.
  void wait(std::uint64_t n);
  /// Whether `n` (from run_in_order) has run.
  bool done(std::uint64_t n) const noexcept;

  struct impl;

 private:
  friend class environment;
  std::unique_ptr<impl> impl_;
};

/// An open LMDB environment. Not copyable; close by destroying (after the
/// commit_queue using it has stopped).
class environment {
 public:
  /// Opens (creating if needed) the store at `opts.path`. Errors: errc::storage
  /// with the path and the LMDB message (permissions, disk full, version mismatch).
  static result<std::unique_ptr<environment>> open(const options& opts);

  ~environment();
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;

  /// Reads one value. std::nullopt if the table or key does not exist.
  result<std::optional<std::string>> get(std::string_view table, std::string_view key) const;

  /// Visits entries of `table` in key order from the first key >= `from`,
  /// in one consistent snapshot, until `fn` returns false. Missing table = no entries.
  status scan(std::string_view table, std::string_view from,
              const std::function<bool(std::string_view key, std::string_view value)>& fn) const;

  /// Visits all entries of `table` (scan from the first key).
  status for_each(
      std::string_view table,
      const std::function<bool(std::string_view key, std::string_view value)>& fn) const {
    return scan(table, {}, fn);
  }

  /// Ok if every op of `batch` has a valid table name (non-empty, no NUL)
  /// and a key of 1..key_bytes_max() bytes -- what LMDB can store. apply()
  /// refuses a batch that fails this before touching anything; callers that
  /// build batches from untrusted input check first, so one bad key is an
  /// error of that input, not a store failure. Errors: errc::invalid_argument
  /// naming the table and the key's size.
  status check(const write_batch& batch) const;

  /// Longest key LMDB accepts (511 bytes in Debian's build).
  std::size_t key_bytes_max() const noexcept;

  /// Applies `batches` in order in ONE write transaction and commits it
  /// (synced unless options.sync is false). Retries after growing the map on
  /// MDB_MAP_FULL. All or nothing. Only one thread may call this at a time:
  /// normally the commit_queue's writer thread.
  status apply(const std::vector<const write_batch*>& batches);
  status apply(const write_batch& batch) { return apply(std::vector<const write_batch*>{&batch}); }

  /// Like apply(), but with options.sync the transaction is durable only
  /// once a later apply(), apply_pipelined() or sync() returned ok: its
  /// data pages are flushed, the meta page that makes it current is written
  /// but flushed by the next commit's data flush. A crash before that undoes
  /// this transaction as a whole (never part of it). Visible to readers at
  /// once. Lets a writer with work queued pay one flush per transaction
  /// instead of two. `earlier_durable` receives whether this commit made
  /// every earlier one durable (false if it changed nothing on disk, e.g.
  /// only erased absent keys, and so flushed nothing). Same threading rule
  /// as apply().
  status apply_pipelined(const std::vector<const write_batch*>& batches, bool& earlier_durable);

  /// Makes every transaction committed so far durable. Same threading rule
  /// as apply(). Errors: errc::storage.
  status sync();

  /// Names and sizes of all tables.
  result<std::vector<table_stats>> stats() const;

  /// Consistent compacted copy into directory `dir` (must exist and be empty); online.
  status copy_to(const std::string& dir) const;

  const std::string& path() const noexcept;

  // -- writing behind (the simulator) ---------------------------------------

  /// From now on apply_later() hands transactions to `t`, which applies them
  /// on its own thread while the caller goes on; null: back to applying at
  /// once (after waiting for them). For a single-threaded owner (the
  /// simulator): every read and write of this environment must then come
  /// from the thread that called this; from any other, they fail with
  /// errc::internal. Reads see the
  /// queued transactions as if they were applied: get() answers the keys
  /// they write from them; scan(), stats(), copy_to() and apply() first wait
  /// until they are. Destroying the environment waits for them too, so what
  /// was handed over is in the store when it closes (a simulated crash loses
  /// nothing handed over). `t` must outlive this environment's use of it.
  void write_behind(apply_thread* t);
  bool writes_behind() const noexcept;

  /// With write_behind: checks `batches` (errc::invalid_argument as apply(),
  /// nothing queued), then queues them as ONE transaction after every one
  /// queued before. A transaction that fails later (a full disk) stops the
  /// thread's work: see apply_thread::failure(), which every later call
  /// returns. Without write_behind: apply(). `accepted` (if set) sees the
  /// batches once they are taken: checked and about to be queued, or
  /// applied; not if the call fails.
  status apply_later(std::vector<write_batch> batches,
                     const std::function<void(const std::vector<write_batch>&)>& accepted = {});

 private:
  friend struct apply_thread::impl;
  struct impl;
  explicit environment(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Sink for write batches. Implementations are thread-safe.
class commit_queue {
 public:
  /// Runs after the batch is durable (status ok) or failed (not applied).
  /// Runs on the writer's thread, in submission order; must not block.
  using completion = std::function<void(const status&)>;

  virtual ~commit_queue() = default;

  /// Queues `batch`. Batches are applied in submission order, so a batch is
  /// never durable before any batch submitted earlier from any thread.
  /// Blocks while the queue is full (backpressure).
  virtual void submit(write_batch batch, completion done) = 0;

  /// Queues `batch` like submit() (same order, same completion), but asks
  /// for no transaction of its own: it is applied with the next transaction
  /// a submit() causes, or alone after a bounded delay (see
  /// group_commit_writer::options::deferred_delay_ms). For writes whose loss
  /// in a crash is harmless, such as erasing the outbox entry of a message
  /// its receiver acknowledged (it would be re-sent and dropped as a
  /// duplicate). By default the same as submit().
  virtual void submit_deferred(write_batch batch, completion done) {
    submit(std::move(batch), std::move(done));
  }

  /// Commits everything queued and runs its completions; batches submitted
  /// afterwards complete with errc::shutting_down. Idempotent. By default
  /// nothing (a queue that applies at once has nothing queued).
  virtual void stop() {}
};

/// Applies each batch at once, on the caller's thread, in a transaction of
/// its own, then runs its completion: no writer thread. For deterministic
/// simulation, where every step must happen in an order the simulator
/// controls. Deferred batches (submit_deferred) wait, as with the group-
/// commit writer, for the next submit(), which applies them first in the
/// same transaction, or for flush_deferred(); kill() drops them (what a
/// crash before the writer's next transaction loses). With `fail_stop`,
/// every batch after the first failure fails with it, as group_commit_writer's
/// option. Not thread-safe: one caller at a time (the simulator runs
/// everything on one thread). When the environment writes behind
/// (environment::write_behind), "applies" means "hands to the apply thread
/// as one transaction": reads see the batch at once and its completion runs
/// at once, ok unless the batch is invalid or the thread failed before.
class inline_writer final : public commit_queue {
 public:
  inline_writer(environment& env, bool fail_stop) : env_(env), fail_stop_(fail_stop) {}
  void submit(write_batch batch, completion done) override;
  void submit_deferred(write_batch batch, completion done) override;
  /// Applies the deferred batches now, in one transaction.
  void flush_deferred();
  /// Whether deferred batches wait for a transaction.
  bool deferred_pending() const noexcept { return !deferred_.empty(); }
  /// Applies the deferred batches (a clean stop).
  void stop() override { flush_deferred(); }
  /// From now on every batch fails with errc::shutting_down, unapplied (a
  /// simulated process death); deferred batches waiting are dropped.
  void kill();

  /// From now on, remembers the keys every applied batch writes, except in
  /// the tables named in `ignored` (for incremental invariant checks).
  void record_keys(const std::set<std::string, std::less<>>& ignored) {
    recording_ = true;
    for (const auto& t : ignored) keys_.ignore(t);
  }
  /// The keys recorded since the last call (empty unless record_keys).
  key_log take_keys() { return keys_.take(); }

 private:
  /// Applies the deferred batches and then `batch` (if any) in one
  /// transaction and runs their completions in submission order.
  void apply(write_batch* batch, completion* done);
  /// Remembers the keys `batches` write (record_keys).
  void record(const std::vector<write_batch>& batches);

  environment& env_;
  bool fail_stop_;
  status stopped_by_;
  std::vector<std::pair<write_batch, completion>> deferred_;
  bool recording_ = false;
  key_log keys_;
};

/// Counters of a group_commit_writer.
struct writer_stats {
  std::uint64_t batches = 0;       // batches applied
  std::uint64_t transactions = 0;  // LMDB commits (= syncs when options.sync)
  std::uint64_t failures = 0;      // transactions that failed
};

/// Group commit: one writer thread drains everything queued since its last
/// commit into one transaction and one sync, then runs the completions.
class group_commit_writer final : public commit_queue {
 public:
  struct options {
    /// Most batches per transaction. 1 = one sync per batch (baseline).
    std::size_t batches_per_txn_max = 4096;
    /// Most batches waiting; submit blocks beyond this.
    std::size_t queue_max = 65536;
    /// After the first failed transaction (disk full, I/O error), fail every
    /// later batch with the same status without writing it. A node's actors
    /// build each step on the state of the steps before it, so once one
    /// step is lost nothing after it may become durable (no partial state).
    /// false: a failed group is retried batch by batch, each with its own outcome.
    bool fail_stop = false;
    /// true: when more batches are waiting after a transaction, the writer
    /// commits them before it reports the first one durable, so that one
    /// flush covers the first one's meta page and the next one's data
    /// (environment::apply_pipelined); idle, it syncs at once. false: every
    /// transaction is flushed completely before its completions run (two
    /// flushes each, LMDB's default).
    bool pipeline_syncs = true;
    /// Longest a batch queued with submit_deferred() waits for a
    /// transaction that a submit() causes before it gets one of its own.
    std::uint32_t deferred_delay_ms = 50;
    /// Under load, how long the writer keeps gathering batches before it
    /// starts a transaction (0: never; it starts as soon as one is queued).
    /// Applies only after a transaction of at least gather_after_batches
    /// batches: a lone commit (one order in flight) never waits, a busy
    /// writer trades up to this much latency per commit for fewer, larger
    /// transactions -- each costs a flush, whatever its size.
    std::uint32_t gather_us = 0;
    std::size_t gather_after_batches = 16;
  };

  /// Starts the writer thread. `env` must outlive this object.
  group_commit_writer(environment& env, options opts);
  explicit group_commit_writer(environment& env) : group_commit_writer(env, options{}) {}
  ~group_commit_writer() override;  // stop()

  void submit(write_batch batch, completion done) override;
  void submit_deferred(write_batch batch, completion done) override;

  /// Commits everything queued, runs completions, joins the thread. Batches
  /// submitted afterwards complete with errc::shutting_down. Idempotent.
  void stop() override;

  writer_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Typed values: specialise `codec<T>` with
///   static std::string encode(const T&);
///   static result<T> decode(std::string_view);
template <class T>
struct codec;

/// A named table of T values, typed through codec<T>.
template <class T>
class table {
 public:
  explicit constexpr table(std::string_view name) : name_(name) {}
  std::string_view name() const noexcept { return name_; }

  void put(write_batch& b, std::string_view key, const T& value) const {
    b.put_owned(name_, key, codec<T>::encode(value));
  }
  void erase(write_batch& b, std::string_view key) const { b.erase(name_, key); }

  result<std::optional<T>> get(const environment& env, std::string_view key) const {
    auto raw = env.get(name_, key);
    if (!raw) return raw.error();
    if (!raw->has_value()) return std::optional<T>{};
    auto v = codec<T>::decode(**raw);
    if (!v) return v.error();
    return std::optional<T>{std::move(*v)};
  }

  /// Visits all decoded values; stops with the first decode error.
  status for_each(const environment& env,
                  const std::function<bool(std::string_view key, T&& value)>& fn) const {
    status err;
    auto st = env.for_each(name_, [&](std::string_view k, std::string_view v) {
      auto t = codec<T>::decode(v);
      if (!t) {
        err = t.error();
        return false;
      }
      return fn(k, std::move(*t));
    });
    if (!st) return st;
    return err;
  }

 private:
  std::string_view name_;
};

/// Fixed-width decimal for keys that sort numerically ("00000000000000000042").
std::string key_u64(std::uint64_t v);

}  // namespace gearmesh::store
