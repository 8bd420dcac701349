// The Redis storage backend: the shared conformance suite against a throwaway
// redis-server, plus what only Redis has — connection loss and recovery, health,
// durability across a crash, the script cache, and exact 64-bit arithmetic in Lua.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <atomic>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_backend.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "unit/store_conformance.hpp"

namespace prism::store {
namespace {

using namespace std::chrono_literals;
using prism::testing::RedisServer;

// Skips every test of the binary when redis-server is not installed.
class RedisInstalled : public ::testing::Environment {
 public:
  void SetUp() override {
    if (RedisServer::binary().empty()) {
      GTEST_SKIP() << "redis-server not found on PATH: install redis-server to run these tests";
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kRedisInstalled =
    ::testing::AddGlobalTestEnvironment(new RedisInstalled);

std::unique_ptr<RedisServer> start_shared(std::vector<std::string> options) {
  auto s = std::make_unique<RedisServer>(std::move(options));
  if (const std::string error = s->start(); !error.empty()) {
    ADD_FAILURE() << "cannot start redis-server: " << error;
    return nullptr;
  }
  return s;
}

// One server for the conformance suite, shared by its tests; each store gets its own key
// prefix, so every store starts empty without flushing what another might still use.
RedisServer* shared_server() {
  static std::unique_ptr<RedisServer> server = start_shared({});
  return server.get();
}

// A server that answers FUNCTION as Redis 6 does (unknown command): the script runs as
// EVALSHA there, and the same suite checks that path.
const std::vector<std::string> kNoFunctions = {"--rename-command", "FUNCTION", ""};

RedisServer* shared_server_without_functions() {
  static std::unique_ptr<RedisServer> server = start_shared(kNoFunctions);
  return server.get();
}

std::unique_ptr<Backend> fresh_store(RedisServer* server) {
  static std::atomic<int> stores{0};
  if (server == nullptr) return nullptr;
  RedisOptions options;
  options.key_prefix = "prism-test-" + std::to_string(++stores) + ":";
  return std::make_unique<RedisBackend>(server->host(), server->port(), options);
}

}  // namespace
}  // namespace prism::store

INSTANTIATE_STORE_CONFORMANCE(Redis, [] {
  return prism::store::fresh_store(prism::store::shared_server());
});
INSTANTIATE_STORE_CONFORMANCE(RedisEvalsha, [] {
  return prism::store::fresh_store(prism::store::shared_server_without_functions());
});

namespace prism::store {
namespace {

constexpr auto kWait = 10s;

// Runs one asynchronous call and waits for its completion.
template <typename T, typename Call>
std::pair<Status, T> await(Call call) {
  auto promise = std::make_shared<std::promise<std::pair<Status, T>>>();
  auto future = promise->get_future();
  call([promise](Status s, T value) { promise->set_value({std::move(s), std::move(value)}); });
  if (future.wait_for(kWait) != std::future_status::ready) {
    return {Status{Code::kInternal, "test: no completion within 10 s"}, T{}};
  }
  return future.get();
}

template <typename Call>
Status await_done(Call call) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  call([promise](Status s) { promise->set_value(std::move(s)); });
  if (future.wait_for(kWait) != std::future_status::ready) {
    return Status{Code::kInternal, "test: no completion within 10 s"};
  }
  return future.get();
}

// Reconnections happen on the backend's own threads: nothing to await but the state.
using prism::testing::eventually;

RedisOptions fast_reconnect() {
  RedisOptions options;
  options.reconnect_min = 20ms;
  options.reconnect_max = 200ms;
  return options;
}

class RedisBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
    server_ = std::make_unique<RedisServer>();
    const std::string error = server_->start();
    ASSERT_EQ(error, "");
    backend_ = std::make_unique<RedisBackend>(server_->host(), server_->port(), fast_reconnect());
  }

