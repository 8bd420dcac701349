// The handshake load (docs/performance.md): each thread opens a session (the full
// handshake of protocol.md §5.2-5.3 with its retry round trip), lets it confirm, closes
// it, and starts over.
#pragma once

#include "load.hpp"

namespace prism::bench {

class HandshakeLoad {
 public:
  HandshakeLoad(const prism::client::Endpoint& endpoint, const prism::client::ConnectOptions& options)
      : endpoint_(endpoint), options_(options) {}

  void run(const Window& window) {
    for (;;) {
      const int64_t start = now_ns();
      if (start >= window.end_ns || g_abort.load(std::memory_order_relaxed)) break;
      bool opened = false;
      {
        // Destroyed at the end of this block: the Client's destructor sends CLOSE.
        auto client = client::Client::connect(endpoint_, options_);
        opened = client.ok();
        if (!opened && stats_.first_error.empty()) stats_.first_error = client.error();
      }
      const int64_t end = now_ns();
      if (!window.measuring(end)) continue;
      if (opened) {
        ++stats_.completed;
        stats_.latency.record(end - start);
      } else {
        ++stats_.errors;
      }
    }
  }

  const Stats& stats() const { return stats_; }

 private:
  prism::client::Endpoint endpoint_;
  prism::client::ConnectOptions options_;
  Stats stats_;
};

}  // namespace prism::bench
