// Parsing and validation of the practice service's settings (settings.hpp).
#include "settings.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <limits>
#include <set>
#include <stdexcept>

#include "validate.hpp"

namespace prism::practice {
namespace {

constexpr size_t kMaxQueues = 32;  // each queue adds 4 leaderboards

[[noreturn]] void refuse(std::string_view key, const std::string& reason) {
  throw std::invalid_argument("settings." + std::string(key) + ": " + reason);
}

int64_t integer(const YAML::Node& node, std::string_view key, int64_t min, int64_t max) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (!node.IsScalar()) refuse(key, "expected an integer " + range);
  int64_t value = 0;
  try {
    value = node.as<int64_t>();
  } catch (const YAML::Exception&) {
    refuse(key, "expected an integer " + range + ", got '" + node.Scalar() + "'");
  }
  if (value < min || value > max) {
    refuse(key, "expected an integer " + range + ", got " + std::to_string(value));
  }
  return value;
}

std::vector<std::string> queue_names(const YAML::Node& node) {
  if (!node.IsSequence()) refuse("queues", "expected a list of queue names");
  if (node.size() == 0) refuse("queues", "at least one queue is needed");
  if (node.size() > kMaxQueues) {
    refuse("queues", "at most " + std::to_string(kMaxQueues) + " queues");
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& item : node) {
    if (!item.IsScalar() || !valid_queue_name(item.Scalar())) {
      refuse("queues", "'" + (item.IsScalar() ? item.Scalar() : std::string("?")) +
                           "' is not a queue name (1..32 of [a-z0-9_])");
    }
    if (!seen.insert(item.Scalar()).second) refuse("queues", "'" + item.Scalar() + "' is listed twice");
    out.push_back(item.Scalar());
  }
  return out;
}

constexpr std::array kKeys{"queues",        "initial_rating", "k_factor",     "k_factor_after",
                           "games_before_lower_k", "presence_ttl_s", "max_team_size",
                           "record_attempts"};

}  // namespace

bool Settings::has_queue(std::string_view queue) const {
  return std::find(queues.begin(), queues.end(), queue) != queues.end();
}

std::string Settings::queue_list() const {
  std::string out;
  for (const auto& q : queues) out += (out.empty() ? "" : ", ") + q;
  return out;
}

Settings parse_settings(std::string_view yaml_text) {
  Settings s;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument("settings: not valid YAML: " + std::string(e.what()));
  }
  if (!root || root.IsNull()) return s;
  if (!root.IsMap()) throw std::invalid_argument("settings: expected a mapping of settings");
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      std::string known;
      for (const char* k : kKeys) known += (known.empty() ? "" : ", ") + std::string(k);
      refuse(key, "unknown key (known keys: " + known + ")");
    }
  }
  if (auto n = root["queues"]) s.queues = queue_names(n);
  if (auto n = root["initial_rating"]) s.initial_rating = static_cast<int32_t>(integer(n, "initial_rating", 0, 100000));
  if (auto n = root["k_factor"]) s.k_factor = static_cast<int32_t>(integer(n, "k_factor", 1, 1000));
  if (auto n = root["k_factor_after"]) s.k_factor_after = static_cast<int32_t>(integer(n, "k_factor_after", 1, 1000));
  if (auto n = root["games_before_lower_k"]) s.games_before_lower_k = integer(n, "games_before_lower_k", 0, 1000000);
  if (auto n = root["presence_ttl_s"]) s.presence_ttl_s = static_cast<uint32_t>(integer(n, "presence_ttl_s", 1, 86400));
  if (auto n = root["max_team_size"]) s.max_team_size = static_cast<uint32_t>(integer(n, "max_team_size", 1, 64));
  if (auto n = root["record_attempts"]) s.record_attempts = static_cast<uint32_t>(integer(n, "record_attempts", 1, 100));
  return s;
}

}  // namespace prism::practice
