// The SQLite storage backend: the conformance suite every backend passes, plus what only
// an embedded file has to show: data survives reopening and a killed process, and the
// schema version is recorded.
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <set>
#include <string>

#include "store/sqlite_backend.hpp"
#include "store_conformance.hpp"
#include "temp_dir_test.hpp"

namespace {

using prism::store::Backend;
using prism::store::SqliteBackend;

// A directory per process for the conformance suite's files, each store in a new file.
// Never destroyed, so that the atexit cleanup can still read it.
const std::filesystem::path& conformance_dir() {
  static const std::filesystem::path* const dir = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "prism-store-sqlite-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    auto* path = new std::filesystem::path(pattern);
    std::atexit([] { std::filesystem::remove_all(conformance_dir()); });
    return path;
  }();
  return *dir;
}

std::unique_ptr<Backend> make_sqlite_backend() {
  static int next = 0;
  return std::make_unique<SqliteBackend>(conformance_dir() /
                                         ("store-" + std::to_string(next++) + ".db"));
}

}  // namespace

INSTANTIATE_STORE_CONFORMANCE(Sqlite, [] { return make_sqlite_backend(); });

namespace prism::store {
namespace {

using conformance::await;
using conformance::await_done;
using namespace std::chrono_literals;

class SqliteBackendTest : public prism::testing::TempDirTest {
 protected:
  void TearDown() override {
    if (other_ != nullptr) sqlite3_close(other_);
    TempDirTest::TearDown();
  }
  std::filesystem::path file() const { return dir_ / "prism.db"; }

  // Another connection takes the file's write lock (BEGIN IMMEDIATE) and holds it until
  // release_write_lock(): the backend's writer waits for it (up to its busy timeout).
  void hold_write_lock() {
    ASSERT_EQ(sqlite3_open(file().c_str(), &other_), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  void release_write_lock() {
    ASSERT_EQ(sqlite3_exec(other_, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other_);
    other_ = nullptr;
  }

 private:
  sqlite3* other_ = nullptr;
};

TEST_F(SqliteBackendTest, DataPersistsAcrossReopening) {
  {
    SqliteBackend store(file());
    ASSERT_TRUE(store.healthy());
    ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("users", "alice", "v1", 0, cb); })
                    .status.ok());
    ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("users", "alice", "v2", 1, cb); })
                    .status.ok());
    ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("hits", 7, cb); }).status.ok());
    ASSERT_TRUE(await_done([&](Done cb) {
                  store.board_create({"weekly", SortOrder::kAscending, Operator::kSet}, cb);
                }).ok());
    Entry entry;
    entry.owner = "alice";
    entry.score = 12;
    ASSERT_TRUE(await<Entry>([&](auto cb) { store.board_submit("weekly", entry, cb); }).status.ok());
    ASSERT_TRUE(await_done([&](Done cb) { store.presence_set("alice", "lobby", 60s, cb); }).ok());
  }
  SqliteBackend store(file());
  auto doc = await<Document>([&](auto cb) { store.get("users", "alice", cb); });
  ASSERT_TRUE(doc.status.ok()) << doc.status.message;
  EXPECT_EQ(doc.value.value, "v2");
  EXPECT_EQ(doc.value.version, 2u);
  EXPECT_EQ(await<int64_t>([&](auto cb) { store.counter_get("hits", cb); }).value, 7);
  EXPECT_EQ(await<Entry>([&](auto cb) { store.board_rank("weekly", "alice", cb); }).value.score,
            12);
  PRISM_EXPECT_CODE(await_done([&](Done cb) {
                      store.board_create({"weekly", SortOrder::kDescending, Operator::kSet}, cb);
                    }),
                    Code::kConflict);
  EXPECT_EQ(await<Presence>([&](auto cb) { store.presence_get("alice", cb); }).value.status,
            "lobby");
}

