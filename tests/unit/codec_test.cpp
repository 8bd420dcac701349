// The datagram codec of the secure transport (docs/protocol.md §2-3, §5.2-5.3): the
// cleartext header, the strict parser of a decrypted prism.v1.Packet, and the handshake
// layouts, fed with valid, malformed, random and mutated input.
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "net/crypto/noise_nk.hpp"
#include "net/datagram.hpp"
#include "net/session/handshake.hpp"

namespace prism::net {
namespace {

constexpr DatagramType kAllTypes[] = {DatagramType::kInitial, DatagramType::kRetry,
                                      DatagramType::kHandshake, DatagramType::kSealed0,
                                      DatagramType::kSealed1};

// A header followed by `payload_len` bytes of payload.
std::vector<uint8_t> datagram_with(const DatagramHeader& header, size_t payload_len = 1) {
  std::vector<uint8_t> out(kHeaderSize + payload_len, 0xAB);
  write_header(header, out);
  return out;
}

std::vector<uint8_t> serialize(const v1::Packet& packet) {
  std::vector<uint8_t> out(packet.ByteSizeLong());
  packet.SerializeToArray(out.data(), static_cast<int>(out.size()));
  return out;
}

DropReason parse(const v1::Packet& packet) {
  v1::Packet out;
  return parse_payload(serialize(packet), out);
}

v1::Packet request(uint32_t request_id, uint32_t packet_id = 101, std::string payload = "hi") {
  v1::Packet p;
  auto* m = p.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(packet_id);
  m->set_payload(std::move(payload));
  return p;
}

v1::Packet ack(std::initializer_list<uint64_t> ranges) {
  v1::Packet p;
  auto* a = p.add_frames()->mutable_ack();
  for (uint64_t r : ranges) a->add_ranges(r);
  return p;
}

v1::Packet fragment(v1::Delivery delivery, uint32_t index, uint32_t count,
                    std::string data = "piece") {
  v1::Packet p;
  auto* f = p.add_frames()->mutable_fragment();
  f->set_delivery(delivery);
  f->set_sequence(3);
  f->set_index(index);
  f->set_count(count);
  f->set_data(std::move(data));
  return p;
}

// Appends a field this version does not know (number 15, varint 1) to a serialized message.
std::string with_unknown_field(const google::protobuf::Message& m) {
  std::string bytes = m.SerializeAsString();
  bytes.push_back(static_cast<char>(15 << 3));
  bytes.push_back(1);
  return bytes;
}

// ---- header (protocol.md §2) ------------------------------------------------------------

TEST(DatagramHeader, RoundTripsEveryTypeAndField) {
  for (const DatagramType type : kAllTypes) {
    const DatagramHeader h{.type = type,
                           .connection_id = 0x0102030405060708ull,
                           .packet_number = 0xfffffffffffffffeull};
    const auto bytes = datagram_with(h);
    EXPECT_EQ(bytes[0], kWireVersion);
    EXPECT_EQ(bytes[1], static_cast<uint8_t>(type));
    EXPECT_EQ(bytes[2], 0x01);  // big endian (protocol.md §2.1)
    EXPECT_EQ(bytes[9], 0x08);
    EXPECT_EQ(bytes[10], 0xff);
    EXPECT_EQ(bytes[17], 0xfe);

    DatagramHeader parsed;
    ASSERT_EQ(read_header(bytes, kMaxDatagramSize, parsed), DropReason::kNone)
        << "type " << int(bytes[1]);
    EXPECT_EQ(parsed.version, kWireVersion);
    EXPECT_EQ(parsed.type, type);
    EXPECT_EQ(parsed.connection_id, h.connection_id);
    EXPECT_EQ(parsed.packet_number, h.packet_number);
  }
}

TEST(DatagramHeader, OnlySealedTypesAreSealed) {
  EXPECT_TRUE(is_sealed(DatagramType::kSealed0));
  EXPECT_TRUE(is_sealed(DatagramType::kSealed1));
  EXPECT_FALSE(is_sealed(DatagramType::kInitial));
  EXPECT_FALSE(is_sealed(DatagramType::kRetry));
  EXPECT_FALSE(is_sealed(DatagramType::kHandshake));
}

TEST(DatagramHeader, HeaderWithoutPayloadIsTruncated) {
  const auto bytes = datagram_with({}, 4);
  DatagramHeader h;
  for (size_t len = 0; len <= kHeaderSize; ++len) {
    EXPECT_EQ(read_header({bytes.data(), len}, kMaxDatagramSize, h), DropReason::kTruncated)
        << "length " << len;
  }
  EXPECT_EQ(read_header({bytes.data(), kHeaderSize + 1}, kMaxDatagramSize, h), DropReason::kNone);
}

TEST(DatagramHeader, OversizedIsRejectedBeforeAnythingElse) {
  auto bytes = datagram_with({}, 2000);
  DatagramHeader h;
  EXPECT_EQ(read_header(bytes, 1400, h), DropReason::kOversized);
  EXPECT_EQ(read_header(bytes, bytes.size(), h), DropReason::kNone);
  EXPECT_EQ(read_header(bytes, bytes.size() - 1, h), DropReason::kOversized);
  bytes[0] = 0;  // a bad version does not matter: the size is checked first
  EXPECT_EQ(read_header(bytes, 1400, h), DropReason::kOversized);
}

TEST(DatagramHeader, WrongVersionIsRejected) {
  auto bytes = datagram_with({});
  DatagramHeader h;
  for (const uint8_t version : {0, 1, 3, 0xff}) {  // 1: the legacy wire format
    bytes[0] = version;
    EXPECT_EQ(read_header(bytes, kMaxDatagramSize, h), DropReason::kBadVersion)
        << "version " << int(version);
  }
}

TEST(DatagramHeader, UnknownTypesIncludingTheOldPlaintextOneAreRejected) {
  const std::set<uint8_t> known = {0x01, 0x02, 0x03, 0x20, 0x21};
  auto bytes = datagram_with({});
  DatagramHeader h;
  for (int type = 0; type < 256; ++type) {
    bytes[1] = static_cast<uint8_t>(type);
    const auto expected = known.contains(static_cast<uint8_t>(type)) ? DropReason::kNone
                                                                    : DropReason::kBadType;
    EXPECT_EQ(read_header(bytes, kMaxDatagramSize, h), expected) << "type " << type;
  }
  bytes[1] = 0x10;  // the removed plaintext datagram
  EXPECT_EQ(read_header(bytes, kMaxDatagramSize, h), DropReason::kBadType);
}

TEST(DropReason, EveryReasonHasItsOwnName) {
  std::set<std::string_view> names;
  for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r) {
    const auto name = drop_reason_name(static_cast<DropReason>(r));
    EXPECT_NE(name, "unknown") << "reason " << r;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

// ---- payload (protocol.md §3.1) -----------------------------------------------------------

TEST(FramePayload, RequestParses) {
  v1::Packet out;
  ASSERT_EQ(parse_payload(serialize(request(7, 101)), out), DropReason::kNone);
  ASSERT_EQ(out.frames_size(), 1);
  EXPECT_EQ(out.frames(0).message().request_id(), 7u);
  EXPECT_EQ(out.frames(0).message().payload(), "hi");
}

TEST(FramePayload, SeveralFramesShareOneDatagram) {
  v1::Packet p = request(1, 101);
  p.add_frames()->mutable_ping()->set_nonce(9);
  p.add_frames()->mutable_pong()->set_nonce(9);
  p.add_frames()->mutable_close()->set_reason("bye");
  *p.add_frames() = ack({10, 12}).frames(0);
  *p.add_frames() = request(2, 102).frames(0);
  v1::Packet out;
  ASSERT_EQ(parse_payload(serialize(p), out), DropReason::kNone);
  EXPECT_EQ(out.frames_size(), 6);
}

TEST(FramePayload, EmptyPacketIsRejected) {
  v1::Packet out;
  EXPECT_EQ(parse_payload({}, out), DropReason::kBadPayload);
  EXPECT_EQ(parse(v1::Packet()), DropReason::kBadPayload);
}

TEST(FramePayload, FrameWithoutKindIsRejected) {
  v1::Packet p = request(1);
  p.add_frames();  // one good frame does not excuse an empty one
  EXPECT_EQ(parse(p), DropReason::kBadPayload);
}

TEST(FramePayload, MessageWithRequestIdZeroIsRejected) {
  EXPECT_EQ(parse(request(0)), DropReason::kBadPayload);
  v1::Packet reply = request(0);
  reply.mutable_frames(0)->mutable_message()->set_is_reply(true);
  EXPECT_EQ(parse(reply), DropReason::kBadPayload);
}

TEST(FramePayload, NonProtobufBytesAreRejected) {
  v1::Packet out;
  const std::vector<uint8_t> garbage = {0xff, 0xff, 0xff, 0xff, 0x0f};
  EXPECT_EQ(parse_payload(garbage, out), DropReason::kBadPayload);
  // A frame whose length runs past the end.
  const std::vector<uint8_t> overrun = {0x0A, 0x10, 0x0A};
  EXPECT_EQ(parse_payload(overrun, out), DropReason::kBadPayload);
}

TEST(FramePayload, UnknownFieldsAreRejectedAtEveryLevel) {
  v1::Packet out;
  auto check = [&](const std::string& bytes, const char* where) {
    EXPECT_EQ(parse_payload({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, out),
              DropReason::kBadPayload)
        << where;
  };
  // In the packet.
  check(with_unknown_field(request(1)), "packet");
  // In a frame, and in each kind of frame body.
  auto frame_with_unknown = [](v1::Frame frame) {
    const std::string f = with_unknown_field(frame);
    std::string bytes;
    bytes.push_back(0x0A);
    bytes.push_back(static_cast<char>(f.size()));
    return bytes + f;
  };
  check(frame_with_unknown(request(1).frames(0)), "frame");
  auto body_with_unknown = [](int field, const google::protobuf::Message& body) {
    const std::string b = with_unknown_field(body);
    std::string frame;
    frame.push_back(static_cast<char>((field << 3) | 2));
    frame.push_back(static_cast<char>(b.size()));
    frame += b;
    std::string bytes;
    bytes.push_back(0x0A);
    bytes.push_back(static_cast<char>(frame.size()));
    return bytes + frame;
  };
  check(body_with_unknown(1, request(1).frames(0).message()), "message");
  v1::Ping ping;
  check(body_with_unknown(2, ping), "ping");
  v1::Pong pong;
  check(body_with_unknown(3, pong), "pong");
  v1::Close close;
  check(body_with_unknown(4, close), "close");
  check(body_with_unknown(5, ack({4, 6}).frames(0).ack()), "ack");
  check(body_with_unknown(6, fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 2).frames(0).fragment()),
        "fragment");
  v1::PathChallenge challenge;
  challenge.set_data(1);
  check(body_with_unknown(7, challenge), "path_challenge");
  v1::PathResponse response;
  response.set_data(1);
  check(body_with_unknown(8, response), "path_response");
}

// protocol.md §5.5: ACK ranges are (first, last) pairs, largest first, with a gap between.
TEST(FramePayload, WellFormedAcksAreAccepted) {
  EXPECT_EQ(parse(ack({5, 5})), DropReason::kNone);                 // one packet
  EXPECT_EQ(parse(ack({0, 0})), DropReason::kNone);                 // packet number 0
  EXPECT_EQ(parse(ack({10, 12, 5, 8})), DropReason::kNone);         // 9 missing
  EXPECT_EQ(parse(ack({100, 200, 50, 60, 0, 10})), DropReason::kNone);
  EXPECT_EQ(parse(ack({UINT64_MAX, UINT64_MAX, 0, UINT64_MAX - 2})), DropReason::kNone);
}

TEST(FramePayload, AckWithoutRangesIsRejected) { EXPECT_EQ(parse(ack({})), DropReason::kBadPayload); }

TEST(FramePayload, AckWithOddRangeCountIsRejected) {
  EXPECT_EQ(parse(ack({5})), DropReason::kBadPayload);
  EXPECT_EQ(parse(ack({10, 12, 5})), DropReason::kBadPayload);
}

TEST(FramePayload, AckRangeWithFirstAfterLastIsRejected) {
  EXPECT_EQ(parse(ack({8, 5})), DropReason::kBadPayload);
  EXPECT_EQ(parse(ack({10, 12, 8, 5})), DropReason::kBadPayload);
}

TEST(FramePayload, OverlappingAckRangesAreRejected) {
  EXPECT_EQ(parse(ack({10, 12, 5, 11})), DropReason::kBadPayload);
  EXPECT_EQ(parse(ack({10, 12, 5, 10})), DropReason::kBadPayload);   // share packet 10
  EXPECT_EQ(parse(ack({10, 12, 10, 12})), DropReason::kBadPayload);  // the same range twice
  EXPECT_EQ(parse(ack({10, 12, 5, 20})), DropReason::kBadPayload);   // contains the first
}

TEST(FramePayload, TouchingAckRangesAreRejected) {
  // (10,12) and (5,9) are one range (5,12) written as two.
  EXPECT_EQ(parse(ack({10, 12, 5, 9})), DropReason::kBadPayload);
  EXPECT_EQ(parse(ack({10, 12, 5, 8})), DropReason::kNone);
}

TEST(FramePayload, AckRangesNotLargestFirstAreRejected) {
  EXPECT_EQ(parse(ack({1, 2, 5, 8})), DropReason::kBadPayload);
  EXPECT_EQ(parse(ack({100, 200, 0, 10, 50, 60})), DropReason::kBadPayload);
}

// protocol.md §5.7: fragments of reliable messages only, numbered 0..count-1 of 2..65535.
TEST(FramePayload, WellFormedFragmentsAreAccepted) {
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 2)), DropReason::kNone);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_UNORDERED, 1, 2)), DropReason::kNone);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 65534, 65535)), DropReason::kNone);
}

