// Plugin registry: range and name checks, directory loading, hot reload, plugins.d
// settings, and routing-table publication.
#include "plugins/registry.hpp"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "metrics/metrics.hpp"
#include "plugins/channel_topics.hpp"

namespace prism::plugins {

namespace {

metrics::Counter& reload_counter(std::string_view plugin, bool ok) {
  return metrics::registry().counter(
      "prism_plugin_reloads_total",
      "plugin=\"" + std::string(plugin) + "\",result=\"" + (ok ? "ok" : "failed") + "\"",
      "Hot reloads by outcome; a failed one left the previous version serving");
}

}  // namespace

Registry::Registry(HostFacts facts, std::filesystem::path private_base)
    : facts_(std::move(facts)),
      copies_(std::move(private_base)),
      table_(std::make_shared<RoutingTable>(std::vector<Route>{})) {}

Registry::~Registry() = default;

void Registry::set_plugin_settings(std::vector<PluginSettings> settings) {
  std::lock_guard lock(mutex_);
  settings_ = std::move(settings);
}

const PluginSettings* Registry::settings_for(std::string_view name) const {
  for (const auto& s : settings_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Registry::config_for(std::string_view name, std::string_view fallback) const {
  std::lock_guard lock(mutex_);
  const PluginSettings* s = settings_for(name);
  if (s == nullptr || !s->settings || s->settings.IsNull()) return std::string(fallback);
  YAML::Emitter out;
  out << s->settings;
  return out.c_str();
}

Expected<void> Registry::range_is_free(std::string_view name, uint32_t first, uint32_t last,
                                       const std::vector<std::string>& topics,
                                       std::string_view replacing) const {
  for (const auto& r : table_->routes()) {
    // A reload's own old version gives way to it.
    if (!replacing.empty() && r.plugin->name() == replacing) continue;
    if (r.plugin->name() == name) {
      return make_error("a plugin named '" + std::string(name) + "' is already loaded from " +
                        r.plugin->file());
    }
    if (first <= r.last && r.first <= last) {
      return make_error("packet-id range " + std::to_string(first) + "-" + std::to_string(last) +
                        " overlaps plugin " + r.plugin->name() + " (" + std::to_string(r.first) +
                        "-" + std::to_string(r.last) + ")");
    }
    // A topic two plugins would both serve could not be routed.
    for (const auto& mine : topics) {
      for (const auto& theirs : r.plugin->channel_topics()) {
        if (channel_patterns_overlap(mine, theirs)) {
          return make_error("channel topic '" + mine + "' overlaps plugin " + r.plugin->name() +
                            " ('" + theirs + "')");
        }
      }
    }
  }
  return {};
}

Expected<std::shared_ptr<LoadedPlugin>> Registry::open_copy(const std::filesystem::path& file,
                                                            std::string_view replacing,
                                                            std::string* refused_as) {
  auto copy = copies_.copy(file);
  if (!copy) {
    if (refused_as != nullptr) *refused_as = file.stem().string();
    return make_error("plugin " + file.stem().string() + " (" + file.string() +
                      ") refused: " + copy.error());
  }
  LoadedPlugin::OpenOptions options;
  options.copy = *copy;
  options.refused_as = refused_as;
  options.range_for = [this](std::string_view name) {
    std::lock_guard lock(mutex_);
    const PluginSettings* s = settings_for(name);
    return s != nullptr ? s->range : std::nullopt;
  };
  auto check = [this, replacing](std::string_view name, uint32_t first, uint32_t last,
                                 const std::vector<std::string>& topics) {
    if (!replacing.empty() && name != replacing) {
      return Expected<void>(make_error("the file declares plugin '" + std::string(name) +
                                       "', not '" + std::string(replacing) + "'"));
    }
    std::lock_guard lock(mutex_);
    return range_is_free(name, first, last, topics, replacing);
  };
  auto opened = LoadedPlugin::open(file, check, options);
  if (!opened) {
    // Never mapped, or already unmapped: the copy has no further use.
    std::error_code ec;
    std::filesystem::remove(copy->path, ec);
    return make_error(opened.error());
  }
  return std::shared_ptr<LoadedPlugin>(std::move(*opened));
}

void Registry::record_load_failure(const std::filesystem::path& file, const std::string& name,
                                   const std::string& error) {
  std::lock_guard lock(mutex_);
  std::string key = name;
  for (const auto& [n, r] : records_) {
    if (r.file == file.string()) key = n;
  }
  auto& record = records_[key];
  record.file = file.string();
  record.last_error = error;
  record.failed = true;
}

Expected<std::shared_ptr<LoadedPlugin>> Registry::load(const std::filesystem::path& file,
                                                       std::string_view config) {
  std::lock_guard lifecycle(lifecycle_);
  auto disabled = [this](std::string_view name) -> std::optional<std::string> {
    std::lock_guard lock(mutex_);
    const PluginSettings* s = settings_for(name);
    if (s == nullptr || s->enabled) return std::nullopt;
    return s->source;
  };
  auto refuse_disabled = [&](std::string_view name, const std::string& source) {
    SPDLOG_INFO("event=plugin_disabled name={} file={} settings={}", name, file.string(), source);
    return make_error(ErrorCode::kDisabled, "plugin " + std::string(name) + " (" +
                                                file.string() + ") not loaded: disabled in " +
                                                source);
  };
  // Most files are named after their plugin: skip a disabled one without opening it.
  if (auto source = disabled(file.stem().string())) {
    return refuse_disabled(file.stem().string(), *source);
  }
  std::string refused_as;
  auto opened = open_copy(file, {}, &refused_as);
  if (!opened) {
    record_load_failure(file, refused_as, opened.error());
    return make_error(opened.error());
  }
  std::shared_ptr<LoadedPlugin> plugin = std::move(*opened);
  if (auto source = disabled(plugin->name())) return refuse_disabled(plugin->name(), *source);

  const std::string cfg = config.empty() ? config_for(plugin->name(), {}) : std::string(config);
  // init runs without mutex_: a plugin may call visit_plugins from it.
  if (auto ok = plugin->init(*this, cfg); !ok) {
    record_load_failure(file, plugin->name(), ok.error());
    return make_error(ok.error());
  }

  std::shared_ptr<const RoutingTable> replaced;
  {
    std::lock_guard lock(mutex_);
    // lifecycle_ keeps every other load out, so the range checked in open is still free.
    auto routes = table_->routes();
    routes.push_back({plugin->first_packet_id(), plugin->last_packet_id(), plugin});
    replaced = publish_locked(std::move(routes));
    auto& record = records_[plugin->name()];
    record.file = plugin->file();
    record.last_error.clear();
    record.failed = false;
  }
  SPDLOG_INFO("event=plugin_loaded name={} version={} range={}-{} file={} copy={}",
              plugin->name(), plugin->version(), plugin->first_packet_id(),
              plugin->last_packet_id(), plugin->file(), plugin->private_copy().string());
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
      // Disabled plugins were logged as such; they are not refusals.
      if (loaded.code() == ErrorCode::kDisabled) continue;
      SPDLOG_ERROR("event=plugin_refused file={} reason=\"{}\"", file.string(), loaded.error());
      refusals.push_back(loaded.error());
    }
  }
  return refusals;
}

Expected<std::shared_ptr<LoadedPlugin>> Registry::fail_reload(std::string_view name,
                                                              const std::string& old_version,
                                                              const std::filesystem::path& file,
                                                              const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    auto& record = records_[std::string(name)];
    record.last_error = reason;
    ++record.reload_failures;
  }
  reload_counter(name, false).add();
  SPDLOG_ERROR("event=plugin_reload_failed name={} old_version={} file={} reason=\"{}\"", name,
               old_version, file.string(), reason);
  return make_error(reason);
}