TEST_F(SqliteBackendTest, EveryAcknowledgedWriteSurvivesAKilledProcess) {
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: pipelines puts and reports each acknowledged one's index on the pipe,
    // until it is killed.
    close(acks[0]);
    SqliteBackend store(file());
    for (uint32_t i = 0;; ++i) {
      store.put("durable", "k" + std::to_string(i), "v" + std::to_string(i), 0,
                [fd = acks[1], i](Status status, uint64_t) {
                  if (status.ok() && ::write(fd, &i, sizeof i) != sizeof i) _exit(3);
                });
      if (i % 64 == 63) {
        // Keep the queue short so the kill lands amid writes, not amid a backlog.
        await<int64_t>([&](auto cb) { store.counter_add("sync", 1, cb); }, 60s);
      }
    }
  }
  close(acks[1]);
  std::set<uint32_t> acknowledged;
  uint32_t index = 0;
  while (acknowledged.size() < 500 && read(acks[0], &index, sizeof index) == sizeof index) {
    acknowledged.insert(index);
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the child exited on its own: " << wstatus;
  // Acknowledgements still in the pipe were also acknowledged before the kill.
  while (read(acks[0], &index, sizeof index) == sizeof index) acknowledged.insert(index);
  close(acks[0]);
  ASSERT_GE(acknowledged.size(), 500u);

  SqliteBackend store(file());
  ASSERT_TRUE(store.healthy());
  size_t missing = 0;
  for (uint32_t i : acknowledged) {
    auto doc = await<Document>([&](auto cb) { store.get("durable", "k" + std::to_string(i), cb); });
    if (!doc.status.ok() || doc.value.value != "v" + std::to_string(i)) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged writes";
}

TEST_F(SqliteBackendTest, TheSchemaVersionIsRecordedInTheFile) {
  { SqliteBackend store(file()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), SqliteBackend::kSchemaVersion);
  sqlite3_finalize(stmt);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteBackendTest, AFileFromANewerSchemaIsRefused) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  SqliteBackend store(file());
  EXPECT_FALSE(store.healthy());
  auto got = await<int64_t>([&](auto cb) { store.counter_get("c", cb); });
  PRISM_EXPECT_CODE(got.status, Code::kUnavailable);
  EXPECT_NE(got.status.message.find("99"), std::string::npos) << got.status.message;
}

TEST_F(SqliteBackendTest, AnUnopenableFileIsUnhealthyAndCallsAreUnavailable) {
  SqliteBackend store(dir_ / "missing-dir" / "prism.db");
  EXPECT_FALSE(store.healthy());
  PRISM_EXPECT_CODE(await<Document>([&](auto cb) { store.get("c", "k", cb); }).status,
                    Code::kUnavailable);
}

// Group commit: calls queued while the writer waits share one transaction and one commit;
// one that fails (a compare-and-set conflict) undoes its own write only. The writer is
// held back by another connection holding the write lock, so the calls are queued
// together whatever the scheduling.
TEST_F(SqliteBackendTest, CallsQueuedTogetherShareOneCommitAndAFailedOneUndoesOnlyItsOwn) {
  SqliteBackend store(file());
  ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("docs", "taken", "first", 0, cb); }).status.ok());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  constexpr int kPuts = 50;
  std::atomic<int> ok{0}, conflict{0}, other_status{0}, answered{0};
  auto count = [&](Status status, uint64_t) {
    if (status.ok()) {
      ++ok;
    } else if (status.code == Code::kConflict) {
      ++conflict;
    } else {
      ++other_status;
    }
    ++answered;
  };
  for (int i = 0; i < kPuts / 2; ++i) store.put("docs", "k" + std::to_string(i), "v", 0, count);
  store.put("docs", "taken", "second", 0, count);  // must be absent: a conflict
  for (int i = kPuts / 2; i < kPuts; ++i) store.put("docs", "k" + std::to_string(i), "v", 0, count);
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  // A last write answered means every earlier one was (the writer answers in queue order).
  ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("sync", 1, cb); }).status.ok());
  EXPECT_EQ(answered.load(), kPuts + 1);
  EXPECT_EQ(ok.load(), kPuts);
  EXPECT_EQ(conflict.load(), 1);
  EXPECT_EQ(other_status.load(), 0);
  EXPECT_GE(store.groups_committed(), 1u) << "the queued calls did not share a commit";
  // The conflict is found before the call writes anything: nothing to undo, no second run.
  EXPECT_EQ(store.groups_rerun(), 0u);
  EXPECT_EQ(await<Document>([&](auto cb) { store.get("docs", "taken", cb); }).value.value, "first");
  for (int i = 0; i < kPuts; ++i) {
    EXPECT_TRUE(await<Document>([&](auto cb) { store.get("docs", "k" + std::to_string(i), cb); }).status.ok()) << i;
  }
}

