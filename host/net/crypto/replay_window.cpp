// The replay window's sliding bitmap (DESIGN.md §3, ≥ 1024 packets; Prism keeps 2048).
#include "net/crypto/replay_window.hpp"

namespace prism::net::crypto {

static_assert(ReplayWindow::kSize % 64 == 0, "the window is a whole number of words");

bool ReplayWindow::test(uint64_t pn) const {
  const uint64_t word = words_[(pn / kWordBits) % kWords];
  return (word >> (pn % kWordBits)) & 1u;
}

ReplayWindow::Verdict ReplayWindow::check(uint64_t pn) const {
  if (!any_ || pn > largest_) return Verdict::kNew;
  if (largest_ - pn >= kSize) return Verdict::kTooOld;
  return test(pn) ? Verdict::kDuplicate : Verdict::kNew;
}

void ReplayWindow::accept(uint64_t pn) {
  if (!any_) {
    any_ = true;
    largest_ = pn;
  } else if (pn > largest_) {
    // Clear every word the window slides over; a jump past the whole ring clears it all.
    const uint64_t old_word = largest_ / kWordBits;
    const uint64_t new_word = pn / kWordBits;
    const uint64_t advance = new_word - old_word;
    const uint64_t to_clear = advance < kWords ? advance : kWords;
    for (uint64_t i = 1; i <= to_clear; ++i) words_[(old_word + i) % kWords] = 0;
    largest_ = pn;
  } else if (largest_ - pn >= kSize) {
    return;
  }
  words_[(pn / kWordBits) % kWords] |= uint64_t{1} << (pn % kWordBits);
}

}  // namespace prism::net::crypto
