// The embedded SQLite backend (sqlite_backend.hpp): the writer thread's queue, and the
// calls of documents, counters, presence and batches (leaderboards: sqlite_leaderboards.cpp,
// the connection and its SQL: sqlite_database.cpp).
#include "store/sqlite_backend.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "base/thread_name.hpp"
#include "store/sqlite_database.hpp"
#include "store/validate.hpp"

namespace prism::store {

using namespace sqlite;

// ---- the writer thread -------------------------------------------------------------------

SqliteBackend::SqliteBackend(std::filesystem::path file, SqliteOptions options)
    : checkpoint_pages_(options.checkpoint_pages) {
  writer_.db = Database::open(file, options, open_error_);
  if (writer_.db == nullptr) {
    spdlog::error("event=store_open_failed backend=sqlite error=\"{}\"", open_error_);
  } else {
    healthy_.store(true, std::memory_order_relaxed);
    std::string reader_error;
    reader_.db = Database::open(file, options, reader_error, /*read_only=*/true);
    if (reader_.db == nullptr) {
      // Reads then queue behind the writes, as one connection serves all.
      spdlog::warn("event=store_reader_unavailable backend=sqlite error=\"{}\"", reader_error);
    }
    std::string checkpointer_error;
    checkpointer_.db = Database::open(file, options, checkpointer_error);
    if (checkpointer_.db != nullptr) {
      writer_.db->on_commit(
          [](void* self, sqlite3*, const char*, int pages) {
            static_cast<SqliteBackend*>(self)->committed(pages);
            return SQLITE_OK;
          },
          this);
    } else {
      // The writer then checkpoints itself, as SQLite does by default.
      spdlog::warn("event=store_checkpointer_unavailable backend=sqlite error=\"{}\"", checkpointer_error);
    }
    spdlog::info("event=store_opened backend=sqlite file={} synchronous={} reader={} checkpointer={}",
                 file.string(), options.synchronous_full ? "full" : "normal",
                 reader_.db != nullptr ? "on" : "off", checkpointer_.db != nullptr ? "on" : "off");
  }
  writer_.thread = std::thread([this] { run_lane(writer_, Batching::kGroupCommit); });
  reader_.thread = std::thread([this] { run_lane(reader_, Batching::kOneSnapshot); });
  checkpointer_.thread = std::thread([this] { run_lane(checkpointer_, Batching::kNone); });
  name_thread(writer_.thread, "sqlite-writer");
  name_thread(reader_.thread, "sqlite-reader");
  name_thread(checkpointer_.thread, "sqlite-ckpt");
}

SqliteBackend::~SqliteBackend() {
  stop(reader_);
  stop(checkpointer_);
  stop(writer_);  // last: closing the last connection checkpoints what is left
}

uint64_t SqliteBackend::key(char kind, std::string_view name, std::string_view second) {
  // FNV-1a over kind, name, a separator and second.
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](unsigned char c) { hash = (hash ^ c) * 1099511628211ull; };
  mix(static_cast<unsigned char>(kind));
  for (char c : name) mix(static_cast<unsigned char>(c));
  mix(0);
  for (char c : second) mix(static_cast<unsigned char>(c));
  return hash;
}

uint64_t SqliteBackend::last_write_to(const Keys& keys) {
  std::lock_guard lock(writer_.mu);
  if (keys.empty()) return writes_queued_;
  uint64_t last = 0;
  for (uint64_t k : keys) {
    if (auto it = last_write_.find(k); it != last_write_.end()) last = std::max(last, it->second);
  }
  return last;
}

