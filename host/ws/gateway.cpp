// Gateway: the libwebsockets context of one worker on its libuv loop, the probe that
// keeps another process off the port, and the HTTP answers (gateway.hpp).
#include "ws/gateway.hpp"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

namespace prism::ws {
namespace {

// libwebsockets logs through spdlog, one line per event like the rest of prismd.
void log_from_lws(int level, const char* line) {
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (level & LLL_ERR) {
    SPDLOG_ERROR("event=lws_log level=err msg=\"{}\"", text);
  } else {
    SPDLOG_WARN("event=lws_log level=warn msg=\"{}\"", text);
  }
}

// One HTTP exchange: the answer waits here between the request and the writable callback.
struct HttpExchange {
  Gateway::Answer* answer;
};

Gateway& gateway_of(struct lws* wsi) {
  return *static_cast<Gateway*>(lws_context_user(lws_get_context(wsi)));
}

int on_http(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* exchange = static_cast<HttpExchange*>(user);
  switch (reason) {
    case LWS_CALLBACK_HTTP: {
      const std::string_view path(static_cast<const char*>(in), in != nullptr ? len : 0);
      exchange->answer = new Gateway::Answer(gateway_of(wsi).answer(path));
      uint8_t headers[LWS_PRE + 512];
      uint8_t* start = headers + LWS_PRE;
      uint8_t* p = start;
      uint8_t* end = headers + sizeof headers - 1;
      if (lws_add_http_common_headers(wsi, exchange->answer->status,
                                      exchange->answer->content_type.c_str(),
                                      exchange->answer->body.size(), &p, end) ||
          lws_finalize_write_http_header(wsi, start, &p, end)) {
        return 1;
      }
      lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (exchange->answer == nullptr) return -1;
      // lws_write needs LWS_PRE bytes of room before the data it sends.
      std::string buffer(LWS_PRE, '\0');
      buffer += exchange->answer->body;
      const int n = lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE,
                              exchange->answer->body.size(), LWS_WRITE_HTTP_FINAL);
      delete std::exchange(exchange->answer, nullptr);
      if (n < 0) return -1;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
      if (exchange != nullptr) delete std::exchange(exchange->answer, nullptr);
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

const struct lws_protocols kProtocols[] = {
    {"http", on_http, sizeof(HttpExchange), 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

// The socket address of `at`, or an error naming ws.listen.
Expected<std::pair<sockaddr_storage, socklen_t>> address_of(const config::Endpoint& at) {
  sockaddr_storage addr{};
  if (inet_pton(AF_INET, at.host.c_str(), &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr) == 1) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&addr);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(at.port);
    return std::pair{addr, socklen_t{sizeof *in4}};
  }
  if (inet_pton(AF_INET6, at.host.c_str(), &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr) == 1) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(at.port);
    return std::pair{addr, socklen_t{sizeof *in6}};
  }
  return make_error("ws.listen " + config::to_string(at) + ": not an IP address");
}

// A TCP socket bound to `at`, listening; with `share`, SO_REUSEPORT lets every worker
// bind the same port. Without it the bind fails when another process listens there.
Expected<int> bound_socket(const config::Endpoint& at, bool share, bool listen_too) {
  auto addr = address_of(at);
  if (!addr) return make_error(addr.error());
  const int fd = ::socket(addr->first.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT is not "taken"
  if (share) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr->first), addr->second) != 0 ||
      (listen_too && ::listen(fd, SOMAXCONN) != 0)) {
    const int err = errno;
    ::close(fd);
    return make_error("ws.listen " + config::to_string(at) + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

Expected<std::unique_ptr<Gateway>> Gateway::open(net::LoopAccess& loop, GatewaySettings settings,
                                                 bool first) {
  static std::once_flag logging;
  std::call_once(logging, [] { lws_set_log_level(LLL_ERR | LLL_WARN, log_from_lws); });
  std::unique_ptr<Gateway> gateway(new Gateway(std::move(settings)));
  // The socket first: a refused port then leaves no libwebsockets state to unwind (its
  // handles could only be freed by running the loop).
  if (auto listening = gateway->listen(first); !listening) return make_error(listening.error());
  void* loops[1] = {loop.loop()};
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;  // connections come from our own socket
  info.protocols = kProtocols;
  info.foreign_loops = loops;
  info.user = gateway.get();
  info.pcontext = &gateway->context_;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                 LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
  gateway->context_ = lws_create_context(&info);
  if (gateway->context_ == nullptr) {
    return make_error("ws.listen " + config::to_string(gateway->settings_.listen) +
                      ": libwebsockets could not start (is libwebsockets-evlib-uv installed?)");
  }
  gateway->acceptor_ = net::UvHandle<uv_poll_t>(
      loop.loop(), [fd = gateway->listen_fd_](uv_loop_t* l, uv_poll_t* p) { uv_poll_init(l, p, fd); },
      gateway.get());
  uv_poll_start(gateway->acceptor_.get(), UV_READABLE, &Gateway::on_acceptable);
  return gateway;
}

Expected<void> Gateway::listen(bool first) {
  config::Endpoint& at = settings_.listen;
  // The first worker makes sure no other process holds the port (a socket without
  // SO_REUSEPORT), as the UDP transport does; the shared sockets come after.
  if (first && at.port != 0) {
    auto probe = bound_socket(at, false, false);
    if (!probe) return make_error(probe.error());
    ::close(*probe);
  }
  auto fd = bound_socket(at, true, true);
  if (!fd) return make_error(fd.error());
  listen_fd_ = *fd;
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  at.port = port_;
  return {};
}

void Gateway::on_acceptable(uv_poll_t* poll, int status, int /*events*/) {
  auto& self = *static_cast<Gateway*>(poll->data);
  if (status < 0 || self.context_ == nullptr) return;
  struct lws_vhost* vhost = lws_get_vhost_by_name(self.context_, "default");
  for (;;) {
    const int client = ::accept4(self.listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;  // EAGAIN: the queue is empty; another worker may have won it
    if (vhost == nullptr) {
      ::close(client);
      continue;
    }
    lws_adopt_socket_vhost(vhost, client);  // on failure lws closes the socket itself
  }
}

Gateway::~Gateway() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void Gateway::close() {
  acceptor_.close();
  if (listen_fd_ >= 0) ::close(std::exchange(listen_fd_, -1));
  if (context_ != nullptr) lws_context_destroy(context_);
}

Gateway::Answer Gateway::answer(std::string_view path) const {
  using nlohmann::json;
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", settings_.metrics()};
  }
  if (path == "/healthz" || path == "/readyz") {
    const Health health = settings_.health();
    const bool ready_check = path == "/readyz";
    json body{{"status", ready_check ? (health.ready ? "ready" : "not ready") : "live"},
              {"ready", health.ready},
              {"degraded", health.degraded}};
    // Live while the process answers at all; ready only when it can serve everything.
    const unsigned status = ready_check && !health.ready ? 503 : 200;
    return {status, "application/json", body.dump() + "\n"};
  }
  return {404, "application/json", json{{"error", "no such path"}, {"path", path}}.dump() + "\n"};
}

}  // namespace prism::ws