  uint64_t put(const std::string& key, const std::string& value, ExpectedVersion expected = {}) {
    auto [s, version] = await<uint64_t>(
        [&](auto done) { backend_->put("c", key, value, expected, std::move(done)); });
    EXPECT_TRUE(s.ok()) << s.message;
    return version;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisBackend> backend_;
};

TEST_F(RedisBackendTest, CallsMadeBeforeTheFirstConnectionWaitForIt) {
  // The backend was created an instant ago; the call must not fail for lack of a connection.
  auto [s, version] = await<uint64_t>(
      [&](auto done) { backend_->put("c", "k", "v", std::nullopt, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(version, 1u);
  EXPECT_TRUE(backend_->healthy());
}

TEST_F(RedisBackendTest, CollectionAndKeyContainingColonsDoNotCollide) {
  ASSERT_EQ(await<uint64_t>([&](auto done) {
              backend_->put("a:b", "c", "first", std::nullopt, std::move(done));
            }).second,
            1u);
  ASSERT_EQ(await<uint64_t>([&](auto done) {
              backend_->put("a", "b:c", "second", std::nullopt, std::move(done));
            }).second,
            1u);
  auto [s, doc] = await<Document>([&](auto done) { backend_->get("a:b", "c", std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(doc.value, "first");
  EXPECT_EQ(doc.version, 1u);
}

TEST_F(RedisBackendTest, BinaryValuesRoundTrip) {
  const std::string value("\0\xff\x01:\r\n", 6);
  put("bin", value);
  auto [s, doc] = await<Document>([&](auto done) { backend_->get("c", "bin", std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(doc.value, value);
}

TEST_F(RedisBackendTest, ListHonoursPrefixAfterAndLimit) {
  for (const char* key : {"a1", "b1", "b2", "b3", "c1"}) put(key, key);
  auto [s, docs] = await<std::vector<Document>>(
      [&](auto done) { backend_->list("c", "b", "b1", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].key, "b2");
  EXPECT_EQ(docs[1].key, "b3");
  auto [s2, first] = await<std::vector<Document>>(
      [&](auto done) { backend_->list("c", "", "", 2, std::move(done)); });
  ASSERT_TRUE(s2.ok()) << s2.message;
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].key, "a1");
  EXPECT_EQ(first[1].key, "b1");
}

TEST_F(RedisBackendTest, CountersKeepFull64BitRangeAndRefuseOverflow) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto [s, value] = await<int64_t>([&](auto done) { backend_->counter_add("n", kMax, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(value, kMax);
  auto [over, ignored] = await<int64_t>([&](auto done) { backend_->counter_add("n", 1, std::move(done)); });
  EXPECT_EQ(over.code, Code::kInvalidArgument);
  // The same through a batch (Lua arithmetic, not INCRBY), which must also leave nothing.
  std::vector<Write> writes(2);
  writes[0].kind = Write::Kind::kCounterAdd;
  writes[0].counter = "m";
  writes[0].delta = kMax - 1;
  writes[1].kind = Write::Kind::kCounterAdd;
  writes[1].counter = "n";
  writes[1].delta = 1;
  auto [batch, results] = await<std::vector<int64_t>>(
      [&](auto done) { backend_->apply(writes, std::move(done)); });
  EXPECT_EQ(batch.code, Code::kInvalidArgument);
  EXPECT_EQ(await<int64_t>([&](auto done) { backend_->counter_get("m", std::move(done)); }).second, 0);
  writes.resize(1);
  auto [ok, values] = await<std::vector<int64_t>>(
      [&](auto done) { backend_->apply(writes, std::move(done)); });
  ASSERT_TRUE(ok.ok()) << ok.message;
  EXPECT_EQ(values, std::vector<int64_t>{kMax - 1});
}

TEST_F(RedisBackendTest, BoardScoresBeyondDoublePrecisionRankExactly) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"big", SortOrder::kDescending, Operator::kIncrement},
                                       std::move(done));
              }).ok());
  constexpr int64_t kHuge = (int64_t{1} << 60) + 1;  // not representable as a double
  auto submit = [&](const std::string& owner, int64_t score) {
    Entry entry;
    entry.owner = owner;
    entry.score = score;
    auto [s, e] = await<Entry>([&](auto done) { backend_->board_submit("big", entry, std::move(done)); });
    EXPECT_TRUE(s.ok()) << s.message;
    return e;
  };
  submit("a", kHuge);
  submit("b", kHuge - 1);
  const Entry a = submit("a", 1);  // incremented: kHuge + 1
  EXPECT_EQ(a.score, kHuge + 1);
  EXPECT_EQ(a.rank, 1u);
  const Entry c = submit("c", std::numeric_limits<int64_t>::min());
  EXPECT_EQ(c.score, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(c.rank, 3u);
  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("big", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[1].owner, "b");
  EXPECT_EQ(top[1].score, kHuge - 1);
  Entry overflow;
  overflow.owner = "a";
  overflow.score = std::numeric_limits<int64_t>::max();
  auto [over, ignored] = await<Entry>([&](auto done) { backend_->board_submit("big", overflow, std::move(done)); });
  EXPECT_EQ(over.code, Code::kInvalidArgument);
}

TEST_F(RedisBackendTest, SubmittedTimeComesFromTheServerClock) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"t", SortOrder::kDescending, Operator::kBest},
                                       std::move(done));
              }).ok());
  const std::string time = server_->command("TIME");  // "seconds microseconds"
  const int64_t server_ms = std::stoll(time.substr(0, time.find(' '))) * 1000;
  Entry entry;
  entry.owner = "o";
  entry.submitted_ms = 42;  // ignored
  auto [s, e] = await<Entry>([&](auto done) { backend_->board_submit("t", entry, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_GE(e.submitted_ms, server_ms);
  EXPECT_LT(e.submitted_ms, server_ms + 60'000);
}

TEST_F(RedisBackendTest, EqualScoresRankBySubscoreThenEarlierSubmission) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"asc", SortOrder::kAscending, Operator::kSet},
                                       std::move(done));
              }).ok());
  auto submit = [&](const std::string& owner, int64_t score, int64_t subscore) {
    Entry entry;
    entry.owner = owner;
    entry.score = score;
    entry.subscore = subscore;
    EXPECT_TRUE(await<Entry>([&](auto done) { backend_->board_submit("asc", entry, std::move(done)); })
                    .first.ok());
  };
  submit("late", 5, 1);
  submit("early", 5, 1);   // same score and subscore, submitted later
  submit("sub", 5, 0);     // lower subscore ranks first on an ascending board
  submit("first", -3, 9);
  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("asc", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  std::vector<std::string> owners;
  for (const auto& e : top) owners.push_back(e.owner);
  EXPECT_EQ(owners, (std::vector<std::string>{"first", "sub", "late", "early"}));
  EXPECT_EQ(top[3].rank, 4u);
}

TEST_F(RedisBackendTest, CallsFailUnavailableWhileServerIsDownAndSucceedAfterRestart) {
  put("before", "1");
  ASSERT_TRUE(backend_->healthy());
  server_->stop();
  ASSERT_TRUE(eventually([&] { return !backend_->healthy(); }));
  auto [down, ignored] = await<Document>([&](auto done) { backend_->get("c", "before", std::move(done)); });
  EXPECT_EQ(down.code, Code::kUnavailable) << down.message;
  ASSERT_EQ(server_->restart(), "");
  ASSERT_TRUE(eventually([&] { return backend_->healthy(); }));
  auto [up, doc] = await<Document>([&](auto done) { backend_->get("c", "before", std::move(done)); });
  ASSERT_TRUE(up.ok()) << up.message;
  EXPECT_EQ(doc.value, "1");
}

TEST_F(RedisBackendTest, CallsInFlightWhenTheServerDiesCompleteUnavailable) {
  std::vector<std::future<Status>> results;
  for (int i = 0; i < 200; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    results.push_back(promise->get_future());
    backend_->counter_add("n", 1, [promise](Status s, int64_t) { promise->set_value(std::move(s)); });
  }
  server_->kill();
  for (auto& result : results) {
    ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
    const Status s = result.get();
    EXPECT_TRUE(s.ok() || s.code == Code::kUnavailable) << s.message;
  }
}

TEST_F(RedisBackendTest, AServerThatStopsAnsweringTimesOutAsUnavailable) {
  RedisOptions options = fast_reconnect();
  options.command_timeout = 300ms;
  options.connect_timeout = 300ms;
  RedisBackend backend(server_->host(), server_->port(), options);
  ASSERT_TRUE(await<int64_t>([&](auto done) { backend.counter_add("n", 1, std::move(done)); }).first.ok());
  server_->pause();  // SIGSTOP: the socket stays open, nothing answers
  auto [s, ignored] = await<int64_t>([&](auto done) { backend.counter_add("n", 1, std::move(done)); });
  EXPECT_EQ(s.code, Code::kUnavailable) << s.message;
  EXPECT_FALSE(backend.healthy());
  server_->resume();
  ASSERT_TRUE(eventually([&] { return backend.healthy(); }));
  auto [again, value] = await<int64_t>([&](auto done) { backend.counter_get("n", std::move(done)); });
  ASSERT_TRUE(again.ok()) << again.message;
  EXPECT_GE(value, 1);  // the timed-out add may or may not have been applied
}

TEST_F(RedisBackendTest, HealthyIsFalseWhileNoServerAnswers) {
  server_->stop();
  ASSERT_TRUE(eventually([&] { return !backend_->healthy(); }));
  RedisBackend orphan(server_->host(), server_->port(), fast_reconnect());
  auto [s, ignored] = await<int64_t>([&](auto done) { orphan.counter_get("n", std::move(done)); });
  EXPECT_EQ(s.code, Code::kUnavailable);
  EXPECT_FALSE(orphan.healthy());
  ASSERT_EQ(server_->restart(), "");
  EXPECT_TRUE(eventually([&] { return orphan.healthy() && backend_->healthy(); }));
}

TEST_F(RedisBackendTest, AcknowledgedWritesSurviveAServerCrash) {
  for (int i = 0; i < 50; ++i) put("k" + std::to_string(i), std::to_string(i));
  ASSERT_TRUE(await<int64_t>([&](auto done) { backend_->counter_add("n", 7, std::move(done)); }).first.ok());
  server_->kill();  // SIGKILL: only what appendfsync always put on disk survives
  ASSERT_EQ(server_->restart(), "");
  ASSERT_TRUE(eventually([&] { return backend_->healthy(); }));
  auto [s, docs] = await<std::vector<Document>>(
      [&](auto done) { backend_->list("c", "k", "", 1000, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(docs.size(), 50u);
  EXPECT_EQ(await<int64_t>([&](auto done) { backend_->counter_get("n", std::move(done)); }).second, 7);
}

// The calls made through the script, by command, from INFO commandstats ("cmdstat_fcall").
uint64_t calls_of(const RedisServer& server, const std::string& command) {
  const std::string stats = server.command("INFO commandstats");
  const std::string field = "cmdstat_" + command + ":calls=";
  const size_t at = stats.find(field);
  return at == std::string::npos ? 0 : std::stoull(stats.substr(at + field.size()));
}

TEST_F(RedisBackendTest, ScriptFlushedByAnotherClientIsSentAgain) {
  put("k", "1");
  ASSERT_EQ(server_->command("SCRIPT FLUSH"), "OK");
  EXPECT_EQ(put("k", "2"), 2u);
}

TEST_F(RedisBackendTest, TheScriptRunsAsAFunctionWhereTheServerHasFunctions) {
  put("k", "1");
  EXPECT_NE(server_->command("FUNCTION LIST").find("prism_"), std::string::npos);
  EXPECT_EQ(calls_of(*server_, "fcall"), 1u);
  EXPECT_EQ(calls_of(*server_, "evalsha"), 0u);
}

TEST_F(RedisBackendTest, AFunctionFlushedByAnotherClientIsLoadedAgain) {
  put("k", "1");
  ASSERT_EQ(server_->command("FUNCTION FLUSH"), "OK");
  EXPECT_EQ(put("k", "2"), 2u);  // answered through EVAL while the library is loaded again
  ASSERT_NE(server_->command("FUNCTION LIST").find("prism_"), std::string::npos);
  const uint64_t before = calls_of(*server_, "fcall");
  EXPECT_EQ(put("k", "3"), 3u);
  EXPECT_EQ(calls_of(*server_, "fcall"), before + 1);
}

TEST(RedisBackendWithoutFunctions, TheScriptRunsAsEvalsha) {
  RedisServer server(kNoFunctions);
  ASSERT_EQ(server.start(), "");
  RedisBackend backend(server.host(), server.port(), fast_reconnect());
  auto [s, version] = await<uint64_t>(
      [&](auto done) { backend.put("c", "k", "v", std::nullopt, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(calls_of(server, "evalsha"), 1u);
  EXPECT_EQ(calls_of(server, "fcall"), 0u);
}

// One submission to `board` through apply(), as a match recording makes them.
Status submit_in_batch(RedisBackend& backend, const std::string& board, const std::string& owner,
                       int64_t score) {
  Write w;
  w.kind = Write::Kind::kSubmit;
  w.board = board;
  w.entry.owner = owner;
  w.entry.score = score;
  return await<std::vector<int64_t>>([&](auto done) { backend.apply({w}, std::move(done)); }).first;
}

TEST_F(RedisBackendTest, ABoardThisProcessCreatedIsSubmittedToWithoutReadingItsSpec) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"elo", SortOrder::kDescending, Operator::kSet}, std::move(done));
              }).ok());
  ASSERT_EQ(server_->command("CONFIG RESETSTAT"), "OK");
  ASSERT_TRUE(submit_in_batch(*backend_, "elo", "a", 1200).ok());
  Entry entry;
  entry.owner = "b";
  entry.score = 1300;
  ASSERT_TRUE(await<Entry>([&](auto done) { backend_->board_submit("elo", entry, std::move(done)); }).first.ok());
  EXPECT_EQ(calls_of(*server_, "hmget"), 0u);  // the spec is read by neither the script nor prismd
  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("elo", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].owner, "b");  // descending, as created
}

