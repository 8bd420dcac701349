// The `rooms` service (docs/rooms.md, DESIGN.md §8): instances that browsers join over
// the WebSocket gateway at /socket/<id>/websocket (socket-scoped topics "@<id>/<channel>",
// protocol.md §7.2) and game servers over UDP, managed through its own requests, the
// admin session (prismctl rooms) and HTTP (/api/instances). Every change is written to
// the storage facade before it is acknowledged or broadcast; changes that arrive while a
// channel's write is in flight share the next write (group commit). In a cluster an
// instance is served by the node that holds its lease; the others forward its requests
// there (docs/rooms.md "In a cluster").
#include <prism/plugin.hpp>

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jwt.hpp"
#include "model.hpp"

namespace prism::rooms {
namespace {

using sdk::Bytes;
using sdk::Request;
using sdk::Task;

// Storage layout (docs/rooms.md "Persistence").
constexpr std::string_view kInstances = "rooms.instances";  // id -> Instance::definition()
constexpr std::string_view kChannels = "rooms.channels";    // "<id>/<channel>" -> Channel::to_json()

// Request ids (relative) that may be forwarded to the node serving the instance.
constexpr uint32_t kShow = 2, kStop = 3, kStart = 4, kDelete = 5, kAddChannel = 6, kDeleteChannel = 7,
                   kJoin = 10, kPush = 11, kLeave = 12;
// Push ids (relative): their method names are the Phoenix events clients receive.
constexpr uint32_t kMsg = 50, kPresenceState = 51, kPresenceDiff = 52, kRooms = 53;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string uuid4() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const uint64_t a = rng(), b = rng();
  char out[37];
  std::snprintf(out, sizeof out, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0x0fff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return out;
}

// The plugin's settings (plugins.d/rooms.yaml `settings:`, docs/rooms.md "Settings").
struct Settings {
  Limits limits;                      // each instance's defaults
  std::optional<JwtVerifier> auth;    // rooms.auth: when set, joins need a JWT
  bool restart_on_failure = true;     // restart: on-failure | never
};

Settings parse_settings(std::string_view yaml) {
  Settings s;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument("rooms settings: not valid YAML: " + std::string(e.what()));
  }
  if (root.IsNull()) return s;
  if (!root.IsMap()) throw std::invalid_argument("rooms settings: expected a mapping");
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    const YAML::Node value = entry.second;
    if (key == "limits") {
      json limits = json::object();
      for (const auto& l : value) limits[l.first.Scalar()] = l.second.as<uint64_t>(0);
      std::string error;
      auto parsed = limits_from(limits, s.limits, &error);
      if (!parsed) throw std::invalid_argument("rooms settings: " + error);
      s.limits = *parsed;
    } else if (key == "restart") {
      const std::string policy = value.Scalar();
      if (policy != "on-failure" && policy != "never") {
        throw std::invalid_argument("rooms settings: restart: expected on-failure or never");
      }
      s.restart_on_failure = policy == "on-failure";
    } else if (key == "auth") {
      std::string error;
      if (value["hs256_secret"]) {
        s.auth = JwtVerifier::hs256(value["hs256_secret"].Scalar(), &error);
      } else if (value["public_key"]) {
        s.auth = JwtVerifier::from_public_key_pem(value["public_key"].Scalar(), &error);
      } else {
        throw std::invalid_argument("rooms settings: auth: expected hs256_secret or public_key");
      }
      if (!s.auth) throw std::invalid_argument("rooms settings: auth: " + error);
      if (value["audience"]) s.auth->require_audience(value["audience"].Scalar());
    } else {
      throw std::invalid_argument("rooms settings: " + key +
                                  ": unknown key (known keys: limits, restart, auth)");
    }
  }
  return s;
}

class RoomsService {
  // A request as it came (a method's, kind 0, or a channel message), kept to serve it here
  // or forward it to the node that serves its instance.
  struct Call {
    uint32_t kind = 0;  // 0, or the prism_channel_kind_t
    uint32_t method = 0;
    std::string payload, topic, event, connect;
    std::string receive;  // a join's topic: received here before the join is forwarded
    prism_forward_t what() const {
      if (kind == 0) return sdk::forward_of(method, sdk::as_bytes(payload), receive);
      return sdk::forward_of(
          sdk::ChannelMessage{static_cast<prism_channel_kind_t>(kind), topic, event, payload, connect});
    }
  };

 public:
  static constexpr sdk::ServiceInfo info{.name = "rooms",
                                         .version = "1.0.0",
                                         .packet_id_first = 1200,
                                         .packet_id_count = 100};

  RoomsService(sdk::Host& host, std::string_view config)
      : host_(host), settings_(parse_settings(config)), clustered_(*host.server_info().node_id != '\0') {
    // Without storage there is nothing to load (and nothing survives a restart).
    if (host_.has_storage()) {
      load();
    } else {
      loaded_ = true;
    }
  }

  // ---- Requests (UDP, and prismctl rooms through the admin session) ----------------
  Task create(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    std::string error;
    auto made = make_instance(in, &error);
    if (!made) co_return req.fail(PRISM_INVALID_ARGUMENT, error);
    const std::string id = made->id();
    if (instances_.contains(id)) co_return req.fail(PRISM_CONFLICT, "instance '" + id + "' exists");
    if (clustered_) {
      // The node that creates an instance serves it; one another node serves exists.
      const auto lease = co_await host_.lease(id);
      if (lease.status == PRISM_CONFLICT) {
        co_return req.fail(PRISM_CONFLICT, "instance '" + id + "' exists (served by node " + lease.message + ")");
      }
      if (lease.status != PRISM_OK) co_return req.fail(PRISM_UNAVAILABLE, "cannot create: " + lease.message);
      const auto stored = co_await host_.get(kInstances, id);
      if (!stored.ok() && stored.status != PRISM_NOT_FOUND) {
        co_return req.fail(PRISM_UNAVAILABLE, "cannot create: " + stored.message);
      }
      if (instances_.contains(id) || !stored.documents.empty()) {
        co_return req.fail(PRISM_CONFLICT, "instance '" + id + "' exists");
      }
    }
    instances_.emplace(id, std::move(*made));
    const prism_status_t stored = co_await store_instance(id, true);
    if (stored != PRISM_OK) {
      instances_.erase(id);
      co_return req.fail(stored, "the instance could not be stored");
    }
    host_.info("instance created id=" + id);
    req.ok(instances_.at(id).summary().dump());
  }

