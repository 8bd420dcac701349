// Request routing, the reply path and deadlines (DESIGN.md §2, docs/protocol.md §3.3).
#include "dispatch/dispatcher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "metrics/metrics.hpp"
#include "net/uv_handle.hpp"
#include "plugins/cluster_host.hpp"
#include "plugins/plugin_types.hpp"
#include "prism/v1/admin.pb.h"

namespace prism::dispatch {
namespace {

using Clock = std::chrono::steady_clock;

// plugin.h statuses are the wire statuses negated; anything else is the plugin's bug.
v1::Status to_wire(prism_status_t status) {
  if (status > 0 || status < PRISM_INTERNAL) return v1::STATUS_INTERNAL;
  return static_cast<v1::Status>(-status);
}

}  // namespace

class RequestContext final : public prism_request {
 public:
  enum class State { kFree, kInHandler, kAnswered, kPending, kTimedOut };

  explicit RequestContext(Dispatcher* owner) : owner_(owner) {}

  prism_status_t complete(prism_status_t status, std::string_view message,
                          std::span<const uint8_t> payload) override {
    return owner_->complete(this, status, message, payload);
  }
  uint64_t session_id() const override { return origin.connection_id; }

  net::RequestOrigin origin;
  uint32_t request_id = 0;
  uint32_t packet_id = 0;
  std::shared_ptr<plugins::LoadedPlugin> plugin;  // keeps this version loaded until answered
  Clock::time_point started;
  State state = State::kFree;
  RequestContext* prev = nullptr;
  RequestContext* next = nullptr;

