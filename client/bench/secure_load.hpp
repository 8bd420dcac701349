// The secure load (docs/performance.md): libprism-client sessions, each keeping
// --inflight requests in flight through the whole secure transport, closed or open loop.
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "load.hpp"

namespace prism::bench {

// Drives its share of the sessions from one thread. Closed loop: every reply sends the
// next request from inside its callback, so the flush that ends the session's poll
// carries it; a thread with several sessions waits for them all in epoll and polls only
// those with traffic or a timer due (the way an application with many sessions in one
// loop would). Open loop: every session is polled each turn, without waiting.
class SecureLoad final : public Load {
 public:
  SecureLoad(const Options& opts, std::string peer) : Load(opts, std::move(peer)) {}
  SecureLoad(const SecureLoad&) = delete;
  ~SecureLoad() {
    // Destroying a Client completes what is pending with UNAVAILABLE: not counted.
    finished_ = true;
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  prism::Expected<void> open(const prism::client::Endpoint& endpoint,
                      const prism::client::ConnectOptions& options, int session_count,
                      double rate, std::unique_ptr<Workload> workload) {
    workload_ = std::move(workload);
    delivery_ = opts_.wire_delivery();
    const auto inflight = static_cast<uint32_t>(opts_.inflight);
    for (int i = 0; i < session_count; ++i) {
      auto client = prism::client::Client::connect(endpoint, options);
      if (!client) return prism::make_error(client.error());
      auto session = std::make_unique<Session>(std::move(*client));
      session->slots.resize(inflight);
      session->free_slots.reserve(inflight);
      for (uint32_t k = inflight; k-- > 0;) {
        session->slots[k] = RequestSlot{.load = this, .session = session.get(), .index = k};
        session->free_slots.push_back(k);
      }
      sessions_.push_back(std::move(session));
    }
    set_rate(rate);
    if (rate == 0 && sessions_.size() > 1) {
      epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
      if (epoll_fd_ < 0) return prism::make_error(std::string("epoll: ") + std::strerror(errno));
      for (uint32_t i = 0; i < sessions_.size(); ++i) {
        epoll_event ev{.events = EPOLLIN, .data = {.u32 = i}};
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sessions_[i]->client.descriptor(), &ev) != 0) {
          return prism::make_error(std::string("epoll_ctl: ") + std::strerror(errno));
        }
      }
    }
    return {};
  }

  void run(const Window& window) {
    if (epoll_fd_ >= 0) return run_watched(window);
    using std::chrono::milliseconds;
    run_window(window, [&](int64_t now) {
      if (open_loop()) {
        send_due(now);
      } else {
        for (auto& s : sessions_) fill(*s, now);
      }
      if (!error_.empty()) return;
      // One session: wait for its replies (poll returns after the first batch), but
      // never past the next scheduled request or the end of the run.
      milliseconds wait{0};
      if (sessions_.size() == 1) {
        int64_t until = window.end_ns - now;
        if (open_loop()) until = std::min(until, next_due_ns() - now);
        wait = milliseconds(std::clamp<int64_t>(until / 1'000'000, 0, 10));
      }
      const uint64_t before = replies_;
      for (auto& s : sessions_) {
        if (!service(*s, wait)) return;
      }
      // A round with nothing received gives the core away: on a small machine prismd
      // and the kernel's softirq work need it more than this spinning thread.
      if (wait.count() == 0 && replies_ == before) std::this_thread::yield();
    });
  }

 private:
  struct Session;

  // Closed loop over several sessions: epoll for the ones with traffic, and every
  // millisecond a look at the others' timers (retransmissions, request deadlines).
  void run_watched(const Window& window) {
    std::array<epoll_event, 64> events;
    int64_t next_timer_scan = 0;
    bool started = false;
    run_window(window, [&](int64_t now) {
      if (!started) {
        started = true;
        for (auto& s : sessions_) {
          fill(*s, now);
          if (!service(*s)) return;
        }
      }
      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 1);
      if (n < 0 && errno != EINTR) return fatal(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        if (!service(*sessions_[events[static_cast<size_t>(i)].data.u32])) return;
      }
      const int64_t after = now_ns();
      if (after < next_timer_scan) return;
      next_timer_scan = after + 1'000'000;
      const auto clock_now = std::chrono::steady_clock::now();
      for (auto& s : sessions_) {
        if (s->client.next_wakeup() <= clock_now && !service(*s)) return;
      }
    });
  }

  // poll() on one session: replies, timers, and the flush that sends the next requests.
  bool service(Session& s, std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
    if (auto polled = s.client.poll(wait); !polled) {
      fatal(polled.error());
      return false;
    }
    if (!s.client.connected()) {
      fatal("the session with " + peer_ + " ended: " + s.client.close_reason());
      return false;
    }
    return true;
  }

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
    const uint64_t due = due_by(now);
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
    record(slot, reply, now);
    // Closed loop: the next request rides the flush that ends this poll. After record():
    // it reuses the slot, and its intended time with it.
    if (!open_loop() && error_.empty()) fill(*slot.session, now);
  }

  void record(const RequestSlot& slot, const prism::client::Reply& reply, int64_t now) {
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

  std::unique_ptr<Workload> workload_;
  prism::v1::Delivery delivery_ = prism::v1::DELIVERY_RELIABLE_ORDERED;
  size_t next_session_ = 0;
  uint64_t replies_ = 0;     // every completion, warm-up included: progress of a round
  bool finished_ = false;
  int epoll_fd_ = -1;        // closed loop over several sessions (run_watched)
  // Last: the sessions' destructors still call complete(), which reads the above.
  std::vector<std::unique_ptr<Session>> sessions_;
};

}  // namespace prism::bench
