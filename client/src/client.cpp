// libprism-client: endpoint parsing, the blocking UDP transport (Client::Connection)
// and the admin requests built on call() (docs/protocol.md §2-4).
#include "prism/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "net/datagram.hpp"

namespace prism::client {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::strerror(err); }

// Connection ids must not collide between clients, so the generator is seeded with
// more than the 32 bits of one random_device draw.
std::mt19937_64 make_rng() {
  std::random_device device;
  std::seed_seq seq{device(), device(), device(), device()};
  return std::mt19937_64(seq);
}

// "a, b, c", or "none" for an empty list.
template <typename Range, typename Name>
std::string join_names(const Range& items, Name name) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += name(item);
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Expected<Endpoint> parse_endpoint(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return make_error("invalid endpoint '" + std::string(text) + "': " + std::string(why));
  };
  Endpoint endpoint;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return invalid("missing ']' after the IPv6 address");
    endpoint.host = std::string(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) return invalid("expected [HOST]:PORT");
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("expected HOST:PORT");
    endpoint.host = std::string(text.substr(0, colon));
    if (endpoint.host.find(':') != std::string::npos) {
      return invalid("an IPv6 address needs brackets, as in [::1]:7777");
    }
    port_text = text.substr(colon + 1);
  }
  if (endpoint.host.empty()) return invalid("empty host");
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port == 0 || port > 65535) {
    return invalid("port must be a number from 1 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(port);
  return endpoint;
}

std::string to_string(const Endpoint& endpoint) {
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

std::string_view status_name(v1::Status status) {
  // Status_Name returns a reference to a static string, so the view stays valid.
  const std::string& full = v1::Status_Name(status);
  std::string_view name = full;
  if (!name.starts_with("STATUS_")) return "UNKNOWN";
  return name.substr(7);
}

// The transport: one connected UDP socket and the per-connection counters of the
// datagram header (protocol.md §2.1). One request or ping is outstanding at a time.
class Client::Connection {
 public:
  Connection(Endpoint endpoint, int fd, std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)),
        peer_(to_string(endpoint_)),
        timeout_(timeout),
        fd_(fd),
        rng_(make_rng()),
        buffer_(net::kMaxDatagramSize) {
    // A connection id of 0 would look unset in the server's logs.
    do connection_id_ = rng_(); while (connection_id_ == 0);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { ::close(fd_); }

  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& peer() const { return peer_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) {
    timeout_ = std::max(timeout, std::chrono::milliseconds(1));
  }

  uint32_t next_request_id() {
    // protocol.md §3.2: 0 is never a request id.
    if (++last_request_id_ == 0) ++last_request_id_;
    return last_request_id_;
  }
  uint64_t next_nonce() { return rng_(); }

  // Sends `packet` as one plain datagram.
  Expected<void> send(const v1::Packet& packet) {
    const net::DatagramHeader header{.connection_id = connection_id_,
                                     .packet_number = next_packet_number_};
    const size_t size = net::encode_datagram(header, packet, buffer_);
    if (size == 0) {
      return make_error("request of " + std::to_string(packet.ByteSizeLong()) +
                        " bytes does not fit in one datagram (at most " +
                        std::to_string(net::kMaxDatagramSize - net::kHeaderSize) + ")");
    }
    ++next_packet_number_;
    for (;;) {
      if (::send(fd_, buffer_.data(), size, 0) >= 0) return {};
      if (errno == EINTR) continue;
      return socket_error("send to", errno);
    }
  }

  // Reads datagrams until `accept` returns true for one of their frames (true), or
  // `deadline` passes (false). Datagrams that fail to decode are skipped; the socket is
  // connected, so the kernel already drops datagrams from any other address.
  template <typename Accept>
  Expected<bool> receive_until(Clock::time_point deadline, Accept&& accept) {
    for (;;) {
      const auto now = Clock::now();
      if (now >= deadline) return false;
      // Round up so that a wait shorter than 1 ms does not spin.
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      pollfd pfd{.fd = fd_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&pfd, 1, static_cast<int>(wait.count()));
      if (ready < 0) {
        if (errno == EINTR) continue;
        return socket_error("poll on the socket to", errno);
      }
      if (ready == 0) continue;
      const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return socket_error("receive from", errno);
      }
      net::DatagramHeader header;
      const std::span<const uint8_t> datagram(buffer_.data(), static_cast<size_t>(n));
      if (net::decode_datagram(datagram, net::kMaxDatagramSize, header, incoming_) !=
          net::DropReason::kNone) {
        continue;
      }
      for (const auto& frame : incoming_.frames()) {
        if (accept(frame)) return true;
      }
    }
  }

 private:
  Error socket_error(std::string_view what, int err) const {
    if (err == ECONNREFUSED) {
      return make_error("nothing is listening on " + peer_ + " (connection refused)");
    }
    return make_error(std::string(what) + " " + peer_ + ": " + errno_text(err));
  }

  Endpoint endpoint_;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  int fd_;
  std::mt19937_64 rng_;
  uint64_t connection_id_ = 0;
  uint64_t next_packet_number_ = 0;
  uint32_t last_request_id_ = 0;
  std::vector<uint8_t> buffer_;  // one datagram, sent or received
  v1::Packet incoming_;
};

Expected<std::vector<SocketAddress>> resolve_addresses(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return make_error("cannot resolve '" + endpoint.host + "': " + ::gai_strerror(rc));
  }
  std::vector<SocketAddress> addresses;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    SocketAddress a;
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    addresses.push_back(a);
  }
  ::freeaddrinfo(found);
  return addresses;
}

