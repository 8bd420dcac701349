// One loaded version of a plugin: its dlopen handle, descriptor and instance, the state
// handover to its successor on hot reload, and its health. Destroying it calls the
// plugin's shutdown, then dlclose, then deletes its private copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "metrics/metrics.hpp"
#include "plugins/handler_gate.hpp"
#include "plugins/plugin_copy.hpp"
#include "plugins/plugin_health.hpp"
#include "plugins/plugin_types.hpp"

namespace prism::plugins {

struct MethodInfo {
  std::string name;
  uint32_t packet_id;  // absolute
};

// Owned through shared_ptr (the registry, routing tables, requests and storage calls in
// flight); the last owner to let go shuts the version down and unloads it.
class LoadedPlugin : public std::enable_shared_from_this<LoadedPlugin> {
 public:
  // Opens `file`, validates its descriptor (ABI version, name, range, methods) and
  // checks its range with `range_is_free`; does not call init yet.
  // `topics`: the channel topic patterns the descriptor declares (plugin.h, "Channels").
  using RangeCheck = std::function<Expected<void>(std::string_view name, uint32_t first,
                                                  uint32_t last,
                                                  const std::vector<std::string>& topics)>;
  static Expected<std::unique_ptr<LoadedPlugin>> open(const std::filesystem::path& file,
                                                      const RangeCheck& range_is_free);

  struct OpenOptions {
    // The private copy to dlopen (plugin_copy.hpp); `file` stays the name used in messages.
    // Empty = dlopen `file` itself.
    std::optional<PrivateCopy> copy;
    // The range an operator set for the plugin named by the descriptor (plugins.d `range`,
    // inclusive); nullopt keeps the range the descriptor requests.
    std::function<std::optional<std::pair<uint32_t, uint32_t>>(std::string_view name)> range_for;
    // Set on refusal to the plugin the refusal is about: the name its descriptor declares
    // when it could be read, else the file's stem. Callers record the refusal under it.
    std::string* refused_as = nullptr;
  };
  static Expected<std::unique_ptr<LoadedPlugin>> open(const std::filesystem::path& file,
                                                      const RangeCheck& range_is_free,
                                                      const OpenOptions& options);
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  // Calls the plugin's init with `config`; on failure the reason names plugin and file.
  Expected<void> init(const HostView& host, std::string_view config);

  // Calls the plugin's handler; serialised unless the plugin declared itself concurrent.
  // Once this version has handed over to a successor, requests that still reach it (a
  // worker has not seen the new routing table yet) are passed on to the successor, so no
  // state change is made after the snapshot was taken.
  prism_status_t handle(prism_request_t* request, uint32_t method,
                        std::span<const uint8_t> payload);

  // A channel JOIN, EVENT or LEAVE (plugin.h, "Channels"), serialised and passed on to a
  // successor like handle. PRISM_NOT_FOUND for a plugin that serves no channels.
  prism_status_t channel(prism_request_t* request, const prism_channel_message_t& message);
  // The patterns the plugin serves, and whether one of them matches `topic`.
  const std::vector<std::string>& channel_topics() const { return channel_topics_; }
  bool serves_channel(std::string_view topic) const;

  // Calls the plugin's on_event, serialised like handle. A version that has handed over
  // to a successor gets nothing more (its state lives on in the successor), nor does one
  // whose init has not returned yet. No-op for a plugin without on_event.
  void deliver_event(const prism_event_t& event);
  bool wants_events() const { return descriptor_->on_event != nullptr; }
  bool retired() const { return successor_ready_.load(std::memory_order_acquire); }

  // Hot reload (DESIGN.md §5): with no handler of this version running, snapshot → restore
  // into `next` (already initialised); on success `next` becomes the successor. Either
  // callback may be absent: without snapshot nothing is handed over; without restore the
  // snapshot is dropped. A failed snapshot or restore leaves this version serving.
  Expected<void> hand_over_to(std::shared_ptr<LoadedPlugin> next);

  // Counts a reply for the degraded verdict (plugin_health.hpp). The dispatcher calls it
  // once per answered request with the status sent and its loop's clock.
  void record_outcome(prism_status_t status, PluginHealth::Clock::time_point now) {
    health_.record(status, now);
  }
  bool degraded() const { return health_.degraded(); }
  // "serving" or "degraded".
  const char* state() const { return degraded() ? "degraded" : "serving"; }
  const PluginHealth& health() const { return health_; }

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::string& file() const { return file_; }
  uint32_t first_packet_id() const { return first_; }
  uint32_t last_packet_id() const { return last_; }
  bool concurrent() const { return concurrent_; }
  uint64_t loaded_at_ms() const { return loaded_at_ms_; }
  const std::vector<MethodInfo>& methods() const { return methods_; }
  // The config bytes init was given (reused by a reload when plugins.d has none).
  const std::string& config() const { return config_; }
  // The copy this version was loaded from, and what the original was when copied; empty
  // path when loaded from `file` directly.
  const std::filesystem::path& private_copy() const { return private_copy_; }
  const FileIdentity& source_identity() const { return source_; }

  metrics::Counter& request_counter() { return *requests_; }
  metrics::Counter& error_counter() { return *errors_; }
  metrics::LatencyHistogram& latency() { return *latency_; }
  uint64_t requests() const { return requests_->value(); }
  uint64_t errors() const { return errors_->value(); }

  // "plugin default (build/plugins/default.so)": how errors and logs name it.
  std::string describe() const;

 private:
  LoadedPlugin() = default;

  void* dl_ = nullptr;
  const prism_plugin_descriptor_t* descriptor_ = nullptr;
  void* instance_ = nullptr;
  prism_host host_{};
  std::string name_, version_, file_, config_;
  std::filesystem::path private_copy_;
  FileIdentity source_;
  uint32_t first_ = 0, last_ = 0;
  bool concurrent_ = false;
  uint64_t loaded_at_ms_ = 0;
  std::vector<MethodInfo> methods_;
  std::vector<std::string> channel_topics_;
  // Serialised plugins hold serial_ per call; concurrent ones enter gate_, which takes no
  // lock. A handover holds serial_ or closes gate_, so no handler runs during
  // snapshot/restore; handover_ lets one handover in at a time.
  std::mutex serial_;
  HandlerGate gate_;
  std::mutex handover_;
  std::shared_ptr<LoadedPlugin> successor_;  // set once, under serial_ or the closed gate
  std::atomic<bool> successor_ready_{false};  // successor_ is set (readable without the lock)
  PluginHealth health_;
  metrics::Counter* requests_ = nullptr;
  metrics::Counter* errors_ = nullptr;
  metrics::LatencyHistogram* latency_ = nullptr;
};

}  // namespace prism::plugins
