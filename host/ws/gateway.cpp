// Gateway: the libwebsockets context of one worker on its libuv loop, the probe that
// keeps another process off the port, the HTTP answers, and the Phoenix Channels v2
// sessions of its WebSocket connections (gateway.hpp, docs/protocol.md §7).
#include "ws/gateway.hpp"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <cryptopp/base64.h>
#include <cryptopp/filters.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

#include "metrics/metrics.hpp"

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

// What lws keeps per connection: an HTTP answer waiting for the writable callback (its
// headers sent or not yet), an HTTP request a plugin answers, or the WebSocket session
// the connection became.
struct PerConnection {
  Gateway::Answer* answer;
  bool headers_sent;
  Gateway::HttpCall* call;
  uint64_t session;
  std::string* partial;  // a WebSocket message arriving in fragments
};

// Writes the answer's status line and headers; the body follows on the next writable.
int write_headers(struct lws* wsi, const Gateway::Answer& answer) {
  uint8_t headers[LWS_PRE + 512];
  uint8_t* start = headers + LWS_PRE;
  uint8_t* p = start;
  uint8_t* end = headers + sizeof headers - 1;
  if (lws_add_http_common_headers(wsi, answer.status, answer.content_type.c_str(),
                                  answer.body.size(), &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end)) {
    return 1;
  }
  lws_callback_on_writable(wsi);
  return 0;
}

struct WsCounters {
  metrics::Counter& opened;
  metrics::Counter& closed;
  metrics::Counter& messages;
  metrics::Counter& rate_limited;
  metrics::Counter& refused_total;
  metrics::Counter& refused_per_ip;
  metrics::Counter& pushes_dropped;
  metrics::Counter& slow_consumers_closed;
};

const WsCounters& ws_counters() {
  static const WsCounters c = [] {
    auto& r = metrics::registry();
    auto refused = [&r](const char* reason) -> metrics::Counter& {
      return r.counter("prism_ws_refused_total", std::string("reason=\"") + reason + "\"",
                       "WebSocket upgrades refused, by the limit that refused them");
    };
    return WsCounters{
        r.counter("prism_ws_connections_opened_total", "", "WebSocket connections opened"),
        r.counter("prism_ws_connections_closed_total", "", "WebSocket connections closed"),
        r.counter("prism_ws_messages_total", "", "WebSocket messages received"),
        r.counter("prism_ws_rate_limited_total", "",
                  "WebSocket messages refused over ws.messages_per_second"),
        refused("max_connections"),
        refused("max_connections_per_ip"),
        r.counter("prism_ws_pushes_dropped_total", "",
                  "Unreliable pushes to a WebSocket dropped over server.max_send_backlog"),
        r.counter("prism_ws_slow_consumers_closed_total", "",
                  "WebSockets closed because a reliable frame met a full send backlog "
                  "(server.max_send_backlog)"),
    };
  }();
  return c;
}

// The peer's address without the port, as text ("" if it cannot be read).
std::string peer_host(struct lws* wsi) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(lws_get_socket_fd(wsi), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  char text[INET6_ADDRSTRLEN] = "";
  const void* at = addr.ss_family == AF_INET6
                       ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr)
                       : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&addr)->sin_addr);
  inet_ntop(addr.ss_family, at, text, sizeof text);
  return text;
}

// Phoenix sockets live at /socket/websocket or /socket/<instance>/websocket.
bool is_socket_path(std::string_view path) {
  const size_t query = path.find('?');
  if (query != std::string_view::npos) path = path.substr(0, query);
  return path.starts_with("/socket/") && path.ends_with("/websocket");
}

