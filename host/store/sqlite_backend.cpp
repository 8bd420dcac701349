// The embedded SQLite backend (sqlite_backend.hpp): the schema and its migrations, the
// writer thread's queue, and each facet's SQL.
#include "store/sqlite_backend.hpp"

#include <sqlite3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>
#include <variant>

#include "store/validate.hpp"

namespace prism::store {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status not_found(std::string message) { return {Code::kNotFound, std::move(message)}; }
Status conflict(std::string message) { return {Code::kConflict, std::move(message)}; }
Status invalid(std::string message) { return {Code::kInvalidArgument, std::move(message)}; }

// The smallest string greater than every string starting with `prefix` (nullopt: none),
// so that a prefix match is the index range [prefix, end).
std::optional<std::string> prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::nullopt;
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

// Whether (score, subscore) ranks before (other_score, other_subscore) on a board.
bool ranks_before(SortOrder order, int64_t score, int64_t subscore, int64_t other_score,
                  int64_t other_subscore) {
  if (order == SortOrder::kDescending) {
    return score > other_score || (score == other_score && subscore > other_subscore);
  }
  return score < other_score || (score == other_score && subscore < other_subscore);
}

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

// Ranking SQL per sort order: rows that rank before (?2 score, ?3 subscore, ?4 time,
// ?5 owner), and a window of the ranking.
struct RankingSql {
  const char* better_count;
  const char* range;
};
constexpr RankingSql kDescendingSql{
    "SELECT (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score > ?2)"
    " + (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score = ?2 AND subscore > ?3)"
    " + (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score = ?2 AND subscore = ?3"
    "    AND (submitted_ms, owner) < (?4, ?5))",
    "SELECT owner, score, subscore, metadata, submitted_ms FROM entries WHERE board = ?1"
    " ORDER BY score DESC, subscore DESC, submitted_ms, owner LIMIT ?2 OFFSET ?3"};
constexpr RankingSql kAscendingSql{
    "SELECT (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score < ?2)"
    " + (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score = ?2 AND subscore < ?3)"
    " + (SELECT COUNT(*) FROM entries WHERE board = ?1 AND score = ?2 AND subscore = ?3"
    "    AND (submitted_ms, owner) < (?4, ?5))",
    "SELECT owner, score, subscore, metadata, submitted_ms FROM entries WHERE board = ?1"
    " ORDER BY score, subscore, submitted_ms, owner LIMIT ?2 OFFSET ?3"};

const RankingSql& ranking_sql(SortOrder order) {
  return order == SortOrder::kDescending ? kDescendingSql : kAscendingSql;
}

}  // namespace