TEST(FramePayload, UnreliableFragmentIsRejected) {
  EXPECT_EQ(parse(fragment(v1::DELIVERY_UNRELIABLE, 0, 2)), DropReason::kBadPayload);
}

TEST(FramePayload, FragmentCountOutOfRangeIsRejected) {
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 0)), DropReason::kBadPayload);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 1)), DropReason::kBadPayload);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 65536)), DropReason::kBadPayload);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, UINT32_MAX)),
            DropReason::kBadPayload);
}

TEST(FramePayload, FragmentIndexAtOrPastCountIsRejected) {
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 2, 2)), DropReason::kBadPayload);
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 7, 2)), DropReason::kBadPayload);
}

TEST(FramePayload, EmptyFragmentIsRejected) {
  EXPECT_EQ(parse(fragment(v1::DELIVERY_RELIABLE_ORDERED, 0, 2, "")), DropReason::kBadPayload);
}

TEST(FramePayload, PathChallengeAndResponseAreAccepted) {
  v1::Packet p;
  p.add_frames()->mutable_path_challenge()->set_data(0x1122334455667788ull);
  p.add_frames()->mutable_path_response()->set_data(0x8877665544332211ull);
  p.add_frames()->mutable_path_challenge();  // data 0 is a value like any other
  v1::Packet out;
  ASSERT_EQ(parse_payload(serialize(p), out), DropReason::kNone);
  EXPECT_EQ(out.frames(0).path_challenge().data(), 0x1122334455667788ull);
  EXPECT_EQ(out.frames(1).path_response().data(), 0x8877665544332211ull);
  EXPECT_TRUE(out.frames(2).has_path_challenge());
}

