// The latency histogram every load records into: log-linear, fixed size, so recording
// never allocates and a quantile is within 1% of what was recorded.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace prism::bench {

// Log-linear latency histogram: 128 buckets per power of two of nanoseconds, so a
// value is reported within 1% of what was recorded. Fixed size: recording never
// allocates.
class LatencyHistogram {
 public:
  void record(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    const int shift = std::max(0, static_cast<int>(std::bit_width(v)) - kSubBits);
    counts_[static_cast<size_t>(shift) * kSub + (v >> shift)]++;
    ++total_;
  }

  void merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

  // The value below which a fraction q of the samples lie, in nanoseconds.
  double quantile_ns(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) {
        const int shift = static_cast<int>(i / kSub);
        const uint64_t low = (i % kSub) << shift;
        return static_cast<double>(low) + static_cast<double>((uint64_t{1} << shift) - 1) / 2.0;
      }
    }
    return 0;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr size_t kSub = size_t{1} << kSubBits;
  std::array<uint64_t, 64 * kSub> counts_{};
  uint64_t total_ = 0;
};

}  // namespace prism::bench
