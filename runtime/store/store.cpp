// LMDB environment: named tables, snapshot reads, atomic batched writes with
// map growth on MDB_MAP_FULL.
//
// Locking (see impl): three independent locks, always taken in this order
//   dbi_mutex_  -> gate_ (shared, readers) / gate_ (exclusive, map resize)
//   cache_mutex_ is a leaf lock held only for map lookups and inserts.
// The writer never holds dbi_mutex_ while it resizes the map, so a reader that
// holds the gate and waits for dbi_mutex_ cannot deadlock with it.
#include "gearmesh/store/store.hpp"

#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace gearmesh::store {

namespace {

/// Reader slots in the lock file. Every concurrent read (get, scan, stats,
/// copy_to) holds one for its duration; beyond this, reads fail with
/// MDB_READERS_FULL instead of blocking.
constexpr unsigned readers_max = 512;

/// Reset read transactions kept for reuse (environment::impl::idle_readers);
/// each keeps one of the readers_max slots.
constexpr std::size_t idle_readers_max = 8;

/// Upper bound on write attempts in one apply(): each MDB_MAP_FULL at least
/// doubles the map (or fails at map_bytes_max), so 64 attempts cover any size_t.
constexpr int apply_attempts_max = 64;
/// Most transactions an environment::write_behind owner may have queued
/// and not yet applied (memory: each holds its batches).
constexpr std::uint64_t queued_behind_max = 16384;
/// An environment forgets its applied transactions once it lists this
/// many: reading applied_n costs a cache miss (the thread writes it), a
/// look through a few more listed ones does not.
constexpr std::size_t forget_at = 4;
/// Forgotten transactions an environment gathers before it hands them to
/// the apply thread to free (freeing their batches was 2 % of the owner's
/// work in a simulation).
constexpr std::size_t free_behind_at = 64;

/// Table and key of the on-disk format stamp. The value is the decimal version.
constexpr std::string_view meta_table = "meta";
constexpr std::string_view format_version_key = "format_version";

MDB_val to_val(std::string_view s) {
  // LMDB never writes through mv_data of an input key/value.
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view to_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

/// A table name LMDB can store: non-empty and without NUL (names are C strings).
bool valid_table_name(std::string_view name) {
  return !name.empty() && name.find('\0') == std::string_view::npos;
}

/// Paths of environments open in this process. LMDB forbids opening the same
/// environment twice in one process (its POSIX locks would be released by the
/// first close), so open() refuses a second handle.
std::mutex open_paths_mutex;
std::set<std::string> open_paths;

struct env_closer {
  void operator()(MDB_env* e) const noexcept { mdb_env_close(e); }
};
using env_handle = std::unique_ptr<MDB_env, env_closer>;

/// Excludes map resizes while any transaction of this process is active
/// (mdb_env_set_mapsize unmaps the file: a live reader would fault). Readers
/// share it; the writer takes it exclusively between its transactions. A thread
/// that already holds it shared for this gate (a scan callback that reads
/// again) re-enters without waiting, so a pending resize cannot deadlock it.
class map_gate {
 public:
  void enter_shared() {
    std::unique_lock lk(mutex_);
    if (!held_here()) cv_.wait(lk, [&] { return !resizing_; });
    ++readers_;
    held_.push_back(this);
  }

  void exit_shared() noexcept {
    std::lock_guard lk(mutex_);
    held_.erase(std::find(held_.begin(), held_.end(), this));
    if (--readers_ == 0 && resizing_) cv_.notify_all();
  }

  /// Runs `fn` with no reader active; new readers wait meanwhile.
  template <class F>
  int exclusive(F&& fn) {
    std::unique_lock lk(mutex_);
    resizing_ = true;
    cv_.wait(lk, [&] { return readers_ == 0; });
    int rc = fn();
    resizing_ = false;
    cv_.notify_all();
    return rc;
  }

 private:
  bool held_here() const { return std::find(held_.begin(), held_.end(), this) != held_.end(); }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t readers_ = 0;
  bool resizing_ = false;
  /// Gates this thread holds shared, one entry per nesting level.
  static thread_local std::vector<const map_gate*> held_;
};

thread_local std::vector<const map_gate*> map_gate::held_;

}  // namespace

// ---------------------------------------------------------------------------
// write_batch

void write_batch::put(std::string_view table, std::string_view key, std::string_view value) {
  ops_.push_back(
      write_op{write_op::kind::put, std::string(table), std::string(key), std::string(value)});
}

void write_batch::put_owned(std::string_view table, std::string_view key, std::string value) {
  ops_.push_back(
      write_op{write_op::kind::put, std::string(table), std::string(key), std::move(value)});
}

void write_batch::erase(std::string_view table, std::string_view key) {
  ops_.push_back(write_op{write_op::kind::erase, std::string(table), std::string(key), {}});
}

key_log key_log::take() {
  key_log out;
  out.bytes_ = std::exchange(bytes_, {});
  out.entries_ = std::exchange(entries_, {});
  return out;
}

void key_log::append(key_log&& other) {
  if (entries_.empty()) {
    bytes_ = std::move(other.bytes_);
    entries_ = std::move(other.entries_);
  } else {
    const auto shift = bytes_.size();
    bytes_.append(other.bytes_);
    entries_.reserve(entries_.size() + other.entries_.size());
    for (auto e : other.entries_) entries_.push_back({e.table_bytes, e.end + shift});
  }
  other = {};
}

written_keys key_log::keys() const {
  written_keys out;
  const std::string_view all(bytes_);
  std::size_t begin = 0;
  std::string_view last_table;
  std::set<std::string, std::less<>>* last = nullptr;  // last_table's keys
  for (const auto& e : entries_) {
    const auto table = all.substr(begin, e.table_bytes);
    const auto key = all.substr(begin + e.table_bytes, e.end - begin - e.table_bytes);
    begin = e.end;
    if (!last || table != last_table) {
      last_table = table;
      last = &out[std::string(table)];
    }
    last->emplace(key);
  }
  return out;
}

void write_batch::append(write_batch&& other) {
  if (ops_.empty()) {
    ops_ = std::move(other.ops_);
  } else {
    ops_.reserve(ops_.size() + other.ops_.size());
    std::move(other.ops_.begin(), other.ops_.end(), std::back_inserter(ops_));
  }
  other.ops_.clear();
}

std::string key_u64(std::uint64_t v) {
  // By hand rather than snprintf: keys are built for every message.
  std::string out(20, '0');
  for (auto i = out.size(); v != 0; v /= 10) out[--i] = static_cast<char>('0' + v % 10);
  return out;
}

// ---------------------------------------------------------------------------
// environment::impl

struct environment::impl {
  options opts;
  /// Canonical path, the key in open_paths.
  std::string canonical_path;
  env_handle env;
  std::size_t map_bytes = 0;  // current map size; changed only by the writer
  std::size_t key_bytes_max = 0;
  /// Handle of the unnamed main database, whose keys are the table names.
  MDB_dbi main_dbi = 0;

