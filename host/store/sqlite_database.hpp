// Private to the SQLite backend's sources (sqlite_backend.cpp, sqlite_database.cpp,
// sqlite_leaderboards.cpp): the connection with its cached statements, which only the
// writer thread uses, and the call plumbing every facet shares.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "store/key_range.hpp"
#include "store/sqlite_backend.hpp"

namespace prism::store {
namespace sqlite {

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline Status not_found(std::string message) { return {Code::kNotFound, std::move(message)}; }
inline Status conflict(std::string message) { return {Code::kConflict, std::move(message)}; }
inline Status invalid(std::string message) { return {Code::kInvalidArgument, std::move(message)}; }

}  // namespace sqlite

// A connection and its cached statements, used by one lane's thread only (and by the
// constructor before that thread starts): the writer's, or the reader's (read-only).
class SqliteBackend::Database {
 public:
  // A cached statement in use: binds, steps, and is reset when it goes out of scope.
  class Statement {
   public:
    explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~Statement() {
      if (stmt_ != nullptr) {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
      }
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& text(int index, std::string_view text) {
      // A null pointer would bind SQL NULL, so an empty name still gets a valid pointer.
      sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(),
                        static_cast<int>(text.size()), SQLITE_TRANSIENT);
      return *this;
    }
    Statement& blob(int index, std::string_view bytes) {
      if (bytes.empty()) {
        sqlite3_bind_zeroblob(stmt_, index, 0);
      } else {
        sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                          SQLITE_TRANSIENT);
      }
      return *this;
    }
    Statement& integer(int index, int64_t value) {
      sqlite3_bind_int64(stmt_, index, value);
      return *this;
    }
    // The text, or SQL NULL when there is none (an open end of a key range).
    Statement& text_or_null(int index, const std::optional<std::string>& text) {
      if (text) return this->text(index, *text);
      sqlite3_bind_null(stmt_, index);
      return *this;
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return stmt_ == nullptr ? SQLITE_MISUSE : sqlite3_step(stmt_); }

    int64_t integer_at(int column) const { return sqlite3_column_int64(stmt_, column); }
    std::string bytes_at(int column) const {
      const void* data = sqlite3_column_blob(stmt_, column);
      const int size = sqlite3_column_bytes(stmt_, column);
      return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
    }

   private:
    sqlite3_stmt* stmt_;
  };

  // `read_only`: a reader's connection to a file the writer's has created and migrated.
  static std::unique_ptr<Database> open(const std::filesystem::path& file,
                                        const SqliteOptions& options, std::string& error,
                                        bool read_only = false);

  ~Database();

  Statement prepare(const char* sql);

  // The status for a failed SQLite call: kUnavailable when another connection holds the
  // lock past the busy timeout, kInternal otherwise.
  Status error(std::string_view what) const;

  Status exec(const char* sql, std::string_view what);

  // Runs `body` in one write transaction: committed if it returns ok, rolled back if not.
  // Inside a group (begin_group) it is a savepoint of the group's transaction instead:
  // released if it returns ok, rolled back to (its writes alone undone) if not; durable
  // once end_group commits.
  template <typename Body>
  Status transaction(Body&& body) {
    if (in_group_) {
      // An error that made SQLite roll the whole transaction back (I/O, disk full) has
      // undone the jobs before this one too: end_group reports it to all of them.
      if (sqlite3_get_autocommit(db_)) {
        group_lost_ = true;
        return Status{Code::kUnavailable, "sqlite: the batch's transaction was rolled back"};
      }
      if (!savepoints_) {
        const int64_t before = sqlite3_total_changes64(db_);
        Status status = body();
        if (status.ok()) return status;
        forget_boards();
        // The rows it changed before it failed cannot be undone alone: see begin_group.
        if (sqlite3_total_changes64(db_) != before) group_tainted_ = true;
        if (sqlite3_get_autocommit(db_)) group_lost_ = true;
        return status;
      }
      if (Status s = step_done(prepare("SAVEPOINT job"), "savepoint"); !s.ok()) return s;
      Status status = body();
      if (!status.ok()) forget_boards();
      if (!status.ok() && !sqlite3_get_autocommit(db_)) step_done(prepare("ROLLBACK TO job"), "rollback to");
      if (!sqlite3_get_autocommit(db_)) {
        if (Status s = step_done(prepare("RELEASE job"), "release"); !s.ok() && status.ok()) status = s;
      } else {
        group_lost_ = true;
      }
      return status;
    }
    if (Status s = step_done(prepare("BEGIN IMMEDIATE"), "begin"); !s.ok()) return s;
    Status status = body();
    if (status.ok()) status = step_done(prepare("COMMIT"), "commit");
    if (!status.ok()) forget_boards();
    if (!status.ok() && !sqlite3_get_autocommit(db_)) step_done(prepare("ROLLBACK"), "rollback");
    return status;
  }

