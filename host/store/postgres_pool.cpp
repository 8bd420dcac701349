// Worker threads and their connections for the PostgreSQL backend (see the header).
#include "store/postgres_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "base/thread_name.hpp"

namespace prism::store::postgres {
namespace {

using Clock = std::chrono::steady_clock;

// libpq messages span lines; a log line is one line (STYLE.md).
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
    if (c == '"') c = '\'';
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Reads what the server sent while the connection sat idle: a server that shut down or
// restarted has closed it, and that is found here, without a round trip, rather than by
// the next call. (libpqxx 6.4 also leaks the PGresult of a query that finds its connection
// closed under it, tests/lsan.supp: a call never starts on one known to be closed.)
bool still_open(pqxx::connection& conn) {
  try {
    conn.get_notifs();
  } catch (const std::exception&) {
  }
  return conn.is_open();
}

}  // namespace

struct ConnectionPool::Worker {
  size_t index = 0;
  std::thread thread;
  std::unique_ptr<pqxx::connection> conn;
  std::string why = "not connected yet";  // why conn is null
  uint32_t failures = 0;                   // consecutive failed connects
  Clock::time_point next_attempt{};
  std::minstd_rand jitter;
};

ConnectionPool::ConnectionPool(std::string conninfo, PoolOptions options, Setup setup)
    : conninfo_(std::move(conninfo)), options_(options), setup_(std::move(setup)) {
  const uint32_t n = std::max<uint32_t>(options_.connections, 1);
  for (uint32_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->jitter.seed(static_cast<uint32_t>(i * 7919 + 1));
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    w->thread = std::thread([this, raw = w.get()] { run(*raw); });
    name_thread(w->thread, "postgres-" + std::to_string(w->index));
  }
}

ConnectionPool::~ConnectionPool() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w->thread.join();
  // Every call completes exactly once, also at shutdown (backend.hpp).
  for (;;) {
    Job job;
    {
      std::lock_guard lk(mu_);
      if (queue_.empty()) break;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      job(nullptr, "backend shutting down");
    } catch (const std::exception& e) {
      spdlog::error("event=postgres_completion_threw error=\"{}\"", one_line(e.what()));
    }
  }
}

void ConnectionPool::post(Job job) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

bool ConnectionPool::connect(Worker& w) {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    // libpqxx 6 would otherwise reconnect behind our back inside the next call, skipping
    // setup_ and the backoff. Deprecated (its reactivation goes away in libpqxx 7), but
    // still on by default in 6.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    setup_(*conn);
    w.conn = std::move(conn);
    if (w.failures > 0) spdlog::info("event=postgres_reconnected worker={}", w.index);
    w.failures = 0;
    ++connected_;
    return true;
  } catch (const std::exception& e) {
    w.why = one_line(e.what());
    const auto base = std::min<int64_t>(options_.reconnect_max.count(),
                                        options_.reconnect_initial.count()
                                            << std::min<uint32_t>(w.failures, 20));
    // Up to 20% jitter so the workers of many nodes do not reconnect in lockstep.
    const int64_t jitter = base > 5 ? static_cast<int64_t>(w.jitter() % (base / 5)) : 0;
    w.next_attempt = Clock::now() + std::chrono::milliseconds(base + jitter);
    if (w.failures == 0) {
      spdlog::warn("event=postgres_connect_failed worker={} error=\"{}\"", w.index, w.why);
    }
    ++w.failures;
    return false;
  }
}

void ConnectionPool::drop(Worker& w, std::string why) {
  w.conn.reset();
  w.why = std::move(why);
  w.next_attempt = Clock::now();  // the first reconnect is immediate, then back off
  --connected_;
  spdlog::warn("event=postgres_disconnected worker={} reason=\"{}\"", w.index, w.why);
}

void ConnectionPool::run(Worker& w) {
  connect(w);
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      const auto deadline = w.conn ? Clock::now() + options_.probe_interval : w.next_attempt;
      wake_.wait_until(lk, deadline, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      if (queue_.empty()) {
        lk.unlock();
        if (w.conn) {
          if (!still_open(*w.conn)) drop(w, "connection lost while idle");
        } else if (Clock::now() >= w.next_attempt) {
          connect(w);
        }
        lk.lock();
        continue;
      }
    }
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    if (w.conn && !still_open(*w.conn)) drop(w, "connection lost while idle");
    if (!w.conn && Clock::now() >= w.next_attempt) connect(w);
    bool keep = true;
    try {
      keep = job(w.conn.get(), w.why);
    } catch (const std::exception& e) {
      spdlog::error("event=postgres_completion_threw error=\"{}\"", one_line(e.what()));
    }
    if (w.conn && (!keep || !w.conn->is_open())) drop(w, "connection lost during a call");
    lk.lock();
  }
}

}  // namespace prism::store::postgres
