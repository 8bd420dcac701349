// The practice plugin in process: practice.so dlopen()ed and driven through a host table
// whose storage entries are prismd's own (plugins/store_api) over a real SQLite store in a
// temp dir, from two worker threads that get their completions back as prismd's do.
#include <dlfcn.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/loop_access.hpp"
#include "plugins/store_api.hpp"
#include "prism/plugin.h"
#include "prism/practice/v1/practice.pb.h"
#include "store/sqlite_backend.hpp"
#include "support/practice_requests.hpp"
#include "support/test_loop.hpp"

namespace prism::practice {
namespace {

namespace fs = std::filesystem;
namespace pb = ::prism::practice::v1;
using namespace std::chrono_literals;

// Method ids, from practice.proto (docs/practice.md §2).
enum Method : uint32_t {
  kUpsert = pb::METHOD_UPSERT_PLAYER, kProfile = pb::METHOD_GET_PROFILE,
  kRecord = pb::METHOD_RECORD_MATCH, kGetMatch = pb::METHOD_GET_MATCH,
  kTop = pb::METHOD_LEADERBOARD_TOP, kPage = pb::METHOD_LEADERBOARD_PAGE,
  kAround = pb::METHOD_LEADERBOARD_AROUND, kRank = pb::METHOD_LEADERBOARD_RANK,
  kJoin = pb::METHOD_JOIN, kLeave = pb::METHOD_LEAVE, kHeartbeat = pb::METHOD_HEARTBEAT,
  kPresence = pb::METHOD_GET_PRESENCE, kOnline = pb::METHOD_ONLINE,
};

struct Reply {
  prism_status_t status = 1;
  std::string message;
  std::string payload;
};

// One request in flight: the plugin sees it as an opaque prism_request_t.
struct PendingRequest {
  std::mutex mutex;
  std::condition_variable cv;
  bool answered = false;
  int answers = 0;
  Reply reply;
};

std::string text(prism_bytes_t b) { return b.data ? std::string(reinterpret_cast<const char*>(b.data), b.len) : ""; }
prism_bytes_t bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

prism_status_t reply_fn(prism_request_t* r, prism_status_t status, const char* message, prism_bytes_t payload) {
  auto* p = reinterpret_cast<PendingRequest*>(r);
  std::lock_guard lock(p->mutex);
  ++p->answers;
  p->reply = {status, message != nullptr ? message : "", text(payload)};
  p->answered = true;
  p->cv.notify_all();
  return PRISM_OK;
}
uint64_t session_fn(const prism_request_t*) { return 1; }
void log_fn(prism_host_t*, prism_log_level_t, const char*, size_t) {}
prism_counter_t* counter_fn(prism_host_t*, const char*, const char*) { return nullptr; }
void counter_add_fn(prism_counter_t*, uint64_t) {}
void server_info_fn(prism_host_t*, prism_server_info_t* out) {
  out->version = "test";
  out->now_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  out->workers = 1;
}
void visit_fn(prism_host_t*, prism_plugin_visitor_fn, void*) {}

prism_host_api_t make_api() {
  prism_host_api_t api{};
  api.struct_size = sizeof api;
  api.abi_version_major = PRISM_ABI_VERSION_MAJOR;
  api.abi_version_minor = PRISM_ABI_VERSION_MINOR;
  api.reply = reply_fn;
  api.request_session = session_fn;
  api.log = log_fn;
  api.counter_register = counter_fn;
  api.counter_add = counter_add_fn;
  api.server_info = server_info_fn;
  api.visit_plugins = visit_fn;
  plugins::add_store_api(api);
  return api;
}

// A SQLite store in a temp dir, served to plugins through the host's storage entries.
class Store {
 public:
  Store() {
    std::string pattern = (fs::temp_directory_path() / "prism-practice-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    backend_ = std::make_unique<store::SqliteBackend>(dir_ / "prism.db");
    facets_ = {backend_.get(), backend_.get(), backend_.get(), backend_.get()};
    plugins::set_store(&facets_);
  }
  ~Store() {
    plugins::set_store(nullptr);
    backend_.reset();
    fs::remove_all(dir_);
  }

 private:
  fs::path dir_;
  std::unique_ptr<store::SqliteBackend> backend_;
  store::Facets facets_;
};

// A worker thread as prismd has them: it calls into the plugin, and the storage entries
// post each completion back to it (through net::current_loop), so a request's coroutine
// always resumes on the thread that started it.
using Worker = prism::testing::ThreadLoop;

// practice.so, loaded with `settings` and driven like prismd would: requests spread over
// two workers, so requests really interleave in the plugin.
class Plugin {
 public:
  explicit Plugin(const std::string& settings = "",
                  const fs::path& file = fs::path(PRISM_PLUGIN_DIR) / "practice.so") {
    file_ = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (file_ == nullptr) {
      error = dlerror();
      return;
    }
    auto entry = reinterpret_cast<prism_plugin_entry_fn>(dlsym(file_, PRISM_PLUGIN_ENTRY_SYMBOL));
    descriptor_ = entry();
    char buffer[512] = "";
    init_status = descriptor_->init(&api_, nullptr, bytes(settings), &instance_, buffer, sizeof buffer);
    error = buffer;
  }
  ~Plugin() {
    for (auto& w : workers_) w.drain();  // every request answered; no coroutine still unwinding
    if (init_status == PRISM_OK) descriptor_->shutdown(instance_);
    if (file_ != nullptr) dlclose(file_);
  }
  bool started() const { return init_status == PRISM_OK; }