  // Alone: the instances here. In a cluster: every stored instance, live figures for the
  // ones this node serves.
  Task list(Request req, std::string) {
    json out = json::array();
    if (!clustered_) {
      for (const auto& [id, instance] : instances_) out.push_back(instance.summary());
      co_return req.ok(json{{"instances", out}}.dump());
    }
    std::string after;
    for (;;) {
      auto page = co_await host_.list(kInstances, "", after, 500);
      if (!page.ok()) co_return req.fail(PRISM_UNAVAILABLE, "cannot list instances: " + page.message);
      for (const auto& doc : page.documents) {
        if (const Instance* here = find(doc.key)) {
          out.push_back(here->summary());
        } else if (auto stored = Instance::from_definition(json::parse(doc.value, nullptr, false), nullptr)) {
          out.push_back(stored->summary());
        }
      }
      if (page.documents.size() < 500) break;
      after = page.documents.back().key;
    }
    req.ok(json{{"instances", out}}.dump());
  }

  // ---- Requests about one instance: served here, or where its lease is held ---------
  void show(Request req, Bytes payload) { routed(std::move(req), kShow, payload, &RoomsService::show_here); }
  void stop(Request req, Bytes payload) { routed(std::move(req), kStop, payload, &RoomsService::stop_here); }
  void start(Request req, Bytes payload) { routed(std::move(req), kStart, payload, &RoomsService::start_here); }
  void remove(Request req, Bytes payload) { routed(std::move(req), kDelete, payload, &RoomsService::remove_here); }
  void add_channel(Request req, Bytes payload) {
    routed(std::move(req), kAddChannel, payload, &RoomsService::add_channel_here);
  }
  void delete_channel(Request req, Bytes payload) {
    routed(std::move(req), kDeleteChannel, payload, &RoomsService::delete_channel_here);
  }
  void member_join(Request req, Bytes payload) {
    // The join's topic reaches this node before the join leaves it (plugin.h forward).
    const json in = json::parse(sdk::as_text(payload), nullptr, false);
    const std::string topic = in.is_object() ? "@" + in.value("id", std::string()) + "/" +
                                                   in.value("channel", std::string())
                                             : std::string();
    routed(std::move(req), kJoin, payload, &RoomsService::member_join_here, topic);
  }
  void member_push(Request req, Bytes payload) {
    routed(std::move(req), kPush, payload, &RoomsService::member_push_here);
  }
  void member_leave(Request req, Bytes payload) {
    routed(std::move(req), kLeave, payload, &RoomsService::member_leave_here);
  }

  void show_here(Request req, std::string payload) {
    Instance* instance = find(id_in(payload));
    if (instance == nullptr) return req.fail(PRISM_NOT_FOUND, "no instance '" + id_in(payload) + "'");
    req.ok(instance->summary().dump());
  }

  Task stop_here(Request req, std::string payload) { co_await set_state(std::move(req), id_in(payload), false); }
  // A failed instance starts again from its last stored state.
  Task start_here(Request req, std::string payload) {
    const std::string id = id_in(payload);
    Instance* instance = find(id);
    if (instance != nullptr && instance->state() == InstanceState::kFailed) {
      const std::string why = co_await reload(id);
      if (!why.empty()) co_return req.fail(PRISM_UNAVAILABLE, "instance '" + id + "' did not start: " + why);
      restarts_.erase(id);  // started by hand: on-failure may restart it again
      host_.info("instance started id=" + id + " from storage");
      co_return req.ok(find(id)->summary().dump());
    }
    co_await set_state(std::move(req), id, true);
  }

  Task remove_here(Request req, std::string payload) {
    const std::string id = id_in(payload);
    Instance* instance = find(id);
    if (instance == nullptr) co_return req.fail(PRISM_NOT_FOUND, "no instance '" + id + "'");
    std::vector<std::string> channels;
    for (const auto& [name, c] : instance->channels()) channels.push_back(name);
    close_members(*instance, "instance '" + id + "' was deleted", /*rejoin=*/false);
    instances_.erase(id);
    restarts_.erase(id);
    co_await host_.remove(kInstances, id);
    for (const std::string& name : channels) co_await host_.remove(kChannels, id + "/" + name);
    host_.release_lease(id);
    owners_.erase(id);
    host_.info("instance deleted id=" + id);
    req.ok(json{{"deleted", id}}.dump());
  }

  // ---- Hot reload: who is in which channel goes to the next version ------------------
  // (instances and their state come back from storage; members and presence are only
  // here, and the sockets stay connected and subscribed across a reload).
  std::string snapshot() {
    flush_presence();  // the next version starts with nothing unsent
    json members = json::object();
    for (const auto& [session, m] : members_) {
      members[std::to_string(session)] = {{"user", m.user}, {"topics", m.topics}};
    }
    json presence = json::object();
    for (const auto& [id, instance] : instances_) presence[id] = instance.presence_json();
    return json{{"members", std::move(members)}, {"presence", std::move(presence)}}.dump();
  }

  void restore(Bytes state) {
    handed_over_ = json::parse(sdk::as_text(state), nullptr, false);
    if (loaded_) apply_handed_over();  // no storage to wait for
  }

