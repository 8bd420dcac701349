// The PostgreSQL backend's schema, one versioned migration at a time (see the header).
#include "store/postgres_migrations.hpp"

#include <pqxx/transaction>

#include <array>
#include <string>

namespace prism::store::postgres {
namespace {

// Names and values are opaque bytes (backend.hpp), so they are bytea: ordering is then
// byte order, the same as the other backends, and no encoding can reject them.
constexpr std::string_view kInitialSchema = R"sql(
CREATE TABLE docs (
  collection bytea NOT NULL,
  key bytea NOT NULL,
  value bytea NOT NULL,
  version bigint NOT NULL CHECK (version > 0),
  PRIMARY KEY (collection, key)
);
CREATE TABLE counters (
  name bytea PRIMARY KEY,
  value bigint NOT NULL
);
CREATE TABLE boards (
  board bytea PRIMARY KEY,
  sort_order text NOT NULL CHECK (sort_order IN ('desc', 'asc')),
  operator text NOT NULL CHECK (operator IN ('best', 'set', 'increment'))
);
CREATE TABLE entries (
  board bytea NOT NULL REFERENCES boards (board),
  owner bytea NOT NULL,
  score bigint NOT NULL,
  subscore bigint NOT NULL,
  metadata bytea NOT NULL,
  submitted_ms bigint NOT NULL,
  PRIMARY KEY (board, owner)
);
-- Ranking order per board direction (score, subscore the same way; then the earlier
-- submission; then owner), so top/page read an index prefix and a rank counts one.
CREATE INDEX entries_rank_desc ON entries (board, score DESC, subscore DESC, submitted_ms, owner);
CREATE INDEX entries_rank_asc ON entries (board, score, subscore, submitted_ms, owner);
CREATE TABLE presence (
  owner bytea PRIMARY KEY,
  status bytea NOT NULL,
  expires_at_ms bigint NOT NULL
);
CREATE INDEX presence_expiry ON presence (expires_at_ms);
)sql";

constexpr std::array kMigrations{
    Migration{1, "initial schema: docs, counters, boards, entries, presence", kInitialSchema},
};

// Any constant works as long as every prismd uses the same one: "prsm".
constexpr long long kMigrationLock = 0x7072736d;

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

Expected<std::vector<int>> migrate(pqxx::connection& conn) {
  std::vector<int> applied;
  try {
    pqxx::work tx(conn);
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY,"
        " name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    const int current = tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0]
                            .as<int>();
    const int latest = kMigrations.back().version;
    if (current > latest) {
      return make_error("postgres: database schema is at version " + std::to_string(current) +
                        ", newer than this build knows (" + std::to_string(latest) + ")");
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= current) continue;
      try {
        tx.exec(std::string(m.sql));
      } catch (const std::exception& e) {
        return make_error("postgres: migration " + std::to_string(m.version) + " (" +
                          std::string(m.name) + ") failed: " + e.what());
      }
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
      applied.push_back(m.version);
    }
    tx.commit();
  } catch (const std::exception& e) {
    return make_error(std::string("postgres: migrating the schema failed: ") + e.what());
  }
  return applied;
}

}  // namespace prism::store::postgres
