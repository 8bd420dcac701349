// The real-time entries of the host function table (plugin.h ABI 1.2): push, topics and
// timers, over the TopicBus (cluster layer) and the workers' loops. Plugin versions are
// subscribers and timer owners here; both end with the version (release_realtime).
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cluster/topic_bus.hpp"
#include "net/loop_access.hpp"
#include "prism/plugin.h"

namespace prism::plugins {

class LoadedPlugin;

class RealtimeHost {
 public:
  // `loops` are the workers' (index = worker index), before they start: each gets a stop
  // hook that closes its timers. Both must outlive every plugin version.
  RealtimeHost(cluster::TopicBus& bus, std::vector<net::LoopAccess*> loops);
  ~RealtimeHost();
  RealtimeHost(const RealtimeHost&) = delete;
  RealtimeHost& operator=(const RealtimeHost&) = delete;

  cluster::TopicBus& bus() { return bus_; }

  // The subscriber that stands for `plugin` on the bus (made on first use).
  std::shared_ptr<const cluster::PluginSubscriber> subscriber_for(LoadedPlugin& plugin);

  // plugin.h timer_start / timer_stop.
  prism_status_t start_timer(LoadedPlugin& owner, uint64_t after_ms, uint64_t repeat_ms,
                             void* user, uint64_t* timer_id);
  prism_status_t stop_timer(const LoadedPlugin* owner, uint64_t timer_id);
  // Timers of `owner` (any thread).
  size_t timers_of(const LoadedPlugin* owner) const;

  // The version is going away: unsubscribes it everywhere and stops its timers.
  void release(const LoadedPlugin* owner);

 private:
  struct Timer {
    uint64_t id = 0;
    unsigned worker = 0;
    const LoadedPlugin* owner = nullptr;
    std::weak_ptr<LoadedPlugin> plugin;
    void* user = nullptr;
    uint64_t after_ms = 0;
    uint64_t repeat_ms = 0;
  };
  // A started libuv timer; lives on its worker's thread only.
  struct Armed {
    RealtimeHost* host;
    std::shared_ptr<Timer> timer;
    uv_timer_t handle{};
  };

  unsigned current_worker_or_first() const;
  void on_worker(unsigned worker, std::function<void()> task);
  void arm(const std::shared_ptr<Timer>& timer);
  void disarm(unsigned worker, uint64_t id);
  static void on_fire(uv_timer_t* handle);

  cluster::TopicBus& bus_;
  std::vector<net::LoopAccess*> loops_;
  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Timer>> timers_;  // started, not stopped
  std::unordered_map<const LoadedPlugin*, std::shared_ptr<cluster::PluginSubscriber>> subscribers_;
  std::atomic<uint64_t> next_timer_id_{1};
  // Per worker, touched on that worker's thread only.
  std::vector<std::unordered_map<uint64_t, Armed*>> armed_;
};

// The real-time services plugins reach, set by the server before plugins load and
// cleared after the last version is gone. Without one the calls answer UNAVAILABLE.
void set_realtime(RealtimeHost* realtime);

// Fills the ABI 1.2 entries of the table.
void add_realtime_api(prism_host_api_t& api);

// A LoadedPlugin's destructor: nothing real-time reaches that version any more.
void release_realtime(const LoadedPlugin* plugin);

}  // namespace prism::plugins
