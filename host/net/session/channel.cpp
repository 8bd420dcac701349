// The established-session state machine (docs/protocol.md §5.4-5.9).
#include "net/session/channel.hpp"

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

namespace prism::net::session {
namespace {

using google::protobuf::io::CodedOutputStream;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// protocol.md §5.5: ranges per ACK frame, so an ACK never crowds out data.
constexpr size_t kMaxAckRangesPerFrame = 16;
// Room for a Fragment's own fields around its data (§5.7): tags, delivery, sequence,
// index, count, lengths, and the Frame and Packet wrappers.
constexpr size_t kFragmentOverhead = 48;
// §5.7: an incomplete fragmented message is dropped this long after its first fragment.
constexpr milliseconds kFragmentTimeout{10000};
// Packet-level wrapping of one frame: the Packet.frames tag and a length of up to 3 bytes.
constexpr size_t kFrameWrap = 4;
// RFC 9002 §6.1.2: a packet overtaken by an acknowledged one is lost once it is 9/8 of
// an RTT old, and never sooner than the timer granularity.
constexpr int64_t kTimeThresholdNumerator = 9;
constexpr int64_t kTimeThresholdDenominator = 8;
constexpr microseconds kGranularity{1000};
// RFC 9002 §6.2.1's max_ack_delay. Prism's receiver has no delayed-ACK timer: it
// acknowledges in the loop turn that read the packet (protocol.md §5.5), and what a
// busy turn adds shows in the RTT samples and their variance. Measured through the
// impaired path (make bench): 1 ms here put unordered p99 at 7.0 ms, 0 at 4.1-5.1 ms.
constexpr microseconds kMaxAckDelay{0};
// Doubling the probe timeout more often than this cannot matter: the RTO, which has a
// cap, takes over long before.
constexpr uint32_t kMaxProbeShift = 16;

uint8_t mode_index(v1::Delivery delivery) {
  return delivery == v1::DELIVERY_RELIABLE_ORDERED ? 0 : 1;
}

v1::Delivery mode_delivery(uint8_t mode) {
  return mode == 0 ? v1::DELIVERY_RELIABLE_ORDERED : v1::DELIVERY_RELIABLE_UNORDERED;
}

size_t payload_room(size_t max_datagram) {
  return max_datagram - kHeaderSize - crypto::kPacketTagSize;
}

// Appends `frame` (a serialized prism.v1.Frame) to a Packet being built at out[at...]
// as field 1; false when it does not fit in `limit`.
bool append_frame(std::string_view frame, std::span<uint8_t> out, size_t& at, size_t limit) {
  const size_t need = 1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(frame.size())) +
                      frame.size();
  if (at + need > limit) return false;
  uint8_t* p = out.data() + at;
  *p++ = 0x0A;  // Packet.frames, wire type 2
  p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(frame.size()), p);
  std::memcpy(p, frame.data(), frame.size());
  at += need;
  return true;
}

// A Frame whose one field is `message` (Frame.message = 1, length-delimited), written
// straight from the message: no copy of it into a Frame first. `size` is
// message.ByteSizeLong(), whose cached sizes the write relies on.
std::string message_frame(const v1::Message& message, size_t size) {
  const auto length = static_cast<uint32_t>(size);
  std::string frame(1 + CodedOutputStream::VarintSize32(length) + size, '\0');
  auto* p = reinterpret_cast<uint8_t*>(frame.data());
  *p++ = 0x0A;  // Frame.message, wire type 2
  p = CodedOutputStream::WriteVarint32ToArray(length, p);
  message.SerializeWithCachedSizesToArray(p);
  return frame;
}

// The Packet a datagram parses into. One arena per thread, reset after each datagram:
// a packet's frames and messages come from one block instead of a malloc each (perf at
// 16x8: the parse was most of prismd's allocations per request). A datagram handled
// while another is still being handed up on the same thread (a client callback that
// waits for a reply) parses into an arena of its own.
class ParsedPacket {
 public:
  ParsedPacket() {
    Shared& shared = shared_arena();
    if (!shared.busy) {
      shared.busy = true;
      shared_ = &shared;
      arena_ = &shared.arena;
    } else {
      arena_ = &own_.emplace();
    }
    packet_ = google::protobuf::Arena::CreateMessage<v1::Packet>(arena_);
  }
  ~ParsedPacket() {
    if (shared_ != nullptr) {
      shared_->arena.Reset();  // keeps the initial block
      shared_->busy = false;
    }
  }
  ParsedPacket(const ParsedPacket&) = delete;
  ParsedPacket& operator=(const ParsedPacket&) = delete;
  v1::Packet& operator*() { return *packet_; }

