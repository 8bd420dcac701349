// ABI 1.2 end to end (plugin.h "real time", protocol.md §3.2): a real prismd with two
// workers and the C test plugin `pusher` (tests/plugins/pusher.c); clients on both workers
// receive pushes, topic messages and timer ticks through libprism-client.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "prism/client.h"
#include "prism/plugin.h"
#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/http_client.hpp"
#include "support/plugin_dir.hpp"
#include "support/ws_client.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// pusher's range starts at 6000; what it pushes uses methods 10-13.
constexpr uint32_t kPushMe = 6000, kSubscribe = 6001, kUnsubscribe = 6002, kPublish = 6003,
                   kTicks = 6004, kWatch = 6005, kWhoAmI = 6006, kPushTo = 6007, kEvents = 6008,
                   kPushBig = 6009, kPushOn = 6014;
constexpr uint32_t kPushed = 6010, kPublished = 6011, kTick = 6012, kSaw = 6013;
// sdk_realtime (tests/plugins/sdk_realtime.cpp).
constexpr uint32_t kNap = 6100, kSdkTicks = 6101, kSdkWatch = 6102, kSdkPublish = 6103,
                   kOkMessage = 6104, kSdkTick = 6105, kHeard = 6106;

// Every test's plugins: default, pusher, sdk_realtime and abione (built for ABI 1.0).
class Plugins : public PluginDir {
 public:
  Plugins() : PluginDir({"default.so"}, {"pusher.so", "abi_1_0.so", "sdk_realtime.so"}) {}
};

PrismdOptions options_with(const PluginDir& plugins, std::string server_yaml = {});

// The same with the WebSocket gateway on a free port (ws.listen).
PrismdOptions with_websocket(const PluginDir& plugins) {
  PrismdOptions options = options_with(plugins);
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  return options;
}

PrismdOptions options_with(const PluginDir& plugins, std::string server_yaml) {
  PrismdOptions options;
  options.plugins_dir = plugins.path();
  options.workers = 2;
  options.server_yaml = std::move(server_yaml);
  return options;
}

client::Client connect(const PrismdProcess& prismd) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  options.timeout = 5s;
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  EXPECT_TRUE(c) << c.error();
  return std::move(*c);
}

// A call that must succeed; its payload.
std::string ok(client::Client& c, uint32_t packet_id, std::string_view payload) {
  auto reply = c.call(packet_id, payload);
  EXPECT_TRUE(reply) << reply.error();
  if (!reply) return {};
  EXPECT_EQ(reply->status, v1::STATUS_OK) << packet_id << " " << reply->message;
  return reply->payload;
}

uint64_t session_of(client::Client& c) { return std::stoull(ok(c, kWhoAmI, "")); }
unsigned worker_of(uint64_t session) { return static_cast<unsigned>(session >> 56); }

// Polls `c` until `done` (each poll returns as traffic arrives; the bound only ends a
// broken test).
template <typename Done>
bool poll_until(client::Client& c, Done done, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    if (!c.poll(50ms)) return false;
  }
  return true;
}

// Clients until both workers hold one: the kernel spreads source ports over the
// SO_REUSEPORT sockets, so 64 tries all landing on one worker has odds 2^-63.
std::map<unsigned, client::Client> one_per_worker(const PrismdProcess& prismd) {
  std::map<unsigned, client::Client> by_worker;
  for (int i = 0; i < 64 && by_worker.size() < 2; ++i) {
    client::Client c = connect(prismd);
    const unsigned w = worker_of(session_of(c));
    if (!by_worker.contains(w)) by_worker.emplace(w, std::move(c));
  }
  return by_worker;
}

TEST(PushTest, APushReachesItsSessionBeforeTheReply) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<v1::Message> pushes;
  c.on_push(kPushed, [&](const v1::Message& m) { pushes.push_back(m); });
  ok(c, kPushMe, "hello");
  // Reliable-ordered both ways: the push left first, so it was handed up first.
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushes[0].payload(), "hello");
  EXPECT_FALSE(pushes[0].is_reply());
  EXPECT_TRUE(pushes[0].topic().empty());
  EXPECT_NE(pushes[0].request_id(), 0u);
}

