// The retransmission timeout of one session: RFC 6298 SRTT/RTTVAR smoothing, the
// exponential backoff of §5.5 and the bounds Prism puts on it.
#pragma once

#include <chrono>
#include <cstdint>

namespace prism::net::reliability {

struct RtoConfig {
  // RFC 6298 §2.1 starts at 1 s; a game session's first request should not wait that
  // long, and 500 ms still exceeds any path a realtime client can play on.
  std::chrono::milliseconds initial{500};
  // RFC 6298 §2.4 rounds the RTO up to 1 s to absorb TCP's delayed ACKs (up to 500 ms)
  // and the coarse timers of its day. Prism's receiver acknowledges within one loop turn
  // and libuv timers tick in 1 ms, so that slack is not needed; a 1 s floor would turn
  // each lost datagram into a visible stall on a 20-60 ms path, while a spurious
  // retransmission costs one small datagram and is deduplicated by the receiver.
  std::chrono::milliseconds min{50};
  // RFC 6298 §2.5 allows a cap of 60 s or more; Prism's sessions fail a peer after a
  // retry cap instead, so waiting longer than 5 s between tries only delays that verdict.
  std::chrono::milliseconds max{5000};
  // RFC 6298 §2 "G": the clock granularity, the least the variance term may add.
  std::chrono::milliseconds clock_granularity{1};
};

// One estimator per session and direction of data. Not thread-safe; lives on a worker.
//
// Karn's rule (RFC 6298 §3) is the caller's job: never pass on_sample() the round trip
// of a packet that was sent more than once, because its ACK may answer either copy.
// SentPackets::on_ack() only reports samples that satisfy the rule.
class RttEstimator {
 public:
  explicit RttEstimator(RtoConfig config = {});

  // One round-trip measurement (RFC 6298 §2.2 for the first, §2.3 after). Resets the
  // backoff (§5.7): the path answered, so the next timer starts from the estimate.
  void on_sample(std::chrono::microseconds rtt);

  // The retransmission timer expired (RFC 6298 §5.5): double the RTO, capped at max.
  void on_timeout();

  // The timeout to arm now: the estimate (or `initial` before any sample), held within
  // [min, max], doubled once per timeout since the last sample, never above max.
  std::chrono::milliseconds rto() const;

  bool has_sample() const { return has_sample_; }
  std::chrono::microseconds smoothed_rtt() const { return srtt_; }
  std::chrono::microseconds rtt_variation() const { return rttvar_; }
  // Timeouts since the last sample: the session compares it with its retry cap.
  uint32_t consecutive_timeouts() const { return timeouts_; }

 private:
  RtoConfig config_;
  bool has_sample_ = false;
  std::chrono::microseconds srtt_{0};
  std::chrono::microseconds rttvar_{0};
  uint32_t timeouts_ = 0;
};

}  // namespace prism::net::reliability
