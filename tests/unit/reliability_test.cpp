// The reliability layer's timers and bookkeeping (RFC 6298 RTO, RFC 9000/9002 ACK
// ranges and loss detection) and ordered delivery with its send window.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "net/reliability/ack_ranges.hpp"
#include "net/reliability/ordered_delivery.hpp"
#include "net/reliability/rtt_estimator.hpp"

namespace prism::net::reliability {
namespace {

using namespace std::chrono_literals;
using std::chrono::microseconds;
using std::chrono::milliseconds;

std::vector<AckRange> ranges_of(const ReceivedPackets& received) {
  std::array<AckRange, 64> out{};
  return {out.begin(), out.begin() + static_cast<std::ptrdiff_t>(received.write_ranges(out))};
}

std::vector<uint64_t> tokens_of(const AckResult& result) {
  return {result.acked_tokens.begin(), result.acked_tokens.end()};
}

// ---------------------------------------------------------------- RttEstimator

TEST(ReliabilityRtt, RtoFollowsRfc6298FirstSample) {
  RttEstimator rtt;
  EXPECT_FALSE(rtt.has_sample());
  EXPECT_EQ(rtt.rto(), 500ms);  // RtoConfig::initial until a sample arrives

  rtt.on_sample(100ms);  // §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 * RTTVAR
  EXPECT_EQ(rtt.smoothed_rtt(), 100ms);
  EXPECT_EQ(rtt.rtt_variation(), 50ms);
  EXPECT_EQ(rtt.rto(), 300ms);

  // §2.3, RTTVAR from the old SRTT: 3/4*50 + 1/4*|100-200| = 62.5; SRTT 112.5;
  // RTO 362.5 rounded up. Updating SRTT first would give 350 ms.
  rtt.on_sample(200ms);
  EXPECT_EQ(rtt.rtt_variation(), microseconds{62500});
  EXPECT_EQ(rtt.smoothed_rtt(), microseconds{112500});
  EXPECT_EQ(rtt.rto(), 363ms);
}

TEST(ReliabilityRtt, RtoBacksOffAndCaps) {
  RttEstimator rtt;
  rtt.on_timeout();  // backoff applies before any sample too (§5.5)
  EXPECT_EQ(rtt.rto(), 1000ms);

  rtt.on_sample(100ms);
  EXPECT_EQ(rtt.rto(), 300ms);
  const std::array<milliseconds, 7> expected{600ms, 1200ms, 2400ms, 4800ms, 5000ms, 5000ms, 5000ms};
  for (milliseconds want : expected) {
    rtt.on_timeout();
    EXPECT_EQ(rtt.rto(), want);
  }
  EXPECT_EQ(rtt.consecutive_timeouts(), expected.size());
  for (int i = 0; i < 100; ++i) rtt.on_timeout();  // no overflow, still capped
  EXPECT_EQ(rtt.rto(), 5000ms);
}

TEST(ReliabilityRtt, NewSampleResetsBackoff) {
  RttEstimator rtt;
  rtt.on_sample(100ms);
  rtt.on_timeout();
  rtt.on_timeout();
  rtt.on_timeout();
  EXPECT_EQ(rtt.rto(), 2400ms);
  rtt.on_sample(100ms);  // RTTVAR 3/4 * 50 = 37.5 ms, RTO 100 + 150
  EXPECT_EQ(rtt.consecutive_timeouts(), 0u);
  EXPECT_EQ(rtt.rto(), 250ms);
}

TEST(ReliabilityRtt, RtoNeverBelowMinimum) {
  RttEstimator rtt;
  for (int i = 0; i < 200; ++i) rtt.on_sample(1ms);
  EXPECT_EQ(rtt.smoothed_rtt(), 1ms);
  EXPECT_EQ(rtt.rto(), 50ms);  // SRTT + G = 2 ms, held at RtoConfig::min

  RttEstimator custom(RtoConfig{.initial = 10ms, .min = 80ms, .max = 5000ms});
  EXPECT_EQ(custom.rto(), 80ms);  // the initial value is bounded as well
}

TEST(ReliabilityRtt, ClockGranularityIsTheLeastVarianceTerm) {
  RttEstimator rtt(RtoConfig{.min = 0ms, .clock_granularity = 4ms});
  for (int i = 0; i < 200; ++i) rtt.on_sample(10ms);
  EXPECT_EQ(rtt.rtt_variation(), 0us);
  EXPECT_EQ(rtt.rto(), 14ms);  // §2.3: SRTT + max(G, K * RTTVAR)
}

// ---------------------------------------------------------------- ReceivedPackets

TEST(ReliabilityAckRanges, AckRangesAreLargestFirstAndMerged) {
  ReceivedPackets received;
  for (uint64_t pn : {1, 2, 3, 5, 8, 7}) EXPECT_EQ(received.record(pn), Recorded::kNew);
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{7, 8}, {5, 5}, {1, 3}}));

  EXPECT_EQ(received.record(4), Recorded::kNew);  // joins 1-3 and 5
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{7, 8}, {1, 5}}));
  EXPECT_EQ(received.record(6), Recorded::kNew);  // closes the last gap
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{1, 8}}));

  EXPECT_EQ(received.record(3), Recorded::kDuplicate);
  EXPECT_EQ(received.record(8), Recorded::kDuplicate);
  EXPECT_EQ(received.record(0), Recorded::kNew);  // extends downwards
  EXPECT_EQ(received.record(12), Recorded::kNew);
  EXPECT_EQ(received.record(10), Recorded::kNew);
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{12, 12}, {10, 10}, {0, 8}}));
  EXPECT_EQ(received.largest(), 12u);

  std::array<AckRange, 2> two{};
  ASSERT_EQ(received.write_ranges(two), 2u);  // the largest ones, when out is short
  EXPECT_EQ(two[1], (AckRange{10, 10}));
}

