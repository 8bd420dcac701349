// Plugin registry: range and name checks, directory loading, routing-table publication.
#include "plugins/registry.hpp"

#include <spdlog/spdlog.h>

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

Registry::Registry(HostFacts facts)
    : facts_(std::move(facts)), table_(std::make_shared<RoutingTable>(std::vector<Route>{})) {}

Registry::~Registry() = default;

Expected<void> Registry::range_is_free(std::string_view name, uint32_t first,
                                       uint32_t last) const {
  for (const auto& r : table_->routes()) {
    if (r.plugin->name() == name) {
      return make_error("a plugin named '" + std::string(name) + "' is already loaded from " +
                        r.plugin->file());
    }
    if (first <= r.last && r.first <= last) {
      return make_error("packet-id range " + std::to_string(first) + "-" + std::to_string(last) +
                        " overlaps plugin " + r.plugin->name() + " (" + std::to_string(r.first) +
                        "-" + std::to_string(r.last) + ")");
    }
  }
  return {};
}

Expected<std::shared_ptr<LoadedPlugin>> Registry::load(const std::filesystem::path& file,
                                                       std::string_view config) {
  auto check = [this](std::string_view name, uint32_t first, uint32_t last) {
    std::lock_guard lock(mutex_);
    return range_is_free(name, first, last);
  };
  auto opened = LoadedPlugin::open(file, check);
  if (!opened) return make_error(opened.error());
  std::shared_ptr<LoadedPlugin> plugin = std::move(*opened);

  // init runs without the lock: a plugin may call visit_plugins from it.
  if (auto ok = plugin->init(*this, config); !ok) return make_error(ok.error());

  std::lock_guard lock(mutex_);
  // Another load may have claimed the range while init ran.
  if (auto ok = range_is_free(plugin->name(), plugin->first_packet_id(),
                              plugin->last_packet_id());
      !ok) {
    return make_error(plugin->describe() + " refused: " + ok.error());
  }
  auto routes = table_->routes();
  routes.push_back({plugin->first_packet_id(), plugin->last_packet_id(), plugin});
  publish_locked(std::move(routes));
  SPDLOG_INFO("event=plugin_loaded name={} version={} range={}-{} file={}", plugin->name(),
              plugin->version(), plugin->first_packet_id(), plugin->last_packet_id(),
              plugin->file());
  return plugin;
}

std::vector<std::string> Registry::load_directory(const std::filesystem::path& dir) {
  std::vector<std::string> refusals;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so") files.push_back(entry.path());
  }
  if (ec) {
    refusals.push_back("plugins directory " + dir.string() + ": " + ec.message());
    SPDLOG_ERROR("event=plugins_dir_unreadable dir={} error=\"{}\"", dir.string(), ec.message());
    return refusals;
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    if (auto loaded = load(file); !loaded) {
      SPDLOG_ERROR("event=plugin_refused file={} reason=\"{}\"", file.string(), loaded.error());
      refusals.push_back(loaded.error());
    }
  }
  return refusals;
}

bool Registry::unload(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto routes = table_->routes();
  auto it = std::find_if(routes.begin(), routes.end(),
                         [&](const Route& r) { return r.plugin->name() == name; });
  if (it == routes.end()) return false;
  SPDLOG_INFO("event=plugin_unloading name={} version={}", it->plugin->name(),
              it->plugin->version());
  routes.erase(it);
  publish_locked(std::move(routes));
  return true;
}

std::shared_ptr<const RoutingTable> Registry::table() const {
  std::lock_guard lock(mutex_);
  return table_;
}

void Registry::set_publisher(Publisher publisher) {
  std::lock_guard lock(mutex_);
  publisher_ = std::move(publisher);
}

void Registry::publish_locked(std::vector<Route> routes) {
  table_ = std::make_shared<const RoutingTable>(std::move(routes));
  if (publisher_) publisher_(table_);
}

}  // namespace prism::plugins
