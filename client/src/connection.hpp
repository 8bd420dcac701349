// Client::Connection: the client's side of the secure transport (docs/protocol.md §5) on
// one connected UDP socket: the handshake, the session's Channel, the requests waiting for
// replies, and the pump that moves datagrams and timers between them.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/crypto/secure_random.hpp"
#include "net/session/channel.hpp"
#include "net/session/handshake.hpp"
#include "prism/client.hpp"

namespace prism::client {

using Clock = std::chrono::steady_clock;

class Client::Connection final : private net::session::ChannelEvents {
 public:
  // Opens the socket and runs the handshake.
  static Expected<std::unique_ptr<Connection>> open(const Endpoint& endpoint,
                                                    const ConnectOptions& options);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const Endpoint& endpoint() const { return endpoint_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) {
    timeout_ = std::max(timeout, std::chrono::milliseconds(1));
  }
  bool connected() const { return channel_ && !channel_->closed() && close_reason_.empty(); }
  const std::string& close_reason() const { return close_reason_; }
  size_t pending() const { return pending_.size(); }
  void set_push_handler(PushCallback handler) { push_ = std::move(handler); }
  void on_push(uint32_t packet_id, PushCallback callback);
  void on_topic(std::string topic, PushCallback callback);

  Expected<uint32_t> send_request(uint32_t packet_id, std::string_view payload,
                                  v1::Delivery delivery, ReplyCallback done,
                                  std::chrono::milliseconds timeout);
  // Sends a PING; `on_pong` sees the nonce when its PONG arrives.
  uint64_t send_ping();
  // Whether the PONG for `nonce` (a send_ping() of ours) has arrived. Not "the last PONG":
  // the channel's own PINGs (keepalive, probe timeouts) draw PONGs too, and one of them
  // arriving just after ours must not hide it.
  bool pong_arrived(uint64_t nonce) const {
    return std::find(pongs_.begin(), pongs_.begin() + static_cast<long>(pongs_seen_), nonce) !=
           pongs_.begin() + static_cast<long>(pongs_seen_);
  }

  // Sends what is due, waits until `deadline` or the first datagrams, handles them and
  // every timer that came due. An error only for a socket failure.
  Expected<void> pump(Clock::time_point deadline);
  // When pump() next has work without a datagram arriving: the channel's timers or the
  // earliest request deadline.
  Clock::time_point next_wakeup() const;
  int descriptor() const { return fd_; }
  // Pumps until `done()` or `deadline`; true when done.
  template <typename Done>
  Expected<bool> pump_until(Clock::time_point deadline, Done done) {
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      if (auto r = pump(deadline); !r) return r.failure();
    }
    return true;
  }

  Expected<void> rebind();

 private:
  // Datagrams one receive call takes (recvmmsg).
  static constexpr size_t kReceiveBatch = 8;

  struct Pending {
    Clock::time_point deadline;
    ReplyCallback done;
  };

  Connection(Endpoint endpoint, std::string peer, int fd, std::chrono::milliseconds timeout);
  Expected<void> handshake(const net::crypto::Key32& server_key, const ConnectOptions& options);
  Expected<void> send_bytes(std::span<const uint8_t> bytes);
  // Reads every datagram waiting on the socket (non-blocking); handshake datagrams go to
  // `on_handshake` when given, sealed ones to the channel.
  Expected<size_t> receive_all(const std::function<void(std::span<const uint8_t>)>* on_handshake);
  Expected<void> flush();
  void expire(Clock::time_point now);
  void fail_all(v1::Status status, const std::string& message);
  Error socket_error(std::string_view what, int err) const;

  // ChannelEvents
  void on_message(const v1::Message& message) override;
  void on_pong(uint64_t nonce) override {
    pongs_[next_pong_] = nonce;
    next_pong_ = (next_pong_ + 1) % kPongsKept;
    pongs_seen_ = std::min(pongs_seen_ + 1, kPongsKept);
  }
  void on_closed(std::string_view reason) override;

  Endpoint endpoint_;
  std::string peer_;
  int fd_;
  std::chrono::milliseconds timeout_;
  net::crypto::SecureRandom random_;  // client ids and ping nonces
  std::optional<net::session::Channel> channel_;
  std::string close_reason_;
  std::map<uint32_t, Pending> pending_;
  // No later than the earliest deadline in pending_ (max() when none).
  Clock::time_point next_expiry_ = Clock::time_point::max();
  // While received datagrams are handled, the clock read for them: a request sent from a
  // reply's callback takes its deadline from it instead of reading the clock again.
  std::optional<Clock::time_point> receiving_at_;
  uint32_t last_request_id_ = 0;
  // The nonces of the last PONGs, a ring (a few: ping() asks right after its own arrives).
  static constexpr size_t kPongsKept = 16;
  std::array<uint64_t, kPongsKept> pongs_{};
  size_t next_pong_ = 0;
  size_t pongs_seen_ = 0;
  PushCallback push_;
  std::map<uint32_t, PushCallback> by_packet_id_;
  std::map<std::string, PushCallback, std::less<>> by_topic_;
  std::vector<uint8_t> buffer_;  // one datagram being sent
  // kReceiveBatch slots of kMaxDatagramSize, not zeroed: the kernel backs only the pages
  // a datagram touches, so a session holds a few KiB of it, not 512.
  std::unique_ptr<uint8_t[]> receive_buffers_;
  v1::Message request_;
};

}  // namespace prism::client
