// prism/plugin.hpp: header-only C++20 wrapper over the C ABI in prism/plugin.h. A service
// is one class with a table binding method ids to member functions; PRISM_PLUGIN builds
// the C descriptor from it. Nothing C++ crosses the boundary: every trampoline is noexcept
// and turns exceptions into statuses (STYLE.md, "The C ABI").
//
//   class Echo {
//    public:
//     static constexpr prism::sdk::ServiceInfo info{.name = "echo", .version = "1.0.0",
//         .packet_id_first = 100, .packet_id_count = 100, .concurrent = true};
//     Echo(prism::sdk::Host& host, std::string_view config);  // throw to refuse init
//     void echo(prism::sdk::Request req, prism::sdk::Bytes payload) { req.ok(payload); }
//     // Optional: std::string snapshot(); void restore(prism::sdk::Bytes state);
//     //           void on_event(const prism_event_t& event);
//     //           void on_topic(std::string_view topic, uint32_t packet_id,
//     //                         prism::sdk::Bytes payload);
//     // Real time (ABI 1.2): host.push(session, method, bytes), host.publish(topic, ...),
//     // host.subscribe(session, topic), host.start_timer(...), co_await host.sleep(ms).
//     // The table comes after the handlers: a static member's initializer sees only
//     // the members declared above it.
//     static constexpr prism::sdk::Method<Echo> methods[] = {{0, "echo", &Echo::echo}};
//   };
//   PRISM_PLUGIN(Echo)
#pragma once

#include <prism/plugin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// The one place the SDK reads a function from the host's table. A host built for an older
// minor version has a shorter table; a function beyond its struct_size reads as nullptr,
// which every caller below treats as "not offered".
#define PRISM_SDK_HOST_FN(api, fn) \
  (((api) != nullptr && PRISM_HAS_FIELD((api), prism_host_api_t, fn)) ? (api)->fn : nullptr)

namespace prism::sdk {

// A view of bytes someone else owns; each use says for how long.
using Bytes = std::span<const uint8_t>;

inline Bytes as_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}
inline std::string_view as_text(Bytes bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

namespace detail {

inline prism_bytes_t to_c(Bytes bytes) noexcept { return {bytes.data(), bytes.size()}; }
inline Bytes from_c(prism_bytes_t bytes) noexcept {
  return bytes.data != nullptr ? Bytes{bytes.data, bytes.len} : Bytes{};
}

// Copies `text` into `out` (out_len bytes) as a C string, truncated to fit, always terminated.
inline void copy_c_string(std::string_view text, char* out, size_t out_len) noexcept {
  if (out == nullptr || out_len == 0) return;
  const size_t n = std::min(text.size(), out_len - 1);
  if (n > 0) std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

// Formats one log line on the stack (no allocation; long lines are truncated) and hands it
// to the host, which copies it.
[[gnu::format(printf, 4, 5)]] inline void log_line(const prism_host_api_t* api, prism_host_t* host,
                                                   prism_log_level_t level, const char* format,
                                                   ...) noexcept {
  auto log = PRISM_SDK_HOST_FN(api, log);
  if (log == nullptr) return;
  char line[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (n > 0) log(host, level, line, std::min(static_cast<size_t>(n), sizeof line - 1));
}

}  // namespace detail

// The return type of a coroutine handler: `Task handler(Request, std::string payload)`
// may co_await storage calls (Host::get, Host::put, ...) and reads like straight-line
// code. It starts at once and runs to its first co_await inside the host's call; the rest
// runs on the same worker when each storage call completes. Fire-and-forget: the frame
// frees itself at the end. An exception that escapes the handler is swallowed here (it
// must not unwind into the host's frames); the Request it owned then answers INTERNAL.
class Task {
 public:
  struct promise_type {
    Task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}
  };
};

// Async<T>: a coroutine a handler can co_await, so a step that itself awaits storage calls
// (loading a profile, creating boards) is written once and reused:
// `Async<Profile> load(std::string id)`, then `Profile p = co_await load(id);`. Lazy: it
// starts when awaited and resumes its awaiter when done (symmetric transfer), on the
// worker its last storage call completed on, which the host makes the calling one. An
// exception inside it is rethrown at the co_await.
template <class T>
class [[nodiscard]] Async {
 public:
  struct promise_type {
    std::optional<T> value;
    std::exception_ptr error;
    std::coroutine_handle<> continuation;

    Async get_return_object() noexcept {
      return Async(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Resume {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> self) noexcept {
        return self.promise().continuation;
      }
      void await_resume() noexcept {}
    };
    Resume final_suspend() noexcept { return {}; }
    void return_value(T v) { value.emplace(std::move(v)); }
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };

  Async(Async&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Async& operator=(Async&&) = delete;
  Async(const Async&) = delete;
  ~Async() {
    if (handle_) handle_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> waiting) noexcept {
    handle_.promise().continuation = waiting;
    return handle_;
  }
  T await_resume() {
    auto& promise = handle_.promise();
    if (promise.error) std::rethrow_exception(promise.error);
    return std::move(*promise.value);
  }

 private:
  explicit Async(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}
  std::coroutine_handle<promise_type> handle_;
};

// One request in flight. Move-only: exactly one Request holds the host's handle, and it
// answers exactly once, through reply/ok/fail or, if destroyed unanswered (the handler
// forgot, or an exception unwound it), with PRISM_INTERNAL. So every request gets a reply.
// Answer it on the worker thread that called the handler (plugin.h, reply).
class Request {
 public:
  // Made by the SDK for each call to handle. `api` and `host` are the host's and outlive
  // the instance; `request` is the host's and becomes invalid once answered.
  Request(const prism_host_api_t* api, prism_host_t* host, prism_request_t* request) noexcept
      : api_(api), host_(host), request_(request) {}
  Request(Request&& other) noexcept
      : api_(other.api_), host_(other.host_), request_(std::exchange(other.request_, nullptr)) {}
  Request& operator=(Request&& other) noexcept {
    if (this != &other) {
      answer_if_pending();
      api_ = other.api_;
      host_ = other.host_;
      request_ = std::exchange(other.request_, nullptr);
    }
    return *this;
  }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request() { answer_if_pending(); }

  // The session the request came from; 0 once answered.
  uint64_t session() const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, request_session);
    return request_ != nullptr && fn != nullptr ? fn(request_) : 0;
  }

  // Answers the request. `message` and `payload` are the caller's; the host copies both
  // before this returns. A second answer is a programming error: ignored and logged.
  void reply(prism_status_t status, std::string_view message, Bytes payload) noexcept {
    auto send = PRISM_SDK_HOST_FN(api_, reply);
    if (request_ == nullptr || send == nullptr) {
      detail::log_line(api_, host_, PRISM_LOG_ERROR,
                       "reply ignored: request already answered or moved from status=%d", status);
      return;
    }
    // The ABI wants a NUL-terminated message. Status messages are short: copy into a
    // stack buffer rather than allocate per request, truncating anything longer.
    char c_message[256];
    detail::copy_c_string(message, c_message, sizeof c_message);
    prism_request_t* request = std::exchange(request_, nullptr);  // invalid after send
    const prism_status_t sent = send(request, status, c_message, detail::to_c(payload));
    if (sent != PRISM_OK) {
      detail::log_line(api_, host_, PRISM_LOG_WARN,
                       "reply refused by host status=%d payload_len=%zu; host answered internal",
                       sent, payload.size());
    }
  }
  void ok(Bytes payload = {}) noexcept { reply(PRISM_OK, {}, payload); }
  void ok(std::string_view text) noexcept { reply(PRISM_OK, {}, as_bytes(text)); }
  // OK with a status message the client shows (as Prism v1's `message: "ITEMS_OK"`).
  void ok(Bytes payload, std::string_view message) noexcept { reply(PRISM_OK, message, payload); }
  void ok(std::string_view text, std::string_view message) noexcept {
    reply(PRISM_OK, message, as_bytes(text));
  }
  void fail(prism_status_t status, std::string_view message) noexcept {
    reply(status, message, {});
  }

  // Hands the request to this service on node `node` (plugin.h forward; build `what` with
  // forward_of): PRISM_OK, and this Request is answered (by that node's answer), or the
  // host's reason, and this Request still has to be answered here.
  prism_status_t forward(std::string_view node, const prism_forward_t& what) noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, forward);
    if (request_ == nullptr || fn == nullptr) return PRISM_UNAVAILABLE;
    const prism_status_t status =
        fn(host_, request_, {reinterpret_cast<const uint8_t*>(node.data()), node.size()}, &what);
    if (status == PRISM_OK) request_ = nullptr;
    return status;
  }

 private:
  void answer_if_pending() noexcept {
    if (request_ != nullptr) {
      reply(PRISM_INTERNAL, "handler failed without replying (it threw or returned early)", {});
    }
  }

  const prism_host_api_t* api_;  // the host's; valid until shutdown returns
  prism_host_t* host_;           // the host's; valid until shutdown returns
  prism_request_t* request_;     // the host's; nullptr once answered or moved from
};

