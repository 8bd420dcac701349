// Topics across the nodes of a cluster (DESIGN.md §7): a publish on one node goes to
// Redis once, to the channel <prefix>topic:<topic>; every node that has subscribers for
// that topic (it SUBSCRIBEs while it has any, TopicBus::want) fans it out to them. Redis
// delivers one connection's publishes in order, so one publisher's messages to a topic
// reach every node in the order published. Each node also listens on its own channel,
// <prefix>node:<id>, for messages addressed to it (forwarded requests and their replies:
// plugins/cluster_host.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/node_registry.hpp"
#include "cluster/topic_bus.hpp"
#include "store/redis_connection.hpp"

namespace prism::cluster {

class ClusterLink final : public RemoteTopics {
 public:
  // `incarnation` marks this process's messages, which come back to it from Redis when it
  // subscribes the same topic, and are dropped then (it delivered them itself). `node_id`
  // names this node's own channel, <prefix>node:<node_id>.
  ClusterLink(const RegistryOptions& options, std::string node_id, std::string incarnation, TopicBus& bus);
  ~ClusterLink() override;
  ClusterLink(const ClusterLink&) = delete;
  ClusterLink& operator=(const ClusterLink&) = delete;

  void publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
               uint64_t except) override;
  void topic_wanted(const std::string& topic, bool wanted) override;

  // ---- Node-addressed messages (DESIGN.md §7: a request forwarded to the node that owns
  // an instance). They leave on the same connection as the topic messages and arrive on
  // the same one, so what one node sends another, to its channel or to a topic, arrives
  // in the order sent.
  using NodeHandler = std::function<void(std::string_view from, std::string_view body)>;
  // Subscribes this node's channel; `handler` runs on the subscriber's thread. Once.
  void listen(NodeHandler handler);
  // Any thread. `sent` (on the publisher's thread): true when a node listened on that
  // channel (PUBLISH counted a receiver), false when none did or Redis did not answer.
  void send(const std::string& node, std::string body, std::function<void(bool sent)> sent);
  // Any thread: `then(true)` once a message published to `topic` from now on is sure to
  // reach this node (Redis confirmed its SUBSCRIBE), `then(false)` if the subscriber is
  // not connected. The topic must be wanted (TopicBus::hold) meanwhile.
  void when_receiving(const std::string& topic, std::function<void(bool)> then);
  // How `except` travels when it is not a session of this node (a remote session's
  // stand-in): the real session and its node, or nullopt for none.
  using ExceptResolver = std::function<std::optional<std::pair<uint64_t, std::string>>(uint64_t)>;
  void set_except_resolver(ExceptResolver resolver);  // before the workers run

  // Both connections up: publishes leave, and subscriptions are in place.
  bool healthy() const { return publisher_.connected() && subscriber_.connected(); }
  const std::string& node_id() const { return node_id_; }

  // The message as it travels: "<incarnation>\n<packet id>\n<except>\n<payload>", where
  // <except> is "" or "<session> <node id>". Exposed for tests.
  static std::string encode(std::string_view incarnation, uint32_t packet_id, std::string_view except,
                            std::span<const uint8_t> payload);
  struct Decoded {
    std::string_view incarnation;
    uint32_t packet_id = 0;
    uint64_t except_session = 0;
    std::string_view except_node;
    std::string_view payload;
  };
  static bool decode(std::string_view message, Decoded* out);

 private:
  void on_message(std::string_view channel, std::string_view message);
  void on_subscribed(std::string_view channel);

  std::string channel_prefix_;  // <prefix>topic:
  std::string node_prefix_;     // <prefix>node:
  std::string node_id_;
  std::string incarnation_;
  TopicBus& bus_;
  ExceptResolver resolve_except_;
  NodeHandler on_node_;  // set by listen() on the subscriber's thread
  // The subscriber's thread only: channels Redis confirmed, and who waits for one.
  std::set<std::string> confirmed_;
  std::map<std::string, std::vector<std::function<void(bool)>>> waiting_;
  store::RedisConnection publisher_;
  store::RedisConnection subscriber_;
};

}  // namespace prism::cluster
