// Fragment placement relies on the Fragmenter's shape (equal fragments, a shorter last
// one), so one fragment of a message is enough to know where every byte goes.
#include "net/reliability/fragmentation.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace prism::net::reliability {
namespace {

constexpr size_t kMaxFragmentCount = std::numeric_limits<uint16_t>::max();

std::string describe(const FragmentHeader& h) {
  return "fragment " + std::to_string(h.index) + "/" + std::to_string(h.count) + " of message " +
         std::to_string(h.message_id);
}

}  // namespace

// ---------------------------------------------------------------- Fragmenter

Fragmenter::Fragmenter(size_t max_fragment_payload) : max_fragment_payload_(max_fragment_payload) {}

Expected<uint16_t> Fragmenter::fragment_count(size_t size) const {
  if (max_fragment_payload_ == 0) return make_error("fragmenter: max_fragment_payload is 0");
  const size_t count = size == 0 ? 1 : (size - 1) / max_fragment_payload_ + 1;
  if (count > kMaxFragmentCount) {
    return make_error("fragmenter: a " + std::to_string(size) + "-byte payload needs " +
                      std::to_string(count) + " fragments, more than " +
                      std::to_string(kMaxFragmentCount));
  }
  return static_cast<uint16_t>(count);
}

Fragment Fragmenter::fragment(uint32_t message_id, std::span<const uint8_t> payload,
                              uint16_t index) const {
  if (max_fragment_payload_ == 0) return Fragment{FragmentHeader{message_id, 0, 1}, {}};
  const size_t count = payload.empty() ? 1 : (payload.size() - 1) / max_fragment_payload_ + 1;
  const size_t offset = std::min(size_t{index} * max_fragment_payload_, payload.size());
  const size_t len = std::min(max_fragment_payload_, payload.size() - offset);
  return Fragment{FragmentHeader{message_id, index, static_cast<uint16_t>(count)},
                  payload.subspan(offset, len)};
}

Expected<size_t> Fragmenter::split(uint32_t message_id, std::span<const uint8_t> payload,
                                   std::span<Fragment> out) const {
  auto count = fragment_count(payload.size());
  if (!count) return make_error(count.error());
  if (out.size() < *count) {
    return make_error("fragmenter: message " + std::to_string(message_id) + " needs " +
                      std::to_string(*count) + " fragment slots, " + std::to_string(out.size()) +
                      " given");
  }
  for (uint16_t i = 0; i < *count; ++i) out[i] = fragment(message_id, payload, i);
  return size_t{*count};
}

// ---------------------------------------------------------------- Reassembler

Reassembler::Reassembler(ReceiveBudget& budget, ReassemblyLimits limits)
    : budget_(budget), limits_(limits) {}

Reassembler::~Reassembler() { budget_.release(buffered_bytes()); }

size_t Reassembler::buffered_bytes() const {
  size_t charged = 0;
  for (const Partial& p : partials_) charged += p.charged;
  return charged;
}

Expected<void> Reassembler::check_shape(const Partial& p, const FragmentHeader& h,
                                        size_t size) const {
  if (size > limits_.max_message_size) {
    return make_error(describe(h) + ": " + std::to_string(size) +
                      " bytes, over the message size limit of " +
                      std::to_string(limits_.max_message_size));
  }
  const size_t rest = size_t{h.count} - 1;
  size_t least_total = 0;  // the smallest size the message can have, given what is known
  if (h.index + 1 < h.count) {
    if (size == 0) return make_error(describe(h) + ": empty, but only the last may be short");
    if (p.fragment_size != 0 && size != p.fragment_size) {
      return make_error(describe(h) + ": " + std::to_string(size) +
                        " bytes, earlier fragments had " + std::to_string(p.fragment_size));
    }
    if (p.last_size > size) {
      return make_error(describe(h) + ": " + std::to_string(size) +
                        " bytes, shorter than the last fragment's " + std::to_string(p.last_size));
    }
    least_total = size * rest + (p.last_size != 0 ? p.last_size : 1);
  } else {
    if (size == 0) return make_error(describe(h) + ": the last fragment is empty");
    if (p.fragment_size != 0 && size > p.fragment_size) {
      return make_error(describe(h) + ": last fragment has " + std::to_string(size) +
                        " bytes, more than the others' " + std::to_string(p.fragment_size));
    }
    // Until another fragment arrives, the others are at least as long as this one.
    least_total = p.fragment_size != 0 ? p.fragment_size * rest + size : size * h.count;
  }
  // §5.7: with fragments of F bytes a message has at most ceil(max_message_size / F) of
  // them; a larger count announces a message the limit refuses anyway.
  if (least_total > limits_.max_message_size) {
    return make_error(describe(h) + ": message would be at least " + std::to_string(least_total) +
                      " bytes, over the message size limit of " +
                      std::to_string(limits_.max_message_size));
  }
  return {};
}

