// The echo workload, and the bundled services' workloads when this build has them.
#include "workload.hpp"

#ifdef PRISM_BENCH_PRACTICE
#include "prism/practice/v1/practice.pb.h"
#endif

namespace prism::bench {
namespace {

class Echo final : public Workload {
 public:
  Echo(uint32_t packet_id, size_t size) : packet_id_(packet_id), payload_(echo_payload(size)) {}
  uint32_t packet_id() const override { return packet_id_; }
  std::string_view next() override { return payload_; }

 private:
  uint32_t packet_id_;
  std::string payload_;
};

#ifdef PRISM_BENCH_PRACTICE
namespace practice = prism::practice::v1;

// plugins/practice's default range and request ids (docs/practice.md §2).
constexpr uint32_t kUpsertPlayer = 1000;
constexpr uint32_t kRecordMatch = 1010;
constexpr uint32_t kLeaderboardTop = 1020;
constexpr const char* kQueues[] = {"nodebuff", "sumo", "boxing"};

// Player i of the pool: a fixed UUID and name, so runs against one database reuse them.
std::string player_uuid(uint32_t i) {
  char text[37];
  std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012x", i);
  return text;
}

// A small xorshift: the same sequence per thread, no allocation.
uint64_t next_random(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

// One ranked 1v1 per request between two random players of the pool, each match id new.
class PracticeRecord final : public Workload {
 public:
  PracticeRecord(const WorkloadOptions& o, int thread)
      : players_(o.players), prefix_(o.run_id + "-" + std::to_string(thread) + "-"),
        random_(0x9E3779B97F4A7C15ull * static_cast<uint64_t>(thread + 1)) {}
  uint32_t packet_id() const override { return kRecordMatch; }
  std::string_view next() override {
    const auto a = static_cast<uint32_t>(next_random(random_) % players_);
    auto b = static_cast<uint32_t>(next_random(random_) % (players_ - 1));
    if (b >= a) ++b;
    practice::RecordMatchRequest m;
    m.set_match_id(prefix_ + std::to_string(sequence_++));
    m.set_queue(kQueues[sequence_ % std::size(kQueues)]);
    m.set_ranked(true);
    auto* w = m.add_winners();
    w->set_uuid(player_uuid(a));
    w->set_kills(1);
    auto* l = m.add_losers();
    l->set_uuid(player_uuid(b));
    m.set_duration_ms(60000);
    payload_ = m.SerializeAsString();
    return payload_;
  }

 private:
  uint32_t players_;
  std::string prefix_;
  uint64_t random_;
  uint64_t sequence_ = 0;
  std::string payload_;
};

// The top 10 of a queue's Elo board, queues in turn.
class PracticeTop10 final : public Workload {
 public:
  explicit PracticeTop10(int thread) : turn_(static_cast<size_t>(thread)) {
    for (const char* queue : kQueues) {
      practice::LeaderboardRequest r;
      r.set_stat(practice::STAT_ELO);
      r.set_queue(queue);
      r.set_limit(10);
      payloads_.push_back(r.SerializeAsString());
    }
  }
  uint32_t packet_id() const override { return kLeaderboardTop; }
  std::string_view next() override { return payloads_[turn_++ % payloads_.size()]; }

 private:
  size_t turn_;
  std::vector<std::string> payloads_;
};

Expected<void> expect_ok(Expected<client::Reply> reply, std::string_view what) {
  if (!reply) return make_error(std::string(what) + ": " + reply.error());
  if (reply->status != v1::STATUS_OK) {
    return make_error(std::string(what) + " answered " + std::string(client::status_name(reply->status)) +
                      ": " + reply->message);
  }
  return {};
}

Expected<void> prepare_practice(const WorkloadOptions& o, client::Client& session) {
  if (o.players < 2) return make_error("--players must be at least 2");
  for (uint32_t i = 0; i < o.players; ++i) {
    practice::UpsertPlayerRequest p;
    p.set_uuid(player_uuid(i));
    p.set_name("bench_" + std::to_string(i));
    if (auto ok = expect_ok(session.call(kUpsertPlayer, p.SerializeAsString()), "upsert_player"); !ok) {
      return ok;
    }
  }
  // The boards need entries for top-10 reads to read anything.
  WorkloadOptions seeding = o;
  seeding.run_id = o.run_id + "-seed";
  PracticeRecord matches(seeding, 0);
  for (uint32_t i = 0; i < 200; ++i) {
    if (auto ok = expect_ok(session.call(kRecordMatch, matches.next()), "record_match"); !ok) return ok;
  }
  return {};
}
#endif

}  // namespace

std::string echo_payload(size_t size) {
  std::string payload(size, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  return payload;
}

std::vector<std::string> workload_names() {
#ifdef PRISM_BENCH_PRACTICE
  return {"echo", "practice-record", "practice-top10"};
#else
  return {"echo"};
#endif
}

Expected<void> prepare_workload([[maybe_unused]] const WorkloadOptions& options,
                                [[maybe_unused]] client::Client& session) {
#ifdef PRISM_BENCH_PRACTICE
  if (options.name.starts_with("practice-")) return prepare_practice(options, session);
#endif
  return {};
}

std::unique_ptr<Workload> make_workload(const WorkloadOptions& options, [[maybe_unused]] int thread) {
#ifdef PRISM_BENCH_PRACTICE
  if (options.name == "practice-record") return std::make_unique<PracticeRecord>(options, thread);
  if (options.name == "practice-top10") return std::make_unique<PracticeTop10>(thread);
#endif
  return std::make_unique<Echo>(options.packet_id, options.payload_size);
}

}  // namespace prism::bench
