// Server push and topics on this node (DESIGN.md §4, §7): a push goes to the worker that
// owns the session, a publish to every worker. Each worker keeps its own sessions'
// subscriptions and touches them only on its own thread, so crossing workers is a task on
// the target worker's queue (LoopAccess::post), never a lock on the delivery path.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/loop_access.hpp"
#include "net/transport.hpp"

namespace prism::cluster {

enum class BusResult : uint8_t {
  kOk,           // done, or handed to the session's worker
  kNoSession,    // no open session with that id on the calling worker
  kBadTopic,     // not 1..kMaxTopicLength bytes of 0x21-0x7e
  kLimit,        // max_topics_per_session or max_subscribers_per_topic reached
  kTooLarge,     // larger than the session may receive (unreliable: one datagram)
  kBacklogFull,  // slow consumer (a reliable push closed the session)
};

struct BusLimits {
  size_t max_topics_per_session = 64;
  size_t max_subscribers_per_topic = 100000;  // per worker
};

// plugin.h PRISM_MAX_TOPIC_LEN.
inline constexpr size_t kMaxTopicLength = 200;
bool valid_topic(std::string_view topic);

// One worker as the bus reaches it: its loop, and the transport its sessions live on.
struct BusWorker {
  net::LoopAccess* loop = nullptr;
  net::ReplyTransport* transport = nullptr;  // its UDP sessions
  net::ReplyTransport* websocket = nullptr;  // its WebSocket sessions, when ws.listen is on
};

// A published message as a plugin subscriber receives it.
struct TopicMessage {
  std::string_view topic;
  uint32_t packet_id = 0;
  std::span<const uint8_t> payload;
};

// A subscriber that is not a session: a plugin version. `deliver` runs on the worker
// that published (worker 0 for a publish made off the workers).
struct PluginSubscriber {
  std::function<void(const TopicMessage&)> deliver;
};

// The other nodes of the cluster as the bus reaches them (ClusterLink, DESIGN.md §7).
class RemoteTopics {
 public:
  virtual ~RemoteTopics() = default;
  // Any thread: a message published on this node, for the other nodes' subscribers.
  // `except` as TopicBus::publish's: 0, a session of this node, or a remote session's
  // stand-in (net::is_remote_session).
  virtual void publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
                       uint64_t except) = 0;
  // This node now has a subscriber (session or plugin) for `topic`, or no longer any:
  // only then does it need what the other nodes publish to it. Calls for one topic come
  // in order (under the bus's lock).
  virtual void topic_wanted(const std::string& topic, bool wanted) = 0;
};

class TopicBus {
 public:
  TopicBus(std::vector<BusWorker> workers, BusLimits limits);
  // Worker `index`'s WebSocket sessions (set before the workers start).
  void set_websocket(unsigned index, net::ReplyTransport* transport) {
    workers_[index].websocket = transport;
  }
  ~TopicBus();
  TopicBus(const TopicBus&) = delete;
  TopicBus& operator=(const TopicBus&) = delete;

  // Any thread. On the session's own worker the outcome is known and returned; from
  // anywhere else the call is handed to that worker and returns kOk (a refusal there is
  // counted, prism_subscribes_refused_total).
  // `topic`, when not empty, travels with the push (plugin.h push_topic): a WebSocket
  // hears it on that channel.
  BusResult push(uint64_t session, uint32_t packet_id, v1::Delivery delivery,
                 std::span<const uint8_t> payload, std::string_view topic = {});
  BusResult subscribe(uint64_t session, std::string_view topic);
  BusResult unsubscribe(uint64_t session, std::string_view topic);
  // unsubscribe, and the session's transport tells its client the channel ended (plugin.h
  // end_channel: a WebSocket's phx_error when `rejoin`, else phx_close), in that order.
  BusResult end_channel(uint64_t session, std::string_view topic, std::string_view reason,
                        bool rejoin);