void SqliteBackend::committed(int wal_pages) {
  if (wal_pages >= 4 * checkpoint_pages_) {
    // The checkpointer has copied most of the WAL; copying the rest here, between commits,
    // lets the next commit start the WAL over (a checkpoint beside a busy writer never
    // catches up with it, and the WAL would grow without end). The writer waits for a pass
    // of the checkpointer to end rather than try again at the next commit: re-queued after
    // every pass, the checkpointer would keep it out while the WAL grows (measured: to
    // ~7 400 pages in a test that steps in at 4 000).
    std::lock_guard lock(checkpoint_mu_);
    if (Status s = writer_.db->checkpoint(); !s.ok() && s.code != Code::kUnavailable) {
      spdlog::warn("event=store_checkpoint_failed backend=sqlite error=\"{}\"", s.message);
    }
    return;
  }
  if (wal_pages < checkpoint_pages_ || checkpoint_queued_.exchange(true)) return;
  enqueue(checkpointer_, [this](Database* db, bool cancelled) -> Finish {
    if (db != nullptr && !cancelled) {
      std::lock_guard lock(checkpoint_mu_);
      if (Status s = db->checkpoint(); !s.ok() && s.code != Code::kUnavailable) {
        spdlog::warn("event=store_checkpoint_failed backend=sqlite error=\"{}\"", s.message);
      }
    }
    checkpoint_queued_.store(false);
    return {};
  });
}

void SqliteBackend::stop(Lane& lane) {
  {
    std::lock_guard lock(lane.mu);
    lane.stopping = true;
  }
  lane.wake.notify_one();
  lane.thread.join();
}

void SqliteBackend::writes_answered(uint64_t count) {
  {
    std::lock_guard lock(done_mu_);
    writes_done_ += count;
  }
}

bool SqliteBackend::writes_pending(uint64_t count) {
  std::lock_guard lock(done_mu_);
  return writes_done_ < count;
}

void SqliteBackend::enqueue(Lane& lane, Job job, const Keys* written) {
  {
    std::unique_lock lock(lane.mu);
    if (!lane.closed) {
      if (&lane == &writer_) {
        ++writes_queued_;
        if (written != nullptr) {
          for (uint64_t k : *written) last_write_[k] = writes_queued_;
        }
        if (last_write_.size() >= prune_at_) {
          // Forget the keys whose last write was answered: no read waits for those.
          uint64_t done;
          {
            std::lock_guard done_lock(done_mu_);
            done = writes_done_;
          }
          std::erase_if(last_write_, [done](const auto& entry) { return entry.second <= done; });
          prune_at_ = std::max<size_t>(4096, 2 * last_write_.size());
        }
      }
      lane.queue.push_back(std::move(job));
      lock.unlock();
      lane.wake.notify_one();
      return;
    }
  }
  // Only a call racing with the destructor gets here; complete it rather than drop it.
  if (Finish finish = job(nullptr, true)) finish(nullptr);
}

