// Loads prism.yaml into a Config: a table of the known keys, each with the parser that
// checks its value. Anything else in the file is an error that says where it is.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "config/yaml_text.hpp"

namespace prism::config {
namespace {

// A plain decimal integer in [min, max]. A quoted "5000" is a string, not a number.
std::optional<uint64_t> integer_in(const YAML::Node& node, uint64_t min, uint64_t max) {
  if (!node.IsScalar() || node.Tag() != "?") return std::nullopt;
  const std::string& text = node.Scalar();
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  if (value < min || value > max) return std::nullopt;
  return value;
}

Expected<uint64_t> integer(const YAML::Node& node, uint64_t min, uint64_t max) {
  if (auto value = integer_in(node, min, max)) return *value;
  return make_error("expected an integer " + std::to_string(min) + ".." + std::to_string(max) +
                    ", got " + describe(node));
}

// Each setter checks one value and stores it; the error it returns is prefixed with
// the location and key path by the walker.
using Setter = Expected<void> (*)(const YAML::Node& value, Config& config);

Expected<void> set_udp(const YAML::Node& node, Config& config) {
  if (!node.IsScalar()) {
    return make_error("expected \"HOST:PORT\" (quote IPv6 as \"[::1]:7777\"), got " + describe(node));
  }
  auto endpoint = parse_endpoint(node.Scalar());
  if (!endpoint) return make_error(endpoint.error());
  config.udp = std::move(*endpoint);
  return {};
}

Expected<void> set_ws_listen(const YAML::Node& node, Config& config) {
  if (node.IsScalar() && (node.Scalar() == "off" || node.Scalar().empty())) {
    config.ws_listen.reset();
    return {};
  }
  if (!node.IsScalar()) {
    return make_error("expected \"HOST:PORT\" or \"off\" (quote IPv6 as \"[::1]:4000\"), got " +
                      describe(node));
  }
  auto endpoint = parse_endpoint(node.Scalar());
  if (!endpoint) return make_error(endpoint.error());
  config.ws_listen = std::move(*endpoint);
  return {};
}

Expected<void> set_workers(const YAML::Node& node, Config& config) {
  if (node.IsScalar() && node.Scalar() == "auto") {
    config.workers = 0;
    return {};
  }
  // 255 at most: worker byte 0xff marks another node's sessions (net::is_remote_session).
  auto count = integer_in(node, 1, 255);
  if (!count) return make_error("expected \"auto\" or an integer 1..255, got " + describe(node));
  config.workers = static_cast<unsigned>(*count);
  return {};
}

// A duration in milliseconds within [Min, Max].
template <std::chrono::milliseconds Config::*Member, uint64_t Min, uint64_t Max>
Expected<void> set_millis(const YAML::Node& node, Config& config) {
  auto ms = integer(node, Min, Max);
  if (!ms) return make_error(ms.error());
  config.*Member = std::chrono::milliseconds(*ms);
  return {};
}

// A count or a size in bytes within [Min, Max].
template <size_t Config::*Member, uint64_t Min, uint64_t Max>
Expected<void> set_count(const YAML::Node& node, Config& config) {
  auto n = integer(node, Min, Max);
  if (!n) return make_error(n.error());
  config.*Member = static_cast<size_t>(*n);
  return {};
}

// plugins.dir, plugins.config_dir, state_dir, ws.tls.*: any non-empty string.
template <std::string Config::*Member>
Expected<void> set_path(const YAML::Node& node, Config& config) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return make_error("expected a path, got " + describe(node));
  }
  config.*Member = node.Scalar();
  return {};
}

Expected<void> set_log_level(const YAML::Node& node, Config& config) {
  static constexpr std::array<std::string_view, 6> kLevels{"trace", "debug", "info",
                                                           "warn",  "error", "off"};
  if (!node.IsScalar() || std::find(kLevels.begin(), kLevels.end(), node.Scalar()) == kLevels.end()) {
    return make_error("expected one of trace|debug|info|warn|error|off, got " + describe(node));
  }
  config.log_level = node.Scalar();
  return {};
}

