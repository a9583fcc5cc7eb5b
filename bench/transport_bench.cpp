// Envelope throughput node -> node against raw ZeroMQ, measured in one run.
//
//   raw_zmq            a DEALER sends N 256-byte frames to a ROUTER (own
//                      contexts, like two processes); a thread receives them.
//   gearmesh_envelope  node A's zmq_transport sends N encoded Cfp envelopes of
//                      256 bytes to node B's zmq_transport; B's receive_fn
//                      verifies and decodes every frame. Encoding happens in
//                      the sending loop, as an actor would do it.
//   gearmesh_envelope_curve
//                      the same, with zmq_options::curve set on both nodes and
//                      each other's public key as peer key: CurveZMQ
//                      encryption on the link, ZAP admission, and the sender's
//                      key looked up per inbound frame.
//
// Rates are taken at the receiver. DESIGN.md target: gearmesh_envelope/raw_zmq
// >= 0.5. The cost of CURVE is reported as gearmesh_envelope_curve/
// gearmesh_envelope. Never asserts on time; absolute numbers on a shared
// machine are noise.
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gearmesh/transport/zmq_transport.hpp"
#include "gearmesh/wire/codec.hpp"

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t frame_bytes = 256;
/// Frames not yet received that the gearmesh sender allows itself, so the
/// transport does not have to drop (the bench has no outbox to retry from).
/// libzmq returns pipe credit in batches of half the HWM, hence a window below
/// half of the default send_hwm (10000).
constexpr std::uint64_t window_frames = 4000;

struct run_result {
  std::uint64_t messages = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
};

// ------------------------------------------------------------------ raw zmq

run_result run_raw_zmq(std::uint64_t n, std::chrono::seconds time_max) {
  void* rx_ctx = zmq_ctx_new();
  void* tx_ctx = zmq_ctx_new();
  void* router = zmq_socket(rx_ctx, ZMQ_ROUTER);
  const int zero = 0;
  zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_bind(router, "tcp://127.0.0.1:*") != 0) {
    std::fprintf(stderr, "raw bind: %s\n", zmq_strerror(zmq_errno()));
    std::exit(1);
  }
  char endpoint[256];
  std::size_t endpoint_len = sizeof endpoint;
  zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len);

  void* dealer = zmq_socket(tx_ctx, ZMQ_DEALER);
  zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "sender", 6);
  // Same per-peer HWM as the transport's default, so both pipelines buffer alike.
  const int hwm = gearmesh::transport::zmq_options{}.send_hwm;
  zmq_setsockopt(dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_connect(dealer, endpoint);

  // Warm-up: one frame through, so the connection exists before timing.
  std::vector<std::uint8_t> payload(frame_bytes, 0x5a);
  zmq_send(dealer, payload.data(), payload.size(), 0);
  zmq_msg_t msg;
  zmq_msg_init(&msg);
  zmq_msg_recv(&msg, router, 0);
  zmq_msg_recv(&msg, router, 0);

  std::atomic<bool> stop_sending{false};
  std::atomic<std::uint64_t> sent{0};
  run_result r;
  const auto t0 = steady::now();
  std::thread receiver([&] {
    const int timeout_ms = 100;
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    const auto deadline = t0 + time_max;
    std::uint64_t got = 0;
    while (got < n) {
      if (zmq_msg_recv(&msg, router, 0) < 0) {  // timeout: check the clock
        if (steady::now() > deadline + 1s) break;
        continue;
      }
      zmq_msg_recv(&msg, router, 0);
      ++got;
      if ((got & 0xffff) == 0 && steady::now() > deadline) stop_sending = true;
      if (stop_sending && got >= sent.load()) break;
    }
    r.messages = got;
    r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  });
  for (std::uint64_t i = 0; i < n && !stop_sending.load(std::memory_order_relaxed); ++i) {
    zmq_send(dealer, payload.data(), payload.size(), 0);  // blocks at HWM
    sent.fetch_add(1, std::memory_order_relaxed);
  }
  receiver.join();
  zmq_msg_close(&msg);
  zmq_close(dealer);
  zmq_close(router);
  zmq_ctx_term(tx_ctx);
  zmq_ctx_term(rx_ctx);
  return r;
}

