// The datagram codec: the fixed cleartext header (docs/protocol.md §2) and the
// frame payload that follows it (§3). Shared by prismd, libprism-client and prism-bench.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "prism/v1/frames.pb.h"

namespace prism::net {

// protocol.md §2.1: version 2 (version 1 is the legacy Prism wire format).
inline constexpr uint8_t kWireVersion = 2;
// protocol.md §2.1: version(1) type(1) connection id(8) packet number(8).
inline constexpr size_t kHeaderSize = 18;
// protocol.md §2.3: the largest UDP payload either side ever accepts.
inline constexpr size_t kMaxDatagramSize = 65507;

// protocol.md §2.2. The secure transport adds its handshake and sealed types here.
enum class DatagramType : uint8_t {
  kPlain = 0x10,  // payload is a cleartext prism.v1.Packet
};

struct DatagramHeader {
  uint8_t version = kWireVersion;
  DatagramType type = DatagramType::kPlain;
  uint64_t connection_id = 0;
  uint64_t packet_number = 0;
};

// Why a datagram was dropped; each has its own counter (prism_datagrams_dropped_total).
enum class DropReason : uint8_t {
  kNone = 0,
  kTruncated,      // shorter than the header, or an empty payload
  kOversized,      // larger than the configured maximum
  kBadVersion,     // header version is not kWireVersion
  kBadType,        // header type unknown
  kBadPayload,     // payload is not a well-formed prism.v1.Packet
  kCount
};

std::string_view drop_reason_name(DropReason reason);

// Writes the header into the first kHeaderSize bytes of `out` (which must be that long).
void write_header(const DatagramHeader& header, std::span<uint8_t> out);

// Parses and validates the header of `datagram` (at most `max_size` bytes accepted).
DropReason read_header(std::span<const uint8_t> datagram, size_t max_size, DatagramHeader& out);

// Parses a payload into `packet`, refusing anything that is not strictly one of ours:
// unknown fields, empty frames, a frame with no kind, requests with id 0.
DropReason parse_payload(std::span<const uint8_t> payload, v1::Packet& packet);

// Header plus serialized packet into `out`. Returns the datagram's size, or 0 when it
// does not fit in `out`.
size_t encode_datagram(const DatagramHeader& header, const v1::Packet& packet,
                       std::span<uint8_t> out);

// read_header + parse_payload.
DropReason decode_datagram(std::span<const uint8_t> datagram, size_t max_size,
                           DatagramHeader& header, v1::Packet& packet);

}  // namespace prism::net