// The connection and its cached statements. Used only by the writer thread (and by the
// constructor before that thread starts).
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
    Statement& null(int index) {
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

  static std::unique_ptr<Database> open(const std::filesystem::path& file,
                                        const SqliteOptions& options, std::string& error) {
    sqlite3* handle = nullptr;
    const int rc = sqlite3_open_v2(file.c_str(), &handle,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    auto db = std::unique_ptr<Database>(new Database(handle));
    if (rc != SQLITE_OK) {
      error = "sqlite: cannot open " + file.string() + ": " +
              (handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc));
      return nullptr;
    }
    sqlite3_extended_result_codes(handle, 1);
    sqlite3_busy_timeout(handle, static_cast<int>(options.busy_timeout.count()));
    const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                                (options.synchronous_full ? "FULL" : "NORMAL") +
                                "; PRAGMA foreign_keys=OFF;"
                                // The one connection is the only reader too: keep the hot
                                // pages in its cache and map the file, instead of a pread
                                // through the kernel for every page the 2 MiB default misses.
                                " PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
                                " PRAGMA temp_store=MEMORY;";
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

  ~Database() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  Statement prepare(const char* sql) {
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
  Status error(std::string_view what) const {
    const int code = sqlite3_errcode(db_) & 0xff;
    const Code mapped = code == SQLITE_BUSY || code == SQLITE_LOCKED ? Code::kUnavailable
                                                                      : Code::kInternal;
    return {mapped, "sqlite: " + std::string(what) + ": " + sqlite3_errmsg(db_)};
  }

  Status exec(const char* sql, std::string_view what) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return error(what);
    return {};
  }

  // Runs `body` in one write transaction: committed if it returns ok, rolled back if not.
  template <typename Body>
  Status transaction(Body&& body) {
    if (Status s = step_done(prepare("BEGIN IMMEDIATE"), "begin"); !s.ok()) return s;
    Status status = body();
    if (status.ok()) status = step_done(prepare("COMMIT"), "commit");
    if (!status.ok() && !sqlite3_get_autocommit(db_)) step_done(prepare("ROLLBACK"), "rollback");
    return status;
  }

  Status step_done(Statement&& stmt, std::string_view what) {
    if (stmt.step() != SQLITE_DONE) return error(what);
    return {};
  }

  int64_t changes() const { return sqlite3_changes64(db_); }

  int64_t user_version() {
    Statement stmt = prepare("PRAGMA user_version");
    return stmt.step() == SQLITE_ROW ? stmt.integer_at(0) : -1;
  }

  // ---- documents ----

  Status get_doc(const std::string& collection, const std::string& key, Document& doc) {
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
  Status version_of(const std::string& collection, const std::string& key, uint64_t& version) {
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

  static Status check_expected(const std::string& collection, const std::string& key,
                               ExpectedVersion expected, uint64_t current) {
    if (!expected || *expected == current) return {};
    if (*expected == 0) return conflict("document " + collection + "/" + key + " exists");
    return conflict("document " + collection + "/" + key + " is at version " +
                    std::to_string(current) + ", not " + std::to_string(*expected));
  }

  Status put_doc(const std::string& collection, const std::string& key, const std::string& value,
                 ExpectedVersion expected, uint64_t& version) {
    uint64_t current = 0;
    if (Status s = version_of(collection, key, current); !s.ok()) return s;
    if (Status s = check_expected(collection, key, expected, current); !s.ok()) return s;
    version = current + 1;
    Statement stmt = prepare(
        "INSERT INTO docs(collection, key, value, version) VALUES(?1, ?2, ?3, ?4)"
        " ON CONFLICT(collection, key) DO UPDATE SET value = excluded.value,"
        " version = excluded.version");
    stmt.text(1, collection).text(2, key).blob(3, value).integer(4, static_cast<int64_t>(version));
    return step_done(std::move(stmt), "put document");
  }

  Status delete_doc(const std::string& collection, const std::string& key,
                    ExpectedVersion expected) {
    uint64_t current = 0;
    if (Status s = version_of(collection, key, current); !s.ok()) return s;
    if (current == 0 && (!expected || *expected == 0)) {
      return not_found("document " + collection + "/" + key + " not found");
    }
    if (Status s = check_expected(collection, key, expected, current); !s.ok()) return s;
    Statement stmt = prepare("DELETE FROM docs WHERE collection = ?1 AND key = ?2");
    stmt.text(1, collection).text(2, key);
    return step_done(std::move(stmt), "delete document");
  }

  Status list_docs(const std::string& collection, const std::string& prefix,
                   const std::string& after, uint32_t limit, std::vector<Document>& docs) {
    Statement stmt = prepare(
        "SELECT key, value, version FROM docs WHERE collection = ?1 AND key >= ?2"
        " AND (?3 IS NULL OR key < ?3) AND key > ?4 ORDER BY key LIMIT ?5");
    stmt.text(1, collection).text(2, prefix).text(4, after).integer(5, limit);
    if (auto end = prefix_end(prefix)) {
      stmt.text(3, *end);
    } else {
      stmt.null(3);
    }
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      docs.push_back(Document{collection, stmt.bytes_at(0), stmt.bytes_at(1),
                              static_cast<uint64_t>(stmt.integer_at(2))});
    }
    return rc == SQLITE_DONE ? Status{} : error("list documents");
  }

  // ---- counters ----

  Status get_counter(const std::string& name, int64_t& value) {
    Statement stmt = prepare("SELECT value FROM counters WHERE name = ?1");
    stmt.text(1, name);
    const int rc = stmt.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return error("get counter");
    value = rc == SQLITE_ROW ? stmt.integer_at(0) : 0;
    return {};
  }

  Status add_counter(const std::string& name, int64_t delta, int64_t& value) {
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

  // ---- leaderboards ----

  Status load_board(const std::string& board, BoardSpec& spec) {
    Statement stmt = prepare("SELECT ord, op FROM boards WHERE board = ?1");
    stmt.text(1, board);
    const int rc = stmt.step();
    if (rc == SQLITE_DONE) return not_found("board " + board + " not found");
    if (rc != SQLITE_ROW) return error("read board");
    spec.board = board;
    spec.order = static_cast<SortOrder>(stmt.integer_at(0));
    spec.op = static_cast<Operator>(stmt.integer_at(1));
    return {};
  }

  Status create_board(const BoardSpec& spec) {
    BoardSpec existing;
    Status s = load_board(spec.board, existing);
    if (s.ok()) {
      if (existing.order == spec.order && existing.op == spec.op) return {};
      return conflict("board " + spec.board + " exists with a different order or operator");
    }
    if (s.code != Code::kNotFound) return s;
    Statement stmt = prepare("INSERT INTO boards(board, ord, op) VALUES(?1, ?2, ?3)");
    stmt.text(1, spec.board)
        .integer(2, static_cast<int64_t>(spec.order))
        .integer(3, static_cast<int64_t>(spec.op));
    return step_done(std::move(stmt), "create board");
  }

  Status load_entry(const std::string& board, const std::string& owner, Entry& entry) {
    Statement stmt = prepare(
        "SELECT score, subscore, metadata, submitted_ms FROM entries"
        " WHERE board = ?1 AND owner = ?2");
    stmt.text(1, board).text(2, owner);
    const int rc = stmt.step();
    if (rc == SQLITE_DONE) return not_found("owner " + owner + " not on board " + board);
    if (rc != SQLITE_ROW) return error("read entry");
    entry.owner = owner;
    entry.score = stmt.integer_at(0);
    entry.subscore = stmt.integer_at(1);
    entry.metadata = stmt.bytes_at(2);
    entry.submitted_ms = stmt.integer_at(3);
    entry.rank = 0;
    return {};
  }

  // Fills entry.rank: one more than the number of entries ranking before it.
  Status fill_rank(const BoardSpec& spec, Entry& entry) {
    Statement stmt = prepare(ranking_sql(spec.order).better_count);
    stmt.text(1, spec.board)
        .integer(2, entry.score)
        .integer(3, entry.subscore)
        .integer(4, entry.submitted_ms)
        .text(5, entry.owner);
    if (stmt.step() != SQLITE_ROW) return error("rank entry");
    entry.rank = static_cast<uint64_t>(stmt.integer_at(0)) + 1;
    return {};
  }

  // Entries ranked offset+1 .. offset+count.
  Status ranking(const BoardSpec& spec, uint64_t offset, uint64_t count,
                 std::vector<Entry>& entries) {
    constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
    Statement stmt = prepare(ranking_sql(spec.order).range);
    stmt.text(1, spec.board)
        .integer(2, static_cast<int64_t>(std::min(count, kMax)))
        .integer(3, static_cast<int64_t>(std::min(offset, kMax)));
    int rc;
    uint64_t rank = offset;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      Entry entry;
      entry.owner = stmt.bytes_at(0);
      entry.score = stmt.integer_at(1);
      entry.subscore = stmt.integer_at(2);
      entry.metadata = stmt.bytes_at(3);
      entry.submitted_ms = stmt.integer_at(4);
      entry.rank = ++rank;
      entries.push_back(std::move(entry));
    }
    return rc == SQLITE_DONE ? Status{} : error("read ranking");
  }

  // Applies the board's operator to the owner's entry; `result` is the entry afterwards
  // (without its rank).
  Status submit_entry(const BoardSpec& spec, const Entry& submitted, Entry& result) {
    Entry old;
    Status found = load_entry(spec.board, submitted.owner, old);
    if (!found.ok() && found.code != Code::kNotFound) return found;
    const int64_t now = now_ms();
    result = submitted;
    result.rank = 0;
    result.submitted_ms = now;
    if (found.ok()) {
      switch (spec.op) {
        case Operator::kBest:
          if (!ranks_before(spec.order, submitted.score, submitted.subscore, old.score,
                            old.subscore)) {
            result = old;
            return {};
          }
          break;
        case Operator::kSet:
          break;
        case Operator::kIncrement:
          if (__builtin_add_overflow(old.score, submitted.score, &result.score) ||
              __builtin_add_overflow(old.subscore, submitted.subscore, &result.subscore)) {
            return invalid("score of " + submitted.owner + " on board " + spec.board +
                           " would overflow");
          }
          break;
      }
    }
    Statement stmt = prepare(
        "INSERT OR REPLACE INTO entries(board, owner, score, subscore, metadata, submitted_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    stmt.text(1, spec.board)
        .text(2, result.owner)
        .integer(3, result.score)
        .integer(4, result.subscore)
        .blob(5, result.metadata)
        .integer(6, result.submitted_ms);
    return step_done(std::move(stmt), "submit entry");
  }

  // ---- presence ----

  Status get_presence(const std::string& owner, Presence& presence) {
    Statement stmt = prepare(
        "SELECT status, expires_at_ms FROM presence WHERE owner = ?1 AND expires_at_ms > ?2");
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
  Status purge_presence(int64_t now) {
    Statement stmt = prepare(
        "DELETE FROM presence WHERE owner IN"
        " (SELECT owner FROM presence WHERE expires_at_ms <= ?1 LIMIT 256)");
    stmt.integer(1, now);
    return step_done(std::move(stmt), "purge presence");
  }

  // ---- apply ----

  Status apply_write(const Write& write, int64_t& result) {
    result = 0;
    switch (write.kind) {
      case Write::Kind::kPut: {
        uint64_t version = 0;
        Status s = put_doc(write.collection, write.key, write.value, write.expected, version);
        result = static_cast<int64_t>(version);
        return s;
      }
      case Write::Kind::kDelete:
        return delete_doc(write.collection, write.key, write.expected);
      case Write::Kind::kCounterAdd:
        return add_counter(write.counter, write.delta, result);
      case Write::Kind::kSubmit: {
        BoardSpec spec;
        if (Status s = load_board(write.board, spec); !s.ok()) return s;
        Entry entry;
        return submit_entry(spec, write.entry, entry);
      }
    }
    return invalid("unknown write kind");
  }

 private:
  explicit Database(sqlite3* db) : db_(db) {}

  // Brings the schema to kSchemaVersion, one step per version, each in a transaction.
  Status migrate() {
    const int64_t version = user_version();
    if (version < 0) return error("read schema version");
    if (version > kSchemaVersion) {
      return {Code::kInternal, "sqlite: schema version " + std::to_string(version) +
                                   " is newer than this prismd's " +
                                   std::to_string(kSchemaVersion)};
    }
    if (version < 1) {
      if (Status s = exec("BEGIN IMMEDIATE", "migrate"); !s.ok()) return s;
      Status s = exec(kSchemaV1, "create schema v1");
      if (s.ok()) s = exec("PRAGMA user_version = 1", "record schema version");
      if (s.ok()) s = exec("COMMIT", "commit schema v1");
      if (!s.ok()) {
        exec("ROLLBACK", "roll back schema");
        return s;
      }
    }
    return {};
  }

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;  // keyed by the SQL literal
};

// ---- the writer thread -------------------------------------------------------------------

SqliteBackend::SqliteBackend(std::filesystem::path file, SqliteOptions options) {
  db_ = Database::open(file, options, open_error_);
  if (db_ == nullptr) {
    spdlog::error("event=store_open_failed backend=sqlite error=\"{}\"", open_error_);
  } else {
    healthy_.store(true, std::memory_order_relaxed);
    spdlog::info("event=store_opened backend=sqlite file={} synchronous={}", file.string(),
                 options.synchronous_full ? "full" : "normal");
  }
  writer_ = std::thread([this] { run_writer(); });
}

SqliteBackend::~SqliteBackend() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

void SqliteBackend::enqueue(Job job) {
  {
    std::unique_lock lock(mu_);
    if (!closed_) {
      queue_.push_back(std::move(job));
      lock.unlock();
      wake_.notify_one();
      return;
    }
  }
  // Only a call racing with the destructor gets here; complete it rather than drop it.
  job(true);
}

void SqliteBackend::run_writer() {
  auto invoke = [](Job& job, bool cancelled) {
    try {
      job(cancelled);
    } catch (const std::exception& e) {
      spdlog::error("event=store_completion_threw backend=sqlite error=\"{}\"", e.what());
    } catch (...) {
      spdlog::error("event=store_completion_threw backend=sqlite error=unknown");
    }
  };
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    invoke(job, false);
  }
  // Shutting down: complete what is queued (and whatever those completions queue).
  for (;;) {
    Job job;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) {
        closed_ = true;
        break;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    invoke(job, true);
  }
  db_.reset();
}

template <typename T, typename Work>
void SqliteBackend::post(Callback<T> done, Work work) {
  enqueue([this, done = std::move(done), work = std::move(work)](bool cancelled) mutable {
    if (cancelled) {
      done(Status{Code::kUnavailable, "sqlite: the backend is shutting down"}, T{});
      return;
    }
    if (db_ == nullptr) {
      done(Status{Code::kUnavailable, open_error_}, T{});
      return;
    }
    T value{};
    Status status = work(*db_, value);
    if (!status.ok()) value = T{};
    done(std::move(status), std::move(value));
  });
}

template <typename Work>
void SqliteBackend::post_done(Done done, Work work) {
  post<std::monostate>(
      [done = std::move(done)](Status status, std::monostate) { done(std::move(status)); },
      [work = std::move(work)](Database& db, std::monostate&) mutable { return work(db); });
}

// ---- documents ---------------------------------------------------------------------------

void SqliteBackend::get(std::string collection, std::string key, Callback<Document> done) {
  post<Document>(std::move(done), [collection = std::move(collection), key = std::move(key)](
                                      Database& db, Document& doc) {
    if (Status s = check_name("collection", collection); !s.ok()) return s;
    if (Status s = check_name("key", key); !s.ok()) return s;
    return db.get_doc(collection, key, doc);
  });
}

void SqliteBackend::put(std::string collection, std::string key, std::string value,
                        ExpectedVersion expected, Callback<uint64_t> done) {
  post<uint64_t>(std::move(done), [collection = std::move(collection), key = std::move(key),
                                   value = std::move(value),
                                   expected](Database& db, uint64_t& version) {
    if (Status s = check_name("collection", collection); !s.ok()) return s;
    if (Status s = check_name("key", key); !s.ok()) return s;
    if (Status s = check_value(value); !s.ok()) return s;
    return db.transaction([&] { return db.put_doc(collection, key, value, expected, version); });
  });
}

void SqliteBackend::remove(std::string collection, std::string key, ExpectedVersion expected,
                           Done done) {
  post_done(std::move(done), [collection = std::move(collection), key = std::move(key),
                              expected](Database& db) {
    if (Status s = check_name("collection", collection); !s.ok()) return s;
    if (Status s = check_name("key", key); !s.ok()) return s;
    return db.transaction([&] { return db.delete_doc(collection, key, expected); });
  });
}

void SqliteBackend::list(std::string collection, std::string prefix, std::string after,
                         uint32_t limit, Callback<std::vector<Document>> done) {
  post<std::vector<Document>>(
      std::move(done),
      [collection = std::move(collection), prefix = std::move(prefix), after = std::move(after),
       limit](Database& db, std::vector<Document>& docs) {
        if (Status s = check_name("collection", collection); !s.ok()) return s;
        if (Status s = check_prefix("prefix", prefix); !s.ok()) return s;
        if (Status s = check_prefix("after", after); !s.ok()) return s;
        if (Status s = check_limit(limit); !s.ok()) return s;
        return db.list_docs(collection, prefix, after, limit, docs);
      });
}

// ---- counters ----------------------------------------------------------------------------

void SqliteBackend::counter_add(std::string counter, int64_t delta, Callback<int64_t> done) {
  post<int64_t>(std::move(done),
                [counter = std::move(counter), delta](Database& db, int64_t& value) {
                  if (Status s = check_name("counter", counter); !s.ok()) return s;
                  return db.transaction([&] { return db.add_counter(counter, delta, value); });
                });
}

void SqliteBackend::counter_get(std::string counter, Callback<int64_t> done) {
  post<int64_t>(std::move(done), [counter = std::move(counter)](Database& db, int64_t& value) {
    if (Status s = check_name("counter", counter); !s.ok()) return s;
    return db.get_counter(counter, value);
  });
}

// ---- leaderboards ------------------------------------------------------------------------

void SqliteBackend::board_create(BoardSpec spec, Done done) {
  post_done(std::move(done), [spec = std::move(spec)](Database& db) {
    if (Status s = check_spec(spec); !s.ok()) return s;
    return db.transaction([&] { return db.create_board(spec); });
  });
}

void SqliteBackend::board_submit(std::string board, Entry entry, Callback<Entry> done) {
  post<Entry>(std::move(done), [board = std::move(board), entry = std::move(entry)](
                                   Database& db, Entry& result) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_entry(entry); !s.ok()) return s;
    BoardSpec spec;
    return db.transaction([&] {
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      if (Status s = db.submit_entry(spec, entry, result); !s.ok()) return s;
      return db.fill_rank(spec, result);
    });
  });
}

void SqliteBackend::board_top(std::string board, uint32_t limit,
                              Callback<std::vector<Entry>> done) {
  board_page(std::move(board), 0, limit, std::move(done));
}

void SqliteBackend::board_page(std::string board, uint64_t after_rank, uint32_t limit,
                               Callback<std::vector<Entry>> done) {
  post<std::vector<Entry>>(std::move(done), [board = std::move(board), after_rank, limit](
                                                Database& db, std::vector<Entry>& entries) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_limit(limit); !s.ok()) return s;
    BoardSpec spec;
    if (Status s = db.load_board(board, spec); !s.ok()) return s;
    return db.ranking(spec, after_rank, limit, entries);
  });
}

