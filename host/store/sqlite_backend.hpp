// The embedded storage backend (DESIGN.md §6): documents, counters, leaderboards and
// presence in one SQLite file in WAL mode, served by one dedicated writer thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/backend.hpp"

struct sqlite3;

namespace prism::store {

struct SqliteOptions {
  // NORMAL (the default) fsyncs the WAL only at checkpoints: a commit survives a crash of
  // prismd (the WAL frames are in the OS page cache) but the last commits may be lost on
  // a power failure or kernel crash. FULL fsyncs the WAL at every commit and survives
  // those as well, at the cost of one fsync per write.
  bool synchronous_full = false;
  // How long a statement waits for a lock held by another connection to the same file
  // (a backup tool, the sqlite3 shell) before failing with kUnavailable.
  std::chrono::milliseconds busy_timeout{5000};
  // The checkpoint thread copies the WAL into the database once it holds this many pages;
  // the writer copies what is left at four times as many, so the WAL starts over (64 MiB
  // of 4 KiB pages at the default, the journal_size_limit). Four times SQLite's default:
  // a page rewritten by many commits in between is copied once, and recordings ran ~10 %
  // faster (docs/performance.md). Tests lower it.
  int checkpoint_pages = 4000;
};

// Every write is queued to the writer thread, which runs the calls queued meanwhile in one
// transaction (group commit: each a savepoint) and completes them after its commit.
// SQLite allows one writer at a time, so one thread loses nothing and needs no locking
// around the connection. Reads go to a reader thread with its own read-only connection:
// a read waits for the writes queued before it to what it reads (the same document,
// counter, board or presence owner; a list waits for every write), as if each of those
// had one queue, and runs beside everything else (WAL lets it read the last commit while
// the writer writes). A read with such a write still unanswered waits behind it on the
// writer's queue, so that no other read waits with it. A third thread with its own
// connection checkpoints the WAL into the database file, so the writer copies pages only
// when the WAL has outgrown four times the checkpoint threshold (then after that thread's
// pass in progress, so the WAL can start over).
// Destroying the backend completes the calls still queued with kUnavailable and joins the
// threads; calls made concurrently with the destructor are the caller's bug.
class SqliteBackend final : public Backend {
 public:
  // The layout written to PRAGMA user_version; opening a newer file is refused.
  static constexpr int kSchemaVersion = 3;

  // Opens (creating if needed) `file` and migrates its schema. When that fails, healthy()
  // is false and every call completes with kUnavailable naming the cause.
  explicit SqliteBackend(std::filesystem::path file, SqliteOptions options = {});
  ~SqliteBackend() override;
  SqliteBackend(const SqliteBackend&) = delete;
  SqliteBackend& operator=(const SqliteBackend&) = delete;

  std::string_view name() const override { return "sqlite"; }

  void get(std::string collection, std::string key, Callback<Document> done) override;
  void put(std::string collection, std::string key, std::string value, ExpectedVersion expected,
           Callback<uint64_t> done) override;
  void remove(std::string collection, std::string key, ExpectedVersion expected,
              Done done) override;
  void list(std::string collection, std::string prefix, std::string after, uint32_t limit,
            Callback<std::vector<Document>> done) override;

  void counter_add(std::string counter, int64_t delta, Callback<int64_t> done) override;
  void counter_get(std::string counter, Callback<int64_t> done) override;

  void board_create(BoardSpec spec, Done done) override;
  void board_submit(std::string board, Entry entry, Callback<Entry> done) override;
  void board_top(std::string board, uint32_t limit, Callback<std::vector<Entry>> done) override;
  void board_page(std::string board, uint64_t after_rank, uint32_t limit,
                  Callback<std::vector<Entry>> done) override;
  void board_around(std::string board, std::string owner, uint32_t limit,
                    Callback<std::vector<Entry>> done) override;
  void board_rank(std::string board, std::string owner, Callback<Entry> done) override;
  void board_remove(std::string board, std::string owner, Done done) override;
  void board_reset(std::string board, Done done) override;

  void presence_set(std::string owner, std::string status, std::chrono::milliseconds ttl,
                    Done done) override;
  void presence_get(std::string owner, Callback<Presence> done) override;
  void presence_remove(std::string owner, Done done) override;
  void presence_list(std::string status_prefix, uint32_t limit,
                     Callback<std::vector<Presence>> done) override;

