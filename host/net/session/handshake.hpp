// The handshake datagrams of the secure transport (docs/protocol.md §5.2-5.3) and the two
// sans-I/O state machines that speak them: HandshakeServer (stateless until a client has
// proved its address with a retry cookie) and HandshakeClient.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "net/crypto/ephemeral_pool.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/crypto/retry_cookie.hpp"
#include "net/crypto/secure_random.hpp"
#include "net/datagram.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::net::session {

// protocol.md §5.2: an INITIAL is padded to at least this many bytes, so the RETRY or
// HANDSHAKE it draws (both far smaller) never amplifies what an attacker spends.
inline constexpr size_t kMinInitialSize = 1200;
inline constexpr size_t kCookieSize = crypto::RetryCookies::kCookieSize;
// The Noise payload of message 1 is empty: 32-byte e plus the 16-byte tag.
inline constexpr size_t kInitialNoiseSize = crypto::kHandshakeOverhead;
// The largest ServerHello (three fixed-size fields) plus Noise's e and tag.
inline constexpr size_t kMaxHandshakeNoiseSize = crypto::kHandshakeOverhead + 64;

// The parts of an INITIAL datagram (§5.2): views into the datagram.
struct InitialView {
  DatagramHeader header;
  std::span<const uint8_t> header_bytes;  // the 18 bytes: the Noise prologue
  std::span<const uint8_t> cookie;        // empty or kCookieSize bytes
  std::span<const uint8_t> noise;         // Noise NK message 1
};

// Strict parse: kTruncated for a datagram under kMinInitialSize, kBadPayload for any
// length field that does not add up or non-zero padding.
DropReason parse_initial(std::span<const uint8_t> datagram, InitialView& out);
// Writes an INITIAL for `client_id` into `out` (at least kMinInitialSize bytes); returns
// its size, 0 when `out` is too small.
size_t write_initial(uint64_t client_id, std::span<const uint8_t> cookie,
                     std::span<const uint8_t> noise, std::span<uint8_t> out);

// RETRY (§5.2): header + the 24-byte cookie, exactly.
inline constexpr size_t kRetrySize = kHeaderSize + kCookieSize;
DropReason parse_retry(std::span<const uint8_t> datagram, DatagramHeader& header,
                       std::span<const uint8_t>& cookie);
size_t write_retry(uint64_t client_id, std::span<const uint8_t, kCookieSize> cookie,
                   std::span<uint8_t> out);

// HANDSHAKE (§5.3): header + u16 length + Noise NK message 2.
DropReason parse_handshake(std::span<const uint8_t> datagram, DatagramHeader& header,
                           std::span<const uint8_t>& noise);
size_t write_handshake(uint64_t client_id, std::span<const uint8_t> noise, std::span<uint8_t> out);

// What the server answers to one INITIAL.
struct InitialOutcome {
  enum class Kind : uint8_t {
    kDrop,    // `reason` says why; nothing is sent
    kRetry,   // send `reply` (a RETRY); no state is kept
    kAccept,  // send `reply` (a HANDSHAKE) and create a session with `keys`
  };
  Kind kind = Kind::kDrop;
  DropReason reason = DropReason::kNone;
  uint64_t client_id = 0;
  std::vector<uint8_t> reply;
  crypto::SessionKeys keys{};
  // The client's ephemeral key: a repeated INITIAL carries the same one, and the server
  // answers it with the HANDSHAKE it already sent instead of a second session.
  crypto::Key32 client_ephemeral{};
};

// The server's side; one per worker. Not thread-safe.
class HandshakeServer {
 public:
  HandshakeServer(const crypto::KeyPair& static_key,
                  std::chrono::seconds cookie_bucket = std::chrono::seconds(10));

  // Step 1 (any INITIAL): parse it and check its cookie, an HMAC and no Diffie-Hellman.
  // kRetry when it has none, kDrop for a bad one; kAccept means "valid and proved": go on
  // with accept(). `address_bytes` identify the client's address and port
  // (PeerAddress::key_bytes()).
  InitialOutcome check(std::span<const uint8_t> datagram, std::span<const uint8_t> address_bytes,
                       std::chrono::system_clock::time_point now);
  // Step 2: redeem the cookie of a checked INITIAL, run Noise and write the HANDSHAKE
  // carrying `hello`. kDrop/kCookieReused for a cookie already redeemed (a replay: the
  // caller answers a client's own repeat from its session before calling this), and
  // kDrop/kHandshakeFailed when message 1 was not made for this server's key.
  InitialOutcome accept(std::span<const uint8_t> datagram, const v1::ServerHello& hello,
                        std::chrono::system_clock::time_point now);

  // The worker's generator: ephemeral keys here, connection ids and challenges for the
  // caller.
  crypto::SecureRandom& random() { return random_; }

 private:
  crypto::KeyPair static_;
  crypto::RetryCookies cookies_;
  crypto::SecureRandom random_;
  // Made at the first handshake, so a table that never accepts one starts no thread.
  std::unique_ptr<crypto::EphemeralPool> ephemerals_;
};

// The client's side of one connection attempt. Not thread-safe.
class HandshakeClient {
 public:
  HandshakeClient(const crypto::Key32& server_public, uint64_t client_id);

  uint64_t client_id() const { return client_id_; }
  // The INITIAL to send (again, on a timer, until the handshake completes): with the
  // cookie once a RETRY gave one.
  const std::vector<uint8_t>& initial() const { return initial_; }

  enum class Progress : uint8_t {
    kIgnored,  // not for this attempt, malformed, or a second RETRY: keep waiting
    kRetry,    // took the cookie: send initial() now
    kDone,     // keys() and hello() are ready
    kFailed,   // the HANDSHAKE did not authenticate: wrong server key or tampering
  };
  Progress on_datagram(std::span<const uint8_t> datagram);

  const crypto::SessionKeys& keys() const { return keys_; }
  const v1::ServerHello& hello() const { return hello_; }

 private:
  void build_initial(std::span<const uint8_t> cookie);

  uint64_t client_id_;
  std::unique_ptr<crypto::NkInitiator> noise_;
  std::vector<uint8_t> message1_;
  std::vector<uint8_t> initial_;
  bool have_cookie_ = false;
  bool done_ = false;
  crypto::SessionKeys keys_{};
  v1::ServerHello hello_;
};

}  // namespace prism::net::session
