// The `default` service: liveness and introspection for clients and operators (ping,
// echo, server time, server info, the services loaded), and the `echo:*` channels that
// make the WebSocket gateway testable without rooms. Small, so it answers in JSON.
#include <prism/plugin.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <mutex>
#include <string_view>

namespace {

using prism::sdk::Bytes;
using prism::sdk::Request;
using nlohmann::json;

class DefaultService {
 public:
  static constexpr prism::sdk::ServiceInfo info{.name = "default",
                                                .version = "1.0.0",
                                                .packet_id_first = 100,
                                                .packet_id_count = 100,
                                                .concurrent = true};

  DefaultService(prism::sdk::Host& host, std::string_view /*config: none*/)
      : host_(host), echo_requests_(host.counter("echo_requests", "Echo requests answered")) {}

  void ping(Request req, Bytes) { req.ok(json{{"pong", true}}.dump()); }

  void echo(Request req, Bytes payload) {
    echo_requests_.add(1);
    req.ok(payload);
  }

  void time(Request req, Bytes) { req.ok(json{{"unix_ms", host_.server_info().now_ms}}.dump()); }

  // Not named info(): that name is the ServiceInfo above.
  void server_info(Request req, Bytes) {
    const prism_server_info_t server = host_.server_info();
    json plugins = json::array();
    host_.visit_plugins([&](const prism_plugin_info_t& plugin) {
      plugins.push_back({{"name", plugin.name},
                         {"version", plugin.version},
                         {"first_packet_id", plugin.first_packet_id},
                         {"last_packet_id", plugin.last_packet_id},
                         {"requests", plugin.requests},
                         {"errors", plugin.errors}});
    });
    // A clock stepped backwards must not make uptime wrap around.
    const uint64_t uptime_ms =
        server.now_ms > server.started_at_ms ? server.now_ms - server.started_at_ms : 0;
    req.ok(json{{"version", server.version},
                {"uptime_ms", uptime_ms},
                {"workers", server.workers},
                {"plugins", std::move(plugins)}}
               .dump());
  }

  void services(Request req, Bytes) {
    json services = json::array();
    host_.visit_plugins([&](const prism_plugin_info_t& plugin) {
      services.push_back({{"name", plugin.name},
                          {"version", plugin.version},
                          {"first_packet_id", plugin.first_packet_id},
                          {"last_packet_id", plugin.last_packet_id}});
    });
    req.ok(json{{"services", std::move(services)}}.dump());
  }

  // {"topic":"echo:lobby","message":...}: publishes the message to the topic, as a
  // shout on that channel does (its subscribers receive it with packet id 105, "shout").
  void shout(Request req, Bytes payload) {
    const json in = json::parse(prism::sdk::as_text(payload), nullptr, false);
    if (in.is_discarded() || !in.is_object() || !in.contains("topic") || !in["topic"].is_string()) {
      return req.fail(PRISM_INVALID_ARGUMENT, R"(expected {"topic":"echo:...","message":...})");
    }
    const std::string topic = in["topic"];
    const std::string message = in.value("message", json::object()).dump();
    req.reply(host_.publish(topic, kShout, message), {}, {});
  }

  // {"count":N,"every_ms":M}: replies {"count":N}, then pushes N "tick" messages {"n":i}
  // to the caller, one every M ms, from a timer: server push without a request. Asked
  // on a channel, the ticks come on that channel alone (push_topic).
  void tick(Request req, Bytes payload) { start_ticks(std::move(req), payload, {}); }

  void start_ticks(Request req, Bytes payload, std::string topic) {
    const json in = json::parse(prism::sdk::as_text(payload), nullptr, false);
    const int count = in.is_object() ? in.value("count", 0) : 0;
    const int every_ms = in.is_object() ? in.value("every_ms", 0) : 0;
    if (count < 1 || count > kMaxTicks || every_ms < 1 || every_ms > 10000) {
      return req.fail(PRISM_INVALID_ARGUMENT,
                      R"(expected {"count":1..100,"every_ms":1..10000})");
    }
    const uint64_t session = req.session();
    auto sent = std::make_shared<int>(0);
    const std::chrono::milliseconds every(every_ms);
    std::lock_guard lock(tickers_mutex_);
    // One ticker per session: a new one replaces the last. Each ends itself after its
    // count, or at the first push that finds the session gone.
    tickers_[session] = host_.start_timer(every, every, [this, session, count, sent, topic] {
      const prism_status_t pushed =
          host_.push_topic(session, topic, kTick, json{{"n", ++*sent}}.dump());
      if (pushed != PRISM_OK || *sent == count) {
        std::lock_guard lock(tickers_mutex_);
        tickers_.erase(session);
      }
    });
    if (!tickers_[session]) {
      tickers_.erase(session);
      return req.fail(PRISM_UNAVAILABLE, "no timer");
    }
    req.ok(json{{"count", count}}.dump());
  }

  // echo:* channels (plugin.h, "Channels"): joining subscribes the connection to the topic;
  // "echo" answers the payload back, "shout" sends it to everyone on the topic, "tick"
  // is the method above, "socket" answers how the socket connected (plugin.h `connect`).
  static constexpr const char* channel_topics[] = {"echo:*", nullptr};

  void channel(Request req, const prism::sdk::ChannelMessage& m) {
    const uint64_t session = req.session();
    switch (m.kind) {
      case PRISM_CHANNEL_JOIN: {
        const prism_status_t subscribed = host_.subscribe(session, m.topic);
        if (subscribed != PRISM_OK) return req.fail(subscribed, "cannot subscribe to the topic");
        return req.ok(json{{"topic", m.topic}}.dump());
      }
      case PRISM_CHANNEL_LEAVE:
        host_.unsubscribe(session, m.topic);
        return req.ok();
      case PRISM_CHANNEL_HTTP:
        break;  // no HTTP routes (no pattern starts with '/')
      case PRISM_CHANNEL_EVENT:
        if (m.event == "echo") return req.ok(m.payload);
        if (m.event == "shout") {
          return req.reply(host_.publish(m.topic, kShout, m.payload), {}, {});
        }
        if (m.event == "tick") {
          return start_ticks(std::move(req), prism::sdk::as_bytes(m.payload), std::string(m.topic));
        }
        if (m.event == "socket") return req.ok(m.connect.empty() ? "{}" : m.connect);
        return req.fail(PRISM_NOT_FOUND,
                        "no event " + std::string(m.event) + " (echo, shout, tick, socket)");
    }
    req.fail(PRISM_INVALID_ARGUMENT, "unknown channel message");
  }

  static constexpr uint32_t kShout = 5;
  static constexpr uint32_t kTick = 6;
  static constexpr int kMaxTicks = 100;
  static constexpr prism::sdk::Method<DefaultService> methods[] = {
      {0, "ping", &DefaultService::ping},
      {1, "echo", &DefaultService::echo},
      {2, "time", &DefaultService::time},
      {3, "info", &DefaultService::server_info},
      {4, "services", &DefaultService::services},
      {kShout, "shout", &DefaultService::shout},
      {kTick, "tick", &DefaultService::tick},
  };

 private:
  prism::sdk::Host& host_;  // owned by the SDK; outlives this instance
  prism::sdk::Counter echo_requests_;
  // Concurrent service: tick runs on every worker, each timer fires on its own.
  std::mutex tickers_mutex_;
  std::map<uint64_t, prism::sdk::Host::Timer> tickers_;  // by session
};

}  // namespace

PRISM_PLUGIN(DefaultService)
