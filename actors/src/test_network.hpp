// Test support for the actors library: an in-process network that carries
// the real encoded frames from a node's durable commit to the receiving
// node's routed actor, and a test node_context (real LMDB store, sync off,
// real group-commit writer, an offset clock). Include from *.test.cpp only.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "caf_messages.hpp"
#include "gearmesh/actors/calendar.hpp"
#include "gearmesh/actors/records.hpp"
#include "gearmesh/node/context.hpp"
#include "gearmesh/store/store.hpp"
#include "gearmesh/wire/codec.hpp"

namespace gearmesh::actors::testing {

class test_network {
 public:
  void route(const std::string& node, std::initializer_list<wire::message_type> types,
             const caf::actor& a) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto t : types) routes_[{node, t}] = a;
  }

  /// Holds back messages of `type` from `sender` for `delay` (a slow link).
  void delay(const std::string& sender, wire::message_type type, std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    delays_[{sender, type}] = d;
  }

  /// Decodes `frame` as the receiver would and hands it to the routed actor.
  void deliver(const wire::bytes& frame) {
    auto env = wire::decode(frame);
    ASSERT_TRUE(env.has_value()) << env.error().to_string();
    caf::actor dest;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = routes_.find({env->header.receiver, wire::type_of(env->payload)});
      if (it == routes_.end()) {
        ++dropped_;
        return;
      }
      dest = it->second;
      ++delivered_;
      auto d = delays_.find({env->header.sender, wire::type_of(env->payload)});
      if (d != delays_.end()) {
        caf::delayed_anon_send(dest, d->second, inbound_atom::value, std::move(*env));
        return;
      }
    }
    caf::anon_send(dest, inbound_atom::value, std::move(*env));
  }

  std::uint64_t dropped() const { return dropped_; }

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, wire::message_type>, caf::actor> routes_;
  std::map<std::pair<std::string, wire::message_type>, std::chrono::milliseconds> delays_;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

/// The system clock shifted by a fixed offset: a partner whose clock is off.
class offset_clock final : public gearmesh::clock {
 public:
  explicit offset_clock(timestamp_us offset) : offset_(offset) {}
  timestamp_us now() const override { return system_clock().now() + offset_; }

 private:
  timestamp_us offset_;
};

class test_node final : public node_context {
 public:
  test_node(std::string id, const std::string& dir, test_network& net, timestamp_us offset = 0)
      : id_(std::move(id)), net_(net), clock_(offset) {
    store::options opts;
    opts.path = dir;
    opts.sync = false;
    auto env = store::environment::open(opts);
    EXPECT_TRUE(env.has_value()) << env.error().to_string();
    env_ = std::move(*env);
    writer_ = std::make_unique<store::group_commit_writer>(*env_);
  }
  ~test_node() override { stop(); }

  const std::string& node_id() const override { return id_; }
  const gearmesh::clock& clock() const override { return clock_; }
  const store::environment& store() const override { return *env_; }

  void commit(effects fx) override {
    std::vector<wire::bytes> frames;
    for (auto& m : fx.messages) {
      wire::envelope env;
      env.header.message_id = next_message_id_++;
      env.header.sender = id_;
      env.header.receiver = m.receiver;
      env.header.conversation_id = m.conversation_id;
      env.header.causation_id = m.causation_id;
      env.header.timestamp_us = clock_.now();
      env.payload = std::move(m.payload);
      frames.push_back(wire::encode(env));
    }
    if (fx.cause)
      fx.writes.put("inbox", fx.cause->sender + "/" + store::key_u64(fx.cause->message_id), "");
    writer_->submit(std::move(fx.writes), [this, frames = std::move(frames),
                                           done = std::move(fx.on_durable)](const status& st) {
      if (st) {
        for (const auto& f : frames) net_.deliver(f);
      }
      if (done) done(st);
    });
  }

  void stop() {
    if (writer_) writer_->stop();
  }

 private:
  std::string id_;
  test_network& net_;
  offset_clock clock_;
  std::unique_ptr<store::environment> env_;
  std::unique_ptr<store::group_commit_writer> writer_;
  std::atomic<std::uint64_t> next_message_id_{1};
};

/// Polls `pred` every 10 ms for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

/// Every committed record of `t`, by key (a read error fails the test).
template <class T>
std::map<std::string, T> all(const store::environment& env, const store::table<T>& t) {
  std::map<std::string, T> out;
  auto st = t.for_each(env, [&](std::string_view k, T&& v) {
    out.emplace(std::string(k), std::move(v));
    return true;
  });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

/// The holds `env` keeps at `now`: its records in "holds" and the live
/// holds its held offers carry (records.hpp).
inline std::vector<reservation_record> kept_holds(const store::environment& env, timestamp_us now) {
  std::vector<reservation_record> out;
  for (auto& [k, h] : all(env, tables::holds)) out.push_back(std::move(h));
  for (const auto& [k, o] : all(env, tables::offers))
    for (auto& h : carried_holds(o, now)) out.push_back(std::move(h));
  return out;
}

}  // namespace gearmesh::actors::testing
