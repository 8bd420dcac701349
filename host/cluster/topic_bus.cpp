// TopicBus: per-worker subscription tables, and the hand-off of pushes and publishes to
// the worker that owns each session (topic_bus.hpp).
#include "cluster/topic_bus.hpp"


#include <algorithm>
#include <utility>

#include "metrics/metrics.hpp"

namespace prism::cluster {
namespace {

struct BusCounters {
  metrics::Counter& publishes;
  metrics::Counter& deliveries;
  metrics::Counter& subscribes;
  metrics::Counter& unsubscribes;
  metrics::Counter& refused_topics_per_session;
  metrics::Counter& refused_subscribers_per_topic;
  metrics::Counter& refused_no_session;
};

const BusCounters& counters() {
  static const BusCounters c = [] {
    auto& r = metrics::registry();
    auto refused = [&r](const char* reason) -> metrics::Counter& {
      return r.counter("prism_subscribes_refused_total", std::string("reason=\"") + reason + "\"",
                       "Session subscriptions refused, by reason");
    };
    return BusCounters{
        r.counter("prism_publishes_total", "", "Messages published to a topic"),
        r.counter("prism_topic_deliveries_total", "",
                  "Topic messages handed to a subscribed session or plugin"),
        r.counter("prism_subscribes_total", "", "Session subscriptions made"),
        r.counter("prism_unsubscribes_total", "",
                  "Session subscriptions ended (unsubscribe or session closed)"),
        refused("topics_per_session"),
        refused("subscribers_per_topic"),
        refused("no_session"),
    };
  }();
  return c;
}

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

BusResult from_push(net::PushResult r) {
  switch (r) {
    case net::PushResult::kQueued: return BusResult::kOk;
    case net::PushResult::kNoSession: return BusResult::kNoSession;
    case net::PushResult::kTooLarge: return BusResult::kTooLarge;
    case net::PushResult::kBacklogFull: return BusResult::kBacklogFull;
  }
  return BusResult::kNoSession;
}

}  // namespace

bool valid_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxTopicLength) return false;
  return std::all_of(topic.begin(), topic.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

TopicBus::TopicBus(std::vector<BusWorker> workers, BusLimits limits)
    : workers_(std::move(workers)), limits_(limits), topics_(workers_.size()) {
  counters();  // registered at start, so /metrics shows them at zero
}

TopicBus::~TopicBus() = default;

net::ReplyTransport* TopicBus::transport_for(unsigned index, uint64_t session) const {
  return net::is_websocket_session(session) ? workers_[index].websocket : workers_[index].transport;
}

int TopicBus::current_worker() const {
  const net::LoopAccess* here = net::current_loop();
  if (here == nullptr) return -1;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].loop == here) return static_cast<int>(i);
  }
  return -1;
}

void TopicBus::on_worker(unsigned index, std::function<void()> task) {
  if (current_worker() == static_cast<int>(index)) {
    task();
  } else {
    workers_[index].loop->post(std::move(task));
  }
}

BusResult TopicBus::push(uint64_t session, uint32_t packet_id, v1::Delivery delivery,
                         std::span<const uint8_t> payload, std::string_view topic) {
  const unsigned owner = net::worker_of(session);
  if (owner >= workers_.size()) return BusResult::kNoSession;
  if (!topic.empty() && !valid_topic(topic)) return BusResult::kBadTopic;
  if (transport_for(owner, session) == nullptr) return BusResult::kNoSession;
  if (current_worker() == static_cast<int>(owner)) {
    return from_push(transport_for(owner, session)->send_push(session, packet_id, delivery, topic, payload));
  }
  workers_[owner].loop->post([this, owner, session, packet_id, delivery, name = std::string(topic),
                              bytes = std::string(payload.begin(), payload.end())] {
    transport_for(owner, session)->send_push(session, packet_id, delivery, name, as_bytes(bytes));
  });
  return BusResult::kOk;
}

BusResult TopicBus::subscribe(uint64_t session, std::string_view topic) {
  if (!valid_topic(topic)) return BusResult::kBadTopic;
  const unsigned owner = net::worker_of(session);
  if (owner >= workers_.size()) return BusResult::kNoSession;
  if (current_worker() == static_cast<int>(owner)) {
    return subscribe_here(owner, session, std::string(topic));
  }
  workers_[owner].loop->post([this, owner, session, t = std::string(topic)] {
    subscribe_here(owner, session, t);
  });
  return BusResult::kOk;
}

