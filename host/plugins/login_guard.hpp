// The LOGIN decision: which services exist, which need a token (the admin service always
// does), and which source addresses have guessed wrong too often and are locked out for a while.
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

#include "base/token_hash.hpp"

namespace prism::plugins {

struct PluginSettings;  // plugin_settings.hpp; not included, so users stay free of yaml-cpp

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
  kRateLimited,     // a wrong token (or unknown service) from an address that is locked out
};

// For logs: "ok", "unknown_service", "bad_token", "rate_limited".
std::string_view verdict_name(LoginVerdict verdict);

// Not thread-safe: each worker owns one and sees only the logins that reach it.
class LoginGuard {
 public:
  using Clock = std::chrono::steady_clock;

  // Each plugin's name and token; a plugin without a token is an open service. The admin
  // service ("admin") takes `admin_token` and nothing else: an entry of that name among
  // `plugins` is ignored (plugins.d refuses one), and without an admin token no admin
  // login succeeds. A max_failures or max_tracked_addresses of 0 is taken as 1.
  LoginGuard(const std::vector<PluginSettings>& plugins,
             std::optional<prism::TokenHash> admin_token, LoginLimits limits = {});

  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // Decides one LOGIN. `address_key` names the source IP (no port), opaque to the guard.
  // `loaded`: a plugin of that name is loaded, so without a plugins.d entry it is an open
  // service. `now` must not go backwards between calls.
  // The right token always logs in, even from a locked-out address: a lockout must not
  // let a neighbour on the same address (or behind the same NAT) shut the owner out. A
  // wrong token or an unknown service is a failure; max_failures failures within `window`
  // lock the address out for `lockout`, during which failures are answered kRateLimited
  // and not counted. Admin logins and service logins keep separate tables, so guessing
  // at a service's token never locks the admin out. A success does not clear failures.
  LoginVerdict check(std::string_view service, std::string_view token,
                     std::string_view address_key, Clock::time_point now, bool loaded = false);

  // True when the service has a token configured (false for open and unknown services);
  // always true for the admin service.
  bool requires_login(std::string_view service) const;

  // Addresses with failures or a lockout on record, expired ones included until swept,
  // in both tables.
  size_t tracked_addresses() const {
    return service_failures_.tracked() + admin_failures_.tracked();
  }

 private:
  // Failures and lockouts per address for one kind of login, bounded in size: a flood of
  // addresses evicts the stalest records instead of growing memory.
  class FailureTable {
   public:
    explicit FailureTable(const LoginLimits& limits) : limits_(limits) {}
    bool locked(std::string_view address_key, Clock::time_point now);
    void record_failure(std::string_view address_key, Clock::time_point now);
    size_t tracked() const { return by_address_.size(); }

   private:
    struct AddressRecord {
      std::string key;
      std::vector<Clock::time_point> failures;  // within the window, oldest first
      Clock::time_point last_failure{};
      Clock::time_point locked_until{};
      bool locked = false;
    };
    using RecordList = std::list<AddressRecord>;
    void forget(RecordList::iterator record);
    void sweep_expired(Clock::time_point now);
    void evict_one();

    const LoginLimits& limits_;
    // Two lists, each in the order its records expire, so expired ones sit at the front:
    // `failing_` by last failure (expires window after it), `locked_` by lockout end.
    RecordList failing_;
    RecordList locked_;
    // Keys point into the records' own strings; list nodes never move.
    std::unordered_map<std::string_view, RecordList::iterator> by_address_;
  };

  std::map<std::string, std::optional<prism::TokenHash>, std::less<>> services_;
  std::optional<prism::TokenHash> admin_token_;
  LoginLimits limits_;
  FailureTable service_failures_{limits_};
  FailureTable admin_failures_{limits_};
};

}  // namespace prism::plugins
