// Stateless retry cookies (DESIGN.md §3): before allocating any state for a first Hello the
// server answers with a cookie that proves, when echoed, that the client owns its address.
#pragma once

#include <cryptopp/hmac.h>
#include <cryptopp/sha.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_set>

namespace prism::net::crypto {

// cookie = bucket index (u64 big-endian) || first 16 bytes of
//          HMAC-SHA256(secret, bucket index || address bytes || connection id (u64 BE)
//                      || the INITIAL's Noise message 1).
// A bucket is a fixed slice of wall-clock time; a cookie verifies in its own bucket and the
// next one only, so it lives between one and two bucket lengths (10-20 s by default).
// The secret is random and rotates every kRotationBuckets buckets; the previous secret is
// kept, so a cookie minted just before a rotation still verifies just after it.
//
// Binding the Noise message (the client's ephemeral key and its tag) means a cookie
// verifies only beside the exact message it was minted for: an attacker cannot pair one
// cookie with fresh garbage to make the server run X25519 for each copy. And a cookie is
// redeemed once (redeem()): a replay of the whole INITIAL costs an HMAC, not a DH
// (docs/security.md, "Handshake flood").
// Not thread-safe: one per worker.
class RetryCookies {
 public:
  using time_point = std::chrono::system_clock::time_point;
  static constexpr size_t kCookieSize = 24;
  static constexpr size_t kMacSize = 16;
  static constexpr uint64_t kRotationBuckets = 64;
  // Redeemed cookies remembered per bucket; beyond it redeem() refuses (fail closed).
  static constexpr size_t kDefaultMaxRedeemedPerBucket = size_t{1} << 18;

  explicit RetryCookies(std::chrono::seconds bucket = std::chrono::seconds(10),
                        size_t max_redeemed_per_bucket = kDefaultMaxRedeemedPerBucket);
  RetryCookies(const RetryCookies&) = delete;
  RetryCookies& operator=(const RetryCookies&) = delete;

  // `address_bytes` is the peer's address as the transport sees it (IP and port bytes);
  // `binding` the Noise message 1 of the INITIAL the cookie answers.
  std::array<uint8_t, kCookieSize> mint(std::span<const uint8_t> address_bytes,
                                        uint64_t connection_id, std::span<const uint8_t> binding,
                                        time_point now);
  // True only for a cookie minted by this object for the same address, connection id and
  // binding, in the bucket of `now` or the one before. The MAC is compared in constant time.
  bool verify(std::span<const uint8_t, kCookieSize> cookie,
              std::span<const uint8_t> address_bytes, uint64_t connection_id,
              std::span<const uint8_t> binding, time_point now);
  // Marks a verified cookie used; false when it was used already (a replay) or the
  // bucket's record is full. Records last as long as the cookie could verify.
  bool redeem(std::span<const uint8_t, kCookieSize> cookie, time_point now);

  // How many times the secret has rotated (for metrics and tests).
  uint64_t rotations() const { return rotations_; }

 private:
  using Mac = CryptoPP::HMAC<CryptoPP::SHA256>;
  struct Redeemed {
    uint64_t bucket = 0;
    std::unordered_set<uint64_t> macs;  // the first 8 MAC bytes: unforgeable without the secret
  };
  uint64_t bucket_of(time_point now) const;
  void rotate_if_due(uint64_t bucket);
  static void rekey(Mac& mac);
  static void compute(Mac& mac, uint64_t bucket, std::span<const uint8_t> address_bytes,
                      uint64_t connection_id, std::span<const uint8_t> binding, uint8_t* out);

  std::chrono::seconds bucket_;
  size_t max_redeemed_;
  bool started_ = false;
  uint64_t epoch_ = 0;  // bucket / kRotationBuckets that the current secret belongs to
  uint64_t rotations_ = 0;
  // Keyed once per secret, so minting and verifying allocate nothing.
  std::array<Mac, 2> macs_;
  size_t current_ = 0;  // macs_[current_] holds the current secret, the other the previous
  // A cookie of bucket b is redeemable while b is the current or the previous bucket:
  // one record per bucket, reused when its bucket is past.
  std::array<Redeemed, 2> redeemed_;
};

}  // namespace prism::net::crypto