TEST(PushTest, APushReachesASessionOnAnotherWorker) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto clients = one_per_worker(prismd);
  ASSERT_EQ(clients.size(), 2u);
  auto& sender = clients.at(0);
  auto& receiver = clients.at(1);
  std::vector<std::string> got;
  receiver.on_push(kPushed, [&](const v1::Message& m) { got.push_back(m.payload()); });
  const uint64_t target = session_of(receiver);
  for (int i = 0; i < 5; ++i) ok(sender, kPushTo, std::to_string(target) + " m" + std::to_string(i));
  ASSERT_TRUE(poll_until(receiver, [&] { return got.size() == 5; }));
  // One sender's pushes cross through one worker queue: they arrive in order.
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
}

TEST(PushTest, APushToASessionThatIsGoneIsNotFound) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  const uint64_t me = session_of(c);
  // Same worker, an id no session has: the plugin learns at once.
  auto reply = c.call(kPushTo, std::to_string(me ^ 1) + " lost");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_NOT_FOUND);
}

TEST(PushTest, APublishReachesEverySubscriberOnEveryWorkerAndNoOneElse) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto clients = one_per_worker(prismd);
  ASSERT_EQ(clients.size(), 2u);
  auto outsider = connect(prismd);
  std::map<unsigned, std::vector<std::string>> news;
  for (auto& [w, c] : clients) {
    ok(c, kSubscribe, "news");
    c.on_topic("news", [&news, w = w](const v1::Message& m) {
      EXPECT_EQ(m.packet_id(), kPublished);
      news[w].push_back(m.payload());
    });
  }
  int outsider_got = 0;
  outsider.set_push_handler([&](const v1::Message&) { ++outsider_got; });

  ok(clients.at(0), kPublish, "news first");
  ok(clients.at(0), kPublish, "news second");
  for (auto& [w, c] : clients) {
    ASSERT_TRUE(poll_until(c, [&, w = w] { return news[w].size() == 2; })) << "worker " << w;
    EXPECT_EQ(news[w], (std::vector<std::string>{"first", "second"})) << "worker " << w;
  }

  // Unsubscribed, worker 1's client hears "news" no more. Publishes from one worker reach
  // another in order, so once "marker" (a topic it still has) arrives, a third "news"
  // would have arrived before it.
  ok(clients.at(1), kUnsubscribe, "news");
  ok(clients.at(1), kSubscribe, "marker");
  std::vector<std::string> markers;
  clients.at(1).on_topic("marker", [&](const v1::Message& m) { markers.push_back(m.payload()); });
  ok(clients.at(0), kPublish, "news third");
  ok(clients.at(0), kPublish, "marker end");
  ASSERT_TRUE(poll_until(clients.at(1), [&] { return markers.size() == 1; }));
  EXPECT_EQ(news[1].size(), 2u);
  ASSERT_TRUE(poll_until(clients.at(0), [&] { return news[0].size() == 3; }));
  EXPECT_TRUE(outsider.poll(10ms));
  EXPECT_EQ(outsider_got, 0);
}

TEST(PushTest, TimersTickOnTheCallersWorkerAndStop) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<std::string> ticks;
  c.on_push(kTick, [&](const v1::Message& m) { ticks.push_back(m.payload()); });
  const std::string repeating = ok(c, kTicks, "5 5 3");
  EXPECT_NE(repeating, "0");
  ASSERT_TRUE(poll_until(c, [&] { return ticks.size() == 3; }));
  // A one-shot due 50 ms later on the same worker: libuv runs timers in due order, so a
  // fourth tick of the first timer (due 5 ms after the third) would come before it.
  ok(c, kTicks, "50 0 1");
  ASSERT_TRUE(poll_until(c, [&] { return ticks.size() == 4; }));
  EXPECT_EQ(ticks, (std::vector<std::string>{"tick 1", "tick 2", "tick 3", "tick 1"}));
}