Expected<void> set_metrics_interval(const YAML::Node& node, Config& config) {
  auto seconds = integer(node, 0, 86400);
  if (!seconds) return make_error(seconds.error());
  config.metrics_interval = std::chrono::seconds(*seconds);
  return {};
}

Expected<void> set_admin_allow(const YAML::Node& node, Config& config) {
  if (!node.IsSequence()) {
    return make_error("expected a list of address ranges such as [\"127.0.0.0/8\", \"::1\"], got " +
                      describe(node));
  }
  std::vector<Cidr> ranges;
  for (const auto& item : node) {
    if (!item.IsScalar()) return make_error("expected an address range, got " + describe(item));
    auto cidr = parse_cidr(item.Scalar());
    if (!cidr) return make_error(cidr.error());
    ranges.push_back(std::move(*cidr));
  }
  config.admin_allow = std::move(ranges);
  return {};
}

Expected<StoreEngine> engine_of(const YAML::Node& node) {
  if (node.IsScalar()) {
    for (StoreEngine e : {StoreEngine::kSqlite, StoreEngine::kRedis, StoreEngine::kPostgres}) {
      if (node.Scalar() == to_string(e)) return e;
    }
  }
  return make_error("expected one of sqlite|redis|postgres, got " + describe(node));
}

Expected<void> set_store_backend(const YAML::Node& node, Config& config) {
  auto engine = engine_of(node);
  if (!engine) return make_error(engine.error());
  config.store.backend = *engine;
  return {};
}

template <StoreFacet Facet>
Expected<void> set_store_facet(const YAML::Node& node, Config& config) {
  auto engine = engine_of(node);
  if (!engine) return make_error(engine.error());
  config.store.facets[static_cast<size_t>(Facet)] = *engine;
  return {};
}

// A string of a section (store.*, cluster.*) that must not be empty: a path, the
// connection string, a key prefix.
template <auto Section, auto Member>
Expected<void> set_section_text(const YAML::Node& node, Config& config) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return make_error("expected a non-empty string, got " + describe(node));
  }
  (config.*Section).*Member = node.Scalar();
  return {};
}

template <auto Section, auto Member, uint64_t Min, uint64_t Max>
Expected<void> set_section_count(const YAML::Node& node, Config& config) {
  auto n = integer(node, Min, Max);
  if (!n) return make_error(n.error());
  (config.*Section).*Member = static_cast<unsigned>(*n);
  return {};
}

Expected<void> set_sqlite_synchronous(const YAML::Node& node, Config& config) {
  if (!node.IsScalar() || (node.Scalar() != "normal" && node.Scalar() != "full")) {
    return make_error("expected normal or full, got " + describe(node));
  }
  config.store.sqlite_synchronous_full = node.Scalar() == "full";
  return {};
}

// "HOST:PORT" where HOST may be a name (hiredis resolves it) or "[IPv6]".
Expected<std::pair<std::string, uint16_t>> redis_address(const YAML::Node& node) {
  const std::string text = node.IsScalar() ? node.Scalar() : std::string();
  const size_t colon = text.rfind(':');
  uint16_t port = 0;
  if (colon == std::string::npos || colon == 0) {
    return make_error("expected \"HOST:PORT\", got " + describe(node));
  }
  const std::string_view digits = std::string_view(text).substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || port == 0) {
    return make_error("expected a port 1..65535 after the colon, got " + describe(node));
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::pair{std::move(host), port};
}

Expected<void> set_redis_address(const YAML::Node& node, Config& config) {
  auto address = redis_address(node);
  if (!address) return make_error(address.error());
  std::tie(config.store.redis_host, config.store.redis_port) = std::move(*address);
  return {};
}

