// LOGIN decisions and the per-address failure table behind the lockout. The table is bounded:
// a flood of addresses evicts the stalest records instead of growing memory.
#include "plugins/login_guard.hpp"

#include <algorithm>

#include "plugins/plugin_settings.hpp"
#include "plugins/plugin_types.hpp"

namespace prism::plugins {

LoginGuard::LoginGuard(const std::vector<PluginSettings>& plugins,
                       std::optional<prism::TokenHash> admin_token, LoginLimits limits)
    : admin_token_(std::move(admin_token)), limits_(limits) {
  limits_.max_failures = std::max(limits_.max_failures, 1u);
  limits_.max_tracked_addresses = std::max<size_t>(limits_.max_tracked_addresses, 1);
  for (const PluginSettings& plugin : plugins) {
    if (plugin.name == kAdminService) continue;  // only the admin token opens it
    services_.emplace(plugin.name, plugin.token);
  }
}

bool LoginGuard::requires_login(std::string_view service) const {
  if (service == kAdminService) return true;
  const auto found = services_.find(service);
  return found != services_.end() && found->second.has_value();
}

LoginVerdict LoginGuard::check(std::string_view service, std::string_view token,
                               std::string_view address_key, Clock::time_point now,
                               bool loaded) {
  const bool admin = service == kAdminService;
  FailureTable& failures = admin ? admin_failures_ : service_failures_;
  LoginVerdict wrong = LoginVerdict::kBadToken;
  if (admin) {
    if (admin_token_ && prism::token_matches(*admin_token_, token)) return LoginVerdict::kOk;
  } else if (const auto found = services_.find(service); found != services_.end()) {
    // An open service takes any token; otherwise the hash must match (constant time).
    if (!found->second || prism::token_matches(*found->second, token)) {
      return LoginVerdict::kOk;
    }
  } else if (loaded) {
    return LoginVerdict::kOk;  // a loaded plugin with no plugins.d file: open
  } else {
    wrong = LoginVerdict::kUnknownService;
  }
  // A wrong guess from a locked address is answered kRateLimited and not counted.
  if (failures.locked(address_key, now)) return LoginVerdict::kRateLimited;
  failures.record_failure(address_key, now);
  return wrong;
}

bool LoginGuard::FailureTable::locked(std::string_view address_key, Clock::time_point now) {
  const auto found = by_address_.find(address_key);
  if (found == by_address_.end() || !found->second->locked) return false;
  if (now < found->second->locked_until) return true;
  forget(found->second);  // served its time; start from a clean slate
  return false;
}

void LoginGuard::FailureTable::record_failure(std::string_view address_key, Clock::time_point now) {
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

void LoginGuard::FailureTable::forget(RecordList::iterator record) {
  RecordList& list = record->locked ? locked_ : failing_;
  by_address_.erase(record->key);
  list.erase(record);
}

void LoginGuard::FailureTable::sweep_expired(Clock::time_point now) {
  while (!failing_.empty() && now - failing_.front().last_failure >= limits_.window) {
    forget(failing_.begin());
  }
  while (!locked_.empty() && now >= locked_.front().locked_until) forget(locked_.begin());
}

// The table is full of live records: drop the stalest one, preferring an address that is
// merely failing over one that is locked out, so a flood of new addresses cannot easily
// wash out a lockout.
void LoginGuard::FailureTable::evict_one() {
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