// ---- random and mutated input ------------------------------------------------------------

// What a successful parse promises, checked independently of the parser.
void expect_well_formed(const v1::Packet& p) {
  ASSERT_GT(p.frames_size(), 0);
  for (const auto& f : p.frames()) {
    ASSERT_NE(f.kind_case(), v1::Frame::KIND_NOT_SET);
    if (f.has_message()) {
      ASSERT_NE(f.message().request_id(), 0u);
    }
    if (f.has_ack()) {
      const auto& r = f.ack().ranges();
      ASSERT_TRUE(!r.empty() && r.size() % 2 == 0);
      for (int i = 0; i < r.size(); i += 2) {
        ASSERT_LE(r[i], r[i + 1]);
        if (i > 0) {
          ASSERT_LT(r[i + 1], r[i - 2]);
          ASSERT_GE(r[i - 2] - r[i + 1], 2u);  // disjoint and not touching
        }
      }
    }
    if (f.has_fragment()) {
      const auto& fr = f.fragment();
      ASSERT_NE(fr.delivery(), v1::DELIVERY_UNRELIABLE);
      ASSERT_GE(fr.count(), 2u);
      ASSERT_LE(fr.count(), 65535u);
      ASSERT_LT(fr.index(), fr.count());
      ASSERT_FALSE(fr.data().empty());
    }
  }
}

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// Valid inputs of every kind the parsers know, to mutate.
std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  const auto key = crypto::KeyPair::generate();
  session::HandshakeServer server(key);
  session::HandshakeClient client(key.public_key, 0x5eed);
  const std::vector<uint8_t> address = {127, 0, 0, 1, 0x1e, 0x61};
  const auto now = std::chrono::system_clock::now();
  out.push_back(client.initial());
  auto retry = server.check(client.initial(), address, now);
  out.push_back(retry.reply);
  EXPECT_EQ(client.on_datagram(retry.reply), session::HandshakeClient::Progress::kRetry);
  out.push_back(client.initial());  // with the cookie
  v1::ServerHello hello;
  hello.set_connection_id(0xABCDEF);
  out.push_back(server.accept(client.initial(), hello, now).reply);

  v1::Packet p = request(1, 101, std::string(40, 'p'));
  p.add_frames()->mutable_ping()->set_nonce(3);
  *p.add_frames() = ack({100, 200, 50, 60, 0, 10}).frames(0);
  *p.add_frames() = fragment(v1::DELIVERY_RELIABLE_UNORDERED, 1, 3).frames(0);
  p.add_frames()->mutable_path_challenge()->set_data(77);
  p.add_frames()->mutable_path_response()->set_data(78);
  p.add_frames()->mutable_close()->set_reason("x");
  const auto payload = serialize(p);
  out.push_back(payload);
  auto sealed = datagram_with({.type = DatagramType::kSealed1, .connection_id = 9}, 0);
  sealed.insert(sealed.end(), payload.begin(), payload.end());
  out.push_back(sealed);
  return out;
}