BusResult TopicBus::subscribe_here(unsigned index, uint64_t session, const std::string& topic) {
  // A closed session's subscription would never be removed: session_closed already ran.
  net::ReplyTransport* transport = transport_for(index, session);
  if (transport == nullptr || !transport->is_open(session)) {
    counters().refused_no_session.add();
    return BusResult::kNoSession;
  }
  WorkerTopics& w = topics_[index];
  auto& mine = w.topics_of[session];
  if (std::find(mine.begin(), mine.end(), topic) != mine.end()) return BusResult::kOk;
  if (mine.size() >= limits_.max_topics_per_session) {
    counters().refused_topics_per_session.add();
    return BusResult::kLimit;
  }
  auto& subscribers = w.sessions_of[topic];
  if (subscribers.size() >= limits_.max_subscribers_per_topic) {
    if (subscribers.empty()) w.sessions_of.erase(topic);
    if (mine.empty()) w.topics_of.erase(session);
    counters().refused_subscribers_per_topic.add();
    return BusResult::kLimit;
  }
  if (subscribers.empty()) want(topic, +1);  // this worker's first
  subscribers.insert(session);
  mine.push_back(topic);
  counters().subscribes.add();
  return BusResult::kOk;
}

BusResult TopicBus::unsubscribe(uint64_t session, std::string_view topic) {
  if (!valid_topic(topic)) return BusResult::kBadTopic;
  const unsigned owner = net::worker_of(session);
  if (owner >= workers_.size()) return BusResult::kNoSession;
  on_worker(owner, [this, owner, session, t = std::string(topic)] { unsubscribe_here(owner, session, t); });
  return BusResult::kOk;
}

BusResult TopicBus::end_channel(uint64_t session, std::string_view topic, std::string_view reason,
                                bool rejoin) {
  if (!valid_topic(topic)) return BusResult::kBadTopic;
  const unsigned owner = net::worker_of(session);
  if (owner >= workers_.size()) return BusResult::kNoSession;
  on_worker(owner, [this, owner, session, rejoin, t = std::string(topic), why = std::string(reason)] {
    unsubscribe_here(owner, session, t);
    if (net::ReplyTransport* transport = transport_for(owner, session)) {
      transport->end_channel(session, t, why, rejoin);
    }
  });
  return BusResult::kOk;
}

void TopicBus::unsubscribe_here(unsigned index, uint64_t session, const std::string& topic) {
  WorkerTopics& w = topics_[index];
  const auto mine = w.topics_of.find(session);
  if (mine == w.topics_of.end()) return;
  const auto at = std::find(mine->second.begin(), mine->second.end(), topic);
  if (at == mine->second.end()) return;
  mine->second.erase(at);
  if (mine->second.empty()) w.topics_of.erase(mine);
  const auto subs = w.sessions_of.find(topic);
  if (subs != w.sessions_of.end()) {
    subs->second.erase(session);
    if (subs->second.empty()) {
      w.sessions_of.erase(subs);
      want(topic, -1);
    }
  }
  counters().unsubscribes.add();
}

void TopicBus::session_closed(uint64_t session) {
  const unsigned index = net::worker_of(session);
  if (index >= workers_.size()) return;
  WorkerTopics& w = topics_[index];
  const auto mine = w.topics_of.find(session);
  if (mine == w.topics_of.end()) return;
  for (const auto& topic : mine->second) {
    const auto subs = w.sessions_of.find(topic);
    if (subs == w.sessions_of.end()) continue;
    subs->second.erase(session);
    if (subs->second.empty()) {
      w.sessions_of.erase(subs);
      want(topic, -1);
    }
  }
  counters().unsubscribes.add(mine->second.size());
  w.topics_of.erase(mine);
}

size_t TopicBus::subscriptions_on(unsigned index) const {
  size_t n = 0;
  for (const auto& [session, topics] : topics_[index].topics_of) n += topics.size();
  return n;
}

BusResult TopicBus::publish(std::string_view topic, uint32_t packet_id,
                            std::span<const uint8_t> payload, uint64_t except) {
  if (!valid_topic(topic)) return BusResult::kBadTopic;
  counters().publishes.add();
  fan_out(topic, packet_id, payload, except);
  // The other nodes: `except` names a session of this node, or (a remote session's
  // stand-in) of another, which the remote layer resolves.
  if (RemoteTopics* remote = remote_.load()) remote->publish(topic, packet_id, payload, except);
  return BusResult::kOk;
}

void TopicBus::deliver_remote(std::string_view topic, uint32_t packet_id,
                              std::span<const uint8_t> payload, uint64_t except) {
  if (!valid_topic(topic)) return;
  fan_out(topic, packet_id, payload, except);
}

void TopicBus::hold(const std::string& topic) { want(topic, +1); }
void TopicBus::release(const std::string& topic) { want(topic, -1); }

