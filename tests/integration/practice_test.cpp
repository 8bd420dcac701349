// The practice service end to end: a real prismd (its embedded SQLite store) with the
// practice plugin, driven through libprism-client as a practice server would: Elo of a
// known match, idempotent retries, concurrent matches from several clients, renames, bad
// input without partial writes, leaderboards, presence, settings, hot reload, and the
// practice-demo example run against it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "prism/client.hpp"
#include "prism/practice/v1/practice.pb.h"
#include "prismd_process.hpp"
#include "support/practice_requests.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
namespace pb = ::prism::practice::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// docs/practice.md §2: the default range starts at 1000; the method ids are practice.proto's.
constexpr uint32_t kRange = 1000;
enum Packet : uint32_t {
  kUpsert = kRange + pb::METHOD_UPSERT_PLAYER, kProfile = kRange + pb::METHOD_GET_PROFILE,
  kRecord = kRange + pb::METHOD_RECORD_MATCH, kGetMatch = kRange + pb::METHOD_GET_MATCH,
  kTop = kRange + pb::METHOD_LEADERBOARD_TOP, kPage = kRange + pb::METHOD_LEADERBOARD_PAGE,
  kAround = kRange + pb::METHOD_LEADERBOARD_AROUND, kRank = kRange + pb::METHOD_LEADERBOARD_RANK,
  kJoin = kRange + pb::METHOD_JOIN, kLeave = kRange + pb::METHOD_LEAVE,
  kHeartbeat = kRange + pb::METHOD_HEARTBEAT, kPresence = kRange + pb::METHOD_GET_PRESENCE,
  kOnline = kRange + pb::METHOD_ONLINE,
};

using Configs = std::map<std::string, std::string>;  // plugins.d file name → YAML

// A prismd serving only the practice plugin, from a plugins directory of its own.
class PracticeServer {
 public:
  explicit PracticeServer(Configs plugin_configs = {}) {
    char tmpl[] = "/tmp/prism-practice-plugins-XXXXXX";
    plugins = mkdtemp(tmpl);
    fs::copy_file(fs::path(PRISM_PLUGIN_DIR) / "practice.so", plugins / "practice.so");
    PrismdOptions options;
    options.plugins_dir = plugins;
    options.workers = 2;
    options.request_timeout_ms = 5000;
    options.plugin_configs = std::move(plugin_configs);
    prismd = std::make_unique<PrismdProcess>(options);
  }
  ~PracticeServer() {
    prismd.reset();
    fs::remove_all(plugins);
  }

  client::Client connect() const {
    client::ConnectOptions options;
    options.server_key = prismd->server_key();
    options.timeout = 5s;
    auto c = client::Client::connect({"127.0.0.1", prismd->port()}, options);
    EXPECT_TRUE(c) << c.error();
    return std::move(*c);
  }
  client::Client admin() const {
    client::Client c = connect();
    auto login = c.login("admin", prismd->admin_token());
    EXPECT_TRUE(login && login->status == v1::STATUS_OK);
    return c;
  }

  fs::path plugins;
  std::unique_ptr<PrismdProcess> prismd;
};

client::Reply call(client::Client& c, uint32_t packet, const google::protobuf::MessageLite& m) {
  auto reply = c.call(packet, m.SerializeAsString());
  EXPECT_TRUE(reply) << reply.error();
  return reply ? *reply : client::Reply{v1::STATUS_INTERNAL, reply.error(), ""};
}

template <class Out>
Out ok(client::Client& c, uint32_t packet, const google::protobuf::MessageLite& m) {
  const client::Reply r = call(c, packet, m);
  EXPECT_EQ(r.status, v1::STATUS_OK) << "packet " << packet << ": " << r.message;
  Out out;
  EXPECT_TRUE(out.ParseFromString(r.payload));
  return out;
}

using testing::practice_requests::by_name;
using testing::practice_requests::by_uuid;
using testing::practice_requests::match;
using testing::practice_requests::uuid;
using testing::practice_requests::upsert;
// A player numbered n (practice_requests.hpp: fixed UUIDs) with this name.
inline pb::UpsertPlayerRequest player(int n, const std::string& name) { return upsert(n, name); }