  Reply call(uint32_t method, const std::string& payload) {
    PendingRequest request;
    std::promise<prism_status_t> handled;
    workers_[next_++ % 2].post([&] {
      handled.set_value(descriptor_->handle(instance_, reinterpret_cast<prism_request_t*>(&request),
                                            method, bytes(payload)));
    });
    EXPECT_EQ(handled.get_future().get(), PRISM_OK);
    std::unique_lock lock(request.mutex);
    const bool answered = request.cv.wait_for(lock, 10s, [&] { return request.answered; });
    EXPECT_TRUE(answered) << "method " << method << " never answered";
    if (!answered) std::abort();  // the request lives on this stack: never leave it behind
    EXPECT_EQ(request.answers, 1);
    return request.reply;
  }
  Reply call(uint32_t method, const google::protobuf::MessageLite& message) {
    return call(method, message.SerializeAsString());
  }
  template <class Out>
  Out ok(uint32_t method, const google::protobuf::MessageLite& message) {
    const Reply r = call(method, message);
    EXPECT_EQ(r.status, PRISM_OK) << "method " << method << ": " << r.message;
    Out out;
    EXPECT_TRUE(out.ParseFromString(r.payload));
    return out;
  }

  prism_status_t init_status = PRISM_INTERNAL;
  std::string error;

