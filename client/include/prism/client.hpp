// libprism-client: a blocking request/reply client for prismd (docs/protocol.md §2-4).
// Everything that touches the transport lives behind Client, so encryption and
// reliability can be added there without changing a caller.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "base/expected.hpp"
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

// One client connection to prismd: one UDP socket (closed by the destructor), one
// random connection id, one request in flight at a time. Not thread-safe; move-only.
class Client {
 public:
  // Resolves `endpoint` (getaddrinfo) and opens a socket connected to it. Nothing is
  // sent yet. `timeout` bounds every later call()/ping() (must be positive).
  static Expected<Client> connect(const Endpoint& endpoint,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(2));

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends one request and waits for its reply. The error is only for local failures:
  // the socket failed, the payload does not fit in a datagram, or the kernel reported
  // the server's port closed (connection refused). A reply that does not come in time
  // is Reply{STATUS_TIMEOUT}. Datagrams that fail to decode or answer another request
  // are ignored.
  Expected<Reply> call(uint32_t packet_id, std::string_view payload);

  // Round-trip time of one Ping/Pong. Error "no pong within N ms" on timeout.
  Expected<std::chrono::nanoseconds> ping();

  // The host's admin requests (HOST_LIST_PLUGINS, HOST_SERVER_STATUS). A timeout or a
  // non-OK status is an error here, since there is no reply to hand back.
  Expected<v1::PluginList> list_plugins();
  Expected<v1::ServerStatus> server_status();

  // The absolute packet id of `service`.`method`, looked up with list_plugins().
  // Errors: "no service 'x' (services: a, b)",
  //         "service 'x' has no method 'y' (methods: a, b)".
  Expected<uint32_t> resolve(std::string_view service, std::string_view method);

  // The endpoint as given to connect().
  const Endpoint& endpoint() const;
  // The bound on each later call()/ping(); values below 1 ms are raised to 1 ms.
  std::chrono::milliseconds timeout() const;
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  class Connection;  // the transport: socket, connection id, packet numbers, buffers
  explicit Client(std::unique_ptr<Connection> connection);

  std::unique_ptr<Connection> connection_;
};

}  // namespace prism::client