  void apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) override;

  bool healthy() const override { return healthy_.load(std::memory_order_relaxed); }
  // Why the file could not be opened ("" when it was).
  const std::string& open_error() const { return open_error_; }
  // Commits that kept more than one call (group commit, run_writer): for tests and figures.
  uint64_t groups_committed() const { return groups_.load(std::memory_order_relaxed); }
  // Groups run a second time, with a savepoint per call, because a call failed after
  // changing rows (Database::begin_group): for tests.
  uint64_t groups_rerun() const { return groups_rerun_.load(std::memory_order_relaxed); }

 private:
  class Database;  // the connection and its prepared statements; writer thread only
  // A queued call: run(db, false) does the work on the lane's connection (null when it
  // could not be opened), run(db, true) only fails it (shutdown); either returns its
  // answer, which the lane gives once the call's group is committed: with nullptr, or with
  // the group's failure (an OK the commit did not keep becomes it). The writer may run a
  // call again (a tainted group: run_lane); each run's answer replaces the last. An answer
  // may refer to its call, so it is given before the call is destroyed.
  using Finish = std::function<void(const Status* group_failed)>;
  using Job = std::function<Finish(Database* db, bool cancelled)>;
  // At most this many calls share one commit (bounds the wait of the first).
  static constexpr size_t kMaxGroup = 256;

  // What a call reads or writes, for a read's wait: one hash per document, counter, board
  // or presence owner (two names sharing a hash only make a read wait longer than it must).
  // A read with no keys (a list) waits for every write queued before it.
  using Keys = std::vector<uint64_t>;
  static uint64_t key(char kind, std::string_view name, std::string_view second = {});

  // A thread, its queue and its connection.
  struct Lane {
    std::unique_ptr<Database> db;
    std::mutex mu;
    std::condition_variable wake;
    std::deque<Job> queue;
    bool stopping = false;
    bool closed = false;  // the thread has finished draining
    std::thread thread;
  };

  // `keys`: what the call writes, or (`read`) reads; a read may run on the reader lane.
  template <typename T, typename Work>
  void post(Callback<T> done, Work work, Keys keys, bool read = false);
  template <typename Work>
  void post_done(Done done, Work work, Keys keys);
  // `written`: the keys of a call queued to the writer.
  void enqueue(Lane& lane, Job job, const Keys* written = nullptr);
  // The number of the last write queued to any of `keys` (of any write when there are none).
  uint64_t last_write_to(const Keys& keys);
  // The WAL hook of the writer's connection: queues a checkpoint when the WAL has grown.
  void committed(int wal_pages);
  // How a lane runs the calls it takes together: the writer's in one write transaction
  // (answered after its commit), the reader's on one snapshot (each answered at once), the
  // checkpointer's each alone.
  enum class Batching { kGroupCommit, kOneSnapshot, kNone };
  void run_lane(Lane& lane, Batching batching);
  static void stop(Lane& lane);

  std::string open_error_;
  std::atomic<bool> healthy_{false};
  std::atomic<uint64_t> groups_{0};
  std::atomic<uint64_t> groups_rerun_{0};
  Lane writer_;  // every write; every call when the reader's connection did not open
  Lane reader_;  // reads, on a read-only connection
  Lane checkpointer_;  // WAL checkpoints, on a connection of their own
  std::atomic<bool> checkpoint_queued_{false};
  std::mutex checkpoint_mu_;  // held by a checkpoint pass, the checkpointer's or the writer's
  int checkpoint_pages_ = 0;  // SqliteOptions::checkpoint_pages
  // A read sees the writes queued before it to its keys (the order of one queue per key,
  // which compare-and-set retry loops rely on): it runs on the reader once they have been
  // answered, and behind them on the writer's queue while any is not. Writes are numbered
  // in queue order; under done_mu_ for the done side.
  uint64_t writes_queued_ = 0;  // under writer_.mu
  std::unordered_map<uint64_t, uint64_t> last_write_;  // key → its last write; under writer_.mu
  size_t prune_at_ = 4096;  // last_write_ drops answered writes when it reaches this size
  std::mutex done_mu_;
  uint64_t writes_done_ = 0;
  bool writes_pending(uint64_t count);  // fewer than `count` writes answered yet
  void writes_answered(uint64_t count);  // the writer lane, once committed, before completions
};

}  // namespace prism::store
