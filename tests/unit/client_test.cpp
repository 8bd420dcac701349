// libprism-client against an in-process server: one net::Worker on 127.0.0.1 speaking the
// secure transport (docs/protocol.md §5), a test RequestHandler for the plugin ids and a
// Dispatcher without a login guard for LOGIN; plus endpoint parsing and status names.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <set>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dispatch/dispatcher.hpp"
#include "net/crypto/key_file.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/session_table.hpp"
#include "net/transport.hpp"
#include "net/worker.hpp"
#include "prism/client.h"
#include "prism/client.hpp"

namespace prism::client {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The test server's packet ids, in the plugin range (protocol.md §4.2).
constexpr uint32_t kEcho = 101;            // replies OK with the request's payload
constexpr uint32_t kNeverAnswered = 102;   // gets no reply, ever
constexpr uint32_t kLargeReply = 103;      // payload: N in decimal; replies N bytes (§5.7)
constexpr uint32_t kStatusAsAsked = 104;   // payload: a status in decimal; replies with it
constexpr uint32_t kWhoAmI = 105;          // replies "<connection id> <peer address>"
constexpr uint32_t kPushThenReply = 106;   // pushes the payload back unasked, then replies OK

// Byte i of a kLargeReply payload, so a reordered or lost fragment shows.
char large_reply_byte(size_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

std::optional<uint64_t> parse_number(std::string_view text) {
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Answers the test ids on the worker's thread; everything else (LOGIN, host ids) goes to a
// real Dispatcher, which has no login guard, no host service and no plugins.
class TestHandler final : public net::RequestHandler {
 public:
  TestHandler(net::ReplyTransport& transport, net::RequestHandler& fallback)
      : transport_(transport), fallback_(fallback) {}

  void on_request(const net::RequestOrigin& origin, const v1::Message& request) override {
    const auto reply = [&](v1::Status status, std::string_view message, std::string_view payload) {
      transport_.send_reply(origin, request.request_id(), request.packet_id(), status, message,
                            bytes_of(payload));
    };
    switch (request.packet_id()) {
      case kEcho:
        reply(v1::STATUS_OK, "", request.payload());
        return;
      case kNeverAnswered:
        never_answered_seen_.fetch_add(1);
        return;
      case kLargeReply: {
        const auto n = parse_number(request.payload());
        if (!n) return reply(v1::STATUS_INVALID_ARGUMENT, "payload must be a size", "");
        std::string payload(*n, '\0');
        for (size_t i = 0; i < payload.size(); ++i) payload[i] = large_reply_byte(i);
        reply(v1::STATUS_OK, "", payload);
        return;
      }
      case kStatusAsAsked: {
        const auto n = parse_number(request.payload());
        if (!n) return reply(v1::STATUS_INVALID_ARGUMENT, "payload must be a status", "");
        reply(static_cast<v1::Status>(*n), "asked for " + request.payload(), "");
        return;
      }
      case kPushThenReply:
        transport_.send_push(origin.connection_id, kPushThenReply, v1::DELIVERY_RELIABLE_ORDERED,
                             {}, bytes_of(request.payload()));
        reply(v1::STATUS_OK, "", "");
        return;
      case kWhoAmI:
        reply(v1::STATUS_OK, "",
              std::to_string(origin.connection_id) + " " + origin.peer.to_string());
        return;
      default:
        fallback_.on_request(origin, request);
    }
  }
  void on_session_closed(uint64_t connection_id, std::string_view reason) override {
    fallback_.on_session_closed(connection_id, reason);
  }

  int never_answered_seen() const { return never_answered_seen_.load(); }

 private:
  net::ReplyTransport& transport_;
  net::RequestHandler& fallback_;
  std::atomic<int> never_answered_seen_{0};
};

net::SessionSettings settings_for(const net::crypto::KeyPair& key) {
  net::SessionSettings settings;
  settings.server_key = key;
  return settings;
}

// prismd reduced to one worker on 127.0.0.1 and a free port, serving until stop() or the
// end of the test.
class TestServer {
 public:
  TestServer()
      : key_(net::crypto::KeyPair::generate()),
        worker_(0, settings_for(key_)),
        dispatcher_(worker_, worker_.transport(), 2s),
        handler_(worker_.transport(), dispatcher_) {
    auto bound = worker_.bind("127.0.0.1", 0, true);
    EXPECT_TRUE(bound.ok()) << bound.error();
    if (bound.ok()) port_ = *bound;
    worker_.set_handler(&handler_);
    worker_.start();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() { stop(); }

  // Closes every session with a CLOSE frame ("server shutting down") and joins the thread.
  void stop() { worker_.stop(); }

  uint16_t port() const { return port_; }
  Endpoint endpoint() const { return {.host = "127.0.0.1", .port = port_}; }
  const net::crypto::Key32& public_key() const { return key_.public_key; }
  std::string public_key_text() const { return net::crypto::encode_public_key(key_.public_key); }
  const TestHandler& handler() const { return handler_; }

 private:
  net::crypto::KeyPair key_;
  net::Worker worker_;
  dispatch::Dispatcher dispatcher_;
  TestHandler handler_;
  uint16_t port_ = 0;
};

ConnectOptions options_for(const TestServer& server, std::chrono::milliseconds timeout = 2s) {
  ConnectOptions options;
  options.server_key = server.public_key();
  options.timeout = timeout;
  return options;
}

Client connect_to(const TestServer& server, std::chrono::milliseconds timeout = 2s) {
  auto client = Client::connect(server.endpoint(), options_for(server, timeout));
  EXPECT_TRUE(client.ok()) << client.error();
  return std::move(client).value();
}

// Polls `client` until `done()` or `deadline` passes; true when done.
bool poll_until(Client& client, const std::function<bool()>& done,
                std::chrono::milliseconds within = 5s) {
  const auto deadline = Clock::now() + within;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    auto polled = client.poll(std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    EXPECT_TRUE(polled.ok()) << polled.error();
    if (!polled.ok()) return false;
  }
  return true;
}

// A loopback port nothing listens on: bound once to get a free number, then closed, so the
// kernel answers it with ICMP port unreachable.
uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string status_text(v1::Status status) { return std::to_string(static_cast<int>(status)); }

// ---- parse_endpoint, to_string, status_name ----------------------------------------

TEST(ParseEndpoint, AcceptsHostAndPort) {
  auto e = parse_endpoint("127.0.0.1:7777");
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 7777);

  e = parse_endpoint("prism.example.com:1");
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(e->host, "prism.example.com");
  EXPECT_EQ(e->port, 1);
}

TEST(ParseEndpoint, AcceptsBracketedIpv6) {
  auto e = parse_endpoint("[::1]:65535");
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 65535);
}

TEST(ParseEndpoint, RejectsMalformedText) {
  for (const char* text : {"", "127.0.0.1", "127.0.0.1:", ":7777", "host:0", "host:65536",
                           "host:12ab", "host:-1", "host: 80", "::1:7777", "[::1]", "[::1:7777",
                           "[::1]7777", "[]:7777"}) {
    auto e = parse_endpoint(text);
    EXPECT_FALSE(e.ok()) << "accepted '" << text << "'";
    if (!e.ok()) {
      EXPECT_NE(e.error().find("invalid endpoint"), std::string::npos) << e.error();
    }
  }
}

TEST(ParseEndpoint, ErrorSaysIpv6NeedsBrackets) {
  auto e = parse_endpoint("::1:7777");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("brackets"), std::string::npos) << e.error();
}

TEST(EndpointToString, BracketsIpv6Hosts) {
  EXPECT_EQ(to_string(Endpoint{.host = "127.0.0.1", .port = 7777}), "127.0.0.1:7777");
  EXPECT_EQ(to_string(Endpoint{.host = "::1", .port = 9}), "[::1]:9");
}

TEST(StatusName, DropsThePrefix) {
  EXPECT_EQ(status_name(v1::STATUS_OK), "OK");
  EXPECT_EQ(status_name(v1::STATUS_INVALID_PACKET), "INVALID_PACKET");
  EXPECT_EQ(status_name(v1::STATUS_TIMEOUT), "TIMEOUT");
  EXPECT_EQ(status_name(v1::STATUS_INTERNAL), "INTERNAL");
  EXPECT_EQ(status_name(static_cast<v1::Status>(999)), "UNKNOWN");
}

// ---- connect ------------------------------------------------------------------------

TEST(Connect, RejectsANonPositiveTimeout) {
  ConnectOptions options;
  options.timeout = 0ms;
  auto client = Client::connect({}, options);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().find("timeout"), std::string::npos) << client.error();
}