 private:
  struct Shared {
    static constexpr size_t kInitialBlock = 16 * 1024;  // a full datagram's frames fit
    static google::protobuf::ArenaOptions options(char* block) {
      google::protobuf::ArenaOptions o;
      o.initial_block = block;
      o.initial_block_size = kInitialBlock;
      return o;
    }
    std::unique_ptr<char[]> block = std::make_unique<char[]>(kInitialBlock);
    google::protobuf::Arena arena{options(block.get())};
    bool busy = false;
  };
  static Shared& shared_arena() {
    thread_local Shared shared;
    return shared;
  }

  Shared* shared_ = nullptr;
  std::optional<google::protobuf::Arena> own_;
  google::protobuf::Arena* arena_ = nullptr;
  v1::Packet* packet_ = nullptr;
};

// A packet's token (SentPackets): where its units start in carried_, and how many.
constexpr unsigned kCarriedCountBits = 16;
uint64_t carried_token(uint64_t first, size_t count) {
  return first << kCarriedCountBits | static_cast<uint64_t>(count);
}
// The indices into carried_ a token names: [first, end).
std::pair<uint64_t, uint64_t> carried_range(uint64_t token) {
  const uint64_t first = token >> kCarriedCountBits;
  return {first, first + (token & ((uint64_t{1} << kCarriedCountBits) - 1))};
}

}  // namespace

Channel::Channel(Role role, const crypto::SessionKeys& keys, uint64_t connection_id,
                 ChannelConfig config, Clock::time_point now)
    : connection_id_(connection_id),
      config_(config),
      sent_(),
      rtt_(config.rto),
      window_(config.max_unacked_bytes),
      fragmenter_(payload_room(config.max_datagram) - kFragmentOverhead),
      receive_budget_(config.receive_budget, config.shared_receive_budget),
      reassembler_(receive_budget_,
                   reliability::ReassemblyLimits{.max_message_size = config.max_message_size,
                                                 .max_messages = 64,
                                                 .timeout = kFragmentTimeout}),
      ordered_in_(config.reorder_capacity),
      unordered_in_(config.reorder_capacity),
      last_received_(now),
      last_keepalive_(now),
      last_sealed_(now) {
  const bool client = role == Role::kClient;
  send_keys_.key = client ? keys.initiator_to_responder : keys.responder_to_initiator;
  recv_keys_.key = client ? keys.responder_to_initiator : keys.initiator_to_responder;
}

// ---- receiving ------------------------------------------------------------------------

Expected<size_t> Channel::open(const DatagramHeader& header, std::span<const uint8_t> datagram,
                               std::span<uint8_t> plaintext) {
  const auto head = datagram.first(kHeaderSize);
  const auto body = datagram.subspan(kHeaderSize);
  const uint64_t pn = header.packet_number;
  const uint8_t phase = header.type == DatagramType::kSealed1 ? 1 : 0;
  if (phase == recv_keys_.phase) {
    if (!opener_) opener_ = std::make_unique<crypto::PacketOpener>(recv_keys_.key);
    return opener_->open(pn, head, body, plaintext);
  }
  // §5.8: the other phase is the previous key for packets sent before the update we saw,
  // the next key otherwise. The switch happens only once a packet opened under it.
  if (pn < current_phase_first_pn_) {
    if (!previous_opener_) return make_error("open: old key");
    return previous_opener_->open(pn, head, body, plaintext);
  }
  const crypto::Key32 next = crypto::next_key(recv_keys_.key);
  if (!next_opener_) next_opener_ = std::make_unique<crypto::PacketOpener>(next);
  auto opened = next_opener_->open(pn, head, body, plaintext);
  if (opened) {
    if (!opener_) opener_ = std::make_unique<crypto::PacketOpener>(recv_keys_.key);  // for reordered packets
    previous_opener_ = std::move(opener_);
    opener_ = std::move(next_opener_);
    recv_keys_.key = next;
    recv_keys_.phase = phase;
    current_phase_first_pn_ = pn;
  }
  return opened;
}