Expected<std::optional<std::vector<uint8_t>>> Reassembler::add(const FragmentHeader& h,
                                                               std::span<const uint8_t> data,
                                                               Clock::time_point now) {
  using Result = std::optional<std::vector<uint8_t>>;
  if (h.count == 0) return make_error(describe(h) + ": fragment count is 0");
  if (h.index >= h.count) return make_error(describe(h) + ": index is not below the count");
  if (recently_completed(h.message_id, now)) return Result{};

  auto found = std::find_if(partials_.begin(), partials_.end(),
                            [&](const Partial& p) { return p.message_id == h.message_id; });
  auto at_index = [&](const Partial& p) {
    return std::lower_bound(p.pieces.begin(), p.pieces.end(), h.index,
                            [](const Piece& piece, uint16_t index) { return piece.index < index; });
  };
  if (found != partials_.end()) {
    if (found->count != h.count) {
      return make_error(describe(h) + ": count changed, earlier fragments said " +
                        std::to_string(found->count));
    }
    const auto place = at_index(*found);
    if (place != found->pieces.end() && place->index == h.index) return Result{};  // duplicate
  }

  const Partial fresh{.message_id = h.message_id, .count = h.count, .started = now};
  if (auto shape = check_shape(found != partials_.end() ? *found : fresh, h, data.size());
      !shape) {
    return make_error(shape.error());
  }
  if (h.count == 1) {  // nothing to buffer
    remember_completed(h.message_id, now);
    return Result{std::vector<uint8_t>(data.begin(), data.end())};
  }
  if (found == partials_.end() && partials_.size() >= limits_.max_messages) {
    return make_error(describe(h) + ": refused, " + std::to_string(partials_.size()) +
                      " incomplete messages already buffered (limit " +
                      std::to_string(limits_.max_messages) + ")");
  }
  const size_t charge =
      data.size() + kPieceOverhead + (found == partials_.end() ? kMessageOverhead : 0);
  if (!budget_.take(charge)) {
    return make_error(describe(h) + ": refused, " + std::to_string(charge) +
                      " more bytes would exceed the receive budget (" +
                      std::to_string(budget_.used()) + " of " + std::to_string(budget_.limit()) +
                      " in use)");
  }
  if (found == partials_.end()) {
    partials_.push_back(fresh);
    found = partials_.end() - 1;
  }
  Partial& m = *found;
  m.charged += charge;
  if (h.index + 1 < h.count) {
    m.fragment_size = data.size();
  } else {
    m.last_size = data.size();
  }
  const Piece piece{.index = h.index,
                    .offset = static_cast<uint32_t>(m.bytes.size()),
                    .size = static_cast<uint32_t>(data.size())};
  m.bytes.insert(m.bytes.end(), data.begin(), data.end());
  m.pieces.insert(at_index(m), piece);
  if (m.pieces.size() < m.count) return Result{};

  std::vector<uint8_t> message = assemble(m);
  remember_completed(h.message_id, now);
  drop(static_cast<size_t>(found - partials_.begin()));
  return Result{std::move(message)};
}

std::vector<uint8_t> Reassembler::assemble(Partial& p) {
  // Fragments usually arrive in order, and then the bytes already are the message.
  size_t expected_offset = 0;
  bool in_order = true;
  for (const Piece& piece : p.pieces) {
    in_order = in_order && piece.offset == expected_offset;
    expected_offset += piece.size;
  }
  if (in_order) return std::move(p.bytes);
  std::vector<uint8_t> message(p.bytes.size());
  size_t at = 0;
  for (const Piece& piece : p.pieces) {
    std::copy_n(p.bytes.begin() + piece.offset, piece.size, message.begin() + static_cast<std::ptrdiff_t>(at));
    at += piece.size;
  }
  return message;
}

void Reassembler::expire(Clock::time_point now) {
  for (size_t i = partials_.size(); i-- > 0;) {
    if (now - partials_[i].started >= limits_.timeout) drop(i);
  }
}

std::optional<Reassembler::Clock::time_point> Reassembler::next_expiry() const {
  // Partials are kept in the order they started.
  if (partials_.empty()) return std::nullopt;
  return partials_.front().started + limits_.timeout;
}

void Reassembler::drop(size_t index) {
  budget_.release(partials_[index].charged);
  partials_.erase(partials_.begin() + static_cast<std::ptrdiff_t>(index));
}

bool Reassembler::recently_completed(uint32_t message_id, Clock::time_point now) const {
  return std::any_of(completed_.begin(), completed_.end(), [&](const Completed& c) {
    return c.message_id == message_id && now - c.at < limits_.timeout;
  });
}

void Reassembler::remember_completed(uint32_t message_id, Clock::time_point now) {
  // A late duplicate of a finished message would otherwise open a new partial message
  // that can only expire. The ring holds as many as the partial messages may number.
  if (completed_.size() < completed_limit()) {
    completed_.push_back(Completed{message_id, now});
    return;
  }
  completed_[completed_next_] = Completed{message_id, now};
  completed_next_ = (completed_next_ + 1) % completed_.size();
}

}  // namespace prism::net::reliability
