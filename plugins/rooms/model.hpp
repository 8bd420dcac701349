// The rooms model without I/O (DESIGN.md §8, docs/rooms.md): instances, their channels
// of three kinds, the changes a push makes and the Phoenix presence of each channel. The
// plugin (rooms_plugin.cpp) feeds it requests and sends, stores and broadcasts what it
// returns; the unit tests drive it directly.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace prism::rooms {

using nlohmann::json;

// Fixed limits (docs/rooms.md "Limits").
inline constexpr size_t kMaxIdBytes = 64;        // instance ids, channel names, user ids
inline constexpr size_t kMaxNameBytes = 128;     // an instance's display name
inline constexpr size_t kMaxSchemaKeys = 256;    // keys of a shared channel

enum class ChannelType { kAccumulative, kCollaborative, kShared };
std::string_view to_string(ChannelType type);
std::optional<ChannelType> channel_type(std::string_view name);

// An instance's limits; each has a default in the plugin's settings (settings.hpp).
struct Limits {
  uint32_t max_users = 100;            // distinct users present in the instance
  uint32_t max_channels = 16;          // lobby included
  uint32_t messages_per_second = 20;   // pushes one user may make, in bursts as many
  uint32_t max_message_bytes = 4096;   // one push's payload, as JSON text
  uint32_t history = 100;              // messages an accumulative channel keeps
};
json to_json(const Limits& limits);
// Reads the keys `j` has over `base`; an error names the key.
std::optional<Limits> limits_from(const json& j, const Limits& base, std::string* error);

// One message of an accumulative channel. Ids grow by one per channel, so two messages
// in the same second never overwrite each other (mycelium keyed them by the second).
struct Message {
  uint64_t id = 0;
  std::string user;
  int64_t ts_ms = 0;
  json payload;
};

// What a push changed: `delta` goes to the other members as "msg", and to the sender in
// its reply.
struct Applied {
  bool ok = false;
  std::string error;  // why it was refused, for the client
  json delta;
};

class Channel {
 public:
  Channel(std::string name, ChannelType type, std::map<std::string, std::string> schema = {});

  const std::string& name() const { return name_; }
  ChannelType type() const { return type_; }
  const std::map<std::string, std::string>& schema() const { return schema_; }

  // The state a joining member receives: accumulative, the history (oldest first);
  // collaborative, the last state of each user; shared, the map.
  json state() const;
  // Applies `payload` from `user` at `now_ms`. Accumulative: appended (the oldest beyond
  // `history` dropped); collaborative: the user's state replaced; shared: an object
  // whose keys must be in the schema and of its types, each set (last writer wins).
  Applied apply(const std::string& user, const json& payload, int64_t now_ms, uint32_t history);

  // The whole channel (definition and state) as stored, and back.
  json to_json() const;
  static std::optional<Channel> from_json(const json& j, std::string* error);

 private:
  std::string name_;
  ChannelType type_;
  std::map<std::string, std::string> schema_;  // shared: key -> string|number|boolean|object|array|any
  std::deque<Message> history_;
  uint64_t next_id_ = 1;
  std::map<std::string, json> by_user_;
  json shared_ = json::object();
};

// The schema of a shared channel from its JSON ({"key": "type"}); an error says why not.
std::optional<std::map<std::string, std::string>> schema_from(const json& j, std::string* error);

// Phoenix Presence for one channel: users with one meta per session they joined from.
class Presence {
 public:
  // presence_state: {"user": {"metas": [{"phx_ref", "online_at"}, ...]}, ...}
  json state() const;
  // Adds the session's meta; returns the presence_diff {"joins": {...}, "leaves": {}}.
  json join(const std::string& user, uint64_t session, int64_t now_ms);
  // Removes the session's meta; returns the presence_diff, or null if it was not there.
  json leave(uint64_t session);
  bool has_user(const std::string& user) const { return metas_.contains(user); }
  bool has_session(uint64_t session) const { return user_of_.contains(session); }
  size_t users() const { return metas_.size(); }
  void add_users_to(std::set<std::string>& users) const {
    for (const auto& [user, metas] : metas_) users.insert(user);
  }
  // Everything, sessions included: what a hot reload hands the next version.
  json to_json() const;
  static Presence from_json(const json& j);

 private:
  struct Meta {
    std::string phx_ref;
    int64_t online_at = 0;
    uint64_t session = 0;
  };
  static json metas_json(const std::vector<Meta>& metas);
  std::map<std::string, std::vector<Meta>> metas_;
  std::map<uint64_t, std::string> user_of_;
  uint64_t next_ref_ = 1;
};

// The joins and leaves of one channel not sent yet (docs/rooms.md, Presence): a burst of
// N joins reaches each member as one presence_diff, not N, so a room of N members that
// fills up costs O(N) messages per window instead of O(N²). A meta that joins and leaves
// before the batch goes out is never sent at all.
class PresenceBatch {
 public:
  // Adds one presence_diff {"joins": {user: {"metas": [...]}}, "leaves": {...}}.
  void add(const json& diff);
  bool empty() const { return joins_.empty() && leaves_.empty(); }
  // The diff of everything added, in Phoenix's form; the batch is empty after.
  json take();

 private:
  json joins_ = json::object();
  json leaves_ = json::object();
};

enum class InstanceState { kRunning, kStopped, kFailed };
std::string_view to_string(InstanceState state);

class Instance {
 public:
  Instance(std::string id, std::string type, std::string name, Limits limits,
           bool client_channels);

  const std::string& id() const { return id_; }
  const Limits& limits() const { return limits_; }
  InstanceState state() const { return state_; }
  const std::string& failure() const { return failure_; }
  bool client_channels() const { return client_channels_; }
  const std::map<std::string, Channel>& channels() const { return channels_; }

  // Adds a channel ("lobby" is made with the instance); an error says why not.
  bool add_channel(Channel channel, std::string* error);
  bool remove_channel(const std::string& name, std::string* error);
  Channel* channel(const std::string& name);
  // [{"name", "type"}...]: what the lobby's "rooms" push lists.
  json rooms() const;

  Presence& presence(const std::string& channel) { return presence_[channel]; }
  // Every channel's presence, for a hot reload's hand-over, and back.
  json presence_json() const;
  void restore_presence(const json& j);
  // Distinct users present on any channel.
  size_t users() const;
  bool has_user(const std::string& user) const;

  // The message-rate bucket of `user`: true when one more push is allowed at `now_ms`.
  bool allow_push(const std::string& user, int64_t now_ms);

  void stop() { state_ = InstanceState::kStopped; }
  void start() { state_ = InstanceState::kRunning; failure_.clear(); }
  void fail(std::string why) {
    state_ = InstanceState::kFailed;
    failure_ = std::move(why);
  }

  // The definition (id, type, name, limits, client_channels, state, failure) as stored.
  json definition() const;
  // For list/show: the definition with each channel's name, type and members.
  json summary() const;
  static std::optional<Instance> from_definition(const json& j, std::string* error);

 private:
  std::string id_, type_, name_;
  Limits limits_;
  bool client_channels_ = false;
  InstanceState state_ = InstanceState::kRunning;
  std::string failure_;
  std::map<std::string, Channel> channels_;
  std::map<std::string, Presence> presence_;
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;
  };
  std::map<std::string, Bucket> buckets_;
};

// An id (instance, channel, user): 1..kMaxIdBytes of [A-Za-z0-9_.:-].
bool valid_id(std::string_view id);

}  // namespace prism::rooms