  // ---- Game servers over UDP: members like a browser's socket -----------------------
  // {"id", "channel", "user"}: the session joins as `user`; answered like a browser's join,
  // then presence_state (pushes carry the topic "@<id>/<channel>").
  void member_join_here(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    if (!in.is_object() || !in.contains("id") || !in.contains("channel") || !in.contains("user")) {
      return req.fail(PRISM_INVALID_ARGUMENT, R"(expected {"id", "channel", "user"})");
    }
    const std::string id = in.value("id", std::string()), name = in.value("channel", std::string());
    const std::string topic = "@" + id + "/" + name;
    // A game server is trusted with the user it names: it logged in with the service's
    // token (or is the admin session).
    const std::string connect = json{{"params", {{"userId", in.value("user", std::string())}}}}.dump();
    join(std::move(req), id, name, topic, connect, /*trusted=*/true);
  }

  // {"id", "channel", "payload"}: a push as the session's user.
  void member_push_here(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    if (!in.is_object() || !in.contains("id") || !in.contains("channel")) {
      return req.fail(PRISM_INVALID_ARGUMENT, R"(expected {"id", "channel", "payload"})");
    }
    const std::string id = in.value("id", std::string()), name = in.value("channel", std::string());
    event(std::move(req), id, name, "@" + id + "/" + name, "push", in.value("payload", json()).dump());
  }

  // {"id", "channel"}
  void member_leave_here(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    const std::string id = in.is_object() ? in.value("id", std::string()) : std::string();
    const std::string name = in.is_object() ? in.value("channel", std::string()) : std::string();
    leave(req.session(), id, name, "@" + id + "/" + name);
    req.ok();
  }

  // A UDP member's session ended: it leaves its channels (a WebSocket's gateway has sent
  // a LEAVE for each already).
  void on_event(const prism_event_t& e) {
    if (e.type == PRISM_EVENT_LEASE_LOST) {
      return hand_off(std::string(sdk::as_text(sdk::Bytes(e.payload.data, e.payload.len))));
    }
    if (e.type != PRISM_EVENT_SESSION_CLOSED) return;
    const auto m = members_.find(e.session_id);
    if (m == members_.end()) return;
    const std::set<std::string> topics = m->second.topics;
    for (const std::string& topic : topics) {
      const size_t slash = topic.find('/');
      leave(e.session_id, topic.substr(1, slash - 1), topic.substr(slash + 1), topic);
    }
  }

  // ---- Channels: browsers on /socket/<id>/websocket ---------------------------------
  static constexpr const char* channel_topics[] = {"@*", "/api/instances*", nullptr};

  void channel(Request req, const sdk::ChannelMessage& m) {
    Call call{static_cast<uint32_t>(m.kind), 0, std::string(m.payload), std::string(m.topic),
              std::string(m.event), std::string(m.connect), {}};
    if (m.kind == PRISM_CHANNEL_HTTP) {
      const std::string id = http_instance(call.topic);
      if (id.empty()) return http(std::move(req), std::move(call));  // the list, or a create
      return route(std::move(req), id, std::move(call), [this](Request r, Call c) { http(std::move(r), std::move(c)); });
    }
    // "@<id>/<channel>" (protocol.md §7.2).
    const size_t slash = call.topic.find('/');
    if (!call.topic.starts_with('@') || slash == std::string::npos) {
      return req.fail(PRISM_NOT_FOUND, "unmatched topic");
    }
    const std::string id = call.topic.substr(1, slash - 1);
    if (m.kind == PRISM_CHANNEL_JOIN) call.receive = call.topic;
    route(std::move(req), id, std::move(call), [this](Request r, Call c) { channel_here(std::move(r), c); });
  }

  void channel_here(Request req, const Call& m) {
    const std::string& topic = m.topic;
    const size_t slash = topic.find('/');
    const std::string id = topic.substr(1, slash - 1), name = topic.substr(slash + 1);
    // Isolation (docs/rooms.md "Failures"): what throws inside one instance stops that
    // instance alone; the request answers INTERNAL as its Request goes.
    try {
      switch (m.kind) {
        case PRISM_CHANNEL_JOIN: return join(std::move(req), id, name, topic, m.connect, false);
        case PRISM_CHANNEL_LEAVE:
          leave(req.session(), id, name, topic);
          return req.ok();
        case PRISM_CHANNEL_EVENT:
          return event(std::move(req), id, name, topic, std::string(m.event), std::string(m.payload));
        default: return req.fail(PRISM_INVALID_ARGUMENT, "unknown channel message");
      }
    } catch (const std::exception& e) {
      instance_failed(id, e.what());
    }
  }

  // add_channel / delete_channel (an admin, a game server, POST or DELETE .../channels).
  void add_channel_here(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    change_channel(std::move(req), in.is_object() ? in.value("id", std::string()) : std::string(), true, in);
  }
  void delete_channel_here(Request req, std::string payload) {
    const json in = json::parse(payload, nullptr, false);
    change_channel(std::move(req), in.is_object() ? in.value("id", std::string()) : std::string(), false, in);
  }

  void refuse_push_id(Request req, Bytes) {
    req.fail(PRISM_INVALID_ARGUMENT, "this id is what the service pushes, not a request");
  }

  static constexpr sdk::Method<RoomsService> methods[] = {
      {0, "create", &RoomsService::create},
      {1, "list", &RoomsService::list},
      {kShow, "show", &RoomsService::show},
      {kStop, "stop", &RoomsService::stop},
      {kStart, "start", &RoomsService::start},
      {kDelete, "delete", &RoomsService::remove},
      {kAddChannel, "add_channel", &RoomsService::add_channel},
      {kDeleteChannel, "delete_channel", &RoomsService::delete_channel},
      {kJoin, "join", &RoomsService::member_join},
      {kPush, "push", &RoomsService::member_push},
      {kLeave, "leave", &RoomsService::member_leave},
      {kMsg, "msg", &RoomsService::refuse_push_id},
      {kPresenceState, "presence_state", &RoomsService::refuse_push_id},
      {kPresenceDiff, "presence_diff", &RoomsService::refuse_push_id},
      {kRooms, "rooms", &RoomsService::refuse_push_id},
  };

