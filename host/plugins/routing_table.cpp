// Building and searching the routing table.
#include "plugins/routing_table.hpp"

#include <algorithm>

namespace prism::plugins {

RoutingTable::RoutingTable(std::vector<Route> routes) : routes_(std::move(routes)) {
  std::sort(routes_.begin(), routes_.end(),
            [](const Route& a, const Route& b) { return a.first < b.first; });
}

const Route* RoutingTable::find(uint32_t packet_id) const {
  // The last route starting at or before packet_id is the only candidate.
  auto it = std::upper_bound(routes_.begin(), routes_.end(), packet_id,
                             [](uint32_t id, const Route& r) { return id < r.first; });
  if (it == routes_.begin()) return nullptr;
  --it;
  return packet_id <= it->last ? &*it : nullptr;
}

const Route* RoutingTable::find_channel(std::string_view topic) const {
  for (const auto& r : routes_) {
    if (r.plugin->serves_channel(topic)) return &r;
  }
  return nullptr;
}

}  // namespace prism::plugins