// A counter registered with the host. Copyable handle; a null counter's add does nothing.
class Counter {
 public:
  Counter() = default;
  Counter(prism_counter_t* counter, void (*add_fn)(prism_counter_t*, uint64_t)) noexcept
      : counter_(counter), add_(add_fn) {}
  void add(uint64_t delta = 1) const noexcept {
    if (counter_ != nullptr && add_ != nullptr) add_(counter_, delta);
  }
  explicit operator bool() const noexcept { return counter_ != nullptr; }

 private:
  prism_counter_t* counter_ = nullptr;  // the host's; valid until shutdown returns
  void (*add_)(prism_counter_t*, uint64_t) = nullptr;
};

// ---- Storage (plugin.h ABI 1.1, DESIGN.md §6) ------------------------------------------

struct Document {
  std::string collection;
  std::string key;
  std::string value;
  uint64_t version = 0;
};

struct Entry {
  std::string owner;
  int64_t score = 0;
  int64_t subscore = 0;
  std::string metadata;
  uint64_t rank = 0;  // 1-based
  int64_t submitted_ms = 0;
};

struct PresenceInfo {
  std::string owner;
  std::string status;
  int64_t expires_at_ms = 0;
};

// What a storage call produced, copied out of the host's result. Only the vectors the
// call fills are non-empty (plugin.h, prism_store_result_t).
struct StoreResult {
  prism_status_t status = PRISM_INTERNAL;
  std::string message;
  std::vector<Document> documents;
  std::vector<Entry> entries;
  std::vector<PresenceInfo> presences;
  std::vector<int64_t> values;
  bool ok() const noexcept { return status == PRISM_OK; }
};

namespace detail {

inline std::string copy(prism_bytes_t b) {
  return b.data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(b.data), b.len);
}

// Element `i` of a result array whose elements are `size` bytes (plugin.h: from ABI 1.2
// the host says; an older host's are this header's own layout).
template <class T>
const T& element(const T* array, size_t i, size_t size) noexcept {
  return *reinterpret_cast<const T*>(reinterpret_cast<const char*>(array) +
                                     i * (size >= sizeof(T) ? size : sizeof(T)));
}

inline StoreResult copy_result(const prism_store_result_t& r) {
  StoreResult out;
  out.status = r.status;
  out.message = r.message != nullptr ? r.message : "";
  const bool sized = PRISM_HAS_FIELD(&r, prism_store_result_t, presence_size);
  const size_t document_size = sized ? r.document_size : 0;
  const size_t entry_size = sized ? r.entry_size : 0;
  const size_t presence_size = sized ? r.presence_size : 0;
  // Sized up front: grown one push at a time, a window of entries was five allocations
  // and four moves of its strings instead of one.
  out.documents.reserve(r.document_count);
  out.entries.reserve(r.entry_count);
  out.presences.reserve(r.presence_count);
  for (size_t i = 0; i < r.document_count; ++i) {
    const auto& d = element(r.documents, i, document_size);
    out.documents.push_back({copy(d.collection), copy(d.key), copy(d.value), d.version});
  }
  for (size_t i = 0; i < r.entry_count; ++i) {
    const auto& e = element(r.entries, i, entry_size);
    out.entries.push_back({copy(e.owner), e.score, e.subscore, copy(e.metadata), e.rank, e.submitted_ms});
  }
  for (size_t i = 0; i < r.presence_count; ++i) {
    const auto& p = element(r.presences, i, presence_size);
    out.presences.push_back({copy(p.owner), copy(p.status), p.expires_at_ms});
  }
  out.values.assign(r.values, r.values + r.value_count);
  return out;
}

}  // namespace detail

