// A fixed set of worker threads, each owning one libpqxx connection, that run the
// PostgreSQL backend's blocking calls off the callers' threads (DESIGN.md §2). A lost
// connection is re-opened with exponential backoff; meanwhile jobs fail at once.
#pragma once

#include <pqxx/connection>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace prism::store::postgres {

struct PoolOptions {
  uint32_t connections = 4;  // worker threads, one connection each
  std::chrono::milliseconds reconnect_initial{100};  // first backoff after a failed connect
  std::chrono::milliseconds reconnect_max{5000};     // backoff ceiling
  std::chrono::milliseconds probe_interval{500};     // an idle connection is checked this often
};

class ConnectionPool {
 public:
  // Runs on every new connection before it takes jobs (session settings, migrations);
  // throwing makes the connect count as failed, with the exception's message.
  using Setup = std::function<void(pqxx::connection&)>;
  // A job gets the worker's connection, or nullptr and the reason when it has none (then
  // it must fail with kUnavailable). It returns false when it found the connection
  // broken, so the worker drops it and reconnects.
  using Job = std::function<bool(pqxx::connection* conn, std::string_view why)>;

  ConnectionPool(std::string conninfo, PoolOptions options, Setup setup);
  // Stops the workers after their current job; queued jobs then run with nullptr.
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void post(Job job);
  // True while every worker holds an open connection.
  bool healthy() const { return connected_.load() == workers_.size(); }

 private:
  struct Worker;
  void run(Worker& w);
  bool connect(Worker& w);
  void drop(Worker& w, std::string why);

  const std::string conninfo_;
  const PoolOptions options_;
  const Setup setup_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;

  std::atomic<size_t> connected_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace prism::store::postgres
