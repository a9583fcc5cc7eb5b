// ZeroMQ transport (see zmq_transport.hpp).
//
// Threading: one I/O thread owns every socket. Other threads only touch the
// command queue (under `mutex_`), the eventfd and the atomic counters. The
// I/O thread takes the whole queue at once (a vector swap) and keeps working
// without sleeping while commands or inbound messages are waiting; a producer
// writes the eventfd only when it finds the thread asleep in zmq_poll. A burst
// of sends therefore costs one wake-up and one lock round trip on its side.
//
// CURVE (zmq_options::curve): the ZAP handler is a REP socket on
// inproc://zeromq.zap.01 in this transport's own context, bound before the
// ROUTER and served by the I/O thread from the same poll loop. It answers 200
// with User-Id = the client's key (Z85) for a key that belongs to an added
// peer, 400 for anything else, so an unknown key never completes the
// handshake. The allowlist is the I/O thread's own map (filled by add_peer
// commands). Every inbound frame's key is looked up in it again, so `from` is
// the key's current owner and a frame from a key revoked since the handshake
// is dropped.
//
// Revocation (remove_peer, or add_peer with a new key): libzmq has no way to
// close one accepted connection of a ROUTER, but zmq_unbind of the listening
// endpoint closes the connections it accepted (libzmq 4.3.4: the listener
// owns their sessions; they close once this thread processes the ROUTER's
// commands, i.e. within its next poll). The I/O thread therefore unbinds the
// resolved endpoint and binds the same one again: every peer's DEALER
// reconnects (reconnect_ivl_ms) and passes ZAP again; the revoked key fails.
// Frames in flight on the other peers' connections may be lost; the node's
// outbox retries them. The old listener closes asynchronously, so the first
// bind usually fails with EADDRINUSE: retried with backoff from 1 ms to
// rebind_retry_ms_max, forever (the node must not stay deaf). A port taken by
// someone else meanwhile is counted once per revocation (listen_rebind_late).
//
// Self-healing outbound links (CURVE only): libzmq 4.3.4 ends a session for
// good on a protocol error (session_base_t::engine_error), and a handshake the
// server's ZAP handler refused is one: that DEALER never reconnects, even once
// the server admits our key (onboarding in the "wrong" order, or re-admission
// after a revocation). Each CURVE DEALER therefore has a socket monitor (an
// inproc PAIR, "inproc://gearmesh-mon-<n>" in this transport's context, read
// by the I/O thread from its poll loop). Observed on 4.3.4, client side:
//   - ZAP refusal: HANDSHAKE_FAILED_AUTH (value = ZAP status, e.g. 400), then
//     DISCONNECTED, and nothing more: no CONNECT_RETRIED, the link is dead.
//   - Server key not the pinned one, or a non-CURVE server: the server drops
//     the connection; the client sees HANDSHAKE_FAILED_NO_DETAIL (EPIPE),
//     DISCONNECTED and CONNECT_RETRIED: libzmq retries by itself, so
//     NO_DETAIL is not watched (re-creating would only lose queued frames).
//   - HANDSHAKE_FAILED_PROTOCOL: always a protocol error, hence a dead
//     session, like AUTH (not produced by the cases above, but by a peer that
//     breaks the CURVE or ZMTP rules).
// After AUTH or PROTOCOL the I/O thread closes that DEALER and opens a new one
// (same options, endpoint and keys) after relink_retry_ms, which starts at
// relink_retry_ms_min, doubles up to relink_retry_ms_max while the handshakes
// keep failing and goes back to the minimum after HANDSHAKE_SUCCEEDED. The
// wait is the zmq_poll timeout (no timer thread). The dead DEALER still
// accepts frames (counted in frames_sent) until it is replaced; they are lost
// with it, as are those queued before the refusal. The node's outbox re-sends
// them.
// Plain TCP needs none of this: a plain DEALER reconnects on its own.
// Monitors are read only when zmq_poll reports them, or every
// monitor_sweep_interval while the thread never gets to sleep, so a busy
// thread still notices a refusal. The PAIR's receive side has no HWM: libzmq
// writes events with a blocking send from its own I/O thread, which must
// never wait for us.
//
// Bundles (zmq_options::bundle, docs/protocol.md section 2): the I/O thread
// gathers the sends of one command batch per peer, in order, and sends each
// peer's frames in as few messages as the bundle limits allow (one frame
// alone travels as itself). A bundle is one ZeroMQ message and one CurveZMQ
// box for many frames: under load the frames of a group commit leave
// together. Inbound bundles are verified whole, then each frame is handed to
// receive_fn as if it had come alone; a malformed one counts once in
// dropped_malformed and delivers nothing.
//
// Sizes: libzmq's ZMQ_MAXMSGSIZE on the ROUTER is a hard cap at twice the
// largest message accepted (frame_bytes_max, or wire::bundle_bytes_max for a
// bundle if that is larger); a message above it makes libzmq drop the
// connection, which would hide the event from the counters. Messages between
// the limit and that cap are received, counted as dropped_oversized and
// discarded, so the link survives and the drop is visible; so are frames
// inside a bundle that are larger than frame_bytes_max.
#include "gearmesh/transport/zmq_transport.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include "gearmesh/string_hash.hpp"
#include "gearmesh/wire/bundle.hpp"