TEST(Connect, HandshakeWithTheRightKeyGivesAConnectedSession) {
  TestServer server;
  Client client = connect_to(server);
  EXPECT_TRUE(client.connected());
  EXPECT_EQ(client.close_reason(), "");
  EXPECT_EQ(client.pending(), 0u);
  EXPECT_EQ(to_string(client.endpoint()), to_string(server.endpoint()));
}

TEST(Connect, WrongServerKeyIsAHandshakeError) {
  TestServer server;
  ConnectOptions options = options_for(server, 500ms);
  options.server_key = net::crypto::KeyPair::generate().public_key;  // not the server's
  auto client = Client::connect(server.endpoint(), options);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().find("handshake"), std::string::npos) << client.error();
  EXPECT_NE(client.error().find(to_string(server.endpoint())), std::string::npos) << client.error();
}

TEST(Connect, NothingListeningIsAConnectError) {
  const Endpoint endpoint{.host = "127.0.0.1", .port = closed_port()};
  ConnectOptions options;
  options.server_key = net::crypto::KeyPair::generate().public_key;
  options.timeout = 1s;
  auto client = Client::connect(endpoint, options);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().find(to_string(endpoint)), std::string::npos) << client.error();
  EXPECT_NE(client.error().find("connection refused"), std::string::npos) << client.error();
}

