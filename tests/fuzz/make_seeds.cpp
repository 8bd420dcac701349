// Writes the seed corpora of the fuzz targets (docs/protocol.md §2-5):
//   frame_fuzz, session_fuzz  decrypted payloads, one per frame kind and a few sessions'
//                             worth of combinations (§3.1, §5.5-5.9)
//   datagram_fuzz             the handshake datagrams (§5.2-5.3), sealed datagrams (§5.4),
//                             and the payloads above behind a cleartext header
//   handshake_fuzz            mode byte + material, as handshake_fuzz.cpp lays them out
// Usage: make_seeds <dir>  →  <dir>/<target>/<seed>; run by the build, never committed.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fixed_session.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"
#include "net/session/handshake.hpp"

namespace {

using prism::net::DatagramHeader;
using prism::net::DatagramType;
using prism::net::kHeaderSize;
using prism::v1::Packet;
using Bytes = std::vector<uint8_t>;

prism::v1::Message* add_message(Packet& packet, uint32_t request_id, std::string payload,
                                prism::v1::Delivery delivery, uint64_t sequence) {
  auto* m = packet.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(101);  // default.echo (§4)
  m->set_payload(std::move(payload));
  m->set_delivery(delivery);
  m->set_sequence(sequence);
  return m;
}

void add_ack(Packet& packet, std::vector<std::pair<uint64_t, uint64_t>> ranges, uint32_t delay) {
  auto* ack = packet.add_frames()->mutable_ack();
  for (const auto& [first, last] : ranges) {
    ack->add_ranges(first);
    ack->add_ranges(last);
  }
  ack->set_delay_us(delay);
}

// §5.7: the pieces of a serialized message; all but the last of one size.
void add_fragments(Packet& packet, const prism::v1::Message& message, uint32_t count,
                   prism::v1::Delivery delivery, uint64_t sequence, uint32_t first_index,
                   uint32_t end_index) {
  const std::string whole = message.SerializeAsString();
  const size_t piece = (whole.size() + count - 1) / count;
  for (uint32_t i = first_index; i < end_index; ++i) {
    auto* f = packet.add_frames()->mutable_fragment();
    f->set_delivery(delivery);
    f->set_sequence(sequence);
    f->set_index(i);
    f->set_count(count);
    f->set_data(whole.substr(i * piece, piece));
  }
}

// The decrypted payloads, named after what they hold.
std::vector<std::pair<std::string, Packet>> payloads() {
  using namespace prism::v1;
  std::vector<std::pair<std::string, Packet>> out;
  auto add = [&](std::string name, auto build) {
    Packet p;
    build(p);
    out.emplace_back(std::move(name), std::move(p));
  };

  add("ping", [](Packet& p) { p.add_frames()->mutable_ping()->set_nonce(0x0102030405060708ull); });
  add("pong", [](Packet& p) { p.add_frames()->mutable_pong()->set_nonce(7); });
  add("close", [](Packet& p) { p.add_frames()->mutable_close()->set_reason("bye"); });
  add("path_challenge", [](Packet& p) { p.add_frames()->mutable_path_challenge()->set_data(42); });
  add("path_response", [](Packet& p) { p.add_frames()->mutable_path_response()->set_data(42); });
  // §5.5: the server's first packets acknowledged, then with gaps.
  add("ack_first", [](Packet& p) { add_ack(p, {{0, 0}}, 100); });
  add("ack_ranges", [](Packet& p) { add_ack(p, {{10, 20}, {4, 6}, {0, 1}}, 5000); });
  // The worked example of §5: default.echo, request id 1, "hello", each delivery mode.
  add("request_ordered", [](Packet& p) { add_message(p, 1, "hello", DELIVERY_RELIABLE_ORDERED, 0); });
  add("request_unordered",
      [](Packet& p) { add_message(p, 1, "hello", DELIVERY_RELIABLE_UNORDERED, 0); });
  add("request_unreliable", [](Packet& p) { add_message(p, 1, "hello", DELIVERY_UNRELIABLE, 0); });
  // Ordered messages out of order: 1 waits for 0, which comes in the same packet after it.
  add("requests_reordered", [](Packet& p) {
    add_message(p, 2, "second", DELIVERY_RELIABLE_ORDERED, 1);
    add_message(p, 1, "first", DELIVERY_RELIABLE_ORDERED, 0);
  });
  // A request whose echo does not fit one datagram, so the reply is fragmented (§5.7).
  add("request_large_reply",
      [](Packet& p) { add_message(p, 3, std::string(4000, 'x'), DELIVERY_RELIABLE_ORDERED, 0); });
  add("reply_ignored", [](Packet& p) {
    auto* m = add_message(p, 5, "", DELIVERY_RELIABLE_ORDERED, 0);
    m->set_is_reply(true);
    m->set_status(STATUS_NOT_FOUND);
    m->set_status_message("gone");
  });
  // §5.7: a message in three fragments, all in one packet (complete) or the first only.
  Message big;
  big.set_request_id(9);
  big.set_packet_id(101);
  big.set_payload(std::string(600, 'f'));
  add("fragments_complete",
      [&](Packet& p) { add_fragments(p, big, 3, DELIVERY_RELIABLE_ORDERED, 0, 0, 3); });
  add("fragments_unordered",
      [&](Packet& p) { add_fragments(p, big, 3, DELIVERY_RELIABLE_UNORDERED, 0, 0, 3); });
  add("fragment_first",
      [&](Packet& p) { add_fragments(p, big, 3, DELIVERY_RELIABLE_ORDERED, 0, 0, 1); });
  add("fragment_last",
      [&](Packet& p) { add_fragments(p, big, 3, DELIVERY_RELIABLE_ORDERED, 0, 2, 3); });
  // The review's fragment bomb: first fragments announcing 65535 siblings, several
  // messages in one packet, none ever completed (§5.7: charged by what arrived, expired
  // by the timer).
  add("fragment_bomb", [](Packet& p) {
    for (uint64_t sequence = 0; sequence < 4; ++sequence) {
      auto* f = p.add_frames()->mutable_fragment();
      f->set_delivery(DELIVERY_RELIABLE_ORDERED);
      f->set_sequence(sequence);
      f->set_index(0);
      f->set_count(65535);
      f->set_data(std::string(16, 'b'));
    }
  });
  // Every frame kind coalesced in one packet (§3.1).
  add("multi_frame", [&](Packet& p) {
    add_ack(p, {{0, 3}}, 0);
    add_message(p, 1, "abc", DELIVERY_RELIABLE_ORDERED, 0);
    add_message(p, 2, "def", DELIVERY_RELIABLE_UNORDERED, 0);
    add_message(p, 3, "ghi", DELIVERY_UNRELIABLE, 0);
    add_fragments(p, big, 2, DELIVERY_RELIABLE_ORDERED, 1, 0, 2);
    p.add_frames()->mutable_ping()->set_nonce(9);
    p.add_frames()->mutable_pong()->set_nonce(10);
    p.add_frames()->mutable_path_challenge()->set_data(11);
    p.add_frames()->mutable_path_response()->set_data(12);
    p.add_frames()->mutable_close()->set_reason("bye");
  });
  return out;
}

Bytes serialize(const Packet& packet) {
  Bytes out(packet.ByteSizeLong());
  packet.SerializeToArray(out.data(), static_cast<int>(out.size()));
  return out;
}

Bytes with_header(DatagramType type, uint64_t packet_number, std::span<const uint8_t> payload) {
  Bytes out(kHeaderSize + payload.size());
  prism::net::write_header(
      DatagramHeader{.type = type, .connection_id = prism::fuzz::kConnectionId,
                     .packet_number = packet_number},
      out);
  std::copy(payload.begin(), payload.end(), out.begin() + kHeaderSize);
  return out;
}

// §5.4: `payload` sealed under a fixed key, as a session would send it.
Bytes sealed(uint64_t packet_number, std::span<const uint8_t> payload) {
  std::array<uint8_t, 32> key{};
  key.fill(0x42);
  prism::net::crypto::PacketSealer sealer(key);
  Bytes out = with_header(DatagramType::kSealed0, packet_number, payload);
  out.resize(out.size() + prism::net::crypto::kPacketTagSize);
  const size_t n = sealer.seal(packet_number, std::span(out).first(kHeaderSize), payload,
                               std::span(out).subspan(kHeaderSize));
  out.resize(kHeaderSize + n);
  return out;
}

Bytes prefixed(uint8_t mode, std::span<const uint8_t> material) {
  Bytes out{mode};
  out.insert(out.end(), material.begin(), material.end());
  return out;
}

// The handshake of §5.2-5.3 between a server with the fixed key and client kClientId, as
// the handshake_fuzz modes take it.
struct HandshakeSeeds {
  Bytes initial;              // without cookie
  Bytes retry;
  Bytes initial_with_cookie;  // the cookie verifies only in this run's server
  Bytes handshake;            // for another client attempt: the client under test fails it
};

HandshakeSeeds handshake_seeds() {
  using namespace prism::net::session;
  const auto key = prism::fuzz::server_key();
  HandshakeServer server(key);
  HandshakeClient client(key.public_key, prism::fuzz::kClientId);
  HandshakeSeeds s;
  s.initial = client.initial();
  const auto now = std::chrono::system_clock::now();
  s.retry = server.check(client.initial(), prism::fuzz::kAddress, now).reply;
  client.on_datagram(s.retry);
  s.initial_with_cookie = client.initial();
  s.handshake = server.accept(client.initial(), prism::fuzz::server_hello(), now).reply;
  return s;
}

bool write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::vector<std::tuple<std::string, std::string, Bytes>> files;  // target, name, bytes

