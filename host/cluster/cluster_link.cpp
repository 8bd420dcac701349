// ClusterLink: one Redis connection publishing, one subscribed to the topics this node
// wants, and the envelope that lets a node recognise its own messages.
#include "cluster/cluster_link.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "metrics/metrics.hpp"

namespace prism::cluster {
namespace {

struct LinkCounters {
  metrics::Counter& sent;
  metrics::Counter& send_failed;
  metrics::Counter& received;
  metrics::Counter& malformed;
};

const LinkCounters& counters() {
  static const LinkCounters c = [] {
    auto& r = metrics::registry();
    return LinkCounters{
        r.counter("prism_cluster_publishes_total", "", "Messages published to the other nodes through Redis"),
        r.counter("prism_cluster_publish_failures_total", "",
                  "Of those, not accepted by Redis (unreachable): the other nodes miss them"),
        r.counter("prism_cluster_messages_received_total", "",
                  "Messages from the other nodes delivered on this one"),
        r.counter("prism_cluster_messages_malformed_total", "",
                  "Messages on a topic channel that are not a node's envelope (dropped)"),
    };
  }();
  return c;
}

// The subscriber connection runs no script; RedisConnection loads one on every connect.
constexpr std::string_view kNoScript = "return 0";

}  // namespace

ClusterLink::ClusterLink(const RegistryOptions& options, std::string incarnation, TopicBus& bus)
    : channel_prefix_(options.redis.key_prefix + "topic:"),
      incarnation_(std::move(incarnation)),
      bus_(bus),
      publisher_(options.redis_host, options.redis_port, options.redis, std::string(kNoScript)),
      subscriber_(options.redis_host, options.redis_port, options.redis, std::string(kNoScript)) {
  counters();
  subscriber_.set_message_handler(
      [this](std::string_view channel, std::string_view message) { on_message(channel, message); });
}

ClusterLink::~ClusterLink() = default;

std::string ClusterLink::encode(std::string_view incarnation, uint32_t packet_id,
                                std::span<const uint8_t> payload) {
  std::string out;
  out.reserve(incarnation.size() + 12 + payload.size());
  out.append(incarnation).append("\n").append(std::to_string(packet_id)).append("\n");
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  return out;
}

bool ClusterLink::decode(std::string_view message, Decoded* out) {
  const size_t first = message.find('\n');
  if (first == std::string_view::npos || first == 0) return false;
  const size_t second = message.find('\n', first + 1);
  if (second == std::string_view::npos) return false;
  const std::string_view digits = message.substr(first + 1, second - first - 1);
  uint32_t packet_id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), packet_id);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) return false;
  out->incarnation = message.substr(0, first);
  out->packet_id = packet_id;
  out->payload = message.substr(second + 1);
  return true;
}

void ClusterLink::publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload) {
  counters().sent.add();
  publisher_.command({"PUBLISH", channel_prefix_ + std::string(topic), encode(incarnation_, packet_id, payload)},
                     [](const redisReply* reply) {
                       if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) counters().send_failed.add();
                     });
}

void ClusterLink::topic_wanted(const std::string& topic, bool wanted) {
  if (wanted) {
    subscriber_.subscribe(channel_prefix_ + topic);
  } else {
    subscriber_.unsubscribe(channel_prefix_ + topic);
  }
}

void ClusterLink::on_message(std::string_view channel, std::string_view message) {
  Decoded d;
  if (!channel.starts_with(channel_prefix_) || !decode(message, &d)) {
    counters().malformed.add();
    return;
  }
  if (d.incarnation == incarnation_) return;  // ours: delivered here when published
  counters().received.add();
  bus_.deliver_remote(channel.substr(channel_prefix_.size()), d.packet_id,
                      {reinterpret_cast<const uint8_t*>(d.payload.data()), d.payload.size()});
}

}  // namespace prism::cluster