// The token of the Phoenix client's `authToken` option: it offers the sub-protocols
// "phoenix, base64url.bearer.phx.<token>", the token in base64 without padding (the
// stock client uses btoa's alphabet, others the URL-safe one: both are read).
std::optional<std::string> bearer_token(std::string_view protocols) {
  constexpr std::string_view kPrefix = "base64url.bearer.phx.";
  const size_t at = protocols.find(kPrefix);
  if (at == std::string_view::npos) return std::nullopt;
  std::string encoded(protocols.substr(at + kPrefix.size()));
  encoded.erase(std::find_if(encoded.begin(), encoded.end(),
                             [](char c) { return c == ',' || c == ' '; }),
                encoded.end());
  std::replace(encoded.begin(), encoded.end(), '-', '+');
  std::replace(encoded.begin(), encoded.end(), '_', '/');
  std::string token;
  CryptoPP::StringSource decode(encoded, true,
                                new CryptoPP::Base64Decoder(new CryptoPP::StringSink(token)));
  return token;
}

// The <id> of a socket opened at /socket/<id>/websocket ("" for /socket/websocket).
std::string socket_id(struct lws* wsi) {
  char buffer[1024] = "";
  if (lws_hdr_copy(wsi, buffer, sizeof buffer, WSI_TOKEN_GET_URI) <= 0) return {};
  std::string_view path(buffer);
  path.remove_prefix(std::string_view("/socket/").size());
  path.remove_suffix(std::string_view("websocket").size());
  if (!path.empty()) path.remove_suffix(1);  // the '/' before "websocket"
  return std::string(path);
}

