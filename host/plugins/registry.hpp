// The set of loaded plugins and the routing table built from it: packet-id ranges,
// unique names, an immutable table swapped as a whole (DESIGN.md §2), hot reload and the
// per-plugin settings and records of plugins.d (DESIGN.md §5).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "plugins/host_view.hpp"
#include "plugins/loaded_plugin.hpp"
#include "plugins/plugin_copy.hpp"
#include "plugins/plugin_settings.hpp"
#include "plugins/routing_table.hpp"

namespace prism::plugins {

// What the registry remembers about one plugin name, loaded or not: for the admin service.
struct PluginStatus {
  std::string name;
  std::string file;      // the original file last loaded or tried
  std::string version;   // the version serving; empty when none is
  std::string state;     // "serving", "degraded", "disabled", "unloaded" or "failed"
  std::string last_error;  // why the last load or reload failed; empty when the last one worked
  uint64_t reloads = 0;          // successful reloads
  uint64_t reload_failures = 0;  // reloads refused; the previous version kept serving
};

class Registry final : public HostView {
 public:
  using Publisher = std::function<void(std::shared_ptr<const RoutingTable>)>;

  // Each load reads a private copy of its file, made in a fresh mkdtemp directory under
  // `private_base` (empty = $TMPDIR) that is removed with the registry (plugin_copy.hpp).
  explicit Registry(HostFacts facts, std::filesystem::path private_base = {});
  ~Registry() override;

  // The private copies' directory, and how many a killed process left that were removed.
  const PrivateCopies& private_copies() const { return copies_; }

  // plugins.d (plugin_settings.hpp), by plugin name: `enabled: false` refuses the plugin,
  // `range` replaces the requested range, `settings` (as YAML text) is init's config.
  // Applies to later loads and reloads; what is loaded stays as it is.
  void set_plugin_settings(std::vector<PluginSettings> settings);

  // Opens a private copy of `file`, validates, inits and routes it. A refusal leaves
  // everything else as it was; its message names the plugin, the file and the reason.
  // A non-empty `config` replaces the plugin's plugins.d settings.
  Expected<std::shared_ptr<LoadedPlugin>> load(const std::filesystem::path& file,
                                               std::string_view config = {});

  // Loads every *.so in `dir` in name order. Returns one message per refusal; a plugin
  // disabled in plugins.d is logged and skipped, not a refusal.
  std::vector<std::string> load_directory(const std::filesystem::path& dir);

  // Hot reload (DESIGN.md §5) of the plugin `name` from `file` (default: the file it was
  // loaded from): a private copy is opened and init'ed, the old version's snapshot is
  // restored into it, and the routing entry is swapped in one new table. Requests already
  // inside the old version finish there; it is shut down when the last one has. Any
  // failure (file missing or not a plugin, other ABI, another plugin's name, init, range
  // overlap, snapshot or restore) leaves the old version serving, and is recorded as the
  // plugin's last_error. An unknown name fails with "... is not loaded".
  Expected<std::shared_ptr<LoadedPlugin>> reload(std::string_view name,
                                                 std::optional<std::filesystem::path> file = {});

  // Removes a plugin from routing; it is shut down once its last request has finished.
  bool unload(std::string_view name);

  // The version now routed for `name`, or null.
  std::shared_ptr<LoadedPlugin> find(std::string_view name) const;
  // The plugin routed from `file` (its original path), or null.
  std::shared_ptr<LoadedPlugin> find_by_file(const std::filesystem::path& file) const;
  // Every name the registry has loaded, tried, or has settings for, in name order.
  std::vector<PluginStatus> statuses() const;
  std::optional<PluginStatus> status(std::string_view name) const;

  std::shared_ptr<const RoutingTable> table() const override;
  // Called with every new table (after load/unload), e.g. to hand it to the workers.
  void set_publisher(Publisher publisher);

  const HostFacts& facts() const override { return facts_; }

 private:
  struct Record {
    std::string file;
    std::string last_error;
    uint64_t reloads = 0;
    uint64_t reload_failures = 0;
    bool failed = false;  // the last load (not reload) of this name was refused
  };

  // `replacing`: the name whose current version a reload replaces, so its own range and
  // name do not count as taken.
  Expected<void> range_is_free(std::string_view name, uint32_t first, uint32_t last,
                               const std::vector<std::string>& topics,
                               std::string_view replacing = {}) const;
  // Copies and opens `file` with the settings of the plugin it declares. On refusal,
  // `refused_as` (when given) names the plugin the refusal is about.
  Expected<std::shared_ptr<LoadedPlugin>> open_copy(const std::filesystem::path& file,
                                                    std::string_view replacing,
                                                    std::string* refused_as = nullptr);
  // The config init gets: explicit, else plugins.d settings, else `fallback`.
  std::string config_for(std::string_view name, std::string_view fallback) const;
  const PluginSettings* settings_for(std::string_view name) const;  // mutex_ held
  // Records a refused load under the name the file had before, else `name`.
  void record_load_failure(const std::filesystem::path& file, const std::string& name,
                           const std::string& error);
  Expected<std::shared_ptr<LoadedPlugin>> fail_reload(std::string_view name,
                                                      const std::string& old_version,
                                                      const std::filesystem::path& file,
                                                      const std::string& reason);
  // Installs `routes` and returns the table it replaced, to be dropped after unlocking: the
  // last reference to an old version may go with it, and its shutdown may call back in.
  std::shared_ptr<const RoutingTable> publish_locked(std::vector<Route> routes);

  HostFacts facts_;
  PrivateCopies copies_;
  // Serialises load, reload and unload (admin commands on the thread pool, the directory
  // watch on the main loop); held across dlopen and init. Taken before mutex_.
  std::mutex lifecycle_;
  mutable std::mutex mutex_;  // table_, publisher_, settings_, records_
  std::shared_ptr<const RoutingTable> table_;
  Publisher publisher_;
  std::vector<PluginSettings> settings_;
  std::map<std::string, Record, std::less<>> records_;
};

}  // namespace prism::plugins
