// INITIAL / RETRY / HANDSHAKE layouts and the handshake state machines (protocol.md §5.2-5.3).
#include "net/session/handshake.hpp"

#include <algorithm>
#include <cstring>

#include "base/byte_order.hpp"

namespace prism::net::session {
namespace {

uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// The header every handshake datagram carries: the client's id, packet number 0.
DatagramHeader handshake_header(DatagramType type, uint64_t client_id) {
  return DatagramHeader{.type = type, .connection_id = client_id, .packet_number = 0};
}

// Shared checks of the three handshake types: version, type, packet number 0.
DropReason read_handshake_header(std::span<const uint8_t> datagram, DatagramType type,
                                 DatagramHeader& header) {
  if (auto r = read_header(datagram, kMaxDatagramSize, header); r != DropReason::kNone) return r;
  if (header.type != type) return DropReason::kBadType;
  if (header.packet_number != 0) return DropReason::kBadPayload;
  return DropReason::kNone;
}

}  // namespace

DropReason parse_initial(std::span<const uint8_t> datagram, InitialView& out) {
  if (datagram.size() < kMinInitialSize) return DropReason::kTruncated;
  if (auto r = read_handshake_header(datagram, DatagramType::kInitial, out.header);
      r != DropReason::kNone) {
    return r;
  }
  out.header_bytes = datagram.first(kHeaderSize);
  // cookie length (1) | cookie | noise length (2) | noise | zero padding
  std::span<const uint8_t> rest = datagram.subspan(kHeaderSize);
  const size_t cookie_len = rest[0];
  if (cookie_len != 0 && cookie_len != kCookieSize) return DropReason::kBadPayload;
  rest = rest.subspan(1);
  if (rest.size() < cookie_len + 2) return DropReason::kBadPayload;
  out.cookie = rest.first(cookie_len);
  rest = rest.subspan(cookie_len);
  const size_t noise_len = load_be16(rest.data());
  rest = rest.subspan(2);
  if (noise_len != kInitialNoiseSize || rest.size() < noise_len) return DropReason::kBadPayload;
  out.noise = rest.first(noise_len);
  const auto padding = rest.subspan(noise_len);
  if (std::any_of(padding.begin(), padding.end(), [](uint8_t b) { return b != 0; })) {
    return DropReason::kBadPayload;
  }
  return DropReason::kNone;
}

size_t write_initial(uint64_t client_id, std::span<const uint8_t> cookie,
                     std::span<const uint8_t> noise, std::span<uint8_t> out) {
  const size_t used = kHeaderSize + 1 + cookie.size() + 2 + noise.size();
  const size_t size = std::max(used, kMinInitialSize);
  if (out.size() < size || noise.size() > 0xFFFF || cookie.size() > 0xFF) return 0;
  write_header(handshake_header(DatagramType::kInitial, client_id), out);
  uint8_t* p = out.data() + kHeaderSize;
  *p++ = static_cast<uint8_t>(cookie.size());
  std::copy(cookie.begin(), cookie.end(), p);  // memcpy with an empty cookie's null is UB
  p += cookie.size();
  store_be16(p, static_cast<uint16_t>(noise.size()));
  p += 2;
  std::memcpy(p, noise.data(), noise.size());
  std::memset(out.data() + used, 0, size - used);
  return size;
}

DropReason parse_retry(std::span<const uint8_t> datagram, DatagramHeader& header,
                       std::span<const uint8_t>& cookie) {
  if (auto r = read_handshake_header(datagram, DatagramType::kRetry, header);
      r != DropReason::kNone) {
    return r;
  }
  if (datagram.size() != kRetrySize) return DropReason::kBadPayload;
  cookie = datagram.subspan(kHeaderSize);
  return DropReason::kNone;
}

size_t write_retry(uint64_t client_id, std::span<const uint8_t, kCookieSize> cookie,
                   std::span<uint8_t> out) {
  if (out.size() < kRetrySize) return 0;
  write_header(handshake_header(DatagramType::kRetry, client_id), out);
  std::memcpy(out.data() + kHeaderSize, cookie.data(), cookie.size());
  return kRetrySize;
}

DropReason parse_handshake(std::span<const uint8_t> datagram, DatagramHeader& header,
                           std::span<const uint8_t>& noise) {
  if (auto r = read_handshake_header(datagram, DatagramType::kHandshake, header);
      r != DropReason::kNone) {
    return r;
  }
  const auto rest = datagram.subspan(kHeaderSize);
  if (rest.size() < 2) return DropReason::kTruncated;
  const size_t len = load_be16(rest.data());
  if (len < crypto::kHandshakeOverhead || len > kMaxHandshakeNoiseSize || rest.size() != 2 + len) {
    return DropReason::kBadPayload;
  }
  noise = rest.subspan(2);
  return DropReason::kNone;
}

size_t write_handshake(uint64_t client_id, std::span<const uint8_t> noise, std::span<uint8_t> out) {
  const size_t size = kHeaderSize + 2 + noise.size();
  if (out.size() < size || noise.size() > kMaxHandshakeNoiseSize) return 0;
  write_header(handshake_header(DatagramType::kHandshake, client_id), out);
  store_be16(out.data() + kHeaderSize, static_cast<uint16_t>(noise.size()));
  std::memcpy(out.data() + kHeaderSize + 2, noise.data(), noise.size());
  return size;
}

HandshakeServer::HandshakeServer(const crypto::KeyPair& static_key,
                                 std::chrono::seconds cookie_bucket)
    : static_(static_key), cookies_(cookie_bucket) {}

InitialOutcome HandshakeServer::check(std::span<const uint8_t> datagram,
                                      std::span<const uint8_t> address_bytes,
                                      std::chrono::system_clock::time_point now) {
  InitialOutcome out;
  InitialView view;
  if (out.reason = parse_initial(datagram, view); out.reason != DropReason::kNone) return out;
  out.client_id = view.header.connection_id;
  if (view.cookie.empty()) {
    // §5.2: no state yet, only a cookie bound to this address, id and Noise message.
    const auto cookie = cookies_.mint(address_bytes, out.client_id, view.noise, now);
    out.reply.resize(kRetrySize);
    write_retry(out.client_id, cookie, out.reply);
    out.kind = InitialOutcome::Kind::kRetry;
    return out;
  }
  if (!cookies_.verify(view.cookie.first<kCookieSize>(), address_bytes, out.client_id, view.noise,
                       now)) {
    out.reason = DropReason::kBadCookie;
    return out;
  }
  std::copy_n(view.noise.begin(), crypto::kDhLen, out.client_ephemeral.begin());
  out.kind = InitialOutcome::Kind::kAccept;
  return out;
}

InitialOutcome HandshakeServer::accept(std::span<const uint8_t> datagram,
                                       const v1::ServerHello& hello,
                                       std::chrono::system_clock::time_point now) {
  InitialOutcome out;
  InitialView view;
  if (out.reason = parse_initial(datagram, view); out.reason != DropReason::kNone) return out;
  out.client_id = view.header.connection_id;
  if (view.cookie.size() != kCookieSize) {
    out.reason = DropReason::kBadCookie;
    return out;
  }
  // §5.2: one Diffie-Hellman per cookie. A replayed INITIAL, even one whose message 1
  // fails, would otherwise cost an X25519 for every copy and the attacker nothing.
  if (!cookies_.redeem(view.cookie.first<kCookieSize>(), now)) {
    out.reason = DropReason::kCookieReused;
    return out;
  }
  crypto::NkResponder noise(static_, view.header_bytes);
  if (!noise.read_message1(view.noise)) {
    out.reason = DropReason::kHandshakeFailed;
    return out;
  }
  std::string payload = hello.SerializeAsString();
  // The responder's ephemeral pair, made ahead by the pool's thread when it kept up.
  if (!ephemerals_) ephemerals_ = std::make_unique<crypto::EphemeralPool>();
  auto ephemeral = ephemerals_->take();
  if (!ephemeral) ephemeral = crypto::KeyPair::generate(random_);
  const auto message2 = noise.write_message2(
      std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()), *ephemeral);
  out.reply.resize(kHeaderSize + 2 + message2.size());
  if (write_handshake(out.client_id, message2, out.reply) == 0) {
    out.reason = DropReason::kHandshakeFailed;
    return out;
  }
  out.keys = noise.split();
  std::copy_n(view.noise.begin(), crypto::kDhLen, out.client_ephemeral.begin());
  out.kind = InitialOutcome::Kind::kAccept;
  return out;
}