Channel::Received Channel::on_datagram(const DatagramHeader& header,
                                       std::span<const uint8_t> datagram, Clock::time_point now,
                                       ChannelEvents& events) {
  Received result;
  ++stats_.datagrams_in;
  if (state_ == State::kClosed) {
    result.drop = DropReason::kUnknownSession;
    return result;
  }
  if (datagram.size() > config_.max_receive_datagram) {
    result.drop = DropReason::kOversized;
    return result;
  }
  const uint64_t pn = header.packet_number;
  const auto verdict = replay_.check(pn);
  if (verdict == crypto::ReplayWindow::Verdict::kTooOld) {
    ++stats_.replayed;
    result.drop = DropReason::kReplayed;
    return result;
  }
  // Authenticate before anything else, duplicates included: the header is cleartext,
  // so a forged packet number must not be able to draw even an ACK.
  // One plaintext buffer per thread, not per session: what it holds is parsed before
  // anything is handed up, so no session sees another's bytes.
  thread_local std::vector<uint8_t> plaintext;
  if (plaintext.size() < datagram.size()) plaintext.resize(datagram.size());
  auto opened = open(header, datagram, plaintext);
  if (!opened) {
    ++stats_.not_authentic;
    result.drop = DropReason::kNotAuthentic;
    return result;
  }
  if (verdict == crypto::ReplayWindow::Verdict::kDuplicate) {
    // §5.5: re-acknowledge (its ACK may have been lost), at most once per smoothed RTT
    // since the last ACK a duplicate drew, so replayed packets cannot make us send a
    // stream of ACKs however many of them arrive.
    const auto spacing = std::max<microseconds>(rtt_.smoothed_rtt(), milliseconds(5));
    if (now - largest_received_at_ > spacing && now - duplicate_acked_at_ > spacing) {
      ack_owed_ = true;
      duplicate_acked_at_ = now;
    }
    ++stats_.replayed;
    result.drop = DropReason::kReplayed;
    return result;
  }
  result.largest = replay_.largest() < pn || pn == 0;
  replay_.accept(pn);
  last_received_ = now;
  ParsedPacket packet;
  if (parse_payload(std::span(plaintext.data(), *opened), *packet) != DropReason::kNone) {
    ++stats_.malformed;
    result.drop = DropReason::kBadPayload;
    return result;
  }
  bool refuse = false;
  bool ack_eliciting = false;
  for (const v1::Frame& frame : (*packet).frames()) {
    if (!frame.has_ack() && !frame.has_close()) ack_eliciting = true;
    deliver_frame(frame, now, events, refuse);
    if (state_ == State::kClosed) return result;
  }
  if (refuse) {
    // §5.6: something in it could not be held; leaving it unacknowledged makes the peer
    // send its reliable frames again later, and duplicates of the rest are filtered.
    ++stats_.refused;
    return result;
  }
  received_.record(pn);
  if (ack_eliciting) {
    ack_owed_ = true;
    largest_received_at_ = now;
  }
  return result;
}

void Channel::deliver_frame(const v1::Frame& frame, Clock::time_point now, ChannelEvents& events,
                            bool& refuse) {
  switch (frame.kind_case()) {
    case v1::Frame::kMessage: {
      // The packet is ours to edit; a reliable message may be buffered (moved) below.
      auto& message = const_cast<v1::Message&>(frame.message());
      if (message.delivery() == v1::DELIVERY_UNRELIABLE) {
        events.on_message(message);
      } else {
        on_reliable(message, mode_index(message.delivery()), events, refuse);
      }
      break;
    }
    case v1::Frame::kFragment:
      on_fragment(frame.fragment(), now, events, refuse);
      break;
    case v1::Frame::kAck:
      on_ack(frame.ack(), now);
      break;
    case v1::Frame::kPing:
      frame_.Clear();
      frame_.mutable_pong()->set_nonce(frame.ping().nonce());
      enqueue_frame(frame_, control_);
      break;
    case v1::Frame::kPong:
      events.on_pong(frame.pong().nonce());
      break;
    case v1::Frame::kPathChallenge:
      frame_.Clear();
      frame_.mutable_path_response()->set_data(frame.path_challenge().data());
      enqueue_frame(frame_, control_);
      break;
    case v1::Frame::kPathResponse:
      events.on_path_response(frame.path_response().data());
      break;
    case v1::Frame::kClose:
      state_ = State::kClosed;
      events.on_closed(std::string(kPeerClosedReason) + frame.close().reason());
      break;
    case v1::Frame::KIND_NOT_SET:
      break;
  }
}

