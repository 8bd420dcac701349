// What a loaded plugin may learn of the host it runs in (prism_host_api_t.server_info and
// visit_plugins): the Registry implements it, and each plugin version's host handle points
// at it, so a plugin version never needs the registry itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace prism::plugins {

class RoutingTable;

// What prism_host_api_t.server_info reports.
struct HostFacts {
  std::string version;
  uint64_t started_at_ms = 0;
  uint32_t workers = 0;
  std::string node_id;  // cluster.node_id (or the generated one); "" when alone
};

class HostView {
 public:
  virtual ~HostView() = default;
  virtual const HostFacts& facts() const = 0;
  // The routing table serving now: the plugins visit_plugins reports.
  virtual std::shared_ptr<const RoutingTable> table() const = 0;
};

}  // namespace prism::plugins
