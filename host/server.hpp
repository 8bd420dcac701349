// Wires the layers into a running prismd: registry and plugins, one worker with its
// dispatcher per core, the admin service, signals and the periodic metrics line.
#pragma once

#include <memory>
#include <vector>

#include "admin/admin_service.hpp"
#include "config/config.hpp"
#include "dispatch/dispatcher.hpp"
#include "net/worker.hpp"
#include "plugins/plugin_settings.hpp"
#include "plugins/registry.hpp"

namespace prism {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // Loads plugins, binds, serves until SIGINT or SIGTERM. Returns the exit code.
  int run();

 private:
  Expected<net::crypto::KeyPair> load_server_key() const;
  Expected<plugins::PluginSettings> load_admin_token() const;
  Expected<uint16_t> start_workers(const net::crypto::KeyPair& server_key);
  void stop_workers();
  void log_metrics_snapshot() const;

  config::Config config_;
  std::vector<plugins::PluginSettings> plugin_settings_;
  std::vector<plugins::PluginSettings> login_services_;  // plugin tokens and the admin token
  std::unique_ptr<plugins::Registry> registry_;
  std::unique_ptr<admin::AdminService> admin_;
  std::vector<std::unique_ptr<net::Worker>> workers_;
  std::vector<std::unique_ptr<dispatch::Dispatcher>> dispatchers_;
};

}  // namespace prism
