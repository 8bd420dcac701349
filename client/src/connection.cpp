// The client's transport: socket, handshake, channel and pending requests
// (docs/protocol.md §5).
#include "connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace prism::client {
namespace {

using namespace std::chrono_literals;
namespace session = net::session;

Expected<int> open_socket(const SocketAddress& to) {
  const int fd = ::socket(to.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  // A connected UDP socket only receives from the server and reports ICMP errors.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), to.len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return make_error("connect: " + why);
  }
  return fd;
}

}  // namespace

Client::Connection::Connection(Endpoint endpoint, std::string peer, int fd,
                               std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)),
      peer_(std::move(peer)),
      fd_(fd),
      timeout_(timeout),
      buffer_(net::kMaxDatagramSize),
      receive_buffers_(std::make_unique_for_overwrite<uint8_t[]>(kReceiveBatch *
                                                                 net::kMaxDatagramSize)) {}

Client::Connection::~Connection() {
  if (channel_ && !channel_->closed()) {
    channel_->close("client closed the session");
    (void)flush();
  }
  fail_all(v1::STATUS_UNAVAILABLE, "the client closed the session");
  ::close(fd_);
}

Expected<std::unique_ptr<Client::Connection>> Client::Connection::open(
    const Endpoint& endpoint, const ConnectOptions& options) {
  if (options.timeout <= 0ms) {
    return make_error("timeout must be positive, got " + std::to_string(options.timeout.count()) +
                      " ms");
  }
  auto addresses = resolve_addresses(endpoint);
  if (!addresses) return make_error(addresses.error());
  std::string last_error = "no address";
  for (const auto& a : *addresses) {
    auto fd = open_socket(a);
    if (!fd) {
      last_error = fd.error();
      continue;
    }
    std::unique_ptr<Connection> c(new Connection(endpoint, to_string(endpoint), *fd, options.timeout));
    auto shook = c->handshake(options.server_key, options);
    if (!shook) return make_error(shook.error());
    return c;
  }
  return make_error("cannot open a socket to " + to_string(endpoint) + ": " + last_error);
}

Expected<void> Client::Connection::handshake(const net::crypto::Key32& server_key,
                                             const ConnectOptions& options) {
  if (net::crypto::is_low_order_public_key(server_key)) {
    return make_error("the server key is not a usable X25519 public key");
  }
  uint64_t client_id = 0;
  // §5.2: the client id is all an off-path attacker would need to forge a RETRY or
  // HANDSHAKE for this attempt, so it comes from a CSPRNG.
  while (client_id == 0) client_id = random_.next_u64();
  session::HandshakeClient hs(server_key, client_id);
  const auto deadline = Clock::now() + options.timeout;
  // §5.2: the INITIAL is resent on a doubling timer until an answer comes.
  auto resend_every = 200ms;
  bool failed = false;
  bool done = false;
  std::function<void(std::span<const uint8_t>)> on_handshake = [&](std::span<const uint8_t> d) {
    switch (hs.on_datagram(d)) {
      case session::HandshakeClient::Progress::kRetry:
        (void)send_bytes(hs.initial());
        break;
      case session::HandshakeClient::Progress::kDone:
        done = true;
        break;
      case session::HandshakeClient::Progress::kFailed:
        failed = true;
        break;
      case session::HandshakeClient::Progress::kIgnored:
        break;
    }
  };
  while (!done && !failed) {
    if (auto sent = send_bytes(hs.initial()); !sent) return sent;
    const auto wake = std::min(deadline, Clock::now() + resend_every);
    resend_every = std::min(resend_every * 2, std::chrono::milliseconds(2000));
    while (!done && !failed && Clock::now() < wake) {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now());
      pollfd pfd{.fd = fd_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
      if (ready < 0 && errno != EINTR) return socket_error("poll on the socket to", errno);
      if (ready > 0) {
        if (auto r = receive_all(&on_handshake); !r) return r.failure();
      }
    }
    if (Clock::now() >= deadline && !done && !failed) {
      return make_error("no handshake with " + peer_ + " within " +
                        std::to_string(options.timeout.count()) +
                        " ms: is prismd running there, and is the server key the one it uses?");
    }
  }
  if (failed) {
    return make_error("handshake with " + peer_ +
                      " failed: its answer does not authenticate under the server key given");
  }
  session::ChannelConfig config;
  config.max_datagram = options.max_datagram;
  config.idle_timeout = options.idle_timeout;
  if (hs.hello().idle_timeout_ms() > 0) {
    config.idle_timeout = std::min(config.idle_timeout,
                                   std::chrono::milliseconds(hs.hello().idle_timeout_ms()));
  }
  config.keepalive = config.idle_timeout / 3;
  if (hs.hello().max_message_size() > 0) config.max_message_size = hs.hello().max_message_size();
  // Room to reassemble a whole reply of the server's largest size, fragment records too
  // (protocol.md §5.7), however large the server allows.
  config.receive_budget = std::max(config.receive_budget, 2 * config.max_message_size);
  channel_.emplace(session::Channel::Role::kClient, hs.keys(), hs.hello().connection_id(), config,
                   Clock::now());
  // An empty ACK-eliciting packet confirms the handshake to the server at once (§5.3).
  send_ping();
  return flush();
}

