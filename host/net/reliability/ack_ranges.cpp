// ReceivedPackets keeps a small sorted array of ranges; SentPackets a sorted vector of
// packets with lazy removal. Both avoid allocation once warmed up.
#include "net/reliability/ack_ranges.hpp"

#include <algorithm>

namespace prism::net::reliability {

// ---------------------------------------------------------------- ReceivedPackets

ReceivedPackets::ReceivedPackets(size_t max_ranges) : max_ranges_(std::max<size_t>(max_ranges, 1)) {
  // One extra slot: a new range is inserted before the oldest one is dropped.
  ranges_.reserve(max_ranges_ + 1);
}

Recorded ReceivedPackets::record(uint64_t pn) {
  if (pn < floor_) return Recorded::kBelowFloor;
  // Walk from the largest range down; nearly every packet lands at the front.
  for (size_t i = 0; i < ranges_.size(); ++i) {
    AckRange& r = ranges_[i];
    if (pn > r.last) {
      if (pn - r.last == 1) {
        r.last = pn;  // ranges_[i - 1] starts more than one above pn, checked last turn
      } else {
        ranges_.insert(ranges_.begin() + static_cast<std::ptrdiff_t>(i), AckRange{pn, pn});
        drop_oldest_beyond_capacity();
      }
      return Recorded::kNew;
    }
    if (pn >= r.first) return Recorded::kDuplicate;
    if (r.first - pn == 1) {
      r.first = pn;
      if (i + 1 < ranges_.size() && pn - ranges_[i + 1].last == 1) {
        r.first = ranges_[i + 1].first;
        ranges_.erase(ranges_.begin() + static_cast<std::ptrdiff_t>(i + 1));
      }
      return Recorded::kNew;
    }
  }
  ranges_.push_back(AckRange{pn, pn});
  drop_oldest_beyond_capacity();
  // The packet may have been the one dropped: then it is below the new floor.
  return pn < floor_ ? Recorded::kBelowFloor : Recorded::kNew;
}

void ReceivedPackets::drop_oldest_beyond_capacity() {
  // RFC 9000 §13.2.3: when out of room, the oldest (smallest) ranges go first; the floor
  // rises past them so those numbers are never reported as received again.
  while (ranges_.size() > max_ranges_) {
    floor_ = ranges_.back().last + 1;
    ranges_.pop_back();
  }
}

size_t ReceivedPackets::write_ranges(std::span<AckRange> out) const {
  const size_t n = std::min(out.size(), ranges_.size());
  std::copy_n(ranges_.begin(), n, out.begin());
  return n;
}

void ReceivedPackets::forget_below(uint64_t floor) {
  if (floor <= floor_) return;
  floor_ = floor;
  while (!ranges_.empty() && ranges_.back().last < floor) ranges_.pop_back();
  if (!ranges_.empty() && ranges_.back().first < floor) ranges_.back().first = floor;
}

std::optional<uint64_t> ReceivedPackets::largest() const {
  if (ranges_.empty()) return std::nullopt;
  return ranges_.front().last;
}

// ---------------------------------------------------------------- SentPackets

void SentPackets::on_sent(uint64_t pn, size_t bytes, Clock::time_point at, bool ack_eliciting,
                          uint64_t token) {
  if (!any_sent_ || pn > largest_sent_) {
    entries_.push_back(Entry{pn, token, at, bytes, ack_eliciting, false, true});
    any_sent_ = true;
    largest_sent_ = pn;
    if (ack_eliciting) bytes_in_flight_ += bytes;
    return;
  }
  // The same packet number again: a retransmission of that packet.
  auto it = std::lower_bound(entries_.begin(), entries_.end(), pn,
                             [](const Entry& e, uint64_t n) { return e.packet_number < n; });
  if (it == entries_.end() || it->packet_number != pn) {
    it = entries_.insert(it, Entry{pn, token, at, bytes, ack_eliciting, true, true});
  } else {
    if (it->live && it->ack_eliciting) bytes_in_flight_ -= it->bytes;
    if (!it->live) --done_count_;
    *it = Entry{pn, token, at, bytes, ack_eliciting, true, true};
  }
  if (ack_eliciting) bytes_in_flight_ += bytes;
}

void SentPackets::retire(Entry& e) {
  e.live = false;
  ++done_count_;
  if (e.ack_eliciting) bytes_in_flight_ -= e.bytes;
}

void SentPackets::release() {
  if (packets_tracked() != 0) return;
  std::vector<Entry>().swap(entries_);
  std::vector<uint64_t>().swap(acked_tokens_);
  done_count_ = 0;
}

void SentPackets::compact() {
  if (done_count_ == entries_.size()) {
    entries_.clear();  // keeps capacity
  } else if (done_count_ > 64 && done_count_ * 2 > entries_.size()) {
    std::erase_if(entries_, [](const Entry& e) { return !e.live; });
  } else {
    return;
  }
  done_count_ = 0;
}

AckResult SentPackets::on_ack(std::span<const AckRange> ranges, Clock::time_point now) {
  acked_tokens_.clear();
  AckResult result;
  if (ranges.empty()) return result;

  uint64_t largest_in_ack = 0;
  for (const AckRange& r : ranges) largest_in_ack = std::max(largest_in_ack, r.last);

  bool newly_acked_eliciting = false;
  std::optional<std::chrono::microseconds> largest_rtt;
  for (const AckRange& r : ranges) {
    if (r.first > r.last) continue;  // malformed: names nothing
    auto it = std::lower_bound(entries_.begin(), entries_.end(), r.first,
                               [](const Entry& e, uint64_t n) { return e.packet_number < n; });
    for (; it != entries_.end() && it->packet_number <= r.last; ++it) {
      if (!it->live) continue;
      if (it->ack_eliciting) {
        result.bytes_acked += it->bytes;
        newly_acked_eliciting = true;
      }
      retire(*it);
      acked_tokens_.push_back(it->token);
      if (!any_acked_ || it->packet_number > largest_acked_) {
        any_acked_ = true;
        largest_acked_ = it->packet_number;
      }
      if (it->packet_number == largest_in_ack && !it->retransmitted) {
        largest_rtt =
            std::max(std::chrono::duration_cast<std::chrono::microseconds>(now - it->sent_at),
                     std::chrono::microseconds{0});
      }
    }
  }
  // RFC 9002 §5.1: sample only from the largest acknowledged, when newly acknowledged,
  // and only if something ack-eliciting was newly acknowledged.
  if (newly_acked_eliciting) result.rtt_sample = largest_rtt;
  result.acked_tokens = acked_tokens_;
  compact();
  return result;
}

void SentPackets::detect_lost(Clock::time_point now, std::chrono::milliseconds rto,
                              std::vector<uint64_t>& lost_tokens) {
  for (Entry& e : entries_) {
    if (!e.live) continue;
    const bool by_time = now - e.sent_at >= rto;
    // A resent packet number was sent after the ACKs that skipped it: only time tells.
    const bool overtaken = any_acked_ && !e.retransmitted && e.packet_number < largest_acked_;
    const bool by_threshold = overtaken && largest_acked_ - e.packet_number >= kPacketThreshold;
    const bool by_time_threshold =
        overtaken && loss_delay_.count() > 0 && now - e.sent_at >= loss_delay_;
    if (!by_time && !by_threshold && !by_time_threshold) continue;
    retire(e);
    if (e.ack_eliciting) lost_tokens.push_back(e.token);
  }
  compact();
}

std::optional<Clock::time_point> SentPackets::loss_deadline(std::chrono::milliseconds rto) const {
  std::optional<Clock::time_point> oldest;
  for (const Entry& e : entries_) {
    if (e.live && e.ack_eliciting && (!oldest || e.sent_at < *oldest)) oldest = e.sent_at;
  }
  if (!oldest) return std::nullopt;
  return *oldest + rto;
}

std::optional<Clock::time_point> SentPackets::time_threshold_deadline() const {
  if (!any_acked_ || loss_delay_.count() == 0) return std::nullopt;
  // Entries are in packet-number order: the first live one below the largest
  // acknowledged is also the earliest sent of them.
  for (const Entry& e : entries_) {
    if (e.packet_number >= largest_acked_) break;
    if (e.live && e.ack_eliciting && !e.retransmitted) return e.sent_at + loss_delay_;
  }
  return std::nullopt;
}

std::optional<Clock::time_point> SentPackets::newest_in_flight() const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->live && it->ack_eliciting) return it->sent_at;
  }
  return std::nullopt;
}

std::optional<uint64_t> SentPackets::oldest_in_flight_token() const {
  for (const Entry& e : entries_) {
    if (e.live && e.ack_eliciting) return e.token;
  }
  return std::nullopt;
}

std::optional<uint64_t> SentPackets::largest_acked() const {
  if (!any_acked_) return std::nullopt;
  return largest_acked_;
}

}  // namespace prism::net::reliability
