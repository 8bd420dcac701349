// The datagram codec and the pipeline in front of it (docs/protocol.md §2-3): headers,
// strict payloads, and bad input that must be counted and dropped without a reply.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "metrics/metrics.hpp"
#include "net/datagram.hpp"
#include "net/pipeline.hpp"

namespace prism::net {
namespace {

std::vector<uint8_t> encode(const v1::Packet& packet, const DatagramHeader& header = {}) {
  std::vector<uint8_t> out(kMaxDatagramSize);
  out.resize(encode_datagram(header, packet, out));
  return out;
}

v1::Packet request(uint32_t request_id, uint32_t packet_id, std::string payload = "hi") {
  v1::Packet p;
  auto* m = p.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(packet_id);
  m->set_payload(std::move(payload));
  return p;
}

uint64_t dropped(DropReason reason) {
  return metrics::registry()
      .counter("prism_datagrams_dropped_total",
               "reason=\"" + std::string(drop_reason_name(reason)) + "\"", "")
      .value();
}

// Captures what the pipeline would send.
struct CaptureOutbox final : Outbox {
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kMaxDatagramSize);
  std::vector<std::vector<uint8_t>> sent;
  std::span<uint8_t> next_buffer() override { return buffer; }
  void commit(const PeerAddress&, size_t len) override {
    sent.emplace_back(buffer.begin(), buffer.begin() + static_cast<long>(len));
  }
};

// Answers every request the way a plugin would, with a reply as large as the request.
struct EchoHandler final : RequestHandler {
  ReplyTransport* transport = nullptr;
  int requests = 0;
  void on_request(const RequestOrigin& origin, const v1::Message& m) override {
    ++requests;
    transport->send_reply(origin, m.request_id(), m.packet_id(), v1::STATUS_OK, "",
                          {reinterpret_cast<const uint8_t*>(m.payload().data()),
                           m.payload().size()});
  }
};

TEST(DatagramHeader, RoundTripsEveryField) {
  DatagramHeader h;
  h.connection_id = 0x0102030405060708ull;
  h.packet_number = 0xfffffffffffffffeull;
  auto bytes = encode(request(7, 101), h);
  ASSERT_GT(bytes.size(), kHeaderSize);
  EXPECT_EQ(bytes[0], kWireVersion);
  EXPECT_EQ(bytes[1], 0x10);
  EXPECT_EQ(bytes[2], 0x01);  // big endian (protocol.md §2.1)
  EXPECT_EQ(bytes[9], 0x08);

  DatagramHeader parsed;
  v1::Packet packet;
  ASSERT_EQ(decode_datagram(bytes, kMaxDatagramSize, parsed, packet), DropReason::kNone);
  EXPECT_EQ(parsed.connection_id, h.connection_id);
  EXPECT_EQ(parsed.packet_number, h.packet_number);
  ASSERT_EQ(packet.frames_size(), 1);
  EXPECT_EQ(packet.frames(0).message().request_id(), 7u);
  EXPECT_EQ(packet.frames(0).message().payload(), "hi");
}

TEST(DatagramHeader, ShortDatagramIsTruncated) {
  auto bytes = encode(request(1, 101));
  DatagramHeader h;
  v1::Packet p;
  for (size_t len = 0; len <= kHeaderSize; ++len) {
    EXPECT_EQ(decode_datagram({bytes.data(), len}, kMaxDatagramSize, h, p), DropReason::kTruncated)
        << "length " << len;
  }
}

TEST(DatagramHeader, WrongVersionAndTypeAreRejected) {
  auto bytes = encode(request(1, 101));
  DatagramHeader h;
  v1::Packet p;
  auto v1_bytes = bytes;
  v1_bytes[0] = 1;  // the legacy wire format is not this listener's
  EXPECT_EQ(decode_datagram(v1_bytes, kMaxDatagramSize, h, p), DropReason::kBadVersion);
  auto bad_type = bytes;
  bad_type[1] = 0x11;
  EXPECT_EQ(decode_datagram(bad_type, kMaxDatagramSize, h, p), DropReason::kBadType);
}

TEST(DatagramHeader, OversizedDatagramIsRejected) {
  auto bytes = encode(request(1, 101, std::string(2000, 'x')));
  DatagramHeader h;
  v1::Packet p;
  EXPECT_EQ(decode_datagram(bytes, 1400, h, p), DropReason::kOversized);
  EXPECT_EQ(decode_datagram(bytes, bytes.size(), h, p), DropReason::kNone);
}

TEST(FramePayload, RequestWithoutIdIsRejected) {
  v1::Packet p = request(0, 101);
  v1::Packet out;
  auto bytes = encode(p);
  DatagramHeader h;
  EXPECT_EQ(decode_datagram(bytes, kMaxDatagramSize, h, out), DropReason::kBadPayload);
}

TEST(FramePayload, EmptyFrameAndUnknownFieldsAreRejected) {
  v1::Packet empty_frame;
  empty_frame.add_frames();
  DatagramHeader h;
  v1::Packet out;
  EXPECT_EQ(decode_datagram(encode(empty_frame), kMaxDatagramSize, h, out),
            DropReason::kBadPayload);

  // A field number this version does not know (field 15, varint) appended to a frame list.
  auto bytes = encode(request(1, 101));
  bytes.push_back(15 << 3);
  bytes.push_back(1);
  EXPECT_EQ(decode_datagram(bytes, kMaxDatagramSize, h, out), DropReason::kBadPayload);
}

TEST(FramePayload, SeveralFramesShareOneDatagram) {
  v1::Packet p = request(1, 101);
  p.add_frames()->mutable_ping()->set_nonce(9);
  *p.add_frames() = request(2, 102).frames(0);
  DatagramHeader h;
  v1::Packet out;
  ASSERT_EQ(decode_datagram(encode(p), kMaxDatagramSize, h, out), DropReason::kNone);
  EXPECT_EQ(out.frames_size(), 3);
}

TEST(DatagramPipeline, PingIsAnsweredWithPong) {
  CaptureOutbox outbox;
  DatagramPipeline pipeline(outbox, 1400);
  v1::Packet ping;
  ping.add_frames()->mutable_ping()->set_nonce(42);
  DatagramHeader h;
  h.connection_id = 77;
  pipeline.on_datagram(encode(ping, h), {});
  ASSERT_EQ(outbox.sent.size(), 1u);
  v1::Packet reply;
  DatagramHeader rh;
  ASSERT_EQ(decode_datagram(outbox.sent[0], kMaxDatagramSize, rh, reply), DropReason::kNone);
  EXPECT_EQ(rh.connection_id, 77u);
  EXPECT_EQ(reply.frames(0).pong().nonce(), 42u);
}

TEST(DatagramPipeline, ReplyTooLargeBecomesInternal) {
  CaptureOutbox outbox;
  DatagramPipeline pipeline(outbox, 1400);
  const std::vector<uint8_t> big(5000, 'x');
  EXPECT_FALSE(pipeline.send_reply({}, 5, 101, v1::STATUS_OK, "", big));
  ASSERT_EQ(outbox.sent.size(), 1u);
  v1::Packet reply;
  DatagramHeader rh;
  ASSERT_EQ(decode_datagram(outbox.sent[0], kMaxDatagramSize, rh, reply), DropReason::kNone);
  EXPECT_EQ(reply.frames(0).message().status(), v1::STATUS_INTERNAL);
  EXPECT_EQ(reply.frames(0).message().request_id(), 5u);
}

TEST(DatagramPipeline, RepliesFromClientsAreNotDispatched) {
  CaptureOutbox outbox;
  DatagramPipeline pipeline(outbox, 1400);
  EchoHandler handler;
  handler.transport = &pipeline;
  pipeline.set_handler(&handler);
  v1::Packet p = request(3, 101);
  p.mutable_frames(0)->mutable_message()->set_is_reply(true);
  pipeline.on_datagram(encode(p), {});
  EXPECT_EQ(handler.requests, 0);
  EXPECT_TRUE(outbox.sent.empty());
}

// Bad input is counted and dropped and never answered: a spoofed source gets nothing.
TEST(DatagramPipeline, RandomBytesAreCountedAndNeverAnswered) {
  CaptureOutbox outbox;
  DatagramPipeline pipeline(outbox, 1400);
  EchoHandler handler;
  handler.transport = &pipeline;
  pipeline.set_handler(&handler);
  uint64_t before = 0;
  for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); ++r) {
    before += dropped(static_cast<DropReason>(r));
  }

  std::mt19937_64 rng(20261123);
  std::uniform_int_distribution<size_t> length(0, 1600);
  std::vector<uint8_t> datagram;
  constexpr int kIterations = 300000;
  for (int i = 0; i < kIterations; ++i) {
    datagram.resize(length(rng));
    for (auto& b : datagram) b = static_cast<uint8_t>(rng());
    // Half the time make the header valid, so the payload parser sees the garbage too.
    if (i % 2 == 0 && datagram.size() > kHeaderSize) {
      datagram[0] = kWireVersion;
      datagram[1] = static_cast<uint8_t>(DatagramType::kPlain);
    }
    pipeline.on_datagram(datagram, {});
  }
  uint64_t after = 0;
  for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); ++r) {
    after += dropped(static_cast<DropReason>(r));
  }
  EXPECT_EQ(handler.requests, 0);
  EXPECT_TRUE(outbox.sent.empty());
  EXPECT_EQ(after - before, static_cast<uint64_t>(kIterations));
}

// Valid datagrams with bytes flipped: whatever still parses may be answered, but never
// with more bytes than arrived (no amplification).
TEST(DatagramPipeline, MutatedRequestsNeverGetALargerReply) {
  CaptureOutbox outbox;
  DatagramPipeline pipeline(outbox, 1400);
  EchoHandler handler;
  handler.transport = &pipeline;
  pipeline.set_handler(&handler);
  v1::Packet p = request(12345, 101, std::string(64, 'p'));
  const auto valid = encode(p);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    auto datagram = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      datagram[kHeaderSize + rng() % (datagram.size() - kHeaderSize)] = static_cast<uint8_t>(rng());
    }
    datagram.resize(kHeaderSize + rng() % (datagram.size() - kHeaderSize + 1));
    outbox.sent.clear();
    pipeline.on_datagram(datagram, {});
    for (const auto& reply : outbox.sent) {
      ASSERT_LE(reply.size(), datagram.size() + 4) << "iteration " << i;
    }
  }
}

}  // namespace
}  // namespace prism::net
