// The baseline load (docs/performance.md): raw datagrams with the shape of a sealed
// request, against a plain UDP echo (tests/bench/udp_echo_baseline), from one thread
// with epoll and sendmmsg/recvmmsg batches. What the secure load is measured against.
#pragma once

#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "load.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::bench {

// One request slot of a socket. Slot i only ever carries request ids congruent to
// i + 1 modulo W, so a reply finds its slot without a lookup table.
struct Slot {
  uint32_t request_id = 0;
  bool outstanding = false;
  int64_t sent_ns = 0;      // when it went out: the 1 s timeout runs from here
  int64_t intended_ns = 0;  // when it should have gone out: latency runs from here
};

struct BenchSocket {
  int fd = -1;
  uint64_t connection_id = 0;
  uint64_t next_packet_number = 0;
  std::vector<Slot> slots;
  std::vector<uint32_t> free_slots;  // indices of slots not outstanding
  bool send_blocked = false;         // the last send hit EAGAIN

  BenchSocket() = default;
  BenchSocket(BenchSocket&& o) noexcept
      : fd(std::exchange(o.fd, -1)),
        connection_id(o.connection_id),
        next_packet_number(o.next_packet_number),
        slots(std::move(o.slots)),
        free_slots(std::move(o.free_slots)),
        send_blocked(o.send_blocked) {}
  BenchSocket(const BenchSocket&) = delete;
  ~BenchSocket() {
    if (fd >= 0) ::close(fd);
  }
};

using Target = prism::client::SocketAddress;

// What the bench needs from the first frame of a datagram, when it is a Message.
struct FirstMessage {
  uint32_t request_id = 0;
  bool is_reply = false;
  uint32_t status = 0;
};

// Protobuf wire types (protobuf.dev/programming-guides/encoding).
constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireLengthDelimited = 2;
constexpr uint32_t kWireFixed32 = 5;

bool skip_field(google::protobuf::io::CodedInputStream& in, uint32_t tag) {
  uint64_t varint = 0;
  uint32_t length = 0;
  switch (tag & 7) {
    case kWireVarint: return in.ReadVarint64(&varint);
    case kWireFixed64: return in.Skip(8);
    case kWireLengthDelimited: return in.ReadVarint32(&length) && in.Skip(static_cast<int>(length));
    case kWireFixed32: return in.Skip(4);
    default: return false;  // groups: never used by prism.v1
  }
}

// A baseline datagram has the shape of a sealed request (protocol.md §5.4) without the
// encryption: header, a prism.v1.Packet with one Message frame in clear, and 16 bytes
// where the AEAD tag would be. The echo sends it back unchanged.
constexpr size_t kBaselineTrailer = prism::net::crypto::kPacketTagSize;

// Reads the first frame straight from the wire format (protocol.md §3) instead of
// parsing a prism.v1.Packet, which would allocate the Message and its payload for
// every datagram. Field numbers: Packet.frames = 1, Frame.message = 1,
// Message.request_id = 1, is_reply = 3, status = 4.
bool read_first_message(std::span<const uint8_t> datagram, FirstMessage& out) {
  prism::net::DatagramHeader header;
  if (prism::net::read_header(datagram, prism::net::kMaxDatagramSize, header) !=
          prism::net::DropReason::kNone ||
      datagram.size() < prism::net::kHeaderSize + kBaselineTrailer) {
    return false;
  }
  const auto body = datagram.subspan(prism::net::kHeaderSize,
                                     datagram.size() - prism::net::kHeaderSize - kBaselineTrailer);
  google::protobuf::io::CodedInputStream in(body.data(), static_cast<int>(body.size()));
  // Enters the first field 1 of the current message, which must be a submessage.
  auto enter_field_one = [&in] {
    for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
      if (tag >> 3 != 1) {
        if (!skip_field(in, tag)) return false;
        continue;
      }
      uint32_t length = 0;
      if ((tag & 7) != kWireLengthDelimited || !in.ReadVarint32(&length)) return false;
      in.PushLimit(static_cast<int>(length));
      return true;
    }
    return false;
  };
  if (!enter_field_one() || !enter_field_one()) return false;  // Packet.frames[0].message
  out = {};
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    const bool varint = (tag & 7) == kWireVarint;
    uint32_t value = 0;
    switch (tag >> 3) {
      case 1:
        if (!varint || !in.ReadVarint32(&out.request_id)) return false;
        break;
      case 3:
        if (!varint || !in.ReadVarint32(&value)) return false;
        out.is_reply = value != 0;
        break;
      case 4:
        if (!varint || !in.ReadVarint32(&out.status)) return false;
        break;
      default:
        if (!skip_field(in, tag)) return false;
    }
  }
  // A Message cut short by the end of the datagram leaves bytes before its limit.
  return in.ConsumedEntireMessage() && in.BytesUntilLimit() == 0 && out.request_id != 0;
}

