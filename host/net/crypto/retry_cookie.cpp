// Stateless retry cookies (DESIGN.md §3): time buckets, HMAC-SHA256 over bucket, address and
// connection id, and the rotating random secret with one previous secret kept.
#include "net/crypto/retry_cookie.hpp"

#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>

#include <stdexcept>

#include "base/byte_order.hpp"

namespace prism::net::crypto {
RetryCookies::RetryCookies(std::chrono::seconds bucket, size_t max_redeemed_per_bucket)
    : bucket_(bucket), max_redeemed_(max_redeemed_per_bucket) {
  if (bucket_.count() <= 0) throw std::invalid_argument("retry cookie bucket must be positive");
  rekey(macs_[0]);
  rekey(macs_[1]);
}

void RetryCookies::rekey(Mac& mac) {
  std::array<uint8_t, 32> secret;
  CryptoPP::AutoSeededRandomPool rng;
  rng.GenerateBlock(secret.data(), secret.size());
  mac.SetKey(secret.data(), secret.size());
  CryptoPP::SecureWipeArray(secret.data(), secret.size());
}

uint64_t RetryCookies::bucket_of(time_point now) const {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
  if (since_epoch.count() < 0) return 0;
  return static_cast<uint64_t>(since_epoch.count() / bucket_.count());
}

void RetryCookies::rotate_if_due(uint64_t bucket) {
  const uint64_t epoch = bucket / kRotationBuckets;
  if (!started_) {
    started_ = true;
    epoch_ = epoch;
    return;
  }
  if (epoch == epoch_) return;
  if (epoch == epoch_ + 1) {
    current_ ^= 1;  // the current secret becomes the previous one
    rekey(macs_[current_]);
  } else {
    // Idle for more than a rotation, or the clock stepped back: no outstanding cookie can
    // be valid under the bucket rule, so forget both secrets.
    rekey(macs_[0]);
    rekey(macs_[1]);
  }
  epoch_ = epoch;
  ++rotations_;
}

void RetryCookies::compute(Mac& mac, uint64_t bucket, std::span<const uint8_t> address_bytes,
                           uint64_t connection_id, std::span<const uint8_t> binding,
                           uint8_t* out) {
  // Each variable-length field is preceded by its length, so the encoding is unambiguous.
  uint8_t field[8];
  store_be64(field, bucket);
  mac.Update(field, sizeof field);
  store_be64(field, address_bytes.size());
  mac.Update(field, sizeof field);
  mac.Update(address_bytes.data(), address_bytes.size());
  store_be64(field, connection_id);
  mac.Update(field, sizeof field);
  store_be64(field, binding.size());
  mac.Update(field, sizeof field);
  mac.Update(binding.data(), binding.size());
  mac.TruncatedFinal(out, kMacSize);
}

std::array<uint8_t, RetryCookies::kCookieSize> RetryCookies::mint(
    std::span<const uint8_t> address_bytes, uint64_t connection_id,
    std::span<const uint8_t> binding, time_point now) {
  const uint64_t bucket = bucket_of(now);
  rotate_if_due(bucket);
  std::array<uint8_t, kCookieSize> cookie;
  store_be64(cookie.data(), bucket);
  compute(macs_[current_], bucket, address_bytes, connection_id, binding, cookie.data() + 8);
  return cookie;
}

bool RetryCookies::verify(std::span<const uint8_t, kCookieSize> cookie,
                          std::span<const uint8_t> address_bytes, uint64_t connection_id,
                          std::span<const uint8_t> binding, time_point now) {
  const uint64_t now_bucket = bucket_of(now);
  rotate_if_due(now_bucket);
  const uint64_t bucket = load_be64(cookie.data());
  const bool fresh = bucket == now_bucket || (now_bucket > 0 && bucket == now_bucket - 1);
  if (!fresh) return false;

  const uint64_t epoch = bucket / kRotationBuckets;
  Mac* mac = nullptr;
  if (epoch == epoch_) {
    mac = &macs_[current_];
  } else if (epoch_ > 0 && epoch == epoch_ - 1) {
    mac = &macs_[current_ ^ 1];
  }
  if (mac == nullptr) return false;

  uint8_t expected[kMacSize];
  compute(*mac, bucket, address_bytes, connection_id, binding, expected);
  return CryptoPP::VerifyBufsEqual(expected, cookie.data() + 8, kMacSize);
}

bool RetryCookies::redeem(std::span<const uint8_t, kCookieSize> cookie, time_point now) {
  const uint64_t now_bucket = bucket_of(now);
  const uint64_t bucket = load_be64(cookie.data());
  if (bucket > now_bucket || now_bucket - bucket > 1) return false;  // could not verify
  Redeemed& record = redeemed_[bucket % redeemed_.size()];
  if (record.bucket != bucket) {  // a bucket too old to verify held this slot: reuse it
    record.bucket = bucket;
    record.macs.clear();
  }
  if (record.macs.size() >= max_redeemed_) return false;
  return record.macs.insert(load_be64(cookie.data() + 8)).second;
}

}  // namespace prism::net::crypto