Expected<void> Client::Connection::send_bytes(std::span<const uint8_t> bytes) {
  for (;;) {
    if (::send(fd_, bytes.data(), bytes.size(), 0) >= 0) return {};
    if (errno == EINTR) continue;
    // A full socket buffer loses this datagram like the network would; reliability resends.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return {};
    return socket_error("send to", errno);
  }
}

Expected<void> Client::Connection::flush() {
  if (!channel_) return {};
  // One clock read for the whole flush: the datagrams leave within microseconds.
  const auto now = Clock::now();
  for (;;) {
    const size_t n = channel_->poll_transmit(buffer_, now);
    if (n == 0) return {};
    if (auto sent = send_bytes(std::span(buffer_.data(), n)); !sent) return sent;
  }
}

Expected<size_t> Client::Connection::receive_all(
    const std::function<void(std::span<const uint8_t>)>* on_handshake) {
  size_t count = 0;
  for (;;) {
    // recvmmsg: one call takes everything queued (up to kReceiveBatch), and a short batch
    // says the queue is empty, so the usual turn costs one system call, not a read per
    // datagram and one more for EAGAIN.
    std::array<mmsghdr, kReceiveBatch> msgs{};
    std::array<iovec, kReceiveBatch> iov{};
    for (size_t i = 0; i < kReceiveBatch; ++i) {
      iov[i] = {receive_buffers_.get() + i * net::kMaxDatagramSize, net::kMaxDatagramSize};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(fd_, msgs.data(), kReceiveBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return count;
      return Error{socket_error("receive from", errno)};
    }
    const auto now = Clock::now();
    receiving_at_ = now;
    // Cleared however the loop ends (a callback may throw): a stale clock would put later
    // deadlines in the past.
    struct Clear {
      std::optional<Clock::time_point>& at;
      ~Clear() { at.reset(); }
    } clear{receiving_at_};
    for (int i = 0; i < n; ++i) {
      ++count;
      const std::span<const uint8_t> datagram(static_cast<const uint8_t*>(iov[i].iov_base),
                                              msgs[i].msg_len);
      net::DatagramHeader header;
      if (net::read_header(datagram, net::kMaxDatagramSize, header) != net::DropReason::kNone) {
        continue;
      }
      if (!net::is_sealed(header.type)) {
        if (on_handshake != nullptr) (*on_handshake)(datagram);
        continue;
      }
      if (channel_ && header.connection_id == channel_->connection_id()) {
        channel_->on_datagram(header, datagram, now, *this);
      }
    }
    if (static_cast<size_t>(n) < kReceiveBatch) return count;
  }
}

Expected<void> Client::Connection::pump(Clock::time_point deadline) {
  if (auto sent = flush(); !sent) return sent;
  const auto now = Clock::now();
  const auto wake = std::min(deadline, next_wakeup());
  // A caller that only wants what already arrived (poll(0), or an event loop that saw
  // the socket readable) pays no poll() call: the receive finds out for itself.
  bool readable = true;
  if (wake > now) {
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    pollfd pfd{.fd = fd_, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) return socket_error("poll on the socket to", errno);
    readable = ready > 0;
  }
  if (readable) {
    auto got = receive_all(nullptr);
    if (!got) return got.failure();
  }
  const auto after = Clock::now();
  if (channel_ && channel_->next_timer() <= after) channel_->on_timer(after, *this);
  expire(after);
  return flush();
}

Clock::time_point Client::Connection::next_wakeup() const {
  auto wake = next_expiry_;
  if (channel_) wake = std::min(wake, channel_->next_timer());
  return wake;
}

void Client::Connection::expire(Clock::time_point now) {
  // next_expiry_ is never later than the earliest deadline (replies only remove
  // entries), so most turns end here without looking at the requests in flight.
  if (now < next_expiry_) return;
  // Requests sent by the callbacks below lower it again through send_request.
  next_expiry_ = Clock::time_point::max();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      next_expiry_ = std::min(next_expiry_, it->second.deadline);
      ++it;
      continue;
    }
    auto done = std::move(it->second.done);
    it = pending_.erase(it);
    done(Reply{.status = v1::STATUS_TIMEOUT,
               .message = "no reply within the request's deadline",
               .payload = {}});
  }
}

