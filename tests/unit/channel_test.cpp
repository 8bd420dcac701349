// The secure transport without sockets (docs/protocol.md §5): the handshake state machines
// and two Channels joined by a simulated link that loses, duplicates, reorders and delays
// datagrams, driven by a simulated clock so every run is exact and fast.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "net/session/channel.hpp"
#include "net/session/handshake.hpp"

namespace prism::net::session {
namespace {

using namespace std::chrono_literals;
using SysClock = std::chrono::system_clock;

const std::vector<uint8_t> kAddress = {127, 0, 0, 1, 0x1e, 0x61};

struct Handshaken {
  crypto::SessionKeys client;
  crypto::SessionKeys server;
  uint64_t connection_id = 0;
};

// The full exchange of §5.2-5.3: INITIAL, RETRY, INITIAL with cookie, HANDSHAKE.
Handshaken handshake(const crypto::KeyPair& server_key) {
  HandshakeServer server(server_key);
  HandshakeClient client(server_key.public_key, 0x1111);
  const auto now = SysClock::now();
  auto first = server.check(client.initial(), kAddress, now);
  EXPECT_EQ(first.kind, InitialOutcome::Kind::kRetry);
  EXPECT_EQ(first.reply.size(), kRetrySize);
  EXPECT_EQ(client.on_datagram(first.reply), HandshakeClient::Progress::kRetry);
  auto second = server.check(client.initial(), kAddress, now);
  EXPECT_EQ(second.kind, InitialOutcome::Kind::kAccept);
  v1::ServerHello hello;
  hello.set_connection_id(0xABCDEF);
  auto accepted = server.accept(client.initial(), hello, now);
  EXPECT_EQ(accepted.kind, InitialOutcome::Kind::kAccept);
  EXPECT_LT(accepted.reply.size(), client.initial().size());  // never amplifies
  EXPECT_EQ(client.on_datagram(accepted.reply), HandshakeClient::Progress::kDone);
  return {client.keys(), accepted.keys, client.hello().connection_id()};
}

TEST(Handshake, BothSidesDeriveTheSameKeysAndTheServerChoosesTheId) {
  const auto key = crypto::KeyPair::generate();
  const auto h = handshake(key);
  EXPECT_EQ(h.connection_id, 0xABCDEFu);
  EXPECT_EQ(h.client.initiator_to_responder, h.server.initiator_to_responder);
  EXPECT_EQ(h.client.responder_to_initiator, h.server.responder_to_initiator);
  EXPECT_NE(h.client.initiator_to_responder, h.client.responder_to_initiator);
}

TEST(Handshake, InitialIsPaddedAndRetryIsSmaller) {
  const auto key = crypto::KeyPair::generate();
  HandshakeClient client(key.public_key, 7);
  EXPECT_GE(client.initial().size(), kMinInitialSize);
  HandshakeServer server(key);
  auto out = server.check(client.initial(), kAddress, SysClock::now());
  ASSERT_EQ(out.kind, InitialOutcome::Kind::kRetry);
  EXPECT_LT(out.reply.size(), client.initial().size());
}

TEST(Handshake, ShortInitialIsDroppedUnanswered) {
  const auto key = crypto::KeyPair::generate();
  HandshakeClient client(key.public_key, 7);
  HandshakeServer server(key);
  auto shorter = client.initial();
  shorter.resize(kMinInitialSize - 1);
  auto out = server.check(shorter, kAddress, SysClock::now());
  EXPECT_EQ(out.kind, InitialOutcome::Kind::kDrop);
  EXPECT_EQ(out.reason, DropReason::kTruncated);
  EXPECT_TRUE(out.reply.empty());
}

TEST(Handshake, WrongServerKeyFailsOnTheServer) {
  const auto real = crypto::KeyPair::generate();
  const auto other = crypto::KeyPair::generate();
  HandshakeServer server(real);
  HandshakeClient client(other.public_key, 9);  // the client trusts another key
  const auto now = SysClock::now();
  auto retry = server.check(client.initial(), kAddress, now);
  ASSERT_EQ(client.on_datagram(retry.reply), HandshakeClient::Progress::kRetry);
  ASSERT_EQ(server.check(client.initial(), kAddress, now).kind, InitialOutcome::Kind::kAccept);
  auto out = server.accept(client.initial(), v1::ServerHello(), now);
  EXPECT_EQ(out.kind, InitialOutcome::Kind::kDrop);
  EXPECT_EQ(out.reason, DropReason::kHandshakeFailed);
}

TEST(Handshake, CookieIsBoundToAddressIdAndTime) {
  const auto key = crypto::KeyPair::generate();
  HandshakeServer server(key);
  HandshakeClient client(key.public_key, 0x42);
  // A fixed moment 3 s into a 10 s bucket, well inside a 64-bucket secret epoch: with the
  // wall clock, `now + 25s` crossed an epoch one run in about 26, the secret rotated, and
  // going back to `now` (a clock that stepped back) rightly forgot both secrets.
  const SysClock::time_point now{std::chrono::seconds((64 * 30000 + 10) * 10 + 3)};
  auto retry = server.check(client.initial(), kAddress, now);
  ASSERT_EQ(client.on_datagram(retry.reply), HandshakeClient::Progress::kRetry);
  const std::vector<uint8_t> other_address = {127, 0, 0, 1, 0x1e, 0x62};
  EXPECT_EQ(server.check(client.initial(), other_address, now).reason, DropReason::kBadCookie);
  // An old cookie: two buckets (10 s each) later it no longer verifies.
  EXPECT_EQ(server.check(client.initial(), kAddress, now + 25s).reason, DropReason::kBadCookie);
  // The connection id is in the MAC and in the Noise prologue: editing it breaks both.
  auto edited = client.initial();
  edited[9] ^= 1;
  EXPECT_EQ(server.check(edited, kAddress, now).reason, DropReason::kBadCookie);
  EXPECT_EQ(server.check(client.initial(), kAddress, now).kind, InitialOutcome::Kind::kAccept);
}

TEST(Handshake, TamperedMessagesFail) {
  const auto key = crypto::KeyPair::generate();
  HandshakeServer server(key);
  HandshakeClient client(key.public_key, 5);
  const auto now = SysClock::now();
  ASSERT_EQ(client.on_datagram(server.check(client.initial(), kAddress, now).reply),
            HandshakeClient::Progress::kRetry);
  auto tampered = client.initial();
  tampered[kHeaderSize + 1 + kCookieSize + 2 + 40] ^= 0x80;  // inside the Noise tag
  // The cookie binds message 1, so the edit is caught by its HMAC, before any DH.
  EXPECT_EQ(server.check(tampered, kAddress, now).reason, DropReason::kBadCookie);

  v1::ServerHello hello;
  hello.set_connection_id(77);
  auto reply = server.accept(client.initial(), hello, now).reply;
  ASSERT_FALSE(reply.empty());
  auto bad = reply;
  bad.back() ^= 1;
  EXPECT_EQ(client.on_datagram(bad), HandshakeClient::Progress::kFailed);
}

// The review's handshake flood: one cookie replayed with an INITIAL whose message 1 does
// not decrypt cost an X25519 per copy. A cookie now binds its message 1 and is redeemed
// once: the first copy costs one DH, every later one is refused by its record.
TEST(Handshake, ACookieBuysOneDiffieHellmanOnly) {
  const auto key = crypto::KeyPair::generate();
  HandshakeServer server(key);
  const auto now = SysClock::now();
  std::array<uint8_t, kInitialNoiseSize> garbage{};
  garbage.fill(0x5a);
  std::vector<uint8_t> initial(kMinInitialSize);
  ASSERT_EQ(write_initial(0x77, {}, garbage, initial), kMinInitialSize);
  const auto retry = server.check(initial, kAddress, now);
  ASSERT_EQ(retry.kind, InitialOutcome::Kind::kRetry);
  DatagramHeader header;
  std::span<const uint8_t> cookie;
  ASSERT_EQ(parse_retry(retry.reply, header, cookie), DropReason::kNone);
  ASSERT_EQ(write_initial(0x77, cookie, garbage, initial), kMinInitialSize);

  ASSERT_EQ(server.check(initial, kAddress, now).kind, InitialOutcome::Kind::kAccept);
  EXPECT_EQ(server.accept(initial, v1::ServerHello(), now).reason, DropReason::kHandshakeFailed);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(server.check(initial, kAddress, now).kind, InitialOutcome::Kind::kAccept);
    EXPECT_EQ(server.accept(initial, v1::ServerHello(), now).reason, DropReason::kCookieReused);
  }
  // The same cookie beside another message 1 does not even verify.
  auto other = initial;
  other[kHeaderSize + 1 + kCookieSize + 2] ^= 1;
  EXPECT_EQ(server.check(other, kAddress, now).reason, DropReason::kBadCookie);