Expected<Client> Client::connect(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds(0)) {
    return make_error("timeout must be positive, got " + std::to_string(timeout.count()) + " ms");
  }
  auto addresses = resolve_addresses(endpoint);
  if (!addresses) return make_error(addresses.error());
  std::string last_error = "no address";
  int fd = -1;
  for (const auto& a : *addresses) {
    fd = ::socket(a.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = "socket: " + errno_text(errno);
      continue;
    }
    // A connected UDP socket only receives from the server and reports ICMP errors.
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
      last_error = "connect: " + errno_text(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    break;
  }
  if (fd < 0) return make_error("cannot open a socket to " + to_string(endpoint) + ": " + last_error);
  return Client(std::make_unique<Connection>(endpoint, fd, timeout));
}

Client::Client(std::unique_ptr<Connection> connection) : connection_(std::move(connection)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

const Endpoint& Client::endpoint() const { return connection_->endpoint(); }
std::chrono::milliseconds Client::timeout() const { return connection_->timeout(); }
void Client::set_timeout(std::chrono::milliseconds timeout) { connection_->set_timeout(timeout); }

Expected<Reply> Client::call(uint32_t packet_id, std::string_view payload) {
  Connection& conn = *connection_;
  const uint32_t request_id = conn.next_request_id();
  v1::Packet packet;
  v1::Message* message = packet.add_frames()->mutable_message();
  message->set_request_id(request_id);
  message->set_packet_id(packet_id);
  message->set_payload(std::string(payload));

  const auto deadline = Clock::now() + conn.timeout();
  if (auto sent = conn.send(packet); !sent) return Error{sent.error()};

  Reply reply;
  auto matched = conn.receive_until(deadline, [&](const v1::Frame& frame) {
    if (frame.has_message()) {
      const v1::Message& m = frame.message();
      if (!m.is_reply() || m.request_id() != request_id) return false;
      reply.status = m.status();
      reply.message = m.status_message();
      reply.payload = m.payload();
      return true;
    }
    if (frame.has_close()) {
      // The session is gone; the request will never be answered (DESIGN.md §3).
      reply.status = v1::STATUS_UNAVAILABLE;
      reply.message = "server closed the connection: " + frame.close().reason();
      return true;
    }
    return false;
  });
  if (!matched) return Error{matched.error()};
  if (!*matched) {
    reply.status = v1::STATUS_TIMEOUT;
    reply.message = "no reply within " + std::to_string(conn.timeout().count()) + " ms";
  }
  return reply;
}

Expected<std::chrono::nanoseconds> Client::ping() {
  Connection& conn = *connection_;
  const uint64_t nonce = conn.next_nonce();
  v1::Packet packet;
  packet.add_frames()->mutable_ping()->set_nonce(nonce);

  const auto start = Clock::now();
  if (auto sent = conn.send(packet); !sent) return Error{sent.error()};
  std::string closed;
  auto matched = conn.receive_until(start + conn.timeout(), [&](const v1::Frame& frame) {
    if (frame.has_close()) {
      closed = frame.close().reason();
      return true;
    }
    return frame.has_pong() && frame.pong().nonce() == nonce;
  });
  const auto rtt = Clock::now() - start;
  if (!matched) return Error{matched.error()};
  if (!*matched) return make_error("no pong within " + std::to_string(conn.timeout().count()) + " ms");
  if (!closed.empty()) return make_error("server closed the connection: " + closed);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(rtt);
}

namespace {

// An admin request has no reply to hand back when it fails, so a timeout or a
// non-OK status becomes an error that names the request and the server.
Expected<std::string> admin_payload(Client& client, std::string_view what, uint32_t packet_id) {
  auto reply = client.call(packet_id, {});
  if (!reply) return Error{std::string(what) + ": " + reply.error()};
  if (reply->status == v1::STATUS_TIMEOUT) {
    return make_error(std::string(what) + ": no reply from " + to_string(client.endpoint()) +
                      " within " + std::to_string(client.timeout().count()) + " ms");
  }
  if (reply->status != v1::STATUS_OK) {
    std::string text = std::string(what) + ": server answered " +
                       std::string(status_name(reply->status));
    if (!reply->message.empty()) text += ": " + reply->message;
    return make_error(std::move(text));
  }
  return std::move(reply->payload);
}

}  // namespace

Expected<v1::PluginList> Client::list_plugins() {
  auto payload = admin_payload(*this, "list plugins", v1::HOST_LIST_PLUGINS);
  if (!payload) return Error{payload.error()};
  v1::PluginList list;
  if (!list.ParseFromString(*payload)) {
    return make_error("list plugins: the reply from " + to_string(endpoint()) +
                      " is not a prism.v1.PluginList");
  }
  return list;
}

Expected<v1::ServerStatus> Client::server_status() {
  auto payload = admin_payload(*this, "server status", v1::HOST_SERVER_STATUS);
  if (!payload) return Error{payload.error()};
  v1::ServerStatus status;
  if (!status.ParseFromString(*payload)) {
    return make_error("server status: the reply from " + to_string(endpoint()) +
                      " is not a prism.v1.ServerStatus");
  }
  return status;
}

Expected<uint32_t> Client::resolve(std::string_view service, std::string_view method) {
  auto list = list_plugins();
  if (!list) return Error{list.error()};
  const auto& plugins = list->plugins();
  const auto plugin = std::find_if(plugins.begin(), plugins.end(),
                                   [&](const v1::PluginInfo& p) { return p.name() == service; });
  if (plugin == plugins.end()) {
    return make_error("no service '" + std::string(service) + "' (services: " +
                      join_names(plugins, [](const v1::PluginInfo& p) { return p.name(); }) + ")");
  }
  const auto& methods = plugin->methods();
  const auto found = std::find_if(methods.begin(), methods.end(),
                                  [&](const v1::PluginMethod& m) { return m.name() == method; });
  if (found == methods.end()) {
    return make_error("service '" + std::string(service) + "' has no method '" +
                      std::string(method) + "' (methods: " +
                      join_names(methods, [](const v1::PluginMethod& m) { return m.name(); }) + ")");
  }
  return found->packet_id();
}

}  // namespace prism::client
