// SessionTable (docs/protocol.md §5) as a worker drives it: datagrams in, flush(), a
// capturing Outbox, and a real uv loop run by the test for the per-session timers. The
// client side is the same HandshakeClient and Channel libprism-client uses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "metrics/metrics.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/datagram.hpp"
#include "net/loop_access.hpp"
#include "net/session/channel.hpp"
#include "net/session/handshake.hpp"
#include "net/session_table.hpp"
#include "net/transport.hpp"
#include "support/test_loop.hpp"

namespace prism::net {
namespace {

using session::Channel;
using session::Clock;
using session::HandshakeClient;

PeerAddress ipv4(uint16_t port, uint32_t host = INADDR_LOOPBACK) {
  PeerAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(host);
  a.len = sizeof(sockaddr_in);
  return a;
}

uint64_t counter(std::string_view name, std::string_view labels = "") {
  return metrics::registry().counter(name, labels, "").value();
}

uint64_t dropped(DropReason reason) {
  return counter("prism_datagrams_dropped_total",
                 "reason=\"" + std::string(drop_reason_name(reason)) + "\"");
}

uint64_t dropped_total() {
  uint64_t sum = 0;
  for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); ++r) {
    sum += dropped(static_cast<DropReason>(r));
  }
  return sum;
}

struct Sent {
  PeerAddress to;
  std::vector<uint8_t> bytes;
};

// Keeps every datagram the table sends, with its destination.
struct CaptureOutbox final : Outbox {
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kMaxDatagramSize);
  std::vector<Sent> sent;
  std::span<uint8_t> next_buffer() override { return buffer; }
  void commit(const PeerAddress& to, size_t len) override {
    sent.push_back({to, {buffer.begin(), buffer.begin() + static_cast<long>(len)}});
  }
  size_t bytes() const {
    size_t n = 0;
    for (const auto& s : sent) n += s.bytes.size();
    return n;
  }
};

using prism::testing::TestLoop;

// Records what the table hands up and answers each request with "re:" + its payload.
struct EchoHandler final : RequestHandler {
  SessionTable* table = nullptr;
  bool reply = true;
  std::vector<RequestOrigin> origins;
  std::vector<v1::Message> requests;
  std::vector<uint64_t> closed;

