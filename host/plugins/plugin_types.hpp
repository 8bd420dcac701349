// The host-side definitions of the ABI's opaque handles (plugin.h): a request is
// answered by the dispatch layer, a host handle ties a plugin version to its host.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "prism/plugin.h"

// One in-flight request as the plugin sees it. The dispatch layer implements it.
struct prism_request {
  // Answers and releases the request (plugin.h: prism_host_api_t.reply).
  virtual prism_status_t complete(prism_status_t status, std::string_view message,
                                  std::span<const uint8_t> payload) = 0;
  virtual uint64_t session_id() const = 0;

 protected:
  ~prism_request() = default;
};

namespace prism::plugins {
class LoadedPlugin;
class Registry;
}  // namespace prism::plugins

// What a plugin version's host handle points at.
struct prism_host {
  prism::plugins::LoadedPlugin* plugin = nullptr;
  prism::plugins::Registry* registry = nullptr;
};

namespace prism::plugins {

// The function table handed to every plugin's init.
const prism_host_api_t& host_api();

}  // namespace prism::plugins
