// prism-bench: load generator for prismd over the secure transport (libprism-client
// sessions, docs/protocol.md §5), for a plain UDP echo server (--baseline), and for the
// handshake path (--handshakes). Prints one result line per run.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <google/protobuf/io/coded_stream.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"
#include "prism/client.hpp"
#include "workload.hpp"

namespace {

using prism::Expected;
using prism::make_error;

constexpr int kBatch = 64;                             // datagrams per recvmmsg/sendmmsg
constexpr int64_t kRequestTimeoutNs = 1'000'000'000;   // unanswered after this: a timeout
constexpr int64_t kTimeoutScanNs = 10'000'000;         // how often slots are checked for it
constexpr int64_t kRetryBlockedSendNs = 1'000'000;     // after a send hit EAGAIN
constexpr size_t kReceiveBufferSize = 65536;           // any UDP datagram fits
// Waits shorter than this are spent polling: a sleep that short overshoots by about as
// much in a VM, and the secure load (which cannot sleep on a socket) would not pay it.
constexpr int64_t kSpinBelowNs = 1'000'000;

enum class Mode : uint8_t {
  kSecure,     // requests over libprism-client sessions
  kBaseline,   // raw datagrams against a plain UDP echo
  kHandshake,  // open and close sessions
};

struct Options {
  std::string server = "127.0.0.1:7777";
  std::string server_key;  // "prism1:<hex>" or a server.pub file
  int clients = 4;
  int inflight = 16;
  double duration_s = 5.0;
  double warmup_s = 0.5;
  uint32_t packet_id = 101;  // default.echo
  size_t payload_size = 32;
  double rate = 0;  // 0: closed loop
  int threads = 1;
  std::string delivery = "ordered";
  bool baseline = false;
  double handshakes_s = 0;  // > 0: handshake mode, measured for this long
  std::string label = "prism";
  bool json = false;
  std::string workload = "echo";  // secure mode: what the requests carry (workload.hpp)
  uint32_t players = 1000;

  prism::bench::WorkloadOptions workload_options() const {
    prism::bench::WorkloadOptions o;
    o.name = workload;
    o.packet_id = packet_id;
    o.payload_size = payload_size;
    o.players = players;
    // Match ids must be new in every run against the same database.
    o.run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    return o;
  }

  Mode mode() const {
    if (handshakes_s > 0) return Mode::kHandshake;
    return baseline ? Mode::kBaseline : Mode::kSecure;
  }
  prism::v1::Delivery wire_delivery() const {
    if (delivery == "unordered") return prism::v1::DELIVERY_RELIABLE_UNORDERED;
    if (delivery == "unreliable") return prism::v1::DELIVERY_UNRELIABLE;
    return prism::v1::DELIVERY_RELIABLE_ORDERED;
  }
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Log-linear latency histogram: 128 buckets per power of two of nanoseconds, so a
// value is reported within 1% of what was recorded. Fixed size: recording never
// allocates.
class LatencyHistogram {
 public:
  void record(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    const int shift = std::max(0, static_cast<int>(std::bit_width(v)) - kSubBits);
    counts_[static_cast<size_t>(shift) * kSub + (v >> shift)]++;
    ++total_;
  }

  void merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

  // The value below which a fraction q of the samples lie, in nanoseconds.
  double quantile_ns(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) {
        const int shift = static_cast<int>(i / kSub);
        const uint64_t low = (i % kSub) << shift;
        return static_cast<double>(low) + static_cast<double>((uint64_t{1} << shift) - 1) / 2.0;
      }
    }
    return 0;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr size_t kSub = size_t{1} << kSubBits;
  std::array<uint64_t, 64 * kSub> counts_{};
  uint64_t total_ = 0;
};

struct Stats {
  uint64_t completed = 0;
  uint64_t errors = 0;  // completed with a status other than OK, or a failed handshake
  uint64_t timeouts = 0;
  LatencyHistogram latency;
  std::string first_error;  // what the first error said, for the result line's reader