  void on_request(const RequestOrigin& origin, const v1::Message& m) override {
    origins.push_back(origin);
    requests.push_back(m);
    if (!reply || table == nullptr) return;
    const std::string payload = "re:" + m.payload();
    table->send_reply(origin, m.request_id(), m.packet_id(), v1::STATUS_OK, "",
                      {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  }
  void on_session_opened(uint64_t id) override { opened.push_back(id); }
  void on_session_closed(uint64_t id, std::string_view reason) override {
    closed.push_back(id);
    reasons.emplace_back(reason);
  }
  std::vector<uint64_t> opened;
  std::vector<std::string> reasons;
};

struct ClientEvents final : session::ChannelEvents {
  std::vector<v1::Message> messages;
  std::vector<uint64_t> path_responses;
  std::string closed;
  void on_message(const v1::Message& m) override { messages.push_back(m); }
  void on_closed(std::string_view reason) override { closed = std::string(reason); }
};

// One client: its handshake, then its Channel.
struct Client {
  PeerAddress address;
  HandshakeClient handshake;
  std::unique_ptr<Channel> channel;
  ClientEvents events;

  Client(const crypto::Key32& server_public, uint64_t id, uint16_t port)
      : address(ipv4(port)), handshake(server_public, id) {}
  uint64_t connection_id() const { return handshake.hello().connection_id(); }
};

v1::Message request(uint32_t id, std::string payload) {
  v1::Message m;
  m.set_request_id(id);
  m.set_packet_id(101);
  m.set_payload(std::move(payload));
  return m;
}

class SessionTableTest : public ::testing::Test {
 protected:
  SessionTableTest() : server_key_(crypto::KeyPair::generate()) {
    make_table({});
    // The worker flushes before its loop blocks (uv_prepare) as well as after a turn:
    // sessions a timer touched just before the poll are sent and re-armed then, not once
    // the poll returns for some later timer. And once what run_until awaits holds, the
    // turn does not block in the poll at all (uv_stop makes its timeout 0): a timer just
    // before the poll may be what brought it about, and the next one can be seconds away.
    uv_prepare_init(loop_.loop(), &flush_before_poll_);
    flush_before_poll_.data = this;
    uv_prepare_start(&flush_before_poll_, [](uv_prepare_t* prepare) {
      auto* self = static_cast<SessionTableTest*>(prepare->data);
      if (self->table_) self->table_->flush();
      if (self->awaited_ && self->awaited_()) uv_stop(prepare->loop);
    });
    loop_.at_stop([this] { uv_close(reinterpret_cast<uv_handle_t*>(&flush_before_poll_), nullptr); });
  }

  void TearDown() override {
    if (table_) table_->close_all("test over");
    table_.reset();
    EXPECT_EQ(loop_.drain_and_close(), 0) << "a uv handle was left open";
  }

  void make_table(SessionSettings settings) {
    if (table_) table_->close_all("replaced");
    settings.server_key = server_key_;
    table_ = std::make_unique<SessionTable>(0, outbox_, loop_, std::move(settings));
    table_->set_handler(&handler_);
    handler_.table = table_.get();
    outbox_.sent.clear();
  }

  // One datagram in, and what the worker does after each loop turn.
  void deliver(std::span<const uint8_t> bytes, const PeerAddress& from) {
    table_->on_datagram(bytes, from);
    table_->flush();
  }

  // INITIAL, RETRY, INITIAL with cookie, HANDSHAKE; then the client's Channel.
  bool connect(Client& c) {
    outbox_.sent.clear();
    deliver(c.handshake.initial(), c.address);
    if (outbox_.sent.size() != 1 ||
        c.handshake.on_datagram(outbox_.sent[0].bytes) != HandshakeClient::Progress::kRetry) {
      return false;
    }
    outbox_.sent.clear();
    deliver(c.handshake.initial(), c.address);
    if (outbox_.sent.size() != 1 ||
        c.handshake.on_datagram(outbox_.sent[0].bytes) != HandshakeClient::Progress::kDone) {
      return false;
    }
    outbox_.sent.clear();
    c.channel = std::make_unique<Channel>(Channel::Role::kClient, c.handshake.keys(),
                                          c.connection_id(), session::ChannelConfig{},
                                          Clock::now());
    return true;
  }

  // Everything the client's Channel has to send, as datagrams.
  std::vector<std::vector<uint8_t>> transmit(Client& c) {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> buffer(kMaxDatagramSize);
    for (;;) {
      const size_t n = c.channel->poll_transmit(buffer, Clock::now());
      if (n == 0) break;
      out.emplace_back(buffer.begin(), buffer.begin() + static_cast<long>(n));
    }
    return out;
  }

  // The client's first sealed packet, which confirms the handshake (§5.3).
  void confirm(Client& c) {
    c.channel->send_ping(1);
    send_from(c, c.address);
    outbox_.sent.clear();
  }

  // Runs the worker's loop turns until `done` (each turn blocks until a timer is due).
  template <typename Done>
  bool run_until(Done done) {
    awaited_ = [&] { return done(); };
    for (int turn = 0; turn < 1000 && !done(); ++turn) {
      loop_.turn();
      table_->flush();
    }
    awaited_ = nullptr;
    return done();
  }

  // Sends what the client has queued from `from`; returns the bytes sent.
  size_t send_from(Client& c, const PeerAddress& from) {
    size_t bytes = 0;
    for (const auto& d : transmit(c)) {
      bytes += d.size();
      deliver(d, from);
    }
    return bytes;
  }

  // Hands the client every datagram the table sent, whatever address it went to.
  void receive(Client& c) {
    auto sent = std::move(outbox_.sent);
    outbox_.sent.clear();
    for (const auto& s : sent) {
      DatagramHeader header;
      ASSERT_EQ(read_header(s.bytes, kMaxDatagramSize, header), DropReason::kNone);
      ASSERT_TRUE(is_sealed(header.type));
      c.channel->on_datagram(header, s.bytes, Clock::now(), c.events);
    }
  }

  crypto::KeyPair server_key_;
  TestLoop loop_;
  CaptureOutbox outbox_;
  EchoHandler handler_;
  std::unique_ptr<SessionTable> table_;
  uv_prepare_t flush_before_poll_{};  // closed by loop_'s stop (at_stop)
  std::function<bool()> awaited_;      // run_until's condition while it turns
};

// ---- handshake (protocol.md §5.2-5.3) -------------------------------------------------------

TEST_F(SessionTableTest, InitialWithoutCookieGetsOneSmallRetryAndNoSession) {
  Client c(server_key_.public_key, 0x1001, 40000);
  const uint64_t retries = counter("prism_handshake_retries_total");
  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(outbox_.sent.size(), 1u);
  const auto& retry = outbox_.sent[0];
  EXPECT_EQ(retry.bytes.size(), 42u);
  EXPECT_EQ(retry.bytes.size(), session::kRetrySize);
  EXPECT_LT(retry.bytes.size(), c.handshake.initial().size());
  EXPECT_GE(c.handshake.initial().size(), session::kMinInitialSize);
  EXPECT_TRUE(retry.to.same_as(c.address));
  DatagramHeader header;
  std::span<const uint8_t> cookie;
  ASSERT_EQ(session::parse_retry(retry.bytes, header, cookie), DropReason::kNone);
  EXPECT_EQ(header.connection_id, 0x1001u);
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(counter("prism_handshake_retries_total"), retries + 1);
}

TEST_F(SessionTableTest, InitialWithCookieGetsHandshakeAndOneSession) {
  Client c(server_key_.public_key, 0x1002, 40000);
  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(outbox_.sent.size(), 1u);
  ASSERT_EQ(c.handshake.on_datagram(outbox_.sent[0].bytes), HandshakeClient::Progress::kRetry);
  outbox_.sent.clear();

  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(outbox_.sent.size(), 1u);
  const auto handshake = outbox_.sent[0].bytes;
  EXPECT_TRUE(outbox_.sent[0].to.same_as(c.address));
  EXPECT_LT(handshake.size(), c.handshake.initial().size());  // never amplifies
  EXPECT_EQ(table_->size(), 1u);

  // Our HANDSHAKE was lost and the client sends its INITIAL again: the same answer.
  outbox_.sent.clear();
  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_EQ(outbox_.sent[0].bytes, handshake);
  EXPECT_EQ(table_->size(), 1u);

  ASSERT_EQ(c.handshake.on_datagram(handshake), HandshakeClient::Progress::kDone);
  EXPECT_EQ(c.connection_id() >> 56, 0u) << "worker 0 owns it (§5.3)";
  EXPECT_NE(c.connection_id(), 0u);
}

TEST_F(SessionTableTest, CookieFromAnotherAddressIsRefused) {
  Client c(server_key_.public_key, 0x1003, 40000);
  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(c.handshake.on_datagram(outbox_.sent.at(0).bytes), HandshakeClient::Progress::kRetry);
  outbox_.sent.clear();
  const uint64_t bad_cookie = dropped(DropReason::kBadCookie);
  deliver(c.handshake.initial(), ipv4(40001));
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(dropped(DropReason::kBadCookie), bad_cookie + 1);
}

TEST_F(SessionTableTest, HandshakeForAnotherServerKeyIsDropped) {
  const auto other = crypto::KeyPair::generate();
  Client c(other.public_key, 0x1004, 40000);
  deliver(c.handshake.initial(), c.address);
  ASSERT_EQ(c.handshake.on_datagram(outbox_.sent.at(0).bytes), HandshakeClient::Progress::kRetry);
  outbox_.sent.clear();
  const uint64_t failed = dropped(DropReason::kHandshakeFailed);
  deliver(c.handshake.initial(), c.address);
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(dropped(DropReason::kHandshakeFailed), failed + 1);
}

// ---- requests and replies (§5.4-5.6) -----------------------------------------------------

TEST_F(SessionTableTest, SealedRequestReachesTheHandlerAndTheReplyReachesTheClient) {
  Client c(server_key_.public_key, 0x2001, 40000);
  ASSERT_TRUE(connect(c));
  auto m = request(5, "ping?");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_UNORDERED, m).ok());
  send_from(c, c.address);