// ---- call() -------------------------------------------------------------------------

TEST(Call, EchoReturnsThePayload) {
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.call(kEcho, "hello");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_EQ(reply->message, "");
  EXPECT_EQ(reply->payload, "hello");

  // Binary payloads and every delivery mode that fits one datagram come back unchanged.
  const std::string binary("\x00\x01\xff\x00", 4);
  for (auto delivery : {v1::DELIVERY_RELIABLE_ORDERED, v1::DELIVERY_RELIABLE_UNORDERED}) {
    reply = client.call(kEcho, binary, delivery);
    ASSERT_TRUE(reply.ok()) << reply.error();
    EXPECT_EQ(reply->status, v1::STATUS_OK);
    EXPECT_EQ(reply->payload, binary);
  }
  EXPECT_EQ(client.pending(), 0u);
}

TEST(Call, NonOkStatusIsAReplyNotAnError) {
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.call(kStatusAsAsked, status_text(v1::STATUS_NOT_FOUND));
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_NOT_FOUND);
  EXPECT_EQ(reply->message, "asked for " + status_text(v1::STATUS_NOT_FOUND));
  EXPECT_EQ(reply->payload, "");
}

TEST(Call, UnansweredRequestTimesOut) {
  TestServer server;
  Client client = connect_to(server);
  client.set_timeout(100ms);
  const auto start = Clock::now();
  auto reply = client.call(kNeverAnswered, "anyone?");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_TIMEOUT);
  EXPECT_GE(Clock::now() - start, 100ms);
  EXPECT_EQ(client.pending(), 0u);
  EXPECT_TRUE(client.connected());
}

TEST(Call, LargeReplyArrivesIntactInFragments) {
  // 200 KB is far beyond one datagram: the reply travels as §5.7 fragments.
  constexpr size_t kSize = 200 * 1024;
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.call(kLargeReply, std::to_string(kSize));
  ASSERT_TRUE(reply.ok()) << reply.error();
  ASSERT_EQ(reply->status, v1::STATUS_OK) << reply->message;
  ASSERT_EQ(reply->payload.size(), kSize);
  for (size_t i = 0; i < kSize; ++i) {
    ASSERT_EQ(reply->payload[i], large_reply_byte(i)) << "first difference at byte " << i;
  }
}

TEST(Call, LargeRequestIsFragmentedToo) {
  TestServer server;
  Client client = connect_to(server);
  std::string payload(64 * 1024, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = large_reply_byte(i);
  auto reply = client.call(kEcho, payload);
  ASSERT_TRUE(reply.ok()) << reply.error();
  ASSERT_EQ(reply->status, v1::STATUS_OK) << reply->message;
  EXPECT_TRUE(reply->payload == payload) << "echo of " << payload.size() << " bytes differs";
}

TEST(Call, MessageAboveTheMaximumSizeIsALocalError) {
  TestServer server;
  Client client = connect_to(server);
  // The server's ServerHello announces 1 MiB (ChannelConfig's default).
  auto reply = client.call(kEcho, std::string((1 << 20) + 1, 'x'));
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("exceeds the maximum"), std::string::npos) << reply.error();
  EXPECT_TRUE(client.connected());
}

