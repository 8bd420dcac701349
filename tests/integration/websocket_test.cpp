// The WebSocket gateway (host/ws/gateway.hpp) through a real prismd with two workers,
// driven by a small WebSocket client of the tests' own (support/ws_client.hpp) speaking
// Phoenix Channels v2 JSON to the default plugin's echo:* channels.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/plugin_dir.hpp"
#include "support/ws_client.hpp"

namespace prism::testing {
namespace {

using nlohmann::json;

// The default plugin alone: with rooms loaded, every socket opened at /socket/<id>/ would
// be an instance's (protocol.md §7.2), and these tests use echo:* on such sockets.
const PluginDir& default_only() {
  static const PluginDir dir({"default.so"});
  return dir;
}

PrismdOptions with_websocket(std::string more = {}) {
  PrismdOptions options;
  options.plugins_dir = default_only().path();
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n" + more;
  return options;
}

constexpr const char* kSocket = "/socket/websocket?vsn=2.0.0";

class WebSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    port = prismd.http_port();
    ASSERT_NE(port, 0) << prismd.log();
  }
  PrismdProcess prismd{with_websocket()};
  uint16_t port = 0;
};

TEST_F(WebSocketTest, HeartbeatIsAnsweredOnThePhoenixTopic) {
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded()) << ws.status_line();
  ws.send(json::array({nullptr, "1", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(ws.next_json(), json::parse(R"([null,"1","phoenix","phx_reply",{"status":"ok","response":{}}])"));
}

TEST_F(WebSocketTest, JoinThenAnEventGetTheChannelsReplies) {
  WsClient ws(port, "/socket/room7/websocket?vsn=2.0.0");
  ASSERT_TRUE(ws.upgraded()) << ws.status_line();
  ws.send(json::array({"1", "1", "echo:lobby", "phx_join", json::object()}));
  EXPECT_EQ(ws.next_json(),
            json::parse(R"(["1","1","echo:lobby","phx_reply",{"status":"ok","response":{"topic":"echo:lobby"}}])"));
  ws.send(json::array({"1", "2", "echo:lobby", "echo", {{"n", 42}}}));
  EXPECT_EQ(ws.next_json(),
            json::parse(R"(["1","2","echo:lobby","phx_reply",{"status":"ok","response":{"n":42}}])"));
  ws.send(json::array({"1", "3", "echo:lobby", "dance", json::object()}));
  EXPECT_EQ(ws.next_json()[4],
            json::parse(R"json({"status":"error","response":{"reason":"no event dance (echo, shout, tick, socket)"}})json"));
}

TEST_F(WebSocketTest, AnUnknownTopicIsRefusedWithAReason) {
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  ws.send(json::array({"5", "5", "nosuch:1", "phx_join", json::object()}));
  EXPECT_EQ(ws.next_json()[4],
            json::parse(R"({"status":"error","response":{"reason":"unmatched topic"}})"));
  // An event on a topic the socket never joined: the same answer, nothing routed.
  ws.send(json::array({"6", "6", "echo:lobby", "echo", json::object()}));
  EXPECT_EQ(ws.next_json()[4]["response"]["reason"], "unmatched topic");
}

// A shout reaches every socket on the topic, whichever worker holds it, with the
// socket's own join_ref, and a UDP client's publish (default.shout, 105) reaches them too.
TEST_F(WebSocketTest, AShoutReachesEverySocketOnTheTopic) {
  WsClient a(port, kSocket), b(port, kSocket);
  ASSERT_TRUE(a.upgraded() && b.upgraded());
  a.send(json::array({"a1", "1", "echo:hall", "phx_join", json::object()}));
  ASSERT_TRUE(replied_ok(a.next_json()));
  b.send(json::array({"b1", "1", "echo:hall", "phx_join", json::object()}));
  ASSERT_TRUE(replied_ok(b.next_json()));
  a.send(json::array({"a1", "2", "echo:hall", "shout", {{"hello", "all"}}}));
  // a hears its shout and its reply (in either order: the broadcast is posted).
  json first = a.next_json(), second = a.next_json();
  if (first[3] == "phx_reply") std::swap(first, second);
  EXPECT_EQ(first, json::parse(R"(["a1",null,"echo:hall","shout",{"hello":"all"}])"));
  EXPECT_EQ(second[3], "phx_reply");
  EXPECT_EQ(b.next_json(), json::parse(R"(["b1",null,"echo:hall","shout",{"hello":"all"}])"));

  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  auto udp = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  ASSERT_TRUE(udp) << udp.error();
  auto reply = udp->call(105, R"({"topic":"echo:hall","message":{"from":"udp"}})");
  ASSERT_TRUE(reply && reply->status == v1::STATUS_OK);
  EXPECT_EQ(b.next_json(), json::parse(R"(["b1",null,"echo:hall","shout",{"from":"udp"}])"));
}

TEST_F(WebSocketTest, LeavingRepliesAndClosesTheChannel) {
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  ws.send(json::array({"1", "1", "echo:x", "phx_join", json::object()}));
  ASSERT_TRUE(replied_ok(ws.next_json()));
  ws.send(json::array({"1", "2", "echo:x", "phx_leave", json::object()}));
  EXPECT_EQ(ws.next_json(), json::parse(R"(["1","2","echo:x","phx_reply",{"status":"ok","response":{}}])"));
  EXPECT_EQ(ws.next_json(), json::parse(R"(["1","1","echo:x","phx_close",{}])"));
  ws.send(json::array({"1", "3", "echo:x", "echo", json::object()}));
  EXPECT_EQ(ws.next_json()[4]["response"]["reason"], "unmatched topic");
}

// A server push without a request (a timer in the default plugin, host.push_topic to
// the session): it reaches the socket on the channel it was asked on, and on no other,
// with the method's name as the event.
TEST_F(WebSocketTest, ATimersPushesReachTheSocketOnItsChannel) {
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  for (const char* topic : {"echo:clock", "echo:other"}) {
    ws.send(json::array({"j", "1", topic, "phx_join", json::object()}));
    ASSERT_TRUE(replied_ok(ws.next_json()));
  }
  ws.send(json::array({"j", "2", "echo:clock", "tick", {{"count", 3}, {"every_ms", 5}}}));
  EXPECT_EQ(ws.next_json(),
            json::parse(R"(["j","2","echo:clock","phx_reply",{"status":"ok","response":{"count":3}}])"));
  for (int n = 1; n <= 3; ++n) {
    EXPECT_EQ(ws.next_json(), json::array({"j", nullptr, "echo:clock", "tick", {{"n", n}}}));
  }
  // Nothing went to echo:other: the next frame is the answer to this heartbeat.
  ws.send(json::array({nullptr, "h", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(ws.next_json()[1], "h");
}

// plugin.h prism_channel_message_t.connect: the path's <id>, the query parameters
// (decoded) and the token of the stock client's authToken sub-protocol.
TEST_F(WebSocketTest, TheConnectParamsAndBearerTokenReachThePlugin) {
  // "secret token" in base64 without padding, as the stock client's authToken sends it.
  WsClient ws(port, "/socket/room-9/websocket?vsn=2.0.0&user=ada%20l&empty=",
              "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.c2VjcmV0IHRva2Vu\r\n");
  ASSERT_TRUE(ws.upgraded()) << ws.status_line();
  // RFC 6455 §4.2.2: the server picks one of the offered sub-protocols.
  EXPECT_NE(ws.response_headers().find("sec-websocket-protocol: phoenix\r\n"), std::string::npos)
      << ws.response_headers();
  ws.send(json::array({"1", "1", "echo:me", "phx_join", json::object()}));
  ASSERT_TRUE(replied_ok(ws.next_json()));
  ws.send(json::array({"1", "2", "echo:me", "socket", json::object()}));
  EXPECT_EQ(ws.next_json()[4]["response"],
            json::parse(R"({"socket":"room-9","params":{"vsn":"2.0.0","user":"ada l","empty":""},
                            "token":"secret token"})"));

  WsClient plain(port, kSocket);
  ASSERT_TRUE(plain.upgraded());
  EXPECT_EQ(plain.response_headers().find("sec-websocket-protocol"), std::string::npos);
  plain.send(json::array({"1", "1", "echo:me", "phx_join", json::object()}));
  ASSERT_TRUE(replied_ok(plain.next_json()));
  plain.send(json::array({"1", "2", "echo:me", "socket", json::object()}));
  EXPECT_EQ(plain.next_json()[4]["response"], json::parse(R"({"params":{"vsn":"2.0.0"}})"));
}

TEST_F(WebSocketTest, AMalformedFrameClosesTheSocketWithTheReason) {
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  ws.send_text("this is not a phoenix frame");
  EXPECT_EQ(ws.next(), std::nullopt);
  EXPECT_EQ(ws.close_code(), 1007);
  EXPECT_EQ(ws.close_reason(), "malformed frame: not JSON");
  // The server goes on serving everyone else.
  WsClient other(port, kSocket);
  ASSERT_TRUE(other.upgraded());
  other.send(json::array({nullptr, "1", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(other.next_json()[3], "phx_reply");
}

TEST_F(WebSocketTest, OnlySocketPathsUpgrade) {
  WsClient ws(port, "/elsewhere");
  EXPECT_FALSE(ws.upgraded()) << ws.status_line();
}

TEST(WebSocketLimits, AnOversizedMessageClosesTheSocket) {
  PrismdProcess prismd(with_websocket("  max_frame_bytes: 1024\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  ws.send(json::array({"1", "1", "echo:x", "phx_join", {{"pad", std::string(2000, 'x')}}}));
  EXPECT_EQ(ws.next(), std::nullopt);
  EXPECT_EQ(ws.close_code(), 1009);
  EXPECT_EQ(ws.close_reason(), "message too large");
}

// ws.max_connections and ws.max_connections_per_ip (one worker: its share is the whole).
TEST(WebSocketLimits, UpgradesBeyondTheConnectionLimitsAreRefused) {
  for (const char* key : {"max_connections", "max_connections_per_ip"}) {
    SCOPED_TRACE(key);
    PrismdOptions options = with_websocket("  " + std::string(key) + ": 2\n");
    options.workers = 1;
    PrismdProcess prismd(options);
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    const uint16_t port = prismd.http_port();
    WsClient a(port, kSocket), b(port, kSocket);
    ASSERT_TRUE(a.upgraded() && b.upgraded());
    // Both answer, so both are open on the server before the third asks.
    for (WsClient* ws : {&a, &b}) {
      ws->send(json::array({nullptr, "1", "phoenix", "heartbeat", json::object()}));
      ASSERT_EQ(ws->next_json()[3], "phx_reply");
    }
    WsClient c(port, kSocket);
    EXPECT_FALSE(c.upgraded()) << c.status_line();
  }
}

// ws.messages_per_second: beyond the bucket, messages are refused with a reason (and
// reach no plugin); the socket stays open.
TEST(WebSocketLimits, MessagesBeyondTheRateAreRefused) {
  PrismdProcess prismd(with_websocket("  messages_per_second: 5\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  WsClient ws(port, kSocket);
  ASSERT_TRUE(ws.upgraded());
  for (int i = 0; i < 20; ++i) {
    ws.send(json::array({nullptr, std::to_string(i), "phoenix", "heartbeat", json::object()}));
  }
  int ok = 0, limited = 0;
  for (int i = 0; i < 20; ++i) {
    const json reply = ws.next_json();
    ASSERT_FALSE(reply.is_null()) << "the socket was closed";
    if (reply[4]["status"] == "ok") ++ok;
    if (reply[4]["response"].value("reason", "") == "rate limited") ++limited;
  }
  // A burst of 5 passes (plus what refilled while sending); the rest are refused.
  EXPECT_GE(ok, 5);
  EXPECT_GE(limited, 10);
  EXPECT_EQ(ok + limited, 20);
}

// server.max_send_backlog holds for WebSockets too: a socket that reads nothing while a
// topic it joined streams is closed as a slow consumer (the frames would otherwise pile
// up in prismd without bound); the publisher and everyone else go on being served.
TEST(WebSocketLimits, ASocketThatStopsReadingIsClosedAsASlowConsumer) {
  PrismdOptions options = with_websocket("  messages_per_second: 100000\n");
  options.server_yaml = "  max_send_backlog: 65536\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  WsClient slow(port, kSocket, {}, 4096), fast(port, kSocket);
  ASSERT_TRUE(slow.upgraded() && fast.upgraded());
  for (WsClient* ws : {&slow, &fast}) {
    ws->send(json::array({"1", "1", "echo:stream", "phx_join", json::object()}));
    ASSERT_TRUE(replied_ok(ws->next_json()));
  }
  // 300 x 50 KB: more than the kernel's socket buffers can hold for the silent reader.
  const json big = {{"pad", std::string(50000, 'x')}};
  for (int i = 0; i < 300; ++i) {
    fast.send(json::array({"1", std::to_string(i + 2), "echo:stream", "shout", big}));
    int replies = 0, shouts = 0;  // its own shout and the reply, in either order
    while (replies + shouts < 2) {
      const json m = fast.next_json();
      ASSERT_FALSE(m.is_null()) << "the reading socket was closed at shout " << i;
      (m[3] == "phx_reply" ? replies : shouts) += 1;
    }
  }
  EXPECT_TRUE(slow.read_until_closed(std::chrono::seconds(5)));
  EXPECT_TRUE(prismd.wait_for_log("event=ws_slow_consumer")) << prismd.log();
  fast.send(json::array({nullptr, "h", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(fast.next_json()[3], "phx_reply");
}

// ws.idle_timeout_ms: a socket that says nothing is closed; one that heartbeats is not.
TEST(WebSocketLimits, ASilentSocketIsClosedAfterTheIdleTimeout) {
  PrismdProcess prismd(with_websocket("  idle_timeout_ms: 1000\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  WsClient silent(port, kSocket);
  ASSERT_TRUE(silent.upgraded());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(silent.next(), std::nullopt);  // the server ends it; nothing else arrives
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

}  // namespace
}  // namespace prism::testing
