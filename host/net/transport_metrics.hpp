// The UDP transport's counters (docs/operations.md §6), registered once, here: the
// session tables count into them and the admin service reads them for `prismctl status`.
#pragma once

#include <array>
#include <cstdint>

#include "metrics/metrics.hpp"
#include "net/datagram.hpp"

namespace prism::net {

struct TransportCounters {
  metrics::Counter& received;
  metrics::Counter& sent;
  metrics::Counter& send_failed;
  metrics::Counter& retries;
  metrics::Counter& opened;
  metrics::Counter& closed;
  metrics::Counter& migrated;
  metrics::Counter& retransmitted;
  metrics::Counter& probes;  // probe timeouts (RFC 9002 §6.2) that sent data again
  metrics::Counter& replies_dropped;
  metrics::Counter& handshakes_timed_out;
  metrics::Counter& handshakes_evicted;
  metrics::Counter& pushes;                 // pushes and topic messages queued to a session
  metrics::Counter& pushes_dropped;         // not queued: session gone, too large, backlog full
  metrics::Counter& unreliable_dropped;     // queued unreliable messages dropped for newer ones
  metrics::Counter& slow_consumers_closed;  // sessions closed for a full send backlog
  // prism_datagrams_dropped_total by reason; index 0 (kNone) is unused.
  std::array<metrics::Counter*, static_cast<size_t>(DropReason::kCount)> dropped{};

  metrics::Counter& dropped_for(DropReason reason) const {
    return *dropped[static_cast<size_t>(reason)];
  }
  uint64_t dropped_total() const;
};

// Process-wide, as the metrics registry is: every worker counts into the same series.
const TransportCounters& transport_counters();

}  // namespace prism::net
