// The PostgreSQL backend's calls but leaderboards (postgres_leaderboards.cpp): one
// transaction per call on a pool worker, plain SQL over postgres_migrations.cpp's schema.
#include "store/postgres_backend.hpp"

#include "base/clock.hpp"
#include "store/postgres_backend_impl.hpp"

namespace prism::store {

Expected<std::unique_ptr<PostgresBackend>> PostgresBackend::open(std::string conninfo,
                                                                 PostgresOptions options) {
  try {
    pqxx::connection conn(conninfo);
    auto applied = postgres::migrate(conn);
    if (!applied) return make_error(applied.error());
    for (int v : *applied) spdlog::info("event=postgres_migrated version={}", v);
  } catch (const std::exception& e) {
    return make_error(std::string("postgres: cannot connect: ") + e.what());
  }
  auto backend = std::unique_ptr<PostgresBackend>(new PostgresBackend(std::move(conninfo), options));
  backend->impl_->migrated = true;
  return backend;
}

PostgresBackend::PostgresBackend(std::string conninfo, PostgresOptions options)
    : impl_(std::make_unique<Impl>(std::move(conninfo), options, false)) {}

PostgresBackend::~PostgresBackend() = default;

bool PostgresBackend::healthy() const { return impl_->pool.healthy(); }

// ---- documents -----------------------------------------------------------------------

void PostgresBackend::get(std::string collection, std::string key, Callback<Document> done) {
  if (Status s = first_error(check_name("collection", collection), check_name("key", key)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<Document>("get " + name_of(collection, key), std::move(done),
                       [collection, key](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const pqxx::result r = tx.exec_params(
        "SELECT value, version FROM docs WHERE collection = $1 AND key = $2", blob(collection),
        blob(key));
    if (r.empty()) {
      return failed<Document>(Code::kNotFound, "get " + name_of(collection, key) + ": no such document");
    }
    return done_with(Document{collection, key, bytes_of(r[0][0]), r[0][1].as<uint64_t>()});
  });
}

void PostgresBackend::put(std::string collection, std::string key, std::string value,
                          ExpectedVersion expected, Callback<uint64_t> done) {
  if (Status s = first_error(check_name("collection", collection), check_name("key", key),
                                 check_value(value)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<uint64_t>("put " + name_of(collection, key), std::move(done),
                       [this, collection, key, value = std::move(value), expected](pqxx::connection& c) {
    pqxx::work tx(c);
    Outcome<uint64_t> out = impl_->put_in(tx, collection, key, value, expected);
    if (out.status.ok()) tx.commit();
    return out;
  });
}

void PostgresBackend::remove(std::string collection, std::string key, ExpectedVersion expected,
                             Done done) {
  if (Status s = first_error(check_name("collection", collection), check_name("key", key)); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  impl_->run_done("remove " + name_of(collection, key), std::move(done),
                  [this, collection, key, expected](pqxx::connection& c) {
    pqxx::work tx(c);
    Status s = impl_->remove_in(tx, collection, key, expected);
    if (s.ok()) tx.commit();
    return s;
  });
}

void PostgresBackend::list(std::string collection, std::string prefix, std::string after,
                           uint32_t limit, Callback<std::vector<Document>> done) {
  if (Status s = first_error(check_name("collection", collection),
                                 check_prefix("prefix", prefix), check_prefix("after", after),
                                 check_limit(limit)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<std::vector<Document>>("list " + collection, std::move(done),
                                    [collection, prefix, after, limit](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const std::string select =
        "SELECT key, value, version FROM docs WHERE collection = $1"
        " AND ($2::bytea = ''::bytea OR key > $2::bytea) AND key >= $3::bytea";
    const std::optional<std::string> end = prefix_end(prefix);
    const pqxx::result r =
        end ? tx.exec_params(select + " AND key < $5::bytea ORDER BY key LIMIT $4", blob(collection),
                             blob(after), blob(prefix), limit, blob(*end))
            : tx.exec_params(select + " ORDER BY key LIMIT $4", blob(collection), blob(after),
                             blob(prefix), limit);
    std::vector<Document> docs;
    docs.reserve(r.size());
    for (const pqxx::row& row : r) {
      docs.push_back(Document{collection, bytes_of(row[0]), bytes_of(row[1]), row[2].as<uint64_t>()});
    }
    return done_with(std::move(docs));
  });
}

// ---- counters ------------------------------------------------------------------------

void PostgresBackend::counter_add(std::string counter, int64_t delta, Callback<int64_t> done) {
  if (Status s = check_name("counter", counter); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<int64_t>("counter_add " + counter, std::move(done),
                      [this, counter, delta](pqxx::connection& c) {
    pqxx::work tx(c);
    const int64_t value = impl_->counter_add_in(tx, counter, delta);
    tx.commit();
    return done_with(value);
  });
}

void PostgresBackend::counter_get(std::string counter, Callback<int64_t> done) {
  if (Status s = check_name("counter", counter); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<int64_t>("counter_get " + counter, std::move(done), [counter](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const pqxx::result r =
        tx.exec_params("SELECT value FROM counters WHERE name = $1", blob(counter));
    return done_with<int64_t>(r.empty() ? 0 : r[0][0].as<int64_t>());
  });
}

// ---- presence ------------------------------------------------------------------------
// Expiry is judged on this host's clock, the same clock that set it; expired rows are
// filtered on read and swept now and then.

void PostgresBackend::presence_set(std::string owner, std::string status,
                                   std::chrono::milliseconds ttl, Done done) {
  if (Status s = first_error(check_name("owner", owner), check_status(status), check_ttl(ttl)); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  const bool sweep = impl_->presence_sets.fetch_add(1) % 1024 == 0;
  impl_->run_done("presence_set " + owner, std::move(done),
                  [owner, status, ttl, sweep](pqxx::connection& c) {
    const int64_t now = static_cast<int64_t>(unix_ms());
    pqxx::work tx(c);
    if (sweep) tx.exec_params("DELETE FROM presence WHERE expires_at_ms <= $1", now);
    tx.exec_params(
        "INSERT INTO presence (owner, status, expires_at_ms) VALUES ($1, $2, $3)"
        " ON CONFLICT (owner) DO UPDATE SET status = EXCLUDED.status,"
        " expires_at_ms = EXCLUDED.expires_at_ms",
        blob(owner), blob(status), static_cast<int64_t>(now + ttl.count()));
    tx.commit();
    return Status{};
  });
}

void PostgresBackend::presence_get(std::string owner, Callback<Presence> done) {
  if (Status s = check_name("owner", owner); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<Presence>("presence_get " + owner, std::move(done), [owner](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const pqxx::result r = tx.exec_params(
        "SELECT status, expires_at_ms FROM presence WHERE owner = $1 AND expires_at_ms > $2",
        blob(owner), static_cast<int64_t>(unix_ms()));
    if (r.empty()) return failed<Presence>(Code::kNotFound, "presence_get " + owner + ": not present");
    return done_with(Presence{owner, bytes_of(r[0][0]), r[0][1].as<int64_t>()});
  });
}

void PostgresBackend::presence_remove(std::string owner, Done done) {
  if (Status s = check_name("owner", owner); !s.ok()) {
    return impl_->reject_done(std::move(done), std::move(s));
  }
  impl_->run_done("presence_remove " + owner, std::move(done), [owner](pqxx::connection& c) {
    pqxx::work tx(c);
    const pqxx::result r = tx.exec_params(
        "DELETE FROM presence WHERE owner = $1 RETURNING expires_at_ms", blob(owner));
    tx.commit();
    if (r.empty() || r[0][0].as<int64_t>() <= static_cast<int64_t>(unix_ms())) {
      return error(Code::kNotFound, "presence_remove " + owner + ": not present");
    }
    return Status{};
  });
}

void PostgresBackend::presence_list(std::string status_prefix, uint32_t limit,
                                    Callback<std::vector<Presence>> done) {
  if (Status s = first_error(check_status(status_prefix), check_limit(limit)); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<std::vector<Presence>>("presence_list", std::move(done),
                                    [status_prefix, limit](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const std::string select =
        "SELECT owner, status, expires_at_ms FROM presence WHERE expires_at_ms > $1"
        " AND status >= $2::bytea";
    const int64_t now = static_cast<int64_t>(unix_ms());
    const std::optional<std::string> end = prefix_end(status_prefix);
    const pqxx::result r =
        end ? tx.exec_params(select + " AND status < $4::bytea ORDER BY owner LIMIT $3", now,
                             blob(status_prefix), limit, blob(*end))
            : tx.exec_params(select + " ORDER BY owner LIMIT $3", now, blob(status_prefix), limit);
    std::vector<Presence> out;
    out.reserve(r.size());
    for (const pqxx::row& row : r) {
      out.push_back(Presence{bytes_of(row[0]), bytes_of(row[1]), row[2].as<int64_t>()});
    }
    return done_with(std::move(out));
  });
}

// ---- atomic batches ------------------------------------------------------------------

void PostgresBackend::apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) {
  if (Status s = check_batch(writes); !s.ok()) {
    return impl_->reject(std::move(done), std::move(s));
  }
  impl_->run<std::vector<int64_t>>("apply", std::move(done), [this, writes = std::move(writes)](
                                                                  pqxx::connection& c) {
    using Out = Outcome<std::vector<int64_t>>;
    // READ COMMITTED with row locks: every condition is checked by the statement that
    // writes (UPDATE ... WHERE version, INSERT ... ON CONFLICT), whose locks are held
    // until the commit, so the batch commits as a whole or not at all.
    pqxx::work tx(c);
    std::vector<int64_t> results(writes.size(), 0);
    for (size_t i = 0; i < writes.size(); ++i) {
      const Write& w = writes[i];
      Status s;
      try {
        switch (w.kind) {
          case Write::Kind::kPut: {
            Outcome<uint64_t> put = impl_->put_in(tx, w.collection, w.key, w.value, w.expected);
            s = std::move(put.status);
            results[i] = static_cast<int64_t>(put.value);
            break;
          }
          case Write::Kind::kDelete:
            s = impl_->remove_in(tx, w.collection, w.key, w.expected);
            break;
          case Write::Kind::kCounterAdd:
            results[i] = impl_->counter_add_in(tx, w.counter, w.delta);
            break;
          case Write::Kind::kSubmit:
            s = impl_->submit_in(tx, w.board, w.entry).status;
            break;
        }
      } catch (const pqxx::data_exception& e) {
        // 22003: a counter or an incremented score would overflow 64 bits.
        s = error(Code::kInvalidArgument, std::string("value out of range: ") + e.what());
      }
      if (!s.ok()) return Out{batch_error(i, std::move(s)), {}};
    }
    tx.commit();
    return Out{Status{}, std::move(results)};
  });
}

}  // namespace prism::store