Expected<std::shared_ptr<LoadedPlugin>> Registry::reload(std::string_view name,
                                                         std::optional<std::filesystem::path> file) {
  std::lock_guard lifecycle(lifecycle_);
  std::shared_ptr<LoadedPlugin> old = find(name);
  if (!old) return make_error(ErrorCode::kNotFound, "plugin " + std::string(name) + " is not loaded");
  const std::filesystem::path path = file ? *file : std::filesystem::path(old->file());
  std::optional<std::string> disabled_in;
  {
    std::lock_guard lock(mutex_);
    if (const PluginSettings* s = settings_for(name); s != nullptr && !s->enabled) {
      disabled_in = s->source;
    }
  }
  if (disabled_in) {
    return fail_reload(name, old->version(), path,
                       "plugin " + std::string(name) + " (" + path.string() +
                           ") not reloaded: disabled in " + *disabled_in);
  }
  auto opened = open_copy(path, name);
  if (!opened) return fail_reload(name, old->version(), path, opened.error());
  std::shared_ptr<LoadedPlugin> next = std::move(*opened);
  if (auto ok = next->init(*this, config_for(name, old->config())); !ok) {
    return fail_reload(name, old->version(), path, ok.error());
  }
  // From here the old version forwards whatever still reaches it to `next`.
  if (auto ok = old->hand_over_to(next); !ok) {
    return fail_reload(name, old->version(), path, ok.error());
  }

  std::shared_ptr<const RoutingTable> replaced;
  uint64_t reloads = 0;
  {
    std::lock_guard lock(mutex_);
    auto routes = table_->routes();
    for (auto& r : routes) {
      if (r.plugin == old) r = Route{next->first_packet_id(), next->last_packet_id(), next};
    }
    replaced = publish_locked(std::move(routes));
    auto& record = records_[std::string(name)];
    record.file = next->file();
    record.last_error.clear();
    record.failed = false;
    reloads = ++record.reloads;
  }
  reload_counter(name, true).add();
  SPDLOG_INFO("event=plugin_reloaded name={} reloads={} old_version={} new_version={} range={}-{} "
              "file={} copy={}",
              name, reloads, old->version(), next->version(), next->first_packet_id(),
              next->last_packet_id(), next->file(), next->private_copy().string());
  return next;
}