void SqliteBackend::board_around(std::string board, std::string owner, uint32_t limit,
                                 Callback<std::vector<Entry>> done) {
  post<std::vector<Entry>>(
      std::move(done), [board = std::move(board), owner = std::move(owner), limit](
                           Database& db, std::vector<Entry>& entries) {
        if (Status s = check_name("board", board); !s.ok()) return s;
        if (Status s = check_name("owner", owner); !s.ok()) return s;
        if (Status s = check_limit(limit); !s.ok()) return s;
        BoardSpec spec;
        if (Status s = db.load_board(board, spec); !s.ok()) return s;
        Entry entry;
        if (Status s = db.load_entry(board, owner, entry); !s.ok()) return s;
        if (Status s = db.fill_rank(spec, entry); !s.ok()) return s;
        const uint64_t before = std::min<uint64_t>(limit, entry.rank - 1);
        return db.ranking(spec, entry.rank - 1 - before, before + 1 + limit, entries);
      });
}

void SqliteBackend::board_rank(std::string board, std::string owner, Callback<Entry> done) {
  post<Entry>(std::move(done), [board = std::move(board), owner = std::move(owner)](
                                   Database& db, Entry& entry) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    BoardSpec spec;
    if (Status s = db.load_board(board, spec); !s.ok()) return s;
    if (Status s = db.load_entry(board, owner, entry); !s.ok()) return s;
    return db.fill_rank(spec, entry);
  });
}