 private:
  Dispatcher* owner_;
};

Dispatcher::Dispatcher(net::LoopAccess& loop, net::ReplyTransport& transport,
                       std::chrono::milliseconds request_timeout)
    : loop_(loop),
      transport_(transport),
      timeout_(request_timeout),
      table_(std::make_shared<plugins::RoutingTable>(std::vector<plugins::Route>{})) {
  // The loop's stop closes the timer; the dispatcher may be gone by then, so the closer
  // shares the handle and the timer's data says whether the dispatcher is still there.
  auto timer = std::make_shared<net::UvHandle<uv_timer_t>>(loop_.loop(), uv_timer_init, this);
  timer_ = timer->get();
  loop_.at_stop([timer] {
    if (auto* self = static_cast<Dispatcher*>((*timer)->data)) self->timer_ = nullptr;
    timer->close();
  });
}

Dispatcher::~Dispatcher() {
  if (timer_ != nullptr) timer_->data = nullptr;
}

bool Dispatcher::logged_in(uint64_t connection_id, std::string_view service) const {
  const auto it = logins_.find(connection_id);
  return it != logins_.end() &&
         std::find(it->second.begin(), it->second.end(), service) != it->second.end();
}

bool Dispatcher::admin_allowed(const net::RequestOrigin& origin) const {
  const std::string host = origin.peer.host_key();
  return std::any_of(admin_allow_.begin(), admin_allow_.end(),
                     [&](const config::Cidr& c) { return c.contains(host); });
}

bool Dispatcher::may_call(const net::RequestOrigin& origin, std::string_view service) const {
  if (!login_ || !login_->requires_login(service)) return true;
  if (logged_in(origin.connection_id, service)) return true;
  // The admin session may call every service (prismctl rooms ..., operations.md §5), from
  // an address admin.allow accepts now, as for host requests.
  return logged_in(origin.connection_id, kAdminService) && admin_allowed(origin);
}

bool Dispatcher::refused_outside_admin_allow(const net::RequestOrigin& origin,
                                             const v1::Message& request, std::string_view what) {
  if (admin_allowed(origin)) return false;
  out(origin).send_reply(origin, request.request_id(), request.packet_id(),
                        v1::STATUS_INVALID_CREDENTIALS,
                        "admin " + std::string(what) +
                            "s are not accepted from this address (admin.allow in the "
                            "server's config)",
                        {});
  if (log_limiter_.allow()) {
    SPDLOG_WARN("event=admin_{}_refused peer={} reason=not_allowed suppressed={}", what,
                origin.peer.to_string(), log_limiter_.take_suppressed());
  }
  return true;
}

void Dispatcher::on_login(const net::RequestOrigin& origin, const v1::Message& request) {
  auto answer = [&](v1::Status status, std::string_view message) {
    out(origin).send_reply(origin, request.request_id(), request.packet_id(), status, message, {});
  };
  v1::LoginRequest login;
  if (!login.ParseFromString(request.payload()) || login.service().empty()) {
    answer(v1::STATUS_INVALID_ARGUMENT, "LOGIN needs a prism.v1.LoginRequest with a service");
    return;
  }
  const bool admin = login.service() == kAdminService;
  if (admin && refused_outside_admin_allow(origin, request, "login")) return;
  const auto& routes = table_->routes();
  const bool loaded = !admin && std::any_of(routes.begin(), routes.end(), [&](const plugins::Route& r) {
    return r.plugin->name() == login.service();
  });
  plugins::LoginVerdict verdict;
  if (login_) {
    verdict = login_->check(login.service(), login.token(), origin.peer.host_key(),
                            std::chrono::steady_clock::now(), loaded);
  } else {
    // No guard: every loaded service is open, and with no admin token nobody is admin.
    verdict = loaded ? plugins::LoginVerdict::kOk
              : admin ? plugins::LoginVerdict::kBadToken
                      : plugins::LoginVerdict::kUnknownService;
  }
  switch (verdict) {
    case plugins::LoginVerdict::kOk: {
      auto& services = logins_[origin.connection_id];
      if (std::find(services.begin(), services.end(), login.service()) == services.end()) {
        services.push_back(login.service());
      }
      answer(v1::STATUS_OK, "");
      return;
    }
    case plugins::LoginVerdict::kUnknownService:
      answer(v1::STATUS_INVALID_SERVICE, "no service named '" + login.service() + "'");
      break;
    case plugins::LoginVerdict::kBadToken:
      answer(v1::STATUS_INVALID_CREDENTIALS, "wrong token for service '" + login.service() + "'");
      break;
    case plugins::LoginVerdict::kRateLimited:
      answer(v1::STATUS_RATE_LIMITED, "too many failed logins from this address; try later");
      break;
  }
  if (log_limiter_.allow()) {
    SPDLOG_WARN("event=login_refused service=\"{}\" peer={} status={} suppressed={}",
                login.service(), origin.peer.to_string(), plugins::verdict_name(verdict),
                log_limiter_.take_suppressed());
  }
}

void Dispatcher::tell_plugins(const prism_event_t& event) const {
  if (!table_) return;
  // Held for the loop: a reload may swap table_ from inside an on_event.
  const auto table = table_;
  for (const auto& route : table->routes()) route.plugin->deliver_event(event);
}

std::string Dispatcher::method_name(uint32_t packet_id) const {
  const plugins::Route* route = table_->find(packet_id);
  if (route == nullptr) return {};
  for (const auto& m : route->plugin->methods()) {
    if (m.packet_id == packet_id) return m.name;
  }
  return {};
}

bool Dispatcher::serves_channel(uint32_t packet_id, std::string_view topic) const {
  const plugins::Route* route = table_->find(packet_id);
  return route != nullptr && route->plugin->serves_channel(topic);
}

bool Dispatcher::has_channel(std::string_view topic) const {
  return table_ && table_->find_channel(topic) != nullptr;
}

void Dispatcher::on_session_opened(uint64_t connection_id) {
  prism_event_t e{};
  e.struct_size = sizeof e;
  e.type = PRISM_EVENT_SESSION_OPENED;
  e.session_id = connection_id;
  tell_plugins(e);
}

void Dispatcher::on_turn_end(Clock::time_point now) {
  turn_clock_ = now;
  for (const Answered& a : answered_) {
    const auto latency = now - a.started;
    a.plugin->record(latency);
    a.transport->record(latency);
  }
  answered_.clear();
}

void Dispatcher::on_session_closed(uint64_t connection_id, std::string_view reason) {
  logins_.erase(connection_id);
  if (bus_ != nullptr) bus_->session_closed(connection_id);
  // The nodes that served it close its stand-ins (plugins/cluster_host.hpp).
  if (plugins::ClusterHost* cluster = plugins::cluster_host()) cluster->session_closed(connection_id);
  const std::string text(reason);  // plugin.h: NUL-terminated
  prism_event_t e{};
  e.struct_size = sizeof e;
  e.type = PRISM_EVENT_SESSION_CLOSED;
  e.session_id = connection_id;
  e.reason = text.c_str();
  tell_plugins(e);
}

void Dispatcher::on_request(const net::RequestOrigin& origin, const v1::Message& request) {
  const uint32_t packet_id = request.packet_id();
  if (packet_id == v1::HOST_LOGIN) {
    on_login(origin, request);
    return;
  }
  if (packet_id < PRISM_FIRST_PLUGIN_PACKET_ID) {
    // Host requests (listing, status, loading code) take the admin login, whatever the
    // login table holds, from an address in admin.allow at the time of each request: a
    // session that logged in and then moved (§5.9) is checked where it is now.
    if (!logged_in(origin.connection_id, kAdminService)) {
      out(origin).send_reply(origin, request.request_id(), packet_id, v1::STATUS_LOGIN_REQUIRED,
                            "log in to service 'admin' with the admin token first", {});
      return;
    }
    if (refused_outside_admin_allow(origin, request, "request")) return;
    if (host_service_ != nullptr) {
      host_service_->on_host_request(origin, request, transport_, loop_);
    } else {
      out(origin).send_reply(origin, request.request_id(), packet_id, v1::STATUS_INVALID_PACKET,
                            "no host service", {});
    }
    return;
  }
  const plugins::Route* route = table_->find(packet_id);
  if (route == nullptr) {
    // protocol.md §3.3: every request gets a reply, an unowned id included.
    out(origin).send_reply(origin, request.request_id(), packet_id, v1::STATUS_INVALID_PACKET,
                          "no service owns packet id " + std::to_string(packet_id), {});
    return;
  }
  if (!may_call(origin, route->plugin->name())) {
    out(origin).send_reply(origin, request.request_id(), packet_id, v1::STATUS_LOGIN_REQUIRED,
                          "log in to service '" + route->plugin->name() + "' first", {});
    return;
  }

  const auto& payload = request.payload();
  run_in_plugin(origin, request.request_id(), packet_id, *route, [&](RequestContext* ctx) {
    return ctx->plugin->handle(
        ctx, packet_id - route->first,
        {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  });
}

template <class Call>
void Dispatcher::run_in_plugin(const net::RequestOrigin& origin, uint32_t request_id,
                               uint32_t packet_id, const plugins::Route& route, Call call) {
  RequestContext* ctx = acquire();
  ctx->origin = origin;
  ctx->request_id = request_id;
  ctx->packet_id = packet_id;
  ctx->plugin = route.plugin;
  ctx->started = origin.received_at != Clock::time_point{} ? origin.received_at : Clock::now();
  ctx->state = RequestContext::State::kInHandler;

  const prism_status_t status = call(ctx);

  if (ctx->state == RequestContext::State::kAnswered) {
    if (status != PRISM_OK) {
      SPDLOG_WARN("event=plugin_contract plugin={} detail=\"replied and returned status {}\"",
                  ctx->plugin->name(), status);
    }
    release(ctx);
  } else if (status != PRISM_OK) {
    // plugin.h: a non-OK return means the plugin has not replied and never will.
    answer(ctx, status, "request failed", {});
    release(ctx);
  } else {
    ctx->state = RequestContext::State::kPending;
    track(ctx);
  }
}

void Dispatcher::on_channel(const net::RequestOrigin& origin, uint32_t request_id,
                            net::ChannelKind kind, std::string_view topic, std::string_view event,
                            std::string_view payload, std::string_view connect) {
  const plugins::Route* route = table_->find_channel(topic);
  if (route == nullptr) {
    out(origin).send_reply(origin, request_id, 0, v1::STATUS_NOT_FOUND, "unmatched topic", {});
    return;
  }
  // An HTTP route has no session to log in: its plugin judges the bearer token (plugin.h).
  if (kind != net::ChannelKind::kHttp && !may_call(origin, route->plugin->name())) {
    out(origin).send_reply(origin, request_id, 0, v1::STATUS_LOGIN_REQUIRED,
                          "log in to service '" + route->plugin->name() + "' first", {});
    return;
  }
  auto bytes = [](std::string_view s) {
    return prism_bytes_t{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  };
  prism_channel_message_t message{};
  message.struct_size = sizeof message;
  message.kind = static_cast<uint32_t>(kind);
  message.topic = bytes(topic);
  message.event = bytes(event);
  message.payload = bytes(payload.empty() ? std::string_view("{}") : payload);
  message.connect = bytes(connect.empty() ? std::string_view("{}") : connect);
  run_in_plugin(origin, request_id, 0, *route,
                [&](RequestContext* ctx) { return ctx->plugin->channel(ctx, message); });
}

// A late reply comes from inside the plugin: a coroutine resumed by a storage completion
// is still on this stack. Dropping what may be the last reference to a replaced version
// here would shut it down and dlclose its code under our caller, so the reference is
// dropped by a task of its own, after this stack has unwound.
void Dispatcher::retire_later(RequestContext* ctx) {
  if (ctx->plugin) loop_.post([retired = std::move(ctx->plugin)] {});
}

prism_status_t Dispatcher::complete(RequestContext* ctx, prism_status_t status,
                                    std::string_view message, std::span<const uint8_t> payload) {
  if (!loop_.on_loop_thread()) {
    // plugin.h asks for replies on the handling thread; a plugin that got it wrong still
    // gets a correct reply, moved to the right thread with its own copy of the data.
    loop_.post([this, ctx, status, msg = std::string(message),
                data = std::vector<uint8_t>(payload.begin(), payload.end())] {
      complete(ctx, status, msg, data);
    });
    return PRISM_OK;
  }
  using State = RequestContext::State;
  switch (ctx->state) {
    case State::kInHandler: {
      const bool fit = answer(ctx, status, message, payload);
      ctx->state = State::kAnswered;
      return fit ? PRISM_OK : PRISM_INVALID_ARGUMENT;
    }
    case State::kPending: {
      untrack(ctx);
      const bool fit = answer(ctx, status, message, payload);
      retire_later(ctx);
      release(ctx);
      return fit ? PRISM_OK : PRISM_INVALID_ARGUMENT;
    }
    case State::kTimedOut:
      // The requester already got TIMEOUT; the late answer only frees the request.
      retire_later(ctx);
      release(ctx);
      return PRISM_TIMEOUT;
    case State::kAnswered:
    case State::kFree:
      break;
  }
  SPDLOG_ERROR("event=plugin_contract plugin={} detail=\"reply called twice\"",
               ctx->plugin ? ctx->plugin->name() : "?");
  return PRISM_INVALID_ARGUMENT;
}

namespace {
// Request latency by the transport the request came on (the per-plugin histogram is the
// plugin's own): prism_request_seconds{transport="udp"|"websocket"}.
metrics::LatencyHistogram& transport_latency(uint64_t connection_id) {
  static constexpr std::string_view kHelp = "Time from request to reply inside the host, by transport";
  static metrics::LatencyHistogram& udp =
      metrics::registry().histogram("prism_request_seconds", "transport=\"udp\"", kHelp);
  static metrics::LatencyHistogram& websocket =
      metrics::registry().histogram("prism_request_seconds", "transport=\"websocket\"", kHelp);
  return net::is_websocket_session(connection_id) ? websocket : udp;
}
}  // namespace

bool Dispatcher::answer(RequestContext* ctx, prism_status_t status, std::string_view message,
                        std::span<const uint8_t> payload) {
  auto& plugin = *ctx->plugin;
  plugin.request_counter().add();
  answered_.push_back({&plugin.latency(), &transport_latency(ctx->origin.connection_id), ctx->started});
  const v1::Status wire = to_wire(status);
  const bool fit =
      out(ctx->origin).send_reply(ctx->origin, ctx->request_id, ctx->packet_id, wire, message, payload);
  // A reply that did not fit went out as INTERNAL: an error either way.
  if (wire != v1::STATUS_OK || !fit) plugin.error_counter().add();
  plugin.record_outcome(fit ? status : PRISM_INTERNAL, turn_clock_);  // the degraded verdict
  if (!fit && log_limiter_.allow()) {
    SPDLOG_WARN("event=reply_too_large plugin={} packet_id={} bytes={} suppressed={}",
                plugin.name(), ctx->packet_id, payload.size(), log_limiter_.take_suppressed());
  }
  return fit;
}

RequestContext* Dispatcher::acquire() {
  if (free_.empty()) {
    all_.push_back(std::make_unique<RequestContext>(this));
    return all_.back().get();
  }
  RequestContext* ctx = free_.back();
  free_.pop_back();
  return ctx;
}

void Dispatcher::release(RequestContext* ctx) {
  ctx->state = RequestContext::State::kFree;
  ctx->plugin.reset();
  free_.push_back(ctx);
}

void Dispatcher::track(RequestContext* ctx) {
  ctx->prev = pending_tail_;
  ctx->next = nullptr;
  (pending_tail_ ? pending_tail_->next : pending_head_) = ctx;
  pending_tail_ = ctx;
  ++pending_count_;
  if (timer_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) {
    const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx->started + timeout_ - Clock::now());
    uv_timer_start(timer_, &Dispatcher::on_deadline_timer,
                   static_cast<uint64_t>(std::max<int64_t>(delay.count(), 0)) + 1, 0);
  }
}

void Dispatcher::untrack(RequestContext* ctx) {
  (ctx->prev ? ctx->prev->next : pending_head_) = ctx->next;
  (ctx->next ? ctx->next->prev : pending_tail_) = ctx->prev;
  ctx->prev = ctx->next = nullptr;
  --pending_count_;
}

void Dispatcher::on_deadline_timer(uv_timer_t* timer) {
  if (timer->data != nullptr) static_cast<Dispatcher*>(timer->data)->expire_overdue();
}

void Dispatcher::expire_overdue() {
  const auto now = Clock::now();
  turn_clock_ = now;
  while (pending_head_ != nullptr && pending_head_->started + timeout_ <= now) {
    RequestContext* ctx = pending_head_;
    untrack(ctx);
    answer(ctx, PRISM_TIMEOUT,
           "plugin did not answer within " + std::to_string(timeout_.count()) + " ms", {});
    if (log_limiter_.allow()) {
      SPDLOG_WARN("event=request_timeout plugin={} packet_id={} timeout_ms={} suppressed={}",
                  ctx->plugin->name(), ctx->packet_id, timeout_.count(),
                  log_limiter_.take_suppressed());
    }
    // Kept until the plugin's late reply frees it (plugin.h: reply exactly once).
    ctx->state = RequestContext::State::kTimedOut;
  }
  if (pending_head_ != nullptr && timer_ != nullptr) {
    const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(
        pending_head_->started + timeout_ - now);
    uv_timer_start(timer_, &Dispatcher::on_deadline_timer,
                   static_cast<uint64_t>(std::max<int64_t>(delay.count(), 0)) + 1, 0);
  }
}

}  // namespace prism::dispatch
