// Players: upsert (create, update profile fields, rename) and profile lookup by uuid or by
// case-insensitive name (docs/practice.md §3.1).
#include <algorithm>

#include "layout.hpp"
#include "practice_service.hpp"
#include "stats.hpp"
#include "validate.hpp"

namespace prism::practice {
namespace {

// A short, printable rendering of client text for an error message.
std::string shown(std::string_view text) {
  std::string out(text.substr(0, 32));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return out;
}

std::optional<std::string> check_name(std::string_view field, std::string_view name) {
  if (name.empty()) return std::string(field) + ": required";
  if (name.size() > kMaxNameLength) {
    return std::string(field) + ": at most " + std::to_string(kMaxNameLength) + " characters";
  }
  if (!valid_player_name(name)) return std::string(field) + ": only letters, digits and _ are allowed";
  return std::nullopt;
}

// Validates the request in place (the uuid made canonical); the error names the field.
std::optional<std::string> check_upsert(v1::UpsertPlayerRequest& in) {
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) return "uuid: not a Minecraft UUID (32 hex digits, dashes as 8-4-4-4-12 optional)";
  in.set_uuid(*uuid);
  if (auto problem = check_name("name", in.name())) return problem;
  if (in.has_display_rank()) {
    if (in.display_rank().size() > kMaxDisplayRankLength) {
      return "display_rank: at most " + std::to_string(kMaxDisplayRankLength) + " bytes";
    }
    if (!printable(in.display_rank())) return "display_rank: control characters are not allowed";
  }
  if (in.has_locale()) {
    if (in.locale().size() > kMaxLocaleLength) {
      return "locale: at most " + std::to_string(kMaxLocaleLength) + " characters";
    }
    if (!valid_locale(in.locale())) return "locale: only letters, digits, _ and - are allowed";
  }
  if (static_cast<size_t>(in.attributes_size()) > kMaxAttributes) {
    return "attributes: at most " + std::to_string(kMaxAttributes) + " keys";
  }
  for (const auto& [key, value] : in.attributes()) {
    if (!valid_attribute_key(key)) {
      return "attributes: key '" + shown(key) + "' is not 1..32 of [a-z0-9_.-]";
    }
    if (value.size() > kMaxAttributeValueLength) {
      return "attributes." + key + ": at most " + std::to_string(kMaxAttributeValueLength) + " bytes";
    }
    if (!printable(value)) return "attributes." + key + ": control characters are not allowed";
  }
  return std::nullopt;
}

}  // namespace

