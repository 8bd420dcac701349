// The practice service's settings (docs/practice.md §7): the `settings:` mapping of
// plugins.d/practice.yaml, handed to the plugin's init as YAML text. Parsed once; a bad
// value refuses the plugin with a message naming the key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prism::practice {

struct Settings {
  // The queues (game modes) matches are played in; each has its own Elo and leaderboards.
  std::vector<std::string> queues{"nodebuff", "sumo", "boxing", "bridge", "builduhc", "gapple"};
  int32_t initial_rating = 1000;       // a player's rating in a queue before any ranked match
  int32_t k_factor = 32;               // Elo K while the player is new to the queue
  int32_t k_factor_after = 16;         // K once games_before_lower_k ranked matches were played
  int64_t games_before_lower_k = 30;
  uint32_t presence_ttl_s = 60;        // a join or heartbeat keeps a player online this long
  uint32_t max_team_size = 16;         // players per side of a match
  uint32_t record_attempts = 32;       // read-compute-write tries before answering CONFLICT

  bool has_queue(std::string_view queue) const;
  // "nodebuff, sumo, ..." for error messages.
  std::string queue_list() const;
};

// Parses the settings text; empty (or only comments) gives the defaults. Throws
// std::invalid_argument("settings.<key>: <reason>") on an unknown key or a bad value.
Settings parse_settings(std::string_view yaml_text);

}  // namespace prism::practice
