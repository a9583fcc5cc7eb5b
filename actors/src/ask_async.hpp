// ask_async: ask_blocking (caf_messages.hpp) for callers that must not
// block, like the simulator. Include from .cpp files only (it pulls in
// CAF's event-based actors).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

namespace gearmesh::actors {

namespace detail {
template <class Atom, class Reply, class Request>
void async_asker(caf::event_based_actor* self, const caf::actor& whom,
                 std::chrono::milliseconds timeout, Reply out, const std::string& who, Request req,
                 const std::function<void(Reply)>& done) {
  self->request(whom, timeout, Atom::value, std::move(req))
      .then([done](Reply& r) { done(std::move(r)); },
            [done, out = std::move(out), who](caf::error& e) mutable {
              if (e != caf::sec::request_timeout) {
                out.http_status = 503;
                out.error = who + " unavailable: " + to_string(e);
              }
              done(std::move(out));
            });
}
}  // namespace detail

/// ask_blocking for a caller that must not block (the simulator): asks
/// `whom` (Atom, req) and calls `done` on a helper actor of `sys` with the
/// reply, `out` on a timeout, or http_status 503 and "<who> unavailable: ..."
/// on any other error.
template <class Atom, class Reply, class Request>
void ask_async(caf::actor_system& sys, const caf::actor& whom, std::chrono::milliseconds timeout,
               Reply out, std::string who, Request req, std::function<void(Reply)> done) {
  // A function with arguments: CAF 0.17 spawns an argument-less one through
  // a null tuple pointer (undefined behaviour that UBSan reports).
  sys.spawn(detail::async_asker<Atom, Reply, Request>, whom, timeout, std::move(out),
            std::move(who), std::move(req), std::move(done));
}

}  // namespace gearmesh::actors
