// Rooms across a cluster (docs/rooms.md "In a cluster", plugin.h "Across a cluster"):
// three prismd nodes on loopback sharing one throwaway redis-server as bus, registry and
// store. An instance is served by the node that holds its lease; sockets on the other
// nodes are forwarded there, hear its broadcasts through topics and its presence from
// every node, and when the serving node dies another takes the instance over from
// storage, its history intact.
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/eventually.hpp"
#include "support/http_client.hpp"
#include "support/redis_server.hpp"
#include "support/ws_client.hpp"

namespace prism::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const json kGame = {{"id", "game-1"},
                    {"type", "match"},
                    {"name", "Match one"},
                    {"channels", {{{"name", "chat"}, {"type", "accumulative"}}}}};

// A node with the WebSocket gateway, the store on the cluster's Redis (what one node
// acknowledged, another can load) and the registry's short test timings (cluster_test).
PrismdOptions room_node(const RedisServer& redis, const std::string& id) {
  PrismdOptions options;
  options.workers = 2;
  const std::string address = "127.0.0.1:" + std::to_string(redis.port());
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n"
                       "cluster:\n  redis:\n    address: " + address +
                       "\n  node_id: " + id + "\n  heartbeat_ms: 200\n  ttl_ms: 1200\n"
                       "store:\n  backend: redis\n  redis:\n    address: " + address + "\n";
  return options;
}

std::string auth(const PrismdProcess& prismd) { return "Authorization: Bearer " + prismd.admin_token() + "\r\n"; }

// The next frame on `ws` that is not presence (which interleaves with everything).
json next_not_presence(WsClient& ws) {
  for (;;) {
    json m = ws.next_json();
    if (m.is_null() || (m[3] != "presence_state" && m[3] != "presence_diff")) return m;
  }
}

// The next frame of `event` on `ws`, skipping the others; null if the socket closed.
json next_event(WsClient& ws, const std::string& event) {
  for (;;) {
    json m = ws.next_json();
    if (m.is_null() || m[3] == event) return m;
  }
}

json join(WsClient& ws, const std::string& channel, const std::string& ref) {
  ws.send(json::array({ref, ref, channel, "phx_join", json::object()}));
  return next_not_presence(ws);
}

// Users in a presence_diff's joins (or leaves).
std::set<std::string> users_in(const json& diff, const char* side) {
  std::set<std::string> users;
  for (const auto& [user, metas] : diff[4][side].items()) users.insert(user);
  return users;
}

class ClusterRooms : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_EQ(redis.start(), "");
    a = std::make_unique<PrismdProcess>(room_node(redis, "node-a"));
    ASSERT_TRUE(a->ready()) << a->log();
    // Made on node A: A holds its lease and serves it.
    const HttpReply made = http_request(a->http_port(), "POST", "/api/instances", kGame.dump(), auth(*a));
    ASSERT_EQ(made.status, 200) << made.body << a->log();
    b = std::make_unique<PrismdProcess>(room_node(redis, "node-b"));
    c = std::make_unique<PrismdProcess>(room_node(redis, "node-c"));
    ASSERT_TRUE(b->ready() && c->ready()) << b->log() << c->log();
  }
  std::string socket_path(const std::string& user) { return "/socket/game-1/websocket?vsn=2.0.0&userId=" + user; }

  RedisServer redis;
  std::unique_ptr<PrismdProcess> a, b, c;
};

