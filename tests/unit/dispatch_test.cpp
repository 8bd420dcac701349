// Dispatch (DESIGN.md §2): routing by packet id, the reply path, deadlines, and the
// promise that every request gets exactly one reply with a status.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <thread>

#include "dispatch/dispatcher.hpp"
#include "support/test_loop.hpp"
#include "plugins/plugin_settings.hpp"
#include "plugins/registry.hpp"
#include "base/token_hash.hpp"
#include "prism/v1/admin.pb.h"

namespace prism::dispatch {
namespace {

const std::filesystem::path kPlugins = PRISM_PLUGIN_DIR;
const std::filesystem::path kTestPlugins = PRISM_TEST_PLUGIN_DIR;

using prism::testing::TestLoop;

struct SentReply {
  uint32_t request_id;
  uint32_t packet_id;
  v1::Status status;
  std::string message;
  std::string payload;
};

class RecordingTransport final : public net::ReplyTransport {
 public:
  static constexpr size_t kMaxPayload = 1200;
  bool send_reply(const net::RequestOrigin&, uint32_t request_id, uint32_t packet_id,
                  v1::Status status, std::string_view message,
                  std::span<const uint8_t> payload) override {
    // Like the real pipeline: a reply larger than a datagram goes out as INTERNAL.
    if (payload.size() > kMaxPayload) {
      replies.push_back({request_id, packet_id, v1::STATUS_INTERNAL, "too large", {}});
      return false;
    }
    replies.push_back({request_id, packet_id, status, std::string(message),
                       std::string(payload.begin(), payload.end())});
    return true;
  }
  net::PushResult send_push(uint64_t, uint32_t, v1::Delivery, std::string_view,
                            std::span<const uint8_t>) override {
    return net::PushResult::kNoSession;
  }
  bool is_open(uint64_t) const override { return false; }
  std::vector<SentReply> replies;
};

class RecordingHostService final : public HostService {
 public:
  void on_host_request(const net::RequestOrigin& origin, const v1::Message& request,
                       net::ReplyTransport& transport, net::LoopAccess&) override {
    ++calls;
    transport.send_reply(origin, request.request_id(), request.packet_id(), v1::STATUS_OK, "host",
                         {});
  }
  int calls = 0;
};

class DispatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto file : {kPlugins / "default.so", kTestPlugins / "deferred.so",
                      kTestPlugins / "pusher.so"}) {
      auto loaded = registry.load(file);
      ASSERT_TRUE(loaded) << loaded.error();
    }
    dispatcher.set_table(registry.table());
    dispatcher.set_host_service(&host);
  }

  // The dispatcher's deadline timer is closed when its worker stops, and nothing else.
  void TearDown() override { EXPECT_EQ(loop.drain_and_close(), 0) << "a uv handle was left open"; }

  void send(uint32_t request_id, uint32_t packet_id, std::string payload = {},
            const net::RequestOrigin& origin = {}) {
    v1::Message m;
    m.set_request_id(request_id);
    m.set_packet_id(packet_id);
    m.set_payload(std::move(payload));
    dispatcher.on_request(origin, m);
  }

  // A LOGIN request from `origin`; returns the reply's status (INTERNAL if none came).
  v1::Status login(uint32_t request_id, std::string service, std::string token,
                   const net::RequestOrigin& origin) {
    v1::LoginRequest login;
    login.set_service(std::move(service));
    login.set_token(std::move(token));
    send(request_id, v1::HOST_LOGIN, login.SerializeAsString(), origin);
    const SentReply* r = reply_to(request_id);
    return r != nullptr ? r->status : v1::STATUS_INTERNAL;
  }

  // What prismd wires: the admin token, plugins.d entries, loopback-only admin.
  void guard_with_admin_token(std::vector<plugins::PluginSettings> plugins = {}) {
    dispatcher.set_login_guard(std::make_unique<plugins::LoginGuard>(
        plugins, prism::token_digest(kAdminToken)));
    dispatcher.set_admin_allow(config::default_admin_allow());
  }

  static constexpr std::string_view kAdminToken = "admin-token-for-dispatch-tests";

  const SentReply* reply_to(uint32_t request_id) const {
    for (const auto& r : transport.replies) {
      if (r.request_id == request_id) return &r;
    }
    return nullptr;
  }

  // Declared first: destroyed last, after the dispatcher has closed its timer.
  TestLoop loop;
  plugins::Registry registry{plugins::HostFacts{"test", 0, 1, ""}};
  RecordingTransport transport;
  RecordingHostService host;
  Dispatcher dispatcher{loop, transport, std::chrono::milliseconds(50)};
};

