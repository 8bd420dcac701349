// The storage facade through a real prismd: writes acknowledged OK survive a SIGKILL of
// prismd mid-stream (sqlite and redis), a backend that goes away turns its facets
// UNAVAILABLE and degraded and comes back by itself, and a bad store setting stops
// prismd with the key named. Driven through the store_user test plugin (7000..7009).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <string>

#include "prism/client.hpp"
#include "prismd_process.hpp"
#ifdef PRISM_TEST_WITH_REDIS
#include "support/redis_server.hpp"
#endif
#ifdef PRISM_TEST_WITH_POSTGRES
#include "support/postgres_server.hpp"
#endif
#include "unit/temp_dir_test.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint32_t kGet = 7000;  // store_user.get: "<key>=<value>@<version>"
constexpr uint32_t kPut = 7002;  // store_user.put: "<key>=<value>" → the new version
constexpr uint32_t kPutAfterReply = 7003;  // store_user.put_after_reply: answers, then puts

class StoreThroughPrismd : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    plugins_ = dir_ / "plugins";
    fs::create_directories(plugins_);
    fs::copy_file(fs::path(PRISM_TEST_PLUGIN_DIR) / "store_user.so", plugins_ / "store_user.so");
  }

  PrismdOptions options(std::string extra_yaml = "") const {
    PrismdOptions o;
    o.plugins_dir = plugins_;
    o.state_dir = dir_ / "state";  // kept across restarts: the key and prism.db live here
    o.extra_yaml = std::move(extra_yaml);
    return o;
  }

  static client::Client connect(const PrismdProcess& prismd) {
    client::ConnectOptions o;
    o.server_key = prismd.server_key();
    o.timeout = 5s;
    auto c = client::Client::connect({"127.0.0.1", prismd.port()}, o);
    EXPECT_TRUE(c) << c.error();
    return std::move(*c);
  }

  // Streams puts of k<i>=v<i> with 64 in flight; once `kill_after` are acknowledged,
  // SIGKILLs prismd while more are in flight. `acked` gets the keys answered OK.
  static void stream_then_kill(PrismdProcess& prismd, int kill_after,
                               std::map<std::string, std::string>& acked) {
    client::Client c = connect(prismd);
    int next = 0;
    auto top_up = [&] {
      while (c.pending() < 64) {
        const std::string key = "k" + std::to_string(next);
        const std::string value = "v" + std::to_string(next++);
        auto sent = c.send_request(
            kPut, key + "=" + value, v1::DELIVERY_RELIABLE_UNORDERED,
            [&acked, key, value](const client::Reply& r) {
              if (r.status == v1::STATUS_OK) acked[key] = value;
            },
            2s);
        EXPECT_TRUE(sent) << sent.error();
      }
    };
    while (static_cast<int>(acked.size()) < kill_after) {
      top_up();
      auto polled = c.poll(50ms);
      ASSERT_TRUE(polled) << polled.error();
    }
    // A full window goes out and the kill follows at once: these are in flight, some
    // committed without their reply read, none counted as acknowledged.
    top_up();
    EXPECT_TRUE(c.poll(0ms));
    EXPECT_EQ(prismd.stop(SIGKILL), 128 + SIGKILL);
    EXPECT_GT(next, static_cast<int>(acked.size())) << "no write was in flight at the kill";
  }

  // Every acknowledged key reads back with its value after a restart on the same state.
  void expect_all_present(const std::map<std::string, std::string>& acked, const std::string& extra_yaml) {
    PrismdProcess again(options(extra_yaml));
    ASSERT_TRUE(again.ready()) << again.log();
    client::Client c = connect(again);
    size_t missing = 0;
    for (const auto& [key, value] : acked) {
      auto reply = c.call(kGet, key);
      ASSERT_TRUE(reply) << reply.error();
      if (reply->status != v1::STATUS_OK || reply->payload.rfind(key + "=" + value + "@", 0) != 0) {
        ++missing;
        ADD_FAILURE() << key << ": " << client::status_name(reply->status) << " " << reply->message
                      << " " << reply->payload;
        if (missing > 5) break;
      }
    }
    EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged writes";
  }

  fs::path plugins_;
};

TEST_F(StoreThroughPrismd, AcknowledgedWritesSurviveSigkillWithSqlite) {
  std::map<std::string, std::string> acked;
  {
    PrismdProcess prismd(options());
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    EXPECT_TRUE(prismd.wait_for_log("event=store_ready facets=documents:sqlite")) << prismd.log();
    stream_then_kill(prismd, 2000, acked);
  }
  ASSERT_GE(acked.size(), 2000u);
  expect_all_present(acked, "");
}

#ifdef PRISM_TEST_WITH_REDIS
TEST_F(StoreThroughPrismd, AcknowledgedWritesSurviveSigkillWithRedis) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_EQ(redis.start(), "");
  const std::string yaml = "store:\n  backend: redis\n  redis:\n    address: \"127.0.0.1:" +
                           std::to_string(redis.port()) + "\"\n";
  std::map<std::string, std::string> acked;
  {
    PrismdProcess prismd(options(yaml));
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    stream_then_kill(prismd, 2000, acked);
  }
  // Redis itself crashes too: only what its append-only file fsync'd comes back.
  redis.kill();
  ASSERT_EQ(redis.restart(), "");
  ASSERT_GE(acked.size(), 2000u);
  expect_all_present(acked, yaml);
}

