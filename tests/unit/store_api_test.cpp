// The storage entries of the host function table (plugin.h ABI 1.1): arguments reach the
// facet's backend, results reach the plugin's completion with the right C layout, and the
// completion runs on the worker that made the call, never inside the call.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/worker.hpp"
#include "plugins/plugin_types.hpp"
#include "plugins/store_api.hpp"

namespace prism::plugins {
namespace {

using namespace std::chrono_literals;

// Answers from its own thread, like a real backend; records what it was asked.
class FakeBackend final : public store::Backend {
 public:
  ~FakeBackend() override {
    for (auto& t : threads_) t.join();
  }
  std::string_view name() const override { return "fake"; }
  bool healthy() const override { return true; }

  void get(std::string collection, std::string key, store::Callback<store::Document> done) override {
    later([=] {
      if (key == "missing") return done({store::Code::kNotFound, "no document"}, {});
      done({}, store::Document{collection, key, "value of " + key, 7});
    });
  }
  void put(std::string, std::string key, std::string, store::ExpectedVersion expected,
           store::Callback<uint64_t> done) override {
    last_expected = expected;
    later([=] {
      if (key == "stale") return done({store::Code::kConflict, "version 3 is stale"}, 0);
      done({}, 4);
    });
  }
  void board_top(std::string, uint32_t limit, store::Callback<std::vector<store::Entry>> done) override {
    later([=] {
      std::vector<store::Entry> entries;
      for (uint32_t i = 0; i < limit; ++i) {
        entries.push_back({"p" + std::to_string(i), 100 - int64_t(i), 0, "m", i + 1, 1000});
      }
      done({}, entries);
    });
  }
  void apply(std::vector<store::Write> writes, store::Callback<std::vector<int64_t>> done) override {
    applied = writes;
    ++batches;
    later([=, value = apply_value, fails = apply_fails] {
      if (fails) return done({store::Code::kConflict, "write 0: version 2 is stale"}, {});
      done({}, std::vector<int64_t>(writes.size(), value));
    });
  }

  // Unused by these tests.
  void remove(std::string, std::string, store::ExpectedVersion, store::Done) override {}
  void list(std::string, std::string, std::string, uint32_t, store::Callback<std::vector<store::Document>>) override {}
  void counter_add(std::string, int64_t, store::Callback<int64_t>) override {}
  void counter_get(std::string, store::Callback<int64_t>) override {}
  void board_create(store::BoardSpec, store::Done) override {}
  void board_submit(std::string, store::Entry, store::Callback<store::Entry>) override {}
  void board_page(std::string, uint64_t, uint32_t, store::Callback<std::vector<store::Entry>>) override {}
  void board_around(std::string, std::string, uint32_t, store::Callback<std::vector<store::Entry>>) override {}
  void board_rank(std::string, std::string, store::Callback<store::Entry>) override {}
  void board_remove(std::string, std::string, store::Done) override {}
  void board_reset(std::string, store::Done) override {}
  void presence_set(std::string, std::string, std::chrono::milliseconds, store::Done) override {}
  void presence_get(std::string, store::Callback<store::Presence>) override {}
  void presence_remove(std::string, store::Done) override {}
  void presence_list(std::string, uint32_t, store::Callback<std::vector<store::Presence>>) override {}

  store::ExpectedVersion last_expected;
  std::vector<store::Write> applied;
  int batches = 0;
  int64_t apply_value = 1;   // every value an apply returns
  bool apply_fails = false;  // apply completes kConflict