// An awaitable storage call: `StoreResult r = co_await host.get("players", id);`. `Start`
// issues the C call with the trampoline and this awaiter as its user pointer. The host
// completes on the calling worker, after the call returned, and the coroutine resumes
// there. A host without storage (ABI 1.0) completes at once with PRISM_UNAVAILABLE.
template <class Start>
class StoreCall {
 public:
  explicit StoreCall(Start start) : start_(std::move(start)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> waiting) {
    waiting_ = waiting;
    // After start_ the awaiter may already be resumed and gone: touch nothing after it.
    start_(&StoreCall::done, this);
  }
  StoreResult await_resume() { return std::move(result_); }

 private:
  static void done(void* user, const prism_store_result_t* result) noexcept {
    auto* self = static_cast<StoreCall*>(user);
    try {
      self->result_ = detail::copy_result(*result);
    } catch (...) {
      self->result_ = StoreResult{};
      self->result_.message = "out of memory copying a storage result";
    }
    self->waiting_.resume();
  }

  Start start_;
  std::coroutine_handle<> waiting_;
  StoreResult result_;
};

// The writes of one store_apply (Host::apply), owning every string the C structs point
// at (a deque keeps them in place as the batch grows). All or nothing per backend.
class WriteBatch {
 public:
  // expected: PRISM_VERSION_ANY, PRISM_VERSION_ABSENT (create only) or a version.
  WriteBatch& put(std::string_view collection, std::string_view key, std::string value,
                  int64_t expected = PRISM_VERSION_ANY) {
    prism_write_t& w = add(PRISM_WRITE_PUT);
    w.collection = keep(collection);
    w.key = keep(key);
    w.value = keep(std::move(value));
    w.expected_version = expected;
    return *this;
  }
  WriteBatch& remove(std::string_view collection, std::string_view key,
                     int64_t expected = PRISM_VERSION_ANY) {
    prism_write_t& w = add(PRISM_WRITE_DELETE);
    w.collection = keep(collection);
    w.key = keep(key);
    w.expected_version = expected;
    return *this;
  }
  WriteBatch& counter_add(std::string_view counter, int64_t delta) {
    prism_write_t& w = add(PRISM_WRITE_COUNTER_ADD);
    w.counter = keep(counter);
    w.delta = delta;
    return *this;
  }
  WriteBatch& submit(std::string_view board, std::string_view owner, int64_t score,
                     std::string_view metadata = {}, int64_t subscore = 0) {
    prism_write_t& w = add(PRISM_WRITE_SUBMIT);
    w.board = keep(board);
    w.entry.owner = keep(owner);
    w.entry.score = score;
    w.entry.subscore = subscore;
    w.entry.metadata = keep(metadata);
    return *this;
  }

  std::span<const prism_write_t> writes() const noexcept { return writes_; }
  size_t size() const noexcept { return writes_.size(); }
  bool empty() const noexcept { return writes_.empty(); }
  bool has(uint32_t kind) const noexcept {
    return std::any_of(writes_.begin(), writes_.end(),
                       [kind](const prism_write_t& w) { return w.kind == kind; });
  }

 private:
  prism_write_t& add(uint32_t kind) {
    prism_write_t& w = writes_.emplace_back();
    w.kind = kind;
    return w;
  }
  prism_bytes_t keep(std::string_view text) { return keep(std::string(text)); }
  prism_bytes_t keep(std::string&& text) {
    const std::string& s = strings_.emplace_back(std::move(text));
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  std::deque<std::string> strings_;  // never reallocated: the writes point into it
  std::vector<prism_write_t> writes_;
};

// The host as one instance sees it. Owned by the SDK next to the service instance; a
// service may keep the Host& its constructor receives until it is destroyed.
class Host {
 public:
  Host(const prism_host_api_t* api, prism_host_t* host) noexcept : api_(api), host_(host) {}

