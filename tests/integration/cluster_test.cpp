// The cluster (host/cluster, DESIGN.md §7, docs/operations.md "Clustering") through real
// prismd processes on loopback sharing one throwaway redis-server: the node registry, as
// `prismctl cluster nodes` shows it from any node.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "prism/client.hpp"
#include "prism/practice/v1/practice.pb.h"
#include "prismd_process.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace prism::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A node of the cluster on `redis`: one worker, a heartbeat of 200 ms and a TTL of 1200 ms,
// so that a dead node goes quickly, while a live one loaded by a busy machine (ASan, two
// cores) still beats well within the 3 heartbeats that tell it from a dead one.
PrismdOptions node(const RedisServer& redis, const std::string& id,
                   const std::filesystem::path& state_dir = {}) {
  PrismdOptions options;
  options.workers = 1;
  options.state_dir = state_dir;
  options.extra_yaml = "cluster:\n  redis:\n    address: 127.0.0.1:" + std::to_string(redis.port()) +
                       "\n  region: eu-1\n  heartbeat_ms: 200\n  ttl_ms: 1200\n";
  if (!id.empty()) options.extra_yaml += "  node_id: " + id + "\n";
  return options;
}

// `prismctl --json cluster nodes` against `prismd`: its "nodes" (null when it failed).
json cluster_nodes(const PrismdProcess& prismd) {
  const auto r = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server", prismd.endpoint(),
                              "--config", prismd.config_path().string(), "--json", "cluster", "nodes"});
  if (r.exit_code != 0) return nullptr;
  const json out = json::parse(r.output, nullptr, false);
  return out.is_object() ? out.value("nodes", json()) : json();
}

std::set<std::string> ids_of(const json& nodes) {
  std::set<std::string> ids;
  if (nodes.is_array()) {
    for (const json& n : nodes) ids.insert(n.value("id", std::string()));
  }
  return ids;
}

class ClusterRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_EQ(redis.start(), "");
  }
  RedisServer redis;
};

// Each node publishes itself; every node lists all of them; one SIGKILLed is gone once
// its TTL passes, one stopped cleanly at once.
TEST_F(ClusterRegistry, EveryNodeListsTheOthersAndADeadOneGoesAfterItsTtl) {
  PrismdProcess a(node(redis, "node-a")), b(node(redis, "node-b")), c(node(redis, "node-c"));
  ASSERT_TRUE(a.ready()) << a.log();
  ASSERT_TRUE(b.ready()) << b.log();
  ASSERT_TRUE(c.ready()) << c.log();
  const std::set<std::string> all{"node-a", "node-b", "node-c"};
  for (PrismdProcess* p : {&a, &b, &c}) {
    ASSERT_TRUE(eventually([&] { return ids_of(cluster_nodes(*p)) == all; })) << cluster_nodes(*p);
  }
  const json nodes = cluster_nodes(b);
  EXPECT_EQ(nodes[0]["id"], "node-b");  // the node asked comes first
  for (const json& n : nodes) {
    EXPECT_EQ(n["region"], "eu-1") << n;
    EXPECT_FALSE(n["version"].get<std::string>().empty()) << n;
    EXPECT_GT(n["started_at_ms"].get<uint64_t>(), 0u) << n;
    EXPECT_LT(n["age_ms"].get<uint64_t>(), 5000u) << n;
    EXPECT_NE(n["plugins"].dump().find("default"), std::string::npos) << n;
  }
  const auto udp_of = [&](const std::string& id) {
    for (const json& n : nodes) {
      if (n["id"] == id) return n["udp"].get<std::string>();
    }
    return std::string();
  };
  EXPECT_EQ(udp_of("node-a"), a.endpoint());
  EXPECT_EQ(udp_of("node-c"), c.endpoint());
  // Counting a node's sessions for its entry registers nothing: without ws.listen, no
  // WebSocket counter appears in its metrics.
  const auto stats = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server", b.endpoint(),
                                  "--config", b.config_path().string(), "stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_NE(stats.output.find("prism_cluster_nodes"), std::string::npos);
  EXPECT_EQ(stats.output.find("prism_ws_connections_opened_total"), std::string::npos);

  c.stop(SIGKILL);
  ASSERT_TRUE(eventually([&] { return ids_of(cluster_nodes(a)) == std::set<std::string>{"node-a", "node-b"}; }))
      << cluster_nodes(a);
  ASSERT_EQ(b.stop(SIGTERM), 0) << b.log();
  ASSERT_TRUE(eventually([&] { return ids_of(cluster_nodes(a)) == std::set<std::string>{"node-a"}; }))
      << cluster_nodes(a);
}

