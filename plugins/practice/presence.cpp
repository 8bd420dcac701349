// Presence: which server (and queue) each player is on, kept in the host's presence facet
// with a time to live so every node sees it and a crashed server's players drop off
// (docs/practice.md §3.4).
#include <algorithm>

#include "layout.hpp"
#include "practice_service.hpp"
#include "validate.hpp"

namespace prism::practice {
namespace {

constexpr int32_t kMaxOnlineLimit = 1000;  // the facet's list limit
constexpr int32_t kDefaultOnlineLimit = 100;

}  // namespace

Task PracticeService::join(Request req, v1::JoinRequest in) {
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
  if (!valid_server_name(in.server())) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "server: required, 1..32 of [A-Za-z0-9_.-]");
  }
  if (!in.queue().empty() && !settings_.has_queue(in.queue())) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "queue: unknown queue '" + in.queue().substr(0, kMaxQueueLength) +
                                                   "' (queues: " + settings_.queue_list() + "; \"\" for none)");
  }
  Doc<v1::PlayerRecord> player = co_await load<v1::PlayerRecord>(kPlayers, *uuid);
  if (player.status == PRISM_NOT_FOUND) {
    co_return req.fail(PRISM_NOT_FOUND, "uuid: unknown player " + *uuid + " (upsert_player first)");
  }
  if (!player.ok()) co_return req.fail(player.status, player.message);

  const prism::sdk::StoreResult set = co_await host_.presence_set(
      presence_owner(*uuid), presence_status(in.server(), in.queue(), player.record.name()), presence_ttl_ms());
  if (!set.ok()) co_return req.fail(set.status, "setting presence: " + set.message);
  v1::Presence out;
  out.set_uuid(*uuid);
  out.set_name(player.record.name());
  out.set_server(in.server());
  out.set_queue(in.queue());
  out.set_expires_at_ms(now_ms() + presence_ttl_ms());
  req.ok(out.SerializeAsString());
}

Task PracticeService::leave(Request req, v1::PlayerRequest in) {
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
  const prism::sdk::StoreResult removed = co_await host_.presence_remove(presence_owner(*uuid));
  if (removed.status == PRISM_NOT_FOUND) {
    co_return req.fail(PRISM_NOT_FOUND, "uuid: " + *uuid + " is not online");
  }
  if (!removed.ok()) co_return req.fail(removed.status, "removing presence: " + removed.message);
  req.ok();
}

Task PracticeService::heartbeat(Request req, v1::PlayerRequest in) {
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
  const prism::sdk::StoreResult found = co_await host_.presence_get(presence_owner(*uuid));
  if (found.status == PRISM_NOT_FOUND) {
    co_return req.fail(PRISM_NOT_FOUND, "uuid: " + *uuid + " is not online (join first)");
  }
  if (!found.ok() || found.presences.empty()) {
    co_return req.fail(found.ok() ? PRISM_INTERNAL : found.status, "reading presence: " + found.message);
  }
  std::optional<v1::Presence> presence =
      parse_presence(found.presences[0].owner, found.presences[0].status, 0);
  if (!presence) co_return req.fail(PRISM_INTERNAL, "presence of " + *uuid + " is not the practice service's");
  const prism::sdk::StoreResult set =
      co_await host_.presence_set(presence_owner(*uuid), found.presences[0].status, presence_ttl_ms());
  if (!set.ok()) co_return req.fail(set.status, "setting presence: " + set.message);
  presence->set_expires_at_ms(now_ms() + presence_ttl_ms());
  req.ok(presence->SerializeAsString());
}

Task PracticeService::get_presence(Request req, v1::PlayerRequest in) {
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
  const prism::sdk::StoreResult found = co_await host_.presence_get(presence_owner(*uuid));
  if (found.status == PRISM_NOT_FOUND) co_return req.fail(PRISM_NOT_FOUND, "uuid: " + *uuid + " is not online");
  if (!found.ok() || found.presences.empty()) {
    co_return req.fail(found.ok() ? PRISM_INTERNAL : found.status, "reading presence: " + found.message);
  }
  const auto& p = found.presences[0];
  const std::optional<v1::Presence> presence = parse_presence(p.owner, p.status, p.expires_at_ms);
  if (!presence) co_return req.fail(PRISM_INTERNAL, "presence of " + *uuid + " is not the practice service's");
  req.ok(presence->SerializeAsString());
}

Task PracticeService::online(Request req, v1::OnlineRequest in) {
  if (!in.server().empty() && !valid_server_name(in.server())) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "server: not 1..32 of [A-Za-z0-9_.-]");
  }
  if (!in.queue().empty() && !settings_.has_queue(in.queue())) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, "queue: unknown queue '" + in.queue().substr(0, kMaxQueueLength) +
                                                   "' (queues: " + settings_.queue_list() + ")");
  }
  if (in.limit() < 0 || in.limit() > kMaxOnlineLimit) {
    co_return req.fail(PRISM_INVALID_ARGUMENT,
                       "limit: 1.." + std::to_string(kMaxOnlineLimit) + " (0 for the default)");
  }
  const uint32_t limit = static_cast<uint32_t>(in.limit() == 0 ? kDefaultOnlineLimit : in.limit());
  // A queue on every server has no common status prefix: list all, keep that queue's.
  const bool filter_queue = in.server().empty() && !in.queue().empty();
  const prism::sdk::StoreResult listed = co_await host_.presence_list(
      presence_prefix(in.server(), in.queue()), filter_queue ? static_cast<uint32_t>(kMaxOnlineLimit) : limit);
  if (!listed.ok()) co_return req.fail(listed.status, "listing presence: " + listed.message);
  v1::OnlineList out;
  for (const auto& p : listed.presences) {
    std::optional<v1::Presence> presence = parse_presence(p.owner, p.status, p.expires_at_ms);
    if (!presence || (filter_queue && presence->queue() != in.queue())) continue;
    if (static_cast<uint32_t>(out.players_size()) >= limit) break;
    *out.add_players() = std::move(*presence);
  }
  req.ok(out.SerializeAsString());
}

}  // namespace prism::practice
