// The practice service's construction and shared steps, and the plugin's entry symbol
// (the handlers live in players.cpp, matches.cpp, leaderboards.cpp and presence.cpp).
#include <algorithm>

#include "layout.hpp"
#include "practice_service.hpp"
#include "stats.hpp"
#include "validate.hpp"

namespace prism::practice {

PracticeService::PracticeService(prism::sdk::Host& host, std::string_view config)
    : host_(host),
      settings_(parse_settings(config)),
      matches_recorded_(host.counter("matches_recorded", "Matches recorded (retries not counted)")),
      match_replays_(host.counter("match_replays", "Match submissions answered from the stored result")),
      write_conflicts_(host.counter("write_conflicts", "Batches retried after a version conflict")) {
  host_.info("practice ready queues=" + std::to_string(settings_.queues.size()) +
             " k_factor=" + std::to_string(settings_.k_factor) +
             " presence_ttl_s=" + std::to_string(settings_.presence_ttl_s));
}

Async<Outcome> PracticeService::ensure_boards() {
  if (boards_ready_.load(std::memory_order_acquire)) co_return Outcome{};
  for (const std::string& board : all_boards(settings_)) {
    const prism::sdk::StoreResult made =
        co_await host_.board_create(board, PRISM_ORDER_DESCENDING, PRISM_OP_SET);
    if (!made.ok()) {
      co_return Outcome{made.status, "creating leaderboard " + board + ": " + made.message};
    }
  }
  boards_ready_.store(true, std::memory_order_release);
  co_return Outcome{};
}

Async<std::optional<v1::Presence>> PracticeService::load_presence(std::string uuid) {
  const prism::sdk::StoreResult found = co_await host_.presence_get(presence_owner(uuid));
  if (!found.ok() || found.presences.empty()) co_return std::nullopt;
  const auto& p = found.presences[0];
  co_return parse_presence(p.owner, p.status, p.expires_at_ms);
}

v1::Profile PracticeService::make_profile(const v1::PlayerRecord& player, const v1::StatsRecord* stats,
                                          const std::optional<v1::Presence>& presence) const {
  v1::Profile out;
  out.set_uuid(player.uuid());
  out.set_name(player.name());
  out.set_display_rank(player.display_rank());
  out.set_locale(player.locale());
  out.mutable_attributes()->insert(player.attributes().begin(), player.attributes().end());
  out.set_created_ms(player.created_ms());
  out.set_updated_ms(player.updated_ms());
  if (stats != nullptr) {
    if (auto global = global_elo_of(*stats, settings_)) out.set_global_elo(*global);
    *out.mutable_totals() = stats->totals();
    // Configured queues in settings order, then any no longer configured.
    std::vector<const v1::QueueStats*> queues;
    for (const auto& q : stats->queues()) queues.push_back(&q);
    auto order = [&](const v1::QueueStats* q) {
      const auto at = std::find(settings_.queues.begin(), settings_.queues.end(), q->queue());
      return at - settings_.queues.begin();
    };
    std::stable_sort(queues.begin(), queues.end(),
                     [&](const auto* a, const auto* b) { return order(a) < order(b); });
    for (const auto* q : queues) *out.add_queues() = *q;
  }
  if (presence) *out.mutable_presence() = *presence;
  return out;
}

}  // namespace prism::practice

PRISM_PLUGIN(prism::practice::PracticeService)
