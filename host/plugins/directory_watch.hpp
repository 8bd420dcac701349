// Watches plugins_dir (DESIGN.md §5) with uv_fs_event and turns what happens to its *.so
// files into registry calls: a new file is loaded, a replaced one reloaded, a removed one
// unloaded. Events are debounced per file name, and a file is acted on only once it has
// stopped growing and is a complete ELF object, so a half-copied plugin is never mapped.
#pragma once

#include <uv.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "base/expected.hpp"
#include "net/uv_handle.hpp"
#include "plugins/plugin_copy.hpp"
#include "plugins/registry.hpp"

namespace prism::plugins {

// What the watch did about one file, for logs, tests and the admin service.
struct WatchOutcome {
  enum class Action { kLoaded, kReloaded, kUnloaded, kRefused };
  Action action = Action::kRefused;
  std::string file;     // the name inside the watched directory
  std::string plugin;   // empty when the file never named a plugin
  std::string message;  // the refusal's reason; empty otherwise
};

const char* action_name(WatchOutcome::Action action);

// Lives on the loop it is given; every method must be called on that loop's thread.
// dlopen and a plugin's init run on this loop when a file changes: acceptable because it
// is the main loop, not a worker, and the registry serialises them with admin commands.
class DirectoryWatch {
 public:
  using Listener = std::function<void(const WatchOutcome&)>;

  // A file still changing (its size differs between two checks) or not a complete ELF
  // object is checked again this many times, `debounce` apart, before it is refused.
  static constexpr int kMaxAttempts = 5;

  DirectoryWatch(uv_loop_t* loop, Registry& registry, std::filesystem::path dir,
                 std::chrono::milliseconds debounce = std::chrono::milliseconds(200));
  ~DirectoryWatch();  // stop()
  DirectoryWatch(const DirectoryWatch&) = delete;
  DirectoryWatch& operator=(const DirectoryWatch&) = delete;

  // Starts watching. The plugins already routed from files in `dir` are taken as that
  // file's plugin, so replacing such a file reloads it.
  Expected<void> start();
  // Closes every handle (they are freed in their close callbacks); pending changes are
  // dropped. Safe to call twice.
  void stop();

  void set_listener(Listener listener) { listener_ = std::move(listener); }

 private:
  struct Pending;  // one file name with a change not yet acted on; owns its timer

  static void on_fs_event(uv_fs_event_t* handle, const char* filename, int events, int status);
  static void on_timer(uv_timer_t* timer);
  void changed(const std::string& name);
  void check(Pending& pending);
  void act(const std::string& name);
  void finish(const std::string& name);  // forgets the pending entry, closing its timer
  void report(WatchOutcome outcome);

  uv_loop_t* loop_;
  Registry& registry_;
  std::filesystem::path dir_;
  std::chrono::milliseconds debounce_;
  net::UvHandle<uv_fs_event_t> event_;
  std::map<std::string, Pending*> pending_;
  // File name → the plugin it was last loaded as (a replaced file reloads that plugin).
  std::map<std::string, std::string> plugin_of_;
  Listener listener_;
};

}  // namespace prism::plugins
