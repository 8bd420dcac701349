// Per-worker sessions: handshake, routing by connection id, path validation, timers
// (docs/protocol.md §5).
#include "net/session_table.hpp"

#include <algorithm>

#include "net/transport_metrics.hpp"

namespace prism::net {
namespace {

using session::Clock;
using session::InitialOutcome;

// protocol.md §5.3: the top byte of a server-chosen connection id names the worker that
// owns the session, so any worker can route a datagram whose address changed.

}  // namespace

// Everything prismd keeps for one client.
struct SessionTable::Session {
  SessionTable* table;
  uint64_t id;
  PeerAddress peer;
  session::Channel channel;
  UvHandle<uv_timer_t> timer;
  Clock::time_point armed_for = Clock::time_point::max();
  bool dirty = false;
  // Until the client's first sealed packet confirms the handshake (§5.3).
  uint64_t client_id = 0;
  crypto::Key32 client_ephemeral{};
  std::vector<uint8_t> handshake_reply;
  Clock::time_point handshake_deadline{};
  bool abandoned = false;  // unconfirmed past its deadline: flush() frees it, sending nothing
  // A new address the client appeared from, while it is being validated (§5.9).
  std::optional<PeerAddress> candidate;
  uint64_t challenge = 0;
  size_t candidate_budget = 0;  // bytes we may still send there: what it sent us
  // The source of the datagram being processed (path responses must come from there).
  const PeerAddress* current_from = nullptr;
  std::string close_reason;
  // The request id of the next push: 1, 2, ... skipping 0, which §3.1 forbids.
  uint32_t last_push_id = 0;

  Session(SessionTable* t, uint64_t i, const PeerAddress& p, const crypto::SessionKeys& keys,
          const session::ChannelConfig& config, Clock::time_point now)
      : table(t),
        id(i),
        peer(p),
        channel(session::Channel::Role::kServer, keys, i, config, now) {}
};

class SessionTable::Events final : public session::ChannelEvents {
 public:
  Events(SessionTable& table, Session& s, Clock::time_point now)
      : table_(table), s_(s), now_(now) {}

  void on_message(const v1::Message& message) override {
    // Replies and pushes travel server → client only; a client never sends them.
    if (message.is_reply() || table_.handler_ == nullptr) return;
    // The session opens before its first request is handled, so that request may push.
    table_.confirm(s_);
    const RequestOrigin origin{.peer = s_.peer, .connection_id = s_.id,
                               .delivery = message.delivery(), .received_at = now_};
    table_.handler_->on_request(origin, message);
  }
  void on_path_response(uint64_t data) override {
    if (!s_.candidate || data != s_.challenge || s_.current_from == nullptr ||
        !s_.current_from->same_as(*s_.candidate)) {
      return;
    }
    SPDLOG_INFO("event=session_migrated session={:016x} from={} to={}", s_.id,
                s_.peer.to_string(), s_.candidate->to_string());
    // SourceLimits counts a session against its peer's source: it moves with the peer.
    table_.limits_.moved(s_.peer.source_key(), s_.candidate->source_key(), s_.client_id == 0);
    s_.peer = *s_.candidate;
    s_.candidate.reset();
    table_.counters_.migrated.add();
  }
  void on_closed(std::string_view reason) override { s_.close_reason = std::string(reason); }

