// The built-in admin service: answers the host-owned packet ids (docs/protocol.md §4)
// with the plugin list, server status, metrics, config check, and plugin load, unload
// and reload. Every one of them needs an admin login (the dispatcher checks it).
#pragma once

#include <functional>
#include <vector>

#include "cluster/topic_bus.hpp"
#ifdef PRISM_HAVE_CLUSTER
#include "cluster/node_registry.hpp"
#endif
#include "dispatch/dispatcher.hpp"
#include "metrics/metrics.hpp"
#include "net/transport_metrics.hpp"
#include "plugins/registry.hpp"
#include "prism/v1/admin.pb.h"
#include "store/storage.hpp"

namespace prism::admin {

class AdminService final : public dispatch::HostService {
 public:
  // Validates the server's config file and plugins.d without applying anything.
  using ConfigCheck = std::function<Expected<void>()>;

  AdminService(plugins::Registry& registry, ConfigCheck config_check = {});

  void on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                       net::ReplyTransport& transport, net::LoopAccess& loop) override;

  // The storage whose health status reports; null (the default) reports none. It must
  // outlive this service.
  void set_storage(const store::Storage* storage) { storage_ = storage; }
  // HOST_SUBSCRIBE, HOST_UNSUBSCRIBE and HOST_PUBLISH go through it; UNAVAILABLE without.
  void set_topic_bus(cluster::TopicBus* bus) { bus_ = bus; }
#ifdef PRISM_HAVE_CLUSTER
  // HOST_CLUSTER_NODES reads it; null (the default, a node alone) answers clustered false.
  void set_cluster(const cluster::NodeRegistry* cluster) { cluster_ = cluster; }
#endif

  v1::PluginList plugin_list() const;
  v1::ServerStatus server_status() const;
  v1::ClusterNodes cluster_nodes() const;

 private:
  struct Answer {
    v1::Status status = v1::STATUS_OK;
    std::string message;
    std::string payload;
  };
  // Runs `work` on libuv's thread pool and sends its answer from the worker's loop.
  void off_loop(const net::RequestOrigin& origin, const v1::Message& request,
                net::ReplyTransport& transport, net::LoopAccess& loop,
                std::function<Answer()> work);
  Answer load(const v1::PluginFile& file);
  Answer unload(const v1::PluginName& name);
  Answer reload(const v1::PluginReload& reload);
  Answer config_check();
  // Reload history from the registry: last_error, reloads, reload_failures.
  void add_history(v1::PluginInfo& info) const;
  static void fill_info(plugins::LoadedPlugin& p, uint32_t first, uint32_t last,
                        v1::PluginInfo& info);

  plugins::Registry& registry_;
  ConfigCheck config_check_;
  cluster::TopicBus* bus_ = nullptr;
  const store::Storage* storage_ = nullptr;
#ifdef PRISM_HAVE_CLUSTER
  const cluster::NodeRegistry* cluster_ = nullptr;
#endif
  const net::TransportCounters& transport_;  // read for status, registered by the transport
};

}  // namespace prism::admin
