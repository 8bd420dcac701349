// AEAD protection of data packets after the handshake (DESIGN.md §3): AES-256-GCM with the
// cleartext datagram header as associated data and the packet number as nonce, plus the
// key-update derivation.
#pragma once

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/expected.hpp"

namespace prism::net::crypto {

inline constexpr size_t kPacketTagSize = 16;

// Keys are per direction (SessionKeys::initiator_to_responder / responder_to_initiator),
// so a packet number is a nonce used once under its key as long as a sender never reuses
// a packet number. Each object builds its GCM context once, for one key; sealing and
// opening then allocate nothing. Not thread-safe: one per connection direction.
//
// Nonce (as Noise §12.4's AESGCM): 4 zero bytes || packet number, 64-bit big-endian.
class PacketSealer {
 public:
  explicit PacketSealer(const std::array<uint8_t, 32>& key);

  // Writes ciphertext || 16-byte tag into `out` and returns its size, or 0 when `out` is
  // shorter than plaintext.size() + kPacketTagSize. `header` is authenticated, not
  // encrypted. `out` may be `plaintext` itself (sealing in place) but must not otherwise
  // overlap it.
  size_t seal(uint64_t packet_number, std::span<const uint8_t> header,
              std::span<const uint8_t> plaintext, std::span<uint8_t> out);

 private:
  CryptoPP::GCM<CryptoPP::AES>::Encryption gcm_;
};

class PacketOpener {
 public:
  explicit PacketOpener(const std::array<uint8_t, 32>& key);

  // Checks the tag over `header` and the ciphertext and writes the plaintext into `out`;
  // returns its size. Fails (and leaves no plaintext in `out`) for a packet shorter than
  // the tag, an `out` too small, or any change to header, ciphertext, tag or packet number.
  // The error texts stay under 16 characters so a flood of forged packets allocates
  // nothing (they fit std::string's inline buffer). `out` may be the ciphertext itself.
  Expected<size_t> open(uint64_t packet_number, std::span<const uint8_t> header,
                        std::span<const uint8_t> ciphertext_and_tag, std::span<uint8_t> out);

 private:
  CryptoPP::GCM<CryptoPP::AES>::Decryption gcm_;
};

// Key update: the next key of a direction is the first output of the Noise HKDF (Noise
// §4.3) with the current key as chaining key and "prism key update" as input key material.
// Both sides derive it independently. The transport switches to the next key every 2^28
// packets (well inside AES-GCM's usage limits for one key), signalling the switch with a
// key-phase bit in the header; the receiver keeps the previous key's opener for a while to
// open reordered packets. The key-phase bit lives in the transport, not here.
inline constexpr uint64_t kPacketsPerKey = uint64_t{1} << 28;
std::array<uint8_t, 32> next_key(const std::array<uint8_t, 32>& key);

}  // namespace prism::net::crypto