// Group commit (the writer): the lane takes every call queued (up to kMaxGroup), runs them
// in one write transaction, commits once and only then answers them all. Under load one
// commit serves many calls; alone, a call is its own group (as before). Durability is
// unchanged: an OK is sent after the commit that keeps it.
// One snapshot (the reader): the calls taken together run in one read transaction, and
// each is answered as soon as it ran. A statement outside a transaction takes and drops
// SQLite's file locks (four fcntl calls) and its WAL read mark; per batch instead, they
// were ~8 % of a top-10 read's CPU (perf, docs/performance.md). Each read still sees every
// write it must: a read is queued here only once the writes it waits for are answered
// (committed), so before the batch was taken, and the snapshot starts after that.
void SqliteBackend::run_lane(Lane& lane, Batching batching) {
  const bool group = batching == Batching::kGroupCommit;
  auto guarded = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      spdlog::error("event=store_completion_threw backend=sqlite error=\"{}\"", e.what());
    } catch (...) {
      spdlog::error("event=store_completion_threw backend=sqlite error=unknown");
    }
  };
  std::vector<Job> batch;
  std::vector<Finish> finished;
  for (;;) {
    batch.clear();
    {
      std::unique_lock lock(lane.mu);
      lane.wake.wait(lock, [&] { return lane.stopping || !lane.queue.empty(); });
      if (lane.stopping) break;
      while (!lane.queue.empty() && batch.size() < kMaxGroup) {
        batch.push_back(std::move(lane.queue.front()));
        lane.queue.pop_front();
      }
    }
    // Without a group (BEGIN failed) each call runs in its own transaction, as alone;
    // a group runs first without a savepoint per call (Database::begin_group).
    bool grouped = group && lane.db != nullptr && batch.size() > 1 && lane.db->begin_group(false).ok();
    const bool one_snapshot = batching == Batching::kOneSnapshot && lane.db != nullptr &&
                              batch.size() > 1 && lane.db->begin_reads().ok();
    auto run_batch = [&] {
      finished.clear();
      for (Job& job : batch) {
        Finish finish;
        guarded([&] { finish = job(lane.db.get(), false); });
        if (!grouped) {
          // Counted before its completion runs: a read the caller sends from there (or
          // after it) must find the write answered, or it would queue behind later writes.
          if (group) writes_answered(1);
          if (finish) guarded([&] { finish(nullptr); });
        } else {
          finished.push_back(std::move(finish));
        }
      }
    };
    run_batch();
    if (grouped && lane.db->group_tainted()) {
      // A call failed after changing rows: only the whole group can be undone. Nothing was
      // answered yet; the same calls run again, each in a savepoint.
      lane.db->abandon_group();
      groups_rerun_.fetch_add(1, std::memory_order_relaxed);
      grouped = lane.db->begin_group(true).ok();
      run_batch();
    }
    if (one_snapshot) lane.db->end_reads();
    if (!grouped) continue;
    const Status committed = lane.db->end_group();
    if (committed.ok()) {
      groups_.fetch_add(1, std::memory_order_relaxed);
    } else {
      spdlog::error("event=store_group_failed backend=sqlite calls={} error=\"{}\"", batch.size(),
                    committed.message);
    }
    writes_answered(finished.size());
    for (Finish& finish : finished) {
      if (finish) guarded([&] { finish(committed.ok() ? nullptr : &committed); });
    }
  }
  // Shutting down: complete what is queued (and whatever those completions queue).
  for (;;) {
    Job job;
    {
      std::lock_guard lock(lane.mu);
      if (lane.queue.empty()) {
        lane.closed = true;
        break;
      }
      job = std::move(lane.queue.front());
      lane.queue.pop_front();
    }
    Finish finish;
    guarded([&] { finish = job(nullptr, true); });
    if (group) writes_answered(1);
    if (finish) guarded([&] { finish(nullptr); });
  }
  lane.db.reset();
}

// ---- documents ---------------------------------------------------------------------------

void SqliteBackend::get(std::string collection, std::string key, Callback<Document> done) {
  Keys keys{SqliteBackend::key('d', collection, key)};
  post<Document>(
      std::move(done),
      [collection = std::move(collection), key = std::move(key)](Database& db, Document& doc) {
        if (Status s = check_name("collection", collection); !s.ok()) return s;
        if (Status s = check_name("key", key); !s.ok()) return s;
        return db.get_doc(collection, key, doc);
      },
      std::move(keys), /*read=*/true);
}

void SqliteBackend::put(std::string collection, std::string key, std::string value,
                        ExpectedVersion expected, Callback<uint64_t> done) {
  Keys keys{SqliteBackend::key('d', collection, key)};
  post<uint64_t>(std::move(done), [collection = std::move(collection), key = std::move(key),
                                   value = std::move(value),
                                   expected](Database& db, uint64_t& version) {
    if (Status s = check_name("collection", collection); !s.ok()) return s;
    if (Status s = check_name("key", key); !s.ok()) return s;
    if (Status s = check_value(value); !s.ok()) return s;
    return db.transaction([&] { return db.put_doc(collection, key, value, expected, version); });
  }, std::move(keys));
}

