// One worker's TCP listener for HTTP and, next, WebSocket (DESIGN.md §8): a socket bound
// to ws.listen with SO_REUSEPORT, so every worker accepts on the same port, whose
// connections are handed to a libwebsockets context on the worker's own libuv loop (a
// foreign loop). prismd listens itself because libwebsockets sets SO_REUSEPORT only for
// a context with several service threads, which Debian's build (LWS_MAX_SMP 1) has not.
// HTTP today: GET /metrics (Prometheus text), /healthz (live) and /readyz (ready).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "config/config.hpp"
#include "net/loop_access.hpp"
#include "net/uv_handle.hpp"

struct lws_context;

namespace prism::ws {

// What /healthz and /readyz report.
struct Health {
  bool ready = false;                 // plugins loaded and every storage facet reachable
  std::vector<std::string> degraded;  // what is not healthy, e.g. "store:leaderboards:redis"
};

struct GatewaySettings {
  config::Endpoint listen;
  // Both are called on the worker's thread, for each request, and must be thread-safe.
  std::function<std::string()> metrics;  // Prometheus text exposition
  std::function<Health()> health;
};

class Gateway {
 public:
  // Makes the context on `loop`, whose thread must not be running yet (or be this one),
  // listening on settings.listen. `first` marks the first worker's: it refuses a port that
  // another process holds, which SO_REUSEPORT alone would silently share.
  static Expected<std::unique_ptr<Gateway>> open(net::LoopAccess& loop, GatewaySettings settings,
                                                 bool first);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The bound port (ws.listen's port 0 picks one).
  uint16_t port() const { return port_; }

  // On the loop's thread while it still runs (LoopAccess::at_stop): libwebsockets closes
  // its handles, and the loop's remaining turns free them and the context.
  void close();

  // The HTTP answer to `path` (exposed for the unit test): status, content type, body.
  struct Answer {
    unsigned status = 200;
    std::string content_type;
    std::string body;
  };
  Answer answer(std::string_view path) const;

 private:
  explicit Gateway(GatewaySettings settings) : settings_(std::move(settings)) {}
  // Binds and listens on settings_.listen (reading back the port of a port 0).
  Expected<void> listen(bool first);
  static void on_acceptable(uv_poll_t* poll, int status, int events);

  GatewaySettings settings_;
  lws_context* context_ = nullptr;  // lws sets it to null once fully destroyed
  int listen_fd_ = -1;
  net::UvHandle<uv_poll_t> acceptor_;  // readable: connections wait on listen_fd_
  uint16_t port_ = 0;
};

}  // namespace prism::ws