TEST(Call, UnreliableMessageThatDoesNotFitADatagramIsALocalError) {
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.call(kEcho, std::string(4000, 'x'), v1::DELIVERY_UNRELIABLE);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("does not fit in one datagram"), std::string::npos)
      << reply.error();
}

// ---- send_request() and poll() --------------------------------------------------------

TEST(SendRequest, ManyInFlightEachCompleteExactlyOnce) {
  constexpr int kRequests = 300;
  TestServer server;
  Client client = connect_to(server);
  std::vector<int> completions(kRequests, 0);  // times each request's callback ran
  std::set<uint32_t> ids;
  int wrong = 0;
  for (int i = 0; i < kRequests; ++i) {
    const std::string payload = "request " + std::to_string(i);
    const auto delivery = i % 2 == 0 ? v1::DELIVERY_RELIABLE_ORDERED : v1::DELIVERY_RELIABLE_UNORDERED;
    auto id = client.send_request(kEcho, payload, delivery, [&, i, payload](const Reply& r) {
      if (r.status != v1::STATUS_OK || r.payload != payload) ++wrong;
      ++completions[i];
    });
    ASSERT_TRUE(id.ok()) << id.error();
    EXPECT_TRUE(ids.insert(*id).second) << "request id " << *id << " reused";
  }
  EXPECT_EQ(client.pending(), static_cast<size_t>(kRequests));
  ASSERT_TRUE(poll_until(client, [&] { return client.pending() == 0; }))
      << client.pending() << " requests still pending";
  EXPECT_EQ(wrong, 0);
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(completions[i], 1) << "request " << i;

  // Nothing runs a callback a second time later on.
  auto after = client.call(kEcho, "after");
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(after->payload, "after");
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(completions[i], 1) << "request " << i;
}

TEST(SendRequest, UnansweredRequestCompletesOnceWithTimeout) {
  TestServer server;
  Client client = connect_to(server);
  int calls = 0;
  std::optional<Reply> got;
  auto id = client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                [&](const Reply& r) {
                                  ++calls;
                                  got = r;
                                },
                                100ms);
  ASSERT_TRUE(id.ok()) << id.error();
  const auto start = Clock::now();
  ASSERT_TRUE(poll_until(client, [&] { return calls > 0; }));
  EXPECT_GE(Clock::now() - start, 90ms);
  EXPECT_EQ(got->status, v1::STATUS_TIMEOUT);
  EXPECT_EQ(client.pending(), 0u);

  // A later round trip pumps the session again: the expired request stays completed.
  auto echo = client.call(kEcho, "still here");
  ASSERT_TRUE(echo.ok()) << echo.error();
  EXPECT_EQ(echo->payload, "still here");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(server.handler().never_answered_seen(), 1);
}

TEST(SendRequest, AnsweredAndUnansweredMixCompleteIndependently) {
  TestServer server;
  Client client = connect_to(server);
  std::optional<Reply> slow, fast;
  ASSERT_TRUE(client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                  [&](const Reply& r) { slow = r; }, 300ms).ok());
  ASSERT_TRUE(client.send_request(kEcho, "fast", v1::DELIVERY_RELIABLE_UNORDERED,
                                  [&](const Reply& r) { fast = r; }).ok());
  ASSERT_TRUE(poll_until(client, [&] { return fast.has_value(); }));
  EXPECT_EQ(fast->payload, "fast");
  EXPECT_FALSE(slow.has_value());
  ASSERT_TRUE(poll_until(client, [&] { return slow.has_value(); }));
  EXPECT_EQ(slow->status, v1::STATUS_TIMEOUT);
}

