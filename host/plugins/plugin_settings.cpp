// Loads plugins.d/<name>.yaml: each known key has a parser that checks its value; any other
// key, a wrong type or a bad value is an error that says which file, where and which key.
#include "plugins/plugin_settings.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>
#include <string_view>

#include "config/yaml_text.hpp"
#include "plugins/plugin_types.hpp"

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;

// A plugin's name is its file's stem; it must be a valid service name plus '-'.
constexpr size_t kMaxPluginName = 64;
constexpr std::string_view kSettingsExtension = ".yaml";


using Parser = Expected<void> (*)(const YAML::Node& value, PluginSettings& out);

Expected<void> parse_enabled(const YAML::Node& node, PluginSettings& out) {
  bool value = false;
  // A quoted "true" is a string, not a switch.
  if (!node.IsScalar() || node.Tag() == "!" || !YAML::convert<bool>::decode(node, value)) {
    return make_error("expected true or false, got " + config::describe(node));
  }
  out.enabled = value;
  return {};
}

Expected<void> parse_token(const YAML::Node& node, PluginSettings& out) {
  if (!node.IsScalar()) return make_error("expected sha256:<64 hex digits>, got " + config::describe(node));
  auto hash = prism::parse_token_hash(node.Scalar());
  if (!hash) return make_error(hash.error());
  out.token = *hash;
  return {};
}

// A decimal request id with nothing around it; nullopt for anything else.
std::optional<uint32_t> request_id(std::string_view text) {
  uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

Expected<void> parse_range(const YAML::Node& node, PluginSettings& out) {
  const std::string expected = "expected \"FIRST..LAST\" with " +
                               std::to_string(PRISM_FIRST_PLUGIN_PACKET_ID) + " <= FIRST <= LAST <= " +
                               std::to_string(kLastRequestId);
  if (!node.IsScalar()) return make_error(expected + ", got " + config::describe(node));
  const std::string_view text = node.Scalar();
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos) return make_error(expected + ", got " + config::describe(node));
  const auto first = request_id(text.substr(0, dots));
  const auto last = request_id(text.substr(dots + 2));
  if (!first || !last) return make_error(expected + ", got " + config::describe(node));
  if (*first < PRISM_FIRST_PLUGIN_PACKET_ID) {
    return make_error(expected + ", got FIRST " + std::to_string(*first) + " (ids below " +
                      std::to_string(PRISM_FIRST_PLUGIN_PACKET_ID) + " belong to the host)");
  }
  if (*last > kLastRequestId) {
    return make_error(expected + ", got LAST " + std::to_string(*last));
  }
  if (*first > *last) {
    return make_error(expected + ", got FIRST " + std::to_string(*first) + " above LAST " +
                      std::to_string(*last));
  }
  out.range = std::make_pair(*first, *last);
  return {};
}

Expected<void> parse_settings(const YAML::Node& node, PluginSettings& out) {
  if (node.IsNull()) return {};  // `settings:` with everything commented out
  if (!node.IsMap()) return make_error("expected a map, got " + config::describe(node));
  out.settings = node;
  return {};
}

struct Key {
  std::string_view name;
  Parser parse;
};

constexpr std::array kKeys{
    Key{"enabled", parse_enabled},
    Key{"token_hash", parse_token},
    Key{"range", parse_range},
    Key{"settings", parse_settings},
};

std::string unknown_key(const std::string& name) {
  std::string message = name + ": unknown key (known keys:";
  for (const Key& key : kKeys) message += " " + std::string(key.name);
  return message + ")";
}

Expected<void> apply(const YAML::Node& root, std::string_view source, PluginSettings& out) {
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    const std::string at = config::where(source, key.Mark());
    if (!key.IsScalar() || key.Scalar().empty()) {
      return make_error(at + "expected a key name, got " + config::describe(key));
    }
    const std::string& name = key.Scalar();
    // yaml-cpp keeps both copies of a repeated key and lookups see only one; refuse it.
    if (!seen.insert(name).second) return make_error(at + name + ": duplicate key");
    const auto known = std::find_if(kKeys.begin(), kKeys.end(),
                                    [&](const Key& k) { return k.name == name; });
    if (known == kKeys.end()) return make_error(at + unknown_key(name));
    // yaml-cpp marks an empty value at the next token, so blame the key for those.
    const std::string value_at = value.IsNull() ? at : config::where(source, value.Mark());
    if (auto parsed = known->parse(value, out); !parsed) {
      return make_error(value_at + name + ": " + parsed.error());
    }
  }
  return {};
}

}  // namespace

Expected<PluginSettings> load_plugin_settings_file(const fs::path& path) {
  const std::string source = path.string();
  const std::string name = path.stem().string();
  if (!is_identifier(name, kMaxPluginName, "-")) {
    return make_error(source + ": the file name must be <plugin>.yaml with <plugin> 1.." +
                      std::to_string(kMaxPluginName) + " characters from [a-z0-9_-]");
  }
  // The admin service's login is the admin token alone (docs/security.md): a file here
  // must not be able to open it or set its token.
  if (name == kAdminService) {
    return make_error(source + ": '" + std::string(kAdminService) +
                      "' is the built-in admin service, not a plugin; its token is "
                      "admin.token_file in prism.yaml. Remove this file");
  }
  auto text = config::read_text_file(path, "plugin config file");
  if (!text) return make_error(text.error());

  PluginSettings out;
  out.name = name;
  out.source = source;
  try {
    const YAML::Node root = YAML::Load(*text);
    if (root.IsNull()) return out;  // empty, or only comments: all defaults
    if (!root.IsMap()) {
      return make_error(config::where(source, root.Mark()) +
                        "expected a map of settings at the top level, got " + config::describe(root));
    }
    if (auto applied = apply(root, source, out); !applied) return make_error(applied.error());
    return out;
  } catch (const YAML::Exception& e) {  // syntax errors carry the mark of the bad token
    return make_error(config::where(source, e.mark) + e.msg);
  }
}

Expected<std::vector<PluginSettings>> load_plugin_settings_dir(const fs::path& dir) {
  std::vector<PluginSettings> all;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return all;  // no plugin has settings
  if (ec) return make_error(dir.string() + ": cannot list plugin config directory: " + ec.message());

  std::vector<fs::path> files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    if (path.extension() != kSettingsExtension) continue;
    std::error_code kind_ec;  // a dangling link is not a directory: reading it reports why
    if (it->is_directory(kind_ec)) continue;
    files.push_back(path);
  }
  if (ec) return make_error(dir.string() + ": cannot list plugin config directory: " + ec.message());
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  all.reserve(files.size());
  for (const fs::path& path : files) {
    auto settings = load_plugin_settings_file(path);
    if (!settings) return make_error(settings.error());
    all.push_back(std::move(*settings));
  }
  return all;
}

}  // namespace prism::plugins
