// LOGIN decisions and the per-address failure table behind the lockout. The table is bounded:
// a flood of addresses evicts the stalest records instead of growing memory.
#include "plugins/login_guard.hpp"

#include <algorithm>

namespace prism::plugins {

LoginGuard::LoginGuard(const std::vector<PluginSettings>& plugins, LoginLimits limits)
    : limits_(limits) {
  limits_.max_failures = std::max(limits_.max_failures, 1u);
  limits_.max_tracked_addresses = std::max<size_t>(limits_.max_tracked_addresses, 1);
  for (const PluginSettings& plugin : plugins) services_.emplace(plugin.name, plugin.token);
}

bool LoginGuard::requires_login(std::string_view service) const {
  const auto found = services_.find(service);
  return found != services_.end() && found->second.has_value();
}

LoginVerdict LoginGuard::check(std::string_view service, std::string_view token,
                               std::string_view address_key, Clock::time_point now) {
  if (const auto found = by_address_.find(address_key); found != by_address_.end()) {
    const RecordList::iterator record = found->second;
    if (record->locked) {
      // Refused before the token is looked at: a locked address learns nothing more.
      if (now < record->locked_until) return LoginVerdict::kRateLimited;
      forget(record);  // served its time; start from a clean slate
    }
  }

  const auto found = services_.find(service);
  if (found == services_.end()) {
    record_failure(address_key, now);
    return LoginVerdict::kUnknownService;
  }
  if (!found->second) return LoginVerdict::kOk;  // open service: any token will do
  if (!net::crypto::token_matches(*found->second, token)) {
    record_failure(address_key, now);
    return LoginVerdict::kBadToken;
  }
  return LoginVerdict::kOk;
}

void LoginGuard::record_failure(std::string_view address_key, Clock::time_point now) {
  sweep_expired(now);
  RecordList::iterator record;
  if (const auto found = by_address_.find(address_key); found != by_address_.end()) {
    record = found->second;
  } else {
    if (by_address_.size() >= limits_.max_tracked_addresses) evict_one();
    record = failing_.emplace(failing_.end());
    record->key = address_key;
    record->failures.reserve(limits_.max_failures);
    by_address_.emplace(record->key, record);
  }

  // Sliding window: only failures younger than `window` count.
  std::erase_if(record->failures,
                [&](Clock::time_point at) { return now - at >= limits_.window; });
  record->failures.push_back(now);
  record->last_failure = now;
  failing_.splice(failing_.end(), failing_, record);  // now the latest to expire

  if (record->failures.size() >= limits_.max_failures) {
    record->failures.clear();
    record->locked = true;
    record->locked_until = now + limits_.lockout;
    locked_.splice(locked_.end(), failing_, record);
  }
}

void LoginGuard::forget(RecordList::iterator record) {
  RecordList& list = record->locked ? locked_ : failing_;
  by_address_.erase(record->key);
  list.erase(record);
}

void LoginGuard::sweep_expired(Clock::time_point now) {
  while (!failing_.empty() && now - failing_.front().last_failure >= limits_.window) {
    forget(failing_.begin());
  }
  while (!locked_.empty() && now >= locked_.front().locked_until) forget(locked_.begin());
}

// The table is full of live records: drop the stalest one, preferring an address that is
// merely failing over one that is locked out, so a flood of new addresses cannot easily
// wash out a lockout.
void LoginGuard::evict_one() {
  if (!failing_.empty()) {
    forget(failing_.begin());
  } else if (!locked_.empty()) {
    forget(locked_.begin());
  }
}

std::string_view verdict_name(LoginVerdict verdict) {
  switch (verdict) {
    case LoginVerdict::kOk: return "ok";
    case LoginVerdict::kUnknownService: return "unknown_service";
    case LoginVerdict::kBadToken: return "bad_token";
    case LoginVerdict::kRateLimited: return "rate_limited";
  }
  return "unknown";
}

}  // namespace prism::plugins