  // Any thread: a reliable, ordered push to every subscribed session on every worker, and
  // `deliver` for every plugin subscriber. Messages one thread publishes to a topic reach
  // each subscriber in the order published.
  // `except`, when not 0, is one session that does not receive it (plugin.h
  // publish_except: Phoenix's broadcast_from).
  BusResult publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
                    uint64_t except = 0);

  // A plugin subscriber, kept (and compared) by pointer. Takes effect on every worker
  // within one loop turn of each.
  BusResult subscribe_plugin(std::shared_ptr<const PluginSubscriber> subscriber,
                             std::string_view topic);
  void unsubscribe_plugin(const PluginSubscriber* subscriber, std::string_view topic);
  // Every topic of `subscriber` (its plugin version is going away).
  void drop_plugin(const PluginSubscriber* subscriber);

  // The session's worker thread: the session is gone, forget its subscriptions.
  void session_closed(uint64_t session);

  // Publishes go to `remote` too, and it learns which topics this node wants (those
  // wanted already, at once). Set before the workers run; null (the default, and before
  // `remote` goes away) keeps the bus on this node.
  void set_remote(RemoteTopics* remote);
  // A message published on another node (the remote's thread): delivered here as a
  // publish is, and not sent back out. `except`: a session of this node that does not
  // receive it (the publisher's publish_except named it), or 0.
  void deliver_remote(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
                      uint64_t except = 0);
  // Any thread: this node wants `topic` from the other nodes while a hold lasts, as if it
  // had a subscriber (a forwarded join waits for its topic's messages before it leaves:
  // plugin.h forward). Each hold is released once.
  void hold(const std::string& topic);
  void release(const std::string& topic);

  // Subscriptions of sessions of worker `index`; that worker's thread only (tests).
  size_t subscriptions_on(unsigned index) const;

 private:
  using PluginTable =
      std::unordered_map<std::string, std::vector<std::shared_ptr<const PluginSubscriber>>>;
  // What one worker knows; touched on that worker's thread only.
  struct WorkerTopics {
    std::unordered_map<std::string, std::unordered_set<uint64_t>> sessions_of;
    std::unordered_map<uint64_t, std::vector<std::string>> topics_of;
    std::shared_ptr<const PluginTable> plugins = std::make_shared<PluginTable>();
  };

  // The transport that holds `session` on worker `index` (net::is_websocket_session).
  net::ReplyTransport* transport_for(unsigned index, uint64_t session) const;
  // The index of the worker whose thread is calling, or -1.
  int current_worker() const;
  // Runs `task` on worker `index`: now when that is the calling thread, else posted.
  void on_worker(unsigned index, std::function<void()> task);
  BusResult subscribe_here(unsigned index, uint64_t session, const std::string& topic);
  void unsubscribe_here(unsigned index, uint64_t session, const std::string& topic);
  void deliver_here(unsigned index, const std::string& topic, uint32_t packet_id,
                    std::span<const uint8_t> payload, bool sessions, bool plugins_too,
                    uint64_t except);
  // Hands every worker the plugin table as it is now (plugin_mutex_ held).
  void share_plugin_table();
  // Every worker's sessions and plugin subscribers hear it; the caller's worker's sessions
  // first, now (none off the workers).
  void fan_out(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
               uint64_t except);
  // One more (+1) or one fewer (-1) worker or plugin subscribed to `topic` on this node;
  // tells the remote when the count leaves or reaches zero.
  void want(const std::string& topic, int delta);

  std::vector<BusWorker> workers_;
  BusLimits limits_;
  std::vector<WorkerTopics> topics_;  // one per worker
  // The master copy of the plugin subscriptions; changed rarely (subscribe_plugin), read
  // by the workers through their own snapshots.
  std::mutex plugin_mutex_;
  PluginTable plugin_master_;
  // Node-wide: how many workers (with sessions) and plugin versions want each topic.
  std::mutex wanted_mutex_;
  std::unordered_map<std::string, unsigned> wanted_;
  std::atomic<RemoteTopics*> remote_{nullptr};  // set under wanted_mutex_, read by publish
};

}  // namespace prism::cluster