TEST(ReliabilityAckRanges, AckRangesAreBounded) {
  ReceivedPackets received(4);
  for (uint64_t pn = 0; pn <= 20; pn += 2) received.record(pn);
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{20, 20}, {18, 18}, {16, 16}, {14, 14}}));
  EXPECT_EQ(received.floor(), 13u);  // the dropped ranges are never reported again
  EXPECT_EQ(received.record(2), Recorded::kBelowFloor);
  EXPECT_EQ(received.record(11), Recorded::kBelowFloor);
  EXPECT_EQ(received.record(15), Recorded::kNew);

  received.forget_below(19);  // RFC 9000 §13.2.4: the peer saw an ACK with these
  EXPECT_EQ(ranges_of(received), (std::vector<AckRange>{{20, 20}}));
  EXPECT_EQ(received.record(18), Recorded::kBelowFloor);

  std::mt19937_64 rng(7);
  ReceivedPackets bounded;
  for (int i = 0; i < 10000; ++i) {
    bounded.record(rng() % 5000);
    ASSERT_LE(bounded.range_count(), kDefaultMaxAckRanges);
  }
  const std::vector<AckRange> out = ranges_of(bounded);
  for (size_t i = 1; i < out.size(); ++i) EXPECT_GT(out[i - 1].first, out[i].last + 1);
}

// ---------------------------------------------------------------- SentPackets

TEST(ReliabilitySentPackets, AckReportsRttOnlyForNeverRetransmitted) {
  const Clock::time_point t0{};
  SentPackets sent;
  sent.on_sent(1, 100, t0, true, 11);
  sent.on_sent(2, 100, t0, true, 12);
  sent.on_sent(2, 100, t0 + 100ms, true, 12);  // packet 2 sent again: ambiguous ACK
  EXPECT_EQ(sent.bytes_in_flight(), 200u);
  const std::array<AckRange, 1> first{AckRange{1, 2}};
  AckResult r = sent.on_ack(first, t0 + 150ms);
  EXPECT_EQ(tokens_of(r), (std::vector<uint64_t>{11, 12}));
  EXPECT_EQ(r.bytes_acked, 200u);
  EXPECT_FALSE(r.rtt_sample.has_value());  // Karn: the largest was retransmitted

  sent.on_sent(3, 100, t0 + 200ms, true, 13);
  const std::array<AckRange, 1> second{AckRange{3, 3}};
  r = sent.on_ack(second, t0 + 230ms);
  ASSERT_TRUE(r.rtt_sample.has_value());
  EXPECT_EQ(*r.rtt_sample, 30ms);

  // RFC 9002 §5.1: an ACK acknowledging only non-ack-eliciting packets gives no sample.
  sent.on_sent(4, 40, t0 + 300ms, false, 14);
  EXPECT_EQ(sent.bytes_in_flight(), 0u);
  const std::array<AckRange, 1> third{AckRange{4, 4}};
  r = sent.on_ack(third, t0 + 310ms);
  EXPECT_EQ(tokens_of(r), (std::vector<uint64_t>{14}));
  EXPECT_FALSE(r.rtt_sample.has_value());
}

