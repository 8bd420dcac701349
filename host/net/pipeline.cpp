// Decode → answer PING / hand requests up → encode replies (docs/protocol.md §3).
#include "net/pipeline.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "metrics/metrics.hpp"

namespace prism::net {

std::string PeerAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "unknown";
}

DatagramPipeline::DatagramPipeline(Outbox& outbox, size_t max_datagram)
    : outbox_(outbox),
      max_datagram_(max_datagram),
      received_(metrics::registry().counter("prism_datagrams_received_total", "",
                                            "Datagrams received on the UDP listener")),
      sent_(metrics::registry().counter("prism_datagrams_sent_total", "",
                                        "Datagrams sent by the UDP listener")),
      unanswerable_(metrics::registry().counter(
          "prism_replies_too_large_total", "",
          "Replies that did not fit in one datagram and were answered INTERNAL")) {
  for (size_t i = 1; i < dropped_.size(); ++i) {
    std::string labels = "reason=\"";
    labels += drop_reason_name(static_cast<DropReason>(i));
    labels += '"';
    dropped_[i] = &metrics::registry().counter(
        "prism_datagrams_dropped_total", labels,
        "Datagrams dropped without a reply, by reason");
  }
}

void DatagramPipeline::on_datagram(std::span<const uint8_t> datagram, const PeerAddress& from) {
  received_.add();
  DatagramHeader header;
  // Bad input is counted and dropped without any reply: nothing to amplify (§2.4).
  if (auto reason = decode_datagram(datagram, max_datagram_, header, in_);
      reason != DropReason::kNone) {
    dropped_[static_cast<size_t>(reason)]->add();
    return;
  }
  RequestOrigin origin{from, header.connection_id};
  for (const auto& frame : in_.frames()) {
    switch (frame.kind_case()) {
      case v1::Frame::kMessage:
        // Replies and pushes travel server → client only; a client never sends them.
        if (!frame.message().is_reply() && handler_ != nullptr) {
          handler_->on_request(origin, frame.message());
        }
        break;
      case v1::Frame::kPing: {
        out_.Clear();
        out_.add_frames()->mutable_pong()->set_nonce(frame.ping().nonce());
        send_packet(from, header.connection_id);
        break;
      }
      case v1::Frame::kPong:
      case v1::Frame::kClose:
      case v1::Frame::KIND_NOT_SET:
        break;
    }
  }
}

bool DatagramPipeline::send_reply(const RequestOrigin& origin, uint32_t request_id,
                                  uint32_t packet_id, v1::Status status,
                                  std::string_view message, std::span<const uint8_t> payload) {
  out_.Clear();
  auto* m = out_.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(packet_id);
  m->set_is_reply(true);
  m->set_status(status);
  m->set_status_message(message.data(), message.size());
  m->set_payload(payload.data(), payload.size());
  if (send_packet(origin.peer, origin.connection_id)) return true;

  // Too large for one datagram (fragmentation arrives with the reliable transport):
  // the requester still gets an answer.
  unanswerable_.add();
  m->clear_payload();
  m->set_status(v1::STATUS_INTERNAL);
  m->set_status_message("reply too large for one datagram");
  send_packet(origin.peer, origin.connection_id);
  return false;
}

bool DatagramPipeline::send_packet(const PeerAddress& to, uint64_t connection_id) {
  DatagramHeader header;
  header.connection_id = connection_id;
  header.packet_number = next_packet_number_++;
  auto buffer = outbox_.next_buffer().first(max_datagram_);
  const size_t len = encode_datagram(header, out_, buffer);
  if (len == 0) return false;
  outbox_.commit(to, len);
  sent_.add();
  return true;
}

}  // namespace prism::net
