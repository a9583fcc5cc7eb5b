// Durable commits per second through a group_commit_writer: group commit
// (many batches per transaction and sync) versus one sync per commit
// (batches_per_txn_max = 1), measured in the same run on the same disk.
//
//   bench_store [--dir DIR] [--seconds S] [--threads N] [--window W]
//
// DIR must be on a real disk (not tmpfs) for fsync to mean anything; by
// default a fresh directory under the current directory is used and removed.
// Each submitter keeps at most W batches in flight (an actor waiting for its
// commits), so the run ends within S seconds plus the drain of N*W batches.
#include <stdlib.h>
#include <sys/statfs.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/store/store.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
namespace store = gearmesh::store;

constexpr long tmpfs_magic = 0x01021994;

struct config {
  std::string dir;  // parent of the per-mode store directories
  double seconds = 2.0;
  int threads = 8;
  int window = 64;
};

struct outcome {
  std::string mode;
  std::uint64_t commits = 0;
  double seconds = 0;
  std::uint64_t transactions = 0;
  std::uint64_t failures = 0;
  bool ok = true;
};

/// Counts a submitter's batches in flight; waits while `window` are.
class in_flight {
 public:
  explicit in_flight(int window) : window_(window) {}
  void acquire() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return n_ < window_; });
    ++n_;
  }
  void release() {
    std::lock_guard lk(m_);
    --n_;
    cv_.notify_all();
  }
  void wait_idle() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return n_ == 0; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_ = 0;
  int window_;
};

outcome run_mode(const config& cfg, const std::string& mode, std::size_t batches_per_txn_max) {
  outcome out;
  out.mode = mode;
  std::string path = cfg.dir + "/" + mode;
  std::filesystem::remove_all(path);
  store::options opts;
  opts.path = path;
  opts.sync = true;
  auto env = store::environment::open(opts);
  if (!env) {
    std::fprintf(stderr, "%s\n", env.error().to_string().c_str());
    out.ok = false;
    return out;
  }
  const std::string value(100, 'v');
  std::atomic<std::uint64_t> committed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> next_key{0};
  {
    store::group_commit_writer::options wopts;
    wopts.batches_per_txn_max = batches_per_txn_max;
    store::group_commit_writer writer(**env, wopts);
    const auto start = clock_type::now();
    const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(
                                      std::chrono::duration<double>(cfg.seconds));
    std::vector<std::thread> submitters;
    for (int t = 0; t < cfg.threads; ++t) {
      submitters.emplace_back([&] {
        in_flight flight(cfg.window);
        while (clock_type::now() < deadline) {
          flight.acquire();
          store::write_batch b;
          b.put("bench", store::key_u64(next_key.fetch_add(1)), value);
          writer.submit(std::move(b), [&](const gearmesh::status& st) {
            if (st) {
              committed.fetch_add(1, std::memory_order_relaxed);
            } else {
              failed.fetch_add(1, std::memory_order_relaxed);
            }
            flight.release();
          });
        }
        flight.wait_idle();
      });
    }
    for (auto& s : submitters) s.join();
    out.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    writer.stop();
    out.transactions = writer.stats().transactions;
    out.failures = writer.stats().failures;
  }
  out.commits = committed.load();
  if (failed.load() != 0) {
    std::fprintf(stderr, "%s: %llu commits failed\n", mode.c_str(),
                 static_cast<unsigned long long>(failed.load()));
    out.ok = false;
  }
  env->reset();
  std::filesystem::remove_all(path);
  return out;
}

bool parse(int argc, char** argv, config& cfg) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--dir" && (v = value())) {
      cfg.dir = v;
    } else if (arg == "--seconds" && (v = value())) {
      cfg.seconds = std::atof(v);
    } else if (arg == "--threads" && (v = value())) {
      cfg.threads = std::atoi(v);
    } else if (arg == "--window" && (v = value())) {
      cfg.window = std::atoi(v);
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--seconds S] [--threads N] [--window W]\n",
                   argv[0]);
      return false;
    }
  }
  // Bounds: keep a run short and the in-flight set small.
  if (cfg.seconds <= 0 || cfg.seconds > 60 || cfg.threads < 1 || cfg.threads > 256 ||
      cfg.window < 1 || cfg.window > 4096) {
    std::fprintf(stderr, "out of range: seconds (0,60], threads [1,256], window [1,4096]\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse(argc, argv, cfg)) return 2;
  bool own_dir = cfg.dir.empty();
  if (own_dir) {
    std::string tmpl = (std::filesystem::current_path() / "bench-store-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      return 1;
    }
    cfg.dir = tmpl;
  } else {
    std::filesystem::create_directories(cfg.dir);
  }
  struct statfs fs;
  if (statfs(cfg.dir.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == tmpfs_magic) {
    std::fprintf(stderr, "warning: %s is on tmpfs; fsync costs nothing there\n", cfg.dir.c_str());
  }
  std::printf(
      "durable commits (sync = true), %d submitter threads, one 100-byte put per batch, "
      "%d in flight per thread, %.1f s per mode, dir %s\n\n",
      cfg.threads, cfg.window, cfg.seconds, cfg.dir.c_str());

  std::vector<outcome> results;
  results.push_back(run_mode(cfg, "one_sync_per_commit", 1));
  results.push_back(
      run_mode(cfg, "group_commit", store::group_commit_writer::options{}.batches_per_txn_max));
  if (own_dir) std::filesystem::remove_all(cfg.dir);

  std::printf("%-22s %12s %9s %12s %10s %14s\n", "mode", "commits", "seconds", "commits/s", "txns",
              "batches/txn");
  for (const auto& r : results) {
    double per_txn = r.transactions ? static_cast<double>(r.commits) / r.transactions : 0;
    std::printf("%-22s %12llu %9.2f %12.0f %10llu %14.1f\n", r.mode.c_str(),
                static_cast<unsigned long long>(r.commits), r.seconds, r.commits / r.seconds,
                static_cast<unsigned long long>(r.transactions), per_txn);
  }
  for (const auto& r : results) {
    if (!r.ok || r.commits == 0) {
      std::fprintf(stderr, "a mode failed; no ratio\n");
      return 1;
    }
  }
  double ratio =
      (results[1].commits / results[1].seconds) / (results[0].commits / results[0].seconds);
  std::printf("ratio group_commit/one_sync_per_commit: %.1fx\n", ratio);
  return 0;
}
