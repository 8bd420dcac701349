// Fuzzes the frame decoder, parse_payload (docs/protocol.md §3.1, §5.5-5.9), with any
// payload that fits a sealed datagram. Whatever it accepts must keep the rules it
// enforces, and must be accepted again, with the same frames, once re-serialized.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"

namespace {

using namespace prism::net;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// §2.3, §5.4: the largest plaintext a sealed datagram can carry.
constexpr size_t kMaxPayloadSize = kMaxDatagramSize - kHeaderSize - crypto::kPacketTagSize;

// The rules parse_payload promises for each frame it accepts, checked independently.
void check_frame(const prism::v1::Frame& frame) {
  switch (frame.kind_case()) {
    case prism::v1::Frame::kMessage:
      check(frame.message().request_id() != 0);  // §3.2
      break;
    case prism::v1::Frame::kAck: {
      // §5.5: pairs (first, last), largest first, disjoint and not touching.
      const auto& r = frame.ack().ranges();
      check(!r.empty() && r.size() % 2 == 0);
      for (int i = 0; i < r.size(); i += 2) {
        check(r[i] <= r[i + 1]);
        if (i > 0) check(r[i + 1] + 1 < r[i - 2]);
      }
      break;
    }
    case prism::v1::Frame::kFragment: {
      // §5.7: reliable modes only, 2..65535 pieces, index within them, never empty.
      const auto& f = frame.fragment();
      check(f.delivery() != prism::v1::DELIVERY_UNRELIABLE);
      check(f.count() >= 2 && f.count() <= 65535 && f.index() < f.count());
      check(!f.data().empty());
      break;
    }
    case prism::v1::Frame::kPing:
    case prism::v1::Frame::kPong:
    case prism::v1::Frame::kClose:
    case prism::v1::Frame::kPathChallenge:
    case prism::v1::Frame::kPathResponse:
      break;
    case prism::v1::Frame::KIND_NOT_SET:
      check(false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; see datagram_fuzz.cpp.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxPayloadSize) return 0;
  static prism::v1::Packet packet;
  static prism::v1::Packet decoded;
  const DropReason reason = parse_payload({data, size}, packet);
  check(reason == DropReason::kNone || reason == DropReason::kBadPayload);
  if (reason != DropReason::kNone) return 0;
  check(packet.frames_size() > 0);
  for (const auto& frame : packet.frames()) check_frame(frame);

  // Re-serialized (canonical, and possibly longer than the input: an enum sent as a
  // 5-byte varint goes out sign-extended to 10), it is accepted again, frame for frame.
  const std::string bytes = packet.SerializeAsString();
  check(parse_payload({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, decoded) ==
        DropReason::kNone);
  check(decoded.frames_size() == packet.frames_size());
  for (int i = 0; i < packet.frames_size(); ++i) {
    check(decoded.frames(i).kind_case() == packet.frames(i).kind_case());
  }
  // And serialization is a fixed point: the same frames, field for field.
  check(decoded.SerializeAsString() == bytes);
  return 0;
}