namespace gearmesh::transport {
namespace {

/// Reconnect backoff of the per-peer DEALERs.
constexpr int reconnect_ivl_ms = 100;
constexpr int reconnect_ivl_max_ms = 2000;
/// How long a closing DEALER may still try to flush queued frames.
constexpr int dealer_linger_ms = 100;
/// Inbound messages handled per poll round, so commands are not starved; a
/// bundle counts as the frames it carries.
constexpr std::uint64_t receive_batch_max = 4096;
/// libzmq's routing ids are 1..255 bytes.
constexpr std::size_t routing_id_bytes_max = 255;
/// Z85 text of a CURVE key.
constexpr std::size_t z85_key_chars = 40;
/// Re-binding the listen endpoint after a revocation: backoff bounds, and how
/// long it may take before it counts as late (the port was taken).
constexpr int rebind_retry_ms_min = 1;
constexpr int rebind_retry_ms_max = 1000;
constexpr auto rebind_late = std::chrono::milliseconds(100);
/// Re-creating a DEALER whose handshake failed for good (see the file comment).
constexpr int relink_retry_ms_min = 500;
constexpr int relink_retry_ms_max = 10'000;
/// Monitor events that matter; the others are not even sent.
constexpr int monitor_events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
/// How often a thread that never sleeps still reads its monitors.
constexpr auto monitor_sweep_interval = std::chrono::milliseconds(50);

using steady = std::chrono::steady_clock;

struct socket_closer {
  void operator()(void* s) const noexcept {
    if (s != nullptr) zmq_close(s);
  }
};
/// An owned ZeroMQ socket.
using socket_ptr = std::unique_ptr<void, socket_closer>;

struct context_closer {
  void operator()(void* c) const noexcept {
    if (c != nullptr) zmq_ctx_term(c);
  }
};
/// An owned ZeroMQ context; destruction blocks until its sockets are closed.
using context_ptr = std::unique_ptr<void, context_closer>;

/// A DEALER and the PAIR reading its socket monitor (CURVE only; null
/// otherwise). Closing stops the monitor first, then closes the PAIR, then the
/// DEALER, so libzmq never writes an event to a closed reader.
class monitored_dealer {
 public:
  monitored_dealer() = default;
  monitored_dealer(socket_ptr dealer, socket_ptr monitor)
      : dealer_(std::move(dealer)), monitor_(std::move(monitor)) {}
  monitored_dealer(monitored_dealer&&) noexcept = default;
  monitored_dealer& operator=(monitored_dealer&& o) noexcept {
    if (this != &o) {
      reset();
      dealer_ = std::move(o.dealer_);
      monitor_ = std::move(o.monitor_);
    }
    return *this;
  }
  monitored_dealer(const monitored_dealer&) = delete;
  monitored_dealer& operator=(const monitored_dealer&) = delete;
  ~monitored_dealer() { reset(); }

  void* dealer() const noexcept { return dealer_.get(); }
  void* monitor() const noexcept { return monitor_.get(); }

  void reset() noexcept {
    if (monitor_ && dealer_) zmq_socket_monitor(dealer_.get(), nullptr, 0);
    monitor_.reset();
    dealer_.reset();
  }

 private:
  socket_ptr dealer_;
  socket_ptr monitor_;
};

/// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string zmq_error(std::string_view what) {
  return std::string(what) + ": " + zmq_strerror(zmq_errno());
}

/// RAII holder of one zmq_msg_t, reused across receives.
class message {
 public:
  message() { zmq_msg_init(&msg_); }
  message(const message&) = delete;
  message& operator=(const message&) = delete;
  ~message() { zmq_msg_close(&msg_); }

  zmq_msg_t* get() noexcept { return &msg_; }
  const std::uint8_t* data() noexcept {
    return static_cast<const std::uint8_t*>(zmq_msg_data(&msg_));
  }
  std::size_t size() noexcept { return zmq_msg_size(&msg_); }
  bool more() noexcept { return zmq_msg_more(&msg_) != 0; }

 private:
  zmq_msg_t msg_;
};

/// Work handed from any thread to the I/O thread.
struct send_cmd {
  std::string peer_id;
  std::vector<std::uint8_t> frame;
};
struct add_peer_cmd {
  peer p;
};
struct remove_peer_cmd {
  std::string peer_id;
};
using command = std::variant<send_cmd, add_peer_cmd, remove_peer_cmd>;

class zmq_transport final : public transport {
 public:
  explicit zmq_transport(zmq_options opts)
      : opts_(std::move(opts)), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  ~zmq_transport() override { stop(); }

  zmq_transport(const zmq_transport&) = delete;
  zmq_transport& operator=(const zmq_transport&) = delete;

  void on_receive(receive_fn fn) override { receive_fn_ = std::move(fn); }

