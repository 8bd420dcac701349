// The PostgreSQL backend's leaderboards: entries ranked by index order, ranks counted.
#include <limits>

#include "base/clock.hpp"
#include "store/postgres_backend_impl.hpp"

namespace prism::store {
namespace {

// ---- ranking SQL, one variant per direction -------------------------------------------

// Ranking order (backend.hpp): score, then subscore in the same direction, then the
// earlier submission, then owner, so ranks are total and stable.
struct RankingSql {
  std::string order_by;  // matches the entries_rank_* index of this direction
  std::string rank_of;   // $1 board, $2 owner → owner, score, subscore, metadata, submitted_ms, rank
  std::string range;     // $1 board, $2 limit, $3 offset → the entries in rank order
  std::string best_upsert;
};

RankingSql make_ranking_sql(SortOrder order) {
  const bool desc = order == SortOrder::kDescending;
  const std::string better = desc ? ">" : "<";
  RankingSql sql;
  sql.order_by = desc ? "score DESC, subscore DESC, submitted_ms, owner"
                      : "score, subscore, submitted_ms, owner";
  // The leading b.score >= e.score bounds the index scan; the rest decides ties.
  sql.rank_of =
      "SELECT e.owner, e.score, e.subscore, e.metadata, e.submitted_ms,"
      " (SELECT count(*) FROM entries b WHERE b.board = e.board AND b.score " + better +
      "= e.score AND (b.score " + better + " e.score OR (b.score = e.score AND (b.subscore " +
      better +
      " e.subscore OR (b.subscore = e.subscore AND (b.submitted_ms < e.submitted_ms OR"
      " (b.submitted_ms = e.submitted_ms AND b.owner < e.owner))))))) + 1"
      " FROM entries e WHERE e.board = $1 AND e.owner = $2";
  sql.range =
      "SELECT owner, score, subscore, metadata, submitted_ms FROM entries WHERE board = $1"
      " ORDER BY " + sql.order_by + " LIMIT $2 OFFSET $3";
  sql.best_upsert =
      "INSERT INTO entries (board, owner, score, subscore, metadata, submitted_ms)"
      " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (board, owner) DO UPDATE SET"
      " score = EXCLUDED.score, subscore = EXCLUDED.subscore, metadata = EXCLUDED.metadata,"
      " submitted_ms = EXCLUDED.submitted_ms"
      " WHERE (EXCLUDED.score, EXCLUDED.subscore) " + better + " (entries.score, entries.subscore)";
  return sql;
}

const RankingSql& ranking_sql(SortOrder order) {
  static const RankingSql desc = make_ranking_sql(SortOrder::kDescending);
  static const RankingSql asc = make_ranking_sql(SortOrder::kAscending);
  return order == SortOrder::kAscending ? asc : desc;
}

constexpr const char* kSetUpsert =
    "INSERT INTO entries (board, owner, score, subscore, metadata, submitted_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (board, owner) DO UPDATE SET"
    " score = EXCLUDED.score, subscore = EXCLUDED.subscore, metadata = EXCLUDED.metadata,"
    " submitted_ms = EXCLUDED.submitted_ms";
constexpr const char* kIncrementUpsert =
    "INSERT INTO entries (board, owner, score, subscore, metadata, submitted_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (board, owner) DO UPDATE SET"
    " score = entries.score + EXCLUDED.score, subscore = entries.subscore + EXCLUDED.subscore,"
    " metadata = EXCLUDED.metadata, submitted_ms = EXCLUDED.submitted_ms";

Entry entry_of(const pqxx::row& r, uint64_t rank) {
  Entry e;
  e.owner = bytes_of(r[0]);
  e.score = r[1].as<int64_t>();
  e.subscore = r[2].as<int64_t>();
  e.metadata = bytes_of(r[3]);
  e.submitted_ms = r[4].as<int64_t>();
  e.rank = rank;
  return e;
}

std::optional<Entry> rank_of(pqxx::transaction_base& tx, SortOrder order, const std::string& board,
                             const std::string& owner) {
  const pqxx::result r = tx.exec_params(ranking_sql(order).rank_of, blob(board), blob(owner));
  if (r.empty()) return std::nullopt;
  return entry_of(r[0], r[0][5].as<uint64_t>());
}

std::vector<Entry> range_of(pqxx::transaction_base& tx, SortOrder order, const std::string& board,
                            uint64_t offset, uint64_t limit) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  const pqxx::result r = tx.exec_params(ranking_sql(order).range, blob(board),
                                        static_cast<int64_t>(std::min(limit, kMax)),
                                        static_cast<int64_t>(std::min(offset, kMax)));
  std::vector<Entry> out;
  out.reserve(r.size());
  for (size_t i = 0; i < r.size(); ++i) out.push_back(entry_of(r[i], offset + i + 1));
  return out;
}

}  // namespace

Outcome<Entry> PostgresBackend::Impl::submit_in(pqxx::transaction_base& tx,
                                                const std::string& board, Entry entry) {
  const std::optional<BoardSpec> spec = board_spec(tx, board);
  if (!spec) return failed<Entry>(Code::kNotFound, "submit to " + board + ": no such board");
  const char* sql = spec->op == Operator::kSet         ? kSetUpsert
                    : spec->op == Operator::kIncrement ? kIncrementUpsert
                                                       : ranking_sql(spec->order).best_upsert.c_str();
  // The backend's clock stamps the submission; a caller's submitted_ms is ignored.
  const int64_t submitted = static_cast<int64_t>(unix_ms());
  tx.exec_params(sql, blob(board), blob(entry.owner), entry.score, entry.subscore,
                 blob(entry.metadata), submitted);
  std::optional<Entry> ranked = rank_of(tx, spec->order, board, entry.owner);
  if (!ranked) return failed<Entry>(Code::kInternal, "submit to " + board + ": entry vanished");
  return done_with(std::move(*ranked));
}

