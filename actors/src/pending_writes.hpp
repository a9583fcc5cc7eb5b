// Read-your-writes for an actor whose commits are still in flight.
//
// An actor submits a commit and goes on with its next message before the
// commit is durable; a later read of the store would not yet see it. The actor
// records every batch it commits here under a per-actor sequence number, reads
// through this overlay first, and forgets entries once their commit completed
// (commits complete in submission order, so "every seq <= n" is one number).
// Pure; owned by one actor.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "gearmesh/store/store.hpp"

namespace gearmesh::actors {

class pending_writes {
 public:
  /// Records all ops of `b`, committed as number `seq` (increasing).
  void record(const store::write_batch& b, std::uint64_t seq) {
    for (const auto& op : b.ops()) {
      auto [it, added] = entries_.try_emplace({op.table, op.key});
      auto& e = it->second;
      e.value =
          op.op == store::write_op::kind::put ? std::optional<std::string>(op.value) : std::nullopt;
      if (!added && e.seq == seq) continue;  // the same key twice in one batch: listed once
      e.seq = seq;
      by_seq_.emplace_back(seq, it);
    }
  }

  /// Forgets the entries of commits <= seq (now visible in the store): pops
  /// them off the front of by_seq_, so the cost is what became durable, not
  /// what is still pending. An entry a later commit wrote again stays.
  void durable(std::uint64_t seq) {
    while (!by_seq_.empty() && by_seq_.front().first <= seq) {
      auto [s, it] = by_seq_.front();
      by_seq_.pop_front();
      if (it->second.seq == s) entries_.erase(it);
    }
  }

  /// Reads `key` of `t`: the pending value if any, else the store's.
  template <class T>
  result<std::optional<T>> get(const store::environment& env, const store::table<T>& t,
                               std::string_view key) const {
    if (entries_.empty()) return t.get(env, key);
    auto it = entries_.find({std::string(t.name()), std::string(key)});
    if (it == entries_.end()) return t.get(env, key);
    if (!it->second.value) return std::optional<T>{};
    auto v = store::codec<T>::decode(*it->second.value);
    if (!v) return v.error();
    return std::optional<T>{std::move(*v)};
  }

  std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct entry {
    std::uint64_t seq = 0;
    std::optional<std::string> value;  // nullopt = erased
  };
  using map = std::map<std::pair<std::string, std::string>, entry>;
  map entries_;
  /// (seq, entry) for every op recorded, in seq order. Each entry's latest
  /// op is here once with its current seq; older ops of it are skipped.
  std::deque<std::pair<std::uint64_t, map::iterator>> by_seq_;
};

}  // namespace gearmesh::actors