  // A genuine client's INITIAL is answered once; its replay is refused too.
  HandshakeClient client(key.public_key, 0x78);
  ASSERT_EQ(client.on_datagram(server.check(client.initial(), kAddress, now).reply),
            HandshakeClient::Progress::kRetry);
  v1::ServerHello hello;
  hello.set_connection_id(5);
  EXPECT_EQ(server.accept(client.initial(), hello, now).kind, InitialOutcome::Kind::kAccept);
  EXPECT_EQ(server.accept(client.initial(), hello, now).reason, DropReason::kCookieReused);
}

TEST(Handshake, SecondRetryIsIgnored) {
  const auto key = crypto::KeyPair::generate();
  HandshakeServer server(key);
  HandshakeClient client(key.public_key, 5);
  auto retry = server.check(client.initial(), kAddress, SysClock::now()).reply;
  EXPECT_EQ(client.on_datagram(retry), HandshakeClient::Progress::kRetry);
  EXPECT_EQ(client.on_datagram(retry), HandshakeClient::Progress::kIgnored);
}

// ---- channels over a simulated link ---------------------------------------------------

struct Collector final : ChannelEvents {
  std::vector<v1::Message> messages;
  std::vector<uint64_t> pongs;
  std::string closed;
  Channel* reply_with = nullptr;  // echo every request back on this channel