// ---- cluster.* ------------------------------------------------------------------------
Expected<void> set_cluster_redis_address(const YAML::Node& node, Config& config) {
  auto address = redis_address(node);
  if (!address) return make_error(address.error());
  std::tie(config.cluster.redis_host, config.cluster.redis_port) = std::move(*address);
  return {};
}

template <std::string ClusterConfig::*Member>
Expected<void> set_cluster_name(const YAML::Node& node, Config& config) {
  const std::string why = node.IsScalar() ? check_node_name(node.Scalar()) : "expected a name";
  if (!why.empty()) return make_error(why + ", got " + describe(node));
  config.cluster.*Member = node.Scalar();
  return {};
}

template <std::chrono::milliseconds ClusterConfig::*Member, uint64_t Min, uint64_t Max>
Expected<void> set_cluster_millis(const YAML::Node& node, Config& config) {
  auto n = integer(node, Min, Max);
  if (!n) return make_error(n.error());
  config.cluster.*Member = std::chrono::milliseconds(*n);
  return {};
}

// hiredis 0.14 (Debian 12's) has no TLS: say so, and what to do instead, rather than
// talk plain text to a server the operator believes encrypted.
Expected<void> set_cluster_tls(const YAML::Node& node, Config&) {
  if (node.IsScalar() && (node.Scalar() == "false" || node.Scalar() == "off")) return {};
  return make_error(
      "TLS to Redis needs hiredis 1.0 or later (Debian 12 ships 0.14): reach a TLS Redis "
      "through a local tunnel (stunnel, spiped) and set cluster.redis.address to it");
}

struct Key {
  std::string_view path;  // dotted, as the error messages print it
  Setter set;
};

