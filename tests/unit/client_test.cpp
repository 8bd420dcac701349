// libprism-client without prismd: endpoint parsing, status names, and request/reply
// matching against a fake server that the test plays on a loopback UDP socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "net/datagram.hpp"
#include "prism/client.h"
#include "prism/client.hpp"

namespace prism::client {
namespace {

using namespace std::chrono_literals;

// A UDP socket bound to 127.0.0.1 on a free port, closed on destruction.
class LoopbackSocket {
 public:
  LoopbackSocket() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  LoopbackSocket(const LoopbackSocket&) = delete;
  ~LoopbackSocket() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }
  Endpoint endpoint() const { return {.host = "127.0.0.1", .port = port_}; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::string encode(uint64_t connection_id, const v1::Packet& packet) {
  std::vector<uint8_t> buffer(net::kMaxDatagramSize);
  const size_t n = net::encode_datagram({.connection_id = connection_id}, packet, buffer);
  return std::string(reinterpret_cast<const char*>(buffer.data()), n);
}

v1::Packet reply_packet(uint32_t request_id, uint32_t packet_id, v1::Status status,
                        std::string message, std::string payload) {
  v1::Packet packet;
  auto* m = packet.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(packet_id);
  m->set_is_reply(true);
  m->set_status(status);
  m->set_status_message(std::move(message));
  m->set_payload(std::move(payload));
  return packet;
}

// What the fake server saw of one request, and the datagrams it sends back.
struct Request {
  net::DatagramHeader header;
  v1::Packet packet;
  const v1::Message& message() const { return packet.frames(0).message(); }
};
using Answer = std::function<std::vector<std::string>(const Request&)>;

// The test's stand-in for prismd: a thread that decodes each datagram it receives
// with the codec and sends back what `answer` returns, to the request's source.
class FakeServer {
 public:
  explicit FakeServer(Answer answer) : answer_(std::move(answer)) {
    thread_ = std::thread([this] { serve(); });
  }
  FakeServer(const FakeServer&) = delete;
  ~FakeServer() {
    stop_ = true;
    thread_.join();
  }

  Endpoint endpoint() const { return socket_.endpoint(); }
  uint16_t port() const { return socket_.port(); }
  int requests_seen() const { return seen_.load(); }

 private:
  void serve() {
    std::vector<uint8_t> buffer(65536);
    while (!stop_) {
      // Wakes up now and then only to notice stop_; the tests wait on replies.
      pollfd pfd{.fd = socket_.fd(), .events = POLLIN, .revents = 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = ::recvfrom(socket_.fd(), buffer.data(), buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0) continue;
      Request request;
      if (net::decode_datagram({buffer.data(), static_cast<size_t>(n)}, net::kMaxDatagramSize,
                               request.header, request.packet) != net::DropReason::kNone) {
        continue;
      }
      ++seen_;
      for (const auto& datagram : answer_(request)) {
        ::sendto(socket_.fd(), datagram.data(), datagram.size(), 0,
                 reinterpret_cast<sockaddr*>(&from), from_len);
      }
    }
  }

  LoopbackSocket socket_;
  Answer answer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> seen_{0};
  std::thread thread_;
};

Client connect_to(const Endpoint& endpoint, std::chrono::milliseconds timeout = 2s) {
  auto client = Client::connect(endpoint, timeout);
  EXPECT_TRUE(client.ok()) << client.error();
  return std::move(client).value();
}

v1::PluginList two_plugins() {
  v1::PluginList list;
  auto* def = list.add_plugins();
  def->set_name("default");
  def->set_first_packet_id(100);
  def->set_last_packet_id(199);
  auto* m = def->add_methods();
  m->set_name("ping");
  m->set_packet_id(100);
  m = def->add_methods();
  m->set_name("echo");
  m->set_packet_id(101);
  list.add_plugins()->set_name("rooms");
  return list;
}

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

TEST(Connect, RejectsANonPositiveTimeout) {
  auto client = Client::connect({}, 0ms);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().find("timeout"), std::string::npos) << client.error();
}

// ---- call() against the fake server ----------------------------------------------------

TEST(Call, MatchesTheReplyByRequestIdAndIgnoresOtherDatagrams) {
  FakeServer server([](const Request& r) {
    const auto& m = r.message();
    return std::vector<std::string>{
        "not a datagram at all",
        encode(r.header.connection_id,
               reply_packet(m.request_id() + 1, m.packet_id(), v1::STATUS_OK, "", "stray")),
        encode(r.header.connection_id,
               reply_packet(m.request_id(), m.packet_id(), v1::STATUS_OK, "", "echo:" + m.payload())),
    };
  });
  Client client = connect_to(server.endpoint());

  auto reply = client.call(101, "hello");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_EQ(reply->payload, "echo:hello");
  EXPECT_EQ(reply->message, "");
}

TEST(Call, SendsOneMessageFrameWithTheRequest) {
  std::atomic<uint64_t> connection_id{0};
  std::atomic<uint32_t> packet_id{0};
  std::atomic<bool> is_reply{true};
  FakeServer server([&](const Request& r) {
    connection_id = r.header.connection_id;
    packet_id = r.message().packet_id();
    is_reply = r.message().is_reply();
    EXPECT_EQ(r.packet.frames_size(), 1);
    EXPECT_EQ(r.header.type, net::DatagramType::kPlain);
    return std::vector<std::string>{encode(
        r.header.connection_id, reply_packet(r.message().request_id(), 0, v1::STATUS_OK, "", ""))};
  });
  Client client = connect_to(server.endpoint());
  auto reply = client.call(4242, "");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_NE(connection_id.load(), 0u);
  EXPECT_EQ(packet_id.load(), 4242u);
  EXPECT_FALSE(is_reply.load());
}

TEST(Call, NonOkStatusIsAReplyNotAnError) {
  FakeServer server([](const Request& r) {
    return std::vector<std::string>{
        encode(r.header.connection_id, reply_packet(r.message().request_id(), r.message().packet_id(),
                                                    v1::STATUS_INVALID_PACKET, "no plugin owns 7", ""))};
  });
  Client client = connect_to(server.endpoint());
  auto reply = client.call(7, "x");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_INVALID_PACKET);
  EXPECT_EQ(reply->message, "no plugin owns 7");
}

TEST(Call, ReturnsTimeoutWhenTheServerStaysSilent) {
  LoopbackSocket silent;
  Client client = connect_to(silent.endpoint(), 100ms);
  const auto start = std::chrono::steady_clock::now();
  auto reply = client.call(101, "anyone?");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_TIMEOUT);
  EXPECT_NE(reply->message.find("100 ms"), std::string::npos) << reply->message;
  EXPECT_GE(elapsed, 100ms);
}

TEST(Call, LateReplyToAnExpiredRequestIsIgnored) {
  // The server keeps the first request unanswered; with the second it answers the
  // first (now expired) before the second.
  std::vector<uint32_t> ids;
  FakeServer server([&](const Request& r) {
    ids.push_back(r.message().request_id());
    if (ids.size() == 1) return std::vector<std::string>{};
    return std::vector<std::string>{
        encode(r.header.connection_id, reply_packet(ids[0], 101, v1::STATUS_OK, "", "late")),
        encode(r.header.connection_id, reply_packet(ids[1], 101, v1::STATUS_OK, "", "second"))};
  });
  Client client = connect_to(server.endpoint(), 100ms);
  auto first = client.call(101, "1");
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first->status, v1::STATUS_TIMEOUT);