pb::LeaderboardRequest board(pb::Stat stat, const std::string& queue, int limit, int64_t after = 0) {
  pb::LeaderboardRequest in;
  in.set_stat(stat);
  in.set_queue(queue);
  in.set_limit(limit);
  in.set_after_rank(after);
  return in;
}

class PracticeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.prismd->ready()) << server.prismd->log();
    ASSERT_TRUE(server.prismd->wait_for_log("event=plugin_loaded name=practice")) << server.prismd->log();
  }
  PracticeServer server;
};

TEST_F(PracticeTest, RankedDuelGivesKnownEloAndARetryCountsOnce) {
  auto c = server.connect();
  ok<pb::Profile>(c, kUpsert, player(1, "Alice"));
  ok<pb::Profile>(c, kUpsert, player(2, "Bob"));
  auto m = match("eu1-0001", "nodebuff", true, {1}, {2});
  m.mutable_winners(0)->set_kills(1);

  const client::Reply first = call(c, kRecord, m);
  ASSERT_EQ(first.status, v1::STATUS_OK) << first.message;
  pb::MatchResult result;
  ASSERT_TRUE(result.ParseFromString(first.payload));
  ASSERT_EQ(result.players_size(), 2);
  EXPECT_EQ(result.players(0).rating_before(), 1000);
  EXPECT_EQ(result.players(0).rating_after(), 1016);
  EXPECT_EQ(result.players(1).rating_after(), 984);
  EXPECT_EQ(result.players(0).global_elo(), 1016);

  // The game server did not hear back and sends it again: same answer, counted once.
  const client::Reply again = call(c, kRecord, m);
  ASSERT_EQ(again.status, v1::STATUS_OK) << again.message;
  EXPECT_EQ(again.payload, first.payload);
  const auto alice = ok<pb::Profile>(c, kProfile, by_uuid(1));
  EXPECT_EQ(alice.totals().wins(), 1);
  EXPECT_EQ(alice.totals().kills(), 1);
  EXPECT_EQ(alice.global_elo(), 1016);
  const auto bob = ok<pb::Profile>(c, kProfile, by_uuid(2));
  EXPECT_EQ(bob.totals().losses(), 1);
  EXPECT_EQ(bob.totals().deaths(), 1);
  ASSERT_EQ(bob.queues_size(), 1);
  EXPECT_EQ(bob.queues(0).rating(), 984);

  pb::GetMatchRequest get;
  get.set_match_id("eu1-0001");
  EXPECT_EQ(call(c, kGetMatch, get).payload, first.payload);
}

TEST_F(PracticeTest, RenameMovesTheNameIndex) {
  auto c = server.connect();
  ok<pb::Profile>(c, kUpsert, player(1, "Steve"));
  ok<pb::Profile>(c, kUpsert, player(2, "Alex"));
  ok<pb::MatchResult>(c, kRecord, match("r1", "sumo", true, {1}, {2}));
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_name("steve")).uuid(), uuid(1));

  const auto renamed = ok<pb::Profile>(c, kUpsert, player(1, "Herobrine"));
  EXPECT_EQ(renamed.name(), "Herobrine");
  EXPECT_EQ(call(c, kProfile, by_name("Steve")).status, v1::STATUS_NOT_FOUND);
  const auto found = ok<pb::Profile>(c, kProfile, by_name("HEROBRINE"));
  EXPECT_EQ(found.uuid(), uuid(1));
  EXPECT_EQ(found.totals().wins(), 1);
  const auto top = ok<pb::Leaderboard>(c, kTop, board(pb::STAT_WINS, "sumo", 10));
  ASSERT_GE(top.entries_size(), 1);
  EXPECT_EQ(top.entries(0).name(), "Herobrine");
}

