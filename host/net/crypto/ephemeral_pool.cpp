// The ephemeral key-pair pool: a single-producer, single-consumer ring.
#include "net/crypto/ephemeral_pool.hpp"

#include <cryptopp/misc.h>

#include "base/thread_name.hpp"
#include "net/crypto/secure_random.hpp"

namespace prism::net::crypto {
namespace {

void wipe(KeyPair& pair) {
  CryptoPP::SecureWipeArray(pair.private_key.data(), pair.private_key.size());
  pair.public_key.fill(0);
}

}  // namespace

EphemeralPool::EphemeralPool() : producer_([this] { produce(); }) {
  name_thread(producer_, "ephemeral-keys");
}

EphemeralPool::~EphemeralPool() {
  stopping_.store(true, std::memory_order_release);
  signal_.fetch_add(1, std::memory_order_release);
  signal_.notify_all();
  producer_.join();
  for (KeyPair& pair : slots_) wipe(pair);
}

void EphemeralPool::produce() {
  SecureRandom random;  // seeded once, for this thread alone
  for (;;) {
    // Read before looking for room, so a take() between the look and the wait wakes it.
    const uint32_t seen = signal_.load(std::memory_order_acquire);
    if (stopping_.load(std::memory_order_acquire)) return;
    const uint64_t made = made_.load(std::memory_order_relaxed);
    if (made - taken_.load(std::memory_order_acquire) < kCapacity) {
      slots_[made % kCapacity] = KeyPair::generate(random);
      made_.store(made + 1, std::memory_order_release);
      continue;
    }
    signal_.wait(seen, std::memory_order_acquire);
  }
}

std::optional<KeyPair> EphemeralPool::take() {
  const uint64_t taken = taken_.load(std::memory_order_relaxed);
  if (made_.load(std::memory_order_acquire) == taken) return std::nullopt;
  KeyPair& slot = slots_[taken % kCapacity];
  const KeyPair pair = slot;
  wipe(slot);
  taken_.store(taken + 1, std::memory_order_release);
  // The producer only sleeps on a full pool, so every sleep ends with takes that pass
  // this mark. It read `signal_` before it saw the pool full: a bump between that read and
  // its wait makes the wait return at once.
  if (made_.load(std::memory_order_acquire) - (taken + 1) == kRefillAt) {
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    signal_.fetch_add(1, std::memory_order_release);
    signal_.notify_one();
  }
  return pair;
}

}  // namespace prism::net::crypto
