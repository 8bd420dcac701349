// The set of loaded plugins and the routing table built from it: packet-id ranges,
// unique names, and an immutable table swapped as a whole (DESIGN.md §2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "plugins/loaded_plugin.hpp"

namespace prism::plugins {

// What prism_host_api_t.server_info reports.
struct HostFacts {
  std::string version;
  uint64_t started_at_ms = 0;
  uint32_t workers = 0;
};

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
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;  // sorted by first
};

class Registry {
 public:
  using Publisher = std::function<void(std::shared_ptr<const RoutingTable>)>;

  explicit Registry(HostFacts facts);
  ~Registry();

  // Opens, validates, inits and routes one plugin file. A refusal leaves everything
  // else as it was; its message names the plugin, the file and the reason.
  Expected<std::shared_ptr<LoadedPlugin>> load(const std::filesystem::path& file,
                                               std::string_view config = {});

  // Loads every *.so in `dir` in name order. Returns one message per refusal.
  std::vector<std::string> load_directory(const std::filesystem::path& dir);

  // Removes a plugin from routing; it is shut down once its last request has finished.
  bool unload(std::string_view name);

  std::shared_ptr<const RoutingTable> table() const;
  // Called with every new table (after load/unload), e.g. to hand it to the workers.
  void set_publisher(Publisher publisher);

  const HostFacts& facts() const { return facts_; }

 private:
  Expected<void> range_is_free(std::string_view name, uint32_t first, uint32_t last) const;
  void publish_locked(std::vector<Route> routes);

  HostFacts facts_;
  mutable std::mutex mutex_;
  std::shared_ptr<const RoutingTable> table_;
  Publisher publisher_;
};

}  // namespace prism::plugins
