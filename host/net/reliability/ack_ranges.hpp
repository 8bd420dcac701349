// Acknowledgement bookkeeping for one session: which packet numbers arrived (the ACK
// ranges to send back, RFC 9000 §13.2.3, §19.3) and which sent packets are still in
// flight, acknowledged or lost (RFC 9002 §5.1, §6.1).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace prism::net::reliability {

using Clock = std::chrono::steady_clock;

// Packet numbers first..last, both included.
struct AckRange {
  uint64_t first;
  uint64_t last;
  friend bool operator==(const AckRange&, const AckRange&) = default;
};

// RFC 9000 §13.2.3 leaves the number of ranges to the receiver; 32 ranges cover heavy
// reordering and still fit one ACK frame in a 1200-byte datagram.
inline constexpr size_t kDefaultMaxAckRanges = 32;

enum class Recorded : uint8_t {
  kNew,         // first time seen: process it and acknowledge it
  kDuplicate,   // already recorded: acknowledge again, do not deliver again
  kBelowFloor,  // older than anything still remembered: cannot tell, drop it unacked
};

// The receiver side. Memory is fixed at construction: at most max_ranges ranges, no
// allocation per packet. Not thread-safe.
class ReceivedPackets {
 public:
  explicit ReceivedPackets(size_t max_ranges = kDefaultMaxAckRanges);

  Recorded record(uint64_t packet_number);

  // Ranges to report, largest first, at most out.size() of them. Returns how many were
  // written. Adjacent packet numbers always share one range.
  size_t write_ranges(std::span<AckRange> out) const;

  // Forget everything below `floor` (RFC 9000 §13.2.4: once an ACK that reported those
  // ranges is itself acknowledged, the peer no longer needs them). Later packets below
  // the floor are reported kBelowFloor.
  void forget_below(uint64_t floor);

  size_t range_count() const { return ranges_.size(); }
  uint64_t floor() const { return floor_; }
  std::optional<uint64_t> largest() const;

 private:
  void drop_oldest_beyond_capacity();

  size_t max_ranges_;
  uint64_t floor_ = 0;
  std::vector<AckRange> ranges_;  // largest first, disjoint and non-adjacent
};

// RFC 9002 §6.1.1: kPacketThreshold, the reordering a sender tolerates before a packet
// that an ACK skipped over is declared lost.
inline constexpr uint64_t kPacketThreshold = 3;

struct AckResult {
  // Tokens of the packets this ACK newly acknowledged. Owned by the SentPackets that
  // returned it; valid until its next on_ack() call.
  std::span<const uint64_t> acked_tokens;
  // now minus the send time of the largest acknowledged packet, present only when that
  // packet is newly acknowledged, was sent once (Karn, RFC 6298 §3) and the ACK newly
  // acknowledges at least one ack-eliciting packet (RFC 9002 §5.1).
  std::optional<std::chrono::microseconds> rtt_sample;
  // Bytes of ack-eliciting packets newly acknowledged (what left bytes_in_flight()).
  size_t bytes_acked = 0;
};

// The sender side: packets in flight, in packet-number order. Entries are kept in one
// vector that is compacted in place, so a steady flow does not allocate. Not
// thread-safe.
class SentPackets {
 public:
  // Packet numbers increase. Sending a number again (a transport that resends a packet
  // unchanged under its own number) records a retransmission: the ACK for it then gives
  // no RTT sample, and the packet threshold no longer applies to it (only the timer).
  // `token` is the caller's handle for what the packet carried. Packets that are not
  // ack-eliciting (pure ACKs) are tracked so their acknowledgement is reported, but
  // they never count in flight and are never reported lost.
  void on_sent(uint64_t packet_number, size_t bytes, Clock::time_point at, bool ack_eliciting,
               uint64_t token);

  // Ranges may come in any order, overlap, repeat earlier ACKs or name packets never
  // sent; only packets still tracked are acknowledged, each once.
  AckResult on_ack(std::span<const AckRange> ranges, Clock::time_point now);

  // Declares lost, and appends to lost_tokens the tokens of, ack-eliciting packets in
  // flight that were sent `rto` or more before `now` (RFC 6298 §5: the timer runs for
  // the oldest outstanding data) or are kPacketThreshold or more below the largest
  // acknowledged packet (RFC 9002 §6.1.1). Lost packets are forgotten, so a late ACK for
  // one is ignored; the caller resends what it carried (new packet number or the same).
  // Non-ack-eliciting packets that meet the same test are forgotten without a report.
  // Call it after each on_ack() and when the loss_deadline() timer fires.
  void detect_lost(Clock::time_point now, std::chrono::milliseconds rto,
                   std::vector<uint64_t>& lost_tokens);

  // When the oldest ack-eliciting packet in flight reaches `rto`: the time to arm the
  // retransmission timer for. Empty when nothing is in flight.
  std::optional<Clock::time_point> loss_deadline(std::chrono::milliseconds rto) const;

  // RFC 9002 §6.1.2, the time threshold: from now on detect_lost() also declares lost a
  // packet below the largest acknowledged one that was sent `loss_delay` or more before
  // `now`, so a loss followed by fewer than kPacketThreshold packets is found in about
  // an RTT. Zero (the default) leaves only the packet threshold and the RTO.
  void set_loss_delay(std::chrono::microseconds loss_delay) { loss_delay_ = loss_delay; }
  // When the time threshold will declare the next packet lost, if one is waiting for it.
  std::optional<Clock::time_point> time_threshold_deadline() const;
  // The send time of the newest ack-eliciting packet in flight: the probe timeout runs
  // from here (RFC 9002 §6.2.1).
  std::optional<Clock::time_point> newest_in_flight() const;
  // The token of the oldest ack-eliciting packet in flight: what a probe sends again.
  std::optional<uint64_t> oldest_in_flight_token() const;

  size_t bytes_in_flight() const { return bytes_in_flight_; }
  size_t packets_tracked() const { return entries_.size() - done_count_; }
  // Gives back the capacity of its lists when no packet is tracked (a resting session).
  void release();
  std::optional<uint64_t> largest_acked() const;

 private:
  struct Entry {
    uint64_t packet_number;
    uint64_t token;
    Clock::time_point sent_at;
    size_t bytes;
    bool ack_eliciting;
    bool retransmitted;
    bool live;  // not yet acknowledged or declared lost
  };

  void retire(Entry& entry);
  void compact();

  std::vector<Entry> entries_;  // sorted by packet number; retired entries until compact()
  std::vector<uint64_t> acked_tokens_;
  size_t done_count_ = 0;
  size_t bytes_in_flight_ = 0;
  std::chrono::microseconds loss_delay_{0};
  bool any_sent_ = false;
  uint64_t largest_sent_ = 0;
  bool any_acked_ = false;
  uint64_t largest_acked_ = 0;
};

}  // namespace prism::net::reliability
