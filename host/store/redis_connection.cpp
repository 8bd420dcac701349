// RedisConnection: the loop thread, the command queue, hiredis's async context and the
// reconnect/timeout state machine (disconnected -> connecting -> ready -> disconnected).
#include "store/redis_connection.hpp"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "base/thread_name.hpp"

namespace prism::store {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWatchdogPeriod = std::chrono::milliseconds(100);

struct Request {
  bool is_eval = false;
  std::vector<std::string> args;  // ARGV for eval, the whole command otherwise
  RedisConnection::ReplyHandler handler;
  std::function<void()> task;  // set for post()
};

void call_handler(const RedisConnection::ReplyHandler& handler, const redisReply* reply) {
  // Handlers run inside hiredis callbacks (C code): nothing may unwind through them.
  try {
    if (handler) handler(reply);
  } catch (const std::exception& e) {
    spdlog::error("event=redis_handler_threw error=\"{}\"", e.what());
  } catch (...) {
    spdlog::error("event=redis_handler_threw error=unknown");
  }
}

// hiredis 0.14's libuv adapter drops poll errors (`if (status != 0) return;`), and libuv
// reports POLLERR (a refused connect, a reset connection) exactly that way and stops the
// poll: the context would hang until a timeout. These replace the adapter's event hooks
// after redisLibuvAttach with ones that hand an error to hiredis, which then reads the
// socket error and runs the connect or disconnect callback.
void on_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<redisLibuvEvents*>(handle->data);
  if (p->context != nullptr && (status != 0 || (events & UV_READABLE) != 0)) {
    redisAsyncHandleRead(p->context);
  }
  if (status == 0 && p->context != nullptr && (events & UV_WRITABLE) != 0) {
    redisAsyncHandleWrite(p->context);
  }
}

void update_poll(redisLibuvEvents* p) {
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, on_poll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void add_read(void* privdata) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events |= UV_READABLE;
  update_poll(p);
}
void del_read(void* privdata) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events &= ~UV_READABLE;
  update_poll(p);
}
void add_write(void* privdata) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events |= UV_WRITABLE;
  update_poll(p);
}
void del_write(void* privdata) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events &= ~UV_WRITABLE;
  update_poll(p);
}

int attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (redisLibuvAttach(ac, loop) != REDIS_OK) return REDIS_ERR;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  return REDIS_OK;
}

}  // namespace

struct RedisConnection::Impl {
  enum class State { kDisconnected, kConnecting, kReady };

  struct Pending {
    Impl* impl;
    Request request;
    bool with_script = false;  // sent as EVAL with the script text
    bool as_function = false;  // sent as FCALL
  };

  Impl(std::string h, uint16_t p, RedisOptions o, const std::string& body)
      : host(std::move(h)), port(p), options(std::move(o)), script(body + "\nreturn main(ARGV)\n"),
        library_body(body) {
    backoff = options.reconnect_min;
  }

  // ---- set at construction, read-only after ----
  std::string host;
  uint16_t port;
  RedisOptions options;
  std::string script;        // the EVAL form: the body, then its main(ARGV)
  std::string library_body;  // the body alone, for the function library

  // ---- shared with other threads ----
  std::mutex mutex;
  std::vector<Request> incoming;
  bool closed = false;  // wake is closed: the destructor drains `incoming`
  bool stop_requested = false;
  std::atomic<bool> ready{false};

  // ---- owned by the loop thread ----
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t reconnect_timer{};
  uv_timer_t watchdog{};
  std::thread thread;
  std::atomic<std::thread::id> loop_thread{};  // set by the loop thread when it starts
  redisAsyncContext* context = nullptr;
  State state = State::kDisconnected;
  bool stopping = false;
  std::string sha;
  std::string function;  // the library's function, named after sha; "" while EVALSHA is used
  std::deque<Request> held;             // waiting for the connection attempt
  std::deque<Clock::time_point> sent;   // send time of each unanswered command, in order
  std::set<std::string> channels;       // subscriber mode: what is (to be) subscribed
  RedisConnection::MessageHandler on_message;
  RedisConnection::SubscribedHandler on_subscribed;
  Clock::time_point connect_started{};
  std::chrono::milliseconds backoff{};
  bool logged_down = false;  // one warning per outage, not one per attempt
  bool logged_no_functions = false;