 private:
  struct Member {
    std::string user;
    std::set<std::string> topics;  // "@<id>/<channel>" joined
  };
  // A channel's changes waiting for (or in) its write (group commit).
  struct Waiting {
    Request req;
    std::string topic;
    uint64_t session;
    json delta;
  };
  struct Flush {
    bool running = false;
    std::vector<Waiting> waiting;
  };

  Instance* find(const std::string& id) {
    const auto it = instances_.find(id);
    return it != instances_.end() ? &it->second : nullptr;
  }

  // ---- In a cluster (docs/rooms.md "In a cluster") -----------------------------------
  // An instance is served by the node that holds its lease (named by its id). A request
  // about one this node does not serve takes the lease when it is free (the instance is
  // loaded from storage: the last node that served it died or let it go) or is forwarded
  // to the holder, whose answer answers it; pushes to the client come back through the
  // host (stand-in sessions) and broadcasts through the instance's topics.
  template <class R>
  void routed(Request req, uint32_t method, Bytes payload, R (RoomsService::*here)(Request, std::string),
              std::string receive = {}) {
    Call call{0, method, std::string(sdk::as_text(payload)), {}, {}, {}, std::move(receive)};
    const std::string id = id_in(call.payload);
    route(std::move(req), id, std::move(call),
          [this, here](Request r, Call c) { (void)(this->*here)(std::move(r), std::move(c.payload)); });
  }

  void route(Request req, const std::string& id, Call call, std::function<void(Request, Call)> here) {
    if (!clustered_ || find(id) != nullptr) return here(std::move(req), std::move(call));
    if (const auto o = owners_.find(id); o != owners_.end() && now_ms() < o->second.until) {
      return forward(std::move(req), id, o->second.node, call);
    }
    locate(std::move(req), id, std::move(call), std::move(here));
  }

  Task locate(Request req, std::string id, Call call, std::function<void(Request, Call)> here) {
    const auto lease = co_await host_.lease(id);
    if (lease.status == PRISM_CONFLICT) {
      owners_[id] = Owner{lease.message, now_ms() + kOwnerMemory.count()};
      co_return forward(std::move(req), id, lease.message, call);
    }
    if (lease.status != PRISM_OK) {
      co_return req.fail(PRISM_UNAVAILABLE, "instance '" + id + "': " + lease.message);
    }
    if (find(id) == nullptr) {
      const prism_status_t taken = co_await take_over(id);
      if (taken == PRISM_NOT_FOUND) co_return req.fail(PRISM_NOT_FOUND, "no instance '" + id + "'");
      if (taken != PRISM_OK) co_return req.fail(taken, "instance '" + id + "' could not be loaded");
    }
    here(std::move(req), std::move(call));
  }

  // `node` by value: it may be the owners_ entry erased below.
  void forward(Request req, const std::string& id, std::string node, const Call& call) {
    const prism_status_t sent = req.forward(node, call.what());
    if (sent == PRISM_OK) return;
    owners_.erase(id);
    req.fail(PRISM_UNAVAILABLE, "instance '" + id + "' is served by node " + node + ", out of reach now");
  }

  // This node holds the instance's lease now: it serves it from its stored state (or, when
  // none is stored, gives the lease back: there is no such instance).
  sdk::Async<prism_status_t> take_over(std::string id) {
    auto def = co_await host_.get(kInstances, id);
    if (def.status == PRISM_NOT_FOUND || (def.ok() && def.documents.empty())) {
      host_.release_lease(id);
      co_return PRISM_NOT_FOUND;
    }
    if (!def.ok()) co_return PRISM_UNAVAILABLE;
    if (find(id) != nullptr) co_return PRISM_OK;  // another request loaded it meanwhile
    std::string error;
    auto instance = Instance::from_definition(json::parse(def.documents[0].value, nullptr, false), &error);
    if (!instance) {
      host_.log(PRISM_LOG_ERROR, "instance " + id + " not loaded: " + error);
      co_return PRISM_INTERNAL;
    }
    instances_.emplace(id, std::move(*instance));
    owners_.erase(id);
    if (find(id)->state() != InstanceState::kFailed) {
      const std::string why = co_await load_channels(id);
      if (!why.empty()) instance_failed(id, why, /*restart=*/false);
    }
    host_.info("instance taken over id=" + id + " from storage");
    co_return PRISM_OK;
  }

  // Another node holds the lease now (this one was cut off from Redis longer than its
  // TTL): the instance is served there; its members here join again and are forwarded.
  void hand_off(const std::string& id) {
    Instance* instance = find(id);
    if (instance == nullptr) return;
    close_members(*instance, "instance '" + id + "' moved to another node", /*rejoin=*/true);
    instances_.erase(id);
    restarts_.erase(id);
    host_.log(PRISM_LOG_WARN, "instance handed off id=" + id + " reason=\"its lease is another node's\"");
  }

  static std::string id_in(std::string_view payload) {
    const json in = json::parse(payload, nullptr, false);
    if (in.is_object() && in.contains("id") && in["id"].is_string()) return in["id"];
    return std::string(payload);  // the bare id, as prismctl may send it
  }
  static std::string id_in(Bytes payload) { return id_in(sdk::as_text(payload)); }

  std::optional<Instance> make_instance(const json& in, std::string* error) {
    if (!in.is_object()) {
      *error = R"(expected {"type", "name", "id"?, "limits"?, "channels"?, "client_channels"?})";
      return std::nullopt;
    }
    const std::string id = in.contains("id") ? in.value("id", std::string()) : uuid4();
    if (!valid_id(id)) {
      *error = "id: 1..64 characters of A-Z a-z 0-9 _ . : -";
      return std::nullopt;
    }
    const std::string name = in.value("name", id);
    if (name.size() > kMaxNameBytes) {
      *error = "name: at most " + std::to_string(kMaxNameBytes) + " bytes";
      return std::nullopt;
    }
    auto limits = limits_from(in.value("limits", json()), settings_.limits, error);
    if (!limits) return std::nullopt;
    Instance instance(id, in.value("type", std::string("default")), name, *limits,
                      in.value("client_channels", false));
    for (const json& c : in.value("channels", json::array())) {
      auto channel = Channel::from_json(c, error);
      if (!channel || !instance.add_channel(std::move(*channel), error)) return std::nullopt;
    }
    return instance;
  }

