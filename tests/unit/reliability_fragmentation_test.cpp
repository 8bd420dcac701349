// Fragmentation of messages larger than one datagram: splitting without copies, and
// reassembly that tolerates any order and duplicates but holds to its memory limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <vector>

#include "net/reliability/fragmentation.hpp"

namespace prism::net::reliability {
namespace {

using namespace std::chrono_literals;
using Clock = Reassembler::Clock;

std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(seed + i * 7);
  return out;
}

std::vector<uint8_t> bytes(size_t size) { return std::vector<uint8_t>(size, 0xab); }

// A session's default receive budget (docs/protocol.md §5.6).
constexpr size_t kSessionBudget = 4 << 20;

TEST(ReliabilityFragments, FragmentsReassembleInAnyOrder) {
  const std::vector<uint8_t> payload = pattern(2500, 1);
  const Fragmenter fragmenter(1000);
  std::array<Fragment, 3> fragments{};
  auto n = fragmenter.split(9, payload, fragments);
  ASSERT_TRUE(n.ok()) << n.error();
  ASSERT_EQ(*n, 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fragments[i].header.message_id, 9u);
    EXPECT_EQ(fragments[i].header.index, i);
    EXPECT_EQ(fragments[i].header.count, 3u);
    EXPECT_EQ(fragments[i].data.data(), payload.data() + i * 1000);  // a view, not a copy
  }
  EXPECT_EQ(fragments[2].data.size(), 500u);
  std::array<Fragment, 2> too_few{};
  EXPECT_FALSE(fragmenter.split(9, payload, too_few).ok());

  std::array<size_t, 3> order{0, 1, 2};
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  do {
    for (size_t k = 0; k < 3; ++k) {
      const Fragment& f = fragments[order[k]];
      auto got = reassembler.add(f.header, f.data, t0);
      ASSERT_TRUE(got.ok()) << got.error();
      if (k < 2) {
        EXPECT_FALSE(got->has_value());
        EXPECT_GT(reassembler.buffered_bytes(), 0u);
      } else {
        ASSERT_TRUE(got->has_value());
        EXPECT_EQ(**got, payload);
      }
    }
    EXPECT_EQ(reassembler.buffered_bytes(), 0u);
    // A new id per permutation: a finished id is remembered as complete.
    for (Fragment& f : fragments) ++f.header.message_id;
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST(ReliabilityFragments, InterleavedMessagesReassembleExactly) {
  std::mt19937_64 rng(5);
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<Fragment> all;  // every fragment of 40 messages, some twice, shuffled
  for (uint32_t id = 0; id < 40; ++id) {
    payloads.push_back(pattern(rng() % 5000, static_cast<uint8_t>(id)));
  }
  for (uint32_t id = 0; id < 40; ++id) {
    const Fragmenter fragmenter(1 + rng() % 700);
    const uint16_t count = *fragmenter.fragment_count(payloads[id].size());
    for (uint16_t i = 0; i < count; ++i) {
      all.push_back(fragmenter.fragment(id, payloads[id], i));
      if (rng() % 4 == 0) all.push_back(all.back());
    }
  }
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<int> completions(40, 0);
  for (const Fragment& f : all) {
    auto got = reassembler.add(f.header, f.data, t0);
    ASSERT_TRUE(got.ok()) << got.error();
    if (got->has_value()) {
      ++completions[f.header.message_id];
      EXPECT_EQ(**got, payloads[f.header.message_id]) << "message " << f.header.message_id;
    }
  }
  EXPECT_EQ(completions, std::vector<int>(40, 1));
  EXPECT_EQ(reassembler.buffered_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ReliabilityFragments, DuplicateFragmentIsIgnored) {
  const std::vector<uint8_t> payload = pattern(250, 3);
  const Fragmenter fragmenter(100);
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  const Fragment f0 = fragmenter.fragment(5, payload, 0);
  const Fragment f1 = fragmenter.fragment(5, payload, 1);
  const Fragment f2 = fragmenter.fragment(5, payload, 2);

  ASSERT_TRUE(reassembler.add(f0.header, f0.data, t0).ok());
  const size_t buffered = reassembler.buffered_bytes();
  auto dup = reassembler.add(f0.header, f0.data, t0);
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(dup->has_value());
  EXPECT_EQ(reassembler.buffered_bytes(), buffered);

  ASSERT_TRUE(reassembler.add(f2.header, f2.data, t0).ok());
  auto done = reassembler.add(f1.header, f1.data, t0);
  ASSERT_TRUE(done.ok() && done->has_value());
  EXPECT_EQ(**done, payload);

  // A late copy after completion neither redelivers nor opens a new message.
  auto late = reassembler.add(f1.header, f1.data, t0 + 10ms);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->has_value());
  EXPECT_EQ(reassembler.incomplete_messages(), 0u);
  EXPECT_EQ(reassembler.buffered_bytes(), 0u);
}

TEST(ReliabilityFragments, InconsistentFragmentCountIsRejected) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  auto zero = reassembler.add({1, 0, 0}, bytes(10), t0);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().find("count is 0"), std::string::npos) << zero.error();
  auto past = reassembler.add({1, 3, 3}, bytes(10), t0);
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.error().find("index is not below the count"), std::string::npos);

  ASSERT_TRUE(reassembler.add({7, 0, 3}, bytes(100), t0).ok());
  auto changed = reassembler.add({7, 1, 4}, bytes(100), t0);
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.error().find("message 7: count changed, earlier fragments said 3"),
            std::string::npos)
      << changed.error();

  // The message is kept: consistent fragments still complete it.
  ASSERT_TRUE(reassembler.add({7, 1, 3}, bytes(100), t0).ok());
  auto done = reassembler.add({7, 2, 3}, bytes(40), t0);
  ASSERT_TRUE(done.ok() && done->has_value());
  EXPECT_EQ((*done)->size(), 240u);
}

