// One end of an established session (docs/protocol.md §5.4-5.9), without sockets or
// timers: the owner feeds it sealed datagrams and the clock, and asks it for datagrams to
// send and for the time it next needs to be woken. prismd's sessions and libprism-client
// both wrap one, so the two ends cannot drift apart, and tests drive two of them through a
// simulated lossy link with a simulated clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/crypto/replay_window.hpp"
#include "net/datagram.hpp"
#include "net/reliability/ack_ranges.hpp"
#include "net/reliability/fifo.hpp"
#include "net/reliability/fragmentation.hpp"
#include "net/reliability/ordered_delivery.hpp"
#include "net/reliability/receive_budget.hpp"
#include "net/reliability/rtt_estimator.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::net::session {

using Clock = std::chrono::steady_clock;

struct ChannelConfig {
  size_t max_datagram = 1400;                      // UDP payload sent, header and tag included
  size_t max_receive_datagram = kMaxDatagramSize;  // largest accepted (the server: its own limit)
  size_t max_message_size = 1 << 20;               // one message, before fragmentation
  size_t max_unacked_bytes = reliability::kDefaultMaxUnackedBytes;
  size_t max_send_backlog = 8 << 20;               // queued + unacknowledged bytes
  size_t reorder_capacity = reliability::kDefaultReorderCapacity;
  // §5.6-5.7: one budget for what the peer makes this side hold (ordered messages behind
  // a gap, unfinished fragments); it also draws on `shared_receive_budget` when set
  // (prismd: the worker's), which must outlive the channel.
  size_t receive_budget = 4 << 20;
  reliability::ReceiveBudget* shared_receive_budget = nullptr;
  std::chrono::milliseconds idle_timeout{30000};   // nothing received for this long: close
  std::chrono::milliseconds keepalive{10000};      // nothing received for this long: PING
  // Nothing sent or received for this long and nothing in flight: the channel rests, giving
  // back its AES-GCM contexts (~4.6 KiB each) and emptied buffers; the next packet rebuilds
  // them from the keys (a few microseconds). 0: never.
  std::chrono::milliseconds rest_after{1000};
  uint32_t max_retransmissions = 8;                // consecutive RTO expiries before closing
  uint64_t packets_per_key = crypto::kPacketsPerKey;
  reliability::RtoConfig rto;
};

// Counted by the channel, read by the owner for metrics and tests.
struct ChannelStats {
  uint64_t datagrams_in = 0;
  uint64_t datagrams_out = 0;
  uint64_t not_authentic = 0;
  uint64_t replayed = 0;
  uint64_t malformed = 0;     // authentic, but the payload broke §3.1
  uint64_t refused = 0;       // authentic packets left unacknowledged (no room to hold them)
  uint64_t retransmitted = 0; // reliable frames sent again
  uint64_t key_updates = 0;   // this side switched its sending key
  uint64_t unreliable_dropped = 0;  // queued unreliable messages dropped for a newer one
  uint64_t probes = 0;        // probe timeouts (RFC 9002 §6.2) that sent data again
};

// The start of the reason on_closed() gives when the peer sent CLOSE; any other reason
// means this side gave up on the peer (idle timeout, retransmissions unanswered).
inline constexpr std::string_view kPeerClosedReason = "peer closed the session: ";

// What the channel hands up. Called from inside on_datagram() / on_timer().
class ChannelEvents {
 public:
  virtual ~ChannelEvents() = default;
  // A request, reply or push, exactly once for the reliable modes.
  virtual void on_message(const v1::Message& message) = 0;
  virtual void on_pong(uint64_t /*nonce*/) {}
  virtual void on_path_response(uint64_t /*data*/) {}
  // The session is over; `reason` is for logs and for the requests still pending.
  virtual void on_closed(std::string_view reason) = 0;
};

class Channel {
 public:
  enum class Role : uint8_t { kClient, kServer };

  Channel(Role role, const crypto::SessionKeys& keys, uint64_t connection_id,
          ChannelConfig config, Clock::time_point now);
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  struct Received {
    DropReason drop = DropReason::kNone;  // kNone: authentic and processed
    bool largest = false;                 // the highest packet number so far (path changes)
  };
  // A sealed datagram whose header the caller already read (`header`, with the connection
  // id of this session). Everything it carries is handed to `events` before it returns.
  Received on_datagram(const DatagramHeader& header, std::span<const uint8_t> datagram,
                       Clock::time_point now, ChannelEvents& events);

