// The reliability blocks together: a sender (SentPackets, RttEstimator, SendWindow,
// retransmission) and a receiver (ReceivedPackets, OrderedReceiver) over a simulated
// channel that loses, duplicates and reorders datagrams in both directions.
#include <gtest/gtest.h>

#include <array>
#include <deque>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "net/reliability/ack_ranges.hpp"
#include "net/reliability/ordered_delivery.hpp"
#include "net/reliability/rtt_estimator.hpp"

namespace prism::net::reliability {
namespace {

using namespace std::chrono_literals;

struct Datagram {
  Clock::time_point arrives{};
  uint64_t order = 0;  // ties in arrival time keep sending order, for determinism
  bool is_ack = false;
  uint64_t packet_number = 0;
  uint64_t sequence = 0;
  std::vector<uint8_t> payload{};
  std::vector<AckRange> ranges{};
};

struct ArrivesLater {
  bool operator()(const Datagram& a, const Datagram& b) const {
    return a.arrives != b.arrives ? a.arrives > b.arrives : a.order > b.order;
  }
};

// One direction of a lossy path: each datagram is lost, or delivered after the path's
// delay; some are held back so that later ones overtake them, and some arrive twice
// (the copy late).
class LossyLink {
 public:
  explicit LossyLink(std::mt19937_64& rng) : rng_(rng) {}

  void send(const Datagram& d, Clock::time_point now) {
    if (chance_(rng_) < kLoss) {
      ++lost;
      return;
    }
    enqueue(d, now, chance_(rng_) < kReorder);
    if (chance_(rng_) < kDuplicate) {
      ++duplicated;
      enqueue(d, now, true);
    }
  }

  bool pop_due(Clock::time_point now, Datagram& out) {
    if (queue_.empty() || queue_.top().arrives > now) return false;
    out = queue_.top();
    queue_.pop();
    return true;
  }

  size_t lost = 0;
  size_t duplicated = 0;

 private:
  static constexpr double kLoss = 0.10;
  static constexpr double kDuplicate = 0.05;
  static constexpr double kReorder = 0.05;
  static constexpr auto kPathDelay = 15ms;

  void enqueue(Datagram d, Clock::time_point now, bool held_back) {
    d.arrives = now + kPathDelay + (held_back ? std::chrono::milliseconds(extra_(rng_)) : 0ms);
    d.order = next_order_++;
    queue_.push(std::move(d));
  }

