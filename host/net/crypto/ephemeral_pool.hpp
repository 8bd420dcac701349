// Ephemeral X25519 key pairs made ahead of time on a thread of their own, so a worker
// answering a handshake (protocol.md §5.2) spends two scalar multiplications on it, not
// three: the responder's key pair is a third of its curve work (docs/performance.md,
// "Handshakes"). One producer, one consumer (the worker that owns the pool).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <thread>

#include "net/crypto/noise_nk.hpp"

namespace prism::net::crypto {

class EphemeralPool {
 public:
  // Pairs kept ready: a burst of this many handshakes costs the worker no key generation.
  static constexpr size_t kCapacity = 64;
  // The producer sleeps while the pool is full and is woken when a take leaves this many:
  // one wake-up per half a pool, not a futex call and a context switch per handshake.
  static constexpr size_t kRefillAt = kCapacity / 2;

  // Starts the producer, which fills the pool and then sleeps until pairs are taken.
  EphemeralPool();
  // Stops and joins the producer; the pairs left are wiped.
  ~EphemeralPool();
  EphemeralPool(const EphemeralPool&) = delete;
  EphemeralPool& operator=(const EphemeralPool&) = delete;

  // A fresh pair, never handed out before and wiped from the pool; empty when the
  // producer has not kept up (the caller then makes one itself). Consumer thread only.
  std::optional<KeyPair> take();

  // Pairs ready now, and how many times take() has woken the producer (for tests).
  size_t ready() const {
    return static_cast<size_t>(made_.load(std::memory_order_acquire) -
                               taken_.load(std::memory_order_acquire));
  }
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  void produce();

  std::array<KeyPair, kCapacity> slots_{};
  std::atomic<uint64_t> made_{0};   // pairs written (producer)
  std::atomic<uint64_t> taken_{0};  // pairs handed out (consumer)
  // Bumped by take() at the refill mark and by the destructor: what the producer sleeps on
  // when full.
  std::atomic<uint32_t> signal_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> wakeups_{0};
  std::thread producer_;
};

}  // namespace prism::net::crypto