TEST_F(StoreThroughPrismd, LostRedisMakesItsFacetsUnavailableThenRecovers) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_EQ(redis.start(), "");
  // Documents on redis, the rest on sqlite: only the redis facet degrades.
  PrismdProcess prismd(options("store:\n  documents: redis\n  redis:\n    address: \"127.0.0.1:" +
                               std::to_string(redis.port()) + "\"\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  client::Client c = connect(prismd);
  auto put = c.call(kPut, "a=1");
  ASSERT_TRUE(put) << put.error();
  EXPECT_EQ(put->status, v1::STATUS_OK) << put->message;

  redis.stop();
  ASSERT_TRUE(prismd.wait_for_log("event=store_degraded facet=documents backend=redis"))
      << prismd.log();
  auto down = c.call(kPut, "b=2");
  ASSERT_TRUE(down) << down.error();
  EXPECT_EQ(down->status, v1::STATUS_UNAVAILABLE) << down->message;
  const CommandResult status = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                            prismd.endpoint(), "--config",
                                            prismd.config_path().string(), "status"});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("store documents     redis (DEGRADED"), std::string::npos)
      << status.output;
  EXPECT_NE(status.output.find("store leaderboards  sqlite (ok)"), std::string::npos)
      << status.output;

  ASSERT_EQ(redis.restart(), "");
  ASSERT_TRUE(prismd.wait_for_log("event=store_recovered facet=documents backend=redis", 15s))
      << prismd.log();
  auto back = c.call(kGet, "a");
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->status, v1::STATUS_OK) << back->message;
  EXPECT_EQ(back->payload, "a=1@1");
  EXPECT_EQ(prismd.stop(), 0) << prismd.log();
}

// A coroutine that goes on awaiting storage after its reply released the request keeps
// its plugin version loaded: unloading the plugin meanwhile must not unmap the code the
// coroutine resumes in. Redis is paused so the put is held up across the unload.
TEST_F(StoreThroughPrismd, UnloadWhileAStorageCallIsInFlightKeepsTheCodeUntilItCompletes) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_EQ(redis.start(), "");
  PrismdProcess prismd(options("store:\n  backend: redis\n  redis:\n    address: \"127.0.0.1:" +
                               std::to_string(redis.port()) + "\"\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  client::Client c = connect(prismd);
  ASSERT_TRUE(c.call(kPut, "warm=1"));  // connected and serving

  redis.pause();
  auto accepted = c.call(kPutAfterReply, "late=2");
  ASSERT_TRUE(accepted) << accepted.error();
  EXPECT_EQ(accepted->status, v1::STATUS_OK) << accepted->message;
  const CommandResult unload = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                            prismd.endpoint(), "--config",
                                            prismd.config_path().string(), "unload", "store_user"});
  EXPECT_EQ(unload.exit_code, 0) << unload.output;
  redis.resume();

  EXPECT_TRUE(prismd.wait_for_log("stored late after the reply: ok")) << prismd.log();
  auto gone = c.call(kGet, "late");
  ASSERT_TRUE(gone) << gone.error() << "\n" << prismd.log();
  EXPECT_EQ(gone->status, v1::STATUS_INVALID_PACKET);  // unloaded, and prismd still answers
  EXPECT_EQ(prismd.stop(), 0) << prismd.log();
}
#endif  // PRISM_TEST_WITH_REDIS

#ifdef PRISM_TEST_WITH_POSTGRES
TEST_F(StoreThroughPrismd, AcknowledgedWritesSurviveSigkillWithPostgres) {
  std::string why;
  auto postgres = PostgresServer::start(&why);
  if (!postgres && PostgresServer::find_bindir().empty()) GTEST_SKIP() << "PostgreSQL is not installed";
  ASSERT_TRUE(postgres) << why;
  const std::string yaml = "store:\n  backend: postgres\n  postgres:\n    conninfo: \"" +
                           postgres->conninfo(postgres->create_database()) + "\"\n";
  std::map<std::string, std::string> acked;
  {
    PrismdProcess prismd(options(yaml));
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    stream_then_kill(prismd, 2000, acked);
  }
  // PostgreSQL crashes too (no checkpoint): what it acknowledged is in its WAL.
  postgres->stop(/*immediate=*/true);
  ASSERT_TRUE(postgres->restart(&why)) << why;
  ASSERT_GE(acked.size(), 2000u);
  expect_all_present(acked, yaml);
}
#endif  // PRISM_TEST_WITH_POSTGRES

TEST_F(StoreThroughPrismd, UnusableSqliteFileStopsPrismdNamingTheKey) {
  fs::create_directories(dir_ / "not-a-db");
  PrismdProcess prismd(options("store:\n  sqlite:\n    file: " + (dir_ / "not-a-db").string() + "\n"));
  EXPECT_FALSE(prismd.ready());
  EXPECT_NE(prismd.log().find("event=store_failed error=\"store.sqlite.file: " +
                              (dir_ / "not-a-db").string()),
            std::string::npos)
      << prismd.log();
}

TEST_F(StoreThroughPrismd, PostgresWithoutConninfoIsAConfigError) {
  PrismdProcess prismd(options("store:\n  documents: postgres\n"));
  EXPECT_FALSE(prismd.ready());
  EXPECT_NE(prismd.log().find("store.postgres.conninfo: required when a facet uses postgres"),
            std::string::npos)
      << prismd.log();
}

}  // namespace
}  // namespace prism::testing