void Channel::on_reliable(v1::Message& message, uint8_t mode, ChannelEvents& events,
                          bool& refuse) {
  const uint64_t sequence = message.sequence();
  auto& receiver = mode == 0 ? ordered_in_ : unordered_in_;
  const auto arrival = receiver.classify(sequence);
  if (arrival == reliability::Arrival::kDuplicate) return;
  if (arrival == reliability::Arrival::kBeyondWindow) {
    refuse = true;
    return;
  }
  if (receiver.skip_if_next(sequence)) {  // in order with nothing waiting: the common case
    events.on_message(message);
    return;
  }
  if (mode == 1) {
    // Unordered: hand it up now; the receiver only remembers that it was seen.
    receiver.on_message(sequence, {}, [](std::vector<uint8_t>&&) {});
    events.on_message(message);
    return;
  }
  if (arrival == reliability::Arrival::kBuffered) {
    const size_t size = message.ByteSizeLong();
    // Messages waiting behind a gap are bounded in bytes too, not only in count: a peer
    // must not park a thousand maximum-size messages here. They share the receive
    // budget with unfinished fragments (§5.6).
    if (!receive_budget_.take(size)) {
      refuse = true;
      return;
    }
    std::vector<uint8_t> bytes(size);
    message.SerializeWithCachedSizesToArray(bytes.data());
    receiver.on_message(sequence, std::move(bytes), [](std::vector<uint8_t>&&) {});
    return;
  }
  // The next in order: deliver it without buffering, then whatever waited behind it.
  bool first = true;
  receiver.on_message(sequence, {}, [&](std::vector<uint8_t>&& bytes) {
    if (first) {
      first = false;
      events.on_message(message);
      return;
    }
    receive_budget_.release(bytes.size());
    scratch_message_.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    events.on_message(scratch_message_);
  });
}

void Channel::on_fragment(const v1::Fragment& fragment, Clock::time_point now,
                          ChannelEvents& events, bool& refuse) {
  const uint8_t mode = mode_index(fragment.delivery());
  auto& receiver = mode == 0 ? ordered_in_ : unordered_in_;
  const auto arrival = receiver.classify(fragment.sequence());
  if (arrival == reliability::Arrival::kDuplicate) return;
  if (arrival == reliability::Arrival::kBeyondWindow) {
    refuse = true;
    return;
  }
  // Reassembly ids: the low 31 bits of the sequence and the mode; live sequences of one
  // mode span at most reorder_capacity, so ids never collide.
  const uint32_t id = static_cast<uint32_t>(fragment.sequence() & 0x7FFFFFFF) |
                      (static_cast<uint32_t>(mode) << 31);
  const reliability::FragmentHeader header{.message_id = id,
                                           .index = static_cast<uint16_t>(fragment.index()),
                                           .count = static_cast<uint16_t>(fragment.count())};
  const auto& data = fragment.data();
  reassembler_.expire(now);
  auto added = reassembler_.add(
      header, std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()), now);
  if (!added) {
    refuse = true;
    return;
  }
  if (!added->has_value()) return;
  const std::vector<uint8_t>& bytes = **added;
  v1::Message message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      message.request_id() == 0) {
    // Authentic but unusable: the stream could never move past it.
    ++stats_.malformed;
    finish("protocol violation: a reassembled message does not parse", &events);
    return;
  }
  message.set_delivery(mode_delivery(mode));
  message.set_sequence(fragment.sequence());
  on_reliable(message, mode, events, refuse);
}

void Channel::on_ack(const v1::Ack& ack, Clock::time_point now) {
  std::array<reliability::AckRange, 64> ranges;
  const size_t n = std::min<size_t>(ranges.size(), static_cast<size_t>(ack.ranges_size()) / 2);
  for (size_t i = 0; i < n; ++i) {
    ranges[i] = {ack.ranges(static_cast<int>(2 * i)), ack.ranges(static_cast<int>(2 * i + 1))};
  }
  const auto result = sent_.on_ack(std::span(ranges.data(), n), now);
  if (result.rtt_sample) {
    // RFC 9002 §5.3: the peer's own delay is not path delay, unless it exceeds the sample.
    const microseconds delay(ack.delay_us());
    latest_rtt_ = *result.rtt_sample > delay ? *result.rtt_sample - delay : *result.rtt_sample;
    rtt_.on_sample(latest_rtt_);
    const microseconds base = std::max(rtt_.smoothed_rtt(), latest_rtt_);
    sent_.set_loss_delay(
        std::max(base * kTimeThresholdNumerator / kTimeThresholdDenominator, kGranularity));
  }
  // §6.2.1: an ACK of anything ack-eliciting resets the probe backoff.
  if (result.bytes_acked > 0) pto_count_ = 0;
  for (const uint64_t token : result.acked_tokens) {
    take_carried(token, [this](uint64_t unit) { unit_acked(unit); });
  }
  requeue_lost(now);
}

