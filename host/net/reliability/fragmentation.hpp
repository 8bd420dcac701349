// Messages larger than one datagram: splitting a payload into numbered fragments, and
// reassembling them on the other side within fixed memory and time limits.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/expected.hpp"
#include "net/reliability/receive_budget.hpp"

namespace prism::net::reliability {

struct FragmentHeader {
  uint32_t message_id;
  uint16_t index;  // 0-based
  uint16_t count;  // fragments in the message, 1..65535
};

struct Fragment {
  FragmentHeader header;
  // A view into the payload given to the Fragmenter: owned by the caller, valid while
  // that payload is.
  std::span<const uint8_t> data;
};

// Every fragment but the last carries exactly max_fragment_payload bytes; the last one
// carries the rest (at least one byte, or none for an empty message sent as one
// fragment). The Reassembler relies on that shape to place fragments.
class Fragmenter {
 public:
  explicit Fragmenter(size_t max_fragment_payload);

  // How many fragments a payload of `size` bytes needs; an error when that exceeds the
  // 16-bit count (or max_fragment_payload is 0).
  Expected<uint16_t> fragment_count(size_t size) const;

  // Writes the fragments of `payload` into `out` (which needs fragment_count() slots)
  // and returns how many were written. No bytes are copied.
  Expected<size_t> split(uint32_t message_id, std::span<const uint8_t> payload,
                         std::span<Fragment> out) const;

  // Fragment `index` alone, e.g. to resend it; index must be below fragment_count().
  Fragment fragment(uint32_t message_id, std::span<const uint8_t> payload, uint16_t index) const;

  size_t max_fragment_payload() const { return max_fragment_payload_; }

 private:
  size_t max_fragment_payload_;
};

struct ReassemblyLimits {
  size_t max_message_size = 1 << 20;         // bytes of one reassembled message
  size_t max_messages = 64;                  // incomplete messages at once
  std::chrono::milliseconds timeout{10000};  // from first fragment to completion (§5.7)
};

// One per session and direction. Memory is charged to a ReceiveBudget by what has
// arrived (each fragment's bytes, plus kPieceOverhead and, per message, kMessageOverhead),
// never by what a header announces: a first fragment claiming 65535 siblings costs what
// it carries. Not thread-safe.
class Reassembler {
 public:
  using Clock = std::chrono::steady_clock;
  // Bookkeeping charged beside the bytes: one record per fragment held, one per message.
  static constexpr size_t kPieceOverhead = 16;
  static constexpr size_t kMessageOverhead = 128;

  // `budget` outlives the Reassembler; what it holds is charged there.
  explicit Reassembler(ReceiveBudget& budget, ReassemblyLimits limits = {});
  ~Reassembler();
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  // The complete message when this fragment was the last one missing; nullopt while
  // fragments are missing and for a duplicate (also one arriving after its message
  // completed, within `timeout`). Errors name the message and the rule broken; a
  // refused fragment changes nothing, and messages already buffered are kept.
  Expected<std::optional<std::vector<uint8_t>>> add(const FragmentHeader& header,
                                                    std::span<const uint8_t> data,
                                                    Clock::time_point now);

  // Drops incomplete messages whose first fragment arrived `timeout` or more ago. The
  // owner calls it from a timer set for next_expiry(): expiry must not wait for another
  // fragment to arrive, or an abandoned message would be held for as long as the peer likes.
  void expire(Clock::time_point now);
  // When the oldest incomplete message expires; nullopt when none is held.
  std::optional<Clock::time_point> next_expiry() const;

  // Bytes charged to the budget for incomplete messages (at most max_messages of them).
  size_t buffered_bytes() const;
  size_t incomplete_messages() const { return partials_.size(); }

 private:
  // One fragment held: where its bytes sit in Partial::bytes.
  struct Piece {
    uint16_t index;
    uint32_t offset;
    uint32_t size;
  };
  struct Partial {
    uint32_t message_id = 0;
    uint16_t count = 0;
    size_t fragment_size = 0;  // size of every fragment but the last; 0 until one arrives
    size_t last_size = 0;      // 0 until the last fragment arrives
    Clock::time_point started{};
    std::vector<uint8_t> bytes{};   // fragments in the order they arrived
    std::vector<Piece> pieces{};    // sorted by index
    size_t charged = 0;             // taken from the budget for this message
  };
  struct Completed {
    uint32_t message_id;
    Clock::time_point at;
  };

  Expected<void> check_shape(const Partial& p, const FragmentHeader& h, size_t size) const;
  static std::vector<uint8_t> assemble(Partial& p);
  bool recently_completed(uint32_t message_id, Clock::time_point now) const;
  void remember_completed(uint32_t message_id, Clock::time_point now);
  void drop(size_t index);
  size_t completed_limit() const { return std::max<size_t>(limits_.max_messages, 1); }

  ReceiveBudget& budget_;
  ReassemblyLimits limits_;
  std::vector<Partial> partials_;     // few (max_messages); allocated when the first arrives
  std::vector<Completed> completed_;  // ring of max_messages, next slot at completed_next_
  size_t completed_next_ = 0;
};

}  // namespace prism::net::reliability
