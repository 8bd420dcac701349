// Opening a plugin file, validating its descriptor against the ABI (plugin.h), init,
// serialised handling, and shutdown + dlclose when the last reference goes away.
#include "plugins/loaded_plugin.hpp"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cctype>
#include <cstring>
#include <set>
#include <string_view>

#include "base/clock.hpp"
#include "plugins/channel_topics.hpp"
#include "plugins/elf_check.hpp"
#include "plugins/host_view.hpp"
#include "plugins/realtime_api.hpp"

namespace prism::plugins {
namespace {

// The descriptor of ABI 1.0 ends with its shutdown field; older or broken files are shorter.
constexpr size_t kDescriptorV1Size =
    offsetof(prism_plugin_descriptor_t, shutdown) + sizeof(prism_plugin_descriptor_t::shutdown);

// prism_method_t as ABI 1.0 laid it out; a 1.2 descriptor may say its methods are larger.
constexpr size_t kMethodV1Size = sizeof(prism_method_t);

// The stride of d->methods (plugin.h, method_size); 0 for a size no host can read.
size_t method_stride(const prism_plugin_descriptor_t* d) {
  if (!PRISM_HAS_FIELD(d, prism_plugin_descriptor_t, method_size) || d->method_size == 0) {
    return kMethodV1Size;
  }
  return d->method_size >= kMethodV1Size ? d->method_size : 0;
}

// Method `i` of the descriptor, read with its stride.
const prism_method_t& method_at(const prism_plugin_descriptor_t* d, size_t i) {
  return *reinterpret_cast<const prism_method_t*>(reinterpret_cast<const char*>(d->methods) +
                                                  i * method_stride(d));
}

bool valid_name(const char* name) { return name != nullptr && is_identifier(name, 32, "-"); }

// Digits, a dot, digits, a dot, digits; then optionally [-+] and [0-9A-Za-z.+-]+ (semver).
bool valid_version(const char* version) {
  if (version == nullptr) return false;
  std::string_view v(version);
  size_t i = 0;
  for (int part = 0; part < 3; ++part) {
    const size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    if (i == start) return false;
    if (part < 2) {
      if (i == v.size() || v[i] != '.') return false;
      ++i;
    }
  }
  if (i == v.size()) return true;
  if ((v[i] != '-' && v[i] != '+') || i + 1 == v.size()) return false;
  for (++i; i < v.size(); ++i) {
    const char c = v[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '+' && c != '-') {
      return false;
    }
  }
  return true;
}

// Checks everything the host relies on before it calls into the plugin.
Expected<void> validate(const prism_plugin_descriptor_t* d) {
  if (d == nullptr) return make_error("prism_plugin_entry returned no descriptor");
  if (d->struct_size < offsetof(prism_plugin_descriptor_t, name)) {
    return make_error("descriptor is " + std::to_string(d->struct_size) +
                      " bytes, too small to hold an ABI version");
  }
  if (d->abi_version_major != PRISM_ABI_VERSION_MAJOR) {
    return make_error("built for plugin ABI " + std::to_string(d->abi_version_major) + "." +
                      std::to_string(d->abi_version_minor) + ", this host speaks ABI " +
                      std::to_string(PRISM_ABI_VERSION_MAJOR) + ".x (major must match)");
  }
  if (d->abi_version_minor > PRISM_ABI_VERSION_MINOR) {
    const std::string major = std::to_string(PRISM_ABI_VERSION_MAJOR) + ".";
    return make_error("built for plugin ABI " + major + std::to_string(d->abi_version_minor) +
                      ", newer than this host's " + major +
                      std::to_string(PRISM_ABI_VERSION_MINOR));
  }
  if (d->struct_size < kDescriptorV1Size) {
    return make_error("descriptor is " + std::to_string(d->struct_size) + " bytes, ABI 1.0 needs " +
                      std::to_string(kDescriptorV1Size));
  }
  if (!valid_name(d->name)) return make_error("service name must match [a-z0-9_-]{1,32}");
  // LOGIN to "admin" is the admin login (docs/operations.md): no plugin may take the name.
  if (std::string_view(d->name) == kAdminService) {
    return make_error("service name 'admin' is reserved for the admin service");
  }
  if (!valid_version(d->version)) {
    return make_error("version must be semantic (MAJOR.MINOR.PATCH)");
  }
  if (d->packet_id_count == 0) return make_error("requests an empty packet-id range");
  if (d->packet_id_first < PRISM_FIRST_PLUGIN_PACKET_ID) {
    return make_error("requests packet id " + std::to_string(d->packet_id_first) +
                      ", but ids below " +
                      std::to_string(PRISM_FIRST_PLUGIN_PACKET_ID) + " belong to the host");
  }
  if (d->packet_id_count - 1 > UINT32_MAX - d->packet_id_first) {
    return make_error("packet-id range overflows 32 bits");
  }
  if (d->init == nullptr || d->handle == nullptr) {
    return make_error("descriptor has no init or no handle callback");
  }
  if (d->method_count > 0 && d->methods == nullptr) return make_error("method table is missing");
  if (method_stride(d) == 0) {
    return make_error("method_size " + std::to_string(d->method_size) +
                      " is smaller than a method of ABI 1.0 (" + std::to_string(kMethodV1Size) + ")");
  }
  if (PRISM_HAS_FIELD(d, prism_plugin_descriptor_t, channel) && d->channel_topics != nullptr) {
    size_t count = 0;
    for (const char* const* t = d->channel_topics; *t != nullptr; ++t) {
      if (++count > PRISM_MAX_CHANNEL_TOPICS) {
        return make_error("declares more than " + std::to_string(PRISM_MAX_CHANNEL_TOPICS) +
                          " channel topics");
      }
      if (!valid_channel_pattern(*t)) {
        return make_error("channel topic '" + std::string(*t).substr(0, 64) +
                          "' is not 1-200 printable characters optionally ending in '*'");
      }
    }
    if (count > 0 && d->channel == nullptr) {
      return make_error("declares channel topics but no channel callback");
    }
  }
  std::set<std::string> names;
  std::set<uint32_t> ids;
  for (size_t i = 0; i < d->method_count; ++i) {
    const auto& m = method_at(d, i);
    if (m.name == nullptr || !names.insert(m.name).second) {
      return make_error("method " + std::to_string(i) + " has no name or a duplicate name");
    }
    if (!ids.insert(m.id).second) {
      return make_error("method '" + std::string(m.name) + "' reuses id " + std::to_string(m.id));
    }
    if (m.id >= d->packet_id_count) {
      return make_error("method '" + std::string(m.name) + "' id " + std::to_string(m.id) +
                        " lies outside the plugin's range of " +
                        std::to_string(d->packet_id_count) + " ids");
    }
  }
  return {};
}

}  // namespace

std::string LoadedPlugin::describe() const { return "plugin " + name_ + " (" + file_ + ")"; }

Expected<std::unique_ptr<LoadedPlugin>> LoadedPlugin::open(const std::filesystem::path& file,
                                                          const RangeCheck& range_is_free) {
  return open(file, range_is_free, OpenOptions{});
}

Expected<std::unique_ptr<LoadedPlugin>> LoadedPlugin::open(const std::filesystem::path& file,
                                                          const RangeCheck& range_is_free,
                                                          const OpenOptions& options) {
  const std::string path = file.string();
  // What dlopen reads: the private copy when there is one (its name is unique, so dlopen
  // never returns a handle it already has open).
  const std::string load_from = options.copy ? options.copy->path.string() : path;
  auto refuse = [&](const std::string& who, const std::string& why) {
    if (options.refused_as != nullptr) *options.refused_as = who;
    return make_error("plugin " + who + " (" + path + ") refused: " + why);
  };
  const std::string unnamed = file.stem().string();

  if (auto complete = check_elf_shared_object(load_from); !complete) {
    return refuse(unnamed, "cannot load shared object: " + complete.error());
  }
  // RTLD_LOCAL: a plugin's symbols never satisfy another plugin's references.
  void* dl = dlopen(load_from.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl == nullptr) {
    const char* why = dlerror();
    return refuse(unnamed, std::string("cannot load shared object: ") + (why ? why : "unknown"));
  }
  auto entry = reinterpret_cast<prism_plugin_entry_fn>(dlsym(dl, PRISM_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) {
    dlclose(dl);
    return refuse(unnamed, "no prism_plugin_entry symbol: not a Prism plugin");
  }
  const prism_plugin_descriptor_t* d = entry();
  // The descriptor lives in the plugin's file: read it before any dlclose.
  if (auto ok = validate(d); !ok) {
    // Only a descriptor of this ABI major has its name where we would look for it.
    const bool readable = d && d->struct_size >= kDescriptorV1Size &&
                          d->abi_version_major == PRISM_ABI_VERSION_MAJOR && valid_name(d->name);
    const std::string who = readable ? d->name : unnamed;
    dlclose(dl);
    return refuse(who, ok.error());
  }
  std::vector<std::string> topics;
  if (PRISM_HAS_FIELD(d, prism_plugin_descriptor_t, channel) && d->channel_topics != nullptr) {
    for (const char* const* t = d->channel_topics; *t != nullptr; ++t) topics.emplace_back(*t);
  }
  uint32_t first = d->packet_id_first;
  uint32_t last = d->packet_id_first + (d->packet_id_count - 1);
  if (options.range_for) {
    if (auto range = options.range_for(d->name)) {
      // Method ids are relative (plugin.h), so a moved range must still hold every one.
      const uint64_t count = uint64_t{range->second} - range->first + 1;
      for (size_t i = 0; i < d->method_count; ++i) {
        const prism_method_t& m = method_at(d, i);
        if (range->second < range->first || m.id >= count) {
          const std::string who = d->name;
          const std::string why =
              "configured range " + std::to_string(range->first) + "-" +
              std::to_string(range->second) + " has no room for method '" + m.name +
              "' (id " + std::to_string(m.id) + ")";
          dlclose(dl);
          return refuse(who, why);
        }
      }
      first = range->first;
      last = range->second;
    }
  }
  if (auto ok = range_is_free(d->name, first, last, topics); !ok) {
    const std::string who = d->name;
    dlclose(dl);
    return refuse(who, ok.error());
  }

  std::unique_ptr<LoadedPlugin> plugin(new LoadedPlugin());
  plugin->dl_ = dl;
  plugin->descriptor_ = d;
  plugin->name_ = d->name;
  plugin->version_ = d->version;
  plugin->file_ = path;
  if (options.copy) {
    plugin->private_copy_ = options.copy->path;
    plugin->source_ = options.copy->source;
  } else if (auto id = identify(file)) {
    plugin->source_ = *id;
  }
  plugin->first_ = first;
  plugin->last_ = last;
  plugin->concurrent_ = (d->flags & PRISM_PLUGIN_CONCURRENT) != 0;
  plugin->channel_topics_ = std::move(topics);
  for (size_t i = 0; i < d->method_count; ++i) {
    plugin->methods_.push_back({method_at(d, i).name, first + method_at(d, i).id});
  }
  const std::string labels = "plugin=\"" + plugin->name_ + "\"";
  auto& reg = metrics::registry();
  plugin->requests_ = &reg.counter("prism_plugin_requests_total", labels, "Requests answered");
  plugin->errors_ = &reg.counter("prism_plugin_errors_total", labels,
                                 "Requests answered with a status other than OK");
  plugin->latency_ = &reg.histogram("prism_plugin_request_seconds", labels,
                                    "Time from request to reply inside the host");
  return plugin;
}

Expected<void> LoadedPlugin::init(const HostView& host, std::string_view config) {
  host_.plugin = this;
  host_.host = &host;
  char error[512] = {0};
  void* instance = nullptr;
  const prism_bytes_t cfg{reinterpret_cast<const uint8_t*>(config.data()), config.size()};
  const prism_status_t status =
      descriptor_->init(&host_api(), &host_, cfg, &instance, error, sizeof error);
  if (status != PRISM_OK) {
    error[sizeof error - 1] = '\0';
    return make_error(describe() + " refused: init failed with status " +
                      std::to_string(status) + (error[0] ? std::string(": ") + error : ""));
  }
  {
    // With no call inside: a timer the plugin started inside init may already fire.
    std::unique_lock<std::mutex> serial(serial_, std::defer_lock);
    HandlerGate::Closed closed;
    if (concurrent_) closed = gate_.close(); else serial.lock();
    instance_ = instance;
  }
  config_ = std::string(config);
  loaded_at_ms_ = unix_ms();
  return {};
}

prism_status_t LoadedPlugin::handle(prism_request_t* request, uint32_t method,
                                    std::span<const uint8_t> payload) {
  const prism_bytes_t bytes{payload.data(), payload.size()};
  LoadedPlugin* successor = nullptr;
  if (concurrent_) {
    if (gate_.enter()) {
      const prism_status_t status = descriptor_->handle(instance_, request, method, bytes);
      gate_.leave();
      return status;
    }
    successor = successor_.get();  // retired: set before the gate closed for good
  } else {
    std::lock_guard lock(serial_);
    successor = successor_.get();
    if (successor == nullptr) return descriptor_->handle(instance_, request, method, bytes);
  }
  // successor_ never changes once set, and this version keeps it alive.
  return successor->handle(request, method, payload);
}

prism_status_t LoadedPlugin::channel(prism_request_t* request, const prism_channel_message_t& message) {
  if (channel_topics_.empty()) return PRISM_NOT_FOUND;  // validate() made sure of the callback
  LoadedPlugin* successor = nullptr;
  if (concurrent_) {
    if (gate_.enter()) {
      const prism_status_t status = descriptor_->channel(instance_, request, &message);
      gate_.leave();
      return status;
    }
    successor = successor_.get();
  } else {
    std::lock_guard lock(serial_);
    successor = successor_.get();
    if (successor == nullptr) return descriptor_->channel(instance_, request, &message);
  }
  return successor->channel(request, message);
}

bool LoadedPlugin::serves_channel(std::string_view topic) const {
  for (const auto& pattern : channel_topics_) {
    if (channel_pattern_matches(pattern, topic)) return true;
  }
  return false;
}

void LoadedPlugin::deliver_event(const prism_event_t& event) {
  if (descriptor_->on_event == nullptr) return;
  if (concurrent_) {
    if (!gate_.enter()) return;  // retired: the successor hears it
    if (instance_ != nullptr) descriptor_->on_event(instance_, &event);
    gate_.leave();
  } else {
    std::lock_guard lock(serial_);
    if (successor_ == nullptr && instance_ != nullptr) descriptor_->on_event(instance_, &event);
  }
}

Expected<void> LoadedPlugin::hand_over_to(std::shared_ptr<LoadedPlugin> next) {
  // plugin.h: snapshot and restore run while no other callback of this version runs.
  std::lock_guard one_at_a_time(handover_);
  if (successor_ready_.load(std::memory_order_acquire)) {
    return make_error(describe() + " has already handed over to a newer version");
  }
  std::unique_lock<std::mutex> serial(serial_, std::defer_lock);
  HandlerGate::Closed closed;  // opens again when this returns, unless retired
  if (concurrent_) closed = gate_.close(); else serial.lock();

  if (descriptor_->snapshot != nullptr && next->descriptor_->restore != nullptr) {
    prism_bytes_t state{nullptr, 0};
    const prism_status_t taken = descriptor_->snapshot(instance_, &state);
    if (taken != PRISM_OK) {
      return make_error(describe() + " snapshot failed with status " + std::to_string(taken));
    }
    if (state.data == nullptr && state.len != 0) {
      return make_error(describe() + " snapshot returned a null state of " +
                        std::to_string(state.len) + " bytes");
    }
    // The state is ours (this version's) until its next call; next copies what it keeps.
    const prism_status_t restored = next->descriptor_->restore(next->instance_, state);
    if (restored != PRISM_OK) {
      return make_error(next->describe() + " version " + next->version_ +
                        " restore failed with status " + std::to_string(restored));
    }
  } else if (descriptor_->snapshot != nullptr) {
    SPDLOG_WARN("event=plugin_state_dropped name={} old_version={} new_version={} "
                "reason=\"new version has no restore\"",
                name_, version_, next->version_);
  }
  successor_ = std::move(next);
  successor_ready_.store(true, std::memory_order_release);
  if (concurrent_) closed.retire();
  return {};
}

LoadedPlugin::~LoadedPlugin() {
  // No topic message or timer reaches the instance once shutdown has begun.
  release_realtime(this);
  if (instance_ != nullptr && descriptor_->shutdown != nullptr) descriptor_->shutdown(instance_);
  if (dl_ != nullptr) dlclose(dl_);
  if (!private_copy_.empty()) {
    std::error_code ec;  // the private directory may already be gone with its registry
    std::filesystem::remove(private_copy_, ec);
  }
}

}  // namespace prism::plugins