// push_topic: the caller alone hears TEXT as a message of the topic (it never subscribed).
TEST(PushTest, APushWithATopicReachesTheSessionAsThatTopicsMessage) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<std::string> heard;
  c.on_topic("news:me", [&](const v1::Message& m) { heard.push_back(m.payload()); });
  EXPECT_EQ(ok(c, kPushOn, "news:me only you"), "0");
  EXPECT_EQ(heard, (std::vector<std::string>{"only you"}));
  EXPECT_EQ(ok(c, kPushOn, "bad\x01topic x"), std::to_string(PRISM_INVALID_ARGUMENT));
}

#ifdef PRISM_HAVE_WS
// On a WebSocket, a push without a topic reaches every channel the socket joined that
// the pushing plugin serves (not another plugin's), and a push_topic that channel alone.
TEST(PushTest, AWebSocketHearsPushesOnThePushingPluginsChannels) {
  Plugins plugins;
  PrismdProcess prismd(with_websocket(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  WsClient ws(prismd.http_port(), "/socket/websocket?vsn=2.0.0");
  ASSERT_TRUE(ws.upgraded());
  for (const char* topic : {"push:a", "push:b", "echo:x"}) {
    ws.send(nlohmann::json::array({topic, "1", topic, "phx_join", nlohmann::json::object()}));
    ASSERT_TRUE(replied_ok(ws.next_json())) << topic;
  }
  ws.send(nlohmann::json::array({"push:b", "2", "push:b", "push_me", {{"hi", 1}}}));
  // Pushed before the reply, on push:a then push:b (the socket's channels in order);
  // method 10 has no name, so the event is "push".
  EXPECT_EQ(ws.next_json(), nlohmann::json::parse(R"(["push:a",null,"push:a","push",{"hi":1}])"));
  EXPECT_EQ(ws.next_json(), nlohmann::json::parse(R"(["push:b",null,"push:b","push",{"hi":1}])"));
  EXPECT_EQ(ws.next_json()[4]["response"], nlohmann::json::parse(R"({"status":0})"));
  ws.send(nlohmann::json::array({"push:b", "3", "push:b", "push_here", {{"hi", 2}}}));
  EXPECT_EQ(ws.next_json(), nlohmann::json::parse(R"(["push:b",null,"push:b","push",{"hi":2}])"));
  EXPECT_EQ(ws.next_json()[4]["response"], nlohmann::json::parse(R"({"status":0})"));
}

// Socket-scoped topics (protocol.md §7.2): on sockets opened at /socket/<id>/websocket, a
// plugin serving "@<id>/..." sees "chat" as "@<id>/chat"; two ids' "chat" never meet, and
// the client knows its topic by its own name.
TEST(PushTest, TopicsOfSocketsWithAnIdAreScopedToThatId) {
  Plugins plugins;
  PrismdProcess prismd(with_websocket(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  WsClient one(prismd.http_port(), "/socket/pusher-1/websocket?vsn=2.0.0");
  WsClient two(prismd.http_port(), "/socket/pusher-2/websocket?vsn=2.0.0");
  ASSERT_TRUE(one.upgraded() && two.upgraded());
  one.send(nlohmann::json::array({"1", "1", "chat", "phx_join", nlohmann::json::object()}));
  EXPECT_EQ(one.next_json(), nlohmann::json::parse(
                                 R"(["1","1","chat","phx_reply",{"status":"ok","response":{"joined":"@pusher-1/chat"}}])"));
  two.send(nlohmann::json::array({"2", "1", "chat", "phx_join", nlohmann::json::object()}));
  EXPECT_EQ(two.next_json()[4]["response"]["joined"], "@pusher-2/chat");
  // A push on "@pusher-1/chat" reaches that socket as "chat".
  one.send(nlohmann::json::array({"1", "2", "chat", "push_here", {{"x", 1}}}));
  EXPECT_EQ(one.next_json(), nlohmann::json::parse(R"(["1",null,"chat","push",{"x":1}])"));
  EXPECT_EQ(one.next_json()[3], "phx_reply");
  // Nothing reached the other id's "chat" (its next frame answers its next request); a
  // client may not name a scoped topic itself.
  two.send(nlohmann::json::array({"2", "2", "@pusher-1/chat", "phx_join", nlohmann::json::object()}));
  EXPECT_EQ(two.next_json(), nlohmann::json::parse(
                                 R"(["2","2","@pusher-1/chat","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}])"));
  // On a socket without an id, or one no plugin scopes, topics are as written.
  WsClient plain(prismd.http_port(), "/socket/other/websocket?vsn=2.0.0");
  ASSERT_TRUE(plain.upgraded());
  plain.send(nlohmann::json::array({"3", "1", "push:z", "phx_join", nlohmann::json::object()}));
  EXPECT_EQ(plain.next_json()[4]["response"]["joined"], "push:z");
}

// HTTP routes (plugin.h PRISM_CHANNEL_HTTP): a request on a path the plugin's "/pusher/*"
// matches is its request, with the method, the body, the query and who asks; its
// status is the HTTP status.
TEST(PushTest, AnHttpRouteIsAnsweredByThePluginThatServesIt) {
  Plugins plugins;
  PrismdProcess prismd(with_websocket(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  const HttpReply created =
      http_request(port, "POST", "/pusher/things?x=1", R"({"a":1})",
                   "Authorization: Bearer " + prismd.admin_token() + "\r\n");
  ASSERT_EQ(created.status, 200) << created.headers;
  EXPECT_NE(created.headers.find("content-type: application/json"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(created.body),
            nlohmann::json({{"method", "POST"},
                            {"path", "/pusher/things"},
                            {"connect", {{"params", {{"x", "1"}}}, {"admin", true}, {"token", prismd.admin_token()}}},
                            {"body", {{"a", 1}}}}));
  const HttpReply other = http_request(port, "GET", "/pusher/things", {}, "Authorization: Bearer nope\r\n");
  ASSERT_EQ(other.status, 200);
  EXPECT_EQ(nlohmann::json::parse(other.body)["connect"]["admin"], false);
  const HttpReply missing = http_get(port, "/pusher/missing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(nlohmann::json::parse(missing.body), nlohmann::json({{"error", "no such thing"}}));
  EXPECT_EQ(http_request(port, "OPTIONS", "/pusher/things").status, 405);
  EXPECT_EQ(http_get(port, "/elsewhere").status, 404);  // no plugin's route
}
#endif

// The default plugin's tick (106): the same timer pushes a WebSocket hears on its
// channel (websocket_test) reach a UDP session as packet id 106, then stop at the count.
TEST(PushTest, TheDefaultServicesTicksReachAUdpSession) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<std::string> ticks;
  c.on_push(106, [&](const v1::Message& m) { ticks.push_back(m.payload()); });
  EXPECT_EQ(ok(c, 106, R"({"count":3,"every_ms":5})"), R"({"count":3})");
  ASSERT_TRUE(poll_until(c, [&] { return ticks.size() == 3; }));
  EXPECT_EQ(ticks, (std::vector<std::string>{R"({"n":1})", R"({"n":2})", R"({"n":3})"}));
  // A 30 ms nap on the same worker (sdk_realtime): libuv runs timers in due order, so a
  // fourth tick (due 5 ms after the third) would be pushed before the nap's reply.
  EXPECT_EQ(ok(c, kNap, "30"), "slept 0");
  EXPECT_EQ(ticks.size(), 3u);
  auto refused = c.call(106, R"({"count":0})");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, v1::STATUS_INVALID_ARGUMENT);
}

TEST(PushTest, APluginSubscribedToATopicReceivesItsMessages) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto clients = one_per_worker(prismd);
  ASSERT_EQ(clients.size(), 2u);
  std::vector<std::string> seen;
  clients.at(0).on_push(kSaw, [&](const v1::Message& m) { seen.push_back(m.payload()); });
  ok(clients.at(0), kWatch, "alerts");
  // The plugin's subscription reaches the other worker on its next loop turn; a publish
  // from there is heard once it has.
  ASSERT_TRUE(eventually([&] {
    ok(clients.at(1), kPublish, "alerts fire");
    return poll_until(clients.at(0), [&] { return !seen.empty(); }, 200ms);
  }));
  EXPECT_EQ(seen.front(), "saw alerts fire");
}

TEST(PushTest, PluginsHearSessionsOpenAndCloseWithTheReason) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto watcher = connect(prismd);
  {
    auto leaving = connect(prismd);
    ok(leaving, kWhoAmI, "");
  }  // its destructor sends CLOSE
  std::string events;
  ASSERT_TRUE(eventually([&] {
    events = ok(watcher, kEvents, "");
    return events.find("closed=1 ") != std::string::npos;
  })) << events;
  EXPECT_EQ(events.rfind("opened=2 closed=1 last=peer closed the session: ", 0), 0u) << events;
}

TEST(PushTest, AReliablePushBeyondTheBacklogClosesTheSlowSession) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins, "  max_send_backlog: 65536\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  // Five reliable 20 000-byte pushes in one call: nothing can be acknowledged in between,
  // so the fourth meets a full backlog.
  auto reply = c.call(kPushBig, "20000 0 5");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_UNAVAILABLE);  // cut short by the close
  EXPECT_FALSE(c.connected());
  EXPECT_NE(c.close_reason().find("slow consumer: send backlog over 65536 bytes"),
            std::string::npos)
      << c.close_reason();
}

TEST(PushTest, UnreliablePushesBeyondTheBacklogDropTheOldestAndKeepTheSession) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins, "  max_send_backlog: 65536\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<int> numbers;
  c.on_push(kPushed, [&](const v1::Message& m) { numbers.push_back(std::stoi(m.payload())); });
  EXPECT_EQ(ok(c, kPushBig, "1000 2 200"), "0");  // the last push: PRISM_OK
  ASSERT_TRUE(c.connected()) << c.close_reason();
  ASSERT_TRUE(poll_until(c, [&] { return !numbers.empty() && numbers.back() == 200; }));
  // 200 KB queued in one call against a 64 KiB backlog: the oldest went, the newest came.
  EXPECT_LT(numbers.size(), 100u);
  EXPECT_GT(numbers.front(), 100);
}

