// ClusterHost: leases through the node registry, forwarded requests and their answers,
// and stand-in sessions, as messages on the nodes' own channels (docs/plugin-api.md
// "Cluster", protocol.md §7.4).
#include "plugins/cluster_host.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>

#include "metrics/metrics.hpp"
#include "net/transport.hpp"
#include "plugins/host_view.hpp"
#include "plugins/loaded_plugin.hpp"
#include "plugins/plugin_types.hpp"
#include "plugins/routing_table.hpp"

#ifdef PRISM_HAVE_CLUSTER
#include "cluster/cluster_link.hpp"
#include "cluster/node_registry.hpp"
#endif

namespace prism::plugins {
namespace {

std::atomic<ClusterHost*> g_cluster_host{nullptr};

struct ForwardCounters {
  metrics::Counter& sent;
  metrics::Counter& failed;
  metrics::Counter& served;
};

const ForwardCounters& counters() {
  static const ForwardCounters c = [] {
    auto& r = metrics::registry();
    return ForwardCounters{
        r.counter("prism_cluster_forwards_total", "", "Requests this node forwarded to the node that serves them"),
        r.counter("prism_cluster_forward_failures_total", "",
                  "Of those, answered UNAVAILABLE here: that node did not answer, left, or Redis was away"),
        r.counter("prism_cluster_forwarded_in_total", "", "Requests other nodes forwarded to this one"),
    };
  }();
  return c;
}

std::string_view view_of(prism_bytes_t b) { return {reinterpret_cast<const char*>(b.data), b.len}; }
prism_bytes_t bytes_of(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
std::span<const uint8_t> span_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A node message: one letter for its kind, then fields as "<length>:<bytes>" (binary-safe:
// payloads are whatever the plugin sends). protocol.md §7.4 lists the kinds.
enum Kind : char {
  kForward = 'F',      // id service session kind method payload topic event connect
  kAnswer = 'R',       // id status message payload
  kPush = 'P',         // session topic packet_id delivery payload
  kSubscribe = 'S',    // session topic
  kUnsubscribe = 'U',  // session topic
  kEnd = 'E',          // session topic reason rejoin
  kClosed = 'C',       // session reason
};

class Writer {
 public:
  explicit Writer(Kind kind) { out_.push_back(kind); }
  Writer& field(std::string_view bytes) {
    out_.append(std::to_string(bytes.size())).append(":").append(bytes);
    return *this;
  }
  Writer& field(uint64_t n) { return field(std::to_string(n)); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool text(std::string_view* out) {
    const size_t colon = in_.find(':');
    size_t n = 0;
    if (colon == std::string_view::npos) return false;
    const auto [end, ec] = std::from_chars(in_.data(), in_.data() + colon, n);
    if (ec != std::errc{} || end != in_.data() + colon || n > in_.size() - colon - 1) return false;
    *out = in_.substr(colon + 1, n);
    in_.remove_prefix(colon + 1 + n);
    return true;
  }
  template <class N>
  bool number(N* out) {
    std::string_view t;
    if (!text(&t)) return false;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
    return ec == std::errc{} && end == t.data() + t.size() && !t.empty();
  }

 private:
  std::string_view in_;
};

prism_store_result_t lease_result(prism_status_t status, const char* message) {
  prism_store_result_t r{};
  r.struct_size = sizeof r;
  r.status = status;
  r.message = message;
  r.document_size = sizeof(prism_document_t);
  r.entry_size = sizeof(prism_entry_t);
  r.presence_size = sizeof(prism_presence_t);
  return r;
}

}  // namespace

// A request forwarded here from another node: its session is a stand-in, its answer goes
// back to that node.
class ClusterHost::RemoteRequest final : public prism_request {
 public:
  RemoteRequest(ClusterHost& host, std::string node, uint64_t id, uint64_t stand_in, bool drop_stand_in)
      : host_(host), node_(std::move(node)), id_(id), stand_in_(stand_in), drop_stand_in_(drop_stand_in) {}
  prism_status_t complete(prism_status_t status, std::string_view message,
                          std::span<const uint8_t> payload) override {
    host_.send(node_, Writer(kAnswer)
                          .field(id_)
                          .field(std::to_string(status))
                          .field(message)
                          .field(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()))
                          .take());
    // A LEAVE that came after its session closed here: its stand-in served it alone.
    if (drop_stand_in_) {
      std::lock_guard lock(host_.mutex_);
      if (const auto it = host_.stand_ins_.find(stand_in_); it != host_.stand_ins_.end()) {
        host_.stand_in_of_.erase({it->second.second, it->second.first});
        host_.stand_ins_.erase(it);
      }
    }
    delete this;
    return PRISM_OK;
  }
  uint64_t session_id() const override { return stand_in_; }

 private:
  ~RemoteRequest() = default;
  ClusterHost& host_;
  std::string node_;
  uint64_t id_;
  uint64_t stand_in_;
  bool drop_stand_in_;
};

ClusterHost::ClusterHost(cluster::TopicBus& bus, std::vector<net::LoopAccess*> loops, const HostView& plugins)
    : bus_(bus), loops_(std::move(loops)), plugins_(plugins) {}

ClusterHost::~ClusterHost() = default;

#ifdef PRISM_HAVE_CLUSTER
void ClusterHost::attach(cluster::NodeRegistry& registry, cluster::ClusterLink& link) {
  counters();  // listed in /metrics from now on (not on a node alone)
  registry.set_listeners([this](const std::string& name) { on_lease_lost(name); },
                         [this](const std::string& node) { on_node_left(node); });
  link.set_except_resolver([this](uint64_t session) { return resolve(session); });
  link.listen([this](std::string_view from, std::string_view body) { on_node_message(from, body); });
  std::vector<WaitingLease> waiting;
  {
    std::lock_guard lock(mutex_);
    registry_ = &registry;
    link_ = &link;
    waiting.swap(waiting_leases_);
  }
  for (auto& w : waiting) start_lease(std::move(w));
}

void ClusterHost::detach() {
  std::map<uint64_t, Pending> pending;
  {
    std::lock_guard lock(mutex_);
    registry_ = nullptr;
    link_ = nullptr;
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) p.request->complete(PRISM_UNAVAILABLE, "this node is leaving the cluster", {});
}
#endif

net::LoopAccess* ClusterHost::loop_here() const {
  net::LoopAccess* here = net::current_loop();
  return here != nullptr ? here : loops_.front();
}

std::shared_ptr<LoadedPlugin> ClusterHost::find(std::string_view service) const {
  const auto table = plugins_.table();
  if (!table) return nullptr;
  for (const auto& route : table->routes()) {
    if (route.plugin->name() == service) return route.plugin;
  }
  return nullptr;
}

// ---- Leases ------------------------------------------------------------------------

void ClusterHost::lease(const LoadedPlugin& plugin, std::string_view name, prism_store_done_fn done,
                        void* user) {
  WaitingLease w{plugin.name() + ":" + std::string(name), loop_here(), done, user, plugin.weak_from_this().lock()};
  {
    std::lock_guard lock(mutex_);
    if (registry_ == nullptr && expected_) {
      waiting_leases_.push_back(std::move(w));
      return;
    }
  }
  start_lease(std::move(w));
}

void ClusterHost::start_lease(WaitingLease w) {
#ifdef PRISM_HAVE_CLUSTER
  cluster::NodeRegistry* registry = nullptr;
  {
    std::lock_guard lock(mutex_);
    registry = registry_;
  }
  if (registry != nullptr) {
    registry->lease(w.name, [w](const cluster::NodeRegistry::LeaseOutcome& out) {
      using State = cluster::NodeRegistry::LeaseOutcome::State;
      const prism_status_t status = out.state == State::kHeld    ? PRISM_OK
                                    : out.state == State::kTaken ? PRISM_CONFLICT
                                                                 : PRISM_UNAVAILABLE;
      std::string message = out.state == State::kTaken         ? out.holder
                            : out.state == State::kUnavailable ? "the cluster's Redis does not answer"
                                                               : "";
      w.loop->post([w, status, message = std::move(message)] {
        const prism_store_result_t r = lease_result(status, message.c_str());
        w.done(w.user, &r);
      });
    });
    return;
  }
#endif
  // Alone: every lease is this node's (completed later, never inside the call).
  w.loop->post([w] {
    const prism_store_result_t r = lease_result(PRISM_OK, "");
    w.done(w.user, &r);
  });
}

prism_status_t ClusterHost::release(const LoadedPlugin& plugin, std::string_view name) {
#ifdef PRISM_HAVE_CLUSTER
  std::lock_guard lock(mutex_);
  if (registry_ != nullptr) registry_->release(plugin.name() + ":" + std::string(name));
#else
  (void)plugin;
  (void)name;
#endif
  return PRISM_OK;
}

void ClusterHost::on_lease_lost(const std::string& name) {
  const size_t colon = name.find(':');
  const auto plugin = find(name.substr(0, colon));
  if (!plugin || colon == std::string::npos) return;
  loops_.front()->post([plugin, lease = name.substr(colon + 1)] {
    prism_event_t e{};
    e.struct_size = sizeof e;
    e.type = PRISM_EVENT_LEASE_LOST;
    e.payload = bytes_of(lease);
    plugin->deliver_event(e);
  });
}

// ---- Forwarding --------------------------------------------------------------------

void ClusterHost::send(const std::string& node, std::string body) {
#ifdef PRISM_HAVE_CLUSTER
  std::lock_guard lock(mutex_);
  if (link_ != nullptr) link_->send(node, std::move(body), nullptr);
#else
  (void)node;
  (void)body;
#endif
}

prism_status_t ClusterHost::forward(const LoadedPlugin& plugin, prism_request_t* request, std::string_view node,
                                    const prism_forward_t& what) {
#ifdef PRISM_HAVE_CLUSTER
  if (what.struct_size < sizeof(prism_forward_t) || node.empty()) return PRISM_INVALID_ARGUMENT;
  if (what.kind > PRISM_CHANNEL_HTTP) return PRISM_INVALID_ARGUMENT;
  const std::string held(view_of(what.receive_topic));
  if (!held.empty() && !cluster::valid_topic(held)) return PRISM_INVALID_ARGUMENT;
  cluster::ClusterLink* link = nullptr;
  uint64_t id = 0;
  const uint64_t session = request->session_id();
  // A request forwarded here is served here or not at all: no forwarding chains.
  if (net::is_remote_session(session)) return PRISM_UNAVAILABLE;
  {
    std::lock_guard lock(mutex_);
    link = link_;
    if (link == nullptr || !link->healthy()) return PRISM_UNAVAILABLE;
    if (node == link->node_id()) return PRISM_INVALID_ARGUMENT;
    id = ++next_forward_;
    pending_[id] = Pending{request, std::string(node), session, held, std::chrono::steady_clock::now()};
    counters().sent.add();
    served_by_[session].insert(std::string(node));
  }
  if (id % 1024 == 0) sweep_pending();
  std::string body = Writer(kForward)
             .field(id)
             .field(plugin.name())
             .field(session)
             .field(what.kind)
             .field(what.method)
             .field(view_of(what.payload))
             .field(view_of(what.topic))
             .field(view_of(what.event))
             .field(view_of(what.connect))
             .take();
  auto go = [this, link, id, to = std::string(node), body = std::move(body)]() mutable {
    link->send(to, std::move(body), [this, id, to](bool sent) {
      if (!sent) fail_pending(id, "node " + to + " does not answer");
    });
  };
  if (held.empty()) {
    go();
    return PRISM_OK;
  }
  // The join leaves once what the serving node publishes to its topic reaches this one.
  bus_.hold(held);
  link->when_receiving(held, [this, id, go = std::move(go)](bool receiving) mutable {
    if (!receiving) return fail_pending(id, "the cluster's Redis does not answer");
    go();
  });
  return PRISM_OK;
#else
  (void)plugin;
  (void)request;
  (void)node;
  (void)what;
  return PRISM_UNAVAILABLE;
#endif
}

void ClusterHost::answer(uint64_t id, prism_status_t status, std::string_view message,
                         std::span<const uint8_t> payload) {
  Pending p;
  {
    std::lock_guard lock(mutex_);
    const auto it = pending_.find(id);
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
  }
  p.request->complete(status, message, payload);  // moved to the request's worker
  if (p.held.empty()) return;
  // Released after the answer on the session's worker, where the session's subscription
  // (sent before the answer) is made: the topic stays wanted in between.
  const unsigned worker = net::worker_of(p.session);
  net::LoopAccess* loop = worker < loops_.size() ? loops_[worker] : loops_.front();
  loop->post([this, topic = std::move(p.held)] { bus_.release(topic); });
}

void ClusterHost::sweep_pending() {
  constexpr std::chrono::minutes kLostAnswer{1};
  const auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> lost;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, p] : pending_) {
      if (now - p.sent > kLostAnswer) lost.push_back(id);
    }
  }
  for (const uint64_t id : lost) fail_pending(id, "no answer came");
}