TEST_F(RedisBackendTest, ABoardAnotherProcessCreatedIsReadOnceThenKnown) {
  RedisBackend creator(server_->host(), server_->port(), fast_reconnect());
  ASSERT_TRUE(await_done([&](auto done) {
                creator.board_create({"kills", SortOrder::kAscending, Operator::kIncrement}, std::move(done));
              }).ok());
  ASSERT_TRUE(submit_in_batch(*backend_, "kills", "a", 5).ok());  // the script reads the spec
  ASSERT_TRUE(eventually([&] {  // and prismd learns it beside the call
    server_->command("CONFIG RESETSTAT");
    EXPECT_TRUE(submit_in_batch(*backend_, "kills", "a", 5).ok());
    return calls_of(*server_, "hmget") == 0;
  }));
  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("kills", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(top.size(), 1u);
  EXPECT_GE(top[0].score, 10);  // incremented, as the other process created it
}

TEST_F(RedisBackendTest, ASubmissionToABoardNobodyCreatedIsRefused) {
  const Status s = submit_in_batch(*backend_, "nowhere", "a", 1);
  EXPECT_EQ(s.code, Code::kNotFound);
  EXPECT_NE(s.message.find("no board nowhere"), std::string::npos) << s.message;
  EXPECT_EQ(server_->command("EXISTS prism:lb:nowhere"), "0");
}

// The 16-hex-digit sort key the script makes of `v` (redis_script.cpp, sort_key).
std::string sort_key(int64_t v, bool descending) {
  uint64_t u = static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
  if (descending) u = ~u;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(u));
  return text;
}

