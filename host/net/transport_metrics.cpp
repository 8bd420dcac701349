// Registration of the transport's counters, with their help texts.
#include "net/transport_metrics.hpp"

#include <string>

namespace prism::net {
namespace {

metrics::Counter& counter(const char* name, const char* help) {
  return metrics::registry().counter(name, "", help);
}

TransportCounters make_counters() {
  TransportCounters c{
      .received = counter("prism_datagrams_received_total", "Datagrams received on the UDP listener"),
      .sent = counter("prism_datagrams_sent_total", "Datagrams sent by the UDP listener"),
      .send_failed = counter("prism_datagrams_send_failed_total",
                             "Datagrams the kernel refused to send (socket buffer full or "
                             "unreachable)"),
      .retries = counter("prism_handshake_retries_total",
                         "INITIALs without a cookie, answered with a stateless RETRY"),
      .opened = counter("prism_sessions_opened_total", "Sessions established (handshake done)"),
      .closed = counter("prism_sessions_closed_total", "Sessions ended, for any reason"),
      .migrated = counter("prism_sessions_migrated_total",
                          "Sessions moved to a new client address after validating it"),
      .retransmitted = counter("prism_retransmissions_total",
                               "Reliable frames sent again after a loss (counted at session end)"),
      .probes = counter("prism_probe_timeouts_total",
                        "Probe timeouts: nothing acknowledged for a PTO, the oldest data sent "
                        "again (counted at session end)"),
      .replies_dropped = counter("prism_replies_dropped_total",
                                 "Replies for a session that is gone or whose backlog is full"),
      .handshakes_timed_out = counter("prism_handshakes_timed_out_total",
                                      "Sessions closed because the client never confirmed the "
                                      "handshake (server.handshake_timeout_ms)"),
      .handshakes_evicted = counter("prism_handshakes_evicted_total",
                                    "Unconfirmed sessions closed to make room for a new "
                                    "handshake when the worker held server.max_sessions"),
      .pushes = counter("prism_pushes_total",
                        "Pushes and topic messages queued to a session"),
      .pushes_dropped = counter("prism_pushes_dropped_total",
                                "Pushes not queued: session gone, too large, or send backlog full"),
      .unreliable_dropped = counter("prism_unreliable_dropped_total",
                                    "Queued unreliable messages dropped to make room for a newer "
                                    "one (counted at session end)"),
      .slow_consumers_closed = counter("prism_slow_consumers_closed_total",
                                       "Sessions closed because a reliable push met a full "
                                       "send backlog (server.max_send_backlog)"),
  };
  for (size_t i = 1; i < c.dropped.size(); ++i) {
    std::string labels = "reason=\"";
    labels += drop_reason_name(static_cast<DropReason>(i));
    labels += '"';
    c.dropped[i] = &metrics::registry().counter("prism_datagrams_dropped_total", labels,
                                                "Datagrams dropped without a reply, by reason");
  }
  return c;
}

}  // namespace

uint64_t TransportCounters::dropped_total() const {
  uint64_t sum = 0;
  for (size_t i = 1; i < dropped.size(); ++i) sum += dropped[i]->value();
  return sum;
}

const TransportCounters& transport_counters() {
  static const TransportCounters counters = make_counters();
  return counters;
}

}  // namespace prism::net