void ClusterHost::fail_pending(uint64_t id, const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (!pending_.contains(id)) return;
  }
  counters().failed.add();
  answer(id, PRISM_UNAVAILABLE, why, {});
}

// ---- Node messages -----------------------------------------------------------------

void ClusterHost::on_node_message(std::string_view from_view, std::string_view body) {
  if (body.empty()) return;
  const std::string from(from_view);
  Reader in(body.substr(1));
  uint64_t session = 0;
  std::string_view topic;
  switch (body.front()) {
    case kForward: return on_forwarded(from, body.substr(1));
    case kAnswer: return on_answer(body.substr(1));
    case kPush: {
      uint32_t packet_id = 0, delivery = 0;
      std::string_view payload;
      if (!in.number(&session) || !in.text(&topic) || !in.number(&packet_id) || !in.number(&delivery) ||
          !in.text(&payload)) {
        break;
      }
      bus_.push(session, packet_id, static_cast<v1::Delivery>(delivery), span_of(payload), topic);
      return;
    }
    case kSubscribe:
    case kUnsubscribe: {
      if (!in.number(&session) || !in.text(&topic)) break;
      const bool on = body.front() == kSubscribe;
      {
        // (A subscription that arrives after its session closed is kept until that node
        // leaves: the session is gone, so ending it then does nothing.)
        std::lock_guard lock(mutex_);
        if (on) {
          remote_topics_[session][std::string(topic)] = from;
        } else if (const auto it = remote_topics_.find(session); it != remote_topics_.end()) {
          it->second.erase(std::string(topic));
        }
      }
      if (on) {
        bus_.subscribe(session, topic);
      } else {
        bus_.unsubscribe(session, topic);
      }
      return;
    }
    case kEnd: {
      std::string_view reason;
      uint32_t rejoin = 0;
      if (!in.number(&session) || !in.text(&topic) || !in.text(&reason) || !in.number(&rejoin)) break;
      {
        std::lock_guard lock(mutex_);
        if (const auto it = remote_topics_.find(session); it != remote_topics_.end()) {
          it->second.erase(std::string(topic));
        }
      }
      bus_.end_channel(session, topic, reason, rejoin != 0);
      return;
    }
    case kClosed: {
      std::string_view reason;
      if (!in.number(&session) || !in.text(&reason)) break;
      uint64_t stand_in = 0;
      {
        std::lock_guard lock(mutex_);
        const auto it = stand_in_of_.find({from, session});
        if (it == stand_in_of_.end()) return;
        stand_in = it->second;
      }
      close_stand_in(stand_in, reason);
      return;
    }
    default: break;
  }
  spdlog::warn("event=cluster_message_malformed from={} kind={}", from, body.front());
}