  // Queues a message. The channel sets its delivery and sequence fields. Errors: the
  // channel is closed, an unreliable message does not fit one datagram, the message is
  // above max_message_size, or the backlog is full. An unreliable message meeting a full
  // backlog first drops the oldest unreliable messages still queued (they are stale by
  // now, and may be lost anyway); only reliable bytes make it fail.
  Expected<void> send(v1::Delivery delivery, v1::Message& message);
  // Why the last send() failed (kNone after a success).
  enum class Refusal : uint8_t { kNone, kClosed, kTooLarge, kBacklogFull };
  Refusal last_refusal() const { return last_refusal_; }
  void send_ping(uint64_t nonce);
  // Builds, at once, a datagram carrying only a PATH_CHALLENGE (for the caller to send to
  // a new address); returns its size, 0 if `out` is too small or the channel is closed.
  size_t write_path_challenge(uint64_t data, std::span<uint8_t> out, Clock::time_point now);

  // Sends CLOSE (once, with the next poll_transmit) and ends the session. on_closed is not
  // called for a close the owner asked for.
  void close(std::string_view reason);

  // The next datagram to send, written into `out` (max_datagram bytes); 0 when there is
  // nothing to send now (flow control may hold data until ACKs arrive).
  size_t poll_transmit(std::span<uint8_t> out, Clock::time_point now);

  // When on_timer() must run next (retransmission, keepalive, idle timeout).
  Clock::time_point next_timer() const;
  void on_timer(Clock::time_point now, ChannelEvents& events);

  bool closed() const { return state_ == State::kClosed; }
  uint64_t connection_id() const { return connection_id_; }
  const ChannelStats& stats() const { return stats_; }
  // Holds no AES-GCM context: nothing sent or received yet, or at rest (rest_after).
  bool resting() const;
  size_t unacked_bytes() const { return window_.unacked_bytes(); }
  size_t backlog_bytes() const { return backlog_bytes_; }
  // Bytes the peer makes this side hold now (ordered messages behind a gap, fragments).
  size_t received_buffered_bytes() const { return receive_budget_.used(); }

 private:
  enum class State : uint8_t { kOpen, kClosing, kClosed };
  static constexpr size_t kModes = 2;  // the reliable ones: ordered, unordered

  // A reliable frame (a whole message or one fragment), kept until acknowledged.
  struct Unit {
    std::string frame;   // serialized prism.v1.Frame
    size_t bytes = 0;    // counted in the send window
    uint64_t sequence = 0;
    uint8_t mode = 0;    // index into the per-mode arrays
    bool live = false;   // not yet acknowledged
  };
  // Per reliable mode and direction: where sequence numbers stand.
  struct SendSequences {
    uint64_t next = 0;
    // Messages sent but not fully acknowledged, oldest first: (sequence, units left).
    reliability::Fifo<std::pair<uint64_t, uint32_t>> outstanding;
  };
  // Per-direction keys: the current one and, for the receiver, its neighbours.
  struct Keys {
    crypto::Key32 key{};
    uint8_t phase = 0;
  };

  void deliver_frame(const v1::Frame& frame, Clock::time_point now, ChannelEvents& events,
                     bool& refuse);
  void on_ack(const v1::Ack& ack, Clock::time_point now);
  void on_reliable(v1::Message& message, uint8_t mode, ChannelEvents& events, bool& refuse);
  void on_fragment(const v1::Fragment& fragment, Clock::time_point now, ChannelEvents& events,
                   bool& refuse);
  void unit_acked(uint64_t unit_id);
  // The unit with this id while it is unacknowledged, else null.
  Unit* find_unit(uint64_t unit_id);
  // Calls each(unit id) for the units a packet carried (its token, from seal_packet) that
  // no earlier ACK or loss of the same packet took, and forgets them.
  template <typename Each>
  void take_carried(uint64_t token, Each&& each);
  // Hands the reliable frames of packets now declared lost back to the send queue.
  void requeue_lost(Clock::time_point now);
  // RFC 9002 §6.2: when the probe timeout fires, if anything ack-eliciting is in flight.
  std::optional<Clock::time_point> probe_deadline() const;
  // The probe: the oldest packet in flight's units sent again (its entry stays; whichever
  // copy is acknowledged first acknowledges them), or a PING when it carried none.
  void send_probe();
  // Seals the frames written at out[kHeaderSize, frames_end) under the next packet number;
  // the packet carries the units appended to carried_ since index `carried_first`.
  size_t seal_packet(std::span<uint8_t> out, size_t frames_end, bool ack_eliciting,
                     uint64_t carried_first, Clock::time_point now);
  void enqueue_frame(const v1::Frame& frame, reliability::Fifo<std::string>& queue);
  bool may_send_new(const Unit& unit) const;
  Expected<size_t> open(const DatagramHeader& header, std::span<const uint8_t> datagram,
                        std::span<uint8_t> plaintext);
  void rotate_send_key();
  // When the channel rests (rest_after past the last packet either way), if it holds
  // contexts and rest() would lose nothing: nothing in flight, queued or owed.
  std::optional<Clock::time_point> rest_deadline() const;
  // Gives back the AES-GCM contexts and the capacity of emptied buffers (ChannelConfig::
  // rest_after); everything is rebuilt on demand.
  void rest();
  void finish(std::string_view reason, ChannelEvents* events);