  mutable map_gate gate;
  /// Serialises mdb_dbi_open: LMDB allows one transaction at a time to use it,
  /// and that transaction must end before another may. The writer holds it for
  /// its whole transaction, so a handle is cached only after the transaction
  /// that opened it committed, and no write transaction begun before a handle
  /// existed is ever handed that handle.
  mutable std::mutex dbi_mutex;
  mutable std::shared_mutex cache_mutex;
  /// Open handles by table name. Handles stay valid until mdb_env_close.
  mutable std::map<std::string, MDB_dbi, std::less<>> dbis;
  /// Tables a read found missing: not looked for again until a write
  /// creates them (cache() takes them off). Guarded by cache_mutex.
  mutable std::set<std::string, std::less<>> missing;

  /// Read-only transactions kept after use (mdb_txn_reset) and renewed for
  /// the next read: mdb_txn_begin allocates and zeroes a transaction sized
  /// for tables_max tables (~4 KiB) on every read, which was most of the
  /// cost of a point read. A reset transaction holds its reader slot but no
  /// snapshot, so it pins no pages and does not block a map resize.
  /// Guarded by idle_readers_mutex (a leaf lock).
  mutable std::mutex idle_readers_mutex;
  mutable std::vector<MDB_txn*> idle_readers;

  // -- write behind (environment::write_behind): the owning thread only,
  // except that the apply thread reads a queued transaction's batches.
  apply_thread::impl* behind = nullptr;
  /// A transaction handed to the apply thread; freed once applied.
  struct queued_txn {
    std::uint64_t seq = 0;  // the apply thread's number for it
    std::vector<write_batch> batches;
  };
  /// Queued, oldest first, until forgotten once applied: a few at most, as
  /// the apply thread keeps up; get() looks through them, newest op first.
  mutable std::deque<std::unique_ptr<queued_txn>> queued;
  /// Applied transactions forgotten, to be freed on the apply thread.
  mutable std::vector<std::unique_ptr<queued_txn>> forgotten;
  /// The thread that called write_behind(): the only one that may use the
  /// environment while it writes behind.
  std::thread::id owner;
  /// Ok unless the environment writes behind and this is not its owner's
  /// thread: that would race with the owner over `queued`.
  status owner_only() const {
    if (!behind || std::this_thread::get_id() == owner) return {};
    return status(errc::internal, opts.path +
                                      ": used from another thread while it writes behind "
                                      "(environment::write_behind); stop writing behind first");
  }
  /// Whether this is the apply thread, inside a job of apply_thread::run_in_order:
  /// it may read, and sees the store as applied (never the queued transactions).
  bool on_apply_thread() const;
  /// Before a read that goes to the store as a whole (scan, stats, copy):
  /// the owner waits until its queued transactions are applied; the apply
  /// thread reads what is applied; any other thread is refused.
  status before_read() const {
    if (on_apply_thread()) return {};
    if (auto st = owner_only(); !st) return st;
    wait_queued();
    return {};
  }
  /// Before writing at once: the owner's queued transactions go first.
  status before_write() const {
    if (auto st = owner_only(); !st) return st;
    wait_queued();
    return {};
  }
  /// Forgets the queued transactions the apply thread has applied.
  void forget_applied() const;
  /// The newest queued write of (table, key), or null.
  const write_op* queued_write(std::string_view table, std::string_view key) const;
  /// Waits until every queued transaction is applied, then forgets them.
  void wait_queued() const;

  ~impl() {
    wait_queued();
    for (MDB_txn* t : idle_readers) mdb_txn_abort(t);
    idle_readers.clear();
    env.reset();
    std::lock_guard lk(open_paths_mutex);
    open_paths.erase(canonical_path);
  }