// Every parser on one input; whatever they accept must hold what they promise.
void parse_everything(std::span<const uint8_t> input) {
  DatagramHeader header;
  if (read_header(input, kMaxDatagramSize, header) == DropReason::kNone) {
    ASSERT_GT(input.size(), kHeaderSize);
  }
  v1::Packet packet;
  if (parse_payload(input, packet) == DropReason::kNone) expect_well_formed(packet);
  if (input.size() > kHeaderSize &&
      parse_payload(input.subspan(kHeaderSize), packet) == DropReason::kNone) {
    expect_well_formed(packet);
  }
  session::InitialView initial;
  if (session::parse_initial(input, initial) == DropReason::kNone) {
    ASSERT_GE(input.size(), session::kMinInitialSize);
    ASSERT_TRUE(initial.cookie.empty() || initial.cookie.size() == session::kCookieSize);
    ASSERT_EQ(initial.noise.size(), session::kInitialNoiseSize);
    ASSERT_TRUE(inside(initial.cookie, input) && inside(initial.noise, input));
  }
  std::span<const uint8_t> cookie;
  if (session::parse_retry(input, header, cookie) == DropReason::kNone) {
    ASSERT_EQ(input.size(), session::kRetrySize);
    ASSERT_EQ(cookie.size(), session::kCookieSize);
  }
  std::span<const uint8_t> noise;
  if (session::parse_handshake(input, header, noise) == DropReason::kNone) {
    ASSERT_LE(noise.size(), session::kMaxHandshakeNoiseSize);
    ASSERT_TRUE(inside(noise, input));
  }
}

