// Fuzzes the frame decoder, parse_payload (docs/protocol.md §3.1), with any payload that
// fits a datagram. Whatever it accepts must survive encode_datagram → decode_datagram
// with the same frames.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "net/datagram.hpp"

namespace {

using namespace prism::net;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// §2.3: the largest payload a datagram can carry.
constexpr size_t kMaxPayloadSize = kMaxDatagramSize - kHeaderSize;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; see datagram_fuzz.cpp.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxPayloadSize) return 0;
  prism::v1::Packet packet;
  if (parse_payload({data, size}, packet) != DropReason::kNone) return 0;
  check(packet.frames_size() > 0);

  static std::vector<uint8_t> buffer(kMaxDatagramSize);
  DatagramHeader header;
  header.connection_id = size;
  header.packet_number = ~uint64_t{0} - size;
  const size_t len = encode_datagram(header, packet, buffer);
  if (len == 0) {
    // Re-encoding is canonical, and can be longer than the input (an enum sent as a
    // 5-byte varint goes out sign-extended to 10): refusing is right only when it is.
    check(packet.ByteSizeLong() > kMaxPayloadSize);
    return 0;
  }
  check(len > kHeaderSize && len <= kMaxDatagramSize);

  DatagramHeader decoded_header;
  prism::v1::Packet decoded;
  check(decode_datagram({buffer.data(), len}, kMaxDatagramSize, decoded_header, decoded) ==
        DropReason::kNone);
  check(decoded.frames_size() == packet.frames_size());
  check(decoded_header.connection_id == header.connection_id);
  check(decoded_header.packet_number == header.packet_number);
  for (int i = 0; i < packet.frames_size(); ++i) {
    check(decoded.frames(i).kind_case() == packet.frames(i).kind_case());
  }
  // Same frames, field for field: re-encoding the decoded packet gives the same bytes.
  const std::string again = decoded.SerializeAsString();
  check(again.size() == len - kHeaderSize &&
        again.compare(0, again.size(), reinterpret_cast<const char*>(buffer.data()) + kHeaderSize,
                      again.size()) == 0);
  return 0;
}
