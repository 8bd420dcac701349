// Fuzzes the cleartext parsers of the secure transport with any bytes up to the absolute
// size limit: read_header (docs/protocol.md §2), parse_payload on what follows it (§3.1),
// and the handshake layouts parse_initial, parse_retry, parse_handshake (§5.2-5.3). None
// may crash, and whatever one accepts must be exactly what its writer produces.
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "net/datagram.hpp"
#include "net/session/handshake.hpp"

namespace {

using namespace prism::net;
using namespace prism::net::session;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// The bytes of `view` lie inside `datagram`: the parsers hand out views, never copies.
bool inside(std::span<const uint8_t> view, std::span<const uint8_t> datagram) {
  return view.empty() || (view.data() >= datagram.data() &&
                          view.data() + view.size() <= datagram.data() + datagram.size());
}

void fuzz_header_and_payload(std::span<const uint8_t> datagram) {
  DatagramHeader header;
  const DropReason reason = read_header(datagram, kMaxDatagramSize, header);
  check(reason < DropReason::kCount);
  check(drop_reason_name(reason) != "unknown");
  // §2.3: a datagram one byte over the configured limit is refused before anything else.
  if (!datagram.empty()) {
    DatagramHeader h;
    check(read_header(datagram, datagram.size() - 1, h) == DropReason::kOversized);
  }
  if (reason != DropReason::kNone) return;

  // §2.1-2.2: a full header of version 2 and a known type, with something after it.
  check(datagram.size() > kHeaderSize);
  check(datagram[0] == kWireVersion && header.version == kWireVersion);
  check(is_known_type(static_cast<uint8_t>(header.type)));
  // write_header inverts read_header.
  std::array<uint8_t, kHeaderSize> rewritten{};
  write_header(header, rewritten);
  check(same(rewritten, datagram.first(kHeaderSize)));

  // The rest as if it were a decrypted payload (§3.1); what is accepted follows the rules.
  static prism::v1::Packet packet;
  const DropReason parsed = parse_payload(datagram.subspan(kHeaderSize), packet);
  check(parsed == DropReason::kNone || parsed == DropReason::kBadPayload);
  if (parsed != DropReason::kNone) return;
  check(packet.frames_size() > 0);
  for (const auto& frame : packet.frames()) {
    check(frame.kind_case() != prism::v1::Frame::KIND_NOT_SET);
    if (frame.has_message()) check(frame.message().request_id() != 0);
  }
}

void fuzz_initial(std::span<const uint8_t> datagram) {
  InitialView view;
  if (parse_initial(datagram, view) != DropReason::kNone) return;
  // §5.2: padded, packet number 0, a cookie of 0 or kCookieSize bytes, NK message 1.
  check(datagram.size() >= kMinInitialSize);
  check(view.header.type == DatagramType::kInitial && view.header.packet_number == 0);
  check(view.cookie.empty() || view.cookie.size() == kCookieSize);
  check(view.noise.size() == kInitialNoiseSize);
  check(same(view.header_bytes, datagram.first(kHeaderSize)));
  check(inside(view.cookie, datagram) && inside(view.noise, datagram));
  // Written again from its parts it is the same datagram; anything past the writer's
  // length is zero padding.
  static std::vector<uint8_t> out(kMaxDatagramSize);
  const size_t n = write_initial(view.header.connection_id, view.cookie, view.noise, out);
  check(n >= kMinInitialSize && n <= datagram.size());
  check(same({out.data(), n}, datagram.first(n)));
  const auto padding = datagram.subspan(n);
  check(std::all_of(padding.begin(), padding.end(), [](uint8_t b) { return b == 0; }));
}

void fuzz_retry(std::span<const uint8_t> datagram) {
  DatagramHeader header;
  std::span<const uint8_t> cookie;
  if (parse_retry(datagram, header, cookie) != DropReason::kNone) return;
  check(datagram.size() == kRetrySize && cookie.size() == kCookieSize);
  check(header.type == DatagramType::kRetry && header.packet_number == 0);
  check(inside(cookie, datagram));
  std::array<uint8_t, kRetrySize> out{};
  check(write_retry(header.connection_id, cookie.first<kCookieSize>(), out) == kRetrySize);
  check(same(out, datagram));
}

void fuzz_handshake(std::span<const uint8_t> datagram) {
  DatagramHeader header;
  std::span<const uint8_t> noise;
  if (parse_handshake(datagram, header, noise) != DropReason::kNone) return;
  // §5.3: NK message 2 is e, the tag, and a ServerHello of at most 64 bytes.
  check(header.type == DatagramType::kHandshake && header.packet_number == 0);
  check(noise.size() >= prism::net::crypto::kHandshakeOverhead &&
        noise.size() <= kMaxHandshakeNoiseSize);
  check(datagram.size() == kHeaderSize + 2 + noise.size());
  check(inside(noise, datagram));
  std::array<uint8_t, kHeaderSize + 2 + kMaxHandshakeNoiseSize> out{};
  const size_t n = write_handshake(header.connection_id, noise, out);
  check(same({out.data(), n}, datagram));
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
  fuzz_header_and_payload(datagram);
  fuzz_initial(datagram);
  fuzz_retry(datagram);
  fuzz_handshake(datagram);
  return 0;
}
