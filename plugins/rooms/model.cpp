// The rooms model: channel changes, presence, instance definitions (model.hpp).
#include "model.hpp"

#include <algorithm>
#include <set>

namespace prism::rooms {
namespace {

bool set_error(std::string* error, std::string why) {
  if (error != nullptr) *error = std::move(why);
  return false;
}

// Whether `value` is of a shared channel's key type.
bool has_type(const json& value, const std::string& type) {
  if (type == "any") return true;
  if (type == "string") return value.is_string();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  return false;
}

constexpr std::string_view kTypes[] = {"string", "number", "boolean", "object", "array", "any"};

}  // namespace

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
  });
}

std::string_view to_string(ChannelType type) {
  switch (type) {
    case ChannelType::kAccumulative: return "accumulative";
    case ChannelType::kCollaborative: return "collaborative";
    case ChannelType::kShared: return "shared";
  }
  return "accumulative";
}

std::optional<ChannelType> channel_type(std::string_view name) {
  for (ChannelType t : {ChannelType::kAccumulative, ChannelType::kCollaborative, ChannelType::kShared}) {
    if (to_string(t) == name) return t;
  }
  return std::nullopt;
}

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::kRunning: return "running";
    case InstanceState::kStopped: return "stopped";
    case InstanceState::kFailed: return "failed";
  }
  return "running";
}

json to_json(const Limits& l) {
  return json{{"max_users", l.max_users},
              {"max_channels", l.max_channels},
              {"messages_per_second", l.messages_per_second},
              {"max_message_bytes", l.max_message_bytes},
              {"history", l.history}};
}

std::optional<Limits> limits_from(const json& j, const Limits& base, std::string* error) {
  Limits out = base;
  if (j.is_null()) return out;
  if (!j.is_object()) {
    set_error(error, "limits: expected an object");
    return std::nullopt;
  }
  struct Field {
    const char* name;
    uint32_t Limits::*member;
    uint32_t min, max;
  };
  static constexpr Field kFields[] = {
      {"max_users", &Limits::max_users, 1, 1000000},
      {"max_channels", &Limits::max_channels, 1, 1000},
      {"messages_per_second", &Limits::messages_per_second, 1, 100000},
      {"max_message_bytes", &Limits::max_message_bytes, 16, 1 << 20},
      {"history", &Limits::history, 0, 100000},
  };
  for (const auto& [key, value] : j.items()) {
    const auto* f = std::find_if(std::begin(kFields), std::end(kFields),
                                 [&](const Field& x) { return key == x.name; });
    if (f == std::end(kFields)) {
      set_error(error, "limits." + key + ": unknown limit");
      return std::nullopt;
    }
    // Signed or unsigned (parsed JSON makes a positive number unsigned; code, signed).
    if (!value.is_number_integer() || value.get<int64_t>() < static_cast<int64_t>(f->min) ||
        value.get<int64_t>() > static_cast<int64_t>(f->max)) {
      set_error(error, "limits." + key + ": expected an integer " + std::to_string(f->min) + ".." +
                           std::to_string(f->max));
      return std::nullopt;
    }
    out.*(f->member) = value.get<uint32_t>();
  }
  return out;
}

std::optional<std::map<std::string, std::string>> schema_from(const json& j, std::string* error) {
  if (!j.is_object() || j.empty()) {
    set_error(error, "a shared channel needs a schema: {\"key\": \"string|number|boolean|object|array|any\"}");
    return std::nullopt;
  }
  if (j.size() > kMaxSchemaKeys) {
    set_error(error, "schema: more than " + std::to_string(kMaxSchemaKeys) + " keys");
    return std::nullopt;
  }
  std::map<std::string, std::string> schema;
  for (const auto& [key, type] : j.items()) {
    if (key.empty() || key.size() > kMaxIdBytes) {
      set_error(error, "schema: a key must be 1.." + std::to_string(kMaxIdBytes) + " bytes");
      return std::nullopt;
    }
    if (!type.is_string() ||
        std::find(std::begin(kTypes), std::end(kTypes), type.get<std::string>()) == std::end(kTypes)) {
      set_error(error, "schema." + key + ": expected string|number|boolean|object|array|any");
      return std::nullopt;
    }
    schema[key] = type.get<std::string>();
  }
  return schema;
}

