// The secure load (docs/performance.md): libprism-client sessions, each keeping
// --inflight requests in flight through the whole secure transport, closed or open loop.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "load.hpp"

namespace prism::bench {

// Drives its share of the sessions from one thread. The client library exposes no
// descriptor to wait on, so a thread with several sessions polls each in turn without
// waiting (it spins); a thread with one session waits in poll() until traffic arrives.
class SecureLoad final : public Load {
 public:
  SecureLoad(const Options& opts, std::string peer) : Load(opts, std::move(peer)) {}
  SecureLoad(const SecureLoad&) = delete;
  ~SecureLoad() {
    // Destroying a Client completes what is pending with UNAVAILABLE: not counted.
    finished_ = true;
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
    return {};
  }

  void run(const Window& window) {
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
        if (auto polled = s->client.poll(wait); !polled) return fatal(polled.error());
        if (!s->client.connected()) {
          return fatal("the session with " + peer_ + " ended: " + s->client.close_reason());
        }
      }
      // A round with nothing received gives the core away: on a small machine prismd
      // and the kernel's softirq work need it more than this spinning thread.
      if (wait.count() == 0 && replies_ == before) std::this_thread::yield();
    });
  }

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
  // Last: the sessions' destructors still call complete(), which reads the above.
  std::vector<std::unique_ptr<Session>> sessions_;
};

}  // namespace prism::bench