  void on_message(const v1::Message& m) override {
    messages.push_back(m);
    if (reply_with != nullptr && !m.is_reply()) {
      v1::Message reply;
      reply.set_request_id(m.request_id());
      reply.set_is_reply(true);
      reply.set_payload(m.payload());
      ASSERT_TRUE(reply_with->send(m.delivery(), reply).ok());
    }
  }
  void on_pong(uint64_t nonce) override { pongs.push_back(nonce); }
  void on_closed(std::string_view reason) override { closed = std::string(reason); }
};

struct LinkConfig {
  double loss = 0;
  double duplicate = 0;
  std::chrono::microseconds delay{10ms};
  std::chrono::microseconds jitter{0};  // uniform extra delay: reorders datagrams
};

// Two channels and the datagrams between them, ordered by delivery time.
class Sim {
 public:
  explicit Sim(ChannelConfig config = {}, uint64_t seed = 1) : rng_(seed) {
    const auto key = crypto::KeyPair::generate();
    const auto h = handshake(key);
    keys_ = h;
    client_ = std::make_unique<Channel>(Channel::Role::kClient, h.client, h.connection_id, config, now_);
    server_ = std::make_unique<Channel>(Channel::Role::kServer, h.server, h.connection_id, config, now_);
  }

  Channel& client() { return *client_; }
  const Handshaken& keys() const { return keys_; }
  Channel& server() { return *server_; }
  Collector& client_events() { return client_events_; }
  Collector& server_events() { return server_events_; }
  Clock::time_point now() const { return now_; }
  LinkConfig link;
  bool cut = false;  // drop everything
  int drop_next_to_server = 0;  // drop this many of the client's next datagrams
  std::vector<std::vector<uint8_t>> captured_to_server;

  // Runs until `done` or until `limit` of simulated time passes; true when done.
  template <typename Done>
  bool run(Done done, std::chrono::milliseconds limit = 120s) {
    const auto end = now_ + limit;
    while (!done()) {
      flush(*client_, true);
      flush(*server_, false);
      Clock::time_point next = std::min(client_->next_timer(), server_->next_timer());
      if (!in_flight_.empty()) next = std::min(next, in_flight_.begin()->first);
      if (next > end) return false;
      now_ = std::max(now_, next);
      while (!in_flight_.empty() && in_flight_.begin()->first <= now_) {
        auto [to_server, bytes] = std::move(in_flight_.begin()->second);
        in_flight_.erase(in_flight_.begin());
        deliver(to_server, bytes);
      }
      if (client_->next_timer() <= now_) client_->on_timer(now_, client_events_);
      if (server_->next_timer() <= now_) server_->on_timer(now_, server_events_);
    }
    return true;
  }

