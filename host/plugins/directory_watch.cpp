// plugins_dir watch: uv_fs_event → per-name debounce timer → stable-size and ELF checks →
// load / reload / unload through the registry.
#include "plugins/directory_watch.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "plugins/elf_check.hpp"

namespace prism::plugins {
namespace fs = std::filesystem;

struct DirectoryWatch::Pending {
  DirectoryWatch* watch = nullptr;
  std::string name;
  uv_timer_t timer{};
  int attempts = 0;
  std::optional<FileIdentity> last_seen;  // at the previous check
};

namespace {

// After the debounce, the second look that proves the size stable comes this soon.
std::chrono::milliseconds stable_check_interval(std::chrono::milliseconds debounce) {
  return std::max(std::chrono::milliseconds(10), debounce / 4);
}

// Only plugin files count: editors' and copy tools' hidden temporaries (".x.so.tmp",
// ".x.so") are ignored until renamed into place.
bool is_plugin_file(std::string_view name) {
  return name.size() > 3 && name.ends_with(".so") && !name.starts_with(".");
}

fs::path normal(const fs::path& p) { return fs::absolute(p).lexically_normal(); }

}  // namespace

const char* action_name(WatchOutcome::Action action) {
  switch (action) {
    case WatchOutcome::Action::kLoaded: return "loaded";
    case WatchOutcome::Action::kReloaded: return "reloaded";
    case WatchOutcome::Action::kUnloaded: return "unloaded";
    case WatchOutcome::Action::kRefused: return "refused";
  }
  return "?";
}

DirectoryWatch::DirectoryWatch(uv_loop_t* loop, Registry& registry, fs::path dir,
                               std::chrono::milliseconds debounce)
    : loop_(loop), registry_(registry), dir_(normal(dir)), debounce_(debounce) {}

DirectoryWatch::~DirectoryWatch() { stop(); }

Expected<void> DirectoryWatch::start() {
  if (event_) return {};
  net::UvHandle<uv_fs_event_t> handle(loop_, uv_fs_event_init, this);
  const int rc = uv_fs_event_start(handle.get(), &DirectoryWatch::on_fs_event, dir_.c_str(), 0);
  if (rc != 0) {
    return make_error("cannot watch plugins directory " + dir_.string() + ": " + uv_strerror(rc));
  }
  event_ = std::move(handle);
  // What load_directory (or an admin load) already routed from here.
  for (const auto& route : registry_.table()->routes()) {
    const fs::path file = normal(route.plugin->file());
    if (file.parent_path() == dir_) plugin_of_[file.filename().string()] = route.plugin->name();
  }
  SPDLOG_INFO("event=plugins_dir_watching dir={} debounce_ms={} files={}", dir_.string(),
              debounce_.count(), plugin_of_.size());
  return {};
}

void DirectoryWatch::stop() {
  if (event_) {
    uv_fs_event_stop(event_.get());
    event_.close();
  }
  for (auto& [name, pending] : pending_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&pending->timer),
             [](uv_handle_t* h) { delete static_cast<Pending*>(h->data); });
  }
  pending_.clear();
}

void DirectoryWatch::on_fs_event(uv_fs_event_t* handle, const char* filename, int /*events*/,
                                 int status) {
  auto* self = static_cast<DirectoryWatch*>(handle->data);
  if (status != 0) {
    SPDLOG_ERROR("event=plugins_dir_watch_error dir={} error=\"{}\"", self->dir_.string(),
                 uv_strerror(status));
    return;
  }
  if (filename == nullptr || !is_plugin_file(filename)) return;
  self->changed(filename);
}

void DirectoryWatch::changed(const std::string& name) {
  Pending* pending = nullptr;
  if (auto it = pending_.find(name); it != pending_.end()) {
    pending = it->second;
  } else {
    pending = new Pending{};
    pending->watch = this;
    pending->name = name;
    uv_timer_init(loop_, &pending->timer);
    pending->timer.data = pending;
    pending_.emplace(name, pending);
  }
  // Every event restarts the quiet period; a copy in progress keeps pushing it back.
  pending->attempts = 0;
  pending->last_seen.reset();
  uv_timer_start(&pending->timer, &DirectoryWatch::on_timer,
                 static_cast<uint64_t>(debounce_.count()), 0);
}

