// What a worker does with one datagram, without sockets: decode it, answer PING,
// hand requests to the layer above, and encode replies into an Outbox.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/datagram.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::metrics {
class Counter;
}

namespace prism::net {

struct PeerAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;

  std::string to_string() const;
};

// Where a request came from: enough to answer it.
struct RequestOrigin {
  PeerAddress peer;
  uint64_t connection_id = 0;
};

// Implemented by the dispatch layer; the transport hands it every request.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void on_request(const RequestOrigin& origin, const v1::Message& request) = 0;
};

// Implemented by the transports; the dispatch layer answers through it.
class ReplyTransport {
 public:
  virtual ~ReplyTransport() = default;
  // Sends one reply frame. Returns false when the reply does not fit in a datagram.
  virtual bool send_reply(const RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                          v1::Status status, std::string_view message,
                          std::span<const uint8_t> payload) = 0;
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

class DatagramPipeline final : public ReplyTransport {
 public:
  DatagramPipeline(Outbox& outbox, size_t max_datagram);

  void set_handler(RequestHandler* handler) { handler_ = handler; }
  void on_datagram(std::span<const uint8_t> datagram, const PeerAddress& from);

  bool send_reply(const RequestOrigin& origin, uint32_t request_id, uint32_t packet_id,
                  v1::Status status, std::string_view message,
                  std::span<const uint8_t> payload) override;

 private:
  bool send_packet(const PeerAddress& to, uint64_t connection_id);

  Outbox& outbox_;
  size_t max_datagram_;
  RequestHandler* handler_ = nullptr;
  uint64_t next_packet_number_ = 1;
  // Reused for every datagram so the steady state does not allocate.
  v1::Packet in_;
  v1::Packet out_;

  metrics::Counter& received_;
  metrics::Counter& sent_;
  metrics::Counter& unanswerable_;
  std::array<metrics::Counter*, static_cast<size_t>(DropReason::kCount)> dropped_{};
};

}  // namespace prism::net
