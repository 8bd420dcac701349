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

Reassembler::Reassembler(ReassemblyLimits limits) : limits_(limits) {
  partials_.reserve(limits_.max_messages);
  completed_.reserve(completed_limit());
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
    if (p.have_last && p.last_size > size) {
      return make_error(describe(h) + ": " + std::to_string(size) +
                        " bytes, shorter than the last fragment's " + std::to_string(p.last_size));
    }
    least_total = size * rest + (p.have_last ? p.last_size : 1);
  } else {
    if (size == 0) return make_error(describe(h) + ": the last fragment is empty");
    if (p.fragment_size != 0 && size > p.fragment_size) {
      return make_error(describe(h) + ": last fragment has " + std::to_string(size) +
                        " bytes, more than the others' " + std::to_string(p.fragment_size));
    }
    // Until another fragment arrives, the others are at least as long as this one.
    least_total = p.fragment_size != 0 ? p.fragment_size * rest + size : size * h.count;
  }
  if (least_total > limits_.max_message_size) {
    return make_error(describe(h) + ": message would be at least " + std::to_string(least_total) +
                      " bytes, over the message size limit of " +
                      std::to_string(limits_.max_message_size));
  }
  return {};
}

Expected<void> Reassembler::reserve(Partial& p, size_t bytes, bool new_message) {
  if (bytes <= p.reserved) return {};
  const size_t more = bytes - p.reserved;
  if (buffered_bytes_ + more > limits_.max_total_bytes) {
    return make_error("message " + std::to_string(p.message_id) + ": " +
                      (new_message ? "refused, " : "fragment refused, ") + std::to_string(more) +
                      " more bytes would exceed the reassembly limit of " +
                      std::to_string(limits_.max_total_bytes) + " (" +
                      std::to_string(buffered_bytes_) + " buffered)");
  }
  buffered_bytes_ += more;
  p.reserved = bytes;
  return {};
}

Expected<std::optional<std::vector<uint8_t>>> Reassembler::add(const FragmentHeader& h,
                                                               std::span<const uint8_t> data,
                                                               Clock::time_point now) {
  if (h.count == 0) return make_error(describe(h) + ": fragment count is 0");
  if (h.index >= h.count) return make_error(describe(h) + ": index is not below the count");
  if (recently_completed(h.message_id, now)) return std::optional<std::vector<uint8_t>>{};

  auto found = std::find_if(partials_.begin(), partials_.end(),
                            [&](const Partial& p) { return p.message_id == h.message_id; });
  if (found != partials_.end()) {
    if (found->count != h.count) {
      return make_error(describe(h) + ": count changed, earlier fragments said " +
                        std::to_string(found->count));
    }
    if (found->have[h.index]) return std::optional<std::vector<uint8_t>>{};  // duplicate
  }

  Partial fresh{.message_id = h.message_id, .count = h.count, .started = now};
  Partial& p = found != partials_.end() ? *found : fresh;
  if (auto shape = check_shape(p, h, data.size()); !shape) return make_error(shape.error());

  if (h.count == 1) {  // nothing to buffer
    remember_completed(h.message_id, now);
    return std::optional<std::vector<uint8_t>>{std::vector<uint8_t>(data.begin(), data.end())};
  }
  if (found == partials_.end() && partials_.size() >= limits_.max_messages) {
    return make_error(describe(h) + ": refused, " + std::to_string(partials_.size()) +
                      " incomplete messages already buffered (limit " +
                      std::to_string(limits_.max_messages) + ")");
  }

  const bool is_last = h.index + 1 == h.count;
  const size_t rest = size_t{h.count} - 1;
  const size_t fragment_size = is_last ? p.fragment_size : data.size();
  // What the message will occupy: exact once both sizes are known, otherwise the
  // fragments seen so far bound it.
  size_t need = data.size();
  if (fragment_size != 0) {
    size_t last = fragment_size;  // until the last fragment is seen, at most this
    if (is_last) last = data.size();
    if (p.have_last) last = p.last_size;
    need = fragment_size * rest + last;
  }
  if (auto room = reserve(p, need, found == partials_.end()); !room) {
    return make_error(room.error());
  }

  if (found == partials_.end()) {
    p.have.assign(h.count, false);
    partials_.push_back(std::move(fresh));
    found = partials_.end() - 1;
  }
  Partial& m = *found;
  if (!is_last && m.fragment_size == 0) {  // now every fragment's place is known
    m.fragment_size = data.size();
    m.bytes.reserve(m.reserved);
    m.bytes.resize(m.fragment_size * rest);
    if (m.have_last) {
      m.bytes.insert(m.bytes.end(), m.early_last.begin(), m.early_last.end());
      std::vector<uint8_t>().swap(m.early_last);
    }
  }
  if (is_last) {
    m.have_last = true;
    m.last_size = data.size();
    std::vector<uint8_t>& into = m.fragment_size == 0 ? m.early_last : m.bytes;
    into.insert(into.end(), data.begin(), data.end());
  } else {
    std::copy(data.begin(), data.end(),
              m.bytes.begin() + static_cast<std::ptrdiff_t>(h.index * m.fragment_size));
  }
  m.have[h.index] = true;
  if (++m.received < m.count) return std::optional<std::vector<uint8_t>>{};

  std::vector<uint8_t> message = std::move(m.bytes);
  remember_completed(h.message_id, now);
  drop(static_cast<size_t>(found - partials_.begin()));
  return std::optional<std::vector<uint8_t>>{std::move(message)};
}

void Reassembler::expire(Clock::time_point now) {
  for (size_t i = partials_.size(); i-- > 0;) {
    if (now - partials_[i].started >= limits_.timeout) drop(i);
  }
}

void Reassembler::drop(size_t index) {
  buffered_bytes_ -= partials_[index].reserved;
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