 private:
  SessionTable& table_;
  Session& s_;
  Clock::time_point now_;  // when the datagram arrived
};

SessionTable::SessionTable(unsigned worker_index, Outbox& outbox, LoopAccess& loop,
                           SessionSettings settings)
    : index_(worker_index),
      outbox_(outbox),
      loop_(loop),
      settings_(std::move(settings)),
      handshake_(settings_.server_key),
      limits_(settings_.per_source),
      receive_budget_(settings_.receive_budget),
      counters_(transport_counters()) {
  settings_.channel.shared_receive_budget = &receive_budget_;
}

SessionTable::~SessionTable() = default;

void SessionTable::drop(DropReason reason) { counters_.dropped_for(reason).add(); }

void SessionTable::send_datagram(const PeerAddress& to, std::span<const uint8_t> bytes) {
  auto buffer = outbox_.next_buffer();
  if (buffer.size() < bytes.size()) return;
  std::copy(bytes.begin(), bytes.end(), buffer.begin());
  outbox_.commit(to, bytes.size());
  counters_.sent.add();
}

void SessionTable::on_datagram(std::span<const uint8_t> datagram, const PeerAddress& from,
                               bool forwarded) {
  if (!forwarded) counters_.received.add();  // counted once, by the worker that read it
  DatagramHeader header;
  // Bad input is counted and dropped without any reply: nothing to amplify (§2.4).
  if (auto r = read_header(datagram, settings_.channel.max_datagram, header); r != DropReason::kNone) {
    drop(r);
    return;
  }
  if (header.type == DatagramType::kInitial) {
    on_initial(datagram, from);
    return;
  }
  if (!is_sealed(header.type)) {  // RETRY and HANDSHAKE travel server → client only
    drop(DropReason::kBadType);
    return;
  }
  const unsigned owner = worker_of(header.connection_id);
  if (owner != index_ && !forwarded && forwarder_) {
    if (!forwarder_(owner, datagram, from)) drop(DropReason::kUnknownSession);
    return;
  }
  on_sealed(header, datagram, from);
}

uint64_t SessionTable::new_connection_id() {
  for (;;) {
    // Random from the worker's CSPRNG, so ids cannot be predicted from ids seen.
    const uint64_t id = (uint64_t{index_} << kConnectionWorkerShift) |
                        (handshake_.random().next_u64() & ((uint64_t{1} << kConnectionWorkerShift) - 1) &
                         ~kWebSocketSessionBit);
    if (id != 0 && !sessions_.contains(id)) return id;
  }
}

void SessionTable::on_initial(std::span<const uint8_t> datagram, const PeerAddress& from) {
  std::array<uint8_t, PeerAddress::kMaxKeyBytes> address{};
  const size_t address_len = from.key_bytes(address);
  const auto wall_now = std::chrono::system_clock::now();
  auto checked = handshake_.check(datagram, std::span(address.data(), address_len), wall_now);
  if (checked.kind == InitialOutcome::Kind::kDrop) {
    drop(checked.reason);
    return;
  }
  if (checked.kind == InitialOutcome::Kind::kRetry) {
    counters_.retries.add();
    send_datagram(from, checked.reply);
    return;
  }
  // A repeat of an INITIAL we answered (our HANDSHAKE was lost): answer it the same way.
  if (const auto known = by_client_id_.find(checked.client_id); known != by_client_id_.end()) {
    Session& s = *sessions_.at(known->second);
    if (s.peer.same_as(from) && s.client_ephemeral == checked.client_ephemeral) {
      send_datagram(from, s.handshake_reply);
    } else {
      drop(DropReason::kHandshakeFailed);
    }
    return;
  }
  // The cookie verified, so the source address is the sender's own: only now may it spend
  // its handshake budget (a spoofer cannot drain another address's rate). Each X25519
  // costs ~50 µs; a source gets a bounded rate of them (docs/security.md, "Handshake
  // flood"), and one source must not take every slot ("One source, many sessions").
  const uint64_t source = from.source_key();
  if (!limits_.allow_handshake(source, Clock::now())) {
    drop(DropReason::kRateLimited);
    return;
  }
  if (!limits_.may_open(source)) {
    drop(DropReason::kAddressLimit);
    return;
  }
  // A full worker makes room by closing its oldest unconfirmed session, but only for a
  // handshake that succeeds: a replay or a bad message 1 must not close anyone's.
  const bool full = sessions_.size() >= settings_.max_sessions;
  if (full && oldest_unconfirmed() == nullptr) {
    drop(DropReason::kOverloaded);
    return;
  }
  const uint64_t id = new_connection_id();
  v1::ServerHello hello;
  hello.set_connection_id(id);
  hello.set_idle_timeout_ms(static_cast<uint32_t>(settings_.channel.idle_timeout.count()));
  hello.set_max_message_size(static_cast<uint32_t>(settings_.channel.max_message_size));
  auto accepted = handshake_.accept(datagram, hello, wall_now);
  if (accepted.kind != InitialOutcome::Kind::kAccept) {
    drop(accepted.reason);
    return;
  }
  if (full) {
    Session* evicted = oldest_unconfirmed();
    evicted->close_reason = "evicted: the worker is full and the handshake was unconfirmed";
    counters_.handshakes_evicted.add();
    destroy(*evicted);
  }
  const auto now = Clock::now();
  auto owned = std::make_unique<Session>(this, id, from, accepted.keys, settings_.channel, now);
  Session& s = *owned;
  s.client_id = accepted.client_id;
  s.client_ephemeral = accepted.client_ephemeral;
  s.handshake_reply = std::move(accepted.reply);
  s.handshake_deadline = now + settings_.handshake_timeout;
  s.timer = UvHandle<uv_timer_t>(loop_.loop(), uv_timer_init, &s);
  sessions_.emplace(id, std::move(owned));
  by_client_id_.emplace(s.client_id, id);
  unconfirmed_order_.push_back(id);
  // Entries of sessions confirmed or gone leave from the front, so the queue holds no
  // more than the handshakes of the last handshake_timeout.
  oldest_unconfirmed();
  limits_.opened(source);
  counters_.opened.add();
  SPDLOG_DEBUG("event=session_opened session={:016x} peer={} worker={}", id, from.to_string(),
               index_);
  send_datagram(from, s.handshake_reply);
  touch(s);
}

void SessionTable::on_sealed(const DatagramHeader& header, std::span<const uint8_t> datagram,
                             const PeerAddress& from) {
  const auto it = sessions_.find(header.connection_id);
  if (it == sessions_.end()) {
    drop(DropReason::kUnknownSession);
    return;
  }
  Session& s = *it->second;
  const auto now = Clock::now();
  Events events(*this, s, now);
  s.current_from = &from;
  const auto result = s.channel.on_datagram(header, datagram, now, events);
  s.current_from = nullptr;
  touch(s);
  if (result.drop != DropReason::kNone) {
    drop(result.drop);
    return;
  }
  confirm(s);
  if (s.peer.same_as(from)) return;
  // §5.9: an authentic packet from a new address. Move only once the new address answers
  // a challenge, and send it no more bytes than it sent us until then.
  if (!s.candidate || !s.candidate->same_as(from)) {
    if (!result.largest) return;  // a late packet from an old path is no reason to move
    s.candidate = from;
    s.challenge = handshake_.random().next_u64();
    s.candidate_budget = 0;
  }
  s.candidate_budget += datagram.size();
  auto buffer = outbox_.next_buffer();
  // Limited to the budget, so a challenge that would not fit is never sealed at all.
  const size_t n = s.channel.write_path_challenge(
      s.challenge, buffer.first(std::min(buffer.size(), s.candidate_budget)), Clock::now());
  if (n == 0) return;
  s.candidate_budget -= n;
  outbox_.commit(from, n);
  counters_.sent.add();
}

bool SessionTable::send_reply(const RequestOrigin& origin, uint32_t request_id,
                              uint32_t packet_id, v1::Status status, std::string_view message,
                              std::span<const uint8_t> payload) {
  const auto it = sessions_.find(origin.connection_id);
  if (it == sessions_.end()) {
    // The session ended while its request was being served: nobody to answer. Counted
    // here; not the caller's failure.
    counters_.replies_dropped.add();
    return true;
  }
  Session& s = *it->second;
  reply_.Clear();
  reply_.set_request_id(request_id);
  reply_.set_packet_id(packet_id);
  reply_.set_is_reply(true);
  reply_.set_status(status);
  reply_.set_status_message(message.data(), message.size());
  reply_.set_payload(payload.data(), payload.size());
  v1::Delivery delivery = origin.delivery;
  auto sent = s.channel.send(delivery, reply_);
  if (!sent && delivery == v1::DELIVERY_UNRELIABLE) {
    // Too large for one datagram: an unreliable request's reply then goes reliably,
    // since fragments need retransmission to be of any use (§5.7).
    delivery = v1::DELIVERY_RELIABLE_UNORDERED;
    sent = s.channel.send(delivery, reply_);
  }
  const bool fits = sent.ok() || reply_.ByteSizeLong() <= settings_.channel.max_message_size;
  if (!sent && !fits) {
    // Above the maximum message size: the requester still gets an answer.
    reply_.clear_payload();
    reply_.set_status(v1::STATUS_INTERNAL);
    reply_.set_status_message("reply too large: " + sent.error());
    sent = s.channel.send(delivery, reply_);
  }
  if (!sent) {
    counters_.replies_dropped.add();
    if (log_limiter_.allow()) {
      SPDLOG_WARN("event=reply_dropped session={:016x} request_id={} error=\"{}\" suppressed={}",
                  s.id, request_id, sent.error(), log_limiter_.take_suppressed());
    }
  }
  touch(s);
  return sent.ok() && fits;
}

PushResult SessionTable::send_push(uint64_t connection_id, uint32_t packet_id,
                                   v1::Delivery delivery, std::string_view topic,
                                   std::span<const uint8_t> payload) {
  const auto it = sessions_.find(connection_id);
  // An unconfirmed session has not proved it holds the keys yet: nothing is pushed to it.
  if (it == sessions_.end() || it->second->client_id != 0) {
    counters_.pushes_dropped.add();
    return PushResult::kNoSession;
  }
  Session& s = *it->second;
  reply_.Clear();
  if (++s.last_push_id == 0) s.last_push_id = 1;
  reply_.set_request_id(s.last_push_id);
  reply_.set_packet_id(packet_id);
  reply_.set_topic(topic.data(), topic.size());
  reply_.set_payload(payload.data(), payload.size());
  const auto sent = s.channel.send(delivery, reply_);
  if (sent) {
    counters_.pushes.add();
    touch(s);
    return PushResult::kQueued;
  }
  counters_.pushes_dropped.add();
  using Refusal = session::Channel::Refusal;
  switch (s.channel.last_refusal()) {
    case Refusal::kTooLarge: return PushResult::kTooLarge;
    case Refusal::kBacklogFull:
      if (delivery != v1::DELIVERY_UNRELIABLE) {
        // The client cannot keep up with what it asked for; a reliable message dropped
        // silently would break its guarantee, so the session ends and says why.
        counters_.slow_consumers_closed.add();
        s.close_reason = "slow consumer: send backlog over " +
                         std::to_string(settings_.channel.max_send_backlog) + " bytes";
        s.channel.close(s.close_reason);
        touch(s);
      }
      return PushResult::kBacklogFull;
    case Refusal::kClosed:
    case Refusal::kNone: break;
  }
  return PushResult::kNoSession;
}

bool SessionTable::is_open(uint64_t connection_id) const {
  const auto it = sessions_.find(connection_id);
  return it != sessions_.end() && it->second->client_id == 0 && !it->second->channel.closed();
}

void SessionTable::confirm(Session& s) {
  if (s.client_id == 0) return;
  // An authentic packet: the client has the keys, the handshake is confirmed (§5.3).
  by_client_id_.erase(s.client_id);
  s.client_id = 0;
  s.handshake_reply = {};
  limits_.confirmed(s.peer.source_key());
  if (handler_ != nullptr) handler_->on_session_opened(s.id);
}

void SessionTable::touch(Session& s) {
  if (s.dirty) return;
  s.dirty = true;
  dirty_.push_back(&s);
}

void SessionTable::flush() {
  const auto now = Clock::now();
  if (handler_ != nullptr) handler_->on_turn_end(now);
  // Sessions touched while flushing (a close notifying the dispatcher) go to dirty_ for
  // the next turn; the scratch list keeps its capacity, so a turn does not allocate.
  flushing_.swap(dirty_);
  for (Session* s : flushing_) {
    s->dirty = false;
    if (s->abandoned) {  // never confirmed: nothing to say to an address that went quiet
      destroy(*s);
      continue;
    }
    for (;;) {
      auto buffer = outbox_.next_buffer();
      const size_t n = s->channel.poll_transmit(buffer, now);
      if (n == 0) break;
      outbox_.commit(s->peer, n);
      counters_.sent.add();
    }
    if (s->channel.closed()) {
      destroy(*s);
      continue;
    }
    auto next = s->channel.next_timer();
    if (s->client_id != 0) next = std::min(next, s->handshake_deadline);
    if (next != s->armed_for) {
      s->armed_for = next;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(next - now, Clock::duration(0)));
      uv_timer_start(s->timer.get(), &SessionTable::on_timer, static_cast<uint64_t>(wait.count()), 0);
    }
  }
  flushing_.clear();
}

