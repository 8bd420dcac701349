// ABI 1.2 push, topics and timers (realtime_api.hpp): argument checks, the mapping of
// bus outcomes to prism_status_t, and plugin timers on the workers' libuv loops.
#include "plugins/realtime_api.hpp"

#include <atomic>
#include <string>
#include <string_view>
#include <utility>

#include "net/transport.hpp"
#include "plugins/cluster_host.hpp"
#include "plugins/loaded_plugin.hpp"
#include "plugins/plugin_types.hpp"

namespace prism::plugins {
namespace {

std::atomic<RealtimeHost*> g_realtime{nullptr};

std::span<const uint8_t> span_of(prism_bytes_t b) { return {b.data, b.len}; }
std::string_view view_of(prism_bytes_t b) {
  return {reinterpret_cast<const char*>(b.data), b.len};
}
bool valid_bytes(prism_bytes_t b) { return b.data != nullptr || b.len == 0; }

prism_status_t to_status(cluster::BusResult r) {
  switch (r) {
    case cluster::BusResult::kOk: return PRISM_OK;
    case cluster::BusResult::kNoSession: return PRISM_NOT_FOUND;
    case cluster::BusResult::kBadTopic: return PRISM_INVALID_ARGUMENT;
    case cluster::BusResult::kLimit: return PRISM_RATE_LIMITED;
    case cluster::BusResult::kTooLarge: return PRISM_INVALID_ARGUMENT;
    case cluster::BusResult::kBacklogFull: return PRISM_RATE_LIMITED;
  }
  return PRISM_INTERNAL;
}

// The absolute packet id of `method` for the calling version, or 0 when outside its range.
uint32_t packet_id_of(const prism_host_t* host, uint32_t method) {
  const LoadedPlugin& p = *host->plugin;
  if (method > p.last_packet_id() - p.first_packet_id()) return 0;
  return p.first_packet_id() + method;
}

prism_status_t api_push_topic(prism_host_t* host, uint64_t session, prism_bytes_t topic,
                              uint32_t method, uint32_t delivery, prism_bytes_t payload) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || !valid_bytes(payload) || !valid_bytes(topic)) {
    return PRISM_INVALID_ARGUMENT;
  }
  if (delivery > PRISM_DELIVERY_UNRELIABLE) return PRISM_INVALID_ARGUMENT;
  if (topic.len != 0 && !cluster::valid_topic(view_of(topic))) return PRISM_INVALID_ARGUMENT;
  const uint32_t packet_id = packet_id_of(host, method);
  if (packet_id == 0) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  if (session == PRISM_SESSION_PLUGIN) return PRISM_NOT_FOUND;
  if (net::is_remote_session(session)) {
    ClusterHost* ch = cluster_host();
    return ch != nullptr ? ch->push(session, view_of(topic), packet_id, delivery, span_of(payload)) : PRISM_NOT_FOUND;
  }
  return to_status(rt->bus().push(session, packet_id, static_cast<v1::Delivery>(delivery),
                                  span_of(payload), view_of(topic)));
}

prism_status_t api_push(prism_host_t* host, uint64_t session, uint32_t method, uint32_t delivery,
                        prism_bytes_t payload) {
  return api_push_topic(host, session, prism_bytes_t{nullptr, 0}, method, delivery, payload);
}

prism_status_t api_subscribe(prism_host_t* host, uint64_t session, prism_bytes_t topic) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || !valid_bytes(topic)) return PRISM_INVALID_ARGUMENT;
  if (!cluster::valid_topic(view_of(topic))) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  if (session == PRISM_SESSION_PLUGIN) {
    return to_status(rt->bus().subscribe_plugin(rt->subscriber_for(*host->plugin), view_of(topic)));
  }
  if (net::is_remote_session(session)) {
    ClusterHost* ch = cluster_host();
    return ch != nullptr ? ch->subscribe(session, view_of(topic), true) : PRISM_NOT_FOUND;
  }
  return to_status(rt->bus().subscribe(session, view_of(topic)));
}

