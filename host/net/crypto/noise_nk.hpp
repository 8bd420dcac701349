// The secure transport's handshake (DESIGN.md §3): Noise_NK_25519_AESGCM_SHA256 as in the
// Noise Protocol Framework, revision 34, plus the Noise HKDF that the packet keys reuse.
// The client knows the server's static X25519 key; two messages yield one key per direction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.hpp"

namespace prism::net::crypto {

class SecureRandom;

// Noise §8: the full protocol name; it is hashed into the handshake (§5.2).
inline constexpr std::string_view kNoiseProtocolName = "Noise_NK_25519_AESGCM_SHA256";
// Noise §4.1 / §12.1: DHLEN for 25519; §4.2: AEAD tags are 16 bytes; §4.3: HASHLEN.
inline constexpr size_t kDhLen = 32;
inline constexpr size_t kAeadTagSize = 16;
inline constexpr size_t kHashLen = 32;
// Noise §3: no Noise message is longer than 65535 bytes.
inline constexpr size_t kMaxNoiseMessage = 65535;
// Both handshake messages are `e || AEAD(payload)` (Noise §7.5, pattern NK).
inline constexpr size_t kHandshakeOverhead = kDhLen + kAeadTagSize;
inline constexpr size_t kMaxHandshakePayload = kMaxNoiseMessage - kHandshakeOverhead;
inline constexpr size_t kNonceSize = 12;

// Noise §12.4: the AESGCM nonce is 32 bits of zeros then the 64-bit counter, big-endian.
// Data packets use the same layout with their packet number as the counter.
std::array<uint8_t, kNonceSize> aesgcm_nonce(uint64_t counter);

using Key32 = std::array<uint8_t, 32>;

// An X25519 key pair (RFC 7748). The private key is kept as given; X25519 clamps it on use.
struct KeyPair {
  Key32 private_key{};
  Key32 public_key{};

  // A fresh pair from Crypto++'s AutoSeededRandomPool, seeded for this call (slow: one
  // OS read per call; fine for a client or a key file).
  static KeyPair generate();
  // A fresh pair from `random`: what a server does once per handshake.
  static KeyPair generate(SecureRandom& random);
  // The pair for an existing 32-byte private key; refuses any other length.
  static Expected<KeyPair> from_private(std::span<const uint8_t> private_key);
};

// True for the all-zero key and the other small-order Curve25519 points: a DH with them
// yields a value an attacker can predict, so Prism refuses them as peer keys.
bool is_low_order_public_key(const Key32& public_key);

// Noise §4.3 HKDF(chaining_key, input_key_material, 2) with HMAC-SHA256:
//   temp_key = HMAC(chaining_key, ikm); out1 = HMAC(temp_key, 0x01);
//   out2 = HMAC(temp_key, out1 || 0x02).
// (RFC 5869 HKDF with salt = chaining_key, empty info, L = 64.)
std::pair<Key32, Key32> noise_hkdf(std::span<const uint8_t> chaining_key,
                                   std::span<const uint8_t> input_key_material);

// What a finished handshake yields (Noise §5.2 Split and GetHandshakeHash). The hash is
// the same on both sides and unique to the handshake: bind credentials to it (§11.2).
struct SessionKeys {
  Key32 initiator_to_responder{};
  Key32 responder_to_initiator{};
  Key32 handshake_hash{};
};

namespace detail {

// Noise §5.1 CipherState with the AESGCM cipher functions of §12.4. It holds only the key
// and the counter; the GCM object is built per call (two calls per handshake).
class CipherState {
 public:
  void initialize_key(const Key32& key);
  bool has_key() const { return has_key_; }
  void encrypt_with_ad(std::span<const uint8_t> ad, std::span<const uint8_t> plaintext,
                       std::vector<uint8_t>& out);
  bool decrypt_with_ad(std::span<const uint8_t> ad, std::span<const uint8_t> ciphertext,
                       std::vector<uint8_t>& out);
  void wipe();