constexpr uint32_t kEcho = 101;
constexpr uint32_t kHold = 950, kRelease = 951, kFail = 952, kReplyTwice = 953, kTooBig = 954,
                   kLastStatus = 955, kBadPayload = 956, kReservedCounter = 957;

TEST_F(DispatchTest, UnownedPacketIdRepliesInvalidPacket) {
  send(1, 5000);
  ASSERT_EQ(transport.replies.size(), 1u);
  EXPECT_EQ(transport.replies[0].status, v1::STATUS_INVALID_PACKET);
  EXPECT_NE(transport.replies[0].message.find("5000"), std::string::npos);
}

TEST_F(DispatchTest, RequestIsRoutedToTheOwningPlugin) {
  auto& plugin = *registry.table()->find(kEcho)->plugin;
  const uint64_t before = plugin.requests();
  send(7, kEcho, "{\"x\":1}");
  ASSERT_EQ(transport.replies.size(), 1u);
  EXPECT_EQ(transport.replies[0].request_id, 7u);
  EXPECT_EQ(transport.replies[0].packet_id, kEcho);
  EXPECT_EQ(transport.replies[0].status, v1::STATUS_OK);
  EXPECT_EQ(transport.replies[0].payload, "{\"x\":1}");
  EXPECT_EQ(plugin.requests(), before + 1);
  EXPECT_EQ(dispatcher.pending(), 0u);
}

