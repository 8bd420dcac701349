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

// protocol.md §2.2.
enum class DatagramType : uint8_t {
  kInitial = 0x01,    // client → server: Noise NK message 1, maybe a retry cookie (§5.2)
  kRetry = 0x02,      // server → client: a retry cookie (§5.2)
  kHandshake = 0x03,  // server → client: Noise NK message 2 (§5.3)
  kSealed0 = 0x20,    // AES-256-GCM sealed prism.v1.Packet, key phase 0 (§5.4)
  kSealed1 = 0x21,    // the same, key phase 1
};

// One of the five types above (§2.2): a datagram of any other type is dropped (bad_type).
inline bool is_known_type(uint8_t type) {
  switch (static_cast<DatagramType>(type)) {
    case DatagramType::kInitial:
    case DatagramType::kRetry:
    case DatagramType::kHandshake:
    case DatagramType::kSealed0:
    case DatagramType::kSealed1:
      return true;
  }
  return false;
}

inline bool is_sealed(DatagramType type) {
  return type == DatagramType::kSealed0 || type == DatagramType::kSealed1;
}

struct DatagramHeader {
  uint8_t version = kWireVersion;
  DatagramType type = DatagramType::kSealed0;
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
  kBadPayload,     // payload is not a well-formed prism.v1.Packet or handshake message
  kUnknownSession,  // sealed, for a connection id no session has
  kBadCookie,       // INITIAL with a retry cookie that does not verify
  kHandshakeFailed,  // INITIAL whose Noise message does not decrypt for this server key
  kNotAuthentic,    // sealed, and the AEAD tag does not verify
  kReplayed,        // sealed, a packet number already received or too old
  kOverloaded,      // INITIAL refused because the worker holds its maximum of sessions
  kCookieReused,    // INITIAL whose retry cookie was redeemed already (a replay)
  kRateLimited,     // INITIAL with a cookie beyond its source's handshake rate
  kAddressLimit,    // INITIAL from a source that holds its maximum of sessions or handshakes
  kCount
};

std::string_view drop_reason_name(DropReason reason);

// Writes the header into the first kHeaderSize bytes of `out` (which must be that long).
void write_header(const DatagramHeader& header, std::span<uint8_t> out);

// Parses and validates the header of `datagram` (at most `max_size` bytes accepted).
DropReason read_header(std::span<const uint8_t> datagram, size_t max_size, DatagramHeader& out);

// Parses a (decrypted) payload into `packet`, refusing anything that is not strictly one
// of ours: unknown fields, empty frames, a frame with no kind, messages with request id
// 0, malformed ACK ranges or fragment numbering (protocol.md §3.1).
DropReason parse_payload(std::span<const uint8_t> payload, v1::Packet& packet);

}  // namespace prism::net
