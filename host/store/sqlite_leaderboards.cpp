// Leaderboards on SQLite: boards and entries, ranks and ranking windows by index, the
// board operators (best, set, increment), and the backend's leaderboard calls.
#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "store/sqlite_database.hpp"
#include "store/validate.hpp"

namespace prism::store {
namespace {

using namespace sqlite;

// An entry's position in the one rank index (schema v2): score or subscore as the board
// orders them, ascending. ~x reverses int64 order without overflow, and is its own
// inverse: rank_key(order, rank_key(order, x)) == x.
int64_t rank_key(SortOrder order, int64_t value) {
  return order == SortOrder::kDescending ? ~value : value;
}

// Whether (score, subscore) ranks before (other_score, other_subscore) on a board.
bool ranks_before(SortOrder order, int64_t score, int64_t subscore, int64_t other_score,
                  int64_t other_subscore) {
  return std::pair(rank_key(order, score), rank_key(order, subscore)) <
         std::pair(rank_key(order, other_score), rank_key(order, other_subscore));
}

}  // namespace

Status SqliteBackend::Database::load_board(const std::string& board, Board& spec) {
  if (auto it = boards_.find(board); it != boards_.end()) {
    spec = it->second;
    return {};
  }
  Statement stmt = prepare("SELECT ord, op, id FROM boards WHERE board = ?1");
  stmt.text(1, board);
  const int rc = stmt.step();
  if (rc == SQLITE_DONE) return not_found("board " + board + " not found");
  if (rc != SQLITE_ROW) return error("read board");
  spec.board = board;
  spec.order = static_cast<SortOrder>(stmt.integer_at(0));
  spec.op = static_cast<Operator>(stmt.integer_at(1));
  spec.id = stmt.integer_at(2);
  boards_.emplace(board, spec);
  return {};
}

Status SqliteBackend::Database::create_board(const BoardSpec& spec) {
  Board existing;
  Status s = load_board(spec.board, existing);
  if (s.ok()) {
    if (existing.order == spec.order && existing.op == spec.op) return {};
    return conflict("board " + spec.board + " exists with a different order or operator");
  }
  if (s.code != Code::kNotFound) return s;
  // Ids are never reused: boards are never deleted.
  Statement stmt = prepare(
      "INSERT INTO boards(board, ord, op, id)"
      " VALUES(?1, ?2, ?3, (SELECT COALESCE(MAX(id), 0) + 1 FROM boards))");
  stmt.text(1, spec.board)
      .integer(2, static_cast<int64_t>(spec.order))
      .integer(3, static_cast<int64_t>(spec.op));
  return step_done(std::move(stmt), "create board");
}

Status SqliteBackend::Database::load_entry(const Board& spec, const std::string& owner,
                                           Entry& entry) {
  Statement stmt = prepare(
      "SELECT score, subscore, metadata, submitted_ms FROM entries"
      " WHERE board_id = ?1 AND owner = ?2");
  stmt.integer(1, spec.id).text(2, owner);
  const int rc = stmt.step();
  if (rc == SQLITE_DONE) return not_found("owner " + owner + " not on board " + spec.board);
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
Status SqliteBackend::Database::fill_rank(const Board& spec, Entry& entry) {
  // Rows ranking before (?2, ?3, ?4 time, ?5 owner), each term one range of the index.
  Statement stmt = prepare(
      "SELECT (SELECT COUNT(*) FROM entries WHERE board_id = ?1 AND rank1 < ?2)"
      " + (SELECT COUNT(*) FROM entries WHERE board_id = ?1 AND rank1 = ?2 AND rank2 < ?3)"
      " + (SELECT COUNT(*) FROM entries WHERE board_id = ?1 AND rank1 = ?2 AND rank2 = ?3"
      "    AND (submitted_ms, owner) < (?4, ?5))");
  stmt.integer(1, spec.id)
      .integer(2, rank_key(spec.order, entry.score))
      .integer(3, rank_key(spec.order, entry.subscore))
      .integer(4, entry.submitted_ms)
      .text(5, entry.owner);
  if (stmt.step() != SQLITE_ROW) return error("rank entry");
  entry.rank = static_cast<uint64_t>(stmt.integer_at(0)) + 1;
  return {};
}

// Entries ranked offset+1 .. offset+count, read from the rank index alone (schema v3: it
// covers every column named here; score and subscore are its rank1 and rank2 read back).
Status SqliteBackend::Database::ranking(const Board& spec, uint64_t offset, uint64_t count,
                                        std::vector<Entry>& entries) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  // Windows are at most a few hundred entries (a page's limit, or around's both sides).
  constexpr uint64_t kMaxReserve = 256;
  Statement stmt = prepare(
      "SELECT owner, rank1, rank2, metadata, submitted_ms FROM entries WHERE board_id = ?1"
      " ORDER BY rank1, rank2, submitted_ms, owner LIMIT ?2 OFFSET ?3");
  stmt.integer(1, spec.id)
      .integer(2, static_cast<int64_t>(std::min(count, kMax)))
      .integer(3, static_cast<int64_t>(std::min(offset, kMax)));
  entries.reserve(entries.size() + std::min(count, kMaxReserve));
  int rc;
  uint64_t rank = offset;
  while ((rc = stmt.step()) == SQLITE_ROW) {
    Entry entry;
    entry.owner = stmt.bytes_at(0);
    entry.score = rank_key(spec.order, stmt.integer_at(1));
    entry.subscore = rank_key(spec.order, stmt.integer_at(2));
    entry.metadata = stmt.bytes_at(3);
    entry.submitted_ms = stmt.integer_at(4);
    entry.rank = ++rank;
    entries.push_back(std::move(entry));
  }
  return rc == SQLITE_DONE ? Status{} : error("read ranking");
}

// Applies the board's operator to the owner's entry; `result` is the entry afterwards
// (without its rank).
Status SqliteBackend::Database::submit_entry(const Board& spec, const Entry& submitted,
                                             Entry& result) {
  // A set replaces whatever entry there is, so only best and increment read it first
  // (every board of the practice service is a set one: a seek saved per submission).
  Entry old;
  bool had_entry = false;
  if (spec.op != Operator::kSet) {
    Status found = load_entry(spec, submitted.owner, old);
    if (!found.ok() && found.code != Code::kNotFound) return found;
    had_entry = found.ok();
  }
  const int64_t now = now_ms();
  result = submitted;
  result.rank = 0;
  result.submitted_ms = now;
  if (had_entry) {
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
      "INSERT INTO entries(board_id, owner, score, subscore, metadata, submitted_ms, rank1, rank2)"
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(board_id, owner) DO UPDATE SET"
      " score = excluded.score, subscore = excluded.subscore, metadata = excluded.metadata,"
      " submitted_ms = excluded.submitted_ms, rank1 = excluded.rank1, rank2 = excluded.rank2");
  stmt.integer(1, spec.id)
      .text(2, result.owner)
      .integer(3, result.score)
      .integer(4, result.subscore)
      .blob(5, result.metadata)
      .integer(6, result.submitted_ms)
      .integer(7, rank_key(spec.order, result.score))
      .integer(8, rank_key(spec.order, result.subscore));
  return step_done(std::move(stmt), "submit entry");
}

// ---- leaderboards ------------------------------------------------------------------------

void SqliteBackend::board_create(BoardSpec spec, Done done) {
  Keys keys{key('b', spec.board)};
  post_done(std::move(done), [spec = std::move(spec)](Database& db) {
    if (Status s = check_spec(spec); !s.ok()) return s;
    return db.transaction([&] { return db.create_board(spec); });
  }, std::move(keys));
}

void SqliteBackend::board_submit(std::string board, Entry entry, Callback<Entry> done) {
  Keys keys{key('b', board)};
  post<Entry>(std::move(done),
              [board = std::move(board), entry = std::move(entry)](Database& db, Entry& result) {
                if (Status s = check_name("board", board); !s.ok()) return s;
                if (Status s = check_entry(entry); !s.ok()) return s;
                Database::Board spec;
                return db.transaction([&] {
                  if (Status s = db.load_board(board, spec); !s.ok()) return s;
                  if (Status s = db.submit_entry(spec, entry, result); !s.ok()) return s;
                  return db.fill_rank(spec, result);
                });
              },
              std::move(keys));
}

void SqliteBackend::board_top(std::string board, uint32_t limit,
                              Callback<std::vector<Entry>> done) {
  board_page(std::move(board), 0, limit, std::move(done));
}

void SqliteBackend::board_page(std::string board, uint64_t after_rank, uint32_t limit,
                               Callback<std::vector<Entry>> done) {
  Keys keys{key('b', board)};
  post<std::vector<Entry>>(
      std::move(done),
      [board = std::move(board), after_rank, limit](Database& db, std::vector<Entry>& entries) {
        if (Status s = check_name("board", board); !s.ok()) return s;
        if (Status s = check_limit(limit); !s.ok()) return s;
        return db.snapshot([&] {
          Database::Board spec;
          if (Status s = db.load_board(board, spec); !s.ok()) return s;
          return db.ranking(spec, after_rank, limit, entries);
        });
      },
      std::move(keys), /*read=*/true);
}

void SqliteBackend::board_around(std::string board, std::string owner, uint32_t limit,
                                 Callback<std::vector<Entry>> done) {
  Keys keys{key('b', board)};
  post<std::vector<Entry>>(std::move(done), [board = std::move(board), owner = std::move(owner),
                                             limit](Database& db, std::vector<Entry>& entries) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    if (Status s = check_limit(limit); !s.ok()) return s;
    return db.snapshot([&] {
      Database::Board spec;
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      Entry entry;
      if (Status s = db.load_entry(spec, owner, entry); !s.ok()) return s;
      if (Status s = db.fill_rank(spec, entry); !s.ok()) return s;
      const uint64_t before = std::min<uint64_t>(limit, entry.rank - 1);
      return db.ranking(spec, entry.rank - 1 - before, before + 1 + limit, entries);
    });
  }, std::move(keys), /*read=*/true);
}

