// The storage entries of the host function table (plugin.h ABI 1.1, DESIGN.md §6): each
// copies the plugin's arguments, calls the facet's backend, and completes on the worker
// thread that made the call with a prism_store_result_t valid for the completion only.
#include "plugins/store_api.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/loop_access.hpp"
#include "plugins/loaded_plugin.hpp"

namespace prism::plugins {
namespace {

std::atomic<const store::Facets*> g_facets{nullptr};

std::string text(prism_bytes_t b) {
  return b.data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(b.data), b.len);
}

prism_bytes_t bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

prism_status_t to_abi(store::Code code) {
  switch (code) {
    case store::Code::kOk: return PRISM_OK;
    case store::Code::kNotFound: return PRISM_NOT_FOUND;
    case store::Code::kConflict: return PRISM_CONFLICT;
    case store::Code::kInvalidArgument: return PRISM_INVALID_ARGUMENT;
    case store::Code::kUnavailable: return PRISM_UNAVAILABLE;
    case store::Code::kInternal: return PRISM_INTERNAL;
  }
  return PRISM_INTERNAL;
}

// Owns everything a prism_store_result_t points at while the completion runs.
struct Result {
  store::Status status;
  std::vector<store::Document> documents;
  std::vector<store::Entry> entries;
  std::vector<store::Presence> presences;
  std::vector<int64_t> values;

  void deliver(prism_store_done_fn done, void* user) const {
    // Each view array is one allocation (reserved), not one per doubling.
    std::vector<prism_document_t> docs;
    docs.reserve(documents.size());
    for (const auto& d : documents) {
      docs.push_back({bytes(d.collection), bytes(d.key), bytes(d.value), d.version});
    }
    std::vector<prism_entry_t> ents;
    ents.reserve(entries.size());
    for (const auto& e : entries) {
      ents.push_back({bytes(e.owner), e.score, e.subscore, bytes(e.metadata), e.rank, e.submitted_ms});
    }
    std::vector<prism_presence_t> pres;
    pres.reserve(presences.size());
    for (const auto& p : presences) pres.push_back({bytes(p.owner), bytes(p.status), p.expires_at_ms});
    prism_store_result_t r{};
    r.struct_size = sizeof r;
    r.status = to_abi(status.code);
    r.message = status.message.c_str();
    r.documents = docs.data();
    r.document_count = docs.size();
    r.entries = ents.data();
    r.entry_count = ents.size();
    r.presences = pres.data();
    r.presence_count = pres.size();
    r.values = values.data();
    r.value_count = values.size();
    r.document_size = sizeof(prism_document_t);
    r.entry_size = sizeof(prism_entry_t);
    r.presence_size = sizeof(prism_presence_t);
    done(user, &r);
  }
};

// Completes on the calling worker's loop (plugin.h); a call from any other thread
// completes on the backend's thread. Until its completion has run and returned, a call
// keeps the plugin version that made it loaded: a coroutine may go on awaiting storage
// after its reply released the request, and a reload must not unmap its code meanwhile.
class Completion {
 public:
  Completion(prism_host_t* host, prism_store_done_fn done, void* user)
      : done_(done), user_(user), loop_(net::current_loop()),
        plugin_(host != nullptr && host->plugin != nullptr ? host->plugin->weak_from_this().lock()
                                                           : nullptr),
        result_(std::make_shared<Result>()) {}

  // The call's result, made here on the calling thread, which also frees it after the
  // completion: made on the backend's thread instead, every result was a free of another
  // thread's memory, and glibc's malloc then takes that thread's arena lock (the worker
  // and the sqlite writer blocked on it hundreds of times a second; docs/performance.md).
  const std::shared_ptr<Result>& result() const { return result_; }

  void operator()(std::shared_ptr<Result> result) const {
    // This copy lets go of the result: the delivery's reference is then the last, and the
    // result is freed on the calling thread, not when the backend drops its closure.
    result_.reset();
    if (done_ == nullptr) return;
    // The task (and with it `plugin`) is destroyed after it returned, off the plugin's stack.
    auto deliver = [done = done_, user = user_, result = std::move(result), plugin = plugin_] {
      result->deliver(done, user);
    };
    if (loop_ != nullptr) {
      loop_->post(std::move(deliver));
    } else {
      deliver();
    }
  }
  void fail(store::Code code, std::string message) const {
    std::shared_ptr<Result> r = result_;
    r->status = {code, std::move(message)};
    (*this)(std::move(r));
  }