 private:
  // Defined before the storage calls below, whose return types it deduces.
  static prism_bytes_t c(std::string_view s) noexcept {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }
  // Where `member` ends in the table: a host whose struct_size reaches it offers it.
  template <class Fn>
  static size_t end_of(Fn prism_host_api_t::*member) noexcept {
    static const prism_host_api_t probe{};
    return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*member)) -
                               reinterpret_cast<const char*>(&probe)) +
           sizeof(Fn);
  }
  // An awaitable that calls `member` of the host table with `args`, then the completion.
  template <class Fn, class... Args>
  auto call(Fn prism_host_api_t::*member, Args... args) const {
    const prism_host_api_t* api = api_;
    prism_host_t* host = host_;
    auto start = [api, host, member, args...](prism_store_done_fn done, void* user) {
      // The member's own end, not the whole table: a plugin built against a newer header
      // (a longer table) must still find storage on an older host that has it.
      const bool present = api != nullptr && api->struct_size >= end_of(member) &&
                           api->*member != nullptr;
      if (!present) {
        prism_store_result_t none{};
        none.struct_size = sizeof none;
        none.status = PRISM_UNAVAILABLE;
        none.message = "this host offers no storage (plugin ABI 1.1 needed)";
        done(user, &none);
        return;
      }
      (api->*member)(host, args..., done, user);
    };
    return StoreCall<decltype(start)>(std::move(start));
  }

 public:

  void log(prism_log_level_t level, std::string_view message) const noexcept {
    if (auto fn = PRISM_SDK_HOST_FN(api_, log)) fn(host_, level, message.data(), message.size());
  }
  void debug(std::string_view message) const noexcept { log(PRISM_LOG_DEBUG, message); }
  void info(std::string_view message) const noexcept { log(PRISM_LOG_INFO, message); }
  void warn(std::string_view message) const noexcept { log(PRISM_LOG_WARN, message); }
  void error(std::string_view message) const noexcept { log(PRISM_LOG_ERROR, message); }

  // Registers prism_plugin_<name>; the host copies both strings. Null on a bad name.
  Counter counter(const char* name, const char* help) const noexcept {
    auto reg = PRISM_SDK_HOST_FN(api_, counter_register);
    return reg != nullptr ? Counter{reg(host_, name, help), PRISM_SDK_HOST_FN(api_, counter_add)}
                          : Counter{};
  }

  // Fields the host does not fill stay zero; `version` is the host's static string.
  prism_server_info_t server_info() const noexcept {
    prism_server_info_t info{};
    info.struct_size = sizeof info;
    if (auto fn = PRISM_SDK_HOST_FN(api_, server_info)) fn(host_, &info);
    if (info.version == nullptr) info.version = "";
    if (info.node_id == nullptr) info.node_id = "";
    return info;
  }

  // Calls visit(const prism_plugin_info_t&) once per loaded plugin, in packet-id order,
  // before returning. The info's strings are the host's, valid during that call only.
  // An exception from `visit` must not unwind through the host's C frames: it is held,
  // the remaining plugins are skipped, and it is rethrown here once the host returns.
  template <class F>
  void visit_plugins(F&& visit) const {
    auto fn = PRISM_SDK_HOST_FN(api_, visit_plugins);
    if (fn == nullptr) return;
    struct Context {
      F& visit;
      std::exception_ptr error;
    } context{visit, nullptr};
    auto trampoline = [](void* user, const prism_plugin_info_t* info) noexcept {
      auto& ctx = *static_cast<Context*>(user);
      if (ctx.error || info == nullptr) return;
      // Read through struct_size: fields an older host does not send stay zero.
      prism_plugin_info_t full{};
      std::memcpy(&full, info, std::min<size_t>(info->struct_size, sizeof full));
      full.struct_size = sizeof full;
      if (full.name == nullptr) full.name = "";
      if (full.version == nullptr) full.version = "";
      try {
        ctx.visit(std::as_const(full));
      } catch (...) {
        ctx.error = std::current_exception();
      }
    };
    fn(host_, trampoline, &context);
    if (context.error) std::rethrow_exception(context.error);
  }

  // ---- Storage: every call returns an awaitable yielding a StoreResult. Strings are
  // copied by the host before the call returns.
  auto get(std::string_view collection, std::string_view key) const {
    return call(&prism_host_api_t::doc_get, c(collection), c(key));
  }
  // expected: PRISM_VERSION_ANY, PRISM_VERSION_ABSENT (create only) or a version.
  // values[0] is the new version.
  auto put(std::string_view collection, std::string_view key, std::string_view value,
           int64_t expected = PRISM_VERSION_ANY) const {
    return call(&prism_host_api_t::doc_put, c(collection), c(key), c(value), expected);
  }
  auto remove(std::string_view collection, std::string_view key,
              int64_t expected = PRISM_VERSION_ANY) const {
    return call(&prism_host_api_t::doc_delete, c(collection), c(key), expected);
  }
  auto list(std::string_view collection, std::string_view prefix, std::string_view after,
            uint32_t limit) const {
    return call(&prism_host_api_t::doc_list, c(collection), c(prefix), c(after), limit);
  }
  auto counter_add(std::string_view name, int64_t delta) const {
    return call(&prism_host_api_t::store_counter_add, c(name), delta);
  }
  auto counter_get(std::string_view name) const {
    return call(&prism_host_api_t::store_counter_get, c(name));
  }
  auto board_create(std::string_view board, uint32_t order, uint32_t op) const {
    return call(&prism_host_api_t::board_create, c(board), order, op);
  }
  auto board_submit(std::string_view board, const prism_entry_t& entry) const {
    return call(&prism_host_api_t::board_submit, c(board), &entry);
  }
  auto board_top(std::string_view board, uint32_t limit) const {
    return call(&prism_host_api_t::board_top, c(board), limit);
  }
  auto board_page(std::string_view board, uint64_t after_rank, uint32_t limit) const {
    return call(&prism_host_api_t::board_page, c(board), after_rank, limit);
  }
  auto board_around(std::string_view board, std::string_view owner, uint32_t limit) const {
    return call(&prism_host_api_t::board_around, c(board), c(owner), limit);
  }
  auto board_rank(std::string_view board, std::string_view owner) const {
    return call(&prism_host_api_t::board_rank, c(board), c(owner));
  }
  auto board_remove(std::string_view board, std::string_view owner) const {
    return call(&prism_host_api_t::board_remove, c(board), c(owner));
  }
  auto board_reset(std::string_view board) const {
    return call(&prism_host_api_t::board_reset, c(board));
  }
  auto presence_set(std::string_view owner, std::string_view status, uint32_t ttl_ms) const {
    return call(&prism_host_api_t::presence_set, c(owner), c(status), ttl_ms);
  }
  auto presence_get(std::string_view owner) const {
    return call(&prism_host_api_t::presence_get, c(owner));
  }
  auto presence_remove(std::string_view owner) const {
    return call(&prism_host_api_t::presence_remove, c(owner));
  }
  auto presence_list(std::string_view status_prefix, uint32_t limit) const {
    return call(&prism_host_api_t::presence_list, c(status_prefix), limit);
  }
  // All or nothing per backend (plugin.h, store_apply). `writes` must stay valid until
  // the call returns, which is before the co_await completes: a local array is fine.
  // Through store_apply_sized where the host has it, so prism_write_t may grow.
  auto apply(std::span<const prism_write_t> writes) const {
    auto sized = PRISM_SDK_HOST_FN(api_, store_apply_sized);
    auto plain = PRISM_SDK_HOST_FN(api_, store_apply);
    prism_host_t* host = host_;
    auto start = [sized, plain, host, writes](prism_store_done_fn done, void* user) {
      if (sized != nullptr) return sized(host, writes.data(), writes.size(), sizeof(prism_write_t), done, user);
      if (plain != nullptr) return plain(host, writes.data(), writes.size(), done, user);
      prism_store_result_t none{};
      none.struct_size = sizeof none;
      none.status = PRISM_UNAVAILABLE;
      none.message = "this host offers no storage (plugin ABI 1.1 needed)";
      done(user, &none);
    };
    return StoreCall<decltype(start)>(std::move(start));
  }
  // The batch must stay valid until the call returns (before the co_await completes).
  auto apply(const WriteBatch& batch) const { return apply(batch.writes()); }

  // True when the host offers storage (ABI 1.1); without it every call above completes
  // with PRISM_UNAVAILABLE.
  bool has_storage() const noexcept { return PRISM_SDK_HOST_FN(api_, store_apply) != nullptr; }

  // ---- Real time (plugin.h ABI 1.2): push, topics, timers. Each returns the host's
  // status, or PRISM_UNAVAILABLE from a host that predates them. `method` is relative to
  // the plugin's range, like a handler's id. Payloads and topics are copied by the host.
  bool has_realtime() const noexcept { return PRISM_SDK_HOST_FN(api_, timer_stop) != nullptr; }

  prism_status_t push(uint64_t session, uint32_t method, Bytes payload,
                      uint32_t delivery = PRISM_DELIVERY_RELIABLE_ORDERED) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, push);
    return fn != nullptr ? fn(host_, session, method, delivery, to_c(payload)) : PRISM_UNAVAILABLE;
  }
  prism_status_t push(uint64_t session, uint32_t method, std::string_view text,
                      uint32_t delivery = PRISM_DELIVERY_RELIABLE_ORDERED) const noexcept {
    return push(session, method, as_bytes(text), delivery);
  }
  // A push that only this session hears as a message of `topic` (plugin.h push_topic):
  // on a WebSocket, on that channel alone.
  prism_status_t push_topic(uint64_t session, std::string_view topic, uint32_t method,
                            std::string_view text,
                            uint32_t delivery = PRISM_DELIVERY_RELIABLE_ORDERED) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, push_topic);
    return fn != nullptr ? fn(host_, session, c(topic), method, delivery, to_c(as_bytes(text)))
                         : PRISM_UNAVAILABLE;
  }
  // A session to a topic; PRISM_SESSION_PLUGIN subscribes this plugin version, whose
  // on_topic (or on_event) then receives the topic's messages.
  prism_status_t subscribe(uint64_t session, std::string_view topic) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, subscribe);
    return fn != nullptr ? fn(host_, session, c(topic)) : PRISM_UNAVAILABLE;
  }
  prism_status_t unsubscribe(uint64_t session, std::string_view topic) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, unsubscribe);
    return fn != nullptr ? fn(host_, session, c(topic)) : PRISM_UNAVAILABLE;
  }
  // The session leaves `topic` because the service ended it (plugin.h end_channel): a
  // WebSocket hears phx_error (rejoin) or phx_close. A host without end_channel (1.2
  // before it) only unsubscribes.
  prism_status_t end_channel(uint64_t session, std::string_view topic, std::string_view reason,
                             bool rejoin) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, end_channel);
    return fn != nullptr ? fn(host_, session, c(topic), c(reason), rejoin ? 1 : 0)
                         : unsubscribe(session, topic);
  }
  prism_status_t publish(std::string_view topic, uint32_t method, Bytes payload) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, publish);
    return fn != nullptr ? fn(host_, c(topic), method, to_c(payload)) : PRISM_UNAVAILABLE;
  }
  prism_status_t publish(std::string_view topic, uint32_t method, std::string_view text) const noexcept {
    return publish(topic, method, as_bytes(text));
  }
  // publish, but not to the session `except` (plugin.h publish_except).
  prism_status_t publish_except(std::string_view topic, uint64_t except, uint32_t method,
                                std::string_view text) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, publish_except);
    return fn != nullptr ? fn(host_, c(topic), except, method, to_c(as_bytes(text)))
                         : PRISM_UNAVAILABLE;
  }

  // ---- The cluster (plugin.h lease): `StoreResult r = co_await host.lease(name)`: OK when
  // this node holds it, CONFLICT with the holder's node id in r.message, UNAVAILABLE.
  auto lease(std::string_view name) const { return call(&prism_host_api_t::lease, c(name)); }
  prism_status_t release_lease(std::string_view name) const noexcept {
    auto fn = PRISM_SDK_HOST_FN(api_, lease_release);
    return fn != nullptr ? fn(host_, c(name)) : PRISM_OK;
  }

  // A timer that calls `fire` on the worker that started it (worker 0 from the
  // constructor): after `after`, then every `repeat` when repeat > 0. Stopped when the
  // returned Timer is destroyed or stop()ped; a Timer that failed to start is empty.
  // `fire` runs like a handler (serialised unless the service is concurrent); an
  // exception from it is logged.
  class Timer;
  Timer start_timer(std::chrono::milliseconds after, std::chrono::milliseconds repeat,
                    std::function<void()> fire);

  // `co_await host.sleep(50ms)` in a Task: resumes on the same worker once the time has
  // passed. Yields PRISM_OK, or the reason it could not wait (then at once).
  class Sleep;
  Sleep sleep(std::chrono::milliseconds duration);

  // For host calls this wrapper does not cover yet. Both are the host's, valid until shutdown.
  const prism_host_api_t* api() const noexcept { return api_; }
  prism_host_t* handle() const noexcept { return host_; }

  // The SDK's on_event trampoline: runs the timer this SDK started with `timer_id` and
  // returns true, or returns false for a timer (or event) that is not the SDK's.
  bool fire_timer(uint64_t timer_id) noexcept;

 private:
  // What an SDK timer runs; owned by the Timer (or Sleep) that started it.
  struct TimerTarget {
    std::function<void()> fire;
    bool repeating = false;
  };
  static prism_bytes_t to_c(Bytes bytes) noexcept { return {bytes.data(), bytes.size()}; }
  uint64_t start_target(std::chrono::milliseconds after, std::chrono::milliseconds repeat,
                        std::shared_ptr<TimerTarget> target, prism_status_t& status);
  void stop_target(uint64_t timer_id) noexcept;

  const prism_host_api_t* api_;
  prism_host_t* host_;
  // The SDK's live timers by id; under a lock, since a concurrent service may start one
  // on one worker while another fires elsewhere.
  std::mutex timers_mutex_;
  std::map<uint64_t, std::shared_ptr<TimerTarget>> timers_;
};