  std::string endpoint() const { return host + ":" + std::to_string(port); }

  void push(Request request) {
    if (std::this_thread::get_id() == loop_thread.load(std::memory_order_relaxed)) {
      // From a reply's handler (a window's HMGET after its ZRANGE): goes out with this
      // loop turn's writes, without a wake-up of the loop by itself.
      dispatch(std::move(request));
      return;
    }
    std::lock_guard lock(mutex);
    incoming.push_back(std::move(request));
    if (!closed) uv_async_send(&wake);
  }

  // ---- loop thread ----
  static void on_wake(uv_async_t* handle) {
    auto* self = static_cast<Impl*>(handle->data);
    std::vector<Request> batch;
    bool stop = false;
    {
      std::lock_guard lock(self->mutex);
      batch.swap(self->incoming);
      stop = self->stop_requested;
    }
    for (auto& request : batch) self->dispatch(std::move(request));
    if (stop) self->shutdown();
  }

  void dispatch(Request request) {
    if (request.task) {
      request.task();
      return;
    }
    if (stopping || state == State::kDisconnected) {
      call_handler(request.handler, nullptr);
    } else if (state == State::kConnecting) {
      held.push_back(std::move(request));
    } else {
      send(new Pending{this, std::move(request)});
    }
  }

  void send(Pending* pending) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    const Request& r = pending->request;
    auto add = [&](const std::string& s) {
      argv.push_back(s.data());
      lens.push_back(s.size());
    };
    static const std::string kFcall = "FCALL", kEvalSha = "EVALSHA", kEval = "EVAL", kNoKeys = "0";
    if (r.is_eval) {
      if (pending->with_script) {
        add(kEval);
        add(script);
      } else if (!function.empty()) {
        add(kFcall);
        add(function);
        pending->as_function = true;
      } else {
        add(kEvalSha);
        add(sha);
      }
      add(kNoKeys);
    }
    for (const auto& arg : r.args) add(arg);
    if (context == nullptr ||
        redisAsyncCommandArgv(context, &Impl::on_reply, pending, static_cast<int>(argv.size()),
                              argv.data(), lens.data()) != REDIS_OK) {
      call_handler(pending->request.handler, nullptr);
      delete pending;
      return;
    }
    sent.push_back(Clock::now());
  }

  static void on_reply(redisAsyncContext* /*ac*/, void* r, void* privdata) {
    auto* pending = static_cast<Pending*>(privdata);
    Impl* self = pending->impl;
    if (!self->sent.empty()) self->sent.pop_front();
    const auto* reply = static_cast<const redisReply*>(r);
    // hiredis fails pending commands before it reports the disconnect: be unhealthy
    // before their handlers run.
    if (reply == nullptr) self->ready = false;
    // Redis forgets scripts on SCRIPT FLUSH and functions on FUNCTION FLUSH: send the call
    // again with the script's text, once, and load the library again for the next ones.
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && pending->request.is_eval &&
        !pending->with_script) {
      const std::string_view error = reply_text(reply);
      const bool lost_function = pending->as_function && error == "ERR Function not found";
      if (lost_function || error.starts_with("NOSCRIPT")) {
        if (lost_function && !self->function.empty()) {
          self->function.clear();
          self->load_library(nullptr);
        }
        pending->with_script = true;
        self->send(pending);
        return;
      }
    }
    call_handler(pending->request.handler, reply);
    delete pending;
  }

  void connect() {
    if (stopping) return;
    redisAsyncContext* ac = redisAsyncConnect(host.c_str(), port);
    if (ac == nullptr || ac->err != 0) {
      const std::string error = ac != nullptr ? ac->errstr : "out of memory";
      if (ac != nullptr) redisAsyncFree(ac);
      lost("connect failed: " + error);
      return;
    }
    if (attach(ac, &loop) != REDIS_OK) {
      redisAsyncFree(ac);
      lost("could not attach to the event loop");
      return;
    }
    ac->data = this;
    redisAsyncSetConnectCallback(ac, &Impl::on_connect);
    redisAsyncSetDisconnectCallback(ac, &Impl::on_disconnect);
    context = ac;
    state = State::kConnecting;
    connect_started = Clock::now();
    // hiredis buffers these until the socket connects; Redis answers them in order.
    if (!options.password.empty()) {
      send_setup({"AUTH", options.password}, [this](const redisReply* reply) {
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) fail_setup("AUTH", reply);
      });
    }
    if (options.database != 0) {
      send_setup({"SELECT", std::to_string(options.database)}, [this](const redisReply* reply) {
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) fail_setup("SELECT", reply);
      });
    }
    send_setup({"SCRIPT", "LOAD", script}, [this](const redisReply* reply) {
      if (reply == nullptr) return;  // the disconnect path handles it
      if (reply->type != REDIS_REPLY_STRING) {
        fail_setup("SCRIPT LOAD", reply);
        return;
      }
      sha.assign(reply->str, reply->len);
      function.clear();
      load_library([this] { on_ready(); });
    });
  }

  // Redis 7 keeps a function library loaded once per server: the script's top level (its
  // function definitions) then runs at the load, not at every call as under EVALSHA, which
  // measured 7 % of Redis's instructions for a match recording (docs/performance.md). The
  // library is named after the script's SHA-1, so nodes running different versions of
  // prismd each call their own. A server without functions (Redis 6, or an ACL that denies
  // FUNCTION) keeps EVALSHA. `then` runs after the answer, whatever it is.
  void load_library(std::function<void()> then) {
    const std::string name = "prism_" + sha;
    std::string library = "#!lua name=" + name + "\n" + library_body +
                          "\nredis.register_function('" + name +
                          "', function(_, args) return main(args) end)\n";
    send_setup({"FUNCTION", "LOAD", std::move(library)},
               [this, name, then = std::move(then)](const redisReply* reply) {
                 if (reply == nullptr) return;  // the disconnect path handles it
                 const std::string_view error =
                     reply->type == REDIS_REPLY_ERROR ? reply_text(reply) : std::string_view();
                 if (reply->type == REDIS_REPLY_STRING ||
                     error.find("already exists") != std::string_view::npos) {
                   function = name;
                 } else if (!logged_no_functions) {
                   spdlog::info("event=redis_functions_unavailable endpoint={} fallback=evalsha "
                                "error=\"{}\"",
                                endpoint(), error);
                   logged_no_functions = true;
                 }
                 if (then) then();
               });
  }

  void send_setup(std::vector<std::string> argv, RedisConnection::ReplyHandler handler) {
    send(new Pending{this, Request{false, std::move(argv), std::move(handler), {}}});
  }

  void fail_setup(const char* what, const redisReply* reply) {
    const std::string error = reply->type == REDIS_REPLY_ERROR
                                  ? std::string(reply->str, reply->len)
                                  : std::string("unexpected reply");
    // LOADING: the server is replaying its append-only file after a restart; retry.
    spdlog::log(error.starts_with("LOADING") ? spdlog::level::info : spdlog::level::err,
                "event=redis_setup_failed endpoint={} command=\"{}\" error=\"{}\"", endpoint(),
                what, error);
    if (context != nullptr) redisAsyncDisconnect(context);
  }

  // Subscriber mode: (UN)SUBSCRIBE outside send(): their replies are not answers to
  // time (the watchdog's `sent`), and a SUBSCRIBE's callback runs for every message.
  void subscription(const char* verb, const std::string& channel) {
    if (context == nullptr || state != State::kReady) return;  // on_ready subscribes them all
    const char* argv[] = {verb, channel.data()};
    const size_t lens[] = {std::char_traits<char>::length(verb), channel.size()};
    redisAsyncCommandArgv(context, &Impl::on_subscription, this, 2, argv, lens);
  }

  static void on_subscription(redisAsyncContext* /*ac*/, void* r, void* privdata) {
    auto* self = static_cast<Impl*>(privdata);
    const auto* reply = static_cast<const redisReply*>(r);
    // ["message", channel, payload], ["subscribe", channel, count]; unsubscribe
    // confirmations are ignored.
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    const redisReply* kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (reply_text(kind) == "subscribe") {
      if (self->on_subscribed) self->on_subscribed(reply_text(reply->element[1]));
      return;
    }
    if (reply_text(kind) != "message") return;
    if (!self->on_message) return;
    try {
      self->on_message(reply_text(reply->element[1]), reply_text(reply->element[2]));
    } catch (const std::exception& e) {
      spdlog::error("event=redis_handler_threw error=\"{}\"", e.what());
    }
  }

  void on_ready() {
    state = State::kReady;
    ready = true;
    for (const std::string& channel : channels) subscription("SUBSCRIBE", channel);
    backoff = options.reconnect_min;
    spdlog::info("event=redis_connected endpoint={}", endpoint());
    logged_down = false;
    std::deque<Request> waiting;
    waiting.swap(held);
    for (auto& request : waiting) dispatch(std::move(request));
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Impl*>(ac->data);
    if (status != REDIS_OK) {
      const std::string error = ac->errstr;
      self->context = nullptr;  // hiredis frees it after this callback
      self->lost("connect failed: " + error);
    }
  }

  static void on_disconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Impl*>(ac->data);
    self->context = nullptr;  // hiredis frees it after this callback
    self->lost(status == REDIS_OK ? std::string("closed") : "lost: " + std::string(ac->errstr));
  }

  // The connection is gone (or never came): fail what waits, retry after the backoff.
  void lost(const std::string& reason) {
    const bool was_ready = state == State::kReady;
    if (was_ready && on_subscribed) on_subscribed({});
    state = State::kDisconnected;
    ready = false;
    sent.clear();
    std::deque<Request> waiting;
    waiting.swap(held);
    for (auto& request : waiting) call_handler(request.handler, nullptr);
    if (stopping) return;
    if (!logged_down || was_ready) {
      spdlog::warn("event=redis_disconnected endpoint={} reason=\"{}\" retry_in_ms={}", endpoint(),
                   reason, backoff.count());
      logged_down = true;
    } else {
      spdlog::debug("event=redis_reconnect_failed endpoint={} reason=\"{}\" retry_in_ms={}",
                    endpoint(), reason, backoff.count());
    }
    uv_timer_start(&reconnect_timer, &Impl::on_reconnect_timer,
                   static_cast<uint64_t>(backoff.count()), 0);
    backoff = std::min(backoff * 2, options.reconnect_max);
  }

  static void on_reconnect_timer(uv_timer_t* handle) {
    static_cast<Impl*>(handle->data)->connect();
  }

  // Closes a connection that stopped answering: its calls fail instead of hanging.
  static void on_watchdog(uv_timer_t* handle) {
    auto* self = static_cast<Impl*>(handle->data);
    if (self->context == nullptr) return;
    const auto now = Clock::now();
    if (self->state == State::kConnecting && now - self->connect_started > self->options.connect_timeout) {
      self->force_close("connect timed out");
    } else if (self->state == State::kReady && !self->sent.empty() &&
               now - self->sent.front() > self->options.command_timeout) {
      self->force_close("command timed out");
    }
  }

  void force_close(const std::string& reason) {
    redisAsyncContext* ac = context;
    ready = false;
    // Runs every pending callback with a null reply; the disconnect callback (connected
    // contexts only) reports the loss, otherwise we do.
    redisAsyncFree(ac);
    if (context == ac) {
      context = nullptr;
      lost(reason);
    }
  }

  void shutdown() {
    stopping = true;
    ready = false;
    {
      std::lock_guard lock(mutex);
      closed = true;
    }
    std::deque<Request> waiting;
    waiting.swap(held);
    for (auto& request : waiting) call_handler(request.handler, nullptr);
    if (context != nullptr) force_close("shutting down");
    uv_timer_stop(&reconnect_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&reconnect_timer), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
  }

  void run() {
    loop_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
    connect();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
};