// Two processes may not be one node: a second with a live node's id is refused at start,
// with the reason, and the first goes on as it was.
TEST_F(ClusterRegistry, ANodeIdAliveElsewhereIsRefusedAtStart) {
  PrismdProcess a(node(redis, "node-a"));
  ASSERT_TRUE(a.ready()) << a.log();
  PrismdProcess twin(node(redis, "node-a"));
  EXPECT_FALSE(twin.ready());
  EXPECT_TRUE(twin.wait_for_log("cluster.node_id 'node-a' is alive on another node")) << twin.log();
  EXPECT_NE(twin.stop(SIGTERM), 0);
  const json nodes = cluster_nodes(a);
  ASSERT_EQ(nodes.size(), 1u) << nodes;
  EXPECT_EQ(nodes[0]["udp"], a.endpoint());
}

// A node SIGKILLed and started again at once takes its own id back: its old entry stops
// beating, so it is known dead before its TTL. Without node_id the id is generated once
// and kept in the state dir.
TEST_F(ClusterRegistry, ANodeRestartedAtOnceKeepsItsGeneratedId) {
  const TempDir state("prism-cluster-test");
  std::string id;
  {
    PrismdProcess first(node(redis, "", state.path()));
    ASSERT_TRUE(first.ready()) << first.log();
    std::ifstream(state.path() / "node_id") >> id;
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(eventually([&] { return ids_of(cluster_nodes(first)) == std::set<std::string>{id}; }));
    first.stop(SIGKILL);
  }
  PrismdProcess again(node(redis, "", state.path()));
  ASSERT_TRUE(again.ready()) << again.log();
  const json nodes = cluster_nodes(again);
  ASSERT_EQ(ids_of(nodes), std::set<std::string>{id}) << nodes;
  EXPECT_EQ(nodes[0]["udp"], again.endpoint());
}

// Redis away at start: the node serves alone, reports degraded, and registers once Redis
// answers.
TEST_F(ClusterRegistry, WithoutRedisANodeStartsDegradedAndJoinsWhenRedisComes) {
  redis.stop();
  PrismdProcess a(node(redis, "node-a"));
  ASSERT_TRUE(a.ready()) << a.log();
  EXPECT_TRUE(a.wait_for_log("event=cluster_degraded")) << a.log();
  const auto ping = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server", a.endpoint(),
                                 "--config", a.config_path().string(), "ping"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;  // serving alone
  EXPECT_EQ(ids_of(cluster_nodes(a)), std::set<std::string>{});
  ASSERT_EQ(redis.restart(), "");
  ASSERT_TRUE(a.wait_for_log("event=cluster_recovered")) << a.log();
  EXPECT_EQ(ids_of(cluster_nodes(a)), std::set<std::string>{"node-a"});
}

// An admin session on `prismd` (HOST_SUBSCRIBE and HOST_PUBLISH need the admin login).
client::Client admin_session(const PrismdProcess& prismd) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  options.timeout = 5s;
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  EXPECT_TRUE(c) << c.error();
  auto login = c->login("admin", prismd.admin_token());
  EXPECT_TRUE(login && login->status == v1::STATUS_OK);
  return std::move(*c);
}

// Redis's count of subscribers to the topic's channel: one per node that wants it.
int nodes_subscribed(const RedisServer& redis, const std::string& topic) {
  const std::string reply = redis.command("PUBSUB NUMSUB prism:topic:" + topic);
  const size_t last = reply.find_last_of(' ');
  return std::atoi(reply.c_str() + (last == std::string::npos ? 0 : last + 1));
}

// One admin session on each node given, subscribed to `topic`, recording what it hears;
// `ready` once Redis counts every node's subscription (another process's state: awaited
// by asking Redis). Not movable: the sessions' callbacks hold `heard`.
struct Listeners {
  Listeners(const RedisServer& redis, std::initializer_list<const PrismdProcess*> nodes, const std::string& topic)
      : heard(nodes.size()) {
    for (const PrismdProcess* n : nodes) sessions.push_back(admin_session(*n));
    for (size_t i = 0; i < sessions.size(); ++i) {
      sessions[i].on_topic(topic, [this, i](const v1::Message& m) { heard[i].push_back(m.payload()); });
      if (!sessions[i].subscribe(topic)) return;
    }
    ready = eventually([&] { return nodes_subscribed(redis, topic) == static_cast<int>(nodes.size()); });
  }
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;