Channel::Channel(std::string name, ChannelType type, std::map<std::string, std::string> schema)
    : name_(std::move(name)), type_(type), schema_(std::move(schema)) {}

json Channel::state() const {
  switch (type_) {
    case ChannelType::kAccumulative: {
      json out = json::array();
      for (const Message& m : history_) {
        out.push_back({{"id", m.id}, {"user", m.user}, {"ts", m.ts_ms}, {"payload", m.payload}});
      }
      return out;
    }
    case ChannelType::kCollaborative: {
      json out = json::object();
      for (const auto& [user, state] : by_user_) out[user] = state;
      return out;
    }
    case ChannelType::kShared: return shared_;
  }
  return nullptr;
}

Applied Channel::apply(const std::string& user, const json& payload, int64_t now_ms,
                       uint32_t history) {
  Applied out;
  switch (type_) {
    case ChannelType::kAccumulative: {
      Message m{next_id_++, user, now_ms, payload};
      out.delta = {{"id", m.id}, {"user", m.user}, {"ts", m.ts_ms}, {"payload", m.payload}};
      history_.push_back(std::move(m));
      while (history_.size() > history) history_.pop_front();
      break;
    }
    case ChannelType::kCollaborative:
      by_user_[user] = payload;
      out.delta = {{"user", user}, {"state", payload}};
      break;
    case ChannelType::kShared: {
      if (!payload.is_object()) {
        out.error = "a shared channel takes an object of its schema's keys";
        return out;
      }
      // All or nothing: every key is checked before any is set.
      for (const auto& [key, value] : payload.items()) {
        const auto known = schema_.find(key);
        if (known == schema_.end()) {
          out.error = "unknown key '" + key + "' (not in the channel's schema)";
          return out;
        }
        if (!has_type(value, known->second)) {
          out.error = "key '" + key + "' must be of type " + known->second;
          return out;
        }
      }
      for (const auto& [key, value] : payload.items()) shared_[key] = value;
      out.delta = {{"user", user}, {"changes", payload}};
      break;
    }
  }
  out.ok = true;
  return out;
}

json Channel::to_json() const {
  json j{{"name", name_}, {"type", to_string(type_)}, {"next_id", next_id_}};
  if (type_ == ChannelType::kShared) j["schema"] = schema_;
  j["state"] = state();
  return j;
}

std::optional<Channel> Channel::from_json(const json& j, std::string* error) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("type") ||
      !j["type"].is_string()) {
    set_error(error, "channel: expected {name, type, ...}");
    return std::nullopt;
  }
  const auto type = channel_type(j["type"].get<std::string>());
  if (!type) {
    set_error(error, "channel type must be accumulative, collaborative or shared");
    return std::nullopt;
  }
  std::map<std::string, std::string> schema;
  if (*type == ChannelType::kShared) {
    auto parsed = schema_from(j.value("schema", json()), error);
    if (!parsed) return std::nullopt;
    schema = std::move(*parsed);
  }
  Channel c(j["name"].get<std::string>(), *type, std::move(schema));
  c.next_id_ = j.value("next_id", uint64_t{1});
  const json state = j.value("state", json());
  switch (*type) {
    case ChannelType::kAccumulative:
      if (state.is_array()) {
        for (const json& m : state) {
          c.history_.push_back(Message{m.value("id", uint64_t{0}), m.value("user", std::string()),
                                       m.value("ts", int64_t{0}), m.value("payload", json())});
        }
      }
      break;
    case ChannelType::kCollaborative:
      if (state.is_object()) {
        for (const auto& [user, s] : state.items()) c.by_user_[user] = s;
      }
      break;
    case ChannelType::kShared:
      if (state.is_object()) c.shared_ = state;
      break;
  }
  return c;
}

