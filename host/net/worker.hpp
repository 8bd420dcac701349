// A worker: one thread, one uv_loop_t and one SO_REUSEPORT UDP socket (DESIGN.md §2).
// Datagrams arrive in recvmmsg batches; replies leave in sendmmsg batches, flushed after
// the I/O callbacks and again before the loop blocks, so nothing waits for the next wake-up.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/expected.hpp"
#include "net/loop_access.hpp"
#include "net/session_table.hpp"
#include "net/transport.hpp"

namespace prism::net {

// Replies gathered during one loop turn, sent with one sendmmsg.
class SendBatch final : public Outbox {
 public:
  static constexpr size_t kSlots = 64;

  SendBatch(size_t max_datagram);
  void set_fd(int fd) { fd_ = fd; }

  std::span<uint8_t> next_buffer() override;
  void commit(const PeerAddress& to, size_t len) override;
  void flush();

 private:
  int fd_ = -1;
  size_t max_datagram_;
  size_t used_ = 0;
  std::vector<uint8_t> storage_;  // kSlots * max_datagram
  std::vector<PeerAddress> peers_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  metrics::Counter& send_failed_;
};

class Worker final : public LoopAccess {
 public:
  Worker(unsigned index, SessionSettings settings);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens and binds the socket. Port 0 picks a free port; returns the bound port.
  // `first` marks the first worker of a process: it refuses a port another process
  // already holds, which SO_REUSEPORT alone would silently share.
  Expected<uint16_t> bind(const std::string& host, uint16_t port, bool first);
  void set_handler(RequestHandler* handler) { sessions_.set_handler(handler); }
  void set_forwarder(Forwarder forwarder) { sessions_.set_forwarder(std::move(forwarder)); }
  // Loop thread only: a datagram another worker received for one of this worker's sessions.
  void on_forwarded(std::span<const uint8_t> datagram, const PeerAddress& from);

  // Starts the worker's thread; the loop serves until stop().
  void start();
  // Asks the loop to close its handles and joins the thread.
  void stop();

  // After stop() a task is dropped unrun: the loop is gone, and what it would resume (a
  // plugin's storage completion) may belong to a plugin already unloaded.
  void post(std::function<void()> task) override;
  bool on_loop_thread() const override { return std::this_thread::get_id() == thread_id_.load(); }
  void at_stop(std::function<void()> close) override { at_stop_.push_back(std::move(close)); }
  uv_loop_t* loop() override { return &loop_; }

  unsigned index() const { return index_; }
  ReplyTransport& transport() { return sessions_; }
  SessionTable& sessions() { return sessions_; }

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                      const sockaddr* addr, unsigned flags);
  static void on_check(uv_check_t* handle);
  static void on_prepare(uv_prepare_t* handle);
  void flush();
  static void on_async(uv_async_t* handle);
  void run_posted();
  void close_handles();

  unsigned index_;
  uv_loop_t loop_{};
  uv_udp_t udp_{};
  uv_check_t flush_check_{};      // after I/O callbacks: replies to what just arrived
  uv_prepare_t flush_prepare_{};  // before the loop blocks: replies made by timers
  uv_async_t wakeup_{};
  bool udp_open_ = false;
  std::vector<char> recv_buffer_;
  SendBatch batch_;
  SessionTable sessions_;

  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  bool stopped_ = false;  // under posted_mutex_
  std::vector<std::function<void()>> at_stop_;  // set before start()
};

}  // namespace prism::net
