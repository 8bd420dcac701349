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
class HostView;
}  // namespace prism::plugins

// What a plugin version's host handle points at.
struct prism_host {
  prism::plugins::LoadedPlugin* plugin = nullptr;
  const prism::plugins::HostView* host = nullptr;  // the registry that loaded it
};

namespace prism::plugins {

// The service name of the built-in admin service: LOGIN to it takes the admin token
// (docs/operations.md). No plugin, and no plugins.d file, may take it.
inline constexpr std::string_view kAdminService = "admin";

// True when `text` is 1..max_len characters from [a-z0-9_] plus `extra` (plugin.h's
// rules for service and counter names).
inline bool is_identifier(std::string_view text, size_t max_len, std::string_view extra = {}) {
  if (text.empty() || text.size() > max_len) return false;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// The function table handed to every plugin's init.
const prism_host_api_t& host_api();

}  // namespace prism::plugins