 private:
  prism_host_api_t api_ = make_api();
  Worker workers_[2];
  std::atomic<unsigned> next_{0};
  void* file_ = nullptr;
  const prism_plugin_descriptor_t* descriptor_ = nullptr;
  void* instance_ = nullptr;
};

using testing::practice_requests::by_name;
using testing::practice_requests::by_uuid;
using testing::practice_requests::match;
using testing::practice_requests::uuid;
using testing::practice_requests::upsert;

const pb::QueueStats* queue_of(const pb::Profile& p, const std::string& queue) {
  for (const auto& q : p.queues()) {
    if (q.queue() == queue) return &q;
  }
  return nullptr;
}

class PracticeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(plugin.started()) << plugin.error; }
  Store store;
  Plugin plugin;
};

TEST_F(PracticeServiceTest, UpsertCreatesAPlayerFoundByUuidAndByNameInAnyCase) {
  auto in = upsert(1, "Alice");
  in.set_uuid("00000000000040008000000000000001");  // undashed: made canonical
  in.set_display_rank("VIP");
  (*in.mutable_attributes())["color"] = "red";
  const auto created = plugin.ok<pb::Profile>(kUpsert, in);
  EXPECT_EQ(created.uuid(), uuid(1));
  EXPECT_GT(created.created_ms(), 0);
  EXPECT_FALSE(created.has_global_elo());

  const auto found = plugin.ok<pb::Profile>(kProfile, by_name("aLiCe"));
  EXPECT_EQ(found.uuid(), uuid(1));
  EXPECT_EQ(found.name(), "Alice");
  EXPECT_EQ(found.display_rank(), "VIP");
  EXPECT_EQ(found.attributes().at("color"), "red");

  // An update keeps the fields it does not name; an empty attribute value deletes the key.
  auto update = upsert(1, "Alice");
  update.set_locale("en_us");
  (*update.mutable_attributes())["color"] = "";
  const auto updated = plugin.ok<pb::Profile>(kUpsert, update);
  EXPECT_EQ(updated.display_rank(), "VIP");
  EXPECT_EQ(updated.locale(), "en_us");
  EXPECT_TRUE(updated.attributes().empty());
  EXPECT_EQ(updated.created_ms(), created.created_ms());

  EXPECT_EQ(plugin.call(kProfile, by_uuid(2)).status, PRISM_NOT_FOUND);
  EXPECT_EQ(plugin.call(kProfile, by_name("Bob")).status, PRISM_NOT_FOUND);
}

TEST_F(PracticeServiceTest, RenameMovesTheNameIndexAndTheLeaderboardName) {
  plugin.ok<pb::Profile>(kUpsert, upsert(1, "Alice"));
  plugin.ok<pb::Profile>(kUpsert, upsert(2, "Bob"));
  plugin.ok<pb::MatchResult>(kRecord, match("m1", "sumo", true, {1}, {2}));

  plugin.ok<pb::Profile>(kUpsert, upsert(1, "Alicia"));
  EXPECT_EQ(plugin.call(kProfile, by_name("alice")).status, PRISM_NOT_FOUND);
  const auto renamed = plugin.ok<pb::Profile>(kProfile, by_name("ALICIA"));
  EXPECT_EQ(renamed.uuid(), uuid(1));
  EXPECT_EQ(renamed.totals().wins(), 1) << "stats survive a rename";

  pb::LeaderboardRequest top;
  top.set_stat(pb::STAT_ELO);
  const auto board = plugin.ok<pb::Leaderboard>(kTop, top);
  ASSERT_EQ(board.entries_size(), 2);
  EXPECT_EQ(board.entries(0).name(), "Alicia");
  EXPECT_EQ(board.entries(0).value(), 1016);

  // The freed name can be taken by someone else.
  plugin.ok<pb::Profile>(kUpsert, upsert(3, "alice"));
  EXPECT_EQ(plugin.ok<pb::Profile>(kProfile, by_name("Alice")).uuid(), uuid(3));
}

TEST_F(PracticeServiceTest, RankedDuelGivesKnownEloAndCounters) {
  plugin.ok<pb::Profile>(kUpsert, upsert(1, "Alice"));
  plugin.ok<pb::Profile>(kUpsert, upsert(2, "Bob"));
  auto m = match("duel-1", "nodebuff", true, {1}, {2});
  m.mutable_winners(0)->set_kills(1);
  const auto result = plugin.ok<pb::MatchResult>(kRecord, m);
  ASSERT_EQ(result.players_size(), 2);
  EXPECT_EQ(result.players(0).rating_after(), 1016);
  EXPECT_EQ(result.players(1).rating_after(), 984);
  EXPECT_EQ(result.players(0).name(), "Alice");

  const auto alice = plugin.ok<pb::Profile>(kProfile, by_uuid(1));
  EXPECT_EQ(alice.global_elo(), 1016);
  EXPECT_EQ(alice.totals().wins(), 1);
  EXPECT_EQ(alice.totals().kills(), 1);
  EXPECT_EQ(alice.totals().current_streak(), 1);
  const auto* q = queue_of(alice, "nodebuff");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->rating(), 1016);
  EXPECT_EQ(q->ranked_matches(), 1);
  const auto bob = plugin.ok<pb::Profile>(kProfile, by_uuid(2));
  EXPECT_EQ(bob.totals().losses(), 1);
  EXPECT_EQ(bob.totals().deaths(), 1);
  EXPECT_EQ(bob.global_elo(), 984);

