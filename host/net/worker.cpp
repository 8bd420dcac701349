// Worker loop, batched UDP receive (recvmmsg through libuv) and batched send (sendmmsg).
#include "net/worker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/thread_name.hpp"
#include "net/transport_metrics.hpp"

namespace prism::net {
namespace {

// libuv splits the receive buffer into 64 KiB slots, at most 20 per recvmmsg call.
constexpr size_t kUvDgramSlot = 64 * 1024;
constexpr size_t kRecvSlots = 20;

Expected<PeerAddress> resolve_listen(const std::string& host, uint16_t port) {
  PeerAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return make_error("listen address '" + host + "' is not an IPv4 or IPv6 address");
}

}  // namespace

SendBatch::SendBatch(size_t max_datagram)
    : max_datagram_(max_datagram),
      storage_(kSlots * max_datagram),
      peers_(kSlots),
      iov_(kSlots),
      msgs_(kSlots),
      send_failed_(transport_counters().send_failed) {}

std::span<uint8_t> SendBatch::next_buffer() {
  if (used_ == kSlots) flush();
  return {storage_.data() + used_ * max_datagram_, max_datagram_};
}

void SendBatch::commit(const PeerAddress& to, size_t len) {
  peers_[used_] = to;
  iov_[used_] = {storage_.data() + used_ * max_datagram_, len};
  auto& hdr = msgs_[used_].msg_hdr;
  hdr = {};
  hdr.msg_name = &peers_[used_].addr;
  hdr.msg_namelen = peers_[used_].len;
  hdr.msg_iov = &iov_[used_];
  hdr.msg_iovlen = 1;
  ++used_;
}

void SendBatch::flush() {
  size_t sent = 0;
  while (sent < used_) {
    int n = sendmmsg(fd_, msgs_.data() + sent, static_cast<unsigned>(used_ - sent), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // A full socket buffer or an unreachable peer: skip the one at fault and go on.
      // Lost replies are the reliability layer's business; here they are counted.
      send_failed_.add();
      ++sent;
      continue;
    }
    sent += static_cast<size_t>(n);
  }
  used_ = 0;
}

namespace {
thread_local LoopAccess* t_current_loop = nullptr;
}  // namespace

LoopAccess* current_loop() { return t_current_loop; }
void set_current_loop(LoopAccess* loop) { t_current_loop = loop; }

Worker::Worker(unsigned index, SessionSettings settings)
    : index_(index),
      recv_buffer_(kUvDgramSlot * kRecvSlots),
      batch_(settings.channel.max_datagram),
      sessions_(index, batch_, *this, std::move(settings)) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_check_init(&loop_, &flush_check_);
  flush_check_.data = this;
  uv_prepare_init(&loop_, &flush_prepare_);
  flush_prepare_.data = this;
  uv_async_init(&loop_, &wakeup_, &Worker::on_async);
  wakeup_.data = this;
}

Worker::~Worker() {
  stop();
  // Handles were closed on the loop thread; if the thread never started, close here.
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&wakeup_))) {
    for (auto& close : at_stop_) close();
    close_handles();
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  // A handle still open here is one nobody closed: its memory and callbacks outlive the
  // loop. Tests assert the same for the loops they drive.
  if (const int rc = uv_loop_close(&loop_); rc != 0) {
    SPDLOG_ERROR("event=loop_close_failed worker={} error=\"{}\"", index_, uv_strerror(rc));
  }
}

Expected<uint16_t> Worker::bind(const std::string& host, uint16_t port, bool first) {
  auto addr = resolve_listen(host, port);
  if (!addr) return make_error(addr.error());
  if (first && port != 0) {
    // A socket without SO_REUSEPORT cannot bind beside one that has it: if this probe
    // fails, another process owns the port and would get half of our traffic.
    const int probe = socket(addr->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const bool taken =
        probe >= 0 && ::bind(probe, reinterpret_cast<const sockaddr*>(&addr->addr), addr->len) != 0;
    const std::string why = std::strerror(errno);
    if (probe >= 0) ::close(probe);
    if (taken) return make_error("bind " + host + ":" + std::to_string(port) + ": " + why);
  }
  const int fd = socket(addr->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  // Every worker binds the same port; the kernel spreads flows across them (DESIGN.md §2).
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr->addr), addr->len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return make_error("bind " + host + ":" + std::to_string(port) + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const uint16_t bound_port =
      bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                 : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);

  uv_udp_init_ex(&loop_, &udp_, AF_UNSPEC | UV_UDP_RECVMMSG);
  udp_.data = this;
  udp_open_ = true;
  if (int rc = uv_udp_open(&udp_, fd); rc != 0) {
    ::close(fd);
    return make_error(std::string("uv_udp_open: ") + uv_strerror(rc));
  }
  batch_.set_fd(fd);
  return bound_port;
}

void Worker::start() {
  if (udp_open_) uv_udp_recv_start(&udp_, &Worker::on_alloc, &Worker::on_recv);
  uv_check_start(&flush_check_, &Worker::on_check);
  uv_prepare_start(&flush_prepare_, &Worker::on_prepare);
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    set_current_loop(this);
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
  name_thread(thread_, "worker-" + std::to_string(index_));  // "worker-254" fits in 15 bytes
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  post([this] {
    sessions_.close_all("server shutting down");
    batch_.flush();
    for (auto& close : at_stop_) close();
    close_handles();
  });
  thread_.join();
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lock(posted_mutex_);
    stopped_ = true;
    dropped.swap(posted_);
  }
}

void Worker::close_handles() {
  if (udp_open_) uv_close(reinterpret_cast<uv_handle_t*>(&udp_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard lock(posted_mutex_);
    if (stopped_) return;
    posted_.push_back(std::move(task));
  }
  uv_async_send(&wakeup_);
}

void Worker::on_async(uv_async_t* handle) { static_cast<Worker*>(handle->data)->run_posted(); }

void Worker::run_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
  flush();
}

void Worker::flush() {
  sessions_.flush();
  batch_.flush();
}

void Worker::on_forwarded(std::span<const uint8_t> datagram, const PeerAddress& from) {
  sessions_.on_datagram(datagram, from, true);
}

void Worker::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Worker*>(handle->data);
  // One buffer per worker, reused: nothing is allocated per datagram.
  *buf = uv_buf_init(self->recv_buffer_.data(), static_cast<unsigned>(self->recv_buffer_.size()));
}

void Worker::on_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                     unsigned) {
  auto* self = static_cast<Worker*>(handle->data);
  // nread == 0 with no address: nothing more to read, or the end of a recvmmsg batch.
  if (nread < 0) {
    SPDLOG_WARN("event=udp_recv_error worker={} error={}", self->index_,
                uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (addr == nullptr) return;
  PeerAddress from;
  from.len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  std::memcpy(&from.addr, addr, from.len);
  self->sessions_.on_datagram(
      {reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)}, from);
}

void Worker::on_check(uv_check_t* handle) { static_cast<Worker*>(handle->data)->flush(); }

void Worker::on_prepare(uv_prepare_t* handle) { static_cast<Worker*>(handle->data)->flush(); }

}  // namespace prism::net