prism_status_t api_unsubscribe(prism_host_t* host, uint64_t session, prism_bytes_t topic) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || !valid_bytes(topic)) return PRISM_INVALID_ARGUMENT;
  if (!cluster::valid_topic(view_of(topic))) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  if (session == PRISM_SESSION_PLUGIN) {
    rt->bus().unsubscribe_plugin(rt->subscriber_for(*host->plugin).get(), view_of(topic));
    return PRISM_OK;
  }
  if (net::is_remote_session(session)) {
    ClusterHost* ch = cluster_host();
    return ch != nullptr ? ch->subscribe(session, view_of(topic), false) : PRISM_NOT_FOUND;
  }
  return to_status(rt->bus().unsubscribe(session, view_of(topic)));
}

prism_status_t api_end_channel(prism_host_t* host, uint64_t session, prism_bytes_t topic,
                                prism_bytes_t reason, int rejoin) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || !valid_bytes(topic) || !valid_bytes(reason)) {
    return PRISM_INVALID_ARGUMENT;
  }
  if (!cluster::valid_topic(view_of(topic))) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  if (session == PRISM_SESSION_PLUGIN) return PRISM_INVALID_ARGUMENT;
  if (net::is_remote_session(session)) {
    ClusterHost* ch = cluster_host();
    return ch != nullptr ? ch->end_channel(session, view_of(topic), view_of(reason), rejoin != 0)
                         : PRISM_NOT_FOUND;
  }
  return to_status(rt->bus().end_channel(session, view_of(topic), view_of(reason), rejoin != 0));
}

prism_status_t api_publish_except(prism_host_t* host, prism_bytes_t topic, uint64_t except,
                                  uint32_t method, prism_bytes_t payload) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || !valid_bytes(topic) || !valid_bytes(payload)) {
    return PRISM_INVALID_ARGUMENT;
  }
  const uint32_t packet_id = packet_id_of(host, method);
  if (packet_id == 0 || !cluster::valid_topic(view_of(topic))) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  return to_status(rt->bus().publish(view_of(topic), packet_id, span_of(payload), except));
}

prism_status_t api_publish(prism_host_t* host, prism_bytes_t topic, uint32_t method,
                           prism_bytes_t payload) {
  return api_publish_except(host, topic, 0, method, payload);
}

prism_status_t api_timer_start(prism_host_t* host, uint64_t after_ms, uint64_t repeat_ms,
                               void* user, uint64_t* timer_id) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr || timer_id == nullptr) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  return rt->start_timer(*host->plugin, after_ms, repeat_ms, user, timer_id);
}

prism_status_t api_timer_stop(prism_host_t* host, uint64_t timer_id) {
  RealtimeHost* rt = g_realtime.load();
  if (host == nullptr || host->plugin == nullptr) return PRISM_INVALID_ARGUMENT;
  if (rt == nullptr) return PRISM_UNAVAILABLE;
  return rt->stop_timer(host->plugin, timer_id);
}

// ---- The cluster (plugin.h "Across a cluster"): cluster_host.hpp does the work.

// 1..PRISM_MAX_TOPIC_LEN printable bytes, like a topic.
bool valid_lease_name(prism_bytes_t name) { return valid_bytes(name) && cluster::valid_topic(view_of(name)); }

void api_lease(prism_host_t* host, prism_bytes_t name, prism_store_done_fn done, void* user) {
  ClusterHost* ch = cluster_host();
  if (done == nullptr) return;
  if (host == nullptr || host->plugin == nullptr || !valid_lease_name(name) || ch == nullptr) {
    // On the caller's worker, as a storage completion (off the workers: at once).
    const prism_status_t status = ch == nullptr ? PRISM_UNAVAILABLE : PRISM_INVALID_ARGUMENT;
    net::LoopAccess* loop = net::current_loop();
    auto fail = [done, user, status] {
      prism_store_result_t r{};
      r.struct_size = sizeof r;
      r.status = status;
      r.message = status == PRISM_UNAVAILABLE ? "no cluster services in this host" : "a bad lease name";
      done(user, &r);
    };
    if (loop != nullptr) return loop->post(fail);
    return fail();
  }
  ch->lease(*host->plugin, view_of(name), done, user);
}

