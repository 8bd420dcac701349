// SecureRandom over Crypto++'s AutoSeededRandomPool.
#include "net/crypto/secure_random.hpp"

#include <cryptopp/osrng.h>

#include <cstring>

namespace prism::net::crypto {

SecureRandom::SecureRandom() : pool_(std::make_unique<CryptoPP::AutoSeededRandomPool>()) {}

SecureRandom::~SecureRandom() = default;

void SecureRandom::fill(std::span<uint8_t> out) { pool_->GenerateBlock(out.data(), out.size()); }

uint64_t SecureRandom::next_u64() {
  uint8_t bytes[8];
  pool_->GenerateBlock(bytes, sizeof bytes);
  uint64_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

CryptoPP::RandomNumberGenerator& SecureRandom::engine() { return *pool_; }

}  // namespace prism::net::crypto
