// One worker's TCP listener for HTTP and WebSocket (DESIGN.md §8): a socket bound
// to ws.listen with SO_REUSEPORT, so every worker accepts on the same port, whose
// connections are handed to a libwebsockets context on the worker's own libuv loop (a
// foreign loop). prismd listens itself because libwebsockets sets SO_REUSEPORT only for
// a context with several service threads, which Debian's build (LWS_MAX_SMP 1) has not.
// HTTP: GET /metrics (Prometheus text), /healthz (live) and /readyz (ready). WebSocket:
// Phoenix Channels v2 at /socket/websocket and /socket/<id>/websocket (protocol.md §7).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <chrono>

#include "base/expected.hpp"
#include "config/config.hpp"
#include "net/loop_access.hpp"
#include "net/transport.hpp"
#include "net/uv_handle.hpp"

struct lws_context;
struct lws;

namespace prism::ws {

// What /healthz and /readyz report.
struct Health {
  bool ready = false;                 // plugins loaded and every storage facet reachable
  std::vector<std::string> degraded;  // what is not healthy, e.g. "store:leaderboards:redis"
};

struct GatewaySettings {
  config::Endpoint listen;
  unsigned worker = 0;  // the worker's index: the top byte of its sessions' ids
  std::chrono::milliseconds idle_timeout{60000};  // a socket silent this long is closed
  size_t max_frame_bytes = 1 << 20;               // a larger message closes the socket
  size_t max_connections = 10000;                 // WebSockets on this worker
  size_t max_connections_per_ip = 256;            // of those, from one address (its share)
  double messages_per_second = 100;               // per connection; bursts as many
  std::string tls_cert, tls_key;  // PEM files: when set, every connection speaks TLS
  size_t max_send_backlog = 8 << 20;              // bytes queued for one socket (server.max_send_backlog)
  // Called on the worker's thread, for each request, and must be thread-safe.
  std::function<std::string()> metrics;  // Prometheus text exposition
  std::function<Health()> health;
  std::function<bool(std::string_view token)> is_admin_token;  // an HTTP route's bearer
};

// The Phoenix Channels v2 JSON frame, [join_ref, ref, topic, event, payload].
struct PhoenixFrame {
  std::optional<std::string> join_ref;
  std::optional<std::string> ref;
  std::string topic;
  std::string event;
  std::string payload = "{}";  // JSON text
};
// A text message as a frame; the error says what is wrong with it.
Expected<PhoenixFrame> parse_phoenix_frame(std::string_view text);
std::string encode_phoenix_frame(const PhoenixFrame& frame);

// Also the ReplyTransport of the worker's WebSocket sessions: the dispatcher answers
// channel requests through it, the topic bus pushes through it.
class Gateway final : public net::ReplyTransport {
 public:
  // Makes the context on `loop`, whose thread must not be running yet (or be this one),
  // listening on settings.listen. `first` marks the first worker's: it refuses a port that
  // another process holds, which SO_REUSEPORT alone would silently share.
  static Expected<std::unique_ptr<Gateway>> open(net::LoopAccess& loop, GatewaySettings settings,
                                                 bool first);
  ~Gateway() override;
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The bound port (ws.listen's port 0 picks one).
  uint16_t port() const { return port_; }

  // On the loop's thread while it still runs (LoopAccess::at_stop): libwebsockets closes
  // its handles, and the loop's remaining turns free them and the context.
  void close();
  // After the worker's thread has ended, before its loop is closed (Server::shutdown):
  // on a foreign loop lws frees the context only when destroyed once more after its
  // handles closed (lws' own foreign-loop example does the same), else it leaks.
  void finish();

  // The HTTP answer to `path` (exposed for the unit test): status, content type, body.
  struct Answer {
    unsigned status = 200;
    std::string content_type;
    std::string body;
  };
  Answer answer(std::string_view path) const;

  // An HTTP request on a plugin's route (a channel pattern starting with '/', plugin.h):
  // asked as a PRISM_CHANNEL_HTTP request, answered when the plugin replies.
  struct HttpCall {
    uint64_t id = 0;     // while the plugin has it (live_calls_)
    std::string method;  // GET, POST, PUT, PATCH or DELETE ("" for another)
    std::string path;
    std::string params;  // the query, JSON
    std::string bearer;  // Authorization: Bearer <this>
    std::string body;
  };
  bool routes_to_plugin(std::string_view path) const;
  void ask_http(struct lws* wsi, HttpCall& call);
  void http_closed(uint64_t call_id);  // the connection closed before the answer

  // What the gateway asks of the services behind it: the Phoenix event name of a packet
  // id (the plugin's method name), and whether the service owning a packet id serves a
  // channel topic (a push without a topic goes to that service's joined channels).
  struct Services {
    std::function<std::string(uint32_t packet_id)> event_name;
    std::function<bool(uint32_t packet_id, std::string_view topic)> serves;
    std::function<bool(std::string_view topic)> has_channel;  // some plugin serves it
  };
  // Set before the worker starts. `handler` gets the sessions and channel messages.
  void set_handler(net::RequestHandler* handler) { handler_ = handler; }
  void set_services(Services services) { services_ = std::move(services); }

  // ReplyTransport, on the worker's thread.
  bool send_reply(const net::RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                  v1::Status status, std::string_view message,
                  std::span<const uint8_t> payload) override;
  net::PushResult send_push(uint64_t connection_id, uint32_t packet_id, v1::Delivery delivery,
                            std::string_view topic, std::span<const uint8_t> payload) override;
  void end_channel(uint64_t connection_id, std::string_view topic, std::string_view reason,
                   bool rejoin) override;
  bool is_open(uint64_t connection_id) const override { return connections_.contains(connection_id); }

  // libwebsockets' callbacks for a WebSocket connection (gateway.cpp). admit() decides an
  // upgrade: false when ws.max_connections or ws.max_connections_per_ip would be passed.
  bool admit(struct lws* wsi);
  uint64_t on_open(struct lws* wsi);
  int on_message(uint64_t session, std::string_view text);
  int on_writable(uint64_t session);
  void on_closed(uint64_t session);
  size_t max_frame_bytes() const { return settings_.max_frame_bytes; }

 private:
  explicit Gateway(GatewaySettings settings) : settings_(std::move(settings)) {}
  // Binds and listens on settings_.listen (reading back the port of a port 0).
  Expected<void> listen(bool first);
  static void on_acceptable(uv_poll_t* poll, int status, int events);

  struct Connection {
    struct lws* wsi = nullptr;
    net::RequestOrigin origin;
    std::string host;          // the peer address without the port (per-IP limit)
    std::string connect;       // the channel messages' connect JSON (plugin.h)
    std::string socket_id;     // the <id> of /socket/<id>/websocket, or ""
    std::string scope_prefix;  // "@<id>/" with an id (scoped_topic), else ""
    double tokens = 0;         // the message-rate bucket
    std::chrono::steady_clock::time_point refilled;
    std::deque<std::string> out;               // frames, each with LWS_PRE bytes in front
    size_t out_bytes = 0;                      // their sizes, against ws.max_send_backlog
    std::string close_reason;                  // set when the gateway ends the session
    std::map<std::string, std::string> joined;  // topic -> join_ref
  };
  struct Pending {
    uint64_t session = 0;
    net::ChannelKind kind = net::ChannelKind::kJoin;
    std::optional<std::string> join_ref, ref;
    std::string topic;
  };
  // Queues a frame for the socket. Past ws.max_send_backlog a reliable frame closes the
  // socket as a slow consumer and an unreliable one is dropped: false either way.
  bool queue(Connection& c, const PhoenixFrame& frame,
             v1::Delivery delivery = v1::DELIVERY_RELIABLE_ORDERED);
  // ws.idle_timeout_ms starts again for this socket (libwebsockets counts whole seconds).
  void restart_idle_clock(struct lws* wsi) const;
  // The id of the next channel request this gateway hands the dispatcher (never 0).
  uint32_t new_request_id();
  void ask_plugin(Connection& c, net::ChannelKind kind, const PhoenixFrame& frame);
  // The topic a socket's Phoenix topic names inside prismd: on a socket opened at
  // /socket/<id>/websocket, "@<id>/<topic>" when a plugin serves that (rooms: "@*"), so
  // two instances' "chat" never meet (protocol.md §7.2); else the topic itself.
  std::string scoped_topic(const Connection& c, const std::string& topic) const;

  GatewaySettings settings_;
  lws_context* context_ = nullptr;  // lws sets it to null once fully destroyed
  uv_loop_t* loop_ = nullptr;       // the worker's
  net::RequestHandler* handler_ = nullptr;
  Services services_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::unordered_map<uint32_t, Pending> pending_;  // channel requests the plugin answers
  std::unordered_map<std::string, size_t> per_host_;  // open WebSockets by peer address
  // Sets the HTTP answer of `wsi` and asks for the writable callback that sends it.
  void answer_http(struct lws* wsi, Answer answer);
  std::unordered_map<uint32_t, uint64_t> http_calls_;       // request id -> call id
  std::unordered_map<uint64_t, struct lws*> live_calls_;     // call id -> its connection
  uint64_t next_http_call_ = 0;
  uint32_t next_request_id_ = 0;
  uint64_t next_session_ = 0;
  int listen_fd_ = -1;
  net::UvHandle<uv_poll_t> acceptor_;  // readable: connections wait on listen_fd_
  uint16_t port_ = 0;
};

}  // namespace prism::ws