  status start() override {
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (state_.load() != state::created) {
      return {errc::invalid_argument,
              "transport " + opts_.node_id + ": start() after start() or stop()"};
    }
    if (opts_.node_id.empty() || opts_.node_id.size() > routing_id_bytes_max) {
      return {errc::invalid_argument,
              "transport: node_id must be 1.." + std::to_string(routing_id_bytes_max) + " bytes"};
    }
    if (wake_fd_.get() < 0) {
      return {errc::transport, std::string("eventfd: ") + std::strerror(errno)};
    }
    context_ptr ctx(zmq_ctx_new());
    if (!ctx) return {errc::transport, zmq_error("zmq_ctx_new")};
    zmq_ctx_set(ctx.get(), ZMQ_IO_THREADS, 1);

    socket_ptr zap;
    if (opts_.curve) {
      if (!zmq_has("curve"))
        return {errc::transport, "transport: this libzmq was built without CURVE support"};
      if (opts_.curve->public_key.size() != 40 || opts_.curve->secret_key.size() != 40)
        return {errc::invalid_argument, "transport: CURVE keys must be 40 Z85 characters"};
      // ZAP first: a CURVE server without a ZAP handler would admit anyone.
      zap.reset(zmq_socket(ctx.get(), ZMQ_REP));
      if (!zap || zmq_bind(zap.get(), "inproc://zeromq.zap.01") != 0)
        return {errc::transport, zmq_error("transport: ZAP handler bind")};
    }
    socket_ptr router;
    if (status s = make_router(ctx.get(), router); !s) return s;
    if (zmq_bind(router.get(), opts_.listen_endpoint.c_str()) != 0) {
      return {errc::transport,
              zmq_error("transport " + opts_.node_id + ": bind " + opts_.listen_endpoint)};
    }
    char endpoint[512];
    std::size_t endpoint_len = sizeof endpoint;
    if (zmq_getsockopt(router.get(), ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len) != 0) {
      return {errc::transport, zmq_error("ZMQ_LAST_ENDPOINT")};
    }
    bound_endpoint_.assign(endpoint, strnlen(endpoint, endpoint_len));
    {
      std::lock_guard lock(endpoint_mutex_);
      resolved_endpoint_ = bound_endpoint_;
    }

    ctx_ = std::move(ctx);
    zap_ = std::move(zap);
    router_ = std::move(router);
    state_.store(state::running);
    // Thread creation is a full barrier: the sockets migrate to the I/O thread.
    io_thread_ = std::thread([this] { run(); });
    return status::ok();
  }

  void stop() override {
    std::lock_guard lifecycle(lifecycle_mutex_);
    const state previous = state_.exchange(state::stopped);
    if (previous != state::running) return;
    wake();
    if (io_thread_.joinable()) io_thread_.join();
    // The I/O thread closed every socket; this returns once linger expires.
    ctx_.reset();
  }

  void add_peer(const peer& p) override { push(add_peer_cmd{p}); }

  void remove_peer(const std::string& peer_id) override { push(remove_peer_cmd{peer_id}); }

  void send(const std::string& peer_id, std::vector<std::uint8_t> frame) override {
    if (state_.load(std::memory_order_relaxed) == state::stopped) {
      dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (queue_.size() >= opts_.send_queue_max) {
        dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_.emplace_back(send_cmd{peer_id, std::move(frame)});
    }
    wake_if_sleeping();
  }

  transport_stats stats() const override {
    transport_stats s;
    s.frames_sent = frames_sent_.load(std::memory_order_relaxed);
    s.frames_received = frames_received_.load(std::memory_order_relaxed);
    s.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
    s.bytes_received = bytes_received_.load(std::memory_order_relaxed);
    s.dropped_unknown_peer = dropped_unknown_peer_.load(std::memory_order_relaxed);
    s.dropped_queue_full = dropped_queue_full_.load(std::memory_order_relaxed);
    s.dropped_oversized = dropped_oversized_.load(std::memory_order_relaxed);
    s.dropped_malformed = dropped_malformed_.load(std::memory_order_relaxed);
    s.auth_denied = auth_denied_.load(std::memory_order_relaxed);
    s.peers_removed = peers_removed_.load(std::memory_order_relaxed);
    s.listen_rebind_late = listen_rebind_late_.load(std::memory_order_relaxed);
    s.handshakes_refused = handshakes_refused_.load(std::memory_order_relaxed);
    s.handshakes_protocol_error = handshakes_protocol_error_.load(std::memory_order_relaxed);
    s.links_recreated = links_recreated_.load(std::memory_order_relaxed);
    s.bundles_sent = bundles_sent_.load(std::memory_order_relaxed);
    s.bundles_received = bundles_received_.load(std::memory_order_relaxed);
    return s;
  }

  std::string listen_endpoint() const override {
    std::lock_guard lock(endpoint_mutex_);
    return resolved_endpoint_;
  }

 private:
  enum class state : std::uint8_t { created, running, stopped };

  /// Outbound state of one peer; only the I/O thread touches it.
  struct peer_link {
    std::string endpoint;
    std::string public_key;
    monitored_dealer out;
    /// The wait before the next re-creation of `out` (see the file comment).
    int relink_retry_ms = relink_retry_ms_min;
    bool relink_pending = false;  // `out` is dead: re-create it at relink_at
    steady::time_point relink_at;
    /// Frames of the command batch being run, for flush_pending (views of
    /// the batch's send commands).
    std::vector<std::span<const std::uint8_t>> pending;
  };

  /// A ROUTER with this transport's options (CURVE server, size cap, ...), not bound.
  status make_router(void* ctx, socket_ptr& out) const {
    socket_ptr router(zmq_socket(ctx, ZMQ_ROUTER));
    if (!router) return {errc::transport, zmq_error("zmq_socket(ROUTER)")};
    if (opts_.curve) {
      const int server = 1;
      const char* domain = "gearmesh";
      if (zmq_setsockopt(router.get(), ZMQ_CURVE_SERVER, &server, sizeof server) != 0 ||
          zmq_setsockopt(router.get(), ZMQ_CURVE_SECRETKEY, opts_.curve->secret_key.c_str(),
                         z85_key_chars) != 0 ||
          zmq_setsockopt(router.get(), ZMQ_ZAP_DOMAIN, domain, std::strlen(domain)) != 0) {
        return {errc::transport, zmq_error("ROUTER CURVE setsockopt")};
      }
    }
    const std::int64_t msg_bytes_max = static_cast<std::int64_t>(inbound_bundle_bytes_max_) * 2;
    const int zero = 0;
    const int one = 1;
    if (zmq_setsockopt(router.get(), ZMQ_MAXMSGSIZE, &msg_bytes_max, sizeof msg_bytes_max) != 0 ||
        zmq_setsockopt(router.get(), ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(router.get(), ZMQ_ROUTER_HANDOVER, &one, sizeof one) != 0) {
      return {errc::transport, zmq_error("ROUTER setsockopt")};
    }
    out = std::move(router);
    return status::ok();
  }

  void push(command c) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(c));
    }
    wake_if_sleeping();
  }