 private:
  prism_store_done_fn done_;
  void* user_;
  net::LoopAccess* loop_;
  std::shared_ptr<LoadedPlugin> plugin_;
  mutable std::shared_ptr<Result> result_;  // until the completion fires
};

// The backend of a facet, or null after completing the call with UNAVAILABLE.
store::Backend* facet(store::Backend* store::Facets::*which, const Completion& complete) {
  const store::Facets* facets = g_facets.load();
  store::Backend* backend = facets != nullptr ? facets->*which : nullptr;
  if (backend == nullptr) complete.fail(store::Code::kUnavailable, "no storage backend is configured");
  return backend;
}

store::ExpectedVersion expected_of(int64_t v) {
  if (v < 0) return std::nullopt;
  return static_cast<uint64_t>(v);
}

store::Entry entry_of(const prism_entry_t& e) {
  store::Entry out;
  out.owner = text(e.owner);
  out.score = e.score;
  out.subscore = e.subscore;
  out.metadata = text(e.metadata);
  return out;
}

// Completion adapters from the backend's callbacks to a Result.
auto with_status(Completion c) {
  return [c](store::Status s) {
    auto r = c.result();
    r->status = std::move(s);
    c(std::move(r));
  };
}
auto with_document(Completion c) {
  return [c](store::Status s, store::Document d) {
    auto r = c.result();
    if (s.ok()) r->documents.push_back(std::move(d));
    r->status = std::move(s);
    c(std::move(r));
  };
}
auto with_documents(Completion c) {
  return [c](store::Status s, std::vector<store::Document> d) {
    auto r = c.result();
    r->status = std::move(s);
    r->documents = std::move(d);
    c(std::move(r));
  };
}
template <typename Number>
auto with_value(Completion c) {
  return [c](store::Status s, Number v) {
    auto r = c.result();
    if (s.ok()) r->values.push_back(static_cast<int64_t>(v));
    r->status = std::move(s);
    c(std::move(r));
  };
}
auto with_values(Completion c) {
  return [c](store::Status s, std::vector<int64_t> v) {
    auto r = c.result();
    r->status = std::move(s);
    r->values = std::move(v);
    c(std::move(r));
  };
}
auto with_entry(Completion c) {
  return [c](store::Status s, store::Entry e) {
    auto r = c.result();
    if (s.ok()) r->entries.push_back(std::move(e));
    r->status = std::move(s);
    c(std::move(r));
  };
}
auto with_entries(Completion c) {
  return [c](store::Status s, std::vector<store::Entry> e) {
    auto r = c.result();
    r->status = std::move(s);
    r->entries = std::move(e);
    c(std::move(r));
  };
}
auto with_presence(Completion c) {
  return [c](store::Status s, store::Presence p) {
    auto r = c.result();
    if (s.ok()) r->presences.push_back(std::move(p));
    r->status = std::move(s);
    c(std::move(r));
  };
}
auto with_presences(Completion c) {
  return [c](store::Status s, std::vector<store::Presence> p) {
    auto r = c.result();
    r->status = std::move(s);
    r->presences = std::move(p);
    c(std::move(r));
  };
}

using F = store::Facets;

void api_doc_get(prism_host_t* host, prism_bytes_t collection, prism_bytes_t key, prism_store_done_fn done,
                 void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::documents, c)) b->get(text(collection), text(key), with_document(c));
}

void api_doc_put(prism_host_t* host, prism_bytes_t collection, prism_bytes_t key, prism_bytes_t value,
                 int64_t expected, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::documents, c)) {
    b->put(text(collection), text(key), text(value), expected_of(expected), with_value<uint64_t>(c));
  }
}

void api_doc_delete(prism_host_t* host, prism_bytes_t collection, prism_bytes_t key, int64_t expected,
                    prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::documents, c)) {
    b->remove(text(collection), text(key), expected_of(expected), with_status(c));
  }
}

void api_doc_list(prism_host_t* host, prism_bytes_t collection, prism_bytes_t prefix, prism_bytes_t after,
                  uint32_t limit, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::documents, c)) {
    b->list(text(collection), text(prefix), text(after), limit, with_documents(c));
  }
}

