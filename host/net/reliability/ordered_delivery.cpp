// The reorder ring of OrderedReceiver and the byte counter of SendWindow.
#include "net/reliability/ordered_delivery.hpp"

#include <algorithm>

namespace prism::net::reliability {

OrderedReceiver::OrderedReceiver(size_t capacity, uint64_t first_sequence)
    : capacity_(std::max<size_t>(capacity, 1)), next_(first_sequence) {}

Arrival OrderedReceiver::store(uint64_t sequence, std::vector<uint8_t>&& payload) {
  if (sequence < next_) return Arrival::kDuplicate;
  if (sequence - next_ >= capacity_) return Arrival::kBeyondWindow;
  // The ring is only needed once something waits; sessions that stay in order never pay.
  if (slots_.empty()) slots_.resize(capacity_);
  Slot& slot = slots_[sequence % slots_.size()];
  if (slot.full) return Arrival::kDuplicate;
  slot.full = true;
  slot.payload = std::move(payload);
  ++buffered_;
  return sequence == next_ ? Arrival::kDelivered : Arrival::kBuffered;
}

Arrival OrderedReceiver::classify(uint64_t sequence) const {
  if (sequence < next_) return Arrival::kDuplicate;
  if (sequence - next_ >= capacity_) return Arrival::kBeyondWindow;
  if (!slots_.empty() && slots_[sequence % slots_.size()].full) return Arrival::kDuplicate;
  return sequence == next_ ? Arrival::kDelivered : Arrival::kBuffered;
}

bool OrderedReceiver::skip_if_next(uint64_t sequence) {
  if (sequence != next_ || buffered_ != 0) return false;
  ++next_;
  return true;
}

std::optional<std::vector<uint8_t>> OrderedReceiver::take_next() {
  if (slots_.empty()) return std::nullopt;
  Slot& slot = slots_[next_ % slots_.size()];
  if (!slot.full) return std::nullopt;
  slot.full = false;
  --buffered_;
  ++next_;
  return std::optional<std::vector<uint8_t>>{std::move(slot.payload)};
}

SendWindow::SendWindow(size_t max_unacked_bytes) : max_(max_unacked_bytes) {}

bool SendWindow::can_send(size_t bytes) const {
  return unacked_ == 0 || (unacked_ <= max_ && bytes <= max_ - unacked_);
}

void SendWindow::on_sent(size_t bytes) { unacked_ += bytes; }

void SendWindow::on_acked(size_t bytes) { unacked_ -= std::min(bytes, unacked_); }

}  // namespace prism::net::reliability