TEST(PushTest, APluginBuiltForAbi10StillLoadsAndServes) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  auto reply = c.call(980, "");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_EQ(reply->message, "OK");
}

// A version's timers and its own subscriptions end with it (plugin.h, timer_start).
TEST(PushTest, AnUnloadedVersionsTimersStop) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  int ticks = 0;
  c.on_push(kTick, [&](const v1::Message&) { ++ticks; });
  ok(c, kTicks, "5 5 100000");
  ASSERT_TRUE(poll_until(c, [&] { return ticks >= 3; }));
  auto admin = connect(prismd);
  auto login = admin.login("admin", prismd.admin_token());
  ASSERT_TRUE(login && login->status == v1::STATUS_OK);
  ASSERT_TRUE(admin.unload_plugin("pusher"));
  // The version goes once the workers dropped the old routing table; from then on a
  // 50 ms window (ten periods) passes without a tick.
  ASSERT_TRUE(eventually([&] {
    const int before = ticks;
    EXPECT_EQ(ok(c, kNap, "50"), "slept 0");
    return ticks == before;
  }));
  EXPECT_TRUE(prismd.wait_for_log("event=plugin_unloading name=pusher")) << prismd.log();
}

// The C++ SDK: co_await host.sleep resumes the handler on its worker once the time passed.
TEST(PushTest, SdkSleepResumesTheHandlerLater) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ok(c, kNap, "30"), "slept 0");
  // libuv's loop clock counts whole milliseconds: a 30 ms timer may end up to 1 ms short.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 29ms);
}