// Every key the file may hold. A section is any prefix of these paths.
constexpr std::array kKeys{
    Key{"server.udp", set_udp},
    Key{"server.workers", set_workers},
    Key{"server.request_timeout_ms", set_millis<&Config::request_timeout, 1, 600000>},
    // 576: the smallest datagram every IPv4 host must accept; 65507: the largest UDP payload.
    Key{"server.max_datagram", set_count<&Config::max_datagram_size, 576, 65507>},
    Key{"server.key_file", set_path<&Config::key_file>},
    Key{"server.idle_timeout_ms", set_millis<&Config::idle_timeout, 1000, 3600000>},
    Key{"server.max_message_size", set_count<&Config::max_message_size, 1024, 64 << 20>},
    Key{"server.max_sessions", set_count<&Config::max_sessions, 1, 10000000>},
    Key{"server.max_sessions_per_ip", set_count<&Config::max_sessions_per_ip, 1, 10000000>},
    Key{"server.max_handshakes_per_ip", set_count<&Config::max_handshakes_per_ip, 1, 1000000>},
    Key{"server.handshake_rate_per_ip", set_count<&Config::handshake_rate_per_ip, 1, 1000000>},
    Key{"server.handshake_timeout_ms", set_millis<&Config::handshake_timeout, 100, 60000>},
    Key{"server.receive_budget_per_session",
        set_count<&Config::receive_budget_per_session, 64 << 10, uint64_t{1} << 30>},
    Key{"server.receive_budget_per_worker",
        set_count<&Config::receive_budget_per_worker, 64 << 10, uint64_t{64} << 30>},
    Key{"server.max_send_backlog",
        set_count<&Config::max_send_backlog, 64 << 10, uint64_t{1} << 30>},
    Key{"server.max_topics_per_session", set_count<&Config::max_topics_per_session, 1, 100000>},
    Key{"server.max_subscribers_per_topic",
        set_count<&Config::max_subscribers_per_topic, 1, 10000000>},
    Key{"plugins.dir", set_path<&Config::plugins_dir>},
    Key{"plugins.config_dir", set_path<&Config::plugins_config_dir>},
    Key{"state_dir", set_path<&Config::state_dir>},
    Key{"log.level", set_log_level},
    Key{"metrics.snapshot_interval_s", set_metrics_interval},
    Key{"admin.token_file", set_path<&Config::admin_token_file>},
    Key{"admin.allow", set_admin_allow},
    Key{"ws.listen", set_ws_listen},
    Key{"ws.idle_timeout_ms", set_millis<&Config::ws_idle_timeout, 1000, 3600000>},
    Key{"ws.max_frame_bytes", set_count<&Config::ws_max_frame_bytes, 1024, 64 << 20>},
    Key{"ws.max_connections", set_count<&Config::ws_max_connections, 1, 10000000>},
    Key{"ws.max_connections_per_ip", set_count<&Config::ws_max_connections_per_ip, 1, 1000000>},
    Key{"ws.tls.cert", set_path<&Config::ws_tls_cert>},
    Key{"ws.tls.key", set_path<&Config::ws_tls_key>},
    Key{"ws.messages_per_second", set_count<&Config::ws_messages_per_second, 1, 1000000>},
    Key{"store.backend", set_store_backend},
    Key{"store.documents", set_store_facet<StoreFacet::kDocuments>},
    Key{"store.counters", set_store_facet<StoreFacet::kCounters>},
    Key{"store.leaderboards", set_store_facet<StoreFacet::kLeaderboards>},
    Key{"store.presence", set_store_facet<StoreFacet::kPresence>},
    Key{"store.sqlite.file", set_section_text<&Config::store, &StoreConfig::sqlite_file>},
    Key{"store.sqlite.synchronous", set_sqlite_synchronous},
    Key{"store.redis.address", set_redis_address},
    Key{"store.redis.password_file", set_section_text<&Config::store, &StoreConfig::redis_password_file>},
    Key{"store.redis.database", set_section_count<&Config::store, &StoreConfig::redis_database, 0, 255>},
    Key{"store.redis.key_prefix", set_section_text<&Config::store, &StoreConfig::redis_key_prefix>},
    Key{"store.postgres.conninfo", set_section_text<&Config::store, &StoreConfig::postgres_conninfo>},
    Key{"store.postgres.connections", set_section_count<&Config::store, &StoreConfig::postgres_connections, 1, 64>},
    Key{"cluster.redis.address", set_cluster_redis_address},
    Key{"cluster.redis.password_file", set_section_text<&Config::cluster, &ClusterConfig::redis_password_file>},
    Key{"cluster.redis.database", set_section_count<&Config::cluster, &ClusterConfig::redis_database, 0, 255>},
    Key{"cluster.redis.key_prefix", set_section_text<&Config::cluster, &ClusterConfig::key_prefix>},
    Key{"cluster.redis.tls", set_cluster_tls},
    Key{"cluster.node_id", set_cluster_name<&ClusterConfig::node_id>},
    Key{"cluster.region", set_cluster_name<&ClusterConfig::region>},
    Key{"cluster.heartbeat_ms", set_cluster_millis<&ClusterConfig::heartbeat, 50, 60000>},
    Key{"cluster.ttl_ms", set_cluster_millis<&ClusterConfig::ttl, 150, 600000>},
};

// True when `path` lies inside section `section` ("" is the top level).
bool is_under(std::string_view path, std::string_view section) {
  if (section.empty()) return true;
  return path.size() > section.size() && path.starts_with(section) && path[section.size()] == '.';
}

std::string unknown_key(std::string_view name, std::string_view section) {
  std::vector<std::string_view> known;
  for (const Key& key : kKeys) {
    if (!is_under(key.path, section)) continue;
    std::string_view rest = key.path.substr(section.empty() ? 0 : section.size() + 1);
    rest = rest.substr(0, rest.find('.'));
    if (std::find(known.begin(), known.end(), rest) == known.end()) known.push_back(rest);
  }
  std::string message = "unknown key '" + std::string(name) + "'";
  if (!section.empty()) message += " in '" + std::string(section) + "'";
  message += " (known keys:";
  for (std::string_view k : known) message += " " + std::string(k);
  return message + ")";
}