  // Sends what both channels have queued now, without moving the clock.
  void transmit() {
    flush(*client_, true);
    flush(*server_, false);
  }

  void deliver(bool to_server, const std::vector<uint8_t>& bytes) {
    DatagramHeader header;
    if (read_header(bytes, kMaxDatagramSize, header) != DropReason::kNone) return;
    if (to_server) {
      server_->on_datagram(header, bytes, now_, server_events_);
    } else {
      client_->on_datagram(header, bytes, now_, client_events_);
    }
  }

 private:
  void flush(Channel& from, bool to_server) {
    std::vector<uint8_t> buffer(1400);
    for (;;) {
      const size_t n = from.poll_transmit(buffer, now_);
      if (n == 0) break;
      std::vector<uint8_t> bytes(buffer.begin(), buffer.begin() + static_cast<long>(n));
      if (to_server) captured_to_server.push_back(bytes);
      if (to_server && drop_next_to_server > 0) {
        --drop_next_to_server;
        continue;
      }
      if (cut || chance(link.loss)) continue;
      const int copies = chance(link.duplicate) ? 2 : 1;
      for (int i = 0; i < copies; ++i) {
        auto extra = std::chrono::microseconds(
            link.jitter.count() > 0 ? static_cast<int64_t>(rng_() % static_cast<uint64_t>(link.jitter.count())) : 0);
        in_flight_.emplace(now_ + link.delay + extra, std::make_pair(to_server, bytes));
      }
    }
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  std::mt19937_64 rng_;
  Handshaken keys_;
  Clock::time_point now_ = Clock::time_point() + 1000s;
  std::unique_ptr<Channel> client_;
  std::unique_ptr<Channel> server_;
  Collector client_events_;
  Collector server_events_;
  std::multimap<Clock::time_point, std::pair<bool, std::vector<uint8_t>>> in_flight_;
};

v1::Message request(uint32_t id, std::string payload = "") {
  v1::Message m;
  m.set_request_id(id);
  m.set_packet_id(101);
  m.set_payload(std::move(payload));
  return m;
}

// What a hostile client can send and the real one never does: `packet` sealed under the
// client's key with packet number `pn`, for the server channel of `sim`.
std::vector<uint8_t> seal_as_client(const Sim& sim, uint64_t pn, const v1::Packet& packet) {
  std::vector<uint8_t> out(kHeaderSize + packet.ByteSizeLong() + crypto::kPacketTagSize);
  write_header({.type = DatagramType::kSealed0,
                .connection_id = sim.keys().connection_id,
                .packet_number = pn},
               out);
  packet.SerializeToArray(out.data() + kHeaderSize, static_cast<int>(packet.ByteSizeLong()));
  crypto::PacketSealer sealer(sim.keys().client.initiator_to_responder);
  const size_t sealed =
      sealer.seal(pn, std::span(out).first(kHeaderSize),
                  std::span(out).subspan(kHeaderSize, packet.ByteSizeLong()),
                  std::span(out).subspan(kHeaderSize));
  out.resize(kHeaderSize + sealed);
  return out;
}

// A fragment frame announcing `count` fragments, of which this is the first.
v1::Packet fragment_packet(uint64_t sequence, uint32_t count, size_t size) {
  v1::Packet packet;
  v1::Fragment* f = packet.add_frames()->mutable_fragment();
  f->set_delivery(v1::DELIVERY_RELIABLE_ORDERED);
  f->set_sequence(sequence);
  f->set_index(0);
  f->set_count(count);
  f->set_data(std::string(size, 'x'));
  return packet;
}

DropReason offer(Sim& sim, const std::vector<uint8_t>& bytes,
                 std::optional<Clock::time_point> at = std::nullopt) {
  DatagramHeader header;
  EXPECT_EQ(read_header(bytes, kMaxDatagramSize, header), DropReason::kNone);
  return sim.server().on_datagram(header, bytes, at.value_or(sim.now()), sim.server_events()).drop;
}

// The review's fragment bomb, at the session: 4 first fragments announcing 65535 each
// made the server hold 4 MiB, and kept it until another fragment arrived.
TEST(Channel, AbandonedFragmentsCostWhatArrivedAndAreFreedOnTime) {
  Sim sim;
  sim.cut = true;
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(offer(sim, seal_as_client(sim, i, fragment_packet(i, 65535, 16))), DropReason::kNone);
  }
  EXPECT_LT(sim.server().received_buffered_bytes(), 1024u);
  EXPECT_GT(sim.server().received_buffered_bytes(), 0u);
  // Nothing else arrives: the server's own timer frees them at 10 s (§5.7).
  const auto start = sim.now();
  EXPECT_LE(sim.server().next_timer(), start + 10s);
  ASSERT_TRUE(sim.run([&] { return sim.server().received_buffered_bytes() == 0; }, 11s));
  EXPECT_GE(sim.now() - start, 10s);
  EXPECT_FALSE(sim.server().closed());
}

// §5.6: ordered messages behind a gap and unfinished fragments draw on one budget.
TEST(Channel, OrderedBacklogAndFragmentsShareOneReceiveBudget) {
  ChannelConfig config;
  config.receive_budget = 64 * 1024;
  Sim sim(config);
  sim.cut = true;
  uint64_t pn = 0;
  // Messages 1..40 behind a gap at 0, 1000 bytes each: about 40 KB held.
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    v1::Packet packet;
    v1::Message* m = packet.add_frames()->mutable_message();
    m->set_request_id(static_cast<uint32_t>(seq));
    m->set_packet_id(101);
    m->set_delivery(v1::DELIVERY_RELIABLE_ORDERED);
    m->set_sequence(seq);
    m->set_payload(std::string(1000, 'o'));
    ASSERT_EQ(offer(sim, seal_as_client(sim, pn++, packet)), DropReason::kNone);
  }
  const size_t ordered = sim.server().received_buffered_bytes();
  EXPECT_GT(ordered, 40000u);
  // A fragment of 30 KB fits a 64 KiB budget alone, not beside the ordered backlog.
  EXPECT_EQ(offer(sim, seal_as_client(sim, pn++, fragment_packet(41, 3, 30000))), DropReason::kNone);
  EXPECT_EQ(sim.server().stats().refused, 1u);
  EXPECT_EQ(sim.server().received_buffered_bytes(), ordered);
}