  status error(std::string_view operation, int rc) const {
    std::string msg = opts.path;
    msg += ": ";
    msg += operation;
    msg += ": ";
    msg += mdb_strerror(rc);
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG)
      msg +=
          " -- the disk holding the store is full (or a quota or file size limit was hit); "
          "nothing of this transaction was applied";
    else if (rc == EIO)  // LMDB reports a short write (a disk filling up mid-write) as EIO
      msg +=
          " -- the disk holding the store is full or failing; nothing of this transaction "
          "was applied";
    return status(errc::storage, std::move(msg));
  }

  std::optional<MDB_dbi> cached(std::string_view table) const {
    std::shared_lock lk(cache_mutex);
    auto it = dbis.find(table);
    if (it == dbis.end()) return std::nullopt;
    return it->second;
  }

  void cache(std::string name, MDB_dbi dbi) const {
    std::unique_lock lk(cache_mutex);
    missing.erase(name);
    dbis.emplace(std::move(name), dbi);
  }

  bool known_missing(std::string_view table) const {
    std::shared_lock lk(cache_mutex);
    return missing.contains(table);
  }

  /// A read-only snapshot transaction holding the map gate; aborted on scope exit.
  class read_txn {
   public:
    explicit read_txn(const impl& i) : impl_(i) { impl_.gate.enter_shared(); }
    ~read_txn() {
      if (txn_) {
        mdb_txn_reset(txn_);
        std::unique_lock lk(impl_.idle_readers_mutex);
        if (impl_.idle_readers.size() < idle_readers_max) {
          impl_.idle_readers.push_back(txn_);
        } else {
          lk.unlock();
          mdb_txn_abort(txn_);
        }
      }
      impl_.gate.exit_shared();
    }
    read_txn(const read_txn&) = delete;
    read_txn& operator=(const read_txn&) = delete;

    int begin() {
      {
        std::lock_guard lk(impl_.idle_readers_mutex);
        if (!impl_.idle_readers.empty()) {
          txn_ = impl_.idle_readers.back();
          impl_.idle_readers.pop_back();
        }
      }
      if (txn_) {
        if (int rc = mdb_txn_renew(txn_)) {
          mdb_txn_abort(std::exchange(txn_, nullptr));
          return rc;
        }
        return 0;
      }
      return mdb_txn_begin(impl_.env.get(), nullptr, MDB_RDONLY, &txn_);
    }
    /// Commit keeps handles opened by mdb_dbi_open in this transaction (and
    /// frees it: it does not go back to the idle list).
    int commit() { return mdb_txn_commit(std::exchange(txn_, nullptr)); }
    MDB_txn* get() const { return txn_; }

   private:
    const impl& impl_;
    MDB_txn* txn_ = nullptr;
  };

  /// Handle of an existing table for reading; std::nullopt if it does not exist.
  result<std::optional<MDB_dbi>> find_dbi(std::string_view table) const {
    if (auto d = cached(table)) return std::optional<MDB_dbi>{*d};
    if (!valid_table_name(table)) return std::optional<MDB_dbi>{};
    // A table is created only by this environment's writes, which cache
    // it (write_once): one found missing stays so until then. (With
    // writes behind, a read sees a queued write before it asks for the
    // table, and the table is cached before the write counts as applied.)
    if (known_missing(table)) return std::optional<MDB_dbi>{};
    std::lock_guard lk(dbi_mutex);
    if (auto d = cached(table)) return std::optional<MDB_dbi>{*d};
    std::string name(table);
    read_txn txn(*this);
    if (int rc = txn.begin()) return error("mdb_txn_begin(read)", rc);
    MDB_dbi dbi = 0;
    int rc = mdb_dbi_open(txn.get(), name.c_str(), 0, &dbi);
    if (rc == MDB_NOTFOUND) {
      std::unique_lock cl(cache_mutex);
      missing.emplace(name);
      return std::optional<MDB_dbi>{};
    }
    if (rc) return error("mdb_dbi_open(\"" + name + "\")", rc);
    if ((rc = txn.commit())) return error("mdb_txn_commit(read)", rc);
    cache(std::move(name), dbi);
    return std::optional<MDB_dbi>{dbi};
  }

