// Elo arithmetic (rating.hpp).
#include "rating.hpp"

#include <cmath>

namespace prism::practice {

double expected_score(double rating, double opponent_rating) {
  return 1.0 / (1.0 + std::pow(10.0, (opponent_rating - rating) / 400.0));
}

int32_t k_factor_for(const EloRules& rules, int64_t ranked_matches_before) {
  return ranked_matches_before < rules.games_before_lower_k ? rules.k_factor : rules.k_factor_after;
}

int32_t elo_delta(int32_t rating, double opponent_mean, bool won, int32_t k) {
  const double score = won ? 1.0 : 0.0;
  return static_cast<int32_t>(std::lround(k * (score - expected_score(rating, opponent_mean))));
}

double mean_rating(std::span<const int32_t> ratings) {
  if (ratings.empty()) return 0;
  double sum = 0;
  for (int32_t r : ratings) sum += r;
  return sum / static_cast<double>(ratings.size());
}

std::optional<int32_t> global_elo(std::span<const int32_t> ranked_queue_ratings) {
  if (ranked_queue_ratings.empty()) return std::nullopt;
  return static_cast<int32_t>(std::lround(mean_rating(ranked_queue_ratings)));
}

}  // namespace prism::practice