// A loopback-like path (0.2 ms RTT) after a few round trips, with the server echoing.
void warm_up(Sim& sim) {
  sim.link.delay = 100us;
  sim.server_events().reply_with = &sim.server();
  for (uint32_t id = 1; id <= 20; ++id) {
    auto m = request(id, "warm");
    ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
    ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() == id; }, 1s));
  }
}

// RFC 9002 §6.2: the last request's datagram is lost and nothing follows it, so neither
// threshold can judge it; the probe timeout (srtt + 4 rttvar + 1 ms) sends it again, where
// the RTO's 50 ms floor used to decide.
TEST(Channel, ALostTailRequestIsSentAgainAfterAProbeTimeoutNotTheRtoFloor) {
  Sim sim;
  warm_up(sim);
  sim.drop_next_to_server = 1;
  auto m = request(100, "tail");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  const auto sent = sim.now();
  ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() == 21; }, 1s));
  EXPECT_LT(sim.now() - sent, 10ms);
  EXPECT_EQ(sim.client_events().messages.back().request_id(), 100u);
  EXPECT_GE(sim.client().stats().probes, 1u);
  EXPECT_GE(sim.client().stats().retransmitted, 1u);
}

// RFC 9002 §6.1.2: a lost datagram overtaken by one later datagram (fewer than the packet
// threshold's 3) is declared lost once it is 9/8 of an RTT old (at least 1 ms): before
// the probe timeout, and no probe is needed.
TEST(Channel, APacketOvertakenByAnAcknowledgedOneIsLostAfterTheTimeThreshold) {
  Sim sim;
  warm_up(sim);
  sim.drop_next_to_server = 1;
  auto first = request(100, "lost");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_UNORDERED, first).ok());
  sim.transmit();  // dropped
  const auto sent = sim.now();
  auto second = request(101, "arrives");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_UNORDERED, second).ok());
  sim.transmit();
  ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() == 22; }, 1s));
  EXPECT_LT(sim.now() - sent, 2ms);
  EXPECT_EQ(sim.client().stats().probes, 0u);
  EXPECT_EQ(sim.client().stats().retransmitted, 1u);
}