  std::vector<client::Client> sessions;
  std::vector<std::vector<std::string>> heard;
  bool ready = false;
};

// A publish on one node reaches the subscribers on every node exactly once, in the order
// published; the publishing node's own subscriber too (not twice: its message comes back
// from Redis and is recognised as its own).
TEST_F(ClusterRegistry, APublishOnOneNodeReachesEverySubscriberOnceInOrder) {
  PrismdProcess a(node(redis, "node-a")), b(node(redis, "node-b")), c(node(redis, "node-c"));
  ASSERT_TRUE(a.ready() && b.ready() && c.ready()) << a.log() << b.log() << c.log();
  // Each node subscribes the topic's Redis channel once it has a subscriber.
  Listeners listeners(redis, {&a, &b, &c}, "scores");
  ASSERT_TRUE(listeners.ready);
  auto& subscribers = listeners.sessions;
  auto& heard = listeners.heard;
  auto publisher = admin_session(a);
  std::vector<std::string> sent;
  for (int i = 0; i < 200; ++i) {
    sent.push_back("score " + std::to_string(i));
    ASSERT_TRUE(publisher.publish("scores", sent.back()));
  }
  for (size_t i = 0; i < 3; ++i) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (heard[i].size() < sent.size() && std::chrono::steady_clock::now() < until) {
      ASSERT_TRUE(subscribers[i].poll(50ms));
    }
  }
  // Anything extra (a duplicate) would have arrived with the rest: one more turn to see it.
  for (auto& s : subscribers) ASSERT_TRUE(s.poll(50ms));
  EXPECT_EQ(heard[0], sent) << "node-a, the publisher's own";
  EXPECT_EQ(heard[1], sent) << "node-b";
  EXPECT_EQ(heard[2], sent) << "node-c";
  // A node whose last subscriber left stops taking the topic from Redis.
  ASSERT_TRUE(subscribers[2].unsubscribe("scores"));
  EXPECT_TRUE(eventually([&] { return nodes_subscribed(redis, "scores") == 2; }));
}

// `prismctl --json status` against `prismd`: its "cluster" (alone, ok or degraded).
std::string cluster_state(const PrismdProcess& prismd) {
  const auto r = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server", prismd.endpoint(),
                              "--config", prismd.config_path().string(), "--json", "status"});
  const json out = json::parse(r.output, nullptr, false);
  return out.is_object() ? out.value("cluster", std::string()) : std::string();
}

// Polls every session until `done` holds or 10 s pass.
template <typename Done>
bool poll_all(std::vector<client::Client>& sessions, Done done) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    for (auto& s : sessions) {
      if (!s.poll(20ms)) return false;
    }
  }
  return true;
}

// Redis killed mid-traffic: each node serves on alone (its own subscribers still hear
// its publishes), says degraded, and once Redis is back registers and subscribes again,
// so cross-node publishes flow again; nothing crashes.
TEST_F(ClusterRegistry, RedisKilledAndRestartedLeavesNodesServingAloneThenRejoined) {
  PrismdProcess a(node(redis, "node-a")), b(node(redis, "node-b"));
  ASSERT_TRUE(a.ready() && b.ready()) << a.log() << b.log();
  Listeners listeners(redis, {&a, &b}, "ticks");
  ASSERT_TRUE(listeners.ready);
  auto& subscribers = listeners.sessions;
  auto& heard = listeners.heard;
  auto publisher = admin_session(a);
  ASSERT_TRUE(publisher.publish("ticks", "before"));
  ASSERT_TRUE(poll_all(subscribers, [&] { return heard[0].size() == 1 && heard[1].size() == 1; }));

  redis.kill();
  ASSERT_TRUE(eventually([&] { return cluster_state(a) == "degraded" && cluster_state(b) == "degraded"; }));
  ASSERT_TRUE(publisher.publish("ticks", "during"));  // this node's subscribers only
  ASSERT_TRUE(poll_all(subscribers, [&] { return heard[0].size() == 2; }));

  ASSERT_EQ(redis.restart(), "");
  // (No log line to await: an outage shorter than a heartbeat is over before the registry
  // looks, and only the connection logs it.)
  ASSERT_TRUE(eventually([&] { return cluster_state(a) == "ok" && cluster_state(b) == "ok"; }));
  ASSERT_TRUE(eventually([&] { return nodes_subscribed(redis, "ticks") == 2; }));
  ASSERT_TRUE(eventually([&] { return ids_of(cluster_nodes(b)) == std::set<std::string>{"node-a", "node-b"}; }));
  ASSERT_TRUE(publisher.publish("ticks", "after"));
  ASSERT_TRUE(poll_all(subscribers, [&] { return heard[0].size() == 3 && heard[1].size() == 2; }));
  EXPECT_EQ(heard[0], (std::vector<std::string>{"before", "during", "after"}));
  EXPECT_EQ(heard[1], (std::vector<std::string>{"before", "after"}));
}