  // ---- Persistence -------------------------------------------------------------------
  sdk::Async<prism_status_t> store_instance(std::string id, bool with_channels) {
    Instance* instance = find(id);
    if (instance == nullptr) co_return PRISM_NOT_FOUND;
    const std::string def = instance->definition().dump();
    auto r = co_await host_.put(kInstances, id, def);
    if (!r.ok() || !with_channels) co_return r.status;
    for (const auto& [name, c] : instance->channels()) {
      const std::string doc = c.to_json().dump();
      auto w = co_await host_.put(kChannels, id + "/" + name, doc);
      if (!w.ok()) co_return w.status;
    }
    co_return PRISM_OK;
  }

  // Loads every instance and its channels (after a restart, a SIGKILL or a reload).
  Task load() {
    std::string after;
    std::vector<std::string> loaded;  // what this load put in instances_
    for (;;) {
      auto page = co_await host_.list(kInstances, "", after, 500);
      if (!page.ok()) {
        host_.log(PRISM_LOG_ERROR, "cannot list instances: " + page.message);
        break;
      }
      for (const auto& doc : page.documents) {
        if (clustered_) {
          // The ones no live node serves are this node's; the others stay where they are.
          const auto lease = co_await host_.lease(doc.key);
          if (lease.status == PRISM_CONFLICT) continue;
          if (lease.status != PRISM_OK) {
            host_.log(PRISM_LOG_WARN, "instance " + doc.key + " not loaded now: " + lease.message);
            continue;
          }
        }
        std::string error;
        auto instance = Instance::from_definition(json::parse(doc.value, nullptr, false), &error);
        if (!instance) {
          host_.log(PRISM_LOG_ERROR, "instance " + doc.key + " not loaded: " + error);
          continue;
        }
        // One created (or taken over) while this load ran is newer than its stored
        // state: kept as it is.
        if (instances_.contains(instance->id())) continue;
        loaded.push_back(instance->id());
        channels_pending_.insert(instance->id());
        instances_.emplace(instance->id(), std::move(*instance));
      }
      if (page.documents.size() < 500) break;
      after = page.documents.back().key;
    }
    for (const std::string& id : loaded) {
      if (find(id) == nullptr || find(id)->state() == InstanceState::kFailed) {  // deleted, or stays failed
        channels_pending_.erase(id);
        continue;
      }
      const std::string why = co_await load_channels(id);
      channels_pending_.erase(id);
      if (!why.empty()) instance_failed(id, why, /*restart=*/false);
    }
    loaded_ = true;
    apply_handed_over();
    host_.info("rooms loaded instances=" + std::to_string(instances_.size()));
  }

  // The previous version's members and presence (restore), once the instances are loaded.
  void apply_handed_over() {
    if (!handed_over_.is_object()) return;
    // Named: items() of a temporary would outlive it.
    const json members = handed_over_.value("members", json::object());
    const json presence = handed_over_.value("presence", json::object());
    for (const auto& [session, m] : members.items()) {
      Member& member = members_[std::stoull(session)];
      member.user = m.value("user", std::string());
      for (const json& t : m.value("topics", json::array())) member.topics.insert(t.get<std::string>());
    }
    for (const auto& [id, p] : presence.items()) {
      if (Instance* instance = find(id)) instance->restore_presence(p);
    }
    handed_over_ = nullptr;
  }

  // Reads the instance's channels from storage into it; "" or why they could not be.
  sdk::Async<std::string> load_channels(std::string id) {
    auto channels = co_await host_.list(kChannels, id + "/", "", 1000);
    if (!channels.ok()) co_return "its channels could not be read: " + channels.message;
    Instance* instance = find(id);
    if (instance == nullptr) co_return "it is gone";
    for (const auto& doc : channels.documents) {
      std::string error;
      std::optional<Channel> channel;
      try {
        channel = Channel::from_json(json::parse(doc.value, nullptr, false), &error);
      } catch (const std::exception& e) {  // a stored state of the wrong shape
        error = e.what();
      }
      if (!channel) co_return "channel " + doc.key + " is unreadable: " + error;
      if (channel->name() == "lobby") {
        *instance->channel("lobby") = std::move(*channel);
      } else if (instance->channel(channel->name()) != nullptr) {
        *instance->channel(channel->name()) = std::move(*channel);
      } else if (!instance->add_channel(std::move(*channel), &error)) {
        co_return "channel " + doc.key + ": " + error;
      }
    }
    co_return std::string();
  }

  // Replaces the instance with its last stored state and starts it; "" or why not.
  sdk::Async<std::string> reload(std::string id) {
    auto def = co_await host_.get(kInstances, id);
    if (!def.ok() || def.documents.empty()) co_return "its definition could not be read";
    std::string error;
    auto fresh = Instance::from_definition(json::parse(def.documents[0].value, nullptr, false), &error);
    if (!fresh) co_return error;
    fresh->start();
    instances_.erase(id);
    instances_.emplace(id, std::move(*fresh));
    const std::string why = co_await load_channels(id);
    if (!why.empty()) {
      find(id)->fail(why);
      co_await store_instance(id, false);
      co_return why;
    }
    co_await store_instance(id, false);
    co_return std::string();
  }