bool Registry::unload(std::string_view name) {
  std::lock_guard lifecycle(lifecycle_);
  std::shared_ptr<const RoutingTable> replaced;
  {
    std::lock_guard lock(mutex_);
    auto routes = table_->routes();
    auto it = std::find_if(routes.begin(), routes.end(),
                           [&](const Route& r) { return r.plugin->name() == name; });
    if (it == routes.end()) return false;
    SPDLOG_INFO("event=plugin_unloading name={} version={}", it->plugin->name(),
                it->plugin->version());
    routes.erase(it);
    replaced = publish_locked(std::move(routes));
  }
  return true;
}

std::shared_ptr<LoadedPlugin> Registry::find(std::string_view name) const {
  const auto t = table();
  for (const auto& r : t->routes()) {
    if (r.plugin->name() == name) return r.plugin;
  }
  return nullptr;
}

std::shared_ptr<LoadedPlugin> Registry::find_by_file(const std::filesystem::path& file) const {
  const auto t = table();
  for (const auto& r : t->routes()) {
    if (r.plugin->file() == file.string()) return r.plugin;
  }
  return nullptr;
}

std::vector<PluginStatus> Registry::statuses() const {
  std::lock_guard lock(mutex_);
  std::set<std::string, std::less<>> names;
  for (const auto& [n, r] : records_) names.insert(n);
  for (const auto& s : settings_) names.insert(s.name);
  for (const auto& r : table_->routes()) names.insert(r.plugin->name());
  std::vector<PluginStatus> out;
  for (const auto& n : names) {
    PluginStatus st;
    st.name = n;
    if (auto it = records_.find(n); it != records_.end()) {
      st.file = it->second.file;
      st.last_error = it->second.last_error;
      st.reloads = it->second.reloads;
      st.reload_failures = it->second.reload_failures;
      st.state = it->second.failed ? "failed" : "unloaded";
    } else {
      st.state = "unloaded";
    }
    if (const PluginSettings* s = settings_for(n); s != nullptr && !s->enabled) {
      st.state = "disabled";
    }
    for (const auto& r : table_->routes()) {
      if (r.plugin->name() != n) continue;
      st.version = r.plugin->version();
      st.file = r.plugin->file();
      st.state = r.plugin->state();
    }
    out.push_back(std::move(st));
  }
  return out;
}

std::optional<PluginStatus> Registry::status(std::string_view name) const {
  for (auto& s : statuses()) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

std::shared_ptr<const RoutingTable> Registry::table() const {
  std::lock_guard lock(mutex_);
  return table_;
}

void Registry::set_publisher(Publisher publisher) {
  std::lock_guard lock(mutex_);
  publisher_ = std::move(publisher);
}

std::shared_ptr<const RoutingTable> Registry::publish_locked(std::vector<Route> routes) {
  auto previous = std::move(table_);
  table_ = std::make_shared<const RoutingTable>(std::move(routes));
  if (publisher_) publisher_(table_);
  return previous;
}

}  // namespace prism::plugins
