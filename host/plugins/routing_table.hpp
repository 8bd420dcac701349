// The routing table (DESIGN.md §2): packet-id ranges to plugin versions, immutable once
// built and swapped as a whole, so the hot path reads it without a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "plugins/loaded_plugin.hpp"

namespace prism::plugins {

struct Route {
  uint32_t first = 0;
  uint32_t last = 0;  // inclusive
  std::shared_ptr<LoadedPlugin> plugin;
};

// Immutable once built; in-flight requests keep their plugin alive through Route::plugin.
class RoutingTable {
 public:
  explicit RoutingTable(std::vector<Route> routes);
  const Route* find(uint32_t packet_id) const;
  // The route whose plugin serves the channel `topic` (patterns never overlap), or null.
  const Route* find_channel(std::string_view topic) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;  // sorted by first
};

}  // namespace prism::plugins
