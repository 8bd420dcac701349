// Process-wide logging setup on spdlog: one line per event, key=value fields.
// Never log raw packet bytes or tokens (STYLE.md).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

#include "base/expected.hpp"

namespace prism {

// Sets the default logger's level from a name (trace, debug, info, warn, error, off).
Expected<void> set_log_level(std::string_view name);

// Installs the default logger (stderr, "[time] [level] message") once at start-up.
void init_logging();

// Routes libprotobuf's own messages (it reports every string field with invalid UTF-8,
// which any remote peer can send) into the log as rate-limited event=protobuf_log lines.
void route_protobuf_logs();

// Lets through at most `per_second` log lines per second and counts the rest, so a log
// line that remote input can trigger cannot flood the log. Not thread-safe: one per loop.
class LogRateLimiter {
 public:
  explicit LogRateLimiter(uint32_t per_second = 10) : per_second_(per_second) {}

  bool allow(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ < per_second_) {
      ++in_window_;
      return true;
    }
    ++suppressed_;
    return false;
  }
  // Lines suppressed since the last call; report it in the next line let through.
  uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }

 private:
  uint32_t per_second_;
  uint32_t in_window_ = 0;
  uint64_t suppressed_ = 0;
  std::chrono::steady_clock::time_point window_start_{};
};

}  // namespace prism