  // One instance failed: it alone stops (members leave, joins and pushes are refused),
  // with the reason in the log and in show; restart: on-failure reloads it from its last
  // stored state, at most kMaxRestarts times within kRestartWindow (a supervisor's
  // intensity, as in OTP): a fault that comes straight back leaves it failed until it is
  // started by hand, rather than restarting it forever.
  void instance_failed(const std::string& id, const std::string& why, bool restart = true) {
    Instance* instance = find(id);
    if (instance == nullptr) return;
    host_.log(PRISM_LOG_ERROR, "instance failed id=" + id + " reason=\"" + why + "\"");
    close_members(*instance, "instance '" + id + "' failed: " + why, /*rejoin=*/true);
    instance->fail(why);
    record(id);  // the failure is stored: show says it after a restart of prismd too
    if (!restart || !settings_.restart_on_failure) return;
    std::vector<int64_t>& times = restarts_[id];
    const int64_t now = now_ms();
    std::erase_if(times, [&](int64_t t) { return now - t >= kRestartWindow.count(); });
    if (times.size() >= kMaxRestarts) {
      host_.log(PRISM_LOG_ERROR, "instance left failed id=" + id + " reason=\"" +
                                     std::to_string(kMaxRestarts) + " restarts within " +
                                     std::to_string(kRestartWindow.count() / 1000) + " s\"");
      return;
    }
    times.push_back(now);
    restart_later(id, times.size());
  }

  Task record(std::string id) { co_await store_instance(id, false); }

  Task restart_later(std::string id, size_t restarts) {
    const std::string why = co_await reload(id);
    if (why.empty()) {
      host_.info("instance restarted id=" + id + " restarts=" + std::to_string(restarts));
    } else {
      host_.log(PRISM_LOG_ERROR, "instance restart failed id=" + id + " reason=\"" + why + "\"");
    }
  }

  // Writes the channel, then answers and broadcasts every change it holds; changes that
  // came meanwhile share the next write.
  Task flush(std::string id, std::string name) {
    const std::string key = id + "/" + name;
    Flush& f = flushes_[key];
    f.running = true;
    while (!f.waiting.empty()) {
      std::vector<Waiting> batch = std::move(f.waiting);
      f.waiting.clear();
      Instance* instance = find(id);
      Channel* channel = instance != nullptr ? instance->channel(name) : nullptr;
      prism_status_t status = PRISM_NOT_FOUND;
      if (channel != nullptr) {
        const std::string doc = channel->to_json().dump();
        status = (co_await host_.put(kChannels, key, doc)).status;
      }
      for (Waiting& w : batch) {
        if (status != PRISM_OK) {
          w.req.fail(status, "the change could not be stored");
          continue;
        }
        // Durable first: the sender's ok and the others' msg carry only what is stored.
        w.req.ok(json{{"applied", w.delta}}.dump());
        host_.publish_except(w.topic, w.session, kMsg, w.delta.dump());
      }
    }
    f.running = false;
  }

  // ---- Channel messages ----------------------------------------------------------------
  // The user a socket is: the JWT's sub under rooms.auth, else params.userId.
  std::optional<std::string> user_of(std::string_view connect_text, const std::string& id,
                                     bool trusted, std::string* error) {
    const json connect = json::parse(connect_text, nullptr, false);
    const json params = connect.is_object() ? connect.value("params", json::object()) : json::object();
    if (settings_.auth && !trusted) {
      std::string token = connect.is_object() ? connect.value("token", std::string()) : std::string();
      if (token.empty() && params.is_object()) token = params.value("token", std::string());
      if (token.empty()) {
        *error = "a token is required (rooms.auth)";
        return std::nullopt;
      }
      const auto result = settings_.auth->verify(token, now_ms() / 1000);
      if (!result.ok) {
        *error = result.error;
        return std::nullopt;
      }
      if (result.claims.instances) {
        const auto& allowed = *result.claims.instances;
        if (std::find(allowed.begin(), allowed.end(), id) == allowed.end()) {
          *error = "the token does not allow instance '" + id + "'";
          return std::nullopt;
        }
      }
      if (!valid_id(result.claims.sub)) {
        *error = "the token's sub is not a valid user id";
        return std::nullopt;
      }
      return result.claims.sub;
    }
    std::string user = params.is_object() ? params.value("userId", std::string()) : std::string();
    if (user.empty() && params.is_object()) user = params.value("user_id", std::string());
    if (!valid_id(user)) {
      *error = "userId: 1..64 characters of A-Z a-z 0-9 _ . : - (a socket param)";
      return std::nullopt;
    }
    return user;
  }

  // `trusted`: the user comes from a game server's request, not a browser (no JWT asked).
  void join(Request req, const std::string& id, const std::string& name, const std::string& topic,
            std::string_view connect, bool trusted) {
    // While loading, an instance created meanwhile is whole; a stored one is not until
    // its channels are read.
    if (!loaded_ && (find(id) == nullptr || channels_pending_.contains(id))) {
      return req.fail(PRISM_UNAVAILABLE, "rooms are loading; join again");
    }
    Instance* instance = find(id);
    if (instance == nullptr) return req.fail(PRISM_NOT_FOUND, "no instance '" + id + "'");
    if (instance->state() != InstanceState::kRunning) {
      return req.fail(PRISM_UNAVAILABLE, "instance '" + id + "' is " +
                                             std::string(to_string(instance->state())));
    }
    std::string error;
    const auto user = user_of(connect, id, trusted, &error);
    if (!user) return req.fail(PRISM_INVALID_CREDENTIALS, error);
    Channel* channel = instance->channel(name);
    if (channel == nullptr) {
      return req.fail(PRISM_NOT_FOUND, "no channel '" + name + "' in instance '" + id + "'");
    }
    if (!instance->has_user(*user) && instance->users() >= instance->limits().max_users) {
      return req.fail(PRISM_RATE_LIMITED, "instance '" + id + "' is full (limits.max_users)");
    }
    const uint64_t session = req.session();
    const prism_status_t subscribed = host_.subscribe(session, topic);
    if (subscribed != PRISM_OK) return req.fail(subscribed, "cannot subscribe to the channel");
    members_[session].user = *user;
    members_[session].topics.insert(topic);
    const json diff = instance->presence(name).join(*user, session, now_ms());
    // The reply first: the gateway delivers pushes on a channel once it is joined.
    if (name == "lobby") {
      req.ok(json{{"instance", {{"id", id}, {"name", instance->definition()["name"]}}},
                  {"user", *user}}
                 .dump());
      host_.push_topic(session, topic, kRooms, json{{"rooms", instance->rooms()}}.dump());
    } else {
      req.ok(json{{"type", to_string(channel->type())}, {"state", channel->state()}}.dump());
    }
    host_.push_topic(session, topic, kPresenceState, instance->presence(name).state().dump());
    queue_presence(topic, diff);
  }