void Client::Connection::fail_all(v1::Status status, const std::string& message) {
  // Every pending request completes exactly once, even when the session dies under it.
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) p.done(Reply{.status = status, .message = message, .payload = {}});
}

Expected<uint32_t> Client::Connection::send_request(uint32_t packet_id, std::string_view payload,
                                                    v1::Delivery delivery, ReplyCallback done,
                                                    std::chrono::milliseconds timeout) {
  if (!connected()) {
    return make_error("the session with " + peer_ + " is closed: " +
                      (close_reason_.empty() ? "not connected" : close_reason_));
  }
  // protocol.md §3.2: 0 is never a request id; skip ids still in flight after a wrap.
  do {
    if (++last_request_id_ == 0) ++last_request_id_;
  } while (pending_.contains(last_request_id_));
  request_.Clear();
  request_.set_request_id(last_request_id_);
  request_.set_packet_id(packet_id);
  request_.set_payload(payload.data(), payload.size());
  if (auto sent = channel_->send(delivery, request_); !sent) {
    return make_error("request to " + peer_ + ": " + sent.error());
  }
  const auto sent_at = receiving_at_ ? *receiving_at_ : Clock::now();
  const auto deadline = sent_at + (timeout.count() > 0 ? timeout : timeout_);
  pending_.emplace(last_request_id_, Pending{deadline, std::move(done)});
  next_expiry_ = std::min(next_expiry_, deadline);
  return last_request_id_;
}

uint64_t Client::Connection::send_ping() {
  const uint64_t nonce = random_.next_u64();
  if (channel_) channel_->send_ping(nonce);
  return nonce;
}

void Client::Connection::on_push(uint32_t packet_id, PushCallback callback) {
  if (callback) {
    by_packet_id_[packet_id] = std::move(callback);
  } else {
    by_packet_id_.erase(packet_id);
  }
}

void Client::Connection::on_topic(std::string topic, PushCallback callback) {
  if (callback) {
    by_topic_[std::move(topic)] = std::move(callback);
  } else {
    by_topic_.erase(topic);
  }
}

void Client::Connection::on_message(const v1::Message& message) {
  if (!message.is_reply()) {
    // protocol.md §3.2: a push names its topic when a publish sent it. The most specific
    // callback takes it: the topic's, then the packet id's, then the catch-all.
    if (!message.topic().empty()) {
      if (const auto it = by_topic_.find(message.topic()); it != by_topic_.end()) {
        it->second(message);
        return;
      }
    }
    if (const auto it = by_packet_id_.find(message.packet_id()); it != by_packet_id_.end()) {
      it->second(message);
      return;
    }
    if (push_) push_(message);
    return;
  }
  const auto it = pending_.find(message.request_id());
  if (it == pending_.end()) return;  // already timed out
  auto done = std::move(it->second.done);
  pending_.erase(it);
  done(Reply{.status = message.status(),
             .message = message.status_message(),
             .payload = message.payload()});
}

void Client::Connection::on_closed(std::string_view reason) {
  close_reason_ = std::string(reason);
  // The server ended the session: UNAVAILABLE. We gave up on a silent server (idle
  // timeout, retransmissions unanswered): the requests timed out (protocol.md §5.11).
  const bool by_peer = reason.starts_with(session::kPeerClosedReason);
  fail_all(by_peer ? v1::STATUS_UNAVAILABLE : v1::STATUS_TIMEOUT, "session closed: " + close_reason_);
}

Expected<void> Client::Connection::rebind() {
  auto addresses = resolve_addresses(endpoint_);
  if (!addresses || addresses->empty()) return make_error("rebind: cannot resolve " + peer_);
  auto fd = open_socket(addresses->front());
  if (!fd) return make_error("rebind: " + fd.error());
  ::close(fd_);
  fd_ = *fd;
  // Something must go out from the new address for the server to see it (§5.9).
  send_ping();
  return flush();
}

Error Client::Connection::socket_error(std::string_view what, int err) const {
  if (err == ECONNREFUSED) {
    return make_error("nothing is listening on " + peer_ + " (connection refused)");
  }
  return make_error(std::string(what) + " " + peer_ + ": " + std::strerror(err));
}

}  // namespace prism::client