template <typename Each>
void Channel::take_carried(uint64_t token, Each&& each) {
  const auto [first, end] = carried_range(token);
  for (uint64_t i = std::max(first, carried_base_); i < end; ++i) {
    uint64_t& unit = carried_[i - carried_base_];
    if (unit == kTaken) continue;
    each(unit);
    unit = kTaken;
  }
  while (!carried_.empty() && carried_.front() == kTaken) {
    carried_.pop_front();
    ++carried_base_;
  }
}

std::optional<Clock::time_point> Channel::probe_deadline() const {
  const auto newest = sent_.newest_in_flight();
  if (!newest) return std::nullopt;
  // §6.2.1: PTO = smoothed_rtt + max(4 * rttvar, granularity) + max_ack_delay, doubled per
  // probe since the last ACK; before any sample, the initial RTO.
  microseconds timeout = rtt_.has_sample()
                             ? rtt_.smoothed_rtt() +
                                   std::max<microseconds>(4 * rtt_.rtt_variation(), kGranularity) +
                                   kMaxAckDelay
                             : microseconds(config_.rto.initial);
  timeout *= int64_t{1} << std::min(pto_count_, kMaxProbeShift);
  return *newest + timeout;
}

void Channel::send_probe() {
  ++pto_count_;
  ++stats_.probes;
  bool resent = false;
  if (const auto token = sent_.oldest_in_flight_token()) {
    const auto [first, end] = carried_range(*token);
    for (uint64_t i = std::max(first, carried_base_); i < end; ++i) {
      const uint64_t unit = carried_[i - carried_base_];
      if (unit == kTaken || find_unit(unit) == nullptr) continue;
      resend_.push_back(unit);
      resent = true;
    }
  }
  // Nothing to resend (a PING or control frames were lost): any ack-eliciting packet
  // draws the ACK that lets the time threshold judge what is missing.
  if (!resent) send_ping(next_packet_number_);
}

Channel::Unit* Channel::find_unit(uint64_t unit_id) {
  if (unit_id < units_base_ || unit_id - units_base_ >= units_.size()) return nullptr;
  Unit& unit = units_[unit_id - units_base_];
  return unit.live ? &unit : nullptr;
}

void Channel::requeue_lost(Clock::time_point now) {
  lost_.clear();
  sent_.detect_lost(now, rtt_.rto(), lost_);
  for (const uint64_t token : lost_) {
    take_carried(token, [this](uint64_t unit) {
      if (find_unit(unit) != nullptr) resend_.push_back(unit);
    });
  }
}

void Channel::unit_acked(uint64_t unit_id) {
  Unit* found = find_unit(unit_id);
  if (found == nullptr) return;  // acknowledged already through another copy
  const Unit& unit = *found;
  window_.on_acked(unit.bytes);
  backlog_bytes_ -= std::min(backlog_bytes_, unit.bytes);
  auto& outstanding = out_sequences_[unit.mode].outstanding;
  if (!outstanding.empty() && unit.sequence >= outstanding.front().first) {
    auto& entry = outstanding[unit.sequence - outstanding.front().first];
    if (entry.second > 0) --entry.second;
    while (!outstanding.empty() && outstanding.front().second == 0) outstanding.pop_front();
  }
  found->live = false;
  found->frame = std::string();  // its bytes go now, not when the front catches up
  while (!units_.empty() && !units_.front().live) {
    units_.pop_front();
    ++units_base_;
  }
}

// ---- sending --------------------------------------------------------------------------

void Channel::enqueue_frame(const v1::Frame& frame, reliability::Fifo<std::string>& queue) {
  queue.emplace_back();
  frame.SerializeToString(&queue.back());
}