RedisConnection::RedisConnection(std::string host, uint16_t port, RedisOptions options,
                                 std::string script)
    : impl_(std::make_unique<Impl>(std::move(host), port, std::move(options), std::move(script))) {
  Impl& impl = *impl_;
  uv_loop_init(&impl.loop);
  uv_async_init(&impl.loop, &impl.wake, &Impl::on_wake);
  impl.wake.data = &impl;
  uv_timer_init(&impl.loop, &impl.reconnect_timer);
  impl.reconnect_timer.data = &impl;
  uv_timer_init(&impl.loop, &impl.watchdog);
  impl.watchdog.data = &impl;
  const auto period = static_cast<uint64_t>(kWatchdogPeriod.count());
  uv_timer_start(&impl.watchdog, &Impl::on_watchdog, period, period);
  impl.thread = std::thread([&impl] { impl.run(); });
  name_thread(impl.thread, "redis-conn");
}

RedisConnection::~RedisConnection() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    impl.stop_requested = true;
    uv_async_send(&impl.wake);
  }
  impl.thread.join();
  // Whatever arrived after the loop closed its queue completes here, as unavailable.
  for (;;) {
    std::vector<Request> rest;
    {
      std::lock_guard lock(impl.mutex);
      rest.swap(impl.incoming);
    }
    if (rest.empty()) break;
    for (auto& request : rest) {
      if (request.task) {
        request.task();
      } else {
        call_handler(request.handler, nullptr);
      }
    }
  }
  uv_loop_close(&impl.loop);
}