// A few hundred thousand inputs: random bytes (half with a valid header, so the parsers
// behind it see the garbage too) and valid datagrams with bytes flipped, cut or extended.
TEST(CodecRobustness, RandomAndMutatedInputsNeverCrashAnyParser) {
  const auto valid = seeds();
  // Random string fields are mostly invalid UTF-8, which protobuf logs on every parse.
  google::protobuf::LogSilencer quiet;
  std::mt19937_64 rng(20261123);
  std::vector<uint8_t> input;
  constexpr int kIterations = 300000;
  for (int i = 0; i < kIterations; ++i) {
    if (i % 3 == 0) {
      // Mostly short, sometimes as long as an INITIAL.
      const size_t len = (i % 12 == 0) ? rng() % 1600 : rng() % 160;
      input.resize(len);
      for (size_t at = 0; at < len; at += 8) {
        const uint64_t r = rng();
        std::memcpy(input.data() + at, &r, std::min<size_t>(8, len - at));
      }
      if (i % 2 == 0 && len > 1) {
        input[0] = kWireVersion;
        input[1] = static_cast<uint8_t>(kAllTypes[rng() % std::size(kAllTypes)]);
      }
    } else {
      input = valid[rng() % valid.size()];
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) input[rng() % input.size()] = static_cast<uint8_t>(rng());
      switch (rng() % 4) {
        case 0:
          input.resize(rng() % (input.size() + 1));
          break;
        case 1:
          input.resize(input.size() + rng() % 32, static_cast<uint8_t>(rng() % 2 ? 0 : rng()));
          break;
        default:
          break;
      }
    }
    parse_everything(input);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "iteration " << i << ", " << input.size() << " bytes";
      return;
    }
  }
}