// Redis that stops answering without closing (SIGSTOP): a node gives it up after one TTL
// and says degraded, and is back once Redis answers again.
TEST_F(ClusterRegistry, ASilentRedisIsGivenUpAfterATtlAndRejoinedWhenItAnswers) {
  PrismdProcess a(node(redis, "node-a"));
  ASSERT_TRUE(a.ready()) << a.log();
  ASSERT_TRUE(eventually([&] { return cluster_state(a) == "ok"; }));
  redis.pause();
  ASSERT_TRUE(eventually([&] { return cluster_state(a) == "degraded"; }));
  redis.resume();
  ASSERT_TRUE(eventually([&] { return cluster_state(a) == "ok"; }));
  EXPECT_EQ(ids_of(cluster_nodes(a)), std::set<std::string>{"node-a"});
}

// Practice presence lives in the store's presence facet (docs/practice.md): with the store
// on the cluster's Redis, a player who joined through node A is online as node B sees
// it, and gone within the TTL once nothing refreshes it (node A SIGKILLed here).
TEST_F(ClusterRegistry, PracticePresenceIsSeenFromEveryNodeAndExpiresWithItsTtl) {
  namespace pb = ::prism::practice::v1;
  constexpr uint32_t kRange = 1000;  // docs/practice.md §2
  auto practice_node = [&](const std::string& id) {
    PrismdOptions options = node(redis, id);
    options.extra_yaml += "store:\n  backend: redis\n  redis:\n    address: 127.0.0.1:" +
                          std::to_string(redis.port()) + "\n";
    options.plugin_configs["practice"] = "settings:\n  presence_ttl_s: 1\n";
    return options;
  };
  PrismdProcess a(practice_node("node-a")), b(practice_node("node-b"));
  ASSERT_TRUE(a.ready() && b.ready()) << a.log() << b.log();
  auto on_a = admin_session(a);  // the admin login may call every service
  auto on_b = admin_session(b);
  pb::UpsertPlayerRequest ada;
  ada.set_uuid("00000000-0000-4000-8000-000000000001");
  ada.set_name("Ada");
  auto upserted = on_a.call(kRange + pb::METHOD_UPSERT_PLAYER, ada.SerializeAsString());
  ASSERT_TRUE(upserted && upserted->status == v1::STATUS_OK) << (upserted ? upserted->message : upserted.error());
  pb::JoinRequest join;
  join.set_uuid(ada.uuid());
  join.set_server("eu-1");
  join.set_queue("sumo");
  auto joined = on_a.call(kRange + pb::METHOD_JOIN, join.SerializeAsString());
  ASSERT_TRUE(joined && joined->status == v1::STATUS_OK) << (joined ? joined->message : joined.error());

  pb::PlayerRequest who;
  who.set_uuid(ada.uuid());
  auto seen = on_b.call(kRange + pb::METHOD_GET_PRESENCE, who.SerializeAsString());
  ASSERT_TRUE(seen && seen->status == v1::STATUS_OK) << (seen ? seen->message : seen.error());
  pb::Presence presence;
  ASSERT_TRUE(presence.ParseFromString(seen->payload));
  EXPECT_EQ(presence.server(), "eu-1");
  EXPECT_EQ(presence.queue(), "sumo");

  a.stop(SIGKILL);  // nothing refreshes Ada's presence any more
  EXPECT_TRUE(eventually([&] {
    auto r = on_b.call(kRange + pb::METHOD_GET_PRESENCE, who.SerializeAsString());
    return r && r->status == v1::STATUS_NOT_FOUND;
  }));
}

}  // namespace
}  // namespace prism::testing