// A group runs without a savepoint per call (Database::begin_group). A call that fails
// after it wrote (a batch's counter overflows after its put) is still undone alone: the
// group is rolled back and run again, each call in a savepoint, before anyone is answered.
TEST_F(SqliteBackendTest, ACallThatFailsAfterWritingIsUndoneAloneAndTheOthersKept) {
  SqliteBackend store(file());
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("full", kMax, cb); }).status.ok());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  constexpr int kPuts = 10;
  std::atomic<int> ok{0}, answered{0};
  auto count = [&](Status status, uint64_t) {
    if (status.ok()) ++ok;
    ++answered;
  };
  for (int i = 0; i < kPuts / 2; ++i) store.put("docs", "k" + std::to_string(i), "v", 0, count);
  Write fresh;
  fresh.collection = "docs";
  fresh.key = "fresh";
  fresh.value = "written, then undone";
  Write overflow;
  overflow.kind = Write::Kind::kCounterAdd;
  overflow.counter = "full";
  overflow.delta = 1;
  std::promise<Status> batch;
  store.apply({fresh, overflow}, [&](Status status, std::vector<int64_t>) { batch.set_value(status); });
  for (int i = kPuts / 2; i < kPuts; ++i) store.put("docs", "k" + std::to_string(i), "v", 0, count);
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  PRISM_EXPECT_CODE(batch.get_future().get(), Code::kInvalidArgument);
  ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("sync", 1, cb); }).status.ok());
  EXPECT_EQ(answered.load(), kPuts);
  EXPECT_EQ(ok.load(), kPuts);
  EXPECT_GE(store.groups_rerun(), 1u) << "the failed call was not in a group";
  PRISM_EXPECT_CODE(await<Document>([&](auto cb) { store.get("docs", "fresh", cb); }).status,
                    Code::kNotFound);
  EXPECT_EQ(await<int64_t>([&](auto cb) { store.counter_get("full", cb); }).value, kMax);
  for (int i = 0; i < kPuts; ++i) {
    auto doc = await<Document>([&](auto cb) { store.get("docs", "k" + std::to_string(i), cb); });
    ASSERT_TRUE(doc.status.ok()) << i;
    EXPECT_EQ(doc.value.version, 1u) << "k" << i << " was written twice";
  }
}

// A batch's expected versions are checked before any of its writes, so a conflict in its
// last write (a match recording's stats, say) leaves nothing to undo: its group commits
// without a second run.
TEST_F(SqliteBackendTest, AConflictAnywhereInABatchIsFoundBeforeItWrites) {
  SqliteBackend store(file());
  ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("docs", "taken", "first", 0, cb); }).status.ok());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  std::atomic<int> ok{0};
  auto count = [&](Status status, uint64_t) { ok += status.ok(); };
  store.put("docs", "before", "v", 0, count);
  Write fresh;
  fresh.collection = "docs";
  fresh.key = "fresh";
  fresh.value = "never written";
  fresh.expected = 0;
  Write again = fresh;  // expects what the first write of the batch leaves: passes
  again.expected = 1;
  Write taken = fresh;
  taken.key = "taken";
  std::promise<std::pair<Status, std::vector<int64_t>>> batch;
  store.apply({fresh, again, taken},
              [&](Status status, std::vector<int64_t> r) { batch.set_value({status, r}); });
  store.put("docs", "after", "v", 0, count);
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  const auto [status, results] = batch.get_future().get();
  PRISM_EXPECT_CODE(status, Code::kConflict);
  EXPECT_NE(status.message.find("write 2"), std::string::npos) << status.message;
  ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("sync", 1, cb); }).status.ok());
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(store.groups_rerun(), 0u);
  PRISM_EXPECT_CODE(await<Document>([&](auto cb) { store.get("docs", "fresh", cb); }).status,
                    Code::kNotFound);
}

// Reads run on their own connection, yet a read sees every write queued before it to what
// it reads (as one queue would: a compare-and-set loop re-reads and must find the write
// that beat it), even while the writer is held back by another connection's lock.
TEST_F(SqliteBackendTest, AReadSeesTheWritesQueuedBeforeIt) {
  SqliteBackend store(file());
  ASSERT_TRUE(store.healthy());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  std::atomic<bool> put_ok{false};
  store.put("docs", "late", "written", 0, [&](Status status, uint64_t) { put_ok = status.ok(); });
  std::promise<std::pair<Status, Document>> read;
  store.get("docs", "late", [&](Status status, Document doc) { read.set_value({status, doc}); });
  auto answer = read.get_future();
  // The read waits for the write, which waits for the lock.
  EXPECT_EQ(answer.wait_for(50ms), std::future_status::timeout);
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  const auto [status, doc] = answer.get();
  EXPECT_TRUE(put_ok.load());
  ASSERT_TRUE(status.ok()) << status.message;
  EXPECT_EQ(doc.value, "written");
}