  ASSERT_EQ(handler_.requests.size(), 1u);
  EXPECT_EQ(handler_.origins[0].connection_id, c.connection_id());
  EXPECT_EQ(handler_.origins[0].delivery, v1::DELIVERY_RELIABLE_UNORDERED);
  EXPECT_TRUE(handler_.origins[0].peer.same_as(c.address));
  EXPECT_EQ(handler_.requests[0].request_id(), 5u);
  EXPECT_EQ(handler_.requests[0].payload(), "ping?");

  ASSERT_FALSE(outbox_.sent.empty());
  for (const auto& s : outbox_.sent) EXPECT_TRUE(s.to.same_as(c.address));
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 1u);
  const auto& reply = c.events.messages[0];
  EXPECT_TRUE(reply.is_reply());
  EXPECT_EQ(reply.request_id(), 5u);
  EXPECT_EQ(reply.packet_id(), 101u);
  EXPECT_EQ(reply.status(), v1::STATUS_OK);
  EXPECT_EQ(reply.payload(), "re:ping?");
  EXPECT_EQ(reply.delivery(), v1::DELIVERY_RELIABLE_UNORDERED);
  EXPECT_TRUE(c.events.closed.empty());
}

TEST_F(SessionTableTest, EveryDeliveryModeIsAnsweredTheSameWay) {
  Client c(server_key_.public_key, 0x2002, 40000);
  ASSERT_TRUE(connect(c));
  const v1::Delivery modes[] = {v1::DELIVERY_RELIABLE_ORDERED, v1::DELIVERY_RELIABLE_UNORDERED,
                                v1::DELIVERY_UNRELIABLE};
  uint32_t id = 1;
  for (const auto mode : modes) {
    auto m = request(id++, "x");
    ASSERT_TRUE(c.channel->send(mode, m).ok());
  }
  send_from(c, c.address);
  ASSERT_EQ(handler_.origins.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(handler_.origins[i].delivery, modes[i]);
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 3u);
  for (const auto& reply : c.events.messages) {
    EXPECT_EQ(reply.delivery(), modes[reply.request_id() - 1]);
  }
}

TEST_F(SessionTableTest, RepliesFromClientsAreNotDispatched) {
  Client c(server_key_.public_key, 0x2003, 40000);
  ASSERT_TRUE(connect(c));
  auto m = request(3, "x");
  m.set_is_reply(true);
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  send_from(c, c.address);
  EXPECT_TRUE(handler_.requests.empty());
}

TEST_F(SessionTableTest, ReplyTooLargeBecomesInternal) {
  SessionSettings settings;
  settings.channel.max_message_size = 4096;
  make_table(std::move(settings));
  handler_.reply = false;
  Client c(server_key_.public_key, 0x2004, 40000);
  ASSERT_TRUE(connect(c));
  auto m = request(9, "big please");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  send_from(c, c.address);
  ASSERT_EQ(handler_.origins.size(), 1u);
  const std::vector<uint8_t> big(5000, 'x');
  EXPECT_FALSE(table_->send_reply(handler_.origins[0], 9, 101, v1::STATUS_OK, "", big));
  table_->flush();
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 1u);
  EXPECT_EQ(c.events.messages[0].request_id(), 9u);
  EXPECT_EQ(c.events.messages[0].status(), v1::STATUS_INTERNAL);
  EXPECT_TRUE(c.events.messages[0].payload().empty());
}

TEST_F(SessionTableTest, ReplyToAGoneSessionIsCountedNotSent) {
  const uint64_t before = counter("prism_replies_dropped_total");
  RequestOrigin origin;
  origin.connection_id = 0x00ABCDEF;
  EXPECT_TRUE(table_->send_reply(origin, 1, 101, v1::STATUS_OK, "", {}));
  table_->flush();
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_EQ(counter("prism_replies_dropped_total"), before + 1);
}

// ---- bad input (§2.4): counted, dropped, never answered ------------------------------------

