// The SQLite connection (sqlite_database.hpp): opening and configuring it, the schema and
// its migrations, statements, and the SQL of documents, counters, presence and batches.
#include "store/sqlite_database.hpp"

#include <string>

#include "store/sqlite_wal_vfs.hpp"

namespace prism::store {
namespace {

using namespace sqlite;

// Schema version 1. Names are TEXT compared with the BINARY collation (byte order);
// values and metadata are BLOBs. Each order of ranking has its own index so that top,
// page and rank walk an index in its natural direction.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS docs(
  collection TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY(collection, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters(
  name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boards(
  board TEXT NOT NULL PRIMARY KEY, ord INTEGER NOT NULL, op INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries(
  board TEXT NOT NULL, owner TEXT NOT NULL, score INTEGER NOT NULL, subscore INTEGER NOT NULL,
  metadata BLOB NOT NULL, submitted_ms INTEGER NOT NULL,
  PRIMARY KEY(board, owner)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_rank_desc
  ON entries(board, score DESC, subscore DESC, submitted_ms, owner);
CREATE INDEX IF NOT EXISTS entries_rank_asc
  ON entries(board, score, subscore, submitted_ms, owner);
CREATE TABLE IF NOT EXISTS presence(
  owner TEXT NOT NULL PRIMARY KEY, status TEXT NOT NULL, expires_at_ms INTEGER NOT NULL)
  WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS presence_expiry ON presence(expires_at_ms);
)sql";

// Schema version 2: one rank index per entry instead of one per sort order. rank1 and rank2
// are score and subscore as the board orders them (~x, which reverses int64 order without
// overflow, on a descending board), so one ascending index serves both orders and a
// submission updates two B-trees instead of three. SortOrder::kDescending is 0.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE entries ADD COLUMN rank1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN rank2 INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET
  rank1 = CASE WHEN (SELECT ord FROM boards WHERE boards.board = entries.board) = 0
               THEN ~score ELSE score END,
  rank2 = CASE WHEN (SELECT ord FROM boards WHERE boards.board = entries.board) = 0
               THEN ~subscore ELSE subscore END;
DROP INDEX IF EXISTS entries_rank_desc;
DROP INDEX IF EXISTS entries_rank_asc;
CREATE INDEX entries_rank ON entries(board, rank1, rank2, submitted_ms, owner);
)sql";

// Schema version 3: entries are keyed by their board's number instead of its name, and the
// rank index carries the metadata, so it covers a ranking window.
// - A board's name (~25 bytes for practice's) was repeated in every entry and in its index
//   entry; the number is one or two. Shorter entries mean fewer pages for a submission to
//   dirty and shorter keys to compare, where the writer spends its time.
// - Score and subscore are rank1 and rank2 read back (~ is its own inverse), so a window
//   of N entries is one walk of the index instead of N more seeks into the table: those
//   seeks were most of a top-10 read's cost (docs/performance.md).
// Boards are numbered in name order; a new board takes the next number.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE boards ADD COLUMN id INTEGER;
UPDATE boards SET id = (SELECT COUNT(*) FROM boards AS b WHERE b.board <= boards.board);
CREATE UNIQUE INDEX boards_id ON boards(id);
CREATE TABLE board_entries(
  board_id INTEGER NOT NULL, owner TEXT NOT NULL, score INTEGER NOT NULL,
  subscore INTEGER NOT NULL, metadata BLOB NOT NULL, submitted_ms INTEGER NOT NULL,
  rank1 INTEGER NOT NULL, rank2 INTEGER NOT NULL,
  PRIMARY KEY(board_id, owner)) WITHOUT ROWID;
INSERT INTO board_entries
  SELECT boards.id, owner, score, subscore, metadata, submitted_ms, rank1, rank2
  FROM entries JOIN boards USING (board);
DROP TABLE entries;
ALTER TABLE board_entries RENAME TO entries;
CREATE INDEX entries_rank ON entries(board_id, rank1, rank2, submitted_ms, owner, metadata);
)sql";

}  // namespace

std::unique_ptr<SqliteBackend::Database> SqliteBackend::Database::open(
    const std::filesystem::path& file, const SqliteOptions& options, std::string& error,
    bool read_only) {
  // Before SQLite's first use in the process: without memory statistics, an allocation
  // inside SQLite takes no global mutex (each connection is used by one thread, NOMUTEX).
  // Too late (SQLITE_MISUSE) only if something else used SQLite first; nothing is lost.
  static const bool configured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  (void)configured;
  sqlite3* handle = nullptr;
  const int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(file.c_str(), &handle, flags | SQLITE_OPEN_NOMUTEX, sqlite_wal_vfs());
  auto db = std::unique_ptr<Database>(new Database(handle));
  if (rc != SQLITE_OK) {
    error = "sqlite: cannot open " + file.string() + ": " +
            (handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc));
    return nullptr;
  }
  sqlite3_extended_result_codes(handle, 1);
  sqlite3_busy_timeout(handle, static_cast<int>(options.busy_timeout.count()));
  if (read_only) {
    // WAL mode is the file's (the writer set it); the reader only sizes its cache.
    if (Status s = db->exec("PRAGMA query_only=1; PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
                            " PRAGMA temp_store=MEMORY;",
                            "configure the reader");
        !s.ok()) {
      error = s.message + " (" + file.string() + ")";
      return nullptr;
    }
    return db;
  }
  const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                              (options.synchronous_full ? "FULL" : "NORMAL") +
                              "; PRAGMA foreign_keys=OFF;"
                              // Keep the hot pages in the cache and map the file, instead
                              // of a pread through the kernel for every page the 2 MiB
                              // default misses.
                              " PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
                              " PRAGMA temp_store=MEMORY;"
                              // The WAL file shrinks back to this after a checkpoint
                              // let it start over.
                              " PRAGMA journal_size_limit=67108864;";
  if (Status s = db->exec(pragmas.c_str(), "configure"); !s.ok()) {
    error = s.message + " (" + file.string() + ")";
    return nullptr;
  }
  if (Status s = db->migrate(); !s.ok()) {
    error = s.message + " (" + file.string() + ")";
    return nullptr;
  }
  return db;
}

SqliteBackend::Database::Statement SqliteBackend::Database::prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Statement(it->second);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return Statement(nullptr);
  }
  cache_.emplace(sql, stmt);
  return Statement(stmt);
}