TEST(ReliabilityFragments, InconsistentFragmentSizeIsRejected) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  ASSERT_TRUE(reassembler.add({8, 0, 3}, bytes(100), t0).ok());
  auto shorter = reassembler.add({8, 1, 3}, bytes(90), t0);
  ASSERT_FALSE(shorter.ok());
  EXPECT_NE(shorter.error().find("earlier fragments had 100"), std::string::npos);
  auto long_last = reassembler.add({8, 2, 3}, bytes(101), t0);
  ASSERT_FALSE(long_last.ok());
  EXPECT_NE(long_last.error().find("more than the others' 100"), std::string::npos);
  EXPECT_FALSE(reassembler.add({8, 2, 3}, bytes(0), t0).ok());
  EXPECT_FALSE(reassembler.add({9, 0, 2}, bytes(0), t0).ok());

  ASSERT_TRUE(reassembler.add({10, 2, 3}, bytes(60), t0).ok());  // the last one first
  auto below_last = reassembler.add({10, 0, 3}, bytes(50), t0);
  ASSERT_FALSE(below_last.ok());
  EXPECT_NE(below_last.error().find("shorter than the last fragment's 60"), std::string::npos);
}

TEST(ReliabilityFragments, OversizedMessageIsRejected) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget, ReassemblyLimits{.max_message_size = 1000});
  auto big = reassembler.add({1, 0, 11}, bytes(100), t0);  // at least 1001 bytes
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().find("message would be at least 1001 bytes"), std::string::npos)
      << big.error();
  EXPECT_FALSE(reassembler.add({2, 4, 5}, bytes(300), t0).ok());  // last first: >= 1500
  EXPECT_FALSE(reassembler.add({3, 0, 1}, bytes(1001), t0).ok());
  EXPECT_EQ(reassembler.incomplete_messages(), 0u);
  EXPECT_EQ(reassembler.buffered_bytes(), 0u);

  ASSERT_TRUE(reassembler.add({4, 0, 10}, bytes(100), t0).ok());  // exactly 1000 fits
  auto single = reassembler.add({5, 0, 1}, bytes(1000), t0);
  ASSERT_TRUE(single.ok() && single->has_value());
}

TEST(ReliabilityFragments, ReassemblyMemoryIsBounded) {
  const Clock::time_point t0{};
  ReceiveBudget budget(3500);
  Reassembler reassembler(budget, ReassemblyLimits{.max_messages = 3});
  ASSERT_TRUE(reassembler.add({1, 0, 3}, bytes(1000), t0).ok());
  ASSERT_TRUE(reassembler.add({1, 2, 3}, bytes(1000), t0).ok());
  const size_t held = 2000 + 2 * Reassembler::kPieceOverhead + Reassembler::kMessageOverhead;
  EXPECT_EQ(reassembler.buffered_bytes(), held);
  EXPECT_EQ(budget.used(), held);
  auto refused = reassembler.add({2, 0, 2}, bytes(1400), t0);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("would exceed the receive budget"), std::string::npos)
      << refused.error();
  EXPECT_EQ(reassembler.incomplete_messages(), 1u);
  EXPECT_EQ(budget.used(), held);  // a refusal charges nothing

  // The message already buffered is kept and completes; its room is then free.
  auto done = reassembler.add({1, 1, 3}, bytes(1000), t0);
  ASSERT_TRUE(done.ok() && done->has_value());
  EXPECT_EQ((*done)->size(), 3000u);
  EXPECT_EQ(reassembler.buffered_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);

  for (uint32_t id = 10; id < 13; ++id) {
    ASSERT_TRUE(reassembler.add({id, 0, 2}, bytes(10), t0).ok());
  }
  auto too_many = reassembler.add({13, 0, 2}, bytes(10), t0);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().find("incomplete messages already buffered (limit 3)"),
            std::string::npos)
      << too_many.error();
  EXPECT_EQ(reassembler.incomplete_messages(), 3u);
  EXPECT_LE(reassembler.buffered_bytes(), 3500u);
}