json Presence::metas_json(const std::vector<Meta>& metas) {
  json out = json::array();
  for (const Meta& m : metas) {
    out.push_back({{"phx_ref", m.phx_ref}, {"online_at", std::to_string(m.online_at)}});
  }
  return json{{"metas", out}};
}

json Presence::state() const {
  json out = json::object();
  for (const auto& [user, metas] : metas_) out[user] = metas_json(metas);
  return out;
}

json Presence::to_json() const {
  json users = json::object();
  for (const auto& [user, metas] : metas_) {
    json list = json::array();
    for (const Meta& m : metas) {
      list.push_back({{"phx_ref", m.phx_ref}, {"online_at", m.online_at}, {"session", m.session}});
    }
    users[user] = std::move(list);
  }
  return json{{"users", std::move(users)}, {"next_ref", next_ref_}};
}

Presence Presence::from_json(const json& j) {
  Presence p;
  p.next_ref_ = j.value("next_ref", uint64_t{1});
  // Named: items() of a temporary would outlive it.
  const json users = j.value("users", json::object());
  for (const auto& [user, list] : users.items()) {
    for (const json& m : list) {
      const Meta meta{m.value("phx_ref", std::string()), m.value("online_at", int64_t{0}),
                      m.value("session", uint64_t{0})};
      p.metas_[user].push_back(meta);
      p.user_of_[meta.session] = user;
    }
  }
  return p;
}

json Presence::join(const std::string& user, uint64_t session, int64_t now_ms) {
  Meta meta{"p" + std::to_string(next_ref_++), now_ms, session};
  metas_[user].push_back(meta);
  user_of_[session] = user;
  return json{{"joins", {{user, metas_json({meta})}}}, {"leaves", json::object()}};
}

json Presence::leave(uint64_t session) {
  const auto who = user_of_.find(session);
  if (who == user_of_.end()) return nullptr;
  const std::string user = who->second;
  user_of_.erase(who);
  auto& metas = metas_[user];
  std::vector<Meta> gone;
  std::erase_if(metas, [&](const Meta& m) {
    if (m.session != session) return false;
    gone.push_back(m);
    return true;
  });
  if (metas.empty()) metas_.erase(user);
  return json{{"joins", json::object()}, {"leaves", {{user, metas_json(gone)}}}};
}

void PresenceBatch::add(const json& diff) {
  for (const auto& [user, joined] : diff.at("joins").items()) {
    for (const json& meta : joined.at("metas")) joins_[user]["metas"].push_back(meta);
  }
  for (const auto& [user, left] : diff.at("leaves").items()) {
    for (const json& meta : left.at("metas")) {
      // Joined since the last batch went out: no member has heard of it, so neither goes.
      json* pending = joins_.contains(user) ? &joins_[user]["metas"] : nullptr;
      const auto same = [&](const json& m) { return m.at("phx_ref") == meta.at("phx_ref"); };
      if (pending != nullptr && std::any_of(pending->begin(), pending->end(), same)) {
        pending->erase(std::find_if(pending->begin(), pending->end(), same));
        if (pending->empty()) joins_.erase(user);
      } else {
        leaves_[user]["metas"].push_back(meta);
      }
    }
  }
}

json PresenceBatch::take() {
  json diff{{"joins", std::move(joins_)}, {"leaves", std::move(leaves_)}};
  joins_ = json::object();
  leaves_ = json::object();
  return diff;
}

Instance::Instance(std::string id, std::string type, std::string name, Limits limits,
                   bool client_channels)
    : id_(std::move(id)),
      type_(std::move(type)),
      name_(std::move(name)),
      limits_(limits),
      client_channels_(client_channels) {
  channels_.emplace("lobby", Channel("lobby", ChannelType::kAccumulative));
}