// A running timer (Host::start_timer). Move-only; stops its timer when destroyed.
class Host::Timer {
 public:
  Timer() = default;
  Timer(Host& host, uint64_t id) noexcept : host_(&host), id_(id) {}
  Timer(Timer&& other) noexcept
      : host_(std::exchange(other.host_, nullptr)), id_(std::exchange(other.id_, 0)) {}
  Timer& operator=(Timer&& other) noexcept {
    if (this != &other) {
      stop();
      host_ = std::exchange(other.host_, nullptr);
      id_ = std::exchange(other.id_, 0);
    }
    return *this;
  }
  ~Timer() { stop(); }
  explicit operator bool() const noexcept { return id_ != 0; }
  uint64_t id() const noexcept { return id_; }
  void stop() noexcept {
    if (host_ != nullptr && id_ != 0) host_->stop_target(id_);
    id_ = 0;
  }

 private:
  Host* host_ = nullptr;
  uint64_t id_ = 0;
};

// The awaiter of Host::sleep.
class Host::Sleep {
 public:
  Sleep(Host& host, std::chrono::milliseconds duration) noexcept
      : host_(host), duration_(duration) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiting) {
    auto target = std::make_shared<TimerTarget>();
    target->fire = [waiting] { waiting.resume(); };
    host_.start_target(duration_, std::chrono::milliseconds(0), std::move(target), status_);
    return status_ == PRISM_OK;  // not started: resume at once with the reason
  }
  prism_status_t await_resume() const noexcept { return status_; }

 private:
  Host& host_;
  std::chrono::milliseconds duration_;
  prism_status_t status_ = PRISM_OK;
};