// ----------------------------------------------------------------- gearmesh

/// A realistic Cfp envelope whose frame is exactly `bytes` long if possible
/// (else the closest size from below). FlatBuffers pads the buffer to 8 bytes
/// and an attribute costs ~48 bytes of tables and offsets, so the search
/// varies the attribute count, the order id and the item name.
gearmesh::wire::envelope padded_cfp(std::size_t bytes) {
  gearmesh::wire::envelope best;
  std::size_t best_size = 0;
  for (std::size_t attributes = 2; attributes-- > 0;) {
    for (std::size_t digits = 1; digits <= 16; ++digits) {
      for (std::size_t pad = 0; pad <= 32; ++pad) {
        const std::string order_id = "velo/order/" + std::string(digits, '7');
        gearmesh::wire::envelope env;
        env.header.sender = "velo";
        env.header.receiver = "framecraft";
        env.header.conversation_id = order_id;
        env.header.message_id = 1;
        env.header.timestamp_us = 1'767'225'600'000'000;
        gearmesh::wire::cfp c{order_id,
                              "FRAME-" + std::string(pad, 'X'),
                              250,
                              1'767'225'600'000'000,
                              1'767'830'400'000'000,
                              1'250'000,
                              1'767'226'000'000'000,
                              "EUR",
                              {}};
        if (attributes == 1) c.attributes = {{"colour", "teal"}};
        env.payload = std::move(c);
        const std::size_t size = gearmesh::wire::encode(env).size();
        if (size > bytes) break;
        if (size > best_size) {
          best = env;
          best_size = size;
        }
        if (size == bytes) return best;
      }
    }
  }
  return best;
}

struct gearmesh_result {
  run_result run;
  std::size_t frame_size = 0;
  gearmesh::transport::transport_stats sender_stats;
  gearmesh::transport::transport_stats receiver_stats;
  std::uint64_t decode_failures = 0;
};

/// A fresh CURVE keypair (Z85).
gearmesh::transport::curve_keys new_keys() {
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    std::fprintf(stderr, "zmq_curve_keypair: %s\n", zmq_strerror(zmq_errno()));
    std::exit(1);
  }
  return {pub, sec};
}