  void leave(uint64_t session, const std::string& id, const std::string& name, const std::string& topic) {
    host_.unsubscribe(session, topic);
    if (auto m = members_.find(session); m != members_.end()) {
      m->second.topics.erase(topic);
      if (m->second.topics.empty()) members_.erase(m);
    }
    Instance* instance = find(id);
    if (instance == nullptr) return;
    const json diff = instance->presence(name).leave(session);
    if (!diff.is_null()) queue_presence(topic, diff);
  }

  // presence_diff goes out kPresenceBatch after the first join or leave it holds, with
  // every one that came meanwhile (PresenceBatch), to every member: the stock Presence
  // ignores a meta it already has (its phx_ref), such as a joiner's own in its state.
  void queue_presence(const std::string& topic, const json& diff) {
    presence_batches_[topic].add(diff);
    if (presence_timer_armed_) return;
    presence_timer_ = host_.start_timer(kPresenceBatch, std::chrono::milliseconds(0), [this] {
      presence_timer_armed_ = false;
      flush_presence();
    });
    presence_timer_armed_ = static_cast<bool>(presence_timer_);
    if (!presence_timer_armed_) flush_presence();  // no timer: at once, unbatched
  }

  void flush_presence() {
    for (auto& [topic, batch] : presence_batches_) {
      if (!batch.empty()) host_.publish(topic, kPresenceDiff, batch.take().dump());
    }
    presence_batches_.clear();
  }

  void event(Request req, const std::string& id, const std::string& name, const std::string& topic,
             const std::string& event, const std::string& payload) {
    Instance* instance = find(id);
    if (instance == nullptr || instance->state() != InstanceState::kRunning) {
      return req.fail(PRISM_UNAVAILABLE, "instance '" + id + "' is not running");
    }
    const auto member = members_.find(req.session());
    if (member == members_.end()) return req.fail(PRISM_NOT_FOUND, "not a member");
#ifdef PRISM_ROOMS_FAULTS
    // Only in the test build of this file (tests/plugins: rooms_faults): a handler error
    // on demand, so the isolation tests fail a running instance as a bug would.
    if (event == "fault") throw std::runtime_error("injected fault: " + payload);
#endif
    if (event == "get_rooms") return req.ok(json{{"rooms", instance->rooms()}}.dump());
    if (event == "create_room" || event == "delete_room") {
      return client_room(std::move(req), *instance, name, event, payload);
    }
    if (event != "push") {
      return req.fail(PRISM_NOT_FOUND, "no event " + event + " (push, get_rooms, create_room, delete_room)");
    }
    if (payload.size() > instance->limits().max_message_bytes) {
      return req.fail(PRISM_INVALID_ARGUMENT,
                      "message of " + std::to_string(payload.size()) + " bytes; the limit is " +
                          std::to_string(instance->limits().max_message_bytes));
    }
    const int64_t now = now_ms();
    if (!instance->allow_push(member->second.user, now)) {
      return req.fail(PRISM_RATE_LIMITED, "rate limited (limits.messages_per_second)");
    }
    Channel* channel = instance->channel(name);
    if (channel == nullptr) return req.fail(PRISM_NOT_FOUND, "no channel '" + name + "'");
    const json in = json::parse(payload, nullptr, false);
    // {"payload": x} or x itself (mycelium's clients send either).
    const json body = in.is_object() && in.contains("payload") ? in["payload"] : in;
    Applied applied = channel->apply(member->second.user, body, now, instance->limits().history);
    if (!applied.ok) return req.fail(PRISM_INVALID_ARGUMENT, applied.error);
    Flush& f = flushes_[id + "/" + name];
    f.waiting.push_back(Waiting{std::move(req), topic, member->first, std::move(applied.delta)});
    if (!f.running) flush(id, name);
  }

  // create_room / delete_room from a member, when the instance allows it.
  void client_room(Request req, Instance& instance, const std::string& name, const std::string& event,
                   const std::string& payload) {
    if (name != "lobby") return req.fail(PRISM_INVALID_ARGUMENT, event + " is a lobby event");
    if (!instance.client_channels()) {
      return req.fail(PRISM_INVALID_CREDENTIALS, "this instance does not let clients change channels");
    }
    change_channel(std::move(req), instance.id(), event == "create_room", json::parse(payload, nullptr, false));
  }

  // Adds a channel ({"name", "type", "schema"?}) to an instance or deletes one ({"name"}),
  // stores it, answers the new list and pushes it to the lobby's members as `rooms`.
  Task change_channel(Request req, std::string id, bool add, json in) {
    Instance* instance = find(id);
    if (instance == nullptr) co_return req.fail(PRISM_NOT_FOUND, "no instance '" + id + "'");
    std::string error;
    std::string gone;
    bool done = false;
    if (add) {
      auto channel = Channel::from_json(in, &error);
      done = channel && instance->add_channel(std::move(*channel), &error);
    } else {
      gone = in.is_object() ? in.value("name", std::string()) : std::string();
      // Its members hear phx_close first: the channel is gone for good.
      if (gone != "lobby" && instance->channel(gone) != nullptr) {
        close_members(*instance, "channel '" + gone + "' was deleted", /*rejoin=*/false, gone);
      }
      done = instance->remove_channel(gone, &error);
    }
    if (!done) co_return req.fail(PRISM_INVALID_ARGUMENT, error);
    // A deleted channel's stored state goes too, or the next start would load it back.
    if (!gone.empty() && !(co_await host_.remove(kChannels, id + "/" + gone)).ok()) {
      co_return req.fail(PRISM_UNAVAILABLE, "the change could not be stored");
    }
    const prism_status_t stored = co_await store_instance(id, true);
    if (stored != PRISM_OK) co_return req.fail(stored, "the change could not be stored");
    instance = find(id);
    if (instance == nullptr) co_return req.fail(PRISM_NOT_FOUND, "the instance is gone");
    host_.info(std::string(add ? "channel added id=" : "channel deleted id=") + id +
               " channel=" + (add ? in.value("name", std::string()) : gone));
    const std::string rooms = json{{"rooms", instance->rooms()}}.dump();
    req.ok(rooms);
    host_.publish("@" + id + "/lobby", kRooms, rooms);
  }

