// One loaded version of a plugin: its dlopen handle, descriptor and instance.
// Destroying it calls the plugin's shutdown, then dlclose.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "metrics/metrics.hpp"
#include "plugins/plugin_types.hpp"

namespace prism::plugins {

struct MethodInfo {
  std::string name;
  uint32_t packet_id;  // absolute
};

class LoadedPlugin {
 public:
  // Opens `file`, validates its descriptor (ABI version, name, range, methods) and
  // checks its range with `range_is_free`; does not call init yet.
  using RangeCheck = std::function<Expected<void>(std::string_view name, uint32_t first,
                                                  uint32_t last)>;
  static Expected<std::unique_ptr<LoadedPlugin>> open(const std::filesystem::path& file,
                                                      const RangeCheck& range_is_free);
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  // Calls the plugin's init with `config`; on failure the reason names plugin and file.
  Expected<void> init(Registry& registry, std::string_view config);

  // Calls the plugin's handler; serialised unless the plugin declared itself concurrent.
  prism_status_t handle(prism_request_t* request, uint32_t method,
                        std::span<const uint8_t> payload);

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::string& file() const { return file_; }
  uint32_t first_packet_id() const { return first_; }
  uint32_t last_packet_id() const { return last_; }
  bool concurrent() const { return concurrent_; }
  uint64_t loaded_at_ms() const { return loaded_at_ms_; }
  const std::vector<MethodInfo>& methods() const { return methods_; }

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
  std::string name_, version_, file_;
  uint32_t first_ = 0, last_ = 0;
  bool concurrent_ = false;
  uint64_t loaded_at_ms_ = 0;
  std::vector<MethodInfo> methods_;
  std::mutex serial_;
  metrics::Counter* requests_ = nullptr;
  metrics::Counter* errors_ = nullptr;
  metrics::LatencyHistogram* latency_ = nullptr;
};

}  // namespace prism::plugins