// §5.5: 2000 replays of one packet, a millisecond apart, drew about 2000 ACKs; now a
// duplicate draws one only when the last one it drew is a smoothed RTT (at least 5 ms) old.
TEST(Channel, ReplayedDuplicatesDrawAtMostOneAckPerRtt) {
  Sim sim;
  sim.cut = true;
  auto m = request(1, "once");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  sim.run([] { return false; }, 1ms);
  ASSERT_FALSE(sim.captured_to_server.empty());
  const auto original = sim.captured_to_server.front();
  const auto t0 = sim.now();
  ASSERT_EQ(offer(sim, original, t0), DropReason::kNone);
  std::vector<uint8_t> out(1400);
  while (sim.server().poll_transmit(out, t0) > 0) {}  // the ACK it is owed
  size_t acks = 0;
  for (int i = 1; i <= 2000; ++i) {
    const auto at = t0 + std::chrono::milliseconds(i);
    ASSERT_EQ(offer(sim, original, at), DropReason::kReplayed);
    while (sim.server().poll_transmit(out, at) > 0) ++acks;
  }
  EXPECT_GT(acks, 0u);       // a lost ACK is still made good
  EXPECT_LE(acks, 2000u / 5);
  EXPECT_EQ(sim.server_events().messages.size(), 1u);
}

TEST(Channel, TenThousandOrderedMessagesSurviveLossDuplicationAndReordering) {
  Sim sim;
  sim.link = {.loss = 0.10, .duplicate = 0.05, .delay = 5ms, .jitter = 4ms};
  sim.server_events().reply_with = &sim.server();
  constexpr uint32_t kCount = 10000;
  for (uint32_t i = 1; i <= kCount; ++i) {
    auto m = request(i, "m" + std::to_string(i));
    ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  }
  ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() >= kCount; }));
  const auto& at_server = sim.server_events().messages;
  const auto& replies = sim.client_events().messages;
  ASSERT_EQ(at_server.size(), kCount);  // exactly once
  ASSERT_EQ(replies.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(at_server[i].request_id(), i + 1) << "server order";  // in order
    ASSERT_EQ(replies[i].request_id(), i + 1) << "client order";
    ASSERT_EQ(replies[i].payload(), "m" + std::to_string(i + 1));
  }
  EXPECT_GT(sim.client().stats().retransmitted, 0u);
  EXPECT_GT(sim.client().stats().replayed + sim.server().stats().replayed, 0u);  // duplicates seen
  EXPECT_TRUE(sim.client_events().closed.empty());
}