bool Instance::add_channel(Channel channel, std::string* error) {
  if (!valid_id(channel.name())) {
    return set_error(error, "a channel name is 1.." + std::to_string(kMaxIdBytes) +
                                " characters of A-Z a-z 0-9 _ . : -");
  }
  if (channels_.contains(channel.name())) return set_error(error, "channel '" + channel.name() + "' exists");
  if (channels_.size() >= limits_.max_channels) {
    return set_error(error, "the instance has its " + std::to_string(limits_.max_channels) +
                                " channels (limits.max_channels)");
  }
  const std::string name = channel.name();
  channels_.emplace(name, std::move(channel));
  return true;
}

bool Instance::remove_channel(const std::string& name, std::string* error) {
  if (name == "lobby") return set_error(error, "the lobby cannot be deleted");
  if (channels_.erase(name) == 0) return set_error(error, "no channel '" + name + "'");
  presence_.erase(name);
  return true;
}

Channel* Instance::channel(const std::string& name) {
  const auto it = channels_.find(name);
  return it != channels_.end() ? &it->second : nullptr;
}

json Instance::presence_json() const {
  json out = json::object();
  for (const auto& [name, p] : presence_) out[name] = p.to_json();
  return out;
}

void Instance::restore_presence(const json& j) {
  for (const auto& [name, p] : j.items()) {
    if (channels_.contains(name)) presence_[name] = Presence::from_json(p);
  }
}

json Instance::rooms() const {
  json out = json::array();
  for (const auto& [name, c] : channels_) out.push_back({{"name", name}, {"type", to_string(c.type())}});
  return out;
}

size_t Instance::users() const {
  std::set<std::string> users;
  for (const auto& [name, p] : presence_) p.add_users_to(users);
  return users.size();
}

bool Instance::has_user(const std::string& user) const {
  return std::any_of(presence_.begin(), presence_.end(),
                     [&](const auto& p) { return p.second.has_user(user); });
}

bool Instance::allow_push(const std::string& user, int64_t now_ms) {
  const double rate = limits_.messages_per_second;
  auto [it, fresh] = buckets_.try_emplace(user, Bucket{rate, now_ms});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(rate, b.tokens + static_cast<double>(now_ms - b.at_ms) * rate / 1000.0);
    b.at_ms = now_ms;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

json Instance::definition() const {
  json channels = json::array();
  for (const auto& [name, c] : channels_) {
    json def{{"name", name}, {"type", to_string(c.type())}};
    if (c.type() == ChannelType::kShared) def["schema"] = c.schema();
    channels.push_back(std::move(def));
  }
  return json{{"id", id_},
              {"type", type_},
              {"name", name_},
              {"limits", to_json(limits_)},
              {"client_channels", client_channels_},
              {"state", to_string(state_)},
              {"failure", failure_},
              {"channels", std::move(channels)}};
}

json Instance::summary() const {
  json out = definition();
  for (json& c : out["channels"]) {
    const auto p = presence_.find(c["name"].get<std::string>());
    c["members"] = p != presence_.end() ? p->second.users() : 0;
  }
  out["users"] = users();
  return out;
}

std::optional<Instance> Instance::from_definition(const json& j, std::string* error) {
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
    set_error(error, "instance: expected {id, ...}");
    return std::nullopt;
  }
  auto limits = limits_from(j.value("limits", json()), Limits{}, error);
  if (!limits) return std::nullopt;
  Instance instance(j["id"].get<std::string>(), j.value("type", std::string()),
                    j.value("name", std::string()), *limits, j.value("client_channels", false));
  const std::string state = j.value("state", std::string("running"));
  if (state == "stopped") instance.stop();
  if (state == "failed") instance.fail(j.value("failure", std::string()));
  return instance;
}

}  // namespace prism::rooms