  uint64_t packet_number = 0;
  for (const auto& [name, packet] : payloads()) {
    const Bytes payload = serialize(packet);
    files.emplace_back("frame_fuzz", name, payload);
    files.emplace_back("session_fuzz", name, payload);
    files.emplace_back("datagram_fuzz", "plain_" + name,
                       with_header(DatagramType::kSealed0, packet_number, payload));
    files.emplace_back("datagram_fuzz", "sealed_" + name, sealed(packet_number, payload));
    ++packet_number;
  }

  const HandshakeSeeds h = handshake_seeds();
  if (h.retry.size() != prism::net::session::kRetrySize || h.handshake.empty()) {
    std::fprintf(stderr, "make_seeds: the handshake did not complete\n");
    return 1;
  }
  files.emplace_back("datagram_fuzz", "initial", h.initial);
  files.emplace_back("datagram_fuzz", "initial_with_cookie", h.initial_with_cookie);
  files.emplace_back("datagram_fuzz", "retry", h.retry);
  files.emplace_back("datagram_fuzz", "handshake", h.handshake);
  // handshake_fuzz.cpp's modes: 0 server, 1 fresh client, 2 client after RETRY, 3 and 4
  // masks over an INITIAL with and without cookie, 5 a ServerHello, 6 a mask over a
  // HANDSHAKE. A zero mask replays the valid datagram unchanged.
  files.emplace_back("handshake_fuzz", "server_initial", prefixed(0, h.initial));
  files.emplace_back("handshake_fuzz", "server_initial_with_cookie",
                     prefixed(0, h.initial_with_cookie));
  files.emplace_back("handshake_fuzz", "client_retry", prefixed(1, h.retry));
  files.emplace_back("handshake_fuzz", "client_handshake", prefixed(1, h.handshake));
  files.emplace_back("handshake_fuzz", "retried_client_retry", prefixed(2, h.retry));
  files.emplace_back("handshake_fuzz", "retried_client_handshake", prefixed(2, h.handshake));
  files.emplace_back("handshake_fuzz", "mask_initial_with_cookie",
                     prefixed(3, Bytes(h.initial_with_cookie.size(), 0)));
  Bytes flipped(h.initial_with_cookie.size(), 0);
  flipped[kHeaderSize + 1 + prism::net::session::kCookieSize + 2 + 40] = 0x80;  // Noise tag
  files.emplace_back("handshake_fuzz", "mask_initial_tag_flipped", prefixed(3, flipped));
  files.emplace_back("handshake_fuzz", "mask_initial", prefixed(4, Bytes(h.initial.size(), 0)));
  const std::string hello = prism::fuzz::server_hello().SerializeAsString();
  files.emplace_back("handshake_fuzz", "server_hello",
                     prefixed(5, {reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}));
  files.emplace_back("handshake_fuzz", "mask_handshake", prefixed(6, Bytes(h.handshake.size(), 0)));

  for (const auto& [target, name, bytes] : files) {
    std::filesystem::create_directories(root / target);
    if (!write_file(root / target / name, bytes)) {
      std::fprintf(stderr, "make_seeds: cannot write %s\n", (root / target / name).c_str());
      return 1;
    }
  }
  return 0;
}