  // Runs `body`, several reads, on one snapshot: in a read transaction of its own, or in
  // the transaction already open (the writer's group).
  template <typename Body>
  Status snapshot(Body&& body) {
    if (!sqlite3_get_autocommit(db_)) return body();
    if (Status s = step_done(prepare("BEGIN"), "begin read"); !s.ok()) return s;
    Status status = body();
    step_done(prepare("COMMIT"), "end read");
    return status;
  }

  // Group commit (SqliteBackend::run_lane): the writer's queued calls run in one write
  // transaction, committed once by end_group; a call is answered after that commit, so an
  // OK still means durable. end_group's status is the group's: not OK (the commit failed,
  // or SQLite rolled the transaction back) means no write of the group is kept.
  // With `savepoints`, each call's transaction() is a savepoint, so a call that fails
  // undoes its own writes and no other's. A savepoint copies every page the call then
  // touches into a statement journal: ~10 % of the writer's time in match recordings
  // (docs/performance.md). So a group first runs without them: a call that fails before
  // it changed a row (a conflict, a missing board: the usual failures, checked first)
  // left nothing to undo; one that fails after taints the group (group_tainted()), which
  // the writer then rolls back whole (abandon_group) and runs again with savepoints.
  Status begin_group(bool savepoints);
  Status end_group();
  void abandon_group();
  bool group_tainted() const { return group_tainted_; }
  // The reader's batch (SqliteBackend::run_lane): its calls' reads share one read
  // transaction; a snapshot() inside it runs in it.
  Status begin_reads() { return step_done(prepare("BEGIN"), "begin reads"); }
  void end_reads() { step_done(prepare("COMMIT"), "end reads"); }

  Status step_done(Statement&& stmt, std::string_view what);

  int64_t changes() const { return sqlite3_changes64(db_); }

  int64_t user_version();

  // Calls `hook` after every commit with the WAL's size in pages; it replaces SQLite's own
  // checkpoints on this connection.
  void on_commit(int (*hook)(void* arg, sqlite3* db, const char* name, int pages), void* arg) {
    sqlite3_wal_hook(db_, hook, arg);
  }

  // Copies the WAL into the database file as far as no reader still needs it (PASSIVE:
  // never waits for the writer or a reader). The writer starts the WAL over at its next
  // commit once everything was copied.
  Status checkpoint();

  // ---- documents ----

  Status get_doc(const std::string& collection, const std::string& key, Document& doc);

  // The current version of a document, 0 when absent.
  Status version_of(const std::string& collection, const std::string& key, uint64_t& version);

  static Status check_expected(const std::string& collection, const std::string& key,
                               ExpectedVersion expected, uint64_t current);

  // A delete's condition: the document exists (unless 0 is expected) at `expected`.
  static Status check_delete(const std::string& collection, const std::string& key,
                             ExpectedVersion expected, uint64_t current);

  // Checked, then written.
  Status put_doc(const std::string& collection, const std::string& key, const std::string& value,
                 ExpectedVersion expected, uint64_t& version);
  Status delete_doc(const std::string& collection, const std::string& key,
                    ExpectedVersion expected);
  // Written, unchecked.
  Status write_doc(const std::string& collection, const std::string& key, const std::string& value,
                   uint64_t version);
  Status erase_doc(const std::string& collection, const std::string& key);

  Status list_docs(const std::string& collection, const std::string& prefix,
                   const std::string& after, uint32_t limit, std::vector<Document>& docs);

  // ---- counters ----

  Status get_counter(const std::string& name, int64_t& value);

  Status add_counter(const std::string& name, int64_t delta, int64_t& value);

  // ---- leaderboards ----

