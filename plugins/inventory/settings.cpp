// Parses the inventory service's settings: a flat mapping of integers (yaml-cpp, as the
// practice service and the host read theirs).
#include "settings.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <stdexcept>
#include <string>
#include <vector>

namespace prism::inventory {
namespace {

struct Key {
  std::string_view name;
  uint32_t Settings::*field;
  uint32_t min;
  uint32_t max;
};

constexpr Key kKeys[] = {
    {"max_items_per_player", &Settings::max_items_per_player, 1, 100000},
    {"max_metadata_bytes", &Settings::max_metadata_bytes, 0, 65536},
    {"op_retention", &Settings::op_retention, 1, 100000},
};

[[noreturn]] void refuse(const std::string& message) {
  throw std::invalid_argument("inventory settings: " + message);
}

std::string known_keys() {
  std::string out;
  for (const Key& k : kKeys) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

YAML::Node load(std::string_view yaml) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    refuse("not valid YAML: " + std::string(e.what()));
  }
}

}  // namespace

size_t Settings::worst_case_record_bytes() const {
  return size_t{max_items_per_player} * (max_metadata_bytes + kItemOverheadBytes) +
         size_t{op_retention} * kOpIdOverheadBytes;
}

Settings parse_settings(std::string_view yaml) {
  Settings settings;
  const YAML::Node root = load(yaml);
  if (root.IsNull()) return settings;  // no settings, or only comments
  if (!root.IsMap()) refuse("expected a mapping of key: value");
  std::vector<std::string> seen;
  for (const auto& entry : root) {
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : std::string("?");
    const Key* key = nullptr;
    for (const Key& k : kKeys) {
      if (k.name == name) key = &k;
    }
    if (key == nullptr) {
      refuse(name + ": unknown key (known keys: " + known_keys() + ")");
    }
    // yaml-cpp keeps both copies of a repeated key; the second would silently win.
    for (const std::string& s : seen) {
      if (s == name) refuse(name + ": given twice");
    }
    seen.push_back(name);
    const std::string text = entry.second.IsScalar() ? entry.second.Scalar() : std::string();
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      refuse(name + ": expected a non-negative integer, got '" + text + "'");
    }
    if (value < key->min || value > key->max) {
      refuse(name + ": " + std::to_string(value) + " is outside " + std::to_string(key->min) +
             ".." + std::to_string(key->max));
    }
    settings.*(key->field) = static_cast<uint32_t>(value);
  }
  if (settings.worst_case_record_bytes() > kMaxDocumentBytes) {
    refuse("a full player's record could reach " +
           std::to_string(settings.worst_case_record_bytes()) +
           " bytes (max_items_per_player x (max_metadata_bytes + " +
           std::to_string(kItemOverheadBytes) + ") + op_retention x " +
           std::to_string(kOpIdOverheadBytes) + "), more than the " +
           std::to_string(kMaxDocumentBytes) +
           "-byte document limit: lower max_items_per_player, max_metadata_bytes or "
           "op_retention");
  }
  return settings;
}

}  // namespace prism::inventory
