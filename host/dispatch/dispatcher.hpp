// Routes each request a transport hands over to the plugin owning its packet id,
// tracks it until the plugin replies, and answers TIMEOUT when the deadline passes.
// One Dispatcher per worker; everything here runs on that worker's thread.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/log.hpp"
#include "cluster/topic_bus.hpp"
#include "config/config.hpp"
#include "net/loop_access.hpp"
#include "net/transport.hpp"
#include "plugins/login_guard.hpp"
#include "plugins/routing_table.hpp"

namespace prism::metrics {
class LatencyHistogram;
}

namespace prism::dispatch {

using plugins::kAdminService;

// Answers the host-owned packet ids (below 100); the admin service implements it.
class HostService {
 public:
  virtual ~HostService() = default;
  // `loop` is the worker's: blocking work (loading a plugin) goes off it and the reply
  // comes back on it.
  virtual void on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                               net::ReplyTransport& transport, net::LoopAccess& loop) = 0;
};

class RequestContext;

class Dispatcher final : public net::RequestHandler {
 public:
  using Clock = std::chrono::steady_clock;
  Dispatcher(net::LoopAccess& loop, net::ReplyTransport& transport,
             std::chrono::milliseconds request_timeout);
  ~Dispatcher() override;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Loop thread only. The table is swapped as a whole (DESIGN.md §2).
  void set_table(std::shared_ptr<const plugins::RoutingTable> table) { table_ = std::move(table); }
  void set_host_service(HostService* service) { host_service_ = service; }
  // Decides LOGIN requests and which services need one (protocol.md §5.10). Without a
  // guard every service is open.
  void set_login_guard(std::unique_ptr<plugins::LoginGuard> guard) { login_ = std::move(guard); }
  // Every host request but LOGIN needs an admin login (which only the guard's admin
  // token gives), and admin logins and host requests are accepted only from these ranges
  // (admin.allow; none by default).
  void set_admin_allow(std::vector<config::Cidr> allow) { admin_allow_ = std::move(allow); }

  // The sessions' subscriptions to forget when they close; none without it.
  void set_topic_bus(cluster::TopicBus* bus) { bus_ = bus; }

  void on_request(const net::RequestOrigin& origin, const v1::Message& request) override;
  // Routed by topic to the plugin whose channel_topics match; a topic no plugin serves is
  // answered NOT_FOUND "unmatched topic" (Phoenix's own reason), at once.
  void on_channel(const net::RequestOrigin& origin, uint32_t request_id, net::ChannelKind kind,
                  std::string_view topic, std::string_view event, std::string_view payload,
                  std::string_view connect) override;
  // Both tell every plugin with an on_event (plugin.h PRISM_EVENT_SESSION_*).
  void on_session_opened(uint64_t connection_id) override;
  void on_session_closed(uint64_t connection_id, std::string_view reason) override;
  // Records the latencies of the requests answered this turn, up to `now`.
  void on_turn_end(Clock::time_point now) override;

  // The name the serving plugin gives `packet_id` in its method table ("" if none): how a
  // WebSocket client hears a push (its Phoenix event). Loop thread only.
  std::string method_name(uint32_t packet_id) const;
  // True when the plugin owning `packet_id` serves the channel `topic`.
  bool serves_channel(uint32_t packet_id, std::string_view topic) const;
  // True when some plugin serves the channel `topic`.
  bool has_channel(std::string_view topic) const;

  // Requests handed to a plugin and not yet answered.
  size_t pending() const { return pending_count_; }

 private:
  friend class RequestContext;

  prism_status_t complete(RequestContext* ctx, prism_status_t status, std::string_view message,
                          std::span<const uint8_t> payload);
  // Sends the reply; false when it did not fit and INTERNAL was sent instead.
  bool answer(RequestContext* ctx, prism_status_t status, std::string_view message,
              std::span<const uint8_t> payload);
  void on_login(const net::RequestOrigin& origin, const v1::Message& request);
  void tell_plugins(const prism_event_t& event) const;
  // An admin LOGIN (`what` = "login") or host request ("request") from an address outside
  // admin.allow: answers it INVALID_CREDENTIALS, logs event=admin_login_refused or
  // event=admin_request_refused (rate-limited), and returns true. False when allowed.
  bool refused_outside_admin_allow(const net::RequestOrigin& origin, const v1::Message& request,
                                   std::string_view what);
  bool logged_in(uint64_t connection_id, std::string_view service) const;
  bool admin_allowed(const net::RequestOrigin& origin) const;  // its address is in admin.allow
  // The session logged in to `service`, or needs not, or is the admin session.
  bool may_call(const net::RequestOrigin& origin, std::string_view service) const;
  // Where a reply to `origin` goes: the transport it came through (RequestOrigin::via),
  // else the worker's UDP sessions.
  net::ReplyTransport& out(const net::RequestOrigin& origin) {
    return origin.via != nullptr ? *origin.via : transport_;
  }
  // Runs `call` (the plugin's handle or channel) for a context made for `route`, and files
  // the request as answered, failed or pending by what the plugin did.
  template <class Call>
  void run_in_plugin(const net::RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                     const plugins::Route& route, Call call);
  RequestContext* acquire();
  void release(RequestContext* ctx);
  void retire_later(RequestContext* ctx);
  void track(RequestContext* ctx);
  void untrack(RequestContext* ctx);
  static void on_deadline_timer(uv_timer_t* timer);
  void expire_overdue();

  net::LoopAccess& loop_;
  net::ReplyTransport& transport_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<const plugins::RoutingTable> table_;
  HostService* host_service_ = nullptr;
  cluster::TopicBus* bus_ = nullptr;
  std::unique_ptr<plugins::LoginGuard> login_;
  std::vector<config::Cidr> admin_allow_;
  // The services each session logged in to; forgotten when the session closes.
  std::unordered_map<uint64_t, std::vector<std::string>> logins_;

  // Every context ever made (owned here) and the free ones, reused without allocating.
  std::vector<std::unique_ptr<RequestContext>> all_;
  std::vector<RequestContext*> free_;
  // Requests answered this turn whose latency on_turn_end records: their replies leave
  // at the turn's end, and one clock read serves them all.
  struct Answered {
    metrics::LatencyHistogram* plugin;
    metrics::LatencyHistogram* transport;
    Clock::time_point started;
  };
  std::vector<Answered> answered_;
  // The clock as of the last turn's end (or deadline check): the degraded verdict counts
  // outcomes in one-second buckets (plugin_health.hpp), which need no fresher reading
  // than that, so answering a request reads no clock.
  Clock::time_point turn_clock_ = Clock::now();
  // Pending requests in arrival order: with one timeout, also deadline order.
  RequestContext* pending_head_ = nullptr;
  RequestContext* pending_tail_ = nullptr;
  size_t pending_count_ = 0;
  uv_timer_t* timer_ = nullptr;  // owned by the loop's stop closure (a net::UvHandle)
  LogRateLimiter log_limiter_;   // these logs are triggered by remote input (STYLE.md)
};

}  // namespace prism::dispatch
