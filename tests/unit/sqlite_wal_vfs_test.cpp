// The embedded store's SQLite VFS (host/store/sqlite_wal_vfs.cpp): a transaction's WAL
// frames reach the file in a few writes, and all of them are in the file when COMMIT
// returns, as another connection, through SQLite's default VFS, reads them. The second
// part depends on how SQLite writes a commit frame (header, then page), so it checks
// that assumption against the SQLite prismd is built with.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "store/sqlite_wal_vfs.hpp"
#include "temp_dir_test.hpp"

namespace prism::store {
namespace {

constexpr int kRows = 200;
constexpr int kValueBytes = 3000;  // one row per 4 KiB page, about

class SqliteWalVfsTest : public prism::testing::TempDirTest {
 protected:
  void TearDown() override {
    for (sqlite3* db : {writer_, reader_}) sqlite3_close(db);
    TempDirTest::TearDown();
  }
  std::string file() const { return (dir_ / "wal.db").string(); }

  // The store's way: through the VFS, WAL mode, no automatic checkpoint (so the WAL keeps
  // every frame for the reader to find there).
  void open_writer() {
    ASSERT_NE(sqlite_wal_vfs(), nullptr);
    ASSERT_EQ(sqlite3_open_v2(file().c_str(), &writer_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              sqlite_wal_vfs()),
              SQLITE_OK);
    exec(writer_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                  " CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL);");
  }
  void insert_rows(int first) {
    exec(writer_, "BEGIN");
    for (int i = first; i < first + kRows; ++i) {
      exec(writer_, "INSERT INTO t VALUES(" + std::to_string(i) + ", zeroblob(" +
                        std::to_string(kValueBytes) + "))");
    }
    exec(writer_, "COMMIT");
  }
  // What a connection through the default VFS reads: rows and their bytes.
  std::pair<int64_t, int64_t> read_back() {
    if (reader_ == nullptr) {
      EXPECT_EQ(sqlite3_open_v2(file().c_str(), &reader_, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    }
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(reader_, "SELECT count(*), sum(length(v)) FROM t", -1, &stmt, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sqlite3_errmsg(reader_);
    std::pair<int64_t, int64_t> out{sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1)};
    sqlite3_finalize(stmt);
    return out;
  }
  static void exec(sqlite3* db, const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  }

  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
};

TEST_F(SqliteWalVfsTest, ATransactionsFramesReachTheFileInAFewWrites) {
  open_writer();
  const SqliteWalWrites before = sqlite_wal_writes();
  insert_rows(0);
  const SqliteWalWrites after = sqlite_wal_writes();
  // Two writes per frame asked for (header and page), ~200 frames: ~800 KiB in 120 KiB parts.
  EXPECT_GE(after.asked - before.asked, 2u * kRows);
  EXPECT_LE(after.made - before.made, 10u);
}

TEST_F(SqliteWalVfsTest, EveryCommittedFrameIsInTheFileWhenCommitReturns) {
  open_writer();
  for (int round = 0; round < 3; ++round) {
    insert_rows(round * kRows);
    // The writer has made no call since COMMIT returned, so whatever it buffered and did
    // not write would be missing here.
    const auto [rows, bytes] = read_back();
    EXPECT_EQ(rows, (round + 1) * kRows);
    EXPECT_EQ(bytes, int64_t{(round + 1) * kRows} * kValueBytes);
    // Whole frames only: the 32-byte header and frames of 24 + 4096 bytes.
    EXPECT_EQ(std::filesystem::file_size(file() + "-wal") % (24 + 4096), 32u);
  }
}

}  // namespace
}  // namespace prism::store
