// A first-in first-out queue on one vector, for a session's send queues: nothing is
// allocated until the first push, where a std::deque allocates 576 bytes on construction
// (per queue, per session; six of them were a fifth of an idle session's memory).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace prism::net::reliability {

template <typename T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  // The i-th element from the front.
  T& operator[](size_t i) { return items_[head_ + i]; }
  const T& operator[](size_t i) const { return items_[head_ + i]; }

  void push_back(T value) { items_.push_back(std::move(value)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  // Gives the capacity back; only when empty (a resting session's queues).
  void release() {
    if (empty()) {
      std::vector<T>().swap(items_);
      head_ = 0;
    }
  }
  void pop_front() {
    items_[head_] = T();  // release what the element owns now, not at compaction
    if (++head_ == items_.size()) {
      items_.clear();  // keeps the capacity: the common empty-again case allocates nothing
      head_ = 0;
    } else if (head_ >= kCompactAfter && head_ * 2 >= items_.size()) {
      // The dead front is at least half: moving the live half down keeps pops O(1) amortized.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  static constexpr size_t kCompactAfter = 32;
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace prism::net::reliability
