// The way into a concurrent plugin version's callbacks without a lock (DESIGN.md §2:
// nothing on the hot path takes a lock). Each thread counts the callbacks it is running
// in a slot on a cache line of its own, so workers entering the same version never write
// to a shared line; a handover (or init) closes the gate and waits until every slot is
// empty, then opens it again or retires the version.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>

namespace prism::plugins {

class HandlerGate {
 public:
  enum class State : uint8_t { kOpen, kClosing, kRetired };

  // Enters the gate: true while it is open. A caller that finds it closing waits until it
  // opens again or retires; false once retired (the caller turns to the successor). A
  // thread already inside enters again even while closing (a callback that calls back
  // into its own plugin): close() waits for it anyway.
  bool enter() {
    std::atomic<uint32_t>& inside = slots_[thread_slot()].inside;
    for (;;) {
      // seq_cst on both sides (here and in close): either this load sees the gate closing
      // or close() sees this increment, never neither.
      const uint32_t before = inside.fetch_add(1, std::memory_order_seq_cst);
      const State state = state_.load(std::memory_order_seq_cst);
      if (state == State::kOpen || (state == State::kClosing && before > 0)) return true;
      inside.fetch_sub(1, std::memory_order_release);
      if (state == State::kRetired) return false;
      state_.wait(State::kClosing, std::memory_order_acquire);
    }
  }
  void leave() { slots_[thread_slot()].inside.fetch_sub(1, std::memory_order_release); }

  // A closed gate: open again when this goes out of scope, unless retired.
  class Closed {
   public:
    Closed() = default;
    explicit Closed(HandlerGate* gate) : gate_(gate) {}
    Closed(Closed&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Closed& operator=(Closed&& other) noexcept {
      std::swap(gate_, other.gate_);
      return *this;
    }
    ~Closed() {
      if (gate_ != nullptr) gate_->set(State::kOpen);
    }
    // For good: every later enter() returns false.
    void retire() { std::exchange(gate_, nullptr)->set(State::kRetired); }

   private:
    HandlerGate* gate_ = nullptr;
  };

  // Closes the gate and returns once no callback is inside. Not from inside a callback of
  // this gate, not on a retired gate, and one closer at a time (the caller serialises).
  [[nodiscard]] Closed close() {
    state_.store(State::kClosing, std::memory_order_seq_cst);
    for (Slot& slot : slots_) {
      // acquire: what a callback did before it left is visible to the closer.
      while (slot.inside.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    }
    return Closed(this);
  }

  State state() const { return state_.load(std::memory_order_acquire); }

 private:
  // More threads than slots share slots: still correct, only their lines are shared.
  static constexpr size_t kSlots = 64;
  static size_t thread_slot() {
    static std::atomic<size_t> next{0};
    thread_local const size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slot;
  }

  void set(State state) {
    state_.store(state, std::memory_order_seq_cst);
    state_.notify_all();
  }

  struct alignas(64) Slot {
    std::atomic<uint32_t> inside{0};
  };
  std::array<Slot, kSlots> slots_{};
  std::atomic<State> state_{State::kOpen};
};

}  // namespace prism::plugins