// An application's own event loop: it waits on descriptor() with epoll and calls
// poll(0) when the socket is readable; a reply callback sends the next request, which
// leaves with the flush that ends that poll.
TEST(EventLoop, WaitingOnTheDescriptorDrivesAChainOfRequests) {
  constexpr int kChain = 50;
  TestServer server;
  Client client = connect_to(server);
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epoll_fd, 0);
  epoll_event ev{.events = EPOLLIN, .data = {.u64 = 0}};
  ASSERT_EQ(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client.descriptor(), &ev), 0);
  int answered = 0;
  std::string wrong;
  std::function<void(const Reply&)> next = [&](const Reply& r) {
    if (r.status != v1::STATUS_OK || r.payload != std::to_string(answered)) {
      wrong = std::string(status_name(r.status)) + " " + r.payload;
    }
    if (++answered < kChain) {
      ASSERT_TRUE(client.send_request(kEcho, std::to_string(answered),
                                      v1::DELIVERY_RELIABLE_ORDERED, next).ok());
    }
  };
  ASSERT_TRUE(client.send_request(kEcho, "0", v1::DELIVERY_RELIABLE_ORDERED, next).ok());
  ASSERT_TRUE(client.poll(0ms).ok());  // sends it
  const auto deadline = Clock::now() + 5s;
  while (answered < kChain && Clock::now() < deadline) {
    epoll_event ready{};
    if (epoll_wait(epoll_fd, &ready, 1, 100) == 1) {
      ASSERT_TRUE(client.poll(0ms).ok());
    }
  }
  close(epoll_fd);
  EXPECT_EQ(answered, kChain);
  EXPECT_EQ(wrong, "");
  EXPECT_EQ(client.pending(), 0u);
}

// next_wakeup() is when poll() has work without traffic: here the deadline of an
// unanswered request, which poll(0) then completes with TIMEOUT.
TEST(EventLoop, NextWakeupIsNoLaterThanTheEarliestRequestDeadline) {
  TestServer server;
  Client client = connect_to(server);
  std::optional<Reply> got;
  const auto sent_at = Clock::now();
  ASSERT_TRUE(client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                  [&](const Reply& r) { got = r; }, 200ms).ok());
  const auto wake = client.next_wakeup();
  EXPECT_LE(wake, sent_at + 250ms);
  EXPECT_GT(wake, sent_at);
  // A later request with a longer deadline does not move it.
  ASSERT_TRUE(client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                  [](const Reply&) {}, 5s).ok());
  EXPECT_LE(client.next_wakeup(), wake);
  while (!got && Clock::now() < sent_at + 3s) {
    std::this_thread::sleep_until(std::max(client.next_wakeup(), Clock::now() + 1ms));
    ASSERT_TRUE(client.poll(0ms).ok());
  }
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, v1::STATUS_TIMEOUT);
  EXPECT_GE(Clock::now() - sent_at, 190ms);
  EXPECT_EQ(client.pending(), 1u);  // the 5 s one
}

// ---- pushes ---------------------------------------------------------------------------

// The other half of the push contract: replies never reach the push handler.
TEST(Push, RepliesNeverReachThePushHandler) {
  TestServer server;
  Client client = connect_to(server);
  int pushes = 0;
  client.set_push_handler([&](const v1::Message&) { ++pushes; });
  for (int i = 0; i < 20; ++i) {
    auto reply = client.call(kEcho, "not a push");
    ASSERT_TRUE(reply.ok()) << reply.error();
  }
  std::optional<Reply> timed_out;
  ASSERT_TRUE(client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                  [&](const Reply& r) { timed_out = r; }, 50ms).ok());
  ASSERT_TRUE(poll_until(client, [&] { return timed_out.has_value(); }));
  EXPECT_EQ(pushes, 0);
}

TEST(Push, UnaskedMessagesReachThePushHandlerBeforeTheReply) {
  TestServer server;
  Client client = connect_to(server);
  std::vector<v1::Message> pushes;
  client.set_push_handler([&](const v1::Message& m) { pushes.push_back(m); });
  auto reply = client.call(kPushThenReply, "news");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  // Reliable-ordered both: the push was sent first, so it is handed up first.
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_FALSE(pushes[0].is_reply());
  EXPECT_EQ(pushes[0].packet_id(), kPushThenReply);
  EXPECT_EQ(pushes[0].payload(), "news");
}

// ---- login, ping, admin ---------------------------------------------------------------

TEST(Login, ServerWithoutALoginGuardKnowsOnlyLoadedServices) {
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.login("inventory", "any token");  // no plugin of that name
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_INVALID_SERVICE) << reply->message;
}