TEST_F(SessionTableTest, BadDatagramsGetNoReplyAndAreCountedByReason) {
  Client c(server_key_.public_key, 0x3001, 40000);
  ASSERT_TRUE(connect(c));
  auto m = request(1, "x");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  const auto valid = transmit(c);
  ASSERT_EQ(valid.size(), 1u);
  const auto& sealed = valid[0];

  auto expect_dropped = [&](std::vector<uint8_t> bytes, DropReason reason, const char* what) {
    const uint64_t before = dropped(reason);
    const uint64_t total = dropped_total();
    deliver(bytes, c.address);
    EXPECT_TRUE(outbox_.sent.empty()) << what;
    EXPECT_EQ(dropped(reason), before + 1) << what;
    EXPECT_EQ(dropped_total(), total + 1) << what;
    outbox_.sent.clear();
  };
  expect_dropped({}, DropReason::kTruncated, "empty");
  expect_dropped({sealed.begin(), sealed.begin() + 10}, DropReason::kTruncated, "short header");
  expect_dropped({sealed.begin(), sealed.begin() + kHeaderSize}, DropReason::kTruncated,
                 "header only");
  expect_dropped(std::vector<uint8_t>(1401, 0), DropReason::kOversized, "over max_datagram");
  auto bad_version = sealed;
  bad_version[0] = 1;
  expect_dropped(bad_version, DropReason::kBadVersion, "version 1");
  auto plaintext = sealed;
  plaintext[1] = 0x10;  // the removed plaintext type
  expect_dropped(plaintext, DropReason::kBadType, "type 0x10");
  auto retry = sealed;
  retry[1] = static_cast<uint8_t>(DatagramType::kRetry);  // server → client only
  expect_dropped(retry, DropReason::kBadType, "RETRY to the server");
  auto handshake = sealed;
  handshake[1] = static_cast<uint8_t>(DatagramType::kHandshake);
  expect_dropped(handshake, DropReason::kBadType, "HANDSHAKE to the server");
  auto short_initial = c.handshake.initial();
  short_initial.resize(session::kMinInitialSize - 1);
  expect_dropped(short_initial, DropReason::kTruncated, "unpadded INITIAL");
  auto bad_cookie = c.handshake.initial();
  bad_cookie[kHeaderSize + 1] ^= 0x01;
  expect_dropped(bad_cookie, DropReason::kBadCookie, "edited cookie");
  auto unknown = sealed;
  unknown[9] ^= 0x01;  // another connection id of worker 0
  expect_dropped(unknown, DropReason::kUnknownSession, "unknown connection id");
  auto tampered = sealed;
  tampered.back() ^= 0x01;  // the AEAD tag
  expect_dropped(tampered, DropReason::kNotAuthentic, "tampered tag");
  auto tampered_body = sealed;
  tampered_body[kHeaderSize + 2] ^= 0x40;
  expect_dropped(tampered_body, DropReason::kNotAuthentic, "tampered ciphertext");
  auto tampered_pn = sealed;
  tampered_pn[17] ^= 0x01;  // the packet number is authenticated too
  expect_dropped(tampered_pn, DropReason::kNotAuthentic, "tampered packet number");

  // None of that hurt the session: the genuine datagram still goes through.
  EXPECT_TRUE(handler_.requests.empty());
  deliver(sealed, c.address);
  ASSERT_EQ(handler_.requests.size(), 1u);
  EXPECT_EQ(table_->size(), 1u);
}

TEST_F(SessionTableTest, ReplayedDatagramIsNotDeliveredTwice) {
  Client c(server_key_.public_key, 0x3002, 40000);
  ASSERT_TRUE(connect(c));
  auto m = request(1, "once");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  const auto valid = transmit(c);
  ASSERT_EQ(valid.size(), 1u);
  deliver(valid[0], c.address);
  const uint64_t replayed = dropped(DropReason::kReplayed);
  deliver(valid[0], c.address);
  EXPECT_EQ(handler_.requests.size(), 1u);
  EXPECT_EQ(dropped(DropReason::kReplayed), replayed + 1);
}

// Waits `ms` on the loop, as a worker would between datagrams.
void wait_on_loop(uv_loop_t* loop, uint64_t ms) {
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, [](uv_timer_t* t) { uv_timer_stop(t); }, ms, 0);
  uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

// A forged datagram carrying a packet number the session already received (the id and
// packet numbers are cleartext) fails authentication and must draw nothing.
// DISABLED: Channel::on_datagram sets ack_owed_ for a duplicate packet number before the
// AEAD check, so this forgery makes the server send an ACK (see the report that added it).
TEST_F(SessionTableTest, ForgedDuplicatePacketNumberDrawsNoAck) {
  Client c(server_key_.public_key, 0x3004, 40000);
  ASSERT_TRUE(connect(c));
  handler_.reply = false;
  auto m = request(1, "x");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  send_from(c, c.address);  // packet number 0, acknowledged at once
  ASSERT_EQ(handler_.requests.size(), 1u);
  outbox_.sent.clear();
  wait_on_loop(loop_.loop(), 20);  // past the re-acknowledgement pacing (5 ms minimum)
  std::vector<uint8_t> forged(kHeaderSize + 32, 0xEE);
  write_header({.type = DatagramType::kSealed0, .connection_id = c.connection_id(),
                .packet_number = 0},
               forged);
  deliver(forged, ipv4(40999));  // spoofed source: the ACK would go to the client
  EXPECT_TRUE(outbox_.sent.empty()) << outbox_.sent.size() << " datagram(s) sent";
}

TEST_F(SessionTableTest, RandomBytesAreCountedAndNeverAnswered) {
  Client c(server_key_.public_key, 0x3003, 40000);
  ASSERT_TRUE(connect(c));
  const uint64_t before = dropped_total();
  std::mt19937_64 rng(20261123);
  std::vector<uint8_t> datagram;
  constexpr int kIterations = 20000;
  for (int i = 0; i < kIterations; ++i) {
    datagram.resize(rng() % 1600);
    for (auto& b : datagram) b = static_cast<uint8_t>(rng());
    // Half the time make the header valid, so what lies behind it sees the garbage too.
    if (i % 2 == 0 && datagram.size() > 1) {
      constexpr DatagramType kTypes[] = {DatagramType::kInitial, DatagramType::kSealed0,
                                         DatagramType::kSealed1};
      datagram[0] = kWireVersion;
      datagram[1] = static_cast<uint8_t>(kTypes[rng() % 3]);
      // Sometimes aim at the live session, so the AEAD rejects it rather than the lookup.
      if (i % 4 == 0 && datagram.size() >= kHeaderSize) {
        const uint64_t id = c.connection_id();
        for (int b = 0; b < 8; ++b) datagram[2 + b] = static_cast<uint8_t>(id >> (56 - 8 * b));
        datagram[1] = static_cast<uint8_t>(DatagramType::kSealed0);
      }
    }
    table_->on_datagram(datagram, ipv4(static_cast<uint16_t>(1024 + i % 60000)));
    if (i % 64 == 0) table_->flush();
  }
  table_->flush();
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_TRUE(handler_.requests.empty());
  EXPECT_EQ(dropped_total() - before, static_cast<uint64_t>(kIterations));
  EXPECT_EQ(table_->size(), 1u);
}