TEST(PushTest, SdkTimerTicksUntilItsOwnerDropsIt) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<std::string> ticks;
  c.on_push(kSdkTick, [&](const v1::Message& m) { ticks.push_back(m.payload()); });
  EXPECT_EQ(ok(c, kSdkTicks, "3"), "started");
  ASSERT_TRUE(poll_until(c, [&] { return ticks.size() == 3; }));
  // A sleep on the same worker, due well after a fourth tick would be: none comes first.
  EXPECT_EQ(ok(c, kNap, "30"), "slept 0");
  EXPECT_EQ(ticks, (std::vector<std::string>{"tick 1", "tick 2", "tick 3"}));
}

TEST(PushTest, SdkOnTopicHearsTheTopicsThePluginSubscribedTo) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  std::vector<std::string> heard;
  c.on_push(kHeard, [&](const v1::Message& m) { heard.push_back(m.payload()); });
  ok(c, kSdkWatch, "scores");
  // The plugin's subscription reaches this worker on its next loop turn.
  ASSERT_TRUE(eventually([&] {
    ok(c, kSdkPublish, "scores 3-1");
    return poll_until(c, [&] { return !heard.empty(); }, 200ms);
  }));
  EXPECT_EQ(heard.front(), "heard scores 6107 3-1");
}

