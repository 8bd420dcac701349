// Leaderboards: global and per-queue by Elo, wins, kills and best streak; top N, a page
// after a rank, the entries around a player, a player's rank (docs/practice.md §3.3).
#include <google/protobuf/arena.h>

#include <cstddef>

#include "layout.hpp"
#include "practice_service.hpp"
#include "validate.hpp"

namespace prism::practice {
namespace {

constexpr int32_t kMaxBoardLimit = 100;
constexpr int32_t kDefaultTopLimit = 10;
constexpr int32_t kDefaultAroundLimit = 5;

std::optional<std::string> check_board(v1::Stat stat, const std::string& queue, const Settings& settings) {
  if (stat_name(stat).empty()) {
    return "stat: required (STAT_ELO, STAT_WINS, STAT_KILLS or STAT_BEST_STREAK)";
  }
  if (!queue.empty() && !settings.has_queue(queue)) {
    return "queue: unknown queue '" + queue.substr(0, kMaxQueueLength) + "' (queues: " +
           settings.queue_list() + "; \"\" for global)";
  }
  return std::nullopt;
}

std::optional<std::string> check_limit(int32_t limit) {
  if (limit < 0 || limit > kMaxBoardLimit) {
    return "limit: 1.." + std::to_string(kMaxBoardLimit) + " (0 for the default)";
  }
  return std::nullopt;
}

// The reply is built in an arena whose first block is on the stack: on the heap, a top-10
// reply was ~35 allocations and as many frees (an entry message and two strings per entry,
// the repeated field's growth), a fifth of a top-10 read's instructions with its
// serialization (callgrind, docs/performance.md). Only uuids longer than a short string
// still allocate; a window past ~25 entries grows the arena onto the heap.
std::string reply_of(v1::Stat stat, const std::string& queue, const std::vector<prism::sdk::Entry>& entries) {
  alignas(std::max_align_t) char first_block[4096];
  google::protobuf::ArenaOptions options;
  options.initial_block = first_block;
  options.initial_block_size = sizeof first_block;
  google::protobuf::Arena arena(options);
  auto* out = google::protobuf::Arena::CreateMessage<v1::Leaderboard>(&arena);
  out->set_stat(stat);
  out->set_queue(queue);
  out->mutable_entries()->Reserve(static_cast<int>(entries.size()));
  for (const auto& e : entries) {
    v1::LeaderboardEntry* entry = out->add_entries();
    entry->set_rank(static_cast<int64_t>(e.rank));
    entry->set_uuid(e.owner);
    entry->set_name(e.metadata);
    entry->set_value(e.score);
  }
  return out->SerializeAsString();
}

}  // namespace

Task PracticeService::leaderboard_top(Request req, v1::LeaderboardRequest in) {
  return list_board(std::move(req), std::move(in), false);
}

Task PracticeService::leaderboard_page(Request req, v1::LeaderboardRequest in) {
  return list_board(std::move(req), std::move(in), true);
}

Task PracticeService::leaderboard_around(Request req, v1::LeaderboardPlayerRequest in) {
  return player_board(std::move(req), std::move(in), true);
}

Task PracticeService::leaderboard_rank(Request req, v1::LeaderboardPlayerRequest in) {
  return player_board(std::move(req), std::move(in), false);
}

Task PracticeService::list_board(Request req, v1::LeaderboardRequest in, bool page) {
  if (auto problem = check_board(in.stat(), in.queue(), settings_)) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  }
  if (auto problem = check_limit(in.limit())) co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  if (in.after_rank() < 0) co_return req.fail(PRISM_INVALID_ARGUMENT, "after_rank: must not be negative");
  const uint32_t limit = static_cast<uint32_t>(in.limit() == 0 ? kDefaultTopLimit : in.limit());
  const Outcome boards = co_await ensure_boards();
  if (!boards.ok()) co_return req.fail(boards.status, boards.message);

  const std::string board = board_name(in.stat(), in.queue());
  prism::sdk::StoreResult listed;
  if (page) {
    listed = co_await host_.board_page(board, static_cast<uint64_t>(in.after_rank()), limit);
  } else {
    listed = co_await host_.board_top(board, limit);
  }
  if (!listed.ok()) co_return req.fail(listed.status, "reading " + board + ": " + listed.message);
  req.ok(reply_of(in.stat(), in.queue(), listed.entries));
}

Task PracticeService::player_board(Request req, v1::LeaderboardPlayerRequest in, bool around) {
  if (auto problem = check_board(in.stat(), in.queue(), settings_)) {
    co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  }
  const auto uuid = canonical_uuid(in.uuid());
  if (!uuid) co_return req.fail(PRISM_INVALID_ARGUMENT, "uuid: not a Minecraft UUID");
  if (around) {
    if (auto problem = check_limit(in.limit())) co_return req.fail(PRISM_INVALID_ARGUMENT, *problem);
  }
  const uint32_t limit = static_cast<uint32_t>(in.limit() == 0 ? kDefaultAroundLimit : in.limit());
  const Outcome boards = co_await ensure_boards();
  if (!boards.ok()) co_return req.fail(boards.status, boards.message);

  const std::string board = board_name(in.stat(), in.queue());
  prism::sdk::StoreResult found;
  if (around) {
    found = co_await host_.board_around(board, *uuid, limit);
  } else {
    found = co_await host_.board_rank(board, *uuid);
  }
  if (found.status == PRISM_NOT_FOUND) {
    co_return req.fail(PRISM_NOT_FOUND, "uuid: " + *uuid + " has no entry on " + board);
  }
  if (!found.ok()) co_return req.fail(found.status, "reading " + board + ": " + found.message);
  req.ok(reply_of(in.stat(), in.queue(), found.entries));
}

}  // namespace prism::practice
