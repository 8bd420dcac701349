// The replay window (host/net/crypto/replay_window.hpp, DESIGN.md §3): duplicates are caught
// across the whole 2048-packet window, older packets are refused, and the window slides.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>

#include "net/crypto/replay_window.hpp"

namespace prism::net::crypto {
namespace {

using Verdict = ReplayWindow::Verdict;
constexpr uint64_t kSize = ReplayWindow::kSize;

TEST(ReplayWindow, FirstPacketIsNew) {
  ReplayWindow window;
  EXPECT_EQ(window.check(0), Verdict::kNew);
  EXPECT_EQ(window.check(123456), Verdict::kNew);
  window.accept(0);
  EXPECT_EQ(window.check(0), Verdict::kDuplicate);
  EXPECT_EQ(window.largest(), 0u);
}

TEST(ReplayWindow, ReplayedPacketIsDuplicate) {
  ReplayWindow window;
  for (uint64_t pn = 1; pn <= 10; ++pn) window.accept(pn);
  for (uint64_t pn = 1; pn <= 10; ++pn) EXPECT_EQ(window.check(pn), Verdict::kDuplicate) << pn;
  EXPECT_EQ(window.check(11), Verdict::kNew);
  EXPECT_EQ(window.largest(), 10u);
}

TEST(ReplayWindow, PacketOlderThanWindowIsTooOld) {
  ReplayWindow window;
  window.accept(5000);
  EXPECT_EQ(window.check(5000 - kSize + 1), Verdict::kNew);  // oldest tracked number
  EXPECT_EQ(window.check(5000 - kSize), Verdict::kTooOld);
  EXPECT_EQ(window.check(0), Verdict::kTooOld);
  window.accept(5000 - kSize);  // ignored: cannot be tracked
  EXPECT_EQ(window.check(5000 - kSize), Verdict::kTooOld);
  EXPECT_EQ(window.largest(), 5000u);
}

TEST(ReplayWindow, OutOfOrderWithinWindowIsNew) {
  ReplayWindow window;
  window.accept(10);
  window.accept(12);
  EXPECT_EQ(window.check(11), Verdict::kNew);
  window.accept(11);
  EXPECT_EQ(window.check(11), Verdict::kDuplicate);
  EXPECT_EQ(window.largest(), 12u);  // an older packet does not move the window

  window.accept(3000);
  EXPECT_EQ(window.check(3000 - kSize + 1), Verdict::kNew);
  window.accept(3000 - kSize + 1);
  EXPECT_EQ(window.check(3000 - kSize + 1), Verdict::kDuplicate);
}

TEST(ReplayWindow, WindowSlidesOnLargeJump) {
  ReplayWindow window;
  for (uint64_t pn = 0; pn < kSize; ++pn) window.accept(pn);
  window.accept(4000);
  EXPECT_EQ(window.largest(), 4000u);
  // Numbers accepted before the jump that are still in the window stay duplicates; the
  // rest of the window reads as new, with no bits left over from older numbers.
  for (uint64_t pn = 4000 - kSize + 1; pn < kSize; ++pn) {
    ASSERT_EQ(window.check(pn), Verdict::kDuplicate) << pn;
  }
  for (uint64_t pn = kSize; pn < 4000; ++pn) {
    ASSERT_EQ(window.check(pn), Verdict::kNew) << pn;
  }
  EXPECT_EQ(window.check(4000), Verdict::kDuplicate);
  EXPECT_EQ(window.check(4000 - kSize), Verdict::kTooOld);

  window.accept(1'000'000'000);
  EXPECT_EQ(window.check(4000), Verdict::kTooOld);
  EXPECT_EQ(window.check(1'000'000'000 - 1), Verdict::kNew);
  EXPECT_EQ(window.check(1'000'000'000), Verdict::kDuplicate);
}

// Sliding by whole words must never forget a number still inside the window, whatever
// the position of the largest number within its word.
TEST(ReplayWindow, InOrderTrafficKeepsTheWholeWindow) {
  ReplayWindow window;
  for (uint64_t pn = 0; pn < 10 * kSize; ++pn) {
    window.accept(pn);
    const uint64_t oldest = pn >= kSize - 1 ? pn - (kSize - 1) : 0;
    ASSERT_EQ(window.check(oldest), Verdict::kDuplicate) << "largest " << pn;
    ASSERT_EQ(window.check(pn + 1), Verdict::kNew);
  }
}

TEST(ReplayWindow, MatchesReferenceModelOnRandomTraffic) {
  ReplayWindow window;
  std::set<uint64_t> accepted;
  uint64_t largest = 0;
  std::mt19937_64 rng(20240601);
  uint64_t base = 0;
  for (int step = 0; step < 200'000; ++step) {
    // Mostly near the front, with reordering, replays, stale and far-future numbers.
    const uint64_t roll = rng() % 100;
    uint64_t pn;
    if (roll < 60) {
      pn = base + rng() % 64;
    } else if (roll < 90) {
      pn = largest >= 2200 ? largest - rng() % 2200 : rng() % 2200;
    } else if (roll < 99) {
      pn = largest + rng() % 300;
    } else {
      pn = largest + 2000 + rng() % 5000;
    }
    base = largest;

    Verdict expected;
    if (accepted.empty() || pn > largest) {
      expected = Verdict::kNew;
    } else if (largest - pn >= kSize) {
      expected = Verdict::kTooOld;
    } else {
      expected = accepted.count(pn) ? Verdict::kDuplicate : Verdict::kNew;
    }
    ASSERT_EQ(window.check(pn), expected) << "step " << step << " pn " << pn;
    if (expected == Verdict::kNew && rng() % 10 != 0) {  // some packets fail to open
      window.accept(pn);
      accepted.insert(pn);
      if (pn > largest) largest = pn;
      while (!accepted.empty() && *accepted.begin() + kSize <= largest) {
        accepted.erase(accepted.begin());
      }
    }
    ASSERT_EQ(window.largest(), largest);
  }
}

}  // namespace
}  // namespace prism::net::crypto