void ClusterHost::on_forwarded(const std::string& from, std::string_view body) {
  Reader in(body);
  uint64_t id = 0, session = 0;
  uint32_t kind = 0, method = 0;
  std::string_view service, payload, topic, event, connect;
  if (!in.number(&id) || !in.text(&service) || !in.number(&session) || !in.number(&kind) ||
      !in.number(&method) || !in.text(&payload) || !in.text(&topic) || !in.text(&event) || !in.text(&connect) ||
      kind > PRISM_CHANNEL_HTTP) {
    spdlog::warn("event=cluster_message_malformed from={} kind=F", from);
    return;
  }
  const auto plugin = find(service);
  if (!plugin) {
    send(from, Writer(kAnswer)
                   .field(id)
                   .field(std::to_string(PRISM_NOT_FOUND))
                   .field("no service '" + std::string(service) + "' on this node")
                   .field("")
                   .take());
    return;
  }
  counters().served.add();
  bool made = false;
  const uint64_t stand_in = stand_in_for(from, session, &made);
  auto* request = new RemoteRequest(*this, from, id, stand_in, made && kind == PRISM_CHANNEL_LEAVE);
  // On a worker, as a request of a session there would be: the plugin's storage calls
  // complete on the worker that made them.
  loops_[session % loops_.size()]->post([plugin, request, kind, method, payload = std::string(payload),
                                         topic = std::string(topic), event = std::string(event),
                                         connect = std::string(connect)] {
    prism_status_t status = PRISM_OK;
    if (kind == 0) {
      status = plugin->handle(request, method, span_of(payload));
    } else {
      prism_channel_message_t m{};
      m.struct_size = sizeof m;
      m.kind = kind;
      m.topic = bytes_of(topic);
      m.event = bytes_of(event);
      m.payload = bytes_of(payload);
      m.connect = bytes_of(connect);
      status = plugin->channel(request, m);
    }
    if (status != PRISM_OK) request->complete(status, "", {});
  });
}