// The request's query parameters, each as a string.
nlohmann::json query_params(struct lws* wsi) {
  nlohmann::json params = nlohmann::json::object();
  char buffer[1024] = "";
  // lws has decoded each name=value fragment of the query already (%xx, '+').
  for (int i = 0; lws_hdr_copy_fragment(wsi, buffer, sizeof buffer, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
       ++i) {
    const std::string_view pair(buffer);
    const size_t eq = pair.find('=');
    params[std::string(pair.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
  }
  return params;
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The connect JSON of a socket's channel messages (plugin.h prism_channel_message_t):
// the <id> of its path, its query parameters and its bearer token.
std::string connect_json(struct lws* wsi) {
  nlohmann::json connect = nlohmann::json::object();
  if (std::string id = socket_id(wsi); !id.empty()) connect["socket"] = std::move(id);
  connect["params"] = query_params(wsi);
  char buffer[1024] = "";
  if (lws_hdr_copy(wsi, buffer, sizeof buffer, WSI_TOKEN_PROTOCOL) > 0) {
    if (auto token = bearer_token(buffer)) connect["token"] = std::move(*token);
  }
  return dump(connect);
}

// An HTTP request's method name, or "" for one a plugin route does not take.
std::string_view http_method(struct lws* wsi) {
  char* uri = nullptr;
  int uri_len = 0;
  switch (lws_http_get_uri_and_method(wsi, &uri, &uri_len)) {
    case LWSHUMETH_GET: return "GET";
    case LWSHUMETH_POST: return "POST";
    case LWSHUMETH_PUT: return "PUT";
    case LWSHUMETH_PATCH: return "PATCH";
    case LWSHUMETH_DELETE: return "DELETE";
    default: return "";
  }
}

Gateway& gateway_of(struct lws* wsi) {
  return *static_cast<Gateway*>(lws_context_user(lws_get_context(wsi)));
}

int on_http(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* exchange = static_cast<PerConnection*>(user);
  switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char uri[512] = "";
      lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
      // Nonzero refuses the upgrade (the client sees the HTTP connection closed).
      return is_socket_path(uri) && gateway_of(wsi).admit(wsi) ? 0 : 1;
    }
    case LWS_CALLBACK_ESTABLISHED:
      exchange->session = gateway_of(wsi).on_open(wsi);
      return 0;
    case LWS_CALLBACK_RECEIVE: {
      Gateway& g = gateway_of(wsi);
      const std::string_view piece(static_cast<const char*>(in), len);
      const bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
      const size_t have = exchange->partial != nullptr ? exchange->partial->size() : 0;
      if (have + piece.size() > g.max_frame_bytes()) {
        const char reason_text[] = "message too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         reinterpret_cast<unsigned char*>(const_cast<char*>(reason_text)),
                         sizeof reason_text - 1);
        return -1;
      }
      if (last && exchange->partial == nullptr) return g.on_message(exchange->session, piece);
      if (exchange->partial == nullptr) exchange->partial = new std::string;
      exchange->partial->append(piece);
      if (!last) return 0;
      const std::string whole = std::move(*exchange->partial);
      delete std::exchange(exchange->partial, nullptr);
      return g.on_message(exchange->session, whole);
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return gateway_of(wsi).on_writable(exchange->session);
    case LWS_CALLBACK_CLOSED:
      gateway_of(wsi).on_closed(exchange->session);
      delete std::exchange(exchange->partial, nullptr);
      return 0;
    case LWS_CALLBACK_HTTP: {
      Gateway& g = gateway_of(wsi);
      const std::string_view path(static_cast<const char*>(in), in != nullptr ? len : 0);
      delete std::exchange(exchange->answer, nullptr);  // a keep-alive connection's last
      delete std::exchange(exchange->call, nullptr);
      exchange->headers_sent = false;
      if (g.routes_to_plugin(path)) {
        exchange->call = new Gateway::HttpCall;
        exchange->call->method = http_method(wsi);
        exchange->call->path = std::string(path);
        exchange->call->params = dump(query_params(wsi));
        char auth[2048] = "";
        if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
          const std::string_view value(auth);
          if (value.starts_with("Bearer ")) exchange->call->bearer = value.substr(7);
        }
        // A body comes in HTTP_BODY callbacks; without one the plugin is asked now.
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
            lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
          return 0;
        }
        g.ask_http(wsi, *exchange->call);
        return 0;
      }
      exchange->answer = new Gateway::Answer(g.answer(path));
      exchange->headers_sent = true;
      return write_headers(wsi, *exchange->answer);
    }
    case LWS_CALLBACK_HTTP_BODY: {
      if (exchange->call == nullptr) return 0;
      Gateway& g = gateway_of(wsi);
      if (exchange->call->body.size() + len > g.max_frame_bytes()) {
        // Over ws.max_frame_bytes: answered at once, nothing reaches the plugin.
        delete std::exchange(exchange->call, nullptr);
        exchange->answer = new Gateway::Answer{413, "application/json",
                                               R"({"error":"request body too large"})" "\n"};
        exchange->headers_sent = true;
        return write_headers(wsi, *exchange->answer);
      }
      exchange->call->body.append(static_cast<const char*>(in), len);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      if (exchange->call != nullptr) gateway_of(wsi).ask_http(wsi, *exchange->call);
      return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (exchange->answer == nullptr) return 0;  // a plugin's answer has not come yet
      if (!exchange->headers_sent) {
        exchange->headers_sent = true;
        return write_headers(wsi, *exchange->answer);
      }
      // lws_write needs LWS_PRE bytes of room before the data it sends.
      std::string buffer(LWS_PRE, '\0');
      buffer += exchange->answer->body;
      const int n = lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE,
                              exchange->answer->body.size(), LWS_WRITE_HTTP_FINAL);
      delete std::exchange(exchange->answer, nullptr);
      delete std::exchange(exchange->call, nullptr);
      if (n < 0) return -1;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
      if (exchange != nullptr) {
        delete std::exchange(exchange->answer, nullptr);
        if (exchange->call != nullptr) gateway_of(wsi).http_closed(exchange->call->id);
        delete std::exchange(exchange->call, nullptr);
      }
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

// "http" first: the protocol of plain HTTP and of an upgrade that names none; the stock
// Phoenix client names "phoenix" when it sends a token (bearer_token), and a client
// offering sub-protocols must hear one of them chosen (RFC 6455 §4.2.2).
const struct lws_protocols kProtocols[] = {
    {"http", on_http, sizeof(PerConnection), 0, 0, nullptr, 0},
    {"phoenix", on_http, sizeof(PerConnection), 0, 0, nullptr, 0},
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
  gateway->loop_ = loop.loop();
  void* loops[1] = {loop.loop()};
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;  // connections come from our own socket
  info.protocols = kProtocols;
  info.foreign_loops = loops;
  info.user = gateway.get();
  info.pcontext = &gateway->context_;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                 LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
  const GatewaySettings& set = gateway->settings_;
  if (!set.tls_cert.empty()) {
    // lws would only log why a file failed; say it here, naming the key.
    for (const auto& [key, file] : {std::pair{"ws.tls.cert", &set.tls_cert}, {"ws.tls.key", &set.tls_key}}) {
      if (::access(file->c_str(), R_OK) != 0) {
        return make_error(std::string(key) + " " + *file + ": " + std::strerror(errno));
      }
    }
    // The adopted sockets start with a TLS handshake (lws_adopt_socket_vhost allows it).
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = set.tls_cert.c_str();
    info.ssl_private_key_filepath = set.tls_key.c_str();
  }
  gateway->context_ = lws_create_context(&info);
  if (gateway->context_ == nullptr) {
    return make_error("ws.listen " + config::to_string(set.listen) +
                      (set.tls_cert.empty()
                           ? ": libwebsockets could not start (is libwebsockets-evlib-uv installed?)"
                           : ": libwebsockets could not start; are ws.tls.cert and ws.tls.key a "
                             "PEM certificate and its private key?"));
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
    // Real-time traffic: a frame's last partial segment must not wait for the peer's
    // delayed ACK (Nagle; 40 ms a frame on Linux). lws leaves adopted sockets as they are.
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    lws_adopt_socket_vhost(vhost, client);  // on failure lws closes the socket itself
  }
}

Gateway::~Gateway() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void Gateway::finish() {
  if (context_ == nullptr) return;
  lws_context_destroy(context_);
  uv_run(loop_, UV_RUN_DEFAULT);  // the close callbacks of anything that destroy closed
}

void Gateway::close() {
  acceptor_.close();
  if (listen_fd_ >= 0) ::close(std::exchange(listen_fd_, -1));
  if (context_ != nullptr) lws_context_destroy(context_);
}

Expected<PhoenixFrame> parse_phoenix_frame(std::string_view text) {
  using nlohmann::json;
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return make_error("not JSON");
  if (!j.is_array() || j.size() != 5) return make_error("not [join_ref, ref, topic, event, payload]");
  auto ref_of = [](const json& v) -> Expected<std::optional<std::string>> {
    if (v.is_null()) return std::optional<std::string>{};
    if (v.is_string()) return std::optional<std::string>{v.get<std::string>()};
    return make_error("a ref must be a string or null");
  };
  auto join_ref = ref_of(j[0]);
  auto ref = ref_of(j[1]);
  if (!join_ref) return make_error(join_ref.error());
  if (!ref) return make_error(ref.error());
  if (!j[2].is_string() || j[2].get<std::string>().empty()) return make_error("topic must be a string");
  if (!j[3].is_string() || j[3].get<std::string>().empty()) return make_error("event must be a string");
  if (!j[4].is_object() && !j[4].is_null()) return make_error("payload must be an object");
  return PhoenixFrame{*join_ref, *ref, j[2].get<std::string>(), j[3].get<std::string>(),
                      j[4].is_null() ? "{}" : j[4].dump()};
}

std::string encode_phoenix_frame(const PhoenixFrame& f) {
  using nlohmann::json;
  auto ref = [](const std::optional<std::string>& r) { return r ? json(*r) : json(nullptr); };
  std::string out = json::array({ref(f.join_ref), ref(f.ref), f.topic, f.event})
                        .dump(-1, ' ', false, json::error_handler_t::replace);
  out.pop_back();  // the head's ']': the payload follows
  out += ',';
  // A published payload is written once per subscriber: it is checked (a validating scan,
  // no document built, UTF-8 included) and copied as it came, never parsed and re-dumped.
  if (json::accept(f.payload)) {
    out += f.payload;
  } else {
    out += dump(json(f.payload));  // bytes that are not JSON go as a string
  }
  out += ']';
  return out;
}

bool Gateway::admit(struct lws* wsi) {
  if (connections_.size() >= settings_.max_connections) {
    ws_counters().refused_total.add();
    return false;
  }
  const auto it = per_host_.find(peer_host(wsi));
  if (it != per_host_.end() && it->second >= settings_.max_connections_per_ip) {
    ws_counters().refused_per_ip.add();
    return false;
  }
  return true;
}

void Gateway::restart_idle_clock(struct lws* wsi) const {
  lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
                  static_cast<int>(std::max<int64_t>(1, settings_.idle_timeout.count() / 1000)));
}

uint32_t Gateway::new_request_id() {
  if (++next_request_id_ == 0) next_request_id_ = 1;  // 0 is no request
  return next_request_id_;
}

uint64_t Gateway::on_open(struct lws* wsi) {
  const uint64_t id = (uint64_t{settings_.worker} << net::kConnectionWorkerShift) |
                      net::kWebSocketSessionBit | ++next_session_;
  auto c = std::make_unique<Connection>();
  c->wsi = wsi;
  c->origin.connection_id = id;
  c->origin.via = this;
  const int fd = lws_get_socket_fd(wsi);
  c->origin.peer.len = sizeof c->origin.peer.addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&c->origin.peer.addr), &c->origin.peer.len) != 0) {
    c->origin.peer.len = 0;
  }
  c->host = peer_host(wsi);
  c->connect = connect_json(wsi);
  c->socket_id = socket_id(wsi);
  if (!c->socket_id.empty()) c->scope_prefix = "@" + c->socket_id + "/";
  c->tokens = settings_.messages_per_second;
  c->refilled = std::chrono::steady_clock::now();
  ++per_host_[c->host];
  connections_.emplace(id, std::move(c));
  ws_counters().opened.add();
  restart_idle_clock(wsi);
  if (handler_ != nullptr) handler_->on_session_opened(id);
  return id;
}