  std::mt19937_64& rng_;
  std::uniform_real_distribution<double> chance_{0.0, 1.0};
  std::uniform_int_distribution<int> extra_{1, 40};
  std::priority_queue<Datagram, std::vector<Datagram>, ArrivesLater> queue_;
  uint64_t next_order_ = 0;
};

std::vector<uint8_t> message_for(uint64_t sequence) {
  std::vector<uint8_t> payload(16 + sequence % 33);
  for (size_t i = 0; i < 8; ++i) payload[i] = static_cast<uint8_t>(sequence >> (8 * i));
  for (size_t i = 8; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(sequence * 31 + i);
  return payload;
}

uint64_t sequence_in(const std::vector<uint8_t>& payload) {
  uint64_t sequence = 0;
  for (size_t i = 0; i < 8; ++i) sequence |= uint64_t{payload[i]} << (8 * i);
  return sequence;
}

struct Scenario {
  uint64_t seed = 20240611;
  size_t reorder_capacity = 256;
  // How far past its oldest unacknowledged message the sender may go. A session keeps
  // this at the peer's reorder capacity; larger values make the receiver refuse.
  uint64_t sequence_span = 256;
};

struct Outcome {
  std::vector<uint64_t> delivered;  // sequences in the order the receiver handed them up
  bool payloads_intact = true;
  uint64_t acked = 0;
  size_t unacked_bytes_left = 0;
  size_t reorder_buffered_left = 0;
  size_t datagrams_lost = 0;
  size_t datagrams_duplicated = 0;
  size_t retransmissions = 0;
  size_t duplicates_dropped = 0;
  size_t refused = 0;
  size_t rtt_samples = 0;
  std::chrono::microseconds smoothed_rtt{0};
};

constexpr uint64_t kMessages = 10000;

// Ticks a virtual clock 1 ms at a time until every message is delivered and
// acknowledged (or 10 virtual minutes pass, which counts as a stall).
Outcome simulate(const Scenario& scenario) {
  constexpr size_t kPacketsPerTick = 8;
  constexpr size_t kHeaderBytes = 30;
  std::mt19937_64 rng(scenario.seed);
  LossyLink to_receiver(rng);
  LossyLink to_sender(rng);
  Outcome out;

  // Sender: one message per packet; the token is the message's sequence.
  RttEstimator rtt;
  SentPackets sent;
  SendWindow window(32 * 1024);
  std::vector<bool> acked(kMessages, false);
  std::deque<uint64_t> resend;
  std::vector<uint64_t> lost;
  uint64_t next_packet = 0;
  uint64_t next_new = 0;
  uint64_t oldest_unacked = 0;

  // Receiver.
  ReceivedPackets received;
  OrderedReceiver ordered(scenario.reorder_capacity);
  auto deliver = [&](std::vector<uint8_t>&& payload) {
    const uint64_t sequence = sequence_in(payload);
    out.payloads_intact = out.payloads_intact && payload == message_for(sequence);
    out.delivered.push_back(sequence);
  };

  auto transmit = [&](uint64_t sequence, Clock::time_point now) {
    Datagram d{
        .packet_number = next_packet++, .sequence = sequence, .payload = message_for(sequence)};
    sent.on_sent(d.packet_number, d.payload.size() + kHeaderBytes, now, true, sequence);
    to_receiver.send(d, now);
  };

  const Clock::time_point t0{};
  Clock::time_point now = t0;
  Datagram d;
  while ((out.acked < kMessages || out.delivered.size() < kMessages) && now < t0 + 600s) {
    now += 1ms;

    bool ack_due = false;
    while (to_receiver.pop_due(now, d)) {
      const Arrival arrival = ordered.on_message(d.sequence, std::move(d.payload), deliver);
      if (arrival == Arrival::kBeyondWindow) {
        ++out.refused;
        continue;  // left unacknowledged: the sender resends it
      }
      if (arrival == Arrival::kDuplicate) ++out.duplicates_dropped;
      received.record(d.packet_number);
      ack_due = true;
    }
    if (ack_due) {
      std::array<AckRange, kDefaultMaxAckRanges> ranges{};
      const size_t n = received.write_ranges(ranges);
      to_sender.send(Datagram{.is_ack = true, .ranges = {ranges.begin(), ranges.begin() + n}}, now);
    }

    while (to_sender.pop_due(now, d)) {
      const AckResult result = sent.on_ack(d.ranges, now);
      if (result.rtt_sample) {
        rtt.on_sample(*result.rtt_sample);
        ++out.rtt_samples;
      }
      for (uint64_t sequence : result.acked_tokens) {
        if (acked[sequence]) continue;  // an earlier copy was acknowledged already
        acked[sequence] = true;
        ++out.acked;
        window.on_acked(message_for(sequence).size());
        while (oldest_unacked < kMessages && acked[oldest_unacked]) ++oldest_unacked;
      }
    }

    const std::chrono::milliseconds rto = rtt.rto();
    const auto deadline = sent.loss_deadline(rto);
    lost.clear();
    sent.detect_lost(now, rto, lost);
    if (deadline && *deadline <= now) rtt.on_timeout();  // the timer fired (RFC 6298 §5.5)
    for (uint64_t sequence : lost) {
      if (!acked[sequence]) resend.push_back(sequence);
    }

    for (size_t budget = kPacketsPerTick; budget > 0;) {
      if (!resend.empty()) {
        const uint64_t sequence = resend.front();
        resend.pop_front();
        if (acked[sequence]) continue;
        transmit(sequence, now);
        ++out.retransmissions;
        --budget;
      } else if (next_new < kMessages && next_new < oldest_unacked + scenario.sequence_span &&
                 window.can_send(message_for(next_new).size())) {
        window.on_sent(message_for(next_new).size());
        transmit(next_new++, now);
        --budget;
      } else {
        break;
      }
    }
  }

  out.unacked_bytes_left = window.unacked_bytes();
  out.reorder_buffered_left = ordered.buffered();
  out.datagrams_lost = to_receiver.lost + to_sender.lost;
  out.datagrams_duplicated = to_receiver.duplicated + to_sender.duplicated;
  out.smoothed_rtt = rtt.smoothed_rtt();
  return out;
}

void expect_every_message_once_in_order(const Outcome& out) {
  ASSERT_EQ(out.delivered.size(), kMessages);
  for (uint64_t i = 0; i < kMessages; ++i) ASSERT_EQ(out.delivered[i], i) << "at position " << i;
  EXPECT_TRUE(out.payloads_intact);
  EXPECT_EQ(out.acked, kMessages);
  EXPECT_EQ(out.unacked_bytes_left, 0u);
  EXPECT_EQ(out.reorder_buffered_left, 0u);
  // The channel did misbehave, and the receiver did see its duplicates.
  EXPECT_GT(out.datagrams_lost, 1000u);
  EXPECT_GT(out.datagrams_duplicated, 500u);
  EXPECT_GT(out.duplicates_dropped, 0u);
  EXPECT_GT(out.rtt_samples, 100u);
}

TEST(ReliabilityChannel, TenThousandMessagesArriveOnceInOrderOverLossyChannel) {
  for (uint64_t seed : {20240611u, 1u, 99u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Outcome out = simulate(Scenario{.seed = seed});
    expect_every_message_once_in_order(out);
    // Within the receiver's span nothing is refused, and loss (about 1 in 10 datagrams
    // each way) costs about one retransmission per lost datagram, not a cascade.
    EXPECT_EQ(out.refused, 0u);
    EXPECT_GT(out.retransmissions, 1000u);
    EXPECT_LT(out.retransmissions, 2 * out.datagrams_lost);
    // The estimate tracks the path (15 ms each way, a few datagrams held back).
    EXPECT_GE(out.smoothed_rtt, 30ms);
    EXPECT_LE(out.smoothed_rtt, 40ms);
  }
}

TEST(ReliabilityChannel, SenderOverrunningReorderBufferStillDeliversOnceInOrder) {
  const Outcome out = simulate(Scenario{.reorder_capacity = 128, .sequence_span = kMessages});
  expect_every_message_once_in_order(out);
  EXPECT_GT(out.refused, 100u);  // refused messages were resent until they fitted
}

}  // namespace
}  // namespace prism::net::reliability
