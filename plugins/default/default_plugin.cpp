// The `default` service: liveness and introspection for clients and operators (ping,
// echo, server time, server info, the services loaded). Small, so it answers in JSON.
#include <prism/plugin.hpp>

#include <nlohmann/json.hpp>

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

  static constexpr prism::sdk::Method<DefaultService> methods[] = {
      {0, "ping", &DefaultService::ping},
      {1, "echo", &DefaultService::echo},
      {2, "time", &DefaultService::time},
      {3, "info", &DefaultService::server_info},
      {4, "services", &DefaultService::services},
  };

 private:
  prism::sdk::Host& host_;  // owned by the SDK; outlives this instance
  prism::sdk::Counter echo_requests_;
};

}  // namespace

PRISM_PLUGIN(DefaultService)
