// NodeRegistry: the heartbeat thread, the Lua script that claims, refreshes and lists
// node entries atomically, and the start-up rule for an id another process holds.
#include "cluster/node_registry.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <nlohmann/json.hpp>
#include <memory>
#include <utility>

#include "base/clock.hpp"
#include "base/thread_name.hpp"

namespace prism::cluster {
namespace {

using nlohmann::json;

// ARGV[1] the operation, ARGV[2] the key prefix. Entries live at <prefix>cluster:node:<id>
// with a PX TTL; <prefix>cluster:nodes indexes them by last beat so that listing needs no
// SCAN. An entry is JSON (NodeInfo::to_json); the script reads only its `incarnation`
// and `beat_at_ms`.
//
// beat ID ENTRY TTL_MS NOW_MS INCARNATION TAKEOVER_BEAT
//   Writes ENTRY unless another incarnation holds ID, in which case it answers
//   {1, holder's entry}; a holder whose beat_at_ms is TAKEOVER_BEAT (the caller saw it
//   not move for longer than a heartbeat: that process is gone) is replaced. Then
//   answers {0, entry, entry, ...}: every live node's.
// leave ID INCARNATION
//   Removes ID's entry if this incarnation holds it.
// lease ID TTL_MS NAME...
//   Takes or keeps each lease <prefix>cluster:lease:NAME for ID: it is ID's when no one
//   holds it, ID holds it already, or its holder's node entry is gone (that node died or
//   left: its TTL has passed). Answers, per NAME, the holder after the call.
// release ID NAME
//   Drops the lease NAME if ID holds it.
constexpr std::string_view kScript = R"lua(
local function main(ARGV)
  local op, prefix = ARGV[1], ARGV[2]
  local index = prefix .. 'cluster:nodes'
  local function key(id) return prefix .. 'cluster:node:' .. id end
  local function holder_of(id)
    local current = redis.call('GET', key(id))
    if not current then return nil, nil end
    local ok, holder = pcall(cjson.decode, current)
    if not ok or type(holder) ~= 'table' then return current, {} end
    return current, holder
  end
  if op == 'beat' then
    local id, entry, ttl, now, me, takeover = ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
    local current, holder = holder_of(id)
    if current and holder.incarnation ~= me and tostring(holder.beat_at_ms) ~= takeover then
      return {1, current}
    end
    redis.call('SET', key(id), entry, 'PX', ttl)
    redis.call('ZADD', index, now, id)
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl)
    local out = {0}
    for _, other in ipairs(redis.call('ZRANGE', index, 0, -1)) do
      local e = redis.call('GET', key(other))
      if e then out[#out + 1] = e else redis.call('ZREM', index, other) end
    end
    return out
  elseif op == 'leave' then
    local current, holder = holder_of(ARGV[3])
    if current and holder.incarnation == ARGV[4] then
      redis.call('DEL', key(ARGV[3]))
      redis.call('ZREM', index, ARGV[3])
    end
    return 0
  elseif op == 'lease' then
    local id, ttl = ARGV[3], tonumber(ARGV[4])
    local out = {}
    for i = 5, #ARGV do
      local lease = prefix .. 'cluster:lease:' .. ARGV[i]
      local holder = redis.call('GET', lease)
      if not holder or holder == id or redis.call('EXISTS', key(holder)) == 0 then
        redis.call('SET', lease, id, 'PX', ttl)
        holder = id
      end
      out[#out + 1] = holder
    end
    return out
  elseif op == 'release' then
    local lease = prefix .. 'cluster:lease:' .. ARGV[4]
    if redis.call('GET', lease) == ARGV[3] then redis.call('DEL', lease) end
    return 0
  end
  return redis.error_reply('PRISM INVALID 0 unknown operation ' .. tostring(op))
end
)lua";

}  // namespace

std::string NodeInfo::to_json() const {
  return json{{"id", id},
              {"region", region},
              {"udp", udp},
              {"ws", ws},
              {"version", version},
              {"started_at_ms", started_at_ms},
              {"beat_at_ms", beat_at_ms},
              {"sessions", sessions},
              {"requests_per_s", requests_per_s},
              {"plugins", plugins},
              {"incarnation", incarnation}}
      .dump();
}

std::optional<NodeInfo> NodeInfo::from_json(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) return std::nullopt;
  try {
    NodeInfo n;
    n.id = j.at("id").get<std::string>();
    n.region = j.value("region", std::string());
    n.udp = j.value("udp", std::string());
    n.ws = j.value("ws", std::string());
    n.version = j.value("version", std::string());
    n.started_at_ms = j.value("started_at_ms", uint64_t{0});
    n.beat_at_ms = j.value("beat_at_ms", uint64_t{0});
    n.sessions = j.value("sessions", uint64_t{0});
    n.requests_per_s = j.value("requests_per_s", 0.0);
    n.plugins = j.value("plugins", std::vector<std::string>{});
    n.incarnation = j.value("incarnation", std::string());
    return n;
  } catch (const json::exception&) {  // a field of the wrong type: another writer's entry
    return std::nullopt;
  }
}