std::string Gateway::scoped_topic(const Connection& c, const std::string& topic) const {
  if (c.socket_id.empty() || !services_.has_channel) return topic;
  std::string scoped = c.scope_prefix + topic;
  return services_.has_channel(scoped) ? scoped : topic;
}

bool Gateway::queue(Connection& c, const PhoenixFrame& frame, v1::Delivery delivery) {
  if (!c.close_reason.empty()) return false;  // closing: nothing more goes out
  std::string bytes(LWS_PRE, '\0');
  // The client knows a socket-scoped topic by its own name (scoped_topic).
  const std::string_view scope_prefix = c.scope_prefix;
  if (!scope_prefix.empty() && frame.topic.starts_with(scope_prefix)) {
    PhoenixFrame unscoped = frame;
    unscoped.topic.erase(0, scope_prefix.size());
    bytes += encode_phoenix_frame(unscoped);
  } else {
    bytes += encode_phoenix_frame(frame);
  }
  if (c.out_bytes > 0 && c.out_bytes + bytes.size() > settings_.max_send_backlog) {
    if (delivery == v1::DELIVERY_UNRELIABLE) {
      ws_counters().pushes_dropped.add();
      return false;
    }
    // As on UDP (protocol.md §3.2): a client that cannot keep up with what it asked for
    // loses the session, with the reason, rather than a reliable message silently. The
    // socket is not writable, so no close frame could go out: lws drops it at once.
    ws_counters().slow_consumers_closed.add();
    c.close_reason = "slow consumer: send backlog over " +
                     std::to_string(settings_.max_send_backlog) + " bytes";
    SPDLOG_WARN("event=ws_slow_consumer session={:#x} peer={} queued_bytes={}",
                c.origin.connection_id, c.host, c.out_bytes);
    lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return false;
  }
  c.out_bytes += bytes.size();
  c.out.push_back(std::move(bytes));
  lws_callback_on_writable(c.wsi);
  return true;
}

