// The prism_host_api_t table every plugin receives in init (plugin.h). Each entry
// checks its arguments: a plugin's mistake becomes a status, never a host crash.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "base/clock.hpp"
#include "metrics/metrics.hpp"
#include "plugins/loaded_plugin.hpp"
#include "plugins/host_view.hpp"
#include "plugins/plugin_types.hpp"
#include "plugins/realtime_api.hpp"
#include "plugins/routing_table.hpp"
#include "plugins/store_api.hpp"

namespace prism::plugins {
namespace {

prism_status_t api_reply(prism_request_t* request, prism_status_t status, const char* message,
                         prism_bytes_t payload) {
  if (request == nullptr) return PRISM_INVALID_ARGUMENT;
  if (payload.data == nullptr && payload.len != 0) {
    // plugin.h: the request is answered and released even when the call is refused.
    request->complete(PRISM_INTERNAL, "plugin replied with an invalid payload", {});
    return PRISM_INVALID_ARGUMENT;
  }
  return request->complete(status, message != nullptr ? message : "", {payload.data, payload.len});
}

uint64_t api_request_session(const prism_request_t* request) {
  return request != nullptr ? request->session_id() : 0;
}

void api_log(prism_host_t* host, prism_log_level_t level, const char* message, size_t len) {
  if (host == nullptr || message == nullptr) return;
  // One line per event, and the plugin's text cannot forge fields or lines of its own.
  std::string text(message, len);
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
    if (c == '"') c = '\'';
  }
  const std::string& name = host->plugin->name();
  switch (level) {
    case PRISM_LOG_DEBUG: SPDLOG_DEBUG("event=plugin_log plugin={} msg=\"{}\"", name, text); break;
    case PRISM_LOG_INFO: SPDLOG_INFO("event=plugin_log plugin={} msg=\"{}\"", name, text); break;
    case PRISM_LOG_WARN: SPDLOG_WARN("event=plugin_log plugin={} msg=\"{}\"", name, text); break;
    default: SPDLOG_ERROR("event=plugin_log plugin={} msg=\"{}\"", name, text); break;
  }
}

prism_counter_t* api_counter_register(prism_host_t* host, const char* name, const char* help) {
  if (host == nullptr || name == nullptr || !is_identifier(name, 64)) return nullptr;
  // The host's own per-plugin series share the prefix; a plugin may not write to them.
  const std::string_view n(name);
  if (n == "requests_total" || n == "errors_total" || n.starts_with("request_seconds")) {
    return nullptr;
  }
  auto& counter = metrics::registry().counter(
      std::string("prism_plugin_") + name, "plugin=\"" + host->plugin->name() + "\"",
      help != nullptr ? help : "");
  // The handle is the counter itself; only this file turns it back.
  return reinterpret_cast<prism_counter_t*>(&counter);
}

void api_counter_add(prism_counter_t* counter, uint64_t delta) {
  if (counter != nullptr) reinterpret_cast<metrics::Counter*>(counter)->add(delta);
}

void api_server_info(prism_host_t* host, prism_server_info_t* out) {
  if (host == nullptr || out == nullptr) return;
  const auto& facts = host->host->facts();
  // Fill only the fields the caller's struct has room for.
  prism_server_info_t info{};
  info.struct_size = sizeof info;
  info.version = facts.version.c_str();
  info.started_at_ms = facts.started_at_ms;
  info.now_ms = unix_ms();
  info.workers = facts.workers;
  info.node_id = facts.node_id.c_str();
  const uint32_t size = std::min<uint32_t>(out->struct_size, sizeof info);
  if (size <= sizeof(uint32_t)) return;
  std::memcpy(reinterpret_cast<char*>(out) + sizeof(uint32_t),
              reinterpret_cast<const char*>(&info) + sizeof(uint32_t), size - sizeof(uint32_t));
}

void api_visit_plugins(prism_host_t* host, prism_plugin_visitor_fn visit, void* user) {
  if (host == nullptr || visit == nullptr) return;
  const auto table = host->host->table();
  for (const auto& route : table->routes()) {
    const auto& p = *route.plugin;
    prism_plugin_info_t info{};
    info.struct_size = sizeof info;
    info.name = p.name().c_str();
    info.version = p.version().c_str();
    info.first_packet_id = route.first;
    info.last_packet_id = route.last;
    info.requests = p.requests();
    info.errors = p.errors();
    visit(user, &info);
  }
}

prism_host_api_t make_host_api() {
  prism_host_api_t api{};
  api.struct_size = sizeof(prism_host_api_t);
  api.abi_version_major = PRISM_ABI_VERSION_MAJOR;
  api.abi_version_minor = PRISM_ABI_VERSION_MINOR;
  api.reply = api_reply;
  api.request_session = api_request_session;
  api.log = api_log;
  api.counter_register = api_counter_register;
  api.counter_add = api_counter_add;
  api.server_info = api_server_info;
  api.visit_plugins = api_visit_plugins;
  add_store_api(api);
  add_realtime_api(api);
  return api;
}

}  // namespace

const prism_host_api_t& host_api() {
  static const prism_host_api_t api = make_host_api();
  return api;
}

}  // namespace prism::plugins