  /// Called after pushing to queue_. Only the producer that finds the I/O
  /// thread asleep (or about to be) pays for the eventfd write; while the
  /// thread is busy, pushes cost a lock and nothing else.
  void wake_if_sleeping() noexcept {
    if (sleeping_.load() && sleeping_.exchange(false)) wake();
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the I/O thread is awake anyway.
    [[maybe_unused]] const auto n = ::write(wake_fd_.get(), &one, sizeof one);
  }

  // ------------------------------------------------------------ I/O thread

  void run() {
    pthread_setname_np(pthread_self(), "gearmesh-io");  // visible in top/perf
    // Router, eventfd, ZAP handler (CURVE), then one monitor per DEALER (CURVE).
    std::vector<zmq_pollitem_t> items = {
        {router_.get(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_fd_.get(), ZMQ_POLLIN, 0},
    };
    if (zap_) items.push_back({zap_.get(), 0, ZMQ_POLLIN, 0});
    const std::size_t fixed_items = items.size();
    std::vector<command> batch;
    message id;
    message body;
    for (;;) {
      // Work without sleeping while there is any: whole queue, then inbound.
      {
        std::lock_guard lock(mutex_);
        batch.swap(queue_);
      }
      const bool had_commands = !batch.empty();
      run_commands(batch);
      batch.clear();  // keeps capacity: the next swap hands it to producers
      if (state_.load() == state::stopped) break;
      if (revoke_pending_) {
        revoke_pending_ = false;
        close_inbound_connections();
      }
      if (!listening_ && steady::now() >= rebind_at_) try_rebind();
      if (zap_) {
        const auto now = steady::now();
        if (now >= monitor_sweep_at_) {
          monitor_sweep_at_ = now + monitor_sweep_interval;
          read_monitors();
        }
        if (now >= relink_next_at_) relink_due(now);
      }
      const bool had_auth = zap_ && serve_zap();
      const bool had_inbound = receive_some(id, body);
      if (had_commands || had_inbound || had_auth) continue;

      // Going to sleep. The seq_cst store is ordered before the queue check;
      // a producer pushes under the same mutex and then reads sleeping_, so
      // either we see its command here or it sees sleeping_ and wakes us.
      sleeping_.store(true);
      bool empty = false;
      {
        std::lock_guard lock(mutex_);
        empty = queue_.empty();
      }
      if (!empty || state_.load() == state::stopped) {
        sleeping_.store(false);
        continue;
      }
      items[0].socket = router_.get();  // replaced if an unbind ever failed
      if (monitors_changed_) {
        monitors_changed_ = false;
        items.resize(fixed_items);
        for (const auto& [peer_id, link] : peers_) {
          if (link.out.monitor() != nullptr)
            items.push_back({link.out.monitor(), 0, ZMQ_POLLIN, 0});
        }
      }
      if (zmq_poll(items.data(), static_cast<int>(items.size()), poll_timeout_ms()) < 0 &&
          zmq_errno() != EINTR)
        break;  // ETERM or a bug
      sleeping_.store(false);
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto n = ::read(wake_fd_.get(), &count, sizeof count);
      }
      if (std::any_of(items.begin() + static_cast<std::ptrdiff_t>(fixed_items), items.end(),
                      [](const zmq_pollitem_t& i) { return (i.revents & ZMQ_POLLIN) != 0; })) {
        read_monitors();
      }
    }
    // Sockets belong to this thread: close them here, before ctx_ is torn down.
    peers_.clear();
    router_.reset();
    zap_.reset();
  }

