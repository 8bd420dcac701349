// Token buckets and per-source counts for SourceLimits.
#include "net/source_limits.hpp"

#include <algorithm>

namespace prism::net {

SourceLimits::SourceLimits(SourceLimitSettings settings) : settings_(settings) {
  settings_.handshake_burst = std::max(settings_.handshake_burst, 1.0);
  settings_.max_tracked = std::max<size_t>(settings_.max_tracked, 1);
}

bool SourceLimits::allow_handshake(uint64_t source, Clock::time_point now) {
  auto found = buckets_.find(source);
  if (found == buckets_.end()) {
    if (buckets_.size() >= settings_.max_tracked) make_room(now);
    found = buckets_.emplace(source, Bucket{settings_.handshake_burst, now}).first;
  }
  Bucket& b = found->second;
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(settings_.handshake_burst,
                      b.tokens + std::max(elapsed, 0.0) * settings_.handshakes_per_second);
  b.refilled = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

// A bucket that would be full by now is the same as no bucket: forget those. When most
// tracked sources are busy (handshakes from more addresses than max_tracked, each of them
// proved by a cookie), an eighth of the table starts over with full buckets; that costs
// at most one burst per source forgotten, and the scan runs once per max_tracked / 8 new
// sources rather than once per handshake.
void SourceLimits::make_room(Clock::time_point now) {
  std::erase_if(buckets_, [&](const auto& entry) {
    const double elapsed = std::chrono::duration<double>(now - entry.second.refilled).count();
    return entry.second.tokens + elapsed * settings_.handshakes_per_second >=
           settings_.handshake_burst;
  });
  const size_t room = std::max<size_t>(settings_.max_tracked / 8, 1);
  for (auto it = buckets_.begin(); it != buckets_.end() && buckets_.size() + room > settings_.max_tracked;) {
    it = buckets_.erase(it);
  }
}

bool SourceLimits::may_open(uint64_t source) const {
  const auto found = counts_.find(source);
  if (found == counts_.end()) return settings_.max_sessions > 0 && settings_.max_handshakes > 0;
  return found->second.sessions < settings_.max_sessions &&
         found->second.unconfirmed < settings_.max_handshakes;
}

void SourceLimits::opened(uint64_t source) {
  Counts& c = counts_[source];
  ++c.sessions;
  ++c.unconfirmed;
}

void SourceLimits::confirmed(uint64_t source) {
  const auto found = counts_.find(source);
  if (found != counts_.end() && found->second.unconfirmed > 0) --found->second.unconfirmed;
}

void SourceLimits::closed(uint64_t source, bool was_confirmed) {
  const auto found = counts_.find(source);
  if (found == counts_.end()) return;
  Counts& c = found->second;
  if (c.sessions > 0) --c.sessions;
  if (!was_confirmed && c.unconfirmed > 0) --c.unconfirmed;
  if (c.sessions == 0) counts_.erase(found);
}

void SourceLimits::moved(uint64_t from, uint64_t to, bool is_confirmed) {
  if (from == to) return;
  closed(from, is_confirmed);
  Counts& c = counts_[to];
  ++c.sessions;
  if (!is_confirmed) ++c.unconfirmed;
}

size_t SourceLimits::unconfirmed(uint64_t source) const {
  const auto found = counts_.find(source);
  return found == counts_.end() ? 0 : found->second.unconfirmed;
}

}  // namespace prism::net