TEST(Channel, UnorderedMessagesArriveExactlyOnce) {
  Sim sim;
  sim.link = {.loss = 0.2, .duplicate = 0.2, .delay = 5ms, .jitter = 8ms};
  for (uint32_t i = 1; i <= 2000; ++i) {
    auto m = request(i);
    ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_UNORDERED, m).ok());
  }
  ASSERT_TRUE(sim.run([&] { return sim.server_events().messages.size() >= 2000; }));
  sim.run([] { return false; }, 2s);  // let retransmissions and duplicates drain
  std::vector<uint32_t> ids;
  for (const auto& m : sim.server_events().messages) ids.push_back(m.request_id());
  ASSERT_EQ(ids.size(), 2000u);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST(Channel, UnreliableMessagesAreNeverDuplicatedOrRetransmitted) {
  Sim sim;
  sim.link = {.loss = 0.3, .duplicate = 0.3, .delay = 5ms};
  for (uint32_t i = 1; i <= 1000; ++i) {
    auto m = request(i);
    ASSERT_TRUE(sim.client().send(v1::DELIVERY_UNRELIABLE, m).ok());
  }
  sim.run([] { return false; }, 3s);
  const auto n = sim.server_events().messages.size();
  EXPECT_GT(n, 500u);
  EXPECT_LT(n, 1000u);
  EXPECT_EQ(sim.client().stats().retransmitted, 0u);
  std::vector<uint32_t> ids;
  for (const auto& m : sim.server_events().messages) ids.push_back(m.request_id());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST(Channel, UnreliableMessageLargerThanADatagramIsRefused) {
  Sim sim;
  auto m = request(1, std::string(2000, 'x'));
  auto sent = sim.client().send(v1::DELIVERY_UNRELIABLE, m);
  ASSERT_FALSE(sent.ok());
  EXPECT_NE(sent.error().find("does not fit"), std::string::npos);
}

TEST(Channel, LargeMessagesAreFragmentedAndReassembledUnderLoss) {
  Sim sim;
  sim.link = {.loss = 0.1, .duplicate = 0.05, .delay = 5ms, .jitter = 3ms};
  std::string big(300 * 1024, '\0');
  std::mt19937 rng(3);
  for (auto& c : big) c = static_cast<char>(rng());
  auto m = request(1, big);
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  auto small = request(2, "after");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, small).ok());
  ASSERT_TRUE(sim.run([&] { return sim.server_events().messages.size() >= 2; }));
  ASSERT_EQ(sim.server_events().messages[0].payload(), big);
  EXPECT_EQ(sim.server_events().messages[1].payload(), "after");
}

TEST(Channel, MessageAboveTheMaximumSizeIsRefused) {
  ChannelConfig config;
  config.max_message_size = 64 * 1024;
  Sim sim(config);
  auto m = request(1, std::string(65 * 1024, 'x'));
  auto sent = sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m);
  ASSERT_FALSE(sent.ok());
  EXPECT_NE(sent.error().find("exceeds the maximum"), std::string::npos);
}

TEST(Channel, FlowControlBoundsUnacknowledgedBytesAndTheBacklog) {
  ChannelConfig config;
  config.max_unacked_bytes = 16 * 1024;
  config.max_send_backlog = 64 * 1024;
  Sim sim(config);
  sim.cut = true;  // the peer never acknowledges
  size_t accepted = 0;
  for (uint32_t i = 1; i <= 1000; ++i) {
    auto m = request(i, std::string(500, 'x'));
    if (!sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok()) break;
    ++accepted;
  }
  EXPECT_LT(accepted, 140u);  // 64 KiB of 500-byte messages, then "backlog full"
  sim.run([] { return false; }, 300ms);
  EXPECT_LE(sim.client().unacked_bytes(), config.max_unacked_bytes);
  EXPECT_GT(sim.client().unacked_bytes(), 0u);
  EXPECT_LE(sim.client().backlog_bytes(), config.max_send_backlog);
}

TEST(Channel, TamperedOrReplayedDatagramsAreDroppedAndNotRedelivered) {
  Sim sim;
  sim.cut = true;  // capture the datagram instead of delivering it
  auto m = request(1, "hello");
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  sim.run([] { return false; }, 1ms);
  ASSERT_FALSE(sim.captured_to_server.empty());
  const auto original = sim.captured_to_server.front();
  DatagramHeader header;
  auto offer = [&](const std::vector<uint8_t>& bytes) {
    EXPECT_EQ(read_header(bytes, kMaxDatagramSize, header), DropReason::kNone);
    return sim.server().on_datagram(header, bytes, sim.now(), sim.server_events()).drop;
  };

  auto tampered_body = original;
  tampered_body.back() ^= 1;
  EXPECT_EQ(offer(tampered_body), DropReason::kNotAuthentic);
  auto tampered_header = original;
  tampered_header[9] ^= 1;  // connection id: the header is the AEAD's associated data
  EXPECT_EQ(offer(tampered_header), DropReason::kNotAuthentic);
  auto other_number = original;
  other_number[17] ^= 1;  // packet number: also the nonce
  EXPECT_EQ(offer(other_number), DropReason::kNotAuthentic);
  EXPECT_TRUE(sim.server_events().messages.empty());

  EXPECT_EQ(offer(original), DropReason::kNone);
  EXPECT_EQ(offer(original), DropReason::kReplayed);
  ASSERT_EQ(sim.server_events().messages.size(), 1u);
  EXPECT_EQ(sim.server_events().messages[0].payload(), "hello");
  EXPECT_EQ(sim.server().stats().not_authentic, 3u);
  EXPECT_EQ(sim.server().stats().replayed, 1u);
}