prism_status_t api_lease_release(prism_host_t* host, prism_bytes_t name) {
  ClusterHost* ch = cluster_host();
  if (host == nullptr || host->plugin == nullptr || !valid_lease_name(name)) return PRISM_INVALID_ARGUMENT;
  return ch != nullptr ? ch->release(*host->plugin, view_of(name)) : PRISM_OK;
}

prism_status_t api_forward(prism_host_t* host, prism_request_t* request, prism_bytes_t node,
                           const prism_forward_t* what) {
  ClusterHost* ch = cluster_host();
  if (host == nullptr || host->plugin == nullptr || request == nullptr || what == nullptr ||
      what->struct_size < sizeof(prism_forward_t) || !valid_bytes(node) || !valid_bytes(what->payload) || !valid_bytes(what->topic) ||
      !valid_bytes(what->event) || !valid_bytes(what->connect) || !valid_bytes(what->receive_topic)) {
    return PRISM_INVALID_ARGUMENT;
  }
  if (ch == nullptr) return PRISM_UNAVAILABLE;
  return ch->forward(*host->plugin, request, view_of(node), *what);
}

}  // namespace

RealtimeHost::RealtimeHost(cluster::TopicBus& bus, std::vector<net::LoopAccess*> loops)
    : bus_(bus), loops_(std::move(loops)), armed_(loops_.size()) {
  for (unsigned w = 0; w < loops_.size(); ++w) {
    // The loop is stopping: its timers' handles close while it still runs their callbacks.
    loops_[w]->at_stop([this, w] {
      for (auto& [id, armed] : armed_[w]) {
        uv_close(reinterpret_cast<uv_handle_t*>(&armed->handle),
                 [](uv_handle_t* h) { delete static_cast<Armed*>(h->data); });
      }
      armed_[w].clear();
    });
  }
}

RealtimeHost::~RealtimeHost() = default;

unsigned RealtimeHost::current_worker_or_first() const {
  const net::LoopAccess* here = net::current_loop();
  for (unsigned w = 0; w < loops_.size(); ++w) {
    if (loops_[w] == here) return w;
  }
  return 0;
}

void RealtimeHost::on_worker(unsigned worker, std::function<void()> task) {
  if (loops_[worker] == net::current_loop()) {
    task();
  } else {
    loops_[worker]->post(std::move(task));
  }
}

std::shared_ptr<const cluster::PluginSubscriber> RealtimeHost::subscriber_for(LoadedPlugin& plugin) {
  std::lock_guard lock(mutex_);
  auto& sub = subscribers_[&plugin];
  if (!sub) {
    sub = std::make_shared<cluster::PluginSubscriber>();
    sub->deliver = [weak = plugin.weak_from_this()](const cluster::TopicMessage& m) {
      const auto version = weak.lock();
      if (!version) return;
      prism_event_t e{};
      e.struct_size = sizeof e;
      e.type = PRISM_EVENT_TOPIC_MESSAGE;
      e.topic = {reinterpret_cast<const uint8_t*>(m.topic.data()), m.topic.size()};
      e.packet_id = m.packet_id;
      e.payload = {m.payload.data(), m.payload.size()};
      version->deliver_event(e);
    };
  }
  return sub;
}

prism_status_t RealtimeHost::start_timer(LoadedPlugin& owner, uint64_t after_ms, uint64_t repeat_ms,
                                         void* user, uint64_t* timer_id) {
  auto timer = std::make_shared<Timer>();
  timer->id = next_timer_id_.fetch_add(1);
  timer->worker = current_worker_or_first();
  timer->owner = &owner;
  timer->plugin = owner.weak_from_this();
  timer->user = user;
  timer->after_ms = after_ms;
  timer->repeat_ms = repeat_ms;
  {
    std::lock_guard lock(mutex_);
    timers_.emplace(timer->id, timer);
  }
  *timer_id = timer->id;
  on_worker(timer->worker, [this, timer] { arm(timer); });
  return PRISM_OK;
}

