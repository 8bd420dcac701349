// The LOGIN decision: which services exist, which need a token, and which source addresses
// have guessed wrong too often and are locked out for a while.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/crypto/token_hash.hpp"
#include "plugins/plugin_settings.hpp"

namespace prism::plugins {

struct LoginLimits {
  unsigned max_failures = 5;                  // failures within `window` that lock an address
  std::chrono::milliseconds window{10000};
  std::chrono::milliseconds lockout{30000};   // how long a locked address is refused
  size_t max_tracked_addresses = 4096;        // bound on the failure table (memory an attacker can fill)
};

enum class LoginVerdict {
  kOk,
  kUnknownService,  // no plugin by that name; counts as a failure
  kBadToken,        // counts as a failure
  kRateLimited,     // the address is locked out; the token was not looked at
};

// For logs: "ok", "unknown_service", "bad_token", "rate_limited".
std::string_view verdict_name(LoginVerdict verdict);

// Not thread-safe: each worker owns one and sees only the logins that reach it.
class LoginGuard {
 public:
  using Clock = std::chrono::steady_clock;

  // Only each plugin's name and token are used; a plugin without a token is an open service.
  // A max_failures or max_tracked_addresses of 0 is taken as 1.
  LoginGuard(const std::vector<PluginSettings>& plugins, LoginLimits limits = {});

  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // Decides one LOGIN. `address_key` names the source IP (no port), opaque to the guard.
  // `now` must not go backwards between calls. In order: a locked-out address is refused;
  // an unknown service or a wrong token is a failure; max_failures failures within `window`
  // lock the address out for `lockout`. A success does not clear earlier failures, so
  // interleaving a known good login does not buy more guesses.
  LoginVerdict check(std::string_view service, std::string_view token,
                     std::string_view address_key, Clock::time_point now);

  // True when the service has a token configured (false for open and unknown services).
  bool requires_login(std::string_view service) const;

  // Addresses with failures or a lockout on record, expired ones included until swept.
  size_t tracked_addresses() const { return by_address_.size(); }

 private:
  struct AddressRecord {
    std::string key;
    std::vector<Clock::time_point> failures;  // within the window, oldest first
    Clock::time_point last_failure{};
    Clock::time_point locked_until{};
    bool locked = false;
  };
  using RecordList = std::list<AddressRecord>;

  void record_failure(std::string_view address_key, Clock::time_point now);
  void forget(RecordList::iterator record);
  void sweep_expired(Clock::time_point now);
  void evict_one();

  std::map<std::string, std::optional<net::crypto::TokenHash>, std::less<>> services_;
  LoginLimits limits_;
  // Two lists, each in the order its records expire, so expired ones sit at the front:
  // `failing_` by last failure (expires window after it), `locked_` by lockout end.
  RecordList failing_;
  RecordList locked_;
  // Keys point into the records' own strings; list nodes never move.
  std::unordered_map<std::string_view, RecordList::iterator> by_address_;
};

}  // namespace prism::plugins
