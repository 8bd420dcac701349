// The impairment proxy's thread: one poll loop over the client-facing socket, one
// upstream socket per client address, and a schedule of delayed and held datagrams.
#include "impairment_proxy.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace prism::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kNoFlow = std::numeric_limits<size_t>::max();
// Datagrams read from one socket per loop turn, so releases stay on time under a flood.
constexpr int kReadBurst = 64;
// Room for bursts: the default receive buffer holds only a few hundred small datagrams.
constexpr int kSocketBuffer = 1 << 20;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool same_address(const sockaddr_storage& a, socklen_t a_len, const sockaddr_storage& b,
                  socklen_t b_len) {
  if (a_len != b_len || a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return std::memcmp(&a, &b, a_len) == 0;
}

// Min-heap order for the schedule: earliest due first, then arrival order.
bool leaves_later(const auto& a, const auto& b) {
  if (a.due != b.due) return a.due > b.due;
  return a.order > b.order;
}

}  // namespace

ImpairmentProxy::ImpairmentProxy(const sockaddr_storage& upstream, socklen_t len,
                                 Impairment client_to_server, Impairment server_to_client)
    : upstream_(upstream), upstream_len_(len) {
  const int family = upstream.ss_family;
  if (family != AF_INET && family != AF_INET6) {
    throw std::invalid_argument("impairment proxy: upstream is neither IPv4 nor IPv6");
  }
  try {
    listen_fd_ = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) fail("impairment proxy: socket(listen)");
    setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
    setsockopt(listen_fd_, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof kSocketBuffer);

    sockaddr_storage local{};
    socklen_t local_len = 0;
    if (family == AF_INET) {
      auto& v4 = reinterpret_cast<sockaddr_in&>(local);
      v4.sin_family = AF_INET;
      v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      local_len = sizeof v4;
    } else {
      auto& v6 = reinterpret_cast<sockaddr_in6&>(local);
      v6.sin6_family = AF_INET6;
      v6.sin6_addr = in6addr_loopback;
      local_len = sizeof v6;
    }
    if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&local), local_len) != 0) {
      fail("impairment proxy: bind(loopback:0)");
    }
    local_len = sizeof local;
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
      fail("impairment proxy: getsockname(listen)");
    }
    port_ = ntohs(family == AF_INET ? reinterpret_cast<const sockaddr_in&>(local).sin_port
                                    : reinterpret_cast<const sockaddr_in6&>(local).sin6_port);

    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) fail("impairment proxy: eventfd");
  } catch (...) {
    close_fd(listen_fd_);
    close_fd(wake_fd_);
    throw;
  }
  buffer_.resize(kMaxDatagram);
  set_impairment(client_to_server, server_to_client);
  thread_ = std::thread([this] { run(); });
}

ImpairmentProxy::~ImpairmentProxy() {
  stopping_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof one);
  thread_.join();
  for (auto& flow : flows_) close_fd(flow.upstream_fd);
  close_fd(listen_fd_);
  close_fd(wake_fd_);
}

void ImpairmentProxy::set_impairment(Impairment client_to_server, Impairment server_to_client) {
  const std::lock_guard lock(impairment_mutex_);
  directions_[kClientToServer] = {client_to_server, std::mt19937_64(client_to_server.seed)};
  directions_[kServerToClient] = {server_to_client, std::mt19937_64(server_to_client.seed)};
}

ImpairmentProxy::Counters ImpairmentProxy::counters() const {
  constexpr auto r = std::memory_order_relaxed;
  return {c2s_in_.load(r),  c2s_out_.load(r),    s2c_in_.load(r),  s2c_out_.load(r),
          dropped_.load(r), duplicated_.load(r), reordered_.load(r)};
}

void ImpairmentProxy::run() {
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& flow : flows_) fds.push_back({flow.upstream_fd, POLLIN, 0});

    timespec storage{};
    const int ready = ppoll(fds.data(), fds.size(), wait_timeout(Clock::now(), storage), nullptr);
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0) {
      if (fds[0].revents != 0) {
        uint64_t value = 0;
        [[maybe_unused]] const ssize_t n = read(wake_fd_, &value, sizeof value);
        continue;  // only the destructor wakes us; re-check stopping_
      }
      if (fds[1].revents != 0) read_clients();
      // read_clients may add flows; only the ones polled this turn have revents.
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0) read_server(i - 2);
      }
    }
    release_due(Clock::now());
  }
}

void ImpairmentProxy::read_clients() {
  for (int i = 0; i < kReadBurst; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(listen_fd_, buffer_.data(), buffer_.size(), MSG_TRUNC,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or an error the next turn's poll will report again
    }
    c2s_in_.fetch_add(1, std::memory_order_relaxed);
    const size_t flow = flow_for(from, from_len);
    if (static_cast<size_t>(n) > buffer_.size() || flow == kNoFlow) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    impair(kClientToServer, flow, buffer_.data(), static_cast<size_t>(n));
  }
}