TEST(Channel, KeysUpdateWithoutLosingMessages) {
  ChannelConfig config;
  config.packets_per_key = 10;
  Sim sim(config);
  sim.link = {.loss = 0.05, .duplicate = 0.02, .delay = 3ms, .jitter = 3ms};
  sim.server_events().reply_with = &sim.server();
  for (uint32_t i = 1; i <= 3000; ++i) {
    auto m = request(i);
    ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  }
  ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() >= 3000; }));
  EXPECT_GT(sim.client().stats().key_updates, 3u);
  EXPECT_GT(sim.server().stats().key_updates, 3u);
  for (uint32_t i = 0; i < 3000; ++i) ASSERT_EQ(sim.client_events().messages[i].request_id(), i + 1);
}

TEST(Channel, PeerThatStopsAnsweringClosesTheSession) {
  ChannelConfig config;
  config.max_retransmissions = 4;
  Sim sim(config);
  sim.cut = true;
  auto m = request(1);
  ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
  ASSERT_TRUE(sim.run([&] { return sim.client().closed() || !sim.client_events().closed.empty(); }, 60s));
  EXPECT_NE(sim.client_events().closed.find("peer not responding"), std::string::npos)
      << sim.client_events().closed;
}

TEST(Channel, IdleSessionTimesOutAndKeepaliveKeepsALiveOneOpen) {
  ChannelConfig config;
  config.idle_timeout = 3s;
  config.keepalive = 1s;
  {
    Sim sim(config);
    EXPECT_FALSE(sim.run([&] { return !sim.client_events().closed.empty(); }, 10s));  // pings keep it
    EXPECT_FALSE(sim.client_events().pongs.empty());
  }
  {
    Sim sim(config);
    sim.cut = true;
    ASSERT_TRUE(sim.run([&] { return !sim.server_events().closed.empty(); }, 10s));
    EXPECT_NE(sim.server_events().closed.find("idle timeout"), std::string::npos);
  }
}

// An idle channel rests: once nothing was sent or received for rest_after and nothing is
// in flight it gives back its AES-GCM contexts (~4.6 KiB each), and it talks on afterwards
// with contexts rebuilt from the keys, across key updates too.
TEST(Channel, AnIdleChannelRestsAndTalksOnAfterwards) {
  ChannelConfig config;
  config.rest_after = 100ms;
  config.packets_per_key = 2;
  Sim sim(config);
  sim.server_events().reply_with = &sim.server();
  for (uint32_t round = 0; round < 3; ++round) {
    for (uint32_t i = 1; i <= 5; ++i) {
      auto m = request(round * 5 + i);
      ASSERT_TRUE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
    }
    ASSERT_TRUE(sim.run([&] { return sim.client_events().messages.size() == (round + 1) * 5; }));
    EXPECT_FALSE(sim.server().resting()) << round;
    const auto quiet_from = sim.now();
    ASSERT_TRUE(sim.run([&] { return sim.client().resting() && sim.server().resting(); }, 1s)) << round;
    EXPECT_GE(sim.now() - quiet_from, 100ms);
  }
  for (uint32_t i = 0; i < 15; ++i) EXPECT_EQ(sim.client_events().messages[i].request_id(), i + 1);
  EXPECT_GT(sim.client().stats().key_updates, 0u);
  EXPECT_GT(sim.server().stats().key_updates, 0u);
}

TEST(Channel, CloseIsDeliveredWithItsReason) {
  Sim sim;
  sim.client().close("bye now");
  ASSERT_TRUE(sim.run([&] { return !sim.server_events().closed.empty(); }, 1s));
  EXPECT_EQ(sim.server_events().closed, "peer closed the session: bye now");
  EXPECT_TRUE(sim.server().closed());
  EXPECT_TRUE(sim.client().closed());
  auto m = request(1);
  EXPECT_FALSE(sim.client().send(v1::DELIVERY_RELIABLE_ORDERED, m).ok());
}

}  // namespace
}  // namespace prism::net::session