// The status for a failed SQLite call: kUnavailable when another connection holds the
// lock past the busy timeout, kInternal otherwise.
Status SqliteBackend::Database::error(std::string_view what) const {
  const int code = sqlite3_errcode(db_) & 0xff;
  const Code mapped =
      code == SQLITE_BUSY || code == SQLITE_LOCKED ? Code::kUnavailable : Code::kInternal;
  return {mapped, "sqlite: " + std::string(what) + ": " + sqlite3_errmsg(db_)};
}

Status SqliteBackend::Database::begin_group(bool savepoints) {
  if (Status s = step_done(prepare("BEGIN IMMEDIATE"), "begin group"); !s.ok()) return s;
  in_group_ = true;
  group_lost_ = false;
  group_tainted_ = false;
  savepoints_ = savepoints;
  return {};
}

void SqliteBackend::Database::abandon_group() {
  in_group_ = false;
  savepoints_ = true;
  forget_boards();
  if (!sqlite3_get_autocommit(db_)) step_done(prepare("ROLLBACK"), "abandon group");
}

Status SqliteBackend::Database::end_group() {
  in_group_ = false;
  savepoints_ = true;
  if (group_lost_ || sqlite3_get_autocommit(db_)) {
    forget_boards();
    return Status{Code::kUnavailable, "sqlite: the batch's transaction was rolled back"};
  }
  Status status = step_done(prepare("COMMIT"), "commit group");
  if (!status.ok()) forget_boards();
  if (!status.ok() && !sqlite3_get_autocommit(db_)) step_done(prepare("ROLLBACK"), "rollback group");
  return status;
}

Status SqliteBackend::Database::checkpoint() {
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) != SQLITE_OK) {
    return error("checkpoint");
  }
  return {};
}

Status SqliteBackend::Database::exec(const char* sql, std::string_view what) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return error(what);
  return {};
}

Status SqliteBackend::Database::step_done(Statement&& stmt, std::string_view what) {
  if (stmt.step() != SQLITE_DONE) return error(what);
  return {};
}

Status SqliteBackend::Database::get_doc(const std::string& collection, const std::string& key,
                                        Document& doc) {
  Statement stmt = prepare("SELECT value, version FROM docs WHERE collection = ?1 AND key = ?2");
  stmt.text(1, collection).text(2, key);
  const int rc = stmt.step();
  if (rc == SQLITE_DONE) return not_found("document " + collection + "/" + key + " not found");
  if (rc != SQLITE_ROW) return error("get document");
  doc.collection = collection;
  doc.key = key;
  doc.value = stmt.bytes_at(0);
  doc.version = static_cast<uint64_t>(stmt.integer_at(1));
  return {};
}

