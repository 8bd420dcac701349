// AES-256-GCM sealing and opening of data packets with Crypto++ GCM<AES>, one context per
// key built at construction (DESIGN.md §3), and the key-update derivation.
#include "net/crypto/packet_protection.hpp"

#include <cryptopp/misc.h>

#include <cstddef>
#include <string_view>

#include "net/crypto/noise_nk.hpp"

namespace prism::net::crypto {
namespace {

// Crypto++ insists on an IV with the key; every seal/open resynchronizes with its own nonce.
template <typename Gcm>
void keyed(Gcm& gcm, const std::array<uint8_t, 32>& key) {
  const auto nonce = aesgcm_nonce(0);
  gcm.SetKeyWithIV(key.data(), key.size(), nonce.data(), nonce.size());
}

}  // namespace

PacketSealer::PacketSealer(const std::array<uint8_t, 32>& key) {
  keyed(gcm_, key);
}

size_t PacketSealer::seal(uint64_t packet_number, std::span<const uint8_t> header,
                          std::span<const uint8_t> plaintext, std::span<uint8_t> out) {
  const size_t sealed_size = plaintext.size() + kPacketTagSize;
  if (out.size() < sealed_size) return 0;
  const auto nonce = aesgcm_nonce(packet_number);
  gcm_.EncryptAndAuthenticate(out.data(), out.data() + plaintext.size(), kPacketTagSize,
                              nonce.data(), nonce.size(), header.data(), header.size(),
                              plaintext.data(), plaintext.size());
  return sealed_size;
}

PacketOpener::PacketOpener(const std::array<uint8_t, 32>& key) {
  keyed(gcm_, key);
}

Expected<size_t> PacketOpener::open(uint64_t packet_number, std::span<const uint8_t> header,
                                    std::span<const uint8_t> ciphertext_and_tag,
                                    std::span<uint8_t> out) {
  if (ciphertext_and_tag.size() < kPacketTagSize) return make_error("open: truncated");
  const size_t plaintext_size = ciphertext_and_tag.size() - kPacketTagSize;
  if (out.size() < plaintext_size) return make_error("open: no room");
  const auto nonce = aesgcm_nonce(packet_number);
  const uint8_t* tag = ciphertext_and_tag.data() + plaintext_size;
  const bool authentic = gcm_.DecryptAndVerify(out.data(), tag, kPacketTagSize, nonce.data(),
                                               nonce.size(), header.data(), header.size(),
                                               ciphertext_and_tag.data(), plaintext_size);
  if (!authentic) {
    CryptoPP::SecureWipeArray(out.data(), plaintext_size);
    return make_error("open: bad tag");
  }
  return plaintext_size;
}

std::array<uint8_t, 32> next_key(const std::array<uint8_t, 32>& key) {
  static constexpr std::string_view kLabel = "prism key update";
  const auto label = std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size());
  auto [next, unused] = noise_hkdf(key, label);
  CryptoPP::SecureWipeArray(unused.data(), unused.size());
  return next;
}

}  // namespace prism::net::crypto
