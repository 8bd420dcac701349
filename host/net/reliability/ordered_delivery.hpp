// Reliable-ordered delivery for one session: the receiver's bounded reorder buffer that
// hands messages up in sequence exactly once, and the sender's flow-control window.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace prism::net::reliability {

// How many messages may wait behind a gap. A gap lasts until the retransmission lands,
// at worst about one RTO plus one RTT; 1024 covers a second of it at 1000 messages/s.
inline constexpr size_t kDefaultReorderCapacity = 1024;

enum class Arrival : uint8_t {
  kDelivered,     // it was the next expected: delivered, with any buffered successors
  kBuffered,      // held until the messages before it arrive
  kDuplicate,     // already delivered or already buffered: dropped
  kBeyondWindow,  // too far ahead to buffer: dropped, so do not acknowledge it; the
                  // sender retransmits it once the window has moved
};

// Sequences start at first_sequence and increase by one per message. Slots are
// allocated once; a buffered payload is moved in and moved out, never copied. Not
// thread-safe, and not reentrant: `deliver` must not call on_message().
class OrderedReceiver {
 public:
  explicit OrderedReceiver(size_t capacity = kDefaultReorderCapacity, uint64_t first_sequence = 0);

  // deliver is called as deliver(std::vector<uint8_t>&&), once per message, in sequence
  // order, before on_message() returns. Any callable (lambda, std::function).
  template <typename Deliver>
  Arrival on_message(uint64_t sequence, std::vector<uint8_t> payload, Deliver&& deliver) {
    const Arrival arrival = store(sequence, std::move(payload));
    if (arrival == Arrival::kDelivered) {
      while (std::optional<std::vector<uint8_t>> ready = take_next()) deliver(std::move(*ready));
    }
    return arrival;
  }

  // What on_message() would answer for `sequence`, changing nothing: callers use it to
  // skip work for duplicates and to deliver the next message without buffering it.
  Arrival classify(uint64_t sequence) const;

  // The fast path: when `sequence` is the next one and nothing is buffered, counts it
  // delivered (the caller hands it up itself) and returns true; false otherwise.
  bool skip_if_next(uint64_t sequence);

  // The sequence the next delivery will carry; everything below it was delivered.
  uint64_t next_sequence() const { return next_; }
  size_t buffered() const { return buffered_; }
  size_t capacity() const { return capacity_; }

 private:
  struct Slot {
    bool full = false;
    std::vector<uint8_t> payload;
  };

  Arrival store(uint64_t sequence, std::vector<uint8_t>&& payload);
  std::optional<std::vector<uint8_t>> take_next();

  size_t capacity_;
  std::vector<Slot> slots_;  // sequence s lives in slots_[s % capacity]; empty until needed
  uint64_t next_;
  size_t buffered_ = 0;
};

// Flow control in bytes of messages sent but not yet acknowledged (per session).
inline constexpr size_t kDefaultMaxUnackedBytes = 256 * 1024;

// Count each message once when first sent and once when acknowledged; retransmissions
// do not change it. Not thread-safe.
//
// Bytes alone do not bound how far past its oldest unacknowledged message the sender
// runs (messages behind a gap are acknowledged and leave the window), so a session also
// keeps new sequences below oldest unacknowledged + the peer's reorder capacity; past
// that the peer answers kBeyondWindow and every such message costs a retransmission.
// RFC 9000 §4.1 bounds by stream offset for the same reason.
class SendWindow {
 public:
  explicit SendWindow(size_t max_unacked_bytes = kDefaultMaxUnackedBytes);

  // True when `bytes` more fit under the limit. With nothing unacknowledged anything
  // fits, so a message larger than the window still goes out (alone) instead of
  // blocking the session for good.
  bool can_send(size_t bytes) const;
  void on_sent(size_t bytes);
  // Acknowledging more than is outstanding (a caller's double count) clamps at zero.
  void on_acked(size_t bytes);

  size_t unacked_bytes() const { return unacked_; }
  size_t max_unacked_bytes() const { return max_; }

 private:
  size_t max_;
  size_t unacked_ = 0;
};

}  // namespace prism::net::reliability