void ImpairmentProxy::read_server(size_t flow) {
  for (int i = 0; i < kReadBurst; ++i) {
    const ssize_t n = recv(flows_[flow].upstream_fd, buffer_.data(), buffer_.size(), MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or ECONNREFUSED from a server that is not (yet) there
    }
    s2c_in_.fetch_add(1, std::memory_order_relaxed);
    if (static_cast<size_t>(n) > buffer_.size()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    impair(kServerToClient, flow, buffer_.data(), static_cast<size_t>(n));
  }
}

size_t ImpairmentProxy::flow_for(const sockaddr_storage& client, socklen_t len) {
  for (size_t i = 0; i < flows_.size(); ++i) {
    if (same_address(flows_[i].client, flows_[i].client_len, client, len)) return i;
  }
  // A new source address gets its own upstream socket, so the server sees a new
  // source port: exactly what a NAT rebinding looks like from its side.
  const int fd = socket(upstream_.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return kNoFlow;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof kSocketBuffer);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&upstream_), upstream_len_) != 0) {
    close(fd);
    return kNoFlow;
  }
  flows_.push_back({client, len, fd});
  return flows_.size() - 1;
}

void ImpairmentProxy::impair(Direction direction, size_t flow, const uint8_t* data, size_t len) {
  if (paused_.load()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint64_t spare_first = 0;
  {
    const std::lock_guard lock(impairment_mutex_);
    spare_first = directions_[direction].impairment.spare_first;
  }
  if (flows_[flow].seen[direction]++ < spare_first) {
    transmit(direction, flow, std::vector<uint8_t>(data, data + len));
    return;
  }
  // Every datagram takes the same number of draws whatever the outcome, so the fate
  // of datagram k depends only on the seed and k, not on the probabilities' values.
  bool lost = false;
  bool duplicated = false;
  bool held = false;
  std::array<std::chrono::microseconds, 2> delay{};
  {
    const std::lock_guard lock(impairment_mutex_);
    auto& [impairment, rng] = directions_[direction];
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    lost = unit(rng) < impairment.loss;
    duplicated = unit(rng) < impairment.duplicate;
    held = unit(rng) < impairment.reorder;
    for (auto& d : delay) {
      const auto extra = static_cast<int64_t>(unit(rng) * static_cast<double>(impairment.jitter.count()));
      d = impairment.delay + std::chrono::microseconds(extra);
    }
  }
  if (lost) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (duplicated) duplicated_.fetch_add(1, std::memory_order_relaxed);
  if (held) reordered_.fetch_add(1, std::memory_order_relaxed);

  const auto now = Clock::now();
  const uint64_t order = next_order_++;
  const size_t copies = duplicated ? 2 : 1;
  for (size_t i = 0; i < copies; ++i) {
    std::vector<uint8_t> bytes(data, data + len);
    if (held) {
      held_[direction].push_back({now + delay[i] + kMaxHold, order, flow, std::move(bytes)});
    } else {
      schedule_.push_back({now + delay[i], order, direction, flow, std::move(bytes)});
      std::push_heap(schedule_.begin(), schedule_.end(),
                     [](const auto& a, const auto& b) { return leaves_later(a, b); });
    }
  }
}

void ImpairmentProxy::release_due(Clock::time_point now) {
  while (!schedule_.empty() && schedule_.front().due <= now) {
    std::pop_heap(schedule_.begin(), schedule_.end(),
                  [](const auto& a, const auto& b) { return leaves_later(a, b); });
    Scheduled next = std::move(schedule_.back());
    schedule_.pop_back();
    transmit(next.direction, next.flow, next.bytes);
    release_held(next.direction, next.order);
  }
  // Nothing came after these in time: let them go rather than strand them.
  for (size_t d = 0; d < held_.size(); ++d) {
    auto& queue = held_[d];
    for (auto it = queue.begin(); it != queue.end();) {
      if (it->deadline <= now) {
        transmit(static_cast<Direction>(d), it->flow, it->bytes);
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void ImpairmentProxy::release_held(Direction direction, uint64_t before) {
  auto& queue = held_[direction];
  for (auto it = queue.begin(); it != queue.end();) {
    if (it->order < before) {
      transmit(direction, it->flow, it->bytes);
      it = queue.erase(it);
    } else {
      ++it;
    }
  }
}

void ImpairmentProxy::transmit(Direction direction, size_t flow,
                               const std::vector<uint8_t>& bytes) {
  if (paused_.load()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Counted before the send so that a receiver holding the datagram sees it counted;
  // taken back if the kernel refuses it.
  auto& out = direction == kClientToServer ? c2s_out_ : s2c_out_;
  out.fetch_add(1, std::memory_order_relaxed);
  const Flow& f = flows_[flow];
  ssize_t n = -1;
  do {
    n = direction == kClientToServer
            ? send(f.upstream_fd, bytes.data(), bytes.size(), 0)
            : sendto(listen_fd_, bytes.data(), bytes.size(), 0,
                     reinterpret_cast<const sockaddr*>(&f.client), f.client_len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    // A full socket buffer or a refused peer: the path lost it, as a real one would.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    out.fetch_sub(1, std::memory_order_relaxed);
  }
}

const timespec* ImpairmentProxy::wait_timeout(Clock::time_point now, timespec& storage) const {
  std::optional<Clock::time_point> earliest;
  if (!schedule_.empty()) earliest = schedule_.front().due;
  for (const auto& queue : held_) {
    for (const auto& h : queue) {
      if (!earliest || h.deadline < *earliest) earliest = h.deadline;
    }
  }
  if (!earliest) return nullptr;
  const auto left = std::max(Clock::duration::zero(), *earliest - now);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  storage.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  storage.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return &storage;
}

}  // namespace prism::test