// Drives its share of the baseline sockets from one thread with epoll. Everything the
// send/receive loop touches is allocated up front.
class BaselineLoad final : public Load {
 public:
  BaselineLoad(const Options& opts, std::string peer) : Load(opts, std::move(peer)) {}
  BaselineLoad(const BaselineLoad&) = delete;
  ~BaselineLoad() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  prism::Expected<void> open(const Target& target, int socket_count, double rate, std::mt19937_64& rng) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return prism::make_error(std::string("epoll_create1: ") + std::strerror(errno));
    const auto inflight = static_cast<uint32_t>(opts_.inflight);
    for (int i = 0; i < socket_count; ++i) {
      BenchSocket s;
      s.fd = ::socket(target.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) return prism::make_error(std::string("socket: ") + std::strerror(errno));
      // Bursts of replies must not overflow the default receive buffer; the kernel
      // caps this at net.core.rmem_max, which is fine.
      const int rcvbuf = 4 << 20;
      ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
      if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len) != 0) {
        return prism::make_error("connect to " + peer_ + ": " + std::strerror(errno));
      }
      do s.connection_id = rng(); while (s.connection_id == 0);
      s.slots.resize(inflight);
      s.free_slots.reserve(inflight);
      for (uint32_t k = inflight; k-- > 0;) {
        s.slots[k].request_id = k + 1 - inflight;  // the first send adds W
        s.free_slots.push_back(k);
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(sockets_.size());
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s.fd, &ev) != 0) {
        return prism::make_error(std::string("epoll_ctl: ") + std::strerror(errno));
      }
      sockets_.push_back(std::move(s));
    }
    events_.resize(sockets_.size());
    set_rate(rate);

    // The request is one Message frame; only its request id changes per send.
    auto* message = request_.add_frames()->mutable_message();
    message->set_packet_id(opts_.packet_id);
    message->set_payload(prism::bench::echo_payload(opts_.payload_size));
    message->set_request_id(UINT32_MAX);  // the longest encoding sizes the buffers
    send_buffer_size_ = prism::net::kHeaderSize + request_.ByteSizeLong() + kBaselineTrailer;

    send_buffers_.resize(kBatch * send_buffer_size_);
    receive_buffers_.resize(kBatch * kReceiveBufferSize);
    for (int j = 0; j < kBatch; ++j) {
      send_iov_[j] = {&send_buffers_[j * send_buffer_size_], 0};
      send_msgs_[j] = {};
      send_msgs_[j].msg_hdr.msg_iov = &send_iov_[j];
      send_msgs_[j].msg_hdr.msg_iovlen = 1;
      receive_iov_[j] = {&receive_buffers_[j * kReceiveBufferSize], kReceiveBufferSize};
      receive_msgs_[j] = {};
      receive_msgs_[j].msg_hdr.msg_iov = &receive_iov_[j];
      receive_msgs_[j].msg_hdr.msg_iovlen = 1;
    }
    return {};
  }

  void run(const Window& window) {
    int64_t next_scan = window.start_ns + kTimeoutScanNs;
    run_window(window, [&](int64_t now) {
      if (open_loop()) {
        send_due(now);
      } else {
        for (auto& s : sockets_) fill(s, now);
      }
      if (now >= next_scan) {
        expire(now);
        next_scan = now + kTimeoutScanNs;
      }
      if (!error_.empty()) return;

      int64_t wait = std::min(window.end_ns, next_scan) - now;
      if (open_loop() && has_free_slot()) {
        // A request already due with a slot free means its send was refused (EAGAIN).
        const int64_t due_in = next_due_ns() - now;
        wait = std::min(wait, due_in > 0 ? due_in : kRetryBlockedSendNs);
      }
      for (const auto& s : sockets_) {
        if (s.send_blocked) wait = std::min(wait, kRetryBlockedSendNs);
      }
      wait = std::max<int64_t>(wait, 0);
      // The secure load cannot sleep on its sessions' sockets, so with requests in flight
      // or one due soon this one does not sleep either: the two compare like for like.
      const bool spin = open_loop() && (wait < kSpinBelowNs || has_outstanding());
      const int n = wait_for_events(spin ? 0 : wait);
      if (n < 0) {
        if (errno != EINTR) fatal(std::string("epoll_wait: ") + std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) drain(sockets_[events_[i].data.u32]);
      if (spin && n == 0) std::this_thread::yield();
    });
  }

 private:
  // epoll_pwait2 (Linux 5.11) waits to the nanosecond, which the open loop's schedule
  // needs; older kernels and sandboxes get epoll_wait, rounded up to a millisecond.
  int wait_for_events(int64_t wait_ns) {
    const int max_events = static_cast<int>(events_.size());
    if (have_pwait2_) {
      const timespec ts{.tv_sec = wait_ns / 1'000'000'000, .tv_nsec = wait_ns % 1'000'000'000};
      const int n = ::epoll_pwait2(epoll_fd_, events_.data(), max_events, &ts, nullptr);
      if (n >= 0 || errno != ENOSYS) return n;
      have_pwait2_ = false;
    }
    const auto wait_ms = static_cast<int>((wait_ns + 999'999) / 1'000'000);
    return ::epoll_wait(epoll_fd_, events_.data(), max_events, wait_ms);
  }

  void socket_failure(std::string_view what, int err) {
    if (err == ECONNREFUSED) {
      fatal("nothing is listening on " + peer_ + " (connection refused)");
    } else {
      fatal(std::string(what) + " " + peer_ + ": " + std::strerror(err));
    }
  }

  bool has_free_slot() const {
    return std::any_of(sockets_.begin(), sockets_.end(),
                       [](const BenchSocket& s) { return !s.free_slots.empty(); });
  }

  bool has_outstanding() const {
    return std::any_of(sockets_.begin(), sockets_.end(), [this](const BenchSocket& s) {
      return s.free_slots.size() < static_cast<size_t>(opts_.inflight);
    });
  }

  // Sends up to `count` requests on free slots of `s`. In open loop, request number
  // `first_index` + j is intended to leave at its scheduled time; in closed loop, now.
  // Returns how many went out (fewer when the socket buffer is full).
  int send_batch(BenchSocket& s, int count, int64_t now, uint64_t first_index) {
    count = std::min({count, kBatch, static_cast<int>(s.free_slots.size())});
    if (count <= 0) return 0;
    const auto inflight = static_cast<uint32_t>(opts_.inflight);
    auto* message = request_.mutable_frames(0)->mutable_message();
    const size_t first_free = s.free_slots.size() - static_cast<size_t>(count);
    for (int j = 0; j < count; ++j) {
      const uint32_t index = s.free_slots[first_free + static_cast<size_t>(j)];
      Slot& slot = s.slots[index];
      uint32_t id = slot.request_id + inflight;
      if (id < slot.request_id || id == 0) id = index + 1;  // wrapped: restart the sequence
      slot.request_id = id;
      message->set_request_id(id);
      const prism::net::DatagramHeader header{.connection_id = s.connection_id,
                                              .packet_number = s.next_packet_number + j};
      uint8_t* out = &send_buffers_[j * send_buffer_size_];
      prism::net::write_header(header, {out, prism::net::kHeaderSize});
      const size_t body = request_.ByteSizeLong();
      request_.SerializeWithCachedSizesToArray(out + prism::net::kHeaderSize);
      std::memset(out + prism::net::kHeaderSize + body, 0, kBaselineTrailer);
      send_iov_[j].iov_len = prism::net::kHeaderSize + body + kBaselineTrailer;
    }
    int sent = 0;
    while (sent < count) {
      const int r = ::sendmmsg(s.fd, &send_msgs_[sent], static_cast<unsigned>(count - sent), 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
          s.send_blocked = true;
          break;
        }
        socket_failure("send to", errno);
        break;
      }
      sent += r;
    }
    if (sent == count) s.send_blocked = false;
    s.next_packet_number += static_cast<uint64_t>(sent);
    for (int j = 0; j < sent; ++j) {
      Slot& slot = s.slots[s.free_slots[first_free + static_cast<size_t>(j)]];
      slot.outstanding = true;
      slot.sent_ns = now;
      slot.intended_ns = open_loop() ? intended_ns(first_index + static_cast<uint64_t>(j)) : now;
    }
    // The unsent ones stay free; move the sent ones out of the free list.
    s.free_slots.erase(s.free_slots.begin() + static_cast<std::ptrdiff_t>(first_free),
                       s.free_slots.begin() + static_cast<std::ptrdiff_t>(first_free) + sent);
    return sent;
  }

  // Closed loop: every free slot carries a new request.
  void fill(BenchSocket& s, int64_t now) {
    while (!s.free_slots.empty() && error_.empty()) {
      const int want = std::min(kBatch, static_cast<int>(s.free_slots.size()));
      if (send_batch(s, want, now, 0) < want) return;
    }
  }

  // Open loop: send every request whose scheduled time has come, spread over the
  // sockets. Requests that find no free slot wait, and their latency includes the wait.
  void send_due(int64_t now) {
    const uint64_t due = due_by(now);
    const size_t n = sockets_.size();
    bool progress = true;
    while (next_index_ < due && progress && error_.empty()) {
      progress = false;
      const uint64_t share = (due - next_index_ + n - 1) / n;
      for (size_t i = 0; i < n && next_index_ < due; ++i) {
        BenchSocket& s = sockets_[(next_socket_ + i) % n];
        const auto want = static_cast<int>(std::min<uint64_t>({share, due - next_index_, kBatch}));
        const int sent = send_batch(s, want, now, next_index_);
        next_index_ += static_cast<uint64_t>(sent);
        progress = progress || sent > 0;
      }
      next_socket_ = (next_socket_ + 1) % n;
    }
  }

  void drain(BenchSocket& s) {
    for (;;) {
      const int n = ::recvmmsg(s.fd, receive_msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) socket_failure("receive from", errno);
        return;
      }
      const int64_t now = now_ns();
      for (int j = 0; j < n; ++j) {
        complete(s, {&receive_buffers_[j * kReceiveBufferSize], receive_msgs_[j].msg_len}, now);
      }
      if (!open_loop()) fill(s, now);
      if (n < kBatch) return;
    }
  }

  // Counts a datagram whose first frame is a Message carrying a request id that is
  // outstanding on `s`: the echo of a request.
  void complete(BenchSocket& s, std::span<const uint8_t> datagram, int64_t now) {
    FirstMessage m;
    if (!read_first_message(datagram, m)) return;
    const uint32_t index = (m.request_id - 1) % static_cast<uint32_t>(opts_.inflight);
    Slot& slot = s.slots[index];
    if (!slot.outstanding || slot.request_id != m.request_id) return;
    slot.outstanding = false;
    s.free_slots.push_back(index);
    if (window_.measuring(now)) {
      ++stats_.completed;
      if (m.is_reply && m.status != prism::v1::STATUS_OK) ++stats_.errors;
      stats_.latency.record(now - slot.intended_ns);
    }
  }

  // A request unanswered for 1 s is a timeout; its slot is reused.
  void expire(int64_t now) {
    for (auto& s : sockets_) {
      for (uint32_t i = 0; i < s.slots.size(); ++i) {
        Slot& slot = s.slots[i];
        if (!slot.outstanding || now - slot.sent_ns < kRequestTimeoutNs) continue;
        slot.outstanding = false;
        s.free_slots.push_back(i);
        if (window_.measuring(now)) ++stats_.timeouts;
      }
    }
  }

  int epoll_fd_ = -1;
  bool have_pwait2_ = true;
  std::vector<BenchSocket> sockets_;
  std::vector<epoll_event> events_;
  size_t next_socket_ = 0;

  prism::v1::Packet request_;
  size_t send_buffer_size_ = 0;
  std::vector<uint8_t> send_buffers_;
  std::vector<uint8_t> receive_buffers_;
  std::array<iovec, kBatch> send_iov_{};
  std::array<mmsghdr, kBatch> send_msgs_{};
  std::array<iovec, kBatch> receive_iov_{};
  std::array<mmsghdr, kBatch> receive_msgs_{};
};

}  // namespace prism::bench