TEST_F(PracticeTest, ConcurrentMatchesFromSeveralClientsLoseNoUpdate) {
  constexpr int kClients = 4;
  constexpr int kMatchesEach = 20;
  {
    auto c = server.connect();
    ok<pb::Profile>(c, kUpsert, player(100, "Star"));
    for (int i = 1; i <= kClients; ++i) ok<pb::Profile>(c, kUpsert, player(i, "Rival" + std::to_string(i)));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 1; t <= kClients; ++t) {
    threads.emplace_back([&, t] {
      auto c = server.connect();
      for (int i = 0; i < kMatchesEach; ++i) {
        auto m = match("c" + std::to_string(t) + "-" + std::to_string(i), "boxing", true, {100}, {t});
        m.mutable_winners(0)->set_kills(3);
        // CONFLICT means "resend": safe, the match id is never counted twice.
        auto r = c.call(kRecord, m.SerializeAsString());
        for (int resend = 0; r && r->status == v1::STATUS_CONFLICT && resend < 50; ++resend) {
          r = c.call(kRecord, m.SerializeAsString());
        }
        if (!r || r->status != v1::STATUS_OK) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);

  auto c = server.connect();
  const auto star = ok<pb::Profile>(c, kProfile, by_uuid(100));
  EXPECT_EQ(star.totals().matches(), kClients * kMatchesEach);
  EXPECT_EQ(star.totals().wins(), kClients * kMatchesEach);
  EXPECT_EQ(star.totals().kills(), 3 * kClients * kMatchesEach);
  EXPECT_EQ(star.totals().best_streak(), kClients * kMatchesEach);
  int64_t rival_losses = 0;
  for (int i = 1; i <= kClients; ++i) rival_losses += ok<pb::Profile>(c, kProfile, by_uuid(i)).totals().losses();
  EXPECT_EQ(rival_losses, kClients * kMatchesEach);
  // The board agrees with the stats document.
  pb::LeaderboardPlayerRequest rank;
  rank.set_stat(pb::STAT_WINS);
  rank.set_queue("boxing");
  rank.set_uuid(uuid(100));
  const auto entry = ok<pb::Leaderboard>(c, kRank, rank);
  ASSERT_EQ(entry.entries_size(), 1);
  EXPECT_EQ(entry.entries(0).rank(), 1);
  EXPECT_EQ(entry.entries(0).value(), kClients * kMatchesEach);
}

TEST_F(PracticeTest, BadInputGetsAClearStatusNamingTheFieldAndWritesNothing) {
  auto c = server.connect();
  ok<pb::Profile>(c, kUpsert, player(1, "Alice"));
  ok<pb::Profile>(c, kUpsert, player(2, "Bob"));

  auto expect = [&](const char* what, uint32_t packet, const std::string& payload, v1::Status status,
                    const std::string& field) {
    auto r = c.call(packet, payload);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->status, status) << what << ": " << r->message;
    EXPECT_TRUE(r->message.starts_with(field)) << what << ": " << r->message;
  };
  expect("unknown player", kRecord, match("b1", "sumo", true, {1}, {77}).SerializeAsString(),
         v1::STATUS_NOT_FOUND, "losers[0].uuid");
  expect("malformed protobuf", kRecord, "\x0a\xff\xff", v1::STATUS_INVALID_ARGUMENT, "payload");
  auto negative = match("b2", "sumo", true, {1}, {2});
  negative.mutable_winners(0)->set_kills(-4);
  expect("negative kills", kRecord, negative.SerializeAsString(), v1::STATUS_INVALID_ARGUMENT,
         "winners[0].kills");
  auto long_duration = match("b3", "sumo", true, {1}, {2});
  long_duration.set_duration_ms(-1);
  expect("negative duration", kRecord, long_duration.SerializeAsString(), v1::STATUS_INVALID_ARGUMENT,
         "duration_ms");
  expect("oversized name", kUpsert, player(1, "AliceWithAVeryLongName").SerializeAsString(),
         v1::STATUS_INVALID_ARGUMENT, "name");
  expect("unknown queue", kRecord, match("b4", "skywars", true, {1}, {2}).SerializeAsString(),
         v1::STATUS_INVALID_ARGUMENT, "queue");
  expect("unknown queue on a board", kTop, board(pb::STAT_ELO, "skywars", 10).SerializeAsString(),
         v1::STATUS_INVALID_ARGUMENT, "queue");
  expect("unknown player profile", kProfile, by_uuid(77).SerializeAsString(), v1::STATUS_NOT_FOUND, "uuid");

  // No partial write: no stats, no match, no board entry, the name unchanged.
  for (int n : {1, 2}) EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_uuid(n)).totals().matches(), 0);
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_uuid(1)).name(), "Alice");
  for (const char* id : {"b1", "b2", "b3", "b4"}) {
    pb::GetMatchRequest get;
    get.set_match_id(id);
    EXPECT_EQ(call(c, kGetMatch, get).status, v1::STATUS_NOT_FOUND) << id;
  }
  EXPECT_EQ(ok<pb::Leaderboard>(c, kTop, board(pb::STAT_WINS, "", 10)).entries_size(), 0);
}

