// The datagram codec: cleartext header and strict frame payload (docs/protocol.md §2-3).
#include "net/datagram.hpp"

#include "base/byte_order.hpp"

namespace prism::net {
namespace {

// The Reflection of each message type is looked up once: GetReflection() costs a
// descriptor lookup per call, which showed in perf of the request path (~1 % each side).
template <typename GeneratedMessage>
bool has_unknown_fields(const GeneratedMessage& m) {
  static const google::protobuf::Reflection* const reflection = GeneratedMessage::GetReflection();
  return !reflection->GetUnknownFields(m).empty();
}

// protocol.md §5.5: pairs (first, last), largest first, disjoint and not touching.
bool ack_is_well_formed(const v1::Ack& ack) {
  if (has_unknown_fields(ack)) return false;
  const auto& r = ack.ranges();
  if (r.empty() || r.size() % 2 != 0) return false;
  for (int i = 0; i < r.size(); i += 2) {
    if (r[i] > r[i + 1]) return false;
    // The previous (larger) range starts at r[i - 2]; a gap of at least one must separate.
    if (i > 0 && (r[i + 1] >= r[i - 2] || r[i - 2] - r[i + 1] < 2)) return false;
  }
  return true;
}

// protocol.md §3.1: a frame must carry exactly one known kind and nothing we do not know.
bool frame_is_well_formed(const v1::Frame& frame) {
  if (has_unknown_fields(frame)) return false;
  switch (frame.kind_case()) {
    case v1::Frame::kMessage: {
      const auto& m = frame.message();
      if (has_unknown_fields(m)) return false;
      // A request must carry a correlation id (§3.2); replies echo one.
      return m.request_id() != 0;
    }
    case v1::Frame::kPing:
      return !has_unknown_fields(frame.ping());
    case v1::Frame::kPong:
      return !has_unknown_fields(frame.pong());
    case v1::Frame::kClose:
      return !has_unknown_fields(frame.close());
    case v1::Frame::kAck:
      return ack_is_well_formed(frame.ack());
    case v1::Frame::kFragment: {
      const auto& f = frame.fragment();
      return !has_unknown_fields(f) && f.delivery() != v1::DELIVERY_UNRELIABLE &&
             f.count() >= 2 && f.count() <= 65535 && f.index() < f.count() && !f.data().empty();
    }
    case v1::Frame::kPathChallenge:
      return !has_unknown_fields(frame.path_challenge());
    case v1::Frame::kPathResponse:
      return !has_unknown_fields(frame.path_response());
    case v1::Frame::KIND_NOT_SET:
      return false;
  }
  return false;
}

}  // namespace

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kTruncated: return "truncated";
    case DropReason::kOversized: return "oversized";
    case DropReason::kBadVersion: return "bad_version";
    case DropReason::kBadType: return "bad_type";
    case DropReason::kBadPayload: return "bad_payload";
    case DropReason::kUnknownSession: return "unknown_session";
    case DropReason::kBadCookie: return "bad_cookie";
    case DropReason::kHandshakeFailed: return "handshake_failed";
    case DropReason::kNotAuthentic: return "not_authentic";
    case DropReason::kReplayed: return "replayed";
    case DropReason::kOverloaded: return "overloaded";
    case DropReason::kCookieReused: return "cookie_reused";
    case DropReason::kRateLimited: return "rate_limited";
    case DropReason::kAddressLimit: return "address_limit";
    case DropReason::kCount: break;
  }
  return "unknown";
}

void write_header(const DatagramHeader& header, std::span<uint8_t> out) {
  out[0] = header.version;
  out[1] = static_cast<uint8_t>(header.type);
  store_be64(&out[2], header.connection_id);
  store_be64(&out[10], header.packet_number);
}

DropReason read_header(std::span<const uint8_t> datagram, size_t max_size, DatagramHeader& out) {
  if (datagram.size() > max_size) return DropReason::kOversized;
  // An empty payload carries no frame, so it is as useless as a short header.
  if (datagram.size() <= kHeaderSize) return DropReason::kTruncated;
  if (datagram[0] != kWireVersion) return DropReason::kBadVersion;
  if (!is_known_type(datagram[1])) return DropReason::kBadType;
  out.version = datagram[0];
  out.type = static_cast<DatagramType>(datagram[1]);
  out.connection_id = load_be64(&datagram[2]);
  out.packet_number = load_be64(&datagram[10]);
  return DropReason::kNone;
}

DropReason parse_payload(std::span<const uint8_t> payload, v1::Packet& packet) {
  packet.Clear();
  if (!packet.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return DropReason::kBadPayload;
  }
  if (packet.frames_size() == 0 || has_unknown_fields(packet)) return DropReason::kBadPayload;
  for (const auto& frame : packet.frames()) {
    if (!frame_is_well_formed(frame)) return DropReason::kBadPayload;
  }
  return DropReason::kNone;
}

}  // namespace prism::net