void ClusterHost::on_answer(std::string_view body) {
  Reader in(body);
  uint64_t id = 0;
  int32_t status = 0;
  std::string_view message, payload;
  if (!in.number(&id) || !in.number(&status) || !in.text(&message) || !in.text(&payload)) {
    spdlog::warn("event=cluster_message_malformed kind=R");
    return;
  }
  answer(id, static_cast<prism_status_t>(status), message, span_of(payload));
}

// ---- Stand-ins -----------------------------------------------------------------------

uint64_t ClusterHost::stand_in_for(const std::string& node, uint64_t session, bool* made) {
  std::lock_guard lock(mutex_);
  const auto it = stand_in_of_.find({node, session});
  *made = it == stand_in_of_.end();
  if (!*made) return it->second;
  const uint64_t id = (uint64_t{net::kRemoteSessionWorker} << net::kConnectionWorkerShift) | ++next_stand_in_;
  stand_in_of_[{node, session}] = id;
  stand_ins_[id] = {session, node};
  return id;
}

std::optional<std::pair<uint64_t, std::string>> ClusterHost::resolve(uint64_t stand_in) const {
  std::lock_guard lock(mutex_);
  const auto it = stand_ins_.find(stand_in);
  if (it == stand_ins_.end()) return std::nullopt;
  return it->second;
}