  uint64_t connection_id_;
  ChannelConfig config_;
  State state_ = State::kOpen;
  ChannelStats stats_;

  // Sending: packet numbers from 0, one key per phase.
  uint64_t next_packet_number_ = 0;
  uint64_t packets_under_key_ = 0;
  Keys send_keys_;
  // Made on first use and given back at rest: an AES-GCM context is ~4.6 KiB, and a
  // session that never sends or never receives (an unconfirmed handshake) or that is idle
  // needs none. On the heap, so that a channel without them is small too.
  std::unique_ptr<crypto::PacketSealer> sealer_;
  // Receiving: current key, the next one (a peer's key update) and the previous one (for
  // packets reordered across the update).
  Keys recv_keys_;
  std::unique_ptr<crypto::PacketOpener> opener_;
  std::unique_ptr<crypto::PacketOpener> next_opener_;
  std::unique_ptr<crypto::PacketOpener> previous_opener_;
  uint64_t current_phase_first_pn_ = 0;
  crypto::ReplayWindow replay_;

  // Reliability.
  reliability::ReceivedPackets received_;
  reliability::SentPackets sent_;
  reliability::RttEstimator rtt_;
  std::chrono::microseconds latest_rtt_{0};  // the last RTT sample (RFC 9002 §5.1)
  uint32_t pto_count_ = 0;                   // probe timeouts since an ACK (§6.2.1)
  reliability::SendWindow window_;
  reliability::Fragmenter fragmenter_;
  reliability::ReceiveBudget receive_budget_;  // before reassembler_, which charges it
  reliability::Reassembler reassembler_;
  reliability::OrderedReceiver ordered_in_;
  reliability::OrderedReceiver unordered_in_;  // used as a duplicate filter only
  std::array<SendSequences, kModes> out_sequences_;
  uint64_t next_unit_id_ = 0;
  reliability::Fifo<uint64_t> queued_;    // units never sent, in order
  reliability::Fifo<uint64_t> resend_;    // units declared lost, to send again
  // Units by id, oldest first: units_[id - units_base_]. Ids are handed out in order, so
  // a lookup is an index, and acknowledged units leave from the front (nothing is
  // allocated per message but its frame).
  reliability::Fifo<Unit> units_;
  uint64_t units_base_ = 0;
  // The unit ids packets carried, in sending order: carried_[i - carried_base_]. A packet's
  // token (sent_) names its slice; ids an ACK or a loss took become kTaken, and the front
  // leaves once taken, so no packet allocates a list of its own.
  static constexpr uint64_t kTaken = UINT64_MAX;
  reliability::Fifo<uint64_t> carried_;
  uint64_t carried_base_ = 0;
  reliability::Fifo<std::string> unreliable_;  // serialized frames sent once
  Refusal last_refusal_ = Refusal::kNone;
  reliability::Fifo<std::string> control_;     // PONG, PATH_RESPONSE, PING: sent once
  std::string close_frame_;
  size_t backlog_bytes_ = 0;
  bool ack_owed_ = false;
  Clock::time_point largest_received_at_{};
  Clock::time_point duplicate_acked_at_{};  // the last ACK a duplicate drew (§5.5)

  Clock::time_point last_received_;
  Clock::time_point last_keepalive_;
  Clock::time_point last_sealed_;  // the last packet sent
  std::vector<uint64_t> lost_;           // scratch
  v1::Frame frame_;                      // scratch
  v1::Message scratch_message_;
};

}  // namespace prism::net::session