void RedisConnection::eval(std::vector<std::string> args, ReplyHandler handler) {
  impl_->push(Request{true, std::move(args), std::move(handler), {}});
}

void RedisConnection::command(std::vector<std::string> argv, ReplyHandler handler) {
  impl_->push(Request{false, std::move(argv), std::move(handler), {}});
}

void RedisConnection::post(std::function<void()> task) {
  impl_->push(Request{false, {}, {}, std::move(task)});
}

std::string_view reply_text(const redisReply* reply) {
  // hiredis sets str for string, status and error replies only.
  return reply != nullptr && reply->str != nullptr ? std::string_view(reply->str, reply->len)
                                                   : std::string_view();
}

void RedisConnection::set_message_handler(MessageHandler handler) {
  // On the loop thread, which reads it; queued before any subscribe that follows.
  post([impl = impl_.get(), handler = std::move(handler)]() mutable { impl->on_message = std::move(handler); });
}

void RedisConnection::set_subscribed_handler(SubscribedHandler handler) {
  post([impl = impl_.get(), handler = std::move(handler)]() mutable { impl->on_subscribed = std::move(handler); });
}

void RedisConnection::subscribe(std::string channel) {
  post([impl = impl_.get(), channel = std::move(channel)] {
    if (impl->channels.insert(channel).second) impl->subscription("SUBSCRIBE", channel);
  });
}

void RedisConnection::unsubscribe(std::string channel) {
  post([impl = impl_.get(), channel = std::move(channel)] {
    if (impl->channels.erase(channel) != 0) impl->subscription("UNSUBSCRIBE", channel);
  });
}

bool RedisConnection::connected() const { return impl_->ready; }
const RedisOptions& RedisConnection::options() const { return impl_->options; }
std::string RedisConnection::endpoint() const { return impl_->endpoint(); }

}  // namespace prism::store