void DirectoryWatch::on_timer(uv_timer_t* timer) {
  auto* pending = static_cast<Pending*>(timer->data);
  pending->watch->check(*pending);
}

void DirectoryWatch::check(Pending& pending) {
  const std::string name = pending.name;  // `pending` is gone after finish()
  const fs::path path = dir_ / name;
  auto id = identify(path);
  if (!id) {
    finish(name);
    act(name);  // removed
    return;
  }
  auto retry = [&](std::chrono::milliseconds after, const std::string& why) {
    if (++pending.attempts > kMaxAttempts) {
      finish(name);
      report({WatchOutcome::Action::kRefused, name,
              plugin_of_.contains(name) ? plugin_of_[name] : std::string(),
              "plugin file " + path.string() + " refused after " +
                  std::to_string(kMaxAttempts) + " checks: " + why});
      return;
    }
    uv_timer_start(&pending.timer, &DirectoryWatch::on_timer,
                   static_cast<uint64_t>(after.count()), 0);
  };
  // Stable = the same size, inode and mtime at two checks in a row.
  if (!pending.last_seen || *pending.last_seen != *id) {
    const bool first = !pending.last_seen;
    pending.last_seen = *id;
    return retry(stable_check_interval(debounce_),
                 first ? "not yet checked" : "still being written");
  }
  if (auto elf = check_elf_shared_object(path); !elf) {
    return retry(debounce_, "cannot load shared object: " + elf.error());
  }
  finish(name);
  act(name);
}

void DirectoryWatch::act(const std::string& name) {
  const fs::path path = dir_ / name;
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  // The plugin this file stands for: the one it was loaded as, or one an admin loaded from it.
  std::shared_ptr<LoadedPlugin> current;
  if (auto it = plugin_of_.find(name); it != plugin_of_.end()) {
    current = registry_.find(it->second);
    if (current && normal(current->file()) != path) current.reset();  // reloaded from elsewhere
  }
  if (!current) current = registry_.find_by_file(path);

  if (!exists) {
    plugin_of_.erase(name);
    if (!current) return;
    const std::string plugin = current->name();
    current.reset();
    // Requests inside the old version hold it; it shuts down after the last one.
    if (registry_.unload(plugin)) report({WatchOutcome::Action::kUnloaded, name, plugin, {}});
    return;
  }
  if (current) {
    auto id = identify(path);
    if (id && *id == current->source_identity()) return;  // nothing new (e.g. a second event)
    const std::string plugin = current->name();
    current.reset();
    auto reloaded = registry_.reload(plugin, path);
    if (!reloaded) return report({WatchOutcome::Action::kRefused, name, plugin, reloaded.error()});
    return report({WatchOutcome::Action::kReloaded, name, plugin, {}});
  }
  auto loaded = registry_.load(path);
  if (!loaded) return report({WatchOutcome::Action::kRefused, name, {}, loaded.error()});
  plugin_of_[name] = (*loaded)->name();
  report({WatchOutcome::Action::kLoaded, name, (*loaded)->name(), {}});
}

void DirectoryWatch::finish(const std::string& name) {
  auto it = pending_.find(name);
  if (it == pending_.end()) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&it->second->timer),
           [](uv_handle_t* h) { delete static_cast<Pending*>(h->data); });
  pending_.erase(it);
}

void DirectoryWatch::report(WatchOutcome outcome) {
  if (outcome.action == WatchOutcome::Action::kRefused) {
    SPDLOG_ERROR("event=plugins_dir_refused file={} plugin={} reason=\"{}\"", outcome.file,
                 outcome.plugin, outcome.message);
  } else {
    SPDLOG_INFO("event=plugins_dir_change file={} plugin={} action={}", outcome.file,
                outcome.plugin, action_name(outcome.action));
  }
  if (listener_) listener_(outcome);
}

}  // namespace prism::plugins
