// Fuzzes an established session past its AEAD (docs/protocol.md §5.4-5.9): each input is
// the plaintext of a packet from the client, sealed with the real client→server key so the
// server Channel authenticates it and handles its frames: ACKs against what the server
// sent, fragments and their reassembly, ordered and unordered delivery, PING, PATH_CHALLENGE
// and CLOSE. The server echoes every request back (as a plugin would); everything it sends
// goes to the client Channel, which must accept every datagram as authentic and well formed.
//
// The pair of channels lives across inputs, as a session does, so state left by one packet
// meets the next; it is rebuilt every kInputsPerPair inputs and whenever a side closes. A
// crash that needs earlier inputs does not reproduce from its input alone: run the target
// over the corpus of that run (`session_fuzz -runs=N <dir>`) to replay them.
#include <google/protobuf/stubs/logging.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "net/crypto/noise_nk.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"
#include "net/session/channel.hpp"
#include "net/session/handshake.hpp"
#include "fixed_session.hpp"

namespace {

using namespace prism::net;
using namespace prism::net::session;
using namespace std::chrono_literals;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// §2.3, §5.4: the largest plaintext a sealed datagram can carry.
constexpr size_t kMaxPlaintext = kMaxDatagramSize - kHeaderSize - crypto::kPacketTagSize;
using prism::fuzz::kConnectionId;
// Long enough for flow control, reorder windows and reassembly to fill up; short enough
// that the state one session accumulates stays small.
constexpr size_t kInputsPerPair = 1000;
// Simulated time per input: 1000 inputs span 20 s, past the keepalive (10 s) and the
// reassembly timeout (10 s) and through several retransmission backoffs.
constexpr auto kStep = 20ms;

// The session keys of one real handshake (§5.2-5.3: INITIAL, RETRY, INITIAL with cookie,
// HANDSHAKE) against a fixed server key. Every pair of channels reuses them: nonces repeat
// across pairs, which matters for secrecy only, not for what is fuzzed here.
struct Handshaken {
  crypto::SessionKeys client;
  crypto::SessionKeys server;
};

Handshaken handshake() {
  const auto server_key = prism::fuzz::server_key();
  HandshakeServer server(server_key);
  HandshakeClient client(server_key.public_key, prism::fuzz::kClientId);
  const auto& address = prism::fuzz::kAddress;
  const auto now = std::chrono::system_clock::now();
  const auto retry = server.check(client.initial(), address, now);
  check(retry.kind == InitialOutcome::Kind::kRetry);
  check(client.on_datagram(retry.reply) == HandshakeClient::Progress::kRetry);
  check(server.check(client.initial(), address, now).kind == InitialOutcome::Kind::kAccept);
  const auto accepted = server.accept(client.initial(), prism::fuzz::server_hello(), now);
  check(accepted.kind == InitialOutcome::Kind::kAccept);
  check(client.on_datagram(accepted.reply) == HandshakeClient::Progress::kDone);
  check(client.hello().connection_id() == kConnectionId);
  return {client.keys(), accepted.keys};
}

// §5.6: what a receiver hands up, checked as it happens. Reliable ordered messages come
// in sequence order from 0 with no gap; reliable unordered ones at most once each.
struct DeliveryLog {
  uint64_t next_ordered = 0;
  std::unordered_set<uint64_t> unordered;

  void on_message(const prism::v1::Message& m) {
    check(m.request_id() != 0);  // §3.2
    switch (m.delivery()) {
      case prism::v1::DELIVERY_UNRELIABLE:
        break;
      case prism::v1::DELIVERY_RELIABLE_ORDERED:
        check(m.sequence() == next_ordered);
        ++next_ordered;
        break;
      default:  // unordered, and any delivery value this build does not know (treated so)
        check(unordered.insert(m.sequence()).second);
        break;
    }
  }
};

// The server's side: echoes each request with its own payload and delivery mode.
struct EchoEvents final : ChannelEvents {
  Channel* channel = nullptr;
  DeliveryLog log;
  prism::v1::Message reply;
  bool closed = false;

  void on_message(const prism::v1::Message& m) override {
    log.on_message(m);
    if (m.is_reply()) return;
    reply.Clear();
    reply.set_request_id(m.request_id());
    reply.set_packet_id(m.packet_id());
    reply.set_is_reply(true);
    reply.set_payload(m.payload());
    // Refusals (backlog full, an unreliable reply too large, closed) are the channel's
    // answer to a flood, not a failure of the harness.
    (void)channel->send(m.delivery(), reply);
  }
  void on_closed(std::string_view) override { closed = true; }
};

// The client's side: it only ever receives the server's replies.
struct ReplyEvents final : ChannelEvents {
  DeliveryLog log;
  bool closed = false;