TEST_F(PracticeTest, LeaderboardsAnswerTopPageAroundAndRank) {
  auto c = server.connect();
  // Player n (1..8) beats the sparring partner n times in ranked sumo: wins rank 8, 7, ..., 1.
  ok<pb::Profile>(c, kUpsert, player(99, "Sparring"));
  for (int n = 1; n <= 8; ++n) ok<pb::Profile>(c, kUpsert, player(n, "P" + std::to_string(n)));
  for (int n = 1; n <= 8; ++n) {
    for (int i = 0; i < n; ++i) {
      ok<pb::MatchResult>(c, kRecord, match("l" + std::to_string(n) + "-" + std::to_string(i), "sumo", true, {n}, {99}));
    }
  }
  const auto top = ok<pb::Leaderboard>(c, kTop, board(pb::STAT_WINS, "sumo", 3));
  ASSERT_EQ(top.entries_size(), 3);
  EXPECT_EQ(top.entries(0).name(), "P8");
  EXPECT_EQ(top.entries(0).value(), 8);
  EXPECT_EQ(top.entries(1).name(), "P7");

  const auto page = ok<pb::Leaderboard>(c, kPage, board(pb::STAT_WINS, "sumo", 2, 3));
  ASSERT_EQ(page.entries_size(), 2);
  EXPECT_EQ(page.entries(0).rank(), 4);
  EXPECT_EQ(page.entries(0).name(), "P5");
  EXPECT_EQ(page.entries(1).name(), "P4");

  pb::LeaderboardPlayerRequest around;
  around.set_stat(pb::STAT_WINS);
  around.set_queue("sumo");
  around.set_uuid(uuid(3));
  around.set_limit(1);
  const auto near = ok<pb::Leaderboard>(c, kAround, around);
  ASSERT_EQ(near.entries_size(), 3);
  EXPECT_EQ(near.entries(0).name(), "P4");
  EXPECT_EQ(near.entries(1).name(), "P3");
  EXPECT_EQ(near.entries(2).name(), "P2");
  const auto rank = ok<pb::Leaderboard>(c, kRank, around);
  ASSERT_EQ(rank.entries_size(), 1);
  EXPECT_EQ(rank.entries(0).rank(), 6);

  // Elo: with one ranked queue each, the global board is the queue's board, and agrees
  // with the profiles. (The sparring partner fell far: 36 losses.)
  const auto elo = ok<pb::Leaderboard>(c, kTop, board(pb::STAT_ELO, "", 9));
  const auto queue_elo = ok<pb::Leaderboard>(c, kTop, board(pb::STAT_ELO, "sumo", 9));
  ASSERT_EQ(elo.entries_size(), 9);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(elo.entries(i).uuid(), queue_elo.entries(i).uuid());
    EXPECT_EQ(elo.entries(i).value(), queue_elo.entries(i).value());
  }
  EXPECT_EQ(elo.entries(8).name(), "Sparring");
  pb::GetProfileRequest first;
  first.set_uuid(elo.entries(0).uuid());
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, first).global_elo(), elo.entries(0).value());
  // Best streak: the sparring partner never won.
  around.set_uuid(uuid(99));
  around.set_stat(pb::STAT_BEST_STREAK);
  EXPECT_EQ(ok<pb::Leaderboard>(c, kRank, around).entries(0).value(), 0);
}

