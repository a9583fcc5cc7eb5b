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
      auto& e = entries_[{op.table, op.key}];
      e.seq = seq;
      e.value =
          op.op == store::write_op::kind::put ? std::optional<std::string>(op.value) : std::nullopt;
    }
  }

  /// Forgets the entries of commits <= seq (now visible in the store).
  void durable(std::uint64_t seq) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.seq <= seq)
        it = entries_.erase(it);
      else
        ++it;
    }
  }

  /// Reads `key` of `t`: the pending value if any, else the store's.
  template <class T>
  result<std::optional<T>> get(const store::environment& env, const store::table<T>& t,
                               std::string_view key) const {
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
  std::map<std::pair<std::string, std::string>, entry> entries_;
};

}  // namespace gearmesh::actors