void ClusterHost::close_stand_in(uint64_t stand_in, std::string_view reason) {
  {
    std::lock_guard lock(mutex_);
    const auto it = stand_ins_.find(stand_in);
    if (it == stand_ins_.end()) return;
    stand_in_of_.erase({it->second.second, it->second.first});
    stand_ins_.erase(it);
  }
  // Every plugin hears it, as a session of this node's closing (Dispatcher).
  loops_[stand_in % loops_.size()]->post([this, stand_in, why = std::string(reason)] {
    const auto table = plugins_.table();
    if (!table) return;
    prism_event_t e{};
    e.struct_size = sizeof e;
    e.type = PRISM_EVENT_SESSION_CLOSED;
    e.session_id = stand_in;
    e.reason = why.c_str();
    for (const auto& route : table->routes()) route.plugin->deliver_event(e);
  });
}

prism_status_t ClusterHost::push(uint64_t session, std::string_view topic, uint32_t packet_id, uint32_t delivery,
                                 std::span<const uint8_t> payload) {
  const auto real = resolve(session);
  if (!real) return PRISM_NOT_FOUND;
  send(real->second, Writer(kPush)
                         .field(real->first)
                         .field(topic)
                         .field(packet_id)
                         .field(delivery)
                         .field(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()))
                         .take());
  return PRISM_OK;
}

