// The seams between a transport (UDP sessions; later the WebSocket gateway) and the layers
// above it: who sent a request, how a reply goes back, where datagrams go out.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/datagram.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::net {

struct PeerAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;

  std::string to_string() const;
  // The address and port as raw bytes (retry cookies bind to them); returns the length.
  static constexpr size_t kMaxKeyBytes = 18;
  size_t key_bytes(std::span<uint8_t, kMaxKeyBytes> out) const;
  // The address without the port, as raw bytes (login rate limiting is per host).
  std::string host_key() const;
  // The source per-address limits count against (docs/security.md): an IPv4 address
  // (IPv4-mapped IPv6 included) or an IPv6 /64, the block one host is usually given.
  // IPv4 keys are 0xffffffff'xxxxxxxx, a prefix no unicast IPv6 /64 has.
  uint64_t source_key() const;
  bool same_as(const PeerAddress& other) const;
};

// A connection id's top byte names the worker that owns the session (protocol.md §5.3:
// the rest is random), so any thread can tell where to send a push without a lookup.
inline constexpr int kConnectionWorkerShift = 56;
inline unsigned worker_of(uint64_t connection_id) {
  return static_cast<unsigned>(connection_id >> kConnectionWorkerShift);
}
// Bit 55 marks a WebSocket session's id (never set in a UDP connection id), so a push
// finds its transport without a lookup.
inline constexpr uint64_t kWebSocketSessionBit = uint64_t{1} << 55;
inline bool is_websocket_session(uint64_t id) { return (id & kWebSocketSessionBit) != 0; }
// Worker byte 0xff (server.workers stops at 255) marks a session of another node of the
// cluster as this node's plugins see it: the stand-in for a client whose request was
// forwarded here (plugins/cluster_host.hpp); pushes to it travel to its node.
inline constexpr unsigned kRemoteSessionWorker = 0xff;
inline bool is_remote_session(uint64_t id) { return worker_of(id) == kRemoteSessionWorker; }

class ReplyTransport;

// Where a request came from: enough to answer it.
struct RequestOrigin {
  PeerAddress peer;
  uint64_t connection_id = 0;
  // The reply travels the way the request did (protocol.md §5.6).
  v1::Delivery delivery = v1::DELIVERY_RELIABLE_ORDERED;
  // The transport the request came through when it is not the worker's UDP one (the
  // WebSocket gateway): replies go back there.
  ReplyTransport* via = nullptr;
  // When the datagram carrying the request arrived: its latency runs from here, and the
  // clock the transport read anyway is not read again. Empty: the dispatcher reads it.
  std::chrono::steady_clock::time_point received_at{};
};

// What a Phoenix channel message asks (plugin.h prism_channel_kind_t).
enum class ChannelKind : uint8_t { kJoin = 1, kEvent = 2, kLeave = 3, kHttp = 4 };

// Implemented by the dispatch layer; the transport hands it every request.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void on_request(const RequestOrigin& origin, const v1::Message& request) = 0;
  // A channel join, event or leave from the WebSocket gateway (DESIGN.md §8), answered
  // through ReplyTransport::send_reply with `request_id` (the gateway's own) and packet id 0.
  virtual void on_channel(const RequestOrigin& /*origin*/, uint32_t /*request_id*/,
                          ChannelKind /*kind*/, std::string_view /*topic*/,
                          std::string_view /*event*/, std::string_view /*payload*/,
                          std::string_view /*connect: JSON, plugin.h*/) {}
  // A client finished its handshake (UDP) or connected (WebSocket): pushes reach it now.
  virtual void on_session_opened(uint64_t /*connection_id*/) {}
  // The session ended; nothing more can be sent to it. Forget what was kept for it.
  // `reason` is for logs and plugins ("idle for 30000 ms", "peer closed the session: ...").
  virtual void on_session_closed(uint64_t /*connection_id*/, std::string_view /*reason*/) {}
  // Once per loop turn, before the replies of the turn are sent: `now` is when they leave
  // (what a request's latency runs to; one clock read per turn, not per reply).
  virtual void on_turn_end(std::chrono::steady_clock::time_point /*now*/) {}
};

// What became of a push (ReplyTransport::send_push).
enum class PushResult : uint8_t {
  kQueued,
  kNoSession,    // no such session here (closed, or never on this worker)
  kTooLarge,     // above max_message_size, or unreliable and larger than one datagram
  kBacklogFull,  // slow consumer: an unreliable push is dropped; a reliable one closed the session
};

// Implemented by the transports; the dispatch layer answers through it.
class ReplyTransport {
 public:
  virtual ~ReplyTransport() = default;
  // Queues one reply for the session. Returns false when it could not be sent as given:
  // too large (an INTERNAL reply goes instead) or the session's backlog is full. A reply
  // for a session that is gone is dropped and counted by the transport (true).
  virtual bool send_reply(const RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                          v1::Status status, std::string_view message,
                          std::span<const uint8_t> payload) = 0;
  // Sends a message the session did not ask for (protocol.md §3.2: is_reply false, the
  // request id a per-session push counter from 1; `topic` set when a publish sent it). A reliable push meeting a
  // full send backlog closes the session: the client is too slow for what it subscribed
  // to, and dropping reliable traffic silently would break its guarantee.
  virtual PushResult send_push(uint64_t connection_id, uint32_t packet_id, v1::Delivery delivery,
                               std::string_view topic, std::span<const uint8_t> payload) = 0;
  // The service ended the session's channel `topic` (plugin.h end_channel): a transport
  // with channels tells its client (phx_error when `rejoin`, else phx_close); UDP has none.
  virtual void end_channel(uint64_t /*connection_id*/, std::string_view /*topic*/,
                           std::string_view /*reason*/, bool /*rejoin*/) {}
  // True while the session exists and can be pushed to (its handshake confirmed).
  virtual bool is_open(uint64_t connection_id) const = 0;
};

// Where encoded datagrams go: a batch flushed with sendmmsg, or a test's capture.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // A buffer of at least max_datagram bytes for the next datagram.
  virtual std::span<uint8_t> next_buffer() = 0;
  // The first `len` bytes of the last next_buffer() are a datagram for `to`.
  virtual void commit(const PeerAddress& to, size_t len) = 0;
};

}  // namespace prism::net
