// The per-direction replay window (DESIGN.md §3): remembers which of the last kSize packet
// numbers were delivered, so duplicates are re-acknowledged but never re-delivered.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace prism::net::crypto {

// A sliding bitmap anchored at the largest accepted packet number: numbers in
// (largest - kSize, largest] are tracked exactly, anything older is refused. Fixed size,
// no allocation. Use it in this order for each packet:
//   1. check(pn): drop kDuplicate (re-ack it) and kTooOld without opening the packet;
//   2. open the packet (AEAD);
//   3. accept(pn) only if the open succeeded. Accepting before authentication would let
//      a forged packet number slide the window and make genuine packets look too old.
class ReplayWindow {
 public:
  static constexpr uint64_t kSize = 2048;
  enum class Verdict { kNew, kDuplicate, kTooOld };

  Verdict check(uint64_t pn) const;
  // Records `pn` as delivered; slides the window when pn is the new largest. A pn that
  // check() calls kTooOld is ignored.
  void accept(uint64_t pn);
  // The largest accepted packet number; 0 before any.
  uint64_t largest() const { return largest_; }

 private:
  // The bitmap is a ring of 64-bit words, one word longer than the window: when the window
  // slides into a new word that word is cleared whole, and the spare word guarantees the
  // cleared bits are all older than the window (RFC 6479 §2 does the same).
  static constexpr size_t kWordBits = 64;
  static constexpr size_t kWords = kSize / kWordBits + 1;

  bool test(uint64_t pn) const;

  std::array<uint64_t, kWords> words_{};
  uint64_t largest_ = 0;
  bool any_ = false;
};

}  // namespace prism::net::crypto
