// Matches: record a result in one atomic batch (the match document, every player's stats
// document at the version read, and the leaderboard entries that changed), idempotent per
// match id; read a recorded match back (docs/practice.md §3.2, §5).
#include <set>

#include "layout.hpp"
#include "practice_service.hpp"
#include "stats.hpp"
#include "validate.hpp"

namespace prism::practice {
namespace {

std::string field_of(bool winner, int index) {
  return std::string(winner ? "winners[" : "losers[") + std::to_string(index) + "]";
}

// Checks one side; uuids made canonical; `seen` catches a player listed twice.
std::optional<std::string> check_side(bool winners, google::protobuf::RepeatedPtrField<v1::PlayerResult>& side,
                                      uint32_t max_team_size, std::set<std::string>& seen) {
  const char* name = winners ? "winners" : "losers";
  if (side.empty()) return std::string(name) + ": at least one player is needed";
  if (static_cast<uint32_t>(side.size()) > max_team_size) {
    return std::string(name) + ": at most " + std::to_string(max_team_size) + " players (max_team_size)";
  }
  for (int i = 0; i < side.size(); ++i) {
    v1::PlayerResult& player = side[i];
    const std::string field = field_of(winners, i);
    const auto uuid = canonical_uuid(player.uuid());
    if (!uuid) return field + ".uuid: not a Minecraft UUID";
    player.set_uuid(*uuid);
    if (!seen.insert(*uuid).second) return field + ".uuid: " + *uuid + " is listed twice in the match";
    if (player.kills() < 0) return field + ".kills: must not be negative";
    if (player.kills() > kMaxKillsPerMatch) {
      return field + ".kills: at most " + std::to_string(kMaxKillsPerMatch);
    }
    if (player.has_deaths() && player.deaths() < 0) return field + ".deaths: must not be negative";
    if (player.has_deaths() && player.deaths() > kMaxKillsPerMatch) {
      return field + ".deaths: at most " + std::to_string(kMaxKillsPerMatch);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> PracticeService::check_match(v1::RecordMatchRequest& match) const {
  if (match.match_id().empty()) return "match_id: required";
  if (match.match_id().size() > kMaxMatchIdLength) {
    return "match_id: at most " + std::to_string(kMaxMatchIdLength) + " characters";
  }
  if (!valid_match_id(match.match_id())) return "match_id: only letters, digits and _ . : - are allowed";
  if (match.queue().empty()) return "queue: required (queues: " + settings_.queue_list() + ")";
  if (!settings_.has_queue(match.queue())) {
    return "queue: unknown queue '" + match.queue().substr(0, kMaxQueueLength) +
           "' (queues: " + settings_.queue_list() + ")";
  }
  if (match.duration_ms() < 0) return "duration_ms: must not be negative";
  if (match.duration_ms() > kMaxDurationMs) {
    return "duration_ms: at most " + std::to_string(kMaxDurationMs) + " (7 days)";
  }
  if (!match.server().empty() && !valid_server_name(match.server())) {
    return "server: not 1..32 of [A-Za-z0-9_.-]";
  }
  std::set<std::string> seen;
  if (auto problem = check_side(true, *match.mutable_winners(), settings_.max_team_size, seen)) return problem;
  if (auto problem = check_side(false, *match.mutable_losers(), settings_.max_team_size, seen)) return problem;
  return std::nullopt;
}

Task PracticeService::record_match(Request req, v1::RecordMatchRequest match) {
  if (auto problem = check_match(match)) co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  const std::string& id = match.match_id();
  // Players in the order apply_match expects: winners, then losers.
  std::vector<std::string> uuids, fields;
  for (int i = 0; i < match.winners_size(); ++i) {
    uuids.push_back(match.winners(i).uuid());
    fields.push_back(field_of(true, i));
  }
  for (int i = 0; i < match.losers_size(); ++i) {
    uuids.push_back(match.losers(i).uuid());
    fields.push_back(field_of(false, i));
  }

  for (uint32_t attempt = 0; attempt < settings_.record_attempts; ++attempt) {
    // Recorded already (a retry, or a concurrent copy that won): answer what it got. The
    // first of several attempts does not look: the batch writes the match only if it is
    // absent, so a recorded match comes back as a conflict and the next attempt finds it,
    // while a new match (nearly every call) saves a read.
    Doc<v1::MatchRecord> recorded;
    recorded.status = PRISM_NOT_FOUND;
    if (attempt > 0 || settings_.record_attempts == 1) {
      recorded = co_await load<v1::MatchRecord>(kMatches, id);
    }
    if (recorded.ok()) {
      if (recorded.record.request().SerializeAsString() != match.SerializeAsString()) {
        co_return req.fail(PRISM_CONFLICT,
                           "match_id: " + id + " was already recorded with different content");
      }
      match_replays_.add();
      co_return req.reply(PRISM_OK, "match already recorded", prism::sdk::as_bytes(recorded.record.reply()));
    }
    if (recorded.status != PRISM_NOT_FOUND) {
      co_return req.fail(recorded.status, "reading match " + id + ": " + recorded.message);
    }

    std::vector<v1::StatsRecord> stats;
    std::vector<int64_t> versions;
    for (size_t i = 0; i < uuids.size(); ++i) {
      Doc<v1::StatsRecord> doc = co_await load<v1::StatsRecord>(kStats, uuids[i]);
      if (doc.status == PRISM_NOT_FOUND) {
        co_return req.fail(PRISM_NOT_FOUND,
                           fields[i] + ".uuid: unknown player " + uuids[i] + " (upsert_player first)");
      }
      if (!doc.ok()) co_return req.fail(doc.status, doc.message);
      stats.push_back(std::move(doc.record));
      versions.push_back(doc.version);
    }

    std::vector<std::vector<BoardValue>> before;
    for (const auto& s : stats) before.push_back(board_values(s, settings_));
    const v1::MatchResult result = apply_match(settings_, match, stats, now_ms());
    const std::string reply = result.SerializeAsString();

    v1::MatchRecord record;
    *record.mutable_request() = match;
    record.set_reply(reply);
    WriteBatch batch;
    batch.put(kMatches, id, record.SerializeAsString(), PRISM_VERSION_ABSENT);
    for (size_t i = 0; i < stats.size(); ++i) {
      batch.put(kStats, uuids[i], stats[i].SerializeAsString(), versions[i]);
    }
    for (size_t i = 0; i < stats.size(); ++i) {
      for (const BoardValue& value : changed_board_values(before[i], board_values(stats[i], settings_))) {
        batch.submit(value.board, uuids[i], value.score, stats[i].name());
      }
    }
    const Outcome boards = co_await ensure_boards();
    if (!boards.ok()) co_return req.fail(boards.status, boards.message);

    const prism::sdk::StoreResult applied = co_await host_.apply(batch.writes());
    if (applied.ok()) {
      matches_recorded_.add();
      co_return req.ok(reply);
    }
    if (applied.status != PRISM_CONFLICT) {
      co_return req.fail(applied.status, "recording match " + id + ": " + applied.message);
    }
    write_conflicts_.add();  // another match of these players (or this one) got in first
  }
  req.fail(PRISM_CONFLICT, "match " + id + ": its players' stats kept changing during " +
                               std::to_string(settings_.record_attempts) +
                               " attempts; resend it (the same match_id is never counted twice)");
}

Task PracticeService::get_match(Request req, v1::GetMatchRequest in) {
  if (!valid_match_id(in.match_id())) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "match_id: not 1..64 of [A-Za-z0-9_.:-]");
  }
  Doc<v1::MatchRecord> recorded = co_await load<v1::MatchRecord>(kMatches, in.match_id());
  if (recorded.status == PRISM_NOT_FOUND) {
    co_return req.fail(PRISM_NOT_FOUND, "match_id: no match " + in.match_id());
  }
  if (!recorded.ok()) co_return req.fail(recorded.status, recorded.message);
  req.ok(prism::sdk::as_bytes(recorded.record.reply()));
}

}  // namespace prism::practice