void TopicBus::fan_out(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
                       uint64_t except) {
  const int here = current_worker();
  // Plugin subscribers hear it once, from the publishing worker (worker 0 off the
  // workers), and never inside the call: the publisher may be a plugin that is itself
  // subscribed, in the middle of a handler that holds its call lock.
  const unsigned plugins_on = here >= 0 ? static_cast<unsigned>(here) : 0;
  for (unsigned i = 0; i < workers_.size(); ++i) {
    const bool sessions_posted = static_cast<int>(i) != here;
    if (!sessions_posted && i != plugins_on) continue;
    // Each worker's queue is FIFO: one thread's publishes arrive there in order.
    workers_[i].loop->post([this, i, sessions_posted, plugins = i == plugins_on,
                            t = std::string(topic), packet_id,
                            bytes = std::string(payload.begin(), payload.end()), except] {
      deliver_here(i, t, packet_id, as_bytes(bytes), sessions_posted, plugins, except);
    });
  }
  // The publisher's own worker pushes to its sessions now, in the order of the call.
  if (here >= 0) {
    deliver_here(static_cast<unsigned>(here), std::string(topic), packet_id, payload, true, false,
                 except);
  }
}

void TopicBus::want(const std::string& topic, int delta) {
  std::lock_guard lock(wanted_mutex_);
  unsigned& count = wanted_[topic];
  const bool was = count > 0;
  count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
  const bool is = count > 0;
  if (!is) wanted_.erase(topic);
  if (RemoteTopics* remote = remote_.load(); was != is && remote != nullptr) remote->topic_wanted(topic, is);
}

void TopicBus::set_remote(RemoteTopics* remote) {
  std::lock_guard lock(wanted_mutex_);
  remote_ = remote;
  if (remote == nullptr) return;
  for (const auto& [topic, count] : wanted_) remote->topic_wanted(topic, true);
}

void TopicBus::deliver_here(unsigned index, const std::string& topic, uint32_t packet_id,
                            std::span<const uint8_t> payload, bool sessions, bool plugins_too,
                            uint64_t except) {
  WorkerTopics& w = topics_[index];
  const auto subs = sessions ? w.sessions_of.find(topic) : w.sessions_of.end();
  if (subs != w.sessions_of.end()) {
    // A push may close a slow session, whose close reaches session_closed only at the
    // worker's next flush: iterating a copy-free set here is safe.
    size_t delivered = 0;
    for (const uint64_t session : subs->second) {
      if (session == except) continue;
      transport_for(index, session)->send_push(session, packet_id, v1::DELIVERY_RELIABLE_ORDERED,
                                               topic, payload);
      ++delivered;
    }
    counters().deliveries.add(delivered);
  }
  if (!plugins_too) return;
  // Held for the loop: a subscriber that unsubscribes while it is called stays alive.
  const std::shared_ptr<const PluginTable> plugins = w.plugins;
  if (const auto subs = plugins->find(topic); subs != plugins->end()) {
    for (const auto& subscriber : subs->second) {
      subscriber->deliver(TopicMessage{topic, packet_id, payload});
    }
    counters().deliveries.add(subs->second.size());
  }
}

BusResult TopicBus::subscribe_plugin(std::shared_ptr<const PluginSubscriber> subscriber,
                                     std::string_view topic) {
  if (!valid_topic(topic)) return BusResult::kBadTopic;
  std::lock_guard lock(plugin_mutex_);
  auto& subs = plugin_master_[std::string(topic)];
  if (std::find(subs.begin(), subs.end(), subscriber) != subs.end()) return BusResult::kOk;
  want(std::string(topic), +1);
  subs.push_back(std::move(subscriber));
  share_plugin_table();
  return BusResult::kOk;
}

void TopicBus::unsubscribe_plugin(const PluginSubscriber* subscriber, std::string_view topic) {
  std::lock_guard lock(plugin_mutex_);
  const auto it = plugin_master_.find(std::string(topic));
  if (it == plugin_master_.end()) return;
  const size_t before = it->second.size();
  std::erase_if(it->second, [subscriber](const auto& s) { return s.get() == subscriber; });
  if (it->second.size() == before) return;
  want(it->first, -1);
  if (it->second.empty()) plugin_master_.erase(it);
  share_plugin_table();
}

void TopicBus::drop_plugin(const PluginSubscriber* subscriber) {
  std::lock_guard lock(plugin_mutex_);
  bool changed = false;
  for (auto it = plugin_master_.begin(); it != plugin_master_.end();) {
    const size_t before = it->second.size();
    std::erase_if(it->second, [subscriber](const auto& s) { return s.get() == subscriber; });
    if (it->second.size() != before) want(it->first, -1);
    changed = changed || it->second.size() != before;
    it = it->second.empty() ? plugin_master_.erase(it) : std::next(it);
  }
  if (changed) share_plugin_table();
}

void TopicBus::share_plugin_table() {
  auto snapshot = std::make_shared<const PluginTable>(plugin_master_);
  for (unsigned i = 0; i < workers_.size(); ++i) {
    // Posted even to the calling worker: its own snapshot may be in use up the stack.
    workers_[i].loop->post([this, i, snapshot] { topics_[i].plugins = snapshot; });
  }
}

}  // namespace prism::cluster