int Gateway::on_writable(uint64_t session) {
  const auto it = connections_.find(session);
  if (it == connections_.end() || it->second->out.empty()) return 0;
  Connection& c = *it->second;
  std::string& frame = c.out.front();
  const size_t len = frame.size() - LWS_PRE;
  const int n = lws_write(c.wsi, reinterpret_cast<unsigned char*>(frame.data()) + LWS_PRE, len,
                          LWS_WRITE_TEXT);
  c.out_bytes -= frame.size();
  c.out.pop_front();
  if (n < static_cast<int>(len)) return -1;
  if (!c.out.empty()) lws_callback_on_writable(c.wsi);
  return 0;
}

void Gateway::ask_plugin(Connection& c, net::ChannelKind kind, const PhoenixFrame& frame) {
  const uint32_t rid = new_request_id();
  pending_[rid] = Pending{c.origin.connection_id, kind, frame.join_ref, frame.ref, frame.topic};
  if (handler_ == nullptr) {
    send_reply(c.origin, rid, 0, v1::STATUS_UNAVAILABLE, "no channel service", {});
    return;
  }
  handler_->on_channel(c.origin, rid, kind, frame.topic, frame.event, frame.payload, c.connect);
}

int Gateway::on_message(uint64_t session, std::string_view text) {
  const auto it = connections_.find(session);
  if (it == connections_.end()) return -1;
  Connection& c = *it->second;
  // Any message is a sign of life: the idle clock starts again (Phoenix heartbeats 30 s).
  restart_idle_clock(c.wsi);
  ws_counters().messages.add();
  // A token bucket per connection: ws.messages_per_second, with bursts as large.
  const auto now = std::chrono::steady_clock::now();
  c.tokens = std::min(settings_.messages_per_second,
                      c.tokens + std::chrono::duration<double>(now - c.refilled).count() *
                                     settings_.messages_per_second);
  c.refilled = now;
  const bool over_rate = c.tokens < 1;
  if (!over_rate) c.tokens -= 1;
  auto frame = parse_phoenix_frame(text);
  if (!frame) {
    const std::string why = "malformed frame: " + frame.error();
    lws_close_reason(c.wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
                     reinterpret_cast<unsigned char*>(const_cast<char*>(why.data())), why.size());
    return -1;
  }
  if (over_rate) {
    // Refused, not dropped: the client learns why and may send again later.
    ws_counters().rate_limited.add();
    queue(c, PhoenixFrame{frame->join_ref, frame->ref, frame->topic, "phx_reply",
                          R"({"status":"error","response":{"reason":"rate limited"}})"});
    return 0;
  }
  if (frame->topic == "phoenix" && frame->event == "heartbeat") {
    queue(c, PhoenixFrame{std::nullopt, frame->ref, "phoenix", "phx_reply",
                          R"({"status":"ok","response":{}})"});
    return 0;
  }
  if (frame->topic.starts_with('@') || frame->topic.starts_with('/')) {
    // Reserved (protocol.md §7.2): socket-scoped topics are the gateway's to make, and
    // '/' starts an HTTP route; a client cannot name either.
    queue(c, PhoenixFrame{frame->join_ref, frame->ref, frame->topic, "phx_reply",
                          R"({"status":"error","response":{"reason":"unmatched topic"}})"});
    return 0;
  }
  frame->topic = scoped_topic(c, frame->topic);
  if (frame->event == "phx_join") {
    ask_plugin(c, net::ChannelKind::kJoin, *frame);
    return 0;
  }
  const bool joined = c.joined.contains(frame->topic);
  if (frame->event == "phx_leave") {
    if (joined) {
      ask_plugin(c, net::ChannelKind::kLeave, *frame);
    } else {
      queue(c, PhoenixFrame{frame->join_ref, frame->ref, frame->topic, "phx_reply",
                            R"({"status":"ok","response":{}})"});
    }
    return 0;
  }
  if (!joined) {
    queue(c, PhoenixFrame{frame->join_ref, frame->ref, frame->topic, "phx_reply",
                          R"({"status":"error","response":{"reason":"unmatched topic"}})"});
    return 0;
  }
  ask_plugin(c, net::ChannelKind::kEvent, *frame);
  return 0;
}

