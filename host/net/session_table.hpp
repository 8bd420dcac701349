// A worker's sessions (docs/protocol.md §5): answers INITIALs (retry cookie first, then the
// Noise handshake), routes sealed datagrams to their Channel by connection id, validates a
// client's new address before moving its session there, runs each session's timer, and is
// the ReplyTransport the dispatcher answers through. One per worker; loop thread only.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/log.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/loop_access.hpp"
#include "net/session/channel.hpp"
#include "net/session/handshake.hpp"
#include "net/source_limits.hpp"
#include "net/transport.hpp"
#include "net/transport_metrics.hpp"
#include "net/uv_handle.hpp"

namespace prism::net {

struct SessionSettings {
  crypto::KeyPair server_key;
  session::ChannelConfig channel;
  // Per worker. A new handshake beyond it evicts the oldest unconfirmed session, or is
  // dropped (overloaded) when every session is confirmed.
  size_t max_sessions = 100000;
  SourceLimitSettings per_source;                       // per worker
  std::chrono::milliseconds handshake_timeout{5000};    // until the client's first sealed packet
  size_t receive_budget = 64 << 20;  // per worker: every session's receive budget draws on it
};

// Sends a datagram that belongs to another worker's session to that worker; false when
// no such worker exists (the connection id is forged or stale).
using Forwarder = std::function<bool(unsigned worker, std::span<const uint8_t> datagram,
                                     const PeerAddress& from)>;

class SessionTable final : public ReplyTransport {
 public:
  SessionTable(unsigned worker_index, Outbox& outbox, LoopAccess& loop, SessionSettings settings);
  ~SessionTable() override;
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  void set_handler(RequestHandler* handler) { handler_ = handler; }
  void set_forwarder(Forwarder forwarder) { forwarder_ = std::move(forwarder); }

  // One datagram from the socket. `forwarded`: another worker already routed it here.
  void on_datagram(std::span<const uint8_t> datagram, const PeerAddress& from,
                   bool forwarded = false);
  // Writes what the sessions touched this loop turn have to send into the outbox, re-arms
  // their timers and frees the ones that closed. The worker calls it once per turn.
  void flush();
  // Closes every session with `reason` (sent to each client) and their timers.
  void close_all(std::string_view reason);

  bool send_reply(const RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                  v1::Status status, std::string_view message,
                  std::span<const uint8_t> payload) override;
  PushResult send_push(uint64_t connection_id, uint32_t packet_id, v1::Delivery delivery,
                       std::string_view topic, std::span<const uint8_t> payload) override;
  bool is_open(uint64_t connection_id) const override;

  size_t size() const { return sessions_.size(); }
  // Sessions whose client has not confirmed the handshake yet.
  size_t unconfirmed() const { return by_client_id_.size(); }
  // Sessions at rest (idle, holding no AES-GCM context: ChannelConfig::rest_after).
  size_t resting() const;
  const SourceLimits& source_limits() const { return limits_; }

 private:
  struct Session;
  class Events;

  void on_initial(std::span<const uint8_t> datagram, const PeerAddress& from);
  void on_sealed(const DatagramHeader& header, std::span<const uint8_t> datagram,
                 const PeerAddress& from);
  void send_datagram(const PeerAddress& to, std::span<const uint8_t> bytes);
  uint64_t new_connection_id();
  void touch(Session& s);
  // The client's first authentic packet: the session is confirmed and announced open.
  void confirm(Session& s);
  // Frees the session now; safe outside flush() too (it leaves the dirty list).
  void destroy(Session& s);
  // The unconfirmed session a full worker closes first (the oldest), dropping the queue
  // entries of sessions confirmed or gone on the way; null when every session is confirmed.
  Session* oldest_unconfirmed();
  static void on_timer(uv_timer_t* timer);
  void drop(DropReason reason);

  unsigned index_;
  Outbox& outbox_;
  LoopAccess& loop_;
  SessionSettings settings_;
  session::HandshakeServer handshake_;
  RequestHandler* handler_ = nullptr;
  Forwarder forwarder_;
  SourceLimits limits_;
  // Before sessions_: every session's budget draws on it until the session is freed.
  reliability::ReceiveBudget receive_budget_;

  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  // Sessions whose handshake the client has not confirmed yet, by the client's id: a
  // repeated INITIAL gets the same HANDSHAKE again.
  std::unordered_map<uint64_t, uint64_t> by_client_id_;
  // The same sessions' ids, oldest first (entries of sessions confirmed or gone since
  // are skipped when met): the eviction order when the table is full.
  std::deque<uint64_t> unconfirmed_order_;
  std::vector<Session*> dirty_;
  std::vector<Session*> flushing_;
  v1::Message reply_;  // reused for every reply
  LogRateLimiter log_limiter_;

  const TransportCounters& counters_;
};

}  // namespace prism::net