gearmesh_result run_gearmesh(std::uint64_t n, std::chrono::seconds time_max, bool curve) {
  using namespace gearmesh;
  gearmesh_result out;
  gearmesh::wire::envelope env = padded_cfp(frame_bytes);
  out.frame_size = wire::encode(env).size();

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> failures{0};
  transport::zmq_options ob{"framecraft", "tcp://127.0.0.1:*"};
  transport::zmq_options oa{"velo", "tcp://127.0.0.1:*"};
  if (curve) {
    ob.curve = new_keys();
    oa.curve = new_keys();
  }
  auto b = transport::make_zmq_transport(ob);
  b->on_receive([&](const std::string& from, std::span<const std::uint8_t> frame) {
    auto decoded = wire::decode(frame);
    if (!decoded || decoded->header.sender != from)
      failures.fetch_add(1, std::memory_order_relaxed);
    received.fetch_add(1, std::memory_order_release);
  });
  auto a = transport::make_zmq_transport(oa);
  if (status s = b->start(); !s) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    std::exit(1);
  }
  if (status s = a->start(); !s) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    std::exit(1);
  }
  // B admits A's key before A connects (a refused handshake is not retried).
  if (curve) b->add_peer({"velo", a->listen_endpoint(), oa.curve->public_key});
  const std::string b_key = curve ? ob.curve->public_key : std::string{};
  for (int i = 0; curve && i < 5000 && b->stats().dropped_unknown_peer == 0; ++i) {
    b->send("nobody", {});  // counted once B's I/O thread ran the add_peer before it
    std::this_thread::sleep_for(1ms);
  }
  a->add_peer({"framecraft", b->listen_endpoint(), b_key});

  // Warm-up: one frame through before timing.
  a->send("framecraft", wire::encode(env));
  for (int i = 0; i < 5000 && received.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  const std::uint64_t base = received.load();

  const auto t0 = steady::now();
  const auto deadline = t0 + time_max;
  std::uint64_t sent = 0;
  for (; sent < n; ++sent) {
    // Flow control stands in for the node's outbox: stay within the window.
    while (sent - (received.load(std::memory_order_acquire) - base) >= window_frames) {
      std::this_thread::yield();
    }
    if ((sent & 0x3fff) == 0 && steady::now() > deadline) break;
    env.header.message_id = sent + 2;
    a->send("framecraft", wire::encode(env));
  }
  const auto drain_deadline = steady::now() + 2s;
  while (received.load() - base + a->stats().dropped_queue_full < sent &&
         steady::now() < drain_deadline) {
    std::this_thread::yield();
  }
  out.run.messages = received.load() - base;
  out.run.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  out.sender_stats = a->stats();
  out.receiver_stats = b->stats();
  out.decode_failures = failures.load();
  a->stop();
  b->stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const auto time_max = std::chrono::seconds(argc > 2 ? std::atoi(argv[2]) : 3);

  // Modes alternate over `rounds`; the best rate of each is compared, which
  // damps noise from other work on a shared machine.
  const int rounds = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
  std::printf("%-24s %5s %12s %10s %14s\n", "mode", "round", "messages", "seconds", "msgs/s");
  run_result raw;
  gearmesh_result gm;
  gearmesh_result gm_curve;
  const auto print = [](const char* mode, int round, const gearmesh_result& g) {
    std::printf("%-24s %5d %12llu %10.3f %14.0f   (%zu-byte envelope frames, verified+decoded)\n",
                mode, round, static_cast<unsigned long long>(g.run.messages), g.run.seconds,
                g.run.rate(), g.frame_size);
    std::printf(
        "  drops: queue_full=%llu unknown_peer=%llu oversized=%llu malformed=%llu "
        "decode_failures=%llu auth_denied=%llu\n",
        static_cast<unsigned long long>(g.sender_stats.dropped_queue_full),
        static_cast<unsigned long long>(g.sender_stats.dropped_unknown_peer),
        static_cast<unsigned long long>(g.receiver_stats.dropped_oversized),
        static_cast<unsigned long long>(g.receiver_stats.dropped_malformed),
        static_cast<unsigned long long>(g.decode_failures),
        static_cast<unsigned long long>(g.receiver_stats.auth_denied));
  };
  for (int round = 1; round <= rounds; ++round) {
    const run_result r = run_raw_zmq(n, time_max);
    std::printf("%-24s %5d %12llu %10.3f %14.0f   (%zu-byte frames)\n", "raw_zmq", round,
                static_cast<unsigned long long>(r.messages), r.seconds, r.rate(), frame_bytes);
    if (r.rate() > raw.rate()) raw = r;
    const gearmesh_result g = run_gearmesh(n, time_max, false);
    print("gearmesh_envelope", round, g);
    if (g.run.rate() > gm.run.rate()) gm = g;
    const gearmesh_result c = run_gearmesh(n, time_max, true);
    print("gearmesh_envelope_curve", round, c);
    if (c.run.rate() > gm_curve.run.rate()) gm_curve = c;
  }
  std::printf(
      "best: raw_zmq %.0f msgs/s, gearmesh_envelope %.0f msgs/s, gearmesh_envelope_curve %.0f "
      "msgs/s\n",
      raw.rate(), gm.run.rate(), gm_curve.run.rate());
  const double ratio = raw.rate() > 0 ? gm.run.rate() / raw.rate() : 0;
  std::printf("ratio gearmesh_envelope/raw_zmq: %.2f\n", ratio);
  const double curve_ratio = gm.run.rate() > 0 ? gm_curve.run.rate() / gm.run.rate() : 0;
  std::printf("ratio gearmesh_envelope_curve/gearmesh_envelope: %.2f\n", curve_ratio);
  return 0;
}