// The current version of a document, 0 when absent.
Status SqliteBackend::Database::version_of(const std::string& collection, const std::string& key,
                                           uint64_t& version) {
  Statement stmt = prepare("SELECT version FROM docs WHERE collection = ?1 AND key = ?2");
  stmt.text(1, collection).text(2, key);
  const int rc = stmt.step();
  if (rc == SQLITE_DONE) {
    version = 0;
    return {};
  }
  if (rc != SQLITE_ROW) return error("read document version");
  version = static_cast<uint64_t>(stmt.integer_at(0));
  return {};
}

Status SqliteBackend::Database::check_expected(const std::string& collection,
                                               const std::string& key, ExpectedVersion expected,
                                               uint64_t current) {
  if (!expected || *expected == current) return {};
  if (*expected == 0) return conflict("document " + collection + "/" + key + " exists");
  return conflict("document " + collection + "/" + key + " is at version " +
                  std::to_string(current) + ", not " + std::to_string(*expected));
}

Status SqliteBackend::Database::check_delete(const std::string& collection,
                                             const std::string& key, ExpectedVersion expected,
                                             uint64_t current) {
  if (current == 0 && (!expected || *expected == 0)) {
    return not_found("document " + collection + "/" + key + " not found");
  }
  return check_expected(collection, key, expected, current);
}

Status SqliteBackend::Database::put_doc(const std::string& collection, const std::string& key,
                                        const std::string& value, ExpectedVersion expected,
                                        uint64_t& version) {
  uint64_t current = 0;
  if (Status s = version_of(collection, key, current); !s.ok()) return s;
  if (Status s = check_expected(collection, key, expected, current); !s.ok()) return s;
  version = current + 1;
  return write_doc(collection, key, value, version);
}

Status SqliteBackend::Database::write_doc(const std::string& collection, const std::string& key,
                                          const std::string& value, uint64_t version) {
  Statement stmt = prepare(
      "INSERT INTO docs(collection, key, value, version) VALUES(?1, ?2, ?3, ?4)"
      " ON CONFLICT(collection, key) DO UPDATE SET value = excluded.value,"
      " version = excluded.version");
  stmt.text(1, collection).text(2, key).blob(3, value).integer(4, static_cast<int64_t>(version));
  return step_done(std::move(stmt), "put document");
}

Status SqliteBackend::Database::delete_doc(const std::string& collection, const std::string& key,
                                           ExpectedVersion expected) {
  uint64_t current = 0;
  if (Status s = version_of(collection, key, current); !s.ok()) return s;
  if (Status s = check_delete(collection, key, expected, current); !s.ok()) return s;
  return erase_doc(collection, key);
}

Status SqliteBackend::Database::erase_doc(const std::string& collection, const std::string& key) {
  Statement stmt = prepare("DELETE FROM docs WHERE collection = ?1 AND key = ?2");
  stmt.text(1, collection).text(2, key);
  return step_done(std::move(stmt), "delete document");
}

Status SqliteBackend::Database::list_docs(const std::string& collection, const std::string& prefix,
                                          const std::string& after, uint32_t limit,
                                          std::vector<Document>& docs) {
  Statement stmt = prepare(
      "SELECT key, value, version FROM docs WHERE collection = ?1 AND key >= ?2"
      " AND (?3 IS NULL OR key < ?3) AND key > ?4 ORDER BY key LIMIT ?5");
  stmt.text(1, collection).text(2, prefix).text_or_null(3, prefix_end(prefix)).text(4, after)
      .integer(5, limit);
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) {
    docs.push_back(Document{collection, stmt.bytes_at(0), stmt.bytes_at(1),
                            static_cast<uint64_t>(stmt.integer_at(2))});
  }
  return rc == SQLITE_DONE ? Status{} : error("list documents");
}

Status SqliteBackend::Database::get_counter(const std::string& name, int64_t& value) {
  Statement stmt = prepare("SELECT value FROM counters WHERE name = ?1");
  stmt.text(1, name);
  const int rc = stmt.step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return error("get counter");
  value = rc == SQLITE_ROW ? stmt.integer_at(0) : 0;
  return {};
}

Status SqliteBackend::Database::add_counter(const std::string& name, int64_t delta,
                                            int64_t& value) {
  int64_t current = 0;
  if (Status s = get_counter(name, current); !s.ok()) return s;
  if (__builtin_add_overflow(current, delta, &value)) {
    return invalid("counter " + name + " would overflow");
  }
  Statement stmt = prepare(
      "INSERT INTO counters(name, value) VALUES(?1, ?2)"
      " ON CONFLICT(name) DO UPDATE SET value = excluded.value");
  stmt.text(1, name).integer(2, value);
  return step_done(std::move(stmt), "add to counter");
}

