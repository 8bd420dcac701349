// Admin requests: list plugins, server status.
#include "admin/admin_service.hpp"

#include <chrono>

#include "base/clock.hpp"
#include "net/datagram.hpp"
#include "prism/v1/admin.pb.h"

namespace prism::admin {

AdminService::AdminService(plugins::Registry& registry)
    : registry_(registry),
      received_(metrics::registry().counter("prism_datagrams_received_total", "",
                                            "Datagrams received on the UDP listener")) {
  for (size_t i = 1; i < static_cast<size_t>(net::DropReason::kCount); ++i) {
    std::string labels = "reason=\"";
    labels += net::drop_reason_name(static_cast<net::DropReason>(i));
    labels += '"';
    dropped_.push_back(&metrics::registry().counter(
        "prism_datagrams_dropped_total", labels, "Datagrams dropped without a reply, by reason"));
  }
}

v1::PluginList AdminService::plugin_list() const {
  v1::PluginList list;
  for (const auto& route : registry_.table()->routes()) {
    const auto& p = *route.plugin;
    auto* info = list.add_plugins();
    info->set_name(p.name());
    info->set_version(p.version());
    info->set_first_packet_id(route.first);
    info->set_last_packet_id(route.last);
    info->set_file(p.file());
    info->set_requests(p.requests());
    info->set_errors(p.errors());
    info->set_concurrent(p.concurrent());
    info->set_loaded_at_ms(p.loaded_at_ms());
    for (const auto& m : p.methods()) {
      auto* method = info->add_methods();
      method->set_name(m.name);
      method->set_packet_id(m.packet_id);
    }
  }
  return list;
}

v1::ServerStatus AdminService::server_status() const {
  const auto& facts = registry_.facts();
  v1::ServerStatus status;
  status.set_version(facts.version);
  status.set_uptime_ms(unix_ms() - facts.started_at_ms);
  status.set_workers(facts.workers);
  status.set_datagrams_received(received_.value());
  uint64_t dropped = 0;
  for (const auto* c : dropped_) dropped += c->value();
  status.set_datagrams_dropped(dropped);
  uint64_t requests = 0;
  for (const auto& route : registry_.table()->routes()) requests += route.plugin->requests();
  status.set_requests(requests);
  return status;
}

void AdminService::on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                                   net::ReplyTransport& transport) {
  std::string payload;
  switch (request.packet_id()) {
    case v1::HOST_LIST_PLUGINS:
      plugin_list().SerializeToString(&payload);
      break;
    case v1::HOST_SERVER_STATUS:
      server_status().SerializeToString(&payload);
      break;
    default:
      transport.send_reply(origin, request.request_id(), request.packet_id(),
                           v1::STATUS_INVALID_PACKET,
                           "unknown host packet id " + std::to_string(request.packet_id()), {});
      return;
  }
  transport.send_reply(origin, request.request_id(), request.packet_id(), v1::STATUS_OK, "",
                       {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
}

}  // namespace prism::admin