// The review's fragment bomb: one 62-byte datagram (index 0 of 65535) made the receiver
// reserve and zero-fill fragment_size x 65534 bytes, a MiB per datagram.
TEST(ReliabilityFragments, FirstFragmentOfAHugeCountCostsOnlyWhatItCarries) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);
  for (uint32_t id = 0; id < 4; ++id) {
    ASSERT_TRUE(reassembler.add({id, 0, 65535}, bytes(16), t0).ok());
  }
  EXPECT_EQ(reassembler.incomplete_messages(), 4u);
  EXPECT_EQ(budget.used(),
            4 * (16 + Reassembler::kPieceOverhead + Reassembler::kMessageOverhead));
  // The last fragment alone, far away from the first: no gap is filled either.
  ASSERT_TRUE(reassembler.add({9, 65534, 65535}, bytes(1), t0).ok());
  EXPECT_LT(budget.used(), 1024u);
}

TEST(ReliabilityFragments, CountBeyondWhatTheMessageLimitAllowsIsRefused) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget, ReassemblyLimits{.max_message_size = 1000});
  // 100-byte fragments: ceil(1000 / 100) = 10 at most.
  auto eleven = reassembler.add({1, 3, 11}, bytes(100), t0);
  ASSERT_FALSE(eleven.ok());
  EXPECT_NE(eleven.error().find("over the message size limit of 1000"), std::string::npos)
      << eleven.error();
  EXPECT_TRUE(reassembler.add({2, 3, 10}, bytes(100), t0).ok());
  // 1-byte fragments: 1000 at most.
  EXPECT_FALSE(reassembler.add({3, 0, 1001}, bytes(1), t0).ok());
  EXPECT_TRUE(reassembler.add({4, 0, 1000}, bytes(1), t0).ok());
  EXPECT_EQ(budget.used(), 101 + 2 * (Reassembler::kPieceOverhead + Reassembler::kMessageOverhead));
}

TEST(ReliabilityFragments, SessionsShareTheWorkersBudget) {
  const Clock::time_point t0{};
  ReceiveBudget worker(5000);
  ReceiveBudget session_b(kSessionBudget, &worker);
  Reassembler b(session_b);
  {
    ReceiveBudget session_a(kSessionBudget, &worker);
    Reassembler a(session_a);
    ASSERT_TRUE(a.add({1, 0, 5}, bytes(1000), t0).ok());
    ASSERT_TRUE(a.add({1, 1, 5}, bytes(1000), t0).ok());
    ASSERT_TRUE(a.add({1, 2, 5}, bytes(1000), t0).ok());
    ASSERT_TRUE(b.add({1, 0, 5}, bytes(1000), t0).ok());
    // Under its own session's limit, over the worker's: refused, and nothing charged.
    const size_t before = worker.used();
    auto refused = b.add({1, 1, 5}, bytes(1000), t0);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(worker.used(), before);
    EXPECT_EQ(session_b.used(),
              1000 + Reassembler::kPieceOverhead + Reassembler::kMessageOverhead);
  }
  // Session A ended with its message unfinished: the worker has its share back.
  EXPECT_EQ(worker.used(), session_b.used());
  ASSERT_TRUE(b.add({1, 1, 5}, bytes(1000), t0).ok());
  ASSERT_TRUE(b.add({1, 2, 5}, bytes(1000), t0).ok());
  EXPECT_EQ(worker.used(), session_b.used());
}

TEST(ReliabilityFragments, IncompleteMessageExpires) {
  const Clock::time_point t0{};
  ReceiveBudget budget(kSessionBudget);
  Reassembler reassembler(budget);  // timeout 10 s
  EXPECT_FALSE(reassembler.next_expiry().has_value());
  ASSERT_TRUE(reassembler.add({3, 0, 2}, bytes(100), t0).ok());
  ASSERT_TRUE(reassembler.add({4, 0, 2}, bytes(100), t0 + 2s).ok());
  ASSERT_TRUE(reassembler.next_expiry().has_value());
  EXPECT_EQ(*reassembler.next_expiry(), t0 + 10s);
  reassembler.expire(t0 + 9999ms);
  EXPECT_EQ(reassembler.incomplete_messages(), 2u);
  reassembler.expire(t0 + 10s);
  EXPECT_EQ(reassembler.incomplete_messages(), 1u);
  EXPECT_EQ(*reassembler.next_expiry(), t0 + 12s);
  reassembler.expire(t0 + 12s);
  EXPECT_EQ(reassembler.incomplete_messages(), 0u);
  EXPECT_EQ(reassembler.buffered_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);

  // Its other half, arriving now, starts over rather than completing stale state.
  auto got = reassembler.add({3, 1, 2}, bytes(50), t0 + 10s);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(reassembler.incomplete_messages(), 1u);
}

}  // namespace
}  // namespace prism::net::reliability