// The unmutated seeds are accepted by the parser meant for them.
TEST(CodecRobustness, SeedsAreValid) {
  const auto valid = seeds();
  session::InitialView initial;
  EXPECT_EQ(session::parse_initial(valid[0], initial), DropReason::kNone);
  EXPECT_TRUE(initial.cookie.empty());
  DatagramHeader header;
  std::span<const uint8_t> part;
  EXPECT_EQ(session::parse_retry(valid[1], header, part), DropReason::kNone);
  EXPECT_EQ(session::parse_initial(valid[2], initial), DropReason::kNone);
  EXPECT_EQ(initial.cookie.size(), session::kCookieSize);
  EXPECT_EQ(session::parse_handshake(valid[3], header, part), DropReason::kNone);
  v1::Packet packet;
  EXPECT_EQ(parse_payload(valid[4], packet), DropReason::kNone);
  EXPECT_EQ(read_header(valid[5], kMaxDatagramSize, header), DropReason::kNone);
  EXPECT_EQ(parse_payload(std::span(valid[5]).subspan(kHeaderSize), packet), DropReason::kNone);
  // Each handshake parser refuses the other types.
  EXPECT_EQ(session::parse_retry(valid[0], header, part), DropReason::kBadType);
  EXPECT_EQ(session::parse_handshake(valid[1], header, part), DropReason::kBadType);
  EXPECT_EQ(session::parse_initial(valid[5], initial), DropReason::kTruncated);
}

}  // namespace
}  // namespace prism::net