bool Gateway::routes_to_plugin(std::string_view path) const {
  if (path == "/metrics" || path == "/healthz" || path == "/readyz") return false;
  return path.starts_with('/') && services_.has_channel && services_.has_channel(path);
}

void Gateway::ask_http(struct lws* wsi, HttpCall& call) {
  if (call.method.empty()) {
    call.id = 0;  // nothing pending: answered here
    answer_http(wsi, Answer{405, "application/json", R"({"error":"method not allowed"})" "\n"});
    return;
  }
  call.id = ++next_http_call_;
  live_calls_[call.id] = wsi;
  const uint32_t rid = new_request_id();
  http_calls_[rid] = call.id;
  // The plugin checks who asks (plugin.h, HTTP routes): the bearer token, and whether it
  // is the admin token, which only the host can tell.
  nlohmann::json connect{{"params", nlohmann::json::parse(call.params, nullptr, false)},
                         {"admin", !call.bearer.empty() && settings_.is_admin_token &&
                                       settings_.is_admin_token(call.bearer)}};
  if (!call.bearer.empty()) connect["token"] = call.bearer;
  net::RequestOrigin origin;
  origin.via = this;
  const int fd = lws_get_socket_fd(wsi);
  origin.peer.len = sizeof origin.peer.addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&origin.peer.addr), &origin.peer.len) != 0) {
    origin.peer.len = 0;
  }
  if (handler_ == nullptr) {
    send_reply(origin, rid, 0, v1::STATUS_UNAVAILABLE, "no service", {});
    return;
  }
  handler_->on_channel(origin, rid, net::ChannelKind::kHttp, call.path, call.method,
                       call.body, dump(connect));
}

