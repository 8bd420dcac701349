// Channel topic patterns (plugin.h, "Channels"): "room:lobby" is one topic, "room:*"
// every topic starting with "room:". What a pattern may be, what it matches, and when
// two plugins' patterns would both match some topic.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster/topic_bus.hpp"

namespace prism::plugins {

// A topic, optionally ending in '*' (the '*' itself not counted as part of the topic).
inline bool valid_channel_pattern(std::string_view pattern) {
  if (pattern.ends_with('*')) pattern.remove_suffix(1);
  // "*" alone would take every topic; a pattern needs at least one fixed character.
  return !pattern.empty() && cluster::valid_topic(pattern) &&
         pattern.find('*') == std::string_view::npos;
}

inline bool channel_pattern_matches(std::string_view pattern, std::string_view topic) {
  if (pattern.ends_with('*')) return topic.starts_with(pattern.substr(0, pattern.size() - 1));
  return topic == pattern;
}

// True when some topic matches both.
inline bool channel_patterns_overlap(std::string_view a, std::string_view b) {
  const bool a_prefix = a.ends_with('*'), b_prefix = b.ends_with('*');
  if (a_prefix) a.remove_suffix(1);
  if (b_prefix) b.remove_suffix(1);
  if (a_prefix && b_prefix) return a.starts_with(b) || b.starts_with(a);
  if (a_prefix) return b.starts_with(a);
  if (b_prefix) return a.starts_with(b);
  return a == b;
}

}  // namespace prism::plugins
