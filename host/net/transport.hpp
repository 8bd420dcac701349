// The seams between a transport (UDP sessions; later the WebSocket gateway) and the layers
// above it: who sent a request, how a reply goes back, where datagrams go out.
#pragma once

#include <sys/socket.h>

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

// Where a request came from: enough to answer it.
struct RequestOrigin {
  PeerAddress peer;
  uint64_t connection_id = 0;
  // The reply travels the way the request did (protocol.md §5.6).
  v1::Delivery delivery = v1::DELIVERY_RELIABLE_ORDERED;
};

// Implemented by the dispatch layer; the transport hands it every request.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void on_request(const RequestOrigin& origin, const v1::Message& request) = 0;
  // The session ended; nothing more can be sent to it. Forget what was kept for it.
  virtual void on_session_closed(uint64_t /*connection_id*/) {}
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
  // Sends a message the session did not ask for (a push: is_reply false, request id 0
  // on the wire is not allowed, so pushes carry `push_id`, chosen by the sender).
  // False when the session is gone or its backlog is full.
  virtual bool send_push(uint64_t /*connection_id*/, uint32_t /*push_id*/, uint32_t /*packet_id*/,
                         v1::Delivery /*delivery*/, std::span<const uint8_t> /*payload*/) {
    return false;
  }
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