void SessionTable::on_timer(uv_timer_t* timer) {
  Session& s = *static_cast<Session*>(timer->data);
  SessionTable& table = *s.table;
  s.armed_for = Clock::time_point::max();
  const auto now = Clock::now();
  if (s.client_id != 0 && now >= s.handshake_deadline) {
    // §5.3: the client never sent a sealed packet with the keys it was given.
    s.abandoned = true;
    s.close_reason = "handshake not confirmed within " +
                     std::to_string(table.settings_.handshake_timeout.count()) + " ms";
    table.counters_.handshakes_timed_out.add();
    table.touch(s);
    return;
  }
  Events events(table, s, now);
  s.channel.on_timer(now, events);
  table.touch(s);
}

size_t SessionTable::resting() const {
  size_t n = 0;
  for (const auto& [id, s] : sessions_) n += s->channel.resting() ? 1 : 0;
  return n;
}

SessionTable::Session* SessionTable::oldest_unconfirmed() {
  while (!unconfirmed_order_.empty()) {
    const auto it = sessions_.find(unconfirmed_order_.front());
    if (it != sessions_.end() && it->second->client_id != 0 && !it->second->abandoned) {
      return it->second.get();
    }
    unconfirmed_order_.pop_front();  // confirmed, abandoned or gone since
  }
  return nullptr;
}

void SessionTable::destroy(Session& s) {
  const uint64_t id = s.id;
  const auto stats = s.channel.stats();
  counters_.retransmitted.add(stats.retransmitted);
  counters_.probes.add(stats.probes);
  counters_.unreliable_dropped.add(stats.unreliable_dropped);
  counters_.closed.add();
  // Only a session the handler heard open is announced closed (an unconfirmed one never was).
  const bool announced = s.client_id == 0;
  const std::string reason = s.close_reason.empty() ? "closed by server" : s.close_reason;
  SPDLOG_DEBUG("event=session_closed session={:016x} peer={} reason=\"{}\"", id,
               s.peer.to_string(), reason);
  if (s.client_id != 0) by_client_id_.erase(s.client_id);
  limits_.closed(s.peer.source_key(), s.client_id == 0);
  if (s.dirty) std::erase(dirty_, &s);
  s.timer.close();
  sessions_.erase(id);  // s is gone from here on
  if (handler_ != nullptr && announced) handler_->on_session_closed(id, reason);
}

void SessionTable::close_all(std::string_view reason) {
  for (auto& [id, s] : sessions_) {
    s->channel.close(reason);
    touch(*s);
  }
  flush();
}

}  // namespace prism::net