  /// Opens every existing table so that later reads find their handles cached.
  status open_all_tables() {
    std::vector<std::string> names;
    {
      read_txn txn(*this);
      if (int rc = txn.begin()) return error("mdb_txn_begin(read)", rc);
      if (int rc = mdb_dbi_open(txn.get(), nullptr, 0, &main_dbi)) {
        return error("mdb_dbi_open(main)", rc);
      }
      MDB_cursor* cur = nullptr;
      if (int rc = mdb_cursor_open(txn.get(), main_dbi, &cur))
        return error("mdb_cursor_open(main)", rc);
      MDB_val k, v;
      int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
      for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) names.emplace_back(to_view(k));
      mdb_cursor_close(cur);
      if (rc != MDB_NOTFOUND) return error("mdb_cursor_get(main)", rc);
      // Commit keeps the main handle open for stats().
      if ((rc = txn.commit())) return error("mdb_txn_commit(read)", rc);
    }
    for (const auto& n : names) {
      auto d = find_dbi(n);
      if (!d) return d.error();
    }
    return {};
  }

  /// Grows the map to `bytes` with no transaction active in this process.
  /// bytes == 0 adopts the size another process recorded (MDB_MAP_RESIZED).
  status resize_map(std::size_t bytes) {
    int rc = gate.exclusive([&] { return mdb_env_set_mapsize(env.get(), bytes); });
    if (rc) return error("mdb_env_set_mapsize", rc);
    MDB_envinfo info;
    if ((rc = mdb_env_info(env.get(), &info))) return error("mdb_env_info", rc);
    map_bytes = info.me_mapsize;
    return {};
  }

  /// Outcome of one write attempt.
  struct attempt {
    int rc = 0;             // 0 = committed
    std::string operation;  // what failed
    status invalid;         // a non-LMDB failure (bad argument)
  };

  /// One write transaction over all ops of `batches`; commits on success,
  /// aborts on any failure (so nothing is applied).
  attempt write_once(const std::vector<const write_batch*>& batches) {
    std::lock_guard lk(dbi_mutex);
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env.get(), nullptr, 0, &txn))
      return {rc, "mdb_txn_begin(write)", {}};
    /// Handles opened by this transaction; published to the cache only after
    /// commit (an aborted transaction closes them).
    std::vector<std::pair<std::string, MDB_dbi>> opened;
    auto lookup = [&](const std::string& table, bool create, MDB_dbi* dbi) -> int {
      if (auto d = cached(table)) {
        *dbi = *d;
        return 0;
      }
      for (const auto& [n, d] : opened) {
        if (n == table) {
          *dbi = d;
          return 0;
        }
      }
      int rc = mdb_dbi_open(txn, table.c_str(), create ? MDB_CREATE : 0, dbi);
      if (rc == 0) opened.emplace_back(table, *dbi);
      return rc;
    };
    auto fail = [&](int rc, std::string operation) {
      mdb_txn_abort(txn);
      return attempt{rc, std::move(operation), {}};
    };
    for (const write_batch* b : batches) {
      for (const write_op& op : b->ops()) {
        MDB_dbi dbi = 0;
        MDB_val k = to_val(op.key);
        if (op.op == write_op::kind::put) {
          if (int rc = lookup(op.table, true, &dbi)) {
            return fail(rc, "mdb_dbi_open(\"" + op.table + "\", MDB_CREATE)");
          }
          MDB_val v = to_val(op.value);
          if (int rc = mdb_put(txn, dbi, &k, &v, 0)) {
            return fail(rc, "mdb_put(\"" + op.table + "\", key of " +
                                std::to_string(op.key.size()) + " bytes)");
          }
        } else {
          // Erasing from a table that does not exist is a no-op; don't create it.
          int rc = lookup(op.table, false, &dbi);
          if (rc == MDB_NOTFOUND) continue;
          if (rc) return fail(rc, "mdb_dbi_open(\"" + op.table + "\")");
          rc = mdb_del(txn, dbi, &k, nullptr);
          if (rc && rc != MDB_NOTFOUND) {
            return fail(rc, "mdb_del(\"" + op.table + "\", key of " +
                                std::to_string(op.key.size()) + " bytes)");
          }
        }
      }
    }
    // On failure mdb_txn_commit frees the transaction (nothing written).
    if (int rc = mdb_txn_commit(txn)) return {rc, "mdb_txn_commit", {}};
    for (auto& [n, d] : opened) cache(std::move(n), d);
    return {};
  }

  status check(const write_batch& batch) const {
    for (const write_op& op : batch.ops()) {
      if (!valid_table_name(op.table)) {
        return status(errc::invalid_argument,
                      opts.path + ": apply: table name must be non-empty and contain no NUL");
      }
      if (op.key.empty() || op.key.size() > key_bytes_max) {
        return status(errc::invalid_argument,
                      opts.path + ": apply: a key in table " + op.table + " has " +
                          std::to_string(op.key.size()) + " bytes; keys have 1 to " +
                          std::to_string(key_bytes_max) + " bytes; nothing applied");
      }
    }
    return {};
  }

  /// durable: with opts.sync, also flush the meta page before returning
  /// (the environment runs with MDB_NOMETASYNC, see open()).
  status apply(const std::vector<const write_batch*>& batches, bool durable,
               bool* earlier_durable = nullptr) {
    if (earlier_durable) *earlier_durable = false;
    bool any = false;
    for (const write_batch* b : batches) {
      if (auto st = check(*b); !st) return st;
      any = any || !b->empty();
    }
    if (!any) return {};
    for (int i = 0; i < apply_attempts_max; ++i) {
      // mdb_env_info only when the answer is asked for (pipelined commits).
      const auto before = earlier_durable ? last_txnid() : 0;
      attempt a = write_once(batches);
      if (a.rc == 0) {
        // A commit that wrote a new transaction flushed its data pages, and
        // with them the meta pages of every transaction before it. One that
        // changed nothing (say, erases of absent keys) flushed nothing.
        if (earlier_durable) *earlier_durable = !opts.sync || last_txnid() != before;
        return durable ? sync() : status{};
      }
      if (a.rc == MDB_MAP_RESIZED) {
        // Another process grew the map: adopt its size and redo.
        if (auto st = resize_map(0); !st) return st;
        continue;
      }
      if (a.rc != MDB_MAP_FULL) return error(a.operation, a.rc);
      if (map_bytes >= opts.map_bytes_max) {
        return status(errc::storage, opts.path + ": " + a.operation + ": map full (map_bytes_max " +
                                         std::to_string(opts.map_bytes_max) +
                                         " bytes reached); nothing applied");
      }
      std::size_t next = map_bytes > opts.map_bytes_max / 2 ? opts.map_bytes_max : map_bytes * 2;
      if (auto st = resize_map(next); !st) return st;
    }
    return status(errc::storage, opts.path + ": apply: gave up after " +
                                     std::to_string(apply_attempts_max) + " attempts");
  }

  /// Id of the last committed write transaction.
  std::size_t last_txnid() const {
    MDB_envinfo info;
    if (mdb_env_info(env.get(), &info) != 0) return 0;
    return info.me_last_txnid;
  }

  /// Flushes everything committed so far (data and meta pages) to disk.
  status sync() {
    if (!opts.sync) return {};
    if (int rc = mdb_env_sync(env.get(), 1)) return error("mdb_env_sync", rc);
    return {};
  }
};