Status SqliteBackend::Database::get_presence(const std::string& owner, Presence& presence) {
  Statement stmt =
      prepare("SELECT status, expires_at_ms FROM presence WHERE owner = ?1 AND expires_at_ms > ?2");
  stmt.text(1, owner).integer(2, now_ms());
  const int rc = stmt.step();
  if (rc == SQLITE_DONE) return not_found("no presence for " + owner);
  if (rc != SQLITE_ROW) return error("get presence");
  presence.owner = owner;
  presence.status = stmt.bytes_at(0);
  presence.expires_at_ms = stmt.integer_at(1);
  return {};
}

// Deletes expired entries, a bounded number at a time so one write never stalls long.
Status SqliteBackend::Database::purge_presence(int64_t now) {
  Statement stmt = prepare(
      "DELETE FROM presence WHERE owner IN"
      " (SELECT owner FROM presence WHERE expires_at_ms <= ?1 LIMIT 256)");
  stmt.integer(1, now);
  return step_done(std::move(stmt), "purge presence");
}

Status SqliteBackend::Database::check_writes(const std::vector<Write>& writes,
                                             std::vector<uint64_t>& found, size_t& failed) {
  auto is_doc_write = [](const Write& w) {
    return w.kind == Write::Kind::kPut || w.kind == Write::Kind::kDelete;
  };
  found.assign(writes.size(), 0);
  for (size_t i = 0; i < writes.size(); ++i) {
    const Write& w = writes[i];
    failed = i;
    if (w.kind == Write::Kind::kSubmit) {
      Board spec;
      if (Status s = load_board(w.board, spec); !s.ok()) return s;
      continue;
    }
    if (!is_doc_write(w)) continue;
    // The version the batch's last earlier write of this document leaves, else the stored
    // one. Batches are a few writes: looking back costs less than a map.
    size_t earlier = i;
    while (earlier > 0 && !(is_doc_write(writes[earlier - 1]) &&
                            writes[earlier - 1].collection == w.collection &&
                            writes[earlier - 1].key == w.key)) {
      --earlier;
    }
    uint64_t current = 0;
    if (earlier > 0) {
      if (writes[earlier - 1].kind == Write::Kind::kPut) current = found[earlier - 1] + 1;
    } else if (Status s = version_of(w.collection, w.key, current); !s.ok()) {
      return s;
    }
    found[i] = current;
    Status s = w.kind == Write::Kind::kPut ? check_expected(w.collection, w.key, w.expected, current)
                                           : check_delete(w.collection, w.key, w.expected, current);
    if (!s.ok()) return s;
  }
  return {};
}

Status SqliteBackend::Database::apply_write(const Write& write, uint64_t found, int64_t& result) {
  result = 0;
  switch (write.kind) {
    case Write::Kind::kPut:
      result = static_cast<int64_t>(found + 1);
      return write_doc(write.collection, write.key, write.value, found + 1);
    case Write::Kind::kDelete:
      return erase_doc(write.collection, write.key);
    case Write::Kind::kCounterAdd:
      return add_counter(write.counter, write.delta, result);
    case Write::Kind::kSubmit: {
      Board spec;
      if (Status s = load_board(write.board, spec); !s.ok()) return s;
      Entry entry;
      return submit_entry(spec, write.entry, entry);
    }
  }
  return invalid("unknown write kind");
}

SqliteBackend::Database::~Database() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

int64_t SqliteBackend::Database::user_version() {
  Statement stmt = prepare("PRAGMA user_version");
  return stmt.step() == SQLITE_ROW ? stmt.integer_at(0) : -1;
}

Status SqliteBackend::Database::migrate_step(const char* sql, int version) {
  if (Status s = exec("BEGIN IMMEDIATE", "migrate"); !s.ok()) return s;
  const std::string v = std::to_string(version);
  Status s = exec(sql, "create schema v" + v);
  if (s.ok()) s = exec(("PRAGMA user_version = " + v).c_str(), "record schema version");
  if (s.ok()) s = exec("COMMIT", "commit schema v" + v);
  if (!s.ok()) exec("ROLLBACK", "roll back schema");
  return s;
}

Status SqliteBackend::Database::migrate() {
  const int64_t version = user_version();
  if (version < 0) return error("read schema version");
  if (version > kSchemaVersion) {
    return {Code::kInternal, "sqlite: schema version " + std::to_string(version) +
                                 " is newer than this prismd's " + std::to_string(kSchemaVersion)};
  }
  if (version < 1) {
    if (Status s = migrate_step(kSchemaV1, 1); !s.ok()) return s;
  }
  if (version < 2) {
    if (Status s = migrate_step(kSchemaV2, 2); !s.ok()) return s;
  }
  if (version < 3) {
    if (Status s = migrate_step(kSchemaV3, 3); !s.ok()) return s;
  }
  return {};
}

}  // namespace prism::store