TEST(ReliabilitySentPackets, DuplicateAckIsHarmless) {
  const Clock::time_point t0{};
  SentPackets sent;
  for (uint64_t pn = 1; pn <= 5; ++pn) sent.on_sent(pn, 100, t0, true, pn * 10);
  const std::array<AckRange, 1> ack{AckRange{1, 3}};
  AckResult r = sent.on_ack(ack, t0 + 20ms);
  EXPECT_EQ(tokens_of(r), (std::vector<uint64_t>{10, 20, 30}));
  EXPECT_EQ(r.bytes_acked, 300u);
  EXPECT_EQ(sent.bytes_in_flight(), 200u);

  r = sent.on_ack(ack, t0 + 30ms);
  EXPECT_TRUE(r.acked_tokens.empty());
  EXPECT_EQ(r.bytes_acked, 0u);
  EXPECT_FALSE(r.rtt_sample.has_value());

  // Unknown, malformed and overlapping ranges acknowledge what exists, once.
  const std::array<AckRange, 4> odd{AckRange{100, 200}, AckRange{9, 3}, AckRange{4, 5},
                                    AckRange{5, 5}};
  r = sent.on_ack(odd, t0 + 40ms);
  EXPECT_EQ(tokens_of(r), (std::vector<uint64_t>{40, 50}));
  EXPECT_EQ(sent.bytes_in_flight(), 0u);
  EXPECT_EQ(sent.packets_tracked(), 0u);
  EXPECT_EQ(sent.largest_acked(), 5u);     // never raised by the unknown 100-200
  EXPECT_FALSE(r.rtt_sample.has_value());  // the ACK's largest (200) was not sent
}

TEST(ReliabilitySentPackets, LossDetectedByTimeAndByPacketThreshold) {
  const Clock::time_point t0{};
  SentPackets sent;
  for (uint64_t pn = 1; pn <= 6; ++pn) {
    sent.on_sent(pn, 100, t0 + milliseconds(pn), true, pn);
  }
  EXPECT_EQ(sent.loss_deadline(300ms), t0 + 1ms + 300ms);
  std::vector<uint64_t> lost;
  sent.detect_lost(t0 + 20ms, 300ms, lost);
  EXPECT_TRUE(lost.empty());  // nothing acknowledged, nothing old

  const std::array<AckRange, 1> ack{AckRange{5, 6}};
  (void)sent.on_ack(ack, t0 + 20ms);
  sent.detect_lost(t0 + 20ms, 300ms, lost);
  EXPECT_EQ(lost, (std::vector<uint64_t>{1, 2, 3}));  // 3 or more below 6; 4 is only 2
  EXPECT_EQ(sent.bytes_in_flight(), 100u);

  lost.clear();
  sent.detect_lost(t0 + 4ms + 299ms, 300ms, lost);
  EXPECT_TRUE(lost.empty());
  sent.detect_lost(t0 + 4ms + 300ms, 300ms, lost);  // packet 4 reached the RTO
  EXPECT_EQ(lost, (std::vector<uint64_t>{4}));
  EXPECT_EQ(sent.bytes_in_flight(), 0u);
  EXPECT_FALSE(sent.loss_deadline(300ms).has_value());

  const std::array<AckRange, 1> late{AckRange{1, 4}};
  EXPECT_TRUE(sent.on_ack(late, t0 + 400ms).acked_tokens.empty());  // lost is forgotten
}

TEST(ReliabilitySentPackets, ResentPacketNumberIsJudgedByTimeOnly) {
  const Clock::time_point t0{};
  SentPackets sent;
  for (uint64_t pn = 1; pn <= 6; ++pn) sent.on_sent(pn, 100, t0, true, pn);
  const std::array<AckRange, 1> ack{AckRange{5, 6}};
  (void)sent.on_ack(ack, t0 + 20ms);
  std::vector<uint64_t> lost;
  sent.detect_lost(t0 + 20ms, 300ms, lost);
  ASSERT_EQ(lost, (std::vector<uint64_t>{1, 2, 3}));

  // Packet 1 goes out again under its own number (a v1-style transport): it is back in
  // flight, and the ACKs that skipped it before do not condemn it again.
  sent.on_sent(1, 100, t0 + 25ms, true, 1);
  EXPECT_EQ(sent.bytes_in_flight(), 200u);
  EXPECT_EQ(sent.packets_tracked(), 2u);  // 1 and 4
  lost.clear();
  sent.detect_lost(t0 + 30ms, 300ms, lost);
  EXPECT_TRUE(lost.empty());
  const std::array<AckRange, 1> late{AckRange{1, 1}};
  const AckResult r = sent.on_ack(late, t0 + 60ms);
  EXPECT_EQ(tokens_of(r), (std::vector<uint64_t>{1}));
  EXPECT_FALSE(r.rtt_sample.has_value());  // Karn: which copy was acknowledged is unknown
}

// ---------------------------------------------------------------- OrderedReceiver