TEST_F(PracticeTest, PresenceIsSharedAcrossSessions) {
  auto server_a = server.connect();  // two game servers, two sessions
  auto server_b = server.connect();
  for (int n = 1; n <= 3; ++n) ok<pb::Profile>(server_a, kUpsert, player(n, "P" + std::to_string(n)));
  auto join = [&](client::Client& c, int n, const std::string& where, const std::string& queue) {
    pb::JoinRequest in;
    in.set_uuid(uuid(n));
    in.set_server(where);
    in.set_queue(queue);
    return ok<pb::Presence>(c, kJoin, in);
  };
  join(server_a, 1, "eu-1", "sumo");
  join(server_a, 2, "eu-1", "");
  join(server_b, 3, "eu-2", "boxing");

  pb::OnlineRequest everyone;
  EXPECT_EQ(ok<pb::OnlineList>(server_b, kOnline, everyone).players_size(), 3);
  pb::OnlineRequest eu1;
  eu1.set_server("eu-1");
  const auto on_eu1 = ok<pb::OnlineList>(server_b, kOnline, eu1);
  ASSERT_EQ(on_eu1.players_size(), 2);
  EXPECT_EQ(on_eu1.players(0).name(), "P1");
  EXPECT_EQ(on_eu1.players(0).queue(), "sumo");

  pb::PlayerRequest p1;
  p1.set_uuid(uuid(1));
  const auto beat = ok<pb::Presence>(server_b, kHeartbeat, p1);
  EXPECT_EQ(beat.server(), "eu-1");
  EXPECT_GT(beat.expires_at_ms(), 0);
  EXPECT_EQ(ok<pb::Profile>(server_b, kProfile, by_uuid(3)).presence().server(), "eu-2");

  EXPECT_EQ(call(server_b, kLeave, p1).status, v1::STATUS_OK);
  EXPECT_EQ(call(server_a, kPresence, p1).status, v1::STATUS_NOT_FOUND);
  EXPECT_EQ(ok<pb::OnlineList>(server_a, kOnline, eu1).players_size(), 1);
  EXPECT_EQ(call(server_a, kLeave, p1).status, v1::STATUS_NOT_FOUND);
}

// Reloads while a game server keeps recording matches: every request is answered OK, the
// data is intact (it lives in the store, not in the plugin), and the new version goes on
// counting from it.
TEST_F(PracticeTest, HotReloadKeepsServingWithDataIntact) {
  auto c = server.connect();
  for (int n = 1; n <= 4; ++n) ok<pb::Profile>(c, kUpsert, player(n, "P" + std::to_string(n)));
  ok<pb::MatchResult>(c, kRecord, match("before", "gapple", true, {1}, {2}));

  // A second session records match after match (some pipelined, so requests are inside
  // the plugin, awaiting the store, at the moment of each swap) until told to stop.
  std::atomic<bool> stop{false};
  std::atomic<int> recorded{0}, failed{0};
  std::thread game_server([&] {
    auto g = server.connect();
    for (int i = 0; !stop.load() || i < 20; i += 4) {
      for (int j = i; j < i + 4; ++j) {
        auto sent = g.send_request(kRecord, match("during-" + std::to_string(j), "gapple", false, {3}, {4}).SerializeAsString(),
                                   v1::DELIVERY_RELIABLE_ORDERED, [&](const client::Reply& r) {
                                     (r.status == v1::STATUS_OK ? recorded : failed)++;
                                   });
        if (!sent) ++failed;
      }
      for (const auto deadline = Clock::now() + 10s; g.pending() > 0 && Clock::now() < deadline;) {
        if (!g.poll(100ms)) ++failed;
      }
    }
  });
  auto admin = server.admin();
  constexpr int kReloads = 3;
  for (int i = 0; i < kReloads; ++i) {
    auto reloaded = admin.reload_plugin("practice", (server.plugins / "practice.so").string());
    EXPECT_TRUE(reloaded) << reloaded.error();
    if (!reloaded) break;
    EXPECT_EQ(reloaded->name(), "practice");
  }
  stop = true;
  game_server.join();
  server.prismd->wait_for_log("no such line", 100ms);  // read what prismd logged so far
  ASSERT_FALSE(HasFailure()) << server.prismd->log();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(recorded.load(), 20);
  int reloads_logged = 0;
  for (size_t at = 0; (at = server.prismd->log().find("event=plugin_reloaded", at)) != std::string::npos; ++at) {
    ++reloads_logged;
  }
  EXPECT_EQ(reloads_logged, kReloads) << server.prismd->log();

  const auto p1 = ok<pb::Profile>(c, kProfile, by_uuid(1));
  EXPECT_EQ(p1.global_elo(), 1016);
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_uuid(3)).totals().wins(), recorded.load());
  ok<pb::MatchResult>(c, kRecord, match("after", "gapple", true, {1}, {2}));
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_uuid(1)).totals().wins(), 2);
  EXPECT_EQ(ok<pb::Profile>(c, kProfile, by_name("p1")).uuid(), uuid(1));
}

