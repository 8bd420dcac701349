// The cluster's node registry (DESIGN.md §7, docs/operations.md "Clustering"): this
// node's entry in Redis under a short TTL, refreshed by a heartbeat, and every live
// node's entry as the last heartbeat read them. Redis is the only shared state: a node
// that stops beating is gone once its TTL passes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/expected.hpp"
#include "store/redis_connection.hpp"

namespace prism::cluster {

// What one node says about itself (its registry entry, JSON in Redis).
struct NodeInfo {
  std::string id;
  std::string region;
  std::string udp;  // "HOST:PORT" clients reach it on
  std::string ws;   // ws.listen, "" when off
  std::string version;
  uint64_t started_at_ms = 0;  // Unix time
  uint64_t beat_at_ms = 0;     // Unix time of its last heartbeat
  uint64_t sessions = 0;       // UDP and WebSocket sessions open
  double requests_per_s = 0;   // over its last heartbeat interval
  std::vector<std::string> plugins;
  // Random per process: tells this run of a node id from an earlier one (a restart) or
  // from another process configured with the same id.
  std::string incarnation;

  std::string to_json() const;
  static std::optional<NodeInfo> from_json(std::string_view text);
};

// What a heartbeat reports about this node's load.
struct NodeLoad {
  uint64_t sessions = 0;
  uint64_t requests_total = 0;  // since start; the registry turns it into requests/s
  std::vector<std::string> plugins;
};

struct RegistryOptions {
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  store::RedisOptions redis;  // key_prefix, password, database, timeouts
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds ttl{5000};  // an entry not refreshed for this long is gone
};

class NodeRegistry {
 public:
  // `self` is this node's entry (its id, region, addresses, version, start time); `load`
  // is asked on the heartbeat thread at each beat.
  NodeRegistry(RegistryOptions options, NodeInfo self, std::function<NodeLoad()> load);
  // Stops the heartbeat and removes this node's entry (a clean stop: the others see it
  // leave at once rather than after the TTL).
  ~NodeRegistry();
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // Claims this node's id and starts the heartbeat. Waits for Redis up to its connect
  // timeout: the error says why the node must not start (its id is alive elsewhere).
  // Redis unreachable is not an error: the node runs degraded and claims the id once
  // Redis answers (a live holder then keeps it, and this node stays unregistered).
  Expected<void> start();

  // ---- Leases (plugin.h lease; DESIGN.md §7): a name one node holds at a time, in
  // Redis under the node TTL, kept by this node's heartbeat until released. A node that
  // stops beating loses its leases with its entry: the next node to ask takes them.
  struct LeaseOutcome {
    enum class State { kHeld, kTaken, kUnavailable } state = State::kUnavailable;
    std::string holder;  // kHeld: this node's id; kTaken: the holder's
  };
  // Any thread; `done` runs once, on the registry connection's thread.
  void lease(const std::string& name, std::function<void(const LeaseOutcome&)> done);
  void release(const std::string& name);

  // Any time; both run on the heartbeat thread. `lease_lost`: a lease this node
  // held is another node's now (this one was away from Redis longer than the TTL).
  // `node_left`: a node is gone from the registry (missing from two reads in a row, or
  // back as another incarnation, i.e. restarted).
  void set_listeners(std::function<void(const std::string& lease)> lease_lost,
                     std::function<void(const std::string& node)> node_left);

  // Every live node as the last heartbeat read it, this one first; each with its
  // beat_at_ms, so its age is now minus that.
  std::vector<NodeInfo> nodes() const;
  const NodeInfo& self() const { return self_; }
  // Connected to Redis and registered under this node's id.
  bool healthy() const;
  std::string endpoint() const { return connection_.endpoint(); }

 private:
  enum class Claim { kOk, kTaken, kUnavailable };
  // One claim or heartbeat: writes this node's entry unless another incarnation holds
  // the id (then `holder` gets its entry), or one whose beat_at_ms is `takeover`; reads
  // every live entry. On the heartbeat thread (or start's).
  Claim beat(std::string* holder, const std::string& takeover = {});
  void run();
  // After a beat: renews the held leases and tells who left.
  void renew_leases();
  void notice_departures();

  RegistryOptions options_;
  NodeInfo self_;
  std::function<NodeLoad()> load_;
  store::RedisConnection connection_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool registered_ = false;
  bool taken_logged_ = false;
  std::vector<NodeInfo> nodes_;  // as last read
  std::set<std::string> leases_;  // held by this node (under mutex_)
  std::function<void(const std::string&)> lease_lost_, node_left_;  // under mutex_
  // Heartbeat thread only: the incarnation of each node seen, and how many reads in a row
  // have missed it.
  std::map<std::string, std::string> seen_;
  std::map<std::string, int> missed_;
  uint64_t last_requests_ = 0;
  std::chrono::steady_clock::time_point last_beat_{};
  std::thread thread_;
};

}  // namespace prism::cluster