// ... and only those: a read of another document runs beside a queued write instead of
// waiting for a commit it has no part in.
TEST_F(SqliteBackendTest, AReadOfAnotherDocumentDoesNotWaitForQueuedWrites) {
  SqliteBackend store(file());
  ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("docs", "settled", "old", 0, cb); }).status.ok());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  std::atomic<bool> put_answered{false};
  store.put("docs", "late", "written", 0, [&](Status, uint64_t) { put_answered = true; });
  const auto read = await<Document>([&](auto cb) { store.get("docs", "settled", cb); });
  ASSERT_TRUE(read.status.ok()) << read.status.message;
  EXPECT_EQ(read.value.value, "old");
  EXPECT_FALSE(put_answered.load()) << "the write could not commit while the lock was held";
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  EXPECT_EQ(await<Document>([&](auto cb) { store.get("docs", "late", cb); }).value.value, "written");
  EXPECT_TRUE(put_answered.load());
}

// A read that waits for a write holds up no other read: it waits behind the write on the
// writer's queue, not on the reader thread, where every read behind it would wait too.
TEST_F(SqliteBackendTest, AReadWaitingForAWriteHoldsUpNoOtherRead) {
  SqliteBackend store(file());
  ASSERT_TRUE(await<uint64_t>([&](auto cb) { store.put("docs", "settled", "old", 0, cb); }).status.ok());
  ASSERT_NO_FATAL_FAILURE(hold_write_lock());
  store.put("docs", "late", "written", 0, [](Status, uint64_t) {});
  std::promise<Document> waiting;
  store.get("docs", "late", [&](Status, Document doc) { waiting.set_value(doc); });
  std::promise<Document> other;
  store.get("docs", "settled", [&](Status, Document doc) { other.set_value(doc); });
  auto other_answer = other.get_future();
  // Waiting on the reader thread, this would wait for the lock released below.
  ASSERT_EQ(other_answer.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(other_answer.get().value, "old");
  auto waiting_answer = waiting.get_future();
  EXPECT_EQ(waiting_answer.wait_for(0ms), std::future_status::timeout);
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  EXPECT_EQ(waiting_answer.get().value, "written");
}

// A write counts as answered before its completion runs: a read its caller sends on, even
// from inside the completion, goes to the reader and does not queue behind later writes
// (here held back by another connection's lock).
TEST_F(SqliteBackendTest, AReadSentFromAWritesCompletionDoesNotWaitForLaterWrites) {
  SqliteBackend store(file());
  std::promise<Document> read;
  store.put("docs", "settled", "old", 0, [&](Status, uint64_t) {
    hold_write_lock();
    store.put("docs", "late", "written", 0, [](Status, uint64_t) {});
    store.get("docs", "settled", [&](Status, Document doc) { read.set_value(doc); });
  });
  auto answer = read.get_future();
  const bool answered = answer.wait_for(10s) == std::future_status::ready;
  ASSERT_NO_FATAL_FAILURE(release_write_lock());
  ASSERT_TRUE(answered) << "the read waited for the held write";
  EXPECT_EQ(answer.get().value, "old");
}

// A file of schema version 1 (one rank index per sort order) is migrated through every
// version (one rank index per entry, then entries keyed by their board's number) with every
// ranking unchanged, on a descending and an ascending board; a board made afterwards gets a
// number of its own.
TEST_F(SqliteBackendTest, AVersion1FileIsMigratedWithItsRankingsIntact) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    const char* v1 = R"sql(
      CREATE TABLE boards(board TEXT NOT NULL PRIMARY KEY, ord INTEGER NOT NULL,
        op INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE entries(board TEXT NOT NULL, owner TEXT NOT NULL, score INTEGER NOT NULL,
        subscore INTEGER NOT NULL, metadata BLOB NOT NULL, submitted_ms INTEGER NOT NULL,
        PRIMARY KEY(board, owner)) WITHOUT ROWID;
      CREATE INDEX entries_rank_desc ON entries(board, score DESC, subscore DESC, submitted_ms, owner);
      CREATE INDEX entries_rank_asc ON entries(board, score, subscore, submitted_ms, owner);
      INSERT INTO boards VALUES('high', 0, 1), ('low', 1, 1);
      INSERT INTO entries VALUES
        ('high', 'a', 20, 0, x'', 1), ('high', 'b', 30, 0, x'', 2), ('high', 'c', 20, 5, x'', 3),
        ('high', 'd', -9223372036854775808, 0, x'', 4),
        ('low', 'a', 20, 0, x'', 1), ('low', 'b', 30, 0, x'', 2), ('low', 'c', 20, 5, x'', 3);
      PRAGMA user_version = 1;
    )sql";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  SqliteBackend store(file());
  ASSERT_TRUE(store.healthy()) << store.open_error();
  auto owners = [&](const std::string& board) {
    std::string out;
    for (const Entry& e : await<std::vector<Entry>>([&](auto cb) { store.board_top(board, 10, cb); }).value) {
      out += e.owner + std::to_string(e.rank);
    }
    return out;
  };
  EXPECT_EQ(owners("high"), "b1c2a3d4");
  EXPECT_EQ(owners("low"), "a1c2b3");
  // New submissions rank among the migrated entries.
  Entry entry;
  entry.owner = "e";
  entry.score = 25;
  EXPECT_EQ(await<Entry>([&](auto cb) { store.board_submit("high", entry, cb); }).value.rank, 2u);
  EXPECT_EQ(await<Entry>([&](auto cb) { store.board_submit("low", entry, cb); }).value.rank, 3u);
  EXPECT_EQ(await<Entry>([&](auto cb) { store.board_rank("high", "d", cb); }).value.rank, 5u);
  const BoardSpec mid{"mid", SortOrder::kDescending, Operator::kBest};
  ASSERT_TRUE(await_done([&](Done cb) { store.board_create(mid, cb); }).ok());
  entry.owner = "m";
  EXPECT_EQ(await<Entry>([&](auto cb) { store.board_submit("mid", entry, cb); }).value.rank, 1u);
  EXPECT_EQ(owners("mid"), "m1");
  EXPECT_EQ(owners("high"), "b1e2c3a4d5");
  EXPECT_EQ(owners("low"), "a1c2e3b4");
}