// ---------------------------------------------------------------------------
// apply_thread

struct apply_thread::impl {
  /// A transaction of `env`, or (env null) a function to run in order.
  struct job {
    environment::impl* env = nullptr;
    const environment::impl::queued_txn* txn = nullptr;
    std::uint64_t seq = 0;  // its number in the queue
    std::function<void()> fn;
  };

  explicit impl(std::uint32_t spin) : spin_us(spin) {
    thread = std::thread([this] { loop(); });
    // Read by the apply thread only inside a function it runs, queued after this.
    id = thread.get_id();
  }

  ~impl() {
    {
      std::lock_guard lk(mutex);
      stopping.store(true);
      work_cv.notify_one();
    }
    thread.join();
  }

  /// Queues `txn` (numbering it) for `env`. Owning thread.
  void push(environment::impl* env, environment::impl::queued_txn* txn) {
    std::lock_guard lk(mutex);
    txn->seq = ++last_seq;
    queued_n.store(txn->seq, std::memory_order_release);
    work.push_back(job{env, txn, txn->seq, {}});
    if (sleeping) work_cv.notify_one();
  }

  /// Queues `fn` to run in order; its number. Owning thread.
  std::uint64_t push(std::function<void()> fn) {
    std::lock_guard lk(mutex);
    const auto seq = ++last_seq;
    queued_n.store(seq, std::memory_order_release);
    work.push_back(job{nullptr, nullptr, seq, std::move(fn)});
    if (sleeping) work_cv.notify_one();
    return seq;
  }

  /// Queues a side job (apply_thread::run_aside).
  void push_aside(std::function<void()> fn) {
    std::lock_guard lk(mutex);
    aside.push_back(std::move(fn));
    aside_pending.store(true, std::memory_order_release);
    if (sleeping) work_cv.notify_one();
  }

  /// Runs the side jobs queued (thread only).
  void run_aside_jobs(std::deque<std::function<void()>>& jobs) {
    {
      std::lock_guard lk(mutex);
      jobs.swap(aside);
      aside_pending.store(false, std::memory_order_relaxed);
    }
    for (auto& fn : jobs) fn();
    jobs.clear();
  }

  /// Waits until transaction `seq` is applied: polls briefly (the thread is
  /// usually a few microseconds behind), then sleeps.
  void wait(std::uint64_t seq) {
    if (poll([&] { return applied_n.load(std::memory_order_acquire) >= seq; })) return;
    std::unique_lock lk(mutex);
    caller_waiting.store(true);
    done_cv.wait(lk, [&] { return applied_n.load() >= seq; });
    caller_waiting.store(false);
  }

  /// Whether `done()` became true within spin_us (checked in a busy loop).
  template <class F>
  bool poll(F done) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
    for (unsigned i = 1; !done(); ++i) {
      if (i % 64 == 0 && std::chrono::steady_clock::now() > until) return false;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    return true;
  }

  void loop() {
    std::deque<job> batch;
    std::deque<std::function<void()>> side;
    std::vector<const write_batch*> ptrs;
    for (;;) {
      if (aside_pending.load(std::memory_order_acquire)) run_aside_jobs(side);
      {
        std::unique_lock lk(mutex);
        if (work.empty() && aside.empty()) {
          // Poll for spin_us before sleeping: the next transaction usually
          // comes within microseconds, and a wake-up costs the caller a syscall.
          lk.unlock();
          const auto seen = applied_n.load(std::memory_order_relaxed);
          poll([&] {
            return queued_n.load(std::memory_order_acquire) != seen ||
                   aside_pending.load(std::memory_order_acquire) ||
                   stopping.load(std::memory_order_relaxed);
          });
          lk.lock();
          if (work.empty() && aside.empty()) {
            if (stopping.load()) return;
            sleeping = true;
            work_cv.wait(lk, [&] { return !work.empty() || !aside.empty() || stopping.load(); });
            sleeping = false;
            if (work.empty() && aside.empty()) return;
          }
        }
        batch.swap(work);
      }
      for (const job& j : batch) {
        if (aside_pending.load(std::memory_order_acquire)) run_aside_jobs(side);
        if (!j.env) {
          // Runs even after a failure: its reads show what was applied.
          j.fn();
        } else if (!failed_flag.load(std::memory_order_relaxed)) {
          ptrs.clear();
          for (const auto& b : j.txn->batches) ptrs.push_back(&b);
          if (auto st = j.env->apply(ptrs, true); !st) {
            std::lock_guard lk(mutex);
            first_failure = st;
            failed_flag.store(true);
          } else {
            applied_txns.fetch_add(1, std::memory_order_relaxed);
          }
        }
        // The owning thread frees a transaction once applied_n reaches it.
        applied_n.store(j.seq);
        if (caller_waiting.load()) {
          std::lock_guard lk(mutex);
          done_cv.notify_all();
        }
      }
      batch.clear();
    }
  }

