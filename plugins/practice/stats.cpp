// Match arithmetic on stats documents (stats.hpp).
#include "stats.hpp"

#include <algorithm>

#include "layout.hpp"
#include "rating.hpp"

namespace prism::practice {
namespace {

constexpr v1::Stat kBoardStats[] = {v1::STAT_ELO, v1::STAT_WINS, v1::STAT_KILLS, v1::STAT_BEST_STREAK};

v1::QueueStats& queue_entry(v1::StatsRecord& stats, std::string_view queue, int32_t initial_rating) {
  for (auto& q : *stats.mutable_queues()) {
    if (q.queue() == queue) return q;
  }
  v1::QueueStats* q = stats.add_queues();
  q->set_queue(std::string(queue));
  q->set_rating(initial_rating);
  return *q;
}

void count(v1::StatLine& line, bool won, int32_t kills, int32_t deaths) {
  line.set_matches(line.matches() + 1);
  line.set_kills(line.kills() + kills);
  line.set_deaths(line.deaths() + deaths);
  if (won) {
    line.set_wins(line.wins() + 1);
    line.set_current_streak(line.current_streak() + 1);
    line.set_best_streak(std::max(line.best_streak(), line.current_streak()));
  } else {
    line.set_losses(line.losses() + 1);
    line.set_current_streak(0);
  }
}

void add_line(std::vector<BoardValue>& out, const v1::StatLine& line, std::string_view queue) {
  out.push_back({board_name(v1::STAT_WINS, queue), line.wins()});
  out.push_back({board_name(v1::STAT_KILLS, queue), line.kills()});
  out.push_back({board_name(v1::STAT_BEST_STREAK, queue), line.best_streak()});
}

}  // namespace

const v1::QueueStats* find_queue(const v1::StatsRecord& stats, std::string_view queue) {
  for (const auto& q : stats.queues()) {
    if (q.queue() == queue) return &q;
  }
  return nullptr;
}

std::optional<int32_t> global_elo_of(const v1::StatsRecord& stats, const Settings& settings) {
  std::vector<int32_t> ratings;
  for (const auto& q : stats.queues()) {
    if (q.ranked_matches() > 0 && settings.has_queue(q.queue())) ratings.push_back(q.rating());
  }
  return global_elo(ratings);
}

v1::MatchResult apply_match(const Settings& settings, const v1::RecordMatchRequest& match,
                            std::vector<v1::StatsRecord>& stats, int64_t now_ms) {
  const size_t winners = static_cast<size_t>(match.winners_size());
  const EloRules rules{settings.k_factor, settings.k_factor_after, settings.games_before_lower_k};

  // Ratings before the match, per team: every expectation uses these, not updated ones.
  std::vector<int32_t> before(stats.size());
  std::vector<int32_t> winner_ratings, loser_ratings;
  for (size_t i = 0; i < stats.size(); ++i) {
    before[i] = queue_entry(stats[i], match.queue(), settings.initial_rating).rating();
    (i < winners ? winner_ratings : loser_ratings).push_back(before[i]);
  }
  const double winner_mean = mean_rating(winner_ratings);
  const double loser_mean = mean_rating(loser_ratings);

  v1::MatchResult result;
  result.set_match_id(match.match_id());
  result.set_queue(match.queue());
  result.set_ranked(match.ranked());
  result.set_duration_ms(match.duration_ms());
  result.set_server(match.server());
  result.set_recorded_at_ms(now_ms);
  for (size_t i = 0; i < stats.size(); ++i) {
    const bool won = i < winners;
    const v1::PlayerResult& player = won ? match.winners(static_cast<int>(i))
                                         : match.losers(static_cast<int>(i - winners));
    const int32_t kills = player.kills();
    const int32_t deaths = player.has_deaths() ? player.deaths() : (won ? 0 : 1);
    v1::QueueStats& queue = queue_entry(stats[i], match.queue(), settings.initial_rating);
    int32_t delta = 0;
    if (match.ranked()) {
      const int32_t k = k_factor_for(rules, queue.ranked_matches());
      delta = elo_delta(before[i], won ? loser_mean : winner_mean, won, k);
      queue.set_rating(before[i] + delta);
      queue.set_ranked_matches(queue.ranked_matches() + 1);
    }
    count(*queue.mutable_stats(), won, kills, deaths);
    count(*stats[i].mutable_totals(), won, kills, deaths);

    v1::PlayerOutcome* out = result.add_players();
    out->set_uuid(player.uuid());
    out->set_name(stats[i].name());
    out->set_won(won);
    out->set_rating_before(before[i]);
    out->set_rating_after(queue.rating());
    out->set_rating_delta(delta);
    out->set_kills(kills);
    out->set_deaths(deaths);
    out->set_win_streak(queue.stats().current_streak());
    if (auto global = global_elo_of(stats[i], settings)) out->set_global_elo(*global);
  }
  return result;
}

std::vector<BoardValue> board_values(const v1::StatsRecord& stats, const Settings& settings) {
  std::vector<BoardValue> out;
  if (auto global = global_elo_of(stats, settings)) out.push_back({board_name(v1::STAT_ELO, ""), *global});
  if (stats.totals().matches() > 0) add_line(out, stats.totals(), "");
  for (const auto& queue : settings.queues) {
    const v1::QueueStats* q = find_queue(stats, queue);
    if (q == nullptr || q->stats().matches() == 0) continue;
    if (q->ranked_matches() > 0) out.push_back({board_name(v1::STAT_ELO, queue), q->rating()});
    add_line(out, q->stats(), queue);
  }
  return out;
}

std::vector<BoardValue> changed_board_values(const std::vector<BoardValue>& before,
                                             const std::vector<BoardValue>& after) {
  std::vector<BoardValue> out;
  for (const auto& value : after) {
    if (std::find(before.begin(), before.end(), value) == before.end()) out.push_back(value);
  }
  return out;
}

std::vector<std::string> all_boards(const Settings& settings) {
  std::vector<std::string> out;
  for (v1::Stat stat : kBoardStats) out.push_back(board_name(stat, ""));
  for (const auto& queue : settings.queues) {
    for (v1::Stat stat : kBoardStats) out.push_back(board_name(stat, queue));
  }
  return out;
}

}  // namespace prism::practice