void SqliteBackend::remove(std::string collection, std::string key, ExpectedVersion expected,
                           Done done) {
  Keys keys{SqliteBackend::key('d', collection, key)};
  post_done(std::move(done),
            [collection = std::move(collection), key = std::move(key), expected](Database& db) {
              if (Status s = check_name("collection", collection); !s.ok()) return s;
              if (Status s = check_name("key", key); !s.ok()) return s;
              return db.transaction([&] { return db.delete_doc(collection, key, expected); });
            },
            std::move(keys));
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
      },
      Keys{}, /*read=*/true);
}

// ---- counters ----------------------------------------------------------------------------

void SqliteBackend::counter_add(std::string counter, int64_t delta, Callback<int64_t> done) {
  Keys keys{key('c', counter)};
  post<int64_t>(std::move(done),
                [counter = std::move(counter), delta](Database& db, int64_t& value) {
                  if (Status s = check_name("counter", counter); !s.ok()) return s;
                  return db.transaction([&] { return db.add_counter(counter, delta, value); });
                },
                std::move(keys));
}

void SqliteBackend::counter_get(std::string counter, Callback<int64_t> done) {
  Keys keys{key('c', counter)};
  post<int64_t>(
      std::move(done),
      [counter = std::move(counter)](Database& db, int64_t& value) {
        if (Status s = check_name("counter", counter); !s.ok()) return s;
        return db.get_counter(counter, value);
      },
      std::move(keys), /*read=*/true);
}

// ---- presence ----------------------------------------------------------------------------

void SqliteBackend::presence_set(std::string owner, std::string status,
                                 std::chrono::milliseconds ttl, Done done) {
  Keys keys{key('p', owner)};
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
            },
            std::move(keys));
}

void SqliteBackend::presence_get(std::string owner, Callback<Presence> done) {
  Keys keys{key('p', owner)};
  post<Presence>(
      std::move(done),
      [owner = std::move(owner)](Database& db, Presence& presence) {
        if (Status s = check_name("owner", owner); !s.ok()) return s;
        return db.get_presence(owner, presence);
      },
      std::move(keys), /*read=*/true);
}

void SqliteBackend::presence_remove(std::string owner, Done done) {
  Keys keys{key('p', owner)};
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
  }, std::move(keys));
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
    stmt.text(1, prefix).text_or_null(2, prefix_end(prefix)).integer(3, now_ms()).integer(4, limit);
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      out.push_back(Presence{stmt.bytes_at(0), stmt.bytes_at(1), stmt.integer_at(2)});
    }
    return rc == SQLITE_DONE ? Status{} : db.error("list presence");
  }, Keys{}, /*read=*/true);
}

// ---- apply -------------------------------------------------------------------------------

void SqliteBackend::apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) {
  Keys keys;
  keys.reserve(writes.size());
  for (const Write& write : writes) {
    switch (write.kind) {
      case Write::Kind::kPut:
      case Write::Kind::kDelete: keys.push_back(key('d', write.collection, write.key)); break;
      case Write::Kind::kCounterAdd: keys.push_back(key('c', write.counter)); break;
      case Write::Kind::kSubmit: keys.push_back(key('b', write.board)); break;
    }
  }
  post<std::vector<int64_t>>(
      std::move(done), [writes = std::move(writes)](Database& db, std::vector<int64_t>& results) {
        if (Status s = check_batch(writes); !s.ok()) return s;
        results.assign(writes.size(), 0);
        if (writes.empty()) return Status{};
        return db.transaction([&] {
          std::vector<uint64_t> found;
          size_t failed = 0;
          if (Status s = db.check_writes(writes, found, failed); !s.ok()) {
            return batch_error(failed, std::move(s));
          }
          for (size_t i = 0; i < writes.size(); ++i) {
            if (Status s = db.apply_write(writes[i], found[i], results[i]); !s.ok()) {
              return batch_error(i, std::move(s));
            }
          }
          return Status{};
        });
      },
      std::move(keys));
}

}  // namespace prism::store