Entry entry_of(const std::string& owner, int64_t score, const std::string& metadata) {
  Entry entry;
  entry.owner = owner;
  entry.score = score;
  entry.metadata = metadata;
  return entry;
}

TEST_F(RedisBackendTest, AWindowOfTheRankingIsOneCommand) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"elo", SortOrder::kDescending, Operator::kSet}, std::move(done));
              }).ok());
  for (int i = 0; i < 12; ++i) {
    const Entry entry = entry_of("p" + std::to_string(i), 1000 + i, "meta-" + std::to_string(i));
    ASSERT_TRUE(await<Entry>([&](auto done) { backend_->board_submit("elo", entry, std::move(done)); }).first.ok());
  }
  ASSERT_EQ(server_->command("CONFIG RESETSTAT"), "OK");
  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("elo", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(top.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(top[i].owner, "p" + std::to_string(11 - i));
    EXPECT_EQ(top[i].metadata, "meta-" + std::to_string(11 - i));  // carried by the member
  }
  EXPECT_EQ(calls_of(*server_, "zrange"), 1u);
  EXPECT_EQ(calls_of(*server_, "hmget"), 0u);
}

// Before the metadata moved into the member, a member ended with its owner and the
// metadata was in "lbm:". Such entries still rank among new ones with their metadata, and
// the owner's next submission rewrites the entry in the new form.
TEST_F(RedisBackendTest, EntriesAnOlderVersionWroteKeepTheirMetadataUntilRewritten) {
  ASSERT_TRUE(await_done([&](auto done) {
                backend_->board_create({"elo", SortOrder::kDescending, Operator::kSet}, std::move(done));
              }).ok());
  const std::string older = sort_key(1200, true) + sort_key(0, true) + sort_key(1000, false) +
                            "0000000000000001" + "veteran";
  ASSERT_EQ(server_->command("ZADD prism:lb:elo 0 " + older), "1");
  ASSERT_EQ(server_->command("HSET prism:lbo:elo veteran " + older), "1");
  ASSERT_EQ(server_->command("HSET prism:lbm:elo veteran kept-meta"), "1");
  const Entry rookie = entry_of("rookie", 1300, "new-meta");
  ASSERT_TRUE(await<Entry>([&](auto done) { backend_->board_submit("elo", rookie, std::move(done)); }).first.ok());
  // also below the veteran, so that the window around it mixes both forms on both sides
  const Entry last = entry_of("last", 1100, "last-meta");
  ASSERT_TRUE(await<Entry>([&](auto done) { backend_->board_submit("elo", last, std::move(done)); }).first.ok());

  auto [s, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("elo", 10, std::move(done)); });
  ASSERT_TRUE(s.ok()) << s.message;
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].owner, "rookie");
  EXPECT_EQ(top[0].metadata, "new-meta");
  EXPECT_EQ(top[1].owner, "veteran");
  EXPECT_EQ(top[1].score, 1200);
  EXPECT_EQ(top[1].metadata, "kept-meta");
  EXPECT_EQ(top[2].metadata, "last-meta");
  auto [sa, around] = await<std::vector<Entry>>(
      [&](auto done) { backend_->board_around("elo", "veteran", 1, std::move(done)); });
  ASSERT_TRUE(sa.ok()) << sa.message;
  ASSERT_EQ(around.size(), 3u);
  EXPECT_EQ(around[0].metadata, "new-meta");
  EXPECT_EQ(around[1].metadata, "kept-meta");
  EXPECT_EQ(around[2].metadata, "last-meta");
  auto [sr, rank] = await<Entry>([&](auto done) { backend_->board_rank("elo", "veteran", std::move(done)); });
  ASSERT_TRUE(sr.ok()) << sr.message;
  EXPECT_EQ(rank.rank, 2u);
  EXPECT_EQ(rank.metadata, "kept-meta");

  const Entry again = entry_of("veteran", 1500, "again-meta");
  auto [sv, written] = await<Entry>([&](auto done) { backend_->board_submit("elo", again, std::move(done)); });
  ASSERT_TRUE(sv.ok()) << sv.message;
  EXPECT_EQ(written.rank, 1u);
  EXPECT_EQ(written.metadata, "again-meta");
  EXPECT_EQ(server_->command("HEXISTS prism:lbm:elo veteran"), "0");
  EXPECT_EQ(server_->command("ZCARD prism:lb:elo"), "3");
  auto [s2, top2] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("elo", 10, std::move(done)); });
  ASSERT_TRUE(s2.ok()) << s2.message;
  ASSERT_EQ(top2.size(), 3u);
  EXPECT_EQ(top2[0].owner, "veteran");
  EXPECT_EQ(top2[0].metadata, "again-meta");
}

