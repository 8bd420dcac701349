// The `practice` service (docs/practice.md): the backend of a Minecraft practice server.
// Players and profiles, match results with per-queue Elo (one atomic storage batch per
// match, idempotent per match id), leaderboards, and presence shared by every node.
//
// Every handler is a coroutine over the host's storage facade; nothing is kept in memory
// but the settings and a flag saying the leaderboards exist, so any number of nodes (and a
// hot-reloaded copy) serve the same data. Writes use optimistic concurrency: read the
// documents with their versions, compute, apply one batch conditioned on those versions,
// and on CONFLICT read again (at most settings.record_attempts times).
#pragma once

#include <prism/plugin.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

#include "prism/practice/v1/practice.pb.h"
#include "settings.hpp"
#include "validate.hpp"

namespace prism::practice {

namespace v1 = ::prism::practice::v1;
using prism::sdk::Async;
using prism::sdk::Request;
using prism::sdk::Task;
using prism::sdk::WriteBatch;

// A storage call's status and message, for steps that produce nothing else.
struct Outcome {
  prism_status_t status = PRISM_OK;
  std::string message;
  bool ok() const { return status == PRISM_OK; }
};

// A document read and parsed: status OK (record and version set), NOT_FOUND (version 0),
// or the failure; a document that does not parse is INTERNAL.
template <class Record>
struct Doc {
  prism_status_t status = PRISM_OK;
  std::string message;
  Record record;
  int64_t version = 0;
  bool ok() const { return status == PRISM_OK; }
};

class PracticeService {
 public:
  static constexpr prism::sdk::ServiceInfo info{.name = "practice",
                                                .version = "1.0.0",
                                                .packet_id_first = 1000,
                                                .packet_id_count = 100,
                                                .concurrent = true,
                                                .max_payload = kMaxPayload};

  // `config` is the settings mapping as YAML text; a bad setting throws (init refused).
  PracticeService(prism::sdk::Host& host, std::string_view config);

  // Players (players.cpp).
  Task upsert_player(Request req, v1::UpsertPlayerRequest in);
  Task get_profile(Request req, v1::GetProfileRequest in);
  // Matches (matches.cpp).
  Task record_match(Request req, v1::RecordMatchRequest in);
  Task get_match(Request req, v1::GetMatchRequest in);
  // Leaderboards (leaderboards.cpp).
  Task leaderboard_top(Request req, v1::LeaderboardRequest in);
  Task leaderboard_page(Request req, v1::LeaderboardRequest in);
  Task leaderboard_around(Request req, v1::LeaderboardPlayerRequest in);
  Task leaderboard_rank(Request req, v1::LeaderboardPlayerRequest in);
  // Presence (presence.cpp).
  Task join(Request req, v1::JoinRequest in);
  Task leave(Request req, v1::PlayerRequest in);
  Task heartbeat(Request req, v1::PlayerRequest in);
  Task get_presence(Request req, v1::PlayerRequest in);
  Task online(Request req, v1::OnlineRequest in);

  // Request ids relative to the range (docs/practice.md §2 lists each with its messages).
  static constexpr prism::sdk::Method<PracticeService> methods[] = {
      prism::sdk::parsed<&PracticeService::upsert_player>(v1::METHOD_UPSERT_PLAYER, "upsert_player"),
      prism::sdk::parsed<&PracticeService::get_profile>(v1::METHOD_GET_PROFILE, "get_profile"),
      prism::sdk::parsed<&PracticeService::record_match>(v1::METHOD_RECORD_MATCH, "record_match"),
      prism::sdk::parsed<&PracticeService::get_match>(v1::METHOD_GET_MATCH, "get_match"),
      prism::sdk::parsed<&PracticeService::leaderboard_top>(v1::METHOD_LEADERBOARD_TOP, "leaderboard_top"),
      prism::sdk::parsed<&PracticeService::leaderboard_page>(v1::METHOD_LEADERBOARD_PAGE, "leaderboard_page"),
      prism::sdk::parsed<&PracticeService::leaderboard_around>(v1::METHOD_LEADERBOARD_AROUND, "leaderboard_around"),
      prism::sdk::parsed<&PracticeService::leaderboard_rank>(v1::METHOD_LEADERBOARD_RANK, "leaderboard_rank"),
      prism::sdk::parsed<&PracticeService::join>(v1::METHOD_JOIN, "join"),
      prism::sdk::parsed<&PracticeService::leave>(v1::METHOD_LEAVE, "leave"),
      prism::sdk::parsed<&PracticeService::heartbeat>(v1::METHOD_HEARTBEAT, "heartbeat"),
      prism::sdk::parsed<&PracticeService::get_presence>(v1::METHOD_GET_PRESENCE, "get_presence"),
      prism::sdk::parsed<&PracticeService::online>(v1::METHOD_ONLINE, "online"),
  };

 private:
  // Reads and parses (collection, key).
  template <class Record>
  Async<Doc<Record>> load(std::string_view collection, std::string key);

  // Creates every leaderboard once per loaded instance (board_create is idempotent, so
  // concurrent first requests and other nodes may race harmlessly).
  Async<Outcome> ensure_boards();

  // The player's live presence; nullopt when offline or when the presence facet fails.
  Async<std::optional<v1::Presence>> load_presence(std::string uuid);

  // The profile reply: record, stats (may be absent) and presence.
  v1::Profile make_profile(const v1::PlayerRecord& player, const v1::StatsRecord* stats,
                           const std::optional<v1::Presence>& presence) const;

  // Shared bodies of the leaderboard requests.
  Task list_board(Request req, v1::LeaderboardRequest in, bool page);
  Task player_board(Request req, v1::LeaderboardPlayerRequest in, bool around);

  // Validates a RecordMatchRequest in place (uuids made canonical); the error names the field.
  std::optional<std::string> check_match(v1::RecordMatchRequest& match) const;

  int64_t now_ms() const { return static_cast<int64_t>(host_.server_info().now_ms); }
  uint32_t presence_ttl_ms() const { return settings_.presence_ttl_s * 1000u; }

  prism::sdk::Host& host_;  // owned by the SDK; outlives this instance
  const Settings settings_;
  std::atomic<bool> boards_ready_{false};
  prism::sdk::Counter matches_recorded_;
  prism::sdk::Counter match_replays_;
  prism::sdk::Counter write_conflicts_;
};

}  // namespace prism::practice

// ---- template definitions ------------------------------------------------------------------

namespace prism::practice {

template <class Record>
Async<Doc<Record>> PracticeService::load(std::string_view collection, std::string key) {
  const prism::sdk::StoreResult found = co_await host_.get(collection, key);
  Doc<Record> doc;
  doc.status = found.status;
  doc.message = found.message;
  if (found.ok()) {
    if (found.documents.empty() || !doc.record.ParseFromString(found.documents[0].value)) {
      doc.status = PRISM_INTERNAL;
      doc.message = std::string(collection) + "/" + key + ": stored document does not parse";
      host_.error(doc.message);
    } else {
      doc.version = static_cast<int64_t>(found.documents[0].version);
    }
  }
  co_return doc;
}

}  // namespace prism::practice
