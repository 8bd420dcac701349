// Input checks of the practice service (validate.hpp).
#include "validate.hpp"

#include <algorithm>

namespace prism::practice {
namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

template <class Allowed>
bool all_of(std::string_view text, size_t min, size_t max, Allowed allowed) {
  return text.size() >= min && text.size() <= max && std::all_of(text.begin(), text.end(), allowed);
}

}  // namespace

std::optional<std::string> canonical_uuid(std::string_view text) {
  std::string hex;
  if (text.size() == 36) {
    for (size_t i = 0; i < text.size(); ++i) {
      const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash_here != (text[i] == '-')) return std::nullopt;
      if (!dash_here) hex.push_back(text[i]);
    }
  } else if (text.size() == 32) {
    hex = text;
  } else {
    return std::nullopt;
  }
  if (!std::all_of(hex.begin(), hex.end(), is_hex)) return std::nullopt;
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < hex.size(); ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out.push_back('-');
    out.push_back(lower(hex[i]));
  }
  return out;
}

bool valid_player_name(std::string_view name) {
  return all_of(name, 1, kMaxNameLength, [](char c) { return is_alnum(c) || c == '_'; });
}

bool valid_server_name(std::string_view server) {
  return all_of(server, 1, kMaxServerLength,
                [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool valid_queue_name(std::string_view queue) {
  return all_of(queue, 1, kMaxQueueLength, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool valid_match_id(std::string_view id) {
  return all_of(id, 1, kMaxMatchIdLength,
                [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-'; });
}

bool valid_locale(std::string_view locale) {
  return all_of(locale, 0, kMaxLocaleLength, [](char c) { return is_alnum(c) || c == '_' || c == '-'; });
}

bool valid_attribute_key(std::string_view key) {
  return all_of(key, 1, kMaxAttributeKeyLength, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

bool printable(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

}  // namespace prism::practice