  client.set_timeout(2s);
  auto second = client.call(101, "2");
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_EQ(second->status, v1::STATUS_OK);
  EXPECT_EQ(second->payload, "second");
}

TEST(Call, CloseFrameFailsThePendingRequestWithUnavailable) {
  FakeServer server([](const Request& r) {
    v1::Packet close;
    close.add_frames()->mutable_close()->set_reason("shutting down");
    return std::vector<std::string>{encode(r.header.connection_id, close)};
  });
  Client client = connect_to(server.endpoint());
  auto reply = client.call(101, "");
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_UNAVAILABLE);
  EXPECT_NE(reply->message.find("shutting down"), std::string::npos) << reply->message;
}

TEST(Call, ClosedPortIsALocalErrorNotATimeout) {
  LoopbackSocket gone;
  const Endpoint endpoint = gone.endpoint();
  gone.close();  // the kernel now answers the port with ICMP port unreachable
  Client client = connect_to(endpoint, 2s);
  auto reply = client.call(101, "");
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("connection refused"), std::string::npos) << reply.error();
}

TEST(Call, PayloadTooLargeForADatagramIsAnError) {
  LoopbackSocket silent;
  Client client = connect_to(silent.endpoint(), 100ms);
  auto reply = client.call(101, std::string(net::kMaxDatagramSize, 'x'));
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("does not fit"), std::string::npos) << reply.error();
}