void RealtimeHost::arm(const std::shared_ptr<Timer>& timer) {
  {
    std::lock_guard lock(mutex_);
    if (!timers_.contains(timer->id)) return;  // stopped before it reached its worker
  }
  auto* armed = new Armed{this, timer, {}};
  uv_timer_init(loops_[timer->worker]->loop(), &armed->handle);
  armed->handle.data = armed;
  armed_[timer->worker].emplace(timer->id, armed);
  // libuv counts a timer from the loop's cached time, which may be a few ms old by now:
  // refreshed, after_ms is never cut short (push_test's sleep saw 29.5 ms of 30).
  uv_update_time(loops_[timer->worker]->loop());
  uv_timer_start(&armed->handle, &RealtimeHost::on_fire, timer->after_ms, timer->repeat_ms);
}

void RealtimeHost::disarm(unsigned worker, uint64_t id) {
  const auto it = armed_[worker].find(id);
  if (it == armed_[worker].end()) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&it->second->handle),
           [](uv_handle_t* h) { delete static_cast<Armed*>(h->data); });
  armed_[worker].erase(it);
}

void RealtimeHost::on_fire(uv_timer_t* handle) {
  auto* armed = static_cast<Armed*>(handle->data);
  RealtimeHost& self = *armed->host;
  const std::shared_ptr<Timer> timer = armed->timer;  // disarm() below frees `armed`
  std::shared_ptr<LoadedPlugin> version = timer->plugin.lock();
  bool keep = false;
  {
    std::lock_guard lock(self.mutex_);
    const bool live = self.timers_.contains(timer->id) && version && !version->retired();
    keep = live && timer->repeat_ms > 0;
    if (!keep) self.timers_.erase(timer->id);
    if (!live) version.reset();
  }
  if (!keep) self.disarm(timer->worker, timer->id);
  if (!version) return;
  prism_event_t e{};
  e.struct_size = sizeof e;
  e.type = PRISM_EVENT_TIMER;
  e.timer_id = timer->id;
  e.timer_user = timer->user;
  version->deliver_event(e);
}

prism_status_t RealtimeHost::stop_timer(const LoadedPlugin* owner, uint64_t timer_id) {
  unsigned worker = 0;
  {
    std::lock_guard lock(mutex_);
    const auto it = timers_.find(timer_id);
    if (it == timers_.end() || it->second->owner != owner) return PRISM_NOT_FOUND;
    worker = it->second->worker;
    timers_.erase(it);
  }
  on_worker(worker, [this, worker, timer_id] { disarm(worker, timer_id); });
  return PRISM_OK;
}

size_t RealtimeHost::timers_of(const LoadedPlugin* owner) const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [id, t] : timers_) n += t->owner == owner ? 1 : 0;
  return n;
}

void RealtimeHost::release(const LoadedPlugin* owner) {
  std::vector<std::pair<unsigned, uint64_t>> stopped;
  std::shared_ptr<cluster::PluginSubscriber> subscriber;
  {
    std::lock_guard lock(mutex_);
    for (auto it = timers_.begin(); it != timers_.end();) {
      if (it->second->owner == owner) {
        stopped.emplace_back(it->second->worker, it->first);
        it = timers_.erase(it);
      } else {
        ++it;
      }
    }
    if (const auto it = subscribers_.find(owner); it != subscribers_.end()) {
      subscriber = std::move(it->second);
      subscribers_.erase(it);
    }
  }
  if (subscriber) bus_.drop_plugin(subscriber.get());
  for (const auto& [worker, id] : stopped) {
    on_worker(worker, [this, worker, id] { disarm(worker, id); });
  }
}

void set_realtime(RealtimeHost* realtime) { g_realtime.store(realtime); }

void add_realtime_api(prism_host_api_t& api) {
  api.push = api_push;
  api.subscribe = api_subscribe;
  api.unsubscribe = api_unsubscribe;
  api.publish = api_publish;
  api.timer_start = api_timer_start;
  api.timer_stop = api_timer_stop;
  api.push_topic = api_push_topic;
  api.publish_except = api_publish_except;
  api.end_channel = api_end_channel;
  api.lease = api_lease;
  api.lease_release = api_lease_release;
  api.forward = api_forward;
}

void release_realtime(const LoadedPlugin* plugin) {
  if (RealtimeHost* rt = g_realtime.load()) rt->release(plugin);
}

}  // namespace prism::plugins
