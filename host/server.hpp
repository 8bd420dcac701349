// Wires the layers into a running prismd: registry and plugins, one worker with its
// dispatcher per core, the admin service, signals and the periodic metrics line.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "admin/admin_service.hpp"
#include "cluster/topic_bus.hpp"
#ifdef PRISM_HAVE_CLUSTER
#include "cluster/cluster_link.hpp"
#endif
#include "config/config.hpp"
#include "dispatch/dispatcher.hpp"
#include "net/worker.hpp"
#include "plugins/cluster_host.hpp"
#include "plugins/plugin_settings.hpp"
#include "plugins/realtime_api.hpp"
#include "plugins/registry.hpp"
#include "store/storage.hpp"
#ifdef PRISM_HAVE_WS
#include "ws/gateway.hpp"
#endif

namespace prism {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // Loads plugins, binds, serves until SIGINT or SIGTERM. Returns the exit code.
  int run();

 private:
  // server.workers, or one per core for "auto".
  unsigned worker_count() const;
  Expected<net::crypto::KeyPair> load_server_key() const;
  Expected<prism::TokenHash> load_admin_token() const;
  // Makes and binds the workers and their dispatchers; their loops run from start_workers().
  Expected<uint16_t> make_workers(const net::crypto::KeyPair& server_key);
  void start_workers();
  // The topic bus and the plugins' push, topic and timer services over the workers.
  void make_realtime();
  // ws.listen: one HTTP/WebSocket gateway per worker, on its loop (none when unset).
  Expected<void> open_gateways();
  // Joins the worker threads; the Worker objects stay until shutdown(), since a storage
  // completion still in flight posts to them (and is dropped).
  void stop_workers();
  // The teardown order: workers stopped, plugins shut down, storage closed (completing
  // what is pending), then the workers' memory released.
  void shutdown();
  void log_metrics_snapshot() const;
  // Logs a facet's backend going down or coming back (every second, on the main loop).
  void check_store_health();
#ifdef PRISM_HAVE_CLUSTER
  // cluster.*: registers this node (udp_port bound, ws.listen open, plugins loaded); the
  // error refuses the start (its node id is alive elsewhere, an unreadable password).
  Expected<void> join_cluster(uint16_t udp_port);
#endif

  config::Config config_;
  std::vector<plugins::PluginSettings> plugin_settings_;
  prism::TokenHash admin_token_{};  // the admin service's token (its hash)
  std::unique_ptr<store::Storage> storage_;
  std::vector<bool> store_healthy_;  // per backend of storage_->health(), as last logged
  std::unique_ptr<plugins::Registry> registry_;
  std::unique_ptr<admin::AdminService> admin_;
  std::vector<std::unique_ptr<net::Worker>> workers_;
  std::vector<std::unique_ptr<dispatch::Dispatcher>> dispatchers_;
  std::unique_ptr<cluster::TopicBus> bus_;
  std::unique_ptr<plugins::RealtimeHost> realtime_;
  std::unique_ptr<plugins::ClusterHost> cluster_host_;  // leases and forwards (ABI 1.2)
  std::atomic<bool> plugins_loaded_{false};  // the start-up load of plugins.dir is done
#ifdef PRISM_HAVE_CLUSTER
  std::unique_ptr<cluster::NodeRegistry> cluster_;
  std::unique_ptr<cluster::ClusterLink> link_;  // topics to and from the other nodes
#endif
#ifdef PRISM_HAVE_WS
  ws::Health health() const;
  std::vector<std::unique_ptr<ws::Gateway>> gateways_;
#endif
};

}  // namespace prism