TEST_F(SessionTableTest, SealedDatagramOfAnotherWorkerIsForwardedNotDropped) {
  std::vector<std::pair<unsigned, size_t>> forwarded;
  table_->set_forwarder([&](unsigned worker, std::span<const uint8_t> d, const PeerAddress&) {
    forwarded.emplace_back(worker, d.size());
    return worker < 4;  // workers 0-3 exist
  });
  const auto bytes = [] {
    std::vector<uint8_t> d(64, 0x5a);
    write_header({.type = DatagramType::kSealed0, .connection_id = (uint64_t{3} << 56) | 77}, d);
    return d;
  }();
  const uint64_t unknown = dropped(DropReason::kUnknownSession);
  deliver(bytes, ipv4(40000));
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(forwarded[0], std::make_pair(3u, size_t{64}));
  EXPECT_EQ(dropped(DropReason::kUnknownSession), unknown);
  // Already routed here: looked up locally, not bounced again.
  table_->on_datagram(bytes, ipv4(40000), true);
  EXPECT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(dropped(DropReason::kUnknownSession), unknown + 1);
  // A connection id naming a worker that does not exist is forged or stale.
  std::vector<uint8_t> no_worker = bytes;
  no_worker[2] = 9;
  deliver(no_worker, ipv4(40000));
  EXPECT_EQ(forwarded.size(), 2u);
  EXPECT_EQ(dropped(DropReason::kUnknownSession), unknown + 2);
  EXPECT_TRUE(outbox_.sent.empty());
}

// §5.2: a flood of INITIALs from spoofed sources draws less than it costs.
TEST_F(SessionTableTest, InitialFloodIsNeverAmplified) {
  size_t bytes_in = 0;
  for (uint16_t i = 0; i < 1000; ++i) {
    HandshakeClient client(server_key_.public_key, 0x10000 + i);
    const PeerAddress from = ipv4(static_cast<uint16_t>(20000 + i), 0x0a000000u + i);
    const size_t before = outbox_.sent.size();
    deliver(client.initial(), from);
    bytes_in += client.initial().size();
    ASSERT_EQ(outbox_.sent.size(), before + 1);
    EXPECT_LT(outbox_.sent.back().bytes.size(), client.initial().size());
    EXPECT_TRUE(outbox_.sent.back().to.same_as(from));
  }
  EXPECT_LT(outbox_.bytes(), bytes_in);
  EXPECT_LE(outbox_.bytes() * 20, bytes_in) << "a RETRY is 42 bytes, an INITIAL at least 1200";
  EXPECT_EQ(table_->size(), 0u) << "a RETRY keeps no state";
}

// ---- path validation (§5.9) ---------------------------------------------------------------

TEST_F(SessionTableTest, NatRebindingIsValidatedBeforeRepliesMove) {
  Client c(server_key_.public_key, 0x4001, 40000);
  ASSERT_TRUE(connect(c));
  const PeerAddress old_address = c.address;
  const PeerAddress new_address = ipv4(41234, 0xC0A80001);  // the NAT picked a new mapping
  const uint64_t migrated = counter("prism_sessions_migrated_total");

  auto first = request(1, "before");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, first).ok());
  send_from(c, old_address);
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 1u);

  // The next request arrives from the new address. It is served, but the reply stays on
  // the validated path; the new one gets a PATH_CHALLENGE no larger than what it sent.
  auto second = request(2, "after rebinding");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, second).ok());
  const auto datagrams = transmit(c);
  ASSERT_EQ(datagrams.size(), 1u);
  table_->on_datagram(datagrams[0], new_address);
  ASSERT_EQ(handler_.requests.size(), 2u);
  ASSERT_EQ(outbox_.sent.size(), 1u) << "the challenge goes out at once";
  EXPECT_TRUE(outbox_.sent[0].to.same_as(new_address));
  EXPECT_LE(outbox_.sent[0].bytes.size(), datagrams[0].size());
  table_->flush();
  ASSERT_GE(outbox_.sent.size(), 2u);
  for (size_t i = 1; i < outbox_.sent.size(); ++i) {
    EXPECT_TRUE(outbox_.sent[i].to.same_as(old_address)) << "not validated yet";
  }
  EXPECT_EQ(counter("prism_sessions_migrated_total"), migrated);

  // The client answers the challenge from the new address.
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 2u);
  EXPECT_EQ(c.events.messages[1].payload(), "re:after rebinding");
  send_from(c, new_address);
  EXPECT_EQ(counter("prism_sessions_migrated_total"), migrated + 1);

  // From now on the session lives at the new address.
  outbox_.sent.clear();
  auto third = request(3, "settled");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, third).ok());
  send_from(c, new_address);
  ASSERT_EQ(handler_.origins.size(), 3u);
  EXPECT_TRUE(handler_.origins[2].peer.same_as(new_address));
  ASSERT_FALSE(outbox_.sent.empty());
  for (const auto& s : outbox_.sent) EXPECT_TRUE(s.to.same_as(new_address));
  receive(c);
  ASSERT_EQ(c.events.messages.size(), 3u);
  EXPECT_EQ(c.events.messages[2].payload(), "re:settled");
  // A reply sent later through an origin captured before the move follows the session.
  outbox_.sent.clear();
  EXPECT_TRUE(table_->send_reply(handler_.origins[0], 77, 101, v1::STATUS_OK, "", {}));
  table_->flush();
  ASSERT_FALSE(outbox_.sent.empty());
  for (const auto& s : outbox_.sent) EXPECT_TRUE(s.to.same_as(new_address));
}

