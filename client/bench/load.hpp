// What prism-bench's loads share (docs/performance.md): the options, the run's window
// (warm-up, then measurement), the stats each thread keeps, and Load, the skeleton of the
// baseline and secure loads: the open-loop schedule and the loop that turns until the
// window ends.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "histogram.hpp"
#include "prism/client.hpp"
#include "workload.hpp"

namespace prism::bench {

constexpr int kBatch = 64;                             // datagrams per recvmmsg/sendmmsg
constexpr int64_t kRequestTimeoutNs = 1'000'000'000;   // unanswered after this: a timeout
constexpr int64_t kTimeoutScanNs = 10'000'000;         // how often slots are checked for it
constexpr int64_t kRetryBlockedSendNs = 1'000'000;     // after a send hit EAGAIN
constexpr size_t kReceiveBufferSize = 65536;           // any UDP datagram fits
// Waits shorter than this are spent polling: a sleep that short overshoots by about as
// much in a VM, and the secure load (which cannot sleep on a socket) would not pay it.
constexpr int64_t kSpinBelowNs = 1'000'000;

enum class Mode : uint8_t {
  kSecure,     // requests over libprism-client sessions
  kBaseline,   // raw datagrams against a plain UDP echo
  kHandshake,  // open and close sessions
};

struct Options {
  std::string server = "127.0.0.1:7777";
  std::string server_key;  // "prism1:<hex>" or a server.pub file
  int clients = 4;
  int inflight = 16;
  double duration_s = 5.0;
  double warmup_s = 0.5;
  uint32_t packet_id = 101;  // default.echo
  size_t payload_size = 32;
  double rate = 0;  // 0: closed loop
  int threads = 1;
  std::string delivery = "ordered";
  bool baseline = false;
  double handshakes_s = 0;  // > 0: handshake mode, measured for this long
  std::string label = "prism";
  bool json = false;
  std::string workload = "echo";  // secure mode: what the requests carry (workload.hpp)
  uint32_t players = 1000;

  WorkloadOptions workload_options() const {
    WorkloadOptions o;
    o.name = workload;
    o.packet_id = packet_id;
    o.payload_size = payload_size;
    o.players = players;
    // Match ids must be new in every run against the same database.
    o.run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    return o;
  }

  Mode mode() const {
    if (handshakes_s > 0) return Mode::kHandshake;
    return baseline ? Mode::kBaseline : Mode::kSecure;
  }
  prism::v1::Delivery wire_delivery() const {
    if (delivery == "unordered") return prism::v1::DELIVERY_RELIABLE_UNORDERED;
    if (delivery == "unreliable") return prism::v1::DELIVERY_UNRELIABLE;
    return prism::v1::DELIVERY_RELIABLE_ORDERED;
  }
};

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Stats {
  uint64_t completed = 0;
  uint64_t errors = 0;  // completed with a status other than OK, or a failed handshake
  uint64_t timeouts = 0;
  LatencyHistogram latency;
  std::string first_error;  // what the first error said, for the result line's reader

  void merge(const Stats& other) {
    completed += other.completed;
    errors += other.errors;
    timeouts += other.timeouts;
    latency.merge(other.latency);
    if (first_error.empty()) first_error = other.first_error;
  }
};

// The run's phases on the monotonic clock: warm-up from start, then measurement.
struct Window {
  int64_t start_ns = 0;
  int64_t measure_ns = 0;
  int64_t end_ns = 0;
  bool measuring(int64_t t) const { return t >= measure_ns && t < end_ns; }
};

// Set by any thread that cannot go on; the others stop at their next turn.
inline std::atomic<bool> g_abort{false};

// A load that keeps requests in flight, closed loop (a new request for each reply) or
// open loop (requests on a fixed schedule, latency counted from the scheduled time).
class Load {
 public:
  const Stats& stats() const { return stats_; }
  const std::string& error() const { return error_; }

 protected:
  Load(const Options& opts, std::string peer) : opts_(opts), peer_(std::move(peer)) {}

  // Calls turn(now) until the window ends, another thread aborts, or this load fails.
  template <typename Turn>
  void run_window(const Window& window, Turn&& turn) {
    window_ = window;
    for (;;) {
      const int64_t now = now_ns();
      if (now >= window.end_ns || g_abort.load(std::memory_order_relaxed)) return;
      turn(now);
      if (!error_.empty()) return;
    }
  }

  void fatal(std::string text) {
    if (error_.empty()) error_ = std::move(text);
    g_abort.store(true, std::memory_order_relaxed);
  }

  // Open loop: `rate` requests a second from this thread; 0 keeps it closed.
  void set_rate(double rate) { interval_ns_ = rate > 0 ? 1e9 / rate : 0; }
  bool open_loop() const { return interval_ns_ > 0; }
  // When request number `index` of the schedule is intended to leave.
  int64_t intended_ns(uint64_t index) const {
    return window_.start_ns + static_cast<int64_t>(static_cast<double>(index) * interval_ns_);
  }
  int64_t next_due_ns() const { return intended_ns(next_index_); }
  // How many requests of the schedule are due by `now` (sent or not).
  uint64_t due_by(int64_t now) const {
    return static_cast<uint64_t>(static_cast<double>(now - window_.start_ns) / interval_ns_) + 1;
  }

  const Options& opts_;
  std::string peer_;
  Window window_;
  uint64_t next_index_ = 0;  // open loop: the next scheduled request
  Stats stats_;
  std::string error_;

 private:
  double interval_ns_ = 0;  // open loop: time between this thread's requests
};

}  // namespace prism::bench
