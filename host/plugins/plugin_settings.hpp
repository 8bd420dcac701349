// Per-plugin configuration: one file <config_dir>/<name>.yaml per plugin (plugins.config_dir),
// read at startup. The host checks its own keys; a plugin's `settings:` pass through to it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "base/token_hash.hpp"
#include "prism/plugin.h"

namespace prism::plugins {

inline constexpr uint32_t kLastRequestId = 65535;

struct PluginSettings {
  std::string name;    // the file's stem: [a-z0-9_-]{1,64}
  std::string source;  // the file it came from, for messages
  bool enabled = true;
  std::optional<prism::TokenHash> token;               // token_hash; none = open service
  std::optional<std::pair<uint32_t, uint32_t>> range;        // request ids FIRST..LAST, inclusive
  YAML::Node settings;  // the `settings:` map, unchecked; null when absent or empty
};

// Reads one plugin's file. An empty file (or one holding only comments) gives the defaults.
// Errors read "<path>:<line>:<column>: <key>: <what>", or "<path>: <what>" without a position.
Expected<PluginSettings> load_plugin_settings_file(const std::filesystem::path& path);

// Reads every *.yaml file in `dir`, sorted by file name. A missing directory gives an empty
// list; the first file that fails stops the load and its error is returned.
Expected<std::vector<PluginSettings>> load_plugin_settings_dir(const std::filesystem::path& dir);

}  // namespace prism::plugins
