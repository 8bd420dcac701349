// The bytes a peer can make this side hold while receiving: reliable-ordered messages
// waiting behind a gap and unfinished fragmented messages share one budget per session
// (docs/protocol.md §5.6-5.7), and a session's budget may draw on a shared one (prismd:
// one per worker), so many sessions together cannot hold more than the worker allows.
#pragma once

#include <cstddef>

namespace prism::net::reliability {

// Not thread-safe: a budget and every budget that draws on it belong to one thread.
class ReceiveBudget {
 public:
  explicit ReceiveBudget(size_t limit, ReceiveBudget* shared = nullptr)
      : limit_(limit), shared_(shared) {}
  // What this budget still holds goes back to the shared one: a session that ends with
  // fragments pending must not shrink its worker's budget for good.
  ~ReceiveBudget() {
    if (shared_ != nullptr) shared_->release(used_);
  }
  ReceiveBudget(const ReceiveBudget&) = delete;
  ReceiveBudget& operator=(const ReceiveBudget&) = delete;

  // Charges `bytes` here and to the shared budget, or nothing at all when either would
  // go over its limit.
  bool take(size_t bytes) {
    if (bytes > limit_ - used_) return false;
    if (shared_ != nullptr && !shared_->take(bytes)) return false;
    used_ += bytes;
    return true;
  }
  // Gives back bytes taken earlier; more than was taken is a caller bug, clamped.
  void release(size_t bytes) {
    if (bytes > used_) bytes = used_;
    used_ -= bytes;
    if (shared_ != nullptr) shared_->release(bytes);
  }

  size_t used() const { return used_; }
  size_t limit() const { return limit_; }

 private:
  size_t limit_;
  size_t used_ = 0;
  ReceiveBudget* shared_;
};

}  // namespace prism::net::reliability
