// The PostgreSQL storage backend (DESIGN.md §6): documents, counters, leaderboards and
// presence as tables, the system of record. libpqxx blocks, so calls run on a small pool
// of worker threads (DESIGN.md §2) and complete there.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/expected.hpp"
#include "store/backend.hpp"

namespace prism::store {

struct PostgresOptions {
  // Worker threads, each with its own connection: the most calls in flight at once.
  uint32_t connections = 4;
  // After a lost connection: first retry at once, then back off from `reconnect_initial`
  // doubling up to `reconnect_max`. Calls made meanwhile fail with kUnavailable.
  std::chrono::milliseconds reconnect_initial{100};
  std::chrono::milliseconds reconnect_max{5000};
  // How often an idle connection checks that the server is still there, so healthy()
  // turns false without waiting for a call.
  std::chrono::milliseconds probe_interval{500};
  // Transactions that lose a serialization or deadlock race are retried this often.
  uint32_t max_retries = 5;
};

class PostgresBackend final : public Backend {
 public:
  // Connects, applies pending schema migrations (postgres_migrations.hpp) and starts the
  // workers. `conninfo` is a libpq connection string or URI; put connect_timeout in it
  // when the server may be unreachable rather than refusing. The error names what failed.
  static Expected<std::unique_ptr<PostgresBackend>> open(std::string conninfo,
                                                         PostgresOptions options = {});

  // Starts the workers without waiting: each connects (and migrates, once) on its own,
  // and calls fail with kUnavailable until one has. open() is the usual way in.
  PostgresBackend(std::string conninfo, PostgresOptions options = {});
  // Waits for the calls in progress; the queued ones complete with kUnavailable.
  ~PostgresBackend() override;

  std::string_view name() const override { return "postgres"; }

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

  bool healthy() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prism::store