// ---- leaderboards --------------------------------------------------------------------

void PostgresBackend::board_create(BoardSpec spec, Done done) {
  if (Status s = check_spec(spec); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  impl_->run_done("board_create " + spec.board, std::move(done), [this, spec](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO boards (board, sort_order, operator) VALUES ($1, $2, $3)"
        " ON CONFLICT (board) DO NOTHING",
        blob(spec.board), std::string(order_name(spec.order)),
        std::string(operator_name(spec.op)));
    const std::optional<BoardSpec> stored = Impl::read_spec(tx, spec.board);
    if (!stored) return error(Code::kInternal, "board_create " + spec.board + ": board vanished");
    if (stored->order != spec.order || stored->op != spec.op) {
      return error(Code::kConflict, "board_create " + spec.board + ": exists with order " +
                                        order_name(stored->order) + " and operator " +
                                        operator_name(stored->op));
    }
    tx.commit();
    impl_->remember(*stored);
    return Status{};
  });
}

void PostgresBackend::board_submit(std::string board, Entry entry, Callback<Entry> done) {
  if (Status s = first_error(check_name("board", board), check_entry(entry)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<Entry>("board_submit " + board, std::move(done),
                    [this, board, entry = std::move(entry)](pqxx::connection& c) {
    pqxx::work tx(c);
    Outcome<Entry> out = impl_->submit_in(tx, board, entry);
    if (out.status.ok()) tx.commit();
    return out;
  });
}

void PostgresBackend::board_top(std::string board, uint32_t limit,
                                Callback<std::vector<Entry>> done) {
  board_page(std::move(board), 0, limit, std::move(done));
}

void PostgresBackend::board_page(std::string board, uint64_t after_rank, uint32_t limit,
                                 Callback<std::vector<Entry>> done) {
  if (Status s = first_error(check_name("board", board), check_limit(limit)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<std::vector<Entry>>("board_page " + board, std::move(done),
                                 [this, board, after_rank, limit](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const std::optional<BoardSpec> spec = impl_->board_spec(tx, board);
    if (!spec) return failed<std::vector<Entry>>(Code::kNotFound, "board " + board + ": no such board");
    return done_with(range_of(tx, spec->order, board, after_rank, limit));
  });
}

void PostgresBackend::board_around(std::string board, std::string owner, uint32_t limit,
                                   Callback<std::vector<Entry>> done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner),
                                 check_limit(limit)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<std::vector<Entry>>("board_around " + board, std::move(done),
                                 [this, board, owner, limit](pqxx::connection& c) {
    // One snapshot for the owner's rank and the window around it.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    const std::optional<BoardSpec> spec = impl_->board_spec(tx, board);
    if (!spec) return failed<std::vector<Entry>>(Code::kNotFound, "board " + board + ": no such board");
    const std::optional<Entry> me = rank_of(tx, spec->order, board, owner);
    if (!me) {
      return failed<std::vector<Entry>>(Code::kNotFound, "board " + board + ": no entry for " + owner);
    }
    const uint64_t first = me->rank > limit ? me->rank - limit : 1;
    return done_with(range_of(tx, spec->order, board, first - 1, me->rank - first + 1 + limit));
  });
}

void PostgresBackend::board_rank(std::string board, std::string owner, Callback<Entry> done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<Entry>("board_rank " + board, std::move(done), [this, board, owner](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const std::optional<BoardSpec> spec = impl_->board_spec(tx, board);
    if (!spec) return failed<Entry>(Code::kNotFound, "board " + board + ": no such board");
    std::optional<Entry> me = rank_of(tx, spec->order, board, owner);
    if (!me) return failed<Entry>(Code::kNotFound, "board " + board + ": no entry for " + owner);
    return done_with(std::move(*me));
  });
}

void PostgresBackend::board_remove(std::string board, std::string owner, Done done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner)); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  impl_->run_done("board_remove " + board, std::move(done), [this, board, owner](pqxx::connection& c) {
    pqxx::work tx(c);
    if (!impl_->board_spec(tx, board)) return error(Code::kNotFound, "board " + board + ": no such board");
    const pqxx::result r = tx.exec_params(
        "DELETE FROM entries WHERE board = $1 AND owner = $2 RETURNING 1", blob(board), blob(owner));
    if (r.empty()) return error(Code::kNotFound, "board " + board + ": no entry for " + owner);
    tx.commit();
    return Status{};
  });
}

void PostgresBackend::board_reset(std::string board, Done done) {
  if (Status s = check_name("board", board); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  impl_->run_done("board_reset " + board, std::move(done), [this, board](pqxx::connection& c) {
    pqxx::work tx(c);
    if (!impl_->board_spec(tx, board)) return error(Code::kNotFound, "board " + board + ": no such board");
    tx.exec_params("DELETE FROM entries WHERE board = $1", blob(board));
    tx.commit();
    return Status{};
  });
}


}  // namespace prism::store