TEST(PushTest, SdkOkCarriesAStatusMessage) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = connect(prismd);
  auto reply = c.call(kOkMessage, "");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_EQ(reply->message, "ITEMS_OK");
  EXPECT_EQ(reply->payload, "items");
}

// The C API: a callback per packet id and per topic, driven by prism_client_poll.
TEST(PushTest, TheCApiRoutesPushesByTopicThenPacketId) {
  Plugins plugins;
  PrismdProcess prismd(options_with(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  char err[256] = "";
  prism_client_t* c =
      prism_client_open("127.0.0.1", prismd.port(), prismd.server_key_text().c_str(), 5000, err, sizeof err);
  ASSERT_NE(c, nullptr) << err;
  struct Seen {
    std::vector<std::string> by_topic, by_id;
  } seen;
  const prism_client_push_fn record = [](void* user, uint32_t packet_id, const char* topic, size_t topic_len,
              const uint8_t* payload, size_t len) {
      static_cast<std::vector<std::string>*>(user)->push_back(
          std::to_string(packet_id) + "|" + std::string(topic, topic_len) + "|" +
          std::string(reinterpret_cast<const char*>(payload), len));
  };
  ASSERT_EQ(prism_client_on_topic(c, "news", record, &seen.by_topic), 0);
  ASSERT_EQ(prism_client_on_push(c, kPushed, record, &seen.by_id), 0);
  auto call = [&](uint32_t id, std::string_view payload) {
    prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
    EXPECT_EQ(prism_client_call(c, id, reinterpret_cast<const uint8_t*>(payload.data()),
                                payload.size(), &reply), 0) << prism_client_last_error(c);
    EXPECT_EQ(reply.status, 0);
    prism_client_reply_free(&reply);
  };
  call(kSubscribe, "news");
  call(kPublish, "news flash");
  call(kPushMe, "direct");
  for (int i = 0; i < 100 && (seen.by_topic.empty() || seen.by_id.empty()); ++i) {
    ASSERT_EQ(prism_client_poll(c, 50), 0) << prism_client_last_error(c);
  }
  EXPECT_EQ(seen.by_topic, std::vector<std::string>{std::to_string(kPublished) + "|news|flash"});
  EXPECT_EQ(seen.by_id, std::vector<std::string>{std::to_string(kPushed) + "||direct"});
  prism_client_close(c);
}

}  // namespace
}  // namespace prism::testing
