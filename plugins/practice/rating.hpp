// Elo for practice matches (docs/practice.md §5): pure arithmetic, no storage, so a unit
// test can pin every number.
//
//   expected  E = 1 / (1 + 10^((R_opp - R) / 400)), R_opp = mean rating of the other team
//   delta       = round(K * (S - E)), S = 1 for a win, 0 for a loss, rounded half away from 0
//   K           = k_factor before the player's games_before_lower_k-th ranked match in the
//                 queue, k_factor_after from then on
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace prism::practice {

struct EloRules {
  int32_t k_factor = 32;
  int32_t k_factor_after = 16;
  int64_t games_before_lower_k = 30;
};

// The probability the model gives `rating` of beating `opponent_rating`.
double expected_score(double rating, double opponent_rating);

// K for a player who has played `ranked_matches_before` ranked matches in the queue.
int32_t k_factor_for(const EloRules& rules, int64_t ranked_matches_before);

// The change of `rating` after a match against a team of mean rating `opponent_mean`.
int32_t elo_delta(int32_t rating, double opponent_mean, bool won, int32_t k);

// The arithmetic mean of a team's ratings (0 for an empty team).
double mean_rating(std::span<const int32_t> ratings);

// Global Elo: the rounded mean of the ratings of the queues a player has played ranked;
// nullopt when there are none.
std::optional<int32_t> global_elo(std::span<const int32_t> ranked_queue_ratings);

}  // namespace prism::practice