void SqliteBackend::board_remove(std::string board, std::string owner, Done done) {
  post_done(std::move(done), [board = std::move(board), owner = std::move(owner)](Database& db) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    return db.transaction([&] {
      BoardSpec spec;
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      auto stmt = db.prepare("DELETE FROM entries WHERE board = ?1 AND owner = ?2");
      stmt.text(1, board).text(2, owner);
      if (Status s = db.step_done(std::move(stmt), "remove entry"); !s.ok()) return s;
      if (db.changes() == 0) return not_found("owner " + owner + " not on board " + board);
      return Status{};
    });
  });
}

void SqliteBackend::board_reset(std::string board, Done done) {
  post_done(std::move(done), [board = std::move(board)](Database& db) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    return db.transaction([&] {
      BoardSpec spec;
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      auto stmt = db.prepare("DELETE FROM entries WHERE board = ?1");
      stmt.text(1, board);
      return db.step_done(std::move(stmt), "reset board");
    });
  });
}

// ---- presence ----------------------------------------------------------------------------

void SqliteBackend::presence_set(std::string owner, std::string status,
                                 std::chrono::milliseconds ttl, Done done) {
  post_done(std::move(done),
            [owner = std::move(owner), status = std::move(status), ttl](Database& db) {
              if (Status s = check_name("owner", owner); !s.ok()) return s;
              if (Status s = check_status(status); !s.ok()) return s;
              if (Status s = check_ttl(ttl); !s.ok()) return s;
              return db.transaction([&] {
                const int64_t now = now_ms();
                if (Status s = db.purge_presence(now); !s.ok()) return s;
                auto stmt = db.prepare(
                    "INSERT OR REPLACE INTO presence(owner, status, expires_at_ms)"
                    " VALUES(?1, ?2, ?3)");
                stmt.text(1, owner).text(2, status).integer(3, now + ttl.count());
                return db.step_done(std::move(stmt), "set presence");
              });
            });
}

