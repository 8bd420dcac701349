// Topics across the nodes of a cluster (DESIGN.md §7): a publish on one node goes to
// Redis once, to the channel <prefix>topic:<topic>; every node that has subscribers for
// that topic (it SUBSCRIBEs while it has any, TopicBus::want) fans it out to them. Redis
// delivers one connection's publishes in order, so one publisher's messages to a topic
// reach every node in the order published.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cluster/node_registry.hpp"
#include "cluster/topic_bus.hpp"
#include "store/redis_connection.hpp"

namespace prism::cluster {

class ClusterLink final : public RemoteTopics {
 public:
  // `incarnation` marks this process's messages, which come back to it from Redis when it
  // subscribes the same topic, and are dropped then (it delivered them itself).
  ClusterLink(const RegistryOptions& options, std::string incarnation, TopicBus& bus);
  ~ClusterLink() override;
  ClusterLink(const ClusterLink&) = delete;
  ClusterLink& operator=(const ClusterLink&) = delete;

  void publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload) override;
  void topic_wanted(const std::string& topic, bool wanted) override;

  // Both connections up: publishes leave, and subscriptions are in place.
  bool healthy() const { return publisher_.connected() && subscriber_.connected(); }

  // The message as it travels: "<incarnation>\n<packet id>\n<payload>". Exposed for tests.
  static std::string encode(std::string_view incarnation, uint32_t packet_id,
                            std::span<const uint8_t> payload);
  struct Decoded {
    std::string_view incarnation;
    uint32_t packet_id = 0;
    std::string_view payload;
  };
  static bool decode(std::string_view message, Decoded* out);

 private:
  void on_message(std::string_view channel, std::string_view message);

  std::string channel_prefix_;  // <prefix>topic:
  std::string incarnation_;
  TopicBus& bus_;
  store::RedisConnection publisher_;
  store::RedisConnection subscriber_;
};

}  // namespace prism::cluster
