// Where the practice service keeps its data in the host's storage facade (docs/practice.md
// §6): document collections and keys, leaderboard names, presence owners and statuses.
// Every name starts with "practice" so the service shares a store with others safely.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "prism/practice/v1/practice.pb.h"

namespace prism::practice {

namespace v1 = ::prism::practice::v1;

inline constexpr std::string_view kPlayers = "practice.players";  // uuid → PlayerRecord
inline constexpr std::string_view kNames = "practice.names";      // lowercase name → uuid
inline constexpr std::string_view kStats = "practice.stats";      // uuid → StatsRecord
inline constexpr std::string_view kMatches = "practice.matches";  // match id → MatchRecord

// "elo", "wins", "kills", "best_streak"; "" for STAT_UNSPECIFIED or an unknown value.
std::string_view stat_name(v1::Stat stat);

// "practice.<stat>.global" for queue "", else "practice.<stat>.q.<queue>".
std::string board_name(v1::Stat stat, std::string_view queue);

// Presence: owner "practice:<uuid>", status "practice/<server>/<queue>/<name>" (queue may
// be empty), so a status prefix lists one server, or one queue of one server.
inline constexpr std::string_view kPresencePrefix = "practice/";
std::string presence_owner(std::string_view uuid);
std::string presence_status(std::string_view server, std::string_view queue, std::string_view name);
// "practice/", "practice/<server>/" or "practice/<server>/<queue>/" (queue needs a server).
std::string presence_prefix(std::string_view server, std::string_view queue);
// The Presence message of a stored entry; nullopt for an entry that is not the service's.
std::optional<v1::Presence> parse_presence(std::string_view owner, std::string_view status,
                                           int64_t expires_at_ms);

}  // namespace prism::practice