  const std::uint32_t spin_us;
  std::mutex mutex;
  std::condition_variable work_cv;          // work queued, or stopping
  std::condition_variable done_cv;          // applied_n moved while the caller waits
  std::deque<job> work;                     // guarded by mutex
  std::deque<std::function<void()>> aside;  // side jobs, guarded by mutex
  std::uint64_t last_seq = 0;               // guarded by mutex
  bool sleeping = false;                    // guarded by mutex
  status first_failure;                     // guarded by mutex
  // On lines of their own: queued_n written by the owner, applied_n by the
  // thread after every transaction (the owner reads it only to forget
  // applied transactions, now and then), failed_flag read by the owner at
  // every read of a store with queued transactions and written once at most.
  alignas(64) std::atomic<std::uint64_t> queued_n{0};   // number of the last transaction queued
  alignas(64) std::atomic<std::uint64_t> applied_n{0};  // ... applied (or skipped after a failure)
  std::atomic<bool> caller_waiting{false};
  alignas(64) std::atomic<bool> failed_flag{false};
  alignas(64) std::atomic<bool> stopping{false};
  std::atomic<bool> aside_pending{false};  // aside holds jobs
  std::atomic<std::uint64_t> applied_txns{0};
  std::thread thread;
  std::thread::id id;  // the thread's
};

apply_thread::apply_thread(std::uint32_t spin_us) : impl_(std::make_unique<impl>(spin_us)) {}
apply_thread::~apply_thread() = default;

status apply_thread::failure() const {
  std::lock_guard lk(impl_->mutex);
  return impl_->first_failure;
}

bool apply_thread::failed() const noexcept {
  return impl_->failed_flag.load(std::memory_order_relaxed);
}

void apply_thread::drain() {
  impl_->wait(impl_->queued_n.load(std::memory_order_acquire));
}

void apply_thread::run_aside(std::function<void()> fn) {
  impl_->push_aside(std::move(fn));
}

std::uint64_t apply_thread::run_in_order(std::function<void()> fn) {
  return impl_->push(std::move(fn));
}

void apply_thread::wait(std::uint64_t n) {
  impl_->wait(n);
}

bool apply_thread::done(std::uint64_t n) const noexcept {
  return impl_->applied_n.load(std::memory_order_acquire) >= n;
}

std::uint64_t apply_thread::transactions() const noexcept {
  return impl_->applied_txns.load(std::memory_order_relaxed);
}

bool environment::impl::on_apply_thread() const {
  return behind && std::this_thread::get_id() == behind->id;
}

void environment::impl::forget_applied() const {
  const auto done = behind->applied_n.load(std::memory_order_acquire);
  while (!queued.empty() && queued.front()->seq <= done) {
    forgotten.push_back(std::move(queued.front()));
    queued.pop_front();
  }
  if (forgotten.size() >= free_behind_at) {
    // std::function needs a copyable callable: share the list.
    auto garbage = std::make_shared<std::vector<std::unique_ptr<queued_txn>>>(std::move(forgotten));
    forgotten.clear();
    behind->push([garbage] { garbage->clear(); });
  }
}

const write_op* environment::impl::queued_write(std::string_view table,
                                                std::string_view key) const {
  for (auto t = queued.rbegin(); t != queued.rend(); ++t) {
    for (auto b = (*t)->batches.rbegin(); b != (*t)->batches.rend(); ++b) {
      const auto& ops = b->ops();
      for (auto op = ops.rbegin(); op != ops.rend(); ++op)
        if (op->key == key && op->table == table) return &*op;
    }
  }
  return nullptr;
}

void environment::impl::wait_queued() const {
  if (queued.empty()) return;
  behind->wait(queued.back()->seq);
  forget_applied();
}

// ---------------------------------------------------------------------------
// environment

