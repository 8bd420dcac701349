// Private to the PostgreSQL backend's sources: the call plumbing (PostgresBackend::Impl)
// and the helpers that postgres_backend.cpp and postgres_leaderboards.cpp share.
#pragma once

#include <pqxx/pqxx>

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "store/key_range.hpp"
#include "store/postgres_backend.hpp"
#include "store/postgres_migrations.hpp"
#include "store/postgres_pool.hpp"
#include "store/validate.hpp"

namespace prism::store::postgres {

template <typename T>
struct Outcome {
  Status status;
  T value{};
};

inline Status error(Code code, std::string message) { return Status{code, std::move(message)}; }

// The first failed check of a call's arguments (validate.hpp), or ok.
template <typename... More>
inline Status first_error(Status first, More... more) {
  if (!first.ok()) return first;
  if constexpr (sizeof...(more) > 0) return first_error(std::move(more)...);
  return first;
}

template <typename T>
inline Outcome<T> failed(Code code, std::string message) {
  return Outcome<T>{error(code, std::move(message)), T{}};
}

template <typename T>
inline Outcome<T> done_with(T value) {
  return Outcome<T>{Status{}, std::move(value)};
}

// Names and values travel as bytea (see the schema): binary parameters, unescaped results.
inline pqxx::binarystring blob(const std::string& bytes) { return pqxx::binarystring(bytes); }
inline std::string bytes_of(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

inline const char* order_name(SortOrder o) { return o == SortOrder::kAscending ? "asc" : "desc"; }
inline const char* operator_name(Operator op) {
  switch (op) {
    case Operator::kSet: return "set";
    case Operator::kIncrement: return "increment";
    case Operator::kBest: break;
  }
  return "best";
}

inline std::string name_of(const std::string& collection, const std::string& key) {
  return collection + "/" + key;
}

}  // namespace prism::store::postgres

namespace prism::store {

using namespace postgres;  // NOLINT: private header, shared by two files of one class

// ---- the pool and the plumbing every call shares ---------------------------------------

struct PostgresBackend::Impl {
  Impl(std::string conninfo, PostgresOptions o, bool schema_current)
      : options(o),
        migrated(schema_current),
        pool(std::move(conninfo),
             postgres::PoolOptions{o.connections, o.reconnect_initial, o.reconnect_max,
                                   o.probe_interval},
             [this](pqxx::connection& c) { setup(c); }) {}

  // Every connection: OK must mean durable (DESIGN.md §6) whatever the server default;
  // the first connection of a backend not opened through open() also migrates.
  void setup(pqxx::connection& c) {
    {
      pqxx::nontransaction tx(c);
      tx.exec("SET synchronous_commit TO on");
      tx.exec("SET application_name TO 'prismd'");
    }
    if (migrated.load()) return;
    std::lock_guard lk(migrate_mu);
    if (migrated.load()) return;
    auto applied = postgres::migrate(c);
    if (!applied) throw std::runtime_error(applied.error());
    for (int v : *applied) spdlog::info("event=postgres_migrated version={}", v);
    migrated = true;
  }

  template <typename T, typename Body>
  void run(std::string what, Callback<T> done, Body body) {
    pool.post([this, what = std::move(what), done = std::move(done), body = std::move(body)](
                  pqxx::connection* conn, std::string_view why) mutable {
      if (conn == nullptr) {
        done(error(Code::kUnavailable, "postgres: " + what + ": " + std::string(why)), T{});
        return true;
      }
      bool alive = true;
      Outcome<T> out = execute<T>(*conn, what, body, alive);
      done(std::move(out.status), std::move(out.value));
      return alive;
    });
  }

  template <typename Body>
  void run_done(std::string what, Done done, Body body) {
    run<std::monostate>(std::move(what),
                        [done = std::move(done)](Status s, std::monostate) { done(std::move(s)); },
                        [body = std::move(body)](pqxx::connection& c) mutable {
                          return Outcome<std::monostate>{body(c), {}};
                        });
  }

  // A call refused before it reaches the database still completes off the caller's thread.
  template <typename T>
  void reject(Callback<T> done, Status status) {
    pool.post([done = std::move(done), status = std::move(status)](pqxx::connection*,
                                                                    std::string_view) {
      done(status, T{});
      return true;
    });
  }
  void reject_done(Done done, Status status) {
    reject<std::monostate>([done = std::move(done)](Status s, std::monostate) { done(std::move(s)); },
                           std::move(status));
  }

  // Runs `body`, retrying lost serialization/deadlock races, and turns libpqxx's
  // exceptions into statuses; `alive` turns false when the connection is gone.
  template <typename T, typename Body>
  Outcome<T> execute(pqxx::connection& conn, const std::string& what, Body& body, bool& alive) {
    const std::string where = "postgres: " + what + ": ";
    for (uint32_t attempt = 0;; ++attempt) {
      try {
        return body(conn);
      } catch (const pqxx::in_doubt_error& e) {
        alive = false;
        return failed<T>(Code::kUnavailable,
                         where + "connection lost while committing, outcome unknown: " + e.what());
      } catch (const pqxx::statement_completion_unknown& e) {
        alive = conn.is_open();
        return failed<T>(Code::kUnavailable, where + "outcome unknown: " + e.what());
      } catch (const pqxx::transaction_rollback& e) {
        if (attempt < options.max_retries && conn.is_open()) continue;
        return failed<T>(Code::kUnavailable, where + "gave up after " +
                                                 std::to_string(attempt + 1) +
                                                 " attempts: " + e.what());
      } catch (const pqxx::broken_connection& e) {
        alive = false;
        return failed<T>(Code::kUnavailable, where + "connection lost: " + e.what());
      } catch (const pqxx::sql_error& e) {
        const std::string state = e.sqlstate();
        if (!conn.is_open() || state.starts_with("08") || state.starts_with("57P")) {
          alive = conn.is_open();
          return failed<T>(Code::kUnavailable, where + "connection lost: " + e.what());
        }
        if (state == "22003") {
          return failed<T>(Code::kInvalidArgument, where + "value out of range (64-bit overflow)");
        }
        return failed<T>(Code::kInternal, where + e.what());
      } catch (const std::exception& e) {
        alive = conn.is_open();
        return failed<T>(alive ? Code::kInternal : Code::kUnavailable, where + e.what());
      }
    }
  }

