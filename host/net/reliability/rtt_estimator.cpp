// RFC 6298 arithmetic in integer microseconds, so that results are exact and tests can
// state them to the microsecond.
#include "net/reliability/rtt_estimator.hpp"

#include <algorithm>

namespace prism::net::reliability {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// RFC 6298 §2.3: alpha = 1/8, beta = 1/4; §2.2: K = 4.
constexpr int64_t kAlphaDenominator = 8;
constexpr int64_t kBetaDenominator = 4;
constexpr int64_t kK = 4;
// Doubling more often than this cannot matter (the cap is reached long before) and
// would overflow the shift.
constexpr uint32_t kMaxBackoffShift = 24;

milliseconds round_up(microseconds us) { return std::chrono::ceil<milliseconds>(us); }

milliseconds bound(milliseconds value, milliseconds lo, milliseconds hi) {
  return std::min(std::max(value, lo), hi);  // max wins when a config has lo > hi
}

}  // namespace

RttEstimator::RttEstimator(RtoConfig config) : config_(config) {}

void RttEstimator::on_sample(microseconds rtt) {
  rtt = std::max(rtt, microseconds{0});
  if (!has_sample_) {
    // §2.2: SRTT = R, RTTVAR = R/2.
    srtt_ = rtt;
    rttvar_ = rtt / 2;
    has_sample_ = true;
  } else {
    // §2.3: RTTVAR is updated first, with the SRTT from before this sample.
    const microseconds deviation = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
    rttvar_ = ((kBetaDenominator - 1) * rttvar_ + deviation) / kBetaDenominator;
    srtt_ = ((kAlphaDenominator - 1) * srtt_ + rtt) / kAlphaDenominator;
  }
  timeouts_ = 0;
}

void RttEstimator::on_timeout() {
  if (timeouts_ < UINT32_MAX) ++timeouts_;
}

milliseconds RttEstimator::rto() const {
  milliseconds base = config_.initial;
  if (has_sample_) {
    // §2.2/§2.3: RTO = SRTT + max(G, K * RTTVAR).
    const microseconds variance_term =
        std::max<microseconds>(config_.clock_granularity, kK * rttvar_);
    base = round_up(srtt_ + variance_term);
  }
  base = bound(base, config_.min, config_.max);
  // §5.5: each expiry doubles the timer; §2.5: a maximum may be placed on it.
  const uint32_t shift = std::min(timeouts_, kMaxBackoffShift);
  return std::min(base * (int64_t{1} << shift), config_.max);
}

}  // namespace prism::net::reliability
