// Fuzzes decode_datagram (docs/protocol.md §2-3) with any bytes up to the absolute size
// limit: it must never crash, and what it accepts must satisfy the header rules of §2.
#include <google/protobuf/stubs/logging.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "net/datagram.hpp"

namespace {

using namespace prism::net;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; millions of such lines would
  // only slow the run down.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxDatagramSize) return 0;  // §2.3: no UDP datagram is larger
  const std::span<const uint8_t> datagram(data, size);
  DatagramHeader header;
  prism::v1::Packet packet;
  const DropReason reason = decode_datagram(datagram, kMaxDatagramSize, header, packet);
  check(reason < DropReason::kCount);
  check(drop_reason_name(reason) != "unknown");

  // §2.3: a datagram one byte over the configured limit is refused before anything else.
  if (size > 0) {
    DatagramHeader h;
    prism::v1::Packet p;
    check(decode_datagram(datagram, size - 1, h, p) == DropReason::kOversized);
  }
  if (reason != DropReason::kNone) return 0;

  // §2.1, §2.4: only a full header of version 2, type plain, with a payload is accepted.
  check(size > kHeaderSize);
  check(datagram[0] == kWireVersion);
  check(datagram[1] == static_cast<uint8_t>(DatagramType::kPlain));
  check(packet.frames_size() > 0);
  // The header read back is the header written: write_header inverts read_header.
  std::array<uint8_t, kHeaderSize> rewritten{};
  write_header(header, rewritten);
  for (size_t i = 0; i < kHeaderSize; ++i) check(rewritten[i] == datagram[i]);
  // §3.1: every accepted frame has a kind, and every message a request id.
  for (const auto& frame : packet.frames()) {
    check(frame.kind_case() != prism::v1::Frame::KIND_NOT_SET);
    if (frame.has_message()) check(frame.message().request_id() != 0);
  }
  return 0;
}