prism_status_t ClusterHost::subscribe(uint64_t session, std::string_view topic, bool subscribed) {
  const auto real = resolve(session);
  if (!real) return PRISM_NOT_FOUND;
  send(real->second, Writer(subscribed ? kSubscribe : kUnsubscribe).field(real->first).field(topic).take());
  return PRISM_OK;
}

prism_status_t ClusterHost::end_channel(uint64_t session, std::string_view topic, std::string_view reason,
                                        bool rejoin) {
  const auto real = resolve(session);
  if (!real) return PRISM_NOT_FOUND;
  send(real->second,
       Writer(kEnd).field(real->first).field(topic).field(reason).field(rejoin ? 1 : 0).take());
  return PRISM_OK;
}

void ClusterHost::session_closed(uint64_t session) {
  std::set<std::string> nodes;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = served_by_.find(session); it != served_by_.end()) {
      nodes = std::move(it->second);
      served_by_.erase(it);
    }
    if (const auto it = remote_topics_.find(session); it != remote_topics_.end()) {
      for (const auto& [topic, node] : it->second) nodes.insert(node);
      remote_topics_.erase(it);
    }
  }
  for (const std::string& node : nodes) send(node, Writer(kClosed).field(session).field("closed").take());
}

// ---- A node left ---------------------------------------------------------------------

void ClusterHost::on_node_left(const std::string& node) {
  std::vector<uint64_t> unanswered, stand_ins;
  std::vector<std::pair<uint64_t, std::string>> ended;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, p] : pending_) {
      if (p.node == node) unanswered.push_back(id);
    }
    for (const auto& [id, real] : stand_ins_) {
      if (real.second == node) stand_ins.push_back(id);
    }
    for (auto& [session, topics] : remote_topics_) {
      for (auto it = topics.begin(); it != topics.end();) {
        if (it->second == node) {
          ended.emplace_back(session, it->first);
          it = topics.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [session, nodes] : served_by_) nodes.erase(node);
  }
  for (const uint64_t id : unanswered) fail_pending(id, "node " + node + " left the cluster");
  for (const uint64_t id : stand_ins) close_stand_in(id, "node " + node + " left the cluster");
  // Its clients here join again: the service is served elsewhere from now on.
  for (const auto& [session, topic] : ended) {
    bus_.end_channel(session, topic, "node " + node + " left the cluster", /*rejoin=*/true);
  }
  if (!unanswered.empty() || !stand_ins.empty() || !ended.empty()) {
    spdlog::info("event=cluster_node_gone node={} failed_requests={} sessions_closed={} channels_ended={}", node,
                 unanswered.size(), stand_ins.size(), ended.size());
  }
}

void set_cluster_host(ClusterHost* host) { g_cluster_host.store(host); }
ClusterHost* cluster_host() { return g_cluster_host.load(); }

}  // namespace prism::plugins