Expected<void> Channel::send(v1::Delivery delivery, v1::Message& message) {
  auto refuse = [this](Refusal why, std::string text) -> Expected<void> {
    last_refusal_ = why;
    return make_error(std::move(text));
  };
  last_refusal_ = Refusal::kNone;
  if (state_ != State::kOpen) return refuse(Refusal::kClosed, "the session is closed");
  message.set_delivery(delivery);
  if (delivery == v1::DELIVERY_UNRELIABLE) {
    message.clear_sequence();
    std::string frame = message_frame(message, message.ByteSizeLong());
    const size_t size = frame.size();
    if (size + kFrameWrap > payload_room(config_.max_datagram)) {
      return refuse(Refusal::kTooLarge, "an unreliable message of " + std::to_string(size) +
                                            " bytes does not fit in one datagram; send it reliably");
    }
    while (backlog_bytes_ > 0 && backlog_bytes_ + size > config_.max_send_backlog &&
           !unreliable_.empty()) {
      backlog_bytes_ -= std::min(backlog_bytes_, unreliable_.front().size());
      unreliable_.pop_front();
      ++stats_.unreliable_dropped;
    }
    if (backlog_bytes_ > 0 && backlog_bytes_ + size > config_.max_send_backlog) {
      return refuse(Refusal::kBacklogFull, "send backlog full");
    }
    unreliable_.push_back(std::move(frame));
    backlog_bytes_ += size;
    return {};
  }
  const uint8_t mode = mode_index(delivery);
  SendSequences& seqs = out_sequences_[mode];
  message.set_sequence(seqs.next);
  const size_t size = message.ByteSizeLong();
  if (size > config_.max_message_size) {
    return refuse(Refusal::kTooLarge, "message of " + std::to_string(size) +
                                          " bytes exceeds the maximum of " +
                                          std::to_string(config_.max_message_size));
  }
  if (backlog_bytes_ > 0 && backlog_bytes_ + size > config_.max_send_backlog) {
    return refuse(Refusal::kBacklogFull, "send backlog full");
  }
  // Fragmenting is decided before a sequence number is spent, so a refusal leaves no gap.
  // The frame: tag, length, message (message_frame).
  const size_t frame_size = 1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(size)) + size;
  const bool whole = frame_size + kFrameWrap <= payload_room(config_.max_datagram);
  const auto count = whole ? Expected<uint16_t>(uint16_t{1}) : fragmenter_.fragment_count(size);
  if (!count) return refuse(Refusal::kTooLarge, count.error());
  const uint64_t sequence = seqs.next++;
  auto add_unit = [&](std::string frame, size_t bytes) {
    backlog_bytes_ += bytes;
    units_.push_back(
        Unit{.frame = std::move(frame), .bytes = bytes, .sequence = sequence, .mode = mode, .live = true});
    queued_.push_back(next_unit_id_++);
  };
  if (whole) {
    add_unit(message_frame(message, size), size);
    seqs.outstanding.emplace_back(sequence, 1);
    return {};
  }
  // §5.7: too large for one datagram; fragments of the serialized message.
  const std::string bytes = message.SerializeAsString();
  const std::span<const uint8_t> serialized(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            bytes.size());
  for (uint16_t i = 0; i < *count; ++i) {
    const auto piece = fragmenter_.fragment(static_cast<uint32_t>(sequence), serialized, i);
    frame_.Clear();
    v1::Fragment* f = frame_.mutable_fragment();
    f->set_delivery(delivery);
    f->set_sequence(sequence);
    f->set_index(i);
    f->set_count(*count);
    f->set_data(piece.data.data(), piece.data.size());
    add_unit(frame_.SerializeAsString(), piece.data.size());
  }
  seqs.outstanding.emplace_back(sequence, *count);
  return {};
}

void Channel::send_ping(uint64_t nonce) {
  if (state_ != State::kOpen) return;
  frame_.Clear();
  frame_.mutable_ping()->set_nonce(nonce);
  enqueue_frame(frame_, control_);
}

void Channel::close(std::string_view reason) {
  if (state_ != State::kOpen) return;
  finish(reason, nullptr);
}

void Channel::finish(std::string_view reason, ChannelEvents* events) {
  if (state_ != State::kOpen) return;
  frame_.Clear();
  frame_.mutable_close()->set_reason(std::string(reason));
  close_frame_ = frame_.SerializeAsString();
  state_ = State::kClosing;
  if (events != nullptr) events->on_closed(reason);
}