// ---- ping, list_plugins, resolve -------------------------------------------------------

TEST(Ping, MatchesThePongByNonce) {
  FakeServer server([](const Request& r) {
    EXPECT_TRUE(r.packet.frames(0).has_ping());
    v1::Packet wrong, right;
    wrong.add_frames()->mutable_pong()->set_nonce(r.packet.frames(0).ping().nonce() + 1);
    right.add_frames()->mutable_pong()->set_nonce(r.packet.frames(0).ping().nonce());
    return std::vector<std::string>{encode(r.header.connection_id, wrong),
                                    encode(r.header.connection_id, right)};
  });
  Client client = connect_to(server.endpoint());
  auto rtt = client.ping();
  ASSERT_TRUE(rtt.ok()) << rtt.error();
  EXPECT_GT(rtt->count(), 0);
}

TEST(Ping, SilentServerIsANoPongError) {
  LoopbackSocket silent;
  Client client = connect_to(silent.endpoint(), 100ms);
  auto rtt = client.ping();
  ASSERT_FALSE(rtt.ok());
  EXPECT_EQ(rtt.error(), "no pong within 100 ms");
}

FakeServer plugin_list_server() {
  return FakeServer([](const Request& r) {
    EXPECT_EQ(r.message().packet_id(), static_cast<uint32_t>(v1::HOST_LIST_PLUGINS));
    return std::vector<std::string>{
        encode(r.header.connection_id, reply_packet(r.message().request_id(), v1::HOST_LIST_PLUGINS,
                                                    v1::STATUS_OK, "", two_plugins().SerializeAsString()))};
  });
}

TEST(ListPlugins, ParsesThePluginList) {
  FakeServer server = plugin_list_server();
  Client client = connect_to(server.endpoint());
  auto list = client.list_plugins();
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->plugins_size(), 2);
  EXPECT_EQ(list->plugins(0).name(), "default");
  EXPECT_EQ(list->plugins(0).methods_size(), 2);
}

TEST(ListPlugins, NonOkStatusIsAnErrorNamingIt) {
  FakeServer server([](const Request& r) {
    return std::vector<std::string>{encode(
        r.header.connection_id,
        reply_packet(r.message().request_id(), 1, v1::STATUS_INTERNAL, "registry busy", ""))};
  });
  Client client = connect_to(server.endpoint());
  auto list = client.list_plugins();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error(), "list plugins: server answered INTERNAL: registry busy");
}

TEST(ListPlugins, SilentServerIsAnErrorNamingTheServer) {
  LoopbackSocket silent;
  Client client = connect_to(silent.endpoint(), 100ms);
  auto list = client.list_plugins();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error(), "list plugins: no reply from " + to_string(silent.endpoint()) +
                              " within 100 ms");
}

TEST(Resolve, FindsTheMethodsAbsolutePacketId) {
  FakeServer server = plugin_list_server();
  Client client = connect_to(server.endpoint());
  auto id = client.resolve("default", "echo");
  ASSERT_TRUE(id.ok()) << id.error();
  EXPECT_EQ(*id, 101u);
}

TEST(Resolve, UnknownServiceErrorListsTheServices) {
  FakeServer server = plugin_list_server();
  Client client = connect_to(server.endpoint());
  auto id = client.resolve("inventory", "get");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error(), "no service 'inventory' (services: default, rooms)");
}

TEST(Resolve, UnknownMethodErrorListsTheMethods) {
  FakeServer server = plugin_list_server();
  Client client = connect_to(server.endpoint());
  auto id = client.resolve("default", "shout");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error(), "service 'default' has no method 'shout' (methods: ping, echo)");

  id = client.resolve("rooms", "join");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error(), "service 'rooms' has no method 'join' (methods: none)");
}

// ---- The C API -----------------------------------------------------------------------