  /// Answers the ZAP requests waiting (RFC 27): 200 with User-Id = the key
  /// (Z85) for a CURVE client whose key is a peer's, 400 otherwise. false if
  /// none.
  bool serve_zap() {
    bool any = false;
    for (;;) {
      std::vector<std::string> parts;
      message part;
      if (zmq_msg_recv(part.get(), zap_.get(), ZMQ_DONTWAIT) < 0) break;
      any = true;
      parts.emplace_back(reinterpret_cast<const char*>(part.data()), part.size());
      while (part.more() && zmq_msg_recv(part.get(), zap_.get(), 0) >= 0)
        parts.emplace_back(reinterpret_cast<const char*>(part.data()), part.size());
      // version, request id, domain, address, routing id, mechanism, credentials...
      std::string user_id;
      if (parts.size() >= 7 && parts[5] == "CURVE" && parts[6].size() == 32) {
        char z85[z85_key_chars + 1] = {};
        zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(parts[6].data()), 32);
        if (allowed_keys_.contains(std::string_view(z85))) user_id = z85;
      }
      if (user_id.empty()) auth_denied_.fetch_add(1, std::memory_order_relaxed);
      const std::string version = parts.empty() ? std::string("1.0") : parts[0];
      const std::string request_id = parts.size() > 1 ? parts[1] : std::string{};
      const std::string code = user_id.empty() ? "400" : "200";
      const std::string text = user_id.empty() ? "unknown key" : "OK";
      const std::string* reply[] = {&version, &request_id, &code, &text, &user_id};
      for (std::size_t i = 0; i < 5; ++i)
        zmq_send(zap_.get(), reply[i]->data(), reply[i]->size(), ZMQ_SNDMORE);
      zmq_send(zap_.get(), "", 0, 0);  // metadata: none
    }
    return any;
  }

  void run_commands(std::vector<command>& batch) {
    // Sends are gathered per peer (in order) and leave when the batch ends,
    // or before a peer command, so a send never crosses an add or a removal.
    // Consecutive sends usually go to the same peer: skip the hash lookup.
    const std::string* last_id = nullptr;
    peer_link* last_link = nullptr;
    std::uint64_t unknown = 0;
    for (command& c : batch) {
      if (auto* s = std::get_if<send_cmd>(&c)) {
        peer_link* link = nullptr;
        if (last_id != nullptr && *last_id == s->peer_id) {
          link = last_link;
        } else {
          auto it = peers_.find(s->peer_id);
          if (it == peers_.end()) {
            ++unknown;
            continue;
          }
          link = &it->second;
          last_id = &it->first;
          last_link = link;
        }
        if (link->pending.empty()) pending_links_.push_back(link);
        link->pending.emplace_back(s->frame);
      } else {
        flush_pending();
        last_id = nullptr;  // peers_ may rehash
        if (auto* a = std::get_if<add_peer_cmd>(&c))
          connect(a->p);
        else
          forget(std::get<remove_peer_cmd>(c).peer_id);
      }
    }
    flush_pending();
    if (unknown != 0) dropped_unknown_peer_.fetch_add(unknown, std::memory_order_relaxed);
  }

  /// Sends what run_commands gathered: a peer's frames go out alone, or
  /// several in a bundle (opts_.bundle) within the link's size limit.
  void flush_pending() {
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t bundles = 0;
    std::uint64_t full = 0;
    for (peer_link* link : pending_links_) {
      auto& pending = link->pending;
      for (std::size_t first = 0; first < pending.size();) {
        // The longest run from `first` that fits in one bundle.
        std::size_t end = first + 1;
        std::size_t run_bytes = pending[first].size();
        if (opts_.bundle) {
          while (end < pending.size() && end - first < wire::bundle_frames_max &&
                 wire::bundle_bytes_bound(end - first + 1, run_bytes + pending[end].size()) <=
                     bundle_bytes_max_) {
            run_bytes += pending[end].size();
            ++end;
          }
        }
        const auto run = std::span(pending).subspan(first, end - first);
        first = end;
        int rc = 0;
        if (run.size() == 1) {
          rc = zmq_send(link->out.dealer(), run[0].data(), run[0].size(), ZMQ_DONTWAIT);
        } else {
          wire::encode_bundle(run, bundle_);
          rc = zmq_send(link->out.dealer(), bundle_.data(), bundle_.size(), ZMQ_DONTWAIT);
        }
        if (rc < 0) {
          full += run.size();  // EAGAIN: HWM reached; the caller's outbox retries.
          continue;
        }
        frames += run.size();
        bytes += run_bytes;
        if (run.size() > 1) ++bundles;
      }
      pending.clear();
    }
    pending_links_.clear();
    if (frames != 0) {
      frames_sent_.fetch_add(frames, std::memory_order_relaxed);
      bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
    }
    if (bundles != 0) bundles_sent_.fetch_add(bundles, std::memory_order_relaxed);
    if (full != 0) dropped_queue_full_.fetch_add(full, std::memory_order_relaxed);
  }

  /// Removes peer `id` and its admitted key; closing its inbound connections
  /// is left to the end of the command batch (one re-bind for many removals).
  /// Unknown ids are ignored.
  void forget(const std::string& id) {
    bool known = false;
    if (auto it = peers_.find(id); it != peers_.end()) {
      // Queued frames for a revoked peer are not flushed.
      const int zero = 0;
      zmq_setsockopt(it->second.out.dealer(), ZMQ_LINGER, &zero, sizeof zero);
      peers_.erase(it);
      monitors_changed_ = true;
      known = true;
    }
    for (auto k = allowed_keys_.begin(); k != allowed_keys_.end();) {
      if (k->second == id) {
        k = allowed_keys_.erase(k);
        known = true;
      } else {
        ++k;
      }
    }
    if (!known) return;
    // Plain mode has no authenticated identity, only the routing id the client
    // chose: drop inbound frames carrying a removed id (a courtesy, not security).
    if (!opts_.curve) removed_ids_.insert(id);
    peers_removed_.fetch_add(1, std::memory_order_relaxed);
    revoke_pending_ = true;
  }

  void connect(const peer& p) {
    if (auto it = peers_.find(p.id); it != peers_.end()) {
      if (it->second.endpoint == p.endpoint && it->second.public_key == p.public_key) return;
      // A new key revokes the old one; a new endpoint alone only replaces the
      // DEALER (inbound connections do not depend on it).
      if (opts_.curve && it->second.public_key != p.public_key) forget(p.id);
    }
    removed_ids_.erase(p.id);
    monitored_dealer out = open_dealer(p.endpoint, p.public_key);
    // A peer that cannot be connected (bad endpoint or key) is unknown, and
    // an earlier entry under its id is removed: its frames are counted as
    // dropped_unknown_peer.
    if (out.dealer() == nullptr) {
      forget(p.id);
      return;
    }
    if (opts_.curve) allowed_keys_[p.public_key] = p.id;
    peer_link link;
    link.endpoint = p.endpoint;
    link.public_key = p.public_key;
    link.out = std::move(out);
    peers_.insert_or_assign(p.id, std::move(link));
    monitors_changed_ = true;
  }

  /// A DEALER connecting to `endpoint` with this transport's options, pinned
  /// to `server_key` with CURVE and then monitored (see the file comment).
  /// Empty if any step fails (a bad endpoint or key, or out of sockets).
  monitored_dealer open_dealer(const std::string& endpoint, const std::string& server_key) {
    socket_ptr dealer(zmq_socket(ctx_.get(), ZMQ_DEALER));
    if (!dealer) return {};
    const int hwm = opts_.send_hwm;
    const int linger = dealer_linger_ms;
    const int immediate = 0;  // queue while connecting
    const int ivl = reconnect_ivl_ms;
    const int ivl_max = reconnect_ivl_max_ms;
    bool ok = true;
    if (opts_.curve) {
      // A peer without a well-formed key cannot be reached (or admitted).
      ok = server_key.size() == z85_key_chars &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_SERVERKEY, server_key.c_str(), z85_key_chars) ==
               0 &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_PUBLICKEY, opts_.curve->public_key.c_str(),
                          z85_key_chars) == 0 &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_SECRETKEY, opts_.curve->secret_key.c_str(),
                          z85_key_chars) == 0;
    }
    ok = ok &&
         zmq_setsockopt(dealer.get(), ZMQ_ROUTING_ID, opts_.node_id.data(), opts_.node_id.size()) ==
             0 &&
         zmq_setsockopt(dealer.get(), ZMQ_SNDHWM, &hwm, sizeof hwm) == 0 &&
         zmq_setsockopt(dealer.get(), ZMQ_LINGER, &linger, sizeof linger) == 0 &&
         zmq_setsockopt(dealer.get(), ZMQ_IMMEDIATE, &immediate, sizeof immediate) == 0 &&
         zmq_setsockopt(dealer.get(), ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) == 0 &&
         zmq_setsockopt(dealer.get(), ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) == 0;
    if (!ok) return {};
    socket_ptr monitor;
    if (opts_.curve) {
      // Before connecting: no event may be missed, and libzmq's blocking
      // event send must always find the reader connected.
      const std::string name = "inproc://gearmesh-mon-" + std::to_string(++monitor_count_);
      const int unlimited = 0;
      if (zmq_socket_monitor(dealer.get(), name.c_str(), monitor_events) != 0) return {};
      monitor.reset(zmq_socket(ctx_.get(), ZMQ_PAIR));
      if (!monitor ||
          zmq_setsockopt(monitor.get(), ZMQ_RCVHWM, &unlimited, sizeof unlimited) != 0 ||
          zmq_connect(monitor.get(), name.c_str()) != 0) {
        zmq_socket_monitor(dealer.get(), nullptr, 0);
        return {};
      }
    }
    monitored_dealer out(std::move(dealer), std::move(monitor));
    if (zmq_connect(out.dealer(), endpoint.c_str()) != 0) return {};
    return out;
  }

  /// Reads every monitor's waiting events and schedules the re-creation of
  /// the DEALERs whose session ended for good (see the file comment).
  void read_monitors() {
    const auto now = steady::now();
    message event;
    message address;
    for (auto& [peer_id, link] : peers_) {
      void* monitor = link.out.monitor();
      if (monitor == nullptr) continue;
      // Two parts per event: (u16 event, u32 value), then the endpoint.
      while (zmq_msg_recv(event.get(), monitor, ZMQ_DONTWAIT) >= 0) {
        for (bool more = event.more(); more; more = address.more()) {
          if (zmq_msg_recv(address.get(), monitor, 0) < 0) break;
        }
        std::uint16_t id = 0;
        if (event.size() < sizeof id + sizeof(std::uint32_t)) continue;
        std::memcpy(&id, event.data(), sizeof id);
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
          link.relink_retry_ms = relink_retry_ms_min;
        } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                   id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
          (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? handshakes_refused_ : handshakes_protocol_error_)
              .fetch_add(1, std::memory_order_relaxed);
          schedule_relink(link, now);
        }
      }
    }
  }

  /// Re-creates `link.out` relink_retry_ms from `now`, unless already due.
  void schedule_relink(peer_link& link, steady::time_point now) {
    if (link.relink_pending) return;
    link.relink_pending = true;
    link.relink_at = now + std::chrono::milliseconds(link.relink_retry_ms);
    link.relink_retry_ms = std::min(link.relink_retry_ms * 2, relink_retry_ms_max);
    relink_next_at_ = std::min(relink_next_at_, link.relink_at);
  }

  /// Re-creates the DEALERs due by `now`; the next due time is kept in
  /// relink_next_at_ (an earlier one left by a removed peer is harmless).
  void relink_due(steady::time_point now) {
    relink_next_at_ = steady::time_point::max();
    for (auto& [peer_id, link] : peers_) {
      if (!link.relink_pending) continue;
      if (link.relink_at <= now) {
        monitored_dealer fresh = open_dealer(link.endpoint, link.public_key);
        if (fresh.dealer() != nullptr) {
          // Its session is gone: nothing queued in it can leave anyway.
          const int zero = 0;
          zmq_setsockopt(link.out.dealer(), ZMQ_LINGER, &zero, sizeof zero);
          link.out = std::move(fresh);
          link.relink_pending = false;
          monitors_changed_ = true;
          links_recreated_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        // Out of sockets or the like: keep the dead DEALER, try again later.
        link.relink_pending = false;
        schedule_relink(link, now);
      }
      relink_next_at_ = std::min(relink_next_at_, link.relink_at);
    }
  }

  /// Closes every connection accepted on the listen endpoint by unbinding
  /// it, then binds it again (see the file comment).
  void close_inbound_connections() {
    if (!listening_) return;  // unbound: nothing accepted since the last cut
    if (zmq_unbind(router_.get(), bound_endpoint_.c_str()) != 0) {
      // Not expected (the endpoint is the one bound). Replace the ROUTER,
      // which closes its connections too; keep the old one if that fails.
      socket_ptr fresh;
      if (!make_router(ctx_.get(), fresh)) return;
      router_ = std::move(fresh);
    }
    listening_ = false;
    unbound_at_ = steady::now();
    rebind_retry_ms_ = 0;
    rebind_late_counted_ = false;
    try_rebind();
  }

  void try_rebind() {
    const auto now = steady::now();
    if (zmq_bind(router_.get(), bound_endpoint_.c_str()) == 0) {
      listening_ = true;
      return;
    }
    if (!rebind_late_counted_ && now - unbound_at_ >= rebind_late) {
      rebind_late_counted_ = true;
      listen_rebind_late_.fetch_add(1, std::memory_order_relaxed);
    }
    rebind_retry_ms_ = std::clamp(rebind_retry_ms_ * 2, rebind_retry_ms_min, rebind_retry_ms_max);
    rebind_at_ = now + std::chrono::milliseconds(rebind_retry_ms_);
  }

  /// zmq_poll's timeout: forever, or until the next re-bind or re-link attempt.
  long poll_timeout_ms() const {
    const steady::time_point due =
        listening_ ? relink_next_at_ : std::min(rebind_at_, relink_next_at_);
    if (due == steady::time_point::max()) return -1;
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(due - steady::now());
    return std::max<long>(0, static_cast<long>(wait.count()));
  }

  /// Handles inbound messages until receive_batch_max frames (or messages)
  /// were handled; false if none was waiting.
  bool receive_some(message& id, message& body) {
    int handled = 0;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t unknown = 0;
    std::uint64_t oversized = 0;  // frames inside bundles
    std::uint64_t weight = 0;     // messages, and the frames in bundles
    while (weight < receive_batch_max) {
      if (zmq_msg_recv(id.get(), router_.get(), ZMQ_DONTWAIT) < 0) break;  // EAGAIN
      ++handled;
      ++weight;
      if (!id.more()) {
        dropped_malformed_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // The rest of a message is already here once its first part is.
      if (zmq_msg_recv(body.get(), router_.get(), 0) < 0) break;
      if (body.more()) {
        while (body.more() && zmq_msg_recv(body.get(), router_.get(), 0) >= 0) {
        }
        dropped_malformed_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const std::span<const std::uint8_t> message(body.data(), body.size());
      const bool bundle = wire::is_bundle(message);
      if (message.size() > (bundle ? inbound_bundle_bytes_max_ : opts_.frame_bytes_max)) {
        dropped_oversized_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const std::string* from = &from_;
      if (zap_) {
        // The key ZAP authenticated for this connection (not the routing id
        // the client chose), mapped to its owner now: a key revoked since the
        // handshake no longer has one.
        const char* user = zmq_msg_gets(body.get(), "User-Id");
        if (user == nullptr || *user == '\0') {
          dropped_malformed_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const auto owner = allowed_keys_.find(std::string_view(user));
        if (owner == allowed_keys_.end()) {
          ++unknown;
          continue;
        }
        from = &owner->second;  // stable: maps change only in run_commands
      } else {
        from_.assign(reinterpret_cast<const char*>(id.data()), id.size());
        if (!removed_ids_.empty() && removed_ids_.contains(from_)) {
          ++unknown;
          continue;
        }
      }
      if (bundle) {
        const auto st = wire::for_each_bundled(message, [&](std::span<const std::uint8_t> frame) {
          ++weight;
          if (frame.size() > opts_.frame_bytes_max) {
            ++oversized;
            return;
          }
          ++frames;
          bytes += frame.size();
          if (receive_fn_) receive_fn_(*from, frame);
        });
        if (st)
          bundles_received_.fetch_add(1, std::memory_order_relaxed);
        else
          dropped_malformed_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      ++frames;
      bytes += body.size();
      if (receive_fn_) receive_fn_(*from, message);
    }
    // Counted after the handlers ran, in batches; readers only need eventual values.
    if (frames != 0) {
      frames_received_.fetch_add(frames, std::memory_order_relaxed);
      bytes_received_.fetch_add(bytes, std::memory_order_relaxed);
    }
    if (unknown != 0) dropped_unknown_peer_.fetch_add(unknown, std::memory_order_relaxed);
    if (oversized != 0) dropped_oversized_.fetch_add(oversized, std::memory_order_relaxed);
    return handled != 0;
  }

  const zmq_options opts_;
  receive_fn receive_fn_;
  unique_fd wake_fd_;

  std::mutex lifecycle_mutex_;  // serialises start() and stop()
  std::atomic<state> state_{state::created};
  std::thread io_thread_;
  context_ptr ctx_;

  mutable std::mutex endpoint_mutex_;
  std::string resolved_endpoint_;

  std::mutex mutex_;  // guards queue_
  std::vector<command> queue_;
  /// The I/O thread is (about to be) blocked in zmq_poll; see wake_if_sleeping().
  std::atomic<bool> sleeping_{false};

  // Owned by the I/O thread after start().
  socket_ptr zap_;  // CURVE only
  /// CURVE client keys (Z85) admitted by ZAP, with the peer id they prove.
  std::unordered_map<std::string, std::string, string_hash, std::equal_to<>> allowed_keys_;
  socket_ptr router_;
  std::string bound_endpoint_;   // resolved listen endpoint, re-bound after revocations
  bool listening_ = true;        // router_ is bound to bound_endpoint_
  bool revoke_pending_ = false;  // a command batch revoked a peer: close inbound connections
  steady::time_point unbound_at_;
  steady::time_point rebind_at_;  // next bind attempt while !listening_
  int rebind_retry_ms_ = 0;
  bool rebind_late_counted_ = false;
  std::unordered_map<std::string, peer_link> peers_;
  /// The monitor sockets in peers_ changed: rebuild the poll set (CURVE).
  bool monitors_changed_ = false;
  std::uint64_t monitor_count_ = 0;  // names each monitor's inproc endpoint
  steady::time_point monitor_sweep_at_;
  /// Earliest relink_at of a pending re-link; max() if none.
  steady::time_point relink_next_at_ = steady::time_point::max();
  /// Plain mode: routing ids of removed peers, whose inbound frames are
  /// dropped. Entries leave when the id is added again; bounded by the ids
  /// ever added.
  std::unordered_set<std::string> removed_ids_;
  std::string from_;
  /// run_commands -> flush_pending: the peers with pending frames.
  std::vector<peer_link*> pending_links_;
  std::vector<std::uint8_t> bundle_;  // reused encoding buffer
  /// Largest bundle sent: the protocol's bound, or the frame size limit if
  /// it is lower (peers are expected to share it).
  const std::size_t bundle_bytes_max_ = std::min(opts_.frame_bytes_max, wire::bundle_bytes_max);
  /// Largest bundle accepted (docs/protocol.md, section 2).
  const std::size_t inbound_bundle_bytes_max_ =
      std::max(opts_.frame_bytes_max, wire::bundle_bytes_max);

  std::atomic<std::uint64_t> frames_sent_{0};
  std::atomic<std::uint64_t> frames_received_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> dropped_unknown_peer_{0};
  std::atomic<std::uint64_t> dropped_queue_full_{0};
  std::atomic<std::uint64_t> dropped_oversized_{0};
  std::atomic<std::uint64_t> dropped_malformed_{0};
  std::atomic<std::uint64_t> auth_denied_{0};
  std::atomic<std::uint64_t> peers_removed_{0};
  std::atomic<std::uint64_t> listen_rebind_late_{0};
  std::atomic<std::uint64_t> handshakes_refused_{0};
  std::atomic<std::uint64_t> handshakes_protocol_error_{0};
  std::atomic<std::uint64_t> links_recreated_{0};
  std::atomic<std::uint64_t> bundles_sent_{0};
  std::atomic<std::uint64_t> bundles_received_{0};
};

}  // namespace

std::unique_ptr<transport> make_zmq_transport(zmq_options opts) {
  return std::make_unique<zmq_transport>(std::move(opts));
}

}  // namespace gearmesh::transport