NodeRegistry::NodeRegistry(RegistryOptions options, NodeInfo self, std::function<NodeLoad()> load)
    : options_(std::move(options)),
      self_(std::move(self)),
      load_(std::move(load)),
      connection_(options_.redis_host, options_.redis_port, options_.redis, std::string(kScript)) {}

NodeRegistry::~NodeRegistry() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (registered_) {
    // Shared with the handler: if Redis is too slow to answer before the wait ends, the
    // connection's destructor still runs the handler (with no reply) after this frame.
    auto left = std::make_shared<std::promise<void>>();
    connection_.eval({"leave", options_.redis.key_prefix, self_.id, self_.incarnation},
                     [left](const redisReply*) { left->set_value(); });
    left->get_future().wait_for(options_.redis.command_timeout);
  }
}

NodeRegistry::Claim NodeRegistry::beat(std::string* holder, const std::string& takeover) {
  const NodeLoad load = load_ ? load_() : NodeLoad{};
  const auto now = std::chrono::steady_clock::now();
  NodeInfo entry = self_;
  entry.beat_at_ms = unix_ms();
  entry.sessions = load.sessions;
  entry.plugins = load.plugins;
  if (last_beat_ != std::chrono::steady_clock::time_point{} && load.requests_total >= last_requests_) {
    const double seconds = std::chrono::duration<double>(now - last_beat_).count();
    if (seconds > 0) entry.requests_per_s = static_cast<double>(load.requests_total - last_requests_) / seconds;
  }
  last_requests_ = load.requests_total;
  last_beat_ = now;

  std::promise<std::pair<Claim, std::vector<std::string>>> answered;
  connection_.eval({"beat", options_.redis.key_prefix, self_.id, entry.to_json(),
                    std::to_string(options_.ttl.count()), std::to_string(entry.beat_at_ms),
                    self_.incarnation, takeover},
                   [&answered](const redisReply* r) {
                     std::vector<std::string> entries;
                     if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
                         r->element[0]->type != REDIS_REPLY_INTEGER) {
                       if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
                         spdlog::error("event=cluster_registry_error error=\"{}\"", store::reply_text(r));
                       }
                       answered.set_value({Claim::kUnavailable, {}});
                       return;
                     }
                     for (size_t i = 1; i < r->elements; ++i) entries.emplace_back(store::reply_text(r->element[i]));
                     answered.set_value({r->element[0]->integer == 0 ? Claim::kOk : Claim::kTaken,
                                         std::move(entries)});
                   });
  auto [claim, entries] = answered.get_future().get();  // the handler runs exactly once
  if (claim == Claim::kTaken) {
    if (holder != nullptr && !entries.empty()) *holder = entries.front();
    return claim;
  }
  if (claim == Claim::kOk) {
    std::vector<NodeInfo> nodes;
    for (const std::string& e : entries) {
      if (auto n = NodeInfo::from_json(e)) nodes.push_back(std::move(*n));
    }
    // This node first, the others by id.
    std::sort(nodes.begin(), nodes.end(), [this](const NodeInfo& a, const NodeInfo& b) {
      if ((a.id == self_.id) != (b.id == self_.id)) return a.id == self_.id;
      return a.id < b.id;
    });
    std::lock_guard lock(mutex_);
    nodes_ = std::move(nodes);
    registered_ = true;
  }
  return claim;
}