TEST(Login, EmptyServiceIsAnInvalidArgumentReply) {
  TestServer server;
  Client client = connect_to(server);
  auto reply = client.login("", "token");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_INVALID_ARGUMENT);
}

TEST(Ping, ReturnsTheRoundTrip) {
  TestServer server;
  Client client = connect_to(server);
  for (int i = 0; i < 3; ++i) {
    auto rtt = client.ping();
    ASSERT_TRUE(rtt.ok()) << rtt.error();
    EXPECT_GT(rtt->count(), 0);
    EXPECT_LT(*rtt, client.timeout());
  }
}

// Host requests take the admin login; a server with no admin token has no admin at all.
TEST(ListPlugins, ServerWithoutAnAdminTokenRefusesHostRequestsNamingTheStatus) {
  TestServer server;
  Client client = connect_to(server);
  auto login = client.login("admin", "any token");
  ASSERT_TRUE(login.ok()) << login.error();
  EXPECT_EQ(login->status, v1::STATUS_INVALID_CREDENTIALS) << login->message;
  auto list = client.list_plugins();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error(), "list plugins: server answered LOGIN_REQUIRED: log in to service "
                          "'admin' with the admin token first");
}

// ---- the end of a session, rebind -----------------------------------------------------

TEST(Session, ServerStopCompletesPendingRequestsWithUnavailable) {
  TestServer server;
  Client client = connect_to(server);
  std::vector<Reply> replies;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.send_request(kNeverAnswered, "", v1::DELIVERY_RELIABLE_ORDERED,
                                    [&](const Reply& r) { replies.push_back(r); }, 10s).ok());
  }
  // The server holds all three before it goes away.
  ASSERT_TRUE(poll_until(client, [&] { return server.handler().never_answered_seen() == 3; }));
  server.stop();  // sends CLOSE "server shutting down"

  ASSERT_TRUE(poll_until(client, [&] { return replies.size() == 3; }))
      << replies.size() << " of 3 requests completed";
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, v1::STATUS_UNAVAILABLE);
    EXPECT_NE(r.message.find("server shutting down"), std::string::npos) << r.message;
  }
  EXPECT_FALSE(client.connected());
  EXPECT_NE(client.close_reason().find("server shutting down"), std::string::npos)
      << client.close_reason();
  EXPECT_EQ(client.pending(), 0u);

  // A closed session refuses new requests locally instead of letting them time out.
  auto after = client.call(kEcho, "");
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.error().find("closed"), std::string::npos) << after.error();
  EXPECT_EQ(replies.size(), 3u);
}

TEST(Session, RebindKeepsTheSessionOnANewPort) {
  TestServer server;
  Client client = connect_to(server);
  auto before = client.call(kWhoAmI, "");
  ASSERT_TRUE(before.ok()) << before.error();
  ASSERT_EQ(before->status, v1::STATUS_OK);
  const std::string id_before = before->payload.substr(0, before->payload.find(' '));

  ASSERT_TRUE(client.rebind().ok());

  // §5.9: the server moves the session once the new address answers its challenge; the
  // connection id stays the same and the peer address becomes the new one.
  std::string now = before->payload;
  const auto deadline = Clock::now() + 5s;
  while (now == before->payload && Clock::now() < deadline) {
    auto reply = client.call(kWhoAmI, "");
    ASSERT_TRUE(reply.ok()) << reply.error();
    ASSERT_EQ(reply->status, v1::STATUS_OK) << reply->message;
    now = reply->payload;
    EXPECT_EQ(now.substr(0, now.find(' ')), id_before) << "a new session, not the same one";
  }
  EXPECT_NE(now, before->payload) << "the server never moved the session to the new port";

  for (int i = 0; i < 5; ++i) {
    auto echo = client.call(kEcho, "after rebind " + std::to_string(i));
    ASSERT_TRUE(echo.ok()) << echo.error();
    EXPECT_EQ(echo->status, v1::STATUS_OK);
    EXPECT_EQ(echo->payload, "after rebind " + std::to_string(i));
  }
  EXPECT_TRUE(client.connected());
}

TEST(Session, ClientMovedFromKeepsWorkingInItsNewOwner) {
  TestServer server;
  Client first = connect_to(server);
  Client moved = std::move(first);
  auto reply = moved.call(kEcho, "moved");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->payload, "moved");
}

