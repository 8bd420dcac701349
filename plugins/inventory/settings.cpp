// Parses the inventory service's settings: a flat mapping of integers, the only shape
// its settings take, so the plugin needs no YAML library (it links only the SDK).
#include "settings.hpp"

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

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

[[noreturn]] void refuse(const std::string& message) {
  throw std::invalid_argument("inventory settings: " + message);
}

std::string known_keys() {
  std::string out;
  for (const Key& k : kKeys) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

// The entries of the mapping, "key: value" each, from block or flow style.
std::vector<std::string_view> entries_of(std::string_view yaml) {
  std::vector<std::string_view> out;
  std::string_view body = trim(yaml);
  const bool flow = !body.empty() && body.front() == '{';
  if (flow) {
    if (body.back() != '}') refuse("flow mapping is not closed with '}'");
    body = body.substr(1, body.size() - 2);
  }
  const char separator = flow ? ',' : '\n';
  while (!body.empty()) {
    const size_t end = body.find(separator);
    std::string_view entry = body.substr(0, end);
    body = end == std::string_view::npos ? std::string_view{} : body.substr(end + 1);
    if (const size_t hash = entry.find('#'); hash != std::string_view::npos) {
      entry = entry.substr(0, hash);
    }
    entry = trim(flow ? trim(entry) : entry);
    if (entry.empty() || entry == "---" || entry == "...") continue;
    out.push_back(entry);
  }
  return out;
}

}  // namespace

size_t Settings::worst_case_record_bytes() const {
  return size_t{max_items_per_player} * (max_metadata_bytes + kItemOverheadBytes) +
         size_t{op_retention} * kOpIdOverheadBytes;
}

Settings parse_settings(std::string_view yaml) {
  Settings settings;
  std::vector<std::string_view> seen;
  for (std::string_view entry : entries_of(yaml)) {
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos) {
      refuse("expected 'key: value', got '" + std::string(entry) + "'");
    }
    const std::string_view name = unquote(trim(entry.substr(0, colon)));
    const std::string_view text = unquote(trim(entry.substr(colon + 1)));
    const Key* key = nullptr;
    for (const Key& k : kKeys) {
      if (k.name == name) key = &k;
    }
    if (key == nullptr) {
      refuse(std::string(name) + ": unknown key (known keys: " + known_keys() + ")");
    }
    for (std::string_view s : seen) {
      if (s == name) refuse(std::string(name) + ": given twice");
    }
    seen.push_back(name);
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      refuse(std::string(name) + ": expected a non-negative integer, got '" + std::string(text) + "'");
    }
    if (value < key->min || value > key->max) {
      refuse(std::string(name) + ": " + std::to_string(value) + " is outside " +
             std::to_string(key->min) + ".." + std::to_string(key->max));
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