Expected<void> NodeRegistry::start() {
  std::string holder_text;
  Claim claim = beat(&holder_text);
  if (claim == Claim::kTaken) {
    // Taken: a live holder beats every heartbeat; one that was SIGKILLed (this node's own
    // previous run, restarted at once) keeps its entry until the TTL without beating. Its
    // beat is watched for 3 heartbeats (the shortest TTL): if it moves, the id is alive
    // elsewhere and this node must not start; if not, that process is gone (or as good
    // as gone: it would drop out of the registry now) and its entry is replaced.
    const auto first = NodeInfo::from_json(holder_text);
    const std::string seen = first ? std::to_string(first->beat_at_ms) : std::string();
    for (int check = 1; check <= 3 && claim == Claim::kTaken; ++check) {
      std::this_thread::sleep_for(options_.heartbeat);
      claim = beat(&holder_text, check == 3 ? seen : std::string());
      const auto now = NodeInfo::from_json(holder_text);
      if (claim == Claim::kTaken && now && std::to_string(now->beat_at_ms) != seen) {
        return make_error("cluster.node_id '" + self_.id + "' is alive on another node (udp " +
                          now->udp + ", started at " + std::to_string(now->started_at_ms) +
                          " ms Unix time, beating every heartbeat); give this node its own id");
      }
    }
    if (claim == Claim::kTaken) {
      return make_error("cluster.node_id '" + self_.id + "' is held in Redis by an entry this node cannot read: " +
                        holder_text);
    }
  }
  if (claim == Claim::kUnavailable) {
    spdlog::warn("event=cluster_degraded reason=\"redis {} unreachable; registering once it answers\"",
                 connection_.endpoint());
  } else {
    spdlog::info("event=cluster_joined node={} region={} redis={} nodes={}", self_.id, self_.region,
                 connection_.endpoint(), nodes().size());
  }
  thread_ = std::thread([this] { run(); });
  name_thread(thread_, "node-registry");
  return {};
}

void NodeRegistry::run() {
  bool was_healthy = healthy();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, options_.heartbeat, [this] { return stopping_; })) return;
    }
    std::string holder;
    const Claim claim = beat(&holder);
    if (claim == Claim::kTaken && !taken_logged_) {
      // Another process claimed this id while Redis was away from this one: it keeps it.
      spdlog::error("event=cluster_node_id_taken node={} holder=\"{}\"", self_.id, holder);
      taken_logged_ = true;
      std::lock_guard lock(mutex_);
      registered_ = false;
    }
    if (claim == Claim::kUnavailable) {
      std::lock_guard lock(mutex_);
      registered_ = false;
    }
    if (claim == Claim::kOk) {
      renew_leases();
      notice_departures();
    }
    const bool now_healthy = healthy();
    if (now_healthy != was_healthy) {
      if (now_healthy) {
        spdlog::info("event=cluster_recovered node={} redis={}", self_.id, connection_.endpoint());
      } else {
        spdlog::warn("event=cluster_degraded node={} reason=\"{}\"", self_.id,
                     claim == Claim::kTaken ? "node id taken" : "redis unreachable");
      }
      was_healthy = now_healthy;
    }
  }
}

void NodeRegistry::set_listeners(std::function<void(const std::string&)> lease_lost,
                                 std::function<void(const std::string&)> node_left) {
  std::lock_guard lock(mutex_);
  lease_lost_ = std::move(lease_lost);
  node_left_ = std::move(node_left);
}