inline uint64_t Host::start_target(std::chrono::milliseconds after,
                                   std::chrono::milliseconds repeat,
                                   std::shared_ptr<TimerTarget> target, prism_status_t& status) {
  auto start = PRISM_SDK_HOST_FN(api_, timer_start);
  if (start == nullptr) {
    status = PRISM_UNAVAILABLE;
    return 0;
  }
  target->repeating = repeat.count() > 0;
  uint64_t id = 0;
  // Held across the start: the timer may fire on another worker before the id is stored.
  std::lock_guard lock(timers_mutex_);
  status = start(host_, static_cast<uint64_t>(std::max<int64_t>(after.count(), 0)),
                 static_cast<uint64_t>(std::max<int64_t>(repeat.count(), 0)), nullptr, &id);
  if (status == PRISM_OK) timers_.emplace(id, std::move(target));
  return status == PRISM_OK ? id : 0;
}

inline void Host::stop_target(uint64_t timer_id) noexcept {
  {
    std::lock_guard lock(timers_mutex_);
    timers_.erase(timer_id);
  }
  if (auto stop = PRISM_SDK_HOST_FN(api_, timer_stop)) stop(host_, timer_id);
}

inline bool Host::fire_timer(uint64_t timer_id) noexcept {
  std::shared_ptr<TimerTarget> target;
  {
    std::lock_guard lock(timers_mutex_);
    const auto it = timers_.find(timer_id);
    if (it == timers_.end()) return false;
    target = it->second;
    if (!target->repeating) timers_.erase(it);  // a one-shot fires once
  }
  target->fire();
  return true;
}

inline Host::Timer Host::start_timer(std::chrono::milliseconds after,
                                     std::chrono::milliseconds repeat,
                                     std::function<void()> fire) {
  auto target = std::make_shared<TimerTarget>();
  target->fire = std::move(fire);
  prism_status_t status = PRISM_OK;
  const uint64_t id = start_target(after, repeat, std::move(target), status);
  return id != 0 ? Timer(*this, id) : Timer();
}

inline Host::Sleep Host::sleep(std::chrono::milliseconds duration) { return Sleep(*this, duration); }

// A Phoenix channel message (plugin.h, "Channels") as a service's `channel` handler gets
// it; every view is the host's, valid until the handler returns.
struct ChannelMessage {
  prism_channel_kind_t kind;
  std::string_view topic;
  std::string_view event;    // the client's event; "phx_join" / "phx_leave" for the others
  std::string_view payload;  // JSON text
  std::string_view connect;  // JSON: {"socket", "params", "token"} (plugin.h); may be empty
};

