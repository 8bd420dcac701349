// What one match does to the players' stats documents, and the leaderboard values those
// documents imply (docs/practice.md §5, §6). Pure: no storage, so it is unit-tested with
// known matches.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "prism/practice/v1/practice.pb.h"
#include "settings.hpp"

namespace prism::practice {

namespace v1 = ::prism::practice::v1;

// The player's entry for `queue`, or nullptr.
const v1::QueueStats* find_queue(const v1::StatsRecord& stats, std::string_view queue);

// The rounded mean rating over the configured queues the player has played ranked.
std::optional<int32_t> global_elo_of(const v1::StatsRecord& stats, const Settings& settings);

// Applies a validated match to the stats of its players: `stats` holds one record per
// player, winners first in request order, then losers. Ratings change in a ranked match
// only, each player's expectation taken against the other team's mean rating before the
// match. Returns the reply (recorded_at_ms = now_ms).
v1::MatchResult apply_match(const Settings& settings, const v1::RecordMatchRequest& match,
                            std::vector<v1::StatsRecord>& stats, int64_t now_ms);

// One leaderboard entry a stats record implies.
struct BoardValue {
  std::string board;
  int64_t score = 0;
  bool operator==(const BoardValue&) const = default;
};

// The entries a player has: the global wins/kills/best_streak boards once they played a
// match, the global elo board once they played a ranked one, and the same four per
// configured queue they played. Deterministic order.
std::vector<BoardValue> board_values(const v1::StatsRecord& stats, const Settings& settings);

// Entries of `after` that are new or differ from `before` (what a match must submit).
std::vector<BoardValue> changed_board_values(const std::vector<BoardValue>& before,
                                             const std::vector<BoardValue>& after);

// Every board the service uses, global first.
std::vector<std::string> all_boards(const Settings& settings);

}  // namespace prism::practice