TEST(ReliabilityOrdered, OrderedReceiverDeliversInOrderExactlyOnce) {
  constexpr uint64_t kMessages = 500;
  std::vector<uint64_t> arrivals(kMessages * 2);
  std::iota(arrivals.begin(), arrivals.begin() + kMessages, 0);
  std::iota(arrivals.begin() + kMessages, arrivals.end(), 0);  // every message twice
  std::mt19937_64 rng(42);
  std::shuffle(arrivals.begin(), arrivals.end(), rng);

  OrderedReceiver receiver;
  std::vector<uint64_t> delivered;
  auto deliver = [&](std::vector<uint8_t>&& payload) {
    ASSERT_EQ(payload.size(), 2u);
    delivered.push_back(uint64_t{payload[0]} | uint64_t{payload[1]} << 8);
  };
  size_t duplicates = 0;
  for (uint64_t seq : arrivals) {
    std::vector<uint8_t> payload{static_cast<uint8_t>(seq), static_cast<uint8_t>(seq >> 8)};
    if (receiver.on_message(seq, std::move(payload), deliver) == Arrival::kDuplicate) ++duplicates;
  }
  std::vector<uint64_t> expected(kMessages);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(delivered, expected);
  EXPECT_EQ(duplicates, kMessages);
  EXPECT_EQ(receiver.next_sequence(), kMessages);
  EXPECT_EQ(receiver.buffered(), 0u);
}

TEST(ReliabilityOrdered, NextInOrderIsSkippedOnlyWhileNothingWaits) {
  OrderedReceiver receiver(8);
  std::vector<uint8_t> got;
  auto deliver = [&](std::vector<uint8_t>&& p) { got.push_back(p.at(0)); };
  EXPECT_FALSE(receiver.skip_if_next(1));  // not the next one
  EXPECT_TRUE(receiver.skip_if_next(0));
  EXPECT_EQ(receiver.next_sequence(), 1u);
  EXPECT_EQ(receiver.classify(0), Arrival::kDuplicate);
  EXPECT_EQ(receiver.on_message(2, {2}, deliver), Arrival::kBuffered);
  // 1 is next, but 2 waits behind it: the caller must go through on_message to get both.
  EXPECT_FALSE(receiver.skip_if_next(1));
  EXPECT_EQ(receiver.on_message(1, {1}, deliver), Arrival::kDelivered);
  EXPECT_EQ(got, (std::vector<uint8_t>{1, 2}));
  EXPECT_TRUE(receiver.skip_if_next(3));
  EXPECT_EQ(receiver.classify(3), Arrival::kDuplicate);
  EXPECT_EQ(receiver.classify(12), Arrival::kBeyondWindow);
}

TEST(ReliabilityOrdered, SequenceBeyondBufferIsRefused) {
  OrderedReceiver receiver(4);
  std::vector<uint8_t> got;
  std::function<void(std::vector<uint8_t>&&)> deliver = [&](std::vector<uint8_t>&& p) {
    got.push_back(p.at(0));
  };
  EXPECT_EQ(receiver.on_message(4, {4}, deliver), Arrival::kBeyondWindow);
  EXPECT_EQ(receiver.on_message(3, {3}, deliver), Arrival::kBuffered);
  EXPECT_EQ(receiver.buffered(), 1u);  // the refused one took no slot
  EXPECT_EQ(receiver.on_message(0, {0}, deliver), Arrival::kDelivered);
  EXPECT_EQ(got, (std::vector<uint8_t>{0}));
  EXPECT_EQ(receiver.on_message(4, {4}, deliver), Arrival::kBuffered);  // the window moved
  EXPECT_EQ(receiver.on_message(5, {5}, deliver), Arrival::kBeyondWindow);
  EXPECT_EQ(receiver.on_message(1, {1}, deliver), Arrival::kDelivered);
  EXPECT_EQ(receiver.on_message(2, {2}, deliver), Arrival::kDelivered);
  EXPECT_EQ(got, (std::vector<uint8_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(receiver.on_message(0, {0}, deliver), Arrival::kDuplicate);
  EXPECT_EQ(got.size(), 5u);
}

// ---------------------------------------------------------------- SendWindow

TEST(ReliabilitySendWindow, SendWindowBlocksAtLimit) {
  SendWindow window(1000);
  EXPECT_TRUE(window.can_send(1000));
  window.on_sent(600);
  EXPECT_TRUE(window.can_send(400));
  EXPECT_FALSE(window.can_send(401));
  window.on_sent(400);
  EXPECT_FALSE(window.can_send(1));
  window.on_acked(600);
  EXPECT_TRUE(window.can_send(600));
  EXPECT_FALSE(window.can_send(601));
  window.on_acked(10000);  // over-acknowledging clamps
  EXPECT_EQ(window.unacked_bytes(), 0u);
  EXPECT_TRUE(window.can_send(5000));  // alone, even larger than the window
  window.on_sent(5000);
  EXPECT_FALSE(window.can_send(1));
  EXPECT_EQ(SendWindow().max_unacked_bytes(), 256u * 1024);
}

}  // namespace
}  // namespace prism::net::reliability