// alice's socket is on node B, bob's on node C, the instance on node A: both join, see
// each other arrive (presence_diff from the other node), and a message alice pushes is
// acknowledged to her and reaches bob as a broadcast, not her (broadcast_from across
// nodes). Any node lists and shows the instance.
TEST_F(ClusterRooms, SocketsOnTwoNodesChatInARoomAThirdServes) {
  WsClient alice(b->http_port(), socket_path("alice"));
  WsClient bob(c->http_port(), socket_path("bob"));
  ASSERT_TRUE(alice.upgraded() && bob.upgraded());
  const json joined = join(alice, "chat", "1");
  ASSERT_EQ(joined[4]["status"], "ok") << joined << b->log();
  EXPECT_EQ(joined[4]["response"], json::parse(R"({"type":"accumulative","state":[]})"));
  const json state = next_event(alice, "presence_state");
  EXPECT_TRUE(state[4].contains("alice")) << state;
  ASSERT_EQ(join(bob, "chat", "1")[4]["status"], "ok") << c->log();
  // bob joined through node C; alice, on B, hears it from A.
  json diff = next_event(alice, "presence_diff");
  while (!diff.is_null() && !users_in(diff, "joins").contains("bob")) diff = next_event(alice, "presence_diff");
  ASSERT_FALSE(diff.is_null()) << "no presence_diff with bob's join";

  alice.send(json::array({"1", "2", "chat", "push", {{"text", "hi bob"}}}));
  const json ack = next_not_presence(alice);
  ASSERT_EQ(ack[4]["status"], "ok") << ack << b->log();
  EXPECT_EQ(ack[4]["response"]["applied"]["id"], 1);
  const json msg = next_not_presence(bob);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["user"], "alice");
  EXPECT_EQ(msg[4]["payload"], json({{"text", "hi bob"}}));
  // alice's next frame answers her heartbeat: her own message did not come back to her.
  alice.send(json::array({nullptr, "h", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(next_not_presence(alice)[1], "h");

  // Every node lists it; node C's show is node A's answer (two users there now).
  const HttpReply list = http_request(c->http_port(), "GET", "/api/instances", {}, auth(*c));
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(json::parse(list.body)["instances"][0]["id"], "game-1");
  const HttpReply shown = http_request(c->http_port(), "GET", "/api/instances/game-1", {}, auth(*c));
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(json::parse(shown.body)["users"], 2) << shown.body;

  // bob's socket closes on node C: alice hears him leave.
  bob.close();
  diff = next_event(alice, "presence_diff");
  while (!diff.is_null() && !users_in(diff, "leaves").contains("bob")) diff = next_event(alice, "presence_diff");
  EXPECT_FALSE(diff.is_null()) << "no presence_diff with bob's leave";
}

// Node A, which serves the instance, is SIGKILLed: once its entry expires the sockets on
// B and C hear phx_error (their clients join again), a join takes the lease on one of
// them, which loads the instance from storage: every acknowledged message is there, and
// the chat goes on.
TEST_F(ClusterRooms, WhenTheServingNodeDiesAnotherTakesTheRoomOverWithItsHistory) {
  WsClient alice(b->http_port(), socket_path("alice"));
  WsClient bob(c->http_port(), socket_path("bob"));
  ASSERT_TRUE(alice.upgraded() && bob.upgraded());
  ASSERT_EQ(join(alice, "chat", "1")[4]["status"], "ok") << b->log();
  ASSERT_EQ(join(bob, "chat", "1")[4]["status"], "ok") << c->log();
  for (const std::string text : {"one", "two"}) {
    alice.send(json::array({"1", text, "chat", "push", {{"text", text}}}));
    const json ack = next_not_presence(alice);
    ASSERT_EQ(ack[4]["status"], "ok") << ack;
    ASSERT_EQ(next_not_presence(bob)[3], "msg");
  }

  a->stop(SIGKILL);
  for (WsClient* ws : {&alice, &bob}) {
    const json error = next_event(*ws, "phx_error");
    ASSERT_FALSE(error.is_null()) << "no phx_error after the serving node died\n" << b->log() << c->log();
    EXPECT_EQ(error[2], "chat");
  }
  // What the stock client does next: join again, with a new join_ref.
  const json rejoined = join(alice, "chat", "3");
  ASSERT_EQ(rejoined[4]["status"], "ok") << rejoined << b->log();
  const json history = rejoined[4]["response"]["state"];
  ASSERT_EQ(history.size(), 2u) << history;
  EXPECT_EQ(history[0]["payload"]["text"], "one");
  EXPECT_EQ(history[1]["payload"]["text"], "two");
  ASSERT_EQ(join(bob, "chat", "3")[4]["status"], "ok") << c->log();
  // Logged before the join was answered: already in one node's output.
  EXPECT_TRUE(b->wait_for_log("instance taken over id=game-1", 500ms) ||
              c->wait_for_log("instance taken over id=game-1", 500ms))
      << b->log() << c->log();

  bob.send(json::array({"3", "4", "chat", "push", {{"text", "three"}}}));
  const json ack = next_not_presence(bob);
  ASSERT_EQ(ack[4]["status"], "ok") << ack;
  EXPECT_EQ(ack[4]["response"]["applied"]["id"], 3) << "numbering goes on from the stored history";
  const json msg = next_not_presence(alice);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["payload"], json({{"text", "three"}}));
}

// Node C, where bob's socket is, is SIGKILLed: once its registry entry is gone node A,
// which serves the room, closes bob's stand-in, and alice (on node B) hears him leave.
TEST_F(ClusterRooms, ANodesDeathTakesItsUsersOutOfPresenceOnTheOthers) {
  WsClient alice(b->http_port(), socket_path("alice"));
  WsClient bob(c->http_port(), socket_path("bob"));
  ASSERT_TRUE(alice.upgraded() && bob.upgraded());
  ASSERT_EQ(join(alice, "chat", "1")[4]["status"], "ok");
  ASSERT_EQ(join(bob, "chat", "1")[4]["status"], "ok");
  json diff = next_event(alice, "presence_diff");
  while (!diff.is_null() && !users_in(diff, "joins").contains("bob")) diff = next_event(alice, "presence_diff");
  ASSERT_FALSE(diff.is_null()) << "no presence_diff with bob's join";

  c->stop(SIGKILL);
  // One TTL (1.2 s) and two heartbeats pass first: a heartbeat keeps alice's socket open.
  alice.send(json::array({nullptr, "h", "phoenix", "heartbeat", json::object()}));
  diff = next_event(alice, "presence_diff");
  while (!diff.is_null() && !users_in(diff, "leaves").contains("bob")) diff = next_event(alice, "presence_diff");
  ASSERT_FALSE(diff.is_null()) << "no presence_diff with bob's leave\n" << (a->wait_for_log("~~", 200ms), a->log());
  const HttpReply shown = http_request(b->http_port(), "GET", "/api/instances/game-1", {}, auth(*b));
  EXPECT_EQ(json::parse(shown.body)["users"], 1) << shown.body;
}

// A game server's UDP session on node C joins a channel of the instance node A serves
// (the join request forwarded, its topic received on C first) and hears what a browser on
// node B pushes there.
TEST_F(ClusterRooms, AGameServerOnOneNodeJoinsARoomAnotherServes) {
  constexpr uint32_t kRooms = 1200;  // docs/rooms.md: the service's range
  client::ConnectOptions options;
  options.server_key = c->server_key();
  options.timeout = 5s;
  auto server = client::Client::connect({"127.0.0.1", c->port()}, options);
  ASSERT_TRUE(server) << server.error();
  const auto login = server->login("admin", c->admin_token());
  ASSERT_TRUE(login && login->status == v1::STATUS_OK);
  std::vector<std::string> heard;
  server->on_topic("@game-1/chat", [&](const v1::Message& m) {
    if (m.packet_id() == kRooms + 50) heard.push_back(m.payload());  // msg
  });
  const auto joined = server->call(kRooms + 10, R"({"id":"game-1","channel":"chat","user":"referee"})");
  ASSERT_TRUE(joined && joined->status == v1::STATUS_OK) << (joined ? joined->message : joined.error()) << c->log();

  WsClient alice(b->http_port(), socket_path("alice"));
  ASSERT_TRUE(alice.upgraded());
  ASSERT_EQ(join(alice, "chat", "1")[4]["status"], "ok");
  alice.send(json::array({"1", "2", "chat", "push", {{"text", "ready?"}}}));
  ASSERT_EQ(next_not_presence(alice)[4]["status"], "ok");
  ASSERT_TRUE(eventually([&] {
    if (!server->poll(20ms)) return false;
    return !heard.empty();
  }));
  EXPECT_EQ(json::parse(heard[0])["payload"], json({{"text", "ready?"}}));
}

// redis-server SIGKILLed mid-chat: a push that must cross nodes is answered UNAVAILABLE
// with a reason (nothing hangs, nothing crashes); once Redis is back (its append-only file
// kept every acknowledged write) sockets on B and C chat through node A again.
TEST_F(ClusterRooms, WithRedisGoneAPushAcrossNodesFailsUnavailableAndWorksOnceItIsBack) {
  WsClient alice(b->http_port(), socket_path("alice"));
  ASSERT_TRUE(alice.upgraded());
  ASSERT_EQ(join(alice, "chat", "1")[4]["status"], "ok") << b->log();
  alice.send(json::array({"1", "2", "chat", "push", {{"text", "before"}}}));
  ASSERT_EQ(next_not_presence(alice)[4]["status"], "ok");

  redis.kill();
  ASSERT_TRUE(b->wait_for_log("event=redis_disconnected") || b->wait_for_log("cluster_degraded")) << b->log();
  alice.send(json::array({"1", "3", "chat", "push", {{"text", "while away"}}}));
  const json refused = next_not_presence(alice);
  ASSERT_FALSE(refused.is_null()) << "no answer\n" << (b->wait_for_log("~~", 300ms), b->log());
  ASSERT_EQ(refused[4]["status"], "error") << refused;
  EXPECT_FALSE(refused[4]["response"].value("reason", std::string()).empty()) << refused;

  // The nodes reconnect with backoff: joins are refused (UNAVAILABLE) until then.
  ASSERT_EQ(redis.restart(), "");
  // Fresh sockets (the old ones may have been told to rejoin meanwhile): joined through B
  // and C, served by whichever node holds the lease now, with the history.
  WsClient carol(b->http_port(), socket_path("carol"));
  WsClient dave(c->http_port(), socket_path("dave"));
  ASSERT_TRUE(carol.upgraded() && dave.upgraded());
  // Each try with a new ref, as the stock client's rejoin does.
  int tries = 0;
  json history;
  ASSERT_TRUE(eventually([&] {
    const json r = join(carol, "chat", std::to_string(++tries));
    if (r.is_null() || r[4]["status"] != "ok") return false;  // refused while Redis is away
    history = r[4]["response"].value("state", json());
    return true;
  })) << b->log();
  const std::string carol_ref = std::to_string(tries);
  ASSERT_EQ(history.size(), 1u) << history;
  EXPECT_EQ(history[0]["payload"]["text"], "before");
  ASSERT_TRUE(eventually([&] {
    const json r = join(dave, "chat", std::to_string(++tries));
    return !r.is_null() && r[4]["status"] == "ok";
  })) << c->log();
  carol.send(json::array({carol_ref, "p", "chat", "push", {{"text", "after"}}}));
  ASSERT_EQ(next_not_presence(carol)[4]["status"], "ok");
  const json msg = next_not_presence(dave);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["payload"], json({{"text", "after"}}));
}

}  // namespace
}  // namespace prism::testing