HandshakeClient::HandshakeClient(const crypto::Key32& server_public, uint64_t client_id)
    : client_id_(client_id) {
  std::array<uint8_t, kHeaderSize> prologue{};
  write_header(handshake_header(DatagramType::kInitial, client_id), prologue);
  noise_ = std::make_unique<crypto::NkInitiator>(server_public, prologue);
  message1_ = noise_->write_message1({});
  build_initial({});
}

void HandshakeClient::build_initial(std::span<const uint8_t> cookie) {
  initial_.assign(kMinInitialSize, 0);
  initial_.resize(write_initial(client_id_, cookie, message1_, initial_));
}

HandshakeClient::Progress HandshakeClient::on_datagram(std::span<const uint8_t> datagram) {
  if (done_ || datagram.size() < kHeaderSize) return Progress::kIgnored;
  DatagramHeader header;
  const auto type = static_cast<DatagramType>(datagram[1]);
  if (type == DatagramType::kRetry) {
    std::span<const uint8_t> cookie;
    // A RETRY is not authenticated (§5.2): take the first one only, so a forged second
    // one cannot keep the client retrying forever.
    if (have_cookie_ || parse_retry(datagram, header, cookie) != DropReason::kNone ||
        header.connection_id != client_id_) {
      return Progress::kIgnored;
    }
    have_cookie_ = true;
    build_initial(cookie);
    return Progress::kRetry;
  }
  std::span<const uint8_t> noise;
  if (parse_handshake(datagram, header, noise) != DropReason::kNone ||
      header.connection_id != client_id_) {
    return Progress::kIgnored;
  }
  auto payload = noise_->read_message2(noise);
  if (!payload) return Progress::kFailed;
  v1::ServerHello hello;
  if (!hello.ParseFromArray(payload->data(), static_cast<int>(payload->size())) ||
      hello.connection_id() == 0) {
    return Progress::kFailed;
  }
  hello_ = std::move(hello);
  keys_ = noise_->split();
  done_ = true;
  return Progress::kDone;
}

}  // namespace prism::net::session