void Gateway::http_closed(uint64_t call_id) { live_calls_.erase(call_id); }

void Gateway::answer_http(struct lws* wsi, Answer answer) {
  auto* exchange = static_cast<PerConnection*>(lws_wsi_user(wsi));
  delete std::exchange(exchange->answer, new Answer(std::move(answer)));
  exchange->headers_sent = false;
  lws_callback_on_writable(wsi);
}

// A plugin's status as the HTTP status of its answer.
unsigned http_status_of(v1::Status status) {
  switch (status) {
    case v1::STATUS_OK: return 200;
    case v1::STATUS_INVALID_ARGUMENT:
    case v1::STATUS_INVALID_PACKET: return 400;
    case v1::STATUS_LOGIN_REQUIRED:
    case v1::STATUS_INVALID_CREDENTIALS: return 401;
    case v1::STATUS_NOT_FOUND:
    case v1::STATUS_INVALID_SERVICE: return 404;
    case v1::STATUS_CONFLICT: return 409;
    case v1::STATUS_RATE_LIMITED: return 429;
    case v1::STATUS_UNAVAILABLE: return 503;
    case v1::STATUS_TIMEOUT: return 504;
    default: return 500;
  }
}

bool Gateway::send_reply(const net::RequestOrigin&, uint32_t request_id, uint32_t,
                         v1::Status status, std::string_view message,
                         std::span<const uint8_t> payload) {
  using nlohmann::json;
  if (const auto call = http_calls_.find(request_id); call != http_calls_.end()) {
    const auto live = live_calls_.find(call->second);
    http_calls_.erase(call);
    if (live == live_calls_.end()) return true;  // the client went away meanwhile
    struct lws* wsi = live->second;
    live_calls_.erase(live);
    std::string body = status == v1::STATUS_OK
                           ? std::string(reinterpret_cast<const char*>(payload.data()), payload.size())
                           : dump(json{{"error", std::string(message)}});
    if (body.empty()) body = "{}";
    answer_http(wsi, Answer{http_status_of(status), "application/json", body + "\n"});
    return true;
  }
  const auto p = pending_.find(request_id);
  if (p == pending_.end()) return true;
  const Pending pending = std::move(p->second);
  pending_.erase(p);
  const auto it = connections_.find(pending.session);
  if (it == connections_.end()) return true;  // the socket went away meanwhile
  Connection& c = *it->second;
  const bool ok = status == v1::STATUS_OK;
  json response = json::object();
  if (ok && !payload.empty()) {
    const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    response = json::parse(text, nullptr, false);
    if (response.is_discarded()) response = json(std::string(text));
  } else if (!ok) {
    response = json{{"reason", std::string(message)}};
  }
  if (pending.kind == net::ChannelKind::kJoin && ok) c.joined[pending.topic] = pending.join_ref.value_or("");
  const json body{{"status", ok ? "ok" : "error"}, {"response", std::move(response)}};
  queue(c, PhoenixFrame{pending.join_ref, pending.ref, pending.topic, "phx_reply",
                        body.dump(-1, ' ', false, json::error_handler_t::replace)});
  if (pending.kind == net::ChannelKind::kLeave) {
    c.joined.erase(pending.topic);
    queue(c, PhoenixFrame{pending.join_ref, pending.join_ref, pending.topic, "phx_close", "{}"});
  }
  return true;
}