// Applies one mapping level; `section` is its dotted path ("" at the top level).
Expected<void> apply_map(const YAML::Node& map, const std::string& section,
                         std::string_view source, Config& config) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    const std::string at = where(source, key.Mark());
    if (!key.IsScalar() || key.Scalar().empty()) {
      return make_error(at + "expected a key name, got " + describe(key));
    }
    const std::string& name = key.Scalar();
    const std::string path = section.empty() ? name : section + "." + name;
    // yaml-cpp keeps duplicate keys silently; the second would be ignored, so refuse it.
    if (!seen.insert(name).second) return make_error(at + path + ": duplicate key");

    // yaml-cpp marks an empty value at the next token, so blame the key for those.
    const std::string value_at = value.IsNull() ? at : where(source, value.Mark());
    const auto known = std::find_if(kKeys.begin(), kKeys.end(),
                                    [&](const Key& k) { return k.path == path; });
    if (known != kKeys.end()) {
      if (auto applied = known->set(value, config); !applied) {
        return make_error(value_at + path + ": " + applied.error());
      }
      continue;
    }
    const bool is_section = std::any_of(kKeys.begin(), kKeys.end(),
                                        [&](const Key& k) { return is_under(k.path, path); });
    if (!is_section) return make_error(at + unknown_key(name, section));
    if (value.IsNull()) continue;  // a section whose keys are all commented out
    if (!value.IsMap()) return make_error(value_at + path + ": expected a map, got " + describe(value));
    if (auto nested = apply_map(value, path, source, config); !nested) return nested;
  }
  return {};
}

}  // namespace

std::string check_node_name(std::string_view name) {
  const bool fits = !name.empty() && name.size() <= 64 &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
                    });
  return fits ? std::string() : "expected 1..64 characters of A-Z a-z 0-9 _ . -";
}

Expected<Config> load_string(std::string_view yaml, std::string_view source_name) {
  Config config;
  config.source = std::string(source_name);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) return config;  // an empty file, or one holding only comments
    if (!root.IsMap()) {
      return make_error(where(source_name, root.Mark()) +
                        "expected a map of settings at the top level, got " + describe(root));
    }
    if (auto applied = apply_map(root, "", source_name, config); !applied) {
      return make_error(applied.error());
    }
    if (config.store.uses(StoreEngine::kPostgres) && config.store.postgres_conninfo.empty()) {
      const YAML::Node store = root["store"];
      return make_error(where(source_name, store.Mark()) +
                        "store.postgres.conninfo: required when a facet uses postgres "
                        "(e.g. \"host=127.0.0.1 dbname=prism user=prism connect_timeout=5\")");
    }
    // A cluster section, even one whose keys are all defaults, makes this node a member.
    config.cluster.enabled = root["cluster"].IsDefined();
    if (config.cluster.enabled && config.cluster.ttl < 3 * config.cluster.heartbeat) {
      const YAML::Node cluster = root["cluster"];
      return make_error(where(source_name, (cluster["ttl_ms"] ? cluster["ttl_ms"] : cluster).Mark()) +
                        "cluster.ttl_ms: " + std::to_string(config.cluster.ttl.count()) +
                        " must be at least 3 heartbeats (3 x cluster.heartbeat_ms = " +
                        std::to_string(3 * config.cluster.heartbeat.count()) +
                        "), or a node that misses one beat would drop out");
    }
    // Cross-key rules: blame the key when the file sets it, else its section.
    auto at_server_key = [&](const char* key) {
      const YAML::Node server = root["server"];
      return where(source_name, (server && server[key] ? server[key] : server).Mark());
    };
    if (config.receive_budget_per_session < min_receive_budget(config.max_message_size)) {
      return make_error(at_server_key("receive_budget_per_session") +
                        "server.receive_budget_per_session: " +
                        std::to_string(config.receive_budget_per_session) +
                        " cannot hold one message of server.max_message_size (" +
                        std::to_string(config.max_message_size) + ") in fragments; it must be " +
                        "at least " + std::to_string(min_receive_budget(config.max_message_size)));
    }
    if (config.receive_budget_per_worker < config.receive_budget_per_session) {
      return make_error(at_server_key("receive_budget_per_worker") +
                        "server.receive_budget_per_worker: must be at least "
                        "server.receive_budget_per_session (" +
                        std::to_string(config.receive_budget_per_session) + ")");
    }
    if (config.ws_tls_cert.empty() != config.ws_tls_key.empty()) {
      const YAML::Node ws = root["ws"];
      const YAML::Node tls = ws && ws["tls"] ? ws["tls"] : ws;
      return make_error(where(source_name, tls.Mark()) +
                        "ws.tls: cert and key go together (both files, or neither)");
    }
    return config;
  } catch (const YAML::Exception& e) {  // syntax errors carry the mark of the bad token
    return make_error(where(source_name, e.mark) + e.msg);
  } catch (const std::exception& e) {
    return make_error(std::string(source_name) + ": " + e.what());
  }
}