  void merge(const Stats& other) {
    completed += other.completed;
    errors += other.errors;
    timeouts += other.timeouts;
    latency.merge(other.latency);
    if (first_error.empty()) first_error = other.first_error;
  }
};

// The run's phases on the monotonic clock: warm-up from start, then measurement.
struct Window {
  int64_t start_ns = 0;
  int64_t measure_ns = 0;
  int64_t end_ns = 0;
  bool measuring(int64_t t) const { return t >= measure_ns && t < end_ns; }
};

// Set by any thread that cannot go on; the others stop at their next wake-up.
std::atomic<bool> g_abort{false};


// ---------------------------------------------------------------------------------------
// Baseline: raw datagrams against a plain UDP echo (tests/bench/udp_echo_baseline).

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
class BaselineLoad {
 public:
  BaselineLoad(const Options& opts, std::string peer) : opts_(opts), peer_(std::move(peer)) {}
  BaselineLoad(const BaselineLoad&) = delete;
  ~BaselineLoad() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  Expected<void> open(const Target& target, int socket_count, double rate, std::mt19937_64& rng) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return make_error(std::string("epoll_create1: ") + std::strerror(errno));
    const auto inflight = static_cast<uint32_t>(opts_.inflight);
    for (int i = 0; i < socket_count; ++i) {
      BenchSocket s;
      s.fd = ::socket(target.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
      // Bursts of replies must not overflow the default receive buffer; the kernel
      // caps this at net.core.rmem_max, which is fine.
      const int rcvbuf = 4 << 20;
      ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
      if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len) != 0) {
        return make_error("connect to " + peer_ + ": " + std::strerror(errno));
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
        return make_error(std::string("epoll_ctl: ") + std::strerror(errno));
      }
      sockets_.push_back(std::move(s));
    }
    events_.resize(sockets_.size());
    if (rate > 0) interval_ns_ = 1e9 / rate;

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
    window_ = window;
    int64_t next_scan = window.start_ns + kTimeoutScanNs;
    for (;;) {
      const int64_t now = now_ns();
      if (now >= window.end_ns || g_abort.load(std::memory_order_relaxed)) break;
      if (interval_ns_ > 0) {
        send_due(now);
      } else {
        for (auto& s : sockets_) fill(s, now);
      }
      if (now >= next_scan) {
        expire(now);
        next_scan = now + kTimeoutScanNs;
      }
      if (!error_.empty()) break;

      int64_t wait = std::min(window.end_ns, next_scan) - now;
      if (interval_ns_ > 0 && has_free_slot()) {
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
      const bool spin = interval_ns_ > 0 && (wait < kSpinBelowNs || has_outstanding());
      const int n = wait_for_events(spin ? 0 : wait);
      if (n < 0) {
        if (errno == EINTR) continue;
        fatal(std::string("epoll_wait: ") + std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) drain(sockets_[events_[i].data.u32]);
      if (spin && n == 0) std::this_thread::yield();
    }
  }

  const Stats& stats() const { return stats_; }
  const std::string& error() const { return error_; }

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

  void fatal(std::string text) {
    if (error_.empty()) error_ = std::move(text);
    g_abort.store(true, std::memory_order_relaxed);
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

  int64_t next_due_ns() const {
    return window_.start_ns + static_cast<int64_t>(static_cast<double>(next_index_) * interval_ns_);
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
      slot.intended_ns =
          interval_ns_ > 0
              ? window_.start_ns + static_cast<int64_t>(static_cast<double>(first_index + j) * interval_ns_)
              : now;
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
    const auto due = static_cast<uint64_t>(static_cast<double>(now - window_.start_ns) / interval_ns_) + 1;
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
      if (interval_ns_ <= 0) fill(s, now);
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

  const Options& opts_;
  std::string peer_;
  int epoll_fd_ = -1;
  bool have_pwait2_ = true;
  std::vector<BenchSocket> sockets_;
  std::vector<epoll_event> events_;
  Window window_;
  double interval_ns_ = 0;   // open loop: time between this thread's requests
  uint64_t next_index_ = 0;  // open loop: the next scheduled request
  size_t next_socket_ = 0;

  prism::v1::Packet request_;
  size_t send_buffer_size_ = 0;
  std::vector<uint8_t> send_buffers_;
  std::vector<uint8_t> receive_buffers_;
  std::array<iovec, kBatch> send_iov_{};
  std::array<mmsghdr, kBatch> send_msgs_{};
  std::array<iovec, kBatch> receive_iov_{};
  std::array<mmsghdr, kBatch> receive_msgs_{};

  Stats stats_;
  std::string error_;
};

// ---------------------------------------------------------------------------------------
// Secure: prism::client::Client sessions, each keeping W requests in flight.

// Drives its share of the sessions from one thread. The client library exposes no
// descriptor to wait on, so a thread with several sessions polls each in turn without
// waiting (it spins); a thread with one session waits in poll() until traffic arrives.
class SecureLoad {
 public:
  SecureLoad(const Options& opts, std::string peer) : opts_(opts), peer_(std::move(peer)) {}
  SecureLoad(const SecureLoad&) = delete;
  ~SecureLoad() {
    // Destroying a Client completes what is pending with UNAVAILABLE: not counted.
    finished_ = true;
  }

  Expected<void> open(const prism::client::Endpoint& endpoint,
                      const prism::client::ConnectOptions& options, int session_count,
                      double rate, std::unique_ptr<prism::bench::Workload> workload) {
    workload_ = std::move(workload);
    delivery_ = opts_.wire_delivery();
    const auto inflight = static_cast<uint32_t>(opts_.inflight);
    for (int i = 0; i < session_count; ++i) {
      auto client = prism::client::Client::connect(endpoint, options);
      if (!client) return make_error(client.error());
      auto session = std::make_unique<Session>(std::move(*client));
      session->slots.resize(inflight);
      session->free_slots.reserve(inflight);
      for (uint32_t k = inflight; k-- > 0;) {
        session->slots[k] = RequestSlot{.load = this, .session = session.get(), .index = k};
        session->free_slots.push_back(k);
      }
      sessions_.push_back(std::move(session));
    }
    if (rate > 0) interval_ns_ = 1e9 / rate;
    return {};
  }

  void run(const Window& window) {
    window_ = window;
    using std::chrono::milliseconds;
    for (;;) {
      const int64_t now = now_ns();
      if (now >= window.end_ns || g_abort.load(std::memory_order_relaxed)) break;
      if (interval_ns_ > 0) {
        send_due(now);
      } else {
        for (auto& s : sessions_) fill(*s, now);
      }
      if (!error_.empty()) break;
      // One session: wait for its replies (poll returns after the first batch), but
      // never past the next scheduled request or the end of the run.
      milliseconds wait{0};
      if (sessions_.size() == 1) {
        int64_t until = window.end_ns - now;
        if (interval_ns_ > 0) until = std::min(until, next_due_ns() - now);
        wait = milliseconds(std::clamp<int64_t>(until / 1'000'000, 0, 10));
      }
      const uint64_t before = replies_;
      for (auto& s : sessions_) {
        if (auto polled = s->client.poll(wait); !polled) {
          fatal(polled.error());
          break;
        }
        if (!s->client.connected()) {
          fatal("the session with " + peer_ + " ended: " + s->client.close_reason());
          break;
        }
      }
      if (!error_.empty()) break;
      // A round with nothing received gives the core away: on a small machine prismd
      // and the kernel's softirq work need it more than this spinning thread.
      if (wait.count() == 0 && replies_ == before) std::this_thread::yield();
    }
  }

  const Stats& stats() const { return stats_; }
  const std::string& error() const { return error_; }

 private:
  struct Session;
  struct RequestSlot {
    SecureLoad* load = nullptr;
    Session* session = nullptr;
    uint32_t index = 0;
    bool outstanding = false;
    int64_t intended_ns = 0;  // latency runs from here
  };
  struct Session {
    explicit Session(prism::client::Client c) : client(std::move(c)) {}
    std::vector<RequestSlot> slots;
    std::vector<uint32_t> free_slots;
    // Last: destroyed first, while the slots its pending callbacks point to still exist.
    prism::client::Client client;
  };

  void fatal(std::string text) {
    if (error_.empty()) error_ = std::move(text);
    g_abort.store(true, std::memory_order_relaxed);
  }

  int64_t next_due_ns() const {
    return window_.start_ns + static_cast<int64_t>(static_cast<double>(next_index_) * interval_ns_);
  }

  // Sends one request on a free slot of `s`, intended to leave at `intended_ns`.
  bool send_one(Session& s, int64_t intended_ns) {
    const uint32_t index = s.free_slots.back();
    RequestSlot* slot = &s.slots[index];
    // Capturing one pointer keeps the callback within std::function's inline storage.
    auto sent = s.client.send_request(
        workload_->packet_id(), workload_->next(), delivery_,
        [slot](const prism::client::Reply& reply) { slot->load->complete(*slot, reply); },
        std::chrono::milliseconds(kRequestTimeoutNs / 1'000'000));
    if (!sent) {
      fatal(sent.error());
      return false;
    }
    s.free_slots.pop_back();
    slot->outstanding = true;
    slot->intended_ns = intended_ns;
    return true;
  }

  // Closed loop: every free slot carries a new request.
  void fill(Session& s, int64_t now) {
    while (!s.free_slots.empty() && error_.empty()) {
      if (!send_one(s, now)) return;
    }
  }

  // Open loop: send every request whose scheduled time has come, round robin over the
  // sessions with a free slot. Requests that find none wait, and their latency includes
  // the wait.
  void send_due(int64_t now) {
    const auto due = static_cast<uint64_t>(static_cast<double>(now - window_.start_ns) / interval_ns_) + 1;
    const size_t n = sessions_.size();
    while (next_index_ < due && error_.empty()) {
      size_t tried = 0;
      while (tried < n && sessions_[next_session_]->free_slots.empty()) {
        next_session_ = (next_session_ + 1) % n;
        ++tried;
      }
      if (tried == n) return;  // every slot is in flight
      if (!send_one(*sessions_[next_session_], next_due_ns())) return;
      ++next_index_;
      next_session_ = (next_session_ + 1) % n;
    }
  }

  void complete(RequestSlot& slot, const prism::client::Reply& reply) {
    if (finished_) return;
    const int64_t now = now_ns();
    ++replies_;
    slot.outstanding = false;
    slot.session->free_slots.push_back(slot.index);
    if (!window_.measuring(now)) return;
    if (reply.status == prism::v1::STATUS_TIMEOUT) {
      ++stats_.timeouts;
      return;
    }
    ++stats_.completed;
    if (reply.status != prism::v1::STATUS_OK) {
      ++stats_.errors;
      if (stats_.first_error.empty()) {
        stats_.first_error = std::string(prism::client::status_name(reply.status));
        if (!reply.message.empty()) stats_.first_error += ": " + reply.message;
      }
    }
    stats_.latency.record(now - slot.intended_ns);
  }

  const Options& opts_;
  std::string peer_;
  std::unique_ptr<prism::bench::Workload> workload_;
  prism::v1::Delivery delivery_ = prism::v1::DELIVERY_RELIABLE_ORDERED;
  Window window_;
  double interval_ns_ = 0;   // open loop: time between this thread's requests
  uint64_t next_index_ = 0;  // open loop: the next scheduled request
  size_t next_session_ = 0;
  uint64_t replies_ = 0;     // every completion, warm-up included: progress of a round
  Stats stats_;
  std::string error_;
  bool finished_ = false;
  // Last: the sessions' destructors still call complete(), which reads the above.
  std::vector<std::unique_ptr<Session>> sessions_;
};

// ---------------------------------------------------------------------------------------
// Handshakes: each thread opens a session (the full handshake of §5.2-5.3 with its retry
// round trip), lets it confirm, closes it, and starts over.

class HandshakeLoad {
 public:
  HandshakeLoad(const prism::client::Endpoint& endpoint, const prism::client::ConnectOptions& options)
      : endpoint_(endpoint), options_(options) {}

  void run(const Window& window) {
    for (;;) {
      const int64_t start = now_ns();
      if (start >= window.end_ns || g_abort.load(std::memory_order_relaxed)) break;
      bool opened = false;
      {
        // Destroyed at the end of this block: the Client's destructor sends CLOSE.
        auto client = prism::client::Client::connect(endpoint_, options_);
        opened = client.ok();
        if (!opened && stats_.first_error.empty()) stats_.first_error = client.error();
      }
      const int64_t end = now_ns();
      if (!window.measuring(end)) continue;
      if (opened) {
        ++stats_.completed;
        stats_.latency.record(end - start);
      } else {
        ++stats_.errors;
      }
    }
  }

  const Stats& stats() const { return stats_; }

 private:
  prism::client::Endpoint endpoint_;
  prism::client::ConnectOptions options_;
  Stats stats_;
};

// ---------------------------------------------------------------------------------------

int fail(std::string_view reason) {
  std::cerr << "prism-bench: " << reason << "\n";
  return 1;
}

// "prism1:<hex>" as given, or the contents of a server.pub file.
std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kSecure: return "secure";
    case Mode::kBaseline: return "baseline";
    case Mode::kHandshake: return "handshake";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  CLI::App app{
      "prism-bench: load generator for prismd. By default, --clients sessions over the\n"
      "secure transport (libprism-client) each keep --inflight requests in flight. With\n"
      "--baseline, the same load as raw datagrams against a plain UDP echo server\n"
      "(udp_echo_baseline). With --handshakes, --clients threads open and close sessions."};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "prism-bench: " + std::string(e.what()) + " (see --help)\n";
  });
  app.add_option("--server", opts.server, "Target HOST:PORT")->capture_default_str();
  app.add_option("--server-key", opts.server_key,
                 "The server's public key, prism1:<hex>, or its server.pub file (not needed "
                 "with --baseline)");
  app.add_option("--clients", opts.clients,
                 "Sessions (UDP sockets with --baseline; concurrent connects with --handshakes)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--inflight", opts.inflight, "Requests in flight per session or socket")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--duration", opts.duration_s, "Seconds measured (fractions allowed)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup", opts.warmup_s, "Seconds of load before measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--packet-id", opts.packet_id, "Packet id of the request (101 = default.echo)")
      ->capture_default_str();
  app.add_option("--payload-size", opts.payload_size, "Request payload bytes")
      ->check(CLI::Range(size_t{0}, size_t{60000}))
      ->capture_default_str();
  app.add_option("--delivery", opts.delivery, "Delivery mode of the requests (protocol.md §5.6)")
      ->check(CLI::IsMember({"ordered", "unordered", "unreliable"}))
      ->capture_default_str();
  app.add_option("--rate", opts.rate,
                 "Open loop: total requests/s on a fixed schedule (latency counted from the\n"
                 "scheduled time); 0: closed loop, as fast as the replies come")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--threads", opts.threads, "Threads, each driving its share of the sessions")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_flag("--baseline", opts.baseline,
               "Raw datagrams against a plain UDP echo server instead of prismd sessions");
  app.add_option("--handshakes", opts.handshakes_s,
                 "Handshake mode: open and close sessions for this many seconds (measured "
                 "after --warmup), --clients at a time, one thread each")
      ->check(CLI::PositiveNumber);
  app.add_option("--workload", opts.workload,
                 "What the requests carry: echo (--packet-id, --payload-size), practice-record\n"
                 "(a new ranked 1v1 match each), practice-top10 (a queue's top-10 Elo board)")
      ->check(CLI::IsMember(prism::bench::workload_names()))
      ->capture_default_str();
  app.add_option("--players", opts.players, "practice workloads: players created and matched")
      ->check(CLI::Range(2u, 1000000u))
      ->capture_default_str();
  app.add_option("--label", opts.label, "Name printed with the result")->capture_default_str();
  app.add_flag("--json", opts.json, "Print the result as one JSON object");
  CLI11_PARSE(app, argc, argv);

  const Mode mode = opts.mode();
  if (mode == Mode::kHandshake && opts.baseline) {
    return fail("--handshakes and --baseline exclude each other");
  }
  auto endpoint = prism::client::parse_endpoint(opts.server);
  if (!endpoint) return fail(endpoint.error());
  prism::client::ConnectOptions connect_options;
  if (mode != Mode::kBaseline) {
    if (opts.server_key.empty()) {
      return fail("--server-key is required: prism1:<hex> (prismd logs it at start as "
                  "event=server_key) or the server.pub file in prismd's state directory");
    }
    auto key = prism::client::read_server_key(opts.server_key);
    if (!key) return fail(key.error());
    connect_options.server_key = *key;
  }
  const std::string peer = prism::client::to_string(*endpoint);

  // Every mode: one runner per thread, each with its own Stats, merged at the end.
  std::vector<std::unique_ptr<BaselineLoad>> baseline_loads;
  std::vector<std::unique_ptr<SecureLoad>> secure_loads;
  std::vector<std::unique_ptr<HandshakeLoad>> handshake_loads;
  int threads = std::min(opts.threads, opts.clients);
  if (mode == Mode::kBaseline) {
    auto addresses = prism::client::resolve_addresses(*endpoint);
    if (!addresses) return fail(addresses.error());
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    std::mt19937_64 rng(seed);  // connection ids
    for (int t = 0; t < threads; ++t) {
      // Thread t drives sockets t, t + T, t + 2T, ...
      const int sockets = opts.clients / threads + (t < opts.clients % threads ? 1 : 0);
      const double rate = opts.rate * sockets / opts.clients;
      auto load = std::make_unique<BaselineLoad>(opts, peer);
      if (auto opened = load->open(addresses->front(), sockets, rate, rng); !opened) {
        return fail(opened.error());
      }
      baseline_loads.push_back(std::move(load));
    }
  } else if (mode == Mode::kSecure) {
    const prism::bench::WorkloadOptions workload = opts.workload_options();
    {
      auto session = prism::client::Client::connect(*endpoint, connect_options);
      if (!session) return fail(session.error());
      if (auto prepared = prism::bench::prepare_workload(workload, *session); !prepared) {
        return fail("preparing the " + opts.workload + " workload: " + prepared.error());
      }
    }
    for (int t = 0; t < threads; ++t) {
      const int sessions = opts.clients / threads + (t < opts.clients % threads ? 1 : 0);
      const double rate = opts.rate * sessions / opts.clients;
      auto load = std::make_unique<SecureLoad>(opts, peer);
      if (auto opened = load->open(*endpoint, connect_options, sessions, rate,
                                   prism::bench::make_workload(workload, t));
          !opened) {
        return fail(opened.error());
      }
      secure_loads.push_back(std::move(load));
    }
  } else {
    threads = opts.clients;
    for (int t = 0; t < threads; ++t) {
      handshake_loads.push_back(std::make_unique<HandshakeLoad>(*endpoint, connect_options));
    }
  }

  const double measured_s = mode == Mode::kHandshake ? opts.handshakes_s : opts.duration_s;
  Window window;
  window.start_ns = now_ns();
  window.measure_ns = window.start_ns + static_cast<int64_t>(opts.warmup_s * 1e9);
  window.end_ns = window.measure_ns + static_cast<int64_t>(measured_s * 1e9);
  std::vector<std::thread> workers;
  for (auto& load : baseline_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& load : secure_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& load : handshake_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& w : workers) w.join();

  Stats total;
  for (const auto& load : baseline_loads) {
    if (!load->error().empty()) return fail(load->error());
    total.merge(load->stats());
  }
  for (const auto& load : secure_loads) {
    if (!load->error().empty()) return fail(load->error());
    total.merge(load->stats());
  }
  for (const auto& load : handshake_loads) total.merge(load->stats());

  const double seconds = static_cast<double>(window.end_ns - window.measure_ns) / 1e9;
  const double rps = static_cast<double>(total.completed) / seconds;
  const double p50 = total.latency.quantile_ns(0.50) / 1e3;
  const double p99 = total.latency.quantile_ns(0.99) / 1e3;
  const double p999 = total.latency.quantile_ns(0.999) / 1e3;
  auto round1 = [](double v) { return std::round(v * 10.0) / 10.0; };
  // Handshake mode counts sessions opened and closed; the others count requests.
  const char* count_key = mode == Mode::kHandshake ? "handshakes" : "requests";
  const char* rate_key = mode == Mode::kHandshake ? "handshakes_per_s" : "rps";

  if (opts.json) {
    nlohmann::json result = {
        {"label", opts.label},         {"mode", mode_name(mode)},
        {"server", opts.server},       {count_key, total.completed},
        {"seconds", seconds},          {rate_key, round1(rps)},
        {"p50_us", round1(p50)},       {"p99_us", round1(p99)},
        {"p999_us", round1(p999)},     {"timeouts", total.timeouts},
        {"errors", total.errors},      {"clients", opts.clients},
        {"threads", threads},          {"rate", opts.rate}};
    if (mode != Mode::kHandshake) {
      result["inflight"] = opts.inflight;
      result["payload_size"] = opts.payload_size;
      result["packet_id"] = opts.packet_id;
      result["workload"] = opts.workload;
      if (mode == Mode::kSecure) result["delivery"] = opts.delivery;
    }
    if (!total.first_error.empty()) result["first_error"] = total.first_error;
    std::cout << result.dump() << "\n";
  } else {
    std::printf(
        "label=%s mode=%s %s=%llu seconds=%.3f %s=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
        "timeouts=%llu errors=%llu\n",
        opts.label.c_str(), std::string(mode_name(mode)).c_str(), count_key,
        static_cast<unsigned long long>(total.completed), seconds, rate_key, rps, p50, p99, p999,
        static_cast<unsigned long long>(total.timeouts),
        static_cast<unsigned long long>(total.errors));
  }
  std::fflush(stdout);
  if (total.completed == 0) return fail("nothing completed against " + opts.server);
  if (total.errors > 0) {
    return fail(std::to_string(total.errors) + " errors against " + opts.server +
                (total.first_error.empty() ? "" : "; the first: " + total.first_error));
  }
  return 0;
}
