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

#include "async.hpp"
#include "prism/practice/v1/practice.pb.h"
#include "settings.hpp"

namespace prism::practice {

namespace v1 = ::prism::practice::v1;
using prism::sdk::Request;
using prism::sdk::Task;

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
                                                .concurrent = true};

  // `config` is the settings mapping as YAML text; a bad setting throws (init refused).
  PracticeService(prism::sdk::Host& host, std::string_view config);

  // Players (players.cpp).
  Task upsert_player(Request req, std::string payload);
  Task get_profile(Request req, std::string payload);
  // Matches (matches.cpp).
  Task record_match(Request req, std::string payload);
  Task get_match(Request req, std::string payload);
  // Leaderboards (leaderboards.cpp).
  Task leaderboard_top(Request req, std::string payload);
  Task leaderboard_page(Request req, std::string payload);
  Task leaderboard_around(Request req, std::string payload);
  Task leaderboard_rank(Request req, std::string payload);
  // Presence (presence.cpp).
  Task join(Request req, std::string payload);
  Task leave(Request req, std::string payload);
  Task heartbeat(Request req, std::string payload);
  Task get_presence(Request req, std::string payload);
  Task online(Request req, std::string payload);

  // Request ids relative to the range (docs/practice.md §2 lists each with its messages).
  static constexpr prism::sdk::Method<PracticeService> methods[] = {
      {0, "upsert_player", &PracticeService::upsert_player},
      {1, "get_profile", &PracticeService::get_profile},
      {10, "record_match", &PracticeService::record_match},
      {11, "get_match", &PracticeService::get_match},
      {20, "leaderboard_top", &PracticeService::leaderboard_top},
      {21, "leaderboard_page", &PracticeService::leaderboard_page},
      {22, "leaderboard_around", &PracticeService::leaderboard_around},
      {23, "leaderboard_rank", &PracticeService::leaderboard_rank},
      {30, "join", &PracticeService::join},
      {31, "leave", &PracticeService::leave},
      {32, "heartbeat", &PracticeService::heartbeat},
      {33, "get_presence", &PracticeService::get_presence},
      {34, "online", &PracticeService::online},
  };

 private:
  // Parses `payload` as `message`; on failure answers INVALID_ARGUMENT and returns false.
  bool parse(Request& req, const std::string& payload, google::protobuf::MessageLite& message);

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
  Task list_board(Request req, std::string payload, bool page);
  Task player_board(Request req, std::string payload, bool around);

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