TEST(CApi, CallReturnsAReplyThatFreesCleanly) {
  FakeServer server([](const Request& r) {
    return std::vector<std::string>{encode(
        r.header.connection_id, reply_packet(r.message().request_id(), r.message().packet_id(),
                                             v1::STATUS_NOT_FOUND, "no such item",
                                             std::string("\x01\x02\x00\x03", 4)))};
  });
  char err[128] = "untouched";
  prism_client_t* c = prism_client_open("127.0.0.1", server.port(), 2000, err, sizeof err);
  ASSERT_NE(c, nullptr) << err;

  const uint8_t payload[] = {'h', 'i'};
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  ASSERT_EQ(prism_client_call(c, 101, payload, sizeof payload, &reply), PRISM_CLIENT_OK)
      << prism_client_last_error(c);
  EXPECT_EQ(reply.status, static_cast<int>(v1::STATUS_NOT_FOUND));
  EXPECT_STREQ(prism_client_status_name(reply.status), "NOT_FOUND");
  ASSERT_NE(reply.message, nullptr);
  EXPECT_STREQ(reply.message, "no such item");
  EXPECT_EQ(reply.message_len, std::strlen("no such item"));
  ASSERT_EQ(reply.payload_len, 4u);
  EXPECT_EQ(std::memcmp(reply.payload, "\x01\x02\x00\x03", 4), 0);

  prism_client_reply_free(&reply);
  EXPECT_EQ(reply.message, nullptr);
  EXPECT_EQ(reply.payload, nullptr);
  prism_client_reply_free(&reply);  // twice is harmless
  prism_client_close(c);
}

TEST(CApi, SilentServerGivesTimeoutStatusAndPingTimesOut) {
  LoopbackSocket silent;
  prism_client_t* c = prism_client_open("127.0.0.1", silent.port(), 100, nullptr, 0);
  ASSERT_NE(c, nullptr);
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  ASSERT_EQ(prism_client_call(c, 101, nullptr, 0, &reply), PRISM_CLIENT_OK);
  EXPECT_EQ(reply.status, PRISM_CLIENT_STATUS_TIMEOUT);
  EXPECT_EQ(reply.payload, nullptr);
  prism_client_reply_free(&reply);

  uint64_t rtt = 0;
  EXPECT_EQ(prism_client_ping(c, &rtt), PRISM_CLIENT_ETIMEDOUT);
  EXPECT_STREQ(prism_client_last_error(c), "no pong within 100 ms");
  prism_client_close(c);
}

TEST(CApi, PingReturnsTheRoundTrip) {
  FakeServer server([](const Request& r) {
    v1::Packet pong;
    pong.add_frames()->mutable_pong()->set_nonce(r.packet.frames(0).ping().nonce());
    return std::vector<std::string>{encode(r.header.connection_id, pong)};
  });
  prism_client_t* c = prism_client_open("127.0.0.1", server.port(), 2000, nullptr, 0);
  ASSERT_NE(c, nullptr);
  uint64_t rtt = 0;
  ASSERT_EQ(prism_client_ping(c, &rtt), PRISM_CLIENT_OK) << prism_client_last_error(c);
  EXPECT_GT(rtt, 0u);
  prism_client_close(c);
}

TEST(CApi, RejectsBadArgumentsWithoutCrashing) {
  LoopbackSocket silent;
  char err[128] = "";
  EXPECT_EQ(prism_client_open(nullptr, 1, 0, err, sizeof err), nullptr);
  EXPECT_STREQ(err, "host is NULL");

  prism_client_t* c = prism_client_open("127.0.0.1", silent.port(), 100, err, sizeof err);
  ASSERT_NE(c, nullptr) << err;
  prism_client_reply_t small = PRISM_CLIENT_REPLY_INIT;
  small.struct_size = 4;
  EXPECT_EQ(prism_client_call(c, 101, nullptr, 0, &small), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_call(c, 101, nullptr, 0, nullptr), PRISM_CLIENT_EINVAL);
  prism_client_reply_t reply = PRISM_CLIENT_REPLY_INIT;
  EXPECT_EQ(prism_client_call(c, 101, nullptr, 3, &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_call(nullptr, 101, nullptr, 0, &reply), PRISM_CLIENT_EINVAL);
  EXPECT_EQ(prism_client_ping(c, nullptr), PRISM_CLIENT_EINVAL);
  prism_client_close(c);
  prism_client_close(nullptr);
}

TEST(CApi, OpenTruncatesTheErrorToTheCallersBuffer) {
  char err[8];
  EXPECT_EQ(prism_client_open(nullptr, 7777, 0, err, sizeof err), nullptr);
  EXPECT_STREQ(err, "host is");
}

}  // namespace
}  // namespace prism::client