void SqliteBackend::board_rank(std::string board, std::string owner, Callback<Entry> done) {
  Keys keys{key('b', board)};
  post<Entry>(std::move(done),
              [board = std::move(board), owner = std::move(owner)](Database& db, Entry& entry) {
                if (Status s = check_name("board", board); !s.ok()) return s;
                if (Status s = check_name("owner", owner); !s.ok()) return s;
                return db.snapshot([&] {
                  Database::Board spec;
                  if (Status s = db.load_board(board, spec); !s.ok()) return s;
                  if (Status s = db.load_entry(spec, owner, entry); !s.ok()) return s;
                  return db.fill_rank(spec, entry);
                });
              },
              std::move(keys), /*read=*/true);
}

void SqliteBackend::board_remove(std::string board, std::string owner, Done done) {
  Keys keys{key('b', board)};
  post_done(std::move(done), [board = std::move(board), owner = std::move(owner)](Database& db) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    if (Status s = check_name("owner", owner); !s.ok()) return s;
    return db.transaction([&] {
      Database::Board spec;
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      auto stmt = db.prepare("DELETE FROM entries WHERE board_id = ?1 AND owner = ?2");
      stmt.integer(1, spec.id).text(2, owner);
      if (Status s = db.step_done(std::move(stmt), "remove entry"); !s.ok()) return s;
      if (db.changes() == 0) return not_found("owner " + owner + " not on board " + board);
      return Status{};
    });
  }, std::move(keys));
}

void SqliteBackend::board_reset(std::string board, Done done) {
  Keys keys{key('b', board)};
  post_done(std::move(done), [board = std::move(board)](Database& db) {
    if (Status s = check_name("board", board); !s.ok()) return s;
    return db.transaction([&] {
      Database::Board spec;
      if (Status s = db.load_board(board, spec); !s.ok()) return s;
      auto stmt = db.prepare("DELETE FROM entries WHERE board_id = ?1");
      stmt.integer(1, spec.id);
      return db.step_done(std::move(stmt), "reset board");
    });
  }, std::move(keys));
}

}  // namespace prism::store