  pb::GetMatchRequest get;
  get.set_match_id("duel-1");
  EXPECT_EQ(plugin.call(kGetMatch, get).payload, result.SerializeAsString());
}

TEST_F(PracticeServiceTest, TeamMatchRatesEachPlayerAgainstTheOtherTeamsMean) {
  for (int i = 1; i <= 4; ++i) plugin.ok<pb::Profile>(kUpsert, upsert(i, "P" + std::to_string(i)));
  plugin.ok<pb::MatchResult>(kRecord, match("t0", "boxing", true, {1}, {3}));  // 1: 1016, 3: 984
  const auto r = plugin.ok<pb::MatchResult>(kRecord, match("t1", "boxing", true, {1, 2}, {3, 4}));
  ASSERT_EQ(r.players_size(), 4);
  EXPECT_EQ(r.players(0).rating_delta(), 15);
  EXPECT_EQ(r.players(1).rating_delta(), 16);
  EXPECT_EQ(r.players(2).rating_delta(), -15);
  EXPECT_EQ(r.players(3).rating_delta(), -16);
}

TEST_F(PracticeServiceTest, LowerKAppliesAfterTheConfiguredNumberOfGames) {
  Plugin tuned("k_factor: 40\nk_factor_after: 10\ngames_before_lower_k: 1\n");
  ASSERT_TRUE(tuned.started()) << tuned.error;
  tuned.ok<pb::Profile>(kUpsert, upsert(1, "A"));
  tuned.ok<pb::Profile>(kUpsert, upsert(2, "B"));
  EXPECT_EQ(tuned.ok<pb::MatchResult>(kRecord, match("k1", "sumo", true, {1}, {2})).players(0).rating_delta(), 20);
  // 1020 against 980 with K 10: round(10 * (1 - 0.5573)) = 4.
  EXPECT_EQ(tuned.ok<pb::MatchResult>(kRecord, match("k2", "sumo", true, {1}, {2})).players(0).rating_delta(), 4);
}

TEST_F(PracticeServiceTest, ARetriedMatchIdCountsOnceAndAnswersTheSameBytes) {
  plugin.ok<pb::Profile>(kUpsert, upsert(1, "A"));
  plugin.ok<pb::Profile>(kUpsert, upsert(2, "B"));
  const auto m = match("retry-me", "sumo", true, {1}, {2});
  const Reply first = plugin.call(kRecord, m);
  ASSERT_EQ(first.status, PRISM_OK) << first.message;
  const Reply second = plugin.call(kRecord, m);
  ASSERT_EQ(second.status, PRISM_OK) << second.message;
  EXPECT_EQ(second.payload, first.payload);
  EXPECT_EQ(second.message, "match already recorded");
  EXPECT_EQ(plugin.ok<pb::Profile>(kProfile, by_uuid(1)).totals().wins(), 1);

  // The same id for another result is refused and changes nothing.
  const Reply other = plugin.call(kRecord, match("retry-me", "sumo", true, {2}, {1}));
  EXPECT_EQ(other.status, PRISM_CONFLICT);
  EXPECT_NE(other.message.find("match_id"), std::string::npos) << other.message;
  EXPECT_EQ(plugin.ok<pb::Profile>(kProfile, by_uuid(2)).totals().wins(), 0);
}