net::RequestOrigin from(uint32_t ipv4, uint64_t connection_id) {
  net::RequestOrigin origin;
  auto* in = reinterpret_cast<sockaddr_in*>(&origin.peer.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(40000);
  in->sin_addr.s_addr = htonl(ipv4);
  origin.peer.len = sizeof(sockaddr_in);
  origin.connection_id = connection_id;
  return origin;
}

TEST_F(DispatchTest, HostPacketIdsGoToTheHostServiceAfterTheAdminLogin) {
  guard_with_admin_token();
  const auto local = from(INADDR_LOOPBACK, 7);
  send(2, 1, {}, local);
  EXPECT_EQ(host.calls, 0);
  EXPECT_EQ(reply_to(2)->status, v1::STATUS_LOGIN_REQUIRED);
  ASSERT_EQ(login(3, "admin", std::string(kAdminToken), local), v1::STATUS_OK);
  send(4, 1, {}, local);
  EXPECT_EQ(host.calls, 1);
  ASSERT_NE(reply_to(4), nullptr);
  EXPECT_EQ(reply_to(4)->message, "host");
}

// Whatever the login table holds: without a guard there is no admin token, so no admin.
TEST_F(DispatchTest, HostRequestsNeedTheAdminLoginEvenWithoutALoginGuard) {
  const auto local = from(INADDR_LOOPBACK, 7);
  EXPECT_EQ(login(1, "admin", "anything", local), v1::STATUS_INVALID_CREDENTIALS);
  send(2, 1, {}, local);
  EXPECT_EQ(reply_to(2)->status, v1::STATUS_LOGIN_REQUIRED);
  send(3, 5, {}, from(0x0a000001, 8));  // HOST_UNLOAD_PLUGIN from anywhere
  EXPECT_EQ(reply_to(3)->status, v1::STATUS_LOGIN_REQUIRED);
  EXPECT_EQ(host.calls, 0);
}

// The review: with an empty plugins.d/admin.yaml a session from outside admin.allow read
// status and unloaded `default` without logging in, and LOGIN admin took any token.
TEST_F(DispatchTest, APluginsDAdminEntryDoesNotOpenTheAdminService) {
  plugins::PluginSettings admin_entry;
  admin_entry.name = "admin";  // no token: an "open service" in the login table
  guard_with_admin_token({admin_entry});
  const auto outside = from(0x0a000001, 9);
  send(1, 2, {}, outside);  // HOST_SERVER_STATUS
  EXPECT_EQ(reply_to(1)->status, v1::STATUS_LOGIN_REQUIRED);
  const auto local = from(INADDR_LOOPBACK, 10);
  EXPECT_EQ(login(2, "admin", "any token", local), v1::STATUS_INVALID_CREDENTIALS);
  send(3, 5, {}, local);  // HOST_UNLOAD_PLUGIN
  EXPECT_EQ(reply_to(3)->status, v1::STATUS_LOGIN_REQUIRED);
  EXPECT_EQ(host.calls, 0);
}

// admin.allow was checked at LOGIN only: a session that moved kept its admin powers.
TEST_F(DispatchTest, AdminAllowIsCheckedOnEveryHostRequest) {
  guard_with_admin_token();
  ASSERT_EQ(login(1, "admin", std::string(kAdminToken), from(INADDR_LOOPBACK, 11)),
            v1::STATUS_OK);
  send(2, 1, {}, from(INADDR_LOOPBACK, 11));
  EXPECT_EQ(host.calls, 1);
  send(3, 1, {}, from(0x0a000001, 11));  // the same session, now from 10.0.0.1
  EXPECT_EQ(reply_to(3)->status, v1::STATUS_INVALID_CREDENTIALS);
  EXPECT_EQ(reply_to(3)->message,
            "admin requests are not accepted from this address (admin.allow in the server's "
            "config)");
  EXPECT_EQ(host.calls, 1);
  // A LOGIN from there is refused before the token is looked at.
  EXPECT_EQ(login(4, "admin", std::string(kAdminToken), from(0x0a000001, 12)),
            v1::STATUS_INVALID_CREDENTIALS);
  EXPECT_EQ(reply_to(4)->message,
            "admin logins are not accepted from this address (admin.allow in the server's "
            "config)");
}

// The admin session may call every service (prismctl rooms ...), from an address in
// admin.allow at the time of each request; any other session still needs its login.
TEST_F(DispatchTest, TheAdminSessionMayCallAServiceWithAToken) {
  plugins::PluginSettings guarded;
  guarded.name = "default";
  guarded.token = prism::token_digest("service-token");
  guard_with_admin_token({guarded});
  send(1, kEcho, "x", from(INADDR_LOOPBACK, 21));
  EXPECT_EQ(reply_to(1)->status, v1::STATUS_LOGIN_REQUIRED);
  ASSERT_EQ(login(2, "admin", std::string(kAdminToken), from(INADDR_LOOPBACK, 21)), v1::STATUS_OK);
  send(3, kEcho, "x", from(INADDR_LOOPBACK, 21));
  EXPECT_EQ(reply_to(3)->status, v1::STATUS_OK);
  send(4, kEcho, "x", from(0x0a000001, 21));  // the same session, now from 10.0.0.1
  EXPECT_EQ(reply_to(4)->status, v1::STATUS_LOGIN_REQUIRED);
}

// Channels (plugin.h, "Channels"): routed by topic to the plugin that serves it, answered
// through the transport with the gateway's request id and packet id 0.
TEST_F(DispatchTest, AChannelJoinIsRoutedByTopicAndAnsweredWithThePluginsReply) {
  dispatcher.on_channel({}, 7, net::ChannelKind::kJoin, "push:42", "phx_join", "{}", "{}");
  const SentReply* join = reply_to(7);
  ASSERT_NE(join, nullptr);
  EXPECT_EQ(join->status, v1::STATUS_OK);
  EXPECT_EQ(join->packet_id, 0u);
  EXPECT_EQ(join->payload, R"({"joined":"push:42"})");
  dispatcher.on_channel({}, 8, net::ChannelKind::kEvent, "push:42", "echo", R"({"n":1})", "{}");
  ASSERT_NE(reply_to(8), nullptr);
  EXPECT_EQ(reply_to(8)->payload, R"({"n":1})");
}

TEST_F(DispatchTest, ARefusedJoinOrEventCarriesThePluginsReason) {
  dispatcher.on_channel({}, 9, net::ChannelKind::kJoin, "push:closed", "phx_join", "{}", "{}");
  ASSERT_NE(reply_to(9), nullptr);
  EXPECT_EQ(reply_to(9)->status, v1::STATUS_CONFLICT);
  EXPECT_EQ(reply_to(9)->message, "room is closed");
  dispatcher.on_channel({}, 10, net::ChannelKind::kEvent, "push:42", "dance", "{}", "{}");
  ASSERT_NE(reply_to(10), nullptr);
  EXPECT_EQ(reply_to(10)->status, v1::STATUS_NOT_FOUND);
  EXPECT_EQ(reply_to(10)->message, "no event dance");
}

TEST_F(DispatchTest, ATopicNoPluginServesIsUnmatched) {
  dispatcher.on_channel({}, 11, net::ChannelKind::kJoin, "room:1", "phx_join", "{}", "{}");
  ASSERT_NE(reply_to(11), nullptr);
  EXPECT_EQ(reply_to(11)->status, v1::STATUS_NOT_FOUND);
  EXPECT_EQ(reply_to(11)->message, "unmatched topic");
}

TEST_F(DispatchTest, FailureStatusIsSentWhenThePluginDoesNotReply) {
  auto& plugin = *registry.table()->find(kFail)->plugin;
  const uint64_t errors = plugin.errors();
  send(4, kFail);
  ASSERT_NE(reply_to(4), nullptr);
  EXPECT_EQ(reply_to(4)->status, v1::STATUS_CONFLICT);
  EXPECT_EQ(plugin.errors(), errors + 1);
}

TEST_F(DispatchTest, HeldRequestIsAnsweredWhenThePluginReplies) {
  send(10, kHold);
  EXPECT_EQ(reply_to(10), nullptr);
  EXPECT_EQ(dispatcher.pending(), 1u);
  send(11, kRelease);
  ASSERT_NE(reply_to(10), nullptr);
  EXPECT_EQ(reply_to(10)->payload, "released");
  ASSERT_NE(reply_to(11), nullptr);
  EXPECT_EQ(reply_to(11)->status, v1::STATUS_OK);
  EXPECT_EQ(dispatcher.pending(), 0u);
}

TEST_F(DispatchTest, UnansweredRequestGetsTimeoutAndTheLateReplyIsDropped) {
  send(20, kHold);
  ASSERT_TRUE(loop.run_until([&] { return reply_to(20) != nullptr; }));
  EXPECT_EQ(reply_to(20)->status, v1::STATUS_TIMEOUT);
  EXPECT_EQ(dispatcher.pending(), 0u);
  // The plugin answers late: the host tells it so, and the requester hears nothing more.
  send(21, kRelease);
  ASSERT_NE(reply_to(21), nullptr);
  EXPECT_EQ(reply_to(21)->status, v1::STATUS_TIMEOUT);
  int answers_to_20 = 0;
  for (const auto& r : transport.replies) answers_to_20 += r.request_id == 20;
  EXPECT_EQ(answers_to_20, 1);
}

TEST_F(DispatchTest, SecondReplyToOneRequestIsRefused) {
  send(30, kReplyTwice);
  int answers = 0;
  for (const auto& r : transport.replies) answers += r.request_id == 30;
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(reply_to(30)->status, v1::STATUS_OK);
}

TEST_F(DispatchTest, ReplyTooLargeIsAnsweredInternalAndRefusedToThePlugin) {
  auto& plugin = *registry.table()->find(kTooBig)->plugin;
  const uint64_t errors = plugin.errors();
  send(60, kTooBig);
  ASSERT_NE(reply_to(60), nullptr);
  EXPECT_EQ(reply_to(60)->status, v1::STATUS_INTERNAL);
  EXPECT_EQ(plugin.errors(), errors + 1);
  send(61, kLastStatus);
  ASSERT_NE(reply_to(61), nullptr);
  EXPECT_EQ(reply_to(61)->payload, std::to_string(PRISM_INVALID_ARGUMENT));
}

TEST_F(DispatchTest, InvalidPayloadIsAnsweredAtOnceNotLeftToTimeOut) {
  send(62, kBadPayload);
  ASSERT_NE(reply_to(62), nullptr);
  EXPECT_EQ(reply_to(62)->status, v1::STATUS_INTERNAL);
  EXPECT_EQ(dispatcher.pending(), 0u);
  send(63, kLastStatus);
  EXPECT_EQ(reply_to(63)->payload, std::to_string(PRISM_INVALID_ARGUMENT));
}

TEST_F(DispatchTest, PluginCannotRegisterTheHostsOwnCounters) {
  send(64, kReservedCounter);
  ASSERT_NE(reply_to(64), nullptr);
  EXPECT_EQ(reply_to(64)->status, v1::STATUS_OK);
}

TEST_F(DispatchTest, NewTableTakesEffectForTheNextRequest) {
  ASSERT_TRUE(registry.unload("default"));
  dispatcher.set_table(registry.table());
  send(40, kEcho);
  ASSERT_NE(reply_to(40), nullptr);
  EXPECT_EQ(reply_to(40)->status, v1::STATUS_INVALID_PACKET);
}

TEST_F(DispatchTest, PendingRequestKeepsItsPluginVersionLoaded) {
  std::weak_ptr<plugins::LoadedPlugin> deferred = registry.table()->find(kHold)->plugin;
  send(50, kHold);
  ASSERT_TRUE(registry.unload("deferred"));
  dispatcher.set_table(registry.table());
  EXPECT_FALSE(deferred.expired());  // the held request still needs it
}

}  // namespace
}  // namespace prism::dispatch
