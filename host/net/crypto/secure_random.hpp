// The cryptographic random generator a worker draws from (ephemeral keys, connection ids,
// path challenges): seeded once from the operating system, then Crypto++'s AES-based
// pool. One per worker, so drawing takes no lock and never re-reads the OS per handshake.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace CryptoPP {
class RandomNumberGenerator;
class AutoSeededRandomPool;
}  // namespace CryptoPP

namespace prism::net::crypto {

// Not thread-safe: one per thread that draws from it.
class SecureRandom {
 public:
  SecureRandom();
  ~SecureRandom();
  SecureRandom(const SecureRandom&) = delete;
  SecureRandom& operator=(const SecureRandom&) = delete;

  void fill(std::span<uint8_t> out);
  uint64_t next_u64();
  // For Crypto++ calls that take a generator (key generation).
  CryptoPP::RandomNumberGenerator& engine();

 private:
  std::unique_ptr<CryptoPP::AutoSeededRandomPool> pool_;
};

}  // namespace prism::net::crypto