TEST_F(PracticeServiceTest, BadInputGetsAClearStatusAndWritesNothing) {
  plugin.ok<pb::Profile>(kUpsert, upsert(1, "A"));
  plugin.ok<pb::Profile>(kUpsert, upsert(2, "B"));
  struct Case {
    std::string what;
    uint32_t method;
    std::string payload;
    prism_status_t status;
    std::string field;  // the message names it
  };
  std::vector<Case> cases;
  auto add = [&](std::string what, uint32_t method, const google::protobuf::MessageLite& m,
                 prism_status_t status, std::string field) {
    cases.push_back({std::move(what), method, m.SerializeAsString(), status, std::move(field)});
  };
  cases.push_back({"malformed protobuf", kRecord, "\xff\xff\xff\xff", PRISM_INVALID_ARGUMENT,
                   "payload: not a prism.practice.v1.RecordMatchRequest protobuf"});
  // 'x' repeated parses (as unknown field 15): only the SDK's max_payload refuses it.
  cases.push_back({"oversized payload", kUpsert, std::string(70000, 'x'), PRISM_INVALID_ARGUMENT,
                   "payload: larger than 65536 bytes"});
  add("unknown loser", kRecord, match("bad-1", "sumo", true, {1}, {9}), PRISM_NOT_FOUND, "losers[0].uuid");
  add("unknown queue", kRecord, match("bad-2", "skywars", true, {1}, {2}), PRISM_INVALID_ARGUMENT, "queue");
  auto negative_kills = match("bad-3", "sumo", true, {1}, {2});
  negative_kills.mutable_losers(0)->set_kills(-1);
  add("negative kills", kRecord, negative_kills, PRISM_INVALID_ARGUMENT, "losers[0].kills");
  auto negative_duration = match("bad-4", "sumo", true, {1}, {2});
  negative_duration.set_duration_ms(-5);
  add("negative duration", kRecord, negative_duration, PRISM_INVALID_ARGUMENT, "duration_ms");
  add("player on both sides", kRecord, match("bad-5", "sumo", true, {1}, {1}), PRISM_INVALID_ARGUMENT,
      "losers[0].uuid");
  add("no losers", kRecord, match("bad-6", "sumo", true, {1}, {}), PRISM_INVALID_ARGUMENT, "losers");
  add("oversized match id", kRecord, match(std::string(65, 'm'), "sumo", true, {1}, {2}),
      PRISM_INVALID_ARGUMENT, "match_id");
  auto bad_uuid = match("bad-7", "sumo", true, {1}, {2});
  bad_uuid.mutable_winners(0)->set_uuid("not-a-uuid");
  add("bad uuid", kRecord, bad_uuid, PRISM_INVALID_ARGUMENT, "winners[0].uuid");
  add("oversized name", kUpsert, upsert(1, "ThisNameIsTooLong"), PRISM_INVALID_ARGUMENT, "name");
  add("bad name", kUpsert, upsert(1, "no spaces"), PRISM_INVALID_ARGUMENT, "name");
  auto long_rank = upsert(1, "Renamed");
  long_rank.set_display_rank(std::string(33, 'r'));
  add("oversized display rank", kUpsert, long_rank, PRISM_INVALID_ARGUMENT, "display_rank");
  auto long_attribute = upsert(1, "Renamed");
  (*long_attribute.mutable_attributes())["bio"] = std::string(257, 'b');
  add("oversized attribute", kUpsert, long_attribute, PRISM_INVALID_ARGUMENT, "attributes.bio");
  pb::LeaderboardRequest no_stat;
  add("leaderboard without stat", kTop, no_stat, PRISM_INVALID_ARGUMENT, "stat");
  pb::LeaderboardRequest negative_limit;
  negative_limit.set_stat(pb::STAT_WINS);
  negative_limit.set_limit(-1);
  add("negative limit", kTop, negative_limit, PRISM_INVALID_ARGUMENT, "limit");
  pb::JoinRequest join_unknown;
  join_unknown.set_uuid(uuid(9));
  join_unknown.set_server("eu-1");
  add("join of an unknown player", kJoin, join_unknown, PRISM_NOT_FOUND, "uuid");

  for (const Case& c : cases) {
    const Reply r = plugin.call(c.method, c.payload);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.message;
    EXPECT_TRUE(r.message.starts_with(c.field)) << c.what << ": " << r.message;
  }

  // Nothing of any of them was written.
  for (int n : {1, 2}) {
    const auto p = plugin.ok<pb::Profile>(kProfile, by_uuid(n));
    EXPECT_EQ(p.totals().matches(), 0);
    EXPECT_TRUE(p.queues().empty());
  }
  EXPECT_EQ(plugin.ok<pb::Profile>(kProfile, by_uuid(1)).name(), "A");
  EXPECT_EQ(plugin.call(kProfile, by_name("Renamed")).status, PRISM_NOT_FOUND);
  for (const char* id : {"bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "bad-7"}) {
    pb::GetMatchRequest get;
    get.set_match_id(id);
    EXPECT_EQ(plugin.call(kGetMatch, get).status, PRISM_NOT_FOUND) << id;
  }
  pb::LeaderboardRequest wins;
  wins.set_stat(pb::STAT_WINS);
  EXPECT_EQ(plugin.ok<pb::Leaderboard>(kTop, wins).entries_size(), 0);
}

TEST_F(PracticeServiceTest, ConcurrentMatchesOfOnePlayerLoseNoUpdate) {
  constexpr int kThreads = 4;
  constexpr int kMatchesEach = 15;
  plugin.ok<pb::Profile>(kUpsert, upsert(100, "Star"));
  for (int t = 0; t < kThreads; ++t) plugin.ok<pb::Profile>(kUpsert, upsert(t + 1, "Opp" + std::to_string(t)));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kMatchesEach; ++i) {
        auto m = match("c-" + std::to_string(t) + "-" + std::to_string(i), "sumo", true, {100}, {t + 1});
        m.mutable_winners(0)->set_kills(2);
        // CONFLICT says "resend": the plugin gave up its retries under this contention, and
        // a resend of the same match id is never counted twice.
        Reply r = plugin.call(kRecord, m);
        for (int resend = 0; r.status == PRISM_CONFLICT && resend < 50; ++resend) r = plugin.call(kRecord, m);
        EXPECT_EQ(r.status, PRISM_OK) << r.message;
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto star = plugin.ok<pb::Profile>(kProfile, by_uuid(100));
  EXPECT_EQ(star.totals().wins(), kThreads * kMatchesEach);
  EXPECT_EQ(star.totals().kills(), 2 * kThreads * kMatchesEach);
  EXPECT_EQ(star.totals().best_streak(), kThreads * kMatchesEach);
  EXPECT_EQ(queue_of(star, "sumo")->ranked_matches(), kThreads * kMatchesEach);
  // The board holds what the stats document says.
  pb::LeaderboardPlayerRequest rank;
  rank.set_stat(pb::STAT_WINS);
  rank.set_queue("sumo");
  rank.set_uuid(uuid(100));
  const auto entry = plugin.ok<pb::Leaderboard>(kRank, rank);
  ASSERT_EQ(entry.entries_size(), 1);
  EXPECT_EQ(entry.entries(0).value(), kThreads * kMatchesEach);
  rank.set_stat(pb::STAT_ELO);
  EXPECT_EQ(plugin.ok<pb::Leaderboard>(kRank, rank).entries(0).value(), queue_of(star, "sumo")->rating());
}

TEST_F(PracticeServiceTest, LeaderboardsAnswerTopPageAroundAndRank) {
  // Player n wins n matches against player 0, so wins rank 9, 8, ..., 1.
  plugin.ok<pb::Profile>(kUpsert, upsert(50, "Sparring"));
  for (int n = 1; n <= 9; ++n) plugin.ok<pb::Profile>(kUpsert, upsert(n, "P" + std::to_string(n)));
  for (int n = 1; n <= 9; ++n) {
    for (int i = 0; i < n; ++i) {
      plugin.ok<pb::MatchResult>(kRecord, match("w" + std::to_string(n) + "-" + std::to_string(i), "gapple",
                                                false, {n}, {50}));
    }
  }
  pb::LeaderboardRequest top;
  top.set_stat(pb::STAT_WINS);
  top.set_queue("gapple");
  top.set_limit(3);
  const auto first = plugin.ok<pb::Leaderboard>(kTop, top);
  ASSERT_EQ(first.entries_size(), 3);
  EXPECT_EQ(first.entries(0).name(), "P9");
  EXPECT_EQ(first.entries(0).value(), 9);
  EXPECT_EQ(first.entries(2).rank(), 3);

  top.set_after_rank(3);
  const auto page = plugin.ok<pb::Leaderboard>(kPage, top);
  ASSERT_EQ(page.entries_size(), 3);
  EXPECT_EQ(page.entries(0).rank(), 4);
  EXPECT_EQ(page.entries(0).name(), "P6");

  pb::LeaderboardPlayerRequest around;
  around.set_stat(pb::STAT_WINS);
  around.set_queue("gapple");
  around.set_uuid(uuid(5));
  around.set_limit(1);
  const auto near = plugin.ok<pb::Leaderboard>(kAround, around);
  ASSERT_EQ(near.entries_size(), 3);
  EXPECT_EQ(near.entries(0).name(), "P6");
  EXPECT_EQ(near.entries(1).name(), "P5");
  EXPECT_EQ(near.entries(1).rank(), 5);
  EXPECT_EQ(near.entries(2).name(), "P4");

  const auto rank = plugin.ok<pb::Leaderboard>(kRank, around);
  ASSERT_EQ(rank.entries_size(), 1);
  EXPECT_EQ(rank.entries(0).rank(), 5);
  EXPECT_EQ(rank.entries(0).value(), 5);

  // Unranked matches put nobody on the elo boards; the global wins board has everyone.
  around.set_stat(pb::STAT_ELO);
  EXPECT_EQ(plugin.call(kRank, around).status, PRISM_NOT_FOUND);
  top.set_queue("");
  top.set_limit(100);
  top.set_after_rank(0);
  EXPECT_EQ(plugin.ok<pb::Leaderboard>(kTop, top).entries_size(), 10);
}

TEST_F(PracticeServiceTest, PresenceTracksJoinQueueHeartbeatAndLeave) {
  for (int n = 1; n <= 3; ++n) plugin.ok<pb::Profile>(kUpsert, upsert(n, "P" + std::to_string(n)));
  auto join = [&](int n, const std::string& server, const std::string& queue) {
    pb::JoinRequest in;
    in.set_uuid(uuid(n));
    in.set_server(server);
    in.set_queue(queue);
    return plugin.ok<pb::Presence>(kJoin, in);
  };
  const auto joined = join(1, "eu-1", "sumo");
  EXPECT_EQ(joined.name(), "P1");
  EXPECT_GT(joined.expires_at_ms(), 0);
  join(2, "eu-1", "");
  join(3, "eu-10", "sumo");

  pb::OnlineRequest all;
  EXPECT_EQ(plugin.ok<pb::OnlineList>(kOnline, all).players_size(), 3);
  pb::OnlineRequest eu1;
  eu1.set_server("eu-1");
  const auto on_eu1 = plugin.ok<pb::OnlineList>(kOnline, eu1);
  ASSERT_EQ(on_eu1.players_size(), 2);
  EXPECT_EQ(on_eu1.players(0).uuid(), uuid(1));
  EXPECT_EQ(on_eu1.players(0).queue(), "sumo");
  pb::OnlineRequest sumo;
  sumo.set_queue("sumo");
  EXPECT_EQ(plugin.ok<pb::OnlineList>(kOnline, sumo).players_size(), 2);

  // Joining again moves the player; the profile shows where.
  join(2, "eu-10", "boxing");
  const auto profile = plugin.ok<pb::Profile>(kProfile, by_uuid(2));
  ASSERT_TRUE(profile.has_presence());
  EXPECT_EQ(profile.presence().server(), "eu-10");
  EXPECT_EQ(profile.presence().queue(), "boxing");

  pb::PlayerRequest p1;
  p1.set_uuid(uuid(1));
  EXPECT_EQ(plugin.ok<pb::Presence>(kHeartbeat, p1).server(), "eu-1");
  EXPECT_EQ(plugin.ok<pb::Presence>(kPresence, p1).queue(), "sumo");
  EXPECT_EQ(plugin.call(kLeave, p1).status, PRISM_OK);
  EXPECT_EQ(plugin.call(kLeave, p1).status, PRISM_NOT_FOUND);
  EXPECT_EQ(plugin.call(kPresence, p1).status, PRISM_NOT_FOUND);
  EXPECT_EQ(plugin.call(kHeartbeat, p1).status, PRISM_NOT_FOUND);
  EXPECT_EQ(plugin.ok<pb::OnlineList>(kOnline, eu1).players_size(), 0);
  EXPECT_FALSE(plugin.ok<pb::Profile>(kProfile, by_uuid(1)).has_presence());

  // A rename shows in the online list at once.
  plugin.ok<pb::Profile>(kUpsert, upsert(3, "Renamed3"));
  pb::OnlineRequest eu10;
  eu10.set_server("eu-10");
  const auto on_eu10 = plugin.ok<pb::OnlineList>(kOnline, eu10);
  ASSERT_EQ(on_eu10.players_size(), 2);
  EXPECT_EQ(on_eu10.players(1).name(), "Renamed3");
}

// Hot reload as prismd does it: a private copy of the file is loaded beside the running
// one, the old one is shut down and dlclose()d while the new one serves. Nothing of the
// old copy may stay reachable (lite protobuf registers nothing process-wide).
TEST(PracticePluginReload, ANewCopyServesAfterTheOldOneIsUnloaded) {
  Store store;
  const fs::path dir = fs::temp_directory_path() / ("practice-copies-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path source = fs::path(PRISM_PLUGIN_DIR) / "practice.so";
  for (int round = 0; round < 3; ++round) {
    fs::copy_file(source, dir / ("old-" + std::to_string(round) + ".so"), fs::copy_options::overwrite_existing);
    fs::copy_file(source, dir / ("new-" + std::to_string(round) + ".so"), fs::copy_options::overwrite_existing);
  }
  auto old_copy = std::make_unique<Plugin>("", dir / "old-0.so");
  ASSERT_TRUE(old_copy->started()) << old_copy->error;
  old_copy->ok<pb::Profile>(kUpsert, upsert(1, "A"));
  old_copy->ok<pb::Profile>(kUpsert, upsert(2, "B"));
  old_copy->ok<pb::MatchResult>(kRecord, match("x0", "sumo", true, {1}, {2}));
  for (int round = 0; round < 3; ++round) {
    auto next = std::make_unique<Plugin>("", dir / ("new-" + std::to_string(round) + ".so"));
    ASSERT_TRUE(next->started()) << next->error;
    next->ok<pb::MatchResult>(kRecord, match("y" + std::to_string(round), "sumo", true, {1}, {2}));
    old_copy.reset();  // shutdown + dlclose of the previous copy
    auto renamed = upsert(1, "A" + std::to_string(round));
    (*renamed.mutable_attributes())["round"] = std::to_string(round);  // a map field, too
    EXPECT_EQ(next->ok<pb::Profile>(kUpsert, renamed).attributes().at("round"), std::to_string(round));
    next->ok<pb::MatchResult>(kRecord, match("z" + std::to_string(round), "sumo", true, {1}, {2}));
    EXPECT_EQ(next->ok<pb::Profile>(kProfile, by_uuid(1)).totals().wins(), 3 + 2 * round);
    old_copy = std::move(next);
  }
  old_copy.reset();
  fs::remove_all(dir);
}

TEST(PracticePluginInit, BadSettingsRefuseInitWithTheReason) {
  Store store;
  Plugin plugin("k_factor: -3\n");
  EXPECT_EQ(plugin.init_status, PRISM_INTERNAL);
  EXPECT_EQ(plugin.error, "settings.k_factor: expected an integer 1..1000, got -3");
}

}  // namespace
}  // namespace prism::practice
