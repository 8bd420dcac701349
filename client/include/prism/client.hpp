// libprism-client: a client for prismd over the secure transport (docs/protocol.md §5):
// handshake against the server's public key, AES-256-GCM sessions, reliable delivery,
// service login, requests with deadlines (blocking or with callbacks) and pushes.
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "prism/expected.hpp"
#include "prism/v1/admin.pb.h"
#include "prism/v1/frames.pb.h"

namespace prism::client {

// Where prismd listens. `host` is a name or a numeric address, IPv6 without brackets.
struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 7777;
};

// Parses "host:port", "1.2.3.4:port" or "[::1]:port". The port must be 1-65535.
Expected<Endpoint> parse_endpoint(std::string_view text);

// "host:port", or "[host]:port" when the host is an IPv6 address.
std::string to_string(const Endpoint& endpoint);

// What the server answered. A request that got no reply before the client's timeout
// completes with STATUS_TIMEOUT; one cut short by a Close frame with STATUS_UNAVAILABLE.
// One address an Endpoint resolved to.
struct SocketAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// Every UDP address `endpoint` resolves to (getaddrinfo), in the resolver's order.
Expected<std::vector<SocketAddress>> resolve_addresses(const Endpoint& endpoint);

struct Reply {
  v1::Status status = v1::STATUS_OK;
  std::string message;  // the reply's status_message; empty on success
  std::string payload;
};

// The status without its STATUS_ prefix: "OK", "INVALID_PACKET", ... ("UNKNOWN" for a
// value this build does not know).
std::string_view status_name(v1::Status status);

using ServerKey = std::array<uint8_t, 32>;

// "prism1:<hex>" as given, or the contents of a server.pub file (trailing white space
// ignored). The error names the text or file and what was wrong with it.
Expected<ServerKey> read_server_key(const std::string& text_or_path);

struct ConnectOptions {
  // The server's static X25519 public key (protocol.md §5.1): "prism1:<64 hex>" decoded.
  ServerKey server_key{};
  // Bounds the handshake, and is the default deadline of every later request.
  std::chrono::milliseconds timeout = std::chrono::seconds(2);
  // Nothing received for this long ends the session (the server says its own value).
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  size_t max_datagram = 1400;
};

using ReplyCallback = std::function<void(const Reply&)>;
using PushCallback = std::function<void(const v1::Message&)>;

// One session with prismd: one UDP socket (closed by the destructor), one handshake, any
// number of requests in flight. Single-threaded: nothing happens between calls, and
// callbacks run inside call(), poll() and the other calls that wait. Move-only.
class Client {
 public:
  // Resolves `endpoint`, opens a socket and runs the handshake (INITIAL, RETRY, INITIAL
  // with cookie, HANDSHAKE), resending on a timer until options.timeout. Errors name the
  // server and the cause: nothing answering, a key that does not match, a refused port.
  static Expected<Client> connect(const Endpoint& endpoint, const ConnectOptions& options);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();  // sends CLOSE

  // Sends one request and waits for its reply. The error is only for local failures (the
  // socket failed, the message is too large, the backlog is full); a reply that does not
  // come in time is Reply{STATUS_TIMEOUT}, and one cut short by the end of the session
  // Reply{STATUS_UNAVAILABLE}.
  Expected<Reply> call(uint32_t packet_id, std::string_view payload,
                       v1::Delivery delivery = v1::DELIVERY_RELIABLE_ORDERED);

  // Sends a request without waiting: `done` runs exactly once, from a later poll() or
  // call(), with the reply, TIMEOUT after `timeout` (0: the connect timeout) or when the
  // session ends because the server stopped answering, or UNAVAILABLE when the server
  // closed the session. Returns the request id.
  Expected<uint32_t> send_request(uint32_t packet_id, std::string_view payload,
                                  v1::Delivery delivery, ReplyCallback done,
                                  std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Waits up to `max_wait` for traffic and handles whatever arrived (replies, pushes,
  // timers); returns after the first batch or at max_wait. An error only for a socket
  // failure.
  Expected<void> poll(std::chrono::milliseconds max_wait);
  // For a caller that waits on many sessions in its own event loop (epoll, poll): the
  // session's UDP socket (owned by the Client; it changes on rebind()), and when poll()
  // has work even if nothing arrives (retransmissions, keepalive, request deadlines).
  // When the socket is readable or that time has come, call poll(0ms): it costs no
  // poll() system call.
  int descriptor() const;
  std::chrono::steady_clock::time_point next_wakeup() const;
  size_t pending() const;
  // Messages the server sends unasked (pushes, protocol.md §3.2) go to the most specific
  // callback: the one for their topic (a publish's), else the one for their packet id,
  // else the push handler; with none of them they are dropped. Callbacks run inside
  // poll(), call() and the other calls that wait. Setting one again replaces it; an
  // empty callback removes it.
  void set_push_handler(PushCallback handler);
  void on_push(uint32_t packet_id, PushCallback callback);
  void on_topic(std::string topic, PushCallback callback);

  // LOGIN (protocol.md §5.10): OK, INVALID_SERVICE, INVALID_CREDENTIALS or RATE_LIMITED.
  Expected<Reply> login(std::string_view service, std::string_view token);

  // Round-trip time of one PING/PONG. Error "no pong within N ms" on timeout.
  Expected<std::chrono::nanoseconds> ping();

  // The host's admin requests (HOST_LIST_PLUGINS, HOST_SERVER_STATUS). A timeout or a
  // non-OK status is an error here, since there is no reply to hand back.
  Expected<v1::PluginList> list_plugins();
  Expected<v1::ServerStatus> server_status();
  // Plugin management and diagnostics (admin login needed): the error carries the
  // server's status and reason, e.g. "reload plugin: server answered INVALID_ARGUMENT: …".
  Expected<v1::PluginInfo> load_plugin(std::string_view path);
  Expected<void> unload_plugin(std::string_view name);
  Expected<v1::PluginInfo> reload_plugin(std::string_view name, std::string_view path = {});
  Expected<std::string> stats();  // Prometheus text
  Expected<void> config_check();
  // Topics as the host serves them (HOST_SUBSCRIBE, HOST_UNSUBSCRIBE, HOST_PUBLISH; admin
  // login needed): this session subscribes itself, and what is published to the topic
  // arrives as pushes (on_topic). publish() sends with packet id HOST_PUBLISH (11).
  Expected<void> subscribe(std::string_view topic);
  Expected<void> unsubscribe(std::string_view topic);
  Expected<void> publish(std::string_view topic, std::string_view payload);

  // The absolute packet id of `service`.`method`, looked up with list_plugins().
  // Errors: "no service 'x' (services: a, b)",
  //         "service 'x' has no method 'y' (methods: a, b)".
  Expected<uint32_t> resolve(std::string_view service, std::string_view method);

  // Moves the session to a new local socket (a new source port), as a NAT rebinding
  // would; the server validates the new address and carries on (protocol.md §5.9).
  Expected<void> rebind();
  // False once the session ended (closed by either side, idle, or peer not responding).
  bool connected() const;
  // Why the session ended; empty while it is open.
  const std::string& close_reason() const;

  // The endpoint as given to connect().
  const Endpoint& endpoint() const;
  // The default deadline of requests; values below 1 ms are raised to 1 ms.
  std::chrono::milliseconds timeout() const;
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  class Connection;  // socket, handshake, channel, pending requests
  explicit Client(std::unique_ptr<Connection> connection);

  std::unique_ptr<Connection> connection_;
};

}  // namespace prism::client