TEST_F(SessionTableTest, PathResponseFromAnotherAddressDoesNotMoveTheSession) {
  Client c(server_key_.public_key, 0x4002, 40000);
  ASSERT_TRUE(connect(c));
  const PeerAddress new_address = ipv4(41235);
  const PeerAddress elsewhere = ipv4(41236);
  auto m = request(1, "x");
  ASSERT_TRUE(c.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  send_from(c, new_address);
  receive(c);  // the challenge and the reply
  const uint64_t migrated = counter("prism_sessions_migrated_total");
  // The response comes back through a third address: not proof that new_address is the
  // client's (and that address itself gets a challenge of its own).
  send_from(c, elsewhere);
  EXPECT_EQ(counter("prism_sessions_migrated_total"), migrated);
  outbox_.sent.clear();
  EXPECT_TRUE(table_->send_reply(handler_.origins[0], 2, 101, v1::STATUS_OK, "", {}));
  table_->flush();
  ASSERT_FALSE(outbox_.sent.empty());
  for (const auto& s : outbox_.sent) EXPECT_TRUE(s.to.same_as(c.address));
}

// ---- limits and closing -----------------------------------------------------------------

TEST_F(SessionTableTest, HandshakeBeyondMaxSessionsIsDropped) {
  SessionSettings settings;
  settings.max_sessions = 1;
  make_table(std::move(settings));
  Client a(server_key_.public_key, 0x5001, 40000);
  ASSERT_TRUE(connect(a));
  confirm(a);  // an unconfirmed session would be evicted for the newcomer instead
  EXPECT_EQ(table_->size(), 1u);

  Client b(server_key_.public_key, 0x5002, 40001);
  deliver(b.handshake.initial(), b.address);
  ASSERT_EQ(outbox_.sent.size(), 1u) << "a RETRY costs no state, so it is still sent";
  ASSERT_EQ(b.handshake.on_datagram(outbox_.sent[0].bytes), HandshakeClient::Progress::kRetry);
  outbox_.sent.clear();
  const uint64_t overloaded = dropped(DropReason::kOverloaded);
  deliver(b.handshake.initial(), b.address);
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(dropped(DropReason::kOverloaded), overloaded + 1);

  // Once the first client leaves, the second gets in with the cookie it holds.
  a.channel->close("done");
  send_from(a, a.address);
  EXPECT_EQ(table_->size(), 0u);
  outbox_.sent.clear();
  deliver(b.handshake.initial(), b.address);
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_EQ(b.handshake.on_datagram(outbox_.sent[0].bytes), HandshakeClient::Progress::kDone);
  EXPECT_EQ(table_->size(), 1u);
}

TEST_F(SessionTableTest, FullTableEvictsTheOldestUnconfirmedSessionFirst) {
  SessionSettings settings;
  settings.max_sessions = 2;
  make_table(std::move(settings));
  Client a(server_key_.public_key, 0x5101, 40000);
  Client b(server_key_.public_key, 0x5102, 40001);
  Client c(server_key_.public_key, 0x5103, 40002);
  ASSERT_TRUE(connect(a));
  ASSERT_TRUE(connect(b));
  confirm(a);
  ASSERT_EQ(table_->unconfirmed(), 1u);
  const uint64_t evicted = counter("prism_handshakes_evicted_total");
  ASSERT_TRUE(connect(c));  // b, unconfirmed, makes room; a, confirmed, stays
  EXPECT_EQ(table_->size(), 2u);
  EXPECT_EQ(counter("prism_handshakes_evicted_total"), evicted + 1);
  // b was never announced open (its client never confirmed), so its end is not announced.
  EXPECT_EQ(handler_.opened, std::vector<uint64_t>{a.connection_id()});
  EXPECT_TRUE(handler_.closed.empty());
  auto m = request(1, "still here");
  ASSERT_TRUE(a.channel->send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  send_from(a, a.address);
  ASSERT_EQ(handler_.requests.size(), 1u);
  EXPECT_EQ(handler_.requests[0].payload(), "still here");
}

// A replay (or a message 1 that fails) must not close anyone's pending handshake: the
// oldest unconfirmed session makes room only for a handshake that succeeds.
TEST_F(SessionTableTest, FullWorkerEvictsOnlyForAHandshakeThatSucceeds) {
  SessionSettings settings;
  settings.max_sessions = 2;
  make_table(std::move(settings));
  Client done(server_key_.public_key, 0x5151, 40000);
  Client pending(server_key_.public_key, 0x5152, 40001);
  ASSERT_TRUE(connect(done));
  confirm(done);
  ASSERT_TRUE(connect(pending));
  const uint64_t evicted = counter("prism_handshakes_evicted_total");
  for (int i = 0; i < 5; ++i) deliver(done.handshake.initial(), done.address);  // replays
  EXPECT_EQ(counter("prism_handshakes_evicted_total"), evicted);
  EXPECT_TRUE(handler_.closed.empty());
  EXPECT_EQ(table_->unconfirmed(), 1u);
}

TEST(SourceLimits, BucketTableStaysWithinItsBound) {
  SourceLimits limits({.handshakes_per_second = 1, .handshake_burst = 5, .max_tracked = 64});
  const auto now = SourceLimits::Clock::now();
  for (uint64_t source = 0; source < 10000; ++source) {
    ASSERT_TRUE(limits.allow_handshake(source, now));  // a new source starts with a burst
    ASSERT_LE(limits.tracked_buckets(), 64u);
  }
  // When room is needed, sources whose buckets have refilled are forgotten first: a
  // source that spent its burst keeps its (short) bucket, not a fresh one.
  SourceLimits table({.handshakes_per_second = 1, .handshake_burst = 2, .max_tracked = 8});
  EXPECT_TRUE(table.allow_handshake(1, now));
  EXPECT_TRUE(table.allow_handshake(1, now));
  EXPECT_FALSE(table.allow_handshake(1, now));
  for (uint64_t source = 100; source < 107; ++source) EXPECT_TRUE(table.allow_handshake(source, now));
  ASSERT_EQ(table.tracked_buckets(), 8u);
  // A second on, the seven others are full again (idle) and source 1 holds one token.
  const auto later = now + std::chrono::seconds(1);
  EXPECT_TRUE(table.allow_handshake(200, later));  // needs room
  EXPECT_LE(table.tracked_buckets(), 2u);
  EXPECT_TRUE(table.allow_handshake(1, later));
  EXPECT_FALSE(table.allow_handshake(1, later)) << "source 1 kept its bucket, not a new burst";
}

// The review filled every slot from one address with sessions it never confirmed; they
// held their slots for the 30 s idle timeout. Now they go after the handshake timeout.
TEST_F(SessionTableTest, UnconfirmedSessionIsFreedAfterTheHandshakeTimeout) {
  SessionSettings settings;
  settings.handshake_timeout = std::chrono::milliseconds(40);
  make_table(std::move(settings));
  Client kept(server_key_.public_key, 0x5201, 40000);
  Client quiet(server_key_.public_key, 0x5202, 40001);
  ASSERT_TRUE(connect(kept));
  confirm(kept);
  const uint64_t timed_out = counter("prism_handshakes_timed_out_total");
  const auto start = Clock::now();  // before the session exists: its deadline is later
  ASSERT_TRUE(connect(quiet));
  ASSERT_TRUE(run_until([&] { return table_->size() == 1; }));
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(40));
  EXPECT_EQ(counter("prism_handshakes_timed_out_total"), timed_out + 1);
  EXPECT_EQ(handler_.opened, std::vector<uint64_t>{kept.connection_id()});
  EXPECT_TRUE(handler_.closed.empty()) << "quiet was never announced open";
  EXPECT_TRUE(outbox_.sent.empty()) << "nothing is sent to an address that never confirmed";
  EXPECT_EQ(table_->source_limits().unconfirmed(quiet.address.source_key()), 0u);
}

// The review opened 100 053 sessions from one IP (the server's maximum) and prismctl
// could no longer connect.
TEST_F(SessionTableTest, OneSourceCannotTakeEverySlot) {
  SessionSettings settings;
  settings.max_sessions = 10;
  settings.per_source.max_sessions = 3;
  make_table(std::move(settings));
  std::vector<std::unique_ptr<Client>> flood;
  const uint64_t limited = dropped(DropReason::kAddressLimit);
  for (uint16_t i = 0; i < 6; ++i) {
    auto c = std::make_unique<Client>(server_key_.public_key, 0x5300 + i, 41000 + i);
    c->address = ipv4(static_cast<uint16_t>(41000 + i), 0x7f000002);  // 127.0.0.2, many ports
    if (connect(*c)) {
      confirm(*c);
      flood.push_back(std::move(c));
    }
  }
  EXPECT_EQ(flood.size(), 3u);
  EXPECT_EQ(dropped(DropReason::kAddressLimit), limited + 3);
  Client admin(server_key_.public_key, 0x53ff, 42000);  // 127.0.0.1
  ASSERT_TRUE(connect(admin));
  EXPECT_EQ(table_->size(), 4u);
  // A session that ends frees its source's slot.
  flood.back()->channel->close("bye");
  send_from(*flood.back(), flood.back()->address);
  Client again(server_key_.public_key, 0x5310, 41100);
  again.address = ipv4(41100, 0x7f000002);
  EXPECT_TRUE(connect(again));
}

TEST_F(SessionTableTest, UnconfirmedHandshakesPerSourceAreCapped) {
  SessionSettings settings;
  settings.per_source.max_handshakes = 2;
  make_table(std::move(settings));
  Client a(server_key_.public_key, 0x5401, 40000);
  Client b(server_key_.public_key, 0x5402, 40001);
  Client c(server_key_.public_key, 0x5403, 40002);
  ASSERT_TRUE(connect(a));
  ASSERT_TRUE(connect(b));
  const uint64_t limited = dropped(DropReason::kAddressLimit);
  EXPECT_FALSE(connect(c));
  EXPECT_EQ(dropped(DropReason::kAddressLimit), limited + 1);
  confirm(a);
  Client d(server_key_.public_key, 0x5404, 40003);
  EXPECT_TRUE(connect(d));
}

TEST_F(SessionTableTest, HandshakeRateIsLimitedPerSource) {
  SessionSettings settings;
  settings.per_source.handshakes_per_second = 0.001;  // no refill within the test
  settings.per_source.handshake_burst = 3;
  make_table(std::move(settings));
  const uint64_t limited = dropped(DropReason::kRateLimited);
  size_t opened = 0;
  for (uint16_t i = 0; i < 5; ++i) {
    Client c(server_key_.public_key, 0x5500 + i, static_cast<uint16_t>(43000 + i));
    if (connect(c)) ++opened;
  }
  EXPECT_EQ(opened, 3u);
  EXPECT_EQ(dropped(DropReason::kRateLimited), limited + 2);
  Client other(server_key_.public_key, 0x55ff, 43100);
  other.address = ipv4(43100, 0x7f000003);
  EXPECT_TRUE(connect(other)) << "another source has its own bucket";
}

// An INITIAL with a valid cookie replayed after its session was confirmed opened a
// second, unconfirmed session (docs/security.md): now the cookie is spent.
TEST_F(SessionTableTest, ReplayedInitialOpensNoSecondSession) {
  Client c(server_key_.public_key, 0x5601, 40000);
  ASSERT_TRUE(connect(c));
  confirm(c);
  const uint64_t reused = dropped(DropReason::kCookieReused);
  for (int i = 0; i < 10; ++i) deliver(c.handshake.initial(), c.address);
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(dropped(DropReason::kCookieReused), reused + 10);
}

// What an idle session costs the server, measured from the allocator over 200 sessions
// (docs/security.md and docs/performance.md quote these figures). The review measured
// ~27.5 KiB per unconfirmed session: AES-GCM contexts, six std::deque and a datagram buffer
// made up front. A confirmed session holds two AES-GCM contexts while it talks and gives
// them back at rest; the performance issue's target is 4 KiB per idle session.
TEST_F(SessionTableTest, IdleSessionsCostFewKiB) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's allocator does not report through mallinfo2";
#else
  SessionSettings settings;
  settings.channel.max_datagram = 1400;  // prismd's defaults
  settings.channel.max_receive_datagram = 1400;
  settings.channel.rest_after = std::chrono::milliseconds(20);
  make_table(std::move(settings));
  constexpr int kSessions = 200;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::vector<uint8_t>> initials;
  for (int i = 0; i < kSessions; ++i) {
    clients.push_back(std::make_unique<Client>(server_key_.public_key, 0x9000 + i, 20000));
    clients.back()->address = ipv4(20000, 0x0a000000u + static_cast<uint32_t>(i));
    deliver(clients.back()->handshake.initial(), clients.back()->address);
    ASSERT_EQ(clients.back()->handshake.on_datagram(outbox_.sent.back().bytes),
              HandshakeClient::Progress::kRetry);
    initials.push_back(clients.back()->handshake.initial());
    outbox_.sent.clear();
  }
  auto in_use = [] { return mallinfo2().uordblks; };
  const size_t start = in_use();
  std::vector<std::vector<uint8_t>> handshakes;
  for (int i = 0; i < kSessions; ++i) {
    deliver(initials[i], clients[i]->address);
    handshakes.push_back(std::move(outbox_.sent.back().bytes));
    outbox_.sent.clear();
  }
  const size_t unconfirmed = (in_use() - start - kSessions * handshakes[0].capacity()) / kSessions;

  // Each client confirms with a PING; the server answers (ACK, PONG) and then idles.
  std::vector<std::vector<uint8_t>> pings;
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_EQ(clients[i]->handshake.on_datagram(handshakes[i]), HandshakeClient::Progress::kDone);
    clients[i]->channel = std::make_unique<Channel>(Channel::Role::kClient,
                                                    clients[i]->handshake.keys(),
                                                    clients[i]->connection_id(),
                                                    session::ChannelConfig{}, Clock::now());
    clients[i]->channel->send_ping(1);
    pings.push_back(transmit(*clients[i]).at(0));
  }
  const size_t before_confirm = in_use();
  for (int i = 0; i < kSessions; ++i) {
    deliver(pings[i], clients[i]->address);
    outbox_.sent.clear();
  }
  const size_t talking = unconfirmed + (in_use() - before_confirm) / kSessions;
  ASSERT_TRUE(run_until([&] { return table_->resting() == kSessions; }));
  const size_t resting = unconfirmed + (in_use() - before_confirm) / kSessions;
  std::printf("idle session: %zu bytes unconfirmed, %zu bytes confirmed while talking, %zu at rest\n",
              unconfirmed, talking, resting);
  EXPECT_EQ(table_->unconfirmed(), 0u);
  EXPECT_LT(unconfirmed, 4u * 1024);
  EXPECT_LT(talking, 20u * 1024);  // two AES-GCM contexts (~4.6 KiB each)
  EXPECT_LE(resting, 4u * 1024);