  sdk::Async<int> set_state(Request req, std::string id, bool running) {
    Instance* instance = find(id);
    if (instance == nullptr) {
      req.fail(PRISM_NOT_FOUND, "no instance '" + id + "'");
      co_return 0;
    }
    if (running) {
      instance->start();
    } else {
      close_members(*instance, "instance '" + id + "' is stopped", /*rejoin=*/true);
      instance->stop();
    }
    const prism_status_t stored = co_await store_instance(id, false);
    if (stored != PRISM_OK) {
      req.fail(stored, "the state could not be stored");
      co_return 0;
    }
    host_.info(std::string("instance ") + (running ? "started" : "stopped") + " id=" + id);
    req.ok(instance->summary().dump());
    co_return 0;
  }

  // Every member of the instance leaves its channels (a failure, a stop or a delete), or
  // of its channel `only` (deleted). A browser hears phx_error (`rejoin`: its client joins
  // again, and is back once the instance serves again) or phx_close (protocol.md §7.3).
  void close_members(Instance& instance, const std::string& reason, bool rejoin,
                     const std::string& only = {}) {
    const std::string prefix = "@" + instance.id() + "/";
    for (auto it = members_.begin(); it != members_.end();) {
      for (auto t = it->second.topics.begin(); t != it->second.topics.end();) {
        if (only.empty() ? t->starts_with(prefix) : *t == prefix + only) {
          // Unsent joins of a channel everyone leaves would reach its next members as
          // ghosts (they rejoin with new metas).
          presence_batches_.erase(*t);
          host_.end_channel(it->first, *t, reason, rejoin);
          instance.presence(t->substr(prefix.size())).leave(it->first);
          t = it->second.topics.erase(t);
        } else {
          ++t;
        }
      }
      it = it->second.topics.empty() ? members_.erase(it) : std::next(it);
    }
  }

  // ---- HTTP: /api/instances (admin token as bearer) --------------------------------------
  // The <id> of /api/instances/<id>[/...], "" for /api/instances itself.
  static std::string http_instance(const std::string& path) {
    constexpr std::string_view base = "/api/instances/";
    if (!path.starts_with(base)) return {};
    const std::string rest = path.substr(base.size());
    return rest.substr(0, rest.find('/'));
  }
  void http(Request req, Call c) { http(std::move(req), c.topic, c.event, c.payload, c.connect); }

  void http(Request req, const std::string& path, const std::string& method, const std::string& body,
            const std::string& connect_text) {
    const json connect = json::parse(connect_text, nullptr, false);
    if (!connect.is_object() || !connect.value("admin", false)) {
      return req.fail(PRISM_LOGIN_REQUIRED, "the admin token is required (Authorization: Bearer)");
    }
    std::string rest = path.substr(std::string_view("/api/instances").size());
    if (!rest.empty() && rest.front() == '/') rest.erase(0, 1);
    const size_t slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    const std::string id_json = json{{"id", id}}.dump();
    // The instance is served here: channel() routed the request (http_instance).
    if (id.empty() && method == "GET") return void(list(std::move(req), {}));
    if (id.empty() && method == "POST") return void(create(std::move(req), body));
    if (!id.empty() && action.empty() && method == "GET") return show_here(std::move(req), id_json);
    if (!id.empty() && action.empty() && method == "DELETE") return void(remove_here(std::move(req), id_json));
    if (!id.empty() && method == "POST" && action == "stop") return void(stop_here(std::move(req), id_json));
    if (!id.empty() && method == "POST" && action == "start") return void(start_here(std::move(req), id_json));
    if (!id.empty() && method == "POST" && action == "channels") {
      return void(change_channel(std::move(req), id, true, json::parse(body, nullptr, false)));
    }
    if (!id.empty() && method == "DELETE" && action.starts_with("channels/")) {
      return void(change_channel(std::move(req), id, false,
                                 json{{"name", action.substr(std::string_view("channels/").size())}}));
    }
    req.fail(PRISM_NOT_FOUND, method + " " + path + ": no such operation");
  }

  sdk::Host& host_;  // owned by the SDK; outlives this instance
  Settings settings_;
  const bool clustered_;  // server_info names a node: instances are leased (docs/rooms.md)
  bool loaded_ = false;
  // Who serves instances this node does not, as a lease said; trusted for kOwnerMemory
  // (a node that died is asked about again soon after).
  struct Owner {
    std::string node;
    int64_t until = 0;  // Unix ms
  };
  static constexpr std::chrono::milliseconds kOwnerMemory{1000};
  std::map<std::string, Owner> owners_;
  std::map<std::string, Instance> instances_;
  std::map<uint64_t, Member> members_;   // sessions on channels
  std::map<std::string, Flush> flushes_;  // by "<id>/<channel>"
  // presence_diff waiting to go out, by topic; the timer is armed while any waits.
  static constexpr std::chrono::milliseconds kPresenceBatch{50};
  std::map<std::string, PresenceBatch> presence_batches_;
  sdk::Host::Timer presence_timer_;
  bool presence_timer_armed_ = false;
  json handed_over_;  // restore()'s state until the instances are loaded
  std::set<std::string> channels_pending_;  // loaded from storage, channels not yet read
  static constexpr size_t kMaxRestarts = 3;
  static constexpr std::chrono::milliseconds kRestartWindow{60'000};
  std::map<std::string, std::vector<int64_t>> restarts_;  // by instance: when (ms), in the window
};

}  // namespace
}  // namespace prism::rooms

PRISM_PLUGIN(prism::rooms::RoomsService)