// apply() calls made while a group runs go out together as the next group, one script
// call. Each batch of the group is still all or nothing, sees the batches before it, and
// one that fails leaves nothing of itself for the batches after it.
TEST_F(RedisBackendTest, BatchesGroupedIntoOneScriptCallEachKeepTheirOwnOutcome) {
  using conformance::counter_write;
  using conformance::put_write;
  using conformance::submit_write;
  for (auto [board, op] : {std::pair{"elo", Operator::kSet}, std::pair{"top", Operator::kBest}}) {
    ASSERT_TRUE(await_done([&](auto done) {
                  backend_->board_create({board, SortOrder::kDescending, op}, std::move(done));
                }).ok());
  }
  ASSERT_EQ(put("taken", "v"), 1u);
  const std::vector<std::vector<Write>> batches = {
      {counter_write("first", 1)},  // goes alone; the others wait for it
      {put_write("c", "x", "1", 0)},
      {put_write("c", "x", "2", 0)},  // x exists since the batch before
      {put_write("c", "z", "1"), submit_write("elo", "p", 500), put_write("c", "taken", "w", 7)},
      {put_write("c", "z", "2", 0), submit_write("elo", "q", 300)},  // the batch before left no z
      {submit_write("elo", "q", 700), put_write("c", "x", "3", 1), submit_write("elo", "p", 600)},
      {submit_write("top", "r", 50)},
      {submit_write("top", "r", 40)},  // best: 50 stays
      {counter_write("n", 5), counter_write("n", 6)},
  };
  struct Outcome {
    Status status;
    std::vector<int64_t> results;
  };
  std::vector<Outcome> outcomes(batches.size());
  conformance::CompletionLatch latch(static_cast<int>(batches.size()));
  ASSERT_EQ(server_->command("CONFIG RESETSTAT"), "OK");
  // Issued from a completion, on the connection's thread: the first batch is still in
  // flight when the others are queued, so they form one group whatever the timing.
  backend_->get("c", "taken", [&](Status, Document) {
    for (size_t n = 0; n < batches.size(); ++n) {
      backend_->apply(batches[n], [&, n](Status s, std::vector<int64_t> results) {
        outcomes[n] = {std::move(s), std::move(results)};
        latch.arrive();
      });
    }
  });
  ASSERT_TRUE(latch.wait());
  EXPECT_EQ(calls_of(*server_, "fcall"), 2u);  // the first batch, then the group of the rest

  EXPECT_EQ(outcomes[1].results, std::vector<int64_t>{1});
  EXPECT_EQ(outcomes[2].status.code, Code::kConflict);
  EXPECT_EQ(outcomes[2].status.message, "write 0: expected version 0, found 1");
  EXPECT_EQ(outcomes[3].status.code, Code::kConflict);
  EXPECT_EQ(outcomes[3].status.message, "write 2: expected version 7, found 1");
  EXPECT_EQ(outcomes[4].results, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(outcomes[5].results, (std::vector<int64_t>{0, 2, 0}));
  EXPECT_TRUE(outcomes[6].status.ok()) << outcomes[6].status.message;
  EXPECT_TRUE(outcomes[7].status.ok()) << outcomes[7].status.message;
  EXPECT_EQ(outcomes[8].results, (std::vector<int64_t>{5, 11}));

  auto [zs, z] = await<Document>([&](auto done) { backend_->get("c", "z", std::move(done)); });
  ASSERT_TRUE(zs.ok()) << zs.message;
  EXPECT_EQ(z.value, "2");  // the failed batch's put of z was never written
  EXPECT_EQ(z.version, 1u);
  auto [xs, x] = await<Document>([&](auto done) { backend_->get("c", "x", std::move(done)); });
  EXPECT_EQ(x.value, "3");
  EXPECT_EQ(x.version, 2u);
  auto [es, elo] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("elo", 10, std::move(done)); });
  ASSERT_TRUE(es.ok()) << es.message;
  ASSERT_EQ(elo.size(), 2u);  // q's last entry, and p's from batch 5, not the failed 3
  EXPECT_EQ(elo[0].owner, "q");
  EXPECT_EQ(elo[0].score, 700);
  EXPECT_EQ(elo[1].owner, "p");
  EXPECT_EQ(elo[1].score, 600);
  EXPECT_EQ(server_->command("ZCARD prism:lb:elo"), "2");  // q's first entry was replaced
  auto [ts, top] = await<std::vector<Entry>>([&](auto done) { backend_->board_top("top", 10, std::move(done)); });
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].score, 50);
}

