// ClusterLink: one Redis connection publishing, one subscribed to the topics this node
// wants, and the envelope that lets a node recognise its own messages.
#include "cluster/cluster_link.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "metrics/metrics.hpp"
#include "net/transport.hpp"

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
                  "Messages on a topic or node channel that are not a node's envelope (dropped)"),
    };
  }();
  return c;
}

// The subscriber connection runs no script; RedisConnection loads one on every connect.
constexpr std::string_view kNoScript = "local function main() return 0 end";

}  // namespace

ClusterLink::ClusterLink(const RegistryOptions& options, std::string node_id, std::string incarnation,
                         TopicBus& bus)
    : channel_prefix_(options.redis.key_prefix + "topic:"),
      node_prefix_(options.redis.key_prefix + "node:"),
      node_id_(std::move(node_id)),
      incarnation_(std::move(incarnation)),
      bus_(bus),
      publisher_(options.redis_host, options.redis_port, options.redis, std::string(kNoScript)),
      subscriber_(options.redis_host, options.redis_port, options.redis, std::string(kNoScript)) {
  counters();
  subscriber_.set_message_handler(
      [this](std::string_view channel, std::string_view message) { on_message(channel, message); });
  subscriber_.set_subscribed_handler([this](std::string_view channel) { on_subscribed(channel); });
}

ClusterLink::~ClusterLink() = default;

std::string ClusterLink::encode(std::string_view incarnation, uint32_t packet_id, std::string_view except,
                                std::span<const uint8_t> payload) {
  std::string out;
  out.reserve(incarnation.size() + 13 + except.size() + payload.size());
  out.append(incarnation).append("\n").append(std::to_string(packet_id)).append("\n");
  out.append(except).append("\n");
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  return out;
}

bool ClusterLink::decode(std::string_view message, Decoded* out) {
  const size_t first = message.find('\n');
  if (first == std::string_view::npos || first == 0) return false;
  const size_t second = message.find('\n', first + 1);
  if (second == std::string_view::npos) return false;
  const size_t third = message.find('\n', second + 1);
  if (third == std::string_view::npos) return false;
  const std::string_view digits = message.substr(first + 1, second - first - 1);
  uint32_t packet_id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), packet_id);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) return false;
  out->except_session = 0;
  out->except_node = {};
  if (const std::string_view except = message.substr(second + 1, third - second - 1); !except.empty()) {
    const size_t space = except.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == except.size()) return false;
    const auto [e, ec2] = std::from_chars(except.data(), except.data() + space, out->except_session);
    if (ec2 != std::errc{} || e != except.data() + space) return false;
    out->except_node = except.substr(space + 1);
  }
  out->incarnation = message.substr(0, first);
  out->packet_id = packet_id;
  out->payload = message.substr(third + 1);
  return true;
}

void ClusterLink::set_except_resolver(ExceptResolver resolver) { resolve_except_ = std::move(resolver); }

void ClusterLink::publish(std::string_view topic, uint32_t packet_id, std::span<const uint8_t> payload,
                          uint64_t except) {
  counters().sent.add();
  std::string named;
  if (net::is_remote_session(except)) {
    if (auto real = resolve_except_ ? resolve_except_(except) : std::nullopt) {
      named = std::to_string(real->first) + " " + real->second;
    }
  } else if (except != 0) {
    named = std::to_string(except) + " " + node_id_;
  }
  publisher_.command({"PUBLISH", channel_prefix_ + std::string(topic), encode(incarnation_, packet_id, named, payload)},
                     [](const redisReply* reply) {
                       if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) counters().send_failed.add();
                     });
}

void ClusterLink::topic_wanted(const std::string& topic, bool wanted) {
  if (wanted) {
    subscriber_.subscribe(channel_prefix_ + topic);
  } else {
    subscriber_.unsubscribe(channel_prefix_ + topic);
    const std::string channel = channel_prefix_ + topic;
    subscriber_.post([this, channel] { confirmed_.erase(channel); });
  }
}

void ClusterLink::listen(NodeHandler handler) {
  subscriber_.post([this, handler = std::move(handler)]() mutable { on_node_ = std::move(handler); });
  subscriber_.subscribe(node_prefix_ + node_id_);
}

void ClusterLink::send(const std::string& node, std::string body, std::function<void(bool)> sent) {
  std::string message;
  message.reserve(node_id_.size() + 1 + body.size());
  message.append(node_id_).append("\n").append(body);
  publisher_.command({"PUBLISH", node_prefix_ + node, std::move(message)},
                     [sent = std::move(sent)](const redisReply* reply) {
                       const bool heard = reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
                       if (sent) sent(heard);
                     });
}

void ClusterLink::when_receiving(const std::string& topic, std::function<void(bool)> then) {
  subscriber_.post([this, channel = channel_prefix_ + topic, then = std::move(then)]() mutable {
    if (!subscriber_.connected()) return then(false);
    if (confirmed_.contains(channel)) return then(true);
    waiting_[channel].push_back(std::move(then));
  });
}

void ClusterLink::on_subscribed(std::string_view channel) {
  if (channel.empty()) {  // the connection is lost: no SUBSCRIBE holds now
    confirmed_.clear();
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& [c, thens] : waiting) {
      for (auto& then : thens) then(false);
    }
    return;
  }
  const std::string name(channel);
  confirmed_.insert(name);
  const auto it = waiting_.find(name);
  if (it == waiting_.end()) return;
  auto thens = std::move(it->second);
  waiting_.erase(it);
  for (auto& then : thens) then(true);
}

void ClusterLink::on_message(std::string_view channel, std::string_view message) {
  if (channel.starts_with(node_prefix_)) {
    const size_t newline = message.find('\n');
    if (newline == std::string_view::npos || newline == 0 || !on_node_) {
      counters().malformed.add();
      return;
    }
    counters().received.add();
    on_node_(message.substr(0, newline), message.substr(newline + 1));
    return;
  }
  Decoded d;
  if (!channel.starts_with(channel_prefix_) || !decode(message, &d)) {
    counters().malformed.add();
    return;
  }
  if (d.incarnation == incarnation_) return;  // ours: delivered here when published
  counters().received.add();
  const uint64_t except = d.except_node == node_id_ ? d.except_session : 0;
  bus_.deliver_remote(channel.substr(channel_prefix_.size()), d.packet_id,
                      {reinterpret_cast<const uint8_t*>(d.payload.data()), d.payload.size()}, except);
}

}  // namespace prism::cluster