environment::environment(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
environment::~environment() = default;

const std::string& environment::path() const noexcept {
  return impl_->opts.path;
}

result<std::unique_ptr<environment>> environment::open(const options& opts) {
  auto fail = [&](std::string_view operation, const std::string& what) {
    return status(errc::storage, opts.path + ": " + std::string(operation) + ": " + what);
  };
  if (opts.path.empty()) return status(errc::invalid_argument, "store: options.path is empty");
  if (opts.map_bytes_initial == 0 || opts.map_bytes_initial > opts.map_bytes_max) {
    return status(errc::invalid_argument,
                  opts.path + ": map_bytes_initial must be > 0 and <= map_bytes_max");
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.path, ec);
  if (ec) return fail("create_directories", ec.message());
  std::string canonical = std::filesystem::canonical(opts.path, ec).string();
  if (ec) return fail("canonical", ec.message());

  auto p = std::make_unique<impl>();
  p->opts = opts;
  {
    std::lock_guard lk(open_paths_mutex);
    if (!open_paths.insert(canonical).second) {
      return fail("open", "already open in this process");
    }
  }
  p->canonical_path = std::move(canonical);  // ~impl removes it again on failure

  MDB_env* raw = nullptr;
  if (int rc = mdb_env_create(&raw)) return p->error("mdb_env_create", rc);
  p->env.reset(raw);
  if (int rc = mdb_env_set_maxdbs(raw, opts.tables_max)) return p->error("mdb_env_set_maxdbs", rc);
  if (int rc = mdb_env_set_mapsize(raw, opts.map_bytes_initial)) {
    return p->error("mdb_env_set_mapsize", rc);
  }
  if (int rc = mdb_env_set_maxreaders(raw, readers_max)) {
    return p->error("mdb_env_set_maxreaders", rc);
  }
  // MDB_NOTLS: read transactions are not tied to threads (reads come from
  // many threads, and a thread may nest reads).
  // MDB_NOMETASYNC: a commit flushes the data pages, then writes the meta
  // page that makes the transaction current without flushing it. apply()
  // flushes it before returning (two flushes, as LMDB's default);
  // apply_pipelined() leaves it to the data flush of the next commit, so
  // back-to-back commits cost one flush each. Integrity is LMDB's either way.
  // Without sync (tests, the simulator) writes also go straight into the
  // map (MDB_WRITEMAP): no write() per dirty page, which is most of a
  // simulated node's commit cost.
  unsigned flags = MDB_NOTLS | (opts.sync ? unsigned{MDB_NOMETASYNC}
                                          : unsigned{MDB_NOSYNC} | unsigned{MDB_WRITEMAP} |
                                                unsigned{MDB_NORDAHEAD});
  if (int rc = mdb_env_open(raw, opts.path.c_str(), flags, 0644)) {
    return p->error("mdb_env_open", rc);
  }
  int dead = 0;
  if (int rc = mdb_reader_check(raw, &dead)) return p->error("mdb_reader_check", rc);
  MDB_envinfo info;
  if (int rc = mdb_env_info(raw, &info)) return p->error("mdb_env_info", rc);
  p->map_bytes = info.me_mapsize;
  p->key_bytes_max = static_cast<std::size_t>(mdb_env_get_maxkeysize(raw));
  if (auto st = p->open_all_tables(); !st) return st;

  // The constructor is private, so make_unique cannot reach it; ownership is
  // taken on the same line.
  std::unique_ptr<environment> env(new environment(std::move(p)));
  auto stamp = env->get(meta_table, format_version_key);
  if (!stamp) return stamp.error();
  const std::string expected = std::to_string(format_version);
  if (!stamp->has_value()) {
    write_batch b;
    b.put(meta_table, format_version_key, expected);
    if (auto st = env->apply(b); !st) return st;
  } else if (**stamp != expected) {
    return status(errc::storage, opts.path + ": format version mismatch: the store has \"" +
                                     **stamp + "\", this build reads \"" + expected + "\"");
  }
  return env;
}

result<std::optional<std::string>> environment::get(std::string_view table,
                                                    std::string_view key) const {
  const bool applied_only = impl_->on_apply_thread();
  if (!applied_only)
    if (auto st = impl_->owner_only(); !st) return st;
  // After a failure every transaction before it is applied and none after
  // it: the store alone is right.
  if (!applied_only && !impl_->queued.empty() &&
      !impl_->behind->failed_flag.load(std::memory_order_acquire)) {
    // Applied transactions still listed give the same answer as the store.
    if (const write_op* op = impl_->queued_write(table, key)) {
      if (op->op == write_op::kind::erase) return std::optional<std::string>{};
      return std::optional<std::string>{op->value};
    }
  }
  auto dbi = impl_->find_dbi(table);
  if (!dbi) return dbi.error();
  // Keys outside LMDB's limits can never have been stored.
  if (!dbi->has_value() || key.empty() || key.size() > impl_->key_bytes_max) {
    return std::optional<std::string>{};
  }
  impl::read_txn txn(*impl_);
  if (int rc = txn.begin()) return impl_->error("mdb_txn_begin(read)", rc);
  MDB_val k = to_val(key), v;
  int rc = mdb_get(txn.get(), **dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>{};
  if (rc) return impl_->error("mdb_get(\"" + std::string(table) + "\")", rc);
  return std::optional<std::string>{std::string(to_view(v))};
}

status environment::scan(
    std::string_view table, std::string_view from,
    const std::function<bool(std::string_view key, std::string_view value)>& fn) const {
  if (auto st = impl_->before_read(); !st) return st;
  auto dbi = impl_->find_dbi(table);
  if (!dbi) return dbi.error();
  if (!dbi->has_value()) return {};
  impl::read_txn txn(*impl_);
  if (int rc = txn.begin()) return impl_->error("mdb_txn_begin(read)", rc);
  MDB_cursor* raw = nullptr;
  if (int rc = mdb_cursor_open(txn.get(), **dbi, &raw)) {
    return impl_->error("mdb_cursor_open(\"" + std::string(table) + "\")", rc);
  }
  // Closed before the transaction ends (declared after txn).
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> cur(raw, mdb_cursor_close);
  MDB_val k = to_val(from), v;
  int rc = from.empty() ? mdb_cursor_get(raw, &k, &v, MDB_FIRST)
                        : mdb_cursor_get(raw, &k, &v, MDB_SET_RANGE);
  for (; rc == 0; rc = mdb_cursor_get(raw, &k, &v, MDB_NEXT)) {
    if (!fn(to_view(k), to_view(v))) return {};
  }
  if (rc != MDB_NOTFOUND) return impl_->error("mdb_cursor_get(\"" + std::string(table) + "\")", rc);
  return {};
}

status environment::check(const write_batch& batch) const {
  return impl_->check(batch);
}

std::size_t environment::key_bytes_max() const noexcept {
  return impl_->key_bytes_max;
}

status environment::apply(const std::vector<const write_batch*>& batches) {
  if (auto st = impl_->before_write(); !st) return st;
  return impl_->apply(batches, true);
}

void environment::write_behind(apply_thread* t) {
  impl_->wait_queued();
  impl_->behind = t ? t->impl_.get() : nullptr;
  impl_->owner = std::this_thread::get_id();
}

bool environment::writes_behind() const noexcept {
  return impl_->behind != nullptr;
}

status environment::apply_later(
    std::vector<write_batch> batches,
    const std::function<void(const std::vector<write_batch>&)>& accepted) {
  auto& i = *impl_;
  if (auto st = i.owner_only(); !st) return st;
  if (!i.behind) {
    std::vector<const write_batch*> ptrs;
    ptrs.reserve(batches.size());
    for (const auto& b : batches) ptrs.push_back(&b);
    auto st = i.apply(ptrs, true);
    if (st && accepted) accepted(batches);
    return st;
  }
  if (i.behind->failed_flag.load(std::memory_order_relaxed)) {
    std::lock_guard lk(i.behind->mutex);
    return i.behind->first_failure;
  }
  bool any = false;
  for (const auto& b : batches) {
    if (auto st = i.check(b); !st) return st;
    any = any || !b.empty();
  }
  if (!any) return {};
  if (accepted) accepted(batches);
  // Bound what waits: the owner never runs more than queued_behind_max
  // transactions ahead of the thread.
  if (const auto q = i.behind->queued_n.load(std::memory_order_relaxed); q > queued_behind_max)
    i.behind->wait(q - queued_behind_max);
  if (i.queued.size() >= forget_at) i.forget_applied();
  auto txn = std::make_unique<impl::queued_txn>();
  txn->batches = std::move(batches);
  // The apply thread only reads the batches, and this thread frees them
  // only once the thread has applied them.
  i.behind->push(&i, txn.get());
  i.queued.push_back(std::move(txn));
  return {};
}

status environment::apply_pipelined(const std::vector<const write_batch*>& batches,
                                    bool& earlier_durable) {
  if (auto st = impl_->before_write(); !st) return st;
  return impl_->apply(batches, false, &earlier_durable);
}

status environment::sync() {
  return impl_->sync();
}

result<std::vector<table_stats>> environment::stats() const {
  if (auto st = impl_->before_read(); !st) return st;
  // Every named table was opened at open() or by the writer; list names from
  // the main database, then stat all of them in one snapshot.
  std::vector<std::string> names;
  {
    impl::read_txn txn(*impl_);
    if (int rc = txn.begin()) return impl_->error("mdb_txn_begin(read)", rc);
    MDB_cursor* raw = nullptr;
    if (int rc = mdb_cursor_open(txn.get(), impl_->main_dbi, &raw)) {
      return impl_->error("mdb_cursor_open(main)", rc);
    }
    std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> cur(raw, mdb_cursor_close);
    MDB_val k, v;
    int rc = mdb_cursor_get(raw, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(raw, &k, &v, MDB_NEXT)) names.emplace_back(to_view(k));
    if (rc != MDB_NOTFOUND) return impl_->error("mdb_cursor_get(main)", rc);
  }
  std::vector<std::pair<std::string, MDB_dbi>> handles;
  for (auto& n : names) {
    auto d = impl_->find_dbi(n);
    if (!d) return d.error();
    if (d->has_value()) handles.emplace_back(std::move(n), **d);
  }
  impl::read_txn txn(*impl_);
  if (int rc = txn.begin()) return impl_->error("mdb_txn_begin(read)", rc);
  std::vector<table_stats> out;
  out.reserve(handles.size());
  for (auto& [n, d] : handles) {
    MDB_stat s;
    if (int rc = mdb_stat(txn.get(), d, &s)) return impl_->error("mdb_stat(\"" + n + "\")", rc);
    table_stats t;
    t.name = std::move(n);
    t.entries = s.ms_entries;
    t.bytes =
        std::uint64_t{s.ms_psize} * (s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages);
    out.push_back(std::move(t));
  }
  return out;
}

status environment::copy_to(const std::string& dir) const {
  if (auto st = impl_->before_read(); !st) return st;
  // mdb_env_copy2 runs its own read transaction through the map: hold the gate
  // so the writer does not resize meanwhile (it waits for the copy to end).
  impl_->gate.enter_shared();
  int rc = mdb_env_copy2(impl_->env.get(), dir.c_str(), MDB_CP_COMPACT);
  impl_->gate.exit_shared();
  if (rc) return impl_->error("mdb_env_copy2(\"" + dir + "\")", rc);
  return {};
}

}  // namespace gearmesh::store
