// The PostgreSQL storage backend: the shared conformance suite, then what only this
// backend has: versioned migrations, connection loss and recovery, and durability of
// acknowledged writes across restarts and crashes of a real throwaway server.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/postgres_backend.hpp"
#include "store/postgres_migrations.hpp"
#include "support/eventually.hpp"
#include "support/postgres_server.hpp"
#include "unit/store_conformance.hpp"

namespace prism::store {
namespace {

using namespace std::chrono_literals;
using conformance::await;
using conformance::await_done;
using conformance::CompletionLatch;
using conformance::Reply;
using testing::PostgresServer;

// Skips every test of the binary when no PostgreSQL server binaries are installed.
class PostgresInstalled : public ::testing::Environment {
 public:
  void SetUp() override {
    if (PostgresServer::find_bindir().empty()) {
      GTEST_SKIP() << "PostgreSQL server binaries (initdb, postgres) not found: install "
                      "postgresql or set PRISM_PG_BINDIR";
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kPostgresInstalled =
    ::testing::AddGlobalTestEnvironment(new PostgresInstalled);

// One server per test process, shared by the tests that do not stop it; each test gets
// its own new database, so every store starts empty and migrates from nothing.
PostgresServer* shared_server() {
  static std::unique_ptr<PostgresServer> server = [] {
    std::string why;
    auto s = PostgresServer::start(&why);
    if (!s) ADD_FAILURE() << "cannot start a PostgreSQL server: " << why;
    return s;
  }();
  return server.get();
}

// Small backoffs so recovery tests finish quickly.
PostgresOptions test_options() {
  PostgresOptions o;
  o.connections = 3;
  o.reconnect_initial = 20ms;
  o.reconnect_max = 200ms;
  o.probe_interval = 50ms;
  return o;
}

std::unique_ptr<PostgresBackend> open_backend(const std::string& conninfo) {
  auto backend = PostgresBackend::open(conninfo, test_options());
  if (!backend) {
    ADD_FAILURE() << backend.error();
    return nullptr;
  }
  return std::move(*backend);
}

std::unique_ptr<Backend> fresh_store() {
  PostgresServer* server = shared_server();
  if (server == nullptr) return nullptr;
  // The first store of a process takes the server's empty initial database: under ctest
  // each test is a process of its own, and CREATE DATABASE costs most of a second.
  static bool initial_taken = false;
  const std::string database = std::exchange(initial_taken, true) ? server->create_database()
                                                                   : std::string("postgres");
  return open_backend(server->conninfo(database));
}

}  // namespace
}  // namespace prism::store

INSTANTIATE_STORE_CONFORMANCE(Postgres, [] { return prism::store::fresh_store(); });

namespace prism::store {
namespace {

Reply<uint64_t> put(Backend& b, std::string collection, std::string key, std::string value,
                    ExpectedVersion expected = std::nullopt) {
  return await<uint64_t>([&](Callback<uint64_t> cb) { b.put(collection, key, value, expected, cb); });
}
Reply<Document> get(Backend& b, std::string collection, std::string key) {
  return await<Document>([&](Callback<Document> cb) { b.get(collection, key, cb); });
}

// Reconnections happen on the backend's own threads: nothing to await but the state.
using prism::testing::eventually;

// A server of the test's own, for tests that stop and restart it.
class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = PostgresServer::start(&why);
    ASSERT_NE(server_, nullptr) << why;
    conninfo_ = server_->conninfo(server_->create_database());
  }
  std::unique_ptr<PostgresServer> server_;
  std::string conninfo_;
};

// ---- migrations ----------------------------------------------------------------------

TEST(PostgresMigrations, AreNumberedFromOneWithoutGaps) {
  int expected = 1;
  for (const postgres::Migration& m : postgres::migrations()) {
    EXPECT_EQ(m.version, expected++);
    EXPECT_FALSE(m.name.empty());
    EXPECT_FALSE(m.sql.empty());
  }
}

TEST(PostgresMigrations, RunOnceAndAreRecorded) {
  PostgresServer* server = shared_server();
  ASSERT_NE(server, nullptr);
  const std::string conninfo = server->conninfo(server->create_database());
  {
    pqxx::connection conn(conninfo);
    auto first = postgres::migrate(conn);
    ASSERT_TRUE(first.ok()) << first.error();
    EXPECT_EQ(first->size(), postgres::migrations().size());
    auto second = postgres::migrate(conn);
    ASSERT_TRUE(second.ok()) << second.error();
    EXPECT_TRUE(second->empty());
  }
  // Opening backends against the migrated database applies nothing more.
  auto a = open_backend(conninfo);
  auto b = open_backend(conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  pqxx::connection conn(conninfo);
  pqxx::read_transaction tx(conn);
  const pqxx::result rows = tx.exec("SELECT version, name FROM schema_migrations ORDER BY version");
  ASSERT_EQ(rows.size(), postgres::migrations().size());
  EXPECT_EQ(rows[0][0].as<int>(), 1);
  for (const char* table : {"docs", "counters", "boards", "entries", "presence"}) {
    EXPECT_EQ(tx.exec_params1("SELECT count(*) FROM pg_tables WHERE tablename = $1", table)[0]
                  .as<int>(),
              1)
        << table;
  }
}

TEST(PostgresMigrations, BackendsStartingTogetherMigrateOnce) {
  PostgresServer* server = shared_server();
  ASSERT_NE(server, nullptr);
  const std::string conninfo = server->conninfo(server->create_database());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      pqxx::connection conn(conninfo);
      if (!postgres::migrate(conn).ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  pqxx::connection conn(conninfo);
  pqxx::read_transaction tx(conn);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<size_t>(),
            postgres::migrations().size());
}

TEST(PostgresMigrations, ASchemaNewerThanTheBuildIsRefused) {
  PostgresServer* server = shared_server();
  ASSERT_NE(server, nullptr);
  const std::string conninfo = server->conninfo(server->create_database());
  ASSERT_NE(open_backend(conninfo), nullptr);
  {
    pqxx::connection conn(conninfo);
    pqxx::work tx(conn);
    tx.exec("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
    tx.commit();
  }
  auto refused = PostgresBackend::open(conninfo, test_options());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("newer"), std::string::npos) << refused.error();
}

// ---- Postgres specifics of the data model -----------------------------------------------

TEST(PostgresBackendData, PrefixesEndingInFfBytesListTheirRange) {
  auto store = fresh_store();
  ASSERT_NE(store, nullptr);
  const std::string ff("\xff", 1);
  for (const std::string& key : {std::string("a") + ff, std::string("a") + ff + ff + "x",
                                 std::string("b"), ff + "z", std::string("a")}) {
    ASSERT_TRUE(put(*store, "c", key, "").status.ok()) << key;
  }
  auto listed = await<std::vector<Document>>(
      [&](Callback<std::vector<Document>> cb) { store->list("c", "a" + ff, "", 10, cb); });
  ASSERT_TRUE(listed.status.ok()) << listed.status.message;
  ASSERT_EQ(listed.value.size(), 2u);
  EXPECT_EQ(listed.value[0].key, "a" + ff);
  EXPECT_EQ(listed.value[1].key, "a" + ff + ff + "x");
  auto all_ff = await<std::vector<Document>>(
      [&](Callback<std::vector<Document>> cb) { store->list("c", ff, "", 10, cb); });
  ASSERT_EQ(all_ff.value.size(), 1u);
  EXPECT_EQ(all_ff.value[0].key, ff + "z");
  EXPECT_EQ(get(*store, "c", "b").value.value, "");
}

TEST(PostgresBackendData, ConcurrentCompareAndSetAdmitsOneWriter) {
  auto store = fresh_store();
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(put(*store, "c", "k", "v1").value, 1u);
  constexpr int kWriters = 12;
  std::atomic<int> ok{0};
  std::atomic<int> conflicts{0};
  CompletionLatch latch(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    store->put("c", "k", "w" + std::to_string(i), 1, [&](Status s, uint64_t) {
      if (s.ok()) ++ok;
      if (s.code == Code::kConflict) ++conflicts;
      latch.arrive();
    });
  }
  ASSERT_TRUE(latch.wait());
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflicts.load(), kWriters - 1);
  EXPECT_EQ(get(*store, "c", "k").value.version, 2u);
}

TEST(PostgresBackendData, CounterOverflowIsInvalidAndLeavesTheCounter) {
  auto store = fresh_store();
  ASSERT_NE(store, nullptr);
  auto add = [&](int64_t delta) {
    return await<int64_t>([&](Callback<int64_t> cb) { store->counter_add("n", delta, cb); });
  };
  ASSERT_EQ(add(std::numeric_limits<int64_t>::max()).value, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(add(1).status.code, Code::kInvalidArgument);
  EXPECT_EQ(add(-1).value, std::numeric_limits<int64_t>::max() - 1);
}

// ---- connection loss -----------------------------------------------------------------

TEST(PostgresBackendConnection, UnreachableServerFailsCallsWithUnavailable) {
  PostgresBackend store("host=127.0.0.1 port=1 user=prism dbname=none connect_timeout=2",
                        test_options());
  EXPECT_FALSE(store.healthy());
  auto got = get(store, "c", "k");
  EXPECT_EQ(got.status.code, Code::kUnavailable) << got.status.message;
  EXPECT_NE(got.status.message.find("postgres"), std::string::npos) << got.status.message;
  auto refused = PostgresBackend::open("host=127.0.0.1 port=1 user=prism connect_timeout=2");
  EXPECT_FALSE(refused.ok());
}

TEST_F(PostgresServerTest, ConnectionLossFailsWithUnavailableThenRecoversAfterRestart) {
  auto store = open_backend(conninfo_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(eventually([&] { return store->healthy(); }));
  ASSERT_TRUE(put(*store, "c", "before", "1").status.ok());

  server_->stop();
  // Every call made while the server is down fails fast with kUnavailable.
  for (int i = 0; i < 10; ++i) {
    auto r = put(*store, "c", "during" + std::to_string(i), "x");
    EXPECT_EQ(r.status.code, Code::kUnavailable) << r.status.message;
  }
  EXPECT_TRUE(eventually([&] { return !store->healthy(); }));

  std::string why;
  ASSERT_TRUE(server_->restart(&why)) << why;
  ASSERT_TRUE(eventually([&] { return store->healthy(); })) << "no reconnect after restart";
  auto after = get(*store, "c", "before");
  ASSERT_TRUE(after.status.ok()) << after.status.message;
  EXPECT_EQ(after.value.value, "1");
  EXPECT_TRUE(put(*store, "c", "after", "2").status.ok());
}

TEST_F(PostgresServerTest, ACrashMidLoadFailsCallsButNothingCrashes) {
  auto store = open_backend(conninfo_);
  ASSERT_NE(store, nullptr);
  constexpr int kCalls = 300;
  std::atomic<int> ok{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> other{0};
  CompletionLatch latch(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    store->counter_add("hits", 1, [&](Status s, int64_t) {
      (s.ok() ? ok : s.code == Code::kUnavailable ? unavailable : other)++;
      latch.arrive();
    });
    if (i == kCalls / 3) server_->stop(/*immediate=*/true);
  }
  ASSERT_TRUE(latch.wait(30s));
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(unavailable.load(), 0);
  std::string why;
  ASSERT_TRUE(server_->restart(&why)) << why;
  ASSERT_TRUE(eventually([&] { return store->healthy(); }));
  // No acknowledged increment was lost (an in-doubt one may have landed too).
  auto hits = await<int64_t>([&](Callback<int64_t> cb) { store->counter_get("hits", cb); });
  ASSERT_TRUE(hits.status.ok()) << hits.status.message;
  EXPECT_GE(hits.value, ok.load());
}

// ---- durability ----------------------------------------------------------------------

void expect_acknowledged_writes_survive(PostgresServer& server, const std::string& conninfo,
                                        bool immediate) {
  constexpr int kDocs = 200;
  {
    auto store = open_backend(conninfo);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(await_done([&](Done cb) { store->board_create({"b", SortOrder::kDescending, Operator::kBest}, cb); }).ok());
    std::atomic<int> acked{0};
    CompletionLatch latch(kDocs + 1);
    for (int i = 0; i < kDocs; ++i) {
      store->put("d", "k" + std::to_string(i), "v" + std::to_string(i), std::nullopt,
                 [&](Status s, uint64_t) {
                   if (s.ok()) ++acked;
                   latch.arrive();
                 });
    }
    Write w;
    w.kind = Write::Kind::kCounterAdd;
    w.counter = "n";
    w.delta = 7;
    Write s;
    s.kind = Write::Kind::kSubmit;
    s.board = "b";
    s.entry.owner = "alice";
    s.entry.score = 42;
    store->apply({w, s}, [&](Status st, std::vector<int64_t>) {
      if (st.ok()) ++acked;
      latch.arrive();
    });
    ASSERT_TRUE(latch.wait(30s));
    ASSERT_EQ(acked.load(), kDocs + 1);
    // Acknowledged means durable: stop right after the last acknowledgement.
    server.stop(immediate);
  }
  std::string why;
  ASSERT_TRUE(server.restart(&why)) << why;
  auto store = open_backend(conninfo);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < kDocs; ++i) {
    auto got = get(*store, "d", "k" + std::to_string(i));
    ASSERT_TRUE(got.status.ok()) << i << ": " << got.status.message;
    EXPECT_EQ(got.value.value, "v" + std::to_string(i));
  }
  EXPECT_EQ(await<int64_t>([&](Callback<int64_t> cb) { store->counter_get("n", cb); }).value, 7);
  auto alice = await<Entry>([&](Callback<Entry> cb) { store->board_rank("b", "alice", cb); });
  ASSERT_TRUE(alice.status.ok()) << alice.status.message;
  EXPECT_EQ(alice.value.score, 42);
}

TEST_F(PostgresServerTest, AcknowledgedWritesSurviveARestart) {
  expect_acknowledged_writes_survive(*server_, conninfo_, /*immediate=*/false);
}

TEST_F(PostgresServerTest, AcknowledgedWritesSurviveAnImmediateStop) {
  expect_acknowledged_writes_survive(*server_, conninfo_, /*immediate=*/true);
}

// ---- shutdown ------------------------------------------------------------------------

TEST(PostgresBackendShutdown, QueuedCallsCompleteOnceWithOkOrUnavailable) {
  PostgresServer* server = shared_server();
  ASSERT_NE(server, nullptr);
  const std::string conninfo = server->conninfo(server->create_database());
  constexpr int kCalls = 500;
  std::atomic<int> completions{0};
  std::atomic<int> unexpected{0};
  {
    PostgresOptions o = test_options();
    o.connections = 1;
    auto backend = PostgresBackend::open(conninfo, o);
    ASSERT_TRUE(backend.ok()) << backend.error();
    for (int i = 0; i < kCalls; ++i) {
      (*backend)->counter_add("n", 1, [&](Status s, int64_t) {
        if (!s.ok() && s.code != Code::kUnavailable) ++unexpected;
        ++completions;
      });
    }
  }
  EXPECT_EQ(completions.load(), kCalls);
  EXPECT_EQ(unexpected.load(), 0);
}

}  // namespace
}  // namespace prism::store