  // Board specs never change once created, so each is read from the database once.
  std::optional<BoardSpec> board_spec(pqxx::transaction_base& tx, const std::string& board) {
    {
      std::lock_guard lk(boards_mu);
      if (auto it = boards.find(board); it != boards.end()) return it->second;
    }
    std::optional<BoardSpec> spec = read_spec(tx, board);
    if (spec) remember(*spec);
    return spec;
  }
  // Only committed boards may be remembered: a cached spec is never read again.
  void remember(const BoardSpec& spec) {
    std::lock_guard lk(boards_mu);
    boards.emplace(spec.board, spec);
  }
  static std::optional<BoardSpec> read_spec(pqxx::transaction_base& tx, const std::string& board) {
    const pqxx::result r =
        tx.exec_params("SELECT sort_order, operator FROM boards WHERE board = $1", blob(board));
    if (r.empty()) return std::nullopt;
    BoardSpec spec;
    spec.board = board;
    spec.order = r[0][0].as<std::string>() == "asc" ? SortOrder::kAscending : SortOrder::kDescending;
    const std::string op = r[0][1].as<std::string>();
    spec.op = op == "set" ? Operator::kSet : op == "increment" ? Operator::kIncrement : Operator::kBest;
    return spec;
  }

  // ---- single writes, shared by the calls and by apply() ----------------------------

  Outcome<uint64_t> put_in(pqxx::transaction_base& tx, const std::string& collection,
                           const std::string& key, const std::string& value,
                           ExpectedVersion expected) {
    pqxx::result r;
    if (!expected) {
      r = tx.exec_params(
          "INSERT INTO docs (collection, key, value, version) VALUES ($1, $2, $3, 1)"
          " ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value,"
          " version = docs.version + 1 RETURNING version",
          blob(collection), blob(key), blob(value));
    } else if (*expected == 0) {
      r = tx.exec_params(
          "INSERT INTO docs (collection, key, value, version) VALUES ($1, $2, $3, 1)"
          " ON CONFLICT (collection, key) DO NOTHING RETURNING version",
          blob(collection), blob(key), blob(value));
      if (r.empty()) {
        return failed<uint64_t>(Code::kConflict,
                                "put " + name_of(collection, key) + ": document already exists");
      }
    } else {
      // UPDATE re-checks the version on the newest row after waiting for its lock, so
      // concurrent compare-and-sets on one document succeed one at a time.
      r = tx.exec_params(
          "UPDATE docs SET value = $3, version = version + 1"
          " WHERE collection = $1 AND key = $2 AND version = $4 RETURNING version",
          blob(collection), blob(key), blob(value), static_cast<int64_t>(*expected));
      if (r.empty()) {
        return failed<uint64_t>(Code::kConflict, "put " + name_of(collection, key) +
                                                     ": not at version " +
                                                     std::to_string(*expected));
      }
    }
    return done_with(r[0][0].as<uint64_t>());
  }

  Status remove_in(pqxx::transaction_base& tx, const std::string& collection,
                   const std::string& key, ExpectedVersion expected) {
    const std::string what = "remove " + name_of(collection, key);
    if (expected && *expected == 0) {
      // "Only if it does not exist": nothing to remove either way.
      const pqxx::result r = tx.exec_params(
          "SELECT 1 FROM docs WHERE collection = $1 AND key = $2", blob(collection), blob(key));
      return r.empty() ? error(Code::kNotFound, what + ": no such document")
                       : error(Code::kConflict, what + ": document exists");
    }
    const pqxx::result r =
        expected ? tx.exec_params(
                       "DELETE FROM docs WHERE collection = $1 AND key = $2 AND version = $3"
                       " RETURNING 1",
                       blob(collection), blob(key), static_cast<int64_t>(*expected))
                 : tx.exec_params("DELETE FROM docs WHERE collection = $1 AND key = $2 RETURNING 1",
                                  blob(collection), blob(key));
    if (!r.empty()) return Status{};
    if (!expected) return error(Code::kNotFound, what + ": no such document");
    return error(Code::kConflict, what + ": not at version " + std::to_string(*expected));
  }

  int64_t counter_add_in(pqxx::transaction_base& tx, const std::string& counter, int64_t delta) {
    return tx
        .exec_params1(
            "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name)"
            " DO UPDATE SET value = counters.value + EXCLUDED.value RETURNING value",
            blob(counter), delta)[0]
        .as<int64_t>();
  }

  // Applies the board's operator to the owner's entry; the entry with its new rank.
  Outcome<Entry> submit_in(pqxx::transaction_base& tx, const std::string& board, Entry entry);

  const PostgresOptions options;
  std::atomic<bool> migrated;
  std::mutex migrate_mu;
  std::mutex boards_mu;
  std::unordered_map<std::string, BoardSpec> boards;
  std::atomic<uint32_t> presence_sets{0};
  postgres::ConnectionPool pool;  // last: its workers use everything above
};
}  // namespace prism::store
