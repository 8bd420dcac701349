// The backends prismd opens for the configured facets (prism.yaml `store`, DESIGN.md §6):
// one backend per engine in use, shared by the facets that name it, and their health.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "config/config.hpp"
#include "store/store.hpp"

namespace prism::store {

class Storage {
 public:
  // Opens every engine a facet uses. sqlite opens its file (default <state_dir>/prism.db)
  // and fails start-up if it cannot; redis and postgres connect in the background and
  // reconnect with backoff, so a server that is down at start leaves the facet degraded
  // (calls fail UNAVAILABLE) rather than stopping prismd. A postgres server that refuses
  // the first connection is logged with libpq's reason. Errors name the key to fix.
  static Expected<std::unique_ptr<Storage>> open(const config::StoreConfig& config,
                                                 const std::filesystem::path& state_dir);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Valid as long as this Storage; what plugins::set_store() is given.
  const Facets& facets() const { return facets_; }

  struct FacetHealth {
    std::string_view facet;    // "documents", "counters", "leaderboards", "presence"
    std::string_view backend;  // "sqlite", "redis", "postgres"
    bool healthy = false;
  };
  std::vector<FacetHealth> health() const;

 private:
  Storage() = default;
  Backend* engine(config::StoreEngine engine) const;

  std::vector<std::pair<config::StoreEngine, std::unique_ptr<Backend>>> backends_;
  Facets facets_;
};

}  // namespace prism::store