void SqliteBackend::presence_get(std::string owner, Callback<Presence> done) {
  post<Presence>(std::move(done), [owner = std::move(owner)](Database& db, Presence& presence) {
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    return db.get_presence(owner, presence);
  });
}

void SqliteBackend::presence_remove(std::string owner, Done done) {
  post_done(std::move(done), [owner = std::move(owner)](Database& db) {
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    return db.transaction([&] {
      Presence live;
      Status found = db.get_presence(owner, live);
      if (!found.ok() && found.code != Code::kNotFound) return found;
      auto stmt = db.prepare("DELETE FROM presence WHERE owner = ?1");
      stmt.text(1, owner);
      if (Status s = db.step_done(std::move(stmt), "remove presence"); !s.ok()) return s;
      return found;  // an expired entry is deleted too, but reported as absent
    });
  });
}

void SqliteBackend::presence_list(std::string status_prefix, uint32_t limit,
                                  Callback<std::vector<Presence>> done) {
  post<std::vector<Presence>>(std::move(done), [prefix = std::move(status_prefix), limit](
                                                   Database& db, std::vector<Presence>& out) {
    if (Status s = check_status(prefix); !s.ok()) return s;
    if (Status s = check_limit(limit); !s.ok()) return s;
    auto stmt = db.prepare(
        "SELECT owner, status, expires_at_ms FROM presence WHERE status >= ?1"
        " AND (?2 IS NULL OR status < ?2) AND expires_at_ms > ?3 ORDER BY owner LIMIT ?4");
    stmt.text(1, prefix).integer(3, now_ms()).integer(4, limit);
    if (auto end = prefix_end(prefix)) {
      stmt.text(2, *end);
    } else {
      stmt.null(2);
    }
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      out.push_back(Presence{stmt.bytes_at(0), stmt.bytes_at(1), stmt.integer_at(2)});
    }
    return rc == SQLITE_DONE ? Status{} : db.error("list presence");
  });
}

// ---- apply -------------------------------------------------------------------------------

void SqliteBackend::apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) {
  post<std::vector<int64_t>>(std::move(done), [writes = std::move(writes)](
                                                  Database& db, std::vector<int64_t>& results) {
    if (Status s = check_batch(writes); !s.ok()) return s;
    results.assign(writes.size(), 0);
    if (writes.empty()) return Status{};
    return db.transaction([&] {
      for (size_t i = 0; i < writes.size(); ++i) {
        if (Status s = db.apply_write(writes[i], results[i]); !s.ok()) {
          return batch_error(i, std::move(s));
        }
      }
      return Status{};
    });
  });
}

}  // namespace prism::store