#endif
}

TEST_F(SessionTableTest, CloseAllSendsCloseAndTellsTheHandler) {
  Client c(server_key_.public_key, 0x6001, 40000);
  ASSERT_TRUE(connect(c));
  confirm(c);
  Client d(server_key_.public_key, 0x6002, 40001);
  ASSERT_TRUE(connect(d));
  confirm(d);
  ASSERT_EQ(table_->size(), 2u);
  const uint64_t closed = counter("prism_sessions_closed_total");

  table_->close_all("maintenance");
  EXPECT_EQ(table_->size(), 0u);
  ASSERT_EQ(outbox_.sent.size(), 2u);
  std::vector<Sent> to_d;
  for (const auto& s : outbox_.sent) {
    if (s.to.same_as(d.address)) to_d.push_back(s);
  }
  std::erase_if(outbox_.sent, [&](const Sent& s) { return s.to.same_as(d.address); });
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_TRUE(outbox_.sent[0].to.same_as(c.address));
  receive(c);
  EXPECT_EQ(c.events.closed, "peer closed the session: maintenance");
  outbox_.sent = to_d;
  receive(d);
  EXPECT_EQ(d.events.closed, "peer closed the session: maintenance");

  ASSERT_EQ(handler_.closed.size(), 2u);
  EXPECT_TRUE((handler_.closed[0] == c.connection_id() && handler_.closed[1] == d.connection_id()) ||
              (handler_.closed[1] == c.connection_id() && handler_.closed[0] == d.connection_id()));
  EXPECT_EQ(counter("prism_sessions_closed_total"), closed + 2);
}