 private:
  template <typename F>
  void later(F f) {
    std::lock_guard lock(mutex_);
    threads_.emplace_back(std::move(f));
  }
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

prism_bytes_t b(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
std::string s(prism_bytes_t b) { return {reinterpret_cast<const char*>(b.data), b.len}; }

// What one completion saw, copied out while it ran.
struct Seen {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::thread::id thread;
  prism_status_t status = 1;
  std::string message;
  std::vector<std::string> strings;
  std::vector<int64_t> values;
  size_t document_size = 0, entry_size = 0, presence_size = 0;

  static void record(void* user, const prism_store_result_t* r) {
    auto* self = static_cast<Seen*>(user);
    std::lock_guard lock(self->mutex);
    self->thread = std::this_thread::get_id();
    self->status = r->status;
    self->message = r->message;
    self->document_size = r->document_size;
    self->entry_size = r->entry_size;
    self->presence_size = r->presence_size;
    for (size_t i = 0; i < r->document_count; ++i) {
      self->strings.push_back(s(r->documents[i].key) + "=" + s(r->documents[i].value));
      self->values.push_back(static_cast<int64_t>(r->documents[i].version));
    }
    for (size_t i = 0; i < r->entry_count; ++i) {
      self->strings.push_back(s(r->entries[i].owner) + "#" + std::to_string(r->entries[i].rank));
    }
    for (size_t i = 0; i < r->value_count; ++i) self->values.push_back(r->values[i]);
    self->done = true;
    self->cv.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 5s, [&] { return done; });
  }
};

class StoreApiTest : public ::testing::Test {
 protected:
  static net::SessionSettings settings() {
    net::SessionSettings s;
    s.server_key = net::crypto::KeyPair::generate();
    return s;
  }
  StoreApiTest() : worker_(0, settings()) {
    facets_ = {&backend_, &backend_, &backend_, &backend_};
    set_store(&facets_);
    worker_.start();
  }
  ~StoreApiTest() override {
    worker_.stop();
    set_store(nullptr);
  }
  // Runs `call` on the worker thread, as a plugin's handler would.
  void on_worker(std::function<void()> call) { worker_.post(std::move(call)); }
  std::thread::id worker_thread() {
    std::promise<std::thread::id> id;
    worker_.post([&] { id.set_value(std::this_thread::get_id()); });
    return id.get_future().get();
  }

