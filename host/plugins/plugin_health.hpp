// A plugin version's recent failure rate and the "degraded" verdict drawn from it
// (crash containment, DESIGN.md §5). Lock-free: workers record outcomes concurrently.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "prism/plugin.h"

namespace prism::plugins {

// Counts outcomes in one-second buckets over a sliding window. A version is degraded while
// at least kMinRequests requests in the last kWindow seconds were answered and at least
// half of them failed. Only server-side failures count (INTERNAL, TIMEOUT, UNAVAILABLE:
// a handler that threw, never answered, or gave up); a client's bad argument does not.
// Bucket rollover races between workers may lose a few counts: a health signal, not a
// metric (the exact counts live in prism_plugin_requests_total / errors_total).
class PluginHealth {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int64_t kWindowSeconds = 10;
  static constexpr uint64_t kMinRequests = 20;

  static bool is_failure(prism_status_t status) {
    return status == PRISM_INTERNAL || status == PRISM_TIMEOUT || status == PRISM_UNAVAILABLE;
  }

  void record(prism_status_t status, Clock::time_point now = Clock::now()) {
    const int64_t second = seconds(now);
    Bucket& b = buckets_[static_cast<size_t>(second % kWindowSeconds)];
    int64_t seen = b.second.load(std::memory_order_relaxed);
    if (seen != second &&
        b.second.compare_exchange_strong(seen, second, std::memory_order_relaxed)) {
      b.total.store(0, std::memory_order_relaxed);
      b.failed.store(0, std::memory_order_relaxed);
    }
    b.total.fetch_add(1, std::memory_order_relaxed);
    if (is_failure(status)) b.failed.fetch_add(1, std::memory_order_relaxed);
  }

  struct Window {
    uint64_t total = 0;
    uint64_t failed = 0;
  };
  Window window(Clock::time_point now = Clock::now()) const {
    const int64_t second = seconds(now);
    Window w;
    for (const auto& b : buckets_) {
      const int64_t s = b.second.load(std::memory_order_relaxed);
      if (s > second - kWindowSeconds && s <= second) {
        w.total += b.total.load(std::memory_order_relaxed);
        w.failed += b.failed.load(std::memory_order_relaxed);
      }
    }
    return w;
  }

  bool degraded(Clock::time_point now = Clock::now()) const {
    const Window w = window(now);
    return w.total >= kMinRequests && w.failed * 2 >= w.total;
  }

 private:
  static int64_t seconds(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  struct Bucket {
    std::atomic<int64_t> second{-1};
    std::atomic<uint64_t> total{0};
    std::atomic<uint64_t> failed{0};
  };
  std::array<Bucket, kWindowSeconds> buckets_{};
};

}  // namespace prism::plugins