Expected<Config> load_file(const std::filesystem::path& path) {
  auto text = read_text_file(path, "config file");
  if (!text) return make_error(text.error());
  return load_string(*text, path.string());
}

Expected<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port;
  int family = AF_INET;
  if (text.starts_with('[')) {
    const size_t close = text.find("]:");
    if (close == std::string_view::npos) {
      return make_error("expected \"[IPv6]:PORT\", got \"" + std::string(text) + "\"");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    family = AF_INET6;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return make_error("expected \"HOST:PORT\", got \"" + std::string(text) + "\"");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }

  const std::string host_text(host);
  in6_addr address{};  // large enough for either family
  if (inet_pton(family, host_text.c_str(), &address) != 1) {
    return make_error("\"" + host_text + "\" is not an " +
                      (family == AF_INET6 ? std::string("IPv6 address")
                                          : std::string("IPv4 address (write IPv6 as \"[::1]:PORT\")")));
  }
  uint16_t number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size()) {
    return make_error("expected a port 0..65535, got \"" + std::string(port) + "\"");
  }
  return Endpoint{host_text, number};
}

std::string_view to_string(StoreEngine engine) {
  switch (engine) {
    case StoreEngine::kSqlite: return "sqlite";
    case StoreEngine::kRedis: return "redis";
    case StoreEngine::kPostgres: return "postgres";
  }
  return "sqlite";
}

std::string to_string(const Endpoint& endpoint) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

Expected<Cidr> parse_cidr(std::string_view text) {
  Cidr cidr;
  cidr.text = std::string(text);
  const size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  if (inet_pton(AF_INET, address.c_str(), cidr.bytes.data()) == 1) {
    cidr.length = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), cidr.bytes.data()) == 1) {
    cidr.length = 16;
  } else {
    return make_error("'" + cidr.text + "' is not an IPv4 or IPv6 address or range");
  }
  cidr.prefix = static_cast<uint8_t>(cidr.length * 8);
  if (slash != std::string_view::npos) {
    const std::string_view bits = text.substr(slash + 1);
    unsigned prefix = 0;
    const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() ||
        prefix > cidr.length * 8u) {
      return make_error("'" + cidr.text + "': the prefix length must be 0.." +
                        std::to_string(cidr.length * 8));
    }
    cidr.prefix = static_cast<uint8_t>(prefix);
  }
  return cidr;
}

bool Cidr::contains(std::string_view address) const {
  auto bytes = reinterpret_cast<const uint8_t*>(address.data());
  size_t size = address.size();
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (length == 4 && size == 16 && std::equal(kMapped, kMapped + 12, bytes)) {
    bytes += 12;
    size = 4;
  }
  if (size != length) return false;
  const unsigned full = prefix / 8;
  if (!std::equal(bytes, bytes + full, this->bytes.begin())) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (bytes[full] & mask) == (this->bytes[full] & mask);
}

std::vector<Cidr> default_admin_allow() {
  return {*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")};
}

}  // namespace prism::config
