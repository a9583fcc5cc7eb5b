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
// with User-Id = peer id for a client key that belongs to an added peer, 400
// for anything else, so an unknown key never completes the handshake. The
// allowlist is the I/O thread's own map (filled by add_peer commands).
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

#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
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
using command = std::variant<send_cmd, add_peer_cmd>;

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
    socket_ptr router(zmq_socket(ctx.get(), ZMQ_ROUTER));
    if (!router) return {errc::transport, zmq_error("zmq_socket(ROUTER)")};
    if (opts_.curve) {
      const int server = 1;
      const char* domain = "gearmesh";
      if (zmq_setsockopt(router.get(), ZMQ_CURVE_SERVER, &server, sizeof server) != 0 ||
          zmq_setsockopt(router.get(), ZMQ_CURVE_SECRETKEY, opts_.curve->secret_key.c_str(), 40) !=
              0 ||
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
    if (zmq_bind(router.get(), opts_.listen_endpoint.c_str()) != 0) {
      return {errc::transport,
              zmq_error("transport " + opts_.node_id + ": bind " + opts_.listen_endpoint)};
    }
    char endpoint[512];
    std::size_t endpoint_len = sizeof endpoint;
    if (zmq_getsockopt(router.get(), ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len) != 0) {
      return {errc::transport, zmq_error("ZMQ_LAST_ENDPOINT")};
    }
    {
      std::lock_guard lock(endpoint_mutex_);
      resolved_endpoint_.assign(endpoint, strnlen(endpoint, endpoint_len));
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

  void remove_peer(const std::string& peer_id) override { (void)peer_id; }  // helper implements

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
      if (zmq_poll(items, item_count, -1) < 0 && zmq_errno() != EINTR) break;  // ETERM or a bug
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

  /// Answers the ZAP requests waiting (RFC 27): 200 with User-Id = peer id
  /// for a CURVE client whose key is a peer's, 400 otherwise. false if none.
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
        char z85[41] = {};
        zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(parts[6].data()), 32);
        if (auto it = allowed_keys_.find(z85); it != allowed_keys_.end()) user_id = it->second;
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
      } else {
        last_id = nullptr;  // peers_ may rehash
        connect(std::get<add_peer_cmd>(c).p);
      }
    }
    if (frames != 0) {
      frames_sent_.fetch_add(frames, std::memory_order_relaxed);
      bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
    }
    if (unknown != 0) dropped_unknown_peer_.fetch_add(unknown, std::memory_order_relaxed);
    if (full != 0) dropped_queue_full_.fetch_add(full, std::memory_order_relaxed);
  }

  void connect(const peer& p) {
    auto it = peers_.find(p.id);
    if (it != peers_.end() && it->second.endpoint == p.endpoint &&
        it->second.public_key == p.public_key)
      return;
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
      ok = p.public_key.size() == 40 &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_SERVERKEY, p.public_key.c_str(), 40) == 0 &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_PUBLICKEY, opts_.curve->public_key.c_str(), 40) ==
               0 &&
           zmq_setsockopt(dealer.get(), ZMQ_CURVE_SECRETKEY, opts_.curve->secret_key.c_str(), 40) ==
               0;
      for (auto k = allowed_keys_.begin(); k != allowed_keys_.end();)
        k = k->second == p.id ? allowed_keys_.erase(k) : std::next(k);
      if (ok) allowed_keys_[p.public_key] = p.id;
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
    // A peer that cannot be connected (bad endpoint) stays unknown: its
    // frames are counted as dropped_unknown_peer.
    if (!ok) {
      if (it != peers_.end()) peers_.erase(it);
      return;
    }
    peers_.insert_or_assign(p.id, peer_link{p.endpoint, p.public_key, std::move(dealer)});
  }

  /// Handles up to receive_batch_max inbound messages; false if none was waiting.
  bool receive_some(message& id, message& body) {
    int handled = 0;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
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
      ++frames;
      bytes += body.size();
      if (receive_fn_) {
        if (zap_) {
          // The identity ZAP authenticated for this connection, not the
          // routing id the client chose.
          const char* user = zmq_msg_gets(body.get(), "User-Id");
          if (user == nullptr || *user == '\0') {
            dropped_malformed_.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          from_.assign(user);
        } else {
          from_.assign(reinterpret_cast<const char*>(id.data()), id.size());
        }
        receive_fn_(from_, std::span<const std::uint8_t>(body.data(), body.size()));
      }
    }
    // Counted after the handlers ran, in batches; readers only need eventual values.
    if (frames != 0) {
      frames_received_.fetch_add(frames, std::memory_order_relaxed);
      bytes_received_.fetch_add(bytes, std::memory_order_relaxed);
    }
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
  std::unordered_map<std::string, std::string> allowed_keys_;
  socket_ptr router_;
  std::unordered_map<std::string, peer_link> peers_;
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
};

}  // namespace

std::unique_ptr<transport> make_zmq_transport(zmq_options opts) {
  return std::make_unique<zmq_transport>(std::move(opts));
}

}  // namespace gearmesh::transport
