// The practice service's pure parts (plugins/practice): Elo numbers for known matches, the
// stats a match leaves behind, leaderboard values, settings and input checks.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "layout.hpp"
#include "rating.hpp"
#include "settings.hpp"
#include "stats.hpp"
#include "validate.hpp"

namespace prism::practice {
namespace {

TEST(PracticeElo, EqualRatingsMoveByHalfOfK) {
  EXPECT_DOUBLE_EQ(expected_score(1000, 1000), 0.5);
  EXPECT_EQ(elo_delta(1000, 1000, true, 32), 16);
  EXPECT_EQ(elo_delta(1000, 1000, false, 32), -16);
}

TEST(PracticeElo, FavouriteGainsLittleAndUnderdogGainsMuch) {
  EXPECT_NEAR(expected_score(1200, 1000), 0.7597, 1e-4);
  EXPECT_EQ(elo_delta(1200, 1000, true, 32), 8);
  EXPECT_EQ(elo_delta(1000, 1200, false, 32), -8);
  EXPECT_EQ(elo_delta(1000, 1200, true, 32), 24);
}

TEST(PracticeElo, KFactorDropsAfterTheConfiguredNumberOfRankedGames) {
  const EloRules rules{32, 16, 30};
  EXPECT_EQ(k_factor_for(rules, 0), 32);
  EXPECT_EQ(k_factor_for(rules, 29), 32);
  EXPECT_EQ(k_factor_for(rules, 30), 16);
  EXPECT_EQ(k_factor_for({32, 16, 0}, 0), 16);
}

TEST(PracticeElo, GlobalEloIsTheRoundedMeanOfRankedQueues) {
  EXPECT_FALSE(global_elo(std::vector<int32_t>{}).has_value());
  EXPECT_EQ(global_elo(std::vector<int32_t>{1016}), 1016);
  EXPECT_EQ(global_elo(std::vector<int32_t>{1016, 985}), 1001);  // 1000.5 rounds away from 0
  EXPECT_EQ(global_elo(std::vector<int32_t>{1000, 1001, 1001}), 1001);
}

v1::StatsRecord player(const std::string& uuid, const std::string& name) {
  v1::StatsRecord s;
  s.set_uuid(uuid);
  s.set_name(name);
  return s;
}

v1::RecordMatchRequest match(const std::string& queue, bool ranked, std::vector<std::string> winners,
                             std::vector<std::string> losers) {
  v1::RecordMatchRequest m;
  m.set_match_id("m1");
  m.set_queue(queue);
  m.set_ranked(ranked);
  for (const auto& w : winners) m.add_winners()->set_uuid(w);
  for (const auto& l : losers) m.add_losers()->set_uuid(l);
  return m;
}

TEST(PracticeMatch, RankedDuelUpdatesRatingsAndCounters) {
  const Settings settings;
  std::vector<v1::StatsRecord> stats{player("a", "Alice"), player("b", "Bob")};
  auto m = match("sumo", true, {"a"}, {"b"});
  m.mutable_winners(0)->set_kills(3);
  m.mutable_losers(0)->set_kills(1);
  const v1::MatchResult r = apply_match(settings, m, stats, 1234);

  ASSERT_EQ(r.players_size(), 2);
  EXPECT_EQ(r.recorded_at_ms(), 1234);
  EXPECT_EQ(r.players(0).rating_before(), 1000);
  EXPECT_EQ(r.players(0).rating_after(), 1016);
  EXPECT_EQ(r.players(0).rating_delta(), 16);
  EXPECT_EQ(r.players(0).deaths(), 0);  // unset deaths: 0 for a winner
  EXPECT_EQ(r.players(0).name(), "Alice");
  EXPECT_EQ(r.players(0).global_elo(), 1016);
  EXPECT_EQ(r.players(1).rating_after(), 984);
  EXPECT_EQ(r.players(1).deaths(), 1);  // and 1 for a loser

  const v1::QueueStats* a = find_queue(stats[0], "sumo");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->rating(), 1016);
  EXPECT_EQ(a->ranked_matches(), 1);
  EXPECT_EQ(a->stats().wins(), 1);
  EXPECT_EQ(a->stats().kills(), 3);
  EXPECT_EQ(a->stats().current_streak(), 1);
  EXPECT_EQ(stats[0].totals().wins(), 1);
  EXPECT_EQ(stats[1].totals().losses(), 1);
  EXPECT_EQ(stats[1].totals().deaths(), 1);
  EXPECT_EQ(stats[1].totals().kills(), 1);
}

TEST(PracticeMatch, TeamsAreRatedAgainstTheOpposingTeamsMean) {
  const Settings settings;
  std::vector<v1::StatsRecord> stats{player("a", "A"), player("b", "B"), player("c", "C"), player("d", "D")};
  // A beat C first: A 1016, C 984, B and D unrated (1000).
  std::vector<v1::StatsRecord> duel{stats[0], stats[2]};
  apply_match(settings, match("boxing", true, {"a"}, {"c"}), duel, 1);
  stats[0] = duel[0];
  stats[2] = duel[1];
  // [A, B] (mean 1008) beat [C, D] (mean 992).
  const v1::MatchResult r = apply_match(settings, match("boxing", true, {"a", "b"}, {"c", "d"}), stats, 2);
  EXPECT_EQ(r.players(0).rating_delta(), 15);   // 1016 against 992
  EXPECT_EQ(r.players(1).rating_delta(), 16);   // 1000 against 992
  EXPECT_EQ(r.players(2).rating_delta(), -15);  // 984 against 1008
  EXPECT_EQ(r.players(3).rating_delta(), -16);  // 1000 against 1008
  EXPECT_EQ(find_queue(stats[0], "boxing")->rating(), 1031);
  EXPECT_EQ(find_queue(stats[0], "boxing")->stats().best_streak(), 2);
}

TEST(PracticeMatch, UnrankedMatchCountsStatsButKeepsRatings) {
  const Settings settings;
  std::vector<v1::StatsRecord> stats{player("a", "A"), player("b", "B")};
  const v1::MatchResult r = apply_match(settings, match("bridge", false, {"a"}, {"b"}), stats, 1);
  EXPECT_EQ(r.players(0).rating_delta(), 0);
  EXPECT_FALSE(r.players(0).has_global_elo());
  EXPECT_EQ(find_queue(stats[0], "bridge")->ranked_matches(), 0);
  EXPECT_EQ(find_queue(stats[0], "bridge")->stats().wins(), 1);
  // On the wins/kills/streak boards, not on the elo boards.
  for (const BoardValue& v : board_values(stats[0], settings)) {
    EXPECT_EQ(v.board.find(".elo."), std::string::npos) << v.board;
  }
}

TEST(PracticeMatch, LossResetsTheCurrentStreakButNotTheBest) {
  const Settings settings;
  std::vector<v1::StatsRecord> stats{player("a", "A"), player("b", "B")};
  for (int i = 0; i < 3; ++i) apply_match(settings, match("sumo", false, {"a"}, {"b"}), stats, i);
  std::vector<v1::StatsRecord> swapped{stats[1], stats[0]};
  apply_match(settings, match("sumo", false, {"b"}, {"a"}), swapped, 9);
  EXPECT_EQ(swapped[1].totals().current_streak(), 0);
  EXPECT_EQ(swapped[1].totals().best_streak(), 3);
  EXPECT_EQ(swapped[1].totals().matches(), 4);
}

TEST(PracticeBoards, ValuesFollowTheStatsAndOnlyChangesAreResubmitted) {
  const Settings settings;
  std::vector<v1::StatsRecord> stats{player("a", "A"), player("b", "B")};
  EXPECT_TRUE(board_values(stats[0], settings).empty());
  apply_match(settings, match("sumo", true, {"a"}, {"b"}), stats, 1);
  const auto first = board_values(stats[0], settings);
  const std::vector<BoardValue> want{{"practice.elo.global", 1016},
                                     {"practice.wins.global", 1},
                                     {"practice.kills.global", 0},
                                     {"practice.best_streak.global", 1},
                                     {"practice.elo.q.sumo", 1016},
                                     {"practice.wins.q.sumo", 1},
                                     {"practice.kills.q.sumo", 0},
                                     {"practice.best_streak.q.sumo", 1}};
  EXPECT_EQ(first, want);
  // The loser's wins (0) and best streak (0) did not change in a second loss.
  const auto loser_before = board_values(stats[1], settings);
  apply_match(settings, match("sumo", true, {"a"}, {"b"}), stats, 2);
  const auto changed = changed_board_values(loser_before, board_values(stats[1], settings));
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].board, "practice.elo.global");
  EXPECT_EQ(changed[1].board, "practice.elo.q.sumo");
  EXPECT_EQ(all_boards(settings).size(), 4u + 4u * settings.queues.size());
}

