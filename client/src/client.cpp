// libprism-client: endpoint parsing, the Client calls over Client::Connection
// (connection.cpp) and the admin requests built on call() (docs/protocol.md §4-5).
#include "prism/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>
#include <optional>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "net/crypto/key_file.hpp"

namespace prism::client {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::strerror(err); }

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

Expected<ServerKey> read_server_key(const std::string& text_or_path) {
  if (text_or_path.starts_with(net::crypto::kPublicKeyPrefix)) {
    return net::crypto::decode_public_key(text_or_path);
  }
  std::ifstream in(text_or_path);
  if (!in) return make_error(text_or_path + ": cannot read (expected prism1:<hex> or a server.pub file)");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  auto key = net::crypto::decode_public_key(text);
  if (!key) return make_error(text_or_path + ": " + key.error());
  return key;
}

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

Expected<Client> Client::connect(const Endpoint& endpoint, const ConnectOptions& options) {
  auto connection = Connection::open(endpoint, options);
  if (!connection) return make_error(connection.error());
  return Client(std::move(*connection));
}

Client::Client(std::unique_ptr<Connection> connection) : connection_(std::move(connection)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

const Endpoint& Client::endpoint() const { return connection_->endpoint(); }
std::chrono::milliseconds Client::timeout() const { return connection_->timeout(); }
void Client::set_timeout(std::chrono::milliseconds timeout) { connection_->set_timeout(timeout); }
bool Client::connected() const { return connection_->connected(); }
const std::string& Client::close_reason() const { return connection_->close_reason(); }
size_t Client::pending() const { return connection_->pending(); }
void Client::set_push_handler(PushCallback handler) {
  connection_->set_push_handler(std::move(handler));
}
void Client::on_push(uint32_t packet_id, PushCallback callback) {
  connection_->on_push(packet_id, std::move(callback));
}
void Client::on_topic(std::string topic, PushCallback callback) {
  connection_->on_topic(std::move(topic), std::move(callback));
}
Expected<void> Client::rebind() { return connection_->rebind(); }

Expected<uint32_t> Client::send_request(uint32_t packet_id, std::string_view payload,
                                        v1::Delivery delivery, ReplyCallback done,
                                        std::chrono::milliseconds timeout) {
  return connection_->send_request(packet_id, payload, delivery, std::move(done), timeout);
}

Expected<void> Client::poll(std::chrono::milliseconds max_wait) {
  return connection_->pump(Clock::now() + max_wait);
}

int Client::descriptor() const { return connection_->descriptor(); }

Clock::time_point Client::next_wakeup() const { return connection_->next_wakeup(); }

Expected<Reply> Client::call(uint32_t packet_id, std::string_view payload, v1::Delivery delivery) {
  // Shared with the callback: when pumping fails the request stays pending, and its
  // callback may still run from a later call, after this frame is gone.
  auto reply = std::make_shared<std::optional<Reply>>();
  auto sent = connection_->send_request(packet_id, payload, delivery,
                                        [reply](const Reply& r) { *reply = r; }, timeout());
  if (!sent) return sent.failure();
  // The request's own deadline completes it; the extra second only guards the loop.
  auto done = connection_->pump_until(Clock::now() + timeout() + std::chrono::seconds(1),
                                      [&] { return reply->has_value(); });
  if (!done) return done.failure();
  if (!*reply) {
    *reply = Reply{.status = v1::STATUS_TIMEOUT,
                   .message = "no reply within " + std::to_string(timeout().count()) + " ms",
                   .payload = {}};
  }
  return std::move(**reply);
}

Expected<Reply> Client::login(std::string_view service, std::string_view token) {
  v1::LoginRequest request;
  request.set_service(std::string(service));
  request.set_token(std::string(token));
  return call(v1::HOST_LOGIN, request.SerializeAsString());
}

Expected<std::chrono::nanoseconds> Client::ping() {
  Connection& conn = *connection_;
  const auto start = Clock::now();
  const uint64_t nonce = conn.send_ping();
  auto got = conn.pump_until(start + conn.timeout(), [&] {
    return conn.pong_arrived(nonce) || !conn.connected();
  });
  const auto rtt = Clock::now() - start;
  if (!got) return got.failure();
  if (!conn.connected()) return make_error("session closed: " + conn.close_reason());
  if (!*got) return make_error("no pong within " + std::to_string(conn.timeout().count()) + " ms");
  return std::chrono::duration_cast<std::chrono::nanoseconds>(rtt);
}

namespace {

// An admin request has no reply to hand back when it fails, so a timeout or a
// non-OK status becomes an error that names the request and the server.
Expected<std::string> admin_payload(Client& client, std::string_view what, uint32_t packet_id,
                                    std::string_view request = {}) {
  auto reply = client.call(packet_id, request);
  if (!reply) return Error{std::string(what) + ": " + reply.error()};
  if (reply->status == v1::STATUS_TIMEOUT) {
    return make_error(std::string(what) + ": no reply from " + to_string(client.endpoint()) +
                      " within " + std::to_string(client.timeout().count()) + " ms");
  }
  if (reply->status != v1::STATUS_OK) {
    std::string text = std::string(what) + ": server answered " +
                       std::string(status_name(reply->status));
    if (!reply->message.empty()) text += ": " + reply->message;
    return make_error(ErrorCode::kServerStatus, std::move(text));
  }
  return std::move(reply->payload);
}

}  // namespace


namespace {

// An admin reply's payload parsed as `T`; the error names the request and the server.
template <typename T>
Expected<T> parse_reply(const Expected<std::string>& payload, std::string_view what,
                        const Endpoint& server) {
  if (!payload) return payload.failure();
  T message;
  if (!message.ParseFromString(*payload)) {
    return make_error(std::string(what) + ": the reply from " + to_string(server) + " is not a " +
                      message.GetTypeName());
  }
  return message;
}

}  // namespace

Expected<v1::PluginList> Client::list_plugins() {
  return parse_reply<v1::PluginList>(admin_payload(*this, "list plugins", v1::HOST_LIST_PLUGINS),
                                     "list plugins", endpoint());
}

Expected<v1::ServerStatus> Client::server_status() {
  return parse_reply<v1::ServerStatus>(
      admin_payload(*this, "server status", v1::HOST_SERVER_STATUS), "server status", endpoint());
}

Expected<v1::PluginInfo> Client::load_plugin(std::string_view path) {
  v1::PluginFile file;
  file.set_path(std::string(path));
  return parse_reply<v1::PluginInfo>(
      admin_payload(*this, "load plugin", v1::HOST_LOAD_PLUGIN, file.SerializeAsString()),
      "load plugin", endpoint());
}

Expected<void> Client::unload_plugin(std::string_view name) {
  v1::PluginName request;
  request.set_name(std::string(name));
  auto payload = admin_payload(*this, "unload plugin", v1::HOST_UNLOAD_PLUGIN,
                               request.SerializeAsString());
  if (!payload) return payload.failure();
  return {};
}

Expected<v1::PluginInfo> Client::reload_plugin(std::string_view name, std::string_view path) {
  v1::PluginReload request;
  request.set_name(std::string(name));
  request.set_path(std::string(path));
  return parse_reply<v1::PluginInfo>(
      admin_payload(*this, "reload plugin", v1::HOST_RELOAD_PLUGIN, request.SerializeAsString()),
      "reload plugin", endpoint());
}

Expected<std::string> Client::stats() {
  auto text = parse_reply<v1::MetricsText>(admin_payload(*this, "stats", v1::HOST_STATS), "stats",
                                           endpoint());
  if (!text) return text.failure();
  return text->text();
}

Expected<void> Client::config_check() {
  auto payload = admin_payload(*this, "config check", v1::HOST_CONFIG_CHECK);
  if (!payload) return payload.failure();
  return {};
}

Expected<void> Client::subscribe(std::string_view topic) {
  v1::Topic request;
  request.set_topic(std::string(topic));
  auto payload = admin_payload(*this, "subscribe", v1::HOST_SUBSCRIBE, request.SerializeAsString());
  if (!payload) return payload.failure();
  return {};
}

Expected<void> Client::unsubscribe(std::string_view topic) {
  v1::Topic request;
  request.set_topic(std::string(topic));
  auto payload =
      admin_payload(*this, "unsubscribe", v1::HOST_UNSUBSCRIBE, request.SerializeAsString());
  if (!payload) return payload.failure();
  return {};
}

Expected<void> Client::publish(std::string_view topic, std::string_view payload) {
  v1::Publish request;
  request.set_topic(std::string(topic));
  request.set_payload(std::string(payload));
  auto reply = admin_payload(*this, "publish", v1::HOST_PUBLISH, request.SerializeAsString());
  if (!reply) return reply.failure();
  return {};
}

Expected<uint32_t> Client::resolve(std::string_view service, std::string_view method) {
  auto list = list_plugins();
  if (!list) return list.failure();
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