  // A board as the file keeps it: its spec, and the number its entries are keyed by
  // (schema v3: the name is stored once, in `boards`, not in every entry and index entry).
  struct Board : BoardSpec {
    int64_t id = 0;
  };

  Status load_board(const std::string& board, Board& spec);

  Status create_board(const BoardSpec& spec);

  Status load_entry(const Board& spec, const std::string& owner, Entry& entry);

  // Fills entry.rank: one more than the number of entries ranking before it.
  Status fill_rank(const Board& spec, Entry& entry);

  // Entries ranked offset+1 .. offset+count.
  Status ranking(const Board& spec, uint64_t offset, uint64_t count, std::vector<Entry>& entries);

  // Applies the board's operator to the owner's entry; `result` is the entry afterwards
  // (without its rank).
  Status submit_entry(const Board& spec, const Entry& submitted, Entry& result);

  // ---- presence ----

  Status get_presence(const std::string& owner, Presence& presence);

  // Deletes expired entries, a bounded number at a time so one write never stalls long.
  Status purge_presence(int64_t now);

  // ---- apply ----

  // A batch's conditions, checked before any of its writes (so that the usual failures
  // leave nothing to undo: begin_group): each document write's expected version against
  // the version the batch's earlier writes leave, and each board submitted to exists.
  // `found[i]`: the version write i finds; `failed`: the index of the write that failed.
  Status check_writes(const std::vector<Write>& writes, std::vector<uint64_t>& found,
                      size_t& failed);
  // Write `write` of a checked batch, whose document it finds at version `found`.
  Status apply_write(const Write& write, uint64_t found, int64_t& result);

 private:
  explicit Database(sqlite3* db) : db_(db) {}

  // Brings the schema to kSchemaVersion, one step per version, each in a transaction.
  Status migrate();
  Status migrate_step(const char* sql, int version);

  // Called when writes are undone: a board read since may be gone again.
  void forget_boards() { boards_.clear(); }

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;  // keyed by the SQL literal
  // Boards read so far. A board never changes once created and is never deleted, so only
  // an undone write (a board created, then rolled back) makes an entry wrong.
  std::unordered_map<std::string, Board> boards_;
  bool in_group_ = false;   // between begin_group and end_group
  bool group_lost_ = false;  // SQLite rolled the group's transaction back meanwhile
  bool savepoints_ = true;   // begin_group's: a savepoint per call
  bool group_tainted_ = false;  // a call failed after changing rows, with no savepoint
};

template <typename T, typename Work>
void SqliteBackend::post(Callback<T> done, Work work, Keys keys, bool read) {
  // The write this read waits for. While that write is queued or running, waiting on the
  // reader thread would hold up every read behind this one until the write's commit (a
  // player's stats read behind the last match's write, say): such a read goes behind the
  // write on the writer's queue instead, which runs in order, and is answered after the
  // commit of its group like the writes around it.
  const uint64_t after = read ? last_write_to(keys) : 0;
  const bool on_reader = read && reader_.db != nullptr && !writes_pending(after);
  Lane& lane = on_reader ? reader_ : writer_;
  enqueue(lane, [this, done = std::move(done), work = std::move(work)](
                    Database* db, bool cancelled) mutable -> Finish {
    Status status;
    T value{};
    if (cancelled) {
      status = Status{Code::kUnavailable, "sqlite: the backend is shutting down"};
    } else if (db == nullptr) {
      status = Status{Code::kUnavailable, open_error_};
    } else {
      status = work(*db, value);
      if (!status.ok()) value = T{};
    }
    // Answered once the group it ran in is committed (or failed with the group's status).
    // `done` stays in the job, which the writer may run again (run_lane).
    return [&done, status = std::move(status), value = std::move(value)](
               const Status* group_failed) mutable {
      if (group_failed != nullptr && status.ok()) return done(*group_failed, T{});
      done(std::move(status), std::move(value));
    };
  }, read ? nullptr : &keys);
}

template <typename Work>
void SqliteBackend::post_done(Done done, Work work, Keys keys) {
  post<std::monostate>(
      [done = std::move(done)](Status status, std::monostate) { done(std::move(status)); },
      [work = std::move(work)](Database& db, std::monostate&) mutable { return work(db); },
      std::move(keys));
}

}  // namespace prism::store
