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
// Sizes: libzmq's ZMQ_MAXMSGSIZE on the ROUTER is a hard cap at twice
// frame_bytes_max; a message above it makes libzmq drop the connection, which
// would hide the event from the counters. Frames between frame_bytes_max and
// that cap are received, counted as dropped_oversized and discarded, so the
// link survives and the drop is visible.
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
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

namespace gearmesh::transport {
namespace {

/// Reconnect backoff of the per-peer DEALERs.
constexpr int reconnect_ivl_ms = 100;
constexpr int reconnect_ivl_max_ms = 2000;
/// How long a closing DEALER may still try to flush queued frames.
constexpr int dealer_linger_ms = 100;
/// Inbound messages handled per poll round, so commands are not starved.
constexpr int receive_batch_max = 4096;
/// libzmq's routing ids are 1..255 bytes.
constexpr std::size_t routing_id_bytes_max = 255;
/// Z85 text of a CURVE key.
constexpr std::size_t z85_key_chars = 40;
/// Re-binding the listen endpoint after a revocation: backoff bounds, and how
/// long it may take before it counts as late (the port was taken).
constexpr int rebind_retry_ms_min = 1;
constexpr int rebind_retry_ms_max = 1000;
constexpr auto rebind_late = std::chrono::milliseconds(100);

using steady = std::chrono::steady_clock;

/// Hash for heterogeneous lookup (find by string_view without a copy).
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

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
    socket_ptr dealer;
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
    const std::int64_t msg_bytes_max = static_cast<std::int64_t>(opts_.frame_bytes_max) * 2;
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
    zmq_pollitem_t items[3] = {
        {router_.get(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_fd_.get(), ZMQ_POLLIN, 0},
        {zap_.get(), 0, ZMQ_POLLIN, 0},
    };
    const int item_count = zap_ ? 3 : 2;
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
      if (zmq_poll(items, item_count, poll_timeout_ms()) < 0 && zmq_errno() != EINTR)
        break;  // ETERM or a bug
      sleeping_.store(false);
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto n = ::read(wake_fd_.get(), &count, sizeof count);
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
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t unknown = 0;
    std::uint64_t full = 0;
    // Consecutive sends usually go to the same peer: skip the hash lookup.
    const std::string* last_id = nullptr;
    void* last_dealer = nullptr;
    for (command& c : batch) {
      if (auto* s = std::get_if<send_cmd>(&c)) {
        void* dealer = nullptr;
        if (last_id != nullptr && *last_id == s->peer_id) {
          dealer = last_dealer;
        } else {
          auto it = peers_.find(s->peer_id);
          if (it == peers_.end()) {
            ++unknown;
            continue;
          }
          dealer = it->second.dealer.get();
          last_id = &it->first;
          last_dealer = dealer;
        }
        if (zmq_send(dealer, s->frame.data(), s->frame.size(), ZMQ_DONTWAIT) < 0) {
          ++full;  // EAGAIN: HWM reached; the caller's outbox retries.
          continue;
        }
        ++frames;
        bytes += s->frame.size();
      } else if (auto* a = std::get_if<add_peer_cmd>(&c)) {
        last_id = nullptr;  // peers_ may rehash
        connect(a->p);
      } else {
        last_id = nullptr;
        forget(std::get<remove_peer_cmd>(c).peer_id);
      }
    }
    if (frames != 0) {
      frames_sent_.fetch_add(frames, std::memory_order_relaxed);
      bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
    }
    if (unknown != 0) dropped_unknown_peer_.fetch_add(unknown, std::memory_order_relaxed);
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
      zmq_setsockopt(it->second.dealer.get(), ZMQ_LINGER, &zero, sizeof zero);
      peers_.erase(it);
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
    socket_ptr dealer(zmq_socket(ctx_.get(), ZMQ_DEALER));
    if (!dealer) return;
    const int hwm = opts_.send_hwm;
    const int linger = dealer_linger_ms;
    const int immediate = 0;  // queue while connecting
    const int ivl = reconnect_ivl_ms;
    const int ivl_max = reconnect_ivl_max_ms;
    bool ok = true;
    if (opts_.curve) {
      // A peer without a well-formed key cannot be reached (or admitted).
      ok = p.public_key.size() == z85_key_chars &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_SERVERKEY, p.public_key.c_str(), z85_key_chars) ==
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
         zmq_setsockopt(dealer.get(), ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) == 0 &&
         zmq_connect(dealer.get(), p.endpoint.c_str()) == 0;
    // A peer that cannot be connected (bad endpoint or key) is unknown, and
    // an earlier entry under its id is removed: its frames are counted as
    // dropped_unknown_peer.
    if (!ok) {
      forget(p.id);
      return;
    }
    if (opts_.curve) allowed_keys_[p.public_key] = p.id;
    peers_.insert_or_assign(p.id, peer_link{p.endpoint, p.public_key, std::move(dealer)});
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

  /// zmq_poll's timeout: forever, or until the next re-bind attempt.
  long poll_timeout_ms() const {
    if (listening_) return -1;
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(rebind_at_ - steady::now());
    return std::max<long>(0, static_cast<long>(wait.count()));
  }

  /// Handles up to receive_batch_max inbound messages; false if none was waiting.
  bool receive_some(message& id, message& body) {
    int handled = 0;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t unknown = 0;
    for (int i = 0; i < receive_batch_max; ++i) {
      if (zmq_msg_recv(id.get(), router_.get(), ZMQ_DONTWAIT) < 0) break;  // EAGAIN
      ++handled;
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
      if (body.size() > opts_.frame_bytes_max) {
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
      ++frames;
      bytes += body.size();
      if (receive_fn_) receive_fn_(*from, std::span<const std::uint8_t>(body.data(), body.size()));
    }
    // Counted after the handlers ran, in batches; readers only need eventual values.
    if (frames != 0) {
      frames_received_.fetch_add(frames, std::memory_order_relaxed);
      bytes_received_.fetch_add(bytes, std::memory_order_relaxed);
    }
    if (unknown != 0) dropped_unknown_peer_.fetch_add(unknown, std::memory_order_relaxed);
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
  /// Plain mode: routing ids of removed peers, whose inbound frames are
  /// dropped. Entries leave when the id is added again; bounded by the ids
  /// ever added.
  std::unordered_set<std::string> removed_ids_;
  std::string from_;

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
};

}  // namespace

std::unique_ptr<transport> make_zmq_transport(zmq_options opts) {
  return std::make_unique<zmq_transport>(std::move(opts));
}

}  // namespace gearmesh::transport
