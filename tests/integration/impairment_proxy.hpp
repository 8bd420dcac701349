// A UDP proxy that sits between a test client and a real server and impairs the path
// (loss, duplication, reordering, delay) so integration tests can prove the
// reliability layer copes. One background thread, one poll loop, no sleeps.
#pragma once

#include <sys/socket.h>
#include <time.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace prism::test {

// What one direction of the path does to each datagram. Probabilities are drawn
// independently per datagram; each direction has its own generator seeded by `seed`,
// so a run is reproducible for a given seed and the same traffic.
struct Impairment {
  double loss = 0;       // dropped outright
  double duplicate = 0;  // sent twice
  double reorder = 0;    // held back until a later datagram of the direction leaves
  std::chrono::microseconds delay{0};   // every datagram leaves at now + delay + ...
  std::chrono::microseconds jitter{0};  // ... + uniform[0, jitter); can reorder by itself
  uint64_t seed = 1;
  // The first this many datagrams of each client address, each way, pass untouched: its
  // connection setup, so that a load measures the impaired path, not the luck of its
  // handshakes (whose retry timers back off: run_impaired_bench.sh).
  uint64_t spare_first = 0;
};

class ImpairmentProxy {
 public:
  // Datagrams handed to and taken from the kernel, per direction, plus what the
  // impairments did. A duplicated datagram counts twice in *_out. A datagram is in
  // *_out before the receiver can read it, and in `dropped` before any later datagram
  // of its direction leaves, so a receiver can account for everything it sent.
  struct Counters {
    uint64_t c2s_in = 0;
    uint64_t c2s_out = 0;
    uint64_t s2c_in = 0;
    uint64_t s2c_out = 0;
    uint64_t dropped = 0;     // lost, oversized, or sent into a paused path
    uint64_t duplicated = 0;  // extra copies made
    uint64_t reordered = 0;   // datagrams held back
  };

  // Largest UDP payload over IPv4; anything longer is dropped.
  static constexpr size_t kMaxDatagram = 65507;
  // A held-back datagram leaves after this even if no later datagram comes.
  static constexpr std::chrono::milliseconds kMaxHold{20};

  // Listens on 127.0.0.1:0 (or [::1]:0 when `upstream` is IPv6) and forwards to
  // `upstream`. Throws std::system_error naming the call that failed.
  ImpairmentProxy(const sockaddr_storage& upstream, socklen_t len,
                  Impairment client_to_server = {}, Impairment server_to_client = {});
  ~ImpairmentProxy();
  ImpairmentProxy(const ImpairmentProxy&) = delete;
  ImpairmentProxy& operator=(const ImpairmentProxy&) = delete;

  // The port clients send to, on the loopback address of the upstream's family.
  uint16_t port() const { return port_; }

  // Applies to datagrams received from now on and reseeds both generators from the
  // new seeds. Datagrams already delayed or held keep their release times.
  void set_impairment(Impairment client_to_server, Impairment server_to_client);
  // While paused, every datagram (arriving or due to leave) is dropped: a dead path.
  void pause(bool paused) { paused_.store(paused); }
  Counters counters() const;

 private:
  enum Direction : size_t { kClientToServer = 0, kServerToClient = 1 };

  // One client source address and the upstream socket the server sees it as.
  struct Flow {
    sockaddr_storage client{};
    socklen_t client_len = 0;
    int upstream_fd = -1;
    std::array<uint64_t, 2> seen{};  // datagrams so far, per direction (spare_first)
  };

  // A datagram waiting for its release time.
  struct Scheduled {
    std::chrono::steady_clock::time_point due;
    uint64_t order = 0;  // breaks ties so equal due times leave in arrival order
    Direction direction = kClientToServer;
    size_t flow = 0;
    std::vector<uint8_t> bytes;
  };

  // A datagram held back to be released behind a later one.
  struct Held {
    std::chrono::steady_clock::time_point deadline;
    uint64_t order = 0;  // released once a datagram that arrived after it leaves
    size_t flow = 0;
    std::vector<uint8_t> bytes;
  };

  struct DirectionState {
    Impairment impairment;
    std::mt19937_64 rng;
  };

  void run();
  void read_clients();
  void read_server(size_t flow);
  size_t flow_for(const sockaddr_storage& client, socklen_t len);
  void impair(Direction direction, size_t flow, const uint8_t* data, size_t len);
  void release_due(std::chrono::steady_clock::time_point now);
  void transmit(Direction direction, size_t flow, const std::vector<uint8_t>& bytes);
  void release_held(Direction direction, uint64_t before);
  // How long poll may block: until the earliest release or hold deadline; null = forever.
  const timespec* wait_timeout(std::chrono::steady_clock::time_point now, timespec& storage) const;

  sockaddr_storage upstream_{};
  socklen_t upstream_len_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;

  std::mutex impairment_mutex_;  // guards directions_: set_impairment runs on the test's thread
  std::array<DirectionState, 2> directions_;

  // Owned by the proxy thread after construction.
  std::vector<Flow> flows_;
  std::vector<Scheduled> schedule_;  // min-heap on (due, order)
  std::array<std::deque<Held>, 2> held_;
  uint64_t next_order_ = 0;
  std::vector<uint8_t> buffer_;

  std::atomic<bool> paused_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> c2s_in_{0}, c2s_out_{0}, s2c_in_{0}, s2c_out_{0};
  std::atomic<uint64_t> dropped_{0}, duplicated_{0}, reordered_{0};

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace prism::test
