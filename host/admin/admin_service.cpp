// Admin requests: list, status, stats, config check, load, unload, reload.
#include "admin/admin_service.hpp"

#include <uv.h>

#include <chrono>
#include <memory>

#include "base/clock.hpp"
#include "net/transport_metrics.hpp"
#include "prism/v1/admin.pb.h"

namespace prism::admin {

AdminService::AdminService(plugins::Registry& registry, ConfigCheck config_check)
    : registry_(registry),
      config_check_(std::move(config_check)),
      transport_(net::transport_counters()) {}

void AdminService::fill_info(plugins::LoadedPlugin& p, uint32_t first, uint32_t last,
                             v1::PluginInfo& info) {
  info.set_name(p.name());
  info.set_version(p.version());
  info.set_first_packet_id(first);
  info.set_last_packet_id(last);
  info.set_file(p.file());
  info.set_requests(p.requests());
  info.set_errors(p.errors());
  info.set_concurrent(p.concurrent());
  info.set_loaded_at_ms(p.loaded_at_ms());
  info.set_p99_us(static_cast<uint64_t>(p.latency().quantile(0.99).count()));
  info.set_state(p.state());
  for (const auto& m : p.methods()) {
    auto* method = info.add_methods();
    method->set_name(m.name);
    method->set_packet_id(m.packet_id);
  }
}

v1::PluginList AdminService::plugin_list() const {
  v1::PluginList list;
  for (const auto& route : registry_.table()->routes()) {
    auto& info = *list.add_plugins();
    fill_info(*route.plugin, route.first, route.last, info);
    add_history(info);
  }
  return list;
}

void AdminService::add_history(v1::PluginInfo& info) const {
  if (const auto status = registry_.status(info.name())) {
    info.set_last_error(status->last_error);
    info.set_reloads(status->reloads);
    info.set_reload_failures(status->reload_failures);
  }
}

v1::ServerStatus AdminService::server_status() const {
  const auto& facts = registry_.facts();
  v1::ServerStatus status;
  status.set_version(facts.version);
  status.set_uptime_ms(unix_ms() - facts.started_at_ms);
  status.set_workers(facts.workers);
  status.set_datagrams_received(transport_.received.value());
  status.set_datagrams_dropped(transport_.dropped_total());
  uint64_t requests = 0;
  for (const auto& route : registry_.table()->routes()) requests += route.plugin->requests();
  status.set_requests(requests);
  status.set_cluster("alone");
#ifdef PRISM_HAVE_CLUSTER
  if (cluster_ != nullptr) status.set_cluster(cluster_->healthy() ? "ok" : "degraded");
#endif
  if (storage_ != nullptr) {
    for (const auto& facet : storage_->health()) {
      auto* h = status.add_store();
      h->set_facet(std::string(facet.facet));
      h->set_backend(std::string(facet.backend));
      h->set_healthy(facet.healthy);
    }
  }
  return status;
}

v1::ClusterNodes AdminService::cluster_nodes() const {
  v1::ClusterNodes out;
#ifdef PRISM_HAVE_CLUSTER
  if (cluster_ == nullptr) return out;
  out.set_clustered(true);
  out.set_self_id(cluster_->self().id);
  out.set_healthy(cluster_->healthy());
  out.set_redis(cluster_->endpoint());
  const uint64_t now = unix_ms();
  for (const cluster::NodeInfo& n : cluster_->nodes()) {
    v1::ClusterNode* node = out.add_nodes();
    node->set_id(n.id);
    node->set_region(n.region);
    node->set_udp(n.udp);
    node->set_ws(n.ws);
    node->set_version(n.version);
    node->set_started_at_ms(n.started_at_ms);
    node->set_age_ms(now > n.beat_at_ms ? now - n.beat_at_ms : 0);
    node->set_sessions(n.sessions);
    node->set_requests_per_s(n.requests_per_s);
    for (const std::string& p : n.plugins) node->add_plugins(p);
  }
#endif
  return out;
}

void AdminService::on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                                   net::ReplyTransport& transport, net::LoopAccess& loop) {
  auto reply = [&](v1::Status status, std::string_view message, const std::string& payload) {
    transport.send_reply(origin, request.request_id(), request.packet_id(), status, message,
                         {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  };
  // Each command's payload must parse as its message, or nothing is done.
  auto parse = [&](google::protobuf::Message& m) {
    if (m.ParseFromString(request.payload())) return true;
    reply(v1::STATUS_INVALID_ARGUMENT, "the payload is not a " + m.GetTypeName(), {});
    return false;
  };
  switch (request.packet_id()) {
    case v1::HOST_LIST_PLUGINS:
      return reply(v1::STATUS_OK, "", plugin_list().SerializeAsString());
    case v1::HOST_SERVER_STATUS:
      return reply(v1::STATUS_OK, "", server_status().SerializeAsString());
    case v1::HOST_CLUSTER_NODES:
      return reply(v1::STATUS_OK, "", cluster_nodes().SerializeAsString());
    case v1::HOST_STATS: {
      v1::MetricsText text;
      text.set_text(metrics::render_all());
      return reply(v1::STATUS_OK, "", text.SerializeAsString());
    }
    case v1::HOST_LOAD_PLUGIN: {
      v1::PluginFile file;
      if (!parse(file)) return;
      return off_loop(origin, request, transport, loop, [this, file] { return load(file); });
    }
    case v1::HOST_UNLOAD_PLUGIN: {
      v1::PluginName name;
      if (!parse(name)) return;
      return off_loop(origin, request, transport, loop, [this, name] { return unload(name); });
    }
    case v1::HOST_RELOAD_PLUGIN: {
      v1::PluginReload r;
      if (!parse(r)) return;
      return off_loop(origin, request, transport, loop, [this, r] { return reload(r); });
    }
    case v1::HOST_CONFIG_CHECK:
      return off_loop(origin, request, transport, loop, [this] { return config_check(); });
    case v1::HOST_SUBSCRIBE:
    case v1::HOST_UNSUBSCRIBE:
    case v1::HOST_PUBLISH: {
      // On the session's own worker: the bus answers at once, with the real outcome.
      if (bus_ == nullptr) return reply(v1::STATUS_UNAVAILABLE, "topics are not available", {});
      v1::Publish p;
      if (request.packet_id() == v1::HOST_PUBLISH) {
        if (!parse(p)) return;
      } else {
        v1::Topic t;
        if (!parse(t)) return;
        p.set_topic(t.topic());
      }
      const std::span<const uint8_t> bytes{reinterpret_cast<const uint8_t*>(p.payload().data()),
                                           p.payload().size()};
      const auto result =
          request.packet_id() == v1::HOST_SUBSCRIBE   ? bus_->subscribe(origin.connection_id, p.topic())
          : request.packet_id() == v1::HOST_UNSUBSCRIBE ? bus_->unsubscribe(origin.connection_id, p.topic())
                                                        : bus_->publish(p.topic(), v1::HOST_PUBLISH, bytes);
      switch (result) {
        case cluster::BusResult::kOk: return reply(v1::STATUS_OK, "", {});
        case cluster::BusResult::kBadTopic:
          return reply(v1::STATUS_INVALID_ARGUMENT,
                       "a topic is 1-200 bytes of printable ASCII without spaces", {});
        case cluster::BusResult::kLimit:
          return reply(v1::STATUS_RATE_LIMITED,
                       "subscription limit reached (server.max_topics_per_session or "
                       "server.max_subscribers_per_topic)", {});
        default: return reply(v1::STATUS_UNAVAILABLE, "the session cannot receive pushes", {});
      }
    }
    default:
      return reply(v1::STATUS_INVALID_PACKET,
                   "unknown host packet id " + std::to_string(request.packet_id()), {});
  }
}

void AdminService::off_loop(const net::RequestOrigin& origin, const v1::Message& request,
                            net::ReplyTransport& transport, net::LoopAccess& loop,
                            std::function<Answer()> work) {
  // dlopen and a plugin's init block: DESIGN.md §2 keeps them off the worker's loop.
  struct Job {
    uv_work_t req{};
    std::function<Answer()> work;
    Answer answer;
    net::RequestOrigin origin;
    uint32_t request_id;
    uint32_t packet_id;
    net::ReplyTransport* transport;
  };
  auto* job = new Job{.req = {}, .work = std::move(work), .answer = {}, .origin = origin,
                      .request_id = request.request_id(), .packet_id = request.packet_id(),
                      .transport = &transport};
  job->req.data = job;
  const int rc = uv_queue_work(
      loop.loop(), &job->req,
      [](uv_work_t* req) {
        auto* j = static_cast<Job*>(req->data);
        j->answer = j->work();
      },
      [](uv_work_t* req, int status) {
        std::unique_ptr<Job> j(static_cast<Job*>(req->data));
        if (status == UV_ECANCELED) {
          j->answer = Answer{v1::STATUS_UNAVAILABLE, "the server is shutting down", {}};
        }
        const auto& a = j->answer;
        j->transport->send_reply(j->origin, j->request_id, j->packet_id, a.status, a.message,
                                 {reinterpret_cast<const uint8_t*>(a.payload.data()),
                                  a.payload.size()});
      });
  if (rc != 0) {
    transport.send_reply(origin, request.request_id(), request.packet_id(), v1::STATUS_INTERNAL,
                         std::string("cannot queue the command: ") + uv_strerror(rc), {});
    delete job;
  }
}

AdminService::Answer AdminService::load(const v1::PluginFile& file) {
  if (file.path().empty()) return {v1::STATUS_INVALID_ARGUMENT, "no path given", {}};
  auto loaded = registry_.load(file.path());
  if (!loaded) return {v1::STATUS_INVALID_ARGUMENT, loaded.error(), {}};
  v1::PluginInfo info;
  auto& p = **loaded;
  fill_info(p, p.first_packet_id(), p.last_packet_id(), info);
  return {v1::STATUS_OK, "", info.SerializeAsString()};
}

AdminService::Answer AdminService::unload(const v1::PluginName& name) {
  if (!registry_.unload(name.name())) {
    return {v1::STATUS_NOT_FOUND, "no plugin named '" + name.name() + "' is loaded", {}};
  }
  return {};
}

AdminService::Answer AdminService::reload(const v1::PluginReload& r) {
  std::optional<std::filesystem::path> path;
  if (!r.path().empty()) path = r.path();
  auto reloaded = registry_.reload(r.name(), path);
  if (!reloaded) {
    const bool unknown = reloaded.code() == ErrorCode::kNotFound;
    return {unknown ? v1::STATUS_NOT_FOUND : v1::STATUS_INVALID_ARGUMENT, reloaded.error(), {}};
  }
  v1::PluginInfo info;
  auto& p = **reloaded;
  fill_info(p, p.first_packet_id(), p.last_packet_id(), info);
  add_history(info);
  return {v1::STATUS_OK, "", info.SerializeAsString()};
}

AdminService::Answer AdminService::config_check() {
  if (!config_check_) return {v1::STATUS_UNAVAILABLE, "config check is not available", {}};
  auto checked = config_check_();
  if (!checked) return {v1::STATUS_INVALID_ARGUMENT, checked.error(), {}};
  return {};
}

}  // namespace prism::admin