void api_counter_add(prism_host_t* host, prism_bytes_t counter, int64_t delta, prism_store_done_fn done,
                     void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::counters, c)) b->counter_add(text(counter), delta, with_value<int64_t>(c));
}

void api_counter_get(prism_host_t* host, prism_bytes_t counter, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::counters, c)) b->counter_get(text(counter), with_value<int64_t>(c));
}

void api_board_create(prism_host_t* host, prism_bytes_t board, uint32_t order, uint32_t op,
                      prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (order > PRISM_ORDER_ASCENDING || op > PRISM_OP_INCREMENT) {
    return c.fail(store::Code::kInvalidArgument, "unknown sort order or operator");
  }
  if (auto* b = facet(&F::leaderboards, c)) {
    b->board_create({text(board), static_cast<store::SortOrder>(order), static_cast<store::Operator>(op)},
                    with_status(c));
  }
}

void api_board_submit(prism_host_t* host, prism_bytes_t board, const prism_entry_t* entry,
                      prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (entry == nullptr) return c.fail(store::Code::kInvalidArgument, "entry is NULL");
  if (auto* b = facet(&F::leaderboards, c)) b->board_submit(text(board), entry_of(*entry), with_entry(c));
}

void api_board_top(prism_host_t* host, prism_bytes_t board, uint32_t limit, prism_store_done_fn done,
                   void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) b->board_top(text(board), limit, with_entries(c));
}

void api_board_page(prism_host_t* host, prism_bytes_t board, uint64_t after_rank, uint32_t limit,
                    prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) b->board_page(text(board), after_rank, limit, with_entries(c));
}

void api_board_around(prism_host_t* host, prism_bytes_t board, prism_bytes_t owner, uint32_t limit,
                      prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) {
    b->board_around(text(board), text(owner), limit, with_entries(c));
  }
}

void api_board_rank(prism_host_t* host, prism_bytes_t board, prism_bytes_t owner, prism_store_done_fn done,
                    void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) b->board_rank(text(board), text(owner), with_entry(c));
}

void api_board_remove(prism_host_t* host, prism_bytes_t board, prism_bytes_t owner,
                      prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) b->board_remove(text(board), text(owner), with_status(c));
}

void api_board_reset(prism_host_t* host, prism_bytes_t board, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::leaderboards, c)) b->board_reset(text(board), with_status(c));
}

void api_presence_set(prism_host_t* host, prism_bytes_t owner, prism_bytes_t status, uint32_t ttl_ms,
                      prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::presence, c)) {
    b->presence_set(text(owner), text(status), std::chrono::milliseconds(ttl_ms), with_status(c));
  }
}

void api_presence_get(prism_host_t* host, prism_bytes_t owner, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::presence, c)) b->presence_get(text(owner), with_presence(c));
}

void api_presence_remove(prism_host_t* host, prism_bytes_t owner, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::presence, c)) b->presence_remove(text(owner), with_status(c));
}

void api_presence_list(prism_host_t* host, prism_bytes_t prefix, uint32_t limit, prism_store_done_fn done,
                       void* user) {
  const Completion c(host, done, user);
  if (auto* b = facet(&F::presence, c)) b->presence_list(text(prefix), limit, with_presences(c));
}

// The facet that holds a write of this kind.
store::Backend* F::*facet_of(store::Write::Kind kind) {
  switch (kind) {
    case store::Write::Kind::kCounterAdd: return &F::counters;
    case store::Write::Kind::kSubmit: return &F::leaderboards;
    default: return &F::documents;
  }
}

// A batch whose facets live on different backends (e.g. documents on postgres, boards on
// redis) cannot be one transaction. It runs as one atomic batch per backend, in the order
// each backend's first write appears; a backend's batch starts only after the previous one
// committed, and the first failure ends it (docs/plugin-api.md, Storage: atomic batches).
struct SplitBatch {
  struct Group {
    store::Backend* backend;
    std::vector<size_t> indices;  // into writes / values
  };
  std::vector<store::Write> writes;
  std::vector<Group> groups;
  std::vector<int64_t> values;
  Completion complete;