// ---- The C API -----------------------------------------------------------------------

TEST(CApi, OpenWithAMalformedKeyFailsWithAReason) {
  TestServer server;
  for (const char* key : {"", "nonsense", "prism1:", "prism1:abc",
                          "prism2:0000000000000000000000000000000000000000000000000000000000000000",
                          "prism1:zz00000000000000000000000000000000000000000000000000000000000000"}) {
    char err[256] = "";
    EXPECT_EQ(prism_client_open("127.0.0.1", server.port(), key, 500, err, sizeof err), nullptr)
        << "accepted key '" << key << "'";
    EXPECT_STRNE(err, "") << "no reason for key '" << key << "'";
  }
  char err[64] = "";
  EXPECT_EQ(prism_client_open("127.0.0.1", server.port(), nullptr, 500, err, sizeof err), nullptr);
  EXPECT_STREQ(err, "server_key is NULL");
}

TEST(CApi, OpenWithAnotherServersKeyFailsTheHandshake) {
  TestServer server;
  const std::string other = net::crypto::encode_public_key(net::crypto::KeyPair::generate().public_key);
  char err[512] = "";
  EXPECT_EQ(prism_client_open("127.0.0.1", server.port(), other.c_str(), 300, err, sizeof err),
            nullptr);
  EXPECT_NE(std::string(err).find("handshake"), std::string::npos) << err;
}

TEST(CApi, OpenWithNothingListeningFails) {
  TestServer server;  // only for a well-formed key
  char err[512] = "";
  EXPECT_EQ(prism_client_open("127.0.0.1", closed_port(), server.public_key_text().c_str(), 1000,
                              err, sizeof err),
            nullptr);
  EXPECT_NE(std::string(err).find("connection refused"), std::string::npos) << err;
}

