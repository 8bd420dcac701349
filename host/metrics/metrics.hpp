// Counters and latency histograms shared by every layer, and their Prometheus text
// exposition. Updates are lock-free; only registration takes a lock.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace prism::metrics {

class Counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Latencies in log-spaced buckets: bucket i holds values below 2^(i/4) microseconds
// (four buckets per doubling, ~19% wide), from 1 us up to about 70 minutes.
class LatencyHistogram {
 public:
  static constexpr size_t kBuckets = 128;

  void record(std::chrono::nanoseconds latency);
  // The sum of the buckets (no counter of its own: one atomic add less per record).
  uint64_t count() const;
  // Upper bound of the bucket holding quantile q (0 < q <= 1); zero when empty.
  std::chrono::microseconds quantile(double q) const;
  static double bucket_upper_us(size_t bucket);
  uint64_t bucket_count(size_t bucket) const {
    return buckets_[bucket].load(std::memory_order_relaxed);
  }
  uint64_t sum_us() const { return sum_us_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_us_{0};
};

// Owns every metric of the process. References it hands out stay valid for its life.
class Registry {
 public:
  // `labels` is Prometheus label text without braces, e.g. `plugin="default"`.
  Counter& counter(std::string_view name, std::string_view labels, std::string_view help);
  LatencyHistogram& histogram(std::string_view name, std::string_view labels,
                              std::string_view help);
  // A gauge read when the metrics are rendered (a state, a count held elsewhere). `read`
  // runs under the registry's lock, on the thread that renders: keep it short. Replaces
  // a gauge of the same name; remove_gauge before what `read` uses goes away.
  void gauge(std::string_view name, std::string_view help, std::function<double()> read);
  void remove_gauge(std::string_view name);

  std::string render_prometheus() const;

 private:
  template <typename T>
  struct Entry {
    std::string name;
    std::string labels;
    std::string help;
    T metric;
  };
  template <typename T>
  static T& find_or_add(std::deque<Entry<T>>& entries, std::string_view name,
                        std::string_view labels, std::string_view help);

  mutable std::mutex mutex_;
  std::deque<Entry<Counter>> counters_;
  std::deque<Entry<LatencyHistogram>> histograms_;
  std::deque<Entry<std::function<double()>>> gauges_;
};

// The process-wide registry.
Registry& registry();

// Gauges of the process read when asked (docs/operations.md, metrics): its resident set
// (prism_process_resident_bytes, proc(5) statm) and the heap malloc has handed out and
// not had back (prism_heap_inuse_bytes, mallinfo2). Resident memory keeps what a burst
// once needed (the allocator holds freed pages); heap in use is what is live now.
std::string render_process_gauges();

// registry().render_prometheus() and the process gauges: what /metrics and stats show.
std::string render_all();

}  // namespace prism::metrics