bool Channel::may_send_new(const Unit& unit) const {
  if (!window_.can_send(unit.bytes)) return false;
  // ordered_delivery.hpp: stay within the peer's reorder capacity of the oldest message
  // not yet acknowledged, or the peer would have to refuse it.
  const auto& outstanding = out_sequences_[unit.mode].outstanding;
  return outstanding.empty() || unit.sequence - outstanding.front().first < config_.reorder_capacity;
}

void Channel::rotate_send_key() {
  send_keys_.key = crypto::next_key(send_keys_.key);
  send_keys_.phase ^= 1;
  sealer_.reset();  // made again, under the new key, by the next seal
  packets_under_key_ = 0;
  ++stats_.key_updates;
}

size_t Channel::poll_transmit(std::span<uint8_t> out, Clock::time_point now) {
  if (state_ == State::kClosed) return 0;
  const size_t max = std::min(out.size(), config_.max_datagram);
  if (max < kHeaderSize + crypto::kPacketTagSize + 16) return 0;
  const size_t limit = max - crypto::kPacketTagSize;  // frames end here
  size_t at = kHeaderSize;
  bool ack_eliciting = false;
  const uint64_t carried_first = carried_base_ + carried_.size();

  if (state_ == State::kClosing) {
    append_frame(close_frame_, out, at, limit);
    state_ = State::kClosed;
  } else {
    if (ack_owed_) {
      std::array<reliability::AckRange, kMaxAckRangesPerFrame> ranges;
      const size_t n = received_.write_ranges(ranges);
      if (n > 0) {
        frame_.Clear();
        v1::Ack* ack = frame_.mutable_ack();
        for (size_t i = 0; i < n; ++i) {
          ack->add_ranges(ranges[i].first);
          ack->add_ranges(ranges[i].last);
        }
        ack->set_delay_us(static_cast<uint32_t>(std::min<int64_t>(
            duration_cast<microseconds>(now - largest_received_at_).count(), UINT32_MAX)));
        append_frame(frame_.SerializeAsString(), out, at, limit);
      }
      ack_owed_ = false;
    }
    while (!control_.empty() && append_frame(control_.front(), out, at, limit)) {
      control_.pop_front();
      ack_eliciting = true;
    }
    while (!resend_.empty()) {
      const Unit* unit = find_unit(resend_.front());
      if (unit == nullptr) {
        resend_.pop_front();
        continue;
      }
      if (!append_frame(unit->frame, out, at, limit)) break;
      carried_.push_back(resend_.front());
      resend_.pop_front();
      ++stats_.retransmitted;
    }
    while (!queued_.empty()) {
      const Unit& unit = *find_unit(queued_.front());
      if (!may_send_new(unit) || !append_frame(unit.frame, out, at, limit)) break;
      window_.on_sent(unit.bytes);
      carried_.push_back(queued_.front());
      queued_.pop_front();
    }
    while (!unreliable_.empty() && append_frame(unreliable_.front(), out, at, limit)) {
      backlog_bytes_ -= std::min(backlog_bytes_, unreliable_.front().size());
      unreliable_.pop_front();
      ack_eliciting = true;
    }
    if (carried_base_ + carried_.size() > carried_first) ack_eliciting = true;
  }
  if (at == kHeaderSize) return 0;
  return seal_packet(out, at, ack_eliciting, carried_first, now);
}

size_t Channel::seal_packet(std::span<uint8_t> out, size_t frames_end, bool ack_eliciting,
                            uint64_t carried_first, Clock::time_point now) {
  const uint64_t pn = next_packet_number_++;
  const DatagramHeader header{
      .type = send_keys_.phase == 0 ? DatagramType::kSealed0 : DatagramType::kSealed1,
      .connection_id = connection_id_,
      .packet_number = pn};
  write_header(header, out);
  if (!sealer_) sealer_ = std::make_unique<crypto::PacketSealer>(send_keys_.key);
  last_sealed_ = now;
  const size_t sealed = sealer_->seal(pn, out.first(kHeaderSize),
                                      out.subspan(kHeaderSize, frames_end - kHeaderSize),
                                      out.subspan(kHeaderSize));
  const size_t size = kHeaderSize + sealed;
  if (ack_eliciting) {
    const size_t carried = carried_base_ + carried_.size() - carried_first;
    sent_.on_sent(pn, size, now, true, carried_token(carried_first, carried));
  }
  ++stats_.datagrams_out;
  // §5.8: a key is retired long before its packet numbers could repeat a nonce.
  if (++packets_under_key_ >= config_.packets_per_key) rotate_send_key();
  return size;
}