Task PracticeService::upsert_player(Request req, v1::UpsertPlayerRequest in) {
  if (auto problem = check_upsert(in)) co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  const std::string uuid = in.uuid();
  const std::string name_key = lowercase(in.name());

  for (uint32_t attempt = 0; attempt < settings_.record_attempts; ++attempt) {
    Doc<v1::PlayerRecord> player = co_await load<v1::PlayerRecord>(kPlayers, uuid);
    if (!player.ok() && player.status != PRISM_NOT_FOUND) co_return req.fail(player.status, player.message);
    Doc<v1::StatsRecord> stats = co_await load<v1::StatsRecord>(kStats, uuid);
    if (!stats.ok() && stats.status != PRISM_NOT_FOUND) co_return req.fail(stats.status, stats.message);
    const bool exists = player.ok();

    v1::PlayerRecord record = player.record;
    const std::string old_name = record.name();
    const int64_t now = now_ms();
    if (!exists) {
      record.set_uuid(uuid);
      record.set_created_ms(now);
    }
    record.set_name(in.name());
    record.set_updated_ms(now);
    if (in.has_display_rank()) record.set_display_rank(in.display_rank());
    if (in.has_locale()) record.set_locale(in.locale());
    for (const auto& [key, value] : in.attributes()) {
      if (value.empty()) {
        record.mutable_attributes()->erase(key);
      } else {
        (*record.mutable_attributes())[key] = value;
      }
    }
    if (static_cast<size_t>(record.attributes_size()) > kMaxAttributes) {
      co_return req.fail(PRISM_INVALID_ARGUMENT,
                         "attributes: at most " + std::to_string(kMaxAttributes) + " keys once merged");
    }

    WriteBatch batch;
    batch.put(kPlayers, uuid, record.SerializeAsString(), exists ? player.version : PRISM_VERSION_ABSENT);

    // The name index: the name (any case) leads to the last player to claim it. A rename
    // moves it in the same batch: claim the new key, drop the old one if still ours.
    const prism::sdk::StoreResult claimed = co_await host_.get(kNames, name_key);
    if (claimed.ok()) {
      if (claimed.documents.at(0).value != uuid) {
        batch.put(kNames, name_key, uuid, static_cast<int64_t>(claimed.documents.at(0).version));
      }
    } else if (claimed.status == PRISM_NOT_FOUND) {
      batch.put(kNames, name_key, uuid, PRISM_VERSION_ABSENT);
    } else {
      co_return req.fail(claimed.status, "reading the name index: " + claimed.message);
    }
    const std::string old_key = lowercase(old_name);
    if (exists && !old_key.empty() && old_key != name_key) {
      const prism::sdk::StoreResult previous = co_await host_.get(kNames, old_key);
      if (previous.ok() && previous.documents.at(0).value == uuid) {
        batch.remove(kNames, old_key, static_cast<int64_t>(previous.documents.at(0).version));
      } else if (!previous.ok() && previous.status != PRISM_NOT_FOUND) {
        co_return req.fail(previous.status, "reading the name index: " + previous.message);
      }
    }

    // The stats document mirrors the name for leaderboard entries: a new player gets an
    // empty one; a rename rewrites it (so a concurrent match conflicts and re-reads) and
    // re-submits the player's entries with the new name.
    v1::StatsRecord stats_record = stats.record;
    if (!stats.ok()) {
      stats_record.set_uuid(uuid);
      stats_record.set_name(in.name());
      batch.put(kStats, uuid, stats_record.SerializeAsString(), PRISM_VERSION_ABSENT);
    } else if (stats_record.name() != in.name()) {
      stats_record.set_name(in.name());
      batch.put(kStats, uuid, stats_record.SerializeAsString(), stats.version);
      for (const BoardValue& value : board_values(stats_record, settings_)) {
        batch.submit(value.board, uuid, value.score, in.name());
      }
    }
    if (batch.has(PRISM_WRITE_SUBMIT)) {
      const Outcome boards = co_await ensure_boards();
      if (!boards.ok()) co_return req.fail(boards.status, boards.message);
    }

    const prism::sdk::StoreResult applied = co_await host_.apply(batch.writes());
    if (applied.ok()) {
      std::optional<v1::Presence> presence = co_await load_presence(uuid);
      if (presence && presence->name() != in.name()) {
        // Online under the old name: the online list shows the new one from now on.
        const int64_t left = std::max<int64_t>(1, presence->expires_at_ms() - now_ms());
        const prism::sdk::StoreResult moved = co_await host_.presence_set(
            presence_owner(uuid), presence_status(presence->server(), presence->queue(), in.name()),
            static_cast<uint32_t>(std::min<int64_t>(left, presence_ttl_ms())));
        if (moved.ok()) presence->set_name(in.name());
      }
      co_return req.ok(make_profile(record, &stats_record, presence).SerializeAsString());
    }
    if (applied.status != PRISM_CONFLICT) {
      co_return req.fail(applied.status, "saving player " + uuid + ": " + applied.message);
    }
    write_conflicts_.add();
  }
  req.fail(PRISM_CONFLICT, "player " + uuid + " kept changing during " +
                               std::to_string(settings_.record_attempts) + " attempts; retry");
}

Task PracticeService::get_profile(Request req, v1::GetProfileRequest in) {
  std::string uuid;
  std::string by_name;
  if (in.by_case() == v1::GetProfileRequest::kUuid) {
    const auto canonical = canonical_uuid(in.uuid());
    if (!canonical) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
    uuid = *canonical;
  } else if (in.by_case() == v1::GetProfileRequest::kName) {
    if (auto problem = check_name("name", in.name())) co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
    by_name = lowercase(in.name());
    const prism::sdk::StoreResult found = co_await host_.get(kNames, by_name);
    if (found.status == PRISM_NOT_FOUND) {
      co_return req.fail(PRISM_NOT_FOUND, "name: no player named " + in.name());
    }
    if (!found.ok()) co_return req.fail(found.status, "reading the name index: " + found.message);
    uuid = found.documents.at(0).value;
  } else {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid or name: one of them is required");
  }

  Doc<v1::PlayerRecord> player = co_await load<v1::PlayerRecord>(kPlayers, uuid);
  if (player.status == PRISM_NOT_FOUND) co_return req.fail(PRISM_NOT_FOUND, "uuid: unknown player " + uuid);
  if (!player.ok()) co_return req.fail(player.status, player.message);
  // A lookup racing a rename may read the index before the move: answer as after it.
  if (!by_name.empty() && lowercase(player.record.name()) != by_name) {
    co_return req.fail(PRISM_NOT_FOUND, "name: no player named " + in.name());
  }
  Doc<v1::StatsRecord> stats = co_await load<v1::StatsRecord>(kStats, uuid);
  if (!stats.ok() && stats.status != PRISM_NOT_FOUND) co_return req.fail(stats.status, stats.message);
  const std::optional<v1::Presence> presence = co_await load_presence(uuid);
  req.ok(make_profile(player.record, stats.ok() ? &stats.record : nullptr, presence).SerializeAsString());
}

}  // namespace prism::practice