void NodeRegistry::lease(const std::string& name, std::function<void(const LeaseOutcome&)> done) {
  connection_.eval({"lease", options_.redis.key_prefix, self_.id, std::to_string(options_.ttl.count()), name},
                   [this, name, done = std::move(done)](const redisReply* r) {
                     LeaseOutcome out;
                     if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
                       out.holder = std::string(store::reply_text(r->element[0]));
                       out.state = out.holder == self_.id ? LeaseOutcome::State::kHeld
                                                          : LeaseOutcome::State::kTaken;
                       if (out.state == LeaseOutcome::State::kHeld) {
                         std::lock_guard lock(mutex_);
                         leases_.insert(name);
                       }
                     }
                     done(out);
                   });
}

void NodeRegistry::release(const std::string& name) {
  {
    std::lock_guard lock(mutex_);
    if (leases_.erase(name) == 0) return;
  }
  connection_.eval({"release", options_.redis.key_prefix, self_.id, name}, [](const redisReply*) {});
}

void NodeRegistry::renew_leases() {
  std::vector<std::string> args{"lease", options_.redis.key_prefix, self_.id,
                                std::to_string(options_.ttl.count())};
  {
    std::lock_guard lock(mutex_);
    if (leases_.empty()) return;
    args.insert(args.end(), leases_.begin(), leases_.end());
  }
  const std::vector<std::string> names(args.begin() + 4, args.end());
  std::promise<std::vector<std::string>> answered;
  connection_.eval(std::move(args), [&answered](const redisReply* r) {
    std::vector<std::string> holders;
    if (r != nullptr && r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) holders.emplace_back(store::reply_text(r->element[i]));
    }
    answered.set_value(std::move(holders));
  });
  const std::vector<std::string> holders = answered.get_future().get();
  if (holders.size() != names.size()) return;  // unanswered: kept, asked again next beat
  for (size_t i = 0; i < names.size(); ++i) {
    if (holders[i] == self_.id) continue;
    {
      std::lock_guard lock(mutex_);
      // Released meanwhile: nothing was lost.
      if (leases_.erase(names[i]) == 0) continue;
    }
    spdlog::warn("event=cluster_lease_lost node={} lease={} holder={}", self_.id, names[i], holders[i]);
    std::function<void(const std::string&)> lost;
    {
      std::lock_guard lock(mutex_);
      lost = lease_lost_;
    }
    if (lost) lost(names[i]);
  }
}

void NodeRegistry::notice_departures() {
  std::map<std::string, std::string> now;
  for (const NodeInfo& n : nodes()) {
    if (n.id != self_.id) now.emplace(n.id, n.incarnation);
  }
  std::vector<std::string> left;
  for (auto it = seen_.begin(); it != seen_.end();) {
    const auto present = now.find(it->first);
    // Back as another process: whatever the earlier one held is gone with it.
    const bool restarted = present != now.end() && present->second != it->second;
    const bool missing = present == now.end() && ++missed_[it->first] >= 2;
    if (present != now.end() && !restarted) missed_.erase(it->first);
    if (restarted || missing) {
      left.push_back(it->first);
      missed_.erase(it->first);
      it = seen_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [id, incarnation] : now) seen_.emplace(id, incarnation);
  std::function<void(const std::string&)> tell;
  {
    std::lock_guard lock(mutex_);
    tell = node_left_;
  }
  for (const std::string& id : left) {
    spdlog::info("event=cluster_node_left node={} seen_by={}", id, self_.id);
    if (tell) tell(id);
  }
}

std::vector<NodeInfo> NodeRegistry::nodes() const {
  std::lock_guard lock(mutex_);
  return nodes_;
}

bool NodeRegistry::healthy() const {
  std::lock_guard lock(mutex_);
  return registered_ && connection_.connected();
}

}  // namespace prism::cluster