size_t Channel::write_path_challenge(uint64_t data, std::span<uint8_t> out, Clock::time_point now) {
  const size_t max = std::min(out.size(), config_.max_datagram);
  if (state_ != State::kOpen || max < kHeaderSize + crypto::kPacketTagSize + 16) return 0;
  frame_.Clear();
  frame_.mutable_path_challenge()->set_data(data);
  size_t at = kHeaderSize;
  if (!append_frame(frame_.SerializeAsString(), out, at, max - crypto::kPacketTagSize)) return 0;
  return seal_packet(out, at, true, carried_base_ + carried_.size(), now);
}

// ---- timers ---------------------------------------------------------------------------

Clock::time_point Channel::next_timer() const {
  if (state_ != State::kOpen) return Clock::time_point::max();
  Clock::time_point next = last_received_ + config_.idle_timeout;
  if (config_.keepalive.count() > 0) {
    next = std::min(next, std::max(last_received_, last_keepalive_) + config_.keepalive);
  }
  if (const auto loss = sent_.loss_deadline(rtt_.rto())) next = std::min(next, *loss);
  if (const auto lost = sent_.time_threshold_deadline()) next = std::min(next, *lost);
  if (const auto probe = probe_deadline()) next = std::min(next, *probe);
  if (const auto expiry = reassembler_.next_expiry()) next = std::min(next, *expiry);
  if (const auto rest = rest_deadline()) next = std::min(next, *rest);
  return next;
}

bool Channel::resting() const { return !sealer_ && !opener_ && !next_opener_ && !previous_opener_; }

std::optional<Clock::time_point> Channel::rest_deadline() const {
  const bool idle = sent_.packets_tracked() == 0 && units_.empty() && queued_.empty() &&
                    resend_.empty() && unreliable_.empty() && control_.empty() && !ack_owed_;
  if (config_.rest_after.count() <= 0 || resting() || !idle) return std::nullopt;
  return std::max(last_received_, last_sealed_) + config_.rest_after;
}

void Channel::rest() {
  sealer_.reset();
  opener_.reset();
  next_opener_.reset();
  previous_opener_.reset();  // a packet reordered this long is gone anyway
  queued_.release();
  resend_.release();
  carried_.release();
  units_.release();
  unreliable_.release();
  control_.release();
  std::vector<uint64_t>().swap(lost_);
  v1::Frame().Swap(&frame_);
  v1::Message().Swap(&scratch_message_);
  sent_.release();
}

void Channel::on_timer(Clock::time_point now, ChannelEvents& events) {
  if (state_ != State::kOpen) return;
  // §5.7: abandoned fragments are freed on time, whether or not more fragments come.
  reassembler_.expire(now);
  if (now - last_received_ >= config_.idle_timeout) {
    finish("idle timeout: nothing received for " + std::to_string(config_.idle_timeout.count()) +
               " ms",
           &events);
    return;
  }
  // §6.1.2: packets overtaken by an acknowledged one whose time threshold passed.
  if (const auto lost = sent_.time_threshold_deadline(); lost && now >= *lost) requeue_lost(now);
  if (const auto loss = sent_.loss_deadline(rtt_.rto()); loss && now >= *loss) {
    requeue_lost(now);
    rtt_.on_timeout();
    if (rtt_.consecutive_timeouts() > config_.max_retransmissions) {
      finish("peer not responding: " + std::to_string(config_.max_retransmissions) +
                 " retransmissions unanswered",
             &events);
      return;
    }
  }
  // §6.2: nothing acknowledged for a probe timeout (a tail loss leaves no later packet
  // for the thresholds to judge by): send the oldest data again, long before the RTO.
  if (const auto probe = probe_deadline(); probe && now >= *probe) send_probe();
  if (config_.keepalive.count() > 0 &&
      now >= std::max(last_received_, last_keepalive_) + config_.keepalive) {
    last_keepalive_ = now;
    send_ping(next_packet_number_);
  }
  if (const auto rest_at = rest_deadline(); rest_at && now >= *rest_at) rest();
}

}  // namespace prism::net::session