TEST(PracticeSettingsTest, SettingsFromPluginsDReachThePlugin) {
  PracticeServer server(Configs{{"practice", "settings:\n  queues: [sumo, bridge]\n  k_factor: 40\n"}});
  ASSERT_TRUE(server.prismd->wait_for_log("event=plugin_loaded name=practice")) << server.prismd->log();
  auto c = server.connect();
  ok<pb::Profile>(c, kUpsert, player(1, "A"));
  ok<pb::Profile>(c, kUpsert, player(2, "B"));
  EXPECT_EQ(ok<pb::MatchResult>(c, kRecord, match("s1", "bridge", true, {1}, {2})).players(0).rating_delta(), 20);
  const client::Reply r = call(c, kRecord, match("s2", "nodebuff", true, {1}, {2}));
  EXPECT_EQ(r.status, v1::STATUS_INVALID_ARGUMENT);
  EXPECT_NE(r.message.find("queues: sumo, bridge"), std::string::npos) << r.message;
}

TEST(PracticeSettingsTest, ABadSettingRefusesThePluginWithTheReason) {
  PracticeServer server(Configs{{"practice", "settings:\n  k_factor: 0\n"}});
  ASSERT_TRUE(server.prismd->ready()) << server.prismd->log();
  EXPECT_TRUE(server.prismd->wait_for_log("settings.k_factor: expected an integer 1..1000, got 0"))
      << server.prismd->log();
  auto c = server.connect();
  auto r = c.call(kProfile, by_uuid(1).SerializeAsString());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, v1::STATUS_INVALID_PACKET);
}

// The example program (client/examples/practice-demo) against a real server.
TEST_F(PracticeTest, DemoSimulatesAServerAndPrintsTheBoards) {
  const CommandResult run = run_command(
      {std::string(PRISM_BINARY_DIR) + "/practice-demo", "--server", server.prismd->endpoint(),
       "--server-key", server.prismd->server_key_text(), "--matches", "60", "--players", "12"},
      60s);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("upserted 12 players"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("recorded 60 matches"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("== elo (global) =="), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("== wins (sumo) =="), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("== profile of "), std::string::npos) << run.output;

  // The server holds them: one or two winners per match (duels and 2v2).
  auto c = server.connect();
  const auto top = ok<pb::Leaderboard>(c, kTop, board(pb::STAT_WINS, "", 100));
  EXPECT_EQ(top.entries_size(), 12);
  int64_t wins = 0;
  for (const auto& e : top.entries()) wins += e.value();
  EXPECT_GE(wins, 60);
  EXPECT_LE(wins, 120);
}

}  // namespace
}  // namespace prism::testing