// The WAL is copied into the database file while writes go on, and starts over: it does
// not keep everything written (a checkpoint beside a busy writer never catches up with it
// alone; the writer finishes what the checkpointer copied).
TEST_F(SqliteBackendTest, TheWalStartsOverWhileWritesGoOn) {
  SqliteOptions options;
  options.checkpoint_pages = 1000;
  SqliteBackend store(file(), options);
  const std::string value(4000, 'x');  // about a page each
  constexpr int kPuts = 12000;         // three times the WAL size at which the writer steps in
  std::atomic<int> ok{0};
  for (int i = 0; i < kPuts; ++i) {
    store.put("bulk", "k" + std::to_string(i), value, std::nullopt, [&](Status status, uint64_t) {
      if (status.ok()) ++ok;
    });
  }
  ASSERT_TRUE(await<int64_t>([&](auto cb) { store.counter_add("sync", 1, cb); }).status.ok());
  EXPECT_EQ(ok.load(), kPuts);
  EXPECT_GT(std::filesystem::file_size(file()), 16u << 20) << "nothing was checkpointed";
  // The WAL file keeps its largest size: far less than what was written.
  std::filesystem::path wal = file();
  wal += "-wal";
  EXPECT_LT(std::filesystem::file_size(wal), uint64_t{kPuts} * 4096 / 2) << "the WAL never started over";
}

TEST_F(SqliteBackendTest, DestroyingTheBackendCompletesQueuedCallsWithUnavailable) {
  std::atomic<int> ok{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> other{0};
  constexpr int kCalls = 2000;
  {
    SqliteBackend store(file());
    for (int i = 0; i < kCalls; ++i) {
      store.counter_add("c", 1, [&](Status status, int64_t) {
        if (status.ok()) {
          ++ok;
        } else if (status.code == Code::kUnavailable) {
          ++unavailable;
        } else {
          ++other;
        }
      });
    }
  }
  EXPECT_EQ(ok + unavailable, kCalls);
  EXPECT_EQ(other.load(), 0);
  SqliteBackend store(file());
  EXPECT_EQ(await<int64_t>([&](auto cb) { store.counter_get("c", cb); }).value, ok.load());
}

}  // namespace
}  // namespace prism::store
