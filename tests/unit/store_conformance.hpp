// The conformance suite every storage backend (host/store/backend.hpp) must pass: each
// method and rule of the interface, run against a fresh, empty store per test.
//
// Use: link the backend's test binary with store-conformance (the suite's tests, in
// store_conformance.cpp, compiled once for every backend), include this header in one of
// its test files, then
//
//   INSTANTIATE_STORE_CONFORMANCE(Sqlite, [] { return make_sqlite_backend(); });
//
// at namespace scope. The first argument names the instantiation (an identifier); the
// rest is a callable returning std::unique_ptr<prism::store::Backend> for a new, empty
// store (a fresh file, a flushed database, a unique key prefix — whatever isolates it).
// The store is destroyed at the end of each test.
//
// Rules the suite holds every backend to, beyond backend.hpp's own words:
// - arguments are checked with host/store/validate.hpp (kInvalidArgument), also limits of
//   0 and > kMaxListLimit for top/page/around, and a ttl <= 0;
// - remove of an absent document is kNotFound (unconditional or expected 0), and a
//   condition n > 0 on an absent document is kConflict (for put and remove alike);
// - a deleted document that is written again starts at version 1;
// - board_submit stamps submitted_ms with the backend's clock (entry.submitted_ms given
//   by the caller is ignored); kBest keeps the old entry (score, subscore, metadata,
//   time) unless the new (score, subscore) is strictly better; kSet and kIncrement
//   replace the metadata and the time;
// - board_remove of an absent owner is kNotFound, presence_remove of an absent owner too;
// - in apply(), a delete of an absent document or a submit to an unknown board fails the
//   batch like a failed condition (kNotFound); the failing op is named "write <index>: "
//   (validate.hpp's batch_error); later writes see earlier writes of the same batch.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "store/backend.hpp"

namespace prism::store::conformance {

using namespace std::chrono_literals;

// How long any single completion may take before the test fails (no test sleeps).
inline constexpr std::chrono::milliseconds kDeadline = 10s;

struct StoreFactory {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  friend void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }
};

// What a completion delivered, plus whether it broke the "never inside the call" rule.
template <typename T>
struct Reply {
  Status status;
  T value{};
  bool ran_inside_call = false;
};

// Set on the calling thread while a backend method runs: a completion that sees it set
// ran synchronously inside the call.
inline thread_local bool t_inside_call = false;

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Starts a call through `start(Callback<T>)` and waits for its completion up to
// `deadline`. A missing or synchronous completion is a test failure.
template <typename T, typename Start>
Reply<T> await(Start&& start, std::chrono::milliseconds deadline = kDeadline) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int completions = 0;
    Reply<T> reply;
  };
  auto state = std::make_shared<State>();
  Callback<T> done = [state](Status status, T value) {
    const bool inside = t_inside_call;
    std::lock_guard lock(state->mu);
    if (++state->completions == 1) {
      state->reply.status = std::move(status);
      state->reply.value = std::move(value);
      state->reply.ran_inside_call = inside;
    }
    state->cv.notify_all();
  };
  t_inside_call = true;
  start(std::move(done));
  t_inside_call = false;
  std::unique_lock lock(state->mu);
  if (!state->cv.wait_for(lock, deadline, [&] { return state->completions > 0; })) {
    ADD_FAILURE() << "no completion within " << deadline.count() << "ms";
    return Reply<T>{{Code::kInternal, "conformance: no completion before the deadline"}};
  }
  EXPECT_FALSE(state->reply.ran_inside_call) << "the completion ran inside the call";
  return state->reply;
}

// The same for calls completing with a bare Done.
template <typename Start>
Status await_done(Start&& start, std::chrono::milliseconds deadline = kDeadline) {
  return await<std::monostate>(
             [&](Callback<std::monostate> done) {
               start([done = std::move(done)](Status status) { done(std::move(status), {}); });
             },
             deadline)
      .status;
}

// Counts outstanding completions from many threads; wait() returns when all arrived.
class CompletionLatch {
 public:
  explicit CompletionLatch(int expected) : remaining_(expected) {}
  void arrive() {
    std::lock_guard lock(mu_);
    if (--remaining_ == 0) cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds deadline = kDeadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return remaining_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int remaining_;
};

inline std::vector<std::string> owners_of(const std::vector<Entry>& entries) {
  std::vector<std::string> owners;
  for (const Entry& e : entries) owners.push_back(e.owner);
  return owners;
}
inline std::vector<uint64_t> ranks_of(const std::vector<Entry>& entries) {
  std::vector<uint64_t> ranks;
  for (const Entry& e : entries) ranks.push_back(e.rank);
  return ranks;
}
inline std::vector<std::string> keys_of(const std::vector<Document>& docs) {
  std::vector<std::string> keys;
  for (const Document& d : docs) keys.push_back(d.key);
  return keys;
}

// Waits (without sleeping) until the wall clock's millisecond passed `ms`, so that two
// submissions get different submission times.
inline void wait_past_ms(int64_t ms) {
  while (now_ms() <= ms) std::this_thread::yield();
}

// Builders for apply() batches.
inline Write put_write(std::string collection, std::string key, std::string value,
                       ExpectedVersion expected = std::nullopt) {
  Write w;
  w.kind = Write::Kind::kPut;
  w.collection = std::move(collection);
  w.key = std::move(key);
  w.value = std::move(value);
  w.expected = expected;
  return w;
}
inline Write delete_write(std::string collection, std::string key,
                          ExpectedVersion expected = std::nullopt) {
  Write w;
  w.kind = Write::Kind::kDelete;
  w.collection = std::move(collection);
  w.key = std::move(key);
  w.expected = expected;
  return w;
}
inline Write counter_write(std::string counter, int64_t delta) {
  Write w;
  w.kind = Write::Kind::kCounterAdd;
  w.counter = std::move(counter);
  w.delta = delta;
  return w;
}
inline Write submit_write(std::string board, std::string owner, int64_t score,
                          int64_t subscore = 0, std::string metadata = "") {
  Write w;
  w.kind = Write::Kind::kSubmit;
  w.board = std::move(board);
  w.entry.owner = std::move(owner);
  w.entry.score = score;
  w.entry.subscore = subscore;
  w.entry.metadata = std::move(metadata);
  return w;
}

class StoreConformance : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().make();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { store_.reset(); }

