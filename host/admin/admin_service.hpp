// The built-in admin service: answers the host-owned packet ids (docs/protocol.md §4)
// with the plugin list and server status.
#pragma once

#include <vector>

#include "dispatch/dispatcher.hpp"
#include "metrics/metrics.hpp"
#include "plugins/registry.hpp"
#include "prism/v1/admin.pb.h"

namespace prism::admin {

class AdminService final : public dispatch::HostService {
 public:
  explicit AdminService(plugins::Registry& registry);

  void on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                       net::ReplyTransport& transport) override;

  v1::PluginList plugin_list() const;
  v1::ServerStatus server_status() const;

 private:
  plugins::Registry& registry_;
  metrics::Counter& received_;
  std::vector<metrics::Counter*> dropped_;
};

}  // namespace prism::admin