TEST(CApi, CallPingAndLoginWorkWithTheRightKey) {
  TestServer server;
  char err[256] = "untouched";
  prism_client_t* c = prism_client_open("127.0.0.1", server.port(),
                                        server.public_key_text().c_str(), 2000, err, sizeof err);
  ASSERT_NE(c, nullptr) << err;
  EXPECT_STREQ(prism_client_last_error(c), "");

  const uint8_t payload[] = {'h', 'i', 0, 3};
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  ASSERT_EQ(prism_client_call(c, kEcho, payload, sizeof payload, &reply), PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  EXPECT_EQ(reply.status, PRISM_CLIENT_STATUS_OK);
  ASSERT_NE(reply.message, nullptr);
  EXPECT_STREQ(reply.message, "");
  EXPECT_EQ(reply.message_len, 0u);
  ASSERT_EQ(reply.payload_len, sizeof payload);
  EXPECT_EQ(std::memcmp(reply.payload, payload, sizeof payload), 0);
  prism_client_reply_free(&reply);
  EXPECT_EQ(reply.message, nullptr);
  EXPECT_EQ(reply.payload, nullptr);
  prism_client_reply_free(&reply);  // twice is harmless

  const std::string not_found = status_text(v1::STATUS_NOT_FOUND);
  ASSERT_EQ(prism_client_call(c, kStatusAsAsked, reinterpret_cast<const uint8_t*>(not_found.data()),
                              not_found.size(), &reply),
            PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  EXPECT_EQ(reply.status, static_cast<int>(v1::STATUS_NOT_FOUND));
  EXPECT_STREQ(prism_client_status_name(reply.status), "NOT_FOUND");
  EXPECT_EQ(std::string(reply.message, reply.message_len), "asked for " + not_found);
  EXPECT_EQ(reply.payload, nullptr);
  EXPECT_EQ(reply.payload_len, 0u);
  prism_client_reply_free(&reply);

  uint64_t rtt = 0;
  ASSERT_EQ(prism_client_ping(c, &rtt), PRISM_CLIENT_OK) << prism_client_last_error(c);
  EXPECT_GT(rtt, 0u);

  ASSERT_EQ(prism_client_login(c, "inventory", "token", &reply), PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  // The test server loads no plugin named "inventory": a clear status, not an error.
  EXPECT_EQ(reply.status, 3 /* INVALID_SERVICE */) << reply.message;
  prism_client_reply_free(&reply);
  prism_client_close(c);
}

TEST(CApi, UnansweredCallIsATimeoutStatusNotAnError) {
  TestServer server;
  prism_client_t* c = prism_client_open("127.0.0.1", server.port(),
                                        server.public_key_text().c_str(), 100, nullptr, 0);
  ASSERT_NE(c, nullptr);
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  ASSERT_EQ(prism_client_call(c, kNeverAnswered, nullptr, 0, &reply), PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  EXPECT_EQ(reply.status, PRISM_CLIENT_STATUS_TIMEOUT);
  EXPECT_EQ(reply.payload, nullptr);
  prism_client_reply_free(&reply);
  prism_client_close(c);
}

TEST(CApi, ReplyStructSizeIsChecked) {
  TestServer server;
  prism_client_t* c = prism_client_open("127.0.0.1", server.port(),
                                        server.public_key_text().c_str(), 2000, nullptr, 0);
  ASSERT_NE(c, nullptr);
  prism_client_reply_t small = PRISM_CLIENT_REPLY_INIT;
  small.struct_size = 4;
  EXPECT_EQ(prism_client_call(c, kEcho, nullptr, 0, &small), PRISM_CLIENT_EINVAL);
  EXPECT_NE(std::string(prism_client_last_error(c)).find("struct_size"), std::string::npos)
      << prism_client_last_error(c);
  EXPECT_EQ(prism_client_login(c, "inventory", "token", &small), PRISM_CLIENT_EINVAL);
  small.struct_size = offsetof(prism_client_reply_t, payload_len);  // one field short
  EXPECT_EQ(prism_client_call(c, kEcho, nullptr, 0, &small), PRISM_CLIENT_EINVAL);

  // A caller built against a later header passes a larger struct: accepted.
  struct {
    prism_client_reply_t reply;
    uint64_t field_from_the_future;
  } larger{};
  larger.reply.struct_size = sizeof larger;
  ASSERT_EQ(prism_client_call(c, kEcho, reinterpret_cast<const uint8_t*>("x"), 1, &larger.reply),
            PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  ASSERT_EQ(larger.reply.payload_len, 1u);
  EXPECT_EQ(larger.reply.payload[0], 'x');
  prism_client_reply_free(&larger.reply);
  prism_client_close(c);
}

TEST(CApi, RejectsBadArgumentsWithoutCrashing) {
  TestServer server;
  char err[128] = "";
  EXPECT_EQ(prism_client_open(nullptr, 1, server.public_key_text().c_str(), 0, err, sizeof err),
            nullptr);
  EXPECT_STREQ(err, "host is NULL");

  prism_client_t* c = prism_client_open("127.0.0.1", server.port(),
                                        server.public_key_text().c_str(), 2000, err, sizeof err);
  ASSERT_NE(c, nullptr) << err;
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  EXPECT_EQ(prism_client_call(c, kEcho, nullptr, 0, nullptr), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_call(c, kEcho, nullptr, 3, &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_call(nullptr, kEcho, nullptr, 0, &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_login(c, nullptr, "token", &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_login(c, "inventory", nullptr, &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_login(nullptr, "inventory", "token", &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_ping(c, nullptr), PRISM_CLIENT_EINVAL);
  EXPECT_STREQ(prism_client_last_error(nullptr), "");
  prism_client_reply_free(nullptr);
  prism_client_close(c);
  prism_client_close(nullptr);
}

TEST(CApi, OpenTruncatesTheErrorToTheCallersBuffer) {
  char err[8];
  EXPECT_EQ(prism_client_open(nullptr, 7777, "prism1:", 0, err, sizeof err), nullptr);
  EXPECT_STREQ(err, "host is");
}

TEST(CApi, StatusNames) {
  EXPECT_STREQ(prism_client_status_name(PRISM_CLIENT_STATUS_OK), "OK");
  EXPECT_STREQ(prism_client_status_name(PRISM_CLIENT_STATUS_TIMEOUT), "TIMEOUT");
  EXPECT_STREQ(prism_client_status_name(PRISM_CLIENT_STATUS_UNAVAILABLE), "UNAVAILABLE");
  EXPECT_STREQ(prism_client_status_name(-7), "UNKNOWN");
}

}  // namespace
}  // namespace prism::client