  Backend& store() { return *store_; }

  // One wrapper per method: start it and wait for the completion.
  Reply<Document> get(std::string collection, std::string key) {
    return await<Document>([&](Callback<Document> cb) { store().get(collection, key, cb); });
  }
  Reply<uint64_t> put(std::string collection, std::string key, std::string value,
                      ExpectedVersion expected = std::nullopt) {
    return await<uint64_t>(
        [&](Callback<uint64_t> cb) { store().put(collection, key, value, expected, cb); });
  }
  Status remove(std::string collection, std::string key, ExpectedVersion expected = std::nullopt) {
    return await_done([&](Done cb) { store().remove(collection, key, expected, cb); });
  }
  Reply<std::vector<Document>> list(std::string collection, std::string prefix, std::string after,
                                    uint32_t limit) {
    return await<std::vector<Document>>([&](Callback<std::vector<Document>> cb) {
      store().list(collection, prefix, after, limit, cb);
    });
  }
  Reply<int64_t> counter_add(std::string counter, int64_t delta) {
    return await<int64_t>([&](Callback<int64_t> cb) { store().counter_add(counter, delta, cb); });
  }
  Reply<int64_t> counter_get(std::string counter) {
    return await<int64_t>([&](Callback<int64_t> cb) { store().counter_get(counter, cb); });
  }
  Status board_create(std::string board, SortOrder order = SortOrder::kDescending,
                      Operator op = Operator::kBest) {
    return await_done([&](Done cb) { store().board_create(BoardSpec{board, order, op}, cb); });
  }
  Reply<Entry> submit(std::string board, std::string owner, int64_t score, int64_t subscore = 0,
                      std::string metadata = "") {
    Entry entry;
    entry.owner = owner;
    entry.score = score;
    entry.subscore = subscore;
    entry.metadata = metadata;
    return await<Entry>([&](Callback<Entry> cb) { store().board_submit(board, entry, cb); });
  }
  Reply<std::vector<Entry>> top(std::string board, uint32_t limit) {
    return await<std::vector<Entry>>(
        [&](Callback<std::vector<Entry>> cb) { store().board_top(board, limit, cb); });
  }
  Reply<std::vector<Entry>> page(std::string board, uint64_t after_rank, uint32_t limit) {
    return await<std::vector<Entry>>(
        [&](Callback<std::vector<Entry>> cb) { store().board_page(board, after_rank, limit, cb); });
  }
  Reply<std::vector<Entry>> around(std::string board, std::string owner, uint32_t limit) {
    return await<std::vector<Entry>>(
        [&](Callback<std::vector<Entry>> cb) { store().board_around(board, owner, limit, cb); });
  }
  Reply<Entry> rank(std::string board, std::string owner) {
    return await<Entry>([&](Callback<Entry> cb) { store().board_rank(board, owner, cb); });
  }
  Status board_remove(std::string board, std::string owner) {
    return await_done([&](Done cb) { store().board_remove(board, owner, cb); });
  }
  Status board_reset(std::string board) {
    return await_done([&](Done cb) { store().board_reset(board, cb); });
  }
  Status presence_set(std::string owner, std::string status, std::chrono::milliseconds ttl) {
    return await_done([&](Done cb) { store().presence_set(owner, status, ttl, cb); });
  }
  Reply<Presence> presence_get(std::string owner) {
    return await<Presence>([&](Callback<Presence> cb) { store().presence_get(owner, cb); });
  }
  Status presence_remove(std::string owner) {
    return await_done([&](Done cb) { store().presence_remove(owner, cb); });
  }
  Reply<std::vector<Presence>> presence_list(std::string prefix, uint32_t limit) {
    return await<std::vector<Presence>>(
        [&](Callback<std::vector<Presence>> cb) { store().presence_list(prefix, limit, cb); });
  }
  Reply<std::vector<int64_t>> apply(std::vector<Write> writes) {
    return await<std::vector<int64_t>>(
        [&](Callback<std::vector<int64_t>> cb) { store().apply(writes, cb); });
  }

  std::unique_ptr<Backend> store_;
};

#define PRISM_EXPECT_CODE(expr, expected_code)                          \
  do {                                                                  \
    const ::prism::store::Status prism_status_ = (expr);                \
    EXPECT_EQ(prism_status_.code, (expected_code)) << prism_status_.message; \
  } while (0)

}  // namespace prism::store::conformance

// Instantiates the suite for one backend; see the top of this file. Use at namespace scope.
#define INSTANTIATE_STORE_CONFORMANCE(Name, ...)                                       \
  namespace prism::store::conformance {                                                \
  INSTANTIATE_TEST_SUITE_P(Name, StoreConformance,                                     \
                           ::testing::Values(StoreFactory{#Name, __VA_ARGS__}));       \
  }                                                                                    \
  static_assert(true)