// What Request::forward sends (plugin.h prism_forward_t): the channel message as it came,
// received here from the other nodes first when it is a JOIN (its topic); or a request to
// `method` with its payload. The views must outlive the forward call only.
inline prism_forward_t forward_of(const ChannelMessage& m) noexcept {
  auto c = [](std::string_view s) {
    return prism_bytes_t{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  };
  prism_forward_t f{};
  f.struct_size = sizeof f;
  f.kind = static_cast<uint32_t>(m.kind);
  f.payload = c(m.payload);
  f.topic = c(m.topic);
  f.event = c(m.event);
  f.connect = c(m.connect);
  if (m.kind == PRISM_CHANNEL_JOIN) f.receive_topic = c(m.topic);
  return f;
}
inline prism_forward_t forward_of(uint32_t method, Bytes payload, std::string_view receive_topic = {}) noexcept {
  prism_forward_t f{};
  f.struct_size = sizeof f;
  f.method = method;
  f.payload = {payload.data(), payload.size()};
  f.receive_topic = {reinterpret_cast<const uint8_t*>(receive_topic.data()), receive_topic.size()};
  return f;
}

// What a service declares about itself as `static constexpr ServiceInfo info`.
struct ServiceInfo {
  const char* name;          // [a-z0-9_-]{1,32}; static
  const char* version;       // "MAJOR.MINOR.PATCH"; static
  uint32_t packet_id_first;  // requested range: [first, first + count)
  uint32_t packet_id_count;
  bool concurrent = false;  // handlers may run on several workers at once; else serialised
  // When > 0, a payload larger than this is refused INVALID_ARGUMENT ("payload: larger
  // than N bytes") before any handler sees it.
  size_t max_payload = 0;
};

// One row of `static constexpr Method<Service> methods[]`. `payload` is the host's, valid
// until the handler returns: copy it to keep it, e.g. when moving `request` elsewhere to
// answer later.
//
// A coroutine handler (returning Task) gets the payload as an owned std::string instead,
// since it outlives the host's call: `{1, "record", &Practice::record}` works for both.
//
// A handler may take its request message parsed instead (any protobuf message type):
// `Task join(Request, v1::JoinRequest in)`, bound with `prism::sdk::parsed<&S::join>(30,
// "join")`. A payload that does not parse is answered INVALID_ARGUMENT ("payload: not a
// prism.practice.v1.JoinRequest protobuf") and the handler is not called.
template <class Service>
struct Method {
  using Handler = void (Service::*)(Request request, Bytes payload);
  using AsyncHandler = Task (Service::*)(Request request, std::string payload);
  using Invoke = void (*)(Service& service, Request request, Bytes payload);

  // A null handler cannot be written: `nullptr` matches every constructor.
  constexpr Method(uint32_t id_, const char* name_, Handler h) noexcept
      : id(id_), name(name_), handler(h) {}
  constexpr Method(uint32_t id_, const char* name_, AsyncHandler h) noexcept
      : id(id_), name(name_), async_handler(h), is_async(true) {}
  constexpr Method(uint32_t id_, const char* name_, Invoke i) noexcept
      : id(id_), name(name_), invoke(i) {}

  uint32_t id;       // relative to packet_id_first
  const char* name;  // static
  Handler handler = nullptr;
  AsyncHandler async_handler = nullptr;
  bool is_async = false;  // async_handler is the one to call
  Invoke invoke = nullptr;  // set by parsed<>: parses, then calls the typed handler
};

namespace detail {

template <class H>
struct TypedHandler;
template <class S, class R, class M>
struct TypedHandler<R (S::*)(Request, M)> {
  using Service = S;
  using Message = std::remove_cvref_t<M>;
};

// Parses the payload as the handler's message type, then calls it.
template <auto H>
void parse_then_call(typename TypedHandler<decltype(H)>::Service& service, Request request,
                     Bytes payload) {
  typename TypedHandler<decltype(H)>::Message in;
  if (!in.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    request.fail(PRISM_INVALID_ARGUMENT,
                 "payload: not a " + std::string(in.GetTypeName()) + " protobuf");
    return;
  }
  (service.*H)(std::move(request), std::move(in));
}

}  // namespace detail

// A methods[] row for a handler taking its parsed request message (see Method).
template <auto H>
constexpr Method<typename detail::TypedHandler<decltype(H)>::Service> parsed(uint32_t id,
                                                                             const char* name) {
  return {id, name, &detail::parse_then_call<H>};
}

namespace detail {

template <class S>
concept HasSnapshot = requires(S& s) {
  { s.snapshot() } -> std::convertible_to<std::string>;
};
template <class S>
concept HasRestore = requires(S& s, Bytes state) {
  s.restore(state);
};
template <class S>
concept HasOnEvent = requires(S& s, const prism_event_t& event) {
  s.on_event(event);
};
// Channels: `static constexpr const char* channel_topics[] = {"echo:*", nullptr};` and
// `void channel(Request, const ChannelMessage&)`.
template <class S>
concept HasChannels = requires(S& s, Request request, const ChannelMessage& message) {
  { S::channel_topics[0] } -> std::convertible_to<const char*>;
  s.channel(std::move(request), message);
};
// `void on_topic(std::string_view topic, uint32_t packet_id, Bytes payload)`: the messages
// of topics the plugin subscribed itself to (Host::subscribe(PRISM_SESSION_PLUGIN, ...)).
template <class S>
concept HasOnTopic = requires(S& s, std::string_view topic, uint32_t packet_id, Bytes payload) {
  s.on_topic(topic, packet_id, payload);
};

template <class Service>
consteval bool methods_are_valid() {
  const auto& methods = Service::methods;
  for (size_t i = 0; i < std::size(methods); ++i) {
    // (Handlers are not compared with nullptr here: GCC cannot constant-evaluate that
    // under -fsanitize=undefined, and Method's constructors make a null one unwritable.)
    if (methods[i].name == nullptr || methods[i].name[0] == '\0') return false;
    if (methods[i].id >= Service::info.packet_id_count) return false;
    for (size_t j = 0; j < i; ++j)
      if (methods[j].id == methods[i].id) return false;
  }
  return true;
}

// One loaded instance: the Host it was given, the service, and the last snapshot, kept
// here so the bytes handed to the host stay valid until the next call (plugin.h, snapshot).
template <class Service>
struct Instance {
  Instance(const prism_host_api_t* api, prism_host_t* host_handle, std::string_view config)
      : host(api, host_handle), service(host, config) {}
  Host host;  // declared before `service`, which may keep a reference to it
  Service service;
  std::string last_snapshot;
};

// The C face of Service: the trampolines the descriptor points at. Each is noexcept, so
// an exception the catch clauses miss terminates instead of unwinding into the host.
template <class Service>
struct ServiceAbi {
  static_assert(std::is_constructible_v<Service, Host&, std::string_view>,
                "a service is constructed from (prism::sdk::Host&, std::string_view config)");
  static_assert(
      methods_are_valid<Service>(),
      "methods[]: each needs a name and a unique id below packet_id_count");
  static_assert(
      !requires { Service::concurrent; },
      "declare concurrency in ServiceInfo::concurrent, the one place the SDK reads it");

  static constexpr auto c_methods = [] {
    std::array<prism_method_t, std::size(Service::methods)> out{};
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = {Service::methods[i].name, Service::methods[i].id};
    return out;
  }();

  static Instance<Service>* self(void* instance) noexcept {
    return static_cast<Instance<Service>*>(instance);
  }

  static prism_status_t init(const prism_host_api_t* api, prism_host_t* host, prism_bytes_t config,
                             void** instance, char* error, size_t error_len) noexcept {
    if (instance == nullptr) return PRISM_INVALID_ARGUMENT;
    *instance = nullptr;
    if (api == nullptr || api->abi_version_major != PRISM_ABI_VERSION_MAJOR ||
        PRISM_SDK_HOST_FN(api, reply) == nullptr) {
      copy_c_string("host API table missing or of another ABI major version", error, error_len);
      return PRISM_INVALID_ARGUMENT;
    }
    try {
      *instance = new Instance<Service>(api, host, as_text(from_c(config)));
      return PRISM_OK;
    } catch (const std::exception& e) {
      copy_c_string(e.what(), error, error_len);
    } catch (...) {
      copy_c_string("constructor threw a non-std exception", error, error_len);
    }
    return PRISM_INTERNAL;
  }

  // Runs `body`, keeping any exception on this side of the ABI: logged, reported as false.
  template <class Body>
  static bool guarded(Instance<Service>& it, const char* what, const char* method,
                      Body&& body) noexcept {
    try {
      body();
      return true;
    } catch (const std::exception& e) {
      log_exception(it, what, method, e.what());
    } catch (...) {
      log_exception(it, what, method, "non-std exception");
    }
    return false;
  }
  static void log_exception(Instance<Service>& it, const char* what, const char* method,
                            const char* error) noexcept {
    if (method != nullptr)
      log_line(it.host.api(), it.host.handle(), PRISM_LOG_ERROR, "%s threw method=%s error=\"%s\"",
               what, method, error);
    else
      log_line(it.host.api(), it.host.handle(), PRISM_LOG_ERROR, "%s threw error=\"%s\"", what,
               error);
  }

  // Always PRISM_OK: the request is answered here, or by the handler (now or later), or
  // by Request's destructor when the handler throws or forgets.
  static prism_status_t handle(void* instance, prism_request_t* request, uint32_t method,
                               prism_bytes_t payload) noexcept {
    Instance<Service>& it = *self(instance);
    Request req(it.host.api(), it.host.handle(), request);
    // Tables are small; a scan beats a map and allocates nothing.
    const auto* found = std::find_if(std::begin(Service::methods), std::end(Service::methods),
                                     [method](const Method<Service>& m) { return m.id == method; });
    if (found == std::end(Service::methods)) {
      req.fail(PRISM_INVALID_PACKET, "unknown method");
      return PRISM_OK;
    }
    if (Service::info.max_payload > 0 && payload.len > Service::info.max_payload) {
      req.fail(PRISM_INVALID_ARGUMENT,
               "payload: larger than " + std::to_string(Service::info.max_payload) + " bytes");
      return PRISM_OK;
    }
    guarded(it, "handler", found->name, [&] {
      if (found->invoke != nullptr) {
        found->invoke(it.service, std::move(req), from_c(payload));
      } else if (found->is_async) {
        (it.service.*(found->async_handler))(std::move(req), std::string(as_text(from_c(payload))));
      } else {
        (it.service.*(found->handler))(std::move(req), from_c(payload));
      }
    });
    return PRISM_OK;
  }

  // Timers the SDK started go to their callbacks, topic messages to on_topic when the
  // service has one; everything else to on_event, when it has one.
  static void on_event(void* instance, const prism_event_t* event) noexcept {
    Instance<Service>& it = *self(instance);
    if (event->type == PRISM_EVENT_TIMER) {
      bool fired = false;
      guarded(it, "timer", nullptr, [&] { fired = it.host.fire_timer(event->timer_id); });
      if (fired) return;
    }
    if constexpr (HasOnTopic<Service>) {
      if (event->type == PRISM_EVENT_TOPIC_MESSAGE) {
        guarded(it, "on_topic", nullptr, [&] {
          it.service.on_topic(as_text(from_c(event->topic)), event->packet_id,
                              from_c(event->payload));
        });
        return;
      }
    }
    if constexpr (HasOnEvent<Service>) {
      guarded(it, "on_event", nullptr, [&] { it.service.on_event(*event); });
    }
  }

  // Always PRISM_OK, as handle: the Request answers, whatever the handler does.
  static prism_status_t channel([[maybe_unused]] void* instance, prism_request_t* request,
                                [[maybe_unused]] const prism_channel_message_t* message) noexcept {
    Instance<Service>& it = *self(instance);
    Request req(it.host.api(), it.host.handle(), request);
    if constexpr (HasChannels<Service>) {
      // A host older than the connect member hands a shorter struct.
      const bool has_connect = message->struct_size >= offsetof(prism_channel_message_t, connect) +
                                                           sizeof message->connect;
      const ChannelMessage m{static_cast<prism_channel_kind_t>(message->kind),
                             as_text(from_c(message->topic)), as_text(from_c(message->event)),
                             as_text(from_c(message->payload)),
                             has_connect ? as_text(from_c(message->connect)) : std::string_view()};
      guarded(it, "channel", nullptr, [&] { it.service.channel(std::move(req), m); });
    }
    return PRISM_OK;
  }

  static constexpr const char* const* channel_topics() {
    if constexpr (HasChannels<Service>) {
      return Service::channel_topics;
    } else {
      return nullptr;
    }
  }

  static prism_status_t snapshot([[maybe_unused]] void* instance, prism_bytes_t* state) noexcept {
    *state = {nullptr, 0};
    if constexpr (HasSnapshot<Service>) {
      Instance<Service>& it = *self(instance);
      if (guarded(it, "snapshot", nullptr, [&] { it.last_snapshot = it.service.snapshot(); })) {
        *state = to_c(as_bytes(it.last_snapshot));  // valid until the next call (plugin.h)
        return PRISM_OK;
      }
    }
    return PRISM_INTERNAL;
  }

  static prism_status_t restore([[maybe_unused]] void* instance,
                                [[maybe_unused]] prism_bytes_t state) noexcept {
    if constexpr (HasRestore<Service>) {
      Instance<Service>& it = *self(instance);
      // The state is the host's, valid until we return; the service copies what it keeps.
      if (guarded(it, "restore", nullptr, [&] { it.service.restore(from_c(state)); }))
        return PRISM_OK;
    }
    return PRISM_INTERNAL;
  }

  static void shutdown(void* instance) noexcept { delete self(instance); }

  // Static for the life of the loaded file, as prism_plugin_entry promises.
  static constexpr prism_plugin_descriptor_t descriptor{
      .struct_size = sizeof(prism_plugin_descriptor_t),
      .abi_version_major = PRISM_ABI_VERSION_MAJOR,
      .abi_version_minor = PRISM_ABI_VERSION_MINOR,
      .name = Service::info.name,
      .version = Service::info.version,
      .packet_id_first = Service::info.packet_id_first,
      .packet_id_count = Service::info.packet_id_count,
      .flags = Service::info.concurrent ? PRISM_PLUGIN_CONCURRENT : 0u,
      .methods = c_methods.data(),
      .method_count = c_methods.size(),
      .init = &init,
      .handle = &handle,
      .on_event = &on_event,  // SDK timers arrive there even without a service on_event
      .snapshot = HasSnapshot<Service> ? &snapshot : nullptr,
      .restore = HasRestore<Service> ? &restore : nullptr,
      .shutdown = &shutdown,
      .method_size = sizeof(prism_method_t),
      .channel_topics = channel_topics(),
      .channel = HasChannels<Service> ? &channel : nullptr,
  };
};

}  // namespace detail
}  // namespace prism::sdk

#undef PRISM_SDK_HOST_FN

// Defines the plugin's one exported symbol. Use once per plugin, at namespace scope.
#define PRISM_PLUGIN(Service)                                                         \
  extern "C" PRISM_EXPORT const prism_plugin_descriptor_t* prism_plugin_entry(void) { \
    return &::prism::sdk::detail::ServiceAbi<Service>::descriptor;                    \
  }