TEST_F(RedisBackendTest, DestroyingTheBackendCompletesPendingCalls) {
  server_->stop();
  ASSERT_TRUE(eventually([&] { return !backend_->healthy(); }));
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  backend_->counter_get("n", [promise](Status s, int64_t) { promise->set_value(std::move(s)); });
  backend_.reset();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(future.get().code, Code::kUnavailable);
}

// Batches waiting for a group when the backend goes complete too, each exactly once:
// written by a group that ran in time, or unavailable.
TEST_F(RedisBackendTest, DestroyingTheBackendCompletesBatchesWaitingForAGroup) {
  constexpr int kBatches = 20;
  std::atomic<int> completions{0}, unexpected{0};
  conformance::CompletionLatch latch(kBatches);
  std::promise<void> issued;
  backend_->get("c", "k", [&](Status, Document) {  // on the connection's thread: see above
    for (int n = 0; n < kBatches; ++n) {
      backend_->apply({conformance::counter_write("n", 1)}, [&](Status s, std::vector<int64_t>) {
        if (!s.ok() && s.code != Code::kUnavailable) ++unexpected;
        ++completions;
        latch.arrive();
      });
    }
    issued.set_value();
  });
  ASSERT_EQ(issued.get_future().wait_for(kWait), std::future_status::ready);
  backend_.reset();
  ASSERT_TRUE(latch.wait());
  EXPECT_EQ(completions.load(), kBatches);
  EXPECT_EQ(unexpected.load(), 0);
}

TEST_F(RedisBackendTest, KeysStayUnderTheConfiguredPrefix) {
  put("k", "v");
  const std::string keys = server_->command("KEYS *");
  EXPECT_NE(keys.find("prism:"), std::string::npos) << keys;
  for (size_t at = 0; (at = keys.find(' ', at)) != std::string::npos; ++at) {
    EXPECT_EQ(keys.compare(at + 1, 6, "prism:"), 0) << keys;
  }
}

}  // namespace
}  // namespace prism::store