  const prism_host_api_t& api = host_api();
  FakeBackend backend_;
  store::Facets facets_;
  net::Worker worker_;
};

TEST_F(StoreApiTest, TheTableAdvertisesStorage) {
  EXPECT_EQ(api.abi_version_minor, PRISM_ABI_VERSION_MINOR);
  EXPECT_TRUE(PRISM_HAS_FIELD(&api, prism_host_api_t, store_apply));
  EXPECT_NE(api.doc_get, nullptr);
  EXPECT_NE(api.presence_list, nullptr);
}

TEST_F(StoreApiTest, GetCompletesOnTheCallingWorkerWithTheDocument) {
  Seen seen;
  const std::string collection = "players", key = "alice";
  bool returned_first = false;
  on_worker([&] {
    api.doc_get(nullptr, b(collection), b(key), &Seen::record, &seen);
    returned_first = !seen.done;  // never completed inside the call
  });
  ASSERT_TRUE(seen.wait());
  EXPECT_TRUE(returned_first);
  EXPECT_EQ(seen.thread, worker_thread());
  EXPECT_EQ(seen.status, PRISM_OK);
  EXPECT_EQ(seen.strings, (std::vector<std::string>{"alice=value of alice"}));
  EXPECT_EQ(seen.values, (std::vector<int64_t>{7}));
}

TEST_F(StoreApiTest, StatusesMapToTheAbiAndCarryTheMessage) {
  Seen missing, stale;
  const std::string c = "players", m = "missing", st = "stale", v = "x";
  on_worker([&] {
    api.doc_get(nullptr, b(c), b(m), &Seen::record, &missing);
    api.doc_put(nullptr, b(c), b(st), b(v), 3, &Seen::record, &stale);
  });
  ASSERT_TRUE(missing.wait());
  ASSERT_TRUE(stale.wait());
  EXPECT_EQ(missing.status, PRISM_NOT_FOUND);
  EXPECT_EQ(missing.message, "no document");
  EXPECT_EQ(stale.status, PRISM_CONFLICT);
  EXPECT_EQ(stale.message, "version 3 is stale");
  EXPECT_EQ(backend_.last_expected, store::ExpectedVersion(3));
}

TEST_F(StoreApiTest, PutConditionsAndEntriesCrossTheBoundary) {
  Seen any, top;
  const std::string c = "players", k = "bob", v = "x", board = "elo";
  on_worker([&] {
    api.doc_put(nullptr, b(c), b(k), b(v), PRISM_VERSION_ANY, &Seen::record, &any);
    api.board_top(nullptr, b(board), 3, &Seen::record, &top);
  });
  ASSERT_TRUE(any.wait());
  ASSERT_TRUE(top.wait());
  EXPECT_EQ(backend_.last_expected, std::nullopt);
  EXPECT_EQ(any.values, (std::vector<int64_t>{4}));
  EXPECT_EQ(top.strings, (std::vector<std::string>{"p0#1", "p1#2", "p2#3"}));
}

TEST_F(StoreApiTest, BatchesAreCopiedAndBadKindsRefused) {
  Seen ok, bad;
  const std::string c = "matches", k = "m1", v = "{}", counter = "wins:alice";
  prism_write_t writes[2] = {};
  writes[0].kind = PRISM_WRITE_PUT;
  writes[0].collection = b(c);
  writes[0].key = b(k);
  writes[0].value = b(v);
  writes[0].expected_version = PRISM_VERSION_ABSENT;
  writes[1].kind = PRISM_WRITE_COUNTER_ADD;
  writes[1].counter = b(counter);
  writes[1].delta = 1;
  prism_write_t unknown{};
  unknown.kind = 99;
  on_worker([&] {
    api.store_apply(nullptr, writes, 2, &Seen::record, &ok);
    api.store_apply(nullptr, &unknown, 1, &Seen::record, &bad);
  });
  ASSERT_TRUE(ok.wait());
  ASSERT_TRUE(bad.wait());
  EXPECT_EQ(ok.status, PRISM_OK);
  ASSERT_EQ(backend_.applied.size(), 2u);
  EXPECT_EQ(backend_.applied[0].expected, store::ExpectedVersion(0));
  EXPECT_EQ(backend_.applied[1].counter, "wins:alice");
  EXPECT_EQ(bad.status, PRISM_INVALID_ARGUMENT);
  EXPECT_NE(bad.message.find("write 0"), std::string::npos) << bad.message;
}

// ABI 1.2: results say how large each array element is, so the element structs can grow.
TEST_F(StoreApiTest, ResultsCarryTheSizeOfTheirElements) {
  Seen top;
  const std::string board = "elo";
  on_worker([&] { api.board_top(nullptr, b(board), 2, &Seen::record, &top); });
  ASSERT_TRUE(top.wait());
  EXPECT_EQ(top.document_size, sizeof(prism_document_t));
  EXPECT_EQ(top.entry_size, sizeof(prism_entry_t));
  EXPECT_EQ(top.presence_size, sizeof(prism_presence_t));
}

// store_apply_sized steps through the writes by the caller's size: a newer header's
// larger prism_write_t is read right; a size below ABI 1.1's is refused.
TEST_F(StoreApiTest, SizedBatchesAreReadByTheirStride) {
  struct WideWrite {
    prism_write_t write;
    uint64_t later[4];
  };
  const std::string c = "matches", k = "m1", v = "{}", counter = "wins:bob";
  WideWrite writes[2] = {};
  writes[0].write.kind = PRISM_WRITE_PUT;
  writes[0].write.collection = b(c);
  writes[0].write.key = b(k);
  writes[0].write.value = b(v);
  writes[0].write.expected_version = PRISM_VERSION_ANY;
  writes[1].write.kind = PRISM_WRITE_COUNTER_ADD;
  writes[1].write.counter = b(counter);
  writes[1].write.delta = 5;
  Seen wide, narrow;
  ASSERT_TRUE(PRISM_HAS_FIELD(&api, prism_host_api_t, store_apply_sized));
  on_worker([&] {
    api.store_apply_sized(nullptr, &writes[0].write, 2, sizeof(WideWrite), &Seen::record, &wide);
    api.store_apply_sized(nullptr, &writes[0].write, 1, 8, &Seen::record, &narrow);
  });
  ASSERT_TRUE(wide.wait());
  ASSERT_TRUE(narrow.wait());
  EXPECT_EQ(wide.status, PRISM_OK) << wide.message;
  ASSERT_EQ(backend_.applied.size(), 2u);
  EXPECT_EQ(backend_.applied[1].counter, "wins:bob");
  EXPECT_EQ(backend_.applied[1].delta, 5);
  EXPECT_EQ(narrow.status, PRISM_INVALID_ARGUMENT);
  EXPECT_NE(narrow.message.find("write_size 8 is smaller than a write of ABI 1.1"),
            std::string::npos)
      << narrow.message;
}

// Facets split across backends: each backend gets its writes as one batch, documents'
// first, and the values come back in the plugin's order.
TEST_F(StoreApiTest, ABatchSpanningBackendsRunsOnePartPerBackendInOrder) {
  FakeBackend boards;
  boards.apply_value = 2;
  store::Facets split{&backend_, &backend_, &boards, &backend_};
  set_store(&split);
  const std::string c = "stats", k = "alice", v = "{}", board = "elo", owner = "alice";
  prism_write_t writes[3] = {};
  writes[0].kind = PRISM_WRITE_SUBMIT;
  writes[0].board = b(board);
  writes[0].entry.owner = b(owner);
  writes[0].entry.score = 1016;
  writes[1].kind = PRISM_WRITE_PUT;
  writes[1].collection = b(c);
  writes[1].key = b(k);
  writes[1].value = b(v);
  writes[1].expected_version = 4;
  writes[2].kind = PRISM_WRITE_COUNTER_ADD;
  writes[2].counter = b(c);
  writes[2].delta = 1;
  Seen seen;
  on_worker([&] { api.store_apply(nullptr, writes, 3, &Seen::record, &seen); });
  ASSERT_TRUE(seen.wait());
  EXPECT_EQ(seen.status, PRISM_OK) << seen.message;
  EXPECT_EQ(seen.values, (std::vector<int64_t>{2, 1, 1}));
  ASSERT_EQ(backend_.applied.size(), 2u);  // the put and the counter, together
  EXPECT_EQ(backend_.applied[0].expected, store::ExpectedVersion(4));
  ASSERT_EQ(boards.applied.size(), 1u);
  EXPECT_EQ(boards.applied[0].entry.score, 1016);
  set_store(&facets_);
}

TEST_F(StoreApiTest, AFailedPartStopsTheBatchAndSaysWhere) {
  FakeBackend boards;
  store::Facets split{&backend_, &backend_, &boards, &backend_};
  set_store(&split);
  backend_.apply_fails = true;
  const std::string c = "stats", k = "alice", board = "elo";
  prism_write_t writes[2] = {};
  writes[0].kind = PRISM_WRITE_PUT;
  writes[0].collection = b(c);
  writes[0].key = b(k);
  writes[1].kind = PRISM_WRITE_SUBMIT;
  writes[1].board = b(board);
  Seen seen;
  on_worker([&] { api.store_apply(nullptr, writes, 2, &Seen::record, &seen); });
  ASSERT_TRUE(seen.wait());
  EXPECT_EQ(seen.status, PRISM_CONFLICT);
  EXPECT_EQ(seen.message, "batch part on fake (writes 0): write 0: version 2 is stale");
  EXPECT_EQ(boards.batches, 0) << "the boards' part ran after the documents' part failed";
  set_store(&facets_);
}

TEST(StoreApiWithoutStore, CallsCompleteUnavailable) {
  set_store(nullptr);
  Seen seen;
  const std::string c = "a", k = "b";
  host_api().doc_get(nullptr, b(c), b(k), &Seen::record, &seen);  // not a worker: completes here
  ASSERT_TRUE(seen.wait());
  EXPECT_EQ(seen.status, PRISM_UNAVAILABLE);
}

}  // namespace
}  // namespace prism::plugins