net::PushResult Gateway::send_push(uint64_t connection_id, uint32_t packet_id,
                                   v1::Delivery delivery, std::string_view topic,
                                   std::span<const uint8_t> payload) {
  const auto it = connections_.find(connection_id);
  if (it == connections_.end() || !it->second->close_reason.empty()) {
    return net::PushResult::kNoSession;
  }
  Connection& c = *it->second;
  // A Phoenix client only hears the topics it joined (protocol.md §7.4): a topic message
  // goes on its topic; a direct push (no topic) on every channel the session joined that
  // the pushing service serves.
  std::vector<std::pair<std::string, std::string>> targets;  // topic, join_ref
  if (!topic.empty()) {
    if (const auto joined = c.joined.find(std::string(topic)); joined != c.joined.end()) {
      targets.emplace_back(*joined);
    }
  } else if (services_.serves) {
    for (const auto& joined : c.joined) {
      if (services_.serves(packet_id, joined.first)) targets.emplace_back(joined);
    }
  }
  if (targets.empty()) return net::PushResult::kNoSession;
  std::string event = services_.event_name ? services_.event_name(packet_id) : std::string();
  if (event.empty()) event = "push";
  const std::string body(reinterpret_cast<const char*>(payload.data()), payload.size());
  for (auto& [name, join_ref] : targets) {
    if (!queue(c, PhoenixFrame{join_ref, std::nullopt, name, event, body}, delivery)) {
      return net::PushResult::kBacklogFull;
    }
  }
  return net::PushResult::kQueued;
}

void Gateway::end_channel(uint64_t connection_id, std::string_view topic, std::string_view reason,
                          bool rejoin) {
  const auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  const auto joined = c.joined.find(std::string(topic));
  if (joined == c.joined.end()) return;
  // Phoenix's own messages for a channel that ends under its client (protocol.md §7.3):
  // phx_error as when a channel process crashes (the client rejoins), phx_close as when
  // the server closes it (the client stops); both carry the join's ref.
  const std::string join_ref = joined->second;
  const std::string name = joined->first;
  c.joined.erase(joined);
  queue(c, PhoenixFrame{join_ref, join_ref, name, rejoin ? "phx_error" : "phx_close",
                        dump(nlohmann::json{{"reason", reason}})});
}

void Gateway::on_closed(uint64_t session) {
  const auto it = connections_.find(session);
  if (it == connections_.end()) return;
  // Every channel it had joined hears a LEAVE, then the session ends (plugin.h).
  std::vector<std::string> topics;
  for (const auto& [topic, ref] : it->second->joined) topics.push_back(topic);
  const net::RequestOrigin origin = it->second->origin;
  const std::string connect = std::move(it->second->connect);
  const std::string reason =
      it->second->close_reason.empty() ? "websocket closed" : std::move(it->second->close_reason);
  if (auto host = per_host_.find(it->second->host); host != per_host_.end() && --host->second == 0) {
    per_host_.erase(host);
  }
  connections_.erase(it);
  ws_counters().closed.add();
  for (const auto& topic : topics) {
    const uint32_t rid = new_request_id();
    pending_[rid] = Pending{session, net::ChannelKind::kLeave, {}, {}, topic};
    if (handler_ != nullptr) {
      handler_->on_channel(origin, rid, net::ChannelKind::kLeave, topic, "phx_leave", "{}", connect);
    }
  }
  if (handler_ != nullptr) handler_->on_session_closed(session, reason);
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