 private:
  Key32 k_{};
  uint64_t n_ = 0;
  bool has_key_ = false;
};

// Noise §5.2 SymmetricState over SHA-256.
class SymmetricState {
 public:
  explicit SymmetricState(std::string_view protocol_name);
  void mix_key(std::span<const uint8_t> input_key_material);
  void mix_hash(std::span<const uint8_t> data);
  void encrypt_and_hash(std::span<const uint8_t> plaintext, std::vector<uint8_t>& out);
  bool decrypt_and_hash(std::span<const uint8_t> ciphertext, std::vector<uint8_t>& out);
  // Split (§5.2) plus the handshake hash; wipes the chaining key afterwards.
  SessionKeys split();
  void wipe();

 private:
  Key32 ck_{};
  Key32 h_{};
  CipherState cipher_;
};

}  // namespace detail

// The client side of NK (Noise §7.5):
//   <- s
//   ...
//   -> e, es
//   <- e, ee
// One object per handshake attempt; after any failure it refuses further use.
class NkInitiator {
 public:
  // `prologue` is mixed into the handshake hash (Noise §6); Prism passes the cleartext
  // datagram header so an edited header breaks the handshake. Throws std::invalid_argument
  // for a low-order server key (a configuration error: decode_public_key refuses those).
  NkInitiator(const Key32& server_public, std::span<const uint8_t> prologue);
  // Test only: a fixed ephemeral key so official Noise test vectors can be replayed.
  // Never use it in the transport: a reused ephemeral key breaks forward secrecy.
  NkInitiator(const Key32& server_public, std::span<const uint8_t> prologue,
              const KeyPair& fixed_ephemeral);
  ~NkInitiator();
  NkInitiator(const NkInitiator&) = delete;
  NkInitiator& operator=(const NkInitiator&) = delete;

  // The first message: 32-byte e || AEAD(payload). Throws std::logic_error if called twice
  // and std::length_error above kMaxHandshakePayload (both are caller bugs).
  std::vector<uint8_t> write_message1(std::span<const uint8_t> payload);
  // Reads the responder's message and returns its payload; an error for a truncated or
  // tampered message, a low-order ephemeral key, or a handshake in the wrong state.
  Expected<std::vector<uint8_t>> read_message2(std::span<const uint8_t> message);
  // The session keys; valid once read_message2 succeeded (throws std::logic_error before).
  SessionKeys split() const;

 private:
  enum class Stage { kStart, kSentMessage1, kDone, kFailed };
  Stage stage_ = Stage::kStart;
  detail::SymmetricState symmetric_;
  Key32 remote_static_{};
  KeyPair ephemeral_{};
  SessionKeys keys_{};
};

// The server side of NK. One object per handshake attempt.
class NkResponder {
 public:
  NkResponder(const KeyPair& server_static, std::span<const uint8_t> prologue);
  // Test only: see NkInitiator.
  NkResponder(const KeyPair& server_static, std::span<const uint8_t> prologue,
              const KeyPair& fixed_ephemeral);
  ~NkResponder();
  NkResponder(const NkResponder&) = delete;
  NkResponder& operator=(const NkResponder&) = delete;

  // Reads the initiator's message and returns its payload. An error when the message was
  // encrypted to another server key, was tampered with, used another prologue, or carries
  // a low-order ephemeral key.
  Expected<std::vector<uint8_t>> read_message1(std::span<const uint8_t> message);
  // The reply: 32-byte e || AEAD(payload); completes the handshake. Throws
  // std::logic_error unless read_message1 succeeded, std::length_error for a payload
  // above kMaxHandshakePayload.
  std::vector<uint8_t> write_message2(std::span<const uint8_t> payload);
  // The same with the responder's ephemeral pair given: fresh for this handshake, drawn
  // from the caller's generator (prismd: the worker's). It is wiped here after use.
  std::vector<uint8_t> write_message2(std::span<const uint8_t> payload, const KeyPair& ephemeral);
  // The session keys; valid once write_message2 returned (throws std::logic_error before).
  SessionKeys split() const;

 private:
  enum class Stage { kStart, kReadMessage1, kDone, kFailed };
  std::vector<uint8_t> write_message2_with_ephemeral(std::span<const uint8_t> payload);

  Stage stage_ = Stage::kStart;
  detail::SymmetricState symmetric_;
  KeyPair static_{};
  Key32 remote_ephemeral_{};
  KeyPair ephemeral_{};
  bool has_fixed_ephemeral_ = false;
  SessionKeys keys_{};
};

}  // namespace prism::net::crypto
