// Per-source limits of a worker (docs/security.md, "One source, many sessions" and
// "Handshake flood"): a token bucket of handshakes per second, and caps on the sessions and
// unconfirmed handshakes one source (an IPv4 address or an IPv6 /64) holds at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace prism::net {

struct SourceLimitSettings {
  size_t max_sessions = 1024;             // sessions one source holds on this worker
  size_t max_handshakes = 64;             // of them, not yet confirmed by the client
  double handshakes_per_second = 100;     // INITIALs with a cookie, refill rate
  double handshake_burst = 100;           // bucket size
  size_t max_tracked = 65536;             // rate buckets kept; counts are bounded by sessions
};

// Not thread-safe: one per worker.
class SourceLimits {
 public:
  using Clock = std::chrono::steady_clock;

  explicit SourceLimits(SourceLimitSettings settings = {});

  // Takes one handshake token from the source's bucket; false when it is empty.
  bool allow_handshake(uint64_t source, Clock::time_point now);
  // Whether one more session, unconfirmed at first, fits under the source's caps.
  bool may_open(uint64_t source) const;

  // Counts. A session opens unconfirmed, may be confirmed once, closes once, and may move
  // to another source (a validated new address, §5.9).
  void opened(uint64_t source);
  void confirmed(uint64_t source);
  void closed(uint64_t source, bool was_confirmed);
  void moved(uint64_t from, uint64_t to, bool is_confirmed);

  size_t unconfirmed(uint64_t source) const;
  size_t tracked_buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled{};
  };
  struct Counts {
    uint32_t sessions = 0;
    uint32_t unconfirmed = 0;
  };
  void make_room(Clock::time_point now);

  SourceLimitSettings settings_;
  std::unordered_map<uint64_t, Bucket> buckets_;
  std::unordered_map<uint64_t, Counts> counts_;  // only sources holding something
};

}  // namespace prism::net