  static void run(std::shared_ptr<SplitBatch> batch, size_t g) {
    if (g == batch->groups.size()) {
      auto r = batch->complete.result();
      r->values = std::move(batch->values);
      return batch->complete(std::move(r));
    }
    std::vector<store::Write> part;
    for (size_t i : batch->groups[g].indices) part.push_back(std::move(batch->writes[i]));
    batch->groups[g].backend->apply(std::move(part), [batch, g](store::Status s, std::vector<int64_t> v) {
      const Group& group = batch->groups[g];
      if (!s.ok()) {
        std::string where = std::string(group.backend->name()) + " (writes";
        for (size_t i : group.indices) where += " " + std::to_string(i);
        where += ")";
        if (g > 0) where += " after the writes on earlier backends committed";
        auto r = batch->complete.result();
        r->status = {s.code, "batch part on " + where + ": " + s.message};
        return batch->complete(std::move(r));
      }
      for (size_t k = 0; k < group.indices.size() && k < v.size(); ++k) {
        batch->values[group.indices[k]] = v[k];
      }
      run(batch, g + 1);
    });
  }
};

// A write as ABI 1.1 laid it out: the smallest write_size a caller may give.
constexpr size_t kWriteV1Size = sizeof(prism_write_t);

void apply_writes(prism_host_t* host, const prism_write_t* writes, size_t count,
                  size_t write_size, prism_store_done_fn done, void* user) {
  const Completion c(host, done, user);
  if (writes == nullptr && count != 0) return c.fail(store::Code::kInvalidArgument, "writes is NULL");
  if (write_size < kWriteV1Size) {
    return c.fail(store::Code::kInvalidArgument,
                  "write_size " + std::to_string(write_size) + " is smaller than a write of ABI 1.1 (" +
                      std::to_string(kWriteV1Size) + ")");
  }
  auto split = std::make_shared<SplitBatch>(SplitBatch{{}, {}, std::vector<int64_t>(count, 0), c});
  split->writes.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const prism_write_t& w = *reinterpret_cast<const prism_write_t*>(
        reinterpret_cast<const char*>(writes) + i * write_size);
    if (w.kind > PRISM_WRITE_SUBMIT) {
      return c.fail(store::Code::kInvalidArgument, "write " + std::to_string(i) + ": unknown kind");
    }
    store::Write out;
    out.kind = static_cast<store::Write::Kind>(w.kind);
    out.collection = text(w.collection);
    out.key = text(w.key);
    out.value = text(w.value);
    out.expected = expected_of(w.expected_version);
    out.counter = text(w.counter);
    out.delta = w.delta;
    out.board = text(w.board);
    out.entry = entry_of(w.entry);
    store::Backend* backend = facet(facet_of(out.kind), c);
    if (backend == nullptr) return;
    auto group = std::find_if(split->groups.begin(), split->groups.end(),
                              [&](const SplitBatch::Group& g) { return g.backend == backend; });
    if (group == split->groups.end()) group = split->groups.insert(group, {backend, {}});
    group->indices.push_back(i);
    split->writes.push_back(std::move(out));
  }
  // The usual case (one backend for every facet, or no writes) is one transaction.
  if (split->groups.size() <= 1) {
    store::Backend* backend = split->groups.empty() ? facet(&F::documents, c) : split->groups[0].backend;
    if (backend != nullptr) backend->apply(std::move(split->writes), with_values(c));
    return;
  }
  SplitBatch::run(std::move(split), 0);
}

// ABI 1.1's store_apply: the writes are the 1.1 layout.
void api_store_apply(prism_host_t* host, const prism_write_t* writes, size_t count,
                     prism_store_done_fn done, void* user) {
  apply_writes(host, writes, count, kWriteV1Size, done, user);
}

}  // namespace

void set_store(const store::Facets* facets) { g_facets.store(facets); }

void add_store_api(prism_host_api_t& api) {
  api.doc_get = api_doc_get;
  api.doc_put = api_doc_put;
  api.doc_delete = api_doc_delete;
  api.doc_list = api_doc_list;
  api.store_counter_add = api_counter_add;
  api.store_counter_get = api_counter_get;
  api.board_create = api_board_create;
  api.board_submit = api_board_submit;
  api.board_top = api_board_top;
  api.board_page = api_board_page;
  api.board_around = api_board_around;
  api.board_rank = api_board_rank;
  api.board_remove = api_board_remove;
  api.board_reset = api_board_reset;
  api.presence_set = api_presence_set;
  api.presence_get = api_presence_get;
  api.presence_remove = api_presence_remove;
  api.presence_list = api_presence_list;
  api.store_apply = api_store_apply;
  api.store_apply_sized = apply_writes;
}

}  // namespace prism::plugins
