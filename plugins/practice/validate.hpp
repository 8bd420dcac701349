// What the practice service accepts from a request: Minecraft UUIDs and names, server,
// queue and match ids, profile fields (docs/practice.md §3). Pure functions, unit-tested.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace prism::practice {

inline constexpr size_t kMaxNameLength = 16;         // Minecraft's limit
inline constexpr size_t kMaxMatchIdLength = 64;
inline constexpr size_t kMaxServerLength = 32;
inline constexpr size_t kMaxQueueLength = 32;
inline constexpr size_t kMaxDisplayRankLength = 32;
inline constexpr size_t kMaxLocaleLength = 16;
inline constexpr size_t kMaxAttributes = 32;
inline constexpr size_t kMaxAttributeKeyLength = 32;
inline constexpr size_t kMaxAttributeValueLength = 256;
inline constexpr int32_t kMaxKillsPerMatch = 10000;
inline constexpr int64_t kMaxDurationMs = 7LL * 24 * 3600 * 1000;
inline constexpr size_t kMaxPayload = 64 * 1024;     // any request larger is refused unread

// The canonical form of a Minecraft UUID: 36 lowercase characters, 8-4-4-4-12 hex digits.
// Accepts that form in any case, or the 32 hex digits without dashes (as Mojang's API
// writes them). nullopt for anything else.
std::optional<std::string> canonical_uuid(std::string_view text);

bool valid_player_name(std::string_view name);   // 1..16 of [A-Za-z0-9_]
bool valid_server_name(std::string_view server); // 1..32 of [A-Za-z0-9_.-]
bool valid_queue_name(std::string_view queue);   // 1..32 of [a-z0-9_]
bool valid_match_id(std::string_view id);        // 1..64 of [A-Za-z0-9_.:-]
bool valid_locale(std::string_view locale);      // 0..16 of [A-Za-z0-9_-]
bool valid_attribute_key(std::string_view key);  // 1..32 of [a-z0-9_.-]
// Printable text: no control characters (bytes below 0x20 and 0x7f).
bool printable(std::string_view text);

std::string lowercase(std::string_view text);

}  // namespace prism::practice