TEST_F(SessionTableTest, ClientCloseEndsTheSession) {
  Client c(server_key_.public_key, 0x6003, 40000);
  ASSERT_TRUE(connect(c));
  c.channel->close("bye");
  send_from(c, c.address);
  EXPECT_EQ(table_->size(), 0u);
  ASSERT_EQ(handler_.closed.size(), 1u);
  EXPECT_EQ(handler_.closed[0], c.connection_id());
  EXPECT_EQ(handler_.reasons[0], "peer closed the session: bye");
  EXPECT_TRUE(outbox_.sent.empty()) << "a CLOSE is not answered";
  // Later datagrams for that id find nothing.
  const uint64_t unknown = dropped(DropReason::kUnknownSession);
  std::vector<uint8_t> late(64, 0);
  write_header({.type = DatagramType::kSealed0, .connection_id = c.connection_id(),
                .packet_number = 50},
               late);
  deliver(late, c.address);
  EXPECT_EQ(dropped(DropReason::kUnknownSession), unknown + 1);
  EXPECT_TRUE(outbox_.sent.empty());
}

// The per-session uv timer: an idle session is closed by the loop, not by traffic.
TEST_F(SessionTableTest, IdleSessionIsClosedByItsTimer) {
  SessionSettings settings;
  settings.channel.idle_timeout = std::chrono::milliseconds(30);
  settings.channel.keepalive = std::chrono::milliseconds(0);
  make_table(std::move(settings));
  Client c(server_key_.public_key, 0x7001, 40000);
  ASSERT_TRUE(connect(c));
  confirm(c);
  ASSERT_EQ(table_->size(), 1u);
  // Each turn blocks until a timer is due, as the worker's loop does; flush() after it.
  for (int turn = 0; turn < 100 && table_->size() > 0; ++turn) {
    loop_.turn();
    table_->flush();
  }
  ASSERT_EQ(table_->size(), 0u);
  ASSERT_EQ(handler_.closed.size(), 1u);
  EXPECT_EQ(handler_.closed[0], c.connection_id());
  ASSERT_EQ(outbox_.sent.size(), 1u);
  receive(c);
  EXPECT_EQ(c.events.closed.rfind("peer closed the session: idle timeout", 0), 0u)
      << c.events.closed;
}

}  // namespace
}  // namespace prism::net