TEST(PracticeSettings, EmptyTextGivesTheDefaults) {
  const Settings s = parse_settings("");
  EXPECT_EQ(s.queues.size(), 6u);
  EXPECT_EQ(s.initial_rating, 1000);
  EXPECT_EQ(s.k_factor, 32);
  EXPECT_EQ(s.k_factor_after, 16);
  EXPECT_EQ(s.games_before_lower_k, 30);
  EXPECT_EQ(s.presence_ttl_s, 60u);
}

TEST(PracticeSettings, ValuesAreRead) {
  const Settings s = parse_settings("queues: [sumo, nodebuff]\ninitial_rating: 1200\nk_factor: 40\n"
                                    "k_factor_after: 20\ngames_before_lower_k: 5\npresence_ttl_s: 30\n");
  EXPECT_EQ(s.queues, (std::vector<std::string>{"sumo", "nodebuff"}));
  EXPECT_EQ(s.initial_rating, 1200);
  EXPECT_EQ(s.k_factor, 40);
  EXPECT_EQ(s.k_factor_after, 20);
  EXPECT_EQ(s.games_before_lower_k, 5);
  EXPECT_EQ(s.presence_ttl_s, 30u);
}

std::string refusal(std::string_view yaml) {
  try {
    parse_settings(yaml);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(PracticeSettings, BadValuesAreRefusedNamingTheKey) {
  EXPECT_EQ(refusal("k_factor: 0"), "settings.k_factor: expected an integer 1..1000, got 0");
  EXPECT_EQ(refusal("k_factor: lots"), "settings.k_factor: expected an integer 1..1000, got 'lots'");
  EXPECT_EQ(refusal("queues: []"), "settings.queues: at least one queue is needed");
  EXPECT_EQ(refusal("queues: [Sumo]"), "settings.queues: 'Sumo' is not a queue name (1..32 of [a-z0-9_])");
  EXPECT_EQ(refusal("queues: [sumo, sumo]"), "settings.queues: 'sumo' is listed twice");
  EXPECT_NE(refusal("k_factr: 3").find("settings.k_factr: unknown key"), std::string::npos);
  EXPECT_EQ(refusal("- a list"), "settings: expected a mapping of settings");
  EXPECT_EQ(refusal("presence_ttl_s: -1"), "settings.presence_ttl_s: expected an integer 1..86400, got -1");
}

TEST(PracticeInput, UuidsAreMadeCanonical) {
  EXPECT_EQ(canonical_uuid("069A79F4-44E9-4726-A5BE-FCA90E38AAF5"), "069a79f4-44e9-4726-a5be-fca90e38aaf5");
  EXPECT_EQ(canonical_uuid("069a79f444e94726a5befca90e38aaf5"), "069a79f4-44e9-4726-a5be-fca90e38aaf5");
  EXPECT_FALSE(canonical_uuid("069a79f4-44e9-4726-a5be-fca90e38aaf"));
  EXPECT_FALSE(canonical_uuid("069a79f4-44e94-726-a5be-fca90e38aaf5"));
  EXPECT_FALSE(canonical_uuid("zzzzzzzz-44e9-4726-a5be-fca90e38aaf5"));
  EXPECT_FALSE(canonical_uuid(""));
}

TEST(PracticeInput, NamesFollowMinecraftRules) {
  EXPECT_TRUE(valid_player_name("Notch"));
  EXPECT_TRUE(valid_player_name("a_b_1234567890ab"));   // 16
  EXPECT_FALSE(valid_player_name("a_b_1234567890abc")); // 17
  EXPECT_FALSE(valid_player_name(""));
  EXPECT_FALSE(valid_player_name("no spaces"));
  EXPECT_FALSE(valid_player_name("dash-es"));
  EXPECT_EQ(lowercase("NoTcH_1"), "notch_1");
  EXPECT_TRUE(valid_match_id("eu-1:2024.01.01_42"));
  EXPECT_FALSE(valid_match_id("has space"));
  EXPECT_TRUE(valid_server_name("eu-1.lobby_2"));
  EXPECT_FALSE(valid_server_name("eu/1"));
}

TEST(PracticeLayout, PresenceStatusRoundTripsAndPrefixesNest) {
  const std::string status = presence_status("eu-1", "sumo", "Alice");
  EXPECT_EQ(status, "practice/eu-1/sumo/Alice");
  EXPECT_TRUE(status.starts_with(presence_prefix("eu-1", "sumo")));
  EXPECT_TRUE(status.starts_with(presence_prefix("eu-1", "")));
  EXPECT_FALSE(presence_status("eu-10", "", "Bob").starts_with(presence_prefix("eu-1", "")));
  const auto p = parse_presence(presence_owner("u1"), presence_status("eu-1", "", "Bob"), 77);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->uuid(), "u1");
  EXPECT_EQ(p->server(), "eu-1");
  EXPECT_EQ(p->queue(), "");
  EXPECT_EQ(p->name(), "Bob");
  EXPECT_EQ(p->expires_at_ms(), 77);
  EXPECT_FALSE(parse_presence("other:u1", status, 0).has_value());
  EXPECT_EQ(board_name(v1::STAT_BEST_STREAK, ""), "practice.best_streak.global");
  EXPECT_EQ(board_name(v1::STAT_ELO, "sumo"), "practice.elo.q.sumo");
}

}  // namespace
}  // namespace prism::practice