  void on_message(const prism::v1::Message& m) override {
    check(m.is_reply());
    log.on_message(m);
  }
  void on_closed(std::string_view) override { closed = true; }
};

ChannelConfig config_for(size_t pair) {
  ChannelConfig config;
  if (pair % 2 == 1) {
    // Every other pair runs with tight limits, so the refusal paths are reached by
    // inputs of a few packets instead of megabytes.
    config.max_message_size = 16 * 1024;
    config.max_unacked_bytes = 8 * 1024;
    config.max_send_backlog = 32 * 1024;
    config.reorder_capacity = 16;
    config.receive_budget = 32 * 1024;
    config.max_retransmissions = 2;
  }
  return config;
}

// One session: the two channels, their events, and the client's next packet number.
struct Session {
  Session(const Handshaken& keys, size_t pair, Clock::time_point now)
      : config(config_for(pair)),
        sealer(keys.client.initiator_to_responder),
        server(Channel::Role::kServer, keys.server, kConnectionId, config, now),
        client(Channel::Role::kClient, keys.client, kConnectionId, config, now) {
    server_events.channel = &server;
  }

  ChannelConfig config;
  crypto::PacketSealer sealer;
  Channel server;
  Channel client;
  EchoEvents server_events;
  ReplyEvents client_events;
  uint64_t next_packet_number = 0;
  size_t inputs = 0;

  bool over() const {
    return inputs >= kInputsPerPair || server.closed() || client.closed() ||
           server_events.closed || client_events.closed;
  }
};

std::vector<uint8_t>& datagram_buffer() {
  static std::vector<uint8_t> buffer(kMaxDatagramSize);
  return buffer;
}

// Everything the server has to send, each datagram handed to the client at once.
void flush_server(Session& s, Clock::time_point now) {
  static std::vector<uint8_t> out(kMaxDatagramSize);
  for (;;) {
    const size_t n = s.server.poll_transmit(out, now);
    if (n == 0) break;
    const std::span<const uint8_t> datagram(out.data(), n);
    // §2.3, §5.4: within the session's limit, with our connection id, sealed.
    check(n <= s.config.max_datagram);
    DatagramHeader header;
    check(read_header(datagram, s.config.max_datagram, header) == DropReason::kNone);
    check(is_sealed(header.type) && header.connection_id == kConnectionId);
    const bool was_closed = s.client.closed();
    const auto received = s.client.on_datagram(header, datagram, now, s.client_events);
    // Nothing lost, nothing reordered: each one authenticates and parses (§3.1).
    if (!was_closed) check(received.drop == DropReason::kNone);
  }
  // The client's ACKs have nowhere to go: its packet numbers would collide with the
  // fuzzed ones. Acknowledging the server is left to the fuzzed ACK frames.
  while (s.client.poll_transmit(out, now) != 0) {
  }
}

void run(Session& s, std::span<const uint8_t> plaintext, Clock::time_point now) {
  ++s.inputs;
  if (s.server.next_timer() <= now) s.server.on_timer(now, s.server_events);
  if (s.client.next_timer() <= now) s.client.on_timer(now, s.client_events);

  // Seal the input as the client's next packet (§5.4): header, then AES-GCM over it.
  auto& buffer = datagram_buffer();
  const uint64_t pn = s.next_packet_number++;
  const DatagramHeader sent{
      .type = DatagramType::kSealed0, .connection_id = kConnectionId, .packet_number = pn};
  write_header(sent, buffer);
  const size_t sealed = s.sealer.seal(pn, std::span(buffer).first(kHeaderSize), plaintext,
                                      std::span(buffer).subspan(kHeaderSize));
  check(sealed == plaintext.size() + crypto::kPacketTagSize);
  const std::span<const uint8_t> datagram(buffer.data(), kHeaderSize + sealed);

  DatagramHeader header;
  check(read_header(datagram, kMaxDatagramSize, header) == DropReason::kNone);
  const bool was_closed = s.server.closed();
  const auto received = s.server.on_datagram(header, datagram, now, s.server_events);
  if (!was_closed) {
    // Authentic and new: only its payload can be refused (§3.1).
    check(received.drop == DropReason::kNone || received.drop == DropReason::kBadPayload);
  }
  flush_server(s, now);

  // §5.6: flow control holds. A unit goes out alone when nothing is unacknowledged, so
  // the window may overshoot by one datagram; an empty backlog takes any one message.
  check(s.server.unacked_bytes() <= s.config.max_unacked_bytes + s.config.max_datagram);
  check(s.server.backlog_bytes() <=
        s.config.max_send_backlog + s.config.max_message_size + s.config.max_datagram);
  // §5.6-5.7: what the client makes the server hold stays within one receive budget,
  // ordered messages behind a gap and unfinished fragments together.
  check(s.server.received_buffered_bytes() <= s.config.receive_budget);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; see datagram_fuzz.cpp.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxPlaintext) return 0;
  static const Handshaken keys = handshake();
  static Clock::time_point now = Clock::time_point() + 1000s;
  static size_t pairs = 0;
  static std::unique_ptr<Session> session;
  if (!session || session->over()) {
    session.reset();  // the old pair's memory goes before the new one's is taken
    session = std::make_unique<Session>(keys, pairs++, now);
  }
  now += kStep;
  run(*session, {data, size}, now);
  return 0;
}
